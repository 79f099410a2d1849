//! The database: the shared connection pool, the embedded server, and the platform schema.

pub mod embedded;

use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use sqlx::{Connection as _, PgPool, postgres::PgPoolOptions};

use crate::config::Config;
pub use embedded::{EmbeddedOptions, EmbeddedPostgres};

/// The platform (`public` schema) migrations in `migrations/`.
pub static PLATFORM_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database kefu uses inside its embedded cluster.
pub const EMBEDDED_DATABASE: &str = "kefu";

/// The pool plus, when kefu runs its own server, that server.
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to `DATABASE_URL`, or starts the embedded server under the data directory.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let options = pool_options(config.db_max_connections);
        match &config.database_url {
            Some(url) => {
                let pool = options
                    .connect(url.expose_secret())
                    .await
                    .context("connecting to DATABASE_URL")?;
                Ok(Self { pool, embedded: None })
            }
            None => {
                let dir = config.data_dir.join("postgres");
                let pg = tokio::task::spawn_blocking(move || {
                    EmbeddedPostgres::start(&dir, EmbeddedOptions::default())
                })
                .await??;
                pg.ensure_database(EMBEDDED_DATABASE).await?;
                let pool = options
                    .connect_with(pg.connect_options(EMBEDDED_DATABASE))
                    .await
                    .context("connecting to the embedded PostgreSQL")?;
                Ok(Self { pool, embedded: Some(pg) })
            }
        }
    }

    /// Closes the pool and stops the embedded server if this process started it.
    pub async fn shutdown(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded {
            match tokio::task::spawn_blocking(move || pg.stop(false)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "stopping the embedded PostgreSQL"),
                Err(e) => tracing::error!(error = %e, "stopping the embedded PostgreSQL"),
            }
        }
    }
}

/// Pool settings. The pool is shared by all tenants and kept small: every connection caches
/// catalog entries for each tenant schema it has touched, so connections are also recycled
/// (max lifetime, idle timeout) to keep that memory bounded with thousands of tenants.
/// A pooled connection idle at least this long is pinged before it is handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        // sqlx pings every connection it hands out (a round trip before each query). Only
        // one that sat idle for a while can have lost its server unnoticed: a connection
        // that failed in use is closed when it is returned, so ping only those.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .max_lifetime(Duration::from_secs(15 * 60))
        .idle_timeout(Duration::from_secs(5 * 60))
}

/// Whether the platform schema has never been migrated (a brand-new database).
pub async fn is_fresh(pool: &PgPool) -> sqlx::Result<bool> {
    let exists: bool =
        sqlx::query_scalar("select to_regclass('public._sqlx_migrations') is not null")
            .fetch_one(pool)
            .await?;
    Ok(!exists)
}

/// Platform migrations embedded in this binary that the database has not applied.
pub async fn platform_pending(pool: &PgPool) -> sqlx::Result<Vec<i64>> {
    if is_fresh(pool).await? {
        return Ok(PLATFORM_MIGRATOR.iter().map(|m| m.version).collect());
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("select version from public._sqlx_migrations where success")
            .fetch_all(pool)
            .await?;
    Ok(PLATFORM_MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect())
}

/// Takes a transaction-level advisory lock named `what` within the current tenant schema
/// (different tenants never wait on each other); released at commit or rollback.
pub async fn tenant_lock(conn: &mut sqlx::PgConnection, what: &str) -> sqlx::Result<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || ':' || current_schema(), 0))")
        .bind(what)
        .execute(conn)
        .await?;
    Ok(())
}

//! Per-tenant schema migrations.
//!
//! Every file in `tenants/migrations/` (`NNNN_name.sql`) is embedded at build time. Each
//! tenant schema records what it has applied in its own `_kefu_migrations` table, and
//! `public.tenants.schema_version` mirrors the newest version in the same transaction, so
//! "is anything behind?" is one indexed query over `public.tenants` instead of one query per
//! schema.
//!
//! Functions (`tenants/functions/name.sql`, e.g. `store_messages`) are not versioned: each
//! file is the function's one source, applied after the migrations whenever its text differs
//! from what the schema recorded in `_kefu_functions`. `public.tenants.functions_digest`
//! mirrors the digest of them all, as `schema_version` mirrors the migrations.
//!
//! Migrating all tenants runs with bounded parallelism; each tenant is one transaction that
//! first locks that tenant's row (`for update`, under `lock_timeout`) and retries on lock or
//! deadlock errors. A run that is interrupted leaves every tenant either fully migrated or
//! untouched, so running it again resumes where it stopped.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::{ids::TenantId, tx::TenantTx};

/// One per-tenant migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }
}

/// A tenant function, re-applied whenever its definition changes (it must be re-runnable:
/// `create or replace`).
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub name: &'static str,
    pub sql: &'static str,
}

impl Function {
    fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }
}

const EMBEDDED: &[Migration] = include!(concat!(env!("OUT_DIR"), "/tenant_migrations.rs"));
const FUNCTIONS: &[Function] = include!(concat!(env!("OUT_DIR"), "/tenant_functions.rs"));

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "tenant {tenant}: migration {version} was changed after it was applied (checksum differs)"
    )]
    ChecksumMismatch { tenant: TenantId, version: i32 },
    #[error(
        "tenant {tenant}: schema has migration {version}, which this kefu binary does not know (is the binary older than the database?)"
    )]
    UnknownVersion { tenant: TenantId, version: i32 },
    #[error("tenant {tenant}: migration {version} ({name}) failed: {source}")]
    Apply { tenant: TenantId, version: i32, name: &'static str, source: sqlx::Error },
    #[error("tenant {tenant}: function {name} failed: {source}")]
    Function { tenant: TenantId, name: &'static str, source: sqlx::Error },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl MigrationError {
    /// Lock timeouts, deadlocks and lost connections are worth another try.
    fn is_retryable(&self) -> bool {
        let err = match self {
            MigrationError::Database(e)
            | MigrationError::Apply { source: e, .. }
            | MigrationError::Function { source: e, .. } => e,
            _ => return false,
        };
        match err {
            sqlx::Error::Database(db) => {
                matches!(db.code().as_deref(), Some("55P03" | "40P01" | "40001"))
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
            _ => false,
        }
    }
}

/// How [`TenantMigrator::migrate_all`] runs.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// Tenants migrated at the same time.
    pub concurrency: usize,
    /// `lock_timeout` for each tenant's transaction.
    pub lock_timeout: Duration,
    /// Further attempts after a retryable failure.
    pub retries: u32,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self { concurrency: 4, lock_timeout: Duration::from_secs(5), retries: 5 }
    }
}

/// What a [`TenantMigrator::migrate_all`] run did.
#[derive(Debug, Default)]
pub struct MigrateReport {
    /// Tenants that were behind when the run started.
    pub behind: usize,
    /// Tenants brought to the latest version (migrations and functions) by this run.
    pub migrated: usize,
    /// Migrations applied, summed over tenants.
    pub applied: usize,
    /// Attempts that failed with a retryable error and were tried again.
    pub retried: usize,
    pub failed: Vec<(TenantId, String)>,
    pub elapsed: Duration,
}

/// What one tenant's migration applied.
#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    migrations: usize,
    functions: usize,
}

/// The ordered list of tenant migrations, the tenant functions, and the operations on them.
#[derive(Clone, Debug)]
pub struct TenantMigrator {
    migrations: Vec<Migration>,
    functions: Vec<Function>,
}

impl TenantMigrator {
    /// The migrations compiled into this binary.
    pub fn embedded() -> Self {
        Self::new(EMBEDDED.to_vec())
    }

    /// A migrator over an explicit list (sorted by version; versions must be unique and
    /// positive). Tests and benchmarks use it to add a migration to the embedded ones.
    pub fn new(mut migrations: Vec<Migration>) -> Self {
        migrations.sort_by_key(|m| m.version);
        assert!(migrations.iter().all(|m| m.version > 0), "migration versions start at 1");
        assert!(
            migrations.windows(2).all(|w| w[0].version != w[1].version),
            "duplicate tenant migration version"
        );
        Self { migrations, functions: FUNCTIONS.to_vec() }
    }

    /// The embedded migrations plus `extra`.
    pub fn with(mut self, extra: Migration) -> Self {
        self.migrations.push(extra);
        Self::new(self.migrations)
    }

    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The version a current tenant schema is at.
    pub fn latest(&self) -> i32 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// These functions in place of the embedded ones (tests change a definition with it).
    pub fn with_functions(mut self, functions: Vec<Function>) -> Self {
        self.functions = functions;
        self
    }

    /// The digest of every function's name and text, which a current tenant has applied.
    pub fn functions_digest(&self) -> Vec<u8> {
        let mut all = Sha256::new();
        for f in &self.functions {
            all.update(f.name.as_bytes());
            all.update([0]);
            all.update(f.checksum());
        }
        all.finalize().to_vec()
    }

    /// Applies whatever `tx`'s schema lacks, records it, and mirrors the version into
    /// `public.tenants`. Returns the number of migrations applied.
    pub async fn apply(&self, tx: &mut TenantTx) -> Result<usize, MigrationError> {
        Ok(self.apply_counting(tx).await?.migrations)
    }

    /// [`Self::apply`], counting the migrations and the functions applied.
    async fn apply_counting(&self, tx: &mut TenantTx) -> Result<Applied, MigrationError> {
        let tenant = tx.tenant();
        let conn: &mut PgConnection = tx;
        sqlx::query(
            "create table if not exists _kefu_migrations (
                version    integer primary key,
                name       text not null,
                checksum   bytea not null,
                applied_at timestamptz not null default now()
            )",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<(i32, Vec<u8>)> =
            sqlx::query_as("select version, checksum from _kefu_migrations order by version")
                .fetch_all(&mut *conn)
                .await?;
        for (version, checksum) in &applied {
            match self.migrations.iter().find(|m| m.version == *version) {
                None => {
                    return Err(MigrationError::UnknownVersion { tenant, version: *version });
                }
                Some(m) if &m.checksum() != checksum => {
                    return Err(MigrationError::ChecksumMismatch { tenant, version: *version });
                }
                Some(_) => {}
            }
        }
        let mut count = 0;
        for m in self.migrations.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)) {
            sqlx::raw_sql(m.sql).execute(&mut *conn).await.map_err(|source| {
                MigrationError::Apply { tenant, version: m.version, name: m.name, source }
            })?;
            sqlx::query(
                "insert into _kefu_migrations (version, name, checksum) values ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute(&mut *conn)
            .await?;
            count += 1;
        }
        let functions = self.apply_functions(tenant, conn).await?;
        sqlx::query(
            "update public.tenants set schema_version = $2, functions_digest = $3, updated_at = now()
             where id = $1",
        )
        .bind(tenant)
        .bind(self.latest())
        .bind(self.functions_digest())
        .execute(&mut *conn)
        .await?;
        Ok(Applied { migrations: count, functions })
    }

    /// (Re)defines the functions whose text differs from what the schema applied last; how
    /// many.
    async fn apply_functions(
        &self,
        tenant: TenantId,
        conn: &mut PgConnection,
    ) -> Result<usize, MigrationError> {
        sqlx::query(
            "create table if not exists _kefu_functions (
                name       text primary key,
                checksum   bytea not null,
                applied_at timestamptz not null default now()
            )",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<(String, Vec<u8>)> =
            sqlx::query_as("select name, checksum from _kefu_functions")
                .fetch_all(&mut *conn)
                .await?;
        let mut count = 0;
        for f in &self.functions {
            if applied.iter().any(|(name, sum)| name == f.name && *sum == f.checksum()) {
                continue;
            }
            count += 1;
            sqlx::raw_sql(f.sql)
                .execute(&mut *conn)
                .await
                .map_err(|source| MigrationError::Function { tenant, name: f.name, source })?;
            sqlx::query(
                "insert into _kefu_functions (name, checksum) values ($1, $2)
                 on conflict (name) do update set checksum = excluded.checksum, applied_at = now()",
            )
            .bind(f.name)
            .bind(f.checksum())
            .execute(&mut *conn)
            .await?;
        }
        Ok(count)
    }

    /// Live tenants whose schema is behind this migrator: a migration or a function to apply.
    pub async fn tenants_behind(&self, pool: &PgPool) -> sqlx::Result<Vec<TenantId>> {
        sqlx::query_scalar(
            "select id from public.tenants
             where status <> 'deleted'
               and (schema_version < $1 or functions_digest is distinct from $2)
             order by id",
        )
        .bind(self.latest())
        .bind(self.functions_digest())
        .fetch_all(pool)
        .await
    }

    /// Brings every live tenant schema to the latest version. `progress` is called once per
    /// tenant that was behind, after it is done (or has failed), with the total.
    pub async fn migrate_all(
        &self,
        pool: &PgPool,
        options: &MigrateOptions,
        progress: impl Fn(usize, usize) + Sync,
    ) -> sqlx::Result<MigrateReport> {
        let started = Instant::now();
        let behind = self.tenants_behind(pool).await?;
        let total = behind.len();
        let done = AtomicUsize::new(0);
        let retried = AtomicUsize::new(0);
        let results: Vec<(TenantId, Result<Applied, MigrationError>)> = stream::iter(behind)
            .map(|tenant| {
                let (done, retried, progress) = (&done, &retried, &progress);
                async move {
                    let mut attempt = 0;
                    let result = loop {
                        match self.migrate_one(pool, tenant, options).await {
                            Err(e) if e.is_retryable() && attempt < options.retries => {
                                attempt += 1;
                                retried.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(%tenant, attempt, error = %e, "tenant migration retry");
                                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                            }
                            other => break other,
                        }
                    };
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                    (tenant, result)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let mut report =
            MigrateReport { behind: total, retried: retried.into_inner(), ..Default::default() };
        for (tenant, result) in results {
            match result {
                Ok(applied) => {
                    report.migrated += usize::from(applied.migrations + applied.functions > 0);
                    report.applied += applied.migrations;
                }
                Err(e) => report.failed.push((tenant, e.to_string())),
            }
        }
        report.failed.sort_by_key(|(t, _)| *t);
        report.elapsed = started.elapsed();
        Ok(report)
    }

    async fn migrate_one(
        &self,
        pool: &PgPool,
        tenant: TenantId,
        options: &MigrateOptions,
    ) -> Result<Applied, MigrationError> {
        let mut tx = pool.begin().await?;
        sqlx::query("select set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", options.lock_timeout.as_millis()))
            .execute(&mut *tx)
            .await?;
        let current: Option<(i32, Option<Vec<u8>>)> = sqlx::query_as(
            "select schema_version, functions_digest from public.tenants where id = $1 for update",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let digest = self.functions_digest();
        match current {
            Some((v, d)) if v < self.latest() || d.as_ref() != Some(&digest) => {
                let mut tx = TenantTx::scope(tx, tenant).await?;
                let applied = self.apply_counting(&mut tx).await?;
                tx.commit().await?;
                Ok(applied)
            }
            // Deleted meanwhile, or migrated by a concurrent run.
            _ => Ok(Applied::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_ordered_and_start_at_one() {
        let m = TenantMigrator::embedded();
        assert_eq!(m.migrations()[0].version, 1);
        assert!(m.latest() >= 1);
        assert!(m.migrations().windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn with_appends_in_order() {
        let m = TenantMigrator::embedded();
        let latest = m.latest();
        let m = m.with(Migration { version: latest + 1, name: "extra", sql: "select 1" });
        assert_eq!(m.latest(), latest + 1);
    }
}

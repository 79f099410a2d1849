//! Spare tenant schemas: complete `tenant_<id>` schemas built ahead of sign-up.
//!
//! Creating a schema and running every tenant migration is most of what provisioning costs
//! (a hundred-odd relations, each a catalog write). [`refill`] does that work in the
//! background: it draws an id from `public.tenants`' identity sequence, builds `tenant_<id>`
//! at the latest tenant migration and records it in `public.spare_schemas`. [`crate::provision`]
//! then claims a spare (`for update skip locked`, so concurrent sign-ups never share one) and
//! inserts the tenant row with that id: the schema already has the right name, so nothing is
//! renamed (a rename would leave the functions' pinned `search_path` pointing at the old
//! name). Without a spare, provisioning builds the schema itself, as it always could.
//!
//! A spare older than the migrator's latest version (this binary added a migration) is
//! dropped and built again; a spare is only handed out at exactly the claimer's version, so
//! during a rolling upgrade the older nodes simply build their tenants' schemas themselves.

use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::{
    ids::{TenantId, schema_name},
    migrate::{MigrationError, TenantMigrator},
    tx::TenantTx,
};

/// Serializes refills across processes (several kefu nodes share one database), so they
/// build exactly the number of spares asked for between them.
const REFILL_LOCK: i64 = 0x6b65_6675_7370_6172; // "kefuspar"

/// What one [`refill`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefillReport {
    /// Spares built.
    pub built: usize,
    /// Out-of-date spares dropped.
    pub dropped: usize,
}

/// Brings the stock to `want` spares at `migrator`'s latest version: drops out-of-date ones,
/// then builds what is missing, one transaction per spare.
pub async fn refill(
    pool: &PgPool,
    migrator: &TenantMigrator,
    want: usize,
) -> Result<RefillReport, MigrationError> {
    let mut report = RefillReport::default();
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)").bind(REFILL_LOCK).execute(&mut *tx).await?;
        let stale: Option<i64> = sqlx::query_scalar(
            "delete from public.spare_schemas
             where tenant_id = (select tenant_id from public.spare_schemas
                                where schema_version < $1 limit 1 for update skip locked)
             returning tenant_id",
        )
        .bind(migrator.latest())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = stale {
            drop_schema(&mut tx, TenantId(id)).await?;
            tx.commit().await?;
            report.dropped += 1;
            continue;
        }
        let have: i64 = sqlx::query_scalar("select count(*) from public.spare_schemas")
            .fetch_one(&mut *tx)
            .await?;
        if have as usize >= want {
            tx.commit().await?;
            return Ok(report);
        }
        let id: i64 =
            sqlx::query_scalar("select nextval(pg_get_serial_sequence('public.tenants', 'id'))")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("insert into public.spare_schemas (tenant_id, schema_version) values ($1, $2)")
            .bind(id)
            .bind(migrator.latest())
            .execute(&mut *tx)
            .await?;
        create_schema(&mut tx, TenantId(id)).await?;
        let mut tx = TenantTx::scope(tx, TenantId(id)).await?;
        migrator.apply(&mut tx).await?;
        tx.commit().await?;
        report.built += 1;
    }
}

/// Spares ready now.
pub async fn count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from public.spare_schemas").fetch_one(pool).await
}

/// Claims a spare at `version` inside the provisioning transaction: gone from the stock if
/// that transaction commits, back in it if it rolls back.
pub(crate) async fn claim(conn: &mut PgConnection, version: i32) -> sqlx::Result<Option<TenantId>> {
    let id: Option<i64> = sqlx::query_scalar(
        "delete from public.spare_schemas
         where tenant_id = (select tenant_id from public.spare_schemas
                            where schema_version = $1
                            order by tenant_id limit 1 for update skip locked)
         returning tenant_id",
    )
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(TenantId))
}

/// `create schema tenant_<id>`, empty (the tenant migrations fill it).
pub(crate) async fn create_schema(conn: &mut PgConnection, id: TenantId) -> sqlx::Result<()> {
    sqlx::query(AssertSqlSafe(format!("create schema {}", schema_name(id)))).execute(conn).await?;
    Ok(())
}

async fn drop_schema(conn: &mut PgConnection, id: TenantId) -> sqlx::Result<()> {
    sqlx::query(AssertSqlSafe(format!("drop schema if exists {} cascade", schema_name(id))))
        .execute(conn)
        .await?;
    Ok(())
}

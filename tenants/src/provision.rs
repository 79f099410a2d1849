//! Creating a tenant: its `public.tenants` row, its schema and the tenant migrations, all in
//! one transaction (PostgreSQL DDL is transactional), so a tenant either fully exists or not
//! at all. The schema is a spare built ahead of time ([`crate::spares`]) when one is ready.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use crate::{
    ids::{EntId, TenantId},
    migrate::{MigrationError, TenantMigrator},
    registry::{TENANT_COLUMNS, Tenant},
    spares,
    tx::TenantTx,
};

/// What a new tenant starts with.
#[derive(Clone, Debug)]
pub struct NewTenant {
    pub name: String,
    pub plan: String,
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// A chosen public id (e.g. one kept from a GOFLY installation); generated when `None`.
    pub ent_id: Option<EntId>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("ent_id {0} is already taken")]
    EntIdTaken(EntId),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Provisions a tenant inside `tx` and hands the transaction back scoped to the new schema,
/// so the caller can add the owner and whatever else must exist atomically with the tenant,
/// then commit once. Nothing is visible to anyone until that commit.
///
/// The caller must invalidate the [`crate::Registry`] after committing.
pub async fn provision(
    mut tx: Transaction<'static, Postgres>,
    migrator: &TenantMigrator,
    new: NewTenant,
) -> Result<(Tenant, TenantTx), ProvisionError> {
    let spare = spares::claim(&mut tx, migrator.latest()).await?;
    let tenant = insert_row(&mut tx, &new, spare).await?;
    if spare.is_none() {
        spares::create_schema(&mut tx, tenant.id).await?;
    }
    let mut tx = TenantTx::scope(tx, tenant.id).await?;
    // For a spare this only checks what it has and records the version on the new row.
    migrator.apply(&mut tx).await?;
    let tenant = Tenant { schema_version: migrator.latest(), ..tenant };
    Ok((tenant, tx))
}

/// Inserts the tenant's row, with the spare's id when there is one (an id drawn from the
/// same identity sequence, hence `overriding system value`).
async fn insert_row(
    tx: &mut Transaction<'static, Postgres>,
    new: &NewTenant,
    id: Option<TenantId>,
) -> Result<Tenant, ProvisionError> {
    // A generated id collides with probability ~n/2^50; a few attempts are plenty.
    for _ in 0..5 {
        let ent_id = new.ent_id.clone().unwrap_or_else(EntId::generate);
        let row: Option<Tenant> = sqlx::query_as(AssertSqlSafe(format!(
            "insert into public.tenants (id, ent_id, name, plan, trial_ends_at)
             overriding system value
             values (coalesce($5, nextval(pg_get_serial_sequence('public.tenants', 'id'))),
                     $1, $2, $3, $4)
             on conflict (ent_id) do nothing
             returning {TENANT_COLUMNS}"
        )))
        .bind(&ent_id)
        .bind(&new.name)
        .bind(&new.plan)
        .bind(new.trial_ends_at)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(tenant) => return Ok(tenant),
            None if new.ent_id.is_some() => return Err(ProvisionError::EntIdTaken(ent_id)),
            None => continue,
        }
    }
    Err(ProvisionError::Database(sqlx::Error::Protocol("could not generate a free ent_id".into())))
}

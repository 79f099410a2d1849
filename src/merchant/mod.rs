//! Merchants (tenants as their owners see them): creating one with its owner, atomically.

pub mod audit;
pub mod auto_replies;
pub mod crud;
pub mod hours;
pub mod rich_text;
pub mod settings;
pub mod stats;
pub mod subscription;

use sqlx::PgPool;
use tenants::{NewTenant, ProvisionError, Registry, Tenant, TenantMigrator, provision};

use crate::{
    auth::{store, validate::Email},
    http::{AppError, ResultExt as _},
};

/// Everything needed to create a merchant and its owner.
pub struct NewMerchant {
    pub company: String,
    pub owner_email: Email,
    /// An argon2id PHC string.
    pub owner_password_hash: String,
}

pub struct CreatedMerchant {
    pub tenant: Tenant,
    pub owner_user_id: i64,
    pub owner_agent_id: i64,
}

/// Creates the owner's identity, the tenant (row, schema, baseline), the membership and the
/// owner agent in one transaction. An email that already has an account is a 409
/// `email_taken`; concurrent sign-ups with one email serialize on the unique index and exactly
/// one succeeds.
#[tracing::instrument(name = "merchant.create", skip_all, err(Display))]
pub async fn create(
    pool: &PgPool,
    migrator: &TenantMigrator,
    registry: &Registry,
    new: NewMerchant,
) -> Result<CreatedMerchant, AppError> {
    let mut tx = pool.begin().await?;
    let display_name = new.owner_email.local_part().to_owned();
    let owner_user_id = store::insert_user(
        &mut tx,
        &new.owner_email,
        Some(&new.owner_password_hash),
        &display_name,
    )
    .await
    .on_constraint("users_email_key", || {
        AppError::conflict(
            "email_taken",
            Some("email"),
            "an account with this email already exists; log in instead",
        )
    })?;
    let (tenant, mut tx) = provision(
        tx,
        migrator,
        NewTenant {
            name: new.company,
            plan: billing::TRIAL.to_owned(),
            trial_ends_at: Some(billing::trial_ends_at(chrono::Utc::now())),
            ent_id: None,
        },
    )
    .await
    .map_err(provision_error)?;
    store::add_member(&mut tx, tenant.id, owner_user_id).await?;
    let owner_agent_id = store::insert_agent(
        &mut tx,
        owner_user_id,
        crate::http::Role::Owner.as_str(),
        &display_name,
    )
    .await?;
    tx.commit().await?;
    registry.invalidate_all();
    tracing::info!(tenant = tenant.id.0, ent_id = %tenant.ent_id, "merchant created");
    Ok(CreatedMerchant { tenant, owner_user_id, owner_agent_id })
}

fn provision_error(e: ProvisionError) -> AppError {
    match e {
        ProvisionError::EntIdTaken(id) => {
            AppError::conflict("ent_id_taken", Some("ent_id"), format!("ent_id {id} is taken"))
        }
        ProvisionError::Database(e) => e.into(),
        ProvisionError::Migration(e) => {
            AppError::Internal(anyhow::Error::new(e).context("provisioning a tenant"))
        }
    }
}

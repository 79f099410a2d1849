//! Platform administration: the super-admin console at `/platform` (its own login with a
//! mandatory second factor), its JSON API under `/api/platform/v1`, and the background job
//! that purges deleted merchants.

mod announcements;
pub mod audit;
mod auth;
mod dashboard;
mod export;
mod identity_providers;
pub mod lifecycle;
mod merchants;
pub mod pages;
mod store;
pub mod system;

use sqlx::PgPool;

pub use self::auth::PlatformSession;

/// What the console works with: the session door (pool, registry, keys, plans), the
/// configuration, the mail queue and system settings, the caches and hub a change reaches,
/// uploads (a merchant's export and purge), the schema migrator (spare schemas),
/// billing (a plan assigned by hand changes the merchant's billing state), and the
/// sign-in providers.
#[derive(Clone)]
pub struct Platform {
    pub door: std::sync::Arc<crate::auth::ctx::Door>,
    pub config: std::sync::Arc<Config>,
    pub mail: crate::notify::Mail,
    pub system: std::sync::Arc<system::SystemCache>,
    pub caches: crate::realtime::bus::Caches,
    pub hub: std::sync::Arc<crate::realtime::hub::Hub>,
    pub storage: crate::upload::Storage,
    pub migrator: std::sync::Arc<tenants::TenantMigrator>,
    pub billing: crate::merchant::subscription::Billing,
    /// Sign-in providers (a provider's settings are checked against it before they are saved).
    pub oauth: std::sync::Arc<crate::auth::oauth::Providers>,
}
use crate::{
    auth::{password, validate::Email},
    config::Config,
    http::Routes,
};

pub fn routes<S>(config: &Config) -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Platform: axum::extract::FromRef<S>,
    std::sync::Arc<crate::auth::ctx::Door>: axum::extract::FromRef<S>,
    PgPool: axum::extract::FromRef<S>,
{
    Routes::new()
        .merge(auth::routes(config))
        .merge(pages::routes())
        .merge(dashboard::routes())
        .merge(merchants::routes())
        .merge(export::routes())
        .merge(announcements::routes())
        .merge(system::routes())
        .merge(identity_providers::routes())
        .merge(audit::routes())
}

/// A platform admin account and the password to print once.
pub struct CreatedAdmin {
    pub user_id: i64,
    pub password: String,
    /// The email already had an account (its password was reset).
    pub existed: bool,
}

/// Makes `email` a platform admin with a freshly generated password. An existing user keeps
/// their identity and memberships; their password is replaced by the generated one and their
/// second factor is cleared (this is the break-glass path for a lost authenticator), so the
/// next console login enrols a new one.
pub async fn create_admin(pool: &PgPool, email: &Email) -> anyhow::Result<CreatedAdmin> {
    let generated = password::generate();
    let hash = password::hash(generated.clone()).await?;
    let mut tx = pool.begin().await?;
    let existing: Option<i64> =
        sqlx::query_scalar("select id from public.users where lower(email) = lower($1) for update")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let user_id = match existing {
        Some(id) => {
            // Sockets of ended sessions are left to close on their own (this runs from the
            // command line, outside any server); the sessions themselves end here.
            let changed = crate::auth::accounts::reset_for_console(&mut tx, id, &hash)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            drop(changed.ended);
            id
        }
        None => {
            crate::auth::store::insert_user(&mut tx, email, Some(&hash), email.local_part()).await?
        }
    };
    sqlx::query("insert into public.platform_admins (user_id) values ($1) on conflict do nothing")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(CreatedAdmin { user_id, password: generated, existed: existing.is_some() })
}

pub async fn admin_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from public.platform_admins").fetch_one(pool).await
}

/// The email of platform admin `user_id`, or `None` if they are not (or no longer) one.
pub async fn admin_email(pool: &PgPool, user_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select u.email from public.users u join public.platform_admins p on p.user_id = u.id
         where u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

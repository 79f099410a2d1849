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

use std::sync::Arc;

use axum::http::Method;
use sqlx::PgPool;

pub use self::auth::PlatformSession;
use crate::{
    auth::{AuthRateLimit, limited, password, validate::Email},
    config::Config,
    http::{Routes, Scope},
};

/// What the console works with: the session door (pool, registry, keys, plans), the
/// configuration, the mail queue and system settings, the caches and hub a change reaches,
/// uploads (a merchant's export and purge), the schema migrator (spare schemas),
/// billing (a plan assigned by hand changes the merchant's billing state), and the
/// sign-in providers.
#[derive(Clone)]
pub struct Platform {
    pub door: Arc<crate::auth::ctx::Door>,
    pub config: Arc<Config>,
    pub mail: crate::notify::Mail,
    pub system: Arc<system::SystemCache>,
    pub caches: crate::realtime::bus::Caches,
    pub hub: Arc<crate::realtime::hub::Hub>,
    pub storage: crate::upload::Storage,
    pub migrator: Arc<tenants::TenantMigrator>,
    pub billing: crate::merchant::subscription::Billing,
    /// Sign-in providers (a provider's settings are checked against it before they are saved).
    pub oauth: Arc<crate::auth::oauth::Providers>,
}

/// The console's pages and its API (all `Scope::Platform`: they open a `PlatformSession`),
/// the console's login among them, and the platform audit log.
pub fn routes<S>(config: &Config) -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Platform: axum::extract::FromRef<S>,
    Arc<crate::auth::ctx::Door>: axum::extract::FromRef<S>,
    PgPool: axum::extract::FromRef<S>,
{
    let limit = AuthRateLimit::new(config);
    Routes::new()
        .get("/platform/login", Scope::Platform, auth::login_page)
        .add(Method::POST, "/platform/login", Scope::Platform, limited(&limit, auth::password_form))
        .add(
            Method::POST,
            "/platform/login/code",
            Scope::Platform,
            limited(&limit, auth::code_form),
        )
        .add(
            Method::POST,
            "/platform/login/enrol",
            Scope::Platform,
            limited(&limit, auth::enrol_form),
        )
        .post("/platform/logout", Scope::Platform, auth::logout_form)
        .add(
            Method::POST,
            "/api/platform/v1/login",
            Scope::Platform,
            limited(&limit, auth::login_api),
        )
        .add(
            Method::POST,
            "/api/platform/v1/login/enrol",
            Scope::Platform,
            limited(&limit, auth::enrol_api),
        )
        .get("/platform", Scope::Platform, pages::dashboard_page)
        .get("/platform/merchants", Scope::Platform, pages::merchants_page)
        .get("/platform/merchants/{id}", Scope::Platform, pages::merchant_page)
        .get("/platform/announcements", Scope::Platform, pages::announcements_page)
        .get("/platform/settings", Scope::Platform, pages::settings_page)
        .get("/platform/audit", Scope::Platform, pages::audit_page)
        .get("/api/platform/v1/dashboard", Scope::Platform, dashboard::dashboard_api)
        .get("/api/platform/v1/merchants", Scope::Platform, merchants::list_api)
        .get("/api/platform/v1/merchants/{id}", Scope::Platform, merchants::detail_api)
        .post("/api/platform/v1/merchants/{id}/suspend", Scope::Platform, merchants::suspend)
        .post("/api/platform/v1/merchants/{id}/resume", Scope::Platform, merchants::resume)
        .post("/api/platform/v1/merchants/{id}/plan", Scope::Platform, merchants::change_plan)
        .post("/api/platform/v1/merchants/{id}/trial", Scope::Platform, merchants::extend_trial)
        .post("/api/platform/v1/merchants/{id}/delete", Scope::Platform, merchants::delete)
        .post("/api/platform/v1/merchants/{id}/restore", Scope::Platform, merchants::restore)
        .post(
            "/api/platform/v1/merchants/{id}/impersonate",
            Scope::Platform,
            merchants::impersonate,
        )
        .get("/api/platform/v1/merchants/{id}/export", Scope::Platform, export::export)
        .get("/api/platform/v1/announcements", Scope::Platform, announcements::list_api)
        .post("/api/platform/v1/announcements", Scope::Platform, announcements::create)
        .patch("/api/platform/v1/announcements/{id}", Scope::Platform, announcements::update)
        .delete("/api/platform/v1/announcements/{id}", Scope::Platform, announcements::remove)
        .post(
            "/api/platform/v1/announcements/{id}/publish",
            Scope::Platform,
            announcements::publish,
        )
        .post(
            "/api/platform/v1/announcements/{id}/unpublish",
            Scope::Platform,
            announcements::unpublish,
        )
        .get("/api/platform/v1/settings", Scope::Platform, system::get_api)
        .put("/api/platform/v1/settings", Scope::Platform, system::put_api)
        .post("/api/platform/v1/settings/test_email", Scope::Platform, system::test_email)
        .get("/api/platform/v1/identity_providers", Scope::Platform, identity_providers::list)
        .post("/api/platform/v1/identity_providers", Scope::Platform, identity_providers::create)
        .put(
            "/api/platform/v1/identity_providers/{id}",
            Scope::Platform,
            identity_providers::update,
        )
        .delete(
            "/api/platform/v1/identity_providers/{id}",
            Scope::Platform,
            identity_providers::remove,
        )
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

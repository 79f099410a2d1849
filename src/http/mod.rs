//! HTTP plumbing: application state, the route table, middleware and errors. Features own
//! their handlers and each returns a [`Routes`]; [`router`] merges them and wraps the whole
//! in the cross-cutting layers.

pub mod client;
pub mod csrf;
mod error;
pub mod extract;
pub mod input;
mod middleware;
pub mod openapi;
pub mod rate;
mod routes;
pub mod tenant;

use std::sync::Arc;

use askama::Template;
use axum::{
    Router,
    response::{Html, IntoResponse, Response},
};
use sqlx::PgPool;
use tenants::{Registry, TenantMigrator};

pub use self::{
    client::{ClientMeta, TrustedProxies},
    error::{AppError, BILLING_PAGE, ErrorInfo, FieldErrors, ResultExt, json_error},
    routes::{Role, RouteSpec, Routes, Scope},
    tenant::ResolvedTenant,
};
use crate::{auth::token::TokenKeys, config::Config};

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub tenants: Arc<Registry>,
    pub config: Arc<Config>,
    pub tokens: Arc<TokenKeys>,
    pub migrator: Arc<TenantMigrator>,
    pub proxies: TrustedProxies,
    pub chat: Arc<crate::chat::Chat>,
    pub storage: crate::upload::Storage,
    pub geoip: Arc<crate::geoip::GeoIp>,
    pub system: Arc<crate::platform::system::SystemCache>,
    /// The plans on offer (built-in, changed by the configuration).
    pub plans: Arc<billing::Catalog>,
    /// Stripe's API, when billing goes through Stripe.
    pub stripe: Option<billing::stripe::StripeApi>,
    /// The time billing decisions are made at (tests drive it).
    pub clock: Arc<dyn billing::Clock>,
    /// Wakes the email worker when something was queued.
    pub mail: Arc<tokio::sync::Notify>,
    /// Sign-in providers' endpoints and keys (GitHub, Google, OpenID Connect).
    pub oauth: Arc<crate::auth::oauth::Providers>,
    /// What anonymous visitors may trigger, counted across nodes.
    pub limiter: Arc<rate::Limiter>,
}

impl axum::extract::FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.proxies.clone()
    }
}

/// Every route of the application, with its scope (the isolation test walks this).
pub fn routes(config: &Config) -> Routes {
    Routes::new()
        .merge(crate::site::routes())
        .merge(openapi::routes())
        .merge(crate::metrics::routes())
        .merge(crate::auth::routes(config))
        .merge(crate::agent::routes())
        .merge(crate::chat::routes())
        .merge(crate::visitor::routes())
        .merge(crate::upload::routes())
        .merge(crate::merchant::settings::routes())
        .merge(crate::merchant::auto_replies::routes())
        .merge(crate::merchant::stats::routes())
        .merge(crate::merchant::audit::routes())
        .merge(crate::merchant::subscription::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::platform::routes(config))
}

/// The application router with all middleware.
pub fn router(state: AppState) -> Router {
    let routes = routes(&state.config);
    let api = routes.api_routes();
    middleware::wrap(routes.into_router().layer(axum::Extension(api)), state)
}

/// An askama page as a response (500 with the cause logged if it fails to render).
pub struct Page<T>(pub T);

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => AppError::Internal(anyhow::Error::new(e).context("rendering a page"))
                .into_response(),
        }
    }
}

/// `target` if it is a path on this site: starts with one `/`, no scheme or host, no
/// backslashes or control characters (`//evil.com`, `/\evil.com` and `https://…` are
/// refused). Used for every `next`/`redirect` parameter.
pub fn local_redirect_target(target: &str) -> Option<String> {
    let ok = target.starts_with('/')
        && !target.starts_with("//")
        && !target.contains('\\')
        && !target.chars().any(|c| c.is_control() || c.is_whitespace())
        && target.len() <= 2048;
    ok.then(|| target.to_owned())
}

#[cfg(test)]
mod tests {
    use super::local_redirect_target;

    #[test]
    fn only_local_redirects() {
        assert_eq!(local_redirect_target("/app?x=1").as_deref(), Some("/app?x=1"));
        for bad in [
            "",
            "app",
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "/\t/evil.com",
            "/a b",
            "\\\\evil",
        ] {
            assert_eq!(local_redirect_target(bad), None, "{bad:?}");
        }
    }

    /// Every request clones the state and every socket's task holds it for as long as the
    /// socket is open: large members belong behind an `Arc` (a Stripe client held inline made
    /// it 840 bytes and an idle socket 1.3 KiB dearer).
    #[test]
    fn app_state_stays_small() {
        let size = std::mem::size_of::<super::AppState>();
        assert!(size <= 256, "AppState is {size} bytes");
    }
}

//! HTTP plumbing: errors, extractors that need no feature (client, CSRF, input, the visitor
//! door's tenant), rate limits, the route-table type and the cross-cutting layers. It knows
//! no feature: features own their handlers and each returns a [`Routes`]; the composition
//! root (`startup`) merges them, gives them the state and wraps the whole in [`wrap`].

pub mod client;
pub mod csrf;
pub mod csv;
mod error;
pub mod extract;
pub mod input;
pub mod middleware;
pub mod openapi;
pub mod rate;
mod routes;
pub mod tenant;

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

pub use self::{
    client::{ClientMeta, TrustedProxies},
    error::{AppError, BILLING_PAGE, ErrorInfo, FieldErrors, ResultExt, json_error},
    middleware::{Options, wrap},
    routes::{Role, RouteSpec, Routes, Scope},
    tenant::ResolvedTenant,
};

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
}

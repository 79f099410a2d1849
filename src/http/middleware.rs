//! Cross-cutting layers: request span, client resolution, security headers, body limits,
//! panic containment, and content negotiation for errors (HTML pages for browsers, the JSON
//! shape for everything else).

use askama::Template;
use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{self as axum_mw, Next},
    response::{Html, IntoResponse, Response},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::{
        CompressionLayer,
        predicate::{DefaultPredicate, NotForContentType, Predicate as _},
    },
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use super::{AppError, ErrorInfo, TrustedProxies, json_error};
use crate::i18n::Lang;

/// Largest request body accepted anywhere unless a route allows more (uploads will).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the layers need to know of the application.
#[derive(Clone, Debug)]
pub struct Options {
    /// Served over HTTPS (adds Strict-Transport-Security).
    pub https: bool,
    /// Paths whose request bodies may be larger than [`MAX_BODY_BYTES`], with their limit.
    pub larger_bodies: &'static [(&'static str, usize)],
    /// Whose `X-Forwarded-For` to believe.
    pub proxies: TrustedProxies,
}

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Wraps `router` (its state already given) in the cross-cutting layers.
pub fn wrap(router: Router, options: Options) -> Router {
    let Options { https, larger_bodies, proxies } = options;
    let mut router = router
        .fallback(not_found)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", |p| p.as_str());
                    tracing::info_span!(
                        "http.request",
                        method = %request.method(),
                        route,
                        tenant = tracing::field::Empty,
                        user = tracing::field::Empty,
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(axum_mw::from_fn(crate::metrics::track_http))
        .layer(axum_mw::from_fn(move |request: Request, next: Next| {
            limit_body(larger_bodies, request, next)
        }))
        .layer(axum_mw::from_fn(crate::i18n::remember_choice))
        .layer(header_layer(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::REFERRER_POLICY, "strict-origin-when-cross-origin"))
        .layer(header_layer(
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ))
        .layer(header_layer(HeaderName::from_static("cross-origin-opener-policy"), "same-origin"));
    if https {
        router = router.layer(header_layer(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
    }
    router
        .layer(axum_mw::from_fn(negotiate_errors))
        // Pages, scripts and JSON travel gzipped when the client accepts it (the widget
        // loader is fetched by every page of every merchant's site). Archives (merchant
        // exports) are compressed already.
        .layer(CompressionLayer::new().compress_when(
            DefaultPredicate::new().and(NotForContentType::const_new("application/gzip")),
        ))
        .layer(axum_mw::from_fn_with_state(proxies, super::client::resolve_client))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            AppError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
}

/// Sets a header unless the route already did (a route may relax the CSP, e.g. for frames).
fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Request bodies are limited to [`MAX_BODY_BYTES`], the `larger` paths (uploads) to their
/// own limit: a declared length over the limit is refused (413) before anything is read,
/// and a body that turns out longer fails when it passes the limit.
async fn limit_body(
    larger: &'static [(&'static str, usize)],
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let limit = larger.iter().find(|(p, _)| *p == path).map_or(MAX_BODY_BYTES, |(_, l)| *l);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return AppError::PayloadTooLarge.into_response();
    }
    let request =
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

async fn not_found() -> AppError {
    AppError::NotFound
}

/// Gives every error response the right body: a page for browsers asking for HTML, the JSON
/// error shape for everything else, including the plain-text rejections of axum and
/// tower-http (405, 413, …).
async fn negotiate_errors(lang: Lang, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let machine = ["/api/", "/ws/", "/static/"].iter().any(|p| path.starts_with(p))
        || matches!(path, "/healthz" | "/readyz");
    let wants_html = !machine
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let rendered_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let info = response.extensions().get::<ErrorInfo>().cloned();
    // A handler's own page (a form with field errors) and a JSON error for an API client
    // are already right.
    if rendered_page || (!wants_html && info.is_some()) {
        return response;
    }
    let code = info.as_ref().map_or_else(|| code_for(status), |i| i.code);
    let (parts, _) = response.into_parts();
    let mut fresh = if wants_html {
        error_page(lang, status, code)
    } else {
        let message = status.canonical_reason().unwrap_or("error").to_lowercase();
        json_error(status, code, &message, None)
    };
    *fresh.status_mut() = status;
    for name in [header::RETRY_AFTER, header::ALLOW, header::SET_COOKIE, header::WWW_AUTHENTICATE] {
        for value in parts.headers.get_all(&name) {
            fresh.headers_mut().append(name.clone(), value.clone());
        }
    }
    fresh
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: Lang,
    status: u16,
    title: &'a str,
    message: &'a str,
    code: &'a str,
}

/// The readable error page for `code`, in the reader's language.
pub fn error_page(lang: Lang, status: StatusCode, code: &str) -> Response {
    let key = match code {
        "tenant_not_found" | "tenant_suspended" | "rate_limited" | "unavailable"
        | "method_not_allowed" | "payload_too_large" => code,
        _ => match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        },
    };
    let title = lang.tr(&format!("error.{key}")).to_owned();
    let message = lang.tr(&format!("error.{key}_body")).to_owned();
    let page = ErrorPage { lang, status: status.as_u16(), title: &title, message: &message, code };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{} {code}", status.as_u16())).into_response(),
    }
}

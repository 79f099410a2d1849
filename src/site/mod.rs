//! The public site: the landing page, static assets (compiled into the binary) and the
//! health endpoints.

use std::sync::Arc;

use askama::Template;
use axum::extract::FromRef;
use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;
use serde_json::json;
use sqlx::PgPool;
use tenants::{Registry, TenantMigrator};

use crate::{
    http::{Page, ResolvedTenant, Routes, Scope},
    i18n::Lang,
    platform::system::SystemCache,
    realtime::hub::Hub,
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Registry>: FromRef<S>,
    Arc<SystemCache>: FromRef<S>,
    Arc<TenantMigrator>: FromRef<S>,
    Arc<Hub>: FromRef<S>,
    PgPool: FromRef<S>,
{
    Routes::new()
        .get("/", Scope::Public, landing)
        .get("/static/{*path}", Scope::Public, static_file)
        .get("/healthz", Scope::Public, healthz)
        .get("/readyz", Scope::Public, readyz)
        .get("/api/v1/public/merchant", Scope::Public, merchant_profile)
}

/// What anyone may know about a merchant named by `ent_id` (or the Host): what the chat
/// page and widget show before a conversation starts.
async fn merchant_profile(ResolvedTenant(tenant): ResolvedTenant) -> Json<serde_json::Value> {
    Json(json!({ "ent_id": tenant.ent_id, "name": tenant.name }))
}

#[derive(Template)]
#[template(path = "site/landing.html")]
struct Landing {
    lang: Lang,
    /// Title, description, keywords and copyright from the system settings.
    site: std::sync::Arc<crate::platform::system::SystemSettings>,
}

async fn landing(
    State(system): State<Arc<SystemCache>>,
    lang: Lang,
) -> Result<Page<Landing>, crate::http::AppError> {
    Ok(Page(Landing { lang, site: system.get().await? }))
}

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Serves `static/` from inside the binary, with a content type from the extension, a
/// validator (ETag from the embedded hash) and a short cache lifetime.
async fn static_file(Path(path): Path<String>, headers: axum::http::HeaderMap) -> Response {
    // GOFLY's embed code loads its widget from this path; ours understands that code.
    let path = if path == "js/gofly-front.js" { "js/widget.js" } else { path.as_str() };
    let Some(file) = Assets::get(path) else {
        return crate::http::AppError::NotFound.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = file.metadata.mimetype();
    let mut response = file.data.into_owned().into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and no schema is behind this binary.
/// 200 `{"status":"ready"}`, or 503 with the usual error shape, whose code says what is
/// wrong: `migrations_pending`, `database_unreachable`, `database_timeout` or
/// `broker_unreachable` (several nodes, and NATS is out of reach).
async fn readyz(
    State(db): State<PgPool>,
    State(migrator): State<Arc<TenantMigrator>>,
    State(hub): State<Arc<Hub>>,
) -> Response {
    let check = async {
        let platform = crate::db::platform_pending(&db).await?;
        // The tenants' bookkeeping may be among what is pending: checked once it is not.
        let tenants = match platform.is_empty() {
            true => migrator.tenants_behind(&db).await?.len(),
            false => 0,
        };
        Ok::<_, sqlx::Error>((platform.len(), tenants))
    };
    let unavailable = |code, message: &str| {
        crate::http::json_error(StatusCode::SERVICE_UNAVAILABLE, code, message, None)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), check).await {
        Ok(Ok((0, 0))) if hub.bus().is_some_and(|bus| !bus.is_connected()) => {
            unavailable("broker_unreachable", "the NATS server is out of reach; reconnecting")
        }
        Ok(Ok((0, 0))) => Json(json!({ "status": "ready" })).into_response(),
        Ok(Ok((platform, tenants))) => unavailable(
            "migrations_pending",
            &format!(
                "{platform} platform migration(s) pending and {tenants} tenant schema(s) behind: run `kefu migrate`"
            ),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            unavailable("database_unreachable", "the database does not answer")
        }
        Err(_) => unavailable("database_timeout", "the database did not answer within 3 s"),
    }
}

//! The webhooks API (admins): register, change and remove a merchant's webhooks, read their
//! delivery log, send a test event.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use tenants::TenantId;

use super::{EVENTS, Webhooks, guard, store};
use crate::{
    auth::ctx::{Admin, Ctx, Door},
    http::{
        AppError, Routes, Scope,
        extract::{ApiJson, PathId},
    },
    ids::WebhookId,
    merchant::crud::{self, Action, Kept},
    realtime::bus::{Caches, Invalidation},
};

/// Most webhooks per merchant.
const MAX_WEBHOOKS: i64 = 10;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Webhooks>: FromRef<S>,
    Caches: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/webhooks", Scope::Tenant, list)
        .admin()
        .post("/api/v1/webhooks", Scope::Tenant, create)
        .admin()
        .feature(billing::Feature::Webhooks)
        .patch("/api/v1/webhooks/{id}", Scope::Tenant, update)
        .admin()
        .delete("/api/v1/webhooks/{id}", Scope::Tenant, remove)
        .admin()
        .get("/api/v1/webhooks/{id}/deliveries", Scope::Tenant, deliveries)
        .admin()
        .post("/api/v1/webhooks/{id}/test", Scope::Tenant, test)
        .admin()
        .feature(billing::Feature::Webhooks)
}

async fn list(Ctx { mut tx, .. }: Ctx<Admin>) -> Result<Json<Value>, AppError> {
    let hooks = store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(json!({ "webhooks": hooks, "events": EVENTS })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: String,
}

fn check_events(events: &[String]) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(AppError::field(
                "events",
                format!("{e:?} is not one of {}", EVENTS.join(", ")),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    if out.is_empty() {
        return Err(AppError::field("events", "choose at least one event"));
    }
    Ok(out)
}

fn check_url(hooks: &Webhooks, raw: &str) -> Result<String, AppError> {
    guard::check_url(raw, hooks.allow_private).map_err(|why| AppError::field("url", why))
}

/// The merchant's webhooks, as a list admins keep; the delivery side caches who wants what.
enum Hooks {}

impl Kept for Hooks {
    type Id = WebhookId;
    type New = store::New;
    type Change = store::Change;
    type Row = store::Webhook;
    const NOUN: &'static str = "webhook";
    const MAX: i64 = MAX_WEBHOOKS;
    const PLURAL: &'static str = "webhooks";

    fn label(row: &store::Webhook) -> &str {
        &row.url
    }
    fn detail(row: &store::Webhook, action: Action) -> Value {
        match action {
            Action::Create => json!({ "events": row.events }),
            Action::Update => json!({ "enabled": row.enabled }),
        }
    }
    fn cached(tenant: TenantId) -> Option<Invalidation> {
        Some(Invalidation::Webhooks(tenant.0))
    }
    async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
        store::count(conn).await
    }
    async fn insert(conn: &mut PgConnection, new: store::New) -> sqlx::Result<store::Webhook> {
        store::create(conn, &new).await
    }
    async fn update(
        conn: &mut PgConnection,
        id: WebhookId,
        change: store::Change,
    ) -> sqlx::Result<Option<store::Webhook>> {
        store::update(conn, id, change).await
    }
    async fn delete(conn: &mut PgConnection, id: WebhookId) -> sqlx::Result<Option<String>> {
        store::delete(conn, id).await
    }
}

async fn create(
    State(hooks): State<Arc<Webhooks>>,
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    ApiJson(req): ApiJson<NewWebhook>,
) -> Result<Response, AppError> {
    let url = check_url(&hooks, &req.url)?;
    let events = check_events(&req.events)?;
    let description = crate::http::input::text("description", &req.description, 200, false, false)?;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    );
    crud::create::<Hooks>(ctx, &caches, store::New { url, events, secret, description }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookChange {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

async fn update(
    State(hooks): State<Arc<Webhooks>>,
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    PathId(id): PathId<WebhookId>,
    ApiJson(req): ApiJson<WebhookChange>,
) -> Result<Json<store::Webhook>, AppError> {
    let url = req.url.as_deref().map(|u| check_url(&hooks, u)).transpose()?;
    let events = req.events.as_deref().map(check_events).transpose()?;
    let description = req
        .description
        .as_deref()
        .map(|d| crate::http::input::text("description", d, 200, false, false))
        .transpose()?;
    let change = store::Change { url, events, description, enabled: req.enabled };
    crud::update::<Hooks>(ctx, &caches, id, change).await
}

async fn remove(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    PathId(id): PathId<WebhookId>,
) -> Result<StatusCode, AppError> {
    crud::remove::<Hooks>(ctx, &caches, id).await
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    limit: Option<i64>,
}

/// The delivery log of one webhook, newest first.
async fn deliveries(
    Ctx { mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<WebhookId>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    if store::enabled(&mut tx, id).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let rows = store::deliveries(&mut tx, id, limit).await?;
    tx.commit().await?;
    Ok(Json(json!({ "deliveries": rows })))
}

/// Sends a `ping` event to one webhook now (to check the endpoint and the signature).
async fn test(
    State(hooks): State<Arc<Webhooks>>,
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<WebhookId>,
) -> Result<Response, AppError> {
    let enabled = store::enabled(&mut tx, id).await?;
    tx.commit().await?;
    match enabled {
        None => return Err(AppError::NotFound),
        Some(false) => {
            return Err(AppError::conflict("webhook_disabled", None, "enable the webhook first"));
        }
        Some(true) => {}
    }
    caches.invalidate(Invalidation::Webhooks(session.tenant.id.0)).await;
    let data = json!({ "message": "A test event from kefu.", "ent_id": session.tenant.ent_id });
    let ids =
        hooks.queue(session.tenant.id, "ping", data, Some(id)).await.map_err(AppError::Internal)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery_id": ids.first() }))).into_response())
}

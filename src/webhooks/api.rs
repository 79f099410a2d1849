//! The webhooks API (admins): register, change and remove a merchant's webhooks, read their
//! delivery log, send a test event.

use crate::ids::WebhookId;
use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::Arc;

use axum::extract::FromRef;

use super::{EVENTS, Webhooks, guard, store};
use crate::{
    auth::ctx::{Admin, Ctx, Door},
    http::{
        AppError, Routes, Scope,
        extract::{ApiJson, PathId},
    },
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

async fn create(
    State(hooks): State<Arc<Webhooks>>,
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(req): ApiJson<NewWebhook>,
) -> Result<Response, AppError> {
    let url = check_url(&hooks, &req.url)?;
    let events = check_events(&req.events)?;
    let description = crate::http::input::text("description", &req.description, 200, false, false)?;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    );
    // Two creations at once must not both see room for one more.
    crate::db::tenant_lock(&mut tx, "kefu.webhooks").await?;
    if store::count(&mut tx).await? >= MAX_WEBHOOKS {
        return Err(AppError::conflict(
            "too_many",
            None,
            format!("at most {MAX_WEBHOOKS} webhooks"),
        ));
    }
    let new = store::New { url, events, secret, description };
    let hook = store::create(&mut tx, &new).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "webhook.create",
        &hook.url,
        json!({ "events": hook.events }),
    )
    .await?;
    caches.invalidate(Invalidation::Webhooks(session.tenant.id.0)).await;
    Ok((StatusCode::CREATED, Json(hook)).into_response())
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
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<WebhookId>,
    ApiJson(req): ApiJson<WebhookChange>,
) -> Result<Json<Value>, AppError> {
    let url = req.url.as_deref().map(|u| check_url(&hooks, u)).transpose()?;
    let events = req.events.as_deref().map(check_events).transpose()?;
    let description = req
        .description
        .as_deref()
        .map(|d| crate::http::input::text("description", d, 200, false, false))
        .transpose()?;
    let change = store::Change { url, events, description, enabled: req.enabled };
    let hook = store::update(&mut tx, id, change).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "webhook.update",
        &hook.url,
        json!({ "enabled": hook.enabled }),
    )
    .await?;
    caches.invalidate(Invalidation::Webhooks(session.tenant.id.0)).await;
    Ok(Json(serde_json::to_value(hook).unwrap_or_default()))
}

async fn remove(
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<WebhookId>,
) -> Result<StatusCode, AppError> {
    let url = store::delete(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(tx, &session, "webhook.delete", &url, json!({})).await?;
    caches.invalidate(Invalidation::Webhooks(session.tenant.id.0)).await;
    Ok(StatusCode::NO_CONTENT)
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

//! Outgoing webhooks: merchants register URLs for events (`conversation.created`,
//! `conversation.assigned`, `conversation.closed`, `message.created`, `visitor.created`);
//! each event becomes a delivery in the tenant's queue (`webhook_deliveries`), posted by a
//! worker (`deliver`) with a Stripe-style signature and retried with backoff until it is
//! taken or given up. `guard` keeps deliveries out of the platform's own network.
//!
//! Emitting is off the hot path: which events a merchant subscribes to is cached, so a
//! merchant without webhooks costs one cache lookup per batch of messages; queueing runs in
//! a task of its own after the event happened.

pub mod deliver;
pub mod guard;

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use tenants::{TenantId, TenantTx};

use crate::{
    auth::ctx::{Admin, Ctx},
    http::{AppError, Routes, Scope, extract::ApiJson, input::path_id},
    startup::AppState,
};

/// The events a webhook may subscribe to.
pub const EVENTS: &[&str] = &[
    "conversation.created",
    "conversation.assigned",
    "conversation.closed",
    "message.created",
    "visitor.created",
];

/// Most webhooks per merchant.
const MAX_WEBHOOKS: i64 = 10;

pub fn routes() -> Routes<AppState> {
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

/// A merchant's subscriptions: (webhook id, events).
type Subscriptions = Arc<Vec<(i64, Vec<String>)>>;

/// The webhook machinery of this process.
pub struct Webhooks {
    pool: PgPool,
    subscriptions: Cache<TenantId, Subscriptions>,
    /// Wakes the delivery worker.
    pub wake: Arc<tokio::sync::Notify>,
    /// Deliveries may go to private and loopback addresses (configuration).
    pub allow_private: bool,
}

impl Webhooks {
    pub fn new(pool: PgPool, allow_private: bool) -> Self {
        Self {
            pool,
            subscriptions: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            wake: Arc::default(),
            allow_private,
        }
    }

    /// Forgets a merchant's subscriptions (after a change).
    pub async fn invalidate(&self, tenant: TenantId) {
        self.subscriptions.invalidate(&tenant);
    }

    /// The merchant's subscriptions, cached. (A plain cache, read without waiting on the
    /// hot path; two tasks missing at once both load, which is harmless.)
    async fn load(&self, tenant: TenantId) -> sqlx::Result<Subscriptions> {
        if let Some(subs) = self.subscriptions.get(&tenant) {
            return Ok(subs);
        }
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let rows: Vec<(i64, Vec<String>)> =
            sqlx::query_as("select id, events from webhooks where enabled order by id")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let subs = Arc::new(rows);
        self.subscriptions.insert(tenant, subs.clone());
        Ok(subs)
    }

    /// Queues `event` for the merchant's webhooks that want it, in the background. `data`
    /// is built only when someone listens.
    pub fn emit(
        self: &Arc<Self>,
        tenant: TenantId,
        event: &'static str,
        data: impl FnOnce() -> Value,
    ) {
        // Known to have no webhooks: nothing to do, not even a task.
        if self.subscriptions.get(&tenant).is_some_and(|s| s.is_empty()) {
            return;
        }
        let data = data();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.queue(tenant, event, data, None).await {
                tracing::warn!(tenant = tenant.0, event, error = %e, "queueing a webhook delivery failed");
            }
        });
    }

    /// Writes one delivery per interested webhook (or only `only`). Returns their ids.
    async fn queue(
        &self,
        tenant: TenantId,
        event: &str,
        data: Value,
        only: Option<i64>,
    ) -> anyhow::Result<Vec<i64>> {
        let subs = self.load(tenant).await?;
        let targets: Vec<i64> = subs
            .iter()
            .filter(|(id, events)| only.map_or(events.iter().any(|e| e == event), |o| o == *id))
            .map(|(id, _)| *id)
            .collect();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let event_id = format!("evt_{}", hex::encode(rand::random::<[u8; 12]>()));
        let payload = json!({
            "id": event_id, "type": event, "created_at": chrono::Utc::now(), "data": data,
        });
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "insert into webhook_deliveries (webhook_id, event_id, event, payload)
             select unnest($1::bigint[]), $2, $3, $4 returning id",
        )
        .bind(&targets)
        .bind(&event_id)
        .bind(event)
        .bind(&payload)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "insert into public.webhook_queue (tenant_id, next_attempt_at) values ($1, now())
             on conflict (tenant_id) do update set next_attempt_at = least(public.webhook_queue.next_attempt_at, now())",
        )
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(ids)
    }
}

/// Every stored message is a `message.created` event (the payload is built only when the
/// merchant has webhooks).
impl crate::realtime::writer::AfterStore for Arc<Webhooks> {
    fn stored(&self, tenant: TenantId, message: crate::realtime::protocol::MessageOut) {
        self.emit(tenant, "message.created", move || serde_json::json!({ "message": message }));
    }
}

// ---------------------------------------------------------------------------------------
// The API (admins)

#[derive(Serialize, sqlx::FromRow)]
struct WebhookOut {
    id: i64,
    url: String,
    events: Vec<String>,
    /// For verifying the signature of deliveries.
    secret: String,
    description: String,
    enabled: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, url, events, secret, description, enabled, created_at";

async fn list(Ctx { mut tx, .. }: Ctx<Admin>) -> Result<Json<Value>, AppError> {
    let hooks: Vec<WebhookOut> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from webhooks order by id")))
            .fetch_all(&mut *tx)
            .await?;
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

fn check_url(state: &AppState, raw: &str) -> Result<String, AppError> {
    guard::check_url(raw, state.chat.webhooks.allow_private)
        .map_err(|why| AppError::field("url", why))
}

async fn create(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(req): ApiJson<NewWebhook>,
) -> Result<Response, AppError> {
    let url = check_url(&state, &req.url)?;
    let events = check_events(&req.events)?;
    let description = crate::http::input::text("description", &req.description, 200, false, false)?;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    );
    // Two creations at once must not both see room for one more.
    crate::db::tenant_lock(&mut tx, "kefu.webhooks").await?;
    let count: i64 =
        sqlx::query_scalar("select count(*) from webhooks").fetch_one(&mut *tx).await?;
    if count >= MAX_WEBHOOKS {
        return Err(AppError::conflict(
            "too_many",
            None,
            format!("at most {MAX_WEBHOOKS} webhooks"),
        ));
    }
    let hook: WebhookOut = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into webhooks (url, events, secret, description) values ($1, $2, $3, $4) returning {COLUMNS}"
    )))
    .bind(&url)
    .bind(&events)
    .bind(&secret)
    .bind(&description)
    .fetch_one(&mut *tx)
    .await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "webhook.create",
        &url,
        json!({ "events": events }),
    )
    .await?;
    state.invalidate(crate::realtime::bus::Invalidation::Webhooks(session.tenant.id.0)).await;
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
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WebhookChange>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    let url = req.url.as_deref().map(|u| check_url(&state, u)).transpose()?;
    let events = req.events.as_deref().map(check_events).transpose()?;
    let description = req
        .description
        .as_deref()
        .map(|d| crate::http::input::text("description", d, 200, false, false))
        .transpose()?;
    let hook: Option<WebhookOut> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update webhooks set url = coalesce($2, url), events = coalesce($3, events),
                description = coalesce($4, description), enabled = coalesce($5, enabled), updated_at = now()
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(&url)
    .bind(&events)
    .bind(&description)
    .bind(req.enabled)
    .fetch_optional(&mut *tx)
    .await?;
    let hook = hook.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "webhook.update",
        &hook.url,
        json!({ "enabled": hook.enabled }),
    )
    .await?;
    state.invalidate(crate::realtime::bus::Invalidation::Webhooks(session.tenant.id.0)).await;
    Ok(Json(serde_json::to_value(hook).unwrap_or_default()))
}

async fn remove(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = path_id(&id)?;
    let url: Option<String> =
        sqlx::query_scalar("delete from webhooks where id = $1 returning url")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let url = url.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(tx, &session, "webhook.delete", &url, json!({})).await?;
    state.invalidate(crate::realtime::bus::Invalidation::Webhooks(session.tenant.id.0)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, sqlx::FromRow)]
struct DeliveryOut {
    id: i64,
    event_id: String,
    event: String,
    status: String,
    attempts: i32,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    limit: Option<i64>,
}

/// The delivery log of one webhook, newest first.
async fn deliveries(
    Ctx { mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, AppError> {
    let id = path_id(&id)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let exists: bool = sqlx::query_scalar("select exists (select 1 from webhooks where id = $1)")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Err(AppError::NotFound);
    }
    let rows: Vec<DeliveryOut> = sqlx::query_as(
        "select id, event_id, event, status, attempts, next_attempt_at, last_status_code, last_error, delivered_at, created_at
         from webhook_deliveries where webhook_id = $1 order by id desc limit $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "deliveries": rows })))
}

/// Sends a `ping` event to one webhook now (to check the endpoint and the signature).
async fn test(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = path_id(&id)?;
    let enabled: Option<bool> = sqlx::query_scalar("select enabled from webhooks where id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    match enabled {
        None => return Err(AppError::NotFound),
        Some(false) => {
            return Err(AppError::conflict("webhook_disabled", None, "enable the webhook first"));
        }
        Some(true) => {}
    }
    state.invalidate(crate::realtime::bus::Invalidation::Webhooks(session.tenant.id.0)).await;
    let data = json!({ "message": "A test event from kefu.", "ent_id": session.tenant.ent_id });
    let ids = state
        .chat
        .webhooks
        .queue(session.tenant.id, "ping", data, Some(id))
        .await
        .map_err(AppError::Internal)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery_id": ids.first() }))).into_response())
}

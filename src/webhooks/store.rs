//! The webhooks' queries: the merchant's webhooks and their deliveries (tables `webhooks`
//! and `webhook_deliveries` of the tenant's schema), and the platform's queue of merchants
//! with deliveries due (`public.webhook_queue`). The delivery worker's own queries are in
//! `deliver`.

use crate::ids::WebhookId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use tenants::TenantId;

#[derive(Serialize, sqlx::FromRow)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    /// For verifying the signature of deliveries.
    pub secret: String,
    pub description: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A new webhook.
pub struct New {
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub description: String,
}

/// The fields a change sets (`None`: left as they are).
pub struct Change {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: WebhookId,
    pub event_id: String,
    pub event: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, url, events, secret, description, enabled, created_at";

/// The enabled webhooks and the events each wants.
#[tracing::instrument(name = "db.webhooks.subscriptions", skip_all)]
pub async fn subscriptions(conn: &mut PgConnection) -> sqlx::Result<Vec<(WebhookId, Vec<String>)>> {
    sqlx::query_as("select id, events from webhooks where enabled order by id")
        .fetch_all(conn)
        .await
}

/// One delivery of `payload` per webhook in `targets`, due now; their ids. The merchant is
/// put in (or moved ahead in) the platform's queue of deliveries due.
#[tracing::instrument(name = "db.webhooks.queue", skip_all, fields(targets = targets.len()))]
pub async fn queue(
    conn: &mut PgConnection,
    tenant: TenantId,
    targets: &[WebhookId],
    (event_id, event): (&str, &str),
    payload: &Value,
) -> sqlx::Result<Vec<i64>> {
    let ids = sqlx::query_scalar(
        "insert into webhook_deliveries (webhook_id, event_id, event, payload)
         select unnest($1::bigint[]), $2, $3, $4 returning id",
    )
    .bind(targets)
    .bind(event_id)
    .bind(event)
    .bind(payload)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "insert into public.webhook_queue (tenant_id, next_attempt_at) values ($1, now())
         on conflict (tenant_id) do update set next_attempt_at = least(public.webhook_queue.next_attempt_at, now())",
    )
    .bind(tenant.0)
    .execute(conn)
    .await?;
    Ok(ids)
}

#[tracing::instrument(name = "db.webhooks.list", skip_all)]
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Webhook>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from webhooks order by id")))
        .fetch_all(conn)
        .await
}

#[tracing::instrument(name = "db.webhooks.count", skip_all)]
pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from webhooks").fetch_one(conn).await
}

#[tracing::instrument(name = "db.webhooks.create", skip_all)]
pub async fn create(conn: &mut PgConnection, new: &New) -> sqlx::Result<Webhook> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into webhooks (url, events, secret, description) values ($1, $2, $3, $4) returning {COLUMNS}"
    )))
    .bind(&new.url)
    .bind(&new.events)
    .bind(&new.secret)
    .bind(&new.description)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.webhooks.update", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    id: WebhookId,
    change: Change,
) -> sqlx::Result<Option<Webhook>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update webhooks set url = coalesce($2, url), events = coalesce($3, events),
                description = coalesce($4, description), enabled = coalesce($5, enabled), updated_at = now()
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(change.url)
    .bind(change.events)
    .bind(change.description)
    .bind(change.enabled)
    .fetch_optional(conn)
    .await
}

/// Deletes a webhook (its deliveries go with it); its URL, if it was there.
#[tracing::instrument(name = "db.webhooks.delete", skip_all)]
pub async fn delete(conn: &mut PgConnection, id: WebhookId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("delete from webhooks where id = $1 returning url")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Whether webhook `id` is enabled; `None` when there is none.
#[tracing::instrument(name = "db.webhooks.enabled", skip_all)]
pub async fn enabled(conn: &mut PgConnection, id: WebhookId) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("select enabled from webhooks where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The latest `limit` deliveries of webhook `id`, newest first.
#[tracing::instrument(name = "db.webhooks.deliveries", skip_all)]
pub async fn deliveries(
    conn: &mut PgConnection,
    id: WebhookId,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "select id, event_id, event, status, attempts, next_attempt_at, last_status_code, last_error, delivered_at, created_at
         from webhook_deliveries where webhook_id = $1 order by id desc limit $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

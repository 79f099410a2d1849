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

// ---------------------------------------------------------------------------------------
// The delivery worker: the platform's queue of merchants with deliveries due, and each
// merchant's own due deliveries.

/// Merchants with deliveries due, the longest waiting first.
#[tracing::instrument(name = "db.webhook_queue.due", skip_all)]
pub async fn due_tenants(pool: &sqlx::PgPool) -> sqlx::Result<Vec<TenantId>> {
    sqlx::query_scalar(
        "select tenant_id from public.webhook_queue where next_attempt_at <= now() order by next_attempt_at limit 100",
    )
    .fetch_all(pool)
    .await
}

/// Takes the merchant's place in the queue for this transaction (another worker skips
/// it); false if it is not due or taken.
#[tracing::instrument(name = "db.webhook_queue.claim", skip_all)]
pub async fn claim_queue(conn: &mut PgConnection, tenant: TenantId) -> sqlx::Result<bool> {
    let claimed: Option<TenantId> = sqlx::query_scalar(
        "select tenant_id from public.webhook_queue where tenant_id = $1 and next_attempt_at <= now()
         for update skip locked",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Takes the merchant off the queue (nothing pending, or the merchant is gone).
#[tracing::instrument(name = "db.webhook_queue.drop", skip_all)]
pub async fn drop_queue(conn: &mut PgConnection, tenant: TenantId) -> sqlx::Result<()> {
    sqlx::query("delete from public.webhook_queue where tenant_id = $1")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// The merchant's next attempt is due at `at`.
#[tracing::instrument(name = "db.webhook_queue.reschedule", skip_all)]
pub async fn reschedule_queue(
    conn: &mut PgConnection,
    tenant: TenantId,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("update public.webhook_queue set next_attempt_at = $2 where tenant_id = $1")
        .bind(tenant)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery to attempt now, with its webhook's endpoint.
#[derive(sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub event: String,
    pub payload: Value,
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    pub enabled: bool,
}

/// Up to `limit` deliveries due now, oldest first.
#[tracing::instrument(name = "db.webhook_deliveries.due", skip_all)]
pub async fn due(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Due>> {
    sqlx::query_as(
        "select d.id, d.event, d.payload, d.attempts, w.url, w.secret, w.enabled
         from webhook_deliveries d join webhooks w on w.id = d.webhook_id
         where d.status = 'pending' and d.next_attempt_at <= now()
         order by d.id limit $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Delivery `id` was taken by its endpoint (HTTP `code`) at attempt `attempts`.
#[tracing::instrument(name = "db.webhook_deliveries.delivered", skip_all)]
pub async fn delivered(
    conn: &mut PgConnection,
    id: i64,
    attempts: i32,
    code: u16,
) -> sqlx::Result<()> {
    sqlx::query(
        "update webhook_deliveries set status = 'delivered', attempts = $2, last_status_code = $3,
            last_error = null, delivered_at = now() where id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(i32::from(code))
    .execute(conn)
    .await?;
    Ok(())
}

/// What became of a failed attempt.
pub struct Failure<'a> {
    pub attempts: i32,
    pub code: Option<u16>,
    pub error: &'a str,
    /// No more attempts (`failed`); otherwise the next one is in `retry_in_secs`.
    pub give_up: bool,
    pub retry_in_secs: i64,
}

/// Delivery `id` failed this time.
#[tracing::instrument(name = "db.webhook_deliveries.failed", skip_all)]
pub async fn failed(conn: &mut PgConnection, id: i64, f: Failure<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "update webhook_deliveries set attempts = $2, last_status_code = $3, last_error = $4,
            status = case when $5 then 'failed' else 'pending' end,
            next_attempt_at = now() + make_interval(secs => $6)
         where id = $1",
    )
    .bind(id)
    .bind(f.attempts)
    .bind(f.code.map(i32::from))
    .bind(f.error.chars().take(500).collect::<String>())
    .bind(f.give_up)
    .bind(f.retry_in_secs as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets finished deliveries older than `days` (a thousand at a time), and says when the
/// next pending one is due, if any.
#[tracing::instrument(name = "db.webhook_deliveries.prune", skip_all)]
pub async fn prune_and_next(
    conn: &mut PgConnection,
    days: i32,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query(
        "delete from webhook_deliveries where id in (
            select id from webhook_deliveries
            where status <> 'pending' and created_at < now() - make_interval(days => $1)
            limit 1000)",
    )
    .bind(days)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "select min(next_attempt_at) from webhook_deliveries where status = 'pending'",
    )
    .fetch_one(conn)
    .await
}

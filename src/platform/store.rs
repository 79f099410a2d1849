//! The platform console's own queries over `public`: system settings, and the dashboard's
//! counts (merchants, usage, subscriptions).

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

#[tracing::instrument(name = "db.system_settings.all", skip_all)]
pub async fn system_settings(pool: &PgPool) -> sqlx::Result<Vec<(String, Value)>> {
    sqlx::query_as("select key, value from public.system_settings").fetch_all(pool).await
}

#[tracing::instrument(name = "db.system_settings.put", skip_all, fields(key))]
pub async fn put_system_setting(
    conn: &mut PgConnection,
    key: &str,
    value: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into public.system_settings (key, value, updated_at) values ($1, $2, now())
         on conflict (key) do update set value = excluded.value, updated_at = now()",
    )
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Serialize, sqlx::FromRow)]
pub struct MerchantCounts {
    pub total: i64,
    pub active: i64,
    pub suspended: i64,
    pub deleted: i64,
    pub on_trial: i64,
    pub new_7d: i64,
}

#[tracing::instrument(name = "db.tenants.counts", skip_all)]
pub async fn merchant_counts(pool: &PgPool) -> sqlx::Result<MerchantCounts> {
    sqlx::query_as(
        "select count(*) filter (where status <> 'deleted') as total,
                count(*) filter (where status = 'active') as active,
                count(*) filter (where status = 'suspended') as suspended,
                count(*) filter (where status = 'deleted') as deleted,
                count(*) filter (where status <> 'deleted' and plan = 'trial') as on_trial,
                count(*) filter (where status <> 'deleted' and created_at > now() - interval '7 days') as new_7d
         from public.tenants",
    )
    .fetch_one(pool)
    .await
}

#[derive(Serialize, sqlx::FromRow)]
pub struct Day {
    pub day: NaiveDate,
    pub messages: i64,
    pub conversations: i64,
}

/// The platform's messages and conversations of the last 14 UTC days, oldest first,
/// zero-filled.
#[tracing::instrument(name = "db.usage_daily.last_14_days", skip_all)]
pub async fn last_14_days(pool: &PgPool) -> sqlx::Result<Vec<Day>> {
    sqlx::query_as(
        "select d::date as day,
                coalesce(sum(u.messages), 0)::bigint as messages,
                coalesce(sum(u.conversations), 0)::bigint as conversations
         from generate_series((now() at time zone 'utc')::date - 13, (now() at time zone 'utc')::date, interval '1 day') d
         left join public.usage_daily u on u.day = d::date
         group by d order by d",
    )
    .fetch_all(pool)
    .await
}

/// How many live merchants are on each (plan, billing status) that bears on revenue.
#[tracing::instrument(name = "db.tenants.by_plan_and_billing", skip_all)]
pub async fn by_plan_and_billing(pool: &PgPool) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "select plan, billing_status, count(*) from public.tenants
         where status <> 'deleted' and billing_status in ('active', 'past_due', 'suspended', 'canceled')
         group by plan, billing_status",
    )
    .fetch_all(pool)
    .await
}

/// Merchant `id`'s row in `public.tenants` as JSON (for its export), without the schema
/// bookkeeping.
#[tracing::instrument(name = "db.tenants.record", skip_all)]
pub async fn merchant_record(conn: &mut PgConnection, id: i64) -> sqlx::Result<Value> {
    sqlx::query_scalar("select to_jsonb(t) - 'schema_version' - 'functions_digest' from public.tenants t where id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Merchant `id`'s public id, deleted or not.
#[tracing::instrument(name = "db.tenants.ent_id", skip_all)]
pub async fn ent_id(pool: &PgPool, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select ent_id from public.tenants where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

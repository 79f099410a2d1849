//! The platform console's own queries over `public`: system settings, and the dashboard's
//! counts (merchants, usage, subscriptions).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tenants::TenantId;

use crate::ids::IdentityProviderId;

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
pub async fn merchant_record(conn: &mut PgConnection, id: TenantId) -> sqlx::Result<Value> {
    sqlx::query_scalar("select to_jsonb(t) - 'schema_version' - 'functions_digest' from public.tenants t where id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Merchant `id`'s public id, deleted or not.
#[tracing::instrument(name = "db.tenants.ent_id", skip_all)]
pub async fn ent_id(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select ent_id from public.tenants where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

// ---------------------------------------------------------------------------------------
// Merchants, as the console lists and shows them

#[derive(Serialize, sqlx::FromRow)]
/// A merchant as the console lists it.
pub struct MerchantRow {
    pub id: i64,
    pub ent_id: String,
    pub name: String,
    pub status: String,
    pub plan: String,
    /// Where it stands with its subscription (billing::BillingStatus).
    pub billing_status: String,
    /// Stripe's own status of its subscription, when it has one.
    pub subscription_status: Option<String>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub purge_after: Option<DateTime<Utc>>,
    pub storage_bytes: i64,
    pub members: i64,
    pub messages_7d: i64,
    pub conversations_month: i64,
}

const MERCHANT_COLUMNS: &str = "t.id, t.ent_id, t.name, t.status, t.plan, t.billing_status,
    (select s.stripe_status from public.subscriptions s where s.tenant_id = t.id) as subscription_status,
    t.trial_ends_at, t.created_at,
    t.purge_after, t.storage_bytes,
    (select count(*) from public.tenant_members m where m.tenant_id = t.id) as members,
    coalesce((select sum(u.messages) from public.usage_daily u
              where u.tenant_id = t.id and u.day > (now() at time zone 'utc')::date - 7), 0)::bigint as messages_7d,
    coalesce((select sum(u.conversations) from public.usage_daily u
              where u.tenant_id = t.id
                and u.day >= date_trunc('month', now() at time zone 'utc')::date), 0)::bigint as conversations_month";

/// What the merchant list is narrowed to: a `LIKE` pattern over the name, the public id and
/// the members' emails; a plan; a status.
pub struct MerchantFilter {
    pub pattern: Option<String>,
    pub plan: Option<String>,
    pub status: Option<String>,
}

const MERCHANT_CONDITIONS: &str = "($1::text is null or t.name ilike $1 or t.ent_id ilike $1
            or exists (select 1 from public.tenant_members m join public.users u on u.id = m.user_id
                       where m.tenant_id = t.id and u.email ilike $1))
        and ($2::text is null or t.plan = $2)
        and ($3::text is null or t.status = $3)";

#[tracing::instrument(name = "db.tenants.count_matching", skip_all)]
pub async fn count_merchants(pool: &PgPool, f: &MerchantFilter) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from public.tenants t where {MERCHANT_CONDITIONS}"
    )))
    .bind(&f.pattern)
    .bind(&f.plan)
    .bind(&f.status)
    .fetch_one(pool)
    .await
}

/// The matching merchants, newest first, `limit` from `offset`.
#[tracing::instrument(name = "db.tenants.list_matching", skip_all)]
pub async fn merchants(
    pool: &PgPool,
    f: &MerchantFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<MerchantRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {MERCHANT_COLUMNS} from public.tenants t where {MERCHANT_CONDITIONS}
         order by t.id desc limit $4 offset $5"
    )))
    .bind(&f.pattern)
    .bind(&f.plan)
    .bind(&f.status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// Merchant `id` in any state (deleted ones too, until purged).
#[tracing::instrument(name = "db.tenants.merchant", skip_all)]
pub async fn merchant(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<MerchantRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {MERCHANT_COLUMNS} from public.tenants t where t.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// When a merchant was suspended and deleted, if it was.
#[derive(sqlx::FromRow)]
pub struct LifecycleTimes {
    pub suspended_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(name = "db.tenants.lifecycle_times", skip_all)]
pub async fn lifecycle_times(pool: &PgPool, id: TenantId) -> sqlx::Result<LifecycleTimes> {
    sqlx::query_as("select suspended_at, deleted_at from public.tenants where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// Merchant `id`'s messages today and over the last 30 UTC days.
#[tracing::instrument(name = "db.usage_daily.messages", skip_all)]
pub async fn messages_today_and_30d(pool: &PgPool, id: TenantId) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "select coalesce(sum(messages) filter (where day = (now() at time zone 'utc')::date), 0)::bigint,
                coalesce(sum(messages), 0)::bigint
         from public.usage_daily where tenant_id = $1 and day > (now() at time zone 'utc')::date - 30",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}

#[derive(Serialize, sqlx::FromRow)]
/// A line of a merchant's own audit log, as the console shows it.
pub struct AuditEntry {
    pub id: i64,
    pub agent_name: String,
    pub action: String,
    pub target: String,
    pub created_at: DateTime<Utc>,
}

/// The latest 20 lines of the merchant's audit log (`conn` in the merchant's schema).
#[tracing::instrument(name = "db.audit_log.latest", skip_all)]
pub async fn merchant_audit(conn: &mut PgConnection) -> sqlx::Result<Vec<AuditEntry>> {
    sqlx::query_as(
        "select id, agent_name, action, target, created_at from audit_log order by id desc limit 20",
    )
    .fetch_all(conn)
    .await
}

/// Extends merchant `tenant`'s trial by `days` from its end, or from `now` if it ended (a
/// merchant suspended for it is trialing again): the new end and the billing status before.
/// `None` unless it is a live merchant on the trial plan.
#[tracing::instrument(name = "db.tenants.extend_trial", skip_all)]
pub async fn extend_trial(
    pool: &PgPool,
    tenant: i64,
    days: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<(DateTime<Utc>, String)>> {
    sqlx::query_as(
        "update public.tenants t
         set trial_ends_at = greatest(coalesce(t.trial_ends_at, $3), $3) + make_interval(days => $2),
             billing_status = case when t.billing_status = 'suspended' then 'trialing' else t.billing_status end,
             updated_at = now()
         from (select billing_status from public.tenants where id = $1 for update) old
         where t.id = $1 and t.status <> 'deleted' and t.plan = 'trial'
         returning t.trial_ends_at, old.billing_status",
    )
    .bind(tenant)
    .bind(days)
    .bind(now)
    .fetch_optional(pool)
    .await
}

// ---------------------------------------------------------------------------------------
// Identity providers (`public.identity_providers`), which sign-in reads

/// A provider as the console shows it (never its secret).
#[derive(Serialize, sqlx::FromRow)]
pub struct ProviderView {
    pub id: IdentityProviderId,
    pub slug: String,
    pub kind: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_set: bool,
    pub enabled: bool,
    /// Users who linked an account of this provider.
    pub linked_users: i64,
    /// What to register as the redirect (callback) URL at the provider.
    #[sqlx(skip)]
    pub redirect_uri: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const VIEW: &str = "select p.id, p.slug, p.kind, p.name, p.issuer, p.client_id,
        p.client_secret <> '' as client_secret_set, p.enabled,
        (select count(*) from public.user_identities i where i.provider_id = p.id) as linked_users,
        p.created_at, p.updated_at
    from public.identity_providers p";

/// Every provider, oldest first (`redirect_uri` left for the caller).
#[tracing::instrument(name = "db.identity_providers.all", skip_all)]
pub async fn providers(pool: &PgPool) -> sqlx::Result<Vec<ProviderView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{VIEW} order by p.id"))).fetch_all(pool).await
}

#[tracing::instrument(name = "db.identity_providers.get", skip_all)]
pub async fn provider(pool: &PgPool, id: IdentityProviderId) -> sqlx::Result<Option<ProviderView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{VIEW} where p.id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A provider's settings as stored (with its client secret).
pub struct ProviderSettings<'a> {
    pub slug: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub enabled: bool,
}

/// Inserts the provider (`id` none) or replaces provider `id`'s settings; its id.
#[tracing::instrument(name = "db.identity_providers.write", skip_all)]
pub async fn write_provider(
    conn: &mut PgConnection,
    id: Option<IdentityProviderId>,
    p: ProviderSettings<'_>,
) -> sqlx::Result<IdentityProviderId> {
    let sql = match id {
        None => {
            "insert into public.identity_providers
                 (slug, kind, name, issuer, client_id, client_secret, enabled)
             values ($1, $2, $3, $4, $5, $6, $7) returning id"
        }
        Some(_) => {
            "update public.identity_providers
             set slug = $1, kind = $2, name = $3, issuer = $4, client_id = $5,
                 client_secret = $6, enabled = $7, updated_at = now()
             where id = $8 returning id"
        }
    };
    sqlx::query_scalar(sql)
        .bind(p.slug)
        .bind(p.kind)
        .bind(p.name)
        .bind(p.issuer)
        .bind(p.client_id)
        .bind(p.client_secret)
        .bind(p.enabled)
        .bind(id)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(name = "db.identity_providers.secret", skip_all)]
pub async fn provider_secret(
    pool: &PgPool,
    id: IdentityProviderId,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select client_secret from public.identity_providers where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Deletes provider `id` (links to it go with it); its slug, if there was one.
#[tracing::instrument(name = "db.identity_providers.delete", skip_all)]
pub async fn delete_provider(
    conn: &mut PgConnection,
    id: IdentityProviderId,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("delete from public.identity_providers where id = $1 returning slug")
        .bind(id)
        .fetch_optional(conn)
        .await
}

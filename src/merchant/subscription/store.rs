//! Billing rows in `public`: a merchant's Stripe customer and subscription
//! (`subscriptions`), its billing state (`tenants.billing_status`), handled webhook events
//! (`stripe_events`) and invoices.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use billing::{BillingStatus, event::Invoice};

/// A merchant's Stripe customer and subscription as Stripe last reported them.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub stripe_customer_id: String,
    pub stripe_subscription_id: Option<String>,
    pub stripe_status: Option<String>,
    pub price_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub past_due_since: Option<DateTime<Utc>>,
}

impl SubscriptionRow {
    /// A subscription Stripe still bills (changing plans modifies it instead of buying a
    /// second one).
    pub fn is_live(&self) -> bool {
        self.stripe_subscription_id.is_some()
            && matches!(
                self.stripe_status.as_deref(),
                Some("active" | "trialing" | "past_due" | "unpaid" | "paused")
            )
    }
}

const SUBSCRIPTION_COLUMNS: &str =
    "stripe_customer_id, stripe_subscription_id, stripe_status, price_id,
    current_period_end, cancel_at_period_end, past_due_since";

#[tracing::instrument(name = "db.subscription.subscription", skip_all)]
pub async fn subscription(
    conn: &mut PgConnection,
    tenant: i64,
) -> sqlx::Result<Option<SubscriptionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {SUBSCRIPTION_COLUMNS} from public.subscriptions where tenant_id = $1"
    )))
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// The merchant's billing fields, locked until the transaction ends: every change of a
/// merchant's billing state happens under this lock, one at a time.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Locked {
    pub billing_status: String,
    pub plan: String,
}

#[tracing::instrument(name = "db.subscription.lock_tenant", skip_all)]
pub async fn lock_tenant(conn: &mut PgConnection, tenant: i64) -> sqlx::Result<Option<Locked>> {
    sqlx::query_as(
        "select billing_status, plan from public.tenants where id = $1 and status <> 'deleted' for update",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// Which merchant a Stripe customer or subscription belongs to.
#[tracing::instrument(name = "db.subscription.tenant_of", skip_all)]
pub async fn tenant_of(
    conn: &mut PgConnection,
    customer: Option<&str>,
    subscription: Option<&str>,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "select tenant_id from public.subscriptions
         where stripe_customer_id = $1 or stripe_subscription_id = $2 limit 1",
    )
    .bind(customer)
    .bind(subscription)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.subscription.tenant_exists", skip_all)]
pub async fn tenant_exists(conn: &mut PgConnection, tenant: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from public.tenants where id = $1 and status <> 'deleted')",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await
}

/// Links the merchant to its Stripe customer (the first link stays).
#[tracing::instrument(name = "db.subscription.save_customer", skip_all)]
pub async fn save_customer(
    conn: &mut PgConnection,
    tenant: i64,
    customer: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into public.subscriptions (tenant_id, stripe_customer_id) values ($1, $2)
         on conflict (tenant_id) do nothing",
    )
    .bind(tenant)
    .bind(customer)
    .execute(conn)
    .await?;
    Ok(())
}

/// What to store of a subscription as Stripe has it now.
pub struct Applied<'a> {
    pub subscription: &'a billing::stripe::Subscription,
    pub status: BillingStatus,
    pub past_due_since: Option<DateTime<Utc>>,
    /// The plan its Price subscribes to (`None`: keep the merchant's plan).
    pub plan: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Stores the subscription and the merchant's resulting state (under [`lock_tenant`]).
#[tracing::instrument(name = "db.subscription.apply", skip_all)]
pub async fn apply(conn: &mut PgConnection, tenant: i64, a: &Applied<'_>) -> sqlx::Result<()> {
    let s = a.subscription;
    let period_end = s.current_period_end().and_then(|t| DateTime::from_timestamp(t, 0));
    sqlx::query(
        "insert into public.subscriptions as x (tenant_id, stripe_customer_id, stripe_subscription_id, stripe_status,
                price_id, current_period_end, cancel_at_period_end, past_due_since, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (tenant_id) do update set
            stripe_subscription_id = excluded.stripe_subscription_id, stripe_status = excluded.stripe_status,
            price_id = excluded.price_id, current_period_end = excluded.current_period_end,
            cancel_at_period_end = excluded.cancel_at_period_end, past_due_since = excluded.past_due_since,
            updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(&s.customer)
    .bind(&s.id)
    .bind(&s.status)
    .bind(s.price())
    .bind(period_end)
    .bind(s.cancel_at_period_end)
    .bind(a.past_due_since)
    .bind(a.now)
    .execute(&mut *conn)
    .await?;
    set_status(conn, tenant, a.status, a.plan, a.now).await
}

/// Sets the merchant's billing state (and plan, when given).
#[tracing::instrument(name = "db.subscription.set_status", skip_all)]
pub async fn set_status(
    conn: &mut PgConnection,
    tenant: i64,
    status: BillingStatus,
    plan: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update public.tenants set
            billing_changed_at = case when billing_status = $2 then billing_changed_at else $4 end,
            billing_status = $2, plan = coalesce($3, plan), updated_at = now()
         where id = $1",
    )
    .bind(tenant)
    .bind(status.as_str())
    .bind(plan)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a webhook event as handled; false when it was handled before.
#[tracing::instrument(name = "db.subscription.record_event", skip_all)]
pub async fn record_event(
    conn: &mut PgConnection,
    event: &billing::event::Event,
    tenant: Option<i64>,
) -> sqlx::Result<bool> {
    let created = DateTime::from_timestamp(event.created, 0).unwrap_or_else(Utc::now);
    let inserted = sqlx::query(
        "insert into public.stripe_events (id, type, tenant_id, created_at) values ($1, $2, $3, $4)
         on conflict (id) do nothing",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(tenant)
    .bind(created)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

#[tracing::instrument(name = "db.subscription.upsert_invoice", skip_all)]
pub async fn upsert_invoice(conn: &mut PgConnection, tenant: i64, i: &Invoice) -> sqlx::Result<()> {
    let at = |t: i64| DateTime::from_timestamp(t, 0);
    sqlx::query(
        "insert into public.invoices (id, tenant_id, number, status, amount_due, amount_paid, currency,
                hosted_invoice_url, period_start, period_end, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         on conflict (id) do update set number = excluded.number, status = excluded.status,
            amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
            hosted_invoice_url = excluded.hosted_invoice_url, updated_at = now()",
    )
    .bind(&i.id)
    .bind(tenant)
    .bind(&i.number)
    .bind(&i.status)
    .bind(i.amount_due)
    .bind(i.amount_paid)
    .bind(&i.currency)
    .bind(&i.hosted_invoice_url)
    .bind(i.period_start.and_then(at))
    .bind(i.period_end.and_then(at))
    .bind(at(i.created).unwrap_or_else(Utc::now))
    .execute(conn)
    .await?;
    Ok(())
}

/// An invoice on the billing page.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: String,
    pub number: Option<String>,
    pub status: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub hosted_invoice_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[tracing::instrument(name = "db.subscription.invoices", skip_all)]
pub async fn invoices(
    conn: &mut PgConnection,
    tenant: i64,
    limit: i64,
) -> sqlx::Result<Vec<InvoiceRow>> {
    sqlx::query_as(
        "select id, number, status, amount_due, amount_paid, currency, hosted_invoice_url, created_at
         from public.invoices where tenant_id = $1 order by created_at desc, id desc limit $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(conn)
    .await
}

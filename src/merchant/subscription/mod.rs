//! A merchant's plan and subscription: the billing page and API (owner only), the limits
//! (`limits`), Stripe's webhooks (`webhook`), and the job that ends trials and grace
//! periods (`job`). The states and their meaning are the billing crate's
//! (`billing::lifecycle`); this module stores them and makes them bite:
//!
//! - read-only merchants (suspended or canceled for billing) keep their agents' sign-in and
//!   history, but every write through an agent session answers 402 `subscription_inactive`
//!   (except billing itself and a few things that create nothing), agents' sockets refuse
//!   to send, and visitors get the "service paused" page;
//! - without Stripe keys billing is manual: super-admins assign plans, and the billing page
//!   says so.

pub mod job;
pub mod limits;
pub mod store;
pub mod webhook;

use std::sync::Arc;

use askama::Template;
use axum::extract::FromRef;
use axum::{
    Json,
    extract::State,
    http::Method,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tenants::{Tenant, TenantId};

use billing::BillingStatus;

use crate::{
    auth::ctx::{Ctx, Door, Owner},
    auth::session::AgentSession,
    http::{AppError, Page, Routes, Scope, csrf::CsrfToken, extract::ApiJson},
    i18n::Lang,
    realtime::{
        hub::{self, encode},
        protocol::ServerFrame,
    },
};

pub use job::spawn_job;

/// What billing works with: the session door (pool, registry, plans), the configuration
/// (grace period, public address), Stripe's API when it is set up, the billing clock, and
/// the hub and caches a change of state reaches.
#[derive(Clone)]
pub struct Billing {
    pub door: Arc<Door>,
    pub config: Arc<crate::config::Config>,
    pub stripe: Option<billing::stripe::StripeApi>,
    pub clock: Arc<dyn billing::Clock>,
    pub hub: Arc<hub::Hub>,
    pub caches: crate::realtime::bus::Caches,
}

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Billing: FromRef<S>,
    Arc<Door>: FromRef<S>,
{
    Routes::new()
        .get("/app/billing", Scope::Tenant, billing_page)
        .owner()
        .get("/api/v1/billing", Scope::Tenant, get_billing)
        .owner()
        .post("/api/v1/billing/checkout", Scope::Tenant, checkout)
        .owner()
        .writable_when_read_only()
        .post("/api/v1/billing/portal", Scope::Tenant, portal)
        .owner()
        .writable_when_read_only()
        .post("/webhooks/stripe", Scope::Public, webhook::receive)
}

/// The merchant's billing state (an unknown value reads as active: never lock anyone out
/// because of a value written by a newer version).
pub fn status_of(tenant: &Tenant) -> BillingStatus {
    BillingStatus::parse(&tenant.billing_status).unwrap_or(BillingStatus::Active)
}

/// Whether the merchant is read-only for billing reasons.
pub fn read_only(tenant: &Tenant) -> bool {
    status_of(tenant).is_read_only()
}

/// Whether visitors get the "service paused" answer (the rule lives with the visitor door,
/// `http::tenant`).
pub use crate::http::tenant::paused_for_visitors;

/// Refuses what the merchant's plan does not include (402 `plan_limit`, which links the
/// billing page). Every plan feature is checked through here, where it is used.
pub fn require_feature(
    plans: &billing::Catalog,
    tenant: &Tenant,
    feature: billing::Feature,
) -> Result<(), AppError> {
    let plan = plans.get(&tenant.plan).unwrap_or_else(|| plans.trial());
    if plan.features.has(feature) {
        Ok(())
    } else {
        Err(AppError::plan_limit(format!(
            "{} is not part of the {} plan",
            feature.name(),
            plan.name
        )))
    }
}

/// The refusal of a write while the merchant is read-only (402 `subscription_inactive`).
pub fn inactive() -> AppError {
    AppError::Billing {
        status: axum::http::StatusCode::PAYMENT_REQUIRED,
        code: "subscription_inactive",
        message: "this workspace is read-only until its subscription is active again".into(),
    }
}

/// Refuses a write by an agent of a read-only merchant (the session extractor calls this).
/// Which routes stay writable is route metadata (`Routes::writable_when_read_only`).
pub fn check_write(
    tenant: &Tenant,
    method: &Method,
    route: Option<&crate::http::RouteSpec>,
) -> Result<(), AppError> {
    let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && read_only(tenant) && !route.is_some_and(|r| r.writable_when_read_only) {
        return Err(inactive());
    }
    Ok(())
}

/// After a merchant's billing state changed: caches forget it; going read-only closes its
/// visitors' sockets (they see the paused page); its agents are told, so their pages show
/// the new state.
pub async fn changed(
    state: &Billing,
    tenant: TenantId,
    before: BillingStatus,
    after: BillingStatus,
) {
    state.caches.invalidate(crate::realtime::bus::Invalidation::Tenants).await;
    if before == after {
        return;
    }
    tracing::info!(
        tenant = tenant.0,
        from = before.as_str(),
        to = after.as_str(),
        "billing status changed"
    );
    if after.is_read_only() && !before.is_read_only() {
        let notice = ServerFrame::Notice {
            code: "tenant_suspended",
            message: "This service is paused.".into(),
        };
        state.hub.close_visitors(tenant, &encode(&notice), hub::SUSPENDED);
    }
    let notice = ServerFrame::Notice { code: "billing", message: after.as_str().into() };
    state.hub.to_agents(tenant, &encode(&notice));
}

/// Brings the merchant in line with a subscription as Stripe has it now, in `tx` (which
/// must hold [`store::lock_tenant`]). Returns the state before and after, or `None` when the
/// subscription says nothing about the merchant (not paid yet, or an old subscription
/// ending after a newer one replaced it).
pub async fn apply_subscription(
    state: &Billing,
    tx: &mut sqlx::PgConnection,
    tenant: i64,
    locked: &store::Locked,
    subscription: &billing::stripe::Subscription,
) -> Result<Option<(BillingStatus, BillingStatus)>, AppError> {
    let before = BillingStatus::parse(&locked.billing_status).unwrap_or(BillingStatus::Active);
    let current = store::subscription(tx, tenant).await?;
    let replaced = current
        .as_ref()
        .and_then(|c| c.stripe_subscription_id.as_deref())
        .is_some_and(|id| id != subscription.id);
    let ending = matches!(subscription.status.as_str(), "canceled" | "incomplete_expired");
    if replaced && ending {
        return Ok(None);
    }
    let now = state.clock.now();
    let grace = Duration::days(i64::from(state.config.past_due_grace_days));
    let since = current.as_ref().and_then(|c| c.past_due_since);
    let Some((after, past_due_since)) =
        billing::lifecycle::from_subscription(&subscription.status, since, now, grace)
    else {
        return Ok(None);
    };
    let plan = subscription
        .price()
        .and_then(|p| state.door.plans.by_stripe_price(p))
        .map(|p| p.id.as_str());
    if plan.is_none() && !matches!(after, BillingStatus::Canceled) {
        tracing::warn!(tenant, price = ?subscription.price(), "a subscription's Price is not any plan's stripe_price");
    }
    let applied = store::Applied { subscription, status: after, past_due_since, plan, now };
    store::apply(tx, tenant, &applied).await?;
    Ok(Some((before, after)))
}

fn stripe_failed(e: billing::stripe::ApiError) -> AppError {
    AppError::Upstream {
        code: "stripe_unavailable",
        message: format!("the payment provider refused or did not answer: {e}").into(),
    }
}

/// The state of the merchant's billing as the page and the API show it.
#[derive(Serialize)]
pub struct BillingView {
    /// `stripe`: plans are bought here; `manual`: the platform's team assigns them.
    pub mode: &'static str,
    pub status: BillingStatus,
    pub plan: billing::Plan,
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// When a past-due merchant becomes read-only.
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub subscription: Option<SubscriptionView>,
    pub usage: limits::Usage,
    pub plans: Vec<PlanOption>,
    pub invoices: Vec<store::InvoiceRow>,
}

#[derive(Serialize)]
pub struct SubscriptionView {
    pub status: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

#[derive(Serialize)]
pub struct PlanOption {
    #[serde(flatten)]
    pub plan: billing::Plan,
    pub current: bool,
    /// It can be bought here (Stripe is set up and the plan has a Price).
    pub purchasable: bool,
}

async fn view(state: &Billing, session: &AgentSession) -> Result<BillingView, AppError> {
    let tenant = &session.tenant;
    let plan =
        state.door.plans.get(&tenant.plan).unwrap_or_else(|| state.door.plans.trial()).clone();
    let mut tx = session.tx(&state.door.db).await?;
    let usage = limits::usage(&mut tx, tenant.id, &plan).await?;
    let subscription = store::subscription(&mut tx, tenant.id.0).await?;
    let invoices = store::invoices(&mut tx, tenant.id.0, 24).await?;
    tx.commit().await?;
    let status = status_of(tenant);
    let grace = Duration::days(i64::from(state.config.past_due_grace_days));
    let stripe = state.stripe.is_some();
    Ok(BillingView {
        mode: if stripe { "stripe" } else { "manual" },
        status,
        trial_ends_at: tenant
            .trial_ends_at
            .filter(|_| status == BillingStatus::Trialing || plan.is_trial()),
        grace_ends_at: subscription
            .as_ref()
            .and_then(|s| s.past_due_since)
            .filter(|_| status == BillingStatus::PastDue)
            .map(|since| since + grace),
        subscription: subscription.filter(|s| s.stripe_subscription_id.is_some()).map(|s| {
            SubscriptionView {
                status: s.stripe_status,
                current_period_end: s.current_period_end,
                cancel_at_period_end: s.cancel_at_period_end,
            }
        }),
        usage,
        plans: state
            .door
            .plans
            .all()
            .iter()
            .filter(|p| !p.is_trial())
            .map(|p| PlanOption {
                current: p.id == plan.id && !status.is_read_only(),
                purchasable: stripe && p.stripe_price.is_some(),
                plan: p.clone(),
            })
            .collect(),
        invoices,
        plan,
    })
}

async fn get_billing(
    State(state): State<Billing>,
    ctx: Ctx<Owner>,
) -> Result<Json<BillingView>, AppError> {
    let session = ctx.commit().await?;
    Ok(Json(view(&state, &session).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutRequest {
    plan: String,
}

/// Where to send the merchant next.
#[derive(Serialize)]
struct Next {
    url: String,
}

/// The merchant's Stripe customer, created (and linked) the first time. `tx` holds the
/// merchant's billing lock, so two requests cannot create two customers.
async fn customer(
    tx: &mut sqlx::PgConnection,
    session: &AgentSession,
    stripe: &billing::stripe::StripeApi,
) -> Result<String, AppError> {
    if let Some(existing) = store::subscription(tx, session.tenant.id.0).await? {
        return Ok(existing.stripe_customer_id);
    }
    let email = crate::auth::store::user_by_id(tx, session.user_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    let id = stripe
        .create_customer(&email, &session.tenant.name, session.tenant.id.0)
        .await
        .map_err(stripe_failed)?;
    store::save_customer(tx, session.tenant.id.0, &id).await?;
    Ok(id)
}

/// `POST /api/v1/billing/checkout {plan}`: subscribes through Stripe Checkout (answers the
/// page to send the owner to) or, with a live subscription, moves it to the plan at once
/// (prorated) and answers the billing page.
async fn checkout(
    State(state): State<Billing>,
    ctx: Ctx<Owner>,
    ApiJson(req): ApiJson<CheckoutRequest>,
) -> Result<Json<Next>, AppError> {
    let session = ctx.commit().await?;
    let stripe = state.stripe.clone().ok_or_else(manual)?;
    let plan = sold_plan(&state.door.plans, &req.plan)?;
    let price = plan.stripe_price.clone().unwrap_or_default();
    let tenant = session.tenant.id;
    let mut tx = state.door.db.begin().await?;
    let locked = store::lock_tenant(&mut tx, tenant.0).await?.ok_or(AppError::NotFound)?;
    let customer = customer(&mut tx, &session, &stripe).await?;
    let current =
        store::subscription(&mut tx, tenant.0).await?.filter(store::SubscriptionRow::is_live);
    let Some(current) = current else {
        tx.commit().await?;
        return checkout_page(&state, &stripe, &customer, &price, tenant).await;
    };
    if current.price_id.as_deref() == Some(price.as_str()) && !read_only(&session.tenant) {
        return Err(AppError::conflict("same_plan", Some("plan"), "you are on this plan already"));
    }
    let id = current.stripe_subscription_id.clone().unwrap_or_default();
    let live = stripe.subscription(&id).await.map_err(stripe_failed)?;
    let updated = stripe.change_price(&live, &price).await.map_err(stripe_failed)?;
    let change = apply_subscription(&state, &mut tx, tenant.0, &locked, &updated).await?;
    tx.commit().await?;
    let detail = serde_json::json!({ "from": session.tenant.plan, "to": plan.id });
    let audit = session.tx(&state.door.db).await?;
    crate::merchant::audit::commit(audit, &session, "billing.change_plan", &plan.id, detail)
        .await?;
    if let Some((before, after)) = change {
        changed(&state, tenant, before, after).await;
    }
    Ok(Json(Next { url: format!("/app/billing?changed={}", plan.id) }))
}

/// A Stripe Checkout page that subscribes `customer` to `price`, and comes back to the
/// billing page.
async fn checkout_page(
    state: &Billing,
    stripe: &billing::stripe::StripeApi,
    customer: &str,
    price: &str,
    tenant: TenantId,
) -> Result<Json<Next>, AppError> {
    let base = state.config.display_url(state.config.port);
    let back = |outcome: &str| format!("{base}/app/billing?checkout={outcome}");
    let page = stripe
        .checkout(customer, price, tenant.0, &back("success"), &back("canceled"))
        .await
        .map_err(stripe_failed)?;
    Ok(Json(Next { url: page.url }))
}

/// The plan `id` names, if it is sold through Stripe (422 listing those that are).
fn sold_plan<'a>(plans: &'a billing::Catalog, id: &str) -> Result<&'a billing::Plan, AppError> {
    let sold = |p: &&billing::Plan| p.stripe_price.is_some();
    plans.get(id.trim()).filter(sold).ok_or_else(|| {
        let ids: Vec<&str> = plans.all().iter().filter(sold).map(|p| p.id.as_str()).collect();
        AppError::field("plan", format!("one of: {}", ids.join(", ")))
    })
}

fn manual() -> AppError {
    AppError::conflict(
        "billing_manual",
        None,
        "plans are assigned by the platform's team here; contact them to change yours",
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PortalRequest {
    /// `cancel`: open the portal on cancelling the subscription.
    #[serde(default)]
    flow: Option<String>,
}

/// `POST /api/v1/billing/portal {flow?}`: a Stripe customer-portal session (payment
/// methods, invoices, cancelling).
async fn portal(
    State(state): State<Billing>,
    ctx: Ctx<Owner>,
    ApiJson(req): ApiJson<PortalRequest>,
) -> Result<Json<Next>, AppError> {
    let session = ctx.commit().await?;
    let stripe = state.stripe.clone().ok_or_else(manual)?;
    let cancel = match req.flow.as_deref() {
        None => false,
        Some("cancel") => true,
        Some(_) => return Err(AppError::field("flow", "\"cancel\" or nothing")),
    };
    let tenant = session.tenant.id;
    let mut tx = state.door.db.begin().await?;
    store::lock_tenant(&mut tx, tenant.0).await?.ok_or(AppError::NotFound)?;
    let customer = customer(&mut tx, &session, &stripe).await?;
    let subscription =
        store::subscription(&mut tx, tenant.0).await?.filter(store::SubscriptionRow::is_live);
    tx.commit().await?;
    let cancel_id = match (cancel, &subscription) {
        (false, _) => None,
        (true, Some(s)) => s.stripe_subscription_id.as_deref(),
        (true, None) => {
            return Err(AppError::conflict(
                "no_subscription",
                None,
                "there is no subscription to cancel",
            ));
        }
    };
    let base = state.config.display_url(state.config.port);
    let page = stripe
        .portal(&customer, &format!("{base}/app/billing"), cancel_id)
        .await
        .map_err(stripe_failed)?;
    Ok(Json(Next { url: page.url }))
}

/// A line at the top of the merchant's pages when billing needs attention.
pub struct Banner {
    /// `warning` or `danger`.
    pub tone: &'static str,
    pub text: String,
    /// The owner gets a link to the billing page; others are told to ask the owner.
    pub link: Option<&'static str>,
}

/// What the merchant's pages should say about billing, if anything: read-only, past due
/// (until when), or this month's conversations used up.
pub async fn banner(
    (door, config): (&Door, &crate::config::Config),
    session: &AgentSession,
    lang: Lang,
) -> Result<Option<Banner>, AppError> {
    let tenant = &session.tenant;
    let owner = session.agent.role == crate::http::Role::Owner;
    let link = owner.then_some(crate::http::BILLING_PAGE);
    let tail = if owner { "" } else { lang.tr("billing.ask_owner") };
    let status = status_of(tenant);
    let text = |key: &str| format!("{} {tail}", lang.tr(key)).trim().to_owned();
    if status.is_read_only() {
        return Ok(Some(Banner { tone: "danger", text: text("billing.banner_read_only"), link }));
    }
    if status == BillingStatus::PastDue {
        let mut tx = door.db.begin().await?;
        let since = store::subscription(&mut tx, tenant.id.0).await?.and_then(|s| s.past_due_since);
        tx.commit().await?;
        let grace = Duration::days(i64::from(config.past_due_grace_days));
        let until = since.map(|s| (s + grace).format("%Y-%m-%d").to_string()).unwrap_or_default();
        let message = format!("{} {until}", lang.tr("billing.banner_past_due")).trim().to_owned();
        return Ok(Some(Banner {
            tone: "warning",
            text: format!("{message} {tail}").trim().to_owned(),
            link,
        }));
    }
    let plan = door.plans.get(&tenant.plan).unwrap_or_else(|| door.plans.trial());
    if plan.conversations_per_month.is_some() {
        let mut tx = session.tx(&door.db).await?;
        let usage = limits::usage(&mut tx, tenant.id, plan).await?;
        tx.commit().await?;
        if usage.conversations.reached() {
            return Ok(Some(Banner {
                tone: "warning",
                text: text("billing.banner_conversations"),
                link,
            }));
        }
    }
    Ok(None)
}

#[derive(Template)]
#[template(path = "app/billing.html")]
struct BillingPage {
    lang: Lang,
    shell: crate::agent::shell::AppShell,
    view: BillingView,
    /// `success` (paid, not active yet) / `active` / `canceled` after Stripe Checkout,
    /// `changed` after a plan change.
    outcome: Option<&'static str>,
}

impl BillingPage {
    fn money(&self, cents: &u32, currency: &str) -> String {
        money(i64::from(*cents), currency)
    }

    fn amount(&self, cents: &i64, currency: &str) -> String {
        money(*cents, currency)
    }

    fn status_label(&self) -> String {
        self.lang.tr(&format!("billing.status_{}", self.view.status.as_str())).to_owned()
    }

    /// "3 seats", "Unlimited seats": a plan's limit of `what` (`seats`, `conversations`) as
    /// one phrase of the reader's language.
    fn limit(&self, what: &str, value: &Option<u32>) -> String {
        self.phrase(what, value.map(|v| grouped(i64::from(v))))
    }

    fn storage(&self, value: &Option<u64>) -> String {
        self.phrase("storage", value.map(limits::human_bytes))
    }

    fn phrase(&self, what: &str, n: Option<String>) -> String {
        match n {
            Some(n) => self.lang.tr(&format!("billing.{what}_n")).replace("{n}", &n),
            None => self.lang.tr(&format!("billing.{what}_unlimited")).to_owned(),
        }
    }

    fn meter_used(&self, meter: &limits::Meter, bytes: bool) -> String {
        let show = |v: i64| if bytes { limits::human_bytes(v.max(0) as u64) } else { grouped(v) };
        match meter.limit {
            Some(l) => format!("{} / {}", show(meter.used), show(l)),
            None => format!("{} · {}", show(meter.used), self.lang.tr("billing.unlimited")),
        }
    }

    fn date(&self, at: &DateTime<Utc>) -> String {
        at.format("%Y-%m-%d").to_string()
    }
}

/// `10,000`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `$49.00`, `¥99.00`, `12.00 EUR`.
pub fn money(cents: i64, currency: &str) -> String {
    let amount = format!("{}.{:02}", cents / 100, (cents % 100).abs());
    match currency {
        "usd" => format!("${amount}"),
        "cny" => format!("¥{amount}"),
        "eur" => format!("€{amount}"),
        "gbp" => format!("£{amount}"),
        other => format!("{amount} {}", other.to_ascii_uppercase()),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    checkout: Option<String>,
    #[serde(default)]
    changed: Option<String>,
}

async fn billing_page(
    State(state): State<Billing>,
    lang: Lang,
    csrf: CsrfToken,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
    session: Result<Ctx<Owner>, AppError>,
) -> Result<Response, AppError> {
    let session = match session {
        Ok(ctx) => ctx.commit().await?,
        Err(AppError::Unauthorized) => {
            return Ok(Redirect::to("/login?next=/app/billing").into_response());
        }
        Err(e) => return Err(e),
    };
    let active = status_of(&session.tenant) == BillingStatus::Active;
    let outcome = match (q.checkout.as_deref(), q.changed.is_some()) {
        (Some("success"), _) if active => Some("active"),
        (Some("success"), _) => Some("success"),
        (Some("canceled"), _) => Some("canceled"),
        (_, true) => Some("changed"),
        _ => None,
    };
    let page = BillingPage {
        view: view(&state, &session).await?,
        shell: crate::agent::shell::AppShell::new(
            (&state.door, &state.config),
            &session,
            lang,
            &csrf,
            "billing",
        )
        .await?,
        outcome,
        lang,
    };
    Ok((csrf, Page(page)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_well() {
        assert_eq!(money(4900, "usd"), "$49.00");
        assert_eq!(money(1999, "cny"), "¥19.99");
        assert_eq!(money(5, "chf"), "0.05 CHF");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}

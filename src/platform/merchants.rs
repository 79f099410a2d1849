//! Merchants as the console manages them: the searchable list, one merchant's detail (usage,
//! agents, plan, recent admin actions), and the actions — suspend, resume, change plan,
//! extend trial, delete (soft or, confirmed, hard), restore, and support sessions.

use super::Platform;
use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenants::{TenantId, TenantTx};

use billing::BillingStatus;

use super::{PlatformSession, audit, lifecycle, store as platform_store};
use crate::{
    auth::{session, store},
    http::{
        AppError,
        client::ClientMeta,
        extract::PathId,
        extract::{ApiJson, OptionalJson},
    },
    merchant::subscription,
};
pub use platform_store::{AuditEntry, MerchantRow};

// ---------------------------------------------------------------------------------------
// List

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    /// Name, ent_id or a member's email (substring, any case).
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// 1-based.
    #[serde(default)]
    pub page: Option<i64>,
}

pub const PAGE_SIZE: i64 = 25;

impl MerchantRow {
    /// The catalog key naming its billing status.
    pub fn billing_key(&self) -> String {
        format!("billing.status_{}", self.billing_status)
    }

    /// For pages: `1.4 MB`.
    pub fn storage_human(&self) -> String {
        super::pages::human_bytes(u64::try_from(self.storage_bytes).unwrap_or_default())
    }
}

#[derive(Serialize)]
pub struct MerchantList {
    pub merchants: Vec<MerchantRow>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

fn filter_value(
    raw: Option<&str>,
    allowed: &[&str],
    field: &'static str,
) -> Result<Option<String>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(_) => Err(AppError::field(field, format!("one of: {}", allowed.join(", ")))),
    }
}

/// The plan ids, for the console's filters and forms.
pub fn plan_ids(plans: &billing::Catalog) -> Vec<String> {
    plans.ids().into_iter().map(str::to_owned).collect()
}

pub async fn search(state: &Platform, q: &ListQuery) -> Result<MerchantList, AppError> {
    let db = &state.door.db;
    let plan = filter_value(q.plan.as_deref(), &state.door.plans.ids(), "plan")?;
    let status = filter_value(q.status.as_deref(), &["active", "suspended", "deleted"], "status")?;
    let pattern = crate::http::input::search_pattern(q.q.as_deref());
    let filter = platform_store::MerchantFilter { pattern, plan, status };
    let total = platform_store::count_merchants(db, &filter).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let offset = (page - 1) * PAGE_SIZE;
    let merchants = platform_store::merchants(db, &filter, PAGE_SIZE, offset).await?;
    Ok(MerchantList { merchants, total, page, pages })
}

pub(super) async fn list_api(
    State(state): State<Platform>,
    _admin: PlatformSession,
    Query(q): Query<ListQuery>,
) -> Result<Json<MerchantList>, AppError> {
    Ok(Json(search(&state, &q).await?))
}

// ---------------------------------------------------------------------------------------
// Detail

#[derive(Serialize)]
pub struct Usage {
    pub messages_today: i64,
    pub messages_30d: i64,
    pub conversations_month: i64,
    pub storage_bytes: i64,
    pub seats_used: i64,
    pub seats: Option<u32>,
    pub conversations_limit: Option<u32>,
    pub storage_limit: Option<u64>,
    pub agents_online: usize,
    pub visitors_online: usize,
}

#[derive(Serialize)]
pub struct MerchantDetail {
    #[serde(flatten)]
    pub merchant: MerchantRow,
    pub suspended_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub usage: Usage,
    pub agents: Vec<store::AgentWithEmail>,
    /// The merchant's own admin actions, newest first.
    pub merchant_audit: Vec<AuditEntry>,
    /// What platform admins did to this merchant, newest first.
    pub platform_audit: Vec<audit::Entry>,
}

/// The merchant `id` in any state (deleted ones too, until purged).
async fn merchant_row(db: &sqlx::PgPool, id: TenantId) -> Result<MerchantRow, AppError> {
    platform_store::merchant(db, id).await?.ok_or(AppError::NotFound)
}

pub async fn detail(state: &Platform, id: TenantId) -> Result<MerchantDetail, AppError> {
    let merchant = merchant_row(&state.door.db, id).await?;
    let platform_store::LifecycleTimes { suspended_at, deleted_at } =
        platform_store::lifecycle_times(&state.door.db, id).await?;
    let (messages_today, messages_30d) =
        platform_store::messages_today_and_30d(&state.door.db, id).await?;
    let mut tx = TenantTx::begin(&state.door.db, id).await?;
    let agents = store::list_agents(&mut tx).await?;
    let merchant_audit = platform_store::merchant_audit(&mut tx).await?;
    tx.commit().await?;
    let platform_audit = audit::search(
        &state.door.db,
        &audit::AuditQuery { tenant_id: Some(id.0), limit: Some(20), ..Default::default() },
    )
    .await?
    .entries;
    let plan = state.door.plans.get(&merchant.plan);
    let tenant = id;
    let hub = &state.hub;
    let usage = Usage {
        messages_today,
        messages_30d,
        conversations_month: merchant.conversations_month,
        storage_bytes: merchant.storage_bytes,
        seats_used: agents.iter().filter(|a| !a.disabled).count() as i64,
        seats: plan.and_then(|p| p.seats),
        conversations_limit: plan.and_then(|p| p.conversations_per_month),
        storage_limit: plan.and_then(|p| p.storage_bytes),
        agents_online: hub.connected_agents(tenant).len(),
        visitors_online: hub.visitors_online(tenant),
    };
    Ok(MerchantDetail {
        merchant,
        suspended_at,
        deleted_at,
        usage,
        agents,
        merchant_audit,
        platform_audit,
    })
}

pub(super) async fn detail_api(
    State(state): State<Platform>,
    _admin: PlatformSession,
    PathId(id): PathId<TenantId>,
) -> Result<Json<MerchantDetail>, AppError> {
    Ok(Json(detail(&state, id).await?))
}

// ---------------------------------------------------------------------------------------
// Actions

/// The merchant an action names, as `(id, ent_id)`; 404 if there is none.
async fn target(state: &Platform, id: TenantId) -> Result<(TenantId, String), AppError> {
    let ent_id = platform_store::ent_id(&state.door.db, id).await?;
    Ok((id, ent_id.ok_or(AppError::NotFound)?))
}

fn conflict(message: &'static str) -> AppError {
    AppError::conflict("invalid_state", None, message)
}

async fn respond(state: &Platform, id: TenantId) -> Result<Response, AppError> {
    Ok(Json(merchant_row(&state.door.db, id).await?).into_response())
}

#[derive(Deserialize, Default)]
pub(super) struct SuspendRequest {
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn suspend(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
    OptionalJson(body): OptionalJson<SuspendRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, id).await?;
    let reason = crate::http::input::optional_text("reason", body.reason.as_deref(), 500)?;
    if !lifecycle::suspend(&state, tenant).await? {
        return Err(conflict("only an active merchant can be suspended"));
    }
    audit::record(
        &state.door.db,
        &admin,
        "merchant.suspend",
        Some(tenant.0),
        &ent_id,
        json!({ "reason": reason }),
    )
    .await?;
    respond(&state, tenant).await
}

pub(super) async fn resume(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, id).await?;
    if !lifecycle::resume(&state, tenant).await? {
        return Err(conflict("only a suspended merchant can be resumed"));
    }
    audit::record(&state.door.db, &admin, "merchant.resume", Some(tenant.0), &ent_id, json!({}))
        .await?;
    respond(&state, tenant).await
}

#[derive(Deserialize)]
pub(super) struct PlanRequest {
    plan: String,
}

/// Assigns a plan by hand (manual billing, or an override of what Stripe says until its next
/// event): a paid plan makes the merchant active, the trial makes it trialing again.
pub(super) async fn change_plan(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
    ApiJson(req): ApiJson<PlanRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, id).await?;
    let plan = state.door.plans.get(req.plan.trim()).ok_or_else(|| {
        AppError::field("plan", format!("one of: {}", state.door.plans.ids().join(", ")))
    })?;
    let status = if plan.is_trial() { BillingStatus::Trialing } else { BillingStatus::Active };
    let mut tx = state.door.db.begin().await?;
    let locked = subscription::store::lock_tenant(&mut tx, tenant.0)
        .await?
        .ok_or_else(|| conflict("a deleted merchant's plan cannot change"))?;
    subscription::store::set_status(
        &mut tx,
        tenant.0,
        status,
        Some(&plan.id),
        state.billing.clock.now(),
    )
    .await?;
    tx.commit().await?;
    let before = BillingStatus::parse(&locked.billing_status).unwrap_or(BillingStatus::Active);
    subscription::changed(&state.billing, tenant, before, status).await;
    audit::record(
        &state.door.db,
        &admin,
        "merchant.plan",
        Some(tenant.0),
        &ent_id,
        json!({ "from": locked.plan, "to": plan.id }),
    )
    .await?;
    respond(&state, tenant).await
}

#[derive(Deserialize)]
pub(super) struct TrialRequest {
    days: i64,
}

/// Extends the trial by `days` from its current end (or from now, if it already ended).
pub(super) async fn extend_trial(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
    ApiJson(req): ApiJson<TrialRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, id).await?;
    if !(1..=365).contains(&req.days) {
        return Err(AppError::field("days", "between 1 and 365"));
    }
    // A trial that ended (the merchant was suspended for it) starts again from now.
    let now = state.billing.clock.now();
    let ended =
        platform_store::extend_trial(&state.door.db, tenant.0, req.days as i32, now).await?;
    let (ends, before) =
        ended.ok_or_else(|| conflict("only a merchant on the trial plan has a trial to extend"))?;
    let before = BillingStatus::parse(&before).unwrap_or(BillingStatus::Trialing);
    let after = if before == BillingStatus::Suspended { BillingStatus::Trialing } else { before };
    subscription::changed(&state.billing, tenant, before, after).await;
    audit::record(
        &state.door.db,
        &admin,
        "merchant.trial",
        Some(tenant.0),
        &ent_id,
        json!({ "days": req.days, "ends_at": ends }),
    )
    .await?;
    respond(&state, tenant).await
}

#[derive(Deserialize, Default)]
pub(super) struct DeleteRequest {
    /// Remove everything now instead of after the grace period…
    #[serde(default)]
    hard: bool,
    /// …which needs the merchant's ent_id typed again.
    #[serde(default)]
    confirm: Option<String>,
}

pub(super) async fn delete(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
    OptionalJson(req): OptionalJson<DeleteRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, id).await?;
    if req.hard {
        if req.confirm.as_deref().map(str::trim) != Some(ent_id.as_str()) {
            return Err(AppError::field(
                "confirm",
                "type the merchant's ent_id to delete it for good",
            ));
        }
        lifecycle::soft_delete(&state, tenant).await?;
        let purged = lifecycle::purge(&state.door.db, &state.storage, tenant, false).await?;
        audit::record(
            &state.door.db,
            &admin,
            "merchant.purge",
            Some(tenant.0),
            &ent_id,
            json!({ "purged": purged }),
        )
        .await?;
        return Ok(Json(json!({ "purged": true, "id": tenant.0 })).into_response());
    }
    let purge_after = lifecycle::soft_delete(&state, tenant)
        .await?
        .ok_or_else(|| conflict("this merchant is already deleted"))?;
    audit::record(
        &state.door.db,
        &admin,
        "merchant.delete",
        Some(tenant.0),
        &ent_id,
        json!({ "purge_after": purge_after }),
    )
    .await?;
    respond(&state, tenant).await
}

pub(super) async fn restore(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, id).await?;
    if !lifecycle::restore(&state, tenant).await? {
        return Err(conflict("only a deleted merchant awaiting purge can be restored"));
    }
    audit::record(&state.door.db, &admin, "merchant.restore", Some(tenant.0), &ent_id, json!({}))
        .await?;
    respond(&state, tenant).await
}

/// The user of the merchant's enabled owner, whom a support session acts as; the merchant's
/// own audit log records that the admin opened it.
async fn owner_to_act_as(
    state: &Platform,
    tenant: TenantId,
    admin: &PlatformSession,
) -> Result<i64, AppError> {
    let mut tx = TenantTx::begin(&state.door.db, tenant).await?;
    let owner = store::enabled_owner(&mut tx).await?;
    let (agent_id, user_id, name) =
        owner.ok_or_else(|| conflict("this merchant has no enabled owner to act as"))?;
    let entry = crate::merchant::audit::store::NewEntry {
        agent_id,
        agent_name: &format!("{name} (support: {})", admin.email),
        action: "support.session",
        target: &admin.email,
        detail: json!({ "admin_id": admin.user_id }),
    };
    crate::merchant::audit::store::create(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(user_id)
}

/// Opens the merchant's workspace as its owner, for support: a one-hour agent session
/// marked with the admin's id (pages show a banner; the merchant's audit log names the
/// admin). Sets the session cookie for browsers and returns the token for API clients.
pub(super) async fn impersonate(
    State(state): State<Platform>,
    admin: PlatformSession,
    meta: ClientMeta,
    device: crate::auth::sessions::Device,
    jar: CookieJar,
    PathId(id): PathId<TenantId>,
) -> Result<Response, AppError> {
    let (tenant_id, ent_id) = target(&state, id).await?;
    let tenant = state.door.tenants.by_id(tenant_id).await?.ok_or(AppError::NotFound)?;
    if tenant.status != tenants::TenantStatus::Active {
        return Err(conflict("support sessions open only in an active merchant's workspace"));
    }
    let user_id = owner_to_act_as(&state, tenant_id, &admin).await?;
    let opening = crate::auth::sessions::Opening {
        user_id,
        kind: crate::auth::token::SessionKind::Support,
        tenant: Some(&tenant),
        impersonator: Some(admin.user_id),
        proven: None,
        device: &device,
    };
    let issued = crate::auth::sessions::open(&state.door, opening).await?;
    audit::record(
        &state.door.db,
        &admin,
        "merchant.impersonate",
        Some(tenant_id.0),
        &ent_id,
        json!({ "as_user": user_id, "expires_at": issued.expires_at }),
    )
    .await?;
    let jar = jar.add(session::session_cookie(&issued, &meta, &state.config));
    let body = json!({
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": issued.expires_at,
        "redirect": "/app",
    });
    Ok((StatusCode::OK, jar, Json(body)).into_response())
}

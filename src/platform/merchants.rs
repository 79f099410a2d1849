//! Merchants as the console manages them: the searchable list, one merchant's detail (usage,
//! agents, plan, recent admin actions), and the actions — suspend, resume, change plan,
//! extend trial, delete (soft or, confirmed, hard), restore, and support sessions.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenants::{TenantId, TenantTx};

use billing::BillingStatus;

use super::{PlatformSession, audit, lifecycle};
use crate::{
    auth::{session, store},
    http::{
        AppError, Routes, Scope,
        client::ClientMeta,
        extract::{ApiJson, OptionalJson},
        input::{like_pattern, path_id},
    },
    merchant::subscription,
    startup::AppState,
};

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/platform/v1/merchants", Scope::Platform, list_api)
        .get("/api/platform/v1/merchants/{id}", Scope::Platform, detail_api)
        .post("/api/platform/v1/merchants/{id}/suspend", Scope::Platform, suspend)
        .post("/api/platform/v1/merchants/{id}/resume", Scope::Platform, resume)
        .post("/api/platform/v1/merchants/{id}/plan", Scope::Platform, change_plan)
        .post("/api/platform/v1/merchants/{id}/trial", Scope::Platform, extend_trial)
        .post("/api/platform/v1/merchants/{id}/delete", Scope::Platform, delete)
        .post("/api/platform/v1/merchants/{id}/restore", Scope::Platform, restore)
        .post("/api/platform/v1/merchants/{id}/impersonate", Scope::Platform, impersonate)
}

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

#[derive(Serialize, sqlx::FromRow)]
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

pub async fn search(state: &AppState, q: &ListQuery) -> Result<MerchantList, AppError> {
    let db = &state.db;
    let plan = filter_value(q.plan.as_deref(), &state.plans.ids(), "plan")?;
    let status = filter_value(q.status.as_deref(), &["active", "suspended", "deleted"], "status")?;
    let pattern =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| like_pattern(&s.chars().take(100).collect::<String>()));
    let conditions = "($1::text is null or t.name ilike $1 or t.ent_id ilike $1
            or exists (select 1 from public.tenant_members m join public.users u on u.id = m.user_id
                       where m.tenant_id = t.id and u.email ilike $1))
        and ($2::text is null or t.plan = $2)
        and ($3::text is null or t.status = $3)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from public.tenants t where {conditions}"
    )))
    .bind(&pattern)
    .bind(&plan)
    .bind(&status)
    .fetch_one(db)
    .await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let merchants: Vec<MerchantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {MERCHANT_COLUMNS} from public.tenants t where {conditions}
         order by t.id desc limit $4 offset $5"
    )))
    .bind(&pattern)
    .bind(&plan)
    .bind(&status)
    .bind(PAGE_SIZE)
    .bind((page - 1) * PAGE_SIZE)
    .fetch_all(db)
    .await?;
    Ok(MerchantList { merchants, total, page, pages })
}

async fn list_api(
    State(state): State<AppState>,
    _admin: PlatformSession,
    Query(q): Query<ListQuery>,
) -> Result<Json<MerchantList>, AppError> {
    Ok(Json(search(&state, &q).await?))
}

// ---------------------------------------------------------------------------------------
// Detail

#[derive(Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub agent_name: String,
    pub action: String,
    pub target: String,
    pub created_at: DateTime<Utc>,
}

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
async fn merchant_row(db: &sqlx::PgPool, id: i64) -> Result<MerchantRow, AppError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {MERCHANT_COLUMNS} from public.tenants t where t.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound)
}

pub async fn detail(state: &AppState, raw_id: &str) -> Result<MerchantDetail, AppError> {
    let id = path_id(raw_id)?;
    let merchant = merchant_row(&state.db, id).await?;
    let (suspended_at, deleted_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("select suspended_at, deleted_at from public.tenants where id = $1")
            .bind(id)
            .fetch_one(&state.db)
            .await?;
    let (messages_today, messages_30d): (i64, i64) = sqlx::query_as(
        "select coalesce(sum(messages) filter (where day = (now() at time zone 'utc')::date), 0)::bigint,
                coalesce(sum(messages), 0)::bigint
         from public.usage_daily where tenant_id = $1 and day > (now() at time zone 'utc')::date - 30",
    )
    .bind(id)
    .fetch_one(&state.db)
    .await?;
    let mut tx = TenantTx::begin(&state.db, TenantId(id)).await?;
    let agents = store::list_agents(&mut tx).await?;
    let merchant_audit: Vec<AuditEntry> = sqlx::query_as(
        "select id, agent_name, action, target, created_at from audit_log order by id desc limit 20",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let platform_audit = audit::search(
        &state.db,
        &audit::AuditQuery { tenant_id: Some(id), limit: Some(20), ..Default::default() },
    )
    .await?
    .entries;
    let plan = state.plans.get(&merchant.plan);
    let tenant = TenantId(id);
    let hub = &state.chat.hub;
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

async fn detail_api(
    State(state): State<AppState>,
    _admin: PlatformSession,
    Path(id): Path<String>,
) -> Result<Json<MerchantDetail>, AppError> {
    Ok(Json(detail(&state, &id).await?))
}

// ---------------------------------------------------------------------------------------
// Actions

/// The merchant an action names, as `(id, ent_id)`; 404 if there is none.
async fn target(state: &AppState, raw_id: &str) -> Result<(TenantId, String), AppError> {
    let id = path_id(raw_id)?;
    let ent_id: Option<String> =
        sqlx::query_scalar("select ent_id from public.tenants where id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await?;
    Ok((TenantId(id), ent_id.ok_or(AppError::NotFound)?))
}

fn conflict(message: &'static str) -> AppError {
    AppError::conflict("invalid_state", None, message)
}

async fn respond(state: &AppState, id: TenantId) -> Result<Response, AppError> {
    Ok(Json(merchant_row(&state.db, id.0).await?).into_response())
}

#[derive(Deserialize, Default)]
struct SuspendRequest {
    #[serde(default)]
    reason: Option<String>,
}

async fn suspend(
    State(state): State<AppState>,
    admin: PlatformSession,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<SuspendRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, &id).await?;
    let reason = crate::http::input::optional_text("reason", body.reason.as_deref(), 500)?;
    if !lifecycle::suspend(&state, tenant).await? {
        return Err(conflict("only an active merchant can be suspended"));
    }
    audit::record(
        &state.db,
        &admin,
        "merchant.suspend",
        Some(tenant.0),
        &ent_id,
        json!({ "reason": reason }),
    )
    .await?;
    respond(&state, tenant).await
}

async fn resume(
    State(state): State<AppState>,
    admin: PlatformSession,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, &id).await?;
    if !lifecycle::resume(&state, tenant).await? {
        return Err(conflict("only a suspended merchant can be resumed"));
    }
    audit::record(&state.db, &admin, "merchant.resume", Some(tenant.0), &ent_id, json!({})).await?;
    respond(&state, tenant).await
}

#[derive(Deserialize)]
struct PlanRequest {
    plan: String,
}

/// Assigns a plan by hand (manual billing, or an override of what Stripe says until its next
/// event): a paid plan makes the merchant active, the trial makes it trialing again.
async fn change_plan(
    State(state): State<AppState>,
    admin: PlatformSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PlanRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, &id).await?;
    let plan = state.plans.get(req.plan.trim()).ok_or_else(|| {
        AppError::field("plan", format!("one of: {}", state.plans.ids().join(", ")))
    })?;
    let status = if plan.is_trial() { BillingStatus::Trialing } else { BillingStatus::Active };
    let mut tx = state.db.begin().await?;
    let locked = subscription::store::lock_tenant(&mut tx, tenant.0)
        .await?
        .ok_or_else(|| conflict("a deleted merchant's plan cannot change"))?;
    subscription::store::set_status(&mut tx, tenant.0, status, Some(&plan.id), state.clock.now())
        .await?;
    tx.commit().await?;
    let before = BillingStatus::parse(&locked.billing_status).unwrap_or(BillingStatus::Active);
    subscription::changed(&state, tenant, before, status).await;
    audit::record(
        &state.db,
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
struct TrialRequest {
    days: i64,
}

/// Extends the trial by `days` from its current end (or from now, if it already ended).
async fn extend_trial(
    State(state): State<AppState>,
    admin: PlatformSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TrialRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, &id).await?;
    if !(1..=365).contains(&req.days) {
        return Err(AppError::field("days", "between 1 and 365"));
    }
    // A trial that ended (the merchant was suspended for it) starts again from now.
    let now = state.clock.now();
    let ended: Option<(DateTime<Utc>, String)> = sqlx::query_as(
        "update public.tenants t
         set trial_ends_at = greatest(coalesce(t.trial_ends_at, $3), $3) + make_interval(days => $2),
             billing_status = case when t.billing_status = 'suspended' then 'trialing' else t.billing_status end,
             updated_at = now()
         from (select billing_status from public.tenants where id = $1 for update) old
         where t.id = $1 and t.status <> 'deleted' and t.plan = 'trial'
         returning t.trial_ends_at, old.billing_status",
    )
    .bind(tenant.0)
    .bind(req.days as i32)
    .bind(now)
    .fetch_optional(&state.db)
    .await?;
    let (ends, before) =
        ended.ok_or_else(|| conflict("only a merchant on the trial plan has a trial to extend"))?;
    let before = BillingStatus::parse(&before).unwrap_or(BillingStatus::Trialing);
    let after = if before == BillingStatus::Suspended { BillingStatus::Trialing } else { before };
    subscription::changed(&state, tenant, before, after).await;
    audit::record(
        &state.db,
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
struct DeleteRequest {
    /// Remove everything now instead of after the grace period…
    #[serde(default)]
    hard: bool,
    /// …which needs the merchant's ent_id typed again.
    #[serde(default)]
    confirm: Option<String>,
}

async fn delete(
    State(state): State<AppState>,
    admin: PlatformSession,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<DeleteRequest>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, &id).await?;
    if req.hard {
        if req.confirm.as_deref().map(str::trim) != Some(ent_id.as_str()) {
            return Err(AppError::field(
                "confirm",
                "type the merchant's ent_id to delete it for good",
            ));
        }
        lifecycle::soft_delete(&state, tenant).await?;
        let purged = lifecycle::purge(&state.db, &state.storage, tenant, false).await?;
        audit::record(
            &state.db,
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
        &state.db,
        &admin,
        "merchant.delete",
        Some(tenant.0),
        &ent_id,
        json!({ "purge_after": purge_after }),
    )
    .await?;
    respond(&state, tenant).await
}

async fn restore(
    State(state): State<AppState>,
    admin: PlatformSession,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (tenant, ent_id) = target(&state, &id).await?;
    if !lifecycle::restore(&state, tenant).await? {
        return Err(conflict("only a deleted merchant awaiting purge can be restored"));
    }
    audit::record(&state.db, &admin, "merchant.restore", Some(tenant.0), &ent_id, json!({}))
        .await?;
    respond(&state, tenant).await
}

/// Opens the merchant's workspace as its owner, for support: a one-hour agent session
/// marked with the admin's id (pages show a banner; the merchant's audit log names the
/// admin). Sets the session cookie for browsers and returns the token for API clients.
async fn impersonate(
    State(state): State<AppState>,
    admin: PlatformSession,
    meta: ClientMeta,
    device: crate::auth::sessions::Device,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (tenant_id, ent_id) = target(&state, &id).await?;
    let tenant = state.tenants.by_id(tenant_id).await?.ok_or(AppError::NotFound)?;
    if tenant.status != tenants::TenantStatus::Active {
        return Err(conflict("support sessions open only in an active merchant's workspace"));
    }
    let mut tx = TenantTx::begin(&state.db, tenant_id).await?;
    let owner: Option<(i64, i64, String)> = sqlx::query_as(
        "select id, user_id, display_name from agents
         where role = 'owner' and disabled_at is null order by id limit 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (agent_id, user_id, name) =
        owner.ok_or_else(|| conflict("this merchant has no enabled owner to act as"))?;
    sqlx::query(
        "insert into audit_log (agent_id, agent_name, action, target, detail)
         values ($1, $2, 'support.session', $3, $4)",
    )
    .bind(agent_id)
    .bind(format!("{name} (support: {})", admin.email))
    .bind(&admin.email)
    .bind(json!({ "admin_id": admin.user_id }))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let opening = crate::auth::sessions::Opening {
        user_id,
        kind: crate::auth::token::SessionKind::Support,
        tenant: Some(&tenant),
        impersonator: Some(admin.user_id),
        proven: None,
        device: &device,
    };
    let issued = crate::auth::sessions::open(&state, opening).await?;
    audit::record(
        &state.db,
        &admin,
        "merchant.impersonate",
        Some(tenant_id.0),
        &ent_id,
        json!({ "as_user": user_id, "expires_at": issued.expires_at }),
    )
    .await?;
    let jar = jar.add(session::session_cookie(&issued, &meta, &state));
    let body = json!({
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": issued.expires_at,
        "redirect": "/app",
    });
    Ok((StatusCode::OK, jar, Json(body)).into_response())
}

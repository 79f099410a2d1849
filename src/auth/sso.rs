//! Single sign-on from a merchant's own system, GOFLY's way:
//!
//! 1. The merchant's server calls `GET /other/internalToken?account=<agent email>` (naming
//!    the merchant by `ent_id=` or its Host) from an address in the merchant's SSO
//!    whitelist, presenting the merchant's SSO secret (`Authorization: Bearer <secret>` or
//!    `X-Kefu-Sso-Secret`). The whitelist alone is not enough. It gets a one-time token
//!    (256 bits, 60 seconds, stored as a SHA-256).
//! 2. It sends the agent's browser to `GET /sso?token=…&redirect=/main`, which signs the agent
//!    in and redirects to a path on this site only (absolute URLs, `//host` and backslash
//!    tricks are refused). A token works once, however many redemptions race.

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use base64::Engine as _;
use chrono::Duration;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tenants::TenantTx;

use super::{links, session, store};
use crate::{
    http::{AppError, AppState, ClientMeta, ResolvedTenant, Routes, Scope, local_redirect_target},
    merchant::settings::{MerchantSettings, SSO_SECRET_KEY, store_setting},
};

/// How long an SSO token works.
pub const TOKEN_TTL_SECS: i64 = 60;

pub fn routes(limit: &super::AuthRateLimit) -> Routes {
    Routes::new()
        .get("/other/internalToken", Scope::Public, internal_token)
        .add(
            axum::http::Method::GET,
            "/sso",
            Scope::Public,
            axum::routing::get(redeem).layer(limit.clone()),
        )
        .post("/api/v1/settings/sso_secret", Scope::Tenant, new_secret)
        .admin()
}

/// The hex SHA-256 of a secret (what is stored).
fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn presented_secret(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    bearer.or_else(|| headers.get("x-kefu-sso-secret").and_then(|v| v.to_str().ok()).map(str::trim))
}

/// The one answer for every refusal before the caller is known, so nothing tells an
/// outsider whether its address or its secret was wrong (the log says which).
fn denied(why: &str) -> AppError {
    tracing::warn!(reason = why, "an SSO token request was refused");
    AppError::forbidden("sso_denied", "single sign-on is not allowed from here")
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    account: String,
}

async fn internal_token(
    State(state): State<AppState>,
    ResolvedTenant(tenant): ResolvedTenant,
    meta: ClientMeta,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, AppError> {
    let plan = state.plans.get(&tenant.plan).unwrap_or_else(|| state.plans.trial());
    if !plan.features.sso {
        return Err(AppError::plan_limit(format!(
            "single sign-on is not part of the {} plan",
            plan.name
        )));
    }
    let mut tx = TenantTx::begin(&state.db, tenant.id).await?;
    let settings = MerchantSettings::load(&mut tx).await?;
    let stored: Option<String> =
        sqlx::query_scalar("select value #>> '{}' from settings where key = $1")
            .bind(SSO_SECRET_KEY)
            .fetch_optional(&mut *tx)
            .await?;
    let allowed = settings
        .sso_ip_whitelist
        .iter()
        .any(|range| range.parse::<ipnet::IpNet>().is_ok_and(|net| net.contains(&meta.ip)));
    if !allowed {
        return Err(denied("client address not in the SSO whitelist"));
    }
    let (Some(stored), Some(presented)) =
        (stored.filter(|s| !s.is_empty()), presented_secret(&headers))
    else {
        return Err(denied("no SSO secret set or presented"));
    };
    if !bool::from(secret_hash(presented).as_bytes().ct_eq(stored.as_bytes())) {
        return Err(denied("wrong SSO secret"));
    }
    let account = q.account.trim();
    let agent: Option<(i64, String)> = sqlx::query_as(
        "select a.user_id, u.email from agents a join public.users u on u.id = a.user_id
         where lower(u.email) = lower($1) and a.disabled_at is null",
    )
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, email)) = agent else {
        return Err(AppError::bad_request_status(
            StatusCode::NOT_FOUND,
            "unknown_account",
            "no active agent of this merchant has this email",
        ));
    };
    let token =
        links::issue(&mut tx, user_id, "sso", Some(tenant.id.0), Duration::seconds(TOKEN_TTL_SECS))
            .await?;
    tx.commit().await?;
    tracing::info!(tenant = tenant.id.0, user = user_id, "SSO token issued");
    let body = serde_json::json!({
        "token": token,
        "expires_in": TOKEN_TTL_SECS,
        "account": email,
        "login_url": format!("/sso?token={token}&redirect=/app"),
    });
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct RedeemQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    redirect: Option<String>,
}

async fn redeem(
    State(state): State<AppState>,
    meta: ClientMeta,
    jar: CookieJar,
    Query(q): Query<RedeemQuery>,
) -> Result<Response, AppError> {
    // Where to go is checked first: a bad target refuses the whole request.
    let target = match q.redirect.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => "/app".to_owned(),
        Some(raw) => local_redirect_target(raw).ok_or_else(|| {
            AppError::bad_request(
                "bad_redirect",
                "redirect must be a path on this site, like /main",
            )
        })?,
    };
    let mut tx = state.db.begin().await?;
    let link = links::redeem(&mut tx, &q.token, "sso").await?;
    tx.commit().await?;
    let Some(link) = link else {
        return Err(AppError::bad_request_status(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "this sign-in link was used already, has expired, or is not valid",
        ));
    };
    let tenant = tenants::TenantId(link.tenant_id.ok_or(AppError::Unauthorized)?);
    // The agent must still be active there.
    let mut ttx = TenantTx::begin(&state.db, tenant).await?;
    let active = store::active_agent_by_user(&mut ttx, link.user_id).await?;
    ttx.commit().await?;
    if active.is_none() {
        return Err(AppError::Unauthorized);
    }
    let super::LoginOutcome::Session { issued, .. } =
        super::session_for(&state, link.user_id, tenant).await?
    else {
        return Err(AppError::Unauthorized);
    };
    store::touch_login(&state.db, link.user_id).await?;
    let jar = jar.add(session::session_cookie(&issued, &meta, &state));
    Ok((jar, Redirect::to(&target)).into_response())
}

/// `POST /api/v1/settings/sso_secret` (admins): a new SSO secret, shown this once; the old
/// one stops working.
async fn new_secret(
    State(state): State<AppState>,
    session: super::session::AgentSession,
) -> Result<Json<serde_json::Value>, AppError> {
    session.require_admin()?;
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut tx = session.tx(&state).await?;
    store_setting(&mut tx, SSO_SECRET_KEY, serde_json::Value::String(secret_hash(&secret))).await?;
    crate::merchant::audit::record(&mut tx, &session, "sso.secret", "", serde_json::json!({}))
        .await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "secret": secret })))
}

//! Single sign-on from a merchant's own system, GOFLY's way:
//!
//! 1. The merchant's server calls `GET /other/internalToken?account=<agent email>` (naming
//!    the merchant by `ent_id=` or its Host) from an address in the merchant's SSO
//!    whitelist, presenting the merchant's SSO secret (`Authorization: Bearer <secret>` or
//!    `X-Kefu-Sso-Secret`). The whitelist alone is not enough, and a caller who has not
//!    proven both hears nothing else (403, whatever the plan). It gets a one-time token (256
//!    bits, 60 seconds, stored as a SHA-256) — for an agent whose role is at most that of
//!    whoever set the current secret, and, unless the owner let single sign-on count as a
//!    second factor (`sso_satisfies_2fa`), only for people who sign in without one.
//! 2. It sends the agent's browser to `GET /sso?token=…&redirect=/main`, which signs the agent
//!    in and redirects to a path on this site only (absolute URLs, `//host` and backslash
//!    tricks are refused). A token works once, however many redemptions race.

use super::ctx::{Admin, Ctx};
use crate::ids::AgentId;
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

use super::Auth;
use super::{links, session};
use crate::{
    http::{AppError, ClientMeta, ResolvedTenant, local_redirect_target},
    merchant::settings::{
        MerchantSettings, SSO_SECRET_KEY, store as settings_store, store_setting,
    },
};

/// The settings key naming the agent who set the current SSO secret.
const SSO_SET_BY_KEY: &str = "sso_secret_set_by";

/// How long an SSO token works.
pub const TOKEN_TTL_SECS: i64 = 60;

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
pub(super) struct TokenQuery {
    #[serde(default)]
    account: String,
}

pub(super) async fn internal_token(
    State(state): State<Auth>,
    ResolvedTenant(tenant): ResolvedTenant,
    meta: ClientMeta,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.door.db, tenant.id).await?;
    let settings = MerchantSettings::load(&mut tx).await?;
    // The caller proves who it is before anything else is said (not even the plan).
    authenticate_caller(&mut tx, &settings, &meta, &headers).await?;
    crate::merchant::subscription::require_feature(
        &state.door.plans,
        &tenant,
        billing::Feature::Sso,
    )?;
    let account = q.account.trim();
    let agent = super::store::active_agent_by_email(&mut tx, account).await?;
    let Some((user_id, email, role, two_factor)) = agent else {
        return Err(AppError::bad_request_status(
            StatusCode::NOT_FOUND,
            "unknown_account",
            "no active agent of this merchant has this email",
        ));
    };
    may_sign_in(&mut tx, &settings, role, two_factor).await?;
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

/// That the caller is the merchant's system: an address in the whitelist and the secret.
async fn authenticate_caller(
    tx: &mut TenantTx,
    settings: &MerchantSettings,
    meta: &ClientMeta,
    headers: &HeaderMap,
) -> Result<(), AppError> {
    let stored = settings_store::get(tx, SSO_SECRET_KEY).await?;
    let stored = stored.as_ref().and_then(|v| v.as_str());
    let allowed = settings
        .sso_ip_whitelist
        .iter()
        .any(|range| range.parse::<ipnet::IpNet>().is_ok_and(|net| net.contains(&meta.ip)));
    if !allowed {
        return Err(denied("client address not in the SSO whitelist"));
    }
    let (Some(stored), Some(presented)) =
        (stored.filter(|s| !s.is_empty()), presented_secret(headers))
    else {
        return Err(denied("no SSO secret set or presented"));
    };
    if !bool::from(secret_hash(presented).as_bytes().ct_eq(stored.as_bytes())) {
        return Err(denied("wrong SSO secret"));
    }
    Ok(())
}

/// Whether SSO may sign in an agent with `role` (and a second factor or not): only roles up
/// to that of whoever set the current secret (an admin's secret never opens the owner's
/// account; a secret whose setter left or was disabled opens nothing), and nobody who signs
/// in with a second factor — nor anyone at all where the merchant requires one — unless the
/// owner let single sign-on count as the second factor.
async fn may_sign_in(
    tx: &mut TenantTx,
    settings: &MerchantSettings,
    role: crate::http::Role,
    two_factor: bool,
) -> Result<(), AppError> {
    let refused = |why: &'static str| AppError::forbidden("sso_not_allowed", why);
    let set_by = settings_store::get(tx, SSO_SET_BY_KEY).await?;
    let set_by = set_by.as_ref().and_then(|v| v.get("agent_id")).and_then(|id| id.as_i64());
    // A secret from before setters were recorded was made by an admin (the route's level).
    let authority: Option<crate::http::Role> = match set_by {
        None => Some(crate::http::Role::Admin),
        Some(agent) => super::store::active_agent(tx, AgentId(agent)).await?.map(|a| a.role),
    };
    let Some(authority) = authority else {
        return Err(refused(
            "whoever set the SSO secret no longer manages this merchant; set a new secret",
        ));
    };
    if role > authority {
        return Err(refused(
            "single sign-on cannot sign in an account above whoever set the SSO secret",
        ));
    }
    if (two_factor || settings.require_2fa) && !settings.sso_satisfies_2fa {
        return Err(refused(
            "this account signs in with two-step verification; the owner can let single sign-on count as it",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct RedeemQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    redirect: Option<String>,
}

pub(super) async fn redeem(
    State(state): State<Auth>,
    meta: ClientMeta,
    device: super::sessions::Device,
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
    let mut tx = state.door.db.begin().await?;
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
    // The merchant's system vouches for the person now (session_for checks they are still
    // an active agent there).
    let mut conn = state.door.db.acquire().await?;
    let generation = super::sessions::credential_gen(&mut conn, link.user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    drop(conn);
    let proven = super::Proven { user_id: link.user_id, generation };
    let super::LoginOutcome::Session { issued, .. } =
        super::session_for(&state, proven, tenant, &device).await?
    else {
        return Err(AppError::Unauthorized);
    };
    super::store::touch_login(&state.door.db, link.user_id).await?;
    let jar = jar.add(session::session_cookie(&issued, &meta, &state.config));
    Ok((jar, Redirect::to(&target)).into_response())
}

/// `POST /api/v1/settings/sso_secret` (admins): a new SSO secret, shown this once; the old
/// one stops working.
pub(super) async fn new_secret(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
) -> Result<Json<serde_json::Value>, AppError> {
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    store_setting(&mut tx, SSO_SECRET_KEY, serde_json::Value::String(secret_hash(&secret))).await?;
    // Whose authority the secret carries (see `may_sign_in`).
    store_setting(&mut tx, SSO_SET_BY_KEY, serde_json::json!({ "agent_id": session.agent.id }))
        .await?;
    crate::merchant::audit::commit(tx, &session, "sso.secret", "", serde_json::json!({})).await?;
    Ok(Json(serde_json::json!({ "secret": secret })))
}

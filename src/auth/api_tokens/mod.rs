//! API tokens: a merchant's own systems call the REST API with
//! `Authorization: Bearer kefu_<ent_id>_<secret>`. Admins create them (named, `read` or
//! `write`), see when each was last used, and revoke them. Only the secret's SHA-256 is
//! kept; the token is shown once.
//!
//! A token acts as the admin who created it, and only on the routes whose handler takes a
//! `Ctx<ApiToken<Read>>` or `Ctx<ApiToken<Write>>` (conversations, messages, visitors, tags,
//! agents; the route table marks them `.api()` for the docs): never on settings, the team,
//! billing or tokens themselves. A `read` token may only call `ApiToken<Read>` routes. A
//! token stops working when revoked or when its admin is disabled or no longer an admin.

use crate::auth::ctx::Door;
use crate::ids::ApiTokenId;
use axum::extract::FromRef;
use axum::{
    Json,
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use tenants::{EntId, TenantStatus, TenantTx};

use super::{
    ctx::{Admin, Ctx},
    session::AgentSession,
};
use crate::http::{
    AppError, RouteSpec, Routes, Scope,
    extract::{ApiJson, PathId},
};

mod store;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/api_tokens", Scope::Tenant, list)
        .admin()
        .post("/api/v1/api_tokens", Scope::Tenant, create)
        .admin()
        .feature(billing::Feature::Api)
        .delete("/api/v1/api_tokens/{id}", Scope::Tenant, revoke)
        .admin()
}

/// What every API token starts with.
pub const PREFIX: &str = "kefu_";
/// Most live tokens per merchant.
const MAX_TOKENS: i64 = 50;

/// What an API-token session may do; `Write` includes `Read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Write,
}

/// The token behind an API session.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: ApiTokenId,
    pub scope: TokenScope,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a bearer value is an API token (rather than a session token).
pub fn is_api_token(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

/// The session an API token opens, on a route that lets tokens of scope `needed` in (none:
/// tokens may not use it). Anything wrong is 401, except a route tokens may not use, or a
/// write route with a read token (403 `token_scope`).
pub async fn authenticate(
    parts: &Parts,
    door: &Door,
    bearer: &str,
    needed: Option<TokenScope>,
) -> Result<(AgentSession, TenantTx), AppError> {
    let rest = bearer.strip_prefix(PREFIX).ok_or(AppError::Unauthorized)?;
    let (ent, _) = rest.split_once('_').ok_or(AppError::Unauthorized)?;
    let ent_id = EntId::parse(ent).map_err(|_| AppError::Unauthorized)?;
    let tenant = door.tenants.by_ent_id(&ent_id).await?.ok_or(AppError::Unauthorized)?;
    let route = parts.extensions.get::<RouteSpec>();
    let mut tx = TenantTx::begin(&door.db, tenant.id).await?;
    let found = store::find(&mut tx, &digest(bearer)).await?;
    let (id, scope, agent_id) = found.ok_or(AppError::Unauthorized)?;
    let Some(needed) = needed else {
        return Err(AppError::forbidden("token_scope", "API tokens cannot be used here"));
    };
    let scope = if scope == "write" { TokenScope::Write } else { TokenScope::Read };
    if scope < needed {
        return Err(AppError::forbidden("token_scope", "this token may only read"));
    }
    if tenant.status == TenantStatus::Suspended {
        return Err(AppError::TenantSuspended);
    }
    crate::merchant::subscription::require_feature(&door.plans, &tenant, billing::Feature::Api)?;
    crate::merchant::subscription::check_write(&tenant, &parts.method, route)?;
    // The admin's own sign-ins ending (a password change) leaves their tokens be: revoking
    // is how a token ends.
    let agent =
        super::store::agent_by_id(&mut tx, agent_id).await?.ok_or(AppError::Unauthorized)?;
    store::touch(&mut tx, id).await?;
    tracing::Span::current().record("tenant", tenant.id.0);
    let session = AgentSession {
        tenant,
        user_id: agent.user_id,
        agent,
        via_cookie: false,
        impersonator: None,
        api_token: Some(Token { id, scope }),
        session_id: None,
    };
    Ok((session, tx))
}

/// `GET /api/v1/api_tokens` → the merchant's live tokens, newest first.
async fn list(Ctx { mut tx, .. }: Ctx<Admin>) -> Result<Json<serde_json::Value>, AppError> {
    let tokens = store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    scope: TokenScope,
}

/// A new token of the merchant `ent_id` (`kefu_<ent_id>_<64 hex>`), and the prefix shown to
/// tell it apart (up to the secret's first four characters).
fn new_secret(ent_id: &tenants::EntId) -> (String, String) {
    let secret: [u8; 32] = rand::random();
    let token = format!("{PREFIX}{}_{}", ent_id.as_str(), hex::encode(secret));
    let prefix = token.chars().take(PREFIX.len() + ent_id.as_str().len() + 5).collect();
    (token, prefix)
}

/// `POST /api/v1/api_tokens {name, scope: read|write}` → 201 the token, with `token` (the
/// only time it is shown).
async fn create(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(req): ApiJson<NewToken>,
) -> Result<Response, AppError> {
    // A token outlives the session that makes it: a support session (a platform admin acting
    // for an hour) must not leave one behind.
    if session.impersonator.is_some() {
        return Err(AppError::forbidden(
            "support_session",
            "a support session cannot create API tokens",
        ));
    }
    let name = crate::http::input::text("name", &req.name, 80, true, false)?;
    let scope = match req.scope {
        TokenScope::Read => "read",
        TokenScope::Write => "write",
    };
    let (token, prefix) = new_secret(&session.tenant.ent_id);
    if store::count_live(&mut tx).await? >= MAX_TOKENS {
        return Err(AppError::conflict(
            "too_many",
            None,
            format!("at most {MAX_TOKENS} tokens; revoke one first"),
        ));
    }
    let new = store::NewToken {
        name: &name,
        scope,
        sha256: &digest(&token),
        prefix: &prefix,
        agent_id: session.agent.id.0,
    };
    let id = store::create(&mut tx, new).await?;
    let detail = json!({ "id": id, "scope": scope });
    crate::merchant::audit::record(&mut tx, &session, "api_token.create", &name, detail).await?;
    let out = store::get(&mut tx, id).await?;
    tx.commit().await?;
    let mut body = serde_json::to_value(out).map_err(|e| AppError::Internal(e.into()))?;
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/api_tokens/{id}` → 204; the token stops working at once.
async fn revoke(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<ApiTokenId>,
) -> Result<StatusCode, AppError> {
    let name = store::revoke(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(tx, &session, "api_token.revoke", &name, json!({ "id": id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

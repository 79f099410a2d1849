//! Who is calling: the agent session behind a request.
//!
//! The token comes from `Authorization: Bearer …` or the HttpOnly `kefu_session` cookie.
//! The token's tenant is authoritative: if the request also names a tenant (an `ent_id`
//! query parameter, or a Host that maps to a tenant) and it is another one, the answer is
//! 404 — the same as for a missing resource, so nothing reveals what exists elsewhere.
//! Cookie-authenticated requests that change state must carry the CSRF header.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{Method, header, request::Parts},
};
use axum_extra::extract::CookieJar;
use cookie::{Cookie, SameSite};
use tenants::{Tenant, TenantStatus, TenantTx};

use super::{
    api_tokens::TokenScope,
    ctx::Door,
    store::{self, AgentRow},
    token::{Claims, Issued, TokenKind},
};
use crate::config::Config;
use crate::http::{AppError, Role, client::ClientMeta, csrf};

pub const SESSION_COOKIE: &str = "kefu_session";
pub const SELECT_COOKIE: &str = "kefu_select";
/// Between an agent's password and their second factor (10 minutes).
pub const SECOND_FACTOR_COOKIE: &str = "kefu_2fa";

/// An authenticated agent of an active tenant.
#[derive(Clone, Debug)]
pub struct AgentSession {
    pub tenant: Arc<Tenant>,
    pub user_id: i64,
    pub agent: AgentRow,
    /// Authenticated by cookie (then state changes need the CSRF header) or bearer token.
    pub via_cookie: bool,
    /// Set when a platform admin opened this session on the merchant's behalf.
    pub impersonator: Option<Impersonator>,
    /// Set when the merchant's system called with an API token (acting as its admin).
    pub api_token: Option<super::api_tokens::Token>,
    /// The server-side session (auth::sessions) behind the token; none for an API token.
    pub session_id: Option<super::sessions::SessionId>,
}

/// The platform admin behind an impersonated session.
#[derive(Clone, Debug)]
pub struct Impersonator {
    pub user_id: i64,
    pub email: String,
}

impl AgentSession {
    pub async fn tx(&self, db: &sqlx::PgPool) -> Result<TenantTx, AppError> {
        Ok(TenantTx::begin(db, self.tenant.id).await?)
    }

    /// Whether the agent manages the merchant (owner or admin).
    pub fn is_admin(&self) -> bool {
        self.agent.role >= Role::Admin
    }

    /// At least `role` (403 `forbidden_role`). Handlers take a [`super::Ctx`] of their
    /// route's level, which checks this before they run.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.agent.role >= role {
            return Ok(());
        }
        Err(AppError::forbidden(
            "forbidden_role",
            match role {
                Role::Owner => "only the merchant's owner can do this",
                Role::Admin | Role::Agent => "only the merchant's admins can do this",
            },
        ))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A session token as the request presented it: `Authorization: Bearer …`, else the cookie.
pub struct Presented {
    pub token: String,
    /// Came in a cookie: state changes then need the CSRF header.
    pub via_cookie: bool,
}

impl Presented {
    /// Cookie-authenticated writes must carry the CSRF header (bearer clients are not exposed
    /// to CSRF).
    pub fn check_csrf(&self, parts: &Parts) -> Result<(), AppError> {
        if self.via_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        {
            let submitted = parts.headers.get(csrf::HEADER).and_then(|v| v.to_str().ok());
            csrf::verify(&parts.headers, submitted)?;
        }
        Ok(())
    }
}

/// The bearer token, else the value of cookie `name`; 401 when there is neither.
pub fn presented_token(parts: &Parts, cookie: &str) -> Result<Presented, AppError> {
    if let Some(token) = bearer(parts) {
        return Ok(Presented { token: token.to_owned(), via_cookie: false });
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let token = jar.get(cookie).map(|c| c.value().to_owned()).ok_or(AppError::Unauthorized)?;
    Ok(Presented { token, via_cookie: true })
}

impl<S: Send + Sync> FromRequestParts<S> for AgentSession
where
    Arc<Door>: FromRef<S>,
{
    type Rejection = AppError;

    /// The session alone, its transaction committed (for handlers that need no transaction
    /// of their own; the others take a [`super::Ctx`]). API tokens are refused: they open
    /// only the routes whose `Ctx` lets them in.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let (session, tx) = Self::open(parts, &Arc::<Door>::from_ref(state), None).await?;
        tx.commit().await?;
        Ok(session)
    }
}

impl AgentSession {
    /// The session the request presents (an API token or an agent's session token), and the
    /// tenant transaction it was loaded in, still open.
    pub(super) async fn open(
        parts: &Parts,
        door: &Door,
        api: Option<TokenScope>,
    ) -> Result<(Self, TenantTx), AppError> {
        if let Some(token) = bearer(parts).filter(|t| super::api_tokens::is_api_token(t)) {
            let (session, tx) = super::api_tokens::authenticate(parts, door, token, api).await?;
            ensure_request_names_this_tenant(parts, door, &session.tenant).await?;
            return Ok((session, tx));
        }
        let presented = presented_token(parts, SESSION_COOKIE)?;
        let claims: Claims = door.tokens.verify(&presented.token, TokenKind::Agent)?;
        let user_id = claims.user_id()?;
        let tenant_id = tenants::TenantId(claims.tid.ok_or(AppError::Unauthorized)?);
        let tenant = door.tenants.by_id(tenant_id).await?.ok_or(AppError::Unauthorized)?;
        ensure_request_names_this_tenant(parts, door, &tenant).await?;
        if tenant.status == TenantStatus::Suspended {
            return Err(AppError::TenantSuspended);
        }
        presented.check_csrf(parts)?;
        // A merchant whose subscription is inactive is read-only.
        let route = parts.extensions.get::<crate::http::RouteSpec>();
        crate::merchant::subscription::check_write(&tenant, &parts.method, route)?;
        // A support session lasts only while its admin still is one.
        let impersonator = match claims.imp {
            Some(admin_id) => Some(Impersonator {
                user_id: admin_id,
                email: crate::platform::admin_email(&door.db, admin_id)
                    .await?
                    .ok_or(AppError::Unauthorized)?,
            }),
            None => None,
        };
        let sid = claims.sid.ok_or(AppError::Unauthorized)?;
        let mut tx = TenantTx::begin(&door.db, tenant.id).await?;
        let version = claims.session_version.unwrap_or(0);
        let agent = store::agent_for_session(&mut tx, user_id, (sid, version), tenant.id)
            .await?
            .ok_or(AppError::Unauthorized)?;
        let span = tracing::Span::current();
        span.record("tenant", tenant.id.0);
        span.record("user", user_id);
        let session = Self {
            tenant,
            user_id,
            agent,
            via_cookie: presented.via_cookie,
            impersonator,
            api_token: None,
            session_id: Some(sid),
        };
        Ok((session, tx))
    }
}

/// A request that names a tenant (by `ent_id` or Host) must name the session's tenant.
async fn ensure_request_names_this_tenant(
    parts: &Parts,
    door: &Door,
    tenant: &Tenant,
) -> Result<(), AppError> {
    let query = parts.uri.query().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    if pairs.iter().any(|(key, value)| key == "ent_id" && value != tenant.ent_id.as_str()) {
        return Err(AppError::NotFound);
    }
    // A subdomain or a verified custom domain of another tenant (lookups are cached, misses too).
    if let Some(host) = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        if let Some(other) = door.tenants.by_host(host).await? {
            if other.id != tenant.id {
                return Err(AppError::NotFound);
            }
        }
    }
    Ok(())
}

/// The session cookie for an issued agent token.
pub fn session_cookie(issued: &Issued, meta: &ClientMeta, config: &Config) -> Cookie<'static> {
    auth_cookie(SESSION_COOKIE, issued, meta, config)
}

/// The short-lived cookie that carries a workspace-selection token.
pub fn select_cookie(issued: &Issued, meta: &ClientMeta, config: &Config) -> Cookie<'static> {
    auth_cookie(SELECT_COOKIE, issued, meta, config)
}

pub fn second_factor_cookie(
    issued: &Issued,
    meta: &ClientMeta,
    config: &Config,
) -> Cookie<'static> {
    auth_cookie(SECOND_FACTOR_COOKIE, issued, meta, config)
}

fn auth_cookie(
    name: &'static str,
    issued: &Issued,
    meta: &ClientMeta,
    config: &Config,
) -> Cookie<'static> {
    let ttl = (issued.expires_at - chrono::Utc::now()).num_seconds().max(0);
    Cookie::build((name, issued.token.clone()))
        .path("/")
        .http_only(true)
        .secure(meta.https || config.is_https())
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(ttl))
        .build()
}

/// A cookie that deletes `name`.
pub fn removal(name: &'static str) -> Cookie<'static> {
    let mut c = Cookie::build((name, "")).path("/").build();
    c.make_removal();
    c
}

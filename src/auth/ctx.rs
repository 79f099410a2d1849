//! A tenant route's access level as a type. A handler that takes `Ctx<Admin>` runs only for
//! the merchant's owner and admins; `Ctx<Agent>` for any agent; `Ctx<Owner>` for the owner.
//! The extractor loads the session once, enforces the level and the plan feature the route
//! table declares (`Routes::feature`), and hands the handler the tenant transaction the
//! session was read in: the handler does its work in it and commits it once.
//!
//! Routes a merchant's own systems may call take `Ctx<ApiToken<Read>>` (reads) or
//! `Ctx<ApiToken<Write>>` (writes): any agent session, or an API token of that scope. Every
//! other level refuses API tokens (403 `token_scope`).
//!
//! The level is declared twice — in the route table (what the docs, the OpenAPI document and
//! the role-matrix test read) and in the handler's type (what is enforced) — and the two
//! cannot disagree: a `Ctx` on a route declared for another level refuses every request
//! with a 500 that names the route, which the role-matrix test (walking the whole table)
//! reports.

use std::{marker::PhantomData, sync::Arc};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};
use sqlx::PgPool;
use tenants::{Registry, TenantTx};

use super::{api_tokens::TokenScope, session::AgentSession, token::TokenKeys};
use crate::http::{AppError, Role, RouteSpec};

/// What opening a session needs: the pool, the tenant registry, the token keys and the
/// plans (a route's plan feature). A feature's routes are generic over their state `S`
/// with `Arc<Door>: FromRef<S>`; the composition root's `AppState` holds one.
pub struct Door {
    pub db: PgPool,
    pub tenants: Arc<Registry>,
    pub tokens: Arc<TokenKeys>,
    pub plans: Arc<billing::Catalog>,
}

/// An access level: the least role a route serves (as its table declares it), and the least
/// role the extractor lets through (the handler decides the rest).
pub trait Level: Send + Sync + 'static {
    const ROLE: Role;
    const ENFORCED: Role = Self::ROLE;
    /// The API tokens let in besides agent sessions (none: sessions only).
    const TOKEN: Option<TokenScope> = None;
}

/// Any agent of the merchant.
pub enum Agent {}
/// The merchant's owner and admins.
pub enum Admin {}
/// The merchant's owner (billing).
pub enum Owner {}
/// An admin route on which agents may act on their own things (renaming themselves,
/// deleting their own note): the extractor lets every agent through, the handler tells
/// which case it is and calls `session.require(Role::Admin)` for the rest.
pub enum AdminOrSelf {}

/// Any agent of the merchant, or an API token of scope `S` ([`Read`] or [`Write`]).
pub struct ApiToken<S>(PhantomData<fn() -> S>);
/// A read-only API token (and every write token).
pub enum Read {}
/// A write API token.
pub enum Write {}

/// The scope an API-token level needs.
pub trait Scope: Send + Sync + 'static {
    const SCOPE: TokenScope;
}
impl Scope for Read {
    const SCOPE: TokenScope = TokenScope::Read;
}
impl Scope for Write {
    const SCOPE: TokenScope = TokenScope::Write;
}

impl<S: Scope> Level for ApiToken<S> {
    const ROLE: Role = Role::Agent;
    const TOKEN: Option<TokenScope> = Some(S::SCOPE);
}

impl Level for Agent {
    const ROLE: Role = Role::Agent;
}
impl Level for Admin {
    const ROLE: Role = Role::Admin;
}
impl Level for Owner {
    const ROLE: Role = Role::Owner;
}
impl Level for AdminOrSelf {
    const ROLE: Role = Role::Admin;
    const ENFORCED: Role = Role::Agent;
}

/// An agent session of at least level `L`, and its open tenant transaction.
pub struct Ctx<L: Level> {
    pub session: AgentSession,
    /// Committed by the handler once its work is done; dropped (rolled back) on an error.
    pub tx: TenantTx,
    level: PhantomData<fn() -> L>,
}

impl<L: Level, S: Send + Sync> FromRequestParts<S> for Ctx<L>
where
    Arc<Door>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let door = Arc::<Door>::from_ref(state);
        let route = parts.extensions.get::<RouteSpec>().cloned();
        if let Some(route) = &route {
            if route.role != L::ROLE || route.api != L::TOKEN.is_some() {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "{} {} is declared for {} (API tokens: {}) but its handler takes a Ctx for \
                     {} (API tokens: {:?})",
                    route.method,
                    route.path,
                    route.role,
                    route.api,
                    L::ROLE,
                    L::TOKEN
                )));
            }
        }
        let (session, tx) = AgentSession::open(parts, &door, L::TOKEN).await?;
        session.require(L::ENFORCED)?;
        if let Some(feature) = route.and_then(|r| r.feature) {
            crate::merchant::subscription::require_feature(&door.plans, &session.tenant, feature)?;
        }
        Ok(Self { session, tx, level: PhantomData })
    }
}

impl<L: Level> Ctx<L> {
    /// The session, its transaction committed: for handlers whose work is elsewhere (the
    /// platform's tables, Stripe) and must not hold a tenant transaction meanwhile.
    pub async fn commit(self) -> Result<AgentSession, AppError> {
        self.tx.commit().await?;
        Ok(self.session)
    }
}

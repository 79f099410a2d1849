//! The route table: every route is registered with its method and its scope, so tests can
//! walk all tenant-scoped routes (the isolation suite fails on a route it does not cover).
//! What the table says of a route travels with each request to it: the router puts the
//! route's [`RouteSpec`] in the request's extensions, where the session extractors read
//! whether API tokens may call it and whether it stays writable for a read-only merchant.

use axum::{
    Router,
    handler::Handler,
    http::Method,
    routing::{MethodRouter, delete, get, patch, post, put},
};

/// Who a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// No tenant: site pages, sign-up, login, health.
    Public,
    /// Reads or writes one tenant's data; must be covered by the isolation test.
    Tenant,
    /// Platform administration.
    Platform,
}

/// A role in a merchant's team, weakest first (so `>=` reads "at least"). It is also the
/// least role a tenant route serves: handlers enforce it (403 `forbidden_role`), and the
/// declaration in the table is what the role-matrix test holds them to. Stored and sent as
/// its lowercase name (`agents.role`, JSON).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Any agent of the merchant.
    Agent,
    /// Owners and admins (for routes acting on one's own things, e.g. renaming oneself or
    /// deleting one's own note, agents may act on those only).
    Admin,
    /// The merchant's owner only (billing).
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Agent, Self::Admin, Self::Owner].into_iter().find(|r| r.as_str() == raw)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// `agents.role` is text with a CHECK: a role reads and writes as its name.
impl sqlx::Type<sqlx::Postgres> for Role {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Role {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let raw = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Self::parse(raw).ok_or_else(|| format!("unknown role {raw:?}").into())
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Role {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub scope: Scope,
    pub role: Role,
    /// Callable with an API token (auth::api_tokens).
    pub api: bool,
    /// Agents of a merchant whose subscription is inactive (read-only) may still call it
    /// with a method that writes: billing itself, what creates nothing, one's own security.
    pub writable_when_read_only: bool,
    /// The plan feature it needs (402 `plan_limit` without it).
    pub feature: Option<billing::Feature>,
}

/// The handlers and the table describing them. `S` is the state the handlers take (the
/// composition root's `AppState`). The router is built at the end ([`Routes::into_router`]),
/// once every route's description is complete.
pub struct Routes<S> {
    handlers: Vec<MethodRouter<S>>,
    table: Vec<RouteSpec>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self { handlers: Vec::new(), table: Vec::new() }
    }
}

macro_rules! verb {
    ($name:ident, $method:expr, $routing:ident) => {
        pub fn $name<H, T>(self, path: &'static str, scope: Scope, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.add($method, path, scope, $routing(handler))
        }
    };
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` (a method router for exactly `method`) at `path`.
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        scope: Scope,
        handler: MethodRouter<S>,
    ) -> Self {
        assert!(
            !self.table.iter().any(|r| r.path == path && r.method == method),
            "route {method} {path} registered twice"
        );
        self.handlers.push(handler);
        self.table.push(RouteSpec {
            method,
            path,
            scope,
            role: Role::Agent,
            api: false,
            writable_when_read_only: false,
            feature: None,
        });
        self
    }

    /// Declares the route registered last as one for admins.
    pub fn admin(self) -> Self {
        self.least_role(Role::Admin)
    }

    /// Declares the route registered last as one for the owner.
    pub fn owner(self) -> Self {
        self.least_role(Role::Owner)
    }

    /// Declares the route registered last as part of the public REST API: merchants' systems
    /// may call it with an API token.
    pub fn api(mut self) -> Self {
        let last = self.table.last_mut().expect("api() follows a route");
        assert_eq!(
            last.scope,
            Scope::Tenant,
            "{} {}: the API is tenant routes",
            last.method,
            last.path
        );
        last.api = true;
        self
    }

    /// Declares the route registered last as one agents of a read-only merchant may still
    /// call with a method that writes.
    pub fn writable_when_read_only(mut self) -> Self {
        let last = self.table.last_mut().expect("writable_when_read_only() follows a route");
        assert_eq!(
            last.scope,
            Scope::Tenant,
            "{} {}: read-only is for tenants",
            last.method,
            last.path
        );
        last.writable_when_read_only = true;
        self
    }

    /// Declares the route registered last as part of the plan feature `feature`.
    pub fn feature(mut self, feature: billing::Feature) -> Self {
        let last = self.table.last_mut().expect("feature() follows a route");
        assert_eq!(last.scope, Scope::Tenant, "{} {}: plans are tenants'", last.method, last.path);
        last.feature = Some(feature);
        self
    }

    fn least_role(mut self, role: Role) -> Self {
        let last = self.table.last_mut().expect("a role follows a route");
        assert_eq!(
            last.scope,
            Scope::Tenant,
            "{} {}: roles are for tenant routes",
            last.method,
            last.path
        );
        last.role = role;
        self
    }

    verb!(get, Method::GET, get);
    verb!(post, Method::POST, post);
    verb!(put, Method::PUT, put);
    verb!(patch, Method::PATCH, patch);
    verb!(delete, Method::DELETE, delete);

    pub fn merge(mut self, other: Routes<S>) -> Self {
        for spec in &other.table {
            assert!(
                !self.table.iter().any(|r| r.path == spec.path && r.method == spec.method),
                "route {} {} registered twice",
                spec.method,
                spec.path
            );
        }
        self.handlers.extend(other.handlers);
        self.table.extend(other.table);
        self
    }

    pub fn table(&self) -> &[RouteSpec] {
        &self.table
    }

    /// The router: each handler at its path, with its description in the extensions of
    /// every request it serves.
    pub fn into_router(self) -> Router<S> {
        self.handlers.into_iter().zip(self.table).fold(Router::new(), |router, (handler, spec)| {
            router.route(spec.path, handler.layer(axum::Extension(spec)))
        })
    }
}

//! Server-side sessions. Every agent, console and support session is a row of
//! `public.sessions`, and its token (a JWT naming the row in `sid`) is accepted only while
//! the row is live: not ended, not expired. So ending a session is immediate and exact —
//! logout, "sign out everywhere", a password or second-factor change, a role change or a
//! disabled agent end exactly the sessions they concern, on every node, and the sockets
//! those sessions opened close with 4003 (the hub's revocation path). WebSocket tickets name
//! their session and die with it.
//!
//! A sign-in that proved a credential carries the person's credential generation
//! (`users.credential_gen`, bumped by every credential change): the session is opened only
//! if the generation is still the same, so a sign-in that raced a password change (or a
//! workspace choice or second-factor step that began before it) cannot outlive it.

use std::{net::IpAddr, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tenants::{Tenant, TenantId};

use super::ctx::Door;
use super::token::{Issued, SessionKind};
use crate::http::{AppError, ClientMeta};
use crate::realtime::hub::Hub;

/// A session's id: random (63 bits), so ids say nothing about how many sessions exist.
pub type SessionId = i64;

/// Where a sign-in comes from, recorded on its session for "where you're signed in".
#[derive(Clone, Debug)]
pub struct Device {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Device {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(meta) = ClientMeta::from_request_parts(parts, state).await;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        Ok(Self { ip: meta.ip, user_agent })
    }
}

/// A session about to be opened.
pub struct Opening<'a> {
    pub user_id: i64,
    pub kind: SessionKind,
    /// The workspace of an agent or support session.
    pub tenant: Option<&'a Tenant>,
    /// The platform admin opening a support session.
    pub impersonator: Option<i64>,
    /// The credential generation the sign-in proved; `None` where the sign-in itself just
    /// set the credential (a new account, a password chosen through an emailed link).
    pub proven: Option<i64>,
    pub device: &'a Device,
}

/// Why a sign-in could not finish: the person's credentials changed after it began.
pub fn credentials_changed() -> AppError {
    AppError::bad_request_status(
        axum::http::StatusCode::UNAUTHORIZED,
        "credentials_changed",
        "this account's password or two-step verification changed while signing in; sign in again",
    )
}

/// Opens a session and issues its token.
pub async fn open(door: &Door, o: Opening<'_>) -> Result<Issued, AppError> {
    let ttl = door.tokens.ttl(o.kind);
    let expires_at = Utc::now() + ttl;
    let id: SessionId = rand::random::<i64>() & i64::MAX;
    let opened = sqlx::query(
        "insert into public.sessions (id, user_id, tenant_id, kind, impersonator_id, ip, user_agent, expires_at)
         select $1, u.id, $3, $4, $5, $6::inet, $7, $8 from public.users u
         where u.id = $2 and ($9::bigint is null or u.credential_gen = $9)",
    )
    .bind(id)
    .bind(o.user_id)
    .bind(o.tenant.map(|t| t.id.0))
    .bind(o.kind.as_str())
    .bind(o.impersonator)
    .bind(o.device.ip.to_string())
    .bind(&o.device.user_agent)
    .bind(expires_at)
    .bind(o.proven)
    .execute(&door.db)
    .await?;
    if opened.rows_affected() != 1 {
        return Err(credentials_changed());
    }
    Ok(door.tokens.issue_session(
        (id, 0),
        o.user_id,
        o.kind,
        o.tenant,
        o.impersonator,
        expires_at,
    )?)
}

/// A new token for the agent session `session` was made with (same session, same expiry;
/// every older token of it stops working): after a password change the device that made it
/// stays signed in, and its sockets stay open, but a copy of its old token is worthless.
pub async fn rotate(
    door: &Door,
    session: &super::session::AgentSession,
) -> Result<Issued, AppError> {
    let id = session.session_id.ok_or(AppError::Unauthorized)?;
    let (version, expires_at): (i32, DateTime<Utc>) = sqlx::query_as(
        "update public.sessions set token_version = token_version + 1
         where id = $1 and ended_at is null returning token_version, expires_at",
    )
    .bind(id)
    .fetch_optional(&door.db)
    .await?
    .ok_or(AppError::Unauthorized)?;
    let (user, tenant) = (session.user_id, Some(&*session.tenant));
    let kind = SessionKind::Agent;
    Ok(door.tokens.issue_session((id, version), user, kind, tenant, None, expires_at)?)
}

/// The person's credential generation (what a sign-in proves).
pub async fn credential_gen(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select credential_gen from public.users where id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Which sessions end.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    /// One session of the person's.
    One { user_id: i64, session: SessionId },
    /// Every session of the person's, but `except` (the one acting, which stays).
    All { user_id: i64, except: Option<SessionId> },
    /// The person's sessions in one workspace (a role change, being disabled there).
    InTenant { user_id: i64, tenant: TenantId },
}

/// Why sessions ended (kept on the rows; the profile shows ended ones no more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Logout,
    SignedOutElsewhere,
    PasswordChanged,
    PasswordReset,
    TwoFactorChanged,
    EmailChanged,
    RoleChanged,
    Disabled,
    Removed,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::SignedOutElsewhere => "signed_out",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::TwoFactorChanged => "two_factor_changed",
            Self::EmailChanged => "email_changed",
            Self::RoleChanged => "role_changed",
            Self::Disabled => "disabled",
            Self::Removed => "removed",
        }
    }
}

/// Sessions that were just ended (in a transaction): once it commits,
/// [`Ended::close_sockets`] closes what they opened.
#[derive(Debug, Default)]
#[must_use = "close the ended sessions' sockets once the transaction commits"]
pub struct Ended(Vec<(Option<TenantId>, SessionId)>);

impl Ended {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Ended) {
        self.0.extend(other.0);
    }

    /// Closes the sockets these sessions opened, on every node (4003, access revoked).
    pub fn close_sockets(self, hub: &Hub) {
        let mut by_tenant: std::collections::BTreeMap<TenantId, Vec<SessionId>> =
            Default::default();
        for (tenant, session) in self.0 {
            if let Some(tenant) = tenant {
                by_tenant.entry(tenant).or_default().push(session);
            }
        }
        for (tenant, sessions) in by_tenant {
            hub.end_sessions(tenant, &sessions);
        }
    }
}

/// Ends `which` sessions in the caller's transaction.
pub async fn end(conn: &mut PgConnection, which: Which, reason: Reason) -> sqlx::Result<Ended> {
    let (user_id, one, except, tenant) = match which {
        Which::One { user_id, session } => (user_id, Some(session), None, None),
        Which::All { user_id, except } => (user_id, None, except, None),
        Which::InTenant { user_id, tenant } => (user_id, None, None, Some(tenant.0)),
    };
    let rows: Vec<(Option<i64>, i64)> = sqlx::query_as(
        "update public.sessions set ended_at = now(), ended_reason = $5
         where user_id = $1 and ended_at is null and expires_at > now()
           and ($2::bigint is null or id = $2)
           and ($3::bigint is null or id <> $3)
           and ($4::bigint is null or tenant_id = $4)
         returning tenant_id, id",
    )
    .bind(user_id)
    .bind(one)
    .bind(except)
    .bind(tenant)
    .bind(reason.as_str())
    .fetch_all(conn)
    .await?;
    Ok(Ended(rows.into_iter().map(|(t, id)| (t.map(TenantId), id)).collect()))
}

/// Ends `which` sessions in a transaction of its own and closes their sockets.
pub async fn end_now(
    (db, hub): (&PgPool, &Hub),
    which: Which,
    reason: Reason,
) -> Result<usize, AppError> {
    let mut tx = db.begin().await?;
    let ended = end(&mut tx, which, reason).await?;
    tx.commit().await?;
    let n = ended.len();
    ended.close_sockets(hub);
    Ok(n)
}

/// Whether session `id` of `user_id` is live: not ended, not expired, and in `tenant` (or in none).
pub async fn is_live(
    pool: &PgPool,
    id: SessionId,
    user_id: i64,
    tenant: Option<TenantId>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from public.sessions
                        where id = $1 and user_id = $2 and tenant_id is not distinct from $3
                          and ended_at is null and expires_at > now())",
    )
    .bind(id)
    .bind(user_id)
    .bind(tenant.map(|t| t.0))
    .fetch_one(pool)
    .await
}

/// One of a person's live sessions, as "where you're signed in" lists it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct SessionOut {
    /// As a string: JavaScript numbers cannot hold every 63-bit id.
    #[sqlx(try_from = "i64")]
    pub id: SessionIdText,
    pub kind: String,
    /// The workspace's name (agent and support sessions).
    pub workspace: Option<String>,
    pub ip: Option<String>,
    pub user_agent: String,
    /// Browser and system, read from the user agent.
    #[sqlx(skip)]
    pub device: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session this request was made with.
    #[sqlx(skip)]
    pub current: bool,
}

/// A session id as JSON shows it (a string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionIdText(pub i64);

impl From<i64> for SessionIdText {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

impl Serialize for SessionIdText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The person's live sessions, most recently active first.
pub async fn list(
    pool: &PgPool,
    user_id: i64,
    current: Option<SessionId>,
) -> sqlx::Result<Vec<SessionOut>> {
    let mut rows: Vec<SessionOut> = sqlx::query_as(
        "select s.id, s.kind, t.name as workspace, host(s.ip) as ip, s.user_agent,
                s.created_at, s.last_seen_at, s.expires_at
         from public.sessions s left join public.tenants t on t.id = s.tenant_id
         where s.user_id = $1 and s.ended_at is null and s.expires_at > now()
         order by s.last_seen_at desc, s.id
         limit 200",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    for row in &mut rows {
        row.current = Some(row.id.0) == current;
        let d = crate::visitor::parse_user_agent(&row.user_agent);
        row.device = [d.browser, d.os].into_iter().flatten().collect::<Vec<_>>().join(" · ");
    }
    Ok(rows)
}

/// Forgets sessions that ended or expired a month ago (the purge job).
pub async fn purge(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "delete from public.sessions
         where expires_at < now() - interval '30 days' or ended_at < now() - interval '30 days'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// How often this node checks that the sessions its agent sockets belong to are still live.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Closes sockets whose session ended where no event reached this node (the command line
/// ends sessions too; a node may run without the bus) or simply expired: every
/// [`SWEEP_EVERY`], one query for every agent socket of this node.
pub fn spawn_sweep(db: PgPool, hub: Arc<Hub>) -> tokio::task::JoinHandle<()> {
    let shutdown = hub.shutdown_token();
    crate::background::every("sessions", SWEEP_EVERY, shutdown, None, move || {
        let (db, hub) = (db.clone(), hub.clone());
        async move { sweep(&db, &hub).await }
    })
}

/// One round of [`spawn_sweep`]: how many sockets it closed.
pub async fn sweep(db: &PgPool, hub: &Hub) -> anyhow::Result<usize> {
    let open = hub.local_sessions();
    if open.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = open.iter().map(|(_, s)| *s).collect();
    let live: Vec<i64> = sqlx::query_scalar(
        "select id from public.sessions
         where id = any($1) and ended_at is null and expires_at > now()",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    let mut closed = 0;
    for (tenant, session) in open.into_iter().filter(|(_, s)| !live.contains(s)) {
        closed += hub.end_sessions_here(tenant, &[session]);
    }
    Ok(closed)
}

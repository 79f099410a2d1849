//! Queries for identities, memberships and agents.

use crate::ids::AgentId;
use sqlx::{PgConnection, PgPool};
use tenants::{EntId, TenantId};

use super::validate::Email;

#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: Option<String>,
    pub display_name: String,
    /// Bumped by every change to how the person signs in (auth::accounts).
    pub credential_gen: i64,
}

/// A tenant the user is an agent of.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct Membership {
    #[serde(skip)]
    pub tenant_id: TenantId,
    pub ent_id: EntId,
    pub name: String,
    pub status: String,
}

/// An agent row of the current tenant.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AgentRow {
    pub id: AgentId,
    pub user_id: i64,
    pub role: crate::http::Role,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub status: String,
    pub max_concurrent_chats: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const AGENT_COLUMNS: &str =
    "id, user_id, role, display_name, avatar_url, status, max_concurrent_chats, created_at";

#[tracing::instrument(name = "db.auth.user_by_email", skip_all)]
pub async fn user_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("select id, email, password_hash, display_name, credential_gen from public.users where lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(pool)
        .await
}

#[tracing::instrument(name = "db.auth.user_by_id", skip_all)]
pub async fn user_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("select id, email, password_hash, display_name, credential_gen from public.users where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Inserts a user (`hash`: none for an invited agent who has not chosen a password yet); a
/// taken email fails on the `users_email_key` constraint.
#[tracing::instrument(name = "db.auth.insert_user", skip_all)]
pub async fn insert_user(
    conn: &mut PgConnection,
    email: &Email,
    hash: Option<&str>,
    display_name: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar("insert into public.users (email, password_hash, display_name) values ($1, $2, $3) returning id")
        .bind(email.as_str())
        .bind(hash)
        .bind(display_name)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(name = "db.auth.touch_login", skip_all)]
pub async fn touch_login(pool: &PgPool, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("update public.users set last_login_at = now() where id = $1")
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The live tenants `user_id` belongs to, by name.
#[tracing::instrument(name = "db.auth.memberships", skip_all)]
pub async fn memberships(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<Membership>> {
    sqlx::query_as(
        "select t.id as tenant_id, t.ent_id, t.name, t.status
         from public.tenant_members m join public.tenants t on t.id = m.tenant_id
         where m.user_id = $1 and t.status <> 'deleted'
         order by t.name, t.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "db.auth.add_member", skip_all)]
pub async fn add_member(
    conn: &mut PgConnection,
    tenant: TenantId,
    user_id: i64,
) -> sqlx::Result<()> {
    sqlx::query("insert into public.tenant_members (tenant_id, user_id) values ($1, $2) on conflict do nothing")
        .bind(tenant)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts an agent into the tenant schema `conn` is scoped to.
#[tracing::instrument(name = "db.auth.insert_agent", skip_all)]
pub async fn insert_agent(
    conn: &mut PgConnection,
    user_id: i64,
    role: &str,
    display_name: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "insert into agents (user_id, role, display_name) values ($1, $2, $3) returning id",
    )
    .bind(user_id)
    .bind(role)
    .bind(display_name)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.agents.set_max_chats", skip_all)]
pub async fn set_max_chats(conn: &mut PgConnection, id: i64, max: i32) -> sqlx::Result<()> {
    sqlx::query("update agents set max_concurrent_chats = $2 where id = $1")
        .bind(id)
        .bind(max)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(name = "db.agents.is_disabled", skip_all)]
pub async fn is_disabled(conn: &mut PgConnection, id: AgentId) -> sqlx::Result<bool> {
    sqlx::query_scalar("select disabled_at is not null from agents where id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// What a change to an agent sets; `None` leaves a field as it is. An empty `avatar_url`
/// removes the picture; disabling also sets the agent offline.
#[derive(Default)]
pub struct AgentUpdate {
    pub display_name: Option<String>,
    pub role: Option<crate::http::Role>,
    pub max_concurrent_chats: Option<i32>,
    pub disabled: Option<bool>,
    pub avatar_url: Option<String>,
}

#[tracing::instrument(name = "db.agents.update", skip_all)]
pub async fn update_agent(
    conn: &mut PgConnection,
    id: AgentId,
    u: &AgentUpdate,
) -> sqlx::Result<()> {
    sqlx::query(
        "update agents set display_name = coalesce($2, display_name), role = coalesce($3, role),
                max_concurrent_chats = coalesce($4, max_concurrent_chats),
                avatar_url = case when $6::text is null then avatar_url else nullif($6, '') end,
                disabled_at = case when $5::boolean is null then disabled_at
                                   when $5 then coalesce(disabled_at, now()) else null end,
                status = case when $5 then 'offline' else status end,
                updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(&u.display_name)
    .bind(u.role)
    .bind(u.max_concurrent_chats)
    .bind(u.disabled)
    .bind(&u.avatar_url)
    .execute(conn)
    .await?;
    Ok(())
}

/// The enabled agent row of `user_id` in the tenant schema `conn` is scoped to.
#[tracing::instrument(name = "db.auth.active_agent_by_user", skip_all)]
pub async fn active_agent_by_user(
    conn: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {AGENT_COLUMNS} from agents where user_id = $1 and disabled_at is null"
    )))
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// The active agent whose live session `session` (id, token version) of `user_id` in
/// `tenant` this is. Marks the session seen (at most once a minute: not a write per request).
#[tracing::instrument(name = "db.auth.agent_for_session", skip_all)]
pub async fn agent_for_session(
    conn: &mut PgConnection,
    user_id: i64,
    (session, version): (i64, i32),
    tenant: TenantId,
) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with live as (
             update public.sessions set last_seen_at = now()
             where id = $2 and user_id = $1 and tenant_id = $3 and token_version = $4
               and ended_at is null and expires_at > now()
               and last_seen_at < now() - interval '1 minute'
         )
         select {AGENT_COLUMNS} from agents
         where user_id = $1 and disabled_at is null
           and exists (select 1 from public.sessions s
                       where s.id = $2 and s.user_id = $1 and s.tenant_id = $3
                         and s.token_version = $4 and s.ended_at is null and s.expires_at > now())"
    )))
    .bind(user_id)
    .bind(session)
    .bind(tenant.0)
    .bind(version)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.auth.agent_by_id", skip_all)]
pub async fn agent_by_id(conn: &mut PgConnection, id: AgentId) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("select {AGENT_COLUMNS} from agents where id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Agent `id`, unless they are disabled.
#[tracing::instrument(name = "db.agents.active", skip_all)]
pub async fn active_agent(conn: &mut PgConnection, id: AgentId) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {AGENT_COLUMNS} from agents where id = $1 and disabled_at is null"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// An agent with their email, for team lists.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AgentWithEmail {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub agent: AgentRow,
    pub email: String,
    pub disabled: bool,
    /// Invited by email and not joined yet (no password chosen).
    pub invitation_pending: bool,
    /// Signs in with two-step verification.
    pub two_factor: bool,
}

#[tracing::instrument(name = "db.auth.list_agents", skip_all)]
pub async fn list_agents(conn: &mut PgConnection) -> sqlx::Result<Vec<AgentWithEmail>> {
    sqlx::query_as(
        "select a.id, a.user_id, a.role, a.display_name, a.avatar_url, a.status, a.max_concurrent_chats,
                a.created_at, u.email, a.disabled_at is not null as disabled,
                u.password_hash is null as invitation_pending, u.totp_enabled_at is not null as two_factor
         from agents a join public.users u on u.id = a.user_id
         order by case a.role when 'owner' then 0 when 'admin' then 1 else 2 end, a.display_name, a.id",
    )
    .fetch_all(conn)
    .await
}

/// A live link token's user, their email and the invitation's workspace.
#[derive(sqlx::FromRow)]
pub struct Link {
    pub user_id: i64,
    pub email: String,
    pub tenant_id: Option<i64>,
}

/// Stores a link token (by its SHA-256) for `user`, valid `ttl_secs`; the user's unused
/// links of the same purpose stop working.
#[tracing::instrument(name = "db.user_tokens.replace", skip_all, fields(purpose))]
pub async fn replace_link(
    conn: &mut PgConnection,
    user: i64,
    purpose: &str,
    tenant: Option<i64>,
    token_hash: &[u8],
    ttl_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query(
        "delete from public.user_tokens where user_id = $1 and purpose = $2 and used_at is null",
    )
    .bind(user)
    .bind(purpose)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into public.user_tokens (token_hash, user_id, purpose, tenant_id, expires_at)
         values ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(token_hash)
    .bind(user)
    .bind(purpose)
    .bind(tenant)
    .bind(ttl_secs)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live (unused, unexpired) link with this hash and purpose.
#[tracing::instrument(name = "db.user_tokens.find", skip_all, fields(purpose))]
pub async fn find_link(
    conn: &mut PgConnection,
    token_hash: &[u8],
    purpose: &str,
) -> sqlx::Result<Option<Link>> {
    sqlx::query_as(
        "select t.user_id, u.email, t.tenant_id from public.user_tokens t join public.users u on u.id = t.user_id
         where t.token_hash = $1 and t.purpose = $2 and t.used_at is null and t.expires_at > now()",
    )
    .bind(token_hash)
    .bind(purpose)
    .fetch_optional(conn)
    .await
}

/// Uses the live link with this hash and purpose up.
#[tracing::instrument(name = "db.user_tokens.redeem", skip_all, fields(purpose))]
pub async fn redeem_link(
    conn: &mut PgConnection,
    token_hash: &[u8],
    purpose: &str,
) -> sqlx::Result<Option<Link>> {
    sqlx::query_as(
        "update public.user_tokens t set used_at = now() from public.users u
         where t.token_hash = $1 and t.purpose = $2 and t.used_at is null and t.expires_at > now() and u.id = t.user_id
         returning t.user_id, u.email, t.tenant_id",
    )
    .bind(token_hash)
    .bind(purpose)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.users.mark_email_verified", skip_all)]
pub async fn mark_email_verified(conn: &mut PgConnection, user: i64) -> sqlx::Result<()> {
    sqlx::query(
        "update public.users set email_verified_at = coalesce(email_verified_at, now()) where id = $1",
    )
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}

/// The enabled agent with this email (any case), with their user id, role and whether they
/// sign in with a second factor.
#[tracing::instrument(name = "db.agents.active_by_email", skip_all)]
pub async fn active_agent_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<(i64, String, crate::http::Role, bool)>> {
    sqlx::query_as(
        "select a.user_id, u.email, a.role, u.totp_enabled_at is not null
         from agents a join public.users u on u.id = a.user_id
         where lower(u.email) = lower($1) and a.disabled_at is null",
    )
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// The email of platform admin `user_id` if session `sid` is theirs, a live platform
/// session, and they have a second factor (the console requires one).
#[tracing::instrument(name = "db.platform_admins.session_email", skip_all)]
pub async fn platform_admin_email(
    pool: &PgPool,
    user_id: i64,
    sid: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select u.email from public.users u join public.platform_admins p on p.user_id = u.id
         where u.id = $1 and u.totp_enabled_at is not null
           and exists (select 1 from public.sessions s
                       where s.id = $2 and s.user_id = $1 and s.kind = 'platform'
                         and s.ended_at is null and s.expires_at > now())",
    )
    .bind(user_id)
    .bind(sid)
    .fetch_optional(pool)
    .await
}

/// A sign-up waiting for its owner to confirm their email.
pub struct PendingSignup<'a> {
    pub token_hash: &'a [u8],
    pub email: &'a str,
    pub company: &'a str,
    pub password_hash: &'a str,
    pub lang: &'a str,
    pub ttl_hours: i32,
}

#[tracing::instrument(name = "db.pending_signups.create", skip_all)]
pub async fn create_pending_signup(
    conn: &mut PgConnection,
    p: PendingSignup<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into public.pending_signups (token_hash, email, company, password_hash, lang, expires_at)
         values ($1, $2, $3, $4, $5, now() + make_interval(hours => $6))",
    )
    .bind(p.token_hash)
    .bind(p.email)
    .bind(p.company)
    .bind(p.password_hash)
    .bind(p.lang)
    .bind(p.ttl_hours)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live pending sign-up with this token hash: (company, email).
#[tracing::instrument(name = "db.pending_signups.find", skip_all)]
pub async fn find_pending_signup(
    pool: &PgPool,
    token_hash: &[u8],
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "select company, email from public.pending_signups where token_hash = $1 and expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Takes the live pending sign-up with this token hash (it can be confirmed once):
/// (email, company, password hash).
#[tracing::instrument(name = "db.pending_signups.take", skip_all)]
pub async fn take_pending_signup(
    pool: &PgPool,
    token_hash: &[u8],
) -> sqlx::Result<Option<(String, String, String)>> {
    sqlx::query_as(
        "delete from public.pending_signups where token_hash = $1 and expires_at > now()
         returning email, company, password_hash",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Forgets expired sign-up links; how many.
#[tracing::instrument(name = "db.pending_signups.purge", skip_all)]
pub async fn purge_pending_signups(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query("delete from public.pending_signups where expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected())
}

/// The merchant's first enabled owner: (agent id, user id, name).
#[tracing::instrument(name = "db.agents.enabled_owner", skip_all)]
pub async fn enabled_owner(conn: &mut PgConnection) -> sqlx::Result<Option<(i64, i64, String)>> {
    sqlx::query_as(
        "select id, user_id, display_name from agents
         where role = 'owner' and disabled_at is null order by id limit 1",
    )
    .fetch_optional(conn)
    .await
}

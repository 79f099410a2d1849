//! The API tokens' queries (table `api_tokens` of the tenant's schema). Tokens are found by
//! the SHA-256 of their secret; the secret itself is never stored.

use crate::ids::{AgentId, ApiTokenId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// A live token whose admin may still use it: its id, its scope (`read` or `write`) and the
/// admin's agent id.
#[tracing::instrument(name = "db.api_tokens.find", skip_all)]
pub async fn find(
    conn: &mut PgConnection,
    sha256: &str,
) -> sqlx::Result<Option<(ApiTokenId, String, AgentId)>> {
    sqlx::query_as(
        "select t.id, t.scope, a.id from api_tokens t join agents a on a.id = t.agent_id
         where t.token_sha256 = $1 and t.revoked_at is null
           and a.disabled_at is null and a.role in ('owner', 'admin')",
    )
    .bind(sha256)
    .fetch_optional(conn)
    .await
}

/// Notes the token's use, to the minute (not a write per request).
#[tracing::instrument(name = "db.api_tokens.touch", skip_all)]
pub async fn touch(conn: &mut PgConnection, id: ApiTokenId) -> sqlx::Result<()> {
    sqlx::query(
        "update api_tokens set last_used_at = now()
         where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Serialize, sqlx::FromRow)]
pub struct TokenOut {
    pub id: ApiTokenId,
    pub name: String,
    pub scope: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const TOKEN_SELECT: &str = "select t.id, t.name, t.scope, t.prefix, a.display_name as created_by,
        t.created_at, t.last_used_at
    from api_tokens t left join agents a on a.id = t.agent_id";

/// The live tokens, newest first.
#[tracing::instrument(name = "db.api_tokens.list", skip_all)]
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<TokenOut>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TOKEN_SELECT} where t.revoked_at is null order by t.id desc"
    )))
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.api_tokens.get", skip_all)]
pub async fn get(conn: &mut PgConnection, id: ApiTokenId) -> sqlx::Result<TokenOut> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{TOKEN_SELECT} where t.id = $1")))
        .bind(id)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(name = "db.api_tokens.count_live", skip_all)]
pub async fn count_live(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from api_tokens where revoked_at is null")
        .fetch_one(conn)
        .await
}

/// What a new token is: its name, `read` or `write`, the secret's SHA-256, the first
/// characters shown in lists, and the admin it acts as.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scope: &'a str,
    pub sha256: &'a str,
    pub prefix: &'a str,
    pub agent_id: i64,
}

#[tracing::instrument(name = "db.api_tokens.create", skip_all)]
pub async fn create(conn: &mut PgConnection, t: NewToken<'_>) -> sqlx::Result<ApiTokenId> {
    sqlx::query_scalar(
        "insert into api_tokens (name, scope, token_sha256, prefix, agent_id)
         values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(t.name)
    .bind(t.scope)
    .bind(t.sha256)
    .bind(t.prefix)
    .bind(t.agent_id)
    .fetch_one(conn)
    .await
}

/// Revokes live token `id`; its name (`None`: no such live token).
#[tracing::instrument(name = "db.api_tokens.revoke", skip_all)]
pub async fn revoke(conn: &mut PgConnection, id: ApiTokenId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "update api_tokens set revoked_at = now() where id = $1 and revoked_at is null returning name",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

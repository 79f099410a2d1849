//! The merchant's audit log rows (table `audit_log` of the tenant's schema).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

/// Who did what to what: `agent_name` is the name shown (with the support admin or the API
/// token it came through).
pub struct NewEntry<'a> {
    pub agent_id: i64,
    pub agent_name: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: Value,
}

#[tracing::instrument(name = "db.audit_log.create", skip_all)]
pub async fn create(conn: &mut PgConnection, e: NewEntry<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "insert into audit_log (agent_id, agent_name, action, target, detail) values ($1, $2, $3, $4, $5)",
    )
    .bind(e.agent_id)
    .bind(e.agent_name)
    .bind(e.action)
    .bind(e.target)
    .bind(e.detail)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Serialize, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub agent_id: Option<i64>,
    pub agent_name: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// A page of entries with ids below `before`, newest first; `pattern` (a `LIKE` pattern)
/// matches the action, the target or the agent's name, in any case.
#[tracing::instrument(name = "db.audit_log.search", skip_all)]
pub async fn search(
    conn: &mut PgConnection,
    pattern: Option<&str>,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as(
        "select id, agent_id, agent_name, action, target, detail, created_at from audit_log
         where id < $1 and ($2::text is null or action ilike $2 or target ilike $2 or agent_name ilike $2)
         order by id desc limit $3",
    )
    .bind(before)
    .bind(pattern)
    .bind(limit)
    .fetch_all(conn)
    .await
}

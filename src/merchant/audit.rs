//! The merchant's audit log: admin actions (team, settings, replies, blacklist, cleared
//! histories) with who did them, written in the transaction that makes the change, and
//! searchable by admins.

use axum::{Json, extract::Query};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use tenants::TenantTx;

use crate::{
    auth::ctx::{Admin, Ctx},
    auth::session::AgentSession,
    http::{AppError, Routes, Scope, input::like_pattern},
    startup::AppState,
};

pub fn routes() -> Routes<AppState> {
    Routes::new().get("/api/v1/audit", Scope::Tenant, list).admin()
}

/// Records `action` on `target` by the session's agent, inside the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    session: &AgentSession,
    action: &str,
    target: &str,
    detail: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into audit_log (agent_id, agent_name, action, target, detail) values ($1, $2, $3, $4, $5)",
    )
    .bind(session.agent.id)
    .bind(actor_name(session))
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records `action` on `target` by the session's agent and commits: how an admin's change
/// ends (the change and its record land together, or neither).
pub async fn commit(
    mut tx: TenantTx,
    session: &AgentSession,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), AppError> {
    record(&mut tx, session, action, target, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// The agent's name; for a support session, also the platform admin acting as them; for
/// an API call, the token it came with.
fn actor_name(session: &AgentSession) -> String {
    match (&session.impersonator, &session.api_token) {
        (Some(admin), _) => format!("{} (support: {})", session.agent.display_name, admin.email),
        (None, Some(token)) => format!("{} (API token {})", session.agent.display_name, token.id),
        (None, None) => session.agent.display_name.clone(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    /// Matches the action, the target or the agent's name (substring, any case).
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Entry {
    id: i64,
    agent_id: Option<i64>,
    agent_name: String,
    action: String,
    target: String,
    detail: Value,
    created_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Page {
    entries: Vec<Entry>,
    next_before: Option<i64>,
}

async fn list(
    Ctx { mut tx, .. }: Ctx<Admin>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page>, AppError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let pattern =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| like_pattern(&s.chars().take(100).collect::<String>()));
    let entries: Vec<Entry> = sqlx::query_as(
        "select id, agent_id, agent_name, action, target, detail, created_at from audit_log
         where id < $1 and ($2::text is null or action ilike $2 or target ilike $2 or agent_name ilike $2)
         order by id desc limit $3",
    )
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(pattern)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let next_before =
        (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(Page { entries, next_before }))
}

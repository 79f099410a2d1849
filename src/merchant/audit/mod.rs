//! The merchant's audit log: admin actions (team, settings, replies, blacklist, cleared
//! histories) with who did them, written in the transaction that makes the change, and
//! searchable by admins.

use crate::auth::ctx::Door;
use axum::extract::FromRef;
use axum::{Json, extract::Query};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use std::sync::Arc;
use tenants::TenantTx;

use crate::{
    auth::ctx::{Admin, Ctx},
    auth::session::AgentSession,
    http::{AppError, Routes, Scope},
};

pub(crate) mod store;
use store::Entry;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
{
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
    let agent_name = actor_name(session);
    let entry = store::NewEntry {
        agent_id: session.agent.id.0,
        agent_name: &agent_name,
        action,
        target,
        detail,
    };
    store::create(conn, entry).await
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
    let pattern = crate::http::input::search_pattern(q.q.as_deref());
    let before = q.before.unwrap_or(i64::MAX);
    let entries = store::search(&mut tx, pattern.as_deref(), before, limit).await?;
    tx.commit().await?;
    let next_before =
        (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(Page { entries, next_before }))
}

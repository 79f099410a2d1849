//! The conversation lists and items of the agent API (`GET /api/v1/conversations…`).

use crate::ids::ConversationId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::realtime::protocol::ConversationStatus;

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConversationItem {
    pub id: i64,
    pub status: ConversationStatus,
    /// A snoozed conversation's wake-up time (none: when the visitor writes).
    pub snoozed_until: Option<DateTime<Utc>>,
    pub visitor_id: String,
    pub visitor_name: String,
    pub agent_id: Option<i64>,
    pub agent_name: Option<String>,
    /// When the visitor wrote while nobody could answer (none: they did not).
    pub left_offline_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_message: Option<String>,
    /// Visitor messages the agents have not marked read.
    pub unread: i64,
    /// The visitor's CSAT rating (1–5) of the closed conversation, and its comment.
    pub rating: Option<i16>,
    pub rating_comment: Option<String>,
}

const ITEM_SELECT: &str = "select c.id, c.status, c.snoozed_until, v.public_id as visitor_id, v.name as visitor_name, c.agent_id,
        a.display_name as agent_name, c.left_offline_at, c.created_at, lm.created_at as last_message_at,
        lm.body as last_message,
        (select count(*) from messages m where m.conversation_id = c.id and m.sender_kind = 'visitor'
            and m.id > c.agent_last_read_id) as unread,
        r.score as rating, r.comment as rating_comment
    from conversations c join visitors v on v.id = c.visitor_id left join agents a on a.id = c.agent_id
    left join conversation_ratings r on r.conversation_id = c.id
    left join lateral (select m.body, m.created_at from messages m where m.conversation_id = c.id
        and m.kind <> 'activity' order by m.id desc limit 1) lm on true";

/// Whose conversations a list shows.
#[derive(Clone, Copy)]
pub enum View {
    /// The agent's.
    Mine(i64),
    /// Nobody's yet.
    Unassigned,
    All,
}

/// Which statuses a list shows.
#[derive(Clone, Copy)]
pub enum Statuses {
    /// Anything not resolved.
    Active,
    /// Queued or open.
    Open,
    Pending,
    Snoozed,
    Resolved,
    Any,
}

/// A page of conversations, newest first, with ids below `before`.
#[tracing::instrument(name = "db.conversations.list", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    view: View,
    statuses: Statuses,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<ConversationItem>> {
    let (view, agent) = match view {
        View::Mine(agent) => ("c.agent_id = $1", Some(agent)),
        View::Unassigned => ("c.agent_id is null", None),
        View::All => ("true", None),
    };
    let statuses = match statuses {
        Statuses::Active => "c.status <> 'closed'",
        Statuses::Open => "c.status in ('queued', 'open')",
        Statuses::Pending => "c.status = 'pending'",
        Statuses::Snoozed => "c.status = 'snoozed'",
        Statuses::Resolved => "c.status = 'closed'",
        Statuses::Any => "true",
    };
    // Only the fixed fragments above are formatted into the query; values are bound.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ITEM_SELECT} where {view} and {statuses} and c.id < $2 order by c.id desc limit $3"
    )))
    .bind(agent)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.conversations.item", skip_all)]
pub async fn item(
    conn: &mut PgConnection,
    id: ConversationId,
) -> sqlx::Result<Option<ConversationItem>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ITEM_SELECT} where c.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

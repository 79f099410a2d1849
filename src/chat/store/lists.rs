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
        and m.kind not in ('activity', 'note') order by m.id desc limit 1) lm on true";

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

/// More to narrow a list by; each part left empty keeps every conversation.
#[derive(Default)]
pub struct Narrow {
    /// The visitor's (public id).
    pub visitor: Option<String>,
    /// The visitor carries this tag (any case).
    pub tag: Option<String>,
    /// Rated with this score (1–5).
    pub rating: Option<i16>,
    /// Started at or after / before.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// No agent has written in it yet.
    pub unanswered: bool,
    /// The visitor wrote while nobody could answer.
    pub left_offline: bool,
}

/// A page of conversations, newest first, with ids below `before`.
#[tracing::instrument(name = "db.conversations.list", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    view: View,
    statuses: Statuses,
    narrow: &Narrow,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<ConversationItem>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(ITEM_SELECT);
    q.push(" where c.id < ").push_bind(before);
    match view {
        View::Mine(agent) => q.push(" and c.agent_id = ").push_bind(agent),
        View::Unassigned => q.push(" and c.agent_id is null"),
        View::All => &mut q,
    };
    q.push(match statuses {
        Statuses::Active => " and c.status <> 'closed'",
        Statuses::Open => " and c.status in ('queued', 'open')",
        Statuses::Pending => " and c.status = 'pending'",
        Statuses::Snoozed => " and c.status = 'snoozed'",
        Statuses::Resolved => " and c.status = 'closed'",
        Statuses::Any => "",
    });
    if let Some(visitor) = &narrow.visitor {
        q.push(" and v.public_id = ").push_bind(visitor.clone());
    }
    if let Some(tag) = &narrow.tag {
        q.push(
            " and exists (select 1 from visitor_tags vt join tags t on t.id = vt.tag_id
                 where vt.visitor_id = v.id and lower(t.name) = lower(",
        )
        .push_bind(tag.clone())
        .push("))");
    }
    if let Some(score) = narrow.rating {
        q.push(" and r.score = ").push_bind(score);
    }
    if let Some(from) = narrow.from {
        q.push(" and c.created_at >= ").push_bind(from);
    }
    if let Some(to) = narrow.to {
        q.push(" and c.created_at < ").push_bind(to);
    }
    if narrow.unanswered {
        q.push(
            " and not exists (select 1 from messages m where m.conversation_id = c.id
                 and m.sender_kind = 'agent' and m.kind <> 'note')",
        );
    }
    if narrow.left_offline {
        q.push(" and c.left_offline_at is not null");
    }
    q.push(" order by c.id desc limit ").push_bind(limit);
    q.build_query_as().fetch_all(conn).await
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

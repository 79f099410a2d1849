//! Queries for conversations and messages (inside a `TenantTx`).

use crate::ids::{AgentId, ConversationId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use tenants::{TenantId, TenantTx};

use crate::realtime::protocol::{ConversationOut, ConversationStatus, MessageOut, Sender};

pub mod lists;
pub mod notes;
pub mod search;
pub mod status;
pub mod timers;
pub mod views;

/// A conversation with the names clients show.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: i64,
    pub visitor_id: i64,
    pub visitor_public_id: String,
    pub visitor_name: String,
    pub agent_id: Option<i64>,
    pub agent_name: Option<String>,
    pub status: ConversationStatus,
    /// Until when a snoozed conversation sleeps (none: until the visitor writes).
    pub snoozed_until: Option<DateTime<Utc>>,
    /// When the visitor wrote while nobody could answer (the leave-a-message form, or
    /// messages after the offline notice).
    pub left_offline_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ConversationRow {
    pub fn out(&self) -> ConversationOut {
        ConversationOut {
            id: self.id,
            status: self.status,
            visitor_id: self.visitor_public_id.clone(),
            visitor_name: self.visitor_name.clone(),
            agent_id: self.agent_id,
            agent_name: self.agent_name.clone(),
            snoozed_until: self.snoozed_until,
            left_offline_at: self.left_offline_at,
            created_at: self.created_at,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.status == ConversationStatus::Closed
    }
}

const CONVERSATION_SELECT: &str =
    "select c.id, c.visitor_id, v.public_id as visitor_public_id, v.name as visitor_name,
        c.agent_id, a.display_name as agent_name, c.status, c.snoozed_until, c.left_offline_at,
        c.created_at
    from conversations c
    join visitors v on v.id = c.visitor_id
    left join agents a on a.id = c.agent_id";

#[tracing::instrument(name = "db.chat.conversation", skip_all)]
pub async fn conversation(
    conn: &mut PgConnection,
    id: ConversationId,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{CONVERSATION_SELECT} where c.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The visitor's conversation that is not closed, if any.
#[tracing::instrument(name = "db.chat.current_conversation", skip_all)]
pub async fn current_conversation(
    conn: &mut PgConnection,
    visitor_id: i64,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CONVERSATION_SELECT} where c.visitor_id = $1 and c.status <> 'closed' order by c.id desc limit 1"
    )))
    .bind(visitor_id)
    .fetch_optional(conn)
    .await
}

/// Locks the visitor row so that two tabs sending their first message at once open one
/// conversation, not two.
#[tracing::instrument(name = "db.chat.lock_visitor", skip_all)]
pub async fn lock_visitor(conn: &mut PgConnection, visitor_id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar::<_, i64>("select id from visitors where id = $1 for update")
        .bind(visitor_id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// Opens a conversation and counts it in the tenant's usage for today (same transaction,
/// so the count is exact under concurrency).
#[tracing::instrument(name = "db.chat.insert_conversation", skip_all)]
pub async fn insert_conversation(
    conn: &mut PgConnection,
    tenant: TenantId,
    visitor_id: i64,
    agent_id: Option<i64>,
) -> sqlx::Result<i64> {
    let id = sqlx::query_scalar(
        "insert into conversations (visitor_id, agent_id, status, assigned_at)
         values ($1, $2, case when $2::bigint is null then 'queued' else 'open' end,
                 case when $2::bigint is null then null else now() end)
         returning id",
    )
    .bind(visitor_id)
    .bind(agent_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "insert into public.usage_daily as u (tenant_id, day, conversations)
         values ($1, (now() at time zone 'utc')::date, 1)
         on conflict (tenant_id, day) do update set conversations = u.conversations + 1",
    )
    .bind(tenant.0)
    .execute(conn)
    .await?;
    Ok(id)
}

/// An agent who could take a conversation.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Candidate {
    pub id: i64,
    pub status: String,
    pub max_concurrent_chats: i32,
    pub open_conversations: i64,
}

/// The enabled agents among `ids` with their current load.
#[tracing::instrument(name = "db.chat.candidates", skip_all)]
pub async fn candidates(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<Candidate>> {
    sqlx::query_as(
        "select a.id, a.status, a.max_concurrent_chats,
                (select count(*) from conversations c where c.agent_id = a.id and c.status = 'open') as open_conversations
         from agents a
         where a.id = any($1) and a.disabled_at is null
         order by a.id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.chat.agent_status", skip_all)]
pub async fn agent_status(conn: &mut PgConnection, agent_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select status from agents where id = $1")
        .bind(agent_id)
        .fetch_optional(conn)
        .await
}

/// Online again on connecting: an agent who was offline, or away for inactivity. Returns
/// whether the status changed.
#[tracing::instrument(name = "db.chat.come_online", skip_all)]
pub async fn come_online(conn: &mut PgConnection, agent_id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update agents set status = 'online', auto_away = false, updated_at = now()
         where id = $1 and (status = 'offline' or auto_away)",
    )
    .bind(agent_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Away for inactivity, if still online. Returns whether it changed.
#[tracing::instrument(name = "db.chat.begin_auto_away", skip_all)]
pub async fn begin_auto_away(conn: &mut PgConnection, agent_id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update agents set status = 'away', auto_away = true, updated_at = now()
         where id = $1 and status = 'online'",
    )
    .bind(agent_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Back online after an automatic away (not after one the agent chose).
#[tracing::instrument(name = "db.chat.end_auto_away", skip_all)]
pub async fn end_auto_away(conn: &mut PgConnection, agent_id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update agents set status = 'online', auto_away = false, updated_at = now()
         where id = $1 and auto_away",
    )
    .bind(agent_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

#[tracing::instrument(name = "db.chat.set_agent_status", skip_all)]
pub async fn set_agent_status(
    conn: &mut PgConnection,
    agent_id: i64,
    status: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update agents set status = $2, auto_away = false, updated_at = now() where id = $1",
    )
    .bind(agent_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// Assigns a conversation that is not closed to `agent_id` (a queued one becomes open; a
/// pending or snoozed one stays so); returns false if it is closed.
#[tracing::instrument(name = "db.chat.assign", skip_all)]
pub async fn assign(
    conn: &mut PgConnection,
    conversation_id: ConversationId,
    agent_id: AgentId,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update conversations
            set agent_id = $2, status = case when status = 'queued' then 'open' else status end,
                assigned_at = now()
         where id = $1 and status <> 'closed'",
    )
    .bind(conversation_id)
    .bind(agent_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Answering a queued conversation claims it: assigns `row` to `agent` if nobody has it and
/// it is not closed, and returns it as it is then, with whether this claimed it.
pub async fn claim_if_queued(
    conn: &mut PgConnection,
    row: ConversationRow,
    agent: AgentId,
) -> sqlx::Result<(ConversationRow, bool)> {
    let id = ConversationId(row.id);
    if row.agent_id.is_some() || row.is_closed() || !assign(&mut *conn, id, agent).await? {
        return Ok((row, false));
    }
    Ok((conversation(conn, id).await?.unwrap_or(row), true))
}

/// Reopens the visitor's latest conversation if it was resolved less than `hours` ago;
/// returns its id.
#[tracing::instrument(name = "db.chat.reopen_recent", skip_all)]
pub async fn reopen_recent(
    conn: &mut PgConnection,
    visitor_id: i64,
    hours: u32,
) -> sqlx::Result<Option<i64>> {
    if hours == 0 {
        return Ok(None);
    }
    sqlx::query_scalar(
        "update conversations
            set status = case when agent_id is null then 'queued' else 'open' end,
                closed_at = null, closed_by_agent_id = null,
                -- A visitor back after the close who finds nobody online is told so again.
                offline_notice_sent = false
          where id = (select id from conversations where visitor_id = $1 order by id desc limit 1)
            and status = 'closed' and closed_at > now() - make_interval(hours => $2)
         returning id",
    )
    .bind(visitor_id)
    .bind(i32::try_from(hours).unwrap_or(i32::MAX))
    .fetch_optional(conn)
    .await
}

/// Marks the offline notice as sent, and the conversation as left while offline; true only
/// the first time for a conversation.
#[tracing::instrument(name = "db.chat.claim_offline_notice", skip_all)]
pub async fn claim_offline_notice(
    conn: &mut PgConnection,
    conversation_id: i64,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update conversations
            set offline_notice_sent = true, left_offline_at = coalesce(left_offline_at, now())
          where id = $1 and not offline_notice_sent",
    )
    .bind(conversation_id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Marks the conversation as one the visitor left a message in while nobody was online.
#[tracing::instrument(name = "db.chat.mark_left_offline", skip_all)]
pub async fn mark_left_offline(
    conn: &mut PgConnection,
    id: ConversationId,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query(
        "update conversations set left_offline_at = coalesce(left_offline_at, now()) where id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    conversation(conn, id).await
}

/// Where an agent's answer to a visitor who is away can be emailed: the visitor's address,
/// for a conversation left while offline; none otherwise.
#[derive(sqlx::FromRow)]
pub struct AwayVisitor {
    pub email: String,
    /// A verified user (their chat follows their login on the merchant's site).
    pub verified: bool,
}

#[tracing::instrument(name = "db.chat.away_visitor", skip_all)]
pub async fn away_visitor(
    conn: &mut PgConnection,
    id: ConversationId,
) -> sqlx::Result<Option<AwayVisitor>> {
    sqlx::query_as(
        "select v.email, v.verified_at is not null as verified
           from conversations c join visitors v on v.id = c.visitor_id
          where c.id = $1 and c.left_offline_at is not null and v.email is not null
            and v.email <> '' and v.blocked_at is null",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.chat.mark_read", skip_all)]
pub async fn mark_read(
    conn: &mut PgConnection,
    conversation_id: ConversationId,
    by_visitor: bool,
    up_to: i64,
) -> sqlx::Result<()> {
    let sql = if by_visitor {
        "update conversations set visitor_last_read_id = greatest(visitor_last_read_id, $2) where id = $1"
    } else {
        "update conversations set agent_last_read_id = greatest(agent_last_read_id, $2) where id = $1"
    };
    sqlx::query(sql).bind(conversation_id).bind(up_to).execute(conn).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    conversation_id: i64,
    sender_kind: String,
    sender_agent_id: Option<i64>,
    agent_name: Option<String>,
    agent_avatar: Option<String>,
    kind: String,
    body: String,
    payload: Option<Value>,
    client_msg_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl MessageRow {
    fn out(self) -> MessageOut {
        MessageOut {
            id: self.id,
            conversation_id: self.conversation_id,
            sender: Sender {
                kind: static_sender(&self.sender_kind),
                agent_id: self.sender_agent_id,
                name: self.agent_name,
                avatar: self.agent_avatar,
            },
            kind: static_kind(&self.kind),
            body: self.body,
            payload: self.payload,
            client_msg_id: self.client_msg_id,
            created_at: self.created_at,
        }
    }
}

fn static_sender(s: &str) -> &'static str {
    match s {
        "visitor" => "visitor",
        "agent" => "agent",
        "bot" => "bot",
        _ => "system",
    }
}

fn static_kind(s: &str) -> &'static str {
    match s {
        "image" => "image",
        "file" => "file",
        "product" => "product",
        "card" => "card",
        "notice" => "notice",
        "activity" => "activity",
        "note" => "note",
        _ => "text",
    }
}

const MESSAGE_SELECT: &str = "select m.id, m.conversation_id, m.sender_kind, m.sender_agent_id, a.display_name as agent_name,
        a.avatar_url as agent_avatar, m.kind, m.body, m.payload, m.client_msg_id, m.created_at
    from messages m left join agents a on a.id = m.sender_agent_id";

/// A visitor's messages after `since`, oldest first (activity lines and notes are for
/// agents only).
#[tracing::instrument(name = "db.chat.visitor_messages_since", skip_all)]
pub async fn visitor_messages_since(
    conn: &mut PgConnection,
    visitor_id: i64,
    since: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageOut>> {
    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MESSAGE_SELECT}
         where m.conversation_id in (select id from conversations where visitor_id = $1) and m.id > $2
           and m.kind not in ('activity', 'note')
         order by m.id limit $3"
    )))
    .bind(visitor_id)
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(MessageRow::out).collect())
}

/// Every message of the tenant after `since`, oldest first (agents' catch-up).
#[tracing::instrument(name = "db.chat.tenant_messages_since", skip_all)]
pub async fn tenant_messages_since(
    conn: &mut PgConnection,
    since: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageOut>> {
    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MESSAGE_SELECT} where m.id > $1 order by m.id limit $2"
    )))
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(MessageRow::out).collect())
}

/// The id of the tenant's newest message stored before `cutoff` (0 if none): where a resync
/// replays from. Walks back from the newest id, so it reads only what came after `cutoff`.
#[tracing::instrument(name = "db.chat.last_message_before", skip_all)]
pub async fn last_message_before(
    pool: &sqlx::PgPool,
    tenant: TenantId,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<i64> {
    let mut tx = TenantTx::begin(pool, tenant).await?;
    let id: Option<i64> = sqlx::query_scalar(
        "select id from messages where created_at < $1 order by id desc limit 1",
    )
    .bind(cutoff)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id.unwrap_or(0))
}

/// A conversation's messages before `before` (newest first, for scrolling back).
#[tracing::instrument(name = "db.chat.conversation_messages", skip_all)]
pub async fn conversation_messages(
    conn: &mut PgConnection,
    conversation_id: ConversationId,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageOut>> {
    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MESSAGE_SELECT} where m.conversation_id = $1 and m.id < $2 order by m.id desc limit $3"
    )))
    .bind(conversation_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(MessageRow::out).collect())
}

/// The agent's display name.
#[tracing::instrument(name = "db.chat.agent_name", skip_all)]
pub async fn agent_name(conn: &mut PgConnection, agent_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select display_name from agents where id = $1")
        .bind(agent_id)
        .fetch_optional(conn)
        .await
}

/// Marks conversation `id` counted against its month's allowance; false if it was already.
#[tracing::instrument(name = "db.chat.mark_counted", skip_all)]
pub async fn mark_counted(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update conversations set counted_at = now() where id = $1 and counted_at is null",
    )
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// The visitor's rating of conversation `row` (closed), credited to the agent who had it;
/// `None` if it was rated before (a conversation is rated once).
#[tracing::instrument(name = "db.conversation_ratings.create", skip_all)]
pub async fn rate(
    conn: &mut PgConnection,
    row: &ConversationRow,
    score: i16,
    comment: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "insert into conversation_ratings (conversation_id, visitor_id, agent_id, score, comment)
         values ($1, $2, $3, $4, $5)
         on conflict (conversation_id) do nothing
         returning created_at",
    )
    .bind(row.id)
    .bind(row.visitor_id)
    .bind(row.agent_id)
    .bind(score)
    .bind(comment)
    .fetch_optional(conn)
    .await
}

/// Hands agent `agent_id`'s open conversations back to the queue; their ids.
#[tracing::instrument(name = "db.conversations.requeue_agent", skip_all)]
pub async fn requeue_agent(conn: &mut PgConnection, agent_id: AgentId) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "update conversations set agent_id = null, status = 'queued'
         where agent_id = $1 and status = 'open' returning id",
    )
    .bind(agent_id)
    .fetch_all(conn)
    .await
}

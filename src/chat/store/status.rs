//! Moving conversations between statuses (column `conversations.status`), by an agent or by
//! the timers' worker.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::realtime::protocol::ConversationStatus;

/// Where [`set`] moves a conversation.
pub enum Move {
    /// Open again: `open` if someone has it, else `queued`.
    Reopen,
    Pending,
    /// Until the time given, or until the visitor writes.
    Snooze(Option<DateTime<Utc>>),
    Resolve {
        by_agent: Option<i64>,
    },
}

/// Locks conversation `id` for a change; its status and snooze time (`None`: no such
/// conversation).
#[tracing::instrument(name = "db.conversations.lock_status", skip_all)]
pub async fn lock(
    conn: &mut PgConnection,
    id: i64,
) -> sqlx::Result<Option<(ConversationStatus, Option<DateTime<Utc>>)>> {
    sqlx::query_as("select status, snoozed_until from conversations where id = $1 for update")
        .bind(id)
        .fetch_optional(conn)
        .await
}

#[tracing::instrument(name = "db.conversations.set_status", skip_all)]
pub async fn set(conn: &mut PgConnection, id: i64, to: Move) -> sqlx::Result<()> {
    let query = match to {
        Move::Reopen => sqlx::query(
            "update conversations
                set status = case when agent_id is null then 'queued' else 'open' end,
                    snoozed_until = null, closed_at = null, closed_by_agent_id = null
              where id = $1",
        )
        .bind(id),
        Move::Pending => sqlx::query(
            "update conversations set status = 'pending', snoozed_until = null where id = $1",
        )
        .bind(id),
        Move::Snooze(until) => sqlx::query(
            "update conversations set status = 'snoozed', snoozed_until = $2 where id = $1",
        )
        .bind(id)
        .bind(until),
        Move::Resolve { by_agent } => sqlx::query(
            "update conversations set status = 'closed', closed_at = now(), closed_by_agent_id = $2,
                    snoozed_until = null
              where id = $1",
        )
        .bind(id)
        .bind(by_agent),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Ends the snoozes due at `now`; the conversations woken.
#[tracing::instrument(name = "db.conversations.wake_snoozed", skip_all)]
pub async fn wake_snoozed(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "update conversations
            set status = case when agent_id is null then 'queued' else 'open' end, snoozed_until = null
          where status = 'snoozed' and snoozed_until <= $1
         returning id",
    )
    .bind(now)
    .fetch_all(conn)
    .await
}

/// When a conversation last saw activity: its last message (of anyone, activity lines
/// included), or its start.
const LAST_ACTIVITY: &str =
    "coalesce((select m.created_at from messages m where m.conversation_id = c.id
                                      order by m.id desc limit 1), c.created_at)";

/// Resolves the conversations idle for `minutes` at `now`; each with the status it had.
#[tracing::instrument(name = "db.conversations.resolve_idle", skip_all)]
pub async fn resolve_idle(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    minutes: i32,
) -> sqlx::Result<Vec<(i64, ConversationStatus)>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with idle as (
            select c.id, c.status from conversations c
             where c.status in ('queued', 'open', 'pending')
               and {LAST_ACTIVITY} <= $1 - make_interval(mins => $2)
               for update)
         update conversations c
            set status = 'closed', closed_at = now(), closed_by_agent_id = null
           from idle where c.id = idle.id
         returning c.id, idle.status"
    )))
    .bind(now)
    .bind(minutes)
    .fetch_all(conn)
    .await
}

/// The next time anything can be due: the earliest snooze, the earliest idle deadline, and
/// with auto-resolve on (`minutes` > 0), a conversation that starts now (least() skips nulls).
#[tracing::instrument(name = "db.conversations.next_due", skip_all)]
pub async fn next_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    minutes: i32,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select least(
            (select min(snoozed_until) from conversations where status = 'snoozed'),
            case when $2 > 0 then
                (select min({LAST_ACTIVITY}) from conversations c where c.status in ('queued', 'open', 'pending'))
                + make_interval(mins => $2) end,
            case when $2 > 0 then $1 + make_interval(mins => $2) end)"
    )))
    .bind(now)
    .bind(minutes)
    .fetch_one(conn)
    .await
}

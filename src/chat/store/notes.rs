//! The notes that mentioned an agent (`payload.mentions` of kind `note` messages).

use sqlx::PgConnection;

use crate::chat::notes::MentionItem;

/// Notes mentioning agent `agent`, newest first, with ids below `before`.
#[tracing::instrument(name = "db.notes.mentions_of", skip_all)]
pub async fn mentions_of(
    conn: &mut PgConnection,
    agent: i64,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<MentionItem>> {
    sqlx::query_as(
        "select m.id as message_id, m.conversation_id, m.body, m.sender_agent_id as by_agent_id,
                a.display_name as by_name, v.public_id as visitor_id, v.name as visitor_name, m.created_at
         from messages m
         join conversations c on c.id = m.conversation_id
         join visitors v on v.id = c.visitor_id
         left join agents a on a.id = m.sender_agent_id
         where m.kind = 'note' and (m.payload -> 'mentions') @> to_jsonb(array[$1::bigint]) and m.id < $2
         order by m.id desc limit $3",
    )
    .bind(agent)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

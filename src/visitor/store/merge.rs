//! Merging two records of one person (two devices, or a lead who came back in another
//! browser): everything of one moves to the other, which keeps its own details and fills
//! its gaps from the merged one; the merged record is deleted and its tokens lead to the
//! one that stays.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// The tables whose rows belong to a visitor and move with a merge (tags apart: a visitor
/// carries a tag once).
const OWNED: [&str; 6] =
    ["conversations", "notes", "page_views", "uploads", "conversation_ratings", "blacklist"];

/// Moves everything of visitor `from` to `into` and deletes `from`. Returns how many
/// conversations moved. Both must exist; the caller checks they may be merged.
#[tracing::instrument(name = "db.visitors.merge", skip_all)]
pub async fn merge(
    conn: &mut PgConnection,
    into: i64,
    from: i64,
    by_agent: i64,
) -> sqlx::Result<u64> {
    let mut conversations = 0;
    for table in OWNED {
        // Only the fixed table names above are formatted into the query.
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
            "update {table} set visitor_id = $1 where visitor_id = $2"
        )))
        .bind(into)
        .bind(from)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if table == "conversations" {
            conversations = moved;
        }
    }
    sqlx::query(
        "insert into visitor_tags (visitor_id, tag_id, created_at)
         select $1, tag_id, created_at from visitor_tags where visitor_id = $2
         on conflict do nothing",
    )
    .bind(into)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update visitors i set
            real_name = coalesce(nullif(i.real_name, ''), f.real_name),
            avatar_url = coalesce(i.avatar_url, f.avatar_url),
            email = coalesce(nullif(i.email, ''), f.email),
            phone = coalesce(nullif(i.phone, ''), f.phone),
            claimed_user_id = coalesce(i.claimed_user_id, f.claimed_user_id),
            extra = f.extra || i.extra,
            prechat = coalesce(i.prechat, f.prechat),
            prechat_at = coalesce(i.prechat_at, f.prechat_at),
            visit_count = i.visit_count + f.visit_count,
            first_seen_at = least(i.first_seen_at, f.first_seen_at),
            last_seen_at = greatest(i.last_seen_at, f.last_seen_at),
            blocked_at = coalesce(i.blocked_at, f.blocked_at)
         from visitors f where i.id = $1 and f.id = $2",
    )
    .bind(into)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    // The verified identity moves last: its unique index holds one row per user id.
    let identity: (Option<String>, Option<DateTime<Utc>>) =
        sqlx::query_as("delete from visitors where id = $1 returning external_id, verified_at")
            .bind(from)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(
        "update visitors set external_id = coalesce(external_id, $2),
                             verified_at = coalesce(verified_at, $3)
         where id = $1",
    )
    .bind(into)
    .bind(identity.0)
    .bind(identity.1)
    .execute(&mut *conn)
    .await?;
    // Tokens of `from`, and of records merged into it before, now lead to `into`.
    sqlx::query("update visitor_merges set into_id = $1 where into_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    sqlx::query("insert into visitor_merges (from_id, into_id, merged_by) values ($2, $1, $3)")
        .bind(into)
        .bind(from)
        .bind(by_agent)
        .execute(&mut *conn)
        .await?;
    Ok(conversations)
}

/// The visitor a token of visitor `id` stands for now: `id`, or the record it was merged
/// into.
#[tracing::instrument(name = "db.visitors.current", skip_all)]
pub async fn current(conn: &mut PgConnection, id: i64) -> sqlx::Result<i64> {
    let into: Option<i64> =
        sqlx::query_scalar("select into_id from visitor_merges where from_id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(into.unwrap_or(id))
}

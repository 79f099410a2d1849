//! The blacklist's rows (table `blacklist`): a visitor or an address range per entry.

use crate::ids::BlockId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

#[derive(Serialize, sqlx::FromRow)]
pub struct Entry {
    pub id: BlockId,
    /// The visitor's public id, for visitor blocks.
    pub visitor_id: Option<String>,
    pub visitor_name: Option<String>,
    /// The blocked address or range, for IP blocks.
    pub ip: Option<String>,
    pub reason: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ENTRY_SELECT: &str = "select b.id, v.public_id as visitor_id, v.name as visitor_name,
        b.ip_range::text as ip, b.reason, a.display_name as created_by, b.created_at
    from blacklist b left join visitors v on v.id = b.visitor_id left join agents a on a.id = b.created_by";

/// The newest 1,000 entries, newest first.
#[tracing::instrument(name = "db.blacklist.list", skip_all)]
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ENTRY_SELECT} order by b.id desc limit 1000")))
        .fetch_all(conn)
        .await
}

#[tracing::instrument(name = "db.blacklist.get", skip_all)]
pub async fn get(conn: &mut PgConnection, id: BlockId) -> sqlx::Result<Entry> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ENTRY_SELECT} where b.id = $1")))
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Whether the visitor, or exactly this range, is on the list already.
#[tracing::instrument(name = "db.blacklist.exists", skip_all)]
pub async fn exists(
    conn: &mut PgConnection,
    visitor: Option<i64>,
    range: Option<&str>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from blacklist where visitor_id = $1 or ip_range = $2::cidr)",
    )
    .bind(visitor)
    .bind(range)
    .fetch_one(conn)
    .await
}

/// A new entry (a visitor or a range, in CIDR form); its id.
#[tracing::instrument(name = "db.blacklist.create", skip_all)]
pub async fn create(
    conn: &mut PgConnection,
    visitor: Option<i64>,
    range: Option<&str>,
    reason: &str,
    by: i64,
) -> sqlx::Result<BlockId> {
    sqlx::query_scalar(
        "insert into blacklist (visitor_id, ip_range, reason, created_by)
         values ($1, $2::cidr, $3, $4) returning id",
    )
    .bind(visitor)
    .bind(range)
    .bind(reason)
    .bind(by)
    .fetch_one(conn)
    .await
}

/// Blocks each of the visitors `ids` not blocked yet; those it blocked.
#[tracing::instrument(name = "db.blacklist.block_all", skip_all)]
pub async fn block_all(
    conn: &mut PgConnection,
    ids: &[i64],
    reason: &str,
    by: i64,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "insert into blacklist (visitor_id, reason, created_by)
         select v.id, $2, $3 from visitors v
         where v.id = any($1) and not exists (select 1 from blacklist b where b.visitor_id = v.id)
         returning visitor_id",
    )
    .bind(ids)
    .bind(reason)
    .bind(by)
    .fetch_all(conn)
    .await
}

/// The visitors last seen in `range`.
#[tracing::instrument(name = "db.blacklist.visitors_in", skip_all)]
pub async fn visitors_in(conn: &mut PgConnection, range: &str) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("select id from visitors where ip <<= $1::cidr")
        .bind(range)
        .fetch_all(conn)
        .await
}

/// What entry `id` blocked, once deleted: `None` if there was no such entry; else the visitor
/// (for a visitor block) and the range or the visitor's public id, to name it in the audit log.
#[tracing::instrument(name = "db.blacklist.delete", skip_all)]
pub async fn delete(
    conn: &mut PgConnection,
    id: BlockId,
) -> sqlx::Result<Option<(Option<i64>, String)>> {
    sqlx::query_as(
        "delete from blacklist b where id = $1
         returning b.visitor_id,
                   coalesce(b.ip_range::text, (select public_id from visitors v where v.id = b.visitor_id), '')",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

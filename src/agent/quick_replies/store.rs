//! The quick replies' queries (table `quick_replies` of the tenant's schema).

use crate::ids::QuickReplyId;
use serde::Serialize;
use sqlx::PgConnection;

#[derive(Serialize, sqlx::FromRow)]
pub struct QuickReply {
    pub id: QuickReplyId,
    #[sqlx(rename = "group_name")]
    pub group: String,
    pub title: String,
    pub body: String,
    pub position: i32,
}

/// The fields a change sets (`None`: left as they are).
pub struct Change {
    pub group: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub position: Option<i32>,
}

const COLUMNS: &str = "id, group_name, title, body, position";

/// All of them, by group, position and age; `pattern` (a `LIKE` pattern) matches the title,
/// the body or the group, in any case.
#[tracing::instrument(name = "db.quick_replies.list", skip_all)]
pub async fn list(conn: &mut PgConnection, pattern: Option<&str>) -> sqlx::Result<Vec<QuickReply>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from quick_replies
         where $1::text is null or title ilike $1 or body ilike $1 or group_name ilike $1
         order by lower(group_name), position, id"
    )))
    .bind(pattern)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.quick_replies.count", skip_all)]
pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from quick_replies").fetch_one(conn).await
}

/// A new one (last in the list unless `change` places it); title and body are given.
#[tracing::instrument(name = "db.quick_replies.create", skip_all)]
pub async fn create(conn: &mut PgConnection, change: Change) -> sqlx::Result<QuickReply> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into quick_replies (group_name, title, body, position)
         values ($1, $2, $3, coalesce($4, (select coalesce(max(position) + 1, 0) from quick_replies)))
         returning {COLUMNS}"
    )))
    .bind(change.group.unwrap_or_default())
    .bind(change.title)
    .bind(change.body)
    .bind(change.position)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.quick_replies.update", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    id: QuickReplyId,
    change: Change,
) -> sqlx::Result<Option<QuickReply>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update quick_replies set group_name = coalesce($2, group_name), title = coalesce($3, title),
                body = coalesce($4, body), position = coalesce($5, position)
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(change.group)
    .bind(change.title)
    .bind(change.body)
    .bind(change.position)
    .fetch_optional(conn)
    .await
}

/// Deletes one; its title, if it was there.
#[tracing::instrument(name = "db.quick_replies.delete", skip_all)]
pub async fn delete(conn: &mut PgConnection, id: QuickReplyId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("delete from quick_replies where id = $1 returning title")
        .bind(id)
        .fetch_optional(conn)
        .await
}

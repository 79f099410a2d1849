//! The auto-reply rules' queries (table `auto_replies` of the tenant's schema). The chat
//! engine reads the enabled ones through its automation cache (`chat::automation`).

use crate::ids::AutoReplyId;
use serde::Serialize;
use sqlx::PgConnection;

#[derive(Serialize, sqlx::FromRow)]
pub struct Rule {
    pub id: AutoReplyId,
    pub keyword: String,
    /// `contains` (the keyword anywhere) or `exact` (the whole message).
    pub match_kind: String,
    pub reply: String,
    pub enabled: bool,
    pub position: i32,
}

/// The fields a change sets (`None`: left as they are).
pub struct Change {
    pub keyword: Option<String>,
    pub match_kind: Option<&'static str>,
    pub reply: Option<String>,
    pub enabled: Option<bool>,
    pub position: Option<i32>,
}

const COLUMNS: &str = "id, keyword, match_kind, reply, enabled, position";

#[tracing::instrument(name = "db.auto_replies.list", skip_all)]
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Rule>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from auto_replies order by position, id"
    )))
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.auto_replies.count", skip_all)]
pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from auto_replies").fetch_one(conn).await
}

/// A new rule (enabled, matching anywhere and last unless `change` says otherwise); the
/// keyword and the reply are given.
#[tracing::instrument(name = "db.auto_replies.create", skip_all)]
pub async fn create(conn: &mut PgConnection, change: Change) -> sqlx::Result<Rule> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into auto_replies (keyword, match_kind, reply, enabled, position)
         values ($1, $2, $3, $4, coalesce($5, (select coalesce(max(position) + 1, 0) from auto_replies)))
         returning {COLUMNS}"
    )))
    .bind(change.keyword)
    .bind(change.match_kind.unwrap_or("contains"))
    .bind(change.reply)
    .bind(change.enabled.unwrap_or(true))
    .bind(change.position)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.auto_replies.update", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    id: AutoReplyId,
    change: Change,
) -> sqlx::Result<Option<Rule>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update auto_replies set keyword = coalesce($2, keyword), match_kind = coalesce($3, match_kind),
                reply = coalesce($4, reply), enabled = coalesce($5, enabled), position = coalesce($6, position)
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(change.keyword)
    .bind(change.match_kind)
    .bind(change.reply)
    .bind(change.enabled)
    .bind(change.position)
    .fetch_optional(conn)
    .await
}

/// Deletes a rule; its keyword, if it was there.
#[tracing::instrument(name = "db.auto_replies.delete", skip_all)]
pub async fn delete(conn: &mut PgConnection, id: AutoReplyId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("delete from auto_replies where id = $1 returning keyword")
        .bind(id)
        .fetch_optional(conn)
        .await
}

//! An agent's saved views of the Conversations page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::ids::SavedViewId;

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SavedView {
    pub id: SavedViewId,
    pub name: String,
    /// The page's filters, as the query string of `GET /api/v1/conversations`.
    pub query: String,
    pub created_at: DateTime<Utc>,
}

/// Agent `agent`'s views, oldest first.
#[tracing::instrument(name = "db.saved_views.list", skip_all)]
pub async fn list(conn: &mut PgConnection, agent: i64) -> sqlx::Result<Vec<SavedView>> {
    sqlx::query_as(
        "select id, name, query, created_at from saved_views where agent_id = $1 order by id",
    )
    .bind(agent)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.saved_views.count", skip_all)]
pub async fn count(conn: &mut PgConnection, agent: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from saved_views where agent_id = $1")
        .bind(agent)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(name = "db.saved_views.create", skip_all)]
pub async fn create(
    conn: &mut PgConnection,
    agent: i64,
    name: &str,
    query: &str,
) -> sqlx::Result<SavedView> {
    sqlx::query_as(
        "insert into saved_views (agent_id, name, query) values ($1, $2, $3)
         returning id, name, query, created_at",
    )
    .bind(agent)
    .bind(name)
    .bind(query)
    .fetch_one(conn)
    .await
}

/// Deletes agent `agent`'s view `id`; whether there was one (another agent's is not).
#[tracing::instrument(name = "db.saved_views.delete", skip_all)]
pub async fn delete(conn: &mut PgConnection, agent: i64, id: SavedViewId) -> sqlx::Result<bool> {
    let done = sqlx::query("delete from saved_views where id = $1 and agent_id = $2")
        .bind(id)
        .bind(agent)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

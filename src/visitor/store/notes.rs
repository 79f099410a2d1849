//! Agents' notes on a visitor (table `notes`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Note {
    pub id: i64,
    pub body: String,
    pub agent_id: Option<i64>,
    pub agent_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The visitor's notes, newest first.
#[tracing::instrument(name = "db.notes.list", skip_all)]
pub async fn list(conn: &mut PgConnection, visitor: i64) -> sqlx::Result<Vec<Note>> {
    sqlx::query_as(
        "select n.id, n.body, n.agent_id, a.display_name as agent_name, n.created_at
         from notes n left join agents a on a.id = n.agent_id
         where n.visitor_id = $1 order by n.id desc limit 200",
    )
    .bind(visitor)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.notes.count", skip_all)]
pub async fn count(conn: &mut PgConnection, visitor: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from notes where visitor_id = $1")
        .bind(visitor)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(name = "db.notes.create", skip_all)]
pub async fn create(
    conn: &mut PgConnection,
    visitor: i64,
    agent: i64,
    body: &str,
) -> sqlx::Result<Note> {
    sqlx::query_as(
        "with n as (insert into notes (visitor_id, agent_id, body) values ($1, $2, $3)
                    returning id, body, agent_id, created_at)
         select n.id, n.body, n.agent_id, a.display_name as agent_name, n.created_at
         from n left join agents a on a.id = n.agent_id",
    )
    .bind(visitor)
    .bind(agent)
    .bind(body)
    .fetch_one(conn)
    .await
}

/// Who wrote note `id` of the visitor: `None` if there is no such note, `Some(None)` if its
/// author has left the team.
#[tracing::instrument(name = "db.notes.author", skip_all)]
pub async fn author(
    conn: &mut PgConnection,
    visitor: i64,
    id: i64,
) -> sqlx::Result<Option<Option<i64>>> {
    sqlx::query_scalar("select agent_id from notes where id = $1 and visitor_id = $2")
        .bind(id)
        .bind(visitor)
        .fetch_optional(conn)
        .await
}

#[tracing::instrument(name = "db.notes.delete", skip_all)]
pub async fn delete(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query("delete from notes where id = $1").bind(id).execute(conn).await?;
    Ok(())
}

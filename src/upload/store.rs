//! The uploads' rows (table `uploads` of the tenant's schema); the bytes are in object
//! storage under the same id.

use sqlx::PgConnection;

use super::UploadOut;

const UPLOAD_COLUMNS: &str = "id, kind, name, size, mime, width, height, has_thumb, visitor_id";

#[tracing::instrument(name = "db.uploads.get", skip_all)]
pub async fn get(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<UploadOut>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {UPLOAD_COLUMNS} from uploads where id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// What is stored of an upload: who sent it (a visitor or an agent) and what it is.
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub size: i64,
    pub mime: &'a str,
    /// An image's pixel size, and whether it has a thumbnail (of `thumb_size` bytes).
    pub dimensions: Option<(i32, i32)>,
    pub thumb_size: i64,
    pub visitor_id: Option<i64>,
    pub agent_id: Option<i64>,
}

#[tracing::instrument(name = "db.uploads.create", skip_all)]
pub async fn create(conn: &mut PgConnection, u: NewUpload<'_>) -> sqlx::Result<UploadOut> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into uploads (id, kind, name, size, mime, width, height, has_thumb, visitor_id, agent_id, thumb_size)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         returning {UPLOAD_COLUMNS}"
    )))
    .bind(u.id)
    .bind(u.kind)
    .bind(u.name)
    .bind(u.size)
    .bind(u.mime)
    .bind(u.dimensions.map(|d| d.0))
    .bind(u.dimensions.map(|d| d.1))
    .bind(u.dimensions.is_some())
    .bind(u.visitor_id)
    .bind(u.agent_id)
    .bind(u.thumb_size)
    .fetch_one(conn)
    .await
}

/// A deleted upload: its id, its bytes (with the thumbnail's), whether it had a thumbnail,
/// and whether a visitor sent it.
pub type Deleted = (String, i64, bool, bool);

#[tracing::instrument(name = "db.uploads.delete", skip_all)]
pub async fn delete(conn: &mut PgConnection, ids: &[String]) -> sqlx::Result<Vec<Deleted>> {
    sqlx::query_as(
        "delete from uploads where id = any($1)
         returning id, size + thumb_size, has_thumb, visitor_id is not null",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

//! The merchant's settings rows (table `settings` of the tenant's schema: one JSON value per
//! key). `MerchantSettings` reads them all over its defaults; a few keys (secrets, the
//! pre-chat form) are read on their own.

use serde_json::Value;
use sqlx::PgConnection;

#[tracing::instrument(name = "db.settings.all", skip_all)]
pub async fn all(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, Value)>> {
    sqlx::query_as("select key, value from settings").fetch_all(conn).await
}

#[tracing::instrument(name = "db.settings.get", skip_all, fields(key))]
pub async fn get(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<Value>> {
    sqlx::query_scalar("select value from settings where key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
}

/// The rows of those of `keys` that are set.
#[tracing::instrument(name = "db.settings.get_many", skip_all)]
pub async fn get_many(
    conn: &mut PgConnection,
    keys: &[&str],
) -> sqlx::Result<Vec<(String, Value)>> {
    sqlx::query_as("select key, value from settings where key = any($1)")
        .bind(keys)
        .fetch_all(conn)
        .await
}

#[tracing::instrument(name = "db.settings.put", skip_all, fields(key))]
pub async fn put(conn: &mut PgConnection, key: &str, value: Value) -> sqlx::Result<()> {
    sqlx::query(
        "insert into settings (key, value) values ($1, $2)
         on conflict (key) do update set value = excluded.value, updated_at = now()",
    )
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

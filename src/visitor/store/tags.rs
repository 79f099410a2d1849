//! The merchant's tags and which visitors carry them (tables `tags`, `visitor_tags`). Names
//! match in any case.

use serde::Serialize;
use sqlx::PgConnection;

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tag {
    pub name: String,
    pub color: String,
    pub visitors: i64,
}

/// The tags with how many visitors carry each, most used first.
#[tracing::instrument(name = "db.tags.list", skip_all)]
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Tag>> {
    sqlx::query_as(
        "select t.name, t.color, count(vt.visitor_id) as visitors
         from tags t left join visitor_tags vt on vt.tag_id = t.id
         group by t.id order by count(vt.visitor_id) desc, lower(t.name)",
    )
    .fetch_all(conn)
    .await
}

/// The names of the visitor's tags, alphabetically.
#[tracing::instrument(name = "db.tags.of_visitor", skip_all)]
pub async fn of_visitor(conn: &mut PgConnection, visitor: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select t.name from visitor_tags vt join tags t on t.id = vt.tag_id
         where vt.visitor_id = $1 order by lower(t.name)",
    )
    .bind(visitor)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.tags.count", skip_all)]
pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from tags").fetch_one(conn).await
}

#[tracing::instrument(name = "db.tags.find", skip_all)]
pub async fn find(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select id from tags where lower(name) = lower($1)")
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// The tag named `name`, created if it is new.
#[tracing::instrument(name = "db.tags.create", skip_all)]
pub async fn create(conn: &mut PgConnection, name: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "insert into tags (name) values ($1)
         on conflict (lower(name)) do update set name = tags.name returning id",
    )
    .bind(name)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.tags.attach", skip_all)]
pub async fn attach(conn: &mut PgConnection, visitor: i64, tag: i64) -> sqlx::Result<()> {
    sqlx::query(
        "insert into visitor_tags (visitor_id, tag_id) values ($1, $2) on conflict do nothing",
    )
    .bind(visitor)
    .bind(tag)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the tag named `name` off the visitor; whether it was on.
#[tracing::instrument(name = "db.tags.detach", skip_all)]
pub async fn detach(conn: &mut PgConnection, visitor: i64, name: &str) -> sqlx::Result<bool> {
    let removed = sqlx::query(
        "delete from visitor_tags vt using tags t
         where vt.tag_id = t.id and vt.visitor_id = $1 and lower(t.name) = lower($2)",
    )
    .bind(visitor)
    .bind(name)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(removed > 0)
}

/// Puts tag `tag` on the visitors `ids` (or, when `None`, takes the tag named `name` off
/// them); how many changed.
#[tracing::instrument(name = "db.tags.bulk", skip_all)]
pub async fn bulk(
    conn: &mut PgConnection,
    ids: &[i64],
    tag: Option<i64>,
    name: &str,
) -> sqlx::Result<u64> {
    let done = match tag {
        Some(tag) => {
            sqlx::query(
                "insert into visitor_tags (visitor_id, tag_id) select unnest($1::bigint[]), $2
                 on conflict do nothing",
            )
            .bind(ids)
            .bind(tag)
            .execute(conn)
            .await?
        }
        None => {
            sqlx::query(
                "delete from visitor_tags vt using tags t
                 where vt.tag_id = t.id and vt.visitor_id = any($1) and lower(t.name) = lower($2)",
            )
            .bind(ids)
            .bind(name)
            .execute(conn)
            .await?
        }
    };
    Ok(done.rows_affected())
}

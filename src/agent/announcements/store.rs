//! The announcements' queries (`public.announcements`, `public.announcement_dismissals`):
//! what agents see and dismiss, and what super-admins write.

use crate::ids::AnnouncementId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::Announcement;

/// The condition for "published and meant for a merchant on plan `$2`".
const VISIBLE: &str = "published_at is not null and published_at <= now()
    and (plans is null or $2 = any(plans))";

/// The published announcements for someone on a merchant with `plan` that they have not
/// dismissed, newest first.
#[tracing::instrument(name = "db.announcements.for_agent", skip_all)]
pub async fn for_agent(
    pool: &PgPool,
    user_id: i64,
    plan: &str,
    limit: i64,
) -> sqlx::Result<Vec<Announcement>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select id, title, body, published_at from public.announcements a
         where {VISIBLE}
           and not exists (select 1 from public.announcement_dismissals d
                           where d.announcement_id = a.id and d.user_id = $1)
         order by published_at desc, id desc limit $3"
    )))
    .bind(user_id)
    .bind(plan)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Hides announcement `id` for the person, if it is meant for a merchant on `plan`: `false`
/// when it is not (or was dismissed before).
#[tracing::instrument(name = "db.announcements.dismiss", skip_all)]
pub async fn dismiss(
    pool: &PgPool,
    user_id: i64,
    plan: &str,
    id: AnnouncementId,
) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into public.announcement_dismissals (announcement_id, user_id)
         select id, $1 from public.announcements where id = $3 and {VISIBLE}
         on conflict do nothing"
    )))
    .bind(user_id)
    .bind(plan)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Whether announcement `id` is published for a merchant on `plan`.
#[tracing::instrument(name = "db.announcements.visible", skip_all)]
pub async fn visible(pool: &PgPool, id: AnnouncementId, plan: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select exists (select 1 from public.announcements where id = $1 and {VISIBLE})"
    )))
    .bind(id)
    .bind(plan)
    .fetch_one(pool)
    .await
}

/// An announcement as its editors see it.
#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct Row {
    pub id: AnnouncementId,
    pub title: String,
    pub body: String,
    /// `None`: every merchant.
    pub plans: Option<Vec<String>>,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many people dismissed it.
    pub dismissals: i64,
}

const COLUMNS: &str = "a.id, a.title, a.body, a.plans, a.published_at, a.created_at, a.updated_at,
    (select count(*) from public.announcement_dismissals d where d.announcement_id = a.id) as dismissals";

/// Drafts first, then the newest published (200 at most).
#[tracing::instrument(name = "db.announcements.all", skip_all)]
pub async fn all(pool: &PgPool) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from public.announcements a
         order by a.published_at desc nulls first, a.id desc limit 200"
    )))
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "db.announcements.get", skip_all)]
pub async fn get(pool: &PgPool, id: AnnouncementId) -> sqlx::Result<Option<Row>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from public.announcements a where a.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The text and audience (`None`: every merchant) of an announcement.
pub struct Draft<'a> {
    pub title: &'a str,
    pub body: &'a str,
    pub plans: Option<&'a [String]>,
}

/// A new, unpublished announcement by platform user `by`; its id.
#[tracing::instrument(name = "db.announcements.create", skip_all)]
pub async fn create(pool: &PgPool, draft: Draft<'_>, by: i64) -> sqlx::Result<AnnouncementId> {
    sqlx::query_scalar(
        "insert into public.announcements (title, body, plans, created_by) values ($1, $2, $3, $4) returning id",
    )
    .bind(draft.title)
    .bind(draft.body)
    .bind(draft.plans)
    .bind(by)
    .fetch_one(pool)
    .await
}

#[tracing::instrument(name = "db.announcements.update", skip_all)]
pub async fn update(pool: &PgPool, id: AnnouncementId, draft: Draft<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "update public.announcements set title = $2, body = $3, plans = $4, updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(draft.title)
    .bind(draft.body)
    .bind(draft.plans)
    .execute(pool)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "db.announcements.delete", skip_all)]
pub async fn delete(pool: &PgPool, id: AnnouncementId) -> sqlx::Result<()> {
    sqlx::query("delete from public.announcements where id = $1").bind(id).execute(pool).await?;
    Ok(())
}

/// Publishes (keeping the first publication time) or withdraws announcement `id`.
#[tracing::instrument(name = "db.announcements.set_published", skip_all)]
pub async fn set_published(pool: &PgPool, id: AnnouncementId, published: bool) -> sqlx::Result<()> {
    sqlx::query(
        "update public.announcements
         set published_at = case when $2 then coalesce(published_at, now()) else null end, updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(published)
    .execute(pool)
    .await?;
    Ok(())
}

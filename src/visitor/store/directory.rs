//! The visitor directory agents search and open (`GET /api/v1/visitors…`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

use super::{notes, tags};

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VisitorItem {
    #[serde(skip)]
    pub id: i64,
    #[sqlx(rename = "public_id")]
    #[serde(rename = "id")]
    pub public_id: String,
    pub name: String,
    pub real_name: Option<String>,
    /// The merchant's user id, for a verified visitor.
    #[sqlx(rename = "external_id")]
    pub user_id: Option<String>,
    pub os: Option<String>,
    pub browser: Option<String>,
    pub city: Option<String>,
    pub visit_count: i32,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub online: bool,
}

/// A page of visitors, newest first, with ids below `before`: `text` matches the name or real
/// name (substring, any case) or the visitor's id or user id exactly; `tag` keeps those
/// carrying it.
#[tracing::instrument(name = "db.visitors.search", skip_all)]
pub async fn search(
    conn: &mut PgConnection,
    text: Option<&str>,
    tag: Option<&str>,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<VisitorItem>> {
    sqlx::query_as(
        "select v.id, v.public_id, v.name, v.real_name, v.external_id, v.os, v.browser, v.city, v.visit_count,
                v.first_seen_at, v.last_seen_at
         from visitors v
         where v.id < $1
           and ($2::text is null or v.name ilike $3 or v.real_name ilike $3 or v.public_id = $2 or v.external_id = $2)
           and ($4::text is null or exists (select 1 from visitor_tags vt join tags t on t.id = vt.tag_id
                                            where vt.visitor_id = v.id and lower(t.name) = lower($4)))
         order by v.id desc limit $5",
    )
    .bind(before)
    .bind(text)
    .bind(text.map(crate::http::input::like_pattern))
    .bind(tag)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VisitorDetail {
    #[serde(skip)]
    pub id: i64,
    #[sqlx(rename = "public_id")]
    #[serde(rename = "id")]
    pub public_id: String,
    pub name: String,
    pub real_name: Option<String>,
    /// The merchant's user id, when its server proved it (the same visitor on every device).
    #[sqlx(rename = "external_id")]
    pub user_id: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    /// An id the page claimed without proof: a hint, not an identity.
    pub claimed_user_id: Option<String>,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub os: Option<String>,
    pub browser: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub referrer: Option<String>,
    pub landing_url: Option<String>,
    pub extra: Value,
    /// The pre-chat form's answers (`[{key, kind, label, value, choice?}]`), and when.
    pub prechat: Option<Value>,
    pub prechat_at: Option<DateTime<Utc>>,
    pub visit_count: i32,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub blocked: bool,
    #[sqlx(skip)]
    pub tags: Vec<String>,
    #[sqlx(skip)]
    pub online: bool,
    /// The latest pages of the merchant's site the visitor opened, newest first.
    #[sqlx(skip)]
    pub pages: Vec<PageViewOut>,
    /// Agents' notes about the visitor, newest first.
    #[sqlx(skip)]
    pub notes: Vec<notes::Note>,
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PageViewOut {
    pub url: String,
    pub title: String,
    pub referrer: Option<String>,
    pub at: DateTime<Utc>,
}

/// Everything agents see of the visitor with public id `public_id` (`online` is left for the
/// caller, who knows the connections).
#[tracing::instrument(name = "db.visitors.detail", skip_all)]
pub async fn detail(
    conn: &mut PgConnection,
    public_id: &str,
) -> sqlx::Result<Option<VisitorDetail>> {
    let detail: Option<VisitorDetail> = sqlx::query_as(
        "select v.id, v.public_id, v.name, v.real_name, v.external_id, v.verified_at, v.claimed_user_id,
                v.avatar_url, v.email, v.phone, host(v.ip) as ip, v.user_agent,
                v.os, v.browser, v.device, v.country, v.region, v.city, v.referrer, v.landing_url, v.extra,
                v.prechat, v.prechat_at, v.visit_count, v.first_seen_at, v.last_seen_at,
                v.blocked_at is not null or exists (select 1 from blacklist b where b.visitor_id = v.id) as blocked
         from visitors v where v.public_id = $1",
    )
    .bind(public_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut detail) = detail else { return Ok(None) };
    detail.tags = tags::of_visitor(conn, detail.id).await?;
    detail.pages = pages(conn, detail.id).await?;
    detail.notes = notes::list(conn, detail.id).await?;
    Ok(Some(detail))
}

/// The latest 50 pages of the merchant's site the visitor opened, newest first.
#[tracing::instrument(name = "db.page_views.of_visitor", skip_all)]
pub async fn pages(conn: &mut PgConnection, visitor: i64) -> sqlx::Result<Vec<PageViewOut>> {
    sqlx::query_as(
        "select url, title, referrer, created_at as at from page_views
         where visitor_id = $1 order by id desc limit 50",
    )
    .bind(visitor)
    .fetch_all(conn)
    .await
}

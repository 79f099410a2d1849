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
    /// The merchant's server proved who this is (`user_id`).
    pub verified: bool,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub ip: Option<String>,
    pub os: Option<String>,
    pub browser: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub tags: Vec<String>,
    pub visit_count: i32,
    /// How many conversations the visitor had.
    pub conversations: i64,
    pub blocked: bool,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub online: bool,
}

/// Which visitors a list shows; every part left empty keeps everyone.
#[derive(Default)]
pub struct Filter {
    /// The name, real name, e-mail or phone (substring, any case), or the visitor's id or
    /// user id exactly.
    pub text: Option<String>,
    pub tag: Option<String>,
    /// A country code (any case).
    pub country: Option<String>,
    pub has_email: bool,
    pub verified: Option<bool>,
    /// Last seen at or after / before.
    pub seen_after: Option<DateTime<Utc>>,
    pub seen_before: Option<DateTime<Utc>>,
    /// Only these visitors (row ids), e.g. those connected now.
    pub among: Option<Vec<i64>>,
    /// Only these visitors (public ids), e.g. those an agent ticked.
    pub ids: Option<Vec<String>>,
}

/// The order of a list; each breaks ties by the newest visitor first.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Newest visitor first (the default).
    #[default]
    Newest,
    /// Most recently seen first.
    LastSeen,
    /// Most visits first.
    Visits,
    /// By name, A to Z.
    Name,
}

/// Where a page starts: after the row with this sort value and id. Clients see it as an
/// opaque string (`next_cursor`).
#[derive(Debug, PartialEq)]
pub enum After {
    Id(i64),
    Time(DateTime<Utc>, i64),
    Count(i32, i64),
    Name(String, i64),
}

impl After {
    /// The cursor of the page after `last`.
    pub fn of(sort: Sort, last: &VisitorItem) -> Self {
        match sort {
            Sort::Newest => After::Id(last.id),
            Sort::LastSeen => After::Time(last.last_seen_at, last.id),
            Sort::Visits => After::Count(last.visit_count, last.id),
            Sort::Name => After::Name(last.name.to_lowercase(), last.id),
        }
    }

    pub fn encode(&self) -> String {
        use base64::Engine;
        let raw = match self {
            After::Id(id) => format!("i{id}"),
            After::Time(t, id) => format!("t{}:{id}", t.timestamp_micros()),
            After::Count(n, id) => format!("c{n}:{id}"),
            After::Name(name, id) => format!("n{id}:{name}"),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// The cursor `raw` for a list in `sort` order; `None` for nonsense or another order's.
    pub fn decode(sort: Sort, raw: &str) -> Option<Self> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (kind, rest) = text.split_at_checked(1)?;
        let pair = || rest.split_once(':');
        match (sort, kind) {
            (Sort::Newest, "i") => rest.parse().ok().map(After::Id),
            (Sort::LastSeen, "t") => {
                let (t, id) = pair()?;
                let t = DateTime::from_timestamp_micros(t.parse().ok()?)?;
                Some(After::Time(t, id.parse().ok()?))
            }
            (Sort::Visits, "c") => {
                let (n, id) = pair()?;
                Some(After::Count(n.parse().ok()?, id.parse().ok()?))
            }
            (Sort::Name, "n") => {
                let (id, name) = pair()?;
                Some(After::Name(name.to_owned(), id.parse().ok()?))
            }
            _ => None,
        }
    }
}

const ITEM_SELECT: &str = "select v.id, v.public_id, v.name, v.real_name, v.external_id,
        v.verified_at is not null as verified, v.email, v.phone, host(v.ip) as ip, v.os, v.browser,
        v.device, v.country, v.region, v.city,
        array(select t.name from visitor_tags vt join tags t on t.id = vt.tag_id
              where vt.visitor_id = v.id order by lower(t.name)) as tags,
        v.visit_count, (select count(*) from conversations c where c.visitor_id = v.id) as conversations,
        v.blocked_at is not null or exists (select 1 from blacklist b where b.visitor_id = v.id) as blocked,
        v.first_seen_at, v.last_seen_at
    from visitors v where true";

/// A page of visitors matching `filter` in `sort` order, after `after` (from the start when
/// `None`).
#[tracing::instrument(name = "db.visitors.search", skip_all)]
pub async fn search(
    conn: &mut PgConnection,
    filter: &Filter,
    sort: Sort,
    after: Option<&After>,
    limit: i64,
) -> sqlx::Result<Vec<VisitorItem>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(ITEM_SELECT);
    if let Some(text) = &filter.text {
        q.push(" and (v.name ilike ").push_bind(crate::http::input::like_pattern(text));
        q.push(" or v.real_name ilike ").push_bind(crate::http::input::like_pattern(text));
        q.push(" or v.email ilike ").push_bind(crate::http::input::like_pattern(text));
        q.push(" or v.phone ilike ").push_bind(crate::http::input::like_pattern(text));
        q.push(" or v.public_id = ").push_bind(text.clone());
        q.push(" or v.external_id = ").push_bind(text.clone()).push(")");
    }
    if let Some(tag) = &filter.tag {
        q.push(
            " and exists (select 1 from visitor_tags vt join tags t on t.id = vt.tag_id
                 where vt.visitor_id = v.id and lower(t.name) = lower(",
        )
        .push_bind(tag.clone())
        .push("))");
    }
    if let Some(country) = &filter.country {
        q.push(" and upper(v.country) = upper(").push_bind(country.clone()).push(")");
    }
    if filter.has_email {
        q.push(" and coalesce(v.email, '') <> ''");
    }
    match filter.verified {
        Some(true) => q.push(" and v.verified_at is not null"),
        Some(false) => q.push(" and v.verified_at is null"),
        None => &mut q,
    };
    if let Some(t) = filter.seen_after {
        q.push(" and v.last_seen_at >= ").push_bind(t);
    }
    if let Some(t) = filter.seen_before {
        q.push(" and v.last_seen_at < ").push_bind(t);
    }
    if let Some(among) = &filter.among {
        q.push(" and v.id = any(").push_bind(among.clone()).push(")");
    }
    if let Some(ids) = &filter.ids {
        q.push(" and v.public_id = any(").push_bind(ids.clone()).push(")");
    }
    match after {
        None => &mut q,
        Some(After::Id(id)) => q.push(" and v.id < ").push_bind(*id),
        Some(After::Time(t, id)) => q
            .push(" and (v.last_seen_at, v.id) < (")
            .push_bind(*t)
            .push(", ")
            .push_bind(*id)
            .push(")"),
        Some(After::Count(n, id)) => q
            .push(" and (v.visit_count, v.id) < (")
            .push_bind(*n)
            .push(", ")
            .push_bind(*id)
            .push(")"),
        Some(After::Name(name, id)) => q
            .push(" and (lower(v.name) > ")
            .push_bind(name.clone())
            .push(" or (lower(v.name) = ")
            .push_bind(name.clone())
            .push(" and v.id < ")
            .push_bind(*id)
            .push("))"),
    };
    q.push(match sort {
        Sort::Newest => " order by v.id desc",
        Sort::LastSeen => " order by v.last_seen_at desc, v.id desc",
        Sort::Visits => " order by v.visit_count desc, v.id desc",
        Sort::Name => " order by lower(v.name), v.id desc",
    });
    q.push(" limit ").push_bind(limit);
    q.build_query_as().fetch_all(conn).await
}

/// The countries visitors came from, most visitors first (for the list's filter).
#[tracing::instrument(name = "db.visitors.countries", skip_all)]
pub async fn countries(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select upper(country) from visitors where coalesce(country, '') <> ''
         group by upper(country) order by count(*) desc, upper(country) limit 100",
    )
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
    /// `avatar_url` served through kefu (a signed `/img/…` path), for pages to show.
    #[sqlx(skip)]
    pub avatar_src: Option<String>,
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

//! The visitor feature's queries (inside a `TenantTx`): visitor rows here, their notes and
//! tags in the submodules.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use super::Device;
use crate::realtime::protocol::VisitorOut;

pub mod blacklist;
pub mod directory;
pub mod merge;
pub mod notes;
pub mod tags;

/// Where a visitor's shown name came from; a name from a lower source never replaces one
/// from a higher (`visitors.name_rank`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i16)]
pub enum NameRank {
    /// "Visitor K7QX".
    Generated = 1,
    /// `visitor_name` of the chat link or the widget (a hint from the page).
    Page = 2,
    /// An agent named them.
    Agent = 3,
    /// They said it themselves (pre-chat or leave-a-message form).
    Visitor = 4,
    /// The merchant's server vouched for it (a verified identity).
    Verified = 5,
}

/// What a session request says about the visitor.
pub struct Profile {
    pub name: Option<String>,
    /// Where `name` comes from.
    pub name_rank: NameRank,
    pub avatar: Option<String>,
    pub referrer: Option<String>,
    pub landing_url: Option<String>,
    pub extra: Value,
    pub ip: IpAddr,
    pub user_agent: String,
    pub device: Device,
    /// From the GeoIP databases; unknown parts stay empty.
    pub location: crate::geoip::Location,
    /// From a verified identity token only.
    pub email: Option<String>,
    /// A user id the page claimed without proof (shown to agents as unverified).
    pub claimed_user_id: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct VisitorRow {
    pub id: i64,
    pub public_id: String,
    pub name: String,
    /// The merchant's user id, for a visitor the merchant's server vouched for.
    pub external_id: Option<String>,
    /// Blocked by visitor (blocked_at or a blacklist row); IP blocks are checked separately.
    pub blocked: bool,
}

const RETURNING: &str = "returning id, public_id, name, external_id,
    blocked_at is not null or exists (select 1 from blacklist b where b.visitor_id = visitors.id) as blocked";

/// A new visitor; `external_id` names the merchant's user for a verified one.
#[tracing::instrument(name = "db.visitors.create", skip_all)]
pub async fn create(
    conn: &mut PgConnection,
    p: &Profile,
    external_id: Option<&str>,
) -> sqlx::Result<VisitorRow> {
    let public_id = new_public_id();
    let (name, rank) = match &p.name {
        Some(name) => (name.clone(), p.name_rank),
        None => (format!("Visitor {}", public_id[1..5].to_uppercase()), NameRank::Generated),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into visitors (public_id, name, avatar_url, ip, user_agent, os, browser, device, referrer, landing_url, extra,
                               country, region, city, email, claimed_user_id, external_id, verified_at, name_rank)
         values ($1, $2, $3, $4::inet, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 case when $17::text is null then null else now() end, $18)
         {RETURNING}"
    )))
    .bind(&public_id)
    .bind(name)
    .bind(&p.avatar)
    .bind(p.ip.to_string())
    .bind(&p.user_agent)
    .bind(&p.device.os)
    .bind(&p.device.browser)
    .bind(&p.device.device)
    .bind(&p.referrer)
    .bind(&p.landing_url)
    .bind(&p.extra)
    .bind(&p.location.country)
    .bind(&p.location.region)
    .bind(&p.location.city)
    .bind(&p.email)
    .bind(&p.claimed_user_id)
    .bind(external_id)
    .bind(rank as i16)
    .fetch_one(conn)
    .await
}

/// Refreshes a returning visitor; a visit counts again after 30 minutes away.
#[tracing::instrument(name = "db.visitors.resume", skip_all)]
pub async fn resume(
    conn: &mut PgConnection,
    id: i64,
    p: &Profile,
) -> sqlx::Result<Option<VisitorRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update visitors set
            visit_count = visit_count + case when last_seen_at < now() - interval '30 minutes' then 1 else 0 end,
            last_seen_at = now(),
            ip = $2::inet, user_agent = $3, os = $4, browser = $5, device = $6,
            name = case when $7::text is not null and $16 >= name_rank then $7 else name end,
            name_rank = case when $7::text is not null and $16 >= name_rank then $16 else name_rank end,
            avatar_url = coalesce($8, avatar_url),
            referrer = coalesce($9, referrer), extra = extra || $10,
            country = $11, region = $12, city = $13,
            email = coalesce($14, email), claimed_user_id = coalesce($15, claimed_user_id)
         where id = $1
         {RETURNING}"
    )))
    .bind(id)
    .bind(p.ip.to_string())
    .bind(&p.user_agent)
    .bind(&p.device.os)
    .bind(&p.device.browser)
    .bind(&p.device.device)
    .bind(&p.name)
    .bind(&p.avatar)
    .bind(&p.referrer)
    .bind(&p.extra)
    .bind(&p.location.country)
    .bind(&p.location.region)
    .bind(&p.location.city)
    .bind(&p.email)
    .bind(&p.claimed_user_id)
    .bind(p.name_rank as i16)
    .fetch_optional(conn)
    .await
}

/// The merchant's user id of visitor `id`: `None` if there is no such visitor,
/// `Some(None)` for an anonymous one.
#[tracing::instrument(name = "db.visitors.external_id", skip_all)]
pub async fn external_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar("select external_id from visitors where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The visitor the merchant's user `external_id` already is.
#[tracing::instrument(name = "db.visitors.by_external_id", skip_all)]
pub async fn by_external_id(
    conn: &mut PgConnection,
    external_id: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select id from visitors where external_id = $1")
        .bind(external_id)
        .fetch_optional(conn)
        .await
}

/// Makes anonymous visitor `id` the merchant's user `external_id` (they logged in on the
/// merchant's site: what they said before stays theirs).
#[tracing::instrument(name = "db.visitors.mark_verified", skip_all)]
pub async fn mark_verified(
    conn: &mut PgConnection,
    id: i64,
    external_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update visitors set external_id = $2, verified_at = now(), claimed_user_id = null
         where id = $1 and external_id is null",
    )
    .bind(id)
    .bind(external_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Serializes sessions naming the same user, so two devices logging in at once make one
/// visitor (released at commit).
#[tracing::instrument(name = "db.visitors.lock_identity", skip_all)]
pub async fn lock_identity(conn: &mut PgConnection, external_id: &str) -> sqlx::Result<()> {
    crate::db::tenant_lock(conn, &format!("kefu.visitor:{external_id}")).await
}

impl VisitorRow {
    /// Visitor `id` (or the record it was merged into) as a request from `ip` sees it:
    /// blocked when the visitor is, or when `ip` falls in a blocked address or range.
    #[tracing::instrument(name = "db.visitors.load", skip_all)]
    pub async fn load(
        conn: &mut PgConnection,
        id: i64,
        ip: IpAddr,
    ) -> sqlx::Result<Option<VisitorRow>> {
        sqlx::query_as(
            "select id, public_id, name, external_id,
                    blocked_at is not null
                    or exists (select 1 from blacklist b where b.visitor_id = v.id or b.ip_range >>= $2::inet)
                    as blocked
             from visitors v
             where id = coalesce((select into_id from visitor_merges where from_id = $1), $1)",
        )
        .bind(id)
        .bind(ip.to_string())
        .fetch_optional(conn)
        .await
    }
}

/// Whether `ip` falls in a blacklisted address or range.
#[tracing::instrument(name = "db.visitors.ip_blocked", skip_all)]
pub async fn ip_blocked(conn: &mut PgConnection, ip: IpAddr) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from blacklist where ip_range >>= $1::inet)")
        .bind(ip.to_string())
        .fetch_one(conn)
        .await
}

/// The row id of the visitor with public id `public_id`.
#[tracing::instrument(name = "db.visitors.by_public_id", skip_all)]
pub async fn by_public_id(conn: &mut PgConnection, public_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select id from visitors where public_id = $1")
        .bind(public_id)
        .fetch_optional(conn)
        .await
}

/// The row ids of the visitors with these public ids (unknown ones are left out).
#[tracing::instrument(name = "db.visitors.by_public_ids", skip_all)]
pub async fn by_public_ids(
    conn: &mut PgConnection,
    public_ids: &[String],
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("select id from visitors where public_id = any($1)")
        .bind(public_ids)
        .fetch_all(conn)
        .await
}

/// The visitor as agents see it in lists and panels.
#[tracing::instrument(name = "db.visitors.shown", skip_all)]
pub async fn shown(conn: &mut PgConnection, id: i64) -> sqlx::Result<VisitorOut> {
    let mut visitor: VisitorOut = sqlx::query_as(
        "select public_id, name, real_name, external_id, email, phone,
                blocked_at is not null or exists (select 1 from blacklist b where b.visitor_id = v.id) as blocked
         from visitors v where id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    visitor.tags = tags::of_visitor(conn, id).await?;
    Ok(visitor)
}

/// What an agent changes on a visitor's record: `None` leaves a field as it is;
/// `Some(None)` clears an optional one. A name the agent gives is shown (an explicit edit);
/// a real name becomes the shown name unless the visitor or the merchant's server named them.
pub struct Details {
    pub name: Option<String>,
    pub real_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
}

#[tracing::instrument(name = "db.visitors.update_details", skip_all)]
pub async fn update_details(conn: &mut PgConnection, id: i64, d: Details) -> sqlx::Result<()> {
    sqlx::query(
        "update visitors set
                name = coalesce($2, case when $3 and $4::text is not null and name_rank <= $9 then $4 end, name),
                name_rank = case when $2::text is not null
                                   or ($3 and $4::text is not null and name_rank <= $9) then $9
                                 else name_rank end,
                real_name = case when $3 then $4 else real_name end,
                email = case when $5 then $6 else email end,
                phone = case when $7 then $8 else phone end
         where id = $1",
    )
    .bind(id)
    .bind(d.name)
    .bind(d.real_name.is_some())
    .bind(d.real_name.flatten())
    .bind(d.email.is_some())
    .bind(d.email.flatten())
    .bind(d.phone.is_some())
    .bind(d.phone.flatten())
    .bind(NameRank::Agent as i16)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ids of the files sent in the visitor's conversations.
#[tracing::instrument(name = "db.visitors.attachments", skip_all)]
pub async fn attachments(conn: &mut PgConnection, id: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select distinct m.payload #>> '{attachment,id}' from messages m
         join conversations c on c.id = m.conversation_id
         where c.visitor_id = $1 and m.payload ? 'attachment'",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Deletes every message of the visitor's conversations (the conversations stay); how many.
#[tracing::instrument(name = "db.visitors.delete_messages", skip_all)]
pub async fn delete_messages(conn: &mut PgConnection, id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "delete from messages where conversation_id in (select id from conversations where visitor_id = $1)",
    )
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Whether the visitor has neither answered the pre-chat form nor chatted yet (`false` for
/// an unknown visitor).
#[tracing::instrument(name = "db.visitors.is_new_to_chat", skip_all)]
pub async fn is_new_to_chat(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let fresh: Option<bool> = sqlx::query_scalar(
        "select prechat_at is null and not exists (select 1 from conversations c where c.visitor_id = v.id)
         from visitors v where v.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(fresh.unwrap_or(false))
}

/// The pre-chat form's answers, and what they say of the visitor (each `None` leaves the
/// record's value).
pub struct PrechatAnswers {
    pub answers: Value,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[tracing::instrument(name = "db.visitors.save_prechat", skip_all)]
pub async fn save_prechat(conn: &mut PgConnection, id: i64, a: PrechatAnswers) -> sqlx::Result<()> {
    sqlx::query(
        "update visitors set prechat = $2, prechat_at = now(),
                name = case when $3::text is not null and name_rank <= $6 then $3 else name end,
                name_rank = case when $3::text is not null and name_rank <= $6 then $6 else name_rank end,
                real_name = coalesce($3, real_name),
                email = coalesce($4, email), phone = coalesce($5, phone)
         where id = $1",
    )
    .bind(id)
    .bind(a.answers)
    .bind(a.name)
    .bind(a.email)
    .bind(a.phone)
    .bind(NameRank::Visitor as i16)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of the merchant's site the visitor opened.
pub struct PageView {
    pub url: String,
    pub title: String,
    pub referrer: Option<String>,
    pub at: DateTime<Utc>,
}

#[tracing::instrument(name = "db.page_views.create", skip_all)]
pub async fn record_pages(
    conn: &mut PgConnection,
    id: i64,
    views: &[PageView],
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into page_views (visitor_id, url, title, referrer, created_at)
         select $1, u, t, r, a from unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) as v(u, t, r, a)",
    )
    .bind(id)
    .bind(views.iter().map(|v| v.url.as_str()).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.title.as_str()).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.referrer.as_deref()).collect::<Vec<_>>())
    .bind(views.iter().map(|v| v.at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// What a visitor gave in the leave-a-message form about themselves: the name they give is
/// the one shown (as a pre-chat answer is) unless the merchant's server vouched for another; their real name, email and phone are kept where
/// nothing was before (what an agent or the pre-chat form set stays).
#[tracing::instrument(name = "db.visitors.left_contact", skip_all)]
pub async fn left_contact(
    conn: &mut PgConnection,
    id: i64,
    name: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update visitors
            set name = case when $2::text is not null and name_rank <= $5 then $2 else name end,
                name_rank = case when $2::text is not null and name_rank <= $5 then $5 else name_rank end,
                real_name = coalesce(nullif(real_name, ''), $2),
                email = coalesce(nullif(email, ''), $3),
                phone = coalesce(nullif(phone, ''), $4)
          where id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(email)
    .bind(phone)
    .bind(NameRank::Visitor as i16)
    .execute(conn)
    .await?;
    Ok(())
}

/// `v` + 16 characters from an alphabet without look-alikes (≈ 80 bits).
fn new_public_id() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    std::iter::once('v')
        .chain((0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char))
        .collect()
}

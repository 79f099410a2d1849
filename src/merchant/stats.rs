//! Statistics for merchant admins: conversations and messages per day, first-response and
//! resolution times (median and p90), and the same per agent. Days are the merchant's days
//! (the business-hours time zone).

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::settings::MerchantSettings;
use crate::{
    auth::session::AgentSession,
    http::{AppError, AppState, Routes, Scope},
};

/// The longest range one request may ask for.
const MAX_DAYS: i64 = 92;

pub fn routes() -> Routes {
    Routes::new().get("/api/v1/stats", Scope::Tenant, stats).admin()
}

#[derive(Deserialize)]
struct Range {
    /// First day, `YYYY-MM-DD` (default: 13 days before `to`).
    #[serde(default)]
    from: Option<String>,
    /// Last day, included (default: today).
    #[serde(default)]
    to: Option<String>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Day {
    date: NaiveDate,
    conversations: i64,
    messages: i64,
    visitor_messages: i64,
}

#[derive(Serialize, sqlx::FromRow)]
struct Timing {
    /// Conversations measured.
    count: i64,
    median_seconds: Option<f64>,
    p90_seconds: Option<f64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct AgentStats {
    agent_id: i64,
    name: String,
    conversations: i64,
    messages: i64,
    median_first_response_seconds: Option<f64>,
}

#[derive(Serialize)]
struct Stats {
    from: NaiveDate,
    to: NaiveDate,
    time_zone: String,
    days: Vec<Day>,
    first_response: Timing,
    resolution: Timing,
    agents: Vec<AgentStats>,
}

fn date(field: &'static str, raw: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::field(field, "a date like 2026-11-23"))
}

async fn stats(
    State(state): State<AppState>,
    session: AgentSession,
    Query(range): Query<Range>,
) -> Result<Json<Stats>, AppError> {
    session.require_admin()?;
    let mut tx = session.tx(&state).await?;
    let tz = MerchantSettings::load(&mut tx).await?.business_hours.time_zone;
    let today = Utc::now()
        .with_timezone(&tz.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC))
        .date_naive();
    let to = range.to.as_deref().map(|d| date("to", d)).transpose()?.unwrap_or(today);
    let from = range
        .from
        .as_deref()
        .map(|d| date("from", d))
        .transpose()?
        .unwrap_or(to - Duration::days(13));
    if from > to {
        return Err(AppError::field("from", "from is on or before to"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(AppError::field("from", "at most 92 days at once"));
    }
    // Conversations and messages are counted on the day they began / were sent, in the
    // merchant's time zone; `[start, end)` bounds them as instants.
    let bounds = "($1::date::timestamp at time zone $3)";
    let end = "(($2::date + 1)::timestamp at time zone $3)";
    let days: Vec<Day> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with d as (select generate_series($1::date, $2::date, interval '1 day')::date as date),
              c as (select (created_at at time zone $3)::date as date, count(*) as n from conversations
                    where created_at >= {bounds} and created_at < {end} group by 1),
              m as (select (created_at at time zone $3)::date as date, count(*) as n,
                           count(*) filter (where sender_kind = 'visitor') as v from messages
                    where created_at >= {bounds} and created_at < {end} group by 1)
         select d.date, coalesce(c.n, 0) as conversations, coalesce(m.n, 0) as messages,
                coalesce(m.v, 0) as visitor_messages
         from d left join c using (date) left join m using (date) order by d.date"
    )))
    .bind(from)
    .bind(to)
    .bind(&tz)
    .fetch_all(&mut *tx)
    .await?;
    // First response: from the conversation's first visitor message to the first agent reply.
    let first_response: Timing = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with r as (
            select extract(epoch from (
                       (select min(m.created_at) from messages m where m.conversation_id = c.id and m.sender_kind = 'agent')
                     - (select min(m.created_at) from messages m where m.conversation_id = c.id and m.sender_kind = 'visitor'))) as s
            from conversations c where c.created_at >= {bounds} and c.created_at < {end})
         select count(s) as count,
                percentile_cont(0.5) within group (order by s) as median_seconds,
                percentile_cont(0.9) within group (order by s) as p90_seconds
         from r where s >= 0"
    )))
    .bind(from)
    .bind(to)
    .bind(&tz)
    .fetch_one(&mut *tx)
    .await?;
    let resolution: Timing = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with r as (select extract(epoch from (closed_at - created_at)) as s from conversations
                    where closed_at is not null and created_at >= {bounds} and created_at < {end})
         select count(s) as count,
                percentile_cont(0.5) within group (order by s) as median_seconds,
                percentile_cont(0.9) within group (order by s) as p90_seconds
         from r"
    )))
    .bind(from)
    .bind(to)
    .bind(&tz)
    .fetch_one(&mut *tx)
    .await?;
    // Per agent: conversations they replied in, their messages, their median first reply.
    let agents: Vec<AgentStats> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with per as (
            select m.sender_agent_id as agent_id, m.conversation_id, count(*) as messages, min(m.created_at) as first_reply
            from messages m
            where m.sender_kind = 'agent' and m.sender_agent_id is not null
              and m.created_at >= {bounds} and m.created_at < {end}
            group by 1, 2),
          timed as (
            select per.*, extract(epoch from (per.first_reply -
                (select min(v.created_at) from messages v where v.conversation_id = per.conversation_id and v.sender_kind = 'visitor'))) as s
            from per)
         select a.id as agent_id, a.display_name as name, count(t.conversation_id) as conversations,
                coalesce(sum(t.messages), 0)::bigint as messages,
                percentile_cont(0.5) within group (order by t.s) filter (where t.s >= 0) as median_first_response_seconds
         from agents a left join timed t on t.agent_id = a.id
         group by a.id, a.display_name order by count(t.conversation_id) desc, a.display_name"
    )))
    .bind(from)
    .bind(to)
    .bind(&tz)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Stats { from, to, time_zone: tz, days, first_response, resolution, agents }))
}

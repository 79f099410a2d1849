//! Reports for merchant admins: conversations, messages, missed conversations and CSAT per
//! day; first-response and resolution times (median and p90); the busiest hours; the same
//! per agent; and each table as CSV. Days and hours are the merchant's (the business-hours
//! time zone).
//!
//! Definitions (docs/api.md, Reports): a conversation counts on the day it began. First
//! response: from its first visitor message to the first agent reply. Resolution: from its
//! start to its resolution, for those resolved. Missed: a visitor wrote and no agent ever
//! replied (bots do not count). CSAT counts ratings on the day they were given, per agent by
//! who had the conversation then.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::settings::MerchantSettings;
use crate::{
    auth::session::AgentSession,
    http::{AppError, Routes, Scope},
    startup::AppState,
};

/// The longest range one request may ask for.
const MAX_DAYS: i64 = 92;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/v1/stats", Scope::Tenant, stats)
        .admin()
        .get("/api/v1/stats/export", Scope::Tenant, export)
        .admin()
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
    /// Conversations begun that day in which no agent ever replied.
    missed: i64,
    /// Ratings given that day, and their average.
    ratings: i64,
    csat_average: Option<f64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Timing {
    /// Conversations measured.
    count: i64,
    median_seconds: Option<f64>,
    p90_seconds: Option<f64>,
}

#[derive(Serialize)]
struct Csat {
    count: i64,
    average: Option<f64>,
    /// The share of 4 and 5 stars (0–1).
    satisfied_share: Option<f64>,
    /// How many of each score, 1 star first.
    distribution: [i64; 5],
}

#[derive(Serialize, sqlx::FromRow)]
struct AgentStats {
    agent_id: i64,
    name: String,
    /// Conversations the agent replied in.
    conversations: i64,
    messages: i64,
    median_first_response_seconds: Option<f64>,
    p90_first_response_seconds: Option<f64>,
    /// Conversations begun in the range, theirs and resolved.
    #[sqlx(skip)]
    resolved: i64,
    #[sqlx(skip)]
    median_resolution_seconds: Option<f64>,
    #[sqlx(skip)]
    ratings: i64,
    #[sqlx(skip)]
    csat_average: Option<f64>,
}

#[derive(Serialize)]
struct Stats {
    from: NaiveDate,
    to: NaiveDate,
    time_zone: String,
    conversations: i64,
    missed: i64,
    days: Vec<Day>,
    first_response: Timing,
    resolution: Timing,
    csat: Csat,
    /// Conversations begun per weekday (Monday first) and hour: 7 rows of 24.
    hours: Vec<[i64; 24]>,
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
    Ok(Json(report(&state, &session, &range).await?))
}

/// `from`, `to` and the time zone, checked.
async fn bounds(
    conn: &mut PgConnection,
    range: &Range,
) -> Result<(NaiveDate, NaiveDate, String), AppError> {
    let tz = MerchantSettings::load(conn).await?.business_hours.time_zone;
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
    Ok((from, to, tz))
}

/// Runs one report query, bound to `from` ($1), `to` ($2) and the time zone ($3). `{start}`
/// and `{end}` in `sql` are the range's bounds as instants: `[start, end)`.
fn query<'q, O>(
    sql: &str,
    from: NaiveDate,
    to: NaiveDate,
    tz: &'q str,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    // Only these fixed fragments are formatted into the query; values are bound.
    let sql = sql
        .replace("{start}", "($1::date::timestamp at time zone $3)")
        .replace("{end}", "(($2::date + 1)::timestamp at time zone $3)");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).bind(tz)
}

/// Whether conversation `c` had a visitor message and never an agent reply.
const MISSED: &str = "exists (select 1 from messages v where v.conversation_id = c.id and v.sender_kind = 'visitor')
    and not exists (select 1 from messages a where a.conversation_id = c.id and a.sender_kind = 'agent')";

async fn report(
    state: &AppState,
    session: &AgentSession,
    range: &Range,
) -> Result<Stats, AppError> {
    session.require_admin()?;
    let mut tx = session.tx(state).await?;
    let (from, to, tz) = bounds(&mut tx, range).await?;
    let days: Vec<Day> = query(
        &format!(
            "with d as (select generate_series($1::date, $2::date, interval '1 day')::date as date),
              c as (select (c.created_at at time zone $3)::date as date, count(*) as n,
                           count(*) filter (where {MISSED}) as missed
                    from conversations c where c.created_at >= {{start}} and c.created_at < {{end}} group by 1),
              m as (select (created_at at time zone $3)::date as date, count(*) as n,
                           count(*) filter (where sender_kind = 'visitor') as v from messages
                    where created_at >= {{start}} and created_at < {{end}} and kind <> 'activity' group by 1),
              r as (select (created_at at time zone $3)::date as date, count(*) as n, avg(score)::float8 as avg
                    from conversation_ratings where created_at >= {{start}} and created_at < {{end}} group by 1)
         select d.date, coalesce(c.n, 0) as conversations, coalesce(m.n, 0) as messages,
                coalesce(m.v, 0) as visitor_messages, coalesce(c.missed, 0) as missed,
                coalesce(r.n, 0) as ratings, r.avg as csat_average
         from d left join c using (date) left join m using (date) left join r using (date)
         order by d.date"
        ),
        from,
        to,
        &tz,
    )
    .fetch_all(&mut *tx)
    .await?;
    // First response: from the conversation's first visitor message to the first agent reply.
    let first_response: Timing = query(
        "with r as (
            select extract(epoch from (
                       (select min(m.created_at) from messages m where m.conversation_id = c.id and m.sender_kind = 'agent')
                     - (select min(m.created_at) from messages m where m.conversation_id = c.id and m.sender_kind = 'visitor'))) as s
            from conversations c where c.created_at >= {start} and c.created_at < {end})
         select count(s) as count,
                percentile_cont(0.5) within group (order by s) as median_seconds,
                percentile_cont(0.9) within group (order by s) as p90_seconds
         from r where s >= 0",
        from,
        to,
        &tz,
    )
    .fetch_one(&mut *tx)
    .await?;
    let resolution: Timing = query(
        "with r as (select extract(epoch from (closed_at - created_at)) as s from conversations
                    where status = 'closed' and created_at >= {start} and created_at < {end})
         select count(s) as count,
                percentile_cont(0.5) within group (order by s) as median_seconds,
                percentile_cont(0.9) within group (order by s) as p90_seconds
         from r",
        from,
        to,
        &tz,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (count, average, satisfied, s1, s2, s3, s4, s5): (
        i64,
        Option<f64>,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = query(
        "select count(*), avg(score)::float8, count(*) filter (where score >= 4),
                    count(*) filter (where score = 1), count(*) filter (where score = 2),
                    count(*) filter (where score = 3), count(*) filter (where score = 4),
                    count(*) filter (where score = 5)
             from conversation_ratings where created_at >= {start} and created_at < {end}",
        from,
        to,
        &tz,
    )
    .fetch_one(&mut *tx)
    .await?;
    let csat = Csat {
        count,
        average,
        satisfied_share: (count > 0).then(|| satisfied as f64 / count as f64),
        distribution: [s1, s2, s3, s4, s5],
    };
    let cells: Vec<(i32, i32, i64)> = query(
        "select extract(isodow from created_at at time zone $3)::int,
                extract(hour from created_at at time zone $3)::int, count(*)
         from conversations where created_at >= {start} and created_at < {end} group by 1, 2",
        from,
        to,
        &tz,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut hours = vec![[0_i64; 24]; 7];
    for (dow, hour, n) in cells {
        if let (Some(row), Ok(hour)) = (hours.get_mut((dow - 1) as usize), usize::try_from(hour)) {
            if let Some(cell) = row.get_mut(hour) {
                *cell = n;
            }
        }
    }
    // Per agent: conversations they replied in, their messages, their first replies.
    let mut agents: Vec<AgentStats> = query(
        "with per as (
            select m.sender_agent_id as agent_id, m.conversation_id, count(*) as messages, min(m.created_at) as first_reply
            from messages m
            where m.sender_kind = 'agent' and m.sender_agent_id is not null
              and m.created_at >= {start} and m.created_at < {end}
            group by 1, 2),
          timed as (
            select per.*, extract(epoch from (per.first_reply -
                (select min(v.created_at) from messages v where v.conversation_id = per.conversation_id and v.sender_kind = 'visitor'))) as s
            from per)
         select a.id as agent_id, a.display_name as name, count(t.conversation_id) as conversations,
                coalesce(sum(t.messages), 0)::bigint as messages,
                percentile_cont(0.5) within group (order by t.s) filter (where t.s >= 0) as median_first_response_seconds,
                percentile_cont(0.9) within group (order by t.s) filter (where t.s >= 0) as p90_first_response_seconds
         from agents a left join timed t on t.agent_id = a.id
         group by a.id, a.display_name order by count(t.conversation_id) desc, a.display_name",
        from,
        to,
        &tz,
    )
    .fetch_all(&mut *tx)
    .await?;
    let resolved: HashMap<i64, (i64, Option<f64>)> = query::<(i64, i64, Option<f64>)>(
        "select agent_id, count(*),
                percentile_cont(0.5) within group (order by extract(epoch from (closed_at - created_at)))
         from conversations
         where status = 'closed' and agent_id is not null and created_at >= {start} and created_at < {end}
         group by 1",
        from,
        to,
        &tz,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(agent, n, median)| (agent, (n, median)))
    .collect();
    let rated: HashMap<i64, (i64, Option<f64>)> = query::<(i64, i64, Option<f64>)>(
        "select agent_id, count(*), avg(score)::float8 from conversation_ratings
         where agent_id is not null and created_at >= {start} and created_at < {end} group by 1",
        from,
        to,
        &tz,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(agent, n, avg)| (agent, (n, avg)))
    .collect();
    tx.commit().await?;
    for a in &mut agents {
        (a.resolved, a.median_resolution_seconds) =
            resolved.get(&a.agent_id).copied().unwrap_or_default();
        (a.ratings, a.csat_average) = rated.get(&a.agent_id).copied().unwrap_or_default();
    }
    Ok(Stats {
        from,
        to,
        time_zone: tz,
        conversations: days.iter().map(|d| d.conversations).sum(),
        missed: days.iter().map(|d| d.missed).sum(),
        days,
        first_response,
        resolution,
        csat,
        hours,
        agents,
    })
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(flatten)]
    range: Range,
    /// `summary` (default), `days`, `agents` or `hours`.
    #[serde(default)]
    table: Option<String>,
}

/// `GET /api/v1/stats/export?from=&to=&table=` → the report's table as CSV (UTF-8 with a
/// byte-order mark, so spreadsheet programs read Chinese names right).
async fn export(
    State(state): State<AppState>,
    session: AgentSession,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let table = q.table.as_deref().unwrap_or("summary");
    if !matches!(table, "summary" | "days" | "agents" | "hours") {
        return Err(AppError::field("table", "table is one of summary, days, agents, hours"));
    }
    let s = report(&state, &session, &q.range).await?;
    let rows = csv_rows(&s, table);
    let mut out = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
    for row in rows {
        out.write_record(row.iter().map(|cell| spreadsheet_safe(cell)))
            .map_err(|e| AppError::Internal(e.into()))?;
    }
    let body = out.into_inner().map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let filename = format!("kefu-{table}-{}-{}.csv", s.from, s.to);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn number(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v).trim_end_matches('0').trim_end_matches('.').to_owned())
        .unwrap_or_default()
}

/// The rows of one table, header first.
fn csv_rows(s: &Stats, table: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let row = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    match table {
        "days" => {
            rows.push(row(&[
                "date",
                "conversations",
                "messages",
                "visitor_messages",
                "missed",
                "ratings",
                "csat_average",
            ]));
            for d in &s.days {
                rows.push(vec![
                    d.date.to_string(),
                    d.conversations.to_string(),
                    d.messages.to_string(),
                    d.visitor_messages.to_string(),
                    d.missed.to_string(),
                    d.ratings.to_string(),
                    number(d.csat_average),
                ]);
            }
        }
        "agents" => {
            rows.push(row(&[
                "agent_id",
                "agent",
                "conversations",
                "messages",
                "median_first_response_seconds",
                "p90_first_response_seconds",
                "resolved",
                "median_resolution_seconds",
                "ratings",
                "csat_average",
            ]));
            for a in &s.agents {
                rows.push(vec![
                    a.agent_id.to_string(),
                    a.name.clone(),
                    a.conversations.to_string(),
                    a.messages.to_string(),
                    number(a.median_first_response_seconds),
                    number(a.p90_first_response_seconds),
                    a.resolved.to_string(),
                    number(a.median_resolution_seconds),
                    a.ratings.to_string(),
                    number(a.csat_average),
                ]);
            }
        }
        "hours" => {
            let mut header = vec!["weekday".to_owned()];
            header.extend((0..24).map(|h| format!("{h:02}:00")));
            rows.push(header);
            let names =
                ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
            for (name, cells) in names.iter().zip(&s.hours) {
                let mut r = vec![(*name).to_owned()];
                r.extend(cells.iter().map(i64::to_string));
                rows.push(r);
            }
        }
        _ => {
            rows.push(row(&["metric", "value"]));
            let mut put = |k: &str, v: String| rows.push(vec![k.to_owned(), v]);
            put("from", s.from.to_string());
            put("to", s.to.to_string());
            put("time_zone", s.time_zone.clone());
            put("conversations", s.conversations.to_string());
            put("missed", s.missed.to_string());
            put("first_response_count", s.first_response.count.to_string());
            put("first_response_median_seconds", number(s.first_response.median_seconds));
            put("first_response_p90_seconds", number(s.first_response.p90_seconds));
            put("resolution_count", s.resolution.count.to_string());
            put("resolution_median_seconds", number(s.resolution.median_seconds));
            put("resolution_p90_seconds", number(s.resolution.p90_seconds));
            put("csat_count", s.csat.count.to_string());
            put("csat_average", number(s.csat.average));
            put("csat_satisfied_share", number(s.csat.satisfied_share));
            for (i, n) in s.csat.distribution.iter().enumerate() {
                put(&format!("csat_{}_stars", i + 1), n.to_string());
            }
        }
    }
    rows
}

/// A cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`
/// (or a tab or carriage return) gets a leading apostrophe. Numbers are left alone.
fn spreadsheet_safe(cell: &str) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() { format!("'{cell}") } else { cell.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_defused() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("-12.5"), "-12.5");
        assert_eq!(spreadsheet_safe("Ann"), "Ann");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(Some(120.0)), "120");
        assert_eq!(number(Some(3.5)), "3.5");
        assert_eq!(number(Some(100.0)), "100");
        assert_eq!(number(Some(2.0 / 3.0)), "0.67");
        assert_eq!(number(None), "");
    }
}

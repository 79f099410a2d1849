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

mod store;

use crate::auth::ctx::Door;
use axum::extract::FromRef;
use axum::{Json, extract::Query, response::Response};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::sync::Arc;
use tenants::TenantTx;

use self::store::{AgentStats, Csat, Day, Timing};
use super::settings::MerchantSettings;
use crate::{
    auth::ctx::{Admin, Ctx},
    http::{AppError, Routes, Scope},
};

/// The longest range one request may ask for.
const MAX_DAYS: i64 = 92;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
{
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
    Ctx { mut tx, .. }: Ctx<Admin>,
    Query(range): Query<Range>,
) -> Result<Json<Stats>, AppError> {
    let stats = report(&mut tx, &range).await?;
    tx.commit().await?;
    Ok(Json(stats))
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

async fn report(tx: &mut TenantTx, range: &Range) -> Result<Stats, AppError> {
    let (from, to, tz) = bounds(tx, range).await?;
    let period = store::Period { from, to, tz: &tz };
    let days = store::days(tx, &period).await?;
    let first_response = store::first_response(tx, &period).await?;
    let resolution = store::resolution(tx, &period).await?;
    let csat = store::csat(tx, &period).await?;
    let hours = store::hours(tx, &period).await?;
    let agents = store::agents(tx, &period).await?;
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
    Ctx { mut tx, .. }: Ctx<Admin>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let table = q.table.as_deref().unwrap_or("summary");
    if !matches!(table, "summary" | "days" | "agents" | "hours") {
        return Err(AppError::field("table", "table is one of summary, days, agents, hours"));
    }
    let s = report(&mut tx, &q.range).await?;
    tx.commit().await?;
    let filename = format!("kefu-{table}-{}-{}.csv", s.from, s.to);
    crate::http::csv::attachment(&filename, csv_rows(&s, table))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(Some(120.0)), "120");
        assert_eq!(number(Some(3.5)), "3.5");
        assert_eq!(number(Some(100.0)), "100");
        assert_eq!(number(Some(2.0 / 3.0)), "0.67");
        assert_eq!(number(None), "");
    }
}

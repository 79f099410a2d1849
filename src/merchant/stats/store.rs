//! The report queries, each over one period of the merchant's days (`[start, end)` in its
//! time zone), on the transaction the report runs in (one snapshot for every figure).

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgConnection;

/// The days a report covers, in the merchant's time zone.
pub(super) struct Period<'a> {
    pub(super) from: NaiveDate,
    pub(super) to: NaiveDate,
    pub(super) tz: &'a str,
}

#[derive(Serialize, sqlx::FromRow)]
pub(super) struct Day {
    pub(super) date: NaiveDate,
    pub(super) conversations: i64,
    pub(super) messages: i64,
    pub(super) visitor_messages: i64,
    /// Conversations begun that day in which no agent ever replied.
    pub(super) missed: i64,
    /// Ratings given that day, and their average.
    pub(super) ratings: i64,
    pub(super) csat_average: Option<f64>,
}

#[derive(Serialize, sqlx::FromRow)]
pub(super) struct Timing {
    /// Conversations measured.
    pub(super) count: i64,
    pub(super) median_seconds: Option<f64>,
    pub(super) p90_seconds: Option<f64>,
}

#[derive(Serialize)]
pub(super) struct Csat {
    pub(super) count: i64,
    pub(super) average: Option<f64>,
    /// The share of 4 and 5 stars (0–1).
    pub(super) satisfied_share: Option<f64>,
    /// How many of each score, 1 star first.
    pub(super) distribution: [i64; 5],
}

#[derive(Serialize, sqlx::FromRow)]
pub(super) struct AgentStats {
    pub(super) agent_id: i64,
    pub(super) name: String,
    /// Conversations the agent replied in.
    pub(super) conversations: i64,
    pub(super) messages: i64,
    pub(super) median_first_response_seconds: Option<f64>,
    pub(super) p90_first_response_seconds: Option<f64>,
    /// Conversations begun in the range, theirs and resolved.
    #[sqlx(skip)]
    pub(super) resolved: i64,
    #[sqlx(skip)]
    pub(super) median_resolution_seconds: Option<f64>,
    #[sqlx(skip)]
    pub(super) ratings: i64,
    #[sqlx(skip)]
    pub(super) csat_average: Option<f64>,
}

/// Runs one report query, bound to `from` ($1), `to` ($2) and the time zone ($3). `{start}`
/// and `{end}` in `sql` are the range's bounds as instants: `[start, end)`.
fn query<'q, O>(
    sql: &str,
    period: &Period<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    // Only these fixed fragments are formatted into the query; values are bound.
    let sql = sql
        .replace("{start}", "($1::date::timestamp at time zone $3)")
        .replace("{end}", "(($2::date + 1)::timestamp at time zone $3)");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(period.from).bind(period.to).bind(period.tz)
}

/// Whether conversation `c` had a visitor message and never an agent reply.
const MISSED: &str = "exists (select 1 from messages v where v.conversation_id = c.id and v.sender_kind = 'visitor')
    and not exists (select 1 from messages a where a.conversation_id = c.id and a.sender_kind = 'agent' and a.kind <> 'note')";

/// Conversations, messages, missed conversations and ratings per day, every day of the
/// period (zeros included).
#[tracing::instrument(name = "db.stats.days", skip_all)]
pub(super) async fn days(conn: &mut PgConnection, period: &Period<'_>) -> sqlx::Result<Vec<Day>> {
    query(
        &format!(
            "with d as (select generate_series($1::date, $2::date, interval '1 day')::date as date),
              c as (select (c.created_at at time zone $3)::date as date, count(*) as n,
                           count(*) filter (where {MISSED}) as missed
                    from conversations c where c.created_at >= {{start}} and c.created_at < {{end}} group by 1),
              m as (select (created_at at time zone $3)::date as date, count(*) as n,
                           count(*) filter (where sender_kind = 'visitor') as v from messages
                    where created_at >= {{start}} and created_at < {{end}} and kind not in ('activity', 'note') group by 1),
              r as (select (created_at at time zone $3)::date as date, count(*) as n, avg(score)::float8 as avg
                    from conversation_ratings where created_at >= {{start}} and created_at < {{end}} group by 1)
         select d.date, coalesce(c.n, 0) as conversations, coalesce(m.n, 0) as messages,
                coalesce(m.v, 0) as visitor_messages, coalesce(c.missed, 0) as missed,
                coalesce(r.n, 0) as ratings, r.avg as csat_average
         from d left join c using (date) left join m using (date) left join r using (date)
         order by d.date"
        ),
        period,
    )
    .fetch_all(conn)
    .await
}

/// First response: from the conversation's first visitor message to the first agent reply.
#[tracing::instrument(name = "db.stats.first_response", skip_all)]
pub(super) async fn first_response(
    conn: &mut PgConnection,
    period: &Period<'_>,
) -> sqlx::Result<Timing> {
    query(
        "with r as (
            select extract(epoch from (
                       (select min(m.created_at) from messages m where m.conversation_id = c.id and m.sender_kind = 'agent' and m.kind <> 'note')
                     - (select min(m.created_at) from messages m where m.conversation_id = c.id and m.sender_kind = 'visitor'))) as s
            from conversations c where c.created_at >= {start} and c.created_at < {end})
         select count(s) as count,
                percentile_cont(0.5) within group (order by s) as median_seconds,
                percentile_cont(0.9) within group (order by s) as p90_seconds
         from r where s >= 0",
        period,
    )
    .fetch_one(conn)
    .await
}

/// Resolution: from the start of a resolved conversation to its resolution.
#[tracing::instrument(name = "db.stats.resolution", skip_all)]
pub(super) async fn resolution(
    conn: &mut PgConnection,
    period: &Period<'_>,
) -> sqlx::Result<Timing> {
    query(
        "with r as (select extract(epoch from (closed_at - created_at)) as s from conversations
                    where status = 'closed' and created_at >= {start} and created_at < {end})
         select count(s) as count,
                percentile_cont(0.5) within group (order by s) as median_seconds,
                percentile_cont(0.9) within group (order by s) as p90_seconds
         from r",
        period,
    )
    .fetch_one(conn)
    .await
}

/// Ratings given in the period: how many, their average, the satisfied share and the
/// count of each score.
#[tracing::instrument(name = "db.stats.csat", skip_all)]
pub(super) async fn csat(conn: &mut PgConnection, period: &Period<'_>) -> sqlx::Result<Csat> {
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
        period,
    )
    .fetch_one(conn)
    .await?;
    Ok(Csat {
        count,
        average,
        satisfied_share: (count > 0).then(|| satisfied as f64 / count as f64),
        distribution: [s1, s2, s3, s4, s5],
    })
}

/// Conversations begun per weekday (Monday first) and hour of the merchant's day.
#[tracing::instrument(name = "db.stats.hours", skip_all)]
pub(super) async fn hours(
    conn: &mut PgConnection,
    period: &Period<'_>,
) -> sqlx::Result<Vec<[i64; 24]>> {
    let cells: Vec<(i32, i32, i64)> = query(
        "select extract(isodow from created_at at time zone $3)::int,
                extract(hour from created_at at time zone $3)::int, count(*)
         from conversations where created_at >= {start} and created_at < {end} group by 1, 2",
        period,
    )
    .fetch_all(conn)
    .await?;
    let mut hours = vec![[0_i64; 24]; 7];
    for (dow, hour, n) in cells {
        if let (Some(row), Ok(hour)) = (hours.get_mut((dow - 1) as usize), usize::try_from(hour)) {
            if let Some(cell) = row.get_mut(hour) {
                *cell = n;
            }
        }
    }
    Ok(hours)
}

/// Per agent: conversations they replied in, their messages and first replies, the
/// conversations begun in the period they resolved, and their ratings.
#[tracing::instrument(name = "db.stats.agents", skip_all)]
pub(super) async fn agents(
    conn: &mut PgConnection,
    period: &Period<'_>,
) -> sqlx::Result<Vec<AgentStats>> {
    let mut agents: Vec<AgentStats> = query(
        "with per as (
            select m.sender_agent_id as agent_id, m.conversation_id, count(*) as messages, min(m.created_at) as first_reply
            from messages m
            where m.sender_kind = 'agent' and m.kind <> 'note' and m.sender_agent_id is not null
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
        period,
    )
    .fetch_all(&mut *conn)
    .await?;
    let resolved: HashMap<i64, (i64, Option<f64>)> = query::<(i64, i64, Option<f64>)>(
        "select agent_id, count(*),
                percentile_cont(0.5) within group (order by extract(epoch from (closed_at - created_at)))
         from conversations
         where status = 'closed' and agent_id is not null and created_at >= {start} and created_at < {end}
         group by 1",
        period,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(agent, n, median)| (agent, (n, median)))
    .collect();
    let rated: HashMap<i64, (i64, Option<f64>)> = query::<(i64, i64, Option<f64>)>(
        "select agent_id, count(*), avg(score)::float8 from conversation_ratings
         where agent_id is not null and created_at >= {start} and created_at < {end} group by 1",
        period,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(agent, n, avg)| (agent, (n, avg)))
    .collect();
    for a in &mut agents {
        (a.resolved, a.median_resolution_seconds) =
            resolved.get(&a.agent_id).copied().unwrap_or_default();
        (a.ratings, a.csat_average) = rated.get(&a.agent_id).copied().unwrap_or_default();
    }
    Ok(agents)
}

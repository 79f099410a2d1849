//! Limits on what anonymous visitors can trigger, shared by every node: fixed-window counters
//! in PostgreSQL (`public.rate_counters`, unlogged: a crash forgets the current windows, which
//! only forgives). One statement counts every key a request touches (its address and its
//! visitor) and says whether any went over; a key that went over is remembered here until its
//! window ends, so a flood is turned away without touching the database again.
//!
//! Keys are per merchant: a flood against one merchant never slows down another, and an
//! address is the client IP as the trusted-proxy rule computes it (IPv6 by its /64, what one
//! subscriber usually holds).

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use tenants::TenantId;

use super::AppError;

/// What is limited, per merchant: how many per address and per visitor in each window.
/// `[visitor_limits]` in `kefu.toml` (`KEFU_VISITOR_LIMITS__<FIELD>` in the environment);
/// 0 turns one limit off. docs/deployment.md lists them with the reasons for the defaults.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VisitorLimits {
    /// Session requests (new or returning visitors) per address, and per returning visitor,
    /// per 10 minutes.
    pub sessions_per_ip: u32,
    pub sessions_per_visitor: u32,
    /// New visitors (first visits) per address, per hour.
    pub new_visitors_per_ip: u32,
    /// New conversations per address, and per visitor, per hour.
    pub conversations_per_ip: u32,
    pub conversations_per_visitor: u32,
    /// Socket tickets per address, and per visitor, per 10 minutes.
    pub tickets_per_ip: u32,
    pub tickets_per_visitor: u32,
    /// Sockets one visitor may hold open at once (tabs).
    pub sockets_per_visitor: u32,
    /// Uploads per address, and per visitor, per hour; bytes one visitor may upload per day.
    pub uploads_per_ip: u32,
    pub uploads_per_visitor: u32,
    pub upload_mb_per_visitor_per_day: u32,
    /// Left messages per address, and per visitor, per hour.
    pub leave_messages_per_ip: u32,
    pub leave_messages_per_visitor: u32,
    /// Page views reported per address, and per visitor, per hour.
    pub page_views_per_ip: u32,
    pub page_views_per_visitor: u32,
    /// Pre-chat forms per address per 10 minutes (the first few without a proof of work),
    /// and per visitor per hour.
    pub prechat_per_ip: u32,
    pub prechat_free_per_ip: u32,
    pub prechat_per_visitor: u32,
    /// Ratings per address, and per visitor, per hour.
    pub ratings_per_ip: u32,
    pub ratings_per_visitor: u32,
}

impl Default for VisitorLimits {
    fn default() -> Self {
        Self {
            sessions_per_ip: 300,
            sessions_per_visitor: 60,
            new_visitors_per_ip: 60,
            conversations_per_ip: 60,
            conversations_per_visitor: 20,
            tickets_per_ip: 600,
            tickets_per_visitor: 120,
            sockets_per_visitor: 10,
            uploads_per_ip: 60,
            uploads_per_visitor: 20,
            upload_mb_per_visitor_per_day: 100,
            leave_messages_per_ip: 20,
            leave_messages_per_visitor: 5,
            page_views_per_ip: 3_000,
            page_views_per_visitor: 600,
            prechat_per_ip: 30,
            prechat_free_per_ip: 3,
            prechat_per_visitor: 10,
            ratings_per_ip: 60,
            ratings_per_visitor: 20,
        }
    }
}

impl VisitorLimits {
    /// No limits at all (tests that are not about them, load generators).
    pub fn off() -> Self {
        Self {
            sessions_per_ip: 0,
            sessions_per_visitor: 0,
            new_visitors_per_ip: 0,
            conversations_per_ip: 0,
            conversations_per_visitor: 0,
            tickets_per_ip: 0,
            tickets_per_visitor: 0,
            sockets_per_visitor: 0,
            uploads_per_ip: 0,
            uploads_per_visitor: 0,
            upload_mb_per_visitor_per_day: 0,
            leave_messages_per_ip: 0,
            leave_messages_per_visitor: 0,
            page_views_per_ip: 0,
            page_views_per_visitor: 0,
            prechat_per_ip: 0,
            prechat_free_per_ip: 0,
            prechat_per_visitor: 0,
            ratings_per_ip: 0,
            ratings_per_visitor: 0,
        }
    }
}

const TEN_MINUTES: Duration = Duration::from_secs(600);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// One limit: a name (part of the key), its window and how many fit in it (0: no limit).
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub name: &'static str,
    pub window: Duration,
    pub limit: u32,
}

impl Rule {
    pub const fn per_ten_minutes(name: &'static str, limit: u32) -> Self {
        Self { name, window: TEN_MINUTES, limit }
    }

    pub const fn per_hour(name: &'static str, limit: u32) -> Self {
        Self { name, window: HOUR, limit }
    }

    pub const fn per_day(name: &'static str, limit: u32) -> Self {
        Self { name, window: DAY, limit }
    }
}

/// Whom a count is for.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    Ip(IpAddr),
    Visitor(i64),
}

/// One count to take: `cost` against `rule` for `who`.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub rule: Rule,
    pub who: Who,
    pub cost: u32,
}

impl Hit {
    pub fn ip(rule: Rule, ip: IpAddr) -> Self {
        Self { rule, who: Who::Ip(ip), cost: 1 }
    }

    pub fn visitor(rule: Rule, visitor: i64) -> Self {
        Self { rule, who: Who::Visitor(visitor), cost: 1 }
    }

    pub fn cost(self, cost: u32) -> Self {
        Self { cost, ..self }
    }
}

/// An address as it is counted: IPv4 whole, IPv6 by its /64.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn key(tenant: TenantId, hit: &Hit) -> String {
    match hit.who {
        Who::Ip(ip) => format!("{}:{}:ip:{}", tenant.0, hit.rule.name, address_key(ip)),
        Who::Visitor(v) => format!("{}:{}:v:{v}", tenant.0, hit.rule.name),
    }
}

/// The start of the window `now` falls in.
fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let secs = window.as_secs().max(1) as i64;
    let start = now.timestamp().div_euclid(secs) * secs;
    DateTime::from_timestamp(start, 0).unwrap_or(now)
}

/// The counters, and the keys this node knows are over their limit.
pub struct Limiter {
    pool: PgPool,
    pub limits: VisitorLimits,
    /// Key → until when it is refused (the end of its window).
    over: moka::sync::Cache<String, Instant>,
}

impl Limiter {
    pub fn new(pool: PgPool, limits: VisitorLimits) -> Self {
        let over = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(DAY).build();
        Self { pool, limits, over }
    }

    /// Counts every hit (those whose rule has a limit) and refuses with 429 `rate_limited`
    /// (`Retry-After`: when the latest window that went over ends) if any went over.
    pub async fn check(&self, tenant: TenantId, hits: &[Hit]) -> Result<(), AppError> {
        let hits: Vec<&Hit> = hits.iter().filter(|h| h.rule.limit > 0 && h.cost > 0).collect();
        if hits.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = hits.iter().map(|h| key(tenant, h)).collect();
        let now = Instant::now();
        if let Some(until) = keys.iter().filter_map(|k| self.over.get(k)).max().filter(|u| *u > now)
        {
            return Err(limited(until - now));
        }
        let wall = Utc::now();
        let starts: Vec<DateTime<Utc>> =
            hits.iter().map(|h| window_start(wall, h.rule.window)).collect();
        let costs: Vec<i32> =
            hits.iter().map(|h| i32::try_from(h.cost).unwrap_or(i32::MAX)).collect();
        let counted: Vec<(String, i32)> = sqlx::query_as(
            "insert into public.rate_counters as c (key, window_start, hits)
             select k, w, n from unnest($1::text[], $2::timestamptz[], $3::int[]) as t(k, w, n)
             on conflict (key, window_start) do update set hits = c.hits + excluded.hits
             returning c.key, c.hits",
        )
        .bind(&keys)
        .bind(&starts)
        .bind(&costs)
        .fetch_all(&self.pool)
        .await?;
        let mut wait: Option<Duration> = None;
        for (i, hit) in hits.iter().enumerate() {
            let Some((_, total)) = counted.iter().find(|(k, _)| *k == keys[i]) else { continue };
            if i64::from(*total) > i64::from(hit.rule.limit) {
                let end =
                    starts[i] + chrono::Duration::from_std(hit.rule.window).unwrap_or_default();
                let left = (end - wall).to_std().unwrap_or(Duration::from_secs(1));
                self.over.insert(keys[i].clone(), now + left);
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        match wait {
            Some(left) => Err(limited(left)),
            None => Ok(()),
        }
    }
}

impl Limiter {
    /// How many `rule` has counted for `who` in its current window (0 when it has no limit).
    pub async fn current(&self, tenant: TenantId, rule: Rule, who: Who) -> Result<u32, AppError> {
        if rule.limit == 0 {
            return Ok(0);
        }
        let hits: Option<i32> = sqlx::query_scalar(
            "select hits from public.rate_counters where key = $1 and window_start = $2",
        )
        .bind(key(tenant, &Hit { rule, who, cost: 1 }))
        .bind(window_start(Utc::now(), rule.window))
        .fetch_optional(&self.pool)
        .await?;
        Ok(u32::try_from(hits.unwrap_or(0)).unwrap_or(0))
    }

    /// Counts `hit` without refusing anything (what a later [`Limiter::current`] reads).
    pub async fn add(&self, tenant: TenantId, hit: Hit) -> Result<(), AppError> {
        if hit.rule.limit == 0 {
            return Ok(());
        }
        sqlx::query(
            "insert into public.rate_counters as c (key, window_start, hits) values ($1, $2, $3)
             on conflict (key, window_start) do update set hits = c.hits + excluded.hits",
        )
        .bind(key(tenant, &hit))
        .bind(window_start(Utc::now(), hit.rule.window))
        .bind(i32::try_from(hit.cost).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// 429 with the seconds to wait (at least one).
fn limited(left: Duration) -> AppError {
    AppError::RateLimited { retry_after: left.as_secs().max(1) }
}

/// Forgets windows that ended a day ago (the purge job).
pub async fn purge(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "delete from public.rate_counters where window_start < now() - interval '2 days'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_subscriber() {
        assert_eq!(address_key("203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(address_key("::ffff:203.0.113.9".parse().unwrap()), "203.0.113.9");
        // One IPv6 subscriber holds a /64: its addresses are one.
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            address_key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            address_key("2001:db8:1:2::1".parse().unwrap()),
            address_key("2001:db8:1:3::1".parse().unwrap())
        );
    }

    #[test]
    fn windows_are_aligned() {
        let t = DateTime::from_timestamp(1_700_000_123, 0).unwrap();
        assert_eq!(window_start(t, HOUR).timestamp() % 3600, 0);
        assert!(
            window_start(t, HOUR) <= t && t - window_start(t, HOUR) < chrono::Duration::hours(1)
        );
        assert_eq!(window_start(t, TEN_MINUTES).timestamp(), 1_700_000_123 / 600 * 600);
    }
}

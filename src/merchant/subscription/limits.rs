//! Plan limits, enforced where they bite and counted so that concurrent requests cannot
//! slip past them:
//! - seats, when an agent is added or re-enabled (402 `plan_limit`), under a per-merchant
//!   advisory lock so two admins adding the last seat at once get one success;
//! - conversations per UTC calendar month: a new one opens only while the month's count is
//!   under the limit, and a conversation is counted once the visitor engaged (a second
//!   message, an agent's or the bot's answer), by a conditional upsert of
//!   `public.usage_monthly` that counts only while under the limit;
//! - storage, when a file is uploaded (413 `storage_limit`): a byte counter only grows while
//!   the total stays within the limit — the team's and the visitors' apart ([`Budget`]).

use serde::Serialize;
use sqlx::PgConnection;
use tenants::TenantId;

use crate::http::AppError;

/// The advisory lock serializing one merchant's seat changes (keys with bit 61 set; the
/// message writer's use bit 62).
fn seat_lock(tenant: TenantId) -> i64 {
    (1_i64 << 61) | (tenant.0 & ((1_i64 << 61) - 1))
}

/// Agents who can sign in (the owner included).
pub async fn seats_used(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from agents where disabled_at is null")
        .fetch_one(conn)
        .await
}

/// Refuses one more seat when the plan has none left. Call in the transaction that adds or
/// re-enables the agent; the lock is held until it ends.
pub async fn check_seat(
    conn: &mut PgConnection,
    tenant: TenantId,
    plan: &billing::Plan,
) -> Result<(), AppError> {
    let Some(seats) = plan.seats else { return Ok(()) };
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(seat_lock(tenant))
        .execute(&mut *conn)
        .await?;
    if seats_used(conn).await? >= i64::from(seats) {
        return Err(AppError::plan_limit(format!(
            "the {} plan has {seats} seat{}, all taken; upgrade for more agents, or disable one",
            plan.name,
            if seats == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// Whether this month's allowance of conversations has room for another (a conversation
/// counts once the visitor engaged: chat::Chat::engaged).
pub async fn conversations_left(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: Option<u32>,
) -> sqlx::Result<bool> {
    let Some(limit) = limit else { return Ok(true) };
    let used: Option<i32> = sqlx::query_scalar(
        "select conversations from public.usage_monthly
         where tenant_id = $1 and month = date_trunc('month', now() at time zone 'utc')::date",
    )
    .bind(tenant.0)
    .fetch_optional(conn)
    .await?;
    Ok(i64::from(used.unwrap_or(0)) < i64::from(limit))
}

/// Counts a conversation against this month's allowance; false (nothing counted) when the
/// plan's limit is reached.
pub async fn count_conversation(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: Option<u32>,
) -> sqlx::Result<bool> {
    let cap = limit.map_or(i32::MAX, |l| i32::try_from(l).unwrap_or(i32::MAX));
    let counted: Option<i32> = sqlx::query_scalar(
        "insert into public.usage_monthly as u (tenant_id, month, conversations)
         select $1, date_trunc('month', now() at time zone 'utc')::date, 1 where $2 > 0
         on conflict (tenant_id, month) do update set conversations = u.conversations + 1
         where u.conversations < $2
         returning conversations",
    )
    .bind(tenant.0)
    .bind(cap)
    .fetch_optional(conn)
    .await?;
    Ok(counted.is_some())
}

/// Whose uploads a storage budget holds: the team's (logos, avatars, what agents send) or
/// the visitors' (what they send). Separate, so visitors can never fill the team's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Team,
    Visitors,
}

impl Budget {
    /// Its counter in `public.tenants`.
    fn column(self) -> &'static str {
        match self {
            Self::Team => "storage_bytes",
            Self::Visitors => "visitor_storage_bytes",
        }
    }

    /// The plan's limit for it (`None`: unlimited).
    pub fn limit(self, plan: &billing::Plan) -> Option<u64> {
        match self {
            Self::Team => plan.storage_bytes,
            Self::Visitors => plan.visitor_storage_bytes,
        }
    }
}

/// Bytes used of `budget`.
pub async fn storage_used(
    conn: &mut PgConnection,
    tenant: TenantId,
    budget: Budget,
) -> sqlx::Result<i64> {
    let column = budget.column();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select {column} from public.tenants where id = $1"
    )))
    .bind(tenant.0)
    .fetch_one(conn)
    .await
}

/// Adds `bytes` to the tenant's `budget` if its total stays within `limit` (negative bytes
/// give space back); false (nothing added) otherwise.
pub async fn add_storage(
    conn: &mut PgConnection,
    tenant: TenantId,
    budget: Budget,
    bytes: i64,
    limit: Option<u64>,
) -> sqlx::Result<bool> {
    let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let column = budget.column();
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "update public.tenants set {column} = greatest({column} + $2, 0)
         where id = $1 and ($2 <= 0 or $3::bigint is null or {column} + $2 <= $3)"
    )))
    .bind(tenant.0)
    .bind(bytes)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The refusal of an upload over its storage budget (413 `storage_limit`).
pub fn storage_full(plan: &billing::Plan, budget: Budget) -> AppError {
    let message = match budget {
        Budget::Team => format!(
            "this file would go over the {} plan's storage ({}); delete old files or upgrade",
            plan.name,
            plan.storage_bytes.map(human_bytes).unwrap_or_default()
        ),
        Budget::Visitors => {
            "this merchant cannot take more files from visitors right now; send a link instead"
                .to_owned()
        }
    };
    AppError::Billing {
        status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        code: "storage_limit",
        message: message.into(),
    }
}

/// One limit and how much of it is used.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Meter {
    pub used: i64,
    /// `None`: unlimited.
    pub limit: Option<i64>,
}

impl Meter {
    pub fn reached(&self) -> bool {
        self.limit.is_some_and(|l| self.used >= l)
    }

    /// Percent used, 0–100 (0 when unlimited).
    pub fn percent(&self) -> i64 {
        match self.limit {
            Some(l) if l > 0 => (self.used.saturating_mul(100) / l).clamp(0, 100),
            Some(_) => 100,
            None => 0,
        }
    }
}

/// What a merchant uses of its plan.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Usage {
    pub seats: Meter,
    /// This UTC calendar month.
    pub conversations: Meter,
    pub storage: Meter,
    /// What visitors' uploads take, apart from the team's storage.
    pub visitor_storage: Meter,
}

/// Reads the merchant's usage (`conn` scoped to its schema).
pub async fn usage(
    conn: &mut PgConnection,
    tenant: TenantId,
    plan: &billing::Plan,
) -> sqlx::Result<Usage> {
    let seats = seats_used(&mut *conn).await?;
    let (conversations, storage, visitor_storage): (i64, i64, i64) = sqlx::query_as(
        "select coalesce((select conversations::bigint from public.usage_monthly
                          where tenant_id = $1 and month = date_trunc('month', now() at time zone 'utc')::date), 0),
                storage_bytes, visitor_storage_bytes
         from public.tenants where id = $1",
    )
    .bind(tenant.0)
    .fetch_one(conn)
    .await?;
    let limit = |l: Option<u64>| l.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    Ok(Usage {
        seats: Meter { used: seats, limit: limit(plan.seats.map(u64::from)) },
        conversations: Meter {
            used: conversations,
            limit: limit(plan.conversations_per_month.map(u64::from)),
        },
        storage: Meter { used: storage, limit: limit(plan.storage_bytes) },
        visitor_storage: Meter { used: visitor_storage, limit: limit(plan.visitor_storage_bytes) },
    })
}

/// `1.5 GB`, `320 MB`, `12 KB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] =
        [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if value >= 10.0 || value.fract() < 0.05 {
                format!("{value:.0} {unit}")
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2 KB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MB");
        assert_eq!(human_bytes(20 << 30), "20 GB");
    }

    #[test]
    fn meters() {
        let m = Meter { used: 3, limit: Some(3) };
        assert!(m.reached());
        assert_eq!(m.percent(), 100);
        let m = Meter { used: 1, limit: Some(4) };
        assert_eq!((m.reached(), m.percent()), (false, 25));
        let m = Meter { used: 1_000, limit: None };
        assert_eq!((m.reached(), m.percent()), (false, 0));
    }
}

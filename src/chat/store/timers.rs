//! `public.conversation_timers`: one row per merchant with a snooze or an idle deadline due,
//! so the worker looks into those schemas only.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tenants::TenantId;

/// Makes sure the worker looks at `tenant` by `at` (an earlier time already set stays).
#[tracing::instrument(name = "db.conversation_timers.schedule", skip_all)]
pub async fn schedule(
    conn: &mut PgConnection,
    tenant: TenantId,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into public.conversation_timers as t (tenant_id, due_at) values ($1, $2)
         on conflict (tenant_id) do update set due_at = least(t.due_at, excluded.due_at)",
    )
    .bind(tenant.0)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The merchants with something due at `now`, the longest waiting first (200 at most).
#[tracing::instrument(name = "db.conversation_timers.due", skip_all)]
pub async fn due(pool: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<TenantId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "select tenant_id from public.conversation_timers where due_at <= $1 order by due_at limit 200",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

/// Takes `tenant`'s timer for this transaction, if it is due and no other worker holds it.
#[tracing::instrument(name = "db.conversation_timers.claim", skip_all)]
pub async fn claim(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let claimed: Option<i64> = sqlx::query_scalar(
        "select tenant_id from public.conversation_timers where tenant_id = $1 and due_at <= $2
         for update skip locked",
    )
    .bind(tenant.0)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Sets `tenant`'s next due time; `None` removes its timer (nothing left to wait for).
#[tracing::instrument(name = "db.conversation_timers.set", skip_all)]
pub async fn set(
    conn: &mut PgConnection,
    tenant: TenantId,
    next: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    match next {
        Some(at) => {
            sqlx::query("update public.conversation_timers set due_at = $2 where tenant_id = $1")
                .bind(tenant.0)
                .bind(at)
                .execute(conn)
                .await?
        }
        None => {
            sqlx::query("delete from public.conversation_timers where tenant_id = $1")
                .bind(tenant.0)
                .execute(conn)
                .await?
        }
    };
    Ok(())
}

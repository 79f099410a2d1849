//! The billing job: every `billing_interval_secs` it suspends merchants whose trial is over
//! (and who have not subscribed) and merchants whose grace period after a failed payment
//! is over. It is driven by rows and by the billing clock, so a restart loses nothing (the
//! next round finds what is due) and tests move time instead of waiting; rows are claimed
//! with `skip locked`, so several nodes may run it at once.

use std::time::Duration;

use axum::extract::FromRef;
use chrono::{DateTime, Utc};

use billing::BillingStatus;

use super::Billing;
use super::{changed, store};

pub fn spawn_job(state: Billing) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_secs(state.config.billing_interval_secs);
    crate::background::every("billing", interval, state.hub.shutdown_token(), None, move || {
        let state = state.clone();
        async move { run_due(&state).await }
    })
}

/// Applies what is due now (by the billing clock). Returns how many merchants changed.
pub async fn run_due<S>(state: &S) -> anyhow::Result<usize>
where
    Billing: FromRef<S>,
{
    let state = &Billing::from_ref(state);
    let now = state.clock.now();
    let grace = chrono::Duration::days(i64::from(state.config.past_due_grace_days));
    let candidates: Vec<i64> = sqlx::query_scalar(
        "select t.id from public.tenants t left join public.subscriptions s on s.tenant_id = t.id
         where t.status <> 'deleted'
           and ((t.billing_status = 'trialing' and t.trial_ends_at <= $1)
             or (t.billing_status = 'past_due' and s.past_due_since <= $2))
         order by t.id",
    )
    .bind(now)
    .bind(now - grace)
    .fetch_all(&state.door.db)
    .await?;
    let mut done = 0;
    for tenant in candidates {
        if let Some((before, after)) = settle(state, tenant, now, grace).await? {
            changed(state, tenants::TenantId(tenant), before, after).await;
            done += 1;
        }
    }
    Ok(done)
}

#[derive(sqlx::FromRow)]
struct Due {
    billing_status: String,
    trial_ends_at: Option<DateTime<Utc>>,
    past_due_since: Option<DateTime<Utc>>,
}

/// Re-checks one merchant under its lock (another node, or a webhook, may have acted) and
/// applies what is due.
async fn settle(
    state: &Billing,
    tenant: i64,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> anyhow::Result<Option<(BillingStatus, BillingStatus)>> {
    let mut tx = state.door.db.begin().await?;
    let row: Option<Due> = sqlx::query_as(
        "select t.billing_status, t.trial_ends_at, s.past_due_since
         from public.tenants t left join public.subscriptions s on s.tenant_id = t.id
         where t.id = $1 and t.status <> 'deleted'
         for update of t skip locked",
    )
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let Some(before) = BillingStatus::parse(&row.billing_status) else { return Ok(None) };
    let Some(after) =
        billing::lifecycle::due(before, row.trial_ends_at, row.past_due_since, now, grace)
    else {
        return Ok(None);
    };
    store::set_status(&mut tx, tenant, after, None, now).await?;
    tx.commit().await?;
    Ok(Some((before, after)))
}

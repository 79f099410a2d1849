//! The delivery worker. Every `webhook_interval_secs`, or at once when an event was queued,
//! it takes the merchants with due deliveries from `public.webhook_queue` (each claimed with
//! `for update skip locked`, so nodes share the work and one merchant is delivered by one
//! node at a time), posts their due deliveries in order, and records each outcome in the
//! tenant's queue, which is also the delivery log. A 2xx answer delivers; anything else is
//! retried after 30 s, 2 min, 10 min, 1 h, 6 h, then daily, at most `MAX_ATTEMPTS` times.
//! Restart-safe: everything is rows.
//!
//! Each delivery is `POST <url>` with the event as JSON and headers `Kefu-Event`,
//! `Kefu-Delivery` and `Kefu-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>` — the scheme Stripe uses, so the same verification code works.

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use serde_json::Value;
use tenants::{TenantId, TenantTx};

use super::store::{self, Due};

/// What the delivery worker works with: the session door (pool, registry, plans), the
/// webhooks' handle (its bell and rules), the configuration (its interval) and the hub (it
/// stops on shutdown).
#[derive(Clone)]
pub struct Delivery {
    pub door: Arc<crate::auth::ctx::Door>,
    pub webhooks: Arc<super::Webhooks>,
    pub config: Arc<crate::config::Config>,
    pub hub: Arc<crate::realtime::hub::Hub>,
}

/// Tries before a delivery is given up.
pub const MAX_ATTEMPTS: i32 = 8;
/// Merchants delivered at once, and deliveries per merchant per round.
const PARALLEL: usize = 8;
const BATCH: i64 = 50;
/// Days a finished delivery stays in the log.
pub const LOG_DAYS: i32 = 30;

pub fn spawn_worker(state: Delivery) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_secs(state.config.webhook_interval_secs);
    let wake = Arc::clone(&state.webhooks.wake);
    crate::background::every(
        "webhooks",
        interval,
        state.hub.shutdown_token(),
        Some(wake),
        move || {
            let state = state.clone();
            async move { run_due(&state).await }
        },
    )
}

/// Seconds to wait after `attempts` failures.
fn backoff(attempts: i32) -> i64 {
    match attempts {
        ..=1 => 30,
        2 => 120,
        3 => 600,
        4 => 3_600,
        5 => 6 * 3_600,
        _ => 24 * 3_600,
    }
}

/// Delivers what is due. Returns how many deliveries were taken by their endpoints.
pub async fn run_due<S>(state: &S) -> anyhow::Result<usize>
where
    Delivery: axum::extract::FromRef<S>,
{
    let state = &<Delivery as axum::extract::FromRef<S>>::from_ref(state);
    let due = store::due_tenants(&state.door.db).await?;
    let client = super::guard::client(state.webhooks.allow_private);
    let results: Vec<anyhow::Result<usize>> = futures::stream::iter(due)
        .map(|tenant| {
            let client = client.clone();
            async move { deliver_tenant(state, &client, tenant).await }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut delivered = 0;
    for r in results {
        match r {
            Ok(n) => delivered += n,
            Err(e) => {
                tracing::warn!(error = %e, "a merchant's webhook deliveries failed; retrying next round")
            }
        }
    }
    Ok(delivered)
}

async fn deliver_tenant(
    state: &Delivery,
    client: &reqwest::Client,
    tenant: TenantId,
) -> anyhow::Result<usize> {
    let mut claim = state.door.db.begin().await?;
    if !store::claim_queue(&mut claim, tenant).await? {
        return Ok(0);
    }
    // A merchant that is gone takes its queue with it.
    let Some(merchant) = state.door.tenants.by_id(tenant).await? else {
        store::drop_queue(&mut claim, tenant).await?;
        claim.commit().await?;
        return Ok(0);
    };
    // A merchant whose plan no longer has webhooks (a downgrade) gets none sent: its log
    // says why. Its webhooks come back with a plan that has them.
    let plan = state.door.plans.get(&merchant.plan).unwrap_or_else(|| state.door.plans.trial());
    let refused = (!plan.features.has(billing::Feature::Webhooks))
        .then(|| format!("webhooks are not part of the {} plan", plan.name));
    let mut tx = TenantTx::begin(&state.door.db, tenant).await?;
    let mut delivered = 0;
    for d in store::due(&mut tx, BATCH).await? {
        if attempt(state, client, &mut tx, &d, refused.as_deref()).await? {
            delivered += 1;
        }
    }
    // The log keeps a month (the settings page shows the latest 50 per webhook).
    let next = store::prune_and_next(&mut tx, LOG_DAYS).await?;
    tx.commit().await?;
    match next {
        Some(at) => store::reschedule_queue(&mut claim, tenant, at).await?,
        None => store::drop_queue(&mut claim, tenant).await?,
    }
    claim.commit().await?;
    Ok(delivered)
}

/// Attempts delivery `d` (unless the plan `refused` webhooks or the webhook is disabled)
/// and records the outcome; whether the endpoint took it.
async fn attempt(
    state: &Delivery,
    client: &reqwest::Client,
    tx: &mut TenantTx,
    d: &Due,
    refused: Option<&str>,
) -> anyhow::Result<bool> {
    let attempts = d.attempts + 1;
    let outcome = match refused {
        Some(why) => Err((None, why.to_owned())),
        None if d.enabled => post(state, client, d).await,
        None => Err((None, "the webhook is disabled".to_owned())),
    };
    match outcome {
        Ok(code) => {
            store::delivered(tx, d.id, attempts, code).await?;
            Ok(true)
        }
        Err((code, error)) => {
            let give_up = attempts >= MAX_ATTEMPTS || refused.is_some();
            let retry_in_secs = backoff(attempts);
            let failure = store::Failure { attempts, code, error: &error, give_up, retry_in_secs };
            store::failed(tx, d.id, failure).await?;
            Ok(false)
        }
    }
}

/// Posts one delivery: the status code of a 2xx answer, else (status, why).
async fn post(
    state: &Delivery,
    client: &reqwest::Client,
    d: &Due,
) -> Result<u16, (Option<u16>, String)> {
    // An IP-literal URL is not resolved, so the guard checks it here.
    if let Err(why) = super::guard::check_url(&d.url, state.webhooks.allow_private) {
        return Err((None, why.to_owned()));
    }
    let body = serde_json::to_vec(&d.payload).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let signature = billing::signature::header(&body, d.secret.as_bytes(), now);
    let event_id = d.payload.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let res = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("kefu-event", &d.event)
        .header("kefu-delivery", d.id.to_string())
        .header("kefu-event-id", event_id)
        .header("kefu-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| (None, describe(&e)))?;
    let status = res.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err((Some(status.as_u16()), format!("the endpoint answered {status}")))
    }
}

/// A readable reason for a failed request (reqwest's own error chains are long).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

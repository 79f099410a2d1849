//! Outgoing webhooks: merchants register URLs for events (`conversation.created`,
//! `conversation.assigned`, `conversation.closed`, `message.created`, `visitor.created`);
//! each event becomes a delivery in the tenant's queue (`webhook_deliveries`), posted by a
//! worker (`deliver`) with a Stripe-style signature and retried with backoff until it is
//! taken or given up. `guard` keeps deliveries out of the platform's own network; `api` is
//! the admins' API; `store` holds the queries.
//!
//! Emitting is off the hot path: which events a merchant subscribes to is cached, so a
//! merchant without webhooks costs one cache lookup per batch of messages; queueing runs in
//! a task of its own after the event happened.

mod api;
pub mod deliver;
pub mod guard;
mod store;

pub use self::api::routes;

use crate::ids::WebhookId;
use std::{sync::Arc, time::Duration};

use moka::sync::Cache;
use serde_json::{Value, json};
use sqlx::PgPool;
use tenants::{TenantId, TenantTx};

/// The events a webhook may subscribe to.
pub const EVENTS: &[&str] = &[
    "conversation.created",
    "conversation.assigned",
    "conversation.closed",
    "message.created",
    "visitor.created",
];

/// A merchant's subscriptions: (webhook id, events).
type Subscriptions = Arc<Vec<(WebhookId, Vec<String>)>>;

/// The webhook machinery of this process.
pub struct Webhooks {
    pool: PgPool,
    subscriptions: Cache<TenantId, Subscriptions>,
    /// Wakes the delivery worker.
    pub wake: Arc<tokio::sync::Notify>,
    /// Deliveries may go to private and loopback addresses (configuration).
    pub allow_private: bool,
}

impl Webhooks {
    pub fn new(pool: PgPool, allow_private: bool) -> Self {
        Self {
            pool,
            subscriptions: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            wake: Arc::default(),
            allow_private,
        }
    }

    /// Forgets a merchant's subscriptions (after a change).
    pub async fn invalidate(&self, tenant: TenantId) {
        self.subscriptions.invalidate(&tenant);
    }

    /// The merchant's subscriptions, cached. (A plain cache, read without waiting on the
    /// hot path; two tasks missing at once both load, which is harmless.)
    async fn load(&self, tenant: TenantId) -> sqlx::Result<Subscriptions> {
        if let Some(subs) = self.subscriptions.get(&tenant) {
            return Ok(subs);
        }
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let rows = store::subscriptions(&mut tx).await?;
        tx.commit().await?;
        let subs = Arc::new(rows);
        self.subscriptions.insert(tenant, subs.clone());
        Ok(subs)
    }

    /// Queues `event` for the merchant's webhooks that want it, in the background. `data`
    /// is built only when someone listens.
    pub fn emit(
        self: &Arc<Self>,
        tenant: TenantId,
        event: &'static str,
        data: impl FnOnce() -> Value,
    ) {
        // Known to have no webhooks: nothing to do, not even a task.
        if self.subscriptions.get(&tenant).is_some_and(|s| s.is_empty()) {
            return;
        }
        let data = data();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.queue(tenant, event, data, None).await {
                tracing::warn!(tenant = tenant.0, event, error = %e, "queueing a webhook delivery failed");
            }
        });
    }

    /// Writes one delivery per interested webhook (or only `only`). Returns their ids.
    pub(crate) async fn queue(
        &self,
        tenant: TenantId,
        event: &str,
        data: Value,
        only: Option<WebhookId>,
    ) -> anyhow::Result<Vec<i64>> {
        let subs = self.load(tenant).await?;
        let targets: Vec<WebhookId> = subs
            .iter()
            .filter(|(id, events)| only.map_or(events.iter().any(|e| e == event), |o| o == *id))
            .map(|(id, _)| *id)
            .collect();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let event_id = format!("evt_{}", hex::encode(rand::random::<[u8; 12]>()));
        let payload = json!({
            "id": event_id, "type": event, "created_at": chrono::Utc::now(), "data": data,
        });
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let ids = store::queue(&mut tx, tenant, &targets, (&event_id, event), &payload).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(ids)
    }
}

/// Every stored message is a `message.created` event (the payload is built only when the
/// merchant has webhooks).
impl crate::realtime::writer::AfterStore for Arc<Webhooks> {
    fn stored(&self, tenant: TenantId, message: crate::realtime::protocol::MessageOut) {
        self.emit(tenant, "message.created", move || serde_json::json!({ "message": message }));
    }
}

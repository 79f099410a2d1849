//! Real-time chat: the protocol, live connections, durable group-committed writes,
//! conversations and routing, automation. Sockets live in `ws`, the agent REST API in `api`.

mod api;
mod automation;
pub mod left;
pub mod notes;
pub mod presence;
pub mod rating;
pub mod search;
pub mod status;
pub mod store;
mod views;
mod ws;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{PgConnection, PgPool};
use tenants::{TenantId, TenantTx};

use self::store::ConversationRow;
use crate::realtime::{
    hub::{Hub, encode},
    protocol::{AgentStatus, ConversationStatus, Presence, ServerFrame},
    writer::{NewMessage, Stored, WriteError, Writer},
};
use crate::{
    http::{
        AppError, Routes,
        rate::{Hit, Rule},
    },
    merchant::subscription::limits,
};

pub use ws::{Sockets, TicketResponse, Ticketed};

/// The OpenAPI description of the conversation and visitor routes (http::openapi).
pub(crate) fn api_doc() -> utoipa::openapi::OpenApi {
    <api::Doc as utoipa::OpenApi>::openapi()
}

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    ws::Sockets: axum::extract::FromRef<S>,
    Arc<crate::auth::ctx::Door>: axum::extract::FromRef<S>,
    Arc<Chat>: axum::extract::FromRef<S>,
    Arc<tenants::Registry>: axum::extract::FromRef<S>,
    Arc<crate::http::rate::Limiter>: axum::extract::FromRef<S>,
    crate::realtime::bus::Caches: axum::extract::FromRef<S>,
    PgPool: axum::extract::FromRef<S>,
    Arc<billing::Catalog>: axum::extract::FromRef<S>,
    crate::http::TrustedProxies: axum::extract::FromRef<S>,
    Arc<Hub>: axum::extract::FromRef<S>,
    Arc<crate::config::Config>: axum::extract::FromRef<S>,
{
    ws::routes()
        .merge(api::routes())
        .merge(rating::routes())
        .merge(status::routes())
        .merge(search::routes())
        .merge(views::routes())
        .merge(notes::routes())
}

/// Connections of each message-writing pool: its writer commits one batch at a time; the
/// second serves the rare follow-up query while the first reconnects or is busy.
pub const WRITER_SHARD_CONNECTIONS: u32 = 2;

/// Prepared statements each message-writing connection keeps (one per tenant it writes for).
const WRITER_STATEMENT_CACHE: usize = 4096;

/// The chat engine of this process.
pub struct Chat {
    pub hub: Arc<Hub>,
    pub writer: Writer,
    /// Outgoing webhooks (conversation and message events are emitted from here).
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    pool: PgPool,
    /// Rotates ties between equally loaded agents.
    round_robin: Mutex<HashMap<TenantId, u64>>,
    /// Ticket ids already used (tickets are single-use; they live 60 s).
    used_tickets: moka::sync::Cache<String, ()>,
    /// Per-tenant automation settings.
    pub automation: automation::AutomationCache,
    /// Agents' chosen statuses, so "can anyone answer?" needs no query per message. Updated
    /// wherever this process changes a status; entries expire so changes made elsewhere are
    /// seen within a minute.
    statuses: moka::future::Cache<(TenantId, i64), AgentStatus>,
    /// Conversations (tenant, id) whose offline notice is known to be sent.
    pub offline_noticed: moka::sync::Cache<(TenantId, i64), ()>,
    /// Conversations known to count against their month's allowance (the visitor engaged):
    /// after the first sign nothing more is asked of the database.
    counted: moka::sync::Cache<(TenantId, i64), ()>,
    /// What anonymous visitors may trigger (new conversations here).
    limiter: Arc<crate::http::rate::Limiter>,
    /// Grace after leaving and auto-away (presence.rs).
    pub presence: crate::realtime::presence::Presence,
}

impl Chat {
    /// `writer_shards` pools of [`WRITER_SHARD_CONNECTIONS`] connections each carry the
    /// message writes (0: they share `pool`); see `writer.rs`.
    pub fn new(
        pool: PgPool,
        writer_shards: usize,
        webhooks: Arc<crate::webhooks::Webhooks>,
        limiter: Arc<crate::http::rate::Limiter>,
    ) -> Self {
        let hub = Arc::new(Hub::default());
        // Each tenant's call is its own statement (schema-qualified): keep a shard's tenants'
        // statements prepared instead of re-preparing past sqlx's default 100.
        let options =
            (*pool.connect_options()).clone().statement_cache_capacity(WRITER_STATEMENT_CACHE);
        let shards = (0..writer_shards)
            .map(|_| {
                crate::db::pool_options(WRITER_SHARD_CONNECTIONS).connect_lazy_with(options.clone())
            })
            .collect();
        Self {
            writer: Writer::new(pool.clone(), shards, hub.clone(), Arc::new(webhooks.clone())),
            webhooks,
            hub,
            pool,
            round_robin: Mutex::default(),
            used_tickets: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(120))
                .max_capacity(1_000_000)
                .build(),
            automation: automation::cache(),
            statuses: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(60))
                .max_capacity(1_000_000)
                .build(),
            offline_noticed: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(3600))
                .max_capacity(1_000_000)
                .build(),
            counted: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(3600))
                .max_capacity(1_000_000)
                .build(),
            limiter,
            presence: crate::realtime::presence::Presence::default(),
        }
    }

    /// Marks a ticket id used; false if it was used before. One process remembers the ids
    /// itself; several nodes share them in the database (`used_tickets`), so that a ticket
    /// opens one socket on one node only.
    pub async fn consume_ticket(
        &self,
        jti: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> sqlx::Result<bool> {
        if self.hub.bus().is_none() {
            return Ok(self.used_tickets.entry(jti.to_owned()).or_insert(()).is_fresh());
        }
        let recorded = sqlx::query(
            "insert into public.used_tickets (jti, expires_at) values ($1, $2) on conflict do nothing",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(recorded.rows_affected() == 1)
    }

    /// Agents who are present (connected, or just reloading) and have status `online`, with
    /// room for another chat, least loaded first.
    async fn available_agents(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> sqlx::Result<Vec<store::Candidate>> {
        let connected = self.present_agents(tenant);
        if connected.is_empty() {
            return Ok(Vec::new());
        }
        let mut agents: Vec<_> = store::candidates(conn, &connected)
            .await?
            .into_iter()
            .filter(|a| {
                a.status == "online" && a.open_conversations < i64::from(a.max_concurrent_chats)
            })
            .collect();
        agents.sort_by_key(|a| (a.open_conversations, a.id));
        Ok(agents)
    }

    /// Whether anyone can answer now: within business hours, an agent connected and online.
    pub async fn team_online(&self, tenant: TenantId) -> anyhow::Result<bool> {
        self.team_presence(tenant).await.map(|(online, _)| online)
    }

    /// (whether anyone can answer now, whether an agent is connected and online at all).
    pub async fn team_presence(&self, tenant: TenantId) -> anyhow::Result<(bool, bool)> {
        let mut agents = false;
        for agent in self.present_agents(tenant) {
            if self.agent_status(tenant, agent).await? == AgentStatus::Online {
                agents = true;
                break;
            }
        }
        if !agents {
            return Ok((false, false));
        }
        let automation = automation::settings(self, &self.pool, tenant)
            .await
            .map_err(|e| anyhow::anyhow!("automation settings: {e}"))?;
        Ok((automation.hours.is_open(chrono::Utc::now()), true))
    }

    /// Whether `agent` is at work now: connected, with the status online (they see new
    /// messages in the workspace as they come).
    pub async fn agent_online(&self, tenant: TenantId, agent: i64) -> anyhow::Result<bool> {
        Ok(self.agent_present(tenant, agent)
            && self.agent_status(tenant, agent).await? == AgentStatus::Online)
    }

    /// An agent's chosen status (offline when disabled), cached. Concurrent callers for an
    /// agent whose entry has expired wait for one query instead of each running it: at
    /// thousands of visitor messages a second, one expiry would otherwise take the whole
    /// pool at once.
    pub(crate) async fn agent_status(
        &self,
        tenant: TenantId,
        agent: i64,
    ) -> anyhow::Result<AgentStatus> {
        self.statuses
            .try_get_with((tenant, agent), async {
                let mut tx = TenantTx::begin(&self.pool, tenant).await?;
                let row: Option<(String, bool)> = sqlx::query_as(
                    "select status, disabled_at is not null from agents where id = $1",
                )
                .bind(agent)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(match row {
                    Some((status, false)) => AgentStatus::parse(&status),
                    _ => AgentStatus::Offline,
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("loading agent {agent}'s status: {e}"))
    }

    /// Records an agent's chosen status (after it is stored).
    pub async fn remember_status(&self, tenant: TenantId, agent_id: i64, status: AgentStatus) {
        self.statuses.insert((tenant, agent_id), status).await;
        if let Some(bus) = self.hub.bus() {
            bus.invalidate(crate::realtime::bus::Invalidation::AgentStatus(tenant.0, agent_id));
        }
    }

    /// Forgets an agent's remembered status (another node changed it).
    pub async fn forget_status(&self, tenant: TenantId, agent_id: i64) {
        self.statuses.invalidate(&(tenant, agent_id)).await;
    }

    /// Chooses the agent for a new conversation: the requested one (`kefu_id`) if available,
    /// else the least loaded available agent, ties taken in turn; `None` queues it.
    async fn route(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        preferred: Option<i64>,
    ) -> sqlx::Result<Option<i64>> {
        // Outside business hours nobody is routed to; agents may still claim from the queue.
        if let Ok(automation) = automation::settings(self, &self.pool, tenant).await {
            if !automation.hours.is_open(chrono::Utc::now()) {
                return Ok(None);
            }
        }
        let available = self.available_agents(conn, tenant).await?;
        if let Some(p) = preferred.filter(|p| available.iter().any(|a| a.id == *p)) {
            return Ok(Some(p));
        }
        let Some(least) = available.first().map(|a| a.open_conversations) else { return Ok(None) };
        let tied: Vec<i64> =
            available.iter().filter(|a| a.open_conversations == least).map(|a| a.id).collect();
        let turn = {
            let mut rr = self.round_robin.lock().unwrap_or_else(|p| p.into_inner());
            let n = rr.entry(tenant).or_insert(0);
            *n = n.wrapping_add(1);
            *n
        };
        Ok(Some(tied[(turn % tied.len() as u64) as usize]))
    }

    /// The visitor's open conversation, or a new one routed to an agent and announced —
    /// unless the month's allowance of conversations (`monthly_limit`) is used up, or this
    /// visitor or address opened too many lately.
    pub async fn conversation_for_visitor(
        &self,
        tenant: TenantId,
        visitor: (i64, Option<IpAddr>),
        preferred_agent: Option<i64>,
        monthly_limit: Option<u32>,
    ) -> Result<Opened, AppError> {
        let (visitor_id, ip) = visitor;
        // Read before the transaction: a cold cache loads them on a connection of its own,
        // which must not wait for the one this transaction holds.
        let reopen_hours = automation::settings(self, &self.pool, tenant)
            .await
            .map_err(|e| anyhow::anyhow!("automation settings: {e}"))?
            .reopen_hours;
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        if let Some(open) = store::current_conversation(&mut tx, visitor_id).await? {
            tx.commit().await?;
            return Ok(Opened::Existing(open));
        }
        store::lock_visitor(&mut tx, visitor_id).await?;
        // Another tab may have opened one while we waited for the lock.
        if let Some(open) = store::current_conversation(&mut tx, visitor_id).await? {
            tx.commit().await?;
            return Ok(Opened::Existing(open));
        }
        // One resolved a short while ago is reopened rather than a new one started.
        if let Some(id) = store::reopen_recent(&mut tx, visitor_id, reopen_hours).await? {
            let row = store::conversation(&mut tx, crate::ids::ConversationId(id))
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            tx.commit().await?;
            // Reopening cleared the stored offline-notice mark; forget the remembered one.
            self.offline_noticed.invalidate(&(tenant, id));
            let changed = status::Changed { row: row.clone(), from: ConversationStatus::Closed };
            self.status_changed(tenant, &changed, &status::Actor::Visitor).await;
            return Ok(Opened::Existing(row));
        }
        if !limits::conversations_left(&mut tx, tenant, monthly_limit).await? {
            return Ok(Opened::LimitReached);
        }
        let l = &self.limiter.limits;
        let mut hits = vec![Hit::visitor(
            Rule::per_hour("conversations", l.conversations_per_visitor),
            visitor_id,
        )];
        hits.extend(
            ip.map(|ip| Hit::ip(Rule::per_hour("conversations", l.conversations_per_ip), ip)),
        );
        self.limiter.check(tenant, &hits).await?;
        let agent = self.route(&mut tx, tenant, preferred_agent).await?;
        let id = store::insert_conversation(&mut tx, tenant, visitor_id, agent).await?;
        let row = store::conversation(&mut tx, crate::ids::ConversationId(id))
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        tx.commit().await?;
        self.announce(tenant, "created", &row);
        Ok(Opened::Created(row))
    }

    /// Counts conversation `id` against its month's allowance (`monthly_limit`), once: the
    /// visitor engaged (they wrote again, or an agent or the bot answered). A conversation
    /// nobody engaged in costs nothing, so throw-away visitors cannot use the allowance up.
    pub async fn engaged(
        &self,
        tenant: TenantId,
        id: i64,
        monthly_limit: Option<u32>,
    ) -> sqlx::Result<()> {
        if self.counted.contains_key(&(tenant, id)) {
            return Ok(());
        }
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        if store::mark_counted(&mut tx, id).await? {
            limits::count_conversation(&mut tx, tenant, monthly_limit).await?;
        }
        tx.commit().await?;
        self.counted.insert((tenant, id), ());
        Ok(())
    }

    /// Tells every agent, and the visitor, about a conversation change (and the merchant's
    /// webhooks that listen).
    pub fn announce(&self, tenant: TenantId, event: &'static str, row: &ConversationRow) {
        let conversation = row.out();
        let hook = match event {
            "created" => Some("conversation.created"),
            "assigned" | "transferred" => Some("conversation.assigned"),
            "closed" => Some("conversation.closed"),
            _ => None,
        };
        if let Some(hook) = hook {
            let data = || serde_json::json!({ "conversation": conversation, "change": event });
            self.webhooks.emit(tenant, hook, data);
        }
        let frame = encode(&ServerFrame::Conversation { event, conversation: row.out() });
        self.hub.to_agents(tenant, &frame);
        // Pending and snoozed are the team's own bookkeeping.
        if event != "status" {
            self.hub.to_visitor(tenant, row.visitor_id, &frame);
        }
    }

    /// Stores a message durably; the writer then pushes it to the visitor's connections and
    /// every agent, in id order.
    pub async fn post(&self, tenant: TenantId, message: NewMessage) -> Result<Stored, WriteError> {
        self.writer.write(tenant, message).await
    }

    /// Pushes an agent's effective status to colleagues and the team's availability to
    /// visitors.
    pub async fn publish_agent_presence(
        &self,
        tenant: TenantId,
        agent_id: i64,
    ) -> anyhow::Result<()> {
        let connected = self.agent_present(tenant, agent_id);
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let status = store::agent_status(&mut tx, agent_id).await?.unwrap_or_default();
        tx.commit().await?;
        let effective = if connected { AgentStatus::parse(&status) } else { AgentStatus::Offline };
        self.hub.to_agents(
            tenant,
            &encode(&ServerFrame::Presence(Presence::Agent { agent_id, status: effective })),
        );
        let (online, agents) = self.team_presence(tenant).await?;
        let team = encode(&ServerFrame::Presence(Presence::Team { online, agents }));
        self.hub.to_visitors(tenant, &team);
        Ok(())
    }
}

/// What [`Chat::conversation_for_visitor`] found or opened.
pub enum Opened {
    Existing(ConversationRow),
    Created(ConversationRow),
    /// The month's allowance is used up: nothing was opened.
    LimitReached,
}

/// A client message id for messages the server writes itself.
pub fn server_msg_id(prefix: &str) -> String {
    let bytes: [u8; 9] = rand::random();
    format!("{prefix}:{}", hex::encode(bytes))
}

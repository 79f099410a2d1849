//! Agent availability beyond live connections:
//!
//! - **Grace on leaving**: an agent whose last tab closed still counts as present for
//!   `presence_grace_secs` (a reload reconnects well within it), so colleagues and visitors
//!   see no flap, routing does not skip them and visitors get no offline notice. When the
//!   grace runs out with no tab back, their presence goes offline.
//! - **Auto-away**: an agent who is online but has done nothing in any tab (no message,
//!   typing, read mark, status change, or the workspace's `active` signal on keyboard and
//!   mouse use) for the merchant's `auto_away_minutes` becomes away — stored, so routing and
//!   visitors see it — and comes back online with their next activity or connection. A
//!   manual status change ends the automatic one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tenants::{TenantId, TenantTx};

use super::{Chat, store};
use crate::realtime::{hub::Peer, protocol::AgentStatus};

impl Chat {
    /// Agents who count as present: connected, or within the grace after leaving.
    pub(super) fn present_agents(&self, tenant: TenantId) -> Vec<i64> {
        let mut agents = self.hub.connected_agents(tenant);
        for agent in self.presence.leaving(tenant) {
            if !agents.contains(&agent) {
                agents.push(agent);
            }
        }
        agents
    }

    pub(super) fn agent_present(&self, tenant: TenantId, agent: i64) -> bool {
        self.hub.connections_of(tenant, Peer::Agent(agent)) > 0
            || self.presence.is_leaving(tenant, agent)
    }

    /// An agent's tab did something: an agent away for inactivity is online again.
    pub async fn agent_active(&self, tenant: TenantId, agent: i64) -> anyhow::Result<()> {
        if !self.presence.touch(tenant, agent, Utc::now()) {
            return Ok(());
        }
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let back = store::end_auto_away(&mut tx, agent).await?;
        tx.commit().await?;
        if back {
            self.remember_status(tenant, agent, AgentStatus::Online).await;
            self.publish_agent_presence(tenant, agent).await?;
        }
        Ok(())
    }

    /// The agent's last tab closed: present for the grace, then offline unless a tab is
    /// back.
    pub fn agent_left(self: &std::sync::Arc<Self>, tenant: TenantId, agent: i64) {
        self.presence.left(tenant, agent);
        let chat = std::sync::Arc::clone(self);
        let shutdown = self.hub.shutdown_token();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(chat.presence.grace()) => {}
                // The process is stopping: the pool is about to close, and the other nodes
                // hear the goodbye.
                () = shutdown.cancelled() => return,
            }
            if chat.hub.connections_of(tenant, Peer::Agent(agent)) > 0 {
                return;
            }
            chat.presence.forget(tenant, agent);
            if let Err(e) = chat.publish_agent_presence(tenant, agent).await {
                tracing::warn!(tenant = tenant.0, agent, error = %e, "presence after leaving failed");
            }
        });
    }

    /// Makes away every connected agent of every merchant with auto-away who has been idle
    /// for its `auto_away_minutes` at `now`. Returns how many.
    pub async fn auto_away_round(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let idle = self.presence.activity();
        let mut made_away = 0;
        for ((tenant, agent), last) in idle {
            if self.hub.connections_of(tenant, Peer::Agent(agent)) == 0 {
                continue;
            }
            let minutes = match super::automation::settings(self, &self.pool, tenant).await {
                Ok(a) => a.auto_away_minutes,
                Err(e) => {
                    tracing::warn!(tenant = tenant.0, error = %e, "auto-away settings");
                    continue;
                }
            };
            if minutes == 0 || now - last < chrono::Duration::minutes(minutes.into()) {
                continue;
            }
            if self.agent_status(tenant, agent).await? != AgentStatus::Online {
                continue;
            }
            let mut tx = TenantTx::begin(&self.pool, tenant).await?;
            let away = store::begin_auto_away(&mut tx, agent).await?;
            tx.commit().await?;
            if away {
                self.presence.made_away(tenant, agent);
                self.remember_status(tenant, agent, AgentStatus::Away).await;
                self.publish_agent_presence(tenant, agent).await?;
                made_away += 1;
            }
        }
        Ok(made_away)
    }
}

/// Checks for idle agents every 30 seconds.
pub fn spawn_auto_away(chat: &std::sync::Arc<super::Chat>) -> tokio::task::JoinHandle<()> {
    let chat = std::sync::Arc::clone(chat);
    crate::background::every(
        "auto-away",
        Duration::from_secs(30),
        chat.hub.shutdown_token(),
        None,
        move || {
            let chat = std::sync::Arc::clone(&chat);
            async move { chat.auto_away_round(Utc::now()).await }
        },
    )
}

//! What this process is to the realtime core's bus: its hub and presence, where a tenant's
//! messages stand, and which caches an invalidation drops.

use tenants::TenantId;

use crate::{
    realtime::{
        bus::{Invalidation, Node},
        hub::Hub,
        presence::Presence,
    },
    startup::AppState,
};

impl AppState {
    /// Drops what `what` names from this node's caches and tells the other nodes to.
    pub async fn invalidate(&self, what: Invalidation) {
        self.invalidate_here(what).await;
        if let Some(bus) = self.chat.hub.bus() {
            bus.invalidate(what);
        }
    }

    /// [`AppState::invalidate`] for this node's caches only.
    pub async fn invalidate_here(&self, what: Invalidation) {
        match what {
            Invalidation::Tenants => self.tenants.invalidate_all(),
            Invalidation::System => self.system.invalidate(),
            Invalidation::SignIn => self.oauth.forget(),
            Invalidation::Automation(tenant) => {
                self.chat.automation.invalidate(&TenantId(tenant)).await;
            }
            Invalidation::Webhooks(tenant) => self.chat.webhooks.invalidate(TenantId(tenant)).await,
            Invalidation::AgentStatus(tenant, agent) => {
                self.chat.forget_status(TenantId(tenant), agent).await;
            }
        }
    }
}

impl crate::realtime::bus::Invalidate for AppState {
    fn invalidate(
        &self,
        what: Invalidation,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(AppState::invalidate(self, what))
    }
}

impl Node for AppState {
    fn hub(&self) -> &Hub {
        &self.chat.hub
    }

    fn presence(&self) -> &Presence {
        &self.chat.presence
    }

    async fn last_message_before(
        &self,
        tenant: TenantId,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<i64> {
        Ok(crate::chat::store::last_message_before(&self.db, tenant, cutoff).await?)
    }

    async fn invalidate_here(&self, what: Invalidation) {
        AppState::invalidate_here(self, what).await;
    }
}

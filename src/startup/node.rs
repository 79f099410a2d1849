//! What this process is to the realtime core's bus: its hub and presence, where a tenant's
//! messages stand, and which caches an invalidation drops.

use std::{future::Future, pin::Pin, sync::Arc};

use tenants::{Registry, TenantId};

use crate::{
    auth::oauth::Providers,
    chat::Chat,
    platform::system::SystemCache,
    realtime::{
        bus::{Invalidate, Invalidation, Node},
        hub::Hub,
        presence::Presence,
    },
    startup::AppState,
};

/// This node's caches that an [`Invalidation`] names. `AppState` holds them as a
/// [`Caches`] handle, which features take through `FromRef`.
pub struct NodeCaches {
    pub tenants: Arc<Registry>,
    pub system: Arc<SystemCache>,
    pub oauth: Arc<Providers>,
    pub chat: Arc<Chat>,
}

impl NodeCaches {
    /// Drops what `what` names from this node's caches only.
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

/// This node's caches at once, the other nodes' through the bus.
impl Invalidate for NodeCaches {
    fn invalidate(&self, what: Invalidation) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.invalidate_here(what).await;
            if let Some(bus) = self.chat.hub.bus() {
                bus.invalidate(what);
            }
        })
    }
}

impl AppState {
    /// Drops what `what` names from this node's caches and tells the other nodes to.
    pub async fn invalidate(&self, what: Invalidation) {
        self.caches.invalidate(what).await;
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
        self.node_caches.invalidate_here(what).await;
    }
}

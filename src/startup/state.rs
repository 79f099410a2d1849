//! The application's state: everything handlers share, assembled once in
//! [`Application::build`](super::Application::build). Cheap to clone. Plumbing extractors
//! take only the part they need through `FromRef` (the visitor door the tenant registry,
//! client resolution the trusted proxies).

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;
use tenants::{Registry, TenantMigrator};

use crate::{
    auth::{ctx::Door, token::TokenKeys},
    config::Config,
    http::{TrustedProxies, rate},
    realtime::bus::Caches,
};

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub tenants: Arc<Registry>,
    pub config: Arc<Config>,
    pub tokens: Arc<TokenKeys>,
    pub migrator: Arc<TenantMigrator>,
    pub proxies: TrustedProxies,
    pub chat: Arc<crate::chat::Chat>,
    pub storage: crate::upload::Storage,
    pub geoip: Arc<crate::geoip::GeoIp>,
    pub system: Arc<crate::platform::system::SystemCache>,
    /// The plans on offer (built-in, changed by the configuration).
    pub plans: Arc<billing::Catalog>,
    /// Stripe's API, when billing goes through Stripe.
    pub stripe: Option<billing::stripe::StripeApi>,
    /// The time billing decisions are made at (tests drive it).
    pub clock: Arc<dyn billing::Clock>,
    /// Wakes the email worker when something was queued.
    pub mail: crate::notify::Mail,
    /// Sign-in providers' endpoints and keys (GitHub, Google, OpenID Connect).
    pub oauth: Arc<crate::auth::oauth::Providers>,
    /// What anonymous visitors may trigger, counted across nodes.
    pub limiter: Arc<rate::Limiter>,
    /// What opening an agent session needs (the same pool, registry, keys and plans).
    pub door: Arc<Door>,
    /// Pictures from elsewhere (product images), signed and served through kefu.
    pub images: Arc<crate::upload::remote::RemoteImages>,
    /// This node's caches an invalidation drops (the same registry, system, sign-in and
    /// chat caches as above) ...
    pub node_caches: Arc<super::node::NodeCaches>,
    /// ... and the handle that drops them on every node.
    pub caches: Caches,
}

/// What features take from the state (`State<T>`, or a `FromRef` bound on their routes),
/// each a clone of the part named.
macro_rules! parts {
    ($($part:ty => $($field:ident).+;)+) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> Self {
                state.$($field).+.clone()
            }
        }
    )+};
}

parts! {
    Arc<Door> => door;
    TrustedProxies => proxies;
    crate::notify::Mail => mail;
    Arc<crate::platform::system::SystemCache> => system;
    Arc<rate::Limiter> => limiter;
    Arc<Registry> => tenants;
    Caches => caches;
    Arc<Config> => config;
    Arc<billing::Catalog> => plans;
    Arc<crate::chat::Chat> => chat;
    crate::upload::Storage => storage;
    PgPool => db;
    Arc<tenants::TenantMigrator> => migrator;
    Arc<crate::realtime::hub::Hub> => chat.hub;
    Arc<crate::webhooks::Webhooks> => chat.webhooks;
    Arc<crate::upload::remote::RemoteImages> => images;
}

impl FromRef<AppState> for crate::auth::Auth {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            config: state.config.clone(),
            mail: state.mail.clone(),
            system: state.system.clone(),
            oauth: state.oauth.clone(),
            migrator: state.migrator.clone(),
            hub: state.chat.hub.clone(),
        }
    }
}

impl FromRef<AppState> for crate::merchant::subscription::Billing {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            config: state.config.clone(),
            stripe: state.stripe.clone(),
            clock: state.clock.clone(),
            hub: state.chat.hub.clone(),
            caches: state.caches.clone(),
        }
    }
}

impl FromRef<AppState> for crate::platform::Platform {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            config: state.config.clone(),
            mail: state.mail.clone(),
            system: state.system.clone(),
            caches: state.caches.clone(),
            hub: state.chat.hub.clone(),
            storage: state.storage.clone(),
            migrator: state.migrator.clone(),
            billing: FromRef::from_ref(state),
            oauth: state.oauth.clone(),
        }
    }
}

impl FromRef<AppState> for crate::chat::Sockets {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            chat: state.chat.clone(),
            config: state.config.clone(),
            limiter: state.limiter.clone(),
            system: state.system.clone(),
            mail: state.mail.clone(),
            images: state.images.clone(),
        }
    }
}

impl FromRef<AppState> for crate::notify::outbox::Outbox {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            tenants: state.tenants.clone(),
            system: state.system.clone(),
            config: state.config.clone(),
            mail: state.mail.clone(),
            hub: state.chat.hub.clone(),
        }
    }
}

impl FromRef<AppState> for crate::webhooks::deliver::Delivery {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            webhooks: state.chat.webhooks.clone(),
            config: state.config.clone(),
            hub: state.chat.hub.clone(),
        }
    }
}

impl FromRef<AppState> for crate::visitor::Visitors {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            chat: state.chat.clone(),
            geoip: state.geoip.clone(),
            limiter: state.limiter.clone(),
        }
    }
}

impl FromRef<AppState> for crate::upload::Uploads {
    fn from_ref(state: &AppState) -> Self {
        Self {
            door: state.door.clone(),
            limiter: state.limiter.clone(),
            storage: state.storage.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every request clones the state and every socket's task holds it for as long as the
    /// socket is open: large members belong behind an `Arc` (a Stripe client held inline made
    /// it 840 bytes and an idle socket 1.3 KiB dearer).
    #[test]
    fn app_state_stays_small() {
        let size = std::mem::size_of::<super::AppState>();
        assert!(size <= 256, "AppState is {size} bytes");
    }
}

//! Building and running the server: the composition root.

mod node;
mod routes;
mod state;

pub use self::{
    routes::{openapi, router, routes},
    state::AppState,
};

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use axum::serve::ListenerExt as _;
use sqlx::PgPool;
use tenants::{Registry, RegistryOptions, TenantMigrator};
use tokio::net::TcpListener;

use crate::{
    auth::{password, token::TokenKeys},
    config::Config,
    db,
    http::TrustedProxies,
};

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The bus to the other nodes, when `nats_url` is set (started with the server).
    nats: Option<crate::realtime::bus::Nats>,
}

/// How long shutdown waits for sockets to close, then for queued messages to be stored,
/// then for the last bus events to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Application {
    /// Binds the listener (`port` 0 picks a free port) and assembles the state. The database
    /// must be current; see [`prepare_database`].
    pub async fn build(
        mut config: Config,
        pool: PgPool,
        migrator: TenantMigrator,
    ) -> anyhow::Result<Self> {
        let secret = config.signing_secret()?;
        let tokens =
            TokenKeys::new(&secret, Duration::from_secs(u64::from(config.session_hours) * 3600));
        let registry = Registry::new(
            pool.clone(),
            RegistryOptions {
                base_domain: config.base_domain.clone(),
                ..RegistryOptions::default()
            },
        );
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        // Port 0 asks for any free port: links must carry the one that was given.
        config.port = listener.local_addr().map_or(config.port, |a| a.port());
        tokio::task::spawn_blocking(password::warm_up);
        let storage = crate::upload::Storage::from_config(&config)?;
        let geoip = Arc::new(crate::geoip::GeoIp::open(&config.geoip_paths)?);
        let stripe = match &config.stripe_secret_key {
            Some(key) => {
                use secrecy::ExposeSecret as _;
                Some(billing::stripe::StripeApi::new(key.expose_secret(), &config.stripe_api_base)?)
            }
            None => None,
        };
        crate::metrics::handle();
        let limiter =
            Arc::new(crate::http::rate::Limiter::new(pool.clone(), config.visitor_limits.clone()));
        let plans = Arc::new(config.catalog()?);
        let tenants = Arc::new(registry);
        let tokens = Arc::new(tokens);
        let door = Arc::new(crate::auth::ctx::Door {
            db: pool.clone(),
            tenants: tenants.clone(),
            tokens: tokens.clone(),
            plans: plans.clone(),
        });
        let chat = Arc::new(crate::chat::Chat::new(
            pool.clone(),
            config.writer_shards,
            Arc::new(crate::webhooks::Webhooks::new(pool.clone(), config.webhooks_allow_private)),
            limiter.clone(),
        ));
        let oauth: Arc<crate::auth::oauth::Providers> = Arc::default();
        let system = Arc::new(crate::platform::system::SystemCache::new(pool.clone()));
        let node_caches = Arc::new(node::NodeCaches {
            tenants: tenants.clone(),
            system: system.clone(),
            oauth: oauth.clone(),
            chat: chat.clone(),
        });
        let images = Arc::new(crate::upload::remote::RemoteImages::new(
            secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
            config.webhooks_allow_private,
        ));
        let state = AppState {
            images,
            caches: crate::realtime::bus::Caches::new(node_caches.clone()),
            node_caches,
            door,
            plans,
            stripe,
            clock: Arc::new(billing::SystemClock),
            mail: crate::notify::Mail::new(config.display_url(config.port)),
            oauth,
            storage,
            geoip,
            chat,
            limiter,
            system,
            db: pool,
            tenants,
            proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            config: Arc::new(config),
            tokens,
            migrator: Arc::new(migrator),
        };
        state
            .chat
            .presence
            .set_grace(std::time::Duration::from_secs(state.config.presence_grace_secs));
        let nats = match &state.config.nats_url {
            Some(url) => {
                use secrecy::ExposeSecret as _;
                let heartbeat = Duration::from_secs(state.config.bus_heartbeat_secs);
                let (bus, nats) = crate::realtime::bus::connect(
                    url.expose_secret(),
                    &state.config.nats_subject,
                    heartbeat,
                )
                .await?;
                tracing::info!(node = bus.node, "bus: this node is on NATS");
                state.chat.hub.attach_bus(bus);
                Some(nats)
            }
            None => None,
        };
        Ok(Self { listener, state, nats })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Makes billing decisions at the time `clock` tells (tests move it).
    pub fn with_clock(mut self, clock: Arc<dyn billing::Clock>) -> Self {
        self.state.clock = clock;
        self
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests,
    /// tells every socket to reconnect (close 1012), stores what they had sent, and says
    /// goodbye on the bus.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let bus = match self.nats {
            Some(nats) => {
                Some(nats.start(self.state.clone()).await.map_err(std::io::Error::other)?)
            }
            None => None,
        };
        let state = self.state.clone();
        let purge = crate::platform::lifecycle::spawn_purge_job(axum::extract::FromRef::from_ref(
            &self.state,
        ));
        let billing =
            crate::merchant::subscription::spawn_job(axum::extract::FromRef::from_ref(&self.state));
        let email =
            crate::notify::outbox::spawn_worker(axum::extract::FromRef::from_ref(&self.state));
        let webhooks =
            crate::webhooks::deliver::spawn_worker(axum::extract::FromRef::from_ref(&self.state));
        let auto_away = crate::chat::presence::spawn_auto_away(&self.state.chat);
        let timers = crate::chat::status::spawn_worker(&self.state);
        let spares = crate::platform::lifecycle::spawn_spares_job(
            axum::extract::FromRef::from_ref(&self.state),
        );
        let sessions =
            crate::auth::sessions::spawn_sweep(self.state.db.clone(), self.state.chat.hub.clone());
        let app = router(self.state);
        // Frames go out as soon as they are written: with Nagle's algorithm a socket that
        // only receives (an agent's, carrying a busy team's messages) holds each small
        // write until the peer's delayed ACK, adding 10–40 ms to every push.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
            }
        });
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;
        purge.abort();
        billing.abort();
        email.abort();
        webhooks.abort();
        timers.abort();
        auto_away.abort();
        sessions.abort();
        if let Some(spares) = spares {
            spares.abort();
        }
        state.chat.hub.drain(SHUTDOWN_GRACE).await;
        state.chat.writer.drain(SHUTDOWN_GRACE).await;
        if let Some(bus) = bus {
            bus.stop(&state.chat.hub, SHUTDOWN_GRACE).await;
        }
        Ok(())
    }
}

/// Makes sure the schemas match this binary before serving. A brand-new database is
/// initialised (platform migrations); an existing one that is behind — platform or any
/// tenant — is refused with the command that fixes it.
pub async fn prepare_database(pool: &PgPool, migrator: &TenantMigrator) -> anyhow::Result<()> {
    if db::is_fresh(pool).await? {
        tracing::info!("new database: creating the platform schema");
        db::PLATFORM_MIGRATOR.run(pool).await.context("creating the platform schema")?;
        return Ok(());
    }
    let platform = db::platform_pending(pool).await?;
    if !platform.is_empty() {
        // The tenants' bookkeeping may be among what is pending: they are checked after.
        bail!(
            "the database is behind this version of kefu ({} platform migration(s) pending). \
             Run `kefu migrate` (with the same --data-dir / DATABASE_URL), then start again.",
            platform.len()
        );
    }
    let tenants = migrator.tenants_behind(pool).await?;
    if !tenants.is_empty() {
        bail!(
            "the database is behind this version of kefu ({} platform migration(s) pending, {} tenant schema(s) behind). \
             Run `kefu migrate` (with the same --data-dir / DATABASE_URL), then start again.",
            platform.len(),
            tenants.len()
        );
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

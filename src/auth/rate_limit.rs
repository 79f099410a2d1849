//! Rate limiting of sign-up and login attempts per client IP (as computed by the
//! trusted-proxy rule, never straight from forwarding headers).

use std::{net::IpAddr, sync::Arc};

use axum::{body::Body, response::IntoResponse};
use tower::Layer;
use tower_governor::{
    GovernorError, GovernorLayer,
    governor::{GovernorConfig, GovernorConfigBuilder},
    key_extractor::KeyExtractor,
};

use crate::{
    config::Config,
    http::{AppError, client::ClientMeta},
};

#[derive(Clone, Copy, Debug)]
pub struct ClientIpKey;

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        req.extensions().get::<ClientMeta>().map(|m| m.ip).ok_or(GovernorError::UnableToExtractKey)
    }
}

type AuthGovernorConfig = GovernorConfig<
    ClientIpKey,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
>;

/// One limiter shared by every auth route (tower_governor's layer is not `Clone`, so this
/// wrapper builds one per route around the shared state).
#[derive(Clone)]
pub struct AuthRateLimit(Arc<AuthGovernorConfig>);

impl AuthRateLimit {
    pub fn new(config: &Config) -> Self {
        let period_ms = (60_000 / u64::from(config.auth_rate_per_minute)).max(1);
        let governor = GovernorConfigBuilder::default()
            .per_millisecond(period_ms)
            .burst_size(config.auth_rate_burst)
            .key_extractor(ClientIpKey)
            .finish()
            .expect("rate and burst are validated to be non-zero");
        let limiter = Arc::new(governor);
        let cleanup = Arc::downgrade(&limiter);
        // Forget idle clients now and then so the map stays small.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(limiter) = cleanup.upgrade() else {
                        break;
                    };
                    limiter.limiter().retain_recent();
                }
            });
        }
        Self(limiter)
    }
}

impl<S> Layer<S> for AuthRateLimit {
    type Service = <GovernorLayer<
        ClientIpKey,
        governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
        Body,
    > as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        GovernorLayer::new(self.0.clone())
            .error_handler(|e: GovernorError| match e {
                GovernorError::TooManyRequests { wait_time, .. } => {
                    AppError::RateLimited { retry_after: wait_time }.into_response()
                }
                other => {
                    AppError::Internal(anyhow::anyhow!("rate limiter: {other}")).into_response()
                }
            })
            .layer(inner)
    }
}

//! Prometheus metrics at `GET /metrics` (the `metrics` facade, rendered by
//! metrics-exporter-prometheus). Labels are bounded: route templates (never raw paths),
//! method, status class, connection kind, sender kind, tenant status — nothing per tenant.
//!
//! Who may read it: a client presenting `metrics_token` as a bearer token, or — when no token
//! is configured — a client on loopback or a private network. Anyone else gets 404.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRef, MatchedPath, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use subtle::ConstantTimeEq as _;
use tenants::Registry;

use crate::chat::Chat;
use crate::config::Config;
use crate::http::{AppError, ClientMeta, Routes, Scope};

/// Seconds: from well under a millisecond (a group commit) to requests that take seconds.
const BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Messages per group commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Config>: FromRef<S>,
    Arc<Chat>: FromRef<S>,
    Arc<Registry>: FromRef<S>,
    PgPool: FromRef<S>,
{
    Routes::new().get("/metrics", Scope::Public, scrape)
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (one per process: several servers in one
/// test process share it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("kefu_message_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("kefu_message_batch_tenants".into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        metrics::gauge!("kefu_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        // Keeps histogram storage small; one thread per process, like the recorder.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("a thread can be started");
        handle
    })
}

/// Middleware: counts and times every request by method, route template and status class.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("kefu_http_requests_total", "method" => method, "route" => route.clone(), "status" => class)
        .increment(1);
    metrics::histogram!("kefu_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A live WebSocket, counted while it lasts.
pub struct Connection(&'static str);

impl Connection {
    pub fn open(kind: &'static str) -> Self {
        metrics::gauge!("kefu_ws_connections", "kind" => kind).increment(1.0);
        metrics::counter!("kefu_ws_connections_opened_total", "kind" => kind).increment(1);
        Self(kind)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        metrics::gauge!("kefu_ws_connections", "kind" => self.0).decrement(1.0);
    }
}

/// One group commit of the message writer: its size, the merchants it spans, and how long
/// its messages waited from being handed in to being durable.
pub fn batch_committed(size: usize, tenants: usize, oldest: Instant) {
    metrics::histogram!("kefu_message_batch_size").record(size as f64);
    metrics::histogram!("kefu_message_batch_tenants").record(tenants as f64);
    metrics::histogram!("kefu_message_commit_seconds").record(oldest.elapsed().as_secs_f64());
}

/// A message stored (not a retried duplicate) and pushed to the live connections, timed
/// from being handed to the writer.
pub fn message_delivered(sender: &'static str, handed_in: Instant) {
    metrics::counter!("kefu_messages_stored_total", "sender" => sender).increment(1);
    metrics::histogram!("kefu_message_deliver_seconds").record(handed_in.elapsed().as_secs_f64());
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

fn allowed(config: &Config, meta: &ClientMeta, headers: &HeaderMap) -> bool {
    match &config.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                bool::from(given.trim().as_bytes().ct_eq(token.expose_secret().as_bytes()))
            }),
        None => private(meta.ip),
    }
}

/// `GET /metrics`: the text exposition format. Pool and tenant gauges are read now.
async fn scrape(
    State(config): State<Arc<Config>>,
    State(chat): State<Arc<Chat>>,
    State(tenants): State<Arc<Registry>>,
    State(pool): State<PgPool>,
    meta: ClientMeta,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !allowed(&config, &meta, &headers) {
        return Err(AppError::NotFound);
    }
    let idle = pool.num_idle() as f64;
    metrics::gauge!("kefu_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("kefu_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.size()) - idle);
    metrics::gauge!("kefu_db_pool_max").set(f64::from(pool.options().get_max_connections()));
    let writers = chat.writer.pools();
    let (size, idle, max) = writers.iter().fold((0, 0, 0), |(s, i, m), p| {
        (s + p.size(), i + p.num_idle() as u32, m + p.options().get_max_connections())
    });
    metrics::gauge!("kefu_db_writer_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("kefu_db_writer_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("kefu_db_writer_max").set(f64::from(max));
    let tenants = tenants.count_by_status().await?;
    for status in ["active", "suspended", "deleted"] {
        let n = tenants.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("kefu_tenants", "status" => status).set(n as f64);
    }
    let body = handle().render();
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.5.5",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:4860::8888", "::ffff:1.1.1.1"] {
            assert!(!private(ip.parse().unwrap()), "{ip}");
        }
    }
}

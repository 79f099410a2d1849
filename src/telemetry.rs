//! Logging: `tracing` to stderr, as text or JSON lines. The filter comes from `KEFU_LOG`
//! (or `RUST_LOG`), e.g. `KEFU_LOG=debug,sqlx=warn`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = std::env::var("KEFU_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
        LogFormat::Json => {
            registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init()
        }
    };
    // Already initialised (tests): keep the first subscriber.
    let _ = result;
}

//! kefu: a multi-tenant live-chat customer service platform.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`]. Features live in folders named for
//! what users see (`auth`, `agent`, `chat`, `visitor`, `merchant`, `platform`, `site`); cross-cutting plumbing in
//! `http` and `db`. Tenancy (schemas, the `TenantTx` door) is the `tenants` crate; plans and
//! limits, the subscription lifecycle and Stripe are the `billing` crate. See `docs/architecture.md`.

pub mod agent;
pub mod auth;
pub mod background;
pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod geoip;
pub mod http;
pub mod i18n;
pub mod ids;
pub mod merchant;
pub mod metrics;
pub mod notify;
pub mod platform;
pub mod realtime;
pub mod site;
pub mod startup;
pub mod telemetry;
pub mod upload;
pub mod visitor;
pub mod webhooks;

//! The integration suite: one test binary, one embedded PostgreSQL cluster per process, a
//! fresh database per test (cloned from a migrated template).

mod helpers;
mod ws_client;

mod api_tokens;
mod bad_input;
mod billing;
mod browser;
mod chat;
mod cluster;
mod delivery;
mod email;
mod embedded;
mod fake_stripe;
mod geoip;
mod identity;
mod isolation;
mod login;
mod merchant_settings;
mod metrics;
mod migrate;
mod nodes;
mod oauth;
mod openapi;
mod outage;
mod pages;
mod platform;
mod prechat;
mod presence;
mod rating;
mod roles;
mod s3;
mod sessions;
mod signup;
mod smtp_server;
mod spares;
mod sso;
mod static_checks;
mod statuses;
mod team;
mod tenancy;
mod tracking;
mod two_factor;
mod uploads;
mod visitors;
mod webhooks;

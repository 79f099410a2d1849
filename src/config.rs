//! Configuration, in layers: built-in defaults < `kefu.toml` < environment (`KEFU_*`,
//! `DATABASE_URL`) < command-line flags. Secrets are `SecretString`s: `Debug` prints
//! `[REDACTED]`, and nothing logs them.

use std::{
    fs,
    io::Write as _,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

/// Shortest accepted JWT signing secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Everything kefu can be told. Field names are the `kefu.toml` keys; the environment
/// variable is the upper-cased name with a `KEFU_` prefix (`KEFU_DATA_DIR`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where kefu keeps its state: the embedded PostgreSQL cluster, the generated JWT secret.
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    pub port: u16,
    /// Use this PostgreSQL server instead of the embedded one (unprefixed `DATABASE_URL`).
    pub database_url: Option<SecretString>,
    /// JWT signing secret (≥ 32 bytes). Generated into `<data_dir>/jwt_secret` when unset.
    pub jwt_secret: Option<SecretString>,
    /// The address users reach kefu at, e.g. `https://chat.example.com` (links, cookies).
    pub public_url: Option<String>,
    /// `<ent_id>.<base_domain>` resolves to that merchant.
    pub base_domain: Option<String>,
    /// Where uploads are stored: `s3://bucket/prefix` (endpoint and credentials from the
    /// usual `AWS_*` variables, e.g. `AWS_ENDPOINT` for MinIO) or `file:///dir`. Default:
    /// `<data_dir>/uploads`.
    pub storage_url: Option<String>,
    /// `object_store` options for `storage_url`, e.g. `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`. They win over the
    /// same options from `AWS_*` variables. Values are secrets (never printed).
    pub storage_options: std::collections::BTreeMap<String, SecretString>,
    /// GeoIP databases in MaxMind's `.mmdb` format (GeoLite2 City, DB-IP Lite City's IPv4
    /// and IPv6 files, …), tried in order; none: visitor locations are unknown.
    #[serde(deserialize_with = "paths")]
    pub geoip_paths: Vec<PathBuf>,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` / `X-Forwarded-Proto` are believed
    /// (CIDRs or addresses; a comma-separated list in the environment).
    #[serde(deserialize_with = "ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Connections in the shared pool (keep it small: each caches catalog data per tenant).
    pub db_max_connections: u32,
    /// Sign-up and login attempts allowed per client IP per minute, and the burst.
    pub auth_rate_per_minute: u32,
    pub auth_rate_burst: u32,
    /// Lifetime of a login session (1–8 hours).
    pub session_hours: u32,
    /// Tenants migrated at once by `kefu migrate`.
    pub migrate_concurrency: usize,
    /// Frames one WebSocket may send per second (sustained), and the burst.
    pub ws_rate_per_sec: u32,
    pub ws_rate_burst: u32,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Days a deleted merchant can still be restored before its data is purged.
    pub deleted_grace_days: u32,
    /// How often the background job looks for deleted merchants to purge (seconds).
    pub purge_interval_secs: u64,
    /// Stripe secret key (`sk_live_…` / `sk_test_…`). Without one billing is manual:
    /// super-admins assign plans.
    pub stripe_secret_key: Option<SecretString>,
    /// Signing secrets (`whsec_…`) of the `/webhooks/stripe` endpoint; list the old and the
    /// new one while rotating (comma-separated in the environment).
    #[serde(deserialize_with = "secrets")]
    pub stripe_webhook_secrets: Vec<SecretString>,
    /// Where Stripe's API is (tests point it at a local stand-in).
    pub stripe_api_base: String,
    /// Changes to the built-in plans, `[plans.<id>]` tables in `kefu.toml`: `name`,
    /// `price_cents`, `currency`, `seats`, `conversations_per_month`, `storage_mb` (a number
    /// or `"unlimited"`), `api`, `webhooks`, `sso`, and `stripe_price` (the Price sold).
    pub plans: std::collections::BTreeMap<String, billing::PlanSettings>,
    /// How often the billing job ends trials and grace periods that are over (seconds).
    pub billing_interval_secs: u64,
    /// Days of full service after a payment fails, before the merchant is suspended.
    pub past_due_grace_days: u32,
    /// A PEM file with the CA certificate(s) of a private SMTP relay, trusted besides the
    /// public roots.
    pub smtp_ca_file: Option<PathBuf>,
    /// How often the email worker looks for emails to send, besides being woken when one
    /// is queued (seconds).
    pub email_interval_secs: u64,
    /// Let webhooks deliver to private, loopback and link-local addresses (off: a merchant's
    /// URL cannot reach into the platform's network).
    pub webhooks_allow_private: bool,
    /// How often the webhook worker looks for due deliveries, besides being woken when one
    /// is queued (seconds).
    pub webhook_interval_secs: u64,
    /// How long an agent whose last tab closed still counts as present (a reload reconnects
    /// within it, so nobody sees them flap offline).
    pub presence_grace_secs: u64,
    /// A bearer token for `GET /metrics`. Without one, only clients on loopback or private
    /// networks (as the trusted-proxy rule computes them) may read it.
    pub metrics_token: Option<SecretString>,
    /// Tenant schemas kept built ahead of sign-up, so that creating a merchant takes
    /// milliseconds instead of running every tenant migration (0: build on demand).
    pub spare_schemas: usize,
    /// How often the stock of spare schemas is topped up (seconds).
    pub spare_interval_secs: u64,
    /// Small pools (two connections each) that carry message writes, each tenant always
    /// through the same one, so that PostgreSQL caches a tenant's schema in a few backends
    /// instead of all of them (0: writes share the main pool). kefu opens up to
    /// `db_max_connections + 2 × writer_shards` connections.
    pub writer_shards: usize,
    /// NATS server(s) for running several kefu nodes (`nats://host:4222`, comma-separated
    /// for a cluster). Unset: one process, no bus.
    pub nats_url: Option<SecretString>,
    /// The subject prefix on NATS (several deployments can share a NATS cluster).
    pub nats_subject: String,
    /// How often each node sends its presence snapshot (its heartbeat) on the bus; a node
    /// silent for three of these is taken for dead (seconds).
    pub bus_heartbeat_secs: u64,
    /// What anonymous visitors may trigger per address and per visitor (`[visitor_limits]`;
    /// `KEFU_VISITOR_LIMITS__SESSIONS_PER_IP=…` in the environment). docs/deployment.md.
    pub visitor_limits: crate::http::rate::VisitorLimits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8081,
            database_url: None,
            jwt_secret: None,
            public_url: None,
            base_domain: None,
            storage_url: None,
            storage_options: Default::default(),
            geoip_paths: Vec::new(),
            trusted_proxies: Vec::new(),
            db_max_connections: 16,
            auth_rate_per_minute: 20,
            auth_rate_burst: 10,
            session_hours: 8,
            migrate_concurrency: 4,
            ws_rate_per_sec: 20,
            ws_rate_burst: 60,
            deleted_grace_days: 30,
            purge_interval_secs: 600,
            log_format: LogFormat::Text,
            stripe_secret_key: None,
            stripe_webhook_secrets: Vec::new(),
            stripe_api_base: billing::stripe::API_BASE.to_owned(),
            plans: Default::default(),
            billing_interval_secs: 300,
            past_due_grace_days: billing::PAST_DUE_GRACE_DAYS as u32,
            smtp_ca_file: None,
            email_interval_secs: 5,
            webhooks_allow_private: false,
            webhook_interval_secs: 5,
            presence_grace_secs: 8,
            metrics_token: None,
            spare_schemas: 3,
            spare_interval_secs: 5,
            writer_shards: 4,
            nats_url: None,
            nats_subject: "kefu".to_owned(),
            bus_heartbeat_secs: 5,
            visitor_limits: Default::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Config {
    /// Reads the layers. `file` is the `kefu.toml` to read (`None`: `./kefu.toml` if present).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("kefu.toml")),
        }
        let config: Config = figment
            .merge(Env::prefixed("KEFU_").ignore(&["config", "log"]).split("__"))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot. A refused configuration stops kefu before it does anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(secret) = &self.jwt_secret {
            if secret.expose_secret().len() < MIN_SECRET_LEN {
                bail!(
                    "the configured JWT secret (KEFU_JWT_SECRET / jwt_secret) is {} bytes long; it must be at least {MIN_SECRET_LEN} bytes. \
                     Remove it to let kefu generate one in the data directory, or set a longer random value (e.g. `openssl rand -base64 48`).",
                    secret.expose_secret().len()
                );
            }
        }
        if !(1..=8).contains(&self.session_hours) {
            bail!("session_hours must be between 1 and 8, not {}", self.session_hours);
        }
        if self.deleted_grace_days > 3650 {
            bail!("deleted_grace_days must be at most 3650, not {}", self.deleted_grace_days);
        }
        if self.purge_interval_secs == 0 {
            bail!("purge_interval_secs must be at least 1");
        }
        if self.db_max_connections == 0 {
            bail!("db_max_connections must be at least 1");
        }
        if self.ws_rate_per_sec == 0 || self.ws_rate_burst == 0 {
            bail!("ws_rate_per_sec and ws_rate_burst must be at least 1");
        }
        if self.auth_rate_per_minute == 0 || self.auth_rate_burst == 0 {
            bail!("auth_rate_per_minute and auth_rate_burst must be at least 1");
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("public_url must start with http:// or https://, not {url:?}");
            }
        }
        let catalog = self.catalog()?;
        if self.stripe_secret_key.is_some() {
            if self.stripe_webhook_secrets.is_empty() {
                bail!(
                    "stripe_secret_key is set but stripe_webhook_secrets is not: without the webhook signing secret                      (whsec_…, from the endpoint's page in Stripe's dashboard) kefu cannot learn about payments"
                );
            }
            if catalog.all().iter().all(|p| p.stripe_price.is_none()) {
                bail!(
                    "stripe_secret_key is set but no plan has a stripe_price: add `stripe_price = \"price_…\"` under                      [plans.starter], [plans.pro] or [plans.business] in kefu.toml"
                );
            }
        }
        if !(self.stripe_api_base.starts_with("https://")
            || self.stripe_api_base.starts_with("http://"))
        {
            bail!("stripe_api_base must be an http(s) URL, not {:?}", self.stripe_api_base);
        }
        if self.webhook_interval_secs == 0 {
            bail!("webhook_interval_secs must be at least 1");
        }
        if self.writer_shards > 64 {
            bail!("writer_shards must be at most 64, not {}", self.writer_shards);
        }
        if self.bus_heartbeat_secs == 0 {
            bail!("bus_heartbeat_secs must be at least 1");
        }
        let subject_ok = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|token| {
                    !token.is_empty()
                        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        if !subject_ok(&self.nats_subject) {
            bail!(
                "nats_subject must be dot-separated words of letters, digits, '-' or '_' (like `kefu` or `acme.kefu`), not {:?}",
                self.nats_subject
            );
        }
        if self.email_interval_secs == 0 {
            bail!("email_interval_secs must be at least 1");
        }
        if let Some(path) = &self.smtp_ca_file {
            if !path.is_file() {
                bail!("smtp_ca_file {} is not a readable file", path.display());
            }
        }
        if self.billing_interval_secs == 0 {
            bail!("billing_interval_secs must be at least 1");
        }
        if !(1..=90).contains(&self.past_due_grace_days) {
            bail!("past_due_grace_days must be between 1 and 90, not {}", self.past_due_grace_days);
        }
        Ok(())
    }

    /// The plans on offer: the built-in ones with this configuration's changes.
    pub fn catalog(&self) -> anyhow::Result<billing::Catalog> {
        billing::Catalog::with_settings(&self.plans)
            .map_err(|e| anyhow::anyhow!("invalid plan configuration: {e}"))
    }

    /// Whether payments go through Stripe (else super-admins assign plans).
    pub fn stripe_enabled(&self) -> bool {
        self.stripe_secret_key.is_some()
    }

    /// The URL printed at start and used in links: `public_url`, or the bound address.
    pub fn display_url(&self, port: u16) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = match self.bind {
                    IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
                    IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
                    IpAddr::V4(ip) => ip.to_string(),
                    IpAddr::V6(ip) => format!("[{ip}]"),
                };
                format!("http://{host}:{port}")
            }
        }
    }

    /// Whether users reach kefu over https (then cookies are `Secure`).
    pub fn is_https(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    /// The JWT signing secret: the configured one, or the one kept in the data directory,
    /// generated (64 random bytes, mode 0600) the first time.
    pub fn signing_secret(&self) -> anyhow::Result<SecretString> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.clone());
        }
        let path = self.data_dir.join("jwt_secret");
        match fs::read_to_string(&path) {
            Ok(s) => {
                let s = s.trim().to_owned();
                if s.len() < MIN_SECRET_LEN {
                    bail!(
                        "{} holds a secret shorter than {MIN_SECRET_LEN} bytes; delete it to generate a new one",
                        path.display()
                    );
                }
                Ok(SecretString::from(s))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use base64::Engine as _;
                fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("creating the data directory {}", self.data_dir.display())
                })?;
                let bytes: [u8; 64] = rand::random();
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode_0600()
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                file.write_all(secret.as_bytes())?;
                tracing::info!(path = %path.display(), "generated a new JWT signing secret");
                Ok(SecretString::from(secret))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600)
    }
}

/// A list of CIDRs or addresses, as a sequence (TOML) or a comma-separated string (env).
/// A list written as a TOML array or, in the environment, as one comma-separated string.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => {
            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
        }
        Raw::Many(v) => v,
    })
}

fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(list(d)?.into_iter().map(PathBuf::from).collect())
}

fn secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(list(d)?.into_iter().map(SecretString::from).collect())
}

fn ip_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    list(d)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                serde::de::Error::custom(format!("{s:?} is not an IP address or CIDR"))
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "kefu.toml",
                "port = 9000\nbind = \"0.0.0.0\"\ndata_dir = \"from-file\"",
            )?;
            jail.set_env("KEFU_PORT", "9100");
            jail.set_env("KEFU_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1");
            let config = Config::load(
                None,
                &Overrides { data_dir: Some("from-flag".into()), ..Default::default() },
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(config.port, 9100, "env beats file");
            assert_eq!(config.bind.to_string(), "0.0.0.0", "file beats default");
            assert_eq!(config.data_dir, PathBuf::from("from-flag"), "flag beats file");
            assert_eq!(config.trusted_proxies.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn short_secret_is_refused_and_never_printed() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KEFU_JWT_SECRET", "too-short-secret");
            let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("at least 32 bytes"), "{err}");
            assert!(!err.contains("too-short-secret"));
            jail.set_env("KEFU_JWT_SECRET", "x".repeat(40));
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(!format!("{config:?}").contains("xxxxxxxx"), "Debug must not print secrets");
            Ok(())
        });
    }

    #[test]
    fn secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let a = config.signing_secret().unwrap();
        let b = config.signing_secret().unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().len() >= MIN_SECRET_LEN);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.path().join("jwt_secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

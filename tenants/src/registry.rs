//! Tenant lookup and resolution, cached.
//!
//! A tenant is found by internal id (from an authenticated token), by `ent_id` (visitor links,
//! the widget) or by Host (a subdomain of the configured base domain, or a verified custom
//! domain). Each lookup goes through a moka cache with `try_get_with`, so a burst of misses
//! for one key runs a single query; found tenants live for a short TTL, unknown keys are
//! remembered for a few seconds so scans of random ids or hosts don't reach the database.
//! Every change to a tenant goes through [`Registry::invalidate_all`].

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use moka::{Expiry, future::Cache};
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};

use crate::ids::{EntId, TenantId};

/// Columns selected for a [`Tenant`], in one place so every query returns the same shape.
pub(crate) const TENANT_COLUMNS: &str =
    "id, ent_id, name, status, plan, trial_ends_at, schema_version, created_at, billing_status";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    Deleted,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleted => "deleted",
        }
    }
}

impl TryFrom<String> for TenantStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "deleted" => Ok(Self::Deleted),
            other => Err(format!("unknown tenant status {other:?}")),
        }
    }
}

/// A merchant as the platform knows it (`public.tenants`).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: TenantId,
    pub ent_id: EntId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    pub plan: String,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub schema_version: i32,
    pub created_at: DateTime<Utc>,
    /// Where the merchant stands with its subscription (`trialing`, `active`, `past_due`,
    /// `suspended`, `canceled`; the billing crate says what each means).
    pub billing_status: String,
}

type Entry = Option<Arc<Tenant>>;

/// Tuning for the [`Registry`] caches.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// How long a found tenant is served from cache (bounded staleness across nodes).
    pub ttl: Duration,
    /// How long an unknown id or host is remembered.
    pub negative_ttl: Duration,
    /// Entries per cache.
    pub capacity: u64,
    /// `<ent_id>.<base_domain>` resolves to that tenant, e.g. `chat.example.com`.
    pub base_domain: Option<String>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            capacity: 50_000,
            base_domain: None,
        }
    }
}

struct TenantExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl<K> Expiry<K, Entry> for TenantExpiry {
    fn expire_after_create(&self, _: &K, value: &Entry, _: std::time::Instant) -> Option<Duration> {
        Some(if value.is_some() { self.ttl } else { self.negative_ttl })
    }
}

/// Errors from a lookup are shared by every caller that waited on the same query.
pub type LookupError = Arc<sqlx::Error>;

/// Finds tenants; see the module docs.
pub struct Registry {
    pool: PgPool,
    by_id: Cache<TenantId, Entry>,
    by_ent: Cache<EntId, Entry>,
    by_host: Cache<String, Entry>,
    base_domain: Option<String>,
}

impl Registry {
    pub fn new(pool: PgPool, options: RegistryOptions) -> Self {
        fn cache<K>(o: &RegistryOptions) -> Cache<K, Entry>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
        {
            Cache::builder()
                .max_capacity(o.capacity)
                .expire_after(TenantExpiry { ttl: o.ttl, negative_ttl: o.negative_ttl })
                .build()
        }
        Self {
            by_id: cache(&options),
            by_ent: cache(&options),
            by_host: cache(&options),
            base_domain: options.base_domain.map(|d| d.trim_matches('.').to_ascii_lowercase()),
            pool,
        }
    }

    /// A live (not deleted) tenant by internal id.
    pub async fn by_id(&self, id: TenantId) -> Result<Entry, LookupError> {
        self.by_id
            .try_get_with(id, async { fetch(&self.pool, "id = $1", |q| q.bind(id)).await })
            .await
    }

    /// A live (not deleted) tenant by public id.
    pub async fn by_ent_id(&self, ent_id: &EntId) -> Result<Entry, LookupError> {
        self.by_ent
            .try_get_with_by_ref(ent_id, async {
                fetch(&self.pool, "ent_id = $1", |q| q.bind(ent_id)).await
            })
            .await
    }

    /// A live tenant by the request's Host header: `<ent_id>.<base domain>` or a verified
    /// custom domain. Malformed hosts resolve to `None` without touching the database.
    pub async fn by_host(&self, raw_host: &str) -> Result<Entry, LookupError> {
        let Some(host) = normalize_host(raw_host) else {
            return Ok(None);
        };
        if let Some(base) = &self.base_domain {
            if host == *base {
                return Ok(None);
            }
            if let Some(label) = host.strip_suffix(base.as_str()).and_then(|p| p.strip_suffix('.'))
            {
                return match EntId::parse(label) {
                    Ok(ent_id) if !label.contains('.') => self.by_ent_id(&ent_id).await,
                    _ => Ok(None),
                };
            }
        }
        self.by_host
            .try_get_with_by_ref(&host, async {
                fetch(
                    &self.pool,
                    "id = (select tenant_id from public.tenant_domains
                           where lower(domain) = $1 and verified_at is not null)",
                    |q| q.bind(&host),
                )
                .await
            })
            .await
    }

    /// Forgets everything cached. Called after every change to any tenant (status, plan,
    /// domains, creation): changes are rare, and a full flush can never miss a key.
    pub fn invalidate_all(&self) {
        self.by_id.invalidate_all();
        self.by_ent.invalidate_all();
        self.by_host.invalidate_all();
    }

    /// Changes a tenant's status (suspend, resume, soft delete). Returns false if no live
    /// tenant has that id.
    pub async fn set_status(&self, id: TenantId, status: TenantStatus) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "update public.tenants
             set status = $2, updated_at = now(),
                 suspended_at = case when $2 = 'suspended' then now() else null end,
                 deleted_at = case when $2 = 'deleted' then now() else deleted_at end
             where id = $1 and status <> 'deleted'",
        )
        .bind(id)
        .bind(status.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        self.invalidate_all();
        Ok(done)
    }

    /// How many tenants there are in each status (for metrics).
    pub async fn count_by_status(&self) -> sqlx::Result<Vec<(String, i64)>> {
        sqlx::query_as("select status, count(*) from public.tenants group by status")
            .fetch_all(&self.pool)
            .await
    }

    /// Every live tenant, oldest first (for the CLI and operators).
    pub async fn list(&self) -> sqlx::Result<Vec<Tenant>> {
        sqlx::query_as(AssertSqlSafe(format!(
            "select {TENANT_COLUMNS} from public.tenants where status <> 'deleted' order by id"
        )))
        .fetch_all(&self.pool)
        .await
    }
}

async fn fetch<'q, F>(pool: &PgPool, condition: &'static str, bind: F) -> sqlx::Result<Entry>
where
    F: FnOnce(
        sqlx::query::QueryAs<'q, sqlx::Postgres, Tenant, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Tenant, sqlx::postgres::PgArguments>,
{
    let query = sqlx::query_as(AssertSqlSafe(format!(
        "select {TENANT_COLUMNS} from public.tenants where {condition} and status <> 'deleted'"
    )));
    Ok(bind(query).fetch_optional(pool).await?.map(Arc::new))
}

/// Lowercases, strips the port and a trailing dot; `None` for anything that is not a
/// plausible DNS name.
fn normalize_host(raw: &str) -> Option<String> {
    let host = raw.trim();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_are_normalized_or_refused() {
        assert_eq!(normalize_host("Chat.Example.COM:8081").as_deref(), Some("chat.example.com"));
        assert_eq!(normalize_host("example.com.").as_deref(), Some("example.com"));
        for bad in ["", "a..b", "x'; drop table tenants;--", "a b", "[::1]:80", "é.com", "a_b.com"]
        {
            assert_eq!(normalize_host(bad), None, "{bad}");
        }
    }
}

//! The platform audit log's rows (`public.platform_audit`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::platform::PlatformSession;

/// Records `action` by `actor` (inside the caller's transaction when given one).
#[tracing::instrument(name = "db.platform_audit.create", skip_all)]
pub async fn record<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: &PlatformSession,
    action: &str,
    tenant_id: Option<i64>,
    target: &str,
    detail: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into public.platform_audit (actor_id, actor_email, action, tenant_id, target, detail, ip)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor.user_id)
    .bind(&actor.email)
    .bind(action)
    .bind(tenant_id)
    .bind(target)
    .bind(detail)
    .bind(&actor.ip)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    /// Matches the action, the target or the admin's email (substring, any case).
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<i64>,
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub actor_email: String,
    pub action: String,
    pub tenant_id: Option<i64>,
    /// The merchant's name while it still exists.
    pub tenant_name: Option<String>,
    pub target: String,
    pub detail: Value,
    pub ip: Option<String>,
}

#[derive(Serialize)]
pub struct AuditPage {
    pub entries: Vec<Entry>,
    pub next_before: Option<i64>,
}

/// One page of entries, newest first.
#[tracing::instrument(name = "db.platform_audit.search", skip_all)]
pub async fn search(db: &sqlx::PgPool, q: &AuditQuery) -> sqlx::Result<AuditPage> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let pattern = crate::http::input::search_pattern(q.q.as_deref());
    let entries: Vec<Entry> = sqlx::query_as(
        "select a.id, a.created_at, a.actor_email, a.action, a.tenant_id, t.name as tenant_name,
                a.target, a.detail, a.ip
         from public.platform_audit a left join public.tenants t on t.id = a.tenant_id
         where a.id < $1
           and ($2::text is null or a.action ilike $2 or a.target ilike $2 or a.actor_email ilike $2
                or t.name ilike $2 or t.ent_id ilike $2)
           and ($3::bigint is null or a.tenant_id = $3)
         order by a.id desc limit $4",
    )
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(pattern)
    .bind(q.tenant_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let next_before =
        (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(AuditPage { entries, next_before })
}

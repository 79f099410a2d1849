//! A merchant's life as the platform manages it: suspend and resume, soft delete with a grace
//! period (restorable until then), and the purge that removes a deleted merchant's schema,
//! uploads and accounts — run by a background job once the grace period is over, or at once
//! when an admin confirms a hard delete.
//!
//! Suspending or deleting closes the merchant's live sockets (a `notice` frame with code
//! `tenant_suspended`, then close code 4004); from then on its API answers 403
//! `tenant_suspended` (deleted: 404) and its chat page shows "service paused" (deleted: not
//! found).

use super::Platform;
use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tenants::{TenantId, TenantStatus};

use crate::{
    http::AppError,
    realtime::{
        hub::{self, encode},
        protocol::ServerFrame,
    },
};

/// Tells the merchant's live connections why they are closing, then closes them.
fn close_connections(state: &Platform, tenant: TenantId, message: &str) -> usize {
    let notice = ServerFrame::Notice { code: "tenant_suspended", message: message.to_owned() };
    state.hub.close_tenant(tenant, &encode(&notice), hub::SUSPENDED)
}

/// Suspends an active merchant. Returns false if it was not active.
pub async fn suspend(state: &Platform, tenant: TenantId) -> Result<bool, AppError> {
    let current = state.door.tenants.by_id(tenant).await?.ok_or(AppError::NotFound)?;
    if current.status != TenantStatus::Active {
        return Ok(false);
    }
    state.door.tenants.set_status(tenant, TenantStatus::Suspended).await?;
    let closed = close_connections(state, tenant, "This service is paused.");
    tracing::info!(tenant = tenant.0, closed, "merchant suspended");
    Ok(true)
}

/// Resumes a suspended merchant. Returns false if it was not suspended.
pub async fn resume(state: &Platform, tenant: TenantId) -> Result<bool, AppError> {
    let current = state.door.tenants.by_id(tenant).await?.ok_or(AppError::NotFound)?;
    if current.status != TenantStatus::Suspended {
        return Ok(false);
    }
    state.door.tenants.set_status(tenant, TenantStatus::Active).await?;
    Ok(true)
}

/// Marks a live merchant deleted; its data is purged after the configured grace period.
/// Returns when that will be, or `None` if no live merchant has this id.
pub async fn soft_delete(
    state: &Platform,
    tenant: TenantId,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
    let purge_after: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "update public.tenants
         set status = 'deleted', deleted_at = now(), updated_at = now(),
             purge_after = now() + make_interval(days => $2)
         where id = $1 and status <> 'deleted'
         returning purge_after",
    )
    .bind(tenant.0)
    .bind(i32::try_from(state.config.deleted_grace_days).unwrap_or(30))
    .fetch_optional(&state.door.db)
    .await?;
    state.caches.invalidate(crate::realtime::bus::Invalidation::Tenants).await;
    if purge_after.is_some() {
        close_connections(state, tenant, "This service is no longer available.");
    }
    Ok(purge_after)
}

/// Brings a deleted merchant back (before its purge), as it was before: suspended merchants
/// stay suspended. Returns false if it is not awaiting purge.
pub async fn restore(state: &Platform, tenant: TenantId) -> Result<bool, AppError> {
    let done = sqlx::query(
        "update public.tenants
         set status = case when suspended_at is null then 'active' else 'suspended' end,
             deleted_at = null, purge_after = null, updated_at = now()
         where id = $1 and status = 'deleted'",
    )
    .bind(tenant.0)
    .execute(&state.door.db)
    .await?
    .rows_affected()
        == 1;
    state.caches.invalidate(crate::realtime::bus::Invalidation::Tenants).await;
    Ok(done)
}

/// What a purge removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Purged {
    pub objects: usize,
    pub users: u64,
}

/// Removes a deleted merchant for good: its schema, its row (memberships and domains go with
/// it), users left without any workspace (unless they are platform admins), its usage
/// counters, then its uploads. `only_if_due` leaves merchants whose grace period is not
/// over. Returns `None` when there was nothing to purge (not deleted, or already purged,
/// possibly by another node: rows are claimed with `skip locked`).
pub async fn purge(
    pool: &PgPool,
    storage: &crate::upload::Storage,
    tenant: TenantId,
    only_if_due: bool,
) -> anyhow::Result<Option<Purged>> {
    let mut tx = pool.begin().await?;
    let claimed: Option<i64> = sqlx::query_scalar(
        "select id from public.tenants
         where id = $1 and status = 'deleted' and (not $2 or purge_after <= now())
         for update skip locked",
    )
    .bind(tenant.0)
    .bind(only_if_due)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        return Ok(None);
    }
    tenants::drop_schema(&mut tx, tenant).await?;
    let members: Vec<i64> =
        sqlx::query_scalar("select user_id from public.tenant_members where tenant_id = $1")
            .bind(tenant.0)
            .fetch_all(&mut *tx)
            .await?;
    sqlx::query("delete from public.tenants where id = $1")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from public.usage_daily where tenant_id = $1")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
    let users = sqlx::query(
        "delete from public.users u
         where u.id = any($1)
           and not exists (select 1 from public.tenant_members m where m.user_id = u.id)
           and not exists (select 1 from public.platform_admins p where p.user_id = u.id)",
    )
    .bind(&members)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    // After the commit: no row points at these objects any more.
    let objects = storage.remove_tenant(tenant).await.unwrap_or_else(|e| {
        tracing::warn!(tenant = tenant.0, error = %e, "removing a purged merchant's uploads failed");
        0
    });
    tracing::info!(tenant = tenant.0, objects, users, "merchant purged");
    Ok(Some(Purged { objects, users }))
}

/// Purges every deleted merchant whose grace period is over. Returns how many.
pub async fn purge_due(pool: &PgPool, storage: &crate::upload::Storage) -> anyhow::Result<usize> {
    // Redeemed WebSocket tickets past their expiry (several nodes record them).
    sqlx::query("delete from public.used_tickets where expires_at < now() - interval '1 minute'")
        .execute(pool)
        .await?;
    // Sessions that ended or expired a month ago, and old windows of the visitor limits.
    crate::auth::sessions::purge(pool).await?;
    crate::http::rate::purge(pool).await?;
    crate::auth::signup::purge(pool).await?;
    let due: Vec<i64> = sqlx::query_scalar(
        "select id from public.tenants where status = 'deleted' and purge_after <= now() order by purge_after limit 100",
    )
    .fetch_all(pool)
    .await?;
    let mut purged = 0;
    for id in due {
        if purge(pool, storage, TenantId(id), true).await?.is_some() {
            purged += 1;
        }
    }
    Ok(purged)
}

/// Keeps `spare_schemas` tenant schemas built ahead of sign-up (see `tenants::spares`),
/// topped up every `spare_interval_secs` until shutdown.
pub fn spawn_spares_job(state: Platform) -> Option<tokio::task::JoinHandle<()>> {
    let want = state.config.spare_schemas;
    if want == 0 {
        return None;
    }
    let (pool, migrator) = (state.door.db.clone(), Arc::clone(&state.migrator));
    let interval = Duration::from_secs(state.config.spare_interval_secs.max(1));
    Some(crate::background::every(
        "spares",
        interval,
        state.hub.shutdown_token(),
        None,
        move || {
            let (pool, migrator) = (pool.clone(), Arc::clone(&migrator));
            async move {
                let report = tenants::spares::refill(&pool, &migrator, want).await?;
                Ok(report.built + report.dropped)
            }
        },
    ))
}

/// Runs [`purge_due`] every `purge_interval_secs` until shutdown.
pub fn spawn_purge_job(state: Platform) -> tokio::task::JoinHandle<()> {
    let (pool, storage) = (state.door.db.clone(), state.storage.clone());
    let interval = Duration::from_secs(state.config.purge_interval_secs);
    crate::background::every("purge", interval, state.hub.shutdown_token(), None, move || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move { purge_due(&pool, &storage).await }
    })
}

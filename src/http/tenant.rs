//! Resolving the tenant of an unauthenticated request (visitor links, the widget): from the
//! `ent_id` query parameter, else from the Host. Unknown → 404 `tenant_not_found`;
//! suspended → 403 `tenant_suspended` (a "service paused" page in browsers). Nothing of the
//! tenant's data is touched before this succeeds.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use tenants::{EntId, Registry, Tenant, TenantStatus};

use super::AppError;

/// A tenant named by the request (an `ent_id` query parameter or the Host) that is open to
/// visitors: unknown is 404, paused (suspended by the platform, or its subscription
/// inactive) is 403 `tenant_suspended`.
#[derive(Clone, Debug)]
pub struct ResolvedTenant(pub Arc<Tenant>);

impl<S> FromRequestParts<S> for ResolvedTenant
where
    S: Send + Sync,
    Arc<Registry>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let registry = Arc::<Registry>::from_ref(state);
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let tenant = match pairs.iter().find(|(k, _)| k == "ent_id") {
            Some((_, raw)) => {
                let ent_id = EntId::parse(raw).map_err(|_| AppError::TenantNotFound)?;
                registry.by_ent_id(&ent_id).await?
            }
            None => match parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
                Some(host) => registry.by_host(host).await?,
                None => None,
            },
        };
        let tenant = tenant.ok_or(AppError::TenantNotFound)?;
        if paused_for_visitors(&tenant) {
            return Err(AppError::TenantSuspended);
        }
        tracing::Span::current().record("tenant", tenant.id.0);
        Ok(Self(tenant))
    }
}

/// Whether visitors get the "service paused" answer: the platform suspended the merchant,
/// or its subscription is inactive (billing read-only; an unknown state reads as active, so
/// that a value written by a newer version locks no one out).
pub fn paused_for_visitors(tenant: &Tenant) -> bool {
    tenant.status == TenantStatus::Suspended
        || billing::BillingStatus::parse(&tenant.billing_status).is_some_and(|s| s.is_read_only())
}

//! Resolving the tenant of an unauthenticated request (visitor links, the widget): from the
//! `ent_id` query parameter, else from the Host. Unknown → 404 `tenant_not_found`;
//! suspended → 403 `tenant_suspended` (a "service paused" page in browsers). Nothing of the
//! tenant's data is touched before this succeeds.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use tenants::{EntId, Tenant};

use super::{AppError, AppState};

/// A tenant named by the request (an `ent_id` query parameter or the Host) that is open to
/// visitors: unknown is 404, paused (suspended by the platform, or its subscription
/// inactive) is 403 `tenant_suspended`.
#[derive(Clone, Debug)]
pub struct ResolvedTenant(pub Arc<Tenant>);

impl FromRequestParts<AppState> for ResolvedTenant {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let tenant = match pairs.iter().find(|(k, _)| k == "ent_id") {
            Some((_, raw)) => {
                let ent_id = EntId::parse(raw).map_err(|_| AppError::TenantNotFound)?;
                state.tenants.by_ent_id(&ent_id).await?
            }
            None => match parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
                Some(host) => state.tenants.by_host(host).await?,
                None => None,
            },
        };
        let tenant = tenant.ok_or(AppError::TenantNotFound)?;
        if crate::merchant::subscription::paused_for_visitors(&tenant) {
            return Err(AppError::TenantSuspended);
        }
        tracing::Span::current().record("tenant", tenant.id.0);
        Ok(Self(tenant))
    }
}

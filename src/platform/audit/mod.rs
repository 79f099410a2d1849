//! The platform audit log: every console login and every action a platform admin takes on a
//! merchant or on the platform (suspensions, plan changes, exports, deletions, support
//! sessions, announcements, system settings). Merchants' own admin actions stay in each
//! merchant's `audit_log` and show on that merchant's page in the console.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, Query, State},
};
use sqlx::PgPool;

use super::PlatformSession;
use crate::{
    auth::ctx::Door,
    http::{AppError, Routes, Scope},
};

mod store;
pub use store::{AuditPage, AuditQuery, Entry, record, search};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    PgPool: FromRef<S>,
{
    Routes::new().get("/api/platform/v1/audit", Scope::Platform, list)
}

async fn list(
    State(db): State<PgPool>,
    _admin: PlatformSession,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, AppError> {
    Ok(Json(search(&db, &q).await?))
}

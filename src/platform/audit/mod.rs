//! The platform audit log: every console login and every action a platform admin takes on a
//! merchant or on the platform (suspensions, plan changes, exports, deletions, support
//! sessions, announcements, system settings). Merchants' own admin actions stay in each
//! merchant's `audit_log` and show on that merchant's page in the console.

use super::PlatformSession;
use crate::http::{AppError, Routes, Scope};
use crate::startup::AppState;
use axum::{
    Json,
    extract::{Query, State},
};

mod store;
pub use store::{AuditPage, AuditQuery, Entry, record, search};

pub fn routes() -> Routes<AppState> {
    Routes::new().get("/api/platform/v1/audit", Scope::Platform, list)
}

async fn list(
    State(state): State<AppState>,
    _admin: PlatformSession,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, AppError> {
    Ok(Json(search(&state.db, &q).await?))
}

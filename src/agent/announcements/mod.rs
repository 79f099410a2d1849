//! Platform announcements as merchants' agents see them: published by super-admins (their
//! editor is in the platform console) to everyone or to merchants on some plans, shown on
//! the agent's home page until that person dismisses them, and pushed live to connected
//! agents when published (`announcement` frames).

use crate::auth::ctx::Door;
use crate::ids::AnnouncementId;
use axum::extract::FromRef;
use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use sqlx::PgPool;
use std::sync::Arc;

use crate::{
    auth::session::AgentSession,
    http::{AppError, Routes, Scope, extract::PathId},
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    PgPool: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/announcements", Scope::Tenant, list)
        .post("/api/v1/announcements/{id}/dismiss", Scope::Tenant, dismiss)
        .writable_when_read_only()
}

pub use crate::realtime::protocol::Announcement;

pub mod store;
pub use store::for_agent;

#[derive(Serialize)]
struct List {
    announcements: Vec<Announcement>,
}

async fn list(State(db): State<PgPool>, session: AgentSession) -> Result<Json<List>, AppError> {
    let announcements = for_agent(&db, session.user_id, &session.tenant.plan, 20).await?;
    Ok(Json(List { announcements }))
}

/// Hides an announcement for this person (on every device). One not meant for them is 404.
async fn dismiss(
    State(db): State<PgPool>,
    session: AgentSession,
    PathId(id): PathId<AnnouncementId>,
) -> Result<StatusCode, AppError> {
    let plan = &session.tenant.plan;
    // Already dismissed is fine; not visible to this merchant is not found.
    if !store::dismiss(&db, session.user_id, plan, id).await?
        && !store::visible(&db, id, plan).await?
    {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

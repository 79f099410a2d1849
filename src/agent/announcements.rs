//! Platform announcements as merchants' agents see them (published by super-admins; their
//! editor lives in the platform console).

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::{
    auth::session::AgentSession,
    http::{AppError, AppState, Routes, Scope},
};

pub fn routes() -> Routes {
    Routes::new().get("/api/v1/announcements", Scope::Tenant, list)
}

#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct Announcement {
    pub id: i64,
    pub title: String,
    /// Plain text; pages escape it.
    pub body: String,
    pub published_at: DateTime<Utc>,
}

/// The latest published announcements for merchants, newest first.
pub async fn latest(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Announcement>> {
    sqlx::query_as(
        "select id, title, body, published_at from public.announcements
         where published_at is not null and published_at <= now() and audience in ('all', 'merchants')
         order by published_at desc, id desc limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Serialize)]
struct List {
    announcements: Vec<Announcement>,
}

async fn list(
    State(state): State<AppState>,
    _session: AgentSession,
) -> Result<Json<List>, AppError> {
    Ok(Json(List { announcements: latest(&state.db, 20).await? }))
}

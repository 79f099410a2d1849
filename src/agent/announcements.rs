//! Platform announcements as merchants' agents see them: published by super-admins (their
//! editor is in the platform console) to everyone or to merchants on some plans, shown on
//! the agent's home page until that person dismisses them, and pushed live to connected
//! agents when published (`announcement` frames).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use sqlx::PgPool;

use crate::{
    auth::session::AgentSession,
    http::{AppError, Routes, Scope, input::path_id},
    startup::AppState,
};

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/v1/announcements", Scope::Tenant, list)
        .post("/api/v1/announcements/{id}/dismiss", Scope::Tenant, dismiss)
        .writable_when_read_only()
}

pub use crate::realtime::protocol::Announcement;

/// The condition for "published and meant for a merchant on plan `$2`".
const VISIBLE: &str = "published_at is not null and published_at <= now()
    and (plans is null or $2 = any(plans))";

/// The published announcements for someone on a merchant with `plan` that they have not
/// dismissed, newest first.
pub async fn for_agent(
    pool: &PgPool,
    user_id: i64,
    plan: &str,
    limit: i64,
) -> sqlx::Result<Vec<Announcement>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select id, title, body, published_at from public.announcements a
         where {VISIBLE}
           and not exists (select 1 from public.announcement_dismissals d
                           where d.announcement_id = a.id and d.user_id = $1)
         order by published_at desc, id desc limit $3"
    )))
    .bind(user_id)
    .bind(plan)
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
    session: AgentSession,
) -> Result<Json<List>, AppError> {
    let announcements = for_agent(&state.db, session.user_id, &session.tenant.plan, 20).await?;
    Ok(Json(List { announcements }))
}

/// Hides an announcement for this person (on every device). One not meant for them is 404.
async fn dismiss(
    State(state): State<AppState>,
    session: AgentSession,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = path_id(&id)?;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into public.announcement_dismissals (announcement_id, user_id)
         select id, $1 from public.announcements where id = $3 and {VISIBLE}
         on conflict do nothing"
    )))
    .bind(session.user_id)
    .bind(&session.tenant.plan)
    .bind(id)
    .execute(&state.db)
    .await?
    .rows_affected();
    if done == 0 {
        // Already dismissed is fine; not visible to this merchant is not found.
        let visible: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select exists (select 1 from public.announcements where id = $1 and {VISIBLE})"
        )))
        .bind(id)
        .bind(&session.tenant.plan)
        .fetch_one(&state.db)
        .await?;
        if !visible {
            return Err(AppError::NotFound);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

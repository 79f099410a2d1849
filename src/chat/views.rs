//! The Conversations page (`/app/conversations`): every conversation of the merchant with
//! filters (status, assignee, tag, rating, dates, unanswered, leads) over
//! `GET /api/v1/conversations`, and each agent's saved views of it.

use std::sync::Arc;

use askama::Template;
use axum::{
    Json,
    extract::{FromRef, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};

use super::store::views::{self, SavedView};
use crate::{
    agent::shell::AppShell,
    auth::ctx::{Agent, Ctx, Door},
    config::Config,
    http::{
        AppError, Page, Routes, Scope, csrf::CsrfToken, extract::ApiJson, extract::PathId,
        input::text,
    },
    i18n::Lang,
    ids::SavedViewId,
};

/// The most views one agent keeps.
const MAX_VIEWS: i64 = 30;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Config>: FromRef<S>,
{
    Routes::new()
        .get("/app/conversations", Scope::Tenant, page)
        .get("/api/v1/views", Scope::Tenant, list)
        .post("/api/v1/views", Scope::Tenant, create)
        .writable_when_read_only()
        .delete("/api/v1/views/{id}", Scope::Tenant, delete)
        .writable_when_read_only()
}

#[derive(Template)]
#[template(path = "app/conversations.html")]
struct ConversationsPage {
    lang: Lang,
    shell: AppShell,
}

async fn page(
    State(door): State<Arc<Door>>,
    State(config): State<Arc<Config>>,
    lang: Lang,
    csrf: CsrfToken,
    ctx: Result<Ctx<Agent>, AppError>,
) -> Result<Response, AppError> {
    let Ctx { session, tx, .. } = match ctx {
        Ok(ctx) => ctx,
        Err(AppError::Unauthorized) => {
            return Ok(Redirect::to("/login?next=/app/conversations").into_response());
        }
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    let shell = AppShell::new((&door, &config), &session, lang, &csrf, "conversations").await?;
    Ok((csrf, Page(ConversationsPage { lang, shell })).into_response())
}

#[derive(Serialize)]
struct ViewList {
    views: Vec<SavedView>,
}

/// The caller's saved views, oldest first.
async fn list(Ctx { session, mut tx, .. }: Ctx<Agent>) -> Result<Json<ViewList>, AppError> {
    let views = views::list(&mut tx, session.agent.id.0).await?;
    tx.commit().await?;
    Ok(Json(ViewList { views }))
}

#[derive(Deserialize)]
struct NewView {
    name: String,
    query: String,
}

/// Saves the page's filters under a name (the caller's own; at most 30).
async fn create(
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    ApiJson(req): ApiJson<NewView>,
) -> Result<Response, AppError> {
    let name = text("name", &req.name, 60, true, false)?;
    let query = text("query", &req.query, 500, false, false)?;
    if query.contains(['#', ' ']) || !query.split('&').all(|p| p.is_empty() || p.contains('=')) {
        return Err(AppError::field("query", "the filters as a query string (a=1&b=2)"));
    }
    let agent = session.agent.id.0;
    if views::count(&mut tx, agent).await? >= MAX_VIEWS {
        return Err(AppError::conflict("too_many", None, "an agent keeps at most 30 views"));
    }
    let view = views::create(&mut tx, agent, &name, &query).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Deletes one of the caller's views (another agent's is a 404).
async fn delete(
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    PathId(id): PathId<SavedViewId>,
) -> Result<StatusCode, AppError> {
    if !views::delete(&mut tx, session.agent.id.0, id).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

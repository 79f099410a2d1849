//! Quick replies: canned answers agents insert with `/` in the composer. Every agent reads
//! them; admins write them.

mod store;

use crate::auth::ctx::Door;
use crate::ids::QuickReplyId;
use axum::extract::FromRef;
use axum::{
    Json,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use self::store::{Change, QuickReply};
use crate::{
    auth::ctx::{Admin, Agent, Ctx},
    http::{
        AppError, Routes, Scope,
        extract::ApiJson,
        extract::PathId,
        input::{position, text},
    },
};

/// A merchant keeps at most this many.
const MAX_PER_TENANT: i64 = 1000;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/quick_replies", Scope::Tenant, list)
        .post("/api/v1/quick_replies", Scope::Tenant, create)
        .admin()
        .patch("/api/v1/quick_replies/{id}", Scope::Tenant, update)
        .admin()
        .delete("/api/v1/quick_replies/{id}", Scope::Tenant, remove)
        .admin()
}

#[derive(Deserialize)]
struct ListQuery {
    /// Matches the title, the body or the group (substring, any case).
    #[serde(default)]
    q: Option<String>,
}

#[derive(Serialize)]
struct List {
    quick_replies: Vec<QuickReply>,
}

async fn list(
    Ctx { mut tx, .. }: Ctx<Agent>,
    Query(q): Query<ListQuery>,
) -> Result<Json<List>, AppError> {
    let pattern = crate::http::input::search_pattern(q.q.as_deref());
    let quick_replies = store::list(&mut tx, pattern.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(List { quick_replies }))
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    position: Option<i32>,
}

fn check(f: Fields) -> Result<Change, AppError> {
    Ok(Change {
        group: f.group.as_deref().map(|g| text("group", g, 40, false, false)).transpose()?,
        title: f.title.as_deref().map(|t| text("title", t, 80, true, false)).transpose()?,
        body: f.body.as_deref().map(|b| text("body", b, 5000, true, true)).transpose()?,
        position: position(f.position)?,
    })
}

async fn create(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Response, AppError> {
    let f = check(fields)?;
    if f.title.is_none() || f.body.is_none() {
        return Err(AppError::field("title", "title and body are required"));
    }
    if store::count(&mut tx).await? >= MAX_PER_TENANT {
        return Err(AppError::conflict(
            "too_many",
            None,
            "a merchant keeps at most 1000 quick replies",
        ));
    }
    let created = store::create(&mut tx, f).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "quick_reply.create",
        &created.title,
        serde_json::json!({}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn update(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<QuickReplyId>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Json<QuickReply>, AppError> {
    let f = check(fields)?;
    let updated = store::update(&mut tx, id, f).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "quick_reply.update",
        &updated.title,
        serde_json::json!({}),
    )
    .await?;
    Ok(Json(updated))
}

async fn remove(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<QuickReplyId>,
) -> Result<StatusCode, AppError> {
    let title = store::delete(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "quick_reply.delete",
        &title,
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

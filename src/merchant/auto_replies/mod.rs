//! Keyword auto-replies: when a visitor's message matches a rule (the whole message, or a
//! keyword anywhere in it, any case), the service answers with the rule's reply. Admins
//! manage them; the chat engine reads them through its per-tenant automation cache, which
//! every change here invalidates.

mod store;

use crate::auth::ctx::Door;
use crate::ids::AutoReplyId;
use crate::realtime::bus::{Caches, Invalidation};
use axum::extract::FromRef;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use self::store::{Change, Rule};
use crate::{
    auth::ctx::{Admin, Ctx},
    auth::session::AgentSession,
    http::{
        AppError, Routes, Scope,
        extract::ApiJson,
        extract::PathId,
        input::{position, text},
    },
};

const MAX_PER_TENANT: i64 = 500;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Caches: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/auto_replies", Scope::Tenant, list)
        .admin()
        .post("/api/v1/auto_replies", Scope::Tenant, create)
        .admin()
        .patch("/api/v1/auto_replies/{id}", Scope::Tenant, update)
        .admin()
        .delete("/api/v1/auto_replies/{id}", Scope::Tenant, remove)
        .admin()
}

#[derive(Serialize)]
struct List {
    auto_replies: Vec<Rule>,
}

async fn list(Ctx { mut tx, .. }: Ctx<Admin>) -> Result<Json<List>, AppError> {
    let auto_replies = store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(List { auto_replies }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    keyword: Option<String>,
    match_kind: Option<String>,
    reply: Option<String>,
    enabled: Option<bool>,
    position: Option<i32>,
}

fn check(f: Fields) -> Result<Change, AppError> {
    Ok(Change {
        keyword: f.keyword.as_deref().map(|k| text("keyword", k, 100, true, false)).transpose()?,
        match_kind: f
            .match_kind
            .as_deref()
            .map(|m| match m {
                "contains" => Ok("contains"),
                "exact" => Ok("exact"),
                _ => Err(AppError::field("match_kind", "one of contains, exact")),
            })
            .transpose()?,
        reply: f.reply.as_deref().map(|r| text("reply", r, 2000, true, true)).transpose()?,
        enabled: f.enabled,
        position: position(f.position)?,
    })
}

async fn changed(caches: &Caches, session: &AgentSession) {
    caches.invalidate(Invalidation::Automation(session.tenant.id.0)).await;
}

async fn create(
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Response, AppError> {
    let f = check(fields)?;
    if f.keyword.is_none() || f.reply.is_none() {
        return Err(AppError::field("keyword", "keyword and reply are required"));
    }
    if store::count(&mut tx).await? >= MAX_PER_TENANT {
        return Err(AppError::conflict(
            "too_many",
            None,
            "a merchant keeps at most 500 auto-replies",
        ));
    }
    let rule = store::create(&mut tx, f).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "auto_reply.create",
        &rule.keyword,
        serde_json::json!({}),
    )
    .await?;
    changed(&caches, &session).await;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

async fn update(
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<AutoReplyId>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Json<Rule>, AppError> {
    let f = check(fields)?;
    let rule = store::update(&mut tx, id, f).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "auto_reply.update",
        &rule.keyword,
        serde_json::json!({ "enabled": rule.enabled }),
    )
    .await?;
    changed(&caches, &session).await;
    Ok(Json(rule))
}

async fn remove(
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<AutoReplyId>,
) -> Result<StatusCode, AppError> {
    let keyword = store::delete(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "auto_reply.delete",
        &keyword,
        serde_json::json!({}),
    )
    .await?;
    changed(&caches, &session).await;
    Ok(StatusCode::NO_CONTENT)
}

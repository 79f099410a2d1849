//! Quick replies: canned answers agents insert with `/` in the composer. Every agent reads
//! them; admins write them.

mod store;

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, Query, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use self::store::{Change, QuickReply};
use crate::{
    auth::ctx::{Admin, Agent, Ctx, Door},
    http::{
        AppError, Routes, Scope,
        extract::{ApiJson, PathId},
        input::{position, text},
    },
    ids::QuickReplyId,
    merchant::crud::{self, Kept},
    realtime::bus::Caches,
};

/// A merchant keeps at most this many.
const MAX_PER_TENANT: i64 = 1000;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Caches: FromRef<S>,
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

/// The team's quick replies, as a list admins keep.
enum QuickReplies {}

impl Kept for QuickReplies {
    type Id = QuickReplyId;
    type New = Change;
    type Change = Change;
    type Row = QuickReply;
    const NOUN: &'static str = "quick_reply";
    const MAX: i64 = MAX_PER_TENANT;
    const PLURAL: &'static str = "quick replies";

    fn label(row: &QuickReply) -> &str {
        &row.title
    }
    async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
        store::count(conn).await
    }
    async fn insert(conn: &mut PgConnection, new: Change) -> sqlx::Result<QuickReply> {
        store::create(conn, new).await
    }
    async fn update(
        conn: &mut PgConnection,
        id: QuickReplyId,
        change: Change,
    ) -> sqlx::Result<Option<QuickReply>> {
        store::update(conn, id, change).await
    }
    async fn delete(conn: &mut PgConnection, id: QuickReplyId) -> sqlx::Result<Option<String>> {
        store::delete(conn, id).await
    }
}

async fn create(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Response, AppError> {
    let f = check(fields)?;
    if f.title.is_none() || f.body.is_none() {
        return Err(AppError::field("title", "title and body are required"));
    }
    crud::create::<QuickReplies>(ctx, &caches, f).await
}

async fn update(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    PathId(id): PathId<QuickReplyId>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Json<QuickReply>, AppError> {
    crud::update::<QuickReplies>(ctx, &caches, id, check(fields)?).await
}

async fn remove(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    PathId(id): PathId<QuickReplyId>,
) -> Result<StatusCode, AppError> {
    crud::remove::<QuickReplies>(ctx, &caches, id).await
}

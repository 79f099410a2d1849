//! Keyword auto-replies: when a visitor's message matches a rule (the whole message, or a
//! keyword anywhere in it, any case), the service answers with the rule's reply. Admins
//! manage them; the chat engine reads them through its per-tenant automation cache, which
//! every change here invalidates.

mod store;

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use tenants::TenantId;

use self::store::{Change, Rule};
use crate::{
    auth::ctx::{Admin, Ctx, Door},
    http::{
        AppError, Routes, Scope,
        extract::{ApiJson, PathId},
        input::{position, text},
    },
    ids::AutoReplyId,
    merchant::crud::{self, Action, Kept},
    realtime::bus::{Caches, Invalidation},
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

/// The merchant's keyword rules, as a list admins keep; the chat engine caches them.
enum AutoReplies {}

impl Kept for AutoReplies {
    type Id = AutoReplyId;
    type New = Change;
    type Change = Change;
    type Row = Rule;
    const NOUN: &'static str = "auto_reply";
    const MAX: i64 = MAX_PER_TENANT;
    const PLURAL: &'static str = "auto-replies";

    fn label(row: &Rule) -> &str {
        &row.keyword
    }
    fn detail(row: &Rule, action: Action) -> Value {
        match action {
            Action::Create => json!({}),
            Action::Update => json!({ "enabled": row.enabled }),
        }
    }
    fn cached(tenant: TenantId) -> Option<Invalidation> {
        Some(Invalidation::Automation(tenant.0))
    }
    async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
        store::count(conn).await
    }
    async fn insert(conn: &mut PgConnection, new: Change) -> sqlx::Result<Rule> {
        store::create(conn, new).await
    }
    async fn update(
        conn: &mut PgConnection,
        id: AutoReplyId,
        change: Change,
    ) -> sqlx::Result<Option<Rule>> {
        store::update(conn, id, change).await
    }
    async fn delete(conn: &mut PgConnection, id: AutoReplyId) -> sqlx::Result<Option<String>> {
        store::delete(conn, id).await
    }
}

async fn create(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Response, AppError> {
    let f = check(fields)?;
    if f.keyword.is_none() || f.reply.is_none() {
        return Err(AppError::field("keyword", "keyword and reply are required"));
    }
    crud::create::<AutoReplies>(ctx, &caches, f).await
}

async fn update(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    PathId(id): PathId<AutoReplyId>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Json<Rule>, AppError> {
    crud::update::<AutoReplies>(ctx, &caches, id, check(fields)?).await
}

async fn remove(
    State(caches): State<Caches>,
    ctx: Ctx<Admin>,
    PathId(id): PathId<AutoReplyId>,
) -> Result<StatusCode, AppError> {
    crud::remove::<AutoReplies>(ctx, &caches, id).await
}

//! Keyword auto-replies: when a visitor's message matches a rule (the whole message, or a
//! keyword anywhere in it, any case), the service answers with the rule's reply. Admins
//! manage them; the chat engine reads them through its per-tenant automation cache, which
//! every change here invalidates.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::ctx::{Admin, Ctx},
    auth::session::AgentSession,
    http::{
        AppError, Routes, Scope,
        extract::ApiJson,
        input::{path_id, position, text},
    },
    startup::AppState,
};

const MAX_PER_TENANT: i64 = 500;

pub fn routes() -> Routes<AppState> {
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

#[derive(Serialize, sqlx::FromRow)]
struct Rule {
    id: i64,
    keyword: String,
    /// `contains` (the keyword anywhere) or `exact` (the whole message).
    match_kind: String,
    reply: String,
    enabled: bool,
    position: i32,
}

const COLUMNS: &str = "id, keyword, match_kind, reply, enabled, position";

#[derive(Serialize)]
struct List {
    auto_replies: Vec<Rule>,
}

async fn list(Ctx { mut tx, .. }: Ctx<Admin>) -> Result<Json<List>, AppError> {
    let auto_replies = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from auto_replies order by position, id"
    )))
    .fetch_all(&mut *tx)
    .await?;
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

struct Checked {
    keyword: Option<String>,
    match_kind: Option<&'static str>,
    reply: Option<String>,
    enabled: Option<bool>,
    position: Option<i32>,
}

fn check(f: Fields) -> Result<Checked, AppError> {
    Ok(Checked {
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

async fn changed(state: &AppState, session: &AgentSession) {
    state.invalidate(crate::realtime::bus::Invalidation::Automation(session.tenant.id.0)).await;
}

async fn create(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Response, AppError> {
    let f = check(fields)?;
    let (Some(keyword), Some(reply)) = (f.keyword, f.reply) else {
        return Err(AppError::field("keyword", "keyword and reply are required"));
    };
    let count: i64 =
        sqlx::query_scalar("select count(*) from auto_replies").fetch_one(&mut *tx).await?;
    if count >= MAX_PER_TENANT {
        return Err(AppError::conflict(
            "too_many",
            None,
            "a merchant keeps at most 500 auto-replies",
        ));
    }
    let rule: Rule = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into auto_replies (keyword, match_kind, reply, enabled, position)
         values ($1, $2, $3, $4, coalesce($5, (select coalesce(max(position) + 1, 0) from auto_replies)))
         returning {COLUMNS}"
    )))
    .bind(keyword)
    .bind(f.match_kind.unwrap_or("contains"))
    .bind(reply)
    .bind(f.enabled.unwrap_or(true))
    .bind(f.position)
    .fetch_one(&mut *tx)
    .await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "auto_reply.create",
        &rule.keyword,
        serde_json::json!({}),
    )
    .await?;
    changed(&state, &session).await;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

async fn update(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Json<Rule>, AppError> {
    let id = path_id(&id)?;
    let f = check(fields)?;
    let rule: Option<Rule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update auto_replies set keyword = coalesce($2, keyword), match_kind = coalesce($3, match_kind),
                reply = coalesce($4, reply), enabled = coalesce($5, enabled), position = coalesce($6, position)
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(f.keyword)
    .bind(f.match_kind)
    .bind(f.reply)
    .bind(f.enabled)
    .bind(f.position)
    .fetch_optional(&mut *tx)
    .await?;
    let rule = rule.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "auto_reply.update",
        &rule.keyword,
        serde_json::json!({ "enabled": rule.enabled }),
    )
    .await?;
    changed(&state, &session).await;
    Ok(Json(rule))
}

async fn remove(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = path_id(&id)?;
    let keyword: Option<String> =
        sqlx::query_scalar("delete from auto_replies where id = $1 returning keyword")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let keyword = keyword.ok_or(AppError::NotFound)?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "auto_reply.delete",
        &keyword,
        serde_json::json!({}),
    )
    .await?;
    changed(&state, &session).await;
    Ok(StatusCode::NO_CONTENT)
}

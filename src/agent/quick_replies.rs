//! Quick replies: canned answers agents insert with `/` in the composer. Every agent reads
//! them; admins write them.

use axum::{
    Json,
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::ctx::{Admin, Agent, Ctx},
    http::{
        AppError, Routes, Scope,
        extract::ApiJson,
        input::{like_pattern, path_id, position, text},
    },
    startup::AppState,
};

/// A merchant keeps at most this many.
const MAX_PER_TENANT: i64 = 1000;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/v1/quick_replies", Scope::Tenant, list)
        .post("/api/v1/quick_replies", Scope::Tenant, create)
        .admin()
        .patch("/api/v1/quick_replies/{id}", Scope::Tenant, update)
        .admin()
        .delete("/api/v1/quick_replies/{id}", Scope::Tenant, remove)
        .admin()
}

#[derive(Serialize, sqlx::FromRow)]
struct QuickReply {
    id: i64,
    #[sqlx(rename = "group_name")]
    group: String,
    title: String,
    body: String,
    position: i32,
}

const COLUMNS: &str = "id, group_name, title, body, position";

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
    let pattern =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| like_pattern(&s.chars().take(100).collect::<String>()));
    let quick_replies = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from quick_replies
         where $1::text is null or title ilike $1 or body ilike $1 or group_name ilike $1
         order by lower(group_name), position, id"
    )))
    .bind(pattern)
    .fetch_all(&mut *tx)
    .await?;
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

struct Checked {
    group: Option<String>,
    title: Option<String>,
    body: Option<String>,
    position: Option<i32>,
}

fn check(f: Fields) -> Result<Checked, AppError> {
    Ok(Checked {
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
    let (Some(title), Some(body)) = (f.title, f.body) else {
        return Err(AppError::field("title", "title and body are required"));
    };
    let count: i64 =
        sqlx::query_scalar("select count(*) from quick_replies").fetch_one(&mut *tx).await?;
    if count >= MAX_PER_TENANT {
        return Err(AppError::conflict(
            "too_many",
            None,
            "a merchant keeps at most 1000 quick replies",
        ));
    }
    let created: QuickReply = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into quick_replies (group_name, title, body, position)
         values ($1, $2, $3, coalesce($4, (select coalesce(max(position) + 1, 0) from quick_replies)))
         returning {COLUMNS}"
    )))
    .bind(f.group.unwrap_or_default())
    .bind(title)
    .bind(body)
    .bind(f.position)
    .fetch_one(&mut *tx)
    .await?;
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
    Path(id): Path<String>,
    ApiJson(fields): ApiJson<Fields>,
) -> Result<Json<QuickReply>, AppError> {
    let id = path_id(&id)?;
    let f = check(fields)?;
    let updated: Option<QuickReply> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update quick_replies set group_name = coalesce($2, group_name), title = coalesce($3, title),
                body = coalesce($4, body), position = coalesce($5, position)
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(f.group)
    .bind(f.title)
    .bind(f.body)
    .bind(f.position)
    .fetch_optional(&mut *tx)
    .await?;
    let updated = updated.ok_or(AppError::NotFound)?;
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
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = path_id(&id)?;
    let title: Option<String> =
        sqlx::query_scalar("delete from quick_replies where id = $1 returning title")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let title = title.ok_or(AppError::NotFound)?;
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

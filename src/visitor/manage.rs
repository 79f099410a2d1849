//! What agents do to a visitor's record: rename, contact details, notes, tags, blocking,
//! clearing the history. Every change is pushed to the team as a `visitor` frame.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tenants::TenantTx;

use crate::{
    auth::ctx::{Admin, AdminOrSelf, Agent, Ctx},
    auth::session::AgentSession,
    http::{
        AppError, Routes, Scope,
        extract::ApiJson,
        input::{optional_text, text},
    },
    realtime::{
        hub::encode,
        protocol::{ServerFrame, VisitorOut},
    },
    startup::AppState,
};

/// The OpenAPI description of these routes' API part (http::openapi).
#[derive(utoipa::OpenApi)]
#[openapi(paths(update, add_tag, remove_tag, list_tags))]
pub(crate) struct Doc;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .patch("/api/v1/visitors/{id}", Scope::Tenant, update)
        .api()
        .post("/api/v1/visitors/{id}/notes", Scope::Tenant, add_note)
        .delete("/api/v1/visitors/{id}/notes/{note_id}", Scope::Tenant, delete_note)
        .admin()
        .post("/api/v1/visitors/{id}/tags", Scope::Tenant, add_tag)
        .api()
        .delete("/api/v1/visitors/{id}/tags/{name}", Scope::Tenant, remove_tag)
        .api()
        .delete("/api/v1/visitors/{id}/messages", Scope::Tenant, clear_history)
        .admin()
        .get("/api/v1/tags", Scope::Tenant, list_tags)
        .api()
}

/// The visitor's row id, by public id; another tenant's visitor (or nonsense) is a 404.
pub(crate) async fn visitor_id(conn: &mut PgConnection, public_id: &str) -> Result<i64, AppError> {
    if public_id.len() > 64 {
        return Err(AppError::NotFound);
    }
    sqlx::query_scalar("select id from visitors where public_id = $1")
        .bind(public_id)
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::NotFound)
}

/// The visitor as agents see it in lists and panels.
pub(crate) async fn visitor_out(conn: &mut PgConnection, id: i64) -> sqlx::Result<VisitorOut> {
    let mut visitor: VisitorOut = sqlx::query_as(
        "select public_id, name, real_name, external_id, email, phone,
                blocked_at is not null or exists (select 1 from blacklist b where b.visitor_id = v.id) as blocked
         from visitors v where id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    visitor.tags = sqlx::query_scalar(
        "select t.name from visitor_tags vt join tags t on t.id = vt.tag_id
         where vt.visitor_id = $1 order by lower(t.name)",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(visitor)
}

/// Commits `tx`, tells every agent of the tenant, and answers with the visitor.
pub(crate) async fn publish(
    state: &AppState,
    session: &AgentSession,
    mut tx: TenantTx,
    id: i64,
) -> Result<VisitorOut, AppError> {
    let visitor = visitor_out(&mut tx, id).await?;
    tx.commit().await?;
    let frame = encode(&ServerFrame::Visitor { event: "updated", visitor: visitor.clone() });
    state.chat.hub.to_agents(session.tenant.id, &frame);
    Ok(visitor)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Change {
    #[serde(default)]
    name: Option<String>,
    /// Empty clears it.
    #[serde(default)]
    real_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/visitors/{id}", tag = "visitors", params(("id" = String, Path, description = "The visitor id (v…)")), request_body = Change, responses((status = 200, body = VisitorOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    Path(public_id): Path<String>,
    ApiJson(req): ApiJson<Change>,
) -> Result<Json<VisitorOut>, AppError> {
    // What shows only: invisible and direction-changing characters are dropped.
    let visible = |field: &'static str, n: &str| {
        text(field, n, 80, false, false)
            .map(|n| crate::http::input::shown_name(&n, 80).unwrap_or_default())
    };
    let name = req.name.as_deref().map(|n| visible("name", n)).transpose()?;
    if name.as_deref() == Some("") {
        return Err(AppError::field("name", "this field is required"));
    }
    let real_name = req
        .real_name
        .as_deref()
        .map(|n| visible("real_name", n))
        .transpose()?
        .filter(|n| !n.is_empty());
    let email = optional_text("email", req.email.as_deref(), 254)?;
    if let Some(e) = &email {
        crate::auth::validate::Email::parse(e)
            .map_err(|_| AppError::field("email", "not a valid email address"))?;
    }
    let phone = optional_text("phone", req.phone.as_deref(), 40)?;
    if phone.as_deref().is_some_and(|p| {
        !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
            || p.chars().filter(char::is_ascii_digit).count() < 3
    }) {
        return Err(AppError::field("phone", "digits, spaces and + - ( ) only"));
    }
    let id = visitor_id(&mut tx, &public_id).await?;
    // A field absent from the body stays; an empty string clears an optional one.
    sqlx::query(
        "update visitors set name = coalesce($2, name),
                real_name = case when $3 then $4 else real_name end,
                email = case when $5 then $6 else email end,
                phone = case when $7 then $8 else phone end
         where id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(req.real_name.is_some())
    .bind(real_name)
    .bind(req.email.is_some())
    .bind(email)
    .bind(req.phone.is_some())
    .bind(phone)
    .execute(&mut *tx)
    .await?;
    publish(&state, &session, tx, id).await.map(Json)
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Note {
    pub id: i64,
    pub body: String,
    pub agent_id: Option<i64>,
    pub agent_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The visitor's notes, newest first.
pub(crate) async fn notes(conn: &mut PgConnection, visitor: i64) -> sqlx::Result<Vec<Note>> {
    sqlx::query_as(
        "select n.id, n.body, n.agent_id, a.display_name as agent_name, n.created_at
         from notes n left join agents a on a.id = n.agent_id
         where n.visitor_id = $1 order by n.id desc limit 200",
    )
    .bind(visitor)
    .fetch_all(conn)
    .await
}

#[derive(Deserialize)]
struct NewNote {
    body: String,
}

async fn add_note(
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    Path(public_id): Path<String>,
    ApiJson(req): ApiJson<NewNote>,
) -> Result<Response, AppError> {
    let body = text("body", &req.body, 2000, true, true)?;
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let count: i64 = sqlx::query_scalar("select count(*) from notes where visitor_id = $1")
        .bind(visitor)
        .fetch_one(&mut *tx)
        .await?;
    if count >= 200 {
        return Err(AppError::conflict("too_many", None, "a visitor has at most 200 notes"));
    }
    let note: Note = sqlx::query_as(
        "with n as (insert into notes (visitor_id, agent_id, body) values ($1, $2, $3)
                    returning id, body, agent_id, created_at)
         select n.id, n.body, n.agent_id, a.display_name as agent_name, n.created_at
         from n left join agents a on a.id = n.agent_id",
    )
    .bind(visitor)
    .bind(session.agent.id)
    .bind(body)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

/// The author or an admin removes a note.
async fn delete_note(
    Ctx { session, mut tx, .. }: Ctx<AdminOrSelf>,
    Path((public_id, note_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let note_id = crate::http::input::path_id(&note_id)?;
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let author: Option<Option<i64>> =
        sqlx::query_scalar("select agent_id from notes where id = $1 and visitor_id = $2")
            .bind(note_id)
            .bind(visitor)
            .fetch_optional(&mut *tx)
            .await?;
    let author = author.ok_or(AppError::NotFound)?;
    if author != Some(session.agent.id) {
        session.require(crate::http::Role::Admin)?;
    }
    sqlx::query("delete from notes where id = $1").bind(note_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewTag {
    name: String,
}

/// A tag name: 1–32 characters, no commas (lists are written comma-separated).
fn tag_name(raw: &str) -> Result<String, AppError> {
    let name = text("name", raw, 32, true, false)?;
    if name.contains(',') {
        return Err(AppError::field("name", "a tag cannot contain a comma"));
    }
    Ok(name)
}

/// Tags the visitor, creating the tag the first time it is used (names match in any case).
#[utoipa::path(post, path = "/api/v1/visitors/{id}/tags", tag = "visitors", params(("id" = String, Path, description = "The visitor id (v…)")), request_body = NewTag, responses((status = 200, body = VisitorOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn add_tag(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    Path(public_id): Path<String>,
    ApiJson(req): ApiJson<NewTag>,
) -> Result<Json<VisitorOut>, AppError> {
    let name = tag_name(&req.name)?;
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let tags: i64 = sqlx::query_scalar("select count(*) from tags").fetch_one(&mut *tx).await?;
    let tag: Option<i64> = sqlx::query_scalar("select id from tags where lower(name) = lower($1)")
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
    let tag = match tag {
        Some(id) => id,
        None if tags >= 500 => {
            return Err(AppError::conflict(
                "too_many",
                Some("name"),
                "a merchant has at most 500 tags",
            ));
        }
        None => {
            sqlx::query_scalar(
                "insert into tags (name) values ($1)
             on conflict (lower(name)) do update set name = tags.name returning id",
            )
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    sqlx::query(
        "insert into visitor_tags (visitor_id, tag_id) values ($1, $2) on conflict do nothing",
    )
    .bind(visitor)
    .bind(tag)
    .execute(&mut *tx)
    .await?;
    publish(&state, &session, tx, visitor).await.map(Json)
}

#[utoipa::path(delete, path = "/api/v1/visitors/{id}/tags/{name}", tag = "visitors", params(("id" = String, Path, description = "The visitor id (v…)"), ("name" = String, Path, description = "The tag")), responses((status = 200, body = VisitorOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn remove_tag(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    Path((public_id, name)): Path<(String, String)>,
) -> Result<Json<VisitorOut>, AppError> {
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let removed = sqlx::query(
        "delete from visitor_tags vt using tags t
         where vt.tag_id = t.id and vt.visitor_id = $1 and lower(t.name) = lower($2)",
    )
    .bind(visitor)
    .bind(&name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if removed == 0 {
        return Err(AppError::NotFound);
    }
    publish(&state, &session, tx, visitor).await.map(Json)
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct Tag {
    name: String,
    color: String,
    visitors: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TagList {
    tags: Vec<Tag>,
}

/// The merchant's tags with how many visitors carry each, for suggestions and filters.
#[utoipa::path(get, path = "/api/v1/tags", tag = "visitors", responses((status = 200, body = TagList), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn list_tags(Ctx { mut tx, .. }: Ctx<Agent>) -> Result<Json<TagList>, AppError> {
    let tags = sqlx::query_as(
        "select t.name, t.color, count(vt.visitor_id) as visitors
         from tags t left join visitor_tags vt on vt.tag_id = t.id
         group by t.id order by count(vt.visitor_id) desc, lower(t.name)",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(TagList { tags }))
}

#[derive(Serialize)]
struct Cleared {
    messages: u64,
    files: usize,
}

/// Deletes every message of the visitor's conversations and the files sent in them (admins
/// only). The conversations stay, empty, so lists and reports keep their counts.
async fn clear_history(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(public_id): Path<String>,
) -> Result<Json<Cleared>, AppError> {
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let files: Vec<String> = sqlx::query_scalar(
        "select distinct m.payload #>> '{attachment,id}' from messages m
         join conversations c on c.id = m.conversation_id
         where c.visitor_id = $1 and m.payload ? 'attachment'",
    )
    .bind(visitor)
    .fetch_all(&mut *tx)
    .await?;
    let messages = sqlx::query(
        "delete from messages where conversation_id in (select id from conversations where visitor_id = $1)",
    )
    .bind(visitor)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let keys = crate::upload::delete_rows(&mut tx, &state, session.tenant.id, &files).await?;
    let out = visitor_out(&mut tx, visitor).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "visitor.clear_history",
        &public_id,
        serde_json::json!({ "messages": messages, "files": files.len() }),
    )
    .await?;
    state.storage.remove_all(&keys).await;
    tracing::info!(
        tenant = session.tenant.id.0,
        by = session.agent.id,
        visitor,
        messages,
        "history cleared"
    );
    let frame = encode(&ServerFrame::Visitor { event: "history_cleared", visitor: out });
    state.chat.hub.to_agents(session.tenant.id, &frame);
    state.chat.hub.to_visitor(session.tenant.id, visitor, &frame_for_visitor());
    Ok(Json(Cleared { messages, files: files.len() }))
}

/// The visitor's page reloads its (now empty) history when told.
fn frame_for_visitor() -> crate::realtime::hub::Frame {
    encode(&ServerFrame::Notice { code: "history_cleared", message: String::new() })
}

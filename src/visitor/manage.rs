//! What agents do to a visitor's record: rename, contact details, notes, tags, blocking,
//! clearing the history. Every change is pushed to the team as a `visitor` frame.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tenants::TenantTx;

use super::store::{
    self, notes,
    tags::{self, Tag},
};
use crate::{
    auth::ctx::{Admin, AdminOrSelf, Agent, ApiToken, Ctx, Door, Read, Write},
    auth::session::AgentSession,
    http::{
        AppError, Routes, Scope,
        extract::ApiJson,
        input::{optional_text, text},
    },
    realtime::{
        hub::{Hub, encode},
        protocol::{ServerFrame, VisitorOut},
    },
    upload::Storage,
};

/// The OpenAPI description of these routes' API part (http::openapi).
#[derive(utoipa::OpenApi)]
#[openapi(paths(update, add_tag, remove_tag, list_tags))]
pub(crate) struct Doc;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Hub>: FromRef<S>,
    Storage: FromRef<S>,
{
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
    store::by_public_id(conn, public_id).await?.ok_or(AppError::NotFound)
}

/// The visitor as agents see it in lists and panels.
pub(crate) async fn visitor_out(conn: &mut PgConnection, id: i64) -> sqlx::Result<VisitorOut> {
    store::shown(conn, id).await
}

/// Commits `tx`, tells every agent of the tenant, and answers with the visitor.
pub(crate) async fn publish(
    hub: &Hub,
    session: &AgentSession,
    mut tx: TenantTx,
    id: i64,
) -> Result<VisitorOut, AppError> {
    let visitor = visitor_out(&mut tx, id).await?;
    tx.commit().await?;
    let frame = encode(&ServerFrame::Visitor { event: "updated", visitor: visitor.clone() });
    hub.to_agents(session.tenant.id, &frame);
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
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
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
    let details = store::Details {
        name,
        real_name: req.real_name.is_some().then_some(real_name),
        email: req.email.is_some().then_some(email),
        phone: req.phone.is_some().then_some(phone),
    };
    store::update_details(&mut tx, id, details).await?;
    publish(&hub, &session, tx, id).await.map(Json)
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
    if notes::count(&mut tx, visitor).await? >= 200 {
        return Err(AppError::conflict("too_many", None, "a visitor has at most 200 notes"));
    }
    let note = notes::create(&mut tx, visitor, session.agent.id.0, &body).await?;
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
    let author = notes::author(&mut tx, visitor, note_id).await?.ok_or(AppError::NotFound)?;
    if author != Some(session.agent.id.0) {
        session.require(crate::http::Role::Admin)?;
    }
    notes::delete(&mut tx, note_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewTag {
    name: String,
}

/// A tag name: 1–32 characters, no commas (lists are written comma-separated).
pub(crate) fn tag_name(raw: &str) -> Result<String, AppError> {
    let name = text("name", raw, 32, true, false)?;
    if name.contains(',') {
        return Err(AppError::field("name", "a tag cannot contain a comma"));
    }
    Ok(name)
}

/// The tag named `name` (any case), created the first time it is used; a merchant has at
/// most 500.
pub(crate) async fn tag_for(conn: &mut PgConnection, name: &str) -> Result<i64, AppError> {
    if let Some(id) = tags::find(conn, name).await? {
        return Ok(id);
    }
    if tags::count(conn).await? >= 500 {
        return Err(AppError::conflict(
            "too_many",
            Some("name"),
            "a merchant has at most 500 tags",
        ));
    }
    Ok(tags::create(conn, name).await?)
}

/// Tags the visitor, creating the tag the first time it is used (names match in any case).
#[utoipa::path(post, path = "/api/v1/visitors/{id}/tags", tag = "visitors", params(("id" = String, Path, description = "The visitor id (v…)")), request_body = NewTag, responses((status = 200, body = VisitorOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn add_tag(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    Path(public_id): Path<String>,
    ApiJson(req): ApiJson<NewTag>,
) -> Result<Json<VisitorOut>, AppError> {
    let name = tag_name(&req.name)?;
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let tag = tag_for(&mut tx, &name).await?;
    tags::attach(&mut tx, visitor, tag).await?;
    publish(&hub, &session, tx, visitor).await.map(Json)
}

#[utoipa::path(delete, path = "/api/v1/visitors/{id}/tags/{name}", tag = "visitors", params(("id" = String, Path, description = "The visitor id (v…)"), ("name" = String, Path, description = "The tag")), responses((status = 200, body = VisitorOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn remove_tag(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    Path((public_id, name)): Path<(String, String)>,
) -> Result<Json<VisitorOut>, AppError> {
    let visitor = visitor_id(&mut tx, &public_id).await?;
    if !tags::detach(&mut tx, visitor, &name).await? {
        return Err(AppError::NotFound);
    }
    publish(&hub, &session, tx, visitor).await.map(Json)
}

#[derive(Serialize, utoipa::ToSchema)]
struct TagList {
    tags: Vec<Tag>,
}

/// The merchant's tags with how many visitors carry each, for suggestions and filters.
#[utoipa::path(get, path = "/api/v1/tags", tag = "visitors", responses((status = 200, body = TagList), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn list_tags(Ctx { mut tx, .. }: Ctx<ApiToken<Read>>) -> Result<Json<TagList>, AppError> {
    let tags = tags::list(&mut tx).await?;
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
    State(hub): State<Arc<Hub>>,
    State(storage): State<Storage>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(public_id): Path<String>,
) -> Result<Json<Cleared>, AppError> {
    let visitor = visitor_id(&mut tx, &public_id).await?;
    let files = store::attachments(&mut tx, visitor).await?;
    let messages = store::delete_messages(&mut tx, visitor).await?;
    let keys = crate::upload::delete_rows(&mut tx, &storage, session.tenant.id, &files).await?;
    let out = visitor_out(&mut tx, visitor).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "visitor.clear_history",
        &public_id,
        serde_json::json!({ "messages": messages, "files": files.len() }),
    )
    .await?;
    storage.remove_all(&keys).await;
    tracing::info!(
        tenant = session.tenant.id.0,
        by = session.agent.id.0,
        visitor,
        messages,
        "history cleared"
    );
    let frame = encode(&ServerFrame::Visitor { event: "history_cleared", visitor: out });
    hub.to_agents(session.tenant.id, &frame);
    hub.to_visitor(session.tenant.id, visitor, &frame_for_visitor());
    Ok(Json(Cleared { messages, files: files.len() }))
}

/// The visitor's page reloads its (now empty) history when told.
fn frame_for_visitor() -> crate::realtime::hub::Frame {
    encode(&ServerFrame::Notice { code: "history_cleared", message: String::new() })
}

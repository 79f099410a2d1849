//! Writing announcements: drafts, edits, publish and unpublish, and the audience (everyone,
//! or merchants on the chosen plans). Publishing pushes the announcement to every connected
//! agent it is meant for; unpublishing tells them to hide it.

use super::Platform;
use crate::ids::AnnouncementId;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::{PlatformSession, audit, merchants::plan_ids};
use crate::{
    agent::announcements::{
        Announcement,
        store::{self, Draft},
    },
    http::{AppError, extract::ApiJson, extract::PathId, input::text},
    realtime::{hub::encode, protocol::ServerFrame},
};

pub use crate::agent::announcements::store::{Row, all};

async fn one(db: &sqlx::PgPool, id: AnnouncementId) -> Result<Row, AppError> {
    store::get(db, id).await?.ok_or(AppError::NotFound)
}

pub(super) async fn list_api(
    State(state): State<Platform>,
    _admin: PlatformSession,
) -> Result<Json<serde_json::Value>, AppError> {
    Ok(Json(json!({ "announcements": all(&state.door.db).await? })))
}

#[derive(Deserialize)]
pub(super) struct Input {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    /// Omit to leave unchanged; `null` or `[]` for everyone.
    #[serde(default, with = "serde_with_null")]
    plans: Option<Option<Vec<String>>>,
    /// On create: publish at once.
    #[serde(default)]
    publish: bool,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn audience(
    catalog: &billing::Catalog,
    plans: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, AppError> {
    let Some(mut plans) = plans.filter(|p| !p.is_empty()) else { return Ok(None) };
    let known = plan_ids(catalog);
    if let Some(bad) = plans.iter().find(|p| !known.contains(p)) {
        return Err(AppError::field(
            "plans",
            format!("unknown plan {bad:?}; plans are {}", known.join(", ")),
        ));
    }
    plans.sort();
    plans.dedup();
    Ok(Some(plans))
}

pub(super) async fn create(
    State(state): State<Platform>,
    admin: PlatformSession,
    ApiJson(input): ApiJson<Input>,
) -> Result<Response, AppError> {
    let title = text("title", input.title.as_deref().unwrap_or_default(), 200, true, false)?;
    let body = text("body", input.body.as_deref().unwrap_or_default(), 5000, true, true)?;
    let plans = audience(&state.door.plans, input.plans.flatten())?;
    let draft = Draft { title: &title, body: &body, plans: plans.as_deref() };
    let id = store::create(&state.door.db, draft, admin.user_id).await?;
    audit::record(&state.door.db, &admin, "announcement.create", None, &title, json!({ "id": id }))
        .await?;
    if input.publish {
        set_published(&state, &admin, id, true).await?;
    }
    Ok((StatusCode::CREATED, Json(one(&state.door.db, id).await?)).into_response())
}

pub(super) async fn update(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<AnnouncementId>,
    ApiJson(input): ApiJson<Input>,
) -> Result<Json<Row>, AppError> {
    let before = one(&state.door.db, id).await?;
    let title = match input.title.as_deref() {
        Some(t) => text("title", t, 200, true, false)?,
        None => before.title.clone(),
    };
    let body = match input.body.as_deref() {
        Some(b) => text("body", b, 5000, true, true)?,
        None => before.body.clone(),
    };
    let plans = match input.plans {
        Some(p) => audience(&state.door.plans, p)?,
        None => before.plans.clone(),
    };
    let draft = Draft { title: &title, body: &body, plans: plans.as_deref() };
    store::update(&state.door.db, id, draft).await?;
    audit::record(&state.door.db, &admin, "announcement.update", None, &title, json!({ "id": id }))
        .await?;
    let row = one(&state.door.db, id).await?;
    // A published one changes on agents' screens too.
    if row.published_at.is_some() {
        push(&state, &row, "published").await;
    }
    Ok(Json(row))
}

pub(super) async fn remove(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<AnnouncementId>,
) -> Result<StatusCode, AppError> {
    let row = one(&state.door.db, id).await?;
    store::delete(&state.door.db, id).await?;
    if row.published_at.is_some() {
        push(&state, &row, "withdrawn").await;
    }
    audit::record(
        &state.door.db,
        &admin,
        "announcement.delete",
        None,
        &row.title,
        json!({ "id": id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_published(
    state: &Platform,
    admin: &PlatformSession,
    id: AnnouncementId,
    published: bool,
) -> Result<Row, AppError> {
    store::set_published(&state.door.db, id, published).await?;
    let row = one(&state.door.db, id).await?;
    let (action, event) = if published {
        ("announcement.publish", "published")
    } else {
        ("announcement.unpublish", "withdrawn")
    };
    audit::record(&state.door.db, admin, action, None, &row.title, json!({ "id": id })).await?;
    let reached = push(state, &row, event).await;
    tracing::info!(announcement = id.0, event, reached, "announcement pushed");
    Ok(row)
}

pub(super) async fn publish(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<AnnouncementId>,
) -> Result<Json<Row>, AppError> {
    one(&state.door.db, id).await?;
    Ok(Json(set_published(&state, &admin, id, true).await?))
}

pub(super) async fn unpublish(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<AnnouncementId>,
) -> Result<Json<Row>, AppError> {
    one(&state.door.db, id).await?;
    Ok(Json(set_published(&state, &admin, id, false).await?))
}

/// Sends the announcement to the connected agents of every merchant in its audience.
/// Returns how many connections it reached.
async fn push(state: &Platform, row: &Row, event: &'static str) -> usize {
    let announcement = Announcement {
        id: row.id.0,
        title: row.title.clone(),
        body: row.body.clone(),
        published_at: row.published_at.unwrap_or_else(Utc::now),
    };
    let frame = encode(&ServerFrame::Announcement { event, announcement });
    let mut reached = 0;
    for tenant in state.hub.tenants_with_agents() {
        let in_audience = match &row.plans {
            None => true,
            Some(plans) => match state.door.tenants.by_id(tenant).await {
                Ok(Some(t)) => plans.iter().any(|p| *p == t.plan),
                _ => false,
            },
        };
        if in_audience {
            reached += state.hub.to_agents(tenant, &frame);
        }
    }
    reached
}

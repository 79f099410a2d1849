//! One's own sign-in: changing the password (the emailed reset is for a forgotten one), and
//! where one is signed in ("sign out" one session, or every other one).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use super::Auth;
use super::{
    accounts::{self, Actor},
    field_errors, password,
    session::{self, AgentSession},
    sessions, store,
    validate::{self, Email},
};
use crate::http::{AppError, client::ClientMeta, extract::ApiJson};

#[derive(Deserialize)]
pub(super) struct Change {
    current_password: String,
    new_password: String,
}

#[derive(Serialize)]
struct Changed {
    /// This device's new session (the cookie is renewed too); every other session ended.
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// `{current_password, new_password}` → this device stays signed in with a new token (the
/// cookie too; a copy of the old one stops working); every other session of the person's
/// (other browsers, API clients, the console) ends, and their sockets close.
pub(super) async fn change(
    State(state): State<Auth>,
    meta: ClientMeta,
    jar: CookieJar,
    session: AgentSession,
    ApiJson(req): ApiJson<Change>,
) -> Result<Response, AppError> {
    let actor = Actor::themself(&session)?;
    let mut conn = state.door.db.acquire().await?;
    let user =
        store::user_by_id(&mut conn, session.user_id).await?.ok_or(AppError::Unauthorized)?;
    drop(conn);
    if req.current_password.len() > 1024
        || !password::verify(req.current_password, user.password_hash).await
    {
        return Err(AppError::field("current_password", "this is not your current password"));
    }
    let email = Email::parse(&user.email).ok();
    validate::new_password(&req.new_password, email.as_ref())
        .map_err(|problem| field_errors(&[("new_password", problem)]))?;
    let hash = password::hash(req.new_password).await?;
    let mut tx = state.door.db.begin().await?;
    let changed = accounts::set_password(&mut tx, &actor, session.user_id, &hash).await?;
    tx.commit().await?;
    changed.ended.close_sockets(&state.hub);
    tracing::info!(user = session.user_id, "password changed");
    let issued = sessions::rotate(&state.door, &session).await?;
    let jar = jar.add(session::session_cookie(&issued, &meta, &state.config));
    Ok((jar, Json(Changed { token: issued.token, expires_at: issued.expires_at })).into_response())
}

/// `GET /api/v1/me/sessions` → where the person is signed in (every workspace, the console),
/// most recently active first; `current` marks this one.
pub(super) async fn list_sessions(
    State(state): State<Auth>,
    session: AgentSession,
) -> Result<Json<serde_json::Value>, AppError> {
    let own = own_sessions(&session)?;
    let list = sessions::list(&state.door.db, session.user_id, Some(own)).await?;
    Ok(Json(serde_json::json!({ "sessions": list })))
}

/// `DELETE /api/v1/me/sessions/{id}` → 204: that session of the person's (this one too, if
/// named) is ended — at once, with its sockets. Like every DELETE it may be repeated; an id
/// that is no live session of the caller's changes nothing (another person's session is
/// never touched).
pub(super) async fn end_session(
    State(state): State<Auth>,
    session: AgentSession,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    own_sessions(&session)?;
    let id: i64 = id.trim().parse().map_err(|_| AppError::NotFound)?;
    let which = sessions::Which::One { user_id: session.user_id, session: id };
    sessions::end_now((&state.door.db, &state.hub), which, sessions::Reason::SignedOutElsewhere)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/me/sessions` → `{ended}`: every other session of the person's (other
/// browsers and devices, every workspace, the console) ends; this one stays.
pub(super) async fn end_other_sessions(
    State(state): State<Auth>,
    session: AgentSession,
) -> Result<Json<serde_json::Value>, AppError> {
    let own = own_sessions(&session)?;
    let which = sessions::Which::All { user_id: session.user_id, except: Some(own) };
    let ended = sessions::end_now(
        (&state.door.db, &state.hub),
        which,
        sessions::Reason::SignedOutElsewhere,
    )
    .await?;
    Ok(Json(serde_json::json!({ "ended": ended })))
}

/// The session of a person acting for themself (not an API token, not a support session).
fn own_sessions(session: &AgentSession) -> Result<sessions::SessionId, AppError> {
    Actor::themself(session)?;
    session.session_id.ok_or(AppError::Unauthorized)
}

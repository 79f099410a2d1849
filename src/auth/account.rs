//! One's own sign-in: changing the password (the emailed reset is for a forgotten one).

use axum::{
    Json,
    extract::State,
    http::Method,
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use super::{
    AuthRateLimit, field_errors, limited, password,
    session::{self, AgentSession},
    store,
    validate::{self, Email},
};
use crate::http::{AppError, AppState, Routes, Scope, client::ClientMeta, extract::ApiJson};

pub fn routes(limit: &AuthRateLimit) -> Routes {
    Routes::new().add(Method::POST, "/api/v1/me/password", Scope::Tenant, limited(limit, change))
}

#[derive(Deserialize)]
struct Change {
    current_password: String,
    new_password: String,
}

#[derive(Serialize)]
struct Changed {
    /// This device's new session (the cookie is renewed too); every other session ended.
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// `{current_password, new_password}` → a new session for this device; the person's other
/// sessions (other browsers, API clients, a stolen token) stop working.
async fn change(
    State(state): State<AppState>,
    meta: ClientMeta,
    jar: CookieJar,
    session: AgentSession,
    ApiJson(req): ApiJson<Change>,
) -> Result<Response, AppError> {
    if session.impersonator.is_some() {
        return Err(AppError::forbidden(
            "support_session",
            "a support session cannot change the agent's password",
        ));
    }
    let mut conn = state.db.acquire().await?;
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
    let mut tx = state.db.begin().await?;
    sqlx::query("update public.users set password_hash = $2, updated_at = now() where id = $1")
        .bind(session.user_id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    store::end_sessions(&mut tx, session.user_id).await?;
    tx.commit().await?;
    tracing::info!(user = session.user_id, "password changed");
    let issued = state.tokens.issue_agent(session.user_id, &session.tenant)?;
    let jar = jar.add(session::session_cookie(&issued, &meta, &state));
    Ok((jar, Json(Changed { token: issued.token, expires_at: issued.expires_at })).into_response())
}

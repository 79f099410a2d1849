//! Signing out: the form in the pages, and the API. The session ends at once, everywhere,
//! and the sockets it opened close.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::{
    Auth,
    session::{self, SELECT_COOKIE, SESSION_COOKIE},
    sessions,
    token::TokenKind,
};
use crate::http::{AppError, csrf, local_redirect_target};
#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
    /// Where to go afterwards (a local path; a support session returns to the console).
    #[serde(default)]
    next: String,
}

pub(super) async fn form(
    State(state): State<Auth>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response, AppError> {
    csrf::verify(&headers, Some(&form.csrf_token))?;
    if let Some(token) = jar.get(SESSION_COOKIE) {
        end_presented_session(&state, token.value()).await?;
    }
    let jar = jar
        .remove(session::removal(SESSION_COOKIE))
        .remove(session::removal(SELECT_COOKIE))
        .remove(session::removal(session::SECOND_FACTOR_COOKIE));
    let target = local_redirect_target(&form.next).unwrap_or_else(|| "/".to_owned());
    Ok((jar, Redirect::to(&target)).into_response())
}

/// Ends the session the request presents (bearer token or cookie): the token stops working
/// at once, everywhere, and the sockets it opened close.
pub(super) async fn api(
    State(state): State<Auth>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, AppError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let token = match bearer {
        Some(token) => Some(token),
        None => {
            let cookie = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
            if cookie.is_some() {
                let submitted = headers.get(csrf::HEADER).and_then(|v| v.to_str().ok());
                csrf::verify(&headers, submitted)?;
            }
            cookie
        }
    };
    if let Some(token) = token {
        end_presented_session(&state, &token).await?;
    }
    let jar = jar.remove(session::removal(SESSION_COOKIE)).remove(session::removal(SELECT_COOKIE));
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}

/// Ends the session `token` names, if it is a valid agent session token (an invalid or
/// already ended one needs no ending).
async fn end_presented_session(state: &Auth, token: &str) -> Result<(), AppError> {
    let Ok(claims) = state.door.tokens.verify(token, TokenKind::Agent) else {
        return Ok(());
    };
    if let (Ok(user_id), Some(session)) = (claims.user_id(), claims.sid) {
        let which = sessions::Which::One { user_id, session };
        sessions::end_now((&state.door.db, &state.hub), which, sessions::Reason::Logout).await?;
    }
    Ok(())
}

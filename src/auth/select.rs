//! Choosing a workspace: a person who belongs to several merchants picks one after their
//! password (a short-lived select token, in a cookie for the pages).

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::{
    Auth, LoginOutcome, NextQuery, Proven, form_outcome, login_response, session::SELECT_COOKIE,
    sessions::Device, store, token::TokenKind, two_factor,
};
use crate::{
    http::{
        AppError, Page, client::ClientMeta, csrf, csrf::CsrfToken, extract::ApiJson,
        local_redirect_target,
    },
    i18n::Lang,
};

#[derive(Deserialize)]
pub struct SelectRequest {
    select_token: String,
    ent_id: String,
}

async fn choose(
    state: &Auth,
    select_token: &str,
    ent_id: &str,
    device: &Device,
) -> Result<LoginOutcome, AppError> {
    let claims = state.door.tokens.verify(select_token, TokenKind::Select)?;
    let proven = Proven {
        user_id: claims.user_id()?,
        generation: claims.generation.ok_or(AppError::Unauthorized)?,
    };
    let memberships = store::memberships(&state.door.db, proven.user_id).await?;
    let m = memberships.iter().find(|m| m.ent_id.as_str() == ent_id).ok_or(AppError::NotFound)?;
    two_factor::checked_session(state, proven, m.tenant_id, device).await
}

pub(super) async fn api(
    State(state): State<Auth>,
    meta: ClientMeta,
    device: Device,
    jar: CookieJar,
    ApiJson(req): ApiJson<SelectRequest>,
) -> Result<Response, AppError> {
    let outcome = choose(&state, &req.select_token, &req.ent_id, &device).await?;
    login_response(outcome, &meta, &state, jar)
}

#[derive(Template)]
#[template(path = "auth/select.html")]
struct SelectPage {
    lang: Lang,
    csrf_token: String,
    next: String,
    tenants: Vec<TenantChoice>,
}

struct TenantChoice {
    ent_id: String,
    name: String,
    initial: String,
    suspended: bool,
}

pub(super) async fn page(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Result<Response, AppError> {
    let Some(token) = jar.get(SELECT_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Ok(claims) = state.door.tokens.verify(&token, TokenKind::Select) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let memberships = store::memberships(&state.door.db, claims.user_id()?).await?;
    let tenants = memberships
        .into_iter()
        .map(|m| TenantChoice {
            initial: m
                .name
                .chars()
                .next()
                .map(|c| c.to_uppercase().to_string())
                .unwrap_or_default(),
            suspended: m.status == "suspended",
            ent_id: m.ent_id.to_string(),
            name: m.name,
        })
        .collect();
    let next = q.next.as_deref().and_then(local_redirect_target).unwrap_or_default();
    let page = SelectPage { lang, csrf_token: csrf.value().to_owned(), next, tenants };
    Ok((csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub struct SelectForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    ent_id: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn form(
    State(state): State<Auth>,
    meta: ClientMeta,
    device: Device,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SelectForm>,
) -> Result<Response, AppError> {
    csrf::verify(&headers, Some(&form.csrf_token))?;
    let token =
        jar.get(SELECT_COOKIE).map(|c| c.value().to_owned()).ok_or(AppError::Unauthorized)?;
    let outcome = choose(&state, &token, &form.ent_id, &device).await?;
    let next = local_redirect_target(&form.next).unwrap_or_default();
    Ok(form_outcome(outcome, &next, &meta, &state, jar))
}

//! The console's own login: email and password, then a TOTP code — always. An admin without
//! a second factor enrols one during that first login (QR code, then a code from the app,
//! then ten recovery codes shown once) before any session exists.
//!
//! Between the two steps the browser holds a short `platform_pending` token in the
//! `kefu_platform_pending` cookie; the session itself is a `platform` token in the
//! `kefu_platform` cookie (SameSite=Strict) or, for API clients, a bearer token. Every request
//! re-checks that the user is still a platform admin with a second factor.

use std::sync::Arc;

use askama::Template;
use axum::{
    Form, Json,
    extract::{FromRef, FromRequestParts, State},
    http::{HeaderMap, StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use super::{Platform, audit};
use crate::auth::ctx::Door;
use crate::{
    auth::{
        FormRequest, Proven, accounts, check_password,
        session::{self, removal},
        sessions::{self, Device},
        token::{Issued, SessionKind, TokenKind},
        totp,
    },
    http::{
        AppError, Page, client::ClientMeta, csrf, csrf::CsrfToken, extract::ApiJson,
        local_redirect_target,
    },
    i18n::Lang,
};

pub const SESSION_COOKIE: &str = "kefu_platform";
const PENDING_COOKIE: &str = "kefu_platform_pending";

/// A signed-in platform admin.
#[derive(Clone, Debug)]
pub struct PlatformSession {
    pub user_id: i64,
    pub email: String,
    /// The client address, for the audit log.
    pub ip: Option<String>,
    /// The console session (auth::sessions) the request was made with.
    pub session_id: Option<crate::auth::sessions::SessionId>,
}

/// A console session opens through the same door as merchants' (pool and token keys).
impl<S: Send + Sync> FromRequestParts<S> for PlatformSession
where
    Arc<Door>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let door = Arc::<Door>::from_ref(state);
        let presented = session::presented_token(parts, SESSION_COOKIE)?;
        let claims = door.tokens.verify(&presented.token, TokenKind::Platform)?;
        let user_id = claims.user_id()?;
        let sid = claims.sid.ok_or(AppError::Unauthorized)?;
        presented.check_csrf(parts)?;
        let email = crate::auth::store::platform_admin_email(&door.db, user_id, sid).await?;
        let email = email.ok_or(AppError::Unauthorized)?;
        tracing::Span::current().record("user", user_id);
        let ip = parts.extensions.get::<ClientMeta>().map(|m| m.ip.to_string());
        Ok(Self { user_id, email, ip, session_id: Some(sid) })
    }
}

fn cookie(
    name: &'static str,
    issued: &Issued,
    meta: &ClientMeta,
    state: &Platform,
) -> Cookie<'static> {
    let ttl = (issued.expires_at - Utc::now()).num_seconds().max(0);
    Cookie::build((name, issued.token.clone()))
        .path("/")
        .http_only(true)
        .secure(meta.https || state.config.is_https())
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(ttl))
        .build()
}

/// The platform admin these credentials belong to (`None` for a wrong password or a user
/// who is not a platform admin: the same answer either way).
async fn admin_by_password(
    state: &Platform,
    email: &str,
    password: String,
) -> Result<Option<(Proven, String, bool)>, AppError> {
    let Some(proven) = check_password(&state.door.db, email, password).await? else {
        return Ok(None);
    };
    let Some(email) = super::admin_email(&state.door.db, proven.user_id).await? else {
        return Ok(None);
    };
    let enrolled = totp::is_enabled(&state.door.db, proven.user_id).await?;
    Ok(Some((proven, email, enrolled)))
}

/// Opens a console session for an admin who passed both steps.
async fn open_session(
    state: &Platform,
    proven: Proven,
    device: &Device,
) -> Result<Issued, AppError> {
    let opening = sessions::Opening {
        user_id: proven.user_id,
        kind: SessionKind::Platform,
        tenant: None,
        impersonator: None,
        proven: Some(proven.generation),
        device,
    };
    sessions::open(&state.door, opening).await
}

/// Activates the authenticator an admin is enrolling while signing in, if `code` comes from
/// it and their credentials are still the ones they proved.
async fn enrol(
    state: &Platform,
    proven: Proven,
    code: &str,
) -> Result<Option<(Vec<String>, Proven)>, AppError> {
    let mut tx = state.door.db.begin().await?;
    accounts::check_gen(&mut tx, proven).await?;
    let actor = accounts::Actor::Themself { user_id: proven.user_id, session: None };
    let Some((codes, changed)) =
        accounts::enable_two_factor(&mut tx, &actor, proven.user_id, code).await?
    else {
        return Ok(None);
    };
    tx.commit().await?;
    changed.ended.close_sockets(&state.hub);
    Ok(Some((codes, Proven { user_id: proven.user_id, generation: changed.generation })))
}

fn wrong_code() -> AppError {
    AppError::bad_request_status(
        StatusCode::UNAUTHORIZED,
        "invalid_code",
        "the authentication code is not valid (or was already used)",
    )
}

async fn record_login(state: &Platform, user_id: i64, email: &str, meta: &ClientMeta, how: &str) {
    let actor = PlatformSession {
        user_id,
        email: email.to_owned(),
        ip: Some(meta.ip.to_string()),
        session_id: None,
    };
    if let Err(e) = audit::record(
        &state.door.db,
        &actor,
        "platform.login",
        None,
        "",
        serde_json::json!({ "second_factor": how }),
    )
    .await
    {
        tracing::warn!(error = %e, "could not record a console login");
    }
}

// ---------------------------------------------------------------------------------------
// Pages

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Password,
    Code,
    Enrol,
    Recovery,
}

#[derive(Template)]
#[template(path = "platform/login.html")]
struct LoginPage {
    lang: Lang,
    csrf_token: String,
    step: Step,
    email: String,
    next: String,
    form_error: Option<String>,
    enrolment: Option<totp::Enrolment>,
    recovery_codes: Vec<String>,
}

impl LoginPage {
    fn new(lang: Lang, csrf: &CsrfToken, step: Step, next: String) -> Self {
        Self {
            lang,
            csrf_token: csrf.value().to_owned(),
            step,
            email: String::new(),
            next,
            form_error: None,
            enrolment: None,
            recovery_codes: Vec::new(),
        }
    }

    fn error(mut self, lang: Lang, key: &str) -> Self {
        self.form_error = Some(lang.tr(key).to_owned());
        self
    }

    /// Where the recovery codes page leads.
    fn continue_to(&self) -> &str {
        if self.next.is_empty() { "/platform" } else { &self.next }
    }
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

fn next_target(next: Option<&str>) -> String {
    next.and_then(local_redirect_target).filter(|t| t.starts_with("/platform")).unwrap_or_default()
}

pub(super) async fn login_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    jar: CookieJar,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let signed_in = jar
        .get(SESSION_COOKIE)
        .is_some_and(|c| state.door.tokens.verify(c.value(), TokenKind::Platform).is_ok());
    if signed_in {
        return Redirect::to("/platform").into_response();
    }
    let page = LoginPage::new(lang, &csrf, Step::Password, next_target(q.next.as_deref()));
    (csrf, Page(page)).into_response()
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn password_form(
    State(state): State<Platform>,
    lang: Lang,
    meta: ClientMeta,
    csrf: CsrfToken,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let next = next_target(Some(&form.next));
    let mut page = LoginPage::new(lang, &csrf, Step::Password, next);
    page.email = form.email.clone();
    if csrf::verify(&headers, Some(&form.csrf_token)).is_err() {
        return Ok((StatusCode::FORBIDDEN, csrf, Page(page.error(lang, "validation.csrf")))
            .into_response());
    }
    let Some((proven, email, enrolled)) =
        admin_by_password(&state, &form.email, form.password).await?
    else {
        let page = page.error(lang, "validation.invalid_credentials");
        return Ok((StatusCode::UNAUTHORIZED, csrf, Page(page)).into_response());
    };
    let user_id = proven.user_id;
    let pending = state.door.tokens.issue_platform_pending(user_id, proven.generation)?;
    let jar = jar.add(cookie(PENDING_COOKIE, &pending, &meta, &state));
    if enrolled {
        page.step = Step::Code;
    } else {
        page.step = Step::Enrol;
        page.enrolment = Some(totp::begin_enrolment(&state.door.db, user_id, &email).await?);
    }
    Ok((jar, csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

/// The platform admin (id, email) behind the pending cookie; `None` sends them back to the
/// login page (no cookie, expired, or no longer an admin).
async fn pending_admin(
    state: &Platform,
    jar: &CookieJar,
) -> Result<Option<(Proven, String)>, AppError> {
    let Some(cookie) = jar.get(PENDING_COOKIE) else { return Ok(None) };
    let Ok(claims) = state.door.tokens.verify(cookie.value(), TokenKind::PlatformPending) else {
        return Ok(None);
    };
    let Some(generation) = claims.generation else { return Ok(None) };
    let proven = Proven { user_id: claims.user_id()?, generation };
    Ok(super::admin_email(&state.door.db, proven.user_id).await?.map(|email| (proven, email)))
}

/// The second step passed: record it, swap the pending cookie for a session.
async fn start_session(
    state: &Platform,
    meta: &ClientMeta,
    device: &Device,
    jar: CookieJar,
    (proven, email): (Proven, &str),
    how: &str,
) -> Result<CookieJar, AppError> {
    let issued = open_session(state, proven, device).await?;
    record_login(state, proven.user_id, email, meta, how).await;
    Ok(jar.remove(removal(PENDING_COOKIE)).add(cookie(SESSION_COOKIE, &issued, meta, state)))
}

pub(super) async fn code_form(
    State(state): State<Platform>,
    req: FormRequest,
    Form(form): Form<CodeForm>,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    csrf::verify(&headers, Some(&form.csrf_token))?;
    let next = next_target(Some(&form.next));
    let Some((proven, email)) = pending_admin(&state, &jar).await? else {
        return Ok(Redirect::to("/platform/login").into_response());
    };
    if !totp::verify(&state.door.db, proven.user_id, &form.code).await? {
        let page =
            LoginPage::new(lang, &csrf, Step::Code, next).error(lang, "platform.login.wrong_code");
        return Ok((StatusCode::UNAUTHORIZED, csrf, Page(page)).into_response());
    }
    let jar = start_session(&state, &meta, &device, jar, (proven, &email), "totp").await?;
    let target = if next.is_empty() { "/platform".to_owned() } else { next };
    Ok((jar, Redirect::to(&target)).into_response())
}

pub(super) async fn enrol_form(
    State(state): State<Platform>,
    req: FormRequest,
    Form(form): Form<CodeForm>,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    csrf::verify(&headers, Some(&form.csrf_token))?;
    let next = next_target(Some(&form.next));
    let Some((proven, email)) = pending_admin(&state, &jar).await? else {
        return Ok(Redirect::to("/platform/login").into_response());
    };
    let Some((codes, proven)) = enrol(&state, proven, &form.code).await? else {
        let mut page =
            LoginPage::new(lang, &csrf, Step::Enrol, next).error(lang, "platform.login.wrong_code");
        page.enrolment = totp::pending_enrolment(&state.door.db, proven.user_id, &email).await?;
        return Ok((StatusCode::UNAUTHORIZED, csrf, Page(page)).into_response());
    };
    let jar = start_session(&state, &meta, &device, jar, (proven, &email), "totp_enrolled").await?;
    let mut page = LoginPage::new(lang, &csrf, Step::Recovery, next);
    page.recovery_codes = codes;
    Ok((jar, csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

pub(super) async fn logout_form(
    State(state): State<Platform>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response, AppError> {
    csrf::verify(&headers, Some(&form.csrf_token))?;
    let claims = jar
        .get(SESSION_COOKIE)
        .and_then(|c| state.door.tokens.verify(c.value(), TokenKind::Platform).ok());
    if let Some((Ok(user_id), Some(session))) = claims.map(|c| (c.user_id(), c.sid)) {
        let which = sessions::Which::One { user_id, session };
        sessions::end_now((&state.door.db, &state.hub), which, sessions::Reason::Logout).await?;
    }
    let jar = jar.remove(removal(SESSION_COOKIE)).remove(removal(PENDING_COOKIE));
    Ok((jar, Redirect::to("/platform/login")).into_response())
}

// ---------------------------------------------------------------------------------------
// JSON

#[derive(Deserialize)]
pub(super) struct LoginRequest {
    email: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Serialize)]
pub(super) struct SessionOut {
    token: String,
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recovery_codes: Vec<String>,
}

#[derive(Serialize)]
pub(super) struct EnrolmentOut {
    /// Send it back with a code from the app to `/api/platform/v1/login/enrol`.
    pending_token: String,
    secret: String,
    otpauth_uri: String,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum LoginOut {
    Session(SessionOut),
    Enrol { enrolment: EnrolmentOut },
}

fn session_out(issued: Issued, recovery_codes: Vec<String>) -> SessionOut {
    SessionOut {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
        recovery_codes,
    }
}

/// `{email, password, code}` → a bearer session. An admin without a second factor gets an
/// enrolment to finish at `/api/platform/v1/login/enrol` instead.
pub(super) async fn login_api(
    State(state): State<Platform>,
    meta: ClientMeta,
    device: Device,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginOut>, AppError> {
    let (proven, email, enrolled) = admin_by_password(&state, &req.email, req.password)
        .await?
        .ok_or(AppError::InvalidCredentials)?;
    let user_id = proven.user_id;
    if !enrolled {
        let enrolment = totp::begin_enrolment(&state.door.db, user_id, &email).await?;
        return Ok(Json(LoginOut::Enrol {
            enrolment: EnrolmentOut {
                pending_token: state
                    .door
                    .tokens
                    .issue_platform_pending(user_id, proven.generation)?
                    .token,
                secret: enrolment.secret,
                otpauth_uri: enrolment.otpauth_uri,
            },
        }));
    }
    let Some(code) = req.code.filter(|c| !c.trim().is_empty()) else {
        return Err(AppError::bad_request_status(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "platform admins sign in with a code from their authenticator app (field `code`)",
        ));
    };
    if !totp::verify(&state.door.db, user_id, &code).await? {
        return Err(wrong_code());
    }
    let issued = open_session(&state, proven, &device).await?;
    record_login(&state, user_id, &email, &meta, "totp").await;
    Ok(Json(LoginOut::Session(session_out(issued, Vec::new()))))
}

#[derive(Deserialize)]
pub(super) struct EnrolRequest {
    pending_token: String,
    code: String,
}

pub(super) async fn enrol_api(
    State(state): State<Platform>,
    meta: ClientMeta,
    device: Device,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> Result<Json<SessionOut>, AppError> {
    let claims = state.door.tokens.verify(&req.pending_token, TokenKind::PlatformPending)?;
    let proven = Proven {
        user_id: claims.user_id()?,
        generation: claims.generation.ok_or(AppError::Unauthorized)?,
    };
    let email =
        super::admin_email(&state.door.db, proven.user_id).await?.ok_or(AppError::Unauthorized)?;
    let (codes, proven) = enrol(&state, proven, &req.code).await?.ok_or_else(wrong_code)?;
    let issued = open_session(&state, proven, &device).await?;
    record_login(&state, proven.user_id, &email, &meta, "totp_enrolled").await;
    Ok(Json(session_out(issued, codes)))
}

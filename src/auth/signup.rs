//! Sign-up: a company, an email and a password make a merchant workspace with its owner.
//!
//! When the platform can send email, the address is proven before anything exists, and the
//! answer is the same whether or not it already has an account — "check your email" (202) —
//! so sign-up tells nobody which addresses are registered (as `/forgot` does not). A new
//! address gets a link that creates the workspace (`/signup/confirm/{token}`: a page with a
//! button, since mail scanners open links; `POST /api/v1/signup/confirm` for API clients); an
//! address that has an account gets a note that someone tried, with links to sign in or reset
//! the password. Both paths do the same work (a password hash, an email queued).
//!
//! Without email (a fresh install) the workspace is created at once and an address that has an
//! account is refused with 409: there is no other way to tell the person. docs/deployment.md
//! says so.

use askama::Template;
use axum::{
    Form, Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tenants::EntId;

use super::Auth;
use super::{
    FormRequest, field_errors, links, password, session,
    sessions::{self, Device},
    store,
    token::{Issued, SessionKind},
    validate::{self, Email, Problem},
};
use crate::{
    http::{AppError, ClientMeta, Page, csrf, csrf::CsrfToken, extract::ApiJson},
    i18n::Lang,
    merchant::{self, NewMerchant},
    notify::{self, Content, Email as OutgoingEmail},
};

/// How long a sign-up link works.
const CONFIRM_TTL_HOURS: i64 = 24;

#[derive(Deserialize)]
pub struct SignupRequest {
    company: String,
    email: String,
    password: String,
}

/// Validated sign-up input, or every field problem at once.
fn validate_signup(req: &SignupRequest) -> Result<(String, Email), Vec<(&'static str, Problem)>> {
    let mut problems = Vec::new();
    let company = validate::company(&req.company).map_err(|p| problems.push(("company", p))).ok();
    let email = Email::parse(&req.email).map_err(|p| problems.push(("email", p))).ok();
    if let Err(p) = validate::new_password(&req.password, email.as_ref()) {
        problems.push(("password", p));
    }
    match (company, email) {
        (Some(c), Some(e)) if problems.is_empty() => Ok((c, e)),
        _ => Err(problems),
    }
}

/// Why a sign-up did not happen: invalid fields (as message keys, so each caller words them
/// in its own language) or anything else.
enum RegisterError {
    Invalid(Vec<(&'static str, Problem)>),
    Failed(AppError),
}

impl<E: Into<AppError>> From<E> for RegisterError {
    fn from(e: E) -> Self {
        Self::Failed(e.into())
    }
}

/// What a sign-up led to.
enum Registered {
    /// The workspace exists and its owner is signed in (no email on this platform).
    Created(merchant::CreatedMerchant, Issued),
    /// A link went to the address (or, for an address with an account, a note).
    CheckEmail(Email),
}

async fn register(
    state: &Auth,
    req: SignupRequest,
    lang: Lang,
    device: &Device,
) -> Result<Registered, RegisterError> {
    let settings = state.system.get().await?;
    if !settings.signup_open {
        return Err(AppError::forbidden(
            "signup_closed",
            "sign-up is currently closed on this platform",
        )
        .into());
    }
    let (company, email) = validate_signup(&req).map_err(RegisterError::Invalid)?;
    let hash = password::hash(req.password).await?;
    if notify::enabled(&settings) {
        by_email(
            state,
            &settings,
            lang,
            NewMerchant { company, owner_email: email.clone(), owner_password_hash: hash },
        )
        .await?;
        return Ok(Registered::CheckEmail(email));
    }
    let created = merchant::create(
        &state.door.db,
        &state.migrator,
        &state.door.tenants,
        NewMerchant { company, owner_email: email, owner_password_hash: hash },
    )
    .await?;
    let issued = owner_session(state, &created, device).await?;
    Ok(Registered::Created(created, issued))
}

/// A session for a new merchant's owner.
async fn owner_session(
    state: &Auth,
    created: &merchant::CreatedMerchant,
    device: &Device,
) -> Result<Issued, AppError> {
    let opening = sessions::Opening {
        user_id: created.owner_user_id,
        kind: SessionKind::Agent,
        tenant: Some(&created.tenant),
        impersonator: None,
        proven: None,
        device,
    };
    sessions::open(&state.door, opening).await
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The email half of a sign-up: a link that creates the workspace for a new address, a note
/// for an address that has an account — the same work either way.
async fn by_email(
    state: &Auth,
    settings: &crate::platform::system::SystemSettings,
    lang: Lang,
    new: NewMerchant,
) -> Result<(), AppError> {
    let site = notify::site_name(settings);
    let existing = store::user_by_email(&state.door.db, new.owner_email.as_str()).await?;
    let mut tx = state.door.db.begin().await?;
    let mail = match existing {
        Some(_) => exists_email(state, lang, site, &new.owner_email, &new.company),
        None => {
            let bytes: [u8; 32] = rand::random();
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let pending = store::PendingSignup {
                token_hash: &digest(&token),
                email: new.owner_email.as_str(),
                company: &new.company,
                password_hash: &new.owner_password_hash,
                lang: lang.code(),
                ttl_hours: CONFIRM_TTL_HOURS as i32,
            };
            store::create_pending_signup(&mut tx, pending).await?;
            confirm_email(state, lang, site, &new.owner_email, &new.company, &token)
        }
    };
    notify::enqueue(&mut tx, settings, lang, mail).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}

fn confirm_email(
    state: &Auth,
    lang: Lang,
    site: &str,
    to: &Email,
    merchant: &str,
    token: &str,
) -> OutgoingEmail {
    let v = [("merchant", merchant), ("site", site)];
    let fill = links::fill;
    OutgoingEmail::to_person(
        "signup",
        to.as_str(),
        Content {
            subject: fill(lang.tr("email.signup_subject"), &v),
            heading: fill(lang.tr("email.signup_heading"), &v),
            paragraphs: vec![fill(lang.tr("email.signup_body"), &v)],
            action: Some((
                lang.tr("email.signup_action").to_owned(),
                state.mail.link(&format!("/signup/confirm/{token}")),
            )),
            reason: fill(lang.tr("email.signup_reason"), &v),
            ..Content::default()
        },
    )
}

fn exists_email(state: &Auth, lang: Lang, site: &str, to: &Email, merchant: &str) -> OutgoingEmail {
    let forgot = state.mail.link("/forgot");
    let v = [("merchant", merchant), ("site", site), ("forgot", forgot.as_str())];
    let fill = links::fill;
    OutgoingEmail::to_person(
        "signup_exists",
        to.as_str(),
        Content {
            subject: fill(lang.tr("email.signup_exists_subject"), &v),
            heading: fill(lang.tr("email.signup_exists_heading"), &v),
            paragraphs: vec![
                fill(lang.tr("email.signup_exists_body"), &v),
                fill(lang.tr("email.signup_exists_forgot"), &v),
            ],
            action: Some((
                lang.tr("email.signup_exists_action").to_owned(),
                state.mail.link("/login"),
            )),
            reason: fill(lang.tr("email.signup_exists_reason"), &v),
            ..Content::default()
        },
    )
}

// ---------------------------------------------------------------------------------------
// The API

#[derive(Serialize)]
struct SignupResponse {
    ent_id: EntId,
    token: String,
    token_type: &'static str,
    expires_at: chrono::DateTime<chrono::Utc>,
}

fn api_error(e: RegisterError) -> AppError {
    match e {
        RegisterError::Invalid(problems) => field_errors(&problems),
        RegisterError::Failed(e) => e,
    }
}

/// `POST /api/v1/signup {company, email, password}` → 201 a session in the new workspace; on
/// a platform that sends email, 202 `{status: "check_email", email}` whatever the address.
pub(super) async fn api(
    state: State<Auth>,
    meta: ClientMeta,
    device: Device,
    lang: Lang,
    jar: CookieJar,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<Response, AppError> {
    match register(&state, req, lang, &device).await.map_err(api_error)? {
        Registered::Created(created, issued) => {
            Ok(created_response(&state, &meta, jar, &created, issued))
        }
        Registered::CheckEmail(email) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "status": "check_email", "email": email.as_str() })),
        )
            .into_response()),
    }
}

fn created_response(
    state: &Auth,
    meta: &ClientMeta,
    jar: CookieJar,
    created: &merchant::CreatedMerchant,
    issued: Issued,
) -> Response {
    let jar = jar.add(session::session_cookie(&issued, meta, &state.config));
    let body = SignupResponse {
        ent_id: created.tenant.ent_id.clone(),
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
    };
    (StatusCode::CREATED, jar, Json(body)).into_response()
}

#[derive(Deserialize)]
pub(super) struct ConfirmRequest {
    token: String,
}

/// `POST /api/v1/signup/confirm {token}` (the emailed link's token) → 201 a session in the
/// new workspace.
pub(super) async fn confirm_api(
    state: State<Auth>,
    meta: ClientMeta,
    device: Device,
    jar: CookieJar,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> Result<Response, AppError> {
    let (created, issued) = confirm(&state, &req.token, &device).await?;
    Ok(created_response(&state, &meta, jar, &created, issued))
}

/// Creates the workspace a confirmed link stands for (once: the link is spent by taking it),
/// its owner's address counted as verified.
async fn confirm(
    state: &Auth,
    token: &str,
    device: &Device,
) -> Result<(merchant::CreatedMerchant, Issued), AppError> {
    let pending = store::take_pending_signup(&state.door.db, &digest(token)).await?;
    let Some((email, company, hash)) = pending else {
        return Err(AppError::bad_request_status(
            StatusCode::NOT_FOUND,
            "invalid_token",
            "this sign-up link was used already, has expired, or is not valid",
        ));
    };
    let owner_email = Email::parse(&email).map_err(|_| AppError::NotFound)?;
    let new = NewMerchant { company, owner_email, owner_password_hash: hash };
    let created =
        merchant::create(&state.door.db, &state.migrator, &state.door.tenants, new).await?;
    store::mark_email_verified(&mut *state.door.db.acquire().await?, created.owner_user_id).await?;
    let issued = owner_session(state, &created, device).await?;
    Ok((created, issued))
}

// ---------------------------------------------------------------------------------------
// The pages

#[derive(Template)]
#[template(path = "auth/signup.html")]
struct SignupPage {
    lang: Lang,
    csrf_token: String,
    company: String,
    email: String,
    company_error: Option<String>,
    email_error: Option<String>,
    password_error: Option<String>,
    form_error: Option<String>,
    /// The address a link went to ("check your email").
    sent_to: Option<String>,
    /// The sign-up link's page: the workspace it creates, and where its form goes.
    confirm: Option<(String, String)>,
}

impl SignupPage {
    fn new(lang: Lang, csrf: &CsrfToken) -> Self {
        Self {
            lang,
            csrf_token: csrf.value().to_owned(),
            company: String::new(),
            email: String::new(),
            company_error: None,
            email_error: None,
            password_error: None,
            form_error: None,
            sent_to: None,
            confirm: None,
        }
    }
}

pub(super) async fn page(lang: Lang, csrf: CsrfToken) -> Result<Response, AppError> {
    let page = SignupPage::new(lang, &csrf);
    Ok((csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    fields: SignupRequest,
}

pub(super) async fn form(
    state: State<Auth>,
    req: FormRequest,
    Form(form): Form<SignupForm>,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    let mut page = SignupPage::new(lang, &csrf);
    page.company = form.fields.company.clone();
    page.email = form.fields.email.clone();
    if csrf::verify(&headers, Some(&form.csrf_token)).is_err() {
        page.form_error = Some(lang.tr("validation.csrf").to_owned());
        return Ok((StatusCode::FORBIDDEN, csrf, Page(page)).into_response());
    }
    match register(&state, form.fields, lang, &device).await {
        Ok(Registered::Created(_, issued)) => {
            let jar = jar.add(session::session_cookie(&issued, &meta, &state.config));
            Ok((jar, Redirect::to("/app")).into_response())
        }
        Ok(Registered::CheckEmail(email)) => {
            page.sent_to = Some(email.as_str().to_owned());
            Ok((StatusCode::ACCEPTED, csrf, Page(page)).into_response())
        }
        Err(RegisterError::Invalid(problems)) => {
            let message = |field: &str| {
                problems.iter().find(|(f, _)| *f == field).map(|(_, key)| lang.tr(key).to_owned())
            };
            page.company_error = message("company");
            page.email_error = message("email");
            page.password_error = message("password");
            Ok((StatusCode::UNPROCESSABLE_ENTITY, csrf, Page(page)).into_response())
        }
        Err(RegisterError::Failed(AppError::Conflict { code: "email_taken", .. })) => {
            page.email_error = Some(lang.tr("validation.email_taken").to_owned());
            Ok((StatusCode::CONFLICT, csrf, Page(page)).into_response())
        }
        Err(RegisterError::Failed(AppError::Forbidden { code: "signup_closed", .. })) => {
            page.form_error = Some(lang.tr("validation.signup_closed").to_owned());
            Ok((StatusCode::FORBIDDEN, csrf, Page(page)).into_response())
        }
        Err(RegisterError::Failed(other)) => Err(other),
    }
}

/// The emailed link: what it will create, and a button (nothing happens on a GET, which mail
/// scanners make).
pub(super) async fn confirm_page(
    state: State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let pending = store::find_pending_signup(&state.door.db, &digest(&token)).await?;
    let mut page = SignupPage::new(lang, &csrf);
    match pending {
        Some((company, email)) => {
            page.company = company;
            page.email = email;
            page.confirm = Some((page.company.clone(), format!("/signup/confirm/{token}")));
            Ok((csrf, Page(page)).into_response())
        }
        None => {
            page.form_error = Some(lang.tr("signup.link_invalid").to_owned());
            Ok((StatusCode::NOT_FOUND, csrf, Page(page)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    csrf_token: String,
}

pub(super) async fn confirm_form(
    state: State<Auth>,
    req: FormRequest,
    Path(token): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    csrf::verify(&headers, Some(&form.csrf_token))?;
    match confirm(&state, &token, &device).await {
        Ok((_, issued)) => {
            let jar = jar.add(session::session_cookie(&issued, &meta, &state.config));
            Ok((jar, Redirect::to("/app")).into_response())
        }
        Err(e @ (AppError::ClientError { .. } | AppError::Conflict { .. })) => {
            let mut page = SignupPage::new(lang, &csrf);
            page.form_error = Some(match e {
                AppError::Conflict { .. } => lang.tr("validation.email_taken").to_owned(),
                _ => lang.tr("signup.link_invalid").to_owned(),
            });
            Ok((StatusCode::NOT_FOUND, csrf, Page(page)).into_response())
        }
        Err(other) => Err(other),
    }
}

/// Forgets sign-up links that expired (the purge job).
pub async fn purge(pool: &sqlx::PgPool) -> sqlx::Result<u64> {
    store::purge_pending_signups(pool).await
}

//! Two-step verification (TOTP, [`super::totp`]) for agents and merchant admins.
//!
//! Anyone can turn it on for themselves (`/api/v1/me/totp`: enrol with a QR code, confirm
//! with a code, get ten recovery codes); a merchant can require it of its whole team
//! (`require_2fa`), and then whoever has none sets it up at their next sign-in before getting
//! a session. A user with a second factor gives its code at every password sign-in, whichever
//! workspace they choose. Single sign-on from the merchant's own system (`/sso`) is vouched
//! for by that system and asks for no code. The factor belongs to the person (one per
//! account, shared by all their workspaces and the platform console).

use askama::Template;
use axum::{
    Form, Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use tenants::{TenantId, TenantTx};

use super::Auth;
use super::{
    FormRequest, LoginOutcome, NextQuery, Proven,
    accounts::Actor,
    after_password,
    session::{self, AgentSession, SECOND_FACTOR_COOKIE},
    sessions::Device,
    store,
    token::{Issued, TokenKind},
    totp,
};
use crate::{
    http::{
        AppError, Page, client::ClientMeta, csrf, csrf::CsrfToken, extract::ApiJson,
        local_redirect_target,
    },
    i18n::Lang,
};

pub fn wrong_code() -> AppError {
    AppError::bad_request_status(
        StatusCode::UNAUTHORIZED,
        "invalid_code",
        "that code is not valid or was already used; try the next one or a recovery code",
    )
}

pub fn code_required() -> AppError {
    AppError::bad_request_status(
        StatusCode::UNAUTHORIZED,
        "totp_required",
        "this account signs in with a code from its authenticator app: send it as `code`",
    )
}

/// Whether the merchant requires a second factor of its agents.
pub async fn required_by(state: &Auth, tenant: TenantId) -> Result<bool, AppError> {
    let mut tx = TenantTx::begin(&state.door.db, tenant).await?;
    let required = crate::merchant::settings::store::get(&mut tx, "require_2fa").await?;
    tx.commit().await?;
    Ok(required.is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true")))
}

/// A session in `tenant` for a user who proved who they are — unless the merchant requires
/// a second factor they have not set up, which they enrol first.
pub(super) async fn checked_session(
    state: &Auth,
    proven: Proven,
    tenant: TenantId,
    device: &Device,
) -> Result<LoginOutcome, AppError> {
    let user_id = proven.user_id;
    if required_by(state, tenant).await? && !totp::is_enabled(&state.door.db, user_id).await? {
        let email = account(state, user_id).await?;
        let enrolment = match totp::pending_enrolment(&state.door.db, user_id, &email).await? {
            Some(e) => e,
            None => totp::begin_enrolment(&state.door.db, user_id, &email).await?,
        };
        let pending =
            state.door.tokens.issue_second_factor(user_id, Some(tenant), proven.generation)?;
        return Ok(LoginOutcome::Enrol { pending, enrolment });
    }
    super::session_for(state, proven, tenant, device).await
}

/// What a user who proved their mailbox (an emailed invitation or reset link) gets in
/// `tenant`: their second factor's step first if they have one, else [`checked_session`].
pub(super) async fn after_link(
    state: &Auth,
    proven: Proven,
    tenant: TenantId,
    device: &Device,
) -> Result<LoginOutcome, AppError> {
    if totp::is_enabled(&state.door.db, proven.user_id).await? {
        let pending = state.door.tokens.issue_second_factor(
            proven.user_id,
            Some(tenant),
            proven.generation,
        )?;
        return Ok(LoginOutcome::NeedCode { pending });
    }
    checked_session(state, proven, tenant, device).await
}

/// Sets up the authenticator a user is enrolling while signing in (the merchant requires
/// one), if `code` comes from it and their credentials are still the ones they proved: the
/// recovery codes and what they prove now.
async fn enrol_while_signing_in(
    state: &Auth,
    proven: Proven,
    code: &str,
) -> Result<Option<(Vec<String>, Proven)>, AppError> {
    let mut tx = state.door.db.begin().await?;
    super::accounts::check_gen(&mut tx, proven).await?;
    let actor = Actor::Themself { user_id: proven.user_id, session: None };
    let Some((codes, changed)) =
        super::accounts::enable_two_factor(&mut tx, &actor, proven.user_id, code).await?
    else {
        return Ok(None);
    };
    tx.commit().await?;
    changed.ended.close_sockets(&state.hub);
    Ok(Some((codes, Proven { user_id: proven.user_id, generation: changed.generation })))
}

/// The name authenticator apps show for the account.
async fn account(state: &Auth, user_id: i64) -> Result<String, AppError> {
    let mut conn = state.door.db.acquire().await?;
    let user = store::user_by_id(&mut conn, user_id).await?.ok_or(AppError::Unauthorized)?;
    Ok(user.email)
}

/// What the API answers when the user must set up a second factor before signing in.
#[derive(Serialize)]
pub struct EnrolOut {
    enrolment: EnrolmentOut,
}

#[derive(Serialize)]
struct EnrolmentOut {
    /// For `POST /api/v1/login/enrol` (10 minutes).
    pending_token: String,
    secret: String,
    otpauth_uri: String,
    /// The URI as a QR code (an SVG document).
    qr_svg: String,
}

impl EnrolOut {
    pub fn new(pending: Issued, e: totp::Enrolment) -> Self {
        Self {
            enrolment: EnrolmentOut {
                pending_token: pending.token,
                secret: e.secret,
                otpauth_uri: e.otpauth_uri,
                qr_svg: e.qr_svg,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// The sign-in step (pages)

#[derive(PartialEq, Eq)]
enum Step {
    Code,
    Enrol,
    Recovery,
}

#[derive(Template)]
#[template(path = "auth/two_factor.html")]
struct TwoFactorPage {
    lang: Lang,
    csrf_token: String,
    next: String,
    step: Step,
    form_error: Option<String>,
    enrolment: Option<totp::Enrolment>,
    recovery_codes: Vec<String>,
}

impl TwoFactorPage {
    /// Where the recovery codes page leads.
    fn continue_to(&self) -> &str {
        if self.next.is_empty() { "/app" } else { &self.next }
    }
}

/// Who the pending cookie says passed the password, and (for an enrolment) the merchant.
fn pending(state: &Auth, jar: &CookieJar) -> Option<(Proven, Option<TenantId>)> {
    let token = jar.get(SECOND_FACTOR_COOKIE)?;
    let claims = state.door.tokens.verify(token.value(), TokenKind::SecondFactor).ok()?;
    let proven = Proven { user_id: claims.user_id().ok()?, generation: claims.generation? };
    Some((proven, claims.tid.map(TenantId)))
}

pub(super) async fn page(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Result<Response, AppError> {
    let Some((Proven { user_id, .. }, _)) = pending(&state, &jar) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let next = q.next.as_deref().and_then(local_redirect_target).unwrap_or_default();
    let mut page = TwoFactorPage {
        lang,
        csrf_token: csrf.value().to_owned(),
        next,
        step: Step::Code,
        form_error: None,
        enrolment: None,
        recovery_codes: Vec::new(),
    };
    if !totp::is_enabled(&state.door.db, user_id).await? {
        let email = account(&state, user_id).await?;
        page.step = Step::Enrol;
        page.enrolment = totp::pending_enrolment(&state.door.db, user_id, &email).await?;
        if page.enrolment.is_none() {
            page.enrolment = Some(totp::begin_enrolment(&state.door.db, user_id, &email).await?);
        }
    }
    Ok((csrf, Page(page)).into_response())
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

impl TwoFactorPage {
    /// The code step again, saying the code was wrong.
    fn wrong_code(lang: Lang, csrf: &CsrfToken, next: &str) -> Self {
        Self {
            lang,
            csrf_token: csrf.value().to_owned(),
            next: next.to_owned(),
            step: Step::Code,
            form_error: Some(lang.tr("platform.login.wrong_code").to_owned()),
            enrolment: None,
            recovery_codes: Vec::new(),
        }
    }
}

/// What a right `code` of a user with a second factor opens: the workspace they chose, or
/// what their password alone would have (`None`: the code is wrong).
async fn signed_in(
    state: &Auth,
    proven: Proven,
    tenant: Option<tenants::TenantId>,
    device: &Device,
    code: &str,
) -> Result<Option<LoginOutcome>, AppError> {
    if !totp::verify(&state.door.db, proven.user_id, code).await? {
        return Ok(None);
    }
    Ok(Some(match tenant {
        Some(tenant) => checked_session(state, proven, tenant, device).await?,
        None => after_password(state, proven, None, device).await?,
    }))
}

/// The code of a user with a second factor, or the first code of one being set up.
pub(super) async fn code_form(
    State(state): State<Auth>,
    req: FormRequest,
    Form(form): Form<CodeForm>,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    csrf::verify(&headers, Some(&form.csrf_token))?;
    let Some((proven, tenant)) = pending(&state, &jar) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let user_id = proven.user_id;
    let next = local_redirect_target(&form.next).unwrap_or_default();
    let mut page = TwoFactorPage::wrong_code(lang, &csrf, &next);
    if totp::is_enabled(&state.door.db, user_id).await? {
        return Ok(match signed_in(&state, proven, tenant, &device, &form.code).await? {
            Some(outcome) => super::form_outcome(outcome, &next, &meta, &state, jar),
            None => (StatusCode::UNAUTHORIZED, csrf, Page(page)).into_response(),
        });
    }
    // Setting it up because the merchant requires it.
    let Some(tenant) = tenant else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some((codes, proven)) = enrol_while_signing_in(&state, proven, &form.code).await? else {
        let email = account(&state, user_id).await?;
        page.step = Step::Enrol;
        page.enrolment = totp::pending_enrolment(&state.door.db, user_id, &email).await?;
        return Ok((StatusCode::UNAUTHORIZED, csrf, Page(page)).into_response());
    };
    let LoginOutcome::Session { issued, .. } =
        super::session_for(&state, proven, tenant, &device).await?
    else {
        return Err(AppError::Unauthorized);
    };
    let jar = jar
        .remove(session::removal(SECOND_FACTOR_COOKIE))
        .remove(session::removal(session::SELECT_COOKIE))
        .add(session::session_cookie(&issued, &meta, &state.config));
    page.step = Step::Recovery;
    page.form_error = None;
    page.recovery_codes = codes;
    Ok((jar, csrf, Page(page)).into_response())
}

// ---------------------------------------------------------------------------------------
// The sign-in step (API)

#[derive(Deserialize)]
pub(super) struct EnrolRequest {
    pending_token: String,
    code: String,
}

#[derive(Serialize)]
struct EnrolledOut {
    token: String,
    token_type: &'static str,
    expires_at: chrono::DateTime<chrono::Utc>,
    ent_id: tenants::EntId,
    tenant_name: String,
    /// Shown once.
    recovery_codes: Vec<String>,
}

/// `{pending_token, code}` (from a login that answered `enrolment`) → the session, with the
/// recovery codes.
pub(super) async fn enrol_api(
    State(state): State<Auth>,
    meta: ClientMeta,
    device: Device,
    jar: CookieJar,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> Result<Response, AppError> {
    let claims = state.door.tokens.verify(&req.pending_token, TokenKind::SecondFactor)?;
    let proven = Proven {
        user_id: claims.user_id()?,
        generation: claims.generation.ok_or(AppError::Unauthorized)?,
    };
    let tenant = claims.tid.map(TenantId).ok_or(AppError::Unauthorized)?;
    let (codes, proven) =
        enrol_while_signing_in(&state, proven, &req.code).await?.ok_or_else(wrong_code)?;
    let LoginOutcome::Session { tenant, issued } =
        super::session_for(&state, proven, tenant, &device).await?
    else {
        return Err(AppError::Unauthorized);
    };
    let jar = jar.add(session::session_cookie(&issued, &meta, &state.config));
    let body = EnrolledOut {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
        ent_id: tenant.ent_id.clone(),
        tenant_name: tenant.name.clone(),
        recovery_codes: codes,
    };
    Ok((jar, Json(body)).into_response())
}

// ---------------------------------------------------------------------------------------
// One's own second factor

#[derive(Serialize)]
pub(super) struct StatusOut {
    enabled: bool,
    recovery_codes_left: i64,
    /// The merchant requires it (it cannot be turned off here).
    required: bool,
}

pub(super) async fn status(
    State(state): State<Auth>,
    session: AgentSession,
) -> Result<Json<StatusOut>, AppError> {
    Ok(Json(StatusOut {
        enabled: totp::is_enabled(&state.door.db, session.user_id).await?,
        recovery_codes_left: totp::recovery_codes_left(&state.door.db, session.user_id).await?,
        required: required_by(&state, session.tenant.id).await?,
    }))
}

#[derive(Serialize)]
pub(super) struct BeginOut {
    secret: String,
    otpauth_uri: String,
    qr_svg: String,
}

/// Offers a new secret to scan; nothing changes until it is confirmed with a code.
pub(super) async fn begin(
    State(state): State<Auth>,
    session: AgentSession,
) -> Result<Json<BeginOut>, AppError> {
    Actor::themself(&session)?;
    if totp::is_enabled(&state.door.db, session.user_id).await? {
        return Err(AppError::conflict(
            "totp_enabled",
            None,
            "two-step verification is on already; turn it off first to set up a new app",
        ));
    }
    let email = account(&state, session.user_id).await?;
    let e = totp::begin_enrolment(&state.door.db, session.user_id, &email).await?;
    Ok(Json(BeginOut { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg }))
}

#[derive(Deserialize)]
pub(super) struct CodeRequest {
    code: String,
}

#[derive(Serialize)]
pub(super) struct ConfirmedOut {
    /// Shown once.
    recovery_codes: Vec<String>,
}

/// Turns it on with the first code from the new authenticator; the person's other
/// sessions end.
pub(super) async fn confirm(
    State(state): State<Auth>,
    session: AgentSession,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<Json<ConfirmedOut>, AppError> {
    let actor = Actor::themself(&session)?;
    let mut tx = state.door.db.begin().await?;
    let (codes, changed) =
        super::accounts::enable_two_factor(&mut tx, &actor, session.user_id, &req.code)
            .await?
            .ok_or_else(wrong_code)?;
    tx.commit().await?;
    changed.ended.close_sockets(&state.hub);
    tracing::info!(user = session.user_id, "two-step verification turned on");
    Ok(Json(ConfirmedOut { recovery_codes: codes }))
}

/// Turns it off, with a current code (or a recovery code) as proof.
pub(super) async fn disable(
    State(state): State<Auth>,
    session: AgentSession,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<StatusCode, AppError> {
    let actor = Actor::themself(&session)?;
    if required_by(&state, session.tenant.id).await? {
        return Err(AppError::conflict(
            "totp_required",
            None,
            "this workspace requires two-step verification of every agent",
        ));
    }
    if crate::platform::admin_email(&state.door.db, session.user_id).await?.is_some() {
        return Err(AppError::conflict(
            "totp_required",
            None,
            "platform admins always sign in with two-step verification",
        ));
    }
    if !totp::verify(&state.door.db, session.user_id, &req.code).await? {
        return Err(wrong_code());
    }
    let mut tx = state.door.db.begin().await?;
    let changed = super::accounts::clear_two_factor(&mut tx, &actor, session.user_id).await?;
    tx.commit().await?;
    changed.ended.close_sockets(&state.hub);
    tracing::info!(user = session.user_id, "two-step verification turned off");
    Ok(StatusCode::NO_CONTENT)
}

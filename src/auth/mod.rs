//! Sign-up, login, workspace selection and logout — as pages and as JSON. Login and the
//! choice of workspace are here; the rest has a file each (`signup`, `logout`, `links`,
//! `two_factor`, `oauth`, `sso`, `account`), as has the limit on attempts (`rate_limit`).

pub mod account;
pub mod accounts;
pub mod api_tokens;
pub mod ctx;
pub mod links;
mod logout;
pub mod oauth;
pub mod password;
mod rate_limit;
mod select;
pub mod session;
pub mod sessions;
pub mod signup;
pub mod sso;
pub mod store;
pub mod token;
pub mod totp;
pub mod two_factor;
pub mod validate;

use std::sync::Arc;

use axum::extract::FromRef;

use askama::Template;
use axum::{
    Form, Json,
    handler::Handler,
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{MethodRouter, get, post},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use tenants::{EntId, Tenant, TenantStatus};

pub use self::rate_limit::{AuthRateLimit, ClientIpKey};
use self::{
    session::SELECT_COOKIE,
    sessions::Device,
    store::Membership,
    token::{Issued, SessionKind},
    validate::{Email, Problem},
};
use crate::{
    config::Config,
    http::{
        AppError, FieldErrors, Page, Routes, Scope, client::ClientMeta, csrf, csrf::CsrfToken,
        extract::ApiJson, local_redirect_target,
    },
    i18n::Lang,
};

/// What the sign-in flows work with: the session door (pool, registry, token keys, plans),
/// the configuration, the mail queue, the system settings (sign-up open, the site's name),
/// the sign-in providers, the schema migrator (a sign-up provisions a merchant) and the hub
/// (an ended session's sockets close).
#[derive(Clone)]
pub struct Auth {
    pub door: Arc<ctx::Door>,
    pub config: Arc<Config>,
    pub mail: crate::notify::Mail,
    pub system: Arc<crate::platform::system::SystemCache>,
    pub oauth: Arc<oauth::Providers>,
    pub migrator: Arc<tenants::TenantMigrator>,
    pub hub: Arc<crate::realtime::hub::Hub>,
}

pub fn routes<S>(config: &Config) -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Auth: FromRef<S>,
    Arc<ctx::Door>: FromRef<S>,
    Arc<tenants::Registry>: FromRef<S>,
{
    let limit = &AuthRateLimit::new(config);
    Routes::new()
        // login, the choice of workspace, logout
        .get("/login", Scope::Public, login_page)
        .add(Method::POST, "/login", Scope::Public, limited(limit, login_form))
        .get("/login/select", Scope::Public, select::page)
        .add(Method::POST, "/login/select", Scope::Public, limited(limit, select::form))
        .post("/logout", Scope::Public, logout::form)
        .add(Method::POST, "/api/v1/login", Scope::Public, limited(limit, login_api))
        .add(Method::POST, "/api/v1/login/select", Scope::Public, limited(limit, select::api))
        .post("/api/v1/logout", Scope::Public, logout::api)
        // account
        .add(Method::POST, "/api/v1/me/password", Scope::Tenant, limited(limit, account::change))
        .writable_when_read_only()
        .get("/api/v1/me/sessions", Scope::Tenant, account::list_sessions)
        .delete("/api/v1/me/sessions", Scope::Tenant, account::end_other_sessions)
        .writable_when_read_only()
        .delete("/api/v1/me/sessions/{id}", Scope::Tenant, account::end_session)
        .writable_when_read_only()
        // two_factor
        .get("/login/2fa", Scope::Public, two_factor::page)
        .add(Method::POST, "/login/2fa", Scope::Public, limited(limit, two_factor::code_form))
        .add(
            Method::POST,
            "/api/v1/login/enrol",
            Scope::Public,
            limited(limit, two_factor::enrol_api),
        )
        .get("/api/v1/me/totp", Scope::Tenant, two_factor::status)
        .post("/api/v1/me/totp", Scope::Tenant, two_factor::begin)
        .writable_when_read_only()
        .add(
            Method::POST,
            "/api/v1/me/totp/confirm",
            Scope::Tenant,
            limited(limit, two_factor::confirm),
        )
        .writable_when_read_only()
        .add(
            Method::POST,
            "/api/v1/me/totp/disable",
            Scope::Tenant,
            limited(limit, two_factor::disable),
        )
        .writable_when_read_only()
        // signup
        .get("/signup", Scope::Public, signup::page)
        .add(Method::POST, "/signup", Scope::Public, limited(limit, signup::form))
        .add(Method::POST, "/api/v1/signup", Scope::Public, limited(limit, signup::api))
        .get("/signup/confirm/{token}", Scope::Public, signup::confirm_page)
        .add(
            Method::POST,
            "/signup/confirm/{token}",
            Scope::Public,
            limited(limit, signup::confirm_form),
        )
        .add(
            Method::POST,
            "/api/v1/signup/confirm",
            Scope::Public,
            limited(limit, signup::confirm_api),
        )
        // sso
        .get("/other/internalToken", Scope::Public, sso::internal_token)
        .add(Method::GET, "/sso", Scope::Public, get(sso::redeem).layer(limit.clone()))
        .post("/api/v1/settings/sso_secret", Scope::Tenant, sso::new_secret)
        .admin()
        .feature(billing::Feature::Sso)
        // links
        .get("/invite/{token}", Scope::Public, links::invite_page)
        .add(Method::POST, "/invite/{token}", Scope::Public, limited(limit, links::invite_form))
        .get("/forgot", Scope::Public, links::forgot_page)
        .add(Method::POST, "/forgot", Scope::Public, limited(limit, links::forgot_form))
        .get("/reset/{token}", Scope::Public, links::reset_page)
        .add(Method::POST, "/reset/{token}", Scope::Public, limited(limit, links::reset_form))
        .get("/verify/{token}", Scope::Public, links::verify_page)
        // oauth
        .add(
            Method::GET,
            "/auth/oauth/{slug}",
            Scope::Public,
            get(oauth::start).layer(limit.clone()),
        )
        .add(
            Method::GET,
            "/auth/oauth/{slug}/callback",
            Scope::Public,
            get(oauth::callback).layer(limit.clone()),
        )
        .add(Method::POST, "/auth/oauth/{slug}/link", Scope::Public, limited(limit, oauth::link))
        .get("/api/v1/me/identities", Scope::Tenant, oauth::list_mine)
        .delete("/api/v1/me/identities/{slug}", Scope::Tenant, oauth::unlink)
        .merge(api_tokens::routes())
}

/// What the sign-in forms need from a request besides their body.
pub(crate) struct FormRequest {
    pub lang: Lang,
    pub meta: ClientMeta,
    pub device: Device,
    pub csrf: CsrfToken,
    pub headers: HeaderMap,
    pub jar: CookieJar,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for FormRequest {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        let unreadable = |_| AppError::bad_request("bad_request", "unreadable request");
        let Ok(meta) = ClientMeta::from_request_parts(parts, state).await;
        let Ok(device) = Device::from_request_parts(parts, state).await;
        Ok(Self {
            lang: Lang::from_request_parts(parts, state).await.map_err(unreadable)?,
            meta,
            device,
            csrf: CsrfToken::from_request_parts(parts, state).await.map_err(unreadable)?,
            headers: parts.headers.clone(),
            jar: CookieJar::from_headers(&parts.headers),
        })
    }
}

/// Field problems (message keys) as a 422 with English messages, every field at once.
fn field_errors(problems: &[(&'static str, Problem)]) -> AppError {
    let fields: FieldErrors =
        problems.iter().map(|(f, key)| ((*f).into(), Lang::En.tr(key).into())).collect();
    AppError::Validation(fields)
}

/// A POST route behind the shared sign-up/login rate limit.
pub(crate) fn limited<S, H, T>(limit: &AuthRateLimit, handler: H) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S>,
    T: 'static,
{
    post(handler).layer(limit.clone())
}

// ---------------------------------------------------------------------------------------
// Login

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
    /// Pick this workspace directly when the user belongs to several.
    #[serde(default)]
    ent_id: Option<String>,
    /// The code from the user's authenticator app (or a recovery code), for users with a
    /// second factor.
    #[serde(default)]
    code: Option<String>,
}

enum LoginOutcome {
    Session {
        tenant: Arc<Tenant>,
        issued: Issued,
    },
    Choose {
        tenants: Vec<Membership>,
        issued: Issued,
    },
    /// The password was right; the code from the user's authenticator app is still needed.
    NeedCode {
        pending: Issued,
    },
    /// The merchant requires a second factor this user has not set up: enrol first.
    Enrol {
        pending: Issued,
        enrolment: totp::Enrolment,
    },
}

/// Who proved who they are, and the credential generation they proved it at (a session
/// opens only while it is still current: auth::sessions).
#[derive(Clone, Copy, Debug)]
pub struct Proven {
    pub user_id: i64,
    pub generation: i64,
}

/// The user whose email and password these are. Does the same work whether or not the
/// email exists, so timing does not tell which accounts exist.
pub(crate) async fn check_password(
    db: &sqlx::PgPool,
    email: &str,
    password: String,
) -> Result<Option<Proven>, AppError> {
    // Not an address anyone could have signed up with: same work, same answer.
    let email = match Email::parse(email) {
        Ok(email) if password.len() <= 1024 => email,
        _ => {
            password::verify(password, None).await;
            return Ok(None);
        }
    };
    let user = store::user_by_email(db, email.as_str()).await?;
    let (proven, stored) = match user {
        Some(u) => (Some(Proven { user_id: u.id, generation: u.credential_gen }), u.password_hash),
        None => (None, None),
    };
    let valid = password::verify(password, stored).await;
    Ok(proven.filter(|_| valid))
}

/// Checks the password (and the second factor of a user who has one) and decides what the
/// user gets: a session, a choice between workspaces, or a second-factor step.
async fn authenticate(
    state: &Auth,
    req: LoginRequest,
    device: &Device,
) -> Result<LoginOutcome, AppError> {
    let proven = check_password(&state.door.db, &req.email, req.password)
        .await?
        .ok_or(AppError::InvalidCredentials)?;
    let user_id = proven.user_id;
    if totp::is_enabled(&state.door.db, user_id).await? {
        match req.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => {
                let pending =
                    state.door.tokens.issue_second_factor(user_id, None, proven.generation)?;
                return Ok(LoginOutcome::NeedCode { pending });
            }
            Some(code) if !totp::verify(&state.door.db, user_id, code).await? => {
                return Err(two_factor::wrong_code());
            }
            Some(_) => {}
        }
    }
    after_password(state, proven, req.ent_id.as_deref(), device).await
}

/// What a user who proved who they are gets: their workspace's session (or its second-factor
/// enrolment), or a choice between workspaces.
async fn after_password(
    state: &Auth,
    proven: Proven,
    ent_id: Option<&str>,
    device: &Device,
) -> Result<LoginOutcome, AppError> {
    let user_id = proven.user_id;
    let memberships = store::memberships(&state.door.db, user_id).await?;
    store::touch_login(&state.door.db, user_id).await?;
    let chosen = match ent_id {
        Some(ent_id) => Some(
            memberships
                .iter()
                .find(|m| m.ent_id.as_str() == ent_id)
                .ok_or(AppError::InvalidCredentials)?,
        ),
        None if memberships.len() == 1 => memberships.first(),
        None if memberships.is_empty() => {
            return Err(AppError::forbidden(
                "no_workspace",
                "this account does not belong to any merchant workspace",
            ));
        }
        None => None,
    };
    match chosen {
        Some(m) => two_factor::checked_session(state, proven, m.tenant_id, device).await,
        None => Ok(LoginOutcome::Choose {
            issued: state.door.tokens.issue_select(user_id, proven.generation)?,
            tenants: memberships,
        }),
    }
}

/// A session in `tenant_id` for someone who proved who they are: refused while the merchant
/// is suspended or their access to it is turned off.
async fn session_for(
    state: &Auth,
    proven: Proven,
    tenant_id: tenants::TenantId,
    device: &Device,
) -> Result<LoginOutcome, AppError> {
    let tenant = state.door.tenants.by_id(tenant_id).await?.ok_or(AppError::InvalidCredentials)?;
    if tenant.status == TenantStatus::Suspended {
        return Err(AppError::TenantSuspended);
    }
    let mut tx = tenants::TenantTx::begin(&state.door.db, tenant.id).await?;
    let active = store::active_agent_by_user(&mut tx, proven.user_id).await?;
    tx.commit().await?;
    if active.is_none() {
        return Err(account_disabled());
    }
    let opening = sessions::Opening {
        user_id: proven.user_id,
        kind: SessionKind::Agent,
        tenant: Some(&tenant),
        impersonator: None,
        proven: Some(proven.generation),
        device,
    };
    let issued = sessions::open(&state.door, opening).await?;
    Ok(LoginOutcome::Session { tenant, issued })
}

/// A person whose access to the workspace was turned off by its admins.
pub fn account_disabled() -> AppError {
    AppError::forbidden(
        "account_disabled",
        "your access to this workspace has been turned off by its admins",
    )
}

#[derive(Serialize)]
#[serde(untagged)]
enum LoginResponse {
    Session {
        token: String,
        token_type: &'static str,
        expires_at: chrono::DateTime<chrono::Utc>,
        ent_id: EntId,
        tenant_name: String,
    },
    Choose {
        select_token: String,
        expires_at: chrono::DateTime<chrono::Utc>,
        tenants: Vec<Membership>,
    },
}

fn login_response(
    outcome: LoginOutcome,
    meta: &ClientMeta,
    state: &Auth,
    jar: CookieJar,
) -> Result<Response, AppError> {
    Ok(match outcome {
        LoginOutcome::Session { tenant, issued } => {
            let jar = jar.add(session::session_cookie(&issued, meta, &state.config));
            let body = LoginResponse::Session {
                token: issued.token,
                token_type: "Bearer",
                expires_at: issued.expires_at,
                ent_id: tenant.ent_id.clone(),
                tenant_name: tenant.name.clone(),
            };
            (jar, Json(body)).into_response()
        }
        LoginOutcome::Choose { tenants, issued } => Json(LoginResponse::Choose {
            select_token: issued.token,
            expires_at: issued.expires_at,
            tenants,
        })
        .into_response(),
        LoginOutcome::NeedCode { .. } => return Err(two_factor::code_required()),
        LoginOutcome::Enrol { pending, enrolment } => {
            Json(two_factor::EnrolOut::new(pending, enrolment)).into_response()
        }
    })
}

async fn login_api(
    state: axum::extract::State<Auth>,
    meta: ClientMeta,
    device: Device,
    jar: CookieJar,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, AppError> {
    let outcome = authenticate(&state, req, &device).await?;
    login_response(outcome, &meta, &state, jar)
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    lang: Lang,
    csrf_token: String,
    email: String,
    next: String,
    form_error: Option<String>,
    /// Arrived after setting a new password through an emailed link.
    reset: bool,
    /// "Continue with …" buttons for the enabled sign-in providers.
    providers: Vec<oauth::Button>,
}

impl LoginPage {
    /// Where a provider button goes (back to `next` afterwards).
    fn provider_href(&self, slug: &str) -> String {
        if self.next.is_empty() {
            format!("/auth/oauth/{slug}")
        } else {
            format!("/auth/oauth/{slug}?next={}", urlencode(&self.next))
        }
    }

    fn continue_label(&self, name: &str) -> String {
        links::fill(self.lang.tr("login.continue_with"), &[("name", name)])
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    reset: Option<String>,
}

async fn login_page(
    state: axum::extract::State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = q.next.as_deref().and_then(local_redirect_target).unwrap_or_default();
    let page = LoginPage {
        lang,
        csrf_token: csrf.value().to_owned(),
        email: String::new(),
        next,
        form_error: None,
        reset: q.reset.is_some(),
        providers: oauth::buttons(&state.door.db).await?,
    };
    Ok((csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login_form(
    state: axum::extract::State<Auth>,
    req: FormRequest,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    let next = local_redirect_target(&form.next).unwrap_or_default();
    let mut page = LoginPage {
        lang,
        csrf_token: csrf.value().to_owned(),
        email: form.email.clone(),
        next: next.clone(),
        form_error: None,
        reset: false,
        providers: oauth::buttons(&state.door.db).await?,
    };
    if csrf::verify(&headers, Some(&form.csrf_token)).is_err() {
        page.form_error = Some(lang.tr("validation.csrf").to_owned());
        return Ok((StatusCode::FORBIDDEN, csrf, Page(page)).into_response());
    }
    let req = LoginRequest { email: form.email, password: form.password, ent_id: None, code: None };
    let (status, key) = match authenticate(&state, req, &device).await {
        Ok(outcome) => return Ok(form_outcome(outcome, &next, &meta, &state, jar)),
        Err(AppError::InvalidCredentials) => {
            (StatusCode::UNAUTHORIZED, "validation.invalid_credentials")
        }
        Err(AppError::Forbidden { code: "no_workspace", .. }) => {
            (StatusCode::FORBIDDEN, "validation.no_workspace")
        }
        Err(AppError::Forbidden { code: "account_disabled", .. }) => {
            (StatusCode::FORBIDDEN, "validation.account_disabled")
        }
        Err(other) => return Err(other),
    };
    page.form_error = Some(lang.tr(key).to_owned());
    Ok((status, csrf, Page(page)).into_response())
}

/// Where a browser goes after a login step: into the workspace (`next`), to choose one, or
/// to the second-factor page.
fn form_outcome(
    outcome: LoginOutcome,
    next: &str,
    meta: &ClientMeta,
    state: &Auth,
    jar: CookieJar,
) -> Response {
    let with_next = |path: &str| {
        if next.is_empty() { path.to_owned() } else { format!("{path}?next={}", urlencode(next)) }
    };
    match outcome {
        LoginOutcome::Session { issued, .. } => {
            let jar = jar
                .remove(session::removal(SELECT_COOKIE))
                .remove(session::removal(session::SECOND_FACTOR_COOKIE))
                .add(session::session_cookie(&issued, meta, &state.config));
            let target = if next.is_empty() { "/app" } else { next };
            (jar, Redirect::to(target)).into_response()
        }
        LoginOutcome::Choose { issued, .. } => {
            let jar = jar
                .remove(session::removal(session::SECOND_FACTOR_COOKIE))
                .add(session::select_cookie(&issued, meta, &state.config));
            (jar, Redirect::to(&with_next("/login/select"))).into_response()
        }
        LoginOutcome::NeedCode { pending } | LoginOutcome::Enrol { pending, .. } => {
            let jar = jar.add(session::second_factor_cookie(&pending, meta, &state.config));
            (jar, Redirect::to(&with_next("/login/2fa"))).into_response()
        }
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|e| e[1..].to_owned()).unwrap_or_default()
}

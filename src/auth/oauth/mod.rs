//! Signing in with an outside identity provider: GitHub, Google or any OpenID Connect
//! provider, configured by platform admins (`src/platform/identity_providers.rs`).
//!
//! 1. `GET /auth/oauth/{slug}?next=/app` (a button on the login page) records a flow — state,
//!    nonce and PKCE verifier, kept on the server under the SHA-256 of the state — sets the
//!    state in a short cookie bound to this browser, and redirects to the provider.
//! 2. `GET /auth/oauth/{slug}/callback?code&state` takes the flow (once: the row is deleted as
//!    it is read), checks the state against the cookie, redeems the code with the verifier,
//!    checks the ID token (signature, issuer, audience, expiry, nonce) and finds the user:
//!    - the provider account already linked to a user signs in as that user;
//!    - otherwise an address the provider verified, matching a kefu user who confirmed that
//!      same address, links the account and signs in. Nothing else links: an unverified
//!      address, or a kefu account that never proved it owns its address (someone could have
//!      registered it first), gets an explanation instead.
//!
//!    The user then goes the way a password login goes: the second factor if they have one,
//!    the merchant's 2FA requirement, the workspace choice.
//! 3. A signed-in user links a provider from their profile (`POST /auth/oauth/{slug}/link`,
//!    which answers the provider URL to go to),
//!    and unlinks it through `DELETE /api/v1/me/identities/{slug}` (not their last way in).

pub mod protocol;
mod store;

use askama::Template;
use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::{CookieJar, cookie::Cookie};
use cookie::SameSite;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use self::protocol::{Identity, ProviderError};
pub use self::protocol::{Kind, Provider, Providers};
use super::{Auth, LoginOutcome, form_outcome, session::AgentSession, totp};
use crate::{
    http::{AppError, Page, client::ClientMeta, extract::OptionalJson, local_redirect_target},
    i18n::Lang,
};

/// The cookie holding the state of the sign-in in progress.
const FLOW_COOKIE: &str = "kefu_oauth";
const FLOW_COOKIE_PATH: &str = "/auth/oauth";
/// How long a sign-in may spend at the provider.
const FLOW_TTL_SECS: i64 = 600;

// ---------------------------------------------------------------------------------------
// Providers as stored

fn provider_of(row: store::ProviderRow) -> Option<Provider> {
    let (id, slug, kind, name, issuer, client_id, client_secret, version) = row;
    Some(Provider {
        id,
        slug,
        kind: Kind::parse(&kind)?,
        name,
        issuer,
        client_id,
        client_secret,
        version,
    })
}

/// An enabled provider by its slug.
pub async fn enabled_provider(db: &sqlx::PgPool, slug: &str) -> sqlx::Result<Option<Provider>> {
    Ok(store::enabled_provider(db, slug).await?.and_then(provider_of))
}

/// A sign-in button.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Button {
    pub slug: String,
    pub kind: String,
    pub name: String,
}

impl Button {
    /// The letter on the provider's mark.
    pub fn initial(&self) -> String {
        self.name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default()
    }
}

/// The enabled providers, in the order admins added them.
pub async fn buttons(db: &sqlx::PgPool) -> sqlx::Result<Vec<Button>> {
    store::buttons(db).await
}

/// Where the provider sends the browser back (register this with the provider).
pub fn redirect_uri(mail: &crate::notify::Mail, slug: &str) -> String {
    mail.link(&format!("/auth/oauth/{slug}/callback"))
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// Leaving for the provider

#[derive(Deserialize)]
pub(super) struct StartQuery {
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn start(
    State(state): State<Auth>,
    Path(slug): Path<String>,
    lang: Lang,
    meta: ClientMeta,
    jar: CookieJar,
    Query(q): Query<StartQuery>,
) -> Result<Response, AppError> {
    let provider = enabled_provider(&state.door.db, &slug).await?.ok_or(AppError::NotFound)?;
    let next = q.next.as_deref().and_then(local_redirect_target).unwrap_or_default();
    Ok(match prepare(&state, &provider, &next, None, &meta).await? {
        Some(Leave { cookie, url }) => (jar.add(cookie), Redirect::to(&url)).into_response(),
        None => Failure::Provider.page(lang, &provider, &next, false),
    })
}

#[derive(Deserialize, Default)]
pub(super) struct LinkRequest {
    /// Where to come back to (a local path; `/app` when left out).
    #[serde(default)]
    next: Option<String>,
}

/// A signed-in user links a provider account to themselves (from their profile): answers
/// `{redirect}`, the provider's page to send the browser to. A JSON call rather than a form
/// post, because the page's `form-action 'self'` policy stops a form redirecting elsewhere.
pub(super) async fn link(
    State(state): State<Auth>,
    Path(slug): Path<String>,
    meta: ClientMeta,
    jar: CookieJar,
    // Its extractor already holds a cookie session's write to the CSRF header.
    session: AgentSession,
    OptionalJson(req): OptionalJson<LinkRequest>,
) -> Result<Response, AppError> {
    if session.impersonator.is_some() || session.api_token.is_some() {
        return Err(AppError::forbidden(
            "not_yourself",
            "only the person themselves can link a sign-in provider",
        ));
    }
    let provider = enabled_provider(&state.door.db, &slug).await?.ok_or(AppError::NotFound)?;
    let next =
        req.next.as_deref().and_then(local_redirect_target).unwrap_or_else(|| "/app".to_owned());
    match prepare(&state, &provider, &next, Some(session.user_id), &meta).await? {
        // The browser follows the redirect itself.
        Some(Leave { cookie, url }) => {
            Ok((jar.add(cookie), Json(serde_json::json!({ "redirect": url }))).into_response())
        }
        None => Err(AppError::Upstream {
            code: "provider_unavailable",
            message: format!("{} cannot be reached right now; try again later", provider.name)
                .into(),
        }),
    }
}

/// A sign-in recorded on the server, ready to leave for the provider.
struct Leave {
    /// The flow cookie binding it to this browser.
    cookie: Cookie<'static>,
    /// The provider's authorization URL.
    url: String,
}

/// Records a new sign-in (`None`: the provider cannot be reached or is misconfigured).
async fn prepare(
    state: &Auth,
    provider: &Provider,
    next: &str,
    link_user: Option<i64>,
    meta: &ClientMeta,
) -> Result<Option<Leave>, AppError> {
    let started = match state
        .oauth
        .start(provider, &redirect_uri(&state.mail, &provider.slug))
        .await
    {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(provider = %provider.slug, error = %e, "starting an OAuth sign-in failed");
            return Ok(None);
        }
    };
    let mut tx = state.door.db.begin().await?;
    let flow = store::NewFlow {
        state_hash: &state_hash(&started.state),
        provider_id: provider.id,
        nonce: &started.nonce,
        pkce_verifier: &started.pkce_verifier,
        next,
        link_user_id: link_user,
        ttl_secs: FLOW_TTL_SECS as f64,
    };
    store::create_flow(&mut tx, flow).await?;
    tx.commit().await?;
    let cookie = Cookie::build((FLOW_COOKIE, started.state))
        .path(FLOW_COOKIE_PATH)
        .http_only(true)
        .secure(meta.https || state.config.is_https())
        // The provider sends the browser back with a top-level GET from its own site.
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(FLOW_TTL_SECS))
        .build();
    Ok(Some(Leave { cookie, url: started.authorize_url.into() }))
}

// ---------------------------------------------------------------------------------------
// Coming back

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// RFC 9207: the issuer that answered, when the provider says.
    #[serde(default)]
    iss: Option<String>,
}

use store::Flow;

/// Why a sign-in did not complete, as the person is told.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// No flow for this state, an expired one, or one started in another browser.
    Stale,
    /// The person cancelled at the provider, or the provider refused.
    Denied,
    /// The provider could not be reached, or its answer did not check out.
    Provider,
    /// No address the provider verified.
    NoVerifiedEmail,
    /// No kefu user has this address.
    NoAccount(String),
    /// The kefu user with this address never confirmed it.
    AccountUnconfirmed(String),
    /// This provider account belongs to another kefu user.
    Taken,
}

#[derive(Template)]
#[template(path = "auth/oauth_result.html")]
struct FailurePage {
    lang: Lang,
    message: String,
    retry: Option<String>,
    /// Linking from the profile: offer the way back to the workspace instead of the login.
    linking: bool,
    next: String,
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Self::Stale => StatusCode::BAD_REQUEST,
            Self::Provider => StatusCode::BAD_GATEWAY,
            Self::Taken => StatusCode::CONFLICT,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self, lang: Lang, provider: &str) -> String {
        let fill = |key: &str, email: &str| {
            super::links::fill(lang.tr(key), &[("provider", provider), ("email", email)])
        };
        match self {
            Self::Stale => fill("oauth.err_stale", ""),
            Self::Denied => fill("oauth.err_denied", ""),
            Self::Provider => fill("oauth.err_provider", ""),
            Self::NoVerifiedEmail => fill("oauth.err_no_email", ""),
            Self::NoAccount(email) => fill("oauth.err_no_account", email),
            Self::AccountUnconfirmed(email) => fill("oauth.err_unconfirmed", email),
            Self::Taken => fill("oauth.err_taken", ""),
        }
    }

    fn page(&self, lang: Lang, provider: &Provider, next: &str, linking: bool) -> Response {
        let retry = matches!(self, Self::Stale | Self::Provider | Self::Denied).then(|| {
            if next.is_empty() {
                format!("/auth/oauth/{}", provider.slug)
            } else {
                format!("/auth/oauth/{}?next={}", provider.slug, super::urlencode(next))
            }
        });
        let page = FailurePage {
            lang,
            message: self.message(lang, &provider.name),
            retry: retry.filter(|_| !linking),
            linking,
            next: if next.is_empty() { "/app".to_owned() } else { next.to_owned() },
        };
        (self.status(), Page(page)).into_response()
    }
}

/// A cookie that deletes the flow's cookie (a callback uses it once, whatever comes of it).
fn flow_cookie_removal() -> Cookie<'static> {
    let mut removal = Cookie::build((FLOW_COOKIE, "")).path(FLOW_COOKIE_PATH).build();
    removal.make_removal();
    removal
}

/// What a completed callback leads to.
enum Completed {
    SignIn { user_id: i64 },
    Linked,
}

pub(super) async fn callback(
    State(state): State<Auth>,
    Path(slug): Path<String>,
    lang: Lang,
    meta: ClientMeta,
    device: crate::auth::sessions::Device,
    jar: CookieJar,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let provider = enabled_provider(&state.door.db, &slug).await?.ok_or(AppError::NotFound)?;
    let presented = jar.get(FLOW_COOKIE).map(|c| c.value().to_owned());
    let jar = jar.add(flow_cookie_removal());
    let flow = take_flow(&state, &provider, q.state.as_deref(), presented.as_deref()).await?;
    let Some(flow) = flow else {
        return Ok((jar, Failure::Stale.page(lang, &provider, "", false)).into_response());
    };
    let linking = flow.link_user_id.is_some();
    let result = complete(&state, &provider, &flow, &q).await;
    let done = match result {
        Ok(done) => done,
        Err(failure) => {
            tracing::info!(provider = %provider.slug, ?failure, "an OAuth sign-in did not complete");
            let page = failure.page(lang, &provider, &flow.next, linking);
            return Ok((jar, page).into_response());
        }
    };
    match done {
        Completed::Linked => {
            let target = if flow.next.is_empty() { "/app".to_owned() } else { flow.next };
            Ok((jar, Redirect::to(&target)).into_response())
        }
        Completed::SignIn { user_id } => match after_identity(&state, user_id, &device).await {
            Ok(outcome) => Ok(form_outcome(outcome, &flow.next, &meta, &state, jar)),
            Err(AppError::Forbidden { code: "no_workspace", .. }) => {
                Ok((jar, FailurePage::no_workspace(lang)).into_response())
            }
            Err(e) => Err(e),
        },
    }
}

impl FailurePage {
    /// The person signed in, but belongs to no merchant's workspace.
    fn no_workspace(lang: Lang) -> Response {
        let page = Self {
            lang,
            message: lang.tr("validation.no_workspace").to_owned(),
            retry: None,
            linking: false,
            next: String::new(),
        };
        (StatusCode::FORBIDDEN, Page(page)).into_response()
    }
}

/// The flow this callback belongs to, taken out of the table so it cannot be used again.
/// `None` when the state is missing, is not this browser's, is unknown, has expired or
/// belongs to another provider.
async fn take_flow(
    state: &Auth,
    provider: &Provider,
    returned: Option<&str>,
    cookie: Option<&str>,
) -> Result<Option<Flow>, AppError> {
    let (Some(returned), Some(cookie)) = (returned, cookie) else {
        return Ok(None);
    };
    if returned.is_empty() || !bool::from(returned.as_bytes().ct_eq(cookie.as_bytes())) {
        return Ok(None);
    }
    let row = store::take_flow(&state.door.db, &state_hash(returned)).await?;
    Ok(row.filter(|flow| flow.provider_id == provider.id))
}

async fn complete(
    state: &Auth,
    provider: &Provider,
    flow: &Flow,
    q: &CallbackQuery,
) -> Result<Completed, Failure> {
    if let Some(error) = &q.error {
        tracing::info!(provider = %provider.slug, error = %error, "the provider refused the sign-in");
        return Err(Failure::Denied);
    }
    // RFC 9207: an answer naming another issuer is a mix-up attempt.
    if let (Some(iss), Kind::Oidc | Kind::Google) = (&q.iss, provider.kind) {
        if iss.trim_end_matches('/') != provider.issuer.trim_end_matches('/') {
            tracing::warn!(provider = %provider.slug, iss = %iss, "callback from another issuer");
            return Err(Failure::Provider);
        }
    }
    let code = q.code.as_deref().filter(|c| !c.is_empty()).ok_or(Failure::Denied)?;
    let redirect = redirect_uri(&state.mail, &provider.slug);
    let identity = state
        .oauth
        .finish(provider, &redirect, code, &flow.pkce_verifier, &flow.nonce)
        .await
        .map_err(|e| {
            tracing::warn!(provider = %provider.slug, error = %e, "an OAuth sign-in failed");
            match e {
                ProviderError::Refused(_) => Failure::Denied,
                _ => Failure::Provider,
            }
        })?;
    resolve(state, flow, &identity).await.map_err(|e| match e {
        Resolve::Failure(f) => f,
        Resolve::Db(e) => {
            tracing::error!(error = %e, "storing an OAuth identity failed");
            Failure::Provider
        }
    })
}

enum Resolve {
    Failure(Failure),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Resolve {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// The user this identity signs in as (linking it where that is safe), or links it to the
/// user who started a link from their profile.
async fn resolve(state: &Auth, flow: &Flow, id: &Identity) -> Result<Completed, Resolve> {
    let email = id.verified_email.as_deref().or(id.unverified_email.as_deref()).unwrap_or("");
    let mut tx = state.door.db.begin().await?;
    let linked = store::linked_user(&mut tx, flow.provider_id, &id.subject).await?;
    let user_id = match (linked, flow.link_user_id) {
        (Some(owner), Some(me)) if owner != me => return Err(Resolve::Failure(Failure::Taken)),
        (Some(owner), _) => {
            store::touch_identity(&mut tx, flow.provider_id, &id.subject, email).await?;
            tx.commit().await?;
            return Ok(match flow.link_user_id {
                Some(_) => Completed::Linked,
                None => Completed::SignIn { user_id: owner },
            });
        }
        (None, Some(me)) => me,
        (None, None) => {
            let Some(verified) = id.verified_email.as_deref() else {
                return Err(Resolve::Failure(Failure::NoVerifiedEmail));
            };
            match store::user_by_email(&mut tx, verified).await? {
                None => return Err(Resolve::Failure(Failure::NoAccount(verified.to_owned()))),
                Some((_, None)) => {
                    return Err(Resolve::Failure(Failure::AccountUnconfirmed(verified.to_owned())));
                }
                Some((user_id, Some(_))) => user_id,
            }
        }
    };
    // A user has one account per provider: linking another replaces the old link.
    let linking = flow.link_user_id.is_some();
    store::link(&mut tx, flow.provider_id, &id.subject, user_id, email, linking).await?;
    tx.commit().await?;
    tracing::info!(user = user_id, provider = flow.provider_id, "an OAuth identity was linked");
    Ok(match flow.link_user_id {
        Some(_) => Completed::Linked,
        None => Completed::SignIn { user_id },
    })
}

/// What a user the provider vouched for gets: the same as after a right password (their
/// second factor is still asked for).
async fn after_identity(
    state: &Auth,
    user_id: i64,
    device: &crate::auth::sessions::Device,
) -> Result<LoginOutcome, AppError> {
    let mut conn = state.door.db.acquire().await?;
    let generation = crate::auth::sessions::credential_gen(&mut conn, user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    drop(conn);
    let proven = super::Proven { user_id, generation };
    if totp::is_enabled(&state.door.db, user_id).await? {
        let pending = state.door.tokens.issue_second_factor(user_id, None, generation)?;
        return Ok(LoginOutcome::NeedCode { pending });
    }
    super::after_password(state, proven, None, device).await
}

// ---------------------------------------------------------------------------------------
// One's own linked accounts

/// A provider, and whether the signed-in user linked an account of it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyIdentity {
    pub slug: String,
    pub kind: String,
    pub name: String,
    pub linked: bool,
    /// The address the provider gave for the linked account.
    pub email: Option<String>,
    pub linked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every enabled provider, plus disabled ones the user still has a link to.
pub async fn mine(db: &sqlx::PgPool, user_id: i64) -> sqlx::Result<Vec<MyIdentity>> {
    let rows = store::mine(db, user_id).await?;
    Ok(rows
        .into_iter()
        .map(|(slug, kind, name, email, linked_at, last_used_at)| MyIdentity {
            slug,
            kind,
            name,
            linked: linked_at.is_some(),
            email,
            linked_at,
            last_used_at,
        })
        .collect())
}

pub(super) async fn list_mine(
    State(state): State<Auth>,
    session: AgentSession,
) -> Result<Json<Vec<MyIdentity>>, AppError> {
    Ok(Json(mine(&state.door.db, session.user_id).await?))
}

/// Removes the link to `slug`'s account (204 also when there was none). Refused when it is
/// the user's only way to sign in.
pub(super) async fn unlink(
    State(state): State<Auth>,
    Path(slug): Path<String>,
    session: AgentSession,
) -> Result<StatusCode, AppError> {
    if session.impersonator.is_some() || session.api_token.is_some() {
        return Err(AppError::forbidden(
            "not_yourself",
            "only the person themselves can unlink a sign-in provider",
        ));
    }
    let mut tx = state.door.db.begin().await?;
    let (has_password, others) = store::other_ways_in(&mut tx, session.user_id, &slug).await?;
    let removed = store::unlink(&mut tx, session.user_id, &slug).await?;
    if removed && !has_password && others == 0 {
        return Err(AppError::conflict(
            "last_sign_in_method",
            None,
            "this is your only way to sign in: set a password first",
        ));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_stored_hashed() {
        let h = state_hash("abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, "abc");
    }
}

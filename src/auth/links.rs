//! Links sent by email: agent invitations (`/invite/{token}`: choose a password and join),
//! password resets (`/forgot` asks for one, `/reset/{token}` sets the new password) and
//! email verification (`/verify/{token}`). Each link is a 256-bit random token; only its
//! SHA-256 is stored, it expires, and it works once (the redeeming `update` is atomic, so
//! two clicks racing each other cannot both succeed).

use askama::Template;
use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine as _;
use chrono::Duration;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;

use super::Auth;
use super::{
    FormRequest, password, store,
    validate::{self, Email},
};
use crate::{
    http::{AppError, Page, csrf, csrf::CsrfToken},
    i18n::Lang,
    notify::{self, Content, Email as OutgoingEmail},
};

/// How long each kind of link works.
pub const INVITE_TTL_DAYS: i64 = 7;
pub const RESET_TTL_HOURS: i64 = 1;
pub const VERIFY_TTL_DAYS: i64 = 3;

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new link token for `user` (`purpose`: `invite`, `reset`, `verify`); earlier unused ones
/// of the same purpose stop working.
pub async fn issue(
    conn: &mut PgConnection,
    user: i64,
    purpose: &'static str,
    tenant: Option<i64>,
    ttl: Duration,
) -> sqlx::Result<String> {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let ttl = ttl.num_seconds() as f64;
    store::replace_link(conn, user, purpose, tenant, &digest(&token), ttl).await?;
    Ok(token)
}

/// The live link behind a token: (user, their email, the invitation's workspace).
pub(crate) use super::store::Link;

async fn peek(conn: &mut PgConnection, token: &str, purpose: &str) -> sqlx::Result<Option<Link>> {
    if token.len() > 100 {
        return Ok(None);
    }
    store::find_link(conn, &digest(token), purpose).await
}

/// Uses the link up; `None` if it was not live (expired, used, unknown).
pub(crate) async fn redeem(
    conn: &mut PgConnection,
    token: &str,
    purpose: &str,
) -> sqlx::Result<Option<Link>> {
    if token.len() > 100 {
        return Ok(None);
    }
    store::redeem_link(conn, &digest(token), purpose).await
}

/// `{name}` placeholders of a catalog text filled in.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_owned(), |t, (k, v)| t.replace(&format!("{{{k}}}"), v))
}

// ---------------------------------------------------------------------------------------
// The emails

/// The invitation to join `merchant`, for a new agent without a password yet.
pub fn invite_email(
    mail: &crate::notify::Mail,
    lang: Lang,
    site: &str,
    to: &Email,
    merchant: &str,
    inviter: &str,
    token: &str,
) -> OutgoingEmail {
    let v = [("merchant", merchant), ("inviter", inviter), ("site", site)];
    OutgoingEmail::to_person(
        "invite",
        to.as_str(),
        Content {
            subject: fill(lang.tr("email.invite_subject"), &v),
            heading: fill(lang.tr("email.invite_heading"), &v),
            paragraphs: vec![
                fill(lang.tr("email.invite_body"), &v),
                lang.tr("email.invite_expiry").to_owned(),
            ],
            action: Some((
                lang.tr("email.invite_action").to_owned(),
                mail.link(&format!("/invite/{token}")),
            )),
            reason: fill(lang.tr("email.invite_reason"), &v),
            ..Content::default()
        },
    )
}

fn reset_email(state: &Auth, lang: Lang, site: &str, to: &str, token: &str) -> OutgoingEmail {
    let v = [("site", site)];
    OutgoingEmail::to_person(
        "reset",
        to,
        Content {
            subject: fill(lang.tr("email.reset_subject"), &v),
            heading: lang.tr("email.reset_heading").to_owned(),
            paragraphs: vec![lang.tr("email.reset_body").to_owned()],
            action: Some((
                lang.tr("email.reset_action").to_owned(),
                state.mail.link(&format!("/reset/{token}")),
            )),
            reason: lang.tr("email.reset_reason").to_owned(),
            ..Content::default()
        },
    )
}

/// The email confirming a new owner's address.
pub fn verify_email(
    state: &Auth,
    lang: Lang,
    site: &str,
    to: &Email,
    merchant: &str,
    token: &str,
) -> OutgoingEmail {
    let v = [("merchant", merchant), ("site", site)];
    OutgoingEmail::to_person(
        "verify",
        to.as_str(),
        Content {
            subject: fill(lang.tr("email.verify_subject"), &v),
            heading: fill(lang.tr("email.verify_heading"), &v),
            paragraphs: vec![lang.tr("email.verify_body").to_owned()],
            action: Some((
                lang.tr("email.verify_action").to_owned(),
                state.mail.link(&format!("/verify/{token}")),
            )),
            reason: fill(lang.tr("email.verify_reason"), &v),
            ..Content::default()
        },
    )
}

// ---------------------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "auth/link.html")]
struct LinkPage {
    lang: Lang,
    csrf_token: String,
    /// `invite`, `reset`, `forgot`, `forgot_sent`, `forgot_unavailable` (no email here:
    /// `email` holds the site's name), `verified`, `invalid`.
    view: &'static str,
    email: String,
    action: String,
    error: Option<String>,
}

impl LinkPage {
    fn new(lang: Lang, csrf: &CsrfToken, view: &'static str) -> Self {
        Self {
            lang,
            csrf_token: csrf.value().to_owned(),
            view,
            email: String::new(),
            action: String::new(),
            error: None,
        }
    }

    fn heading(&self) -> &'static str {
        self.lang.tr(match self.view {
            "invite" => "links.invite_title",
            "reset" => "links.reset_title",
            "forgot" => "links.forgot_title",
            "forgot_sent" => "links.forgot_sent_title",
            "forgot_unavailable" => "links.forgot_unavailable_title",
            "verified" => "links.verified_title",
            _ => "links.invalid_title",
        })
    }
}

fn invalid(lang: Lang, csrf: CsrfToken) -> Response {
    let page = LinkPage::new(lang, &csrf, "invalid");
    (StatusCode::NOT_FOUND, csrf, Page(page)).into_response()
}

pub(super) async fn invite_page(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.door.db.acquire().await?;
    let Some(link) = peek(&mut conn, &token, "invite").await? else {
        return Ok(invalid(lang, csrf));
    };
    let mut page = LinkPage::new(lang, &csrf, "invite");
    page.email = link.email;
    page.action = format!("/invite/{token}");
    Ok((csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
}

/// Checks a new password for `email`; the catalog text of what is wrong.
fn check_password(password: &str, email: &str) -> Result<(), &'static str> {
    let email = Email::parse(email).ok();
    validate::new_password(password, email.as_ref())
}

pub(super) async fn invite_form(
    State(state): State<Auth>,
    req: FormRequest,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    set_password_form(state, req, token, form, "invite").await
}

pub(super) async fn reset_form(
    State(state): State<Auth>,
    req: FormRequest,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    set_password_form(state, req, token, form, "reset").await
}

/// Both links end the same way: a new password, the address counted as verified (the
/// email reached its owner), and a session.
async fn set_password_form(
    state: Auth,
    req: FormRequest,
    token: String,
    form: PasswordForm,
    purpose: &'static str,
) -> Result<Response, AppError> {
    let FormRequest { lang, meta, device, csrf, headers, jar } = req;
    let mut conn = state.door.db.acquire().await?;
    let Some(link) = peek(&mut conn, &token, purpose).await? else {
        return Ok(invalid(lang, csrf));
    };
    drop(conn);
    let mut page = LinkPage::new(lang, &csrf, purpose);
    page.email = link.email.clone();
    page.action = format!("/{purpose}/{token}");
    if csrf::verify(&headers, Some(&form.csrf_token)).is_err() {
        page.error = Some(lang.tr("validation.csrf").to_owned());
        return Ok((StatusCode::FORBIDDEN, csrf, Page(page)).into_response());
    }
    if let Err(problem) = check_password(&form.password, &link.email) {
        page.error = Some(lang.tr(problem).to_owned());
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, csrf, Page(page)).into_response());
    }
    let hash = password::hash(form.password).await?;
    let mut tx = state.door.db.begin().await?;
    let Some(link) = redeem(&mut tx, &token, purpose).await? else {
        return Ok(invalid(lang, csrf));
    };
    // Whoever had a session with the old password has it no longer.
    let actor = super::accounts::Actor::Mailbox { user_id: link.user_id };
    let changed = super::accounts::set_password(&mut tx, &actor, link.user_id, &hash).await?;
    tx.commit().await?;
    changed.ended.close_sockets(&state.hub);
    let proven = super::Proven { user_id: link.user_id, generation: changed.generation };
    tracing::info!(user = link.user_id, purpose, "password set through an emailed link");
    // An invitation names its workspace; a reset goes through the usual choice.
    let tenant = match link.tenant_id {
        Some(id) => Some(tenants::TenantId(id)),
        None => {
            let memberships = super::store::memberships(&state.door.db, link.user_id).await?;
            (memberships.len() == 1).then(|| memberships[0].tenant_id)
        }
    };
    // The link proves the mailbox, not the second factor: a user with one gives its code
    // next (and one a merchant requires is set up), as after a password.
    if let Some(tenant) = tenant
        && let Ok(outcome) = super::two_factor::after_link(&state, proven, tenant, &device).await
    {
        return Ok(super::form_outcome(outcome, "", &meta, &state, jar));
    }
    Ok(Redirect::to("/login?reset=1").into_response())
}

pub(super) async fn reset_page(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.door.db.acquire().await?;
    let Some(link) = peek(&mut conn, &token, "reset").await? else {
        return Ok(invalid(lang, csrf));
    };
    let mut page = LinkPage::new(lang, &csrf, "reset");
    page.email = link.email;
    page.action = format!("/reset/{token}");
    Ok((csrf, Page(page)).into_response())
}

/// The form asking for a reset link; on a site that cannot send email, what to do instead
/// (a link that never comes would leave the person waiting).
pub(super) async fn forgot_page(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    let settings = state.system.get().await?;
    let mut page = LinkPage::new(lang, &csrf, "forgot");
    if !notify::enabled(&settings) {
        page.view = "forgot_unavailable";
        page.email = notify::site_name(&settings).to_owned();
    }
    page.action = "/forgot".into();
    Ok((csrf, Page(page)).into_response())
}

#[derive(Deserialize)]
pub(super) struct ForgotForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// Answers the same whether or not the address has an account (nothing to learn here);
/// when it has one and email works, a reset link is on its way.
pub(super) async fn forgot_form(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Result<Response, AppError> {
    let mut page = LinkPage::new(lang, &csrf, "forgot");
    page.action = "/forgot".into();
    page.email = form.email.trim().chars().take(254).collect();
    if csrf::verify(&headers, Some(&form.csrf_token)).is_err() {
        page.error = Some(lang.tr("validation.csrf").to_owned());
        return Ok((StatusCode::FORBIDDEN, csrf, Page(page)).into_response());
    }
    let Ok(email) = Email::parse(&form.email) else {
        page.error = Some(lang.tr("validation.email_invalid").to_owned());
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, csrf, Page(page)).into_response());
    };
    let settings = state.system.get().await?;
    if notify::enabled(&settings) {
        if let Some(user) = super::store::user_by_email(&state.door.db, email.as_str()).await? {
            let mut tx = state.door.db.begin().await?;
            let token =
                issue(&mut tx, user.id, "reset", None, Duration::hours(RESET_TTL_HOURS)).await?;
            let mail = reset_email(&state, lang, notify::site_name(&settings), &user.email, &token);
            notify::enqueue(&mut tx, &settings, lang, mail).await?;
            tx.commit().await?;
            state.mail.wake();
        }
    }
    let mut done = LinkPage::new(lang, &csrf, "forgot_sent");
    done.email = email.as_str().to_owned();
    Ok((csrf, Page(done)).into_response())
}

pub(super) async fn verify_page(
    State(state): State<Auth>,
    lang: Lang,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut tx = state.door.db.begin().await?;
    let Some(link) = redeem(&mut tx, &token, "verify").await? else {
        return Ok(invalid(lang, csrf));
    };
    store::mark_email_verified(&mut tx, link.user_id).await?;
    tx.commit().await?;
    let mut page = LinkPage::new(lang, &csrf, "verified");
    page.email = link.email;
    Ok((csrf, Page(page)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill("Join {merchant} on {site}", &[("merchant", "Lumen"), ("site", "kefu")]),
            "Join Lumen on kefu"
        );
        assert_eq!(fill("no {x}", &[]), "no {x}");
    }
}

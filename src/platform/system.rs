//! System settings: what the public site says about itself (title, keywords, description,
//! copyright), whether anyone may sign up, the default language, and the SMTP server (used
//! for email once email exists; its password is write-only).
//!
//! Stored as rows of `public.system_settings` (one key each), read through a small cache
//! that saving invalidates (other nodes see a change within [`CACHE_TTL`]).

use super::Platform;
use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{PlatformSession, audit};
use crate::{
    http::{AppError, extract::ApiJson, input::text},
    i18n::{Lang, PlatformDefaultLang},
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TestEmail {
    /// Where to send it (the admin's own address when left out).
    #[serde(default)]
    to: Option<String>,
}

/// Sends a test email at once with the saved SMTP settings and says how it went: 200, or
/// 502 `email_failed` with the server's answer (409 `email_unavailable` when none is set).
pub(super) async fn test_email(
    State(state): State<Platform>,
    admin: PlatformSession,
    lang: Lang,
    crate::http::extract::OptionalJson(input): crate::http::extract::OptionalJson<TestEmail>,
) -> Result<Json<Value>, AppError> {
    let to = input.to.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| admin.email.clone());
    let to = crate::auth::validate::Email::parse(&to)
        .map_err(|_| AppError::field("to", "an email address"))?;
    let settings = state.system.get().await?;
    if !crate::notify::enabled(&settings) {
        return Err(AppError::conflict(
            "email_unavailable",
            None,
            "set the SMTP server and sender first",
        ));
    }
    let site = crate::notify::site_name(&settings);
    let v = [("site", site)];
    let fill = crate::auth::links::fill;
    let content = crate::notify::Content {
        subject: fill(lang.tr("email.test_subject"), &v),
        heading: lang.tr("email.test_heading").to_owned(),
        paragraphs: vec![lang.tr("email.test_body").to_owned()],
        reason: fill(lang.tr("email.test_reason"), &v),
        ..Default::default()
    };
    let (text, html) = content.render(lang, site);
    let failed = |e: crate::notify::smtp::SendError| AppError::Upstream {
        code: "email_failed",
        message: format!("the mail server refused or could not be reached: {e}").into(),
    };
    let mailer = crate::notify::smtp::mailer(&state.config, &settings).map_err(failed)?;
    mailer.send(to.as_str(), &content.subject, &text, &html).await.map_err(failed)?;
    audit::record(&state.door.db, &admin, "system.test_email", None, to.as_str(), json!({}))
        .await?;
    Ok(Json(json!({ "sent": true, "to": to.as_str() })))
}

const CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Smtp {
    #[serde(default)]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub username: String,
    /// Never sent back to browsers (see [`SystemSettings::public_view`]).
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub security: SmtpSecurity,
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SystemSettings {
    pub site_title: String,
    pub site_keywords: String,
    pub site_description: String,
    pub copyright: String,
    pub signup_open: bool,
    pub default_lang: String,
    pub smtp: Smtp,
}

impl Default for SystemSettings {
    fn default() -> Self {
        Self {
            site_title: "kefu".into(),
            site_keywords: "live chat, customer service, 在线客服".into(),
            site_description: String::new(),
            copyright: String::new(),
            signup_open: true,
            default_lang: "en".into(),
            smtp: Smtp { port: default_smtp_port(), ..Smtp::default() },
        }
    }
}

impl SystemSettings {
    pub async fn load(db: &sqlx::PgPool) -> sqlx::Result<Self> {
        let rows = super::store::system_settings(db).await?;
        let mut doc = serde_json::to_value(Self::default()).expect("settings serialize");
        for (key, value) in rows {
            if let Some(slot) = doc.get_mut(&key) {
                *slot = value;
            }
        }
        // A stored value of the wrong shape (edited by hand) falls back to the defaults.
        Ok(serde_json::from_value(doc).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "system_settings has a malformed value; using defaults");
            Self::default()
        }))
    }

    pub fn lang(&self) -> Lang {
        Lang::parse(&self.default_lang).unwrap_or_default()
    }

    /// The settings as the console shows them: the SMTP password only as "is set".
    pub fn public_view(&self) -> Value {
        let mut doc = serde_json::to_value(self).expect("settings serialize");
        doc["smtp"]["password"] = Value::Null;
        doc["smtp"]["password_set"] = Value::Bool(!self.smtp.password.is_empty());
        doc
    }
}

/// Cached system settings.
pub struct SystemCache {
    db: sqlx::PgPool,
    cache: Cache<(), Arc<SystemSettings>>,
}

impl SystemCache {
    pub fn new(db: sqlx::PgPool) -> Self {
        Self { db, cache: Cache::builder().max_capacity(1).time_to_live(CACHE_TTL).build() }
    }

    pub async fn get(&self) -> Result<Arc<SystemSettings>, AppError> {
        self.cache
            .try_get_with((), async { SystemSettings::load(&self.db).await.map(Arc::new) })
            .await
            .map_err(|e: Arc<sqlx::Error>| {
                AppError::Internal(anyhow::anyhow!("loading system settings: {e}"))
            })
    }

    pub fn invalidate(&self) {
        self.cache.invalidate_all();
    }
}

/// Middleware: pages that ask for no language get the platform's default, and every page
/// shows the platform's name (`i18n::site_title`).
pub async fn default_lang(
    State(state): State<Platform>,
    mut request: Request,
    next: Next,
) -> Response {
    let Ok(settings) = state.system.get().await else { return next.run(request).await };
    request.extensions_mut().insert(PlatformDefaultLang(settings.lang()));
    let title: std::sync::Arc<str> = crate::notify::site_name(&settings).into();
    crate::i18n::with_site_title(title, next.run(request)).await
}

pub(super) async fn get_api(
    State(state): State<Platform>,
    _admin: PlatformSession,
) -> Result<Json<Value>, AppError> {
    Ok(Json(SystemSettings::load(&state.door.db).await?.public_view()))
}

#[derive(Deserialize)]
struct SmtpInput {
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    username: String,
    /// `None` keeps the stored password; `""` clears it.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    security: SmtpSecurity,
}

#[derive(Deserialize)]
pub(super) struct Input {
    site_title: String,
    #[serde(default)]
    site_keywords: String,
    #[serde(default)]
    site_description: String,
    #[serde(default)]
    copyright: String,
    signup_open: bool,
    default_lang: String,
    smtp: SmtpInput,
}

fn validate(input: Input, current: &SystemSettings) -> Result<SystemSettings, AppError> {
    let default_lang = Lang::parse(&input.default_lang)
        .ok_or_else(|| AppError::field("default_lang", "one of: en, zh-CN"))?;
    let host = text("smtp.host", &input.smtp.host, 253, false, false)?;
    if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err(AppError::field("smtp.host", "a host name or IP address"));
    }
    let from = text("smtp.from", &input.smtp.from, 254, false, false)?;
    if !from.is_empty() && crate::auth::validate::Email::parse(&from).is_err() {
        return Err(AppError::field("smtp.from", "an email address"));
    }
    let port = input.smtp.port.unwrap_or(default_smtp_port());
    if port == 0 {
        return Err(AppError::field("smtp.port", "between 1 and 65535"));
    }
    let password = match input.smtp.password {
        Some(p) => text("smtp.password", &p, 512, false, false)?,
        None => current.smtp.password.clone(),
    };
    Ok(SystemSettings {
        site_title: text("site_title", &input.site_title, 80, true, false)?,
        site_keywords: text("site_keywords", &input.site_keywords, 300, false, false)?,
        site_description: text("site_description", &input.site_description, 500, false, false)?,
        copyright: text("copyright", &input.copyright, 200, false, false)?,
        signup_open: input.signup_open,
        default_lang: default_lang.code().to_owned(),
        smtp: Smtp {
            host,
            port,
            username: text("smtp.username", &input.smtp.username, 254, false, false)?,
            password,
            from,
            security: input.smtp.security,
        },
    })
}

pub(super) async fn put_api(
    State(state): State<Platform>,
    admin: PlatformSession,
    ApiJson(input): ApiJson<Input>,
) -> Result<Json<Value>, AppError> {
    let current = SystemSettings::load(&state.door.db).await?;
    let next = validate(input, &current)?;
    let doc = serde_json::to_value(&next).expect("settings serialize");
    let before = serde_json::to_value(&current).expect("settings serialize");
    let mut changed = Vec::new();
    let mut tx = state.door.db.begin().await?;
    for (key, value) in doc.as_object().expect("settings are an object") {
        if before.get(key) == Some(value) {
            continue;
        }
        super::store::put_system_setting(&mut tx, key, value).await?;
        changed.push(key.clone());
    }
    audit::record(&mut *tx, &admin, "system.settings", None, "", json!({ "changed": changed }))
        .await?;
    tx.commit().await?;
    state.caches.invalidate(crate::realtime::bus::Invalidation::System).await;
    Ok(Json(next.public_view()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smtp_password_is_never_shown() {
        let mut s = SystemSettings::default();
        s.smtp.password = "hunter2".into();
        let view = s.public_view();
        assert_eq!(view["smtp"]["password"], Value::Null);
        assert_eq!(view["smtp"]["password_set"], Value::Bool(true));
        assert!(!view.to_string().contains("hunter2"));
    }
}

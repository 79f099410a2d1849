//! Email. What kefu sends is written to a durable outbox (`public.email_outbox`) in the
//! transaction that decides to send it, and a background worker delivers it over SMTP
//! (`smtp`), retrying with backoff (`outbox`). The SMTP server is the platform's (system
//! settings in the console); without one, nothing is queued and the features that need
//! email fall back (agents get a one-time password instead of an invitation).
//!
//! Emails are one layout in both languages (`templates/emails/message.{html,txt}`) filled
//! from the message catalogs: a heading, paragraphs, details, a quoted message, a button.

pub mod outbox;
pub mod smtp;

use askama::Template;
use serde_json::Value;
use sqlx::PgConnection;
use std::sync::Arc;

use crate::{i18n::Lang, platform::system::SystemSettings};

/// An email to send.
#[derive(Clone, Debug)]
pub struct Email {
    /// What it is (`invite`, `reset`, `verify`, `leave_message`, `unanswered`, `test`).
    pub kind: &'static str,
    pub tenant_id: Option<i64>,
    pub to: String,
    pub content: Content,
    /// Not before this many seconds from now (reminders wait to see if someone answers).
    pub delay_secs: i64,
    /// What it is about, checked again before sending (see `outbox::still_wanted`).
    pub about: Value,
    /// At most one pending email per key.
    pub dedupe_key: Option<String>,
}

impl Email {
    /// An email of `kind` to a person, about their account (no merchant, sent at once).
    pub fn to_person(kind: &'static str, to: &str, content: Content) -> Self {
        Self {
            kind,
            tenant_id: None,
            to: to.to_owned(),
            content,
            delay_secs: 0,
            about: Value::Object(Default::default()),
            dedupe_key: None,
        }
    }
}

/// What an email says.
#[derive(Clone, Debug, Default)]
pub struct Content {
    pub subject: String,
    pub heading: String,
    pub paragraphs: Vec<String>,
    /// (label, value) rows.
    pub details: Vec<(String, String)>,
    /// A message quoted as it was written.
    pub quote: Option<String>,
    /// (label, absolute URL) of the one thing to do.
    pub action: Option<(String, String)>,
    /// Why the reader gets this email.
    pub reason: String,
}

#[derive(Template)]
#[template(path = "emails/message.html")]
struct HtmlEmail<'a> {
    lang: Lang,
    site: &'a str,
    c: &'a Content,
}

#[derive(Template)]
#[template(path = "emails/message.txt")]
struct TextEmail<'a> {
    site: &'a str,
    c: &'a Content,
    /// The quote with every line marked `> `.
    quoted: Option<String>,
}

impl Content {
    /// The plain-text and HTML bodies.
    pub fn render(&self, lang: Lang, site: &str) -> (String, String) {
        let quoted = self
            .quote
            .as_ref()
            .map(|q| q.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n"));
        let text = TextEmail { site, c: self, quoted }.render().unwrap_or_default();
        let html = HtmlEmail { lang, site, c: self }.render().unwrap_or_default();
        (text, html)
    }
}

/// Whether the platform can send email (an SMTP server and a sender are set).
pub fn enabled(settings: &SystemSettings) -> bool {
    !settings.smtp.host.trim().is_empty() && !settings.smtp.from.trim().is_empty()
}

/// The site's name as emails sign with it.
pub fn site_name(settings: &SystemSettings) -> &str {
    let title = settings.site_title.trim();
    if title.is_empty() { "kefu" } else { title }
}

/// Queues `email` in the caller's transaction (it is sent once that commits). Returns false
/// when an email with the same `dedupe_key` is already pending.
pub async fn enqueue(
    conn: &mut PgConnection,
    settings: &SystemSettings,
    lang: Lang,
    email: Email,
) -> sqlx::Result<bool> {
    let (text, html) = email.content.render(lang, site_name(settings));
    let inserted = sqlx::query(
        "insert into public.email_outbox (kind, tenant_id, to_addr, subject, body_text, body_html, about,
                dedupe_key, next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
         on conflict (dedupe_key) where dedupe_key is not null and sent_at is null and dropped_at is null
         do nothing",
    )
    .bind(email.kind)
    .bind(email.tenant_id)
    .bind(&email.to)
    .bind(&email.content.subject)
    .bind(text)
    .bind(html)
    .bind(&email.about)
    .bind(&email.dedupe_key)
    .bind(email.delay_secs as f64)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// What features that send email hold: the site's address (for links in emails) and the
/// worker's bell. Cheap to clone.
#[derive(Clone)]
pub struct Mail {
    site: Arc<str>,
    bell: Arc<tokio::sync::Notify>,
}

impl Mail {
    /// `site`: `public_url`, else the address kefu listens on.
    pub fn new(site: String) -> Self {
        Self { site: site.into(), bell: Arc::default() }
    }

    /// Tells the worker there is something to send now (after the enqueueing commit).
    pub fn wake(&self) {
        self.bell.notify_one();
    }

    /// An absolute link into kefu.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.site)
    }

    /// The bell the worker waits on.
    pub fn bell(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.bell)
    }
}

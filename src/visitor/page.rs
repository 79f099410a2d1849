//! The visitor chat page, GOFLY-compatible: `/chatIndex?ent_id=&kefu_id=&visitor_name=&avatar=&lang=&refer=&extra=`
//! (and `visitor_id=`, which is kept as a hint for agents and never grants access).
//! Unknown `ent_id` → a 404 page; a suspended merchant → the "service paused" page.

use std::sync::Arc;

use askama::Template;
use axum::{
    Json,
    extract::{FromRef, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::PgPool;
use tenants::{Registry, TenantTx};

use super::{VisitorSession, store};
use crate::chat::{Chat, left::LeftMessage};
use crate::{
    auth::ctx::Door,
    http::{
        AppError, Page, ResolvedTenant, Routes, Scope, TrustedProxies,
        extract::ApiJson,
        rate::{Limiter, Rule},
    },
    i18n::{ChosenLang, Lang},
    merchant::settings::MerchantSettings,
    notify::Mail,
    platform::system::SystemCache,
    realtime::{
        hub::{Hub, encode},
        protocol::ServerFrame,
    },
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    TrustedProxies: FromRef<S>,
    Arc<Registry>: FromRef<S>,
    PgPool: FromRef<S>,
    Arc<Hub>: FromRef<S>,
    Arc<Chat>: FromRef<S>,
    Arc<Limiter>: FromRef<S>,
    Arc<SystemCache>: FromRef<S>,
    Mail: FromRef<S>,
{
    Routes::new()
        .get("/chatIndex", Scope::Public, chat_index)
        .post("/api/v1/visitor/leave_message", Scope::Public, leave_message)
        .post("/api/v1/visitor/page_views", Scope::Public, page_views)
}

/// Most page views one request may report (the widget sends what it saw since the chat
/// last loaded).
const MAX_PAGE_VIEWS: usize = 20;

#[derive(Deserialize)]
struct PageViews {
    views: Vec<PageView>,
}

#[derive(Deserialize)]
struct PageView {
    url: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    referrer: Option<String>,
    /// When the page was opened (the widget may report it later); now if absent or odd.
    #[serde(default)]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Pages of the merchant's site the visitor opened, reported by the widget: stored on the
/// visitor's trail and shown live to agents.
async fn page_views(
    State(db): State<PgPool>,
    State(hub): State<Arc<Hub>>,
    State(limiter): State<Arc<Limiter>>,
    session: VisitorSession,
    ApiJson(req): ApiJson<PageViews>,
) -> Result<Response, AppError> {
    if req.views.len() > MAX_PAGE_VIEWS {
        return Err(AppError::field(
            "views",
            format!("at most {MAX_PAGE_VIEWS} page views at a time"),
        ));
    }
    let l = &limiter.limits;
    let (per_ip, per_visitor) = (
        Rule::per_hour("page_views", l.page_views_per_ip),
        Rule::per_hour("page_views", l.page_views_per_visitor),
    );
    session.limit(&limiter, per_ip, per_visitor, req.views.len() as u32).await?;
    let now = chrono::Utc::now();
    let mut clean = Vec::with_capacity(req.views.len());
    for view in req.views {
        let url = crate::http::input::web_url(&view.url)
            .ok_or_else(|| AppError::field("url", "page URLs are http(s) URLs"))?;
        let title = view.title.chars().filter(|c| !c.is_control()).take(300).collect::<String>();
        let referrer = view.referrer.as_deref().and_then(crate::http::input::web_url);
        // A time from the last day, not from the future: the widget's clock may be off.
        let at =
            view.at.filter(|t| *t <= now && now - *t < chrono::Duration::days(1)).unwrap_or(now);
        clean.push(store::PageView { url, title: title.trim().to_owned(), referrer, at });
    }
    let mut tx = TenantTx::begin(&db, session.tenant.id).await?;
    store::record_pages(&mut tx, session.visitor.id, &clean).await?;
    tx.commit().await?;
    for store::PageView { url, title, at, .. } in clean {
        let frame = ServerFrame::Presence(crate::realtime::protocol::Presence::Page {
            visitor_id: session.visitor.public_id.clone(),
            url,
            title,
            at,
        });
        hub.to_agents(session.tenant.id, &encode(&frame));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Queues the left message for the merchant's notification email, when it has one and the
/// platform can send email. Returns whether it did.
async fn email_leave_message(
    system: &SystemCache,
    mail: &Mail,
    tx: &mut sqlx::PgConnection,
    session: &VisitorSession,
    left: &Left,
    conversation: i64,
) -> Result<bool, AppError> {
    let settings = system.get().await?;
    if !crate::notify::enabled(&settings) {
        return Ok(false);
    }
    let merchant = MerchantSettings::load(tx).await?;
    if merchant.notification_email.is_empty() {
        return Ok(false);
    }
    let lang = merchant.lang();
    let site = crate::notify::site_name(&settings);
    let shown = if merchant.service_name.is_empty() {
        &session.tenant.name
    } else {
        &merchant.service_name
    };
    let visitor = name_shown(left, session);
    let v = [("merchant", shown.as_str()), ("visitor", visitor), ("site", site)];
    let fill = crate::auth::links::fill;
    let link = format!("/app#c={conversation}");
    let mut details = vec![(lang.tr("email.leave_name").to_owned(), visitor.to_owned())];
    if !left.contact.is_empty() {
        details.push((lang.tr("email.leave_contact").to_owned(), left.contact.clone()));
    }
    let mail = crate::notify::Email {
        kind: "leave_message",
        tenant_id: Some(session.tenant.id.0),
        to: merchant.notification_email.clone(),
        content: crate::notify::Content {
            subject: fill(lang.tr("email.leave_subject"), &v),
            heading: fill(lang.tr("email.leave_heading"), &v),
            paragraphs: vec![lang.tr("email.leave_body").to_owned()],
            details,
            quote: Some(left.body.clone()),
            action: Some((lang.tr("email.leave_action").to_owned(), mail.link(&link))),
            reason: fill(lang.tr("email.leave_reason"), &v),
        },
        delay_secs: 0,
        about: serde_json::json!({}),
        dedupe_key: None,
    };
    crate::notify::enqueue(tx, &settings, lang, mail).await?;
    Ok(true)
}

#[derive(Deserialize, Default)]
struct ChatQuery {
    #[serde(default)]
    kefu_id: Option<String>,
    #[serde(default)]
    visitor_name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    refer: Option<String>,
    #[serde(default)]
    extra: Option<String>,
}

#[derive(Template)]
#[template(path = "chat/index.html")]
struct ChatPage {
    lang: Lang,
    tenant_name: String,
    initial: String,
    ent_id: String,
    kefu_id: String,
    visitor_name: String,
    avatar: String,
    refer: String,
    extra: String,
    /// The merchant's agents see what the visitor types before it is sent; the page says so.
    typing_preview: bool,
    /// The merchant's accent colour (`#rrggbb`, checked when stored).
    color: String,
    /// The merchant's logo in the header (else the initial).
    logo_url: Option<String>,
    /// The picture beside replies from agents without one of their own (else initials).
    service_avatar_url: String,
    /// The welcome message (sanitized HTML), shown as soon as the chat opens.
    welcome: String,
}

impl ChatPage {
    /// The page for `tenant` as its settings and the link (`q`: GOFLY's parameters) say.
    fn new(
        lang: Lang,
        tenant: &tenants::Tenant,
        settings: &MerchantSettings,
        q: ChatQuery,
    ) -> Self {
        let name = if settings.service_name.is_empty() {
            tenant.name.clone()
        } else {
            settings.service_name.clone()
        };
        let clip = |s: Option<String>, n: usize| {
            s.unwrap_or_default().chars().filter(|c| !c.is_control()).take(n).collect::<String>()
        };
        Self {
            lang,
            initial: name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default(),
            ent_id: tenant.ent_id.to_string(),
            kefu_id: q.kefu_id.filter(|k| k.parse::<i64>().is_ok()).unwrap_or_default(),
            visitor_name: clip(q.visitor_name, 60),
            avatar: clip(q.avatar, 2048),
            refer: clip(q.refer, 2048),
            extra: clip(q.extra, 12 * 1024),
            typing_preview: settings.typing_preview,
            color: settings.widget_color.clone(),
            logo_url: settings.logo_url(&tenant.ent_id),
            service_avatar_url: settings.avatar_url(&tenant.ent_id).unwrap_or_default(),
            welcome: settings.welcome_message.clone(),
            tenant_name: name,
        }
    }
}

async fn chat_index(
    State(db): State<PgPool>,
    ChosenLang(chosen): ChosenLang,
    ResolvedTenant(tenant): ResolvedTenant,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<ChatQuery>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&db, tenant.id).await?;
    let settings = MerchantSettings::load(&mut tx).await?;
    tx.commit().await?;
    // GOFLY's landing-domain redirect: opened on another host, go on to the merchant's. Not
    // inside the widget (`embed=1`): the loader talks to the origin it loaded the chat from.
    let embedded = uri.query().is_some_and(|q| q.split('&').any(|p| p == "embed=1"));
    if let Some(target) =
        landing_redirect(&settings.landing_url, &headers, &uri).filter(|_| !embedded)
    {
        return Ok(axum::response::Redirect::to(&target).into_response());
    }
    // `lang=`, then the browser's languages, then the merchant's default.
    let lang = chosen.unwrap_or_else(|| settings.lang());
    let page = ChatPage::new(lang, &tenant, &settings, q);
    let mut response = Page(page).into_response();
    let csp = content_security_policy(&settings.allowed_widget_domains);
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

/// The chat page's policy. The page is meant to be framed by the merchant's site (the
/// widget); where the merchant listed its domains, only those may frame it.
fn content_security_policy(widget_domains: &[String]) -> String {
    let ancestors = Some(widget_domains)
        .filter(|list| !list.is_empty())
        .map(|list| {
            list.iter()
                .filter(|d| d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
                .flat_map(|d| {
                    [format!("https://{d}"), format!("https://*.{d}"), format!("http://{d}")]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "*".to_owned());
    format!(
        "default-src 'self'; img-src 'self' data: blob: https:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self' {ancestors}"
    )
}

/// Where to send a visitor who opened the chat page on a host other than the merchant's
/// landing origin (same path and query); `None` when there is none or this is it.
fn landing_redirect(
    landing: &str,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Option<String> {
    let target = url::Url::parse(landing).ok()?;
    let wanted = match target.port() {
        Some(port) => format!("{}:{port}", target.host_str()?),
        None => target.host_str()?.to_owned(),
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if host.eq_ignore_ascii_case(&wanted) {
        return None;
    }
    let path = uri.path_and_query().map_or("/chatIndex", |p| p.as_str());
    Some(format!("{}{path}", landing.trim_end_matches('/')))
}

#[derive(Deserialize)]
struct LeaveMessage {
    #[serde(default)]
    name: String,
    #[serde(default)]
    contact: String,
    body: String,
}

/// `s` without control characters (line breaks stay), at most `n` characters, trimmed.
fn clean(s: &str, n: usize) -> String {
    let kept: String = s.chars().filter(|c| !c.is_control() || *c == '\n').take(n).collect();
    kept.trim().to_owned()
}

/// The leave-a-message form, checked: the contact given is kept as the visitor's email or
/// phone when it reads as one, else it stays with the message.
struct Left {
    name: Option<String>,
    contact: String,
    email: Option<String>,
    phone: Option<String>,
    body: String,
}

impl Left {
    fn new(req: &LeaveMessage, body: String) -> Self {
        let contact = clean(&req.contact, 200);
        let email =
            crate::auth::validate::Email::parse(&contact).ok().map(|e| e.as_str().to_lowercase());
        let phone = (email.is_none() && crate::http::input::phone_number(&contact))
            .then(|| contact.clone());
        let name = crate::http::input::shown_name(&req.name, 100).filter(|n| !n.is_empty());
        Self { name, contact, email, phone, body }
    }

    /// The message as stored: a contact that is neither email nor phone follows the text.
    fn text(&self) -> String {
        match (&self.email, &self.phone, self.contact.is_empty()) {
            (None, None, false) => format!("{}\n\n{}", self.body, self.contact),
            _ => self.body.clone(),
        }
    }

    /// The line agents are shown about it.
    fn summary(&self, who: &str) -> String {
        let contact =
            if self.contact.is_empty() { String::new() } else { format!(" ({})", self.contact) };
        format!("{who}{contact}: {}", self.body.chars().take(200).collect::<String>())
    }
}

/// Who left it: the name given, else the visitor's.
fn name_shown<'a>(left: &'a Left, session: &'a VisitorSession) -> &'a str {
    left.name.as_deref().unwrap_or(&session.visitor.name)
}

/// The leave-a-message form (when nobody is online): the message goes into the visitor's
/// conversation, queued for the team as a lead (chat::left), their contact details into
/// their profile, and the merchant's notification email is told.
async fn leave_message(
    State(db): State<PgPool>,
    State(chat): State<Arc<Chat>>,
    State(limiter): State<Arc<Limiter>>,
    State(system): State<Arc<SystemCache>>,
    State(mail): State<Mail>,
    session: VisitorSession,
    ApiJson(req): ApiJson<LeaveMessage>,
) -> Result<Response, AppError> {
    let body = clean(&req.body, 5_000);
    if body.is_empty() {
        return Err(AppError::field("body", "write a message"));
    }
    let l = &limiter.limits;
    let (per_ip, per_visitor) = (
        Rule::per_hour("leave_messages", l.leave_messages_per_ip),
        Rule::per_hour("leave_messages", l.leave_messages_per_visitor),
    );
    session.limit(&limiter, per_ip, per_visitor, 1).await?;
    let left = Left::new(&req, body);
    let mut tx = TenantTx::begin(&db, session.tenant.id).await?;
    let (email, phone) = (left.email.as_deref(), left.phone.as_deref());
    store::left_contact(&mut tx, session.visitor.id, left.name.as_deref(), email, phone).await?;
    tx.commit().await?;
    let name = name_shown(&left, &session).to_owned();
    let message =
        LeftMessage { visitor_id: session.visitor.id, ip: session.ip, name, body: left.text() };
    let (conversation, stored) = chat.take_left_message(session.tenant.id, message).await?;
    // The merchant's notification email gets it too.
    let mut tx = TenantTx::begin(&db, session.tenant.id).await?;
    let emailed =
        email_leave_message(&system, &mail, &mut tx, &session, &left, conversation.id).await?;
    tx.commit().await?;
    if emailed {
        mail.wake();
    }
    // Agents see the conversation and the message arrive; clients of the protocol before
    // left messages were conversations get the notice they knew (docs/protocol.md).
    let who = name_shown(&left, &session);
    let notice = ServerFrame::Notice { code: "leave_message", message: left.summary(who) };
    chat.hub.to_agents(session.tenant.id, &encode(&notice));
    let out = serde_json::json!({ "id": stored.id, "conversation_id": conversation.id });
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

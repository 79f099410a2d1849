//! A merchant's settings as one typed document: how the service presents itself (name,
//! colour, widget button), what visitors are told (welcome, offline), privacy (typing
//! previews), where the widget may run, and where notifications go. Stored as one row per
//! key in the tenant's `settings` table (the keys other modules read directly keep their
//! names: `welcome_message`, `offline_message`, `typing_preview`, `allowed_widget_domains`).

use crate::auth::ctx::Door;
use crate::realtime::bus::{Caches, Invalidation};
use axum::extract::FromRef;
use std::collections::HashMap;
use std::sync::Arc;

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use tenants::EntId;

pub mod store;

use super::{hours::BusinessHours, rich_text};
use crate::{
    auth::ctx::{Admin, Ctx},
    auth::validate::Email,
    http::{AppError, Routes, Scope, extract::ApiJson, input::text},
    i18n::Lang,
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Caches: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/settings", Scope::Tenant, get_settings)
        .admin()
        .patch("/api/v1/settings", Scope::Tenant, update_settings)
        .admin()
}

/// The settings key of the SSO secret's SHA-256 (hex); kept out of the document.
pub const SSO_SECRET_KEY: &str = "sso_secret_sha256";

/// Writes one settings row (inside the caller's transaction).
pub async fn store_setting(conn: &mut PgConnection, key: &str, value: Value) -> sqlx::Result<()> {
    store::put(conn, key, value).await
}

/// The longest idle time before auto-away (four hours).
const MAX_AUTO_AWAY_MINUTES: u32 = 240;

/// The longest wait before an unanswered conversation is emailed about (a day).
const MAX_UNANSWERED_MINUTES: u32 = 1440;

/// The longest idle time before a conversation is resolved automatically (30 days).
const MAX_AUTO_RESOLVE_MINUTES: u32 = 43_200;

/// The longest time after its resolution a visitor's message reopens a conversation (30 days).
const MAX_REOPEN_HOURS: u32 = 720;

/// Where the widget button sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    #[default]
    Right,
    Left,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MerchantSettings {
    /// The name visitors see (empty: the merchant's name).
    pub service_name: String,
    /// The accent colour of the chat page and the widget button, `#rrggbb`.
    pub widget_color: String,
    pub widget_position: Position,
    /// The widget button's text (empty: the chat page's default in the visitor's language).
    pub widget_button_text: String,
    /// The language for visitors whose browser asks for one kefu does not speak.
    pub default_lang: String,
    /// Sent by the service when a conversation starts (empty: none).
    pub welcome_message: String,
    /// Sent when nobody can answer (empty: the built-in text in the visitor's language).
    pub offline_message: String,
    /// Agents see what visitors type before they send it; the chat page says so.
    pub typing_preview: bool,
    /// Sites allowed to embed the chat (empty: any). A domain allows its subdomains.
    pub allowed_widget_domains: Vec<String>,
    /// Where left messages and reminders about unanswered conversations go.
    pub notification_email: String,
    /// Minutes a visitor's message may wait while its conversation's agent is away (or, for a
    /// conversation nobody has, while nobody is online) before that agent (or the
    /// notification email) is reminded by email; 0: never.
    pub unanswered_email_minutes: u32,
    /// Minutes without activity in any tab before an online agent becomes away
    /// automatically (back online with their next activity); 0: never.
    pub auto_away_minutes: u32,
    /// Minutes without a message after which a conversation that is not snoozed is resolved
    /// automatically; 0: never.
    pub auto_resolve_minutes: u32,
    /// Hours after its resolution during which the visitor's next message reopens the
    /// conversation (beyond them it starts a new one); 0: always a new one.
    pub reopen_hours: u32,
    /// Asked of visitors before their first message (visitor::prechat).
    pub prechat_form: crate::visitor::prechat::PrechatForm,
    pub business_hours: BusinessHours,
    /// The merchant's logo on the chat page: an image upload of the merchant's (its id;
    /// empty: the name's initial).
    pub logo: String,
    /// The picture beside the service's replies when the agent has none of their own (an
    /// image upload's id; empty: the agent's initial).
    pub avatar: String,
    /// Addresses and networks allowed to ask for single sign-on tokens
    /// (`/other/internalToken`), with the SSO secret.
    pub sso_ip_whitelist: Vec<String>,
    /// Whether an SSO secret is set (the secret itself is never shown again).
    pub sso_secret_set: bool,
    /// Whether a widget identity secret exists (`GET /api/v1/settings/identity` shows it).
    pub identity_secret_set: bool,
    /// Refuse visitors who claim a user id without a valid proof (instead of keeping them
    /// anonymous with the claim marked unverified). Needs an identity secret.
    pub identity_required: bool,
    /// Every agent signs in with a second factor (TOTP); those without one set it up at their
    /// next sign-in.
    pub require_2fa: bool,
    /// Single sign-on from the merchant's own system counts as the second factor: it may sign
    /// in agents who have one (or where `require_2fa` is on). Only the owner turns it on.
    pub sso_satisfies_2fa: bool,
    /// GOFLY's landing-domain redirect: the chat page opened on any other host sends the
    /// visitor on to this origin (`https://chat.shop.example`), e.g. a domain of the
    /// merchant's own that messaging apps have not flagged. Empty: no redirect.
    pub landing_url: String,
}

impl Default for MerchantSettings {
    fn default() -> Self {
        Self {
            service_name: String::new(),
            widget_color: "#4f46e5".into(),
            widget_position: Position::Right,
            widget_button_text: String::new(),
            default_lang: Lang::En.code().into(),
            welcome_message: String::new(),
            offline_message: String::new(),
            typing_preview: false,
            allowed_widget_domains: Vec::new(),
            notification_email: String::new(),
            unanswered_email_minutes: 5,
            auto_away_minutes: 15,
            auto_resolve_minutes: 0,
            reopen_hours: 24,
            prechat_form: Default::default(),
            business_hours: BusinessHours::default(),
            logo: String::new(),
            avatar: String::new(),
            sso_ip_whitelist: Vec::new(),
            sso_secret_set: false,
            identity_secret_set: false,
            identity_required: false,
            require_2fa: false,
            sso_satisfies_2fa: false,
            landing_url: String::new(),
        }
    }
}

impl MerchantSettings {
    /// The stored settings over the defaults; a stored value of the wrong shape (written by
    /// an older version, say) is ignored rather than breaking the pages that read it.
    pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Self> {
        let stored: HashMap<String, Value> = store::all(conn).await?.into_iter().collect();
        let mut s = Self::default();
        let text = |key: &str| stored.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(v) = text("service_name") {
            s.service_name = v;
        }
        if let Some(v) = text("widget_color").filter(|c| is_color(c)) {
            s.widget_color = v;
        }
        if let Some(v) =
            stored.get("widget_position").and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            s.widget_position = v;
        }
        if let Some(v) = text("widget_button_text") {
            s.widget_button_text = v;
        }
        if let Some(v) = text("default_lang").filter(|l| Lang::parse(l).is_some()) {
            s.default_lang = v;
        }
        if let Some(v) = text("welcome_message") {
            s.welcome_message = v;
        }
        if let Some(v) = text("offline_message") {
            s.offline_message = v;
        }
        if let Some(v) = stored.get("typing_preview").and_then(Value::as_bool) {
            s.typing_preview = v;
        }
        if let Some(v) = stored.get("require_2fa").and_then(Value::as_bool) {
            s.require_2fa = v;
        }
        if let Some(v) = stored.get("sso_satisfies_2fa").and_then(Value::as_bool) {
            s.sso_satisfies_2fa = v;
        }
        if let Some(list) = stored.get("allowed_widget_domains").and_then(Value::as_array) {
            s.allowed_widget_domains =
                list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        if let Some(v) = text("notification_email") {
            s.notification_email = v;
        }
        let number = |key: &str, max: u32| {
            stored
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| *m <= max)
        };
        if let Some(v) = number("unanswered_email_minutes", MAX_UNANSWERED_MINUTES) {
            s.unanswered_email_minutes = v;
        }
        if let Some(v) = number("auto_away_minutes", MAX_AUTO_AWAY_MINUTES) {
            s.auto_away_minutes = v;
        }
        if let Some(v) = number("auto_resolve_minutes", MAX_AUTO_RESOLVE_MINUTES) {
            s.auto_resolve_minutes = v;
        }
        if let Some(v) = number("reopen_hours", MAX_REOPEN_HOURS) {
            s.reopen_hours = v;
        }
        s.prechat_form = crate::visitor::prechat::PrechatForm::from_stored(
            stored.get(crate::visitor::prechat::SETTINGS_KEY),
        );
        if let Some(v) = text("logo").filter(|id| crate::upload::valid_id(id)) {
            s.logo = v;
        }
        if let Some(v) = text("avatar").filter(|id| crate::upload::valid_id(id)) {
            s.avatar = v;
        }
        if let Some(list) = stored.get("sso_ip_whitelist").and_then(Value::as_array) {
            s.sso_ip_whitelist = list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        s.sso_secret_set = text(SSO_SECRET_KEY).is_some_and(|h| !h.is_empty());
        s.identity_secret_set = stored
            .get(crate::visitor::identity::SECRET_KEY)
            .and_then(|v| v.get("current"))
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty());
        // Enforcement without a secret would refuse every claim: it waits for one.
        s.identity_required = s.identity_secret_set
            && stored.get("identity_required").and_then(Value::as_bool).unwrap_or(false);
        if let Some(v) = text("landing_url").filter(|u| u.is_empty() || origin(u).is_some()) {
            s.landing_url = v;
        }
        if let Some(v) = stored
            .get("business_hours")
            .and_then(|v| serde_json::from_value::<BusinessHours>(v.clone()).ok())
            .filter(|h| h.validate().is_ok())
        {
            s.business_hours = v;
        }
        Ok(s)
    }

    pub fn lang(&self) -> Lang {
        Lang::parse(&self.default_lang).unwrap_or_default()
    }

    /// Where the logo is served (its thumbnail), if there is one.
    pub fn logo_url(&self, ent_id: &EntId) -> Option<String> {
        image_url(ent_id, &self.logo)
    }

    /// Where the service's avatar is served (its thumbnail), if there is one.
    pub fn avatar_url(&self, ent_id: &EntId) -> Option<String> {
        image_url(ent_id, &self.avatar)
    }
}

/// The served thumbnail of the image upload `id` (uploads of images always have one).
pub fn image_url(ent_id: &EntId, id: &str) -> Option<String> {
    (!id.is_empty()).then(|| format!("/u/{ent_id}/{id}/thumb"))
}

/// The settings as the API shows them: the document plus where its pictures are served.
#[derive(Serialize)]
pub struct SettingsOut {
    #[serde(flatten)]
    pub settings: MerchantSettings,
    pub logo_url: Option<String>,
    pub avatar_url: Option<String>,
}

impl SettingsOut {
    fn new(settings: MerchantSettings, ent_id: &EntId) -> Self {
        Self {
            logo_url: settings.logo_url(ent_id),
            avatar_url: settings.avatar_url(ent_id),
            settings,
        }
    }
}

/// Checks that `raw` names an image this merchant's team uploaded (not a visitor's) and
/// returns its id; empty clears the picture.
pub async fn team_image(
    conn: &mut PgConnection,
    ent_id: &EntId,
    field: &'static str,
    raw: &str,
) -> Result<String, AppError> {
    let id = raw.trim();
    if id.is_empty() {
        return Ok(String::new());
    }
    let upload = crate::upload::find(conn, ent_id, id).await?;
    match upload {
        Some(u) if u.kind == "image" && u.visitor_id.is_none() => Ok(u.id),
        _ => Err(AppError::field(
            field,
            "upload a PNG, JPEG, GIF or WebP image first and name its id",
        )),
    }
}

/// `scheme://host[:port]` of an http(s) URL without path, query or credentials.
pub fn origin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && matches!(url.path(), "" | "/");
    let host = url.host_str().filter(|h| domain(h).as_deref() == Some(*h))?;
    plain.then(|| match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

fn is_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A domain as merchants type it (`shop.example.com`, maybe with a scheme or a path pasted
/// along), reduced to the lower-case host; `None` if it is not one.
fn domain(raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_lowercase();
    let host = raw.split("://").last()?.split(['/', '?', '#']).next()?.split(':').next()?;
    let host = host.trim_start_matches("*.").trim_end_matches('.');
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    (host.contains('.') && host.len() <= 253 && labels_ok).then(|| host.to_owned())
}

async fn get_settings(
    Ctx { session, mut tx, .. }: Ctx<Admin>,
) -> Result<Json<SettingsOut>, AppError> {
    let settings = MerchantSettings::load(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(SettingsOut::new(settings, &session.tenant.ent_id)))
}

/// A partial update: fields left out stay as they are.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    service_name: Option<String>,
    widget_color: Option<String>,
    widget_position: Option<Position>,
    widget_button_text: Option<String>,
    default_lang: Option<String>,
    welcome_message: Option<String>,
    offline_message: Option<String>,
    typing_preview: Option<bool>,
    allowed_widget_domains: Option<Vec<String>>,
    notification_email: Option<String>,
    unanswered_email_minutes: Option<u32>,
    auto_away_minutes: Option<u32>,
    auto_resolve_minutes: Option<u32>,
    reopen_hours: Option<u32>,
    prechat_form: Option<crate::visitor::prechat::PrechatForm>,
    business_hours: Option<BusinessHours>,
    landing_url: Option<String>,
    logo: Option<String>,
    avatar: Option<String>,
    sso_ip_whitelist: Option<Vec<String>>,
    identity_required: Option<bool>,
    require_2fa: Option<bool>,
    sso_satisfies_2fa: Option<bool>,
}

/// The checked values to store, by key.
/// (Pictures are checked against the merchant's uploads in [`update_settings`].)
/// The widget's allowed domains, normalized, without blanks or repeats (50 at most).
fn domains(list: &[String]) -> Result<Vec<String>, AppError> {
    if list.len() > 50 {
        return Err(AppError::field("allowed_widget_domains", "at most 50 domains"));
    }
    let mut domains = Vec::with_capacity(list.len());
    for raw in list.iter().filter(|d| !d.trim().is_empty()) {
        let d = domain(raw).ok_or_else(|| {
            AppError::field(
                "allowed_widget_domains",
                format!(
                    "{:?} is not a domain like shop.example.com",
                    raw.chars().take(60).collect::<String>()
                ),
            )
        })?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    Ok(domains)
}

/// The SSO whitelist's addresses and networks, in CIDR form, without blanks or repeats (50
/// at most).
fn ranges(list: &[String]) -> Result<Vec<String>, AppError> {
    if list.len() > 50 {
        return Err(AppError::field("sso_ip_whitelist", "at most 50 addresses or networks"));
    }
    let mut ranges = Vec::with_capacity(list.len());
    for raw in list.iter().filter(|r| !r.trim().is_empty()) {
        let range = crate::visitor::blacklist::parse_range(raw).map_err(|why| {
            AppError::field(
                "sso_ip_whitelist",
                format!("{:?}: {why}", raw.chars().take(60).collect::<String>()),
            )
        })?;
        if !ranges.contains(&range) {
            ranges.push(range);
        }
    }
    Ok(ranges)
}

/// The landing page's origin (empty: none).
fn landing_origin(raw: &str) -> Result<String, AppError> {
    let v = raw.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    origin(v).ok_or_else(|| {
        AppError::field("landing_url", "an origin like https://chat.shop.example (no path)")
    })
}

fn check(c: &Change) -> Result<Vec<(&'static str, Value)>, AppError> {
    let c = c.clone();
    let mut out = Vec::new();
    if let Some(v) = c.service_name {
        out.push(("service_name", json!(text("service_name", &v, 80, false, false)?)));
    }
    if let Some(v) = c.widget_color {
        let v = v.trim().to_ascii_lowercase();
        if !is_color(&v) {
            return Err(AppError::field("widget_color", "a colour like #4f46e5"));
        }
        out.push(("widget_color", json!(v)));
    }
    if let Some(v) = c.widget_position {
        out.push(("widget_position", json!(v)));
    }
    if let Some(v) = c.widget_button_text {
        out.push(("widget_button_text", json!(text("widget_button_text", &v, 30, false, false)?)));
    }
    if let Some(v) = c.default_lang {
        let lang = Lang::parse(v.trim())
            .ok_or_else(|| AppError::field("default_lang", "one of en, zh-CN"))?;
        out.push(("default_lang", json!(lang.code())));
    }
    if let Some(v) = c.welcome_message {
        out.push(("welcome_message", json!(rich_text::field("welcome_message", &v)?)));
    }
    if let Some(v) = c.offline_message {
        out.push(("offline_message", json!(rich_text::field("offline_message", &v)?)));
    }
    if let Some(v) = c.typing_preview {
        out.push(("typing_preview", json!(v)));
    }
    if let Some(v) = c.identity_required {
        out.push(("identity_required", json!(v)));
    }
    if let Some(v) = c.require_2fa {
        out.push(("require_2fa", json!(v)));
    }
    if let Some(v) = c.sso_satisfies_2fa {
        out.push(("sso_satisfies_2fa", json!(v)));
    }
    if let Some(list) = c.allowed_widget_domains {
        out.push(("allowed_widget_domains", json!(domains(&list)?)));
    }
    if let Some(v) = c.notification_email {
        let v = text("notification_email", &v, 254, false, false)?;
        if !v.is_empty() {
            Email::parse(&v)
                .map_err(|_| AppError::field("notification_email", "not a valid email address"))?;
        }
        out.push(("notification_email", json!(v)));
    }
    let bounded = [
        ("unanswered_email_minutes", c.unanswered_email_minutes, MAX_UNANSWERED_MINUTES, "minutes"),
        ("auto_away_minutes", c.auto_away_minutes, MAX_AUTO_AWAY_MINUTES, "minutes"),
        ("auto_resolve_minutes", c.auto_resolve_minutes, MAX_AUTO_RESOLVE_MINUTES, "minutes"),
        ("reopen_hours", c.reopen_hours, MAX_REOPEN_HOURS, "hours"),
    ];
    for (key, value, max, unit) in bounded {
        if let Some(v) = value {
            if v > max {
                return Err(AppError::field(key, format!("0 (never) to {max} {unit}")));
            }
            out.push((key, json!(v)));
        }
    }
    if let Some(list) = c.sso_ip_whitelist {
        out.push(("sso_ip_whitelist", json!(ranges(&list)?)));
    }
    if let Some(v) = c.landing_url {
        out.push(("landing_url", json!(landing_origin(&v)?)));
    }
    if let Some(form) = c.prechat_form {
        out.push((crate::visitor::prechat::SETTINGS_KEY, json!(form.checked()?)));
    }
    if let Some(mut h) = c.business_hours {
        h.out_of_hours_message = rich_text::field("business_hours", &h.out_of_hours_message)?;
        h.validate()?;
        out.push(("business_hours", json!(h)));
    }
    Ok(out)
}

async fn update_settings(
    State(caches): State<Caches>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiJson(change): ApiJson<Change>,
) -> Result<Json<SettingsOut>, AppError> {
    let mut values = check(&change)?;
    let ent_id = &session.tenant.ent_id;
    if let Some(raw) = &change.logo {
        values.push(("logo", json!(team_image(&mut tx, ent_id, "logo", raw).await?)));
    }
    if let Some(raw) = &change.avatar {
        values.push(("avatar", json!(team_image(&mut tx, ent_id, "avatar", raw).await?)));
    }
    let before = MerchantSettings::load(&mut tx).await?;
    allowed(&change, &before, &session)?;
    let before = serde_json::to_value(before).unwrap_or_default();
    for (key, value) in values {
        store_setting(&mut tx, key, value).await?;
    }
    let settings = MerchantSettings::load(&mut tx).await?;
    audit_changed(&mut tx, &session, &before, &settings).await?;
    // Auto-resolve switched on: the status worker looks at this merchant from now on.
    if settings.auto_resolve_minutes > 0 {
        crate::chat::status::schedule(&mut tx, session.tenant.id, chrono::Utc::now()).await?;
    }
    tx.commit().await?;
    // The chat engine caches what it reads from settings (welcome, offline, previews).
    caches.invalidate(Invalidation::Automation(session.tenant.id.0)).await;
    tracing::info!(tenant = session.tenant.id.0, by = session.agent.id.0, "settings changed");
    Ok(Json(SettingsOut::new(settings, &session.tenant.ent_id)))
}

/// Changes that depend on what is set now, or on who makes them.
fn allowed(
    change: &Change,
    before: &MerchantSettings,
    session: &crate::auth::session::AgentSession,
) -> Result<(), AppError> {
    if change.identity_required == Some(true) && !before.identity_secret_set {
        return Err(AppError::field(
            "identity_required",
            "generate an identity secret first: without one no visitor could be verified",
        ));
    }
    // Letting single sign-on stand in for the team's second factors is the owner's call
    // (forms send every field: an unchanged value passes).
    let sso_2fa_changes = change.sso_satisfies_2fa.is_some_and(|v| v != before.sso_satisfies_2fa);
    if sso_2fa_changes && session.agent.role != crate::http::Role::Owner {
        return Err(AppError::forbidden(
            "forbidden_role",
            "only the owner decides whether single sign-on counts as two-step verification",
        ));
    }
    Ok(())
}

/// An audit line naming what actually changed (forms send every field); none if nothing did.
async fn audit_changed(
    tx: &mut tenants::TenantTx,
    session: &crate::auth::session::AgentSession,
    before: &Value,
    settings: &MerchantSettings,
) -> Result<(), AppError> {
    let after = serde_json::to_value(settings).unwrap_or_default();
    let keys: Vec<&str> = after
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let target = keys.join(", ");
    crate::merchant::audit::record(
        tx,
        session,
        "settings.update",
        &target,
        json!({ "keys": keys }),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_reduced_to_hosts() {
        assert_eq!(domain("Shop.Example.com").as_deref(), Some("shop.example.com"));
        assert_eq!(
            domain("https://shop.example.com/path?q=1").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(domain("*.example.com").as_deref(), Some("example.com"));
        assert_eq!(domain("example.com:8443").as_deref(), Some("example.com"));
        assert_eq!(domain("localhost"), None);
        assert_eq!(domain("exa mple.com"), None);
        assert_eq!(domain("-bad.example.com"), None);
        assert_eq!(domain("<script>.com"), None);
    }

    #[test]
    fn landing_origins() {
        assert_eq!(
            origin("https://Chat.Shop.example/").as_deref(),
            Some("https://chat.shop.example")
        );
        assert_eq!(
            origin("http://chat.shop.example:8080").as_deref(),
            Some("http://chat.shop.example:8080")
        );
        assert_eq!(origin("https://chat.shop.example/chatIndex"), None);
        assert_eq!(origin("https://user@chat.shop.example"), None);
        assert_eq!(origin("javascript:alert(1)"), None);
        assert_eq!(origin("chat.shop.example"), None);
    }

    #[test]
    fn colours() {
        assert!(is_color("#4f46e5"));
        assert!(!is_color("4f46e5"));
        assert!(!is_color("#4f46e"));
        assert!(!is_color("#4f46eZ"));
    }
}

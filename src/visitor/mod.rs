//! Website visitors: anonymous sessions (create or resume), the visitor token, tickets for
//! the visitor socket, and the chat page entry (`/chatIndex`, GOFLY-compatible).

pub(crate) mod blacklist;
pub(crate) mod contacts;
pub mod identity;
pub(crate) mod manage;
mod page;
pub mod prechat;
mod store;

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, FromRequestParts, State},
    http::{HeaderMap, header, request::Parts},
};
use base64::Engine as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tenants::{EntId, Tenant, TenantId, TenantTx};

use crate::{
    auth::{
        ctx::Door,
        token::{TicketRole, TokenKind},
    },
    http::{
        AppError, ClientMeta, Routes, Scope, TrustedProxies,
        extract::ApiJson,
        input::{shown_name, web_url},
        rate::{Hit, Limiter, Rule},
    },
};

pub use store::{VisitorRow, directory};

/// What the visitor door works with: the session door (pool, registry, token keys), the
/// chat engine (tickets, webhooks, agents' pages), where an address is, and the visitors'
/// limits.
#[derive(Clone)]
pub struct Visitors {
    pub door: Arc<Door>,
    pub chat: Arc<crate::chat::Chat>,
    pub geoip: Arc<crate::geoip::GeoIp>,
    pub limiter: Arc<Limiter>,
}

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Visitors: FromRef<S>,
    Arc<Door>: FromRef<S>,
    TrustedProxies: FromRef<S>,
    crate::realtime::bus::Caches: FromRef<S>,
    Arc<tenants::Registry>: FromRef<S>,
    Arc<Limiter>: FromRef<S>,
    Arc<crate::realtime::hub::Hub>: FromRef<S>,
    Arc<crate::config::Config>: FromRef<S>,
    Arc<crate::upload::remote::RemoteImages>: FromRef<S>,
    Arc<crate::chat::Chat>: FromRef<S>,
    Arc<billing::Catalog>: FromRef<S>,
    sqlx::PgPool: FromRef<S>,
    Arc<crate::platform::system::SystemCache>: FromRef<S>,
    crate::notify::Mail: FromRef<S>,
    crate::upload::Storage: FromRef<S>,
{
    Routes::new()
        .post("/api/v1/visitor/session", Scope::Public, start_session)
        .post("/api/v1/visitor/ticket", Scope::Public, ticket)
        .merge(identity::routes())
        .merge(prechat::routes())
        .merge(page::routes())
        .merge(manage::routes())
        .merge(blacklist::routes())
        .merge(contacts::routes())
}

/// Largest `extra` accepted (decoded), in bytes.
const MAX_EXTRA_BYTES: usize = 8 * 1024;

#[derive(Deserialize)]
pub struct SessionRequest {
    ent_id: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    refer: Option<String>,
    #[serde(default)]
    landing_url: Option<String>,
    /// GOFLY's base64-encoded JSON, or a JSON object.
    #[serde(default)]
    extra: Option<Value>,
    /// The merchant's id of its logged-in user, proven by `user_hash` or `identity_token`
    /// (see [`identity`]).
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_hash: Option<String>,
    #[serde(default)]
    identity_token: Option<String>,
}

#[derive(Serialize)]
struct SessionResponse {
    visitor_id: String,
    token: String,
    name: String,
    /// True when this browser's earlier identity (or the verified user's) was resumed.
    resumed: bool,
    /// The merchant's user id, when the merchant's server proved it.
    user_id: Option<String>,
    verified: bool,
    /// The pre-chat form to show before the first message (absent: none to fill in).
    #[serde(skip_serializing_if = "Option::is_none")]
    prechat: Option<prechat::PrechatForm>,
}

/// Creates or resumes a visitor. A visitor id claimed without proof (e.g. GOFLY's
/// `visitor_id` URL parameter) never grants access: only the visitor token does, or a
/// proof from the merchant's server that this is its user (then the visitor is that user's
/// on every device).
async fn start_session(
    State(state): State<Visitors>,
    meta: ClientMeta,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<Json<SessionResponse>, AppError> {
    let tenant = open_merchant(&state, &req.ent_id).await?;
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let own_host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let profile = profile(&state, &req, &meta, (ua, own_host))?;
    let resumed_id = req
        .token
        .as_deref()
        .and_then(|t| state.door.tokens.verify(t, TokenKind::Visitor).ok())
        .filter(|c| c.tid == Some(tenant.id.0))
        .and_then(|c| c.sub.parse::<i64>().ok());
    meter(&state, &tenant, &meta, resumed_id, req.user_id.is_some()).await?;
    let claim = identity::Claim {
        user_id: req.user_id.as_deref(),
        user_hash: req.user_hash.as_deref(),
        identity_token: req.identity_token.as_deref(),
    };
    let mut tx = TenantTx::begin(&state.door.db, tenant.id).await?;
    if store::ip_blocked(&mut tx, meta.ip).await? {
        return Err(blocked());
    }
    let resumed_id = match resumed_id {
        Some(id) => Some(store::merge::current(&mut tx, id).await?),
        None => None,
    };
    let (visitor, resumed, profile) = identify(&mut tx, claim, resumed_id, profile).await?;
    let verified = visitor.external_id.is_some();
    let prechat = prechat::for_visitor(&mut tx, visitor.id, verified).await?;
    tx.commit().await?;
    if visitor.blocked {
        return Err(blocked());
    }
    if !resumed {
        announce_new(&state, tenant.id, &visitor, &profile);
    }
    let issued = state.door.tokens.issue_visitor(visitor.id, &tenant, verified)?;
    let (visitor_id, token, name, user_id) =
        (visitor.public_id, issued.token, visitor.name, visitor.external_id);
    Ok(Json(SessionResponse { visitor_id, token, name, resumed, user_id, verified, prechat }))
}

/// The merchant `ent_id` names, if its visitors are served (404, or the paused answer).
async fn open_merchant(state: &Visitors, ent_id: &str) -> Result<Arc<Tenant>, AppError> {
    let ent_id = EntId::parse(ent_id).map_err(|_| AppError::TenantNotFound)?;
    let tenant = state.door.tenants.by_ent_id(&ent_id).await?.ok_or(AppError::TenantNotFound)?;
    if crate::merchant::subscription::paused_for_visitors(&tenant) {
        return Err(AppError::TenantSuspended);
    }
    Ok(tenant)
}

/// The `visitor.created` webhook for a visitor seen for the first time.
fn announce_new(
    state: &Visitors,
    tenant: TenantId,
    visitor: &VisitorRow,
    profile: &store::Profile,
) {
    let data = || {
        serde_json::json!({ "visitor": {
            "id": visitor.public_id, "name": visitor.name, "user_id": visitor.external_id,
            "referrer": profile.referrer, "landing_url": profile.landing_url, "extra": profile.extra,
        } })
    };
    state.chat.webhooks.emit(tenant, "visitor.created", data);
}

/// What the request and the connection say about the visitor: the name and avatar the link
/// or widget passed (GOFLY's `visitorName`/`visitorAvatar` in `extra` too), where they came
/// from, their device and location.
fn profile(
    state: &Visitors,
    req: &SessionRequest,
    meta: &ClientMeta,
    (ua, own_host): (&str, &str),
) -> Result<store::Profile, AppError> {
    let extra = decode_extra(req.extra.as_ref())?;
    Ok(store::Profile {
        name_rank: store::NameRank::Page,
        name: req
            .name
            .as_deref()
            .or_else(|| extra.get("visitorName").and_then(Value::as_str))
            .and_then(|n| shown_name(n, 60)),
        avatar: req
            .avatar
            .as_deref()
            .or_else(|| extra.get("visitorAvatar").and_then(Value::as_str))
            .filter(|u| crate::realtime::protocol::safe_link(u))
            .map(str::to_owned),
        // Shown to agents as links: http(s) only; and where the visitor came from, not
        // kefu's own pages (a reload of the chat says it came from itself).
        referrer: req.refer.as_deref().and_then(web_url).filter(|r| !on_host(r, own_host)),
        landing_url: req.landing_url.as_deref().and_then(web_url),
        extra: Value::Object(extra),
        ip: meta.ip,
        user_agent: ua.chars().take(512).collect(),
        device: parse_user_agent(ua),
        location: state.geoip.lookup(meta.ip),
        email: None,
        claimed_user_id: None,
    })
}

/// Whether `url` is on `host` (a `Host` header: name, and port when not the default).
fn on_host(url: &str, host: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else { return false };
    let shown = match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => return false,
    };
    !host.is_empty() && shown.eq_ignore_ascii_case(host)
}

/// Anonymous traffic is metered per address: any session request, and new visitors (a
/// browser without a valid token of this merchant and no verified identity).
async fn meter(
    state: &Visitors,
    tenant: &Tenant,
    meta: &ClientMeta,
    resumed_id: Option<i64>,
    claims_identity: bool,
) -> Result<(), AppError> {
    let l = &state.limiter.limits;
    let mut hits = vec![Hit::ip(Rule::per_ten_minutes("sessions", l.sessions_per_ip), meta.ip)];
    match resumed_id {
        Some(id) => {
            hits.push(Hit::visitor(Rule::per_ten_minutes("sessions", l.sessions_per_visitor), id));
        }
        None if !claims_identity => {
            hits.push(Hit::ip(Rule::per_hour("new_visitors", l.new_visitors_per_ip), meta.ip));
        }
        None => {}
    }
    state.limiter.check(tenant.id, &hits).await
}

/// The visitor this request is: the merchant's verified user, or this browser's anonymous
/// visitor (resumed or new), per the merchant's identity policy. Returns whether an
/// existing visitor was resumed, and the profile as stored.
async fn identify(
    tx: &mut TenantTx,
    claim: identity::Claim<'_>,
    resumed_id: Option<i64>,
    mut profile: store::Profile,
) -> Result<(store::VisitorRow, bool, store::Profile), AppError> {
    let policy = identity::Policy::load(tx).await?;
    let (visitor, resumed) = match identity::verify(policy.secrets.as_ref(), claim, Utc::now())? {
        identity::Identity::Verified(user) => {
            if user.name.is_some() {
                profile.name_rank = store::NameRank::Verified;
            }
            profile.name = user.name.or(profile.name);
            profile.avatar = user.avatar.or(profile.avatar);
            profile.email = user.email;
            verified_visitor(tx, &user.id, resumed_id, &profile).await?
        }
        identity::Identity::Unverified(_) if policy.required => return Err(identity::refused()),
        identity::Identity::Unverified(claimed) => {
            profile.claimed_user_id = Some(claimed).filter(|c| !c.is_empty());
            anonymous_visitor(tx, resumed_id, &profile).await?
        }
        identity::Identity::Anonymous => anonymous_visitor(tx, resumed_id, &profile).await?,
    };
    Ok((visitor, resumed, profile))
}

/// The visitor the merchant's user `user_id` is: theirs from any device, else this
/// browser's anonymous visitor (who just logged in), else a new one. Returns whether an
/// existing visitor was resumed.
async fn verified_visitor(
    tx: &mut TenantTx,
    user_id: &str,
    token_visitor: Option<i64>,
    profile: &store::Profile,
) -> sqlx::Result<(VisitorRow, bool)> {
    store::lock_identity(tx, user_id).await?;
    if let Some(id) = store::by_external_id(tx, user_id).await?
        && let Some(v) = store::resume(tx, id, profile).await?
    {
        return Ok((v, true));
    }
    if let Some(id) = token_visitor
        && store::external_id(tx, id).await? == Some(None)
    {
        store::mark_verified(tx, id, user_id).await?;
        if let Some(v) = store::resume(tx, id, profile).await? {
            return Ok((v, true));
        }
    }
    Ok((store::create(tx, profile, Some(user_id)).await?, false))
}

/// The anonymous visitor this browser's token names, else a new one. A verified user's
/// token without the proof (they logged out of the merchant's site; someone else is at the
/// computer) starts a new anonymous visitor: their history stays theirs.
async fn anonymous_visitor(
    tx: &mut TenantTx,
    token_visitor: Option<i64>,
    profile: &store::Profile,
) -> sqlx::Result<(VisitorRow, bool)> {
    if let Some(id) = token_visitor
        && store::external_id(tx, id).await? == Some(None)
        && let Some(v) = store::resume(tx, id, profile).await?
    {
        return Ok((v, true));
    }
    Ok((store::create(tx, profile, None).await?, false))
}

fn blocked() -> AppError {
    AppError::forbidden("visitor_blocked", "this visitor cannot open chats with this merchant")
}

/// GOFLY passes `extra` as base64 of a JSON object (sometimes URL-safe, sometimes padded);
/// kefu's widget may pass the object itself.
fn decode_extra(extra: Option<&Value>) -> Result<Map<String, Value>, AppError> {
    let bad =
        || AppError::field("extra", "extra must be a JSON object or base64 of one (at most 8 KiB)");
    let object = match extra {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Value::String(s)) => {
            let s = s.trim();
            let bytes = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ]
            .iter()
            .find_map(|engine| engine.decode(s).ok())
            .ok_or_else(bad)?;
            serde_json::from_slice::<Value>(&bytes).map_err(|_| bad())?
        }
        Some(other) => other.clone(),
    };
    match object {
        Value::Object(mut map)
            if map.len() <= 100
                && Value::Object(map.clone()).to_string().len() <= MAX_EXTRA_BYTES =>
        {
            only_web_links(&mut map);
            Ok(map)
        }
        _ => Err(bad()),
    }
}

/// The links in `extra` that pages show (the product's link and picture, the page the widget
/// reports) keep http(s) URLs only; anything else (`javascript:`, `data:`, …) is dropped.
fn only_web_links(extra: &mut Map<String, Value>) {
    let keep = |v: &mut Value| {
        let safe = v.as_str().map(|s| s.trim().is_empty() || web_url(s).is_some());
        if safe == Some(false) || v.is_array() || v.is_object() {
            *v = Value::String(String::new());
        }
    };
    if let Some(Value::Object(product)) = extra.get_mut("visitorProduct") {
        for key in ["url", "img"] {
            if let Some(v) = product.get_mut(key) {
                keep(v);
            }
        }
    }
    if let Some(v) = extra.get_mut("pageUrl") {
        keep(v);
    }
}

/// OS, browser and device from a user agent string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub os: Option<String>,
    pub browser: Option<String>,
    pub device: Option<String>,
}

pub fn parse_user_agent(ua: &str) -> Device {
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| s.to_owned());
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) => Device {
            os: known(r.os).map(|os| match known(&r.os_version) {
                Some(v) => format!("{os} {v}"),
                None => os,
            }),
            browser: known(r.name).map(|name| match known(r.version) {
                Some(v) => format!("{name} {v}"),
                None => name,
            }),
            device: known(r.category),
        },
        None => Device::default(),
    }
}

/// A visitor authenticated by their visitor token (`Authorization: Bearer`), neither blocked
/// nor calling from a blocked address (403 `visitor_blocked`): every visitor entry — ticket,
/// upload, leave-message, pre-chat, rating, page views — goes through it.
#[derive(Clone, Debug)]
pub struct VisitorSession {
    pub tenant: Arc<Tenant>,
    pub visitor: VisitorRow,
    /// The address the request came from (as the trusted-proxy rule computes it).
    pub ip: std::net::IpAddr,
}

impl VisitorSession {
    /// Counts `cost` against the merchant's limits for this visitor and for their address
    /// (http::rate); 429 `rate_limited` with `Retry-After` past either.
    pub async fn limit(
        &self,
        limiter: &Limiter,
        per_ip: Rule,
        per_visitor: Rule,
        cost: u32,
    ) -> Result<(), AppError> {
        let hits = [
            Hit::ip(per_ip, self.ip).cost(cost),
            Hit::visitor(per_visitor, self.visitor.id).cost(cost),
        ];
        limiter.check(self.tenant.id, &hits).await
    }
}

/// The visitor's token opens the session through the same door as agents' (pool, registry,
/// keys); their address comes from the trusted proxies.
impl<S: Send + Sync> FromRequestParts<S> for VisitorSession
where
    Arc<Door>: FromRef<S>,
    TrustedProxies: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let door = Arc::<Door>::from_ref(state);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned())
            .ok_or(AppError::Unauthorized)?;
        let claims = door.tokens.verify(&token, TokenKind::Visitor)?;
        let visitor_id: i64 = claims.sub.parse().map_err(|_| AppError::Unauthorized)?;
        let tenant =
            door.tenants.by_id(TenantId(claims.tid.ok_or(AppError::Unauthorized)?)).await?;
        let tenant = tenant.ok_or(AppError::Unauthorized)?;
        if crate::merchant::subscription::paused_for_visitors(&tenant) {
            return Err(AppError::TenantSuspended);
        }
        // Blocks hold everywhere: the visitor's, and their address's (a token obtained before
        // the block does not get around it).
        let Ok(meta) = ClientMeta::from_request_parts(parts, state).await;
        let mut tx = TenantTx::begin(&door.db, tenant.id).await?;
        let visitor =
            VisitorRow::load(&mut tx, visitor_id, meta.ip).await?.ok_or(AppError::Unauthorized)?;
        tx.commit().await?;
        if visitor.blocked {
            return Err(blocked());
        }
        tracing::Span::current().record("tenant", tenant.id.0);
        Ok(Self { tenant, visitor, ip: meta.ip })
    }
}

/// A single-use ticket (60 s) to open `/ws/visitor?ticket=…`: the long-lived visitor token
/// never appears in a URL.
async fn ticket(
    State(state): State<Visitors>,
    session: VisitorSession,
) -> Result<Json<crate::chat::TicketResponse>, AppError> {
    let l = &state.limiter.limits;
    let (per_ip, per_visitor) = (
        Rule::per_ten_minutes("tickets", l.tickets_per_ip),
        Rule::per_ten_minutes("tickets", l.tickets_per_visitor),
    );
    session.limit(&state.limiter, per_ip, per_visitor, 1).await?;
    Ok(Json(
        state
            .door
            .tokens
            .issue_ticket(TicketRole::Visitor, session.visitor.id, &session.tenant, None)?
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gofly_extra_in_any_base64_flavour() {
        let json = r#"{"visitorName":"张三","visitorProduct":{"title":"灯","price":"9.9"}}"#;
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(json);
            let map = decode_extra(Some(&Value::String(encoded))).unwrap();
            assert_eq!(map["visitorName"], "张三");
        }
        assert!(decode_extra(Some(&serde_json::json!({"a": 1}))).is_ok());
        assert!(decode_extra(Some(&Value::String("%%%".into()))).is_err());
        assert!(decode_extra(Some(&serde_json::json!([1, 2]))).is_err());
        // Links that pages show keep http(s) only.
        let hostile = serde_json::json!({
            "visitorProduct": { "title": "灯", "url": "javascript:alert(1)", "img": "data:image/svg+xml,<svg onload=alert(1)>" },
            "pageUrl": " JAVASCRIPT:alert(1)",
            "note": "javascript: is only text here",
        });
        let map = decode_extra(Some(&hostile)).unwrap();
        assert_eq!(map["visitorProduct"]["url"], "");
        assert_eq!(map["visitorProduct"]["img"], "");
        assert_eq!(map["visitorProduct"]["title"], "灯");
        assert_eq!(map["pageUrl"], "");
        assert_eq!(map["note"], "javascript: is only text here");
        let fine = serde_json::json!({ "visitorProduct": { "url": "https://shop.example/p/1", "img": "" } });
        let map = decode_extra(Some(&fine)).unwrap();
        assert_eq!(map["visitorProduct"]["url"], "https://shop.example/p/1");
        let huge = serde_json::json!({ "x": "y".repeat(MAX_EXTRA_BYTES) });
        assert!(decode_extra(Some(&huge)).is_err());
    }

    #[test]
    fn user_agents() {
        let d = parse_user_agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(d.browser.as_deref(), Some("Chrome 120.0.0.0"));
        assert!(d.os.unwrap().starts_with("Windows"));
        assert_eq!(d.device.as_deref(), Some("pc"));
        let phone = parse_user_agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(phone.device.as_deref(), Some("smartphone"));
        assert_eq!(parse_user_agent(""), Device::default());
    }
}

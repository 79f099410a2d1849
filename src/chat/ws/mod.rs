//! The WebSocket face of the chat: the endpoints, the handshake (tickets, origin, limits)
//! and the adapter between an axum WebSocket and the realtime core's connection loops
//! (`realtime::socket`).
//!
//! Handshake: `/ws/visitor?ticket=…` (a ticket from `POST /api/v1/visitor/ticket`) and
//! `/ws/agent` (the session cookie, or `?ticket=` from `POST /api/v1/ws/ticket`). Tickets are
//! single-use and live 60 s, so no long-lived token is ever in a URL. The Origin must be this
//! site (or, for visitors, one of the merchant's allowed widget domains).
//!
//! - `connection`: one socket's life: registration, presence, greeting and replay, the loops.
//! - `frames`: what each client frame does (send, typing, read, status).
//!
//! On shutdown every socket is closed with 1012 so clients reconnect elsewhere.

mod connection;
mod frames;

use std::sync::Arc;

use axum::{
    Json,
    extract::{
        FromRef, Query, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use serde::Deserialize;
use tenants::{Tenant, TenantStatus, TenantTx};

use self::connection::Connection;
use super::store;
use crate::{
    auth::{
        ctx::Door,
        session::AgentSession,
        token::{TicketRole, TokenKind},
    },
    http::{AppError, Routes, Scope},
    i18n::Lang,
    realtime::{
        hub::Peer,
        protocol,
        socket::{Incoming, Outgoing},
    },
};

/// What the sockets work with, held by each socket's task for as long as it is open (so it
/// is a few pointers): the session door (pool, registry, ticket keys, plans), the chat
/// engine, the configuration (frame rates), the visitors' limits, and what a visitor's
/// message may set off (`chat::automation`: system settings and the mail queue).
#[derive(Clone)]
pub struct Sockets {
    pub door: Arc<Door>,
    pub chat: Arc<super::Chat>,
    pub config: Arc<crate::config::Config>,
    pub limiter: Arc<crate::http::rate::Limiter>,
    pub system: Arc<crate::platform::system::SystemCache>,
    pub mail: crate::notify::Mail,
    /// Signs product images (served through kefu).
    pub images: Arc<crate::upload::remote::RemoteImages>,
}

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Sockets: FromRef<S>,
    Arc<Door>: FromRef<S>,
{
    Routes::new()
        .get("/ws/visitor", Scope::Public, visitor_socket)
        .get("/ws/agent", Scope::Public, agent_socket)
        .post("/api/v1/ws/ticket", Scope::Tenant, agent_ticket)
        .writable_when_read_only()
}

#[derive(Deserialize)]
struct SocketQuery {
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    kefu_id: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

impl SocketQuery {
    fn since(&self) -> Option<i64> {
        self.since.as_deref().and_then(|s| s.parse::<i64>().ok()).map(|s| s.max(0))
    }
}

/// A verified ticket: the tenant, whose socket it opens, and (for an agent) the session it
/// was asked with.
pub struct Ticketed {
    pub tenant: Arc<Tenant>,
    pub subject: i64,
    pub session: Option<i64>,
}

async fn redeem(state: &Sockets, ticket: &str, role: TicketRole) -> Result<Ticketed, AppError> {
    let claims = state.door.tokens.verify(ticket, TokenKind::WsTicket)?;
    if claims.role != Some(role) {
        return Err(AppError::Unauthorized);
    }
    let expires_at = chrono::DateTime::from_timestamp(i64::try_from(claims.exp).unwrap_or(0), 0)
        .unwrap_or_else(chrono::Utc::now);
    if !state.chat.consume_ticket(&claims.jti, expires_at).await? {
        return Err(AppError::Unauthorized);
    }
    let tenant = state
        .door
        .tenants
        .by_id(tenants::TenantId(claims.tid.ok_or(AppError::Unauthorized)?))
        .await?;
    let tenant = tenant.ok_or(AppError::Unauthorized)?;
    // Agents of a read-only merchant still connect (to read); its visitors are paused.
    let paused = match role {
        TicketRole::Visitor => crate::merchant::subscription::paused_for_visitors(&tenant),
        TicketRole::Agent => tenant.status == TenantStatus::Suspended,
    };
    if paused {
        return Err(AppError::TenantSuspended);
    }
    let subject = claims.user_id()?;
    // An agent's ticket dies with the session it was asked with.
    if role == TicketRole::Agent {
        let session = claims.sid.ok_or(AppError::Unauthorized)?;
        if !crate::auth::sessions::is_live(&state.door.db, session, subject, Some(tenant.id))
            .await?
        {
            return Err(AppError::Unauthorized);
        }
    }
    Ok(Ticketed { tenant, subject, session: claims.sid })
}

/// The request's Origin host, if it names one other than this site.
fn foreign_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (!origin_host.eq_ignore_ascii_case(host)).then(|| origin_host.to_ascii_lowercase())
}

/// Applies the socket limits: 64 KiB messages, small buffers (an idle socket costs a few
/// KiB, not the 128 KiB default), bounded write buffer.
fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(protocol::MAX_FRAME_BYTES)
        .max_frame_size(protocol::MAX_FRAME_BYTES)
        .read_buffer_size(1024)
        // Frames go out as soon as they are fed (a 16 KiB gather buffer gave mixed results
        // under load: see docs/benchmarks.md).
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
}

async fn visitor_socket(
    State(state): State<Sockets>,
    meta: crate::http::ClientMeta,
    headers: HeaderMap,
    Query(q): Query<SocketQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let ticket = q.ticket.as_deref().ok_or(AppError::Unauthorized)?;
    let Ticketed { tenant, subject, .. } = redeem(&state, ticket, TicketRole::Visitor).await?;
    let mut tx = TenantTx::begin(&state.door.db, tenant.id).await?;
    let visitor = crate::visitor::VisitorRow::load(&mut tx, subject, meta.ip)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if let Some(origin) = foreign_origin(&headers) {
        widget_may_run_on(&mut tx, &origin).await?;
    }
    tx.commit().await?;
    if visitor.blocked {
        return Err(AppError::forbidden(
            "visitor_blocked",
            "this visitor cannot open chats with this merchant",
        ));
    }
    // A visitor holds a few tabs open, not hundreds of sockets (each costs memory and a share
    // of the per-connection frame rate).
    let cap = state.limiter.limits.sockets_per_visitor as usize;
    if cap > 0 && state.chat.hub.connections_of(tenant.id, Peer::Visitor(visitor.id)) >= cap {
        return Err(AppError::RateLimited { retry_after: 10 });
    }
    let conn = Connection {
        tenant,
        peer: Peer::Visitor(visitor.id),
        session: None,
        ip: Some(meta.ip),
        visitor_public_id: Some(visitor.public_id),
        name: visitor.name,
        avatar: None,
        kefu_id: q.kefu_id.as_deref().and_then(|k| k.parse().ok()),
        since: q.since(),
        lang: q.lang.as_deref().and_then(Lang::parse).unwrap_or_default(),
    };
    Ok(upgrade(state, ws, conn))
}

/// Refuses a visitor socket opened from `origin` unless the merchant lets its widget run
/// there (the domain, or a subdomain of one, in its allowed widget domains).
async fn widget_may_run_on(tx: &mut TenantTx, origin: &str) -> Result<(), AppError> {
    let allowed = crate::merchant::settings::store::get(tx, "allowed_widget_domains").await?;
    let allowed = allowed.as_ref().and_then(|v| v.as_array()).is_some_and(|list| {
        list.iter().filter_map(|d| d.as_str()).any(|d| {
            origin == d.to_ascii_lowercase()
                || origin.ends_with(&format!(".{}", d.to_ascii_lowercase()))
        })
    });
    if !allowed {
        return Err(AppError::forbidden(
            "origin_not_allowed",
            "this site may not open chats for this merchant",
        ));
    }
    Ok(())
}

async fn agent_socket(
    State(state): State<Sockets>,
    headers: HeaderMap,
    Query(q): Query<SocketQuery>,
    ws: WebSocketUpgrade,
    session: Result<AgentSession, AppError>,
) -> Result<Response, AppError> {
    if foreign_origin(&headers).is_some() {
        return Err(AppError::forbidden(
            "origin_not_allowed",
            "agent sockets are same-origin only",
        ));
    }
    let (tenant, agent, session) = match q.ticket.as_deref() {
        Some(ticket) => {
            let Ticketed { tenant, subject, session } =
                redeem(&state, ticket, TicketRole::Agent).await?;
            let mut tx = TenantTx::begin(&state.door.db, tenant.id).await?;
            let agent = crate::auth::store::active_agent_by_user(&mut tx, subject)
                .await?
                .ok_or(AppError::Unauthorized)?;
            tx.commit().await?;
            (tenant, agent, session)
        }
        None => {
            let session = session?;
            (session.tenant, session.agent, session.session_id)
        }
    };
    let conn = Connection {
        tenant,
        peer: Peer::Agent(agent.id.0),
        session,
        ip: None,
        visitor_public_id: None,
        name: agent.display_name,
        avatar: agent.avatar_url,
        kefu_id: None,
        since: q.since(),
        lang: q.lang.as_deref().and_then(Lang::parse).unwrap_or_default(),
    };
    Ok(upgrade(state, ws, conn))
}

/// The answer to a ticket request (agents here, visitors in `crate::visitor`).
#[derive(serde::Serialize)]
pub struct TicketResponse {
    pub ticket: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl From<crate::auth::token::Issued> for TicketResponse {
    fn from(issued: crate::auth::token::Issued) -> Self {
        Self { ticket: issued.token, expires_at: issued.expires_at }
    }
}

/// A single-use ticket (60 s) for `/ws/agent?ticket=…`, for clients that cannot send the
/// session cookie with the upgrade.
async fn agent_ticket(
    State(state): State<Sockets>,
    session: AgentSession,
) -> Result<Json<TicketResponse>, AppError> {
    let sid = session.session_id.ok_or(AppError::Unauthorized)?;
    let ticket = state.door.tokens.issue_ticket(
        TicketRole::Agent,
        session.user_id,
        &session.tenant,
        Some(sid),
    )?;
    Ok(Json(ticket.into()))
}

fn upgrade(state: Sockets, ws: WebSocketUpgrade, conn: Connection) -> Response {
    let tracker = state.chat.hub.tracker().clone();
    configure(ws)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let (sink, stream) = adapt(socket);
            tracker.track_future(connection::serve(state, sink, stream, conn))
        })
        .into_response()
}

/// The WebSocket as the core's sink and stream.
fn adapt(
    socket: WebSocket,
) -> (
    impl Sink<Outgoing, Error = axum::Error> + Unpin + Send,
    impl Stream<Item = Incoming<Utf8Bytes>> + Unpin + Send + 'static,
) {
    let (sink, stream) = socket.split();
    let sink = sink.with(|out| std::future::ready(Ok::<_, axum::Error>(message(out))));
    (sink, stream.map(incoming))
}

/// The WebSocket message for what the core sends.
fn message(out: Outgoing) -> Message {
    match out {
        // Frames are built from strings: always UTF-8 (checked, not copied).
        Outgoing::Frame(frame) => {
            Message::Text(Utf8Bytes::try_from(frame.into_bytes()).unwrap_or_default())
        }
        Outgoing::Ping => Message::Ping(Default::default()),
        Outgoing::Close(code, reason) => {
            Message::Close(Some(CloseFrame { code, reason: reason.into() }))
        }
    }
}

/// What the core makes of what the WebSocket received.
fn incoming(received: Result<Message, axum::Error>) -> Incoming<Utf8Bytes> {
    match received {
        Ok(Message::Text(text)) => Incoming::Text(text),
        Ok(Message::Binary(_)) => Incoming::Binary,
        Ok(Message::Ping(_) | Message::Pong(_)) => Incoming::Control,
        Ok(Message::Close(_)) => Incoming::Close,
        Err(e) if too_large(&e) => Incoming::TooLarge,
        Err(_) => Incoming::Failed,
    }
}

/// Whether a read error is a message or frame over the size limit.
fn too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut error = Some(e);
    while let Some(e) = error {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        error = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `make` would return, without calling it.
    fn size_of_output<A, B, C, F>(_: &impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// What an idle socket's task holds is the future of `serve` (beside the socket's own
    /// buffers), for as long as the socket is open: it must not grow unnoticed. The bound
    /// is the size in the test profile (unoptimised; release builds are smaller) with a
    /// little room: raise it only knowing what the extra bytes buy, times every socket.
    #[test]
    fn an_idle_socket_task_stays_small() {
        let make = |state: Sockets, socket: WebSocket, conn: connection::Connection| {
            let (sink, stream) = adapt(socket);
            connection::serve(state, sink, stream, conn)
        };
        let size = size_of_output(&make);
        assert!(size <= 1120, "the socket task's future is {size} bytes");
    }
}

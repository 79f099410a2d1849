//! The WebSocket endpoints and the per-connection loops.
//!
//! Handshake: `/ws/visitor?ticket=…` (a ticket from `POST /api/v1/visitor/ticket`) and
//! `/ws/agent` (the session cookie, or `?ticket=` from `POST /api/v1/ws/ticket`). Tickets are
//! single-use and live 60 s, so no long-lived token is ever in a URL. The Origin must be this
//! site (or, for visitors, one of the merchant's allowed widget domains).
//!
//! Each connection runs two loops joined by `select!`: a writer draining the hub's bounded
//! queue and the reader's replies (and sending pings), and a reader that parses frames and
//! acts on them. Whichever ends first ends the connection; the hub registration is dropped
//! with it. On shutdown every socket is closed with 1012 so clients reconnect elsewhere.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{
        Query, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use serde::Deserialize;
use tenants::{Tenant, TenantStatus, TenantTx};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Opened, automation,
    hub::{Frame, Peer, encode},
    protocol::{self, ClientFrame, FrameError, MessageKind, Presence, ServerFrame},
    store,
    writer::{NewMessage, WriteError},
};
use crate::{
    auth::{
        session::AgentSession,
        token::{TicketRole, TokenKind},
    },
    http::{AppError, AppState, Routes, Scope},
    i18n::Lang,
};

pub fn routes() -> Routes {
    Routes::new()
        .get("/ws/visitor", Scope::Public, visitor_socket)
        .get("/ws/agent", Scope::Public, agent_socket)
        .post("/api/v1/ws/ticket", Scope::Tenant, agent_ticket)
}

/// Pings go out this often; a connection silent for [`IDLE_TIMEOUT`] is closed.
const PING_EVERY: Duration = Duration::from_secs(20);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write may stay stuck on a peer that stopped reading once the connection has
/// been ended (its queue filled up, it lost access, the server is stopping); then the
/// connection is dropped without a close frame, which could not get through anyway.
const STALLED_WRITE_GRACE: Duration = Duration::from_secs(5);
/// Messages replayed per page on reconnect, and at most this many pages.
const REPLAY_PAGE: i64 = 500;
const REPLAY_MAX_PAGES: usize = 20;

/// Close codes (documented in docs/protocol.md).
pub mod close {
    pub const IDLE: u16 = 1001;
    /// A message over the size limit (`protocol::MAX_FRAME_BYTES`).
    pub const TOO_LARGE: u16 = 1009;
    pub const RESTART: u16 = 1012;
    // 4003 (access revoked), 4004 (service paused) and 4008 (lagging, or frames lost on the
    // bus) come with the hub's ends: see `hub::REVOKED`, `hub::SUSPENDED`, `hub::LAGGING`
    // and `hub::RESYNC`.
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

async fn redeem(state: &AppState, ticket: &str, role: TicketRole) -> Result<Ticketed, AppError> {
    let claims = state.tokens.verify(ticket, TokenKind::WsTicket)?;
    if claims.role != Some(role) {
        return Err(AppError::Unauthorized);
    }
    let expires_at = chrono::DateTime::from_timestamp(i64::try_from(claims.exp).unwrap_or(0), 0)
        .unwrap_or_else(chrono::Utc::now);
    if !state.chat.consume_ticket(&claims.jti, expires_at).await? {
        return Err(AppError::Unauthorized);
    }
    let tenant =
        state.tenants.by_id(tenants::TenantId(claims.tid.ok_or(AppError::Unauthorized)?)).await?;
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
        if !crate::auth::sessions::is_live(&state.db, session, subject, Some(tenant.id)).await? {
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
    State(state): State<AppState>,
    meta: crate::http::ClientMeta,
    headers: HeaderMap,
    Query(q): Query<SocketQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let ticket = q.ticket.as_deref().ok_or(AppError::Unauthorized)?;
    let Ticketed { tenant, subject, .. } = redeem(&state, ticket, TicketRole::Visitor).await?;
    let mut tx = TenantTx::begin(&state.db, tenant.id).await?;
    let visitor = crate::visitor::VisitorRow::load(&mut tx, subject, meta.ip)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if let Some(origin) = foreign_origin(&headers) {
        let allowed = store::setting(&mut tx, "allowed_widget_domains").await?;
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

async fn agent_socket(
    State(state): State<AppState>,
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
            let mut tx = TenantTx::begin(&state.db, tenant.id).await?;
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
        peer: Peer::Agent(agent.id),
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
    State(state): State<AppState>,
    session: AgentSession,
) -> Result<Json<TicketResponse>, AppError> {
    let sid = session.session_id.ok_or(AppError::Unauthorized)?;
    let ticket = state.tokens.issue_ticket(
        TicketRole::Agent,
        session.user_id,
        &session.tenant,
        Some(sid),
    )?;
    Ok(Json(ticket.into()))
}

/// Who is on a socket.
struct Connection {
    tenant: Arc<Tenant>,
    peer: Peer,
    /// The agent session the socket belongs to (it closes when the session ends).
    session: Option<i64>,
    /// A visitor's address (blocking it, or a range around it, closes the socket).
    ip: Option<std::net::IpAddr>,
    visitor_public_id: Option<String>,
    name: String,
    /// An agent's picture, sent with their messages.
    avatar: Option<String>,
    kefu_id: Option<i64>,
    since: Option<i64>,
    lang: Lang,
}

fn upgrade(state: AppState, ws: WebSocketUpgrade, conn: Connection) -> Response {
    let tracker = state.chat.hub.tracker().clone();
    configure(ws)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            tracker.track_future(serve(state, sink, stream, conn))
        })
        .into_response()
}

type SocketSink = futures::stream::SplitSink<WebSocket, Message>;
type SocketStream = futures::stream::SplitStream<WebSocket>;

/// One socket's task, for as long as it is open. Its future is what an idle socket costs, so
/// it is kept small: an `async` block rather than an `async fn` (whose arguments would be
/// stored twice, as arguments and as the locals they are moved into), the socket already
/// split (its halves are two pointers to the shared socket), and the transient steps boxed
/// (it then holds only the small state of its two loops, not the largest state of every
/// step it ever runs).
#[allow(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
fn serve(
    state: AppState,
    mut sink: SocketSink,
    stream: SocketStream,
    conn: Connection,
) -> impl Future<Output = ()> + Send {
    async move {
        let chat = state.chat.clone();
        let tenant = conn.tenant.id;
        let first_connection = chat.hub.connections_of(tenant, conn.peer) == 0;
        let (registration, hub_rx) = chat.hub.register(tenant, conn.peer, conn.session, conn.ip);
        let _counted = crate::metrics::Connection::open(match conn.peer {
            Peer::Agent(_) => "agent",
            Peer::Visitor(_) => "visitor",
        });
        if let Err(e) = Box::pin(on_connect(&state, &conn, first_connection)).await {
            tracing::warn!(error = %e, "presence update on connect failed");
        }
        if Box::pin(greet_and_replay(&state, &conn, &mut sink)).await.is_ok() {
            let last_seen = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let ends = Ends {
                ended: registration.ended.clone(),
                close_reason: registration.close.clone(),
                shutdown: chat.hub.shutdown_token(),
            };
            let writer = write_loop(&mut sink, hub_rx, ends, last_seen.clone(), started);
            let mut ctx =
                Ctx { state: &state, conn: &conn, current: None, connection_id: registration.id };
            let reader =
                read_loop(stream, &mut ctx, registration.replies.clone(), last_seen, started);
            let end = tokio::select! {
                () = writer => ReadEnd::Gone,
                end = reader => end,
            };
            Box::pin(finish(&mut sink, end)).await;
        }
        drop(registration);
        if let Err(e) = Box::pin(on_disconnect(&state, &conn)).await {
            tracing::warn!(error = %e, "presence update on disconnect failed");
        }
    }
}

async fn on_connect(state: &AppState, conn: &Connection, first: bool) -> anyhow::Result<()> {
    let tenant = conn.tenant.id;
    match conn.peer {
        Peer::Agent(agent_id) => {
            state.chat.presence.came_back(tenant, agent_id);
            state.chat.presence.touch(tenant, agent_id, chrono::Utc::now());
            if first {
                let mut tx = TenantTx::begin(&state.db, tenant).await?;
                if store::come_online(&mut tx, agent_id).await? {
                    state
                        .chat
                        .remember_status(tenant, agent_id, protocol::AgentStatus::Online)
                        .await;
                }
                tx.commit().await?;
                state.chat.publish_agent_presence(tenant, agent_id).await?;
            }
        }
        Peer::Visitor(_) => {
            if first {
                let frame = ServerFrame::Presence(Presence::Visitor {
                    visitor_id: conn.visitor_public_id.clone().unwrap_or_default(),
                    online: true,
                });
                state.chat.hub.to_agents(tenant, &encode(&frame));
            }
        }
    }
    Ok(())
}

async fn on_disconnect(state: &AppState, conn: &Connection) -> anyhow::Result<()> {
    let tenant = conn.tenant.id;
    if state.chat.hub.connections_of(tenant, conn.peer) > 0 {
        return Ok(());
    }
    match conn.peer {
        Peer::Agent(agent_id) => state.chat.agent_left(tenant, agent_id),
        Peer::Visitor(_) => {
            let frame = ServerFrame::Presence(Presence::Visitor {
                visitor_id: conn.visitor_public_id.clone().unwrap_or_default(),
                online: false,
            });
            state.chat.hub.to_agents(tenant, &encode(&frame));
        }
    }
    Ok(())
}

/// Sends `hello`, the current presence, and — when the client gave `since` — everything it
/// missed, in id order, then `sync_done`. Live frames queue in the hub meanwhile; the client
/// drops the few it sees twice by id.
async fn greet_and_replay<S>(state: &AppState, conn: &Connection, sink: &mut S) -> Result<(), ()>
where
    S: Sink<Message> + Unpin,
{
    let tenant = conn.tenant.id;
    let (role, agent_id) = match conn.peer {
        Peer::Agent(id) => ("agent", Some(id)),
        Peer::Visitor(_) => ("visitor", None),
    };
    let hello = ServerFrame::Hello {
        v: protocol::PROTOCOL_VERSION,
        role,
        visitor_id: conn.visitor_public_id.clone(),
        agent_id,
        server_time: chrono::Utc::now(),
    };
    send(sink, encode(&hello)).await?;
    match conn.peer {
        Peer::Visitor(_) => {
            let online = state.chat.team_online(tenant).await.unwrap_or(false);
            send(sink, encode(&ServerFrame::Presence(Presence::Team { online }))).await?;
        }
        Peer::Agent(_) => {
            for colleague in state.chat.present_agents(tenant) {
                let mut tx = TenantTx::begin(&state.db, tenant).await.map_err(|_| ())?;
                let status = store::agent_status(&mut tx, colleague)
                    .await
                    .map_err(|_| ())?
                    .unwrap_or_default();
                let _ = tx.commit().await;
                let frame = Presence::Agent {
                    agent_id: colleague,
                    status: protocol::AgentStatus::parse(&status),
                };
                send(sink, encode(&ServerFrame::Presence(frame))).await?;
            }
        }
    }
    let Some(mut since) = conn.since else { return Ok(()) };
    let mut more = false;
    for page in 0.. {
        if page == REPLAY_MAX_PAGES {
            more = true;
            break;
        }
        let mut tx = TenantTx::begin(&state.db, tenant).await.map_err(|_| ())?;
        let messages = match conn.peer {
            Peer::Visitor(visitor_id) => {
                store::visitor_messages_since(&mut tx, visitor_id, since, REPLAY_PAGE).await
            }
            Peer::Agent(_) => store::tenant_messages_since(&mut tx, since, REPLAY_PAGE).await,
        }
        .map_err(|e| tracing::warn!(error = %e, "replay failed"))?;
        let _ = tx.commit().await;
        let full = messages.len() as i64 == REPLAY_PAGE;
        for message in messages {
            since = message.id;
            send(sink, encode(&ServerFrame::Message(message))).await?;
        }
        if !full {
            break;
        }
    }
    send(sink, encode(&ServerFrame::SyncDone { last_id: since, more })).await
}

async fn send<S: Sink<Message> + Unpin>(sink: &mut S, frame: Frame) -> Result<(), ()> {
    sink.send(frame.into_message()).await.map_err(|_| ())
}

/// Writes `first` and whatever else is already queued (up to a bound), then flushes once:
/// a busy socket costs one syscall per batch, not per frame.
async fn write_batch<S: Sink<Message> + Unpin>(
    sink: &mut S,
    first: Frame,
    queue: &mut mpsc::Receiver<Frame>,
) -> Result<(), ()> {
    sink.feed(first.into_message()).await.map_err(|_| ())?;
    for _ in 0..256 {
        match queue.try_recv() {
            Ok(frame) => sink.feed(frame.into_message()).await.map_err(|_| ())?,
            Err(_) => break,
        }
    }
    sink.flush().await.map_err(|_| ())
}

/// [`write_batch`], unless the peer has stopped reading: a write stuck on a full socket
/// (which no close frame can get through either) is given up [`STALLED_WRITE_GRACE`] after
/// the connection was ended or the server began to shut down, and in any case after
/// [`IDLE_TIMEOUT`] (no ping could go out meanwhile: the same rule as for a silent peer);
/// the connection is then dropped. Without this a peer that never reads would hold its
/// socket (and, with traffic, a full queue) for good: the end is only seen between writes.
async fn write_or_give_up<S: Sink<Message> + Unpin>(
    sink: &mut S,
    first: Frame,
    queue: &mut mpsc::Receiver<Frame>,
    ended: &CancellationToken,
    shutdown: &CancellationToken,
) -> Result<(), ()> {
    let ended_then_grace = async {
        tokio::select! {
            () = ended.cancelled() => {}
            () = shutdown.cancelled() => {}
        }
        tokio::time::sleep(STALLED_WRITE_GRACE).await;
    };
    let given_up = async {
        tokio::select! {
            () = ended_then_grace => {}
            () = tokio::time::sleep(IDLE_TIMEOUT) => {}
        }
    };
    tokio::select! {
        // The write first: one that completes at once (the usual case) never waits on the
        // tokens at all.
        biased;
        written = write_batch(sink, first, queue) => written,
        () = given_up => {
            tracing::info!("a peer stopped reading; dropping its connection");
            Err(())
        }
    }
}

async fn close_with<S: Sink<Message> + Unpin>(sink: &mut S, code: u16, reason: &'static str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// What ends a connection from the server's side.
struct Ends {
    /// The hub ended it (it fell behind, lost access, must resync); `close_reason` says
    /// with which close code.
    ended: CancellationToken,
    close_reason: super::hub::CloseReason,
    /// The server is shutting down (close 1012).
    shutdown: CancellationToken,
}

/// Drains the connection's queue (pushed frames and the reader's replies) to the socket;
/// pings; enforces the idle timeout; closes on lag, revocation or shutdown.
async fn write_loop<S: Sink<Message> + Unpin>(
    sink: &mut S,
    mut hub_rx: mpsc::Receiver<Frame>,
    ends: Ends,
    last_seen: Arc<AtomicU64>,
    started: Instant,
) {
    let Ends { ended, close_reason, shutdown } = ends;
    // The first ping at a random point of the period: sockets that connected together (a
    // burst, everyone reconnecting after a restart) would otherwise all be pinged, and all
    // answer, in the same millisecond every period — a stall that shows in every push's
    // latency at that moment.
    let first = PING_EVERY.mul_f64(rand::random_range(0.05..1.0));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + first, PING_EVERY);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                close_with(sink, close::RESTART, "server restarting; reconnect").await;
                return;
            }
            () = ended.cancelled() => {
                let (code, reason) = close_reason.get().copied().unwrap_or(super::hub::REVOKED);
                // A lagging connection's full queue is what it could not take: it catches up
                // with `since` instead. Otherwise what was queued before the end (e.g. the
                // notice saying why) goes first.
                if (code, reason) != super::hub::LAGGING {
                    while let Ok(frame) = hub_rx.try_recv() {
                        if sink.feed(frame.into_message()).await.is_err() {
                            return;
                        }
                    }
                }
                close_with(sink, code, reason).await;
                return;
            }
            frame = hub_rx.recv() => match frame {
                Some(frame) => {
                    let write = write_or_give_up(sink, frame, &mut hub_rx, &ended, &shutdown);
                    if Box::pin(write).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            _ = ping.tick() => {
                let idle = started.elapsed().saturating_sub(Duration::from_millis(last_seen.load(Ordering::Relaxed)));
                if idle > IDLE_TIMEOUT {
                    close_with(sink, close::IDLE, "idle timeout").await;
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The connection's state while it reads.
struct Ctx<'a> {
    state: &'a AppState,
    conn: &'a Connection,
    /// Visitor: the conversation their messages go to.
    current: Option<store::ConversationRow>,
    /// This connection in the hub (its own messages are acked, not echoed to it).
    connection_id: u64,
}

/// How the reader stopped, and so how the connection ends.
#[derive(Debug)]
enum ReadEnd {
    /// The client sent a Close frame: it is answered (RFC 6455 §5.5.1) with the same code.
    Closed,
    /// A message over the size limit: the stream cannot go on after it; close 1009.
    TooLarge,
    /// The connection failed, or the writer ended it.
    Gone,
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

/// Ends the connection as the reader's end asks: answers a client's Close frame, or closes
/// 1009 after a message over the limit (a client that saw only a dropped connection would
/// reconnect and send it again, forever).
async fn finish<S: Sink<Message> + Unpin>(sink: &mut S, end: ReadEnd) {
    match end {
        // The WebSocket library queued the answer (the same code) when the frame came in;
        // flushing sends it. (Sending a Close now would be refused: the peer closed.)
        ReadEnd::Closed => {
            let _ = sink.flush().await;
        }
        ReadEnd::TooLarge => {
            let reason = "message too big: frames are at most 64 KiB";
            close_with(sink, close::TOO_LARGE, reason).await;
        }
        ReadEnd::Gone => {}
    }
}

async fn read_loop<St, E>(
    mut stream: St,
    ctx: &mut Ctx<'_>,
    replies: mpsc::Sender<Frame>,
    last_seen: Arc<AtomicU64>,
    started: Instant,
) -> ReadEnd
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let config = &ctx.state.config;
    let mut bucket =
        TokenBucket::new(f64::from(config.ws_rate_per_sec), f64::from(config.ws_rate_burst));
    loop {
        let message = match stream.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) if too_large(&e) => return ReadEnd::TooLarge,
            Some(Err(_)) | None => return ReadEnd::Gone,
        };
        last_seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let incoming = match message {
            Message::Text(text) if bucket.take() => Ok(text),
            Message::Text(_) => Err(ServerFrame::Error {
                code: "rate_limited",
                message: "too many frames; slow down".into(),
                client_msg_id: None,
                retry_after: Some(1),
            }),
            Message::Binary(_) => Err(ServerFrame::Error {
                code: "binary_not_supported",
                message: "frames are JSON text".into(),
                client_msg_id: None,
                retry_after: None,
            }),
            Message::Close(_) => return ReadEnd::Closed,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        // Handling a frame and queueing the replies is one boxed step: the loop itself (what
        // a socket costs while it waits for the next frame) stays small.
        if Box::pin(respond(ctx, incoming, &replies)).await.is_err() {
            return ReadEnd::Gone;
        }
    }
}

/// Acts on a text frame (or refuses one with `refusal`) and queues the replies for the
/// sender; an error means the connection is gone.
async fn respond(
    ctx: &mut Ctx<'_>,
    incoming: Result<axum::extract::ws::Utf8Bytes, ServerFrame>,
    replies: &mpsc::Sender<Frame>,
) -> Result<(), ()> {
    let frames = match incoming {
        Ok(text) => handle(ctx, text.as_str()).await,
        Err(refusal) => vec![refusal],
    };
    for frame in frames {
        replies.send(encode(&frame)).await.map_err(|_| ())?;
    }
    Ok(())
}

/// Acts on one client frame; returns the frames for the sender.
async fn handle(ctx: &mut Ctx<'_>, text: &str) -> Vec<ServerFrame> {
    let frame = match protocol::parse(text) {
        Ok(frame) => frame,
        Err(e) => return vec![e.into()],
    };
    // What an agent does in a tab ends an automatic away (pings are the client's, not theirs).
    if let Peer::Agent(agent_id) = ctx.conn.peer
        && frame != ClientFrame::Ping
        && let Err(e) = ctx.state.chat.agent_active(ctx.conn.tenant.id, agent_id).await
    {
        tracing::warn!(error = %e, "recording an agent's activity failed");
    }
    let result = match (frame, ctx.conn.peer) {
        (ClientFrame::Ping, _) => Ok(vec![ServerFrame::Pong]),
        (ClientFrame::Active, Peer::Agent(_)) => Ok(vec![]),
        (ClientFrame::Active, Peer::Visitor(_)) => Err(FrameError {
            code: "forbidden",
            message: "visitors have no status".into(),
            client_msg_id: None,
            retry_after: None,
        }),
        (ClientFrame::Send(send), Peer::Visitor(visitor_id)) => {
            visitor_send(ctx, visitor_id, send).await
        }
        (ClientFrame::Send(send), Peer::Agent(agent_id)) => agent_send(ctx, agent_id, send).await,
        (ClientFrame::Typing { conversation_id, preview }, peer) => {
            typing(ctx, peer, conversation_id, preview).await
        }
        (ClientFrame::Read { conversation_id, up_to }, peer) => {
            read(ctx, peer, conversation_id, up_to).await
        }
        (ClientFrame::Status(status), Peer::Agent(agent_id)) => {
            set_status(ctx, agent_id, status).await
        }
        (ClientFrame::Status(_), Peer::Visitor(_)) => Err(FrameError {
            code: "forbidden",
            message: "visitors have no status".into(),
            client_msg_id: None,
            retry_after: None,
        }),
    };
    result.unwrap_or_else(|e| vec![e.into()])
}

fn db_error(e: impl std::fmt::Display, client_msg_id: Option<String>) -> FrameError {
    tracing::error!(error = %e, "chat database operation failed");
    FrameError {
        code: "unavailable",
        message: "the message could not be stored; retry".into(),
        client_msg_id,
        retry_after: None,
    }
}

fn write_error(e: WriteError, client_msg_id: String) -> FrameError {
    let (code, message) = match &e {
        WriteError::ConversationNotFound => {
            ("conversation_not_found", "no such conversation".to_owned())
        }
        WriteError::ConversationClosed => {
            ("conversation_closed", "the conversation is closed".to_owned())
        }
        WriteError::Database(_) | WriteError::Closed => return db_error(e, Some(client_msg_id)),
    };
    FrameError { code, message, client_msg_id: Some(client_msg_id), retry_after: None }
}

impl Ctx<'_> {
    /// A conversation of this connection's tenant, in its own short transaction. Database
    /// failures become `unavailable` error frames naming `client_msg_id`.
    async fn conversation(
        &self,
        id: i64,
        client_msg_id: Option<&str>,
    ) -> Result<Option<store::ConversationRow>, FrameError> {
        let failed = |e: sqlx::Error| db_error(e, client_msg_id.map(str::to_owned));
        let mut tx = TenantTx::begin(&self.state.db, self.conn.tenant.id).await.map_err(failed)?;
        let row = store::conversation(&mut tx, id).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(row)
    }
}

/// Turns the upload id of an image or file message into its payload (name, size, type,
/// URLs) from the tenant's own record. A visitor may only send their own uploads; an image
/// message needs an image.
async fn attach(
    ctx: &Ctx<'_>,
    send: &mut protocol::Send,
    visitor: Option<i64>,
) -> Result<(), FrameError> {
    let Some(id) = send.attachment.take() else { return Ok(()) };
    let tenant = &ctx.conn.tenant;
    let failed = |e: sqlx::Error| db_error(e, Some(send.client_msg_id.clone()));
    let mut tx = TenantTx::begin(&ctx.state.db, tenant.id).await.map_err(failed)?;
    let upload = crate::upload::find(&mut tx, &tenant.ent_id, &id).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    let refuse = |message: &str| FrameError {
        code: "bad_attachment",
        message: message.to_owned(),
        client_msg_id: Some(send.client_msg_id.clone()),
        retry_after: None,
    };
    let upload = upload
        .filter(|u| visitor.is_none() || u.visitor_id == visitor)
        .ok_or_else(|| refuse("no such upload"))?;
    if send.kind == MessageKind::Image && upload.kind != "image" {
        return Err(refuse("an image message needs an image upload"));
    }
    send.payload = Some(serde_json::json!({ "attachment": upload }));
    Ok(())
}

async fn visitor_send(
    ctx: &mut Ctx<'_>,
    visitor_id: i64,
    mut send: protocol::Send,
) -> Result<Vec<ServerFrame>, FrameError> {
    // Cards come from the merchant (its agents and its system), never from visitors.
    if send.kind == MessageKind::Card {
        return Err(FrameError {
            code: "bad_kind",
            message: "visitors cannot send cards".into(),
            client_msg_id: Some(send.client_msg_id),
            retry_after: None,
        });
    }
    attach(ctx, &mut send, Some(visitor_id)).await?;
    let tenant = ctx.conn.tenant.id;
    let chat = &ctx.state.chat;
    let explicit = send.conversation_id;
    // A conversation named explicitly must be the visitor's own; it is looked up once,
    // unless it is the one this connection already writes to.
    let named = match explicit {
        Some(id) if ctx.current.as_ref().is_none_or(|c| c.id != id) => {
            let row = ctx.conversation(id, Some(&send.client_msg_id)).await?;
            match row.filter(|r| r.visitor_id == visitor_id) {
                Some(row) => Some(row),
                None => {
                    return Err(write_error(WriteError::ConversationNotFound, send.client_msg_id));
                }
            }
        }
        _ => None,
    };
    // A closed conversation is replaced by a new one once; an explicit one is not.
    for attempt in 0..2 {
        // The cached conversation is used as is: the writer refuses it if it was closed
        // meanwhile, and then a new one is opened (no lookup per message).
        let (conversation, created) = match (&named, &ctx.current) {
            (Some(row), _) | (None, Some(row)) => (row.clone(), false),
            (None, None) => {
                let limit = allowance(ctx.state, tenant).await;
                let visitor = (visitor_id, ctx.conn.ip);
                let opened =
                    chat.conversation_for_visitor(tenant, visitor, ctx.conn.kefu_id, limit);
                match opened.await {
                    Ok(Opened::Existing(row)) => (row, false),
                    Ok(Opened::Created(row)) => (row, true),
                    Ok(Opened::LimitReached) => {
                        return Err(FrameError {
                            code: "conversation_limit",
                            message: "no new conversation can start now; leave a message instead"
                                .into(),
                            client_msg_id: Some(send.client_msg_id.clone()),
                            retry_after: None,
                        });
                    }
                    Err(AppError::RateLimited { retry_after }) => {
                        return Err(FrameError {
                            code: "rate_limited",
                            message: format!(
                                "too many new conversations from here; try again in {retry_after} s"
                            ),
                            client_msg_id: Some(send.client_msg_id.clone()),
                            retry_after: Some(retry_after),
                        });
                    }
                    Err(e) => return Err(db_error(e, Some(send.client_msg_id.clone()))),
                }
            }
        };
        let message = NewMessage {
            conversation_id: conversation.id,
            sender_kind: "visitor",
            sender_agent_id: None,
            kind: send.kind.as_str(),
            body: send.body.clone(),
            payload: send.payload.clone(),
            client_msg_id: send.client_msg_id.clone(),
            visitor_id,
            sender_name: Some(ctx.conn.name.clone()),
            sender_avatar: None,
            origin: Some(ctx.connection_id),
        };
        match chat.post(tenant, message).await {
            Ok(stored) => {
                // Writing again is engaging: the conversation now counts against the month's
                // allowance (once; the first message alone does not).
                if !created && !stored.duplicate {
                    let limit = allowance(ctx.state, tenant).await;
                    if let Err(e) = chat.engaged(tenant, conversation.id, limit).await {
                        tracing::warn!(error = %e, "counting an engaged conversation failed");
                    }
                }
                ctx.current = Some(conversation.clone());
                if let Some(from) = stored.woken_from {
                    let chat = Arc::clone(chat);
                    let id = conversation.id;
                    tokio::spawn(async move { chat.woken_by_visitor(tenant, id, from).await });
                }
                if !stored.duplicate {
                    let text = (send.kind == MessageKind::Text).then(|| send.body.clone());
                    tokio::spawn(automation::after_visitor_message(
                        ctx.state.clone(),
                        automation::VisitorMessage {
                            tenant,
                            conversation: conversation.clone(),
                            created,
                            text,
                            id: stored.id,
                            lang: ctx.conn.lang,
                            monthly_limit: allowance(ctx.state, tenant).await,
                        },
                    ));
                }
                return Ok(vec![ServerFrame::Ack {
                    client_msg_id: send.client_msg_id,
                    id: stored.id,
                    conversation_id: conversation.id,
                    duplicate: stored.duplicate,
                }]);
            }
            Err(WriteError::ConversationClosed) if explicit.is_none() && attempt == 0 => {
                ctx.current = None;
            }
            Err(e) => return Err(write_error(e, send.client_msg_id)),
        }
    }
    Err(write_error(WriteError::ConversationClosed, send.client_msg_id))
}

async fn agent_send(
    ctx: &mut Ctx<'_>,
    agent_id: i64,
    mut send: protocol::Send,
) -> Result<Vec<ServerFrame>, FrameError> {
    // A merchant whose subscription is inactive is read-only (as now, not as at connect).
    let current = ctx.state.tenants.by_id(ctx.conn.tenant.id).await.ok().flatten();
    if current.is_some_and(|t| crate::merchant::subscription::read_only(&t)) {
        return Err(FrameError {
            code: "subscription_inactive",
            message: "this workspace is read-only until its subscription is active again".into(),
            client_msg_id: Some(send.client_msg_id),
            retry_after: None,
        });
    }
    attach(ctx, &mut send, None).await?;
    let tenant = ctx.conn.tenant.id;
    let chat = &ctx.state.chat;
    let Some(conversation_id) = send.conversation_id else {
        return Err(FrameError {
            code: "conversation_required",
            message: "agents name the conversation they write to".into(),
            client_msg_id: Some(send.client_msg_id),
            retry_after: None,
        });
    };
    let failed = |e: sqlx::Error| db_error(e, Some(send.client_msg_id.clone()));
    let mut tx = TenantTx::begin(&ctx.state.db, tenant).await.map_err(failed)?;
    let row = store::conversation(&mut tx, conversation_id).await.map_err(failed)?;
    let Some(mut row) = row else {
        return Err(write_error(WriteError::ConversationNotFound, send.client_msg_id));
    };
    // Answering a queued conversation claims it.
    let claimed = row.agent_id.is_none()
        && !row.is_closed()
        && store::assign(&mut tx, conversation_id, agent_id).await.map_err(failed)?;
    if claimed {
        row = store::conversation(&mut tx, conversation_id).await.ok().flatten().unwrap_or(row);
    }
    tx.commit().await.map_err(failed)?;
    if claimed {
        chat.announce(tenant, "assigned", &row);
    }
    let message = NewMessage {
        conversation_id,
        sender_kind: "agent",
        sender_agent_id: Some(agent_id),
        kind: send.kind.as_str(),
        body: send.body,
        payload: send.payload,
        client_msg_id: send.client_msg_id.clone(),
        visitor_id: row.visitor_id,
        sender_name: Some(ctx.conn.name.clone()),
        sender_avatar: ctx.conn.avatar.clone(),
        origin: Some(ctx.connection_id),
    };
    match chat.post(tenant, message).await {
        Ok(stored) => {
            // An agent answered: the conversation counts against the month's allowance.
            let limit = allowance(ctx.state, tenant).await;
            if let Err(e) = chat.engaged(tenant, conversation_id, limit).await {
                tracing::warn!(error = %e, "counting an engaged conversation failed");
            }
            Ok(vec![ServerFrame::Ack {
                client_msg_id: send.client_msg_id,
                id: stored.id,
                conversation_id,
                duplicate: stored.duplicate,
            }])
        }
        Err(e) => Err(write_error(e, send.client_msg_id)),
    }
}

/// The merchant's monthly allowance of conversations (its plan's; none: unlimited).
async fn allowance(state: &AppState, tenant: tenants::TenantId) -> Option<u32> {
    let current = state.tenants.by_id(tenant).await.ok().flatten()?;
    state.plans.get(&current.plan).and_then(|p| p.conversations_per_month)
}

/// The conversation a typing/read frame refers to, checked against the sender.
async fn target(
    ctx: &mut Ctx<'_>,
    peer: Peer,
    conversation_id: Option<i64>,
) -> Result<Option<store::ConversationRow>, FrameError> {
    let id = match (conversation_id, peer) {
        (Some(id), _) => id,
        (None, Peer::Visitor(_)) => match &ctx.current {
            Some(row) => row.id,
            None => return Ok(None),
        },
        (None, Peer::Agent(_)) => return Ok(None),
    };
    match (ctx.conversation(id, None).await?, peer) {
        (Some(row), Peer::Visitor(v)) if row.visitor_id == v => Ok(Some(row)),
        (Some(row), Peer::Agent(_)) => Ok(Some(row)),
        _ => Err(FrameError {
            code: "conversation_not_found",
            message: "no such conversation".into(),
            client_msg_id: None,
            retry_after: None,
        }),
    }
}

async fn typing(
    ctx: &mut Ctx<'_>,
    peer: Peer,
    conversation_id: Option<i64>,
    preview: Option<String>,
) -> Result<Vec<ServerFrame>, FrameError> {
    let Some(row) = target(ctx, peer, conversation_id).await? else { return Ok(vec![]) };
    let tenant = ctx.conn.tenant.id;
    match peer {
        Peer::Visitor(_) => {
            // What a visitor is typing is shown to agents only where the merchant enabled it.
            let enabled = automation::settings(&ctx.state.chat, &ctx.state.db, tenant)
                .await
                .map(|a| a.typing_preview)
                .unwrap_or(false);
            let frame = ServerFrame::Typing {
                conversation_id: row.id,
                from: "visitor",
                agent_id: None,
                preview: preview.filter(|_| enabled),
            };
            ctx.state.chat.hub.to_agents(tenant, &encode(&frame));
        }
        Peer::Agent(agent_id) => {
            let frame = ServerFrame::Typing {
                conversation_id: row.id,
                from: "agent",
                agent_id: Some(agent_id),
                preview: None,
            };
            let frame = encode(&frame);
            ctx.state.chat.hub.to_visitor(tenant, row.visitor_id, &frame);
            ctx.state.chat.hub.to_other_agents(tenant, agent_id, &frame);
        }
    }
    Ok(vec![])
}

async fn read(
    ctx: &mut Ctx<'_>,
    peer: Peer,
    conversation_id: Option<i64>,
    up_to: i64,
) -> Result<Vec<ServerFrame>, FrameError> {
    let Some(row) = target(ctx, peer, conversation_id).await? else { return Ok(vec![]) };
    let tenant = ctx.conn.tenant.id;
    let by_visitor = matches!(peer, Peer::Visitor(_));
    let mut tx = TenantTx::begin(&ctx.state.db, tenant).await.map_err(|e| db_error(e, None))?;
    store::mark_read(&mut tx, row.id, by_visitor, up_to).await.map_err(|e| db_error(e, None))?;
    tx.commit().await.map_err(|e| db_error(e, None))?;
    let frame = encode(&ServerFrame::Read {
        conversation_id: row.id,
        by: if by_visitor { "visitor" } else { "agent" },
        up_to,
    });
    if by_visitor {
        ctx.state.chat.hub.to_agents(tenant, &frame);
    } else {
        ctx.state.chat.hub.to_visitor(tenant, row.visitor_id, &frame);
        ctx.state.chat.hub.to_agents(tenant, &frame);
    }
    Ok(vec![])
}

async fn set_status(
    ctx: &mut Ctx<'_>,
    agent_id: i64,
    status: protocol::AgentStatus,
) -> Result<Vec<ServerFrame>, FrameError> {
    let tenant = ctx.conn.tenant.id;
    let mut tx = TenantTx::begin(&ctx.state.db, tenant).await.map_err(|e| db_error(e, None))?;
    store::set_agent_status(&mut tx, agent_id, status.as_str())
        .await
        .map_err(|e| db_error(e, None))?;
    tx.commit().await.map_err(|e| db_error(e, None))?;
    ctx.state.chat.remember_status(tenant, agent_id, status).await;
    ctx.state.chat.publish_agent_presence(tenant, agent_id).await.map_err(|e| db_error(e, None))?;
    Ok(vec![])
}

/// A token bucket for the per-connection frame rate.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst, tokens: burst, at: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

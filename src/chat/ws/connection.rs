//! One socket's life: it registers with the hub, says who came online, greets the client
//! and replays what it missed (`since`), runs the core's loops with the chat's frame
//! handlers, and says who went offline when it ends.

use std::sync::Arc;

use futures::Sink;
use tenants::{Tenant, TenantTx};

use super::{Sockets, frames::Ctx, store};
use crate::{
    i18n::Lang,
    realtime::{
        hub::{Peer, encode},
        protocol::{self, Presence, ServerFrame},
        socket::{self, Ends, Incoming, Outgoing, RateLimit, send},
    },
};

/// Messages replayed per page on reconnect, and at most this many pages.
const REPLAY_PAGE: i64 = 500;
const REPLAY_MAX_PAGES: usize = 20;

/// Who is on a socket.
pub(super) struct Connection {
    pub(super) tenant: Arc<Tenant>,
    pub(super) peer: Peer,
    /// The agent session the socket belongs to (it closes when the session ends).
    pub(super) session: Option<i64>,
    /// A visitor's address (blocking it, or a range around it, closes the socket).
    pub(super) ip: Option<std::net::IpAddr>,
    pub(super) visitor_public_id: Option<String>,
    pub(super) name: String,
    /// An agent's picture, sent with their messages.
    pub(super) avatar: Option<String>,
    pub(super) kefu_id: Option<i64>,
    pub(super) since: Option<i64>,
    pub(super) lang: Lang,
}

/// One socket's task, for as long as it is open. Its future is what an idle socket costs, so
/// it is kept small: an `async` block rather than an `async fn` (whose arguments would be
/// stored twice, as arguments and as the locals they are moved into), the socket already
/// split (its halves are two pointers to the shared socket), and the transient steps boxed
/// (it then holds only the small state of its two loops, not the largest state of every
/// step it ever runs).
#[allow(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
pub(super) fn serve<Si, St, T>(
    state: Sockets,
    mut sink: Si,
    stream: St,
    conn: Connection,
) -> impl Future<Output = ()> + Send
where
    Si: Sink<Outgoing> + Unpin + Send,
    St: futures::Stream<Item = Incoming<T>> + Unpin + Send + 'static,
    T: std::ops::Deref<Target = str> + Send,
{
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
            let mut ctx =
                Ctx { state: &state, conn: &conn, current: None, connection_id: registration.id };
            // The arguments are built in the call: moved straight into the loops, not kept
            // here as well.
            let end = socket::run(
                &mut sink,
                stream,
                hub_rx,
                registration.replies.clone(),
                Ends::of(&registration, chat.hub.shutdown_token()),
                &mut ctx,
                RateLimit {
                    per_sec: f64::from(state.config.ws_rate_per_sec),
                    burst: f64::from(state.config.ws_rate_burst),
                },
            )
            .await;
            Box::pin(socket::finish(&mut sink, end)).await;
        }
        drop(registration);
        if let Err(e) = Box::pin(on_disconnect(&state, &conn)).await {
            tracing::warn!(error = %e, "presence update on disconnect failed");
        }
    }
}

async fn on_connect(state: &Sockets, conn: &Connection, first: bool) -> anyhow::Result<()> {
    let tenant = conn.tenant.id;
    match conn.peer {
        Peer::Agent(agent_id) => {
            state.chat.presence.came_back(tenant, agent_id);
            state.chat.presence.touch(tenant, agent_id, chrono::Utc::now());
            if first {
                let mut tx = TenantTx::begin(&state.door.db, tenant).await?;
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

async fn on_disconnect(state: &Sockets, conn: &Connection) -> anyhow::Result<()> {
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
async fn greet_and_replay<S>(state: &Sockets, conn: &Connection, sink: &mut S) -> Result<(), ()>
where
    S: Sink<Outgoing> + Unpin,
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
            let (online, agents) = state.chat.team_presence(tenant).await.unwrap_or_default();
            send(sink, encode(&ServerFrame::Presence(Presence::Team { online, agents }))).await?;
        }
        Peer::Agent(_) => {
            for colleague in state.chat.present_agents(tenant) {
                let mut tx = TenantTx::begin(&state.door.db, tenant).await.map_err(|_| ())?;
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
        let mut tx = TenantTx::begin(&state.door.db, tenant).await.map_err(|_| ())?;
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

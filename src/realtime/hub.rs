//! Live connections and fan-out.
//!
//! Every socket registers here with a bounded outbound queue. Delivery never blocks and
//! never grows memory: when a connection's queue is full it is marked lagging and closed
//! (close code 4008); the client reconnects with its last id and catches up from the
//! database. Deregistration is a guard's `Drop`, so a socket that ends in any way (error,
//! panic, shutdown) leaves the hub. Presence is derived from what is registered here and
//! what the other nodes announced on the bus (crate::realtime::bus).
//!
//! Every push, close and revocation is applied to this node's sockets and, when a bus is
//! attached, published for the other nodes, which apply it to theirs (`*_here`).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use ipnet::IpNet;
use tenants::TenantId;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::protocol::ServerFrame;
use crate::realtime::bus::{Bus, Event, Remote, Target};

/// Outbound frames queued per visitor connection before it counts as lagging.
pub const QUEUE_CAPACITY: usize = 1024;
/// Agents receive their whole merchant's traffic (bursts of new conversations included), so
/// their queue is longer. tokio allocates queue blocks as they fill, so an idle connection
/// does not pay for the capacity.
pub const AGENT_QUEUE_CAPACITY: usize = 16 * 1024;

/// A serialized frame (UTF-8 JSON text), shared by every connection it goes to. It is one
/// pointer because every connection's queue is allocated with a first block of 32 slots: at
/// 8 bytes a slot instead of the text's 32, an idle socket's queue costs 256 bytes, not 1 KiB.
#[derive(Clone, Debug, Default)]
pub struct Frame(Arc<Bytes>);

impl Frame {
    pub fn as_str(&self) -> &str {
        // Only built from UTF-8 text (below), so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The frame's text as bytes, without checking it is UTF-8 again (the bus copies it
    /// into its messages as is).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A frame that shares `bytes` (a slice of a bus message) if they are UTF-8 text.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(Arc::new(bytes)))
    }

    /// The frame's text as bytes, shared with every other holder, not copied (a transport
    /// turns it into its own text message).
    pub fn into_bytes(self) -> Bytes {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| Bytes::clone(&shared))
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self(Arc::new(Bytes::from(text)))
    }
}

pub fn encode(frame: &ServerFrame) -> Frame {
    Frame::from(serde_json::to_string(frame).expect("server frames serialize"))
}

/// Whose connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    Agent(i64),
    Visitor(i64),
}

struct Conn {
    peer: Peer,
    /// The agent session it was opened with (auth::sessions): ending the session ends it.
    session: Option<i64>,
    /// The address a visitor's connection came from: blocking it ends the connection.
    ip: Option<IpAddr>,
    tx: mpsc::Sender<Frame>,
    /// Cancelled when the server ends the connection: it fell behind, the peer lost access
    /// (a blocked visitor, a disabled agent, a suspended merchant), or it must resync;
    /// `close` says with which close code.
    ended: CancellationToken,
    close: CloseReason,
}

/// The close code and reason a connection the server ends is closed with (set once, before
/// `ended` is cancelled: the first reason wins).
pub type CloseReason = Arc<std::sync::OnceLock<(u16, &'static str)>>;

/// The connection's queue was full: it could not keep up, and catches up with `since`.
pub const LAGGING: (u16, &str) = (4008, "too slow; reconnect with since");

/// Close code and reason for a peer that lost access: do not reconnect.
pub const REVOKED: (u16, &str) = (4003, "access revoked");
/// The merchant was suspended or deleted: the service is paused.
/// Who the connection belongs to changed (e.g. visitor records merged): reconnect.
pub const RECONNECT: (u16, &str) = (4008, "reconnect");
pub const SUSPENDED: (u16, &str) = (4004, "service paused");

/// Frames may have been lost on the bus: reconnect with the `since` the resync frame gave.
pub const RESYNC: (u16, &str) = (4008, "frames may have been lost; reconnect with since");

/// The close code and reason for `code` as another node sent it.
pub fn close_reason(code: u16) -> (u16, &'static str) {
    if code == SUSPENDED.0 { SUSPENDED } else { REVOKED }
}

impl Conn {
    fn end(&self, reason: (u16, &'static str)) {
        let _ = self.close.set(reason);
        self.ended.cancel();
    }
}

/// One tenant's connections, indexed by whom they belong to: a push touches only its
/// recipients (a flat map made every message scan every visitor of the tenant).
#[derive(Default)]
struct Room {
    by_peer: HashMap<Peer, HashMap<u64, Conn>>,
    /// Agents with at least one connection (few per tenant; iterated for agent broadcasts).
    agents: std::collections::BTreeSet<i64>,
}

impl Room {
    fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }

    fn insert(&mut self, id: u64, conn: Conn) {
        if let Peer::Agent(a) = conn.peer {
            self.agents.insert(a);
        }
        self.by_peer.entry(conn.peer).or_default().insert(id, conn);
    }

    fn remove(&mut self, peer: Peer, id: u64) {
        if let Some(conns) = self.by_peer.get_mut(&peer) {
            conns.remove(&id);
            if conns.is_empty() {
                self.by_peer.remove(&peer);
                if let Peer::Agent(a) = peer {
                    self.agents.remove(&a);
                }
            }
        }
    }

    /// Every connection of `peer`, with its id.
    fn of(&self, peer: Peer) -> impl Iterator<Item = (&u64, &Conn)> {
        self.by_peer.get(&peer).into_iter().flat_map(|c| c.iter())
    }
}

/// The registry of live sockets, per tenant.
pub struct Hub {
    rooms: Mutex<HashMap<TenantId, Room>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The other nodes (none until a bus is attached).
    bus: std::sync::OnceLock<Bus>,
    remote: Remote,
}

/// Held by a socket task; removes the connection when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    tenant: TenantId,
    peer: Peer,
    pub id: u64,
    /// Cancelled when the server ends the connection; `close` says why.
    pub ended: CancellationToken,
    pub close: CloseReason,
    /// The connection's own queue, for replies to what it sent (acks, errors, pongs). They
    /// share the queue with pushed frames: one channel per socket, not two.
    pub replies: mpsc::Sender<Frame>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut rooms = self.hub.lock();
        if let Some(room) = rooms.get_mut(&self.tenant) {
            room.remove(self.peer, self.id);
            let gone = !room.by_peer.contains_key(&self.peer);
            if room.is_empty() {
                rooms.remove(&self.tenant);
            }
            if gone {
                // Under the lock, so that the other nodes hear comings and goings in order.
                self.hub.announce(self.tenant, self.peer, false);
            }
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            rooms: Mutex::default(),
            next_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            bus: std::sync::OnceLock::new(),
            remote: Remote::default(),
        }
    }
}

impl Hub {
    /// Registers a connection; frames for it arrive on the returned receiver.
    pub fn register(
        self: &Arc<Self>,
        tenant: TenantId,
        peer: Peer,
        session: Option<i64>,
        ip: Option<IpAddr>,
    ) -> (Registration, mpsc::Receiver<Frame>) {
        let capacity = match peer {
            Peer::Agent(_) => AGENT_QUEUE_CAPACITY,
            Peer::Visitor(_) => QUEUE_CAPACITY,
        };
        let (tx, rx) = mpsc::channel(capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ended = CancellationToken::new();
        let close = CloseReason::default();
        let conn =
            Conn { peer, session, ip, tx: tx.clone(), ended: ended.clone(), close: close.clone() };
        {
            let mut rooms = self.lock();
            let room = rooms.entry(tenant).or_default();
            let first = !room.by_peer.contains_key(&peer);
            room.insert(id, conn);
            if first {
                self.announce(tenant, peer, true);
            }
        }
        (Registration { hub: self.clone(), tenant, peer, id, ended, close, replies: tx }, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Room>> {
        // A panic while holding the lock cannot leave the map inconsistent (every critical
        // section is a single insert, remove or read), so a poisoned lock is still usable.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` on each connection; a full queue marks its connection lagging.
    fn deliver<'a>(
        tenant: TenantId,
        conns: impl Iterator<Item = (&'a u64, &'a Conn)>,
        except: Option<u64>,
        frame: &Frame,
    ) -> usize {
        let mut delivered = 0;
        for (_, conn) in conns.filter(|(id, _)| Some(**id) != except) {
            match conn.tx.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !conn.ended.is_cancelled() {
                        tracing::warn!(tenant = tenant.0, peer = ?conn.peer, "connection lagging; closing it");
                        conn.end(LAGGING);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// Attaches the bus to the other nodes (once, at start).
    pub fn attach_bus(&self, bus: Bus) {
        if self.bus.set(bus).is_err() {
            tracing::warn!("a bus is already attached; keeping the first");
        }
    }

    pub fn bus(&self) -> Option<&Bus> {
        self.bus.get()
    }

    /// Who is connected to the other nodes.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    fn publish(&self, event: Event, frame: Option<&Frame>) {
        if let Some(bus) = self.bus.get() {
            bus.publish(event, frame);
        }
    }

    fn announce(&self, tenant: TenantId, peer: Peer, online: bool) {
        self.publish(Event::Online { tenant: tenant.0, peer, online }, None);
    }

    /// Queues `frame` on the connections `to` of `tenant` here, but connection `except`
    /// (a sender, which has its ack), and on the other nodes'. Returns how many of this
    /// node's connections got it.
    pub fn push(&self, tenant: TenantId, to: Target, except: Option<u64>, frame: &Frame) -> usize {
        let delivered = self.deliver_here(tenant, to, except, frame);
        self.publish(Event::Push { tenant: tenant.0, to }, Some(frame));
        delivered
    }

    /// [`Hub::push`] for this node's connections only (what another node published).
    pub fn deliver_here(
        &self,
        tenant: TenantId,
        to: Target,
        except: Option<u64>,
        frame: &Frame,
    ) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        match to {
            Target::Agents => Self::deliver(
                tenant,
                room.agents.iter().flat_map(|a| room.of(Peer::Agent(*a))),
                except,
                frame,
            ),
            Target::OtherAgents(agent_id) => {
                let others = room
                    .agents
                    .iter()
                    .filter(|a| **a != agent_id)
                    .flat_map(|a| room.of(Peer::Agent(*a)));
                Self::deliver(tenant, others, except, frame)
            }
            Target::Peer(peer) => Self::deliver(tenant, room.of(peer), except, frame),
            Target::Visitors => {
                let visitors = room
                    .by_peer
                    .iter()
                    .filter(|(p, _)| matches!(p, Peer::Visitor(_)))
                    .flat_map(|(_, c)| c.iter());
                Self::deliver(tenant, visitors, except, frame)
            }
        }
    }

    /// Every agent connection of `tenant`. Returns how many here got the frame.
    pub fn to_agents(&self, tenant: TenantId, frame: &Frame) -> usize {
        self.push(tenant, Target::Agents, None, frame)
    }

    /// Every agent connection of `tenant` but connection `except` (the sender, which has
    /// its ack).
    pub fn to_agents_except(&self, tenant: TenantId, except: Option<u64>, frame: &Frame) -> usize {
        self.push(tenant, Target::Agents, except, frame)
    }

    /// Agent connections of `tenant` except those of `agent_id`.
    pub fn to_other_agents(&self, tenant: TenantId, agent_id: i64, frame: &Frame) -> usize {
        self.push(tenant, Target::OtherAgents(agent_id), None, frame)
    }

    pub fn to_agent(&self, tenant: TenantId, agent_id: i64, frame: &Frame) -> usize {
        self.push(tenant, Target::Peer(Peer::Agent(agent_id)), None, frame)
    }

    pub fn to_visitor(&self, tenant: TenantId, visitor_id: i64, frame: &Frame) -> usize {
        self.push(tenant, Target::Peer(Peer::Visitor(visitor_id)), None, frame)
    }

    /// The visitor's connections but `except` (the sender, which has its ack).
    pub fn to_visitor_except(
        &self,
        tenant: TenantId,
        visitor_id: i64,
        except: Option<u64>,
        frame: &Frame,
    ) -> usize {
        self.push(tenant, Target::Peer(Peer::Visitor(visitor_id)), except, frame)
    }

    /// Every visitor connection of `tenant` (e.g. team availability).
    pub fn to_visitors(&self, tenant: TenantId, frame: &Frame) -> usize {
        self.push(tenant, Target::Visitors, None, frame)
    }

    /// Agents with at least one live connection, here or on another node.
    pub fn connected_agents(&self, tenant: TenantId) -> Vec<i64> {
        let mut agents: std::collections::BTreeSet<i64> =
            self.lock().get(&tenant).map(|r| r.agents.clone()).unwrap_or_default();
        self.remote.each_in(tenant, |peers| {
            agents.extend(peers.iter().filter_map(|p| match p {
                Peer::Agent(a) => Some(*a),
                Peer::Visitor(_) => None,
            }));
        });
        agents.into_iter().collect()
    }

    /// How many live connections `peer` has in `tenant`: this node's, plus one for each
    /// other node it is connected to.
    pub fn connections_of(&self, tenant: TenantId, peer: Peer) -> usize {
        let here =
            self.lock().get(&tenant).and_then(|r| r.by_peer.get(&peer)).map_or(0, HashMap::len);
        let mut elsewhere = 0;
        self.remote.each_in(tenant, |peers| elsewhere += usize::from(peers.contains(&peer)));
        here + elsewhere
    }

    /// Closes every connection of `peer` (it lost access) on every node; returns how many
    /// there were here.
    pub fn revoke(&self, tenant: TenantId, peer: Peer) -> usize {
        self.publish(Event::Revoke { tenant: tenant.0, peer }, None);
        self.revoke_here(tenant, peer)
    }

    pub fn revoke_here(&self, tenant: TenantId, peer: Peer) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.of(peer).map(|(_, conn)| conn.end(REVOKED)).count()
    }

    /// Closes every connection of `peer` on every node with "reconnect" (4008): its client
    /// comes back and is told who it is now. Returns how many there were here.
    pub fn reconnect(&self, tenant: TenantId, peer: Peer) -> usize {
        self.publish(Event::Reconnect { tenant: tenant.0, peer }, None);
        self.reconnect_here(tenant, peer)
    }

    pub fn reconnect_here(&self, tenant: TenantId, peer: Peer) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.of(peer).map(|(_, conn)| conn.end(RECONNECT)).count()
    }

    /// Closes the connections opened with the agent sessions `sessions` of `tenant` (they
    /// ended), on every node; returns how many there were here.
    pub fn end_sessions(&self, tenant: TenantId, sessions: &[i64]) -> usize {
        self.publish(Event::EndSessions { tenant: tenant.0, sessions: sessions.to_vec() }, None);
        self.end_sessions_here(tenant, sessions)
    }

    pub fn end_sessions_here(&self, tenant: TenantId, sessions: &[i64]) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.agents
            .iter()
            .flat_map(|a| room.of(Peer::Agent(*a)))
            .filter(|(_, conn)| conn.session.is_some_and(|s| sessions.contains(&s)))
            .map(|(_, conn)| conn.end(REVOKED))
            .count()
    }

    /// Closes the visitor connections of `tenant` that came from an address in `range` (it
    /// was blocked), on every node; returns how many there were here.
    pub fn revoke_range(&self, tenant: TenantId, range: IpNet) -> usize {
        self.publish(Event::RevokeRange { tenant: tenant.0, range }, None);
        self.revoke_range_here(tenant, range)
    }

    pub fn revoke_range_here(&self, tenant: TenantId, range: IpNet) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.by_peer
            .iter()
            .filter(|(peer, _)| matches!(peer, Peer::Visitor(_)))
            .flat_map(|(_, conns)| conns.values())
            .filter(|conn| conn.ip.is_some_and(|ip| range.contains(&ip)))
            .map(|conn| conn.end(REVOKED))
            .count()
    }

    /// The agent sessions with a connection here, by tenant (the session sweep checks
    /// they are still live).
    pub fn local_sessions(&self) -> Vec<(TenantId, i64)> {
        let rooms = self.lock();
        let mut out: Vec<(TenantId, i64)> = rooms
            .iter()
            .flat_map(|(t, room)| {
                room.agents
                    .iter()
                    .flat_map(|a| room.of(Peer::Agent(*a)))
                    .filter_map(|(_, conn)| conn.session.map(|s| (*t, s)))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Sends `notice` to every connection of `tenant`, then closes them all with `reason`
    /// (a suspended or deleted merchant), on every node. Returns how many there were here.
    pub fn close_tenant(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
    ) -> usize {
        self.close(tenant, notice, reason, false)
    }

    /// Like [`Hub::close_tenant`], for the tenant's visitors only (agents stay, e.g. to read
    /// history while the merchant is read-only).
    pub fn close_visitors(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
    ) -> usize {
        self.close(tenant, notice, reason, true)
    }

    fn close(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
        visitors_only: bool,
    ) -> usize {
        let event = Event::Close { tenant: tenant.0, visitors_only, code: reason.0 };
        self.publish(event, Some(notice));
        self.close_here(tenant, notice, reason, visitors_only)
    }

    /// [`Hub::close_tenant`] or [`Hub::close_visitors`] for this node's connections only.
    pub fn close_here(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
        visitors_only: bool,
    ) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.by_peer
            .iter()
            .filter(|(peer, _)| !visitors_only || matches!(peer, Peer::Visitor(_)))
            .flat_map(|(_, conns)| conns.values())
            .map(|conn| {
                // Best effort: a full queue is closing anyway.
                let _ = conn.tx.try_send(notice.clone());
                conn.end(reason)
            })
            .count()
    }

    /// Sends every connection of `tenant` here the `resync` frame, then closes it (4008):
    /// its client reconnects with the `since` the frame gives and catches up from the
    /// database. For when frames may have been lost on the bus. Returns how many.
    pub fn resync(&self, tenant: TenantId, frame: &Frame) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.by_peer
            .values()
            .flat_map(HashMap::values)
            .map(|conn| {
                let _ = conn.tx.try_send(frame.clone());
                conn.end(RESYNC)
            })
            .count()
    }

    /// Tenants with a connection here.
    pub fn local_tenants(&self) -> Vec<TenantId> {
        self.lock().keys().copied().collect()
    }

    /// Everyone connected here, by tenant (the snapshot the other nodes get).
    pub fn local_peers(&self) -> Vec<(i64, Peer)> {
        let rooms = self.lock();
        rooms.iter().flat_map(|(t, room)| room.by_peer.keys().map(|p| (t.0, *p))).collect()
    }

    /// Tenants with at least one agent connected, here or elsewhere (for platform-wide
    /// pushes).
    pub fn tenants_with_agents(&self) -> Vec<TenantId> {
        let mut tenants: std::collections::BTreeSet<TenantId> =
            self.lock().iter().filter(|(_, r)| !r.agents.is_empty()).map(|(t, _)| *t).collect();
        self.remote.each(|tenant, peers| {
            if peers.iter().any(|p| matches!(p, Peer::Agent(_))) {
                tenants.insert(tenant);
            }
        });
        tenants.into_iter().collect()
    }

    /// How many visitors of `tenant` have at least one live connection, on any node.
    pub fn visitors_online(&self, tenant: TenantId) -> usize {
        self.connected_visitors(tenant).len()
    }

    /// Visitors of `tenant` with at least one live connection, on any node (row ids).
    pub fn connected_visitors(&self, tenant: TenantId) -> Vec<i64> {
        let visitor = |p: &Peer| match p {
            Peer::Visitor(v) => Some(*v),
            Peer::Agent(_) => None,
        };
        let mut visitors: std::collections::BTreeSet<i64> = self
            .lock()
            .get(&tenant)
            .map(|r| r.by_peer.keys().filter_map(visitor).collect())
            .unwrap_or_default();
        self.remote.each_in(tenant, |peers| visitors.extend(peers.iter().filter_map(visitor)));
        visitors.into_iter().collect()
    }

    /// People online across all tenants and nodes: (agents, visitors) with at least one
    /// connection.
    pub fn online(&self) -> (usize, usize) {
        let mut people: std::collections::HashSet<(TenantId, Peer)> =
            self.lock().iter().flat_map(|(t, r)| r.by_peer.keys().map(|p| (*t, *p))).collect();
        self.remote.each(|tenant, peers| people.extend(peers.iter().map(|p| (tenant, *p))));
        people.iter().fold((0, 0), |(a, v), (_, p)| match p {
            Peer::Agent(_) => (a + 1, v),
            Peer::Visitor(_) => (a, v + 1),
        })
    }

    /// Live connections to this node across all tenants (agents, visitors).
    pub fn counts(&self) -> (usize, usize) {
        let rooms = self.lock();
        rooms.values().flat_map(|r| r.by_peer.values()).flat_map(|c| c.values()).fold(
            (0, 0),
            |(a, v), c| match c.peer {
                Peer::Agent(_) => (a + 1, v),
                Peer::Visitor(_) => (a, v + 1),
            },
        )
    }

    /// Cancelled when the server shuts down: sockets tell clients to reconnect and end.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Tracks socket tasks so shutdown can wait for them (axum's graceful shutdown does not
    /// wait for upgraded connections).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Asks every socket to close and waits (up to `grace`) for them to finish.
    pub async fn drain(&self, grace: std::time::Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                remaining = self.tasks.len(),
                "sockets still open after the shutdown grace period"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_frame_is_one_pointer() {
        // See `Frame`: every connection's queue starts with 32 of them.
        assert_eq!(std::mem::size_of::<Frame>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn a_frame_hands_out_its_text_without_copying() {
        let frame = Frame::from("{\"type\":\"pong\"}".to_owned());
        let shared = frame.clone();
        let text = shared.into_bytes();
        assert_eq!(&text[..], frame.as_str().as_bytes());
        assert_eq!(text.as_ptr(), frame.as_str().as_ptr());
        let last = frame.into_bytes();
        assert_eq!(last.as_ptr(), text.as_ptr());
    }

    #[tokio::test]
    async fn fan_out_lagging_and_cleanup() {
        let hub = Arc::new(Hub::default());
        let t = TenantId(1);
        let ip = Some("198.51.100.7".parse().unwrap());
        let (agent, mut agent_rx) = hub.register(t, Peer::Agent(10), Some(7), None);
        let (visitor, _visitor_rx) = hub.register(t, Peer::Visitor(20), None, ip);
        let (other, mut other_rx) = hub.register(TenantId(2), Peer::Agent(10), Some(8), None);
        let frame = encode(&ServerFrame::Pong);
        assert_eq!(hub.to_agents(t, &frame), 1);
        assert!(agent_rx.try_recv().is_ok());
        assert!(other_rx.try_recv().is_err(), "other tenants hear nothing");
        assert_eq!(hub.connected_agents(t), vec![10]);

        // Fill the visitor's queue: the next frame marks it lagging instead of blocking.
        for _ in 0..QUEUE_CAPACITY {
            hub.to_visitor(t, 20, &frame);
        }
        assert!(!visitor.ended.is_cancelled());
        hub.to_visitor(t, 20, &frame);
        assert!(visitor.ended.is_cancelled());
        assert_eq!(visitor.close.get(), Some(&LAGGING));
        // The first reason stays: a later revocation does not change how it closes.
        hub.revoke(t, Peer::Visitor(20));
        assert_eq!(visitor.close.get(), Some(&LAGGING));

        // Blocking a range ends the visitor connections from it, in its tenant only.
        let (far, _far_rx) = hub.register(t, Peer::Visitor(21), None, ip);
        assert_eq!(hub.revoke_range(TenantId(2), "198.51.100.0/24".parse().unwrap()), 0);
        assert_eq!(hub.revoke_range(t, "203.0.113.0/24".parse().unwrap()), 0);
        assert_eq!(hub.revoke_range(t, "198.51.100.0/24".parse().unwrap()), 2);
        assert!(far.ended.is_cancelled());
        drop(far);
        // Ending a session ends the connections opened with it, in its tenant only.
        assert_eq!(hub.local_sessions(), vec![(t, 7), (TenantId(2), 8)]);
        assert_eq!(hub.end_sessions(t, &[8]), 0, "session 8 is tenant 2's");
        assert_eq!(hub.end_sessions(t, &[7]), 1);
        assert_eq!(agent.close.get(), Some(&REVOKED));
        assert!(!other.ended.is_cancelled());

        drop(agent);
        drop(visitor);
        assert_eq!(hub.counts(), (1, 0));
        assert!(hub.lock().get(&t).is_none(), "empty rooms are removed");
        assert_eq!(hub.connected_agents(t), Vec::<i64>::new());
    }
}

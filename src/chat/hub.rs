//! Live connections and fan-out.
//!
//! Every socket registers here with a bounded outbound queue. Delivery never blocks and
//! never grows memory: when a connection's queue is full it is marked lagging and closed
//! (close code 4008); the client reconnects with its last id and catches up from the
//! database. Deregistration is a guard's `Drop`, so a socket that ends in any way (error,
//! panic, shutdown) leaves the hub. Presence is derived from what is registered.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::extract::ws::Utf8Bytes;
use tenants::TenantId;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::protocol::ServerFrame;

/// Outbound frames queued per visitor connection before it counts as lagging.
pub const QUEUE_CAPACITY: usize = 1024;
/// Agents receive their whole merchant's traffic (bursts of new conversations included), so
/// their queue is longer. tokio allocates queue blocks as they fill, so an idle connection
/// does not pay for the capacity.
pub const AGENT_QUEUE_CAPACITY: usize = 16 * 1024;

/// A serialized frame, shared by every connection it goes to.
pub type Frame = Utf8Bytes;

pub fn encode(frame: &ServerFrame) -> Frame {
    Utf8Bytes::from(serde_json::to_string(frame).expect("server frames serialize"))
}

/// Whose connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Agent(i64),
    Visitor(i64),
}

struct Conn {
    peer: Peer,
    tx: mpsc::Sender<Frame>,
    /// Cancelled when the connection must close because it fell behind.
    lagging: CancellationToken,
    /// Cancelled when the peer lost access (a blocked visitor, a disabled agent, a
    /// suspended merchant); `close` says with which close code.
    revoked: CancellationToken,
    close: CloseReason,
}

/// The close code and reason a revoked connection ends with (set once, before `revoked` is
/// cancelled).
pub type CloseReason = Arc<std::sync::OnceLock<(u16, &'static str)>>;

/// Close code and reason for a peer that lost access: do not reconnect.
pub const REVOKED: (u16, &str) = (4003, "access revoked");
/// The merchant was suspended or deleted: the service is paused.
pub const SUSPENDED: (u16, &str) = (4004, "service paused");

impl Conn {
    fn end(&self, reason: (u16, &'static str)) {
        let _ = self.close.set(reason);
        self.revoked.cancel();
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
}

/// Held by a socket task; removes the connection when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    tenant: TenantId,
    peer: Peer,
    pub id: u64,
    pub lagging: CancellationToken,
    pub revoked: CancellationToken,
    pub close: CloseReason,
    /// The connection's own queue, for replies to what it sent (acks, errors, pongs). They
    /// share the queue with pushed frames: one channel per socket, not two.
    pub replies: mpsc::Sender<Frame>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut rooms = self.hub.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get_mut(&self.tenant) {
            room.remove(self.peer, self.id);
            if room.is_empty() {
                rooms.remove(&self.tenant);
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
        }
    }
}

impl Hub {
    /// Registers a connection; frames for it arrive on the returned receiver.
    pub fn register(
        self: &Arc<Self>,
        tenant: TenantId,
        peer: Peer,
    ) -> (Registration, mpsc::Receiver<Frame>) {
        let capacity = match peer {
            Peer::Agent(_) => AGENT_QUEUE_CAPACITY,
            Peer::Visitor(_) => QUEUE_CAPACITY,
        };
        let (tx, rx) = mpsc::channel(capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (lagging, revoked) = (CancellationToken::new(), CancellationToken::new());
        let close = CloseReason::default();
        let conn = Conn {
            peer,
            tx: tx.clone(),
            lagging: lagging.clone(),
            revoked: revoked.clone(),
            close: close.clone(),
        };
        self.lock().entry(tenant).or_default().insert(id, conn);
        (
            Registration {
                hub: self.clone(),
                tenant,
                peer,
                id,
                lagging,
                revoked,
                close,
                replies: tx,
            },
            rx,
        )
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
                    if !conn.lagging.is_cancelled() {
                        tracing::warn!(tenant = tenant.0, peer = ?conn.peer, "connection lagging; closing it");
                        conn.lagging.cancel();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// Every agent connection of `tenant`. Returns how many got the frame.
    pub fn to_agents(&self, tenant: TenantId, frame: &Frame) -> usize {
        self.to_agents_except(tenant, None, frame)
    }

    /// Every agent connection of `tenant` but connection `except` (the sender, which has
    /// its ack).
    pub fn to_agents_except(&self, tenant: TenantId, except: Option<u64>, frame: &Frame) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        Self::deliver(
            tenant,
            room.agents.iter().flat_map(|a| room.of(Peer::Agent(*a))),
            except,
            frame,
        )
    }

    /// Agent connections of `tenant` except those of `agent_id`.
    pub fn to_other_agents(&self, tenant: TenantId, agent_id: i64, frame: &Frame) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        let others =
            room.agents.iter().filter(|a| **a != agent_id).flat_map(|a| room.of(Peer::Agent(*a)));
        Self::deliver(tenant, others, None, frame)
    }

    pub fn to_agent(&self, tenant: TenantId, agent_id: i64, frame: &Frame) -> usize {
        self.to_peer(tenant, Peer::Agent(agent_id), None, frame)
    }

    pub fn to_visitor(&self, tenant: TenantId, visitor_id: i64, frame: &Frame) -> usize {
        self.to_peer(tenant, Peer::Visitor(visitor_id), None, frame)
    }

    /// The visitor's connections but `except` (the sender, which has its ack).
    pub fn to_visitor_except(
        &self,
        tenant: TenantId,
        visitor_id: i64,
        except: Option<u64>,
        frame: &Frame,
    ) -> usize {
        self.to_peer(tenant, Peer::Visitor(visitor_id), except, frame)
    }

    fn to_peer(&self, tenant: TenantId, peer: Peer, except: Option<u64>, frame: &Frame) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        Self::deliver(tenant, room.of(peer), except, frame)
    }

    /// Every visitor connection of `tenant` (e.g. team availability).
    pub fn to_visitors(&self, tenant: TenantId, frame: &Frame) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        let visitors = room
            .by_peer
            .iter()
            .filter(|(p, _)| matches!(p, Peer::Visitor(_)))
            .flat_map(|(_, c)| c.iter());
        Self::deliver(tenant, visitors, None, frame)
    }

    /// Agents with at least one live connection.
    pub fn connected_agents(&self, tenant: TenantId) -> Vec<i64> {
        self.lock().get(&tenant).map(|r| r.agents.iter().copied().collect()).unwrap_or_default()
    }

    /// How many live connections `peer` has in `tenant`.
    pub fn connections_of(&self, tenant: TenantId, peer: Peer) -> usize {
        self.lock().get(&tenant).and_then(|r| r.by_peer.get(&peer)).map_or(0, HashMap::len)
    }

    /// Closes every connection of `peer` (it lost access); returns how many there were.
    pub fn revoke(&self, tenant: TenantId, peer: Peer) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.of(peer).map(|(_, conn)| conn.end(REVOKED)).count()
    }

    /// Sends `notice` to every connection of `tenant`, then closes them all with `reason`
    /// (a suspended or deleted merchant). Returns how many there were.
    pub fn close_tenant(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
    ) -> usize {
        self.close_where(tenant, notice, reason, |_| true)
    }

    /// Like [`Hub::close_tenant`], for the tenant's visitors only (agents stay, e.g. to read
    /// history while the merchant is read-only).
    pub fn close_visitors(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
    ) -> usize {
        self.close_where(tenant, notice, reason, |peer| matches!(peer, Peer::Visitor(_)))
    }

    fn close_where(
        &self,
        tenant: TenantId,
        notice: &Frame,
        reason: (u16, &'static str),
        which: impl Fn(&Peer) -> bool,
    ) -> usize {
        let rooms = self.lock();
        let Some(room) = rooms.get(&tenant) else { return 0 };
        room.by_peer
            .iter()
            .filter(|(peer, _)| which(peer))
            .flat_map(|(_, conns)| conns.values())
            .map(|conn| {
                // Best effort: a full queue is closing anyway.
                let _ = conn.tx.try_send(notice.clone());
                conn.end(reason)
            })
            .count()
    }

    /// Tenants with at least one agent connected (for platform-wide pushes).
    pub fn tenants_with_agents(&self) -> Vec<TenantId> {
        self.lock().iter().filter(|(_, r)| !r.agents.is_empty()).map(|(t, _)| *t).collect()
    }

    /// Visitors of `tenant` with at least one live connection.
    pub fn visitors_online(&self, tenant: TenantId) -> usize {
        self.lock().get(&tenant).map_or(0, |r| r.by_peer.len() - r.agents.len())
    }

    /// People online across all tenants: (agents, visitors) with at least one connection.
    pub fn online(&self) -> (usize, usize) {
        self.lock()
            .values()
            .fold((0, 0), |(a, v), r| (a + r.agents.len(), v + r.by_peer.len() - r.agents.len()))
    }

    /// Live connections across all tenants (agents, visitors).
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

    #[tokio::test]
    async fn fan_out_lagging_and_cleanup() {
        let hub = Arc::new(Hub::default());
        let t = TenantId(1);
        let (agent, mut agent_rx) = hub.register(t, Peer::Agent(10));
        let (visitor, _visitor_rx) = hub.register(t, Peer::Visitor(20));
        let (_other, mut other_rx) = hub.register(TenantId(2), Peer::Agent(10));
        let frame = encode(&ServerFrame::Pong);
        assert_eq!(hub.to_agents(t, &frame), 1);
        assert!(agent_rx.try_recv().is_ok());
        assert!(other_rx.try_recv().is_err(), "other tenants hear nothing");
        assert_eq!(hub.connected_agents(t), vec![10]);

        // Fill the visitor's queue: the next frame marks it lagging instead of blocking.
        for _ in 0..QUEUE_CAPACITY {
            hub.to_visitor(t, 20, &frame);
        }
        assert!(!visitor.lagging.is_cancelled());
        hub.to_visitor(t, 20, &frame);
        assert!(visitor.lagging.is_cancelled());

        drop(agent);
        drop(visitor);
        assert_eq!(hub.counts(), (1, 0));
        assert!(hub.lock().get(&t).is_none(), "empty rooms are removed");
        assert_eq!(hub.connected_agents(t), Vec::<i64>::new());
    }
}

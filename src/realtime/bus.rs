//! The bus between kefu processes. One process needs none: the hub delivers to its own
//! sockets. With `nats_url` set, every node publishes what its hub delivered (after the
//! message was committed) and what changed — presence, cache invalidations, revocations —
//! on one NATS subject, and applies what the other nodes publish to its own sockets and
//! caches.
//!
//! What the bus promises and what covers its gaps:
//! - **Order**: one subject, one publishing connection per node, one subscription per node:
//!   NATS delivers a node's events to every other node in the order they were published.
//! - **Loss**: every event carries the publishing node's sequence number. A receiver that
//!   sees a gap (its subscription was too slow, the broker restarted, a publisher's outbox
//!   overflowed) cannot know what it missed, so it closes its local sockets as lagging (close
//!   4008): clients reconnect with `since` and catch up from the database, where everything
//!   acknowledged already is. A node whose heartbeats stop (it died) is forgotten, and the
//!   sockets of the tenants it had people in resync the same way.
//! - **Presence**: each node announces a peer's first connection and last disconnection,
//!   and every `bus_heartbeat_secs` a full snapshot of who is connected to it (which is also
//!   its heartbeat). A node that starts says hello and the others send their snapshot at once.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tenants::TenantId;
use tokio::sync::{Notify, mpsc};

use super::{
    hub::{Frame, Hub, Peer, close_reason, encode},
    presence::Presence,
    protocol::ServerFrame,
};

/// What the bus needs from the process it runs in: its hub and presence, where a tenant's
/// messages stand, and its caches. The composition root implements it (`startup`).
pub trait Node: Clone + Send + Sync + 'static {
    fn hub(&self) -> &Hub;
    fn presence(&self) -> &Presence;
    /// The id of the tenant's last message stored before `cutoff` (0 for none): where its
    /// sockets replay from after frames may have been lost.
    fn last_message_before(
        &self,
        tenant: TenantId,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> impl std::future::Future<Output = anyhow::Result<i64>> + Send;
    /// Drops what `what` names from this process's caches (another node changed it).
    fn invalidate_here(&self, what: Invalidation) -> impl std::future::Future<Output = ()> + Send;
}

/// A process on the bus (random per start, so a restarted node is a new one).
pub type NodeId = u64;

/// Events a node may have queued for the broker before it drops them (and receivers see a
/// gap and resync).
const OUTBOX: usize = 64 * 1024;
/// Peers per snapshot event (NATS limits payloads to 1 MiB by default).
const SNAPSHOT_CHUNK: usize = 4096;
/// Heartbeats a node may miss before the others forget it.
const MISSED_HEARTBEATS: u32 = 3;
/// A resync replays from this long before frames may have started to be lost: longer than
/// any transaction storing messages takes, so that a message committed (and never
/// published) by a node that died is replayed even if its id is below ids delivered since.
const RESYNC_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Which of a tenant's connections a pushed frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Agents,
    /// Every agent but this one.
    OtherAgents(i64),
    Peer(Peer),
    Visitors,
}

/// Drops what an [`Invalidation`] names from every node's caches: this node's at once, the
/// others' through the bus. Features hold this handle (`State<Caches>`); the composition
/// root implements [`Invalidate`].
#[derive(Clone)]
pub struct Caches(Arc<dyn Invalidate>);

/// What [`Caches`] calls: implemented once, by the composition root.
pub trait Invalidate: Send + Sync + 'static {
    fn invalidate(&self, what: Invalidation) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl Caches {
    pub fn new(node: Arc<dyn Invalidate>) -> Self {
        Self(node)
    }

    pub async fn invalidate(&self, what: Invalidation) {
        self.0.invalidate(what).await;
    }
}

/// Caches that every node keeps and must drop when one node changes what they hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidation {
    /// The tenant registry (status, domains, names).
    Tenants,
    /// The platform's system settings.
    System,
    /// Sign-in providers' metadata.
    SignIn,
    /// A tenant's automation settings and auto-replies.
    Automation(i64),
    /// A tenant's webhook subscriptions.
    Webhooks(i64),
    /// An agent's chosen status (tenant, agent).
    AgentStatus(i64, i64),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The frame after the header goes to these connections of the tenant.
    Push {
        tenant: i64,
        to: Target,
    },
    /// The tenant's connections (its visitors' only, if so) get the frame after the header,
    /// then close with `code`.
    Close {
        tenant: i64,
        visitors_only: bool,
        code: u16,
    },
    /// Every connection of the peer closes: it lost access.
    Revoke {
        tenant: i64,
        peer: Peer,
    },
    /// Every connection of the peer closes with "reconnect" (4008): who it is changed,
    /// e.g. its visitor record was merged into another.
    Reconnect {
        tenant: i64,
        peer: Peer,
    },
    /// The tenant's visitor connections from an address in `range` close: it was blocked.
    RevokeRange {
        tenant: i64,
        range: ipnet::IpNet,
    },
    /// The connections opened with these agent sessions close: the sessions ended.
    EndSessions {
        tenant: i64,
        sessions: Vec<i64>,
    },
    /// The peer's first connection to the publishing node opened, or its last one closed.
    Online {
        tenant: i64,
        peer: Peer,
        online: bool,
    },
    /// Part of who is connected to the publishing node; the `last` part completes it.
    Snapshot {
        peers: Vec<(i64, Peer)>,
        last: bool,
    },
    /// A node started: the others send their snapshots now.
    Hello,
    /// A node stops, after publishing everything it had.
    Bye,
    Invalidate(Invalidation),
}

#[derive(Serialize, Deserialize)]
struct Header {
    node: NodeId,
    seq: u64,
    /// When it was published (microseconds since the epoch), for the bus-lag histogram.
    at: i64,
    event: Event,
}

/// Header JSON, a newline, then the frame (if the event carries one) as is.
fn encode_event(header: &Header, frame: Option<&Frame>) -> Bytes {
    let mut out = serde_json::to_vec(header).expect("bus events serialize");
    if let Some(frame) = frame {
        out.push(b'\n');
        out.extend_from_slice(frame.as_bytes());
    }
    Bytes::from(out)
}

/// The frame shares the message's bytes: it is sliced out, not copied.
fn decode(payload: &Bytes) -> anyhow::Result<(Header, Option<Frame>)> {
    let (head, frame) = match payload.iter().position(|b| *b == b'\n') {
        Some(at) => (payload.slice(..at), Some(payload.slice(at + 1..))),
        None => (payload.clone(), None),
    };
    let header: Header = serde_json::from_slice(&head).context("bus event header")?;
    let frame = frame.map(Frame::from_utf8).transpose().context("bus frame")?;
    Ok((header, frame))
}

/// This node's side of the bus: numbers events and queues them for the broker.
pub struct Bus {
    pub node: NodeId,
    /// The next sequence number and the outbox, under one lock so that numbers go out in
    /// order.
    outbox: Mutex<(u64, mpsc::Sender<Bytes>)>,
    client: async_nats::Client,
}

impl Bus {
    /// Tells the other nodes to drop what `what` names from their caches.
    pub fn invalidate(&self, what: Invalidation) {
        self.publish(Event::Invalidate(what), None);
    }

    /// Whether the broker is reachable now (readiness).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Queues `event` (and the frame it carries); never waits. A full outbox drops it —
    /// the receivers see the gap in sequence numbers and resync.
    pub fn publish(&self, event: Event, frame: Option<&Frame>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        outbox.0 += 1;
        let header = Header {
            node: self.node,
            seq: outbox.0,
            at: chrono::Utc::now().timestamp_micros(),
            event,
        };
        match outbox.1.try_send(encode_event(&header, frame)) {
            Ok(()) => {
                metrics::counter!("kefu_bus_events_total", "direction" => "sent").increment(1)
            }
            Err(_) => {
                metrics::counter!("kefu_bus_events_dropped_total").increment(1);
                tracing::warn!("bus outbox full; dropped an event (other nodes will resync)");
            }
        }
    }
}

type Peers = HashMap<TenantId, HashSet<Peer>>;

/// What another node told us.
struct NodeView {
    seen: Instant,
    /// When it was last heard from, on this node's clock (a resync replays from before).
    heard_at: chrono::DateTime<chrono::Utc>,
    seq: u64,
    peers: Peers,
    /// A snapshot being received (replaces `peers` when its last part arrives).
    incoming: Option<Peers>,
}

/// Who is connected to the other nodes, as they announced it.
#[derive(Default)]
pub struct Remote {
    nodes: Mutex<HashMap<NodeId, NodeView>>,
}

/// A node that went silent.
struct Lost {
    node: NodeId,
    heard_at: chrono::DateTime<chrono::Utc>,
    tenants: HashSet<TenantId>,
}

/// What a received sequence number says.
#[derive(Debug, PartialEq, Eq)]
enum Sequence {
    InOrder,
    /// Events from this node were lost (or it is new to us mid-stream).
    Gap,
}

impl Remote {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, NodeView>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `node` published event `seq` now.
    fn heard(&self, node: NodeId, seq: u64) -> Sequence {
        let mut nodes = self.lock();
        match nodes.get_mut(&node) {
            Some(view) => {
                let expected = view.seq + 1;
                view.seq = seq;
                view.seen = Instant::now();
                view.heard_at = chrono::Utc::now();
                if seq == expected { Sequence::InOrder } else { Sequence::Gap }
            }
            None => {
                let view = NodeView {
                    seen: Instant::now(),
                    heard_at: chrono::Utc::now(),
                    seq,
                    peers: Peers::new(),
                    incoming: None,
                };
                nodes.insert(node, view);
                // A node's first event is its hello; anything else means we joined (or came
                // back) while it was talking, and may have missed some of it.
                if seq == 1 { Sequence::InOrder } else { Sequence::Gap }
            }
        }
    }

    fn online(&self, node: NodeId, tenant: TenantId, peer: Peer, online: bool) {
        let mut nodes = self.lock();
        let Some(view) = nodes.get_mut(&node) else { return };
        for peers in std::iter::once(&mut view.peers).chain(view.incoming.as_mut()) {
            if online {
                peers.entry(tenant).or_default().insert(peer);
            } else if let Some(set) = peers.get_mut(&tenant) {
                set.remove(&peer);
                if set.is_empty() {
                    peers.remove(&tenant);
                }
            }
        }
    }

    fn snapshot(&self, node: NodeId, part: Vec<(i64, Peer)>, last: bool) {
        let mut nodes = self.lock();
        let Some(view) = nodes.get_mut(&node) else { return };
        let incoming = view.incoming.get_or_insert_with(Peers::new);
        for (tenant, peer) in part {
            incoming.entry(TenantId(tenant)).or_default().insert(peer);
        }
        if last {
            view.peers = view.incoming.take().unwrap_or_default();
        }
    }

    fn forget(&self, node: NodeId) -> Option<Peers> {
        self.lock().remove(&node).map(|v| v.peers)
    }

    /// Forgets nodes not heard from within `timeout`; returns each with when it was last
    /// heard and the tenants it had people in.
    fn expire(&self, timeout: Duration) -> Vec<Lost> {
        let mut nodes = self.lock();
        let dead: Vec<NodeId> =
            nodes.iter().filter(|(_, v)| v.seen.elapsed() > timeout).map(|(n, _)| *n).collect();
        dead.into_iter()
            .filter_map(|node| {
                nodes.remove(&node).map(|v| Lost {
                    node,
                    heard_at: v.heard_at,
                    tenants: v.peers.into_keys().collect(),
                })
            })
            .collect()
    }

    pub fn nodes(&self) -> usize {
        self.lock().len()
    }

    /// Calls `f` with each other node's peers in `tenant`.
    pub fn each_in(&self, tenant: TenantId, mut f: impl FnMut(&HashSet<Peer>)) {
        for view in self.lock().values() {
            if let Some(peers) = view.peers.get(&tenant) {
                f(peers);
            }
        }
    }

    /// Calls `f` with each other node's peers, by tenant.
    pub fn each(&self, mut f: impl FnMut(TenantId, &HashSet<Peer>)) {
        for view in self.lock().values() {
            for (tenant, peers) in &view.peers {
                f(*tenant, peers);
            }
        }
    }
}

/// A connected bus: the NATS client and what runs it.
pub struct Nats {
    client: async_nats::Client,
    subject: String,
    heartbeat: Duration,
    outbox: mpsc::Receiver<Bytes>,
    /// Woken when a node says hello: send the snapshot now.
    snapshot_now: Arc<Notify>,
}

/// Connects to NATS at `url` (the first connection must succeed; later outages reconnect
/// without end) and returns the bus for the hub and the part that runs it.
pub async fn connect(
    url: &str,
    subject_prefix: &str,
    heartbeat: Duration,
) -> anyhow::Result<(Bus, Nats)> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("kefu {}", env!("CARGO_PKG_VERSION")))
        .no_echo()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("bus: connected to NATS"),
                async_nats::Event::Disconnected => tracing::warn!("bus: lost NATS; reconnecting"),
                // At shutdown, after the goodbye.
                async_nats::Event::Closed => tracing::info!("bus: NATS connection closed"),
                other => tracing::warn!(event = %other, "bus: NATS event"),
            }
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let (tx, rx) = mpsc::channel(OUTBOX);
    let bus = Bus { node: rand::random(), outbox: Mutex::new((0, tx)), client: client.clone() };
    let nats = Nats {
        client,
        subject: format!("{subject_prefix}.events"),
        heartbeat,
        outbox: rx,
        snapshot_now: Arc::default(),
    };
    Ok((bus, nats))
}

impl Nats {
    /// Runs the bus for `state` until the hub shuts down: publishes the outbox, applies other
    /// nodes' events, sends heartbeats and forgets silent nodes. Subscribes before it
    /// returns, so nothing published after is missed.
    pub async fn start(self, state: impl Node) -> anyhow::Result<BusTasks> {
        let mut subscriber =
            self.client.subscribe(self.subject.clone()).await.context("subscribing to the bus")?;
        let Nats { client, subject, heartbeat, mut outbox, snapshot_now } = self;
        let publisher = {
            let client = client.clone();
            tokio::spawn(async move {
                while let Some(payload) = outbox.recv().await {
                    if let Err(e) = client.publish(subject.clone(), payload).await {
                        // Only a closed client fails here; the gap is seen downstream.
                        tracing::warn!(error = %e, "bus: publish failed");
                    }
                }
                let _ = client.flush().await;
            })
        };
        let bus = state.hub().bus().context("the hub has no bus attached")?;
        bus.publish(Event::Hello, None);
        let receiver = {
            let state = state.clone();
            let snapshot_now = snapshot_now.clone();
            tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    match decode(&message.payload) {
                        Ok((header, frame)) => apply(&state, &snapshot_now, header, frame).await,
                        Err(e) => tracing::warn!(error = %e, "bus: undecodable event dropped"),
                    }
                }
            })
        };
        let heartbeats = tokio::spawn(async move {
            let shutdown = state.hub().shutdown_token();
            let mut tick = tokio::time::interval(heartbeat);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                    () = snapshot_now.notified() => {}
                }
                publish_snapshot(&state);
                for lost in state.hub().remote().expire(heartbeat * MISSED_HEARTBEATS) {
                    let resynced =
                        resync(&state, |t| lost.tenants.contains(&t), lost.heard_at, "node_lost")
                            .await;
                    tracing::warn!(
                        node = lost.node,
                        tenants = lost.tenants.len(),
                        resynced,
                        "bus: a node went silent; its tenants' sockets resync"
                    );
                }
                metrics::gauge!("kefu_bus_nodes").set((state.hub().remote().nodes() + 1) as f64);
            }
        });
        Ok(BusTasks { client, publisher, receiver, heartbeats })
    }
}

fn publish_snapshot(state: &impl Node) {
    let Some(bus) = state.hub().bus() else { return };
    let peers = state.hub().local_peers();
    let mut chunks = peers.chunks(SNAPSHOT_CHUNK).peekable();
    if chunks.peek().is_none() {
        bus.publish(Event::Snapshot { peers: Vec::new(), last: true }, None);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        bus.publish(Event::Snapshot { peers: chunk.to_vec(), last }, None);
    }
}

/// Resyncs this node's connections in the tenants `which` picks, for frames that may have
/// been lost from `lost_after` on: each gets a `resync` frame with the id of the tenant's
/// last message stored before that (less the margin) and closes. Returns how many.
async fn resync(
    state: &impl Node,
    which: impl Fn(TenantId) -> bool,
    lost_after: chrono::DateTime<chrono::Utc>,
    cause: &'static str,
) -> usize {
    metrics::counter!("kefu_bus_resyncs_total", "cause" => cause).increment(1);
    let cutoff = lost_after - RESYNC_MARGIN;
    let mut resynced = 0;
    for tenant in state.hub().local_tenants().into_iter().filter(|t| which(*t)) {
        let since = match state.last_message_before(tenant, cutoff).await {
            Ok(id) => id,
            Err(e) => {
                // From the beginning, then: the client pages through what it does not have.
                tracing::warn!(tenant = tenant.0, error = %e, "bus: resync point unknown");
                0
            }
        };
        let frame = encode(&ServerFrame::Resync { since });
        resynced += state.hub().resync(tenant, &frame);
    }
    resynced
}

/// Applies another node's event here.
async fn apply(state: &impl Node, snapshot_now: &Notify, header: Header, frame: Option<Frame>) {
    let hub = state.hub();
    let Header { node, seq, at, event } = header;
    if hub.bus().is_some_and(|b| b.node == node) {
        return;
    }
    metrics::counter!("kefu_bus_events_total", "direction" => "received").increment(1);
    let lag = chrono::Utc::now().timestamp_micros().saturating_sub(at).max(0);
    metrics::histogram!("kefu_bus_lag_seconds").record(lag as f64 / 1e6);
    if hub.remote().heard(node, seq) == Sequence::Gap {
        // Off the receiving loop: it queries the database.
        let state = state.clone();
        tokio::spawn(async move {
            let resynced = resync(&state, |_| true, chrono::Utc::now(), "gap").await;
            if resynced > 0 {
                tracing::warn!(node, seq, resynced, "bus: events were lost; local sockets resync");
            }
        });
    }
    match event {
        Event::Push { tenant, to } => {
            if let Some(frame) = frame {
                hub.deliver_here(TenantId(tenant), to, None, &frame);
            }
        }
        Event::Close { tenant, visitors_only, code } => {
            let notice = frame.unwrap_or_default();
            hub.close_here(TenantId(tenant), &notice, close_reason(code), visitors_only);
        }
        Event::Revoke { tenant, peer } => {
            hub.revoke_here(TenantId(tenant), peer);
        }
        Event::Reconnect { tenant, peer } => {
            hub.reconnect_here(TenantId(tenant), peer);
        }
        Event::RevokeRange { tenant, range } => {
            hub.revoke_range_here(TenantId(tenant), range);
        }
        Event::EndSessions { tenant, sessions } => {
            hub.end_sessions_here(TenantId(tenant), &sessions);
        }
        Event::Online { tenant, peer, online } => {
            let tenant = TenantId(tenant);
            hub.remote().online(node, tenant, peer, online);
            // An agent who left that node is within the grace here too (routing keeps them).
            if let Peer::Agent(agent) = peer {
                if online {
                    state.presence().came_back(tenant, agent);
                } else {
                    state.presence().left(tenant, agent);
                }
            }
        }
        Event::Snapshot { peers, last } => hub.remote().snapshot(node, peers, last),
        Event::Hello => snapshot_now.notify_one(),
        Event::Bye => {
            hub.remote().forget(node);
        }
        Event::Invalidate(what) => state.invalidate_here(what).await,
    }
}

/// The bus's tasks, stopped at shutdown after the last events went out.
pub struct BusTasks {
    client: async_nats::Client,
    publisher: tokio::task::JoinHandle<()>,
    receiver: tokio::task::JoinHandle<()>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl BusTasks {
    /// Says goodbye, lets the outbox empty (up to `grace`), then stops.
    pub async fn stop(self, hub: &Hub, grace: Duration) {
        self.heartbeats.abort();
        self.receiver.abort();
        if let Some(bus) = hub.bus() {
            bus.publish(Event::Bye, None);
            // Closing the outbox ends the publisher once it has sent everything queued.
            let (closed, _) = mpsc::channel(1);
            let _ = std::mem::replace(
                &mut bus.outbox.lock().unwrap_or_else(|p| p.into_inner()).1,
                closed,
            );
        }
        if tokio::time::timeout(grace, self.publisher).await.is_err() {
            tracing::warn!("bus: events still queued after the shutdown grace period");
        }
        let _ = self.client.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_and_without_a_frame() {
        let header = Header {
            node: 7,
            seq: 3,
            at: 1,
            event: Event::Push { tenant: 5, to: Target::Peer(Peer::Visitor(9)) },
        };
        let frame = Frame::from("{\"type\":\"pong\"}\nwith a newline".to_owned());
        let (back, got) = decode(&encode_event(&header, Some(&frame))).unwrap();
        assert_eq!((back.node, back.seq), (7, 3));
        assert!(matches!(
            back.event,
            Event::Push { tenant: 5, to: Target::Peer(Peer::Visitor(9)) }
        ));
        assert_eq!(got.unwrap().as_str(), frame.as_str());

        let bye = Header { node: 7, seq: 4, at: 1, event: Event::Bye };
        let (back, got) = decode(&encode_event(&bye, None)).unwrap();
        assert!(matches!(back.event, Event::Bye) && got.is_none());
        assert!(decode(&Bytes::from_static(b"not json")).is_err());
        assert!(decode(&Bytes::from_static(b"{\"node\":1}")).is_err());
        let mut not_text = encode_event(&bye, None).to_vec();
        not_text.extend_from_slice(b"\n\xff");
        assert!(decode(&Bytes::from(not_text)).is_err(), "a frame that is not UTF-8");
    }

    #[test]
    fn gaps_snapshots_and_expiry() {
        let remote = Remote::default();
        let (t, agent) = (TenantId(1), Peer::Agent(4));
        assert_eq!(remote.heard(10, 1), Sequence::InOrder, "a node's hello");
        assert_eq!(remote.heard(10, 2), Sequence::InOrder);
        assert_eq!(remote.heard(10, 4), Sequence::Gap, "3 was lost");
        assert_eq!(remote.heard(11, 50), Sequence::Gap, "joined mid-stream");

        remote.online(10, t, agent, true);
        let mut seen = 0;
        remote.each_in(t, |p| seen += p.len());
        assert_eq!(seen, 1);
        // A snapshot in two parts replaces what was known when it completes; a change that
        // arrives between the parts counts.
        remote.snapshot(10, vec![(1, Peer::Visitor(8))], false);
        remote.online(10, t, Peer::Visitor(9), true);
        remote.snapshot(10, vec![(2, Peer::Agent(5))], true);
        let mut all = Vec::new();
        remote.each(|tenant, peers| all.extend(peers.iter().map(|p| (tenant.0, *p))));
        all.sort_by_key(|(t, p)| (*t, format!("{p:?}")));
        assert_eq!(all, vec![(1, Peer::Visitor(8)), (1, Peer::Visitor(9)), (2, Peer::Agent(5))]);

        std::thread::sleep(Duration::from_millis(20));
        remote.heard(11, 51);
        let expired = remote.expire(Duration::from_millis(10));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].node, 10);
        assert_eq!(remote.nodes(), 1);
        assert!(remote.forget(11).is_some());
    }
}

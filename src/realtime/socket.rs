//! One live connection's two loops, whatever carries it: a writer that drains the
//! connection's hub queue (pushed frames and replies) to the peer and pings, and a reader that
//! rate-limits the peer's frames and hands each to a [`Handler`]. Whichever ends first ends
//! the connection. The transport (the WebSocket face in `chat::ws`) adapts its socket to a
//! `Sink<Outgoing>` and a `Stream<Item = Incoming<_>>`; the tests here use channels.
//!
//! Ends from the server's side: the hub ended the connection (lagging 4008, revoked 4003,
//! paused 4004, resync 4008, with the reason it set), the server is stopping (1012), the
//! peer was silent for [`IDLE_TIMEOUT`] (1001), or sent a message over the limit (1009). A
//! peer that stops reading is dropped [`STALLED_WRITE_GRACE`] after its connection ended.

use std::{
    ops::Deref,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::{sync::mpsc, time::Instant as Clock};
use tokio_util::sync::CancellationToken;

use super::{
    hub::{CloseReason, Frame, LAGGING, REVOKED, Registration, encode},
    protocol::ServerFrame,
};

/// Pings go out this often; a connection silent for [`IDLE_TIMEOUT`] is closed.
pub const PING_EVERY: Duration = Duration::from_secs(20);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write may stay stuck on a peer that stopped reading once the connection has
/// been ended (its queue filled up, it lost access, the server is stopping); then the
/// connection is dropped without a close frame, which could not get through anyway.
pub const STALLED_WRITE_GRACE: Duration = Duration::from_secs(5);

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

/// What the peer sent, as the transport reports it. `T` is the transport's text type (no
/// copy is made of it).
#[derive(Debug)]
pub enum Incoming<T> {
    Text(T),
    Binary,
    /// Pings and pongs: the transport answers pings itself.
    Control,
    /// The peer's Close frame (the transport has queued the answer).
    Close,
    /// A message or frame over the size limit: the stream cannot go on after it.
    TooLarge,
    /// The connection failed.
    Failed,
}

/// What goes to the peer.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Frame),
    Ping,
    Close(u16, &'static str),
}

/// What a connection does with the frames its peer sends (the chat feature's per-frame
/// handlers). Returns the frames for the sender (acks, errors, pongs).
pub trait Handler: Send {
    fn handle(&mut self, text: &str) -> impl Future<Output = Vec<ServerFrame>> + Send;
}

/// The per-connection frame rate: `per_sec` on average, bursts of `burst`.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: f64,
}

/// What ends a connection from the server's side.
pub struct Ends {
    /// The hub ended it (it fell behind, lost access, must resync); `close_reason` says
    /// with which close code.
    ended: CancellationToken,
    close_reason: CloseReason,
    /// The server is shutting down (close 1012).
    shutdown: CancellationToken,
}

impl Ends {
    pub fn of(registration: &Registration, shutdown: CancellationToken) -> Self {
        Self {
            ended: registration.ended.clone(),
            close_reason: registration.close.clone(),
            shutdown,
        }
    }
}

/// Sends one frame now (greetings and replays, before the loops run).
pub async fn send<S: Sink<Outgoing> + Unpin>(sink: &mut S, frame: Frame) -> Result<(), ()> {
    sink.send(Outgoing::Frame(frame)).await.map_err(|_| ())
}

/// Runs the connection's loops until either ends it; then [`finish`] closes as the end
/// asks. The loops are built here and the returned future is only them: its state is
/// part of what every idle socket costs, so nothing is kept twice (an `async fn`, or an
/// `async` block taking these arguments or these loops, would store each of them both as
/// it came in and inside what it is moved into).
pub fn run<'a, Si, St, T, H>(
    sink: &'a mut Si,
    stream: St,
    queue: mpsc::Receiver<Frame>,
    replies: mpsc::Sender<Frame>,
    ends: Ends,
    handler: &'a mut H,
    rate: RateLimit,
) -> impl Future<Output = End> + Send + 'a
where
    Si: Sink<Outgoing> + Unpin + Send,
    St: Stream<Item = Incoming<T>> + Unpin + Send + 'a,
    T: Deref<Target = str> + Send + 'a,
    H: Handler,
{
    let last_seen = Arc::new(AtomicU64::new(0));
    // tokio's clock (the same as std's, except in tests with paused time).
    let started = Clock::now();
    Loops {
        writer: write_loop(sink, queue, ends, last_seen.clone(), started),
        reader: read_loop(stream, handler, replies, rate, last_seen, started),
    }
}

pin_project_lite::pin_project! {
    /// A connection's writer and reader, polled in place until either ends.
    struct Loops<W, R> {
        #[pin]
        writer: W,
        #[pin]
        reader: R,
    }
}

impl<W: Future<Output = ()>, R: Future<Output = End>> Future for Loops<W, R> {
    type Output = End;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<End> {
        let this = self.project();
        if let Poll::Ready(end) = this.reader.poll(cx) {
            return Poll::Ready(end);
        }
        match this.writer.poll(cx) {
            Poll::Ready(()) => Poll::Ready(End::Gone),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Writes `first` and whatever else is already queued (up to a bound), then flushes once:
/// a busy socket costs one syscall per batch, not per frame.
async fn write_batch<S: Sink<Outgoing> + Unpin>(
    sink: &mut S,
    first: Frame,
    queue: &mut mpsc::Receiver<Frame>,
) -> Result<(), ()> {
    sink.feed(Outgoing::Frame(first)).await.map_err(|_| ())?;
    for _ in 0..256 {
        match queue.try_recv() {
            Ok(frame) => sink.feed(Outgoing::Frame(frame)).await.map_err(|_| ())?,
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
async fn write_or_give_up<S: Sink<Outgoing> + Unpin>(
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

async fn close_with<S: Sink<Outgoing> + Unpin>(sink: &mut S, code: u16, reason: &'static str) {
    let _ = sink.send(Outgoing::Close(code, reason)).await;
}

/// Drains the connection's queue (pushed frames and the reader's replies) to the peer;
/// pings; enforces the idle timeout; closes on lag, revocation or shutdown.
async fn write_loop<S: Sink<Outgoing> + Unpin>(
    sink: &mut S,
    mut queue: mpsc::Receiver<Frame>,
    ends: Ends,
    last_seen: Arc<AtomicU64>,
    started: Clock,
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
                let (code, reason) = close_reason.get().copied().unwrap_or(REVOKED);
                // A lagging connection's full queue is what it could not take: it catches up
                // with `since` instead. Otherwise what was queued before the end (e.g. the
                // notice saying why) goes first.
                if (code, reason) != LAGGING {
                    while let Ok(frame) = queue.try_recv() {
                        if sink.feed(Outgoing::Frame(frame)).await.is_err() {
                            return;
                        }
                    }
                }
                close_with(sink, code, reason).await;
                return;
            }
            frame = queue.recv() => match frame {
                Some(frame) => {
                    let write = write_or_give_up(sink, frame, &mut queue, &ended, &shutdown);
                    if Box::pin(write).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            _ = ping.tick() => {
                let seen = Duration::from_millis(last_seen.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(seen) > IDLE_TIMEOUT {
                    close_with(sink, close::IDLE, "idle timeout").await;
                    return;
                }
                if sink.send(Outgoing::Ping).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// How the loops stopped, and so how the connection ends ([`finish`]).
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The peer sent a Close frame: it is answered (RFC 6455 §5.5.1) with the same code.
    Closed,
    /// A message over the size limit: the stream cannot go on after it; close 1009.
    TooLarge,
    /// The connection failed, or the writer ended it.
    Gone,
}

/// Ends the connection as the reader's end asks: answers a peer's Close frame, or closes
/// 1009 after a message over the limit (a client that saw only a dropped connection would
/// reconnect and send it again, forever).
pub async fn finish<S: Sink<Outgoing> + Unpin>(sink: &mut S, end: End) {
    match end {
        // The transport queued the answer (the same code) when the frame came in; flushing
        // sends it. (Sending a Close now would be refused: the peer closed.)
        End::Closed => {
            let _ = sink.flush().await;
        }
        End::TooLarge => {
            let reason = "message too big: frames are at most 64 KiB";
            close_with(sink, close::TOO_LARGE, reason).await;
        }
        End::Gone => {}
    }
}

async fn read_loop<St, T, H>(
    mut stream: St,
    handler: &mut H,
    replies: mpsc::Sender<Frame>,
    rate: RateLimit,
    last_seen: Arc<AtomicU64>,
    started: Clock,
) -> End
where
    St: Stream<Item = Incoming<T>> + Unpin,
    T: Deref<Target = str>,
    H: Handler,
{
    let mut bucket = TokenBucket::new(rate.per_sec, rate.burst);
    loop {
        let message = match stream.next().await {
            Some(message) => message,
            None => return End::Gone,
        };
        last_seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let incoming = match message {
            Incoming::Text(text) if bucket.take() => Ok(text),
            Incoming::Text(_) => Err(ServerFrame::Error {
                code: "rate_limited",
                message: "too many frames; slow down".into(),
                client_msg_id: None,
                retry_after: Some(1),
            }),
            Incoming::Binary => Err(ServerFrame::Error {
                code: "binary_not_supported",
                message: "frames are JSON text".into(),
                client_msg_id: None,
                retry_after: None,
            }),
            Incoming::Control => continue,
            Incoming::Close => return End::Closed,
            Incoming::TooLarge => return End::TooLarge,
            Incoming::Failed => return End::Gone,
        };
        // Handling a frame and queueing the replies is one boxed step: the loop itself (what
        // a socket costs while it waits for the next frame) stays small.
        if Box::pin(respond(handler, incoming, &replies)).await.is_err() {
            return End::Gone;
        }
    }
}

/// Acts on a text frame (or refuses one with `refusal`) and queues the replies for the
/// sender; an error means the connection is gone.
async fn respond<T: Deref<Target = str>, H: Handler>(
    handler: &mut H,
    incoming: Result<T, ServerFrame>,
    replies: &mpsc::Sender<Frame>,
) -> Result<(), ()> {
    let frames = match incoming {
        Ok(text) => handler.handle(&text).await,
        Err(refusal) => vec![refusal],
    };
    for frame in frames {
        replies.send(encode(&frame)).await.map_err(|_| ())?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use futures::channel::mpsc as channel;
    use tenants::TenantId;

    use super::*;
    use crate::realtime::hub::{Hub, Peer};

    /// Answers `ping` with `pong` and anything else with an error naming it.
    struct Echo;

    impl Handler for Echo {
        async fn handle(&mut self, text: &str) -> Vec<ServerFrame> {
            match text {
                "ping" => vec![ServerFrame::Pong],
                other => vec![ServerFrame::Error {
                    code: "unknown",
                    message: other.to_owned(),
                    client_msg_id: None,
                    retry_after: None,
                }],
            }
        }
    }

    /// A connection to `hub` driven through channels: what the test sends is what a peer
    /// sent; what comes out of `outgoing` is what the peer would receive.
    struct TestPeer {
        incoming: channel::UnboundedSender<Incoming<String>>,
        outgoing: channel::UnboundedReceiver<Outgoing>,
        task: tokio::task::JoinHandle<()>,
    }

    fn connect(hub: &Arc<Hub>, rate: RateLimit) -> TestPeer {
        let (incoming, stream) = channel::unbounded();
        let (sink, outgoing) = channel::unbounded();
        let (registration, queue) = hub.register(TenantId(1), Peer::Visitor(7), None, None);
        let ends = Ends::of(&registration, hub.shutdown_token());
        let task = tokio::spawn(async move {
            let mut sink = sink;
            let replies = registration.replies.clone();
            let end = run(&mut sink, stream, queue, replies, ends, &mut Echo, rate).await;
            finish(&mut sink, end).await;
            drop(registration);
        });
        TestPeer { incoming, outgoing, task }
    }

    const GENEROUS: RateLimit = RateLimit { per_sec: 100.0, burst: 100.0 };

    async fn next(peer: &mut TestPeer) -> Outgoing {
        tokio::time::timeout(Duration::from_secs(5), peer.outgoing.next())
            .await
            .expect("the connection sends something")
            .expect("the connection is open")
    }

    fn text(out: Outgoing) -> String {
        match out {
            Outgoing::Frame(frame) => frame.as_str().to_owned(),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn replies_pushes_and_refusals_reach_the_peer() {
        let hub = Arc::new(Hub::default());
        let mut peer = connect(&hub, GENEROUS);
        peer.incoming.unbounded_send(Incoming::Text("ping".into())).unwrap();
        assert_eq!(text(next(&mut peer).await), r#"{"type":"pong"}"#);

        hub.to_visitor(TenantId(1), 7, &encode(&ServerFrame::Pong));
        assert_eq!(text(next(&mut peer).await), r#"{"type":"pong"}"#);

        peer.incoming.unbounded_send(Incoming::Binary).unwrap();
        assert!(text(next(&mut peer).await).contains("binary_not_supported"));
        peer.incoming.unbounded_send(Incoming::Control).unwrap();
        peer.incoming.unbounded_send(Incoming::Text("hello".into())).unwrap();
        assert!(text(next(&mut peer).await).contains(r#""message":"hello""#));
    }

    #[tokio::test]
    async fn a_flooding_peer_is_told_to_slow_down() {
        let hub = Arc::new(Hub::default());
        let mut peer = connect(&hub, RateLimit { per_sec: 0.001, burst: 2.0 });
        for _ in 0..3 {
            peer.incoming.unbounded_send(Incoming::Text("ping".into())).unwrap();
        }
        assert!(text(next(&mut peer).await).contains("pong"));
        assert!(text(next(&mut peer).await).contains("pong"));
        let third = text(next(&mut peer).await);
        assert!(third.contains("rate_limited") && third.contains(r#""retry_after":1"#), "{third}");
    }

    #[tokio::test]
    async fn the_server_ends_connections_with_their_close_codes() {
        // Revoked: what was queued before the end goes out first, then 4003.
        let hub = Arc::new(Hub::default());
        let mut peer = connect(&hub, GENEROUS);
        hub.to_visitor(TenantId(1), 7, &encode(&ServerFrame::Pong));
        hub.revoke(TenantId(1), Peer::Visitor(7));
        assert!(text(next(&mut peer).await).contains("pong"));
        assert!(matches!(next(&mut peer).await, Outgoing::Close(4003, _)));
        peer.task.await.unwrap();
        assert_eq!(hub.connections_of(TenantId(1), Peer::Visitor(7)), 0, "unregistered");

        // Shutting down: 1012.
        let mut peer = connect(&hub, GENEROUS);
        hub.shutdown_token().cancel();
        assert!(matches!(next(&mut peer).await, Outgoing::Close(close::RESTART, _)));
        peer.task.await.unwrap();
    }

    #[tokio::test]
    async fn the_peer_ends_connections_too() {
        let hub = Arc::new(Hub::default());
        // Over the size limit: 1009, so the client does not send it again.
        let mut peer = connect(&hub, GENEROUS);
        peer.incoming.unbounded_send(Incoming::TooLarge).unwrap();
        assert!(matches!(next(&mut peer).await, Outgoing::Close(close::TOO_LARGE, _)));
        peer.task.await.unwrap();

        // A Close frame (answered by the transport) or a dropped stream: the loops end.
        let peer = connect(&hub, GENEROUS);
        peer.incoming.unbounded_send(Incoming::Close).unwrap();
        tokio::time::timeout(Duration::from_secs(5), peer.task).await.unwrap().unwrap();
        let peer = connect(&hub, GENEROUS);
        drop(peer.incoming);
        tokio::time::timeout(Duration::from_secs(5), peer.task).await.unwrap().unwrap();
        assert_eq!(hub.connections_of(TenantId(1), Peer::Visitor(7)), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_closed() {
        let hub = Arc::new(Hub::default());
        let mut peer = connect(&hub, GENEROUS);
        // Paused time moves on whenever everything waits: no timeout here.
        assert!(matches!(peer.outgoing.next().await, Some(Outgoing::Ping)));
        loop {
            match peer.outgoing.next().await.expect("open until it closes") {
                Outgoing::Ping => {}
                Outgoing::Close(code, _) => {
                    assert_eq!(code, close::IDLE);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

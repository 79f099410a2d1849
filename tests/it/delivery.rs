//! Zero-loss delivery: many messages while sockets on both sides are dropped at random.
//! Every acknowledged message must reach every agent consumer exactly once after dedupe by
//! id, and each consumer must see new ids in increasing order.

use crate::helpers::Fetch;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{helpers::*, ws_client::*};

/// A small deterministic generator (the test must not depend on luck to be meaningful).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

const VISITORS: usize = 10;
const PER_VISITOR: usize = 2_000;
const WINDOW: usize = 32;

#[derive(Default)]
struct AgentView {
    seen: HashSet<i64>,
    last_new: i64,
    out_of_order: usize,
    reconnects: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_messages_with_random_disconnects_lose_nothing() {
    let app = spawn_with(|c| {
        c.ws_rate_per_sec = 100_000;
        c.ws_rate_burst = 100_000;
    })
    .await;
    let m = app.signup("Zero Loss").await;
    let stop = Arc::new(AtomicBool::new(false));

    // Two agent consumers that drop their socket now and then and reconnect with `since`.
    let views: Vec<Arc<Mutex<AgentView>>> = (0..2).map(|_| Arc::default()).collect();
    let mut agent_tasks = Vec::new();
    for (n, view) in views.iter().enumerate() {
        let (app_url, token, view, stop) =
            (app.url.clone(), m.token.clone(), view.clone(), stop.clone());
        let app = TestAppRef { url: app_url };
        agent_tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
            while !stop.load(Ordering::Relaxed) {
                let since = view.lock().unwrap().seen.iter().max().copied().unwrap_or(0);
                let ticket = app.agent_ticket(&token).await;
                let Ok(mut ws) =
                    Ws::connect(&app.ws(&format!("/ws/agent?ticket={ticket}&since={since}"))).await
                else {
                    continue;
                };
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let frame =
                        match tokio::time::timeout(Duration::from_millis(200), ws.socket.next())
                            .await
                        {
                            Ok(Some(Ok(Message::Text(t)))) => {
                                serde_json::from_str::<Value>(&t).unwrap()
                            }
                            Ok(Some(Ok(_))) | Err(_) => continue,
                            Ok(None) | Ok(Some(Err(_))) => break,
                        };
                    if frame["type"] == "message" && frame["sender"]["kind"] == "visitor" {
                        let id = frame["id"].as_i64().unwrap();
                        let mut v = view.lock().unwrap();
                        if v.seen.insert(id) {
                            if id < v.last_new {
                                v.out_of_order += 1;
                            }
                            v.last_new = v.last_new.max(id);
                        }
                    }
                    if rng.one_in(1_500) {
                        view.lock().unwrap().reconnects += 1;
                        break; // drop the socket without a close frame
                    }
                }
            }
        }));
    }
    // Let the agents connect so conversations are routed (no offline notices needed).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let mut visitor_tasks = Vec::new();
    for n in 0..VISITORS {
        let v = visitor_session(&app, &m.ent_id).await;
        let app = TestAppRef { url: app.url.clone() };
        visitor_tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(0xD1B5_4A32_D192_ED03 ^ (n as u64 + 7));
            let mut pending: BTreeMap<usize, String> = BTreeMap::new();
            let mut acked: HashMap<String, i64> = HashMap::new();
            let mut next = 0;
            let mut reconnects = 0;
            while acked.len() < PER_VISITOR {
                let ticket = app.visitor_ticket(&v.token).await;
                let Ok(mut ws) = Ws::connect(&app.ws(&format!("/ws/visitor?ticket={ticket}"))).await else { continue };
                // Unacknowledged messages go again, with the same client_msg_id.
                for (i, id) in &pending {
                    let frame = json!({"type": "send", "client_msg_id": id, "body": format!("m{n}-{i}")});
                    if ws.socket.send(Message::text(frame.to_string())).await.is_err() {
                        break;
                    }
                }
                'conn: loop {
                    while pending.len() < WINDOW && next < PER_VISITOR {
                        let id = format!("v{n}-{next}");
                        let frame = json!({"type": "send", "client_msg_id": id, "body": format!("m{n}-{next}")});
                        pending.insert(next, id);
                        next += 1;
                        if ws.socket.send(Message::text(frame.to_string())).await.is_err() {
                            break 'conn;
                        }
                    }
                    if acked.len() == PER_VISITOR {
                        break;
                    }
                    let frame = match tokio::time::timeout(Duration::from_secs(10), ws.socket.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t).unwrap(),
                        Ok(Some(Ok(_))) => continue,
                        _ => break,
                    };
                    if frame["type"] == "ack" {
                        let cid = frame["client_msg_id"].as_str().unwrap().to_owned();
                        let index: usize = cid.rsplit('-').next().unwrap().parse().unwrap();
                        pending.remove(&index);
                        if let Some(previous) = acked.insert(cid, frame["id"].as_i64().unwrap()) {
                            assert_eq!(previous, frame["id"].as_i64().unwrap(), "a resend must get the original id");
                        }
                    } else if frame["type"] == "error" {
                        panic!("unexpected error frame: {frame}");
                    }
                    if rng.one_in(400) {
                        reconnects += 1;
                        break; // vanish mid-stream, acks in flight are lost
                    }
                }
            }
            (acked, reconnects)
        }));
    }
    let mut acked_ids = HashSet::new();
    let mut visitor_reconnects = 0;
    for task in visitor_tasks {
        let (acked, reconnects) = task.await.unwrap();
        visitor_reconnects += reconnects;
        acked_ids.extend(acked.into_values());
    }
    let send_time = started.elapsed();
    assert_eq!(
        acked_ids.len(),
        VISITORS * PER_VISITOR,
        "every message acknowledged once, with a distinct id"
    );

    // Wait for both consumers to have everything.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = views.iter().all(|v| acked_ids.is_subset(&v.lock().unwrap().seen));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in agent_tasks {
        let _ = task.await;
    }
    for (n, view) in views.iter().enumerate() {
        let v = view.lock().unwrap();
        let missing = acked_ids.difference(&v.seen).count();
        let unknown = v.seen.difference(&acked_ids).count();
        assert_eq!((missing, unknown), (0, 0), "agent consumer {n}: missing / unknown messages");
        assert_eq!(v.out_of_order, 0, "agent consumer {n} saw new ids out of order");
        println!(
            "delivery: consumer {n} saw all {} messages, {} reconnects",
            v.seen.len(),
            v.reconnects
        );
    }
    println!(
        "delivery: {} messages acked in {send_time:.1?} with {visitor_reconnects} visitor reconnects; 0 lost, 0 duplicated ids",
        acked_ids.len()
    );
    let stored = stored_visitor_message_ids(app.pool(), &m.ent_id).await.len();
    assert_eq!(stored, VISITORS * PER_VISITOR, "no duplicate rows from resends");
}

/// The parts of a `TestApp` a spawned task needs.
struct TestAppRef {
    url: String,
}

impl TestAppRef {
    fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.url.trim_start_matches("http://"))
    }

    async fn visitor_ticket(&self, token: &str) -> String {
        let res = client()
            .post(format!("{}/api/v1/visitor/ticket", self.url))
            .bearer_auth(token)
            .sent()
            .await;
        res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
    }

    async fn agent_ticket(&self, token: &str) -> String {
        let res =
            client().post(format!("{}/api/v1/ws/ticket", self.url)).bearer_auth(token).sent().await;
        res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
    }
}

/// The sum and count of a histogram in /metrics text.
fn histogram_totals(text: &str, name: &str) -> (f64, f64) {
    let value = |series: String| {
        text.lines()
            .find(|l| l.starts_with(&series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (value(format!("{name}_sum ")), value(format!("{name}_count ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_merchants_share_commits_and_each_keeps_its_own_messages() {
    // One shard writer: every merchant's sends meet in its batches.
    let app = spawn_with(|c| c.writer_shards = 1).await;
    let before = client().get(app.url("/metrics")).text_body().await;
    let before = histogram_totals(&before, "kefu_message_batch_tenants");
    let names: Vec<String> = (0..6).map(|i| format!("Shard {i}")).collect();
    let merchants = futures::future::join_all(names.iter().map(|n| app.signup(n))).await;
    let per_visitor = 120;
    let mut senders = Vec::new();
    for m in &merchants {
        for _ in 0..2 {
            let v = visitor_session(&app, &m.ent_id).await;
            let mut ws = Ws::visitor(&app, &v.token, "").await;
            senders.push(tokio::spawn(async move {
                // All at once, each id twice (the second is a resend: same id back).
                for i in 0..per_visitor {
                    let frame = json!({"type": "send", "client_msg_id": format!("m-{i}"), "body": format!("message {i}")});
                    ws.socket.send(Message::text(frame.to_string())).await.unwrap();
                    ws.socket.send(Message::text(frame.to_string())).await.unwrap();
                }
                let mut acked: HashMap<String, i64> = HashMap::new();
                let mut duplicates = 0;
                while acked.len() < per_visitor || duplicates < per_visitor {
                    let f = ws.expect("ack").await;
                    let id = f["id"].as_i64().unwrap();
                    let cid = f["client_msg_id"].as_str().unwrap().to_owned();
                    if let Some(first) = acked.insert(cid, id) {
                        assert_eq!(first, id, "a resend gets the original id");
                        duplicates += 1;
                    }
                }
                acked.into_values().collect::<Vec<i64>>()
            }));
        }
    }
    let mut acked_by_merchant: Vec<Vec<i64>> = Vec::new();
    for pair in senders.chunks_mut(2) {
        let mut ids = Vec::new();
        for sender in pair {
            ids.extend(sender.await.unwrap());
        }
        ids.sort_unstable();
        acked_by_merchant.push(ids);
    }
    for (m, acked) in merchants.iter().zip(&acked_by_merchant) {
        assert_eq!(acked.len(), 2 * per_visitor);
        let stored = stored_visitor_message_ids(app.pool(), &m.ent_id).await;
        assert_eq!(&stored, acked, "{}: exactly its acknowledged messages, once each", m.ent_id);
    }
    let after = client().get(app.url("/metrics")).text_body().await;
    let after = histogram_totals(&after, "kefu_message_batch_tenants");
    let (tenants, commits) = (after.0 - before.0, after.1 - before.1);
    assert!(
        commits >= 1.0 && tenants > commits,
        "some commits carried several merchants: {tenants} tenant-batches in {commits} commits"
    );
}

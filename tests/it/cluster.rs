//! Several kefu nodes on one database and a real `nats-server`: messages, presence, cache
//! invalidations and revocations cross nodes; a broker outage is survived; a node killed
//! mid-stream loses no acknowledged message.
//!
//! Without nats-server these tests say so and pass, unless `KEFU_REQUIRE_NATS=1` (`.ci/run`
//! sets it after installing the Debian package).

use crate::helpers::Fetch;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use kefu::db::pool_options;
use secrecy::SecretString;
use serde_json::{Value, json};
use tenants::TenantMigrator;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    helpers::*,
    nodes::{Nats, Server, free_port},
    outage::send_until_all_acked,
    ws_client::*,
};

/// Two in-process nodes on one fresh database and the bus at `nats_url`.
async fn two_nodes(nats_url: &str) -> (TestApp, TestApp) {
    let (_, options) = fresh_database().await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = test_config();
        config.nats_url = Some(SecretString::from(nats_url.to_owned()));
        config.bus_heartbeat_secs = 1;
        let pool =
            pool_options(config.db_max_connections).connect_with(options.clone()).await.unwrap();
        nodes.push(spawn_on(config, pool, options.clone(), TenantMigrator::embedded()).await);
    }
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}

/// A visitor socket on `node` once that node knows an agent is online (on whichever node).
async fn visitor_seeing_the_team_online(node: &TestApp, token: &str) -> Ws {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ws = Ws::visitor(node, token, "").await;
        ws.expect("hello").await;
        if ws.expect("presence").await["online"] == true {
            return ws;
        }
        assert!(Instant::now() < deadline, "the node never heard that the agent is online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready_status(node: &TestApp, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = client().get(node.url("/readyz")).send().await.unwrap();
        if res.status() == want {
            return res.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/readyz never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_message_from(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |f| f["type"] == "message" && f["sender"]["kind"] == kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_messages_presence_caches_and_revocations() {
    let Some(mut nats) = Nats::start().await else { return };
    let (a, b) = two_nodes(&nats.url).await;
    let m = a.signup("Two Nodes").await;

    // A ticket opens one socket on one node: redeemed on A, it is refused on B.
    let ticket = agent_ticket(&a, &m.token).await;
    let first = Ws::connect(&ws_url(&a, &format!("/ws/agent?ticket={ticket}"))).await;
    assert!(first.is_ok());
    let again = Ws::connect(&ws_url(&b, &format!("/ws/agent?ticket={ticket}"))).await;
    assert!(again.is_err(), "a ticket used on one node is refused on another");
    drop(first);

    // The agent is on B, the visitor on A: A routes to an agent it only knows from the bus.
    let mut agent = Ws::agent(&b, &m.token, "").await;
    agent.expect("hello").await;
    let v = visitor_session(&a, &m.ent_id).await;
    let mut visitor = visitor_seeing_the_team_online(&a, &v.token).await;
    visitor.send_text("v-1", "hello from node A", None).await;
    let ack = visitor.expect("ack").await;
    let conversation = ack["conversation_id"].as_i64().unwrap();
    let created = agent
        .expect_where("conversation created", |f| {
            f["type"] == "conversation" && f["event"] == "created"
        })
        .await;
    assert_eq!(created["conversation"]["status"], "open", "assigned to the agent on node B");
    let message = agent.expect_where("the visitor's message", is_message_from("visitor")).await;
    assert_eq!((&message["id"], &message["body"]), (&ack["id"], &json!("hello from node A")));
    let detail = b.get_json(&m.token, &format!("/api/v1/visitors/{}", v.id)).await;
    assert_eq!(detail["online"], true, "B knows the visitor connected to A is online");

    agent.send_text("a-1", "hello from node B", Some(conversation)).await;
    let reply = visitor.expect_where("the agent's reply", is_message_from("agent")).await;
    assert_eq!(reply["body"], "hello from node B");

    // A cache on A (automation settings, loaded by the first message) is dropped when B
    // changes what it holds: an auto-reply created on B answers on A.
    let res = client()
        .post(b.url("/api/v1/auto_replies"))
        .bearer_auth(&m.token)
        .json(&json!({"keyword": "price", "reply": "It is 42."}))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    // The invalidation crosses the bus in milliseconds; a loaded machine may take longer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempt = 0;
    let bot = loop {
        attempt += 1;
        visitor.send_text(&format!("v-2-{attempt}"), "price", Some(conversation)).await;
        let reply = loop {
            match tokio::time::timeout(Duration::from_secs(1), visitor.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    if is_message_from("bot")(&f) {
                        break Some(f);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break None,
            }
        };
        if let Some(reply) = reply {
            break reply;
        }
        assert!(Instant::now() < deadline, "node A never answered with the auto-reply made on B");
    };
    assert_eq!(bot["body"], "It is 42.");

    // Blocking the visitor on B closes their socket on A.
    let res = client()
        .post(b.url("/api/v1/blacklist"))
        .bearer_auth(&m.token)
        .json(&json!({"visitor_id": v.id}))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(visitor.expect_close().await, 4003, "revoked across nodes");

    // A session ended on B (a logout) closes its socket on A.
    let laptop = crate::team::login(&a, &m.email, PASSWORD).await;
    let mut on_a = Ws::agent(&a, &laptop, "").await;
    on_a.expect("hello").await;
    let res = client().post(b.url("/api/v1/logout")).bearer_auth(&laptop).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(on_a.expect_close().await, 4003, "the session ended across nodes");

    // The broker goes away: both nodes say so in /readyz, reconnect by themselves when it is
    // back, and messages cross again.
    nats.kill();
    let status = wait_ready_status(&a, 503).await;
    assert_eq!(status["error"]["code"], "broker_unreachable", "{status}");
    wait_ready_status(&b, 503).await;
    nats.restart().await;
    wait_ready_status(&a, 200).await;
    wait_ready_status(&b, 200).await;
    // Events were lost during the outage: each node sees the gap at the other's next
    // heartbeat and tells its sockets to resync. Let that happen before new sockets open
    // (and cope with it if it comes late).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut agent = Ws::agent(&b, &m.token, "").await;
    agent.expect("hello").await;
    let v2 = visitor_session(&a, &m.ent_id).await;
    let mut visitor = visitor_seeing_the_team_online(&a, &v2.token).await;
    visitor.send_text("v2-1", "after the outage", None).await;
    let ack = visitor.expect("ack").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut since, mut resync_from) = (0i64, None::<i64>);
    'found: loop {
        while let Some(f) = agent.next().await {
            match f["type"].as_str() {
                Some("message") if f["id"] == ack["id"] => break 'found,
                Some("message") => since = since.max(f["id"].as_i64().unwrap()),
                Some("resync") => resync_from = f["since"].as_i64(),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "the message after the outage never reached node B");
        let from = resync_from.take().map_or(since, |r| r.min(since));
        agent = Ws::agent(&b, &m.token, &format!("&since={from}")).await;
    }
}

/// Follows the tenant's messages as an agent, reconnecting (to the next node when one is
/// gone) with `since` — lowered by any `resync` frame — until `stop`. Visitor message ids
/// seen go into `seen`; returns how many connections it made.
async fn follow_as_agent(
    bases: Vec<String>,
    token: String,
    seen: Arc<Mutex<HashSet<i64>>>,
    stop: CancellationToken,
) -> usize {
    let (mut node, mut since, mut resync_from, mut connections) = (0, 0i64, None::<i64>, 0);
    while !stop.is_cancelled() {
        let base = &bases[node % bases.len()];
        let ticket = match client()
            .post(format!("{base}/api/v1/ws/ticket"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(res) if res.status().is_success() => {
                res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
            }
            _ => {
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let from = resync_from.take().map_or(since, |r: i64| r.min(since));
        let host = base.trim_start_matches("http://");
        let Ok(mut ws) =
            Ws::connect(&format!("ws://{host}/ws/agent?ticket={ticket}&since={from}")).await
        else {
            node += 1;
            continue;
        };
        connections += 1;
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => return connections,
                frame = ws.socket.next() => frame,
            };
            let Some(Ok(frame)) = frame else { break };
            let Message::Text(text) = frame else { continue };
            let f: Value = serde_json::from_str(&text).unwrap();
            match f["type"].as_str() {
                Some("message") => {
                    let id = f["id"].as_i64().unwrap();
                    since = since.max(id);
                    if f["sender"]["kind"] == "visitor" {
                        seen.lock().unwrap().insert(id);
                    }
                }
                Some("sync_done") => since = since.max(f["last_id"].as_i64().unwrap()),
                Some("resync") => {
                    let at = f["since"].as_i64().unwrap();
                    resync_from = Some(resync_from.map_or(at, |r| r.min(at)));
                }
                _ => {}
            }
        }
    }
    connections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_loses_no_acknowledged_message() {
    let Some(nats) = Nats::start().await else { return };
    let (_, options) = fresh_database().await;
    let env = [("KEFU_NATS_URL", nats.url.as_str()), ("KEFU_BUS_HEARTBEAT_SECS", "1")];
    let mut a = Server::new(free_port(), &options, &env);
    let mut b = Server::new(free_port(), &options, &env);
    a.start();
    b.start();
    a.wait_ready().await;
    b.wait_ready().await;
    let (ent_id, token) = a.signup("Killed Node").await;
    let (a_first, b_first) =
        (vec![a.url.clone(), b.url.clone()], vec![b.url.clone(), a.url.clone()]);

    // The agent has a tab on each node; four visitors, two on each node.
    let stop = CancellationToken::new();
    let watchers: Vec<_> = [a_first.clone(), b_first.clone()]
        .into_iter()
        .map(|bases| {
            let seen = Arc::new(Mutex::new(HashSet::new()));
            let task =
                tokio::spawn(follow_as_agent(bases, token.clone(), seen.clone(), stop.clone()));
            (seen, task)
        })
        .collect();
    let per_visitor = 400;
    let mut senders = Vec::new();
    for i in 0..4 {
        let visitor_token = a.visitor_token(&ent_id).await;
        let bases = if i % 2 == 0 { a_first.clone() } else { b_first.clone() };
        senders.push(tokio::spawn(async move {
            send_until_all_acked(&bases, &visitor_token, per_visitor, Duration::from_secs(120))
                .await
        }));
    }

    // Mid-stream: once a quarter of the messages went through.
    let deadline = Instant::now() + Duration::from_secs(60);
    while watchers[1].0.lock().unwrap().len() < per_visitor {
        assert!(Instant::now() < deadline, "traffic never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = a.stop(nix::sys::signal::Signal::SIGKILL).await;
    assert!(!killed.success());

    let mut acked = HashSet::new();
    for sender in senders {
        let (ids, _) = sender.await.unwrap();
        assert_eq!(ids.len(), per_visitor);
        acked.extend(ids.into_values());
    }
    // Every acknowledged message reaches both of the agent's tabs: live over the bus, or in
    // the catch-up after a reconnect or a resync.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (seen, _) in &watchers {
        while !acked.is_subset(&seen.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "{} acknowledged messages never reached an agent tab",
                acked.difference(&seen.lock().unwrap()).count()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.cancel();
    let mut connections = Vec::new();
    for (_, task) in watchers {
        connections.push(task.await.unwrap());
    }
    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
    let mut stored = stored_visitor_message_ids(&pool, &ent_id).await;
    let mut acked: Vec<i64> = acked.into_iter().collect();
    acked.sort_unstable();
    stored.sort_unstable();
    assert_eq!(stored, acked, "exactly the acknowledged messages are stored");
    println!(
        "cluster: {} messages acked by two nodes, one killed mid-stream; 0 lost; agent tabs connected {connections:?} times",
        acked.len()
    );
}

//! Failures under load: PostgreSQL restarted mid-stream, the kefu server stopped mid-stream
//! (gracefully and with SIGKILL). Nothing acknowledged may be lost; the server recovers by
//! itself.

use crate::helpers::Fetch;
use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use futures::{SinkExt as _, StreamExt as _};
use kefu::db::{EmbeddedOptions, EmbeddedPostgres, PLATFORM_MIGRATOR, pool_options};
use serde_json::{Value, json};
use tenants::TenantMigrator;
use tokio_tungstenite::tungstenite::Message;

use crate::{helpers::*, nodes::Server, ws_client::*};

/// Sends `total` messages as one visitor, resending whatever is not acknowledged (after a
/// reconnect, or after an `unavailable` error) until everything is. Returns client id → id
/// and the error codes seen.
/// Each (re)connection goes to the next of `bases` in turn (nodes of one deployment).
pub async fn send_until_all_acked(
    bases: &[String],
    token: &str,
    total: usize,
    budget: Duration,
) -> (HashMap<String, i64>, Vec<String>) {
    let mut attempt = 0;
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut pending: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut next = 0;
    let deadline = Instant::now() + budget;
    while acked.len() < total {
        assert!(
            Instant::now() < deadline,
            "gave up with {} of {total} acked; errors {errors:?}",
            acked.len()
        );
        let base = &bases[attempt % bases.len()];
        attempt += 1;
        let ws_base = format!("ws://{}", base.trim_start_matches("http://"));
        let Ok(res) =
            client().post(format!("{base}/api/v1/visitor/ticket")).bearer_auth(token).send().await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !res.status().is_success() {
            errors.push(format!("ticket {}", res.status()));
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned();
        let Ok(mut ws) = Ws::connect(&format!("{ws_base}/ws/visitor?ticket={ticket}")).await else {
            continue;
        };
        let frame = |i: usize| {
            json!({"type": "send", "client_msg_id": format!("o-{i}"), "body": format!("outage {i}")}).to_string()
        };
        for i in pending.keys().copied().collect::<Vec<_>>() {
            if ws.socket.send(Message::text(frame(i))).await.is_err() {
                break;
            }
            pending.insert(i, Instant::now());
        }
        'conn: loop {
            while pending.len() < 8 && next < total {
                pending.insert(next, Instant::now());
                if ws.socket.send(Message::text(frame(next))).await.is_err() {
                    next += 1;
                    break 'conn;
                }
                next += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if acked.len() == total {
                break;
            }
            // Retry sends the server could not store, after a short pause.
            let stale: Vec<usize> = pending
                .iter()
                .filter(|(_, at)| at.elapsed() > Duration::from_millis(1500))
                .map(|(i, _)| *i)
                .collect();
            for i in stale {
                pending.insert(i, Instant::now());
                if ws.socket.send(Message::text(frame(i))).await.is_err() {
                    break 'conn;
                }
            }
            let frame =
                match tokio::time::timeout(Duration::from_millis(300), ws.socket.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t).unwrap(),
                    Ok(Some(Ok(_))) | Err(_) => continue,
                    Ok(None) | Ok(Some(Err(_))) => break,
                };
            match frame["type"].as_str() {
                Some("ack") => {
                    let cid = frame["client_msg_id"].as_str().unwrap().to_owned();
                    pending.remove(&cid[2..].parse::<usize>().unwrap());
                    let id = frame["id"].as_i64().unwrap();
                    if let Some(previous) = acked.insert(cid, id) {
                        assert_eq!(previous, id, "a resend gets the original id");
                    }
                }
                Some("error") => {
                    let code = frame["code"].as_str().unwrap().to_owned();
                    assert_eq!(code, "unavailable", "only storage errors are expected: {frame}");
                    assert!(frame["client_msg_id"].is_string(), "the failed send is named");
                    errors.push(code);
                }
                _ => {}
            }
        }
    }
    (acked, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_stream_loses_nothing_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("pg");
    let start = {
        let cluster = cluster.clone();
        move || EmbeddedPostgres::start(&cluster, EmbeddedOptions { unsafe_fast: true }).unwrap()
    };
    let pg = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    pg.ensure_database("outage").await.unwrap();
    let options = pg.connect_options("outage");
    let pool = pool_options(8).connect_with(options.clone()).await.unwrap();
    PLATFORM_MIGRATOR.run(&pool).await.unwrap();
    let app = spawn_on(test_config(), pool, options, TenantMigrator::embedded()).await;
    let m = app.signup("Outage").await;
    let v = visitor_session(&app, &m.ent_id).await;

    let total = 400;
    let sender = tokio::spawn({
        let (url, token) = (app.url.clone(), v.token.clone());
        async move { send_until_all_acked(&[url], &token, total, Duration::from_secs(90)).await }
    });
    // Let traffic flow, then take the database away for a while and bring it back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop(true).unwrap();
        pg
    })
    .await
    .unwrap();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let res = client().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503, "not ready while the database is down");
    let code = error_code(res).await;
    assert!(matches!(code.as_str(), "database_unreachable" | "database_timeout"), "{code}");
    drop(pg);
    let pg = tokio::task::spawn_blocking(start).await.unwrap();
    let outage = down_at.elapsed();

    let (acked, errors) = sender.await.unwrap();
    assert_eq!(acked.len(), total);
    assert!(!errors.is_empty(), "sends during the outage were refused, not acknowledged");
    // Every acknowledged message is in the database, once.
    let stored = stored_visitor_message_ids(app.pool(), &m.ent_id).await;
    let mut acked_ids: Vec<i64> = acked.values().copied().collect();
    acked_ids.sort_unstable();
    assert_eq!(stored, acked_ids, "exactly the acknowledged messages are stored");
    assert_eq!(client().get(app.url("/readyz")).send().await.unwrap().status(), 200, "recovered");
    println!(
        "outage: database down {outage:.1?}; {total} messages acked, {} refused sends retried, 0 lost",
        errors.len()
    );
    tokio::task::spawn_blocking(move || pg.stop_immediately()).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_stream_gracefully_or_killed_loses_nothing() {
    let (_, options) = fresh_database().await;
    let port = crate::nodes::free_port();
    let mut server = Server::new(port, &options, &[]);
    server.start();
    server.wait_ready().await;
    let (ent_id, owner_token) = server.signup("Restart").await;
    let token = server.visitor_token(&ent_id).await;

    let total = 600;
    let sender = tokio::spawn({
        let (url, token) = (server.url.clone(), token.clone());
        async move { send_until_all_acked(&[url], &token, total, Duration::from_secs(120)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let graceful = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(graceful.success(), "SIGTERM drains and exits 0: {graceful:?}");
    server.start();
    server.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = server.stop(nix::sys::signal::Signal::SIGKILL).await;
    assert!(!killed.success());
    server.start();
    server.wait_ready().await;

    let (acked, _) = sender.await.unwrap();
    assert_eq!(acked.len(), total);
    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
    let stored = stored_visitor_message_ids(&pool, &ent_id).await;
    let mut acked_ids: Vec<i64> = acked.values().copied().collect();
    acked_ids.sort_unstable();
    assert_eq!(
        stored, acked_ids,
        "every acknowledged message survived both stops, and nothing else was stored"
    );

    // An agent catching up from the beginning after the restarts sees them all.
    let ticket: Value = client()
        .post(format!("{}/api/v1/ws/ticket", server.url))
        .bearer_auth(&owner_token)
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let mut agent = Ws::connect(&format!(
        "ws://127.0.0.1:{port}/ws/agent?ticket={}&since=0",
        ticket["ticket"].as_str().unwrap()
    ))
    .await
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    loop {
        let f = agent.next().await.expect("replay until sync_done");
        if f["type"] == "message" && f["sender"]["kind"] == "visitor" {
            seen.insert(f["id"].as_i64().unwrap());
        }
        if f["type"] == "sync_done" {
            break;
        }
    }
    assert_eq!(seen.len(), total);
    println!(
        "restarts: {total} messages acked across a SIGTERM and a SIGKILL of the server; 0 lost"
    );
}

//! Outgoing webhooks against a local receiver: every event, signed as Stripe signs; the
//! durable queue with backoff, giving up, and surviving a restart; and the guard that keeps
//! deliveries out of the platform's network.

use crate::helpers::Fetch;
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU16, Ordering},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

/// What an endpoint got: headers and body of each request.
type Got = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// An endpoint that records what it gets and answers with a status the test sets.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Got,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hooks/kefu", listener.local_addr().unwrap().port());
        let r = Receiver { url, got: Arc::default(), status: Arc::new(AtomicU16::new(200)) };
        let app = Router::new()
            .route(
                "/hooks/kefu",
                post(|State(r): State<Receiver>, headers: HeaderMap, body: Bytes| async move {
                    r.got.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::from_u16(r.status.load(Ordering::Relaxed)).unwrap()
                }),
            )
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    /// Waits for deliveries of `event` (at most 20 s); returns (headers, JSON) of each.
    async fn wait_for(&self, event: &str, n: usize) -> Vec<(HeaderMap, Value)> {
        self.wait_where(event, |got| got.len() >= n).await
    }

    /// Waits until the deliveries of `event` satisfy `done`.
    async fn wait_where(
        &self,
        event: &str,
        done: impl Fn(&[(HeaderMap, Value)]) -> bool,
    ) -> Vec<(HeaderMap, Value)> {
        for _ in 0..200 {
            let got: Vec<(HeaderMap, Value)> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .map(|(h, b)| (h.clone(), serde_json::from_slice::<Value>(b).unwrap()))
                .filter(|(_, v)| v["type"] == event)
                .collect();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the {event} deliveries expected did not arrive");
    }
}

async fn create_hook(app: &TestApp, m: &Merchant, url: &str, events: Value) -> reqwest::Response {
    client()
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&m.token)
        .json(&json!({ "url": url, "events": events, "description": "orders" }))
        .sent()
        .await
}

fn open_app() -> impl FnOnce(&mut kefu::config::Config) {
    |c| c.webhooks_allow_private = true
}

#[tokio::test]
async fn every_event_is_delivered_signed() {
    let app = spawn_with(open_app()).await;
    let receiver = Receiver::start().await;
    let m = app.signup("Hook Shop").await;
    let res = create_hook(&app, &m, &receiver.url, json!(kefu::webhooks::EVENTS)).await;
    assert_eq!(res.status(), 201);
    let hook: Value = res.json().await.unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    // A visitor arrives and writes; an agent answers and closes.
    let visitor = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &visitor.token, "").await;
    ws.send_text("v1", "Where is my order #1042?", None).await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent
        .send(json!({ "type": "send", "client_msg_id": "a1", "conversation_id": conversation, "kind": "text", "body": "It ships today." }))
        .await;
    agent.expect("ack").await;
    let res = app.close_conversation(&m, conversation).await;
    assert!(res.status().is_success());

    let created = receiver.wait_for("visitor.created", 1).await;
    assert_eq!(created[0].1["data"]["visitor"]["id"], visitor.id.as_str());
    let conv = receiver.wait_for("conversation.created", 1).await;
    assert_eq!(conv[0].1["data"]["conversation"]["id"], conversation);
    let body = |v: &Value| v["data"]["message"]["body"].as_str().unwrap_or_default().to_owned();
    let has = |got: &[(HeaderMap, Value)], text: &str| got.iter().any(|(_, v)| body(v) == text);
    receiver
        .wait_where("message.created", |got| {
            has(got, "Where is my order #1042?") && has(got, "It ships today.")
        })
        .await;
    receiver.wait_for("conversation.assigned", 1).await;
    receiver.wait_for("conversation.closed", 1).await;

    // Every delivery is signed with the webhook's secret, over the exact body.
    let raw = receiver.got.lock().unwrap().clone();
    assert!(raw.len() >= 6);
    for (headers, body) in &raw {
        let signature = headers["kefu-signature"].to_str().unwrap();
        billing::signature::verify(
            body,
            Some(signature),
            &[secret.as_bytes()],
            chrono::Utc::now(),
            300,
        )
        .expect("a valid signature");
        assert!(
            billing::signature::verify(
                body,
                Some(signature),
                &[b"whsec_other"],
                chrono::Utc::now(),
                300
            )
            .is_err()
        );
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["kefu-event"], event["type"].as_str().unwrap());
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    }
    // The log says so, once the worker has recorded the answers it got (the receiver may
    // have the last event a moment before its row is updated).
    let mut log = Value::Null;
    for _ in 0..50 {
        log = client()
            .get(app.url(&format!("/api/v1/webhooks/{}/deliveries", hook["id"])))
            .bearer_auth(&m.token)
            .sent()
            .await
            .json()
            .await
            .unwrap();
        if log["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rows = log["deliveries"].as_array().unwrap();
    assert!(rows.len() >= 6);
    assert!(
        rows.iter().all(|d| d["status"] == "delivered" && d["last_status_code"] == 200),
        "{log}"
    );

    // Only subscribed events go out; a disabled webhook gets nothing; the test ping goes to one.
    let res = client()
        .patch(app.url(&format!("/api/v1/webhooks/{}", hook["id"])))
        .bearer_auth(&m.token)
        .json(&json!({ "events": ["conversation.closed"] }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let before = receiver.got.lock().unwrap().len();
    let other = visitor_session(&app, &m.ent_id).await;
    let mut ws2 = Ws::visitor(&app, &other.token, "").await;
    ws2.send_text("w1", "hi", None).await;
    ws2.expect("ack").await;
    let res = client()
        .post(app.url(&format!("/api/v1/webhooks/{}/test", hook["id"])))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 202);
    let ping = receiver.wait_for("ping", 1).await;
    assert_eq!(ping[0].1["data"]["ent_id"], m.ent_id.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after: Vec<Value> = receiver.got.lock().unwrap()[before..]
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
        .collect();
    assert!(after.iter().all(|e| e["type"] == "ping"), "unsubscribed events went out: {after:?}");
}

/// Moves the merchant's waiting deliveries (and the queue entry) to now.
async fn make_due(app: &TestApp, m: &Merchant) {
    let tenant = tenant_id(app.pool(), &m.ent_id).await.0;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "update tenant_{tenant}.webhook_deliveries set next_attempt_at = now() where status = 'pending';
         update public.webhook_queue set next_attempt_at = now() where tenant_id = {tenant};"
    )))
    .execute(app.pool())
    .await
    .unwrap();
}

async fn delivery(app: &TestApp, m: &Merchant, hook: i64) -> Value {
    let log: Value = client()
        .get(app.url(&format!("/api/v1/webhooks/{hook}/deliveries")))
        .bearer_auth(&m.token)
        .sent()
        .await
        .json()
        .await
        .unwrap();
    log["deliveries"][0].clone()
}

#[tokio::test]
async fn failures_are_retried_with_backoff_given_up_and_survive_a_restart() {
    let app = spawn_with(open_app()).await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::Relaxed);
    let m = app.signup("Flaky Shop").await;
    let hook: Value = create_hook(&app, &m, &receiver.url, json!(["visitor.created"]))
        .await
        .json()
        .await
        .unwrap();
    let id = hook["id"].as_i64().unwrap();
    visitor_session(&app, &m.ent_id).await;
    receiver.wait_for("visitor.created", 1).await;
    let mut d = delivery(&app, &m, id).await;
    for _ in 0..50 {
        if d["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        d = delivery(&app, &m, id).await;
    }
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["last_status_code"].as_i64()),
        (Some("pending"), Some(1), Some(500))
    );
    let next: chrono::DateTime<chrono::Utc> =
        d["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(20),
        "retried after 30 s, not at once"
    );

    // A new server on the same database (a restart) delivers it once the endpoint is back.
    let second = {
        let pool = kefu::db::pool_options(4).connect_with(app.options.clone()).await.unwrap();
        spawn_on(
            kefu::config::Config { webhooks_allow_private: true, ..test_config() },
            pool,
            app.options.clone(),
            tenants::TenantMigrator::embedded(),
        )
        .await
    };
    receiver.status.store(204, Ordering::Relaxed);
    make_due(&app, &m).await;
    kefu::webhooks::deliver::run_due(&second.state).await.unwrap();
    receiver.wait_for("visitor.created", 2).await;
    for _ in 0..50 {
        if delivery(&app, &m, id).await["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let d = delivery(&app, &m, id).await;
    assert_eq!(
        (d["status"].as_str(), d["last_status_code"].as_i64()),
        (Some("delivered"), Some(204))
    );

    // An endpoint that keeps failing is given up after the last attempt.
    receiver.status.store(503, Ordering::Relaxed);
    visitor_session(&app, &m.ent_id).await;
    receiver.wait_for("visitor.created", 3).await;
    let tenant = tenant_id(app.pool(), &m.ent_id).await.0;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "update tenant_{tenant}.webhook_deliveries set attempts = {} where status = 'pending'",
        kefu::webhooks::deliver::MAX_ATTEMPTS - 1
    )))
    .execute(app.pool())
    .await
    .unwrap();
    make_due(&app, &m).await;
    kefu::webhooks::deliver::run_due(&app.state).await.unwrap();
    for _ in 0..50 {
        if delivery(&app, &m, id).await["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(delivery(&app, &m, id).await["status"], "failed");
}

#[tokio::test]
async fn deliveries_stay_out_of_the_platforms_network() {
    let app = spawn_app().await;
    let m = app.signup("Guarded Shop").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://[::1]/hook",
        "http://[::7f00:1]/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2002:7f00:1::1]/hook",
        "http://192.0.0.170/hook",
        "http://0x7f000001/hook",
        "ftp://files.example.com/",
        "https://user:pw@hooks.example.com/",
        "not a url",
    ] {
        let res = create_hook(&app, &m, url, json!(["visitor.created"])).await;
        assert_eq!(res.status(), 422, "{url}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]["fields"]["url"].is_string(), "{url}: {body}");
    }
    for events in [json!([]), json!(["order.paid"])] {
        let res = create_hook(&app, &m, "https://hooks.example.com/k", events.clone()).await;
        assert_eq!(res.status(), 422, "{events}");
    }
    // A private address stored anyway (e.g. saved while the platform allowed it) is refused
    // at delivery time, and the reason is in the log.
    let receiver = Receiver::start().await;
    let res =
        create_hook(&app, &m, "https://hooks.example.com/k", json!(["visitor.created"])).await;
    let hook: Value = res.json().await.unwrap();
    let tenant = tenant_id(app.pool(), &m.ent_id).await.0;
    sqlx::query(sqlx::AssertSqlSafe(format!("update tenant_{tenant}.webhooks set url = $1")))
        .bind(&receiver.url)
        .execute(app.pool())
        .await
        .unwrap();
    app.state.chat.webhooks.invalidate(tenants::TenantId(tenant)).await;
    visitor_session(&app, &m.ent_id).await;
    let mut d = delivery(&app, &m, hook["id"].as_i64().unwrap()).await;
    for _ in 0..50 {
        if d["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        d = delivery(&app, &m, hook["id"].as_i64().unwrap()).await;
    }
    assert!(d["last_error"].as_str().unwrap().contains("public internet"), "{d}");
    assert!(receiver.got.lock().unwrap().is_empty(), "nothing reached the private address");

    // A name that resolves inside (here: this machine's own name, on loopback) is accepted as
    // typed, and refused at the moment of connecting, on the address it resolves to.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    let resolved: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host, 0)).await.map(Iterator::collect).unwrap_or_default();
    if !resolved.is_empty() && resolved.iter().all(|a| !kefu::webhooks::guard::is_global(a.ip())) {
        let url = format!("http://{host}:{port}/hooks/kefu");
        let res = client()
            .patch(app.url(&format!("/api/v1/webhooks/{}", hook["id"])))
            .bearer_auth(&m.token)
            .json(&json!({ "url": url }))
            .sent()
            .await;
        assert_eq!(res.status(), 200, "{url} is a name: it is checked when connecting");
        visitor_session(&app, &m.ent_id).await;
        let mut failed = false;
        for _ in 0..50 {
            kefu::webhooks::deliver::run_due(&app.state).await.unwrap();
            let d = delivery(&app, &m, hook["id"].as_i64().unwrap()).await;
            if d["last_error"].as_str().is_some_and(|e| e.contains("resolves to no address")) {
                failed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(failed, "the delivery to {url} is refused when connecting");
        assert!(receiver.got.lock().unwrap().is_empty(), "nothing reached {url}");
    }
    // Plans without webhooks cannot add them.
    let basic = spawn_with(|c| {
        let off = serde_json::from_value(json!({ "webhooks": false })).unwrap();
        c.plans.insert("trial".into(), off);
    })
    .await;
    let b = basic.signup("Basic Shop").await;
    let res =
        create_hook(&basic, &b, "https://hooks.example.com/k", json!(["visitor.created"])).await;
    assert_eq!(res.status(), 402);
}

/// The log keeps a month; a plan without webhooks sends none (and says so in the log); the
/// ten-webhook cap holds under concurrent creations.
#[tokio::test]
async fn the_log_is_pruned_downgrades_stop_deliveries_and_the_cap_holds() {
    let app = spawn_with(open_app()).await;
    let receiver = Receiver::start().await;
    let m = app.signup("Tidy Shop").await;
    let tenant = tenant_id(app.pool(), &m.ent_id).await.0;

    // Twelve creations at once: exactly ten webhooks.
    let tries = futures::future::join_all(
        (0..12).map(|_| create_hook(&app, &m, &receiver.url, json!(["visitor.created"]))),
    )
    .await;
    let made = tries.iter().filter(|r| r.status() == 201).count();
    assert_eq!(made, 10, "{:?}", tries.iter().map(|r| r.status()).collect::<Vec<_>>());
    assert!(tries.iter().all(|r| matches!(r.status().as_u16(), 201 | 409)));
    let hooks: Value = app.get_as(&m, "/api/v1/webhooks").await.json().await.unwrap();
    let ids: Vec<i64> =
        hooks["webhooks"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
    for id in &ids[1..] {
        let res = client()
            .delete(app.url(&format!("/api/v1/webhooks/{id}")))
            .bearer_auth(&m.token)
            .sent()
            .await;
        assert!(res.status().is_success());
    }
    let hook = ids[0];

    // A finished delivery older than the log keeps goes at the next round; a recent one stays.
    visitor_session(&app, &m.ent_id).await;
    receiver.wait_for("visitor.created", 1).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "insert into tenant_{tenant}.webhook_deliveries (webhook_id, event_id, event, payload, status, created_at)
         values ({hook}, 'evt_old', 'visitor.created', '{{}}', 'delivered', now() - interval '{} days');",
        kefu::webhooks::deliver::LOG_DAYS + 1
    )))
    .execute(app.pool())
    .await
    .unwrap();
    visitor_session(&app, &m.ent_id).await;
    receiver.wait_for("visitor.created", 2).await;
    let left: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select event_id from tenant_{tenant}.webhook_deliveries order by id"
    )))
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(left.len(), 2, "the month-old delivery is pruned: {left:?}");
    assert!(!left.contains(&"evt_old".to_owned()));

    // Downgraded to a plan without webhooks: nothing more is sent; the log says why.
    sqlx::query("update public.tenants set plan = 'starter' where id = $1")
        .bind(tenant)
        .execute(app.pool())
        .await
        .unwrap();
    app.state.tenants.invalidate_all();
    visitor_session(&app, &m.ent_id).await;
    let mut d = delivery(&app, &m, hook).await;
    for _ in 0..50 {
        if d["status"] == "failed" {
            break;
        }
        kefu::webhooks::deliver::run_due(&app.state).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        d = delivery(&app, &m, hook).await;
    }
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["last_error"].as_str().unwrap().contains("not part of the Starter plan"), "{d}");
    assert_eq!(receiver.got.lock().unwrap().len(), 2, "nothing more reached the endpoint");
}

//! Anonymous visitors cannot exhaust a merchant: one address floods every visitor path —
//! across two nodes sharing one database — and is turned away (429 with `Retry-After`), while
//! the merchant's real visitor and its owner are served throughout.

use crate::helpers::Fetch;
use kefu::http::rate::VisitorLimits;
use reqwest::Method as M;
use serde_json::{Value, json};
use tenants::TenantMigrator;

use crate::{helpers::*, ws_client::Ws};

const ATTACKER: &str = "203.0.113.66";
const CUSTOMER: &str = "198.51.100.20";

/// Small limits, so each flood is short (the defaults are documented in deployment.md).
fn limits() -> VisitorLimits {
    VisitorLimits {
        new_visitors_per_ip: 6,
        sessions_per_visitor: 4,
        conversations_per_ip: 4,
        uploads_per_visitor: 3,
        leave_messages_per_visitor: 2,
        page_views_per_visitor: 10,
        tickets_per_visitor: 8,
        sockets_per_visitor: 2,
        ratings_per_visitor: 3,
        ..VisitorLimits::default()
    }
}

/// Two nodes on one database (their counters meet only there).
async fn two_nodes() -> (TestApp, TestApp) {
    let (_, options) = fresh_database().await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = test_config();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        config.visitor_limits = limits();
        let plan = serde_json::from_value(
            json!({ "conversations_per_month": 3, "visitor_storage_mb": 1 }),
        )
        .unwrap();
        config.plans.insert("trial".into(), plan);
        let pool = kefu::db::pool_options(4).connect_with(options.clone()).await.unwrap();
        nodes.push(spawn_on(config, pool, options.clone(), TenantMigrator::embedded()).await);
    }
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}

fn from(ip: &str, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header("x-forwarded-for", ip)
}

async fn new_visitor(app: &TestApp, ent_id: &str, ip: &str) -> reqwest::Response {
    from(ip, client().post(app.url("/api/v1/visitor/session")))
        .json(&json!({ "ent_id": ent_id }))
        .sent()
        .await
}

/// A refusal of the flood: 429, the JSON shape, and when to come back.
async fn turned_away(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 429, "{what}");
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "{what}: Retry-After {wait}");
    assert_eq!(error_code(res).await, "rate_limited", "{what}");
}

/// Opens a visitor socket from `ip` (the ticket from there too).
async fn socket(app: &TestApp, token: &str, ip: &str) -> Result<Ws, String> {
    let res =
        from(ip, client().post(app.url("/api/v1/visitor/ticket"))).bearer_auth(token).sent().await;
    if res.status() != 200 {
        return Err(format!("ticket: {}", res.status()));
    }
    let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned();
    let url = crate::ws_client::ws_url(app, &format!("/ws/visitor?ticket={ticket}"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Ws { socket }),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn one_address_cannot_exhaust_a_merchant_across_nodes() {
    let (a, b) = two_nodes().await;
    let m = a.signup("Flooded Shop").await;
    let nodes = [&a, &b];
    let owner_served = || async {
        let res = b.get_as(&m, "/api/v1/conversations").await;
        assert_eq!(res.status(), 200, "the owner is served");
    };

    // New visitors, alternating between the nodes: the limit holds for both together.
    let mut attackers = Vec::new();
    for i in 0..limits().new_visitors_per_ip {
        let res = new_visitor(nodes[i as usize % 2], &m.ent_id, ATTACKER).await;
        assert_eq!(res.status(), 200, "visitor {i}");
        attackers.push(res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned());
    }
    turned_away(new_visitor(&b, &m.ent_id, ATTACKER).await, "one visitor too many").await;
    turned_away(new_visitor(&a, &m.ent_id, ATTACKER).await, "on the other node too").await;
    // A returning visitor cannot churn sessions either.
    let returning = &attackers[0];
    let resume = |node: &TestApp| {
        from(ATTACKER, client().post(node.url("/api/v1/visitor/session")))
            .json(&json!({ "ent_id": m.ent_id, "token": returning }))
            .send()
    };
    for i in 0..limits().sessions_per_visitor {
        assert_eq!(resume(nodes[i as usize % 2]).await.unwrap().status(), 200);
    }
    turned_away(resume(&a).await.unwrap(), "sessions of one visitor").await;
    let customer = new_visitor(&b, &m.ent_id, CUSTOMER).await;
    assert_eq!(customer.status(), 200, "the real customer gets a session");
    let customer = customer.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    owner_served().await;

    // Throw-away conversations: a few open, the rest are refused, none uses the month's
    // allowance (3 here) — the real customer's conversation still opens and counts.
    let mut opened = 0;
    let mut limited = 0;
    for (i, token) in attackers.iter().enumerate() {
        let mut ws = socket(nodes[i % 2], token, ATTACKER).await.unwrap();
        ws.send_text(&format!("spam{i}"), "spam", None).await;
        let f = ws.expect_where("an answer", |f| f["type"] == "ack" || f["type"] == "error").await;
        match (f["type"].as_str(), f["code"].as_str()) {
            (Some("ack"), _) => opened += 1,
            (Some("error"), Some("rate_limited")) => {
                assert!(f["retry_after"].as_u64().unwrap() >= 1);
                limited += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((opened, limited), (limits().conversations_per_ip, 2));
    let used = || async {
        b.get_json(&m.token, "/api/v1/billing").await["usage"]["conversations"]["used"].clone()
    };
    assert_eq!(used().await, 0, "nobody engaged: nothing counted");
    let mut ws = socket(&a, &customer, CUSTOMER).await.unwrap();
    ws.send_text("c1", "Do you ship to Hangzhou?", None).await;
    ws.expect("ack").await;
    ws.send_text("c2", "It is for a gift.", None).await;
    ws.expect("ack").await;
    assert_eq!(used().await, 1, "the real conversation counts");
    owner_served().await;

    // Uploads: a visitor's count, then the visitors' own storage budget (1 MiB here) — which
    // leaves the team's untouched: the owner's logo still goes in.
    let upload = |node: &TestApp, token: &str, bytes: Vec<u8>, name: &str| {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
        from(ATTACKER, client().post(node.url("/api/v1/uploads")))
            .bearer_auth(token)
            .multipart(form)
            .send()
    };
    for i in 0..limits().uploads_per_visitor {
        let res = upload(nodes[i as usize % 2], &attackers[0], png(8, 8), "x.png").await.unwrap();
        assert_eq!(res.status(), 201);
    }
    turned_away(upload(&a, &attackers[0], png(8, 8), "x.png").await.unwrap(), "uploads").await;
    let mut full = None;
    for (i, token) in attackers[1..].iter().enumerate() {
        for _ in 0..2 {
            let body = format!("junk {i}\n").repeat(300_000 / 7).into_bytes();
            let res = upload(&b, token, body, "junk.txt").await.unwrap();
            if res.status() == 413 {
                full = Some(error_code(res).await);
                break;
            }
            assert_eq!(res.status(), 201);
        }
        if full.is_some() {
            break;
        }
    }
    assert_eq!(full.as_deref(), Some("storage_limit"), "visitors' storage fills up");
    let logo = client()
        .post(a.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .multipart(
            reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(png(60, 20)).file_name("logo.png")),
        )
        .sent()
        .await;
    assert_eq!(logo.status(), 201, "the owner's logo fits: the team's storage is its own");

    // Left messages, page views, ratings, tickets and sockets of one visitor.
    let visitor = |node: &TestApp, method: M, path: &str, token: &str| {
        from(ATTACKER, client().request(method, node.url(path))).bearer_auth(token.to_owned())
    };
    for _ in 0..limits().leave_messages_per_visitor {
        let res = visitor(&a, M::POST, "/api/v1/visitor/leave_message", &attackers[2])
            .json(&json!({ "body": "call me" }))
            .sent()
            .await;
        assert_eq!(res.status(), 201);
    }
    let res = visitor(&b, M::POST, "/api/v1/visitor/leave_message", &attackers[2])
        .json(&json!({ "body": "call me" }))
        .sent()
        .await;
    turned_away(res, "left messages").await;
    let res = from(CUSTOMER, client().post(b.url("/api/v1/visitor/leave_message")))
        .bearer_auth(&customer)
        .json(&json!({ "name": "Lin", "contact": "lin@example.com", "body": "Please call back" }))
        .sent()
        .await;
    assert_eq!(res.status(), 201, "the customer leaves a message");

    let views = |n: usize| json!({ "views": (0..n).map(|i| json!({ "url": format!("https://shop.example/p/{i}") })).collect::<Vec<_>>() });
    let res = visitor(&a, M::POST, "/api/v1/visitor/page_views", &attackers[3])
        .json(&views(limits().page_views_per_visitor as usize))
        .sent()
        .await;
    assert_eq!(res.status(), 204);
    let res = visitor(&b, M::POST, "/api/v1/visitor/page_views", &attackers[3])
        .json(&views(1))
        .sent()
        .await;
    turned_away(res, "page views").await;

    for _ in 0..limits().ratings_per_visitor {
        let res = visitor(&a, M::POST, "/api/v1/visitor/rating", &attackers[4])
            .json(&json!({ "conversation_id": 1, "score": 5 }))
            .sent()
            .await;
        assert_ne!(res.status(), 429);
    }
    let res = visitor(&b, M::POST, "/api/v1/visitor/rating", &attackers[4])
        .json(&json!({ "conversation_id": 1, "score": 5 }))
        .sent()
        .await;
    turned_away(res, "ratings").await;

    let mut tickets = 0;
    loop {
        let res = visitor(nodes[tickets % 2], M::POST, "/api/v1/visitor/ticket", &attackers[5])
            .sent()
            .await;
        if res.status() == 429 {
            turned_away(res, "tickets").await;
            break;
        }
        assert_eq!(res.status(), 200);
        tickets += 1;
    }
    // One ticket went to the conversation flood above.
    assert_eq!(tickets as u32 + 1, limits().tickets_per_visitor);

    let mut held = Vec::new();
    for _ in 0..limits().sockets_per_visitor {
        held.push(socket(&a, &attackers[0], ATTACKER).await.unwrap());
    }
    let refused = socket(&a, &attackers[0], ATTACKER).await.err().unwrap();
    assert!(refused.contains("429"), "{refused}");

    // Through all of it, the customer chats and the owner works.
    ws.send_text("c3", "Thanks!", None).await;
    ws.expect("ack").await;
    owner_served().await;
}

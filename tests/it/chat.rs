//! The chat core end to end over real WebSockets.

use crate::helpers::Fetch;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{helpers::*, ws_client::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_and_an_agent_talk_in_real_time() {
    let app = spawn_app().await;
    let m = app.signup("Talk Shop").await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    let hello = agent.expect("hello").await;
    assert_eq!((hello["role"].as_str(), hello["v"].as_i64()), (Some("agent"), Some(1)));

    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    assert_eq!(visitor.expect("hello").await["visitor_id"], v.id.as_str());
    assert_eq!(
        visitor.expect("presence").await,
        json!({"type": "presence", "of": "team", "online": true, "agents": true})
    );
    agent.expect_where("visitor online", |f| f["of"] == "visitor" && f["online"] == true).await;

    visitor.send_text("v-1", "你好, is the lamp in stock?", None).await;
    let ack = visitor.expect("ack").await;
    assert_eq!(
        (ack["client_msg_id"].as_str(), ack["duplicate"].as_bool()),
        (Some("v-1"), Some(false))
    );
    let conversation_id = ack["conversation_id"].as_i64().unwrap();

    let created = agent.expect("conversation").await;
    assert_eq!(created["event"], "created");
    assert_eq!(created["conversation"]["status"], "open", "routed to the only agent online");
    let message = agent.expect("message").await;
    assert_eq!(
        (message["body"].as_str(), message["id"].as_i64()),
        (Some("你好, is the lamp in stock?"), ack["id"].as_i64())
    );
    assert_eq!(message["sender"]["kind"], "visitor");

    agent.send_text("a-1", "Yes, ships tomorrow.", Some(conversation_id)).await;
    let agent_ack = agent.expect("ack").await;
    assert!(agent_ack["id"].as_i64().unwrap() > ack["id"].as_i64().unwrap(), "ids grow");
    let reply = visitor
        .expect_where("the agent's reply", |f| {
            f["type"] == "message" && f["sender"]["kind"] == "agent"
        })
        .await;
    assert_eq!(
        (reply["body"].as_str(), reply["sender"]["kind"].as_str()),
        (Some("Yes, ships tomorrow."), Some("agent"))
    );

    // Typing and read receipts cross over.
    visitor.send(json!({"type": "typing", "preview": "secret draft"})).await;
    let typing = agent.expect("typing").await;
    assert!(typing.get("preview").is_none(), "previews are off unless the merchant enables them");
    agent
        .send(json!({"type": "read", "conversation_id": conversation_id, "up_to": ack["id"]}))
        .await;
    assert_eq!(visitor.expect("read").await["by"], "agent");

    let stored: i64 = sqlx::query_scalar("select count(*) from messages")
        .fetch_one(
            &mut *tenants::TenantTx::begin(app.pool(), tenant_id(app.pool(), &m.ent_id).await)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stored, 2);

    // The agent REST view agrees.
    let list: Value = app.get_as(&m, "/api/v1/conversations?view=all").await.json().await.unwrap();
    assert_eq!(list["conversations"][0]["id"], conversation_id);
    let messages: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{conversation_id}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(messages["messages"].as_array().unwrap().len(), 2);
    let detail: Value =
        app.get_as(&m, &format!("/api/v1/visitors/{}", v.id)).await.json().await.unwrap();
    assert_eq!(detail["online"], true);
}

#[tokio::test]
async fn resends_are_idempotent_and_reconnects_catch_up() {
    let app = spawn_app().await;
    let m = app.signup("Replay").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.send_text("same", "first", None).await;
    let first = visitor.expect("ack").await;
    visitor.send_text("same", "first (resent)", None).await;
    let again = visitor.expect("ack").await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["duplicate"], true);
    for i in 0..3 {
        visitor.send_text(&format!("more-{i}"), &format!("message {i}"), None).await;
        visitor.expect("ack").await;
    }
    drop(visitor);

    // Reconnect with the first id: exactly the three later messages (plus the offline notice
    // the server wrote, since nobody is online), in order, then sync_done.
    let mut again = Ws::visitor(&app, &v.token, &format!("&since={}", first["id"])).await;
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    loop {
        let f = again.next().await.expect("frames until sync_done");
        match f["type"].as_str().unwrap() {
            "message" => {
                ids.push(f["id"].as_i64().unwrap());
                bodies.push(f["body"].as_str().unwrap().to_owned());
            }
            "sync_done" => {
                assert_eq!(f["last_id"].as_i64(), ids.last().copied());
                break;
            }
            _ => {}
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    let own: Vec<&String> = bodies.iter().filter(|b| b.starts_with("message")).collect();
    assert_eq!(own, ["message 0", "message 1", "message 2"]);
    assert!(!bodies.iter().any(|b| b.starts_with("first")), "nothing at or before `since`");
}

/// A visitor whose client stops reading while an agent writes to it: once its queue is full
/// the server ends the connection (a stuck write is given up after a grace), the agent sees
/// the visitor go offline, and on reconnecting with `since` the visitor gets every message
/// it missed, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_dropped_and_catches_up_on_reconnect() {
    use futures::SinkExt as _;

    let app = spawn_app().await;
    let m = app.signup("Stalled Reader").await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;
    let v = visitor_session(&app, &m.ent_id).await;

    // A visitor socket with a tiny receive window, never read from.
    let ticket = visitor_ticket(&app, &v.token).await;
    let addr: std::net::SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(addr).await.unwrap();
    let url = ws_url(&app, &format!("/ws/visitor?ticket={ticket}"));
    let (mut stalled, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let first = json!({"type": "send", "client_msg_id": "v-1", "kind": "text", "body": "hello?"});
    stalled.send(Message::text(first.to_string())).await.unwrap();
    let created = agent.expect("conversation").await;
    let conversation_id = created["conversation"]["id"].as_i64().unwrap();

    // More than its queue (1,024 frames) and the socket buffers (4 MiB at most) hold.
    const SENT: usize = 3_000;
    let body = "x".repeat(4_000);
    for i in 0..SENT {
        agent.send_text(&format!("a-{i}"), &body, Some(conversation_id)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut acked, mut offline) = (0, false);
    while acked < SENT || !offline {
        assert!(
            std::time::Instant::now() < deadline,
            "{acked} of {SENT} acked; visitor offline: {offline}"
        );
        let Some(f) = agent.next().await else { continue };
        match f["type"].as_str() {
            Some("ack") => acked += 1,
            Some("presence") if f["of"] == "visitor" && f["online"] == false => offline = true,
            _ => {}
        }
    }
    drop(stalled);

    let mut back = Ws::visitor(&app, &v.token, "&since=0").await;
    let (mut ids, mut from_agent) = (Vec::new(), 0);
    loop {
        let f = back.next().await.expect("frames until sync_done");
        match f["type"].as_str().unwrap() {
            "message" => {
                ids.push(f["id"].as_i64().unwrap());
                if f["sender"]["kind"] == "agent" {
                    from_agent += 1;
                }
            }
            "sync_done" => break,
            _ => {}
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    assert_eq!(from_agent, SENT, "every message the agent sent");
}

#[tokio::test]
async fn nobody_online_means_one_offline_notice_and_a_leave_message_form() {
    let app = spawn_app().await;
    let m = app.signup("Closed Shop").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    assert_eq!(visitor.expect("presence").await["online"], false);
    for i in 0..3 {
        visitor.send_text(&format!("m{i}"), "anyone there?", None).await;
    }
    // Everything until the socket goes quiet: 3 acks, one offline notice (as a frame and as a
    // stored notice message) for the whole conversation — not one per message.
    let mut frames = Vec::new();
    while let Some(f) = visitor.next().await {
        frames.push(f);
    }
    let count = |pred: &dyn Fn(&Value) -> bool| frames.iter().filter(|f| pred(f)).count();
    assert_eq!(count(&|f| f["type"] == "ack"), 3);
    assert_eq!(count(&|f| f["type"] == "notice" && f["code"] == "offline"), 1, "{frames:#?}");
    assert_eq!(count(&|f| f["type"] == "message" && f["kind"] == "notice"), 1);

    let res = client()
        .post(app.url("/api/v1/visitor/leave_message"))
        .bearer_auth(&v.token)
        .json(&json!({"name": "Ann", "contact": "ann@example.com", "body": "Call me back"}))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    let mut tx =
        tenants::TenantTx::begin(app.pool(), tenant_id(app.pool(), &m.ent_id).await).await.unwrap();
    // The left message joins the visitor's conversation (no second one), marked as left
    // while offline, and the address is the visitor's.
    let (queued, left, marked, email): (i64, i64, bool, Option<String>) = sqlx::query_as(
        "select (select count(*) from conversations where status = 'queued'),
                (select count(*) from messages where body = 'Call me back' and sender_kind = 'visitor'),
                (select bool_and(left_offline_at is not null) from conversations),
                (select email from visitors)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((queued, left, marked), (1, 1, true));
    assert_eq!(email.as_deref(), Some("ann@example.com"));
    drop(tx);

    // Resolved, then the visitor is back (the conversation reopens) and still nobody is
    // online: told so once more, in the reopened conversation.
    let conversation =
        frames.iter().find(|f| f["type"] == "ack").unwrap()["conversation_id"].as_i64().unwrap();
    let res = app.close_conversation(&m, conversation).await;
    assert_eq!(res.status(), 200);
    while visitor.next().await.is_some() {}
    visitor.send_text("again", "hello again?", None).await;
    let mut frames = Vec::new();
    while let Some(f) = visitor.next().await {
        frames.push(f);
    }
    let ack = frames.iter().find(|f| f["type"] == "ack").expect("an ack");
    assert_eq!(ack["conversation_id"], conversation, "the same conversation, reopened");
    let notices = frames.iter().filter(|f| f["type"] == "notice" && f["code"] == "offline").count();
    assert_eq!(notices, 1, "{frames:#?}");
}

#[tokio::test]
async fn junk_frames_get_error_frames_and_the_connection_lives_on() {
    let app = spawn_app().await;
    let m = app.signup("Junk").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.expect("presence").await;
    let junk = [
        "",
        "not json",
        "[]",
        "null",
        r#"{"type":null}"#,
        r#"{"type":"send"}"#,
        r#"{"type":"send","client_msg_id":"x","body":""}"#,
        r#"{"type":"send","client_msg_id":"x","conversation_id":99999999,"body":"hi"}"#,
        r#"{"type":"status","status":"online"}"#,
        r#"{"type":"typing","conversation_id":-1}"#,
        r#"{"type":"read","up_to":"a"}"#,
        r#"{"type":"send","client_msg_id":"x","kind":"product","product":{"title":"<img src=x onerror=alert(1)>","url":"javascript:alert(1)"}}"#,
        "{\"type\":\"send\",\"client_msg_id\":\"\u{0}\",\"body\":\"x\"}",
        r#"{"type":"👾"}"#,
    ];
    for text in junk {
        visitor.send_raw(Message::text(text)).await;
        let f = visitor.expect("error").await;
        assert!(f["code"].is_string() && f["message"].is_string(), "{text}: {f}");
    }
    visitor.send_raw(Message::binary(vec![0u8, 159, 146, 150])).await;
    assert_eq!(visitor.expect("error").await["code"], "binary_not_supported");
    visitor.send(json!({"type": "ping"})).await;
    visitor.expect("pong").await;
    visitor.send_text("ok", "still here", None).await;
    assert_eq!(visitor.expect("ack").await["duplicate"], false);

    // A frame over 64 KiB ends only that connection; the server carries on.
    visitor.send_raw(Message::text("x".repeat(70 * 1024))).await;
    let mut closed = false;
    for _ in 0..20 {
        if visitor.next().await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the oversized frame ended the connection");
    let mut fresh = Ws::visitor(&app, &v.token, "").await;
    fresh.expect("hello").await;
}

#[tokio::test]
async fn tickets_are_single_use_role_bound_and_origins_checked() {
    let app = spawn_app().await;
    let m = app.signup("Tickets").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let ticket = visitor_ticket(&app, &v.token).await;
    let url = ws_url(&app, &format!("/ws/visitor?ticket={ticket}"));
    assert!(Ws::connect(&url).await.is_ok());
    assert!(Ws::connect(&url).await.is_err(), "a ticket opens one socket");
    let agent_ticket = agent_ticket(&app, &m.token).await;
    assert!(
        Ws::connect(&ws_url(&app, &format!("/ws/visitor?ticket={agent_ticket}"))).await.is_err(),
        "role-bound"
    );
    assert!(Ws::connect(&ws_url(&app, "/ws/visitor")).await.is_err());
    assert!(
        Ws::connect(&ws_url(&app, &format!("/ws/visitor?ticket={}", v.token))).await.is_err(),
        "a visitor token is not a ticket"
    );
    assert!(Ws::connect(&ws_url(&app, "/ws/agent")).await.is_err(), "agents need a session");

    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let ticket = visitor_ticket(&app, &v.token).await;
    let mut req =
        ws_url(&app, &format!("/ws/visitor?ticket={ticket}")).into_client_request().unwrap();
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err().to_string();
    assert!(err.contains("403"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_transfer_and_close() {
    let app = spawn_app().await;
    let m = app.signup("Routing").await;
    let tenant = tenant_id(app.pool(), &m.ent_id).await;
    // A second agent in the same merchant.
    let email = unique_email("agent2");
    let hash = kefu::auth::password::hash(PASSWORD.into()).await.unwrap();
    let mut tx = tenants::TenantTx::begin(app.pool(), tenant).await.unwrap();
    let user_id = kefu::auth::store::insert_user(
        &mut tx,
        &kefu::auth::validate::Email::parse(&email).unwrap(),
        Some(&hash),
        "Bo",
    )
    .await
    .unwrap();
    kefu::auth::store::add_member(&mut tx, tenant, user_id).await.unwrap();
    let agent2_id = kefu::auth::store::insert_agent(&mut tx, user_id, "agent", "Bo").await.unwrap();
    tx.commit().await.unwrap();
    let login: Value = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let m2 = Merchant {
        ent_id: m.ent_id.clone(),
        token: login["token"].as_str().unwrap().into(),
        email,
    };
    let mut a1 = Ws::agent(&app, &m.token, "").await;
    let mut a2 = Ws::agent(&app, &m2.token, "").await;
    a1.expect("hello").await;
    a2.expect("hello").await;

    // Four visitors: least loaded first, ties in turn → two each.
    let mut owners = Vec::new();
    let mut visitors = Vec::new();
    for i in 0..4 {
        let v = visitor_session(&app, &m.ent_id).await;
        let mut ws = Ws::visitor(&app, &v.token, "").await;
        ws.send_text(&format!("hi{i}"), "hello", None).await;
        let ack = ws.expect("ack").await;
        let conv: Value = app
            .get_as(&m, &format!("/api/v1/conversations/{}", ack["conversation_id"]))
            .await
            .json()
            .await
            .unwrap();
        owners.push(conv["agent_id"].as_i64().unwrap());
        visitors.push((ws, ack["conversation_id"].as_i64().unwrap()));
    }
    let to_a2 = owners.iter().filter(|o| **o == agent2_id).count();
    assert_eq!(to_a2, 2, "balanced: {owners:?}");

    // kefu_id pins a visitor to one agent.
    let v = visitor_session(&app, &m.ent_id).await;
    let mut pinned = Ws::visitor(&app, &v.token, &format!("&kefu_id={agent2_id}")).await;
    pinned.send_text("pin", "for Bo", None).await;
    let ack = pinned.expect("ack").await;
    let conv: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{}", ack["conversation_id"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(conv["agent_id"], agent2_id);

    // Transfer to agent 1: the visitor is told; agents' lists update.
    let conversation_id = ack["conversation_id"].as_i64().unwrap();
    let me: Value = app.get_as(&m, "/api/v1/me").await.json().await.unwrap();
    let agent1_id = me["agent"]["id"].as_i64().unwrap();
    let res = client()
        .post(app.url(&format!("/api/v1/conversations/{conversation_id}/transfer")))
        .bearer_auth(&m2.token)
        .json(&json!({"agent_id": agent1_id}))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let event = pinned.expect("conversation").await;
    assert_eq!(
        (event["event"].as_str(), event["conversation"]["agent_id"].as_i64()),
        (Some("transferred"), Some(agent1_id))
    );
    a1.expect_where("transfer event", |f| {
        f["type"] == "conversation" && f["event"] == "transferred"
    })
    .await;
    let notice = pinned
        .expect_where("transfer notice", |f| f["type"] == "message" && f["kind"] == "notice")
        .await;
    assert!(notice["body"].as_str().unwrap().contains("→"));
    let res = client()
        .post(app.url(&format!("/api/v1/conversations/{conversation_id}/transfer")))
        .bearer_auth(&m.token)
        .json(&json!({"agent_id": 424242}))
        .sent()
        .await;
    assert_eq!(res.status(), 422, "transfer to a non-agent");

    // Close: with the merchant's reopen window at 0, the visitor's next message opens a new
    // conversation (within the window it reopens this one: tests/it/statuses.rs).
    assert_eq!(app.patch_settings(&m, json!({ "reopen_hours": 0 })).await.status(), 200);
    let res = app.close_conversation(&m, conversation_id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(pinned.expect("conversation").await["event"], "closed");
    pinned.send_text("after", "one more thing", None).await;
    let ack = pinned.expect("ack").await;
    assert_ne!(ack["conversation_id"].as_i64().unwrap(), conversation_id, "a new conversation");
    // Writing into the closed one explicitly is refused.
    pinned.send_text("old", "x", Some(conversation_id)).await;
    assert_eq!(pinned.expect("error").await["code"], "conversation_closed");
    drop(visitors);
}

#[tokio::test]
async fn each_connection_is_rate_limited() {
    let app = spawn_with(|c| {
        c.ws_rate_per_sec = 5;
        c.ws_rate_burst = 5;
    })
    .await;
    let m = app.signup("Limits").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.expect("presence").await;
    for _ in 0..12 {
        visitor.send(json!({"type": "ping"})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    while let Some(f) = visitor.next().await {
        match f["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if f["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
        if pongs + limited == 12 {
            break;
        }
    }
    assert!((5..=6).contains(&pongs), "the burst passes ({pongs})");
    assert_eq!(pongs + limited, 12, "the rest is refused, the connection lives");
}

#[tokio::test]
async fn visitor_sessions_refuse_bad_input_clearly() {
    let app = spawn_app().await;
    let m = app.signup("Visitor Input").await;
    let post = |body: String| {
        client()
            .post(app.url("/api/v1/visitor/session"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        (json!({"ent_id": "nobody"}).to_string(), 404, "tenant_not_found"),
        (json!({"ent_id": "x' or 1=1 --"}).to_string(), 404, "tenant_not_found"),
        (
            json!({"ent_id": m.ent_id, "extra": "%%%not-base64"}).to_string(),
            422,
            "validation_failed",
        ),
        (json!({"ent_id": m.ent_id, "extra": [1, 2]}).to_string(), 422, "validation_failed"),
        (json!({"ent_id": 5}).to_string(), 422, "invalid_body"),
        ("{\"ent_id\":".to_owned(), 400, "malformed_json"),
    ];
    for (body, status, code) in cases {
        let res = post(body.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{body}");
        assert_eq!(error_code(res).await, code, "{body}");
    }
    // A forged or foreign token is ignored: a new visitor, never someone else's history.
    let other = app.signup("Other").await;
    let theirs = visitor_session(&app, &other.ent_id).await;
    let res: Value = post(json!({"ent_id": m.ent_id, "token": theirs.token}).to_string())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["resumed"], false);
    assert_ne!(res["visitor_id"], theirs.id.as_str());
    let res: Value = post(json!({"ent_id": m.ent_id, "token": "garbage", "name": format!("{}\u{0}", "N".repeat(500))}).to_string()).await.unwrap().json().await.unwrap();
    assert_eq!(
        res["name"].as_str().unwrap().chars().count(),
        60,
        "names are trimmed to 60 characters, controls dropped"
    );
    // Resuming with the right token is the same visitor.
    let mine = visitor_session(&app, &m.ent_id).await;
    let res: Value = post(json!({"ent_id": m.ent_id, "token": mine.token}).to_string())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (res["resumed"].as_bool(), res["visitor_id"].as_str()),
        (Some(true), Some(mine.id.as_str()))
    );
    // Tickets need a visitor token.
    assert_eq!(
        client().post(app.url("/api/v1/visitor/ticket")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        client()
            .post(app.url("/api/v1/visitor/ticket"))
            .bearer_auth(&m.token)
            .sent()
            .await
            .status(),
        401,
        "an agent token is not a visitor token"
    );
}

/// What docs/protocol.md promises at the end of a connection: a message over 64 KiB closes it
/// with 1009 (not a dropped connection the client would retry forever), and a client's Close
/// frame is answered with its code (a clean close, not 1006).
#[tokio::test]
async fn oversized_frames_close_with_1009_and_a_clients_close_is_answered() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    };
    let app = spawn_app().await;
    let m = app.signup("Limits Shop").await;
    let visitor = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &visitor.token, "").await;
    ws.expect("hello").await;
    let frame = json!({ "type": "send", "client_msg_id": "big", "body": "x".repeat(70 * 1024) });
    ws.send(frame).await;
    assert_eq!(ws.expect_close().await, 1009);

    for socket in [Ws::visitor(&app, &visitor.token, "").await, Ws::agent(&app, &m.token, "").await]
    {
        let mut socket = socket.socket;
        let bye = CloseFrame { code: CloseCode::Away, reason: "leaving".into() };
        socket.send(Message::Close(Some(bye))).await.unwrap();
        let answer = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame,
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected the server's close frame, got {other:?}"),
            }
        };
        assert_eq!(answer.map(|f| u16::from(f.code)), Some(1001), "the code is echoed");
    }
}

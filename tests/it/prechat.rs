//! The pre-chat form: configured by admins, shown to the visitors who should fill it in,
//! checked on the server field by field, stored on the visitor for agents to see, and hard
//! to flood (proof of work after a few forms from one address, then 429).

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    identity::{new_secret, user_hash},
    ws_client::{Ws, visitor_session},
};

fn form() -> Value {
    json!({
        "enabled": true,
        "fields": [
            { "kind": "name", "label": { "en": "Your name", "zh-CN": "您的姓名" }, "required": true },
            { "kind": "email", "label": { "en": "Email" }, "required": true },
            { "kind": "phone", "label": { "en": "Phone" } },
            { "kind": "select", "key": "topic", "label": { "en": "Topic", "zh-CN": "咨询类型" }, "required": true,
              "options": [{ "en": "Pre-sales", "zh-CN": "售前" }, { "en": "After-sales", "zh-CN": "售后" }] },
            { "kind": "text", "key": "order_number", "label": { "en": "Order number" } }
        ]
    })
}

async fn session(app: &TestApp, body: Value) -> Value {
    let res = client().post(app.url("/api/v1/visitor/session")).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200, "{body}");
    res.json().await.unwrap()
}

async fn submit(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    client().post(app.url("/api/v1/visitor/prechat")).bearer_auth(token).json(&body).sent().await
}

async fn challenge(app: &TestApp, token: &str) -> Value {
    let res =
        client().post(app.url("/api/v1/visitor/prechat/challenge")).bearer_auth(token).sent().await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// What the chat page does: find a nonce whose hash has the leading zero bits asked for.
fn solve(challenge: &str, difficulty: u32) -> String {
    (0_u64..)
        .map(|n| n.to_string())
        .find(|n| kefu::visitor::prechat::work(challenge, n) >= difficulty)
        .unwrap()
}

fn answers() -> Value {
    json!({ "answers": { "name": " Alice Chen ", "email": "alice@example.com", "topic": "After-sales", "order_number": "A-1001" } })
}

#[tokio::test]
async fn visitors_fill_in_the_form_and_agents_see_the_answers() {
    let app = spawn_app().await;
    let m = app.signup("Form Shop").await;
    let other = app.signup("Formless Shop").await;

    // Admins configure it; what they send is checked and tidied.
    for bad in [
        json!({ "enabled": true, "fields": [] }),
        json!({ "fields": [{ "kind": "select", "key": "topic", "label": { "en": "T" }, "options": [{ "en": "only" }] }] }),
        json!({ "fields": [{ "kind": "text", "key": "Order No", "label": { "en": "T" } }] }),
        json!({ "fields": [{ "kind": "colour", "label": { "en": "T" } }] }),
    ] {
        let res = app.patch_settings(&m, json!({ "prechat_form": bad.clone() })).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    let res = app.patch_settings(&m, json!({ "prechat_form": form() })).await;
    assert_eq!(res.status(), 200);
    let saved: Value = res.json().await.unwrap();
    assert_eq!(
        saved["prechat_form"]["fields"][1]["label"]["zh-CN"], "Email",
        "filled from English"
    );
    assert_eq!(saved["prechat_form"]["fields"][0]["key"], "name");

    // A new visitor is asked; the form comes with the session.
    let s = session(&app, json!({ "ent_id": m.ent_id })).await;
    let token = s["token"].as_str().unwrap().to_owned();
    assert_eq!(s["prechat"]["fields"].as_array().unwrap().len(), 5);
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;

    // Every problem at once, by field; nothing is stored.
    let res = submit(
        &app,
        &token,
        json!({ "answers": { "email": "not-an-email", "topic": "Refunds", "phone": "call me" } }),
    )
    .await;
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    let fields = err["error"]["fields"].as_object().unwrap();
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["email", "name", "phone", "topic"], "{err}");
    assert_eq!(fields["name"], "Please fill this in.");
    let res = submit(&app, &token, json!({ "answers": {}, "lang": "zh-CN" })).await;
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["fields"]["email"], "请填写此项。", "in the visitor's language");
    for bad in [
        json!({ "answers": { "nickname": "x", "name": "A", "email": "a@b.co", "topic": "Pre-sales" } }),
        json!({ "answers": { "name": 42, "email": "a@b.co", "topic": "Pre-sales" } }),
        json!({ "answers": "all of them" }),
        json!({}),
    ] {
        let res = submit(&app, &token, bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
        error_code(res).await;
    }
    let visitor = app
        .get_json(&m.token, &format!("/api/v1/visitors/{}", s["visitor_id"].as_str().unwrap()))
        .await;
    assert!(visitor["prechat"].is_null());

    // The answers land on the record and in the panel, live.
    let res = submit(&app, &token, answers()).await;
    assert_eq!(res.status(), 200);
    let pushed =
        agent.expect_where("prechat", |f| f["type"] == "visitor" && f["event"] == "prechat").await;
    assert_eq!(pushed["visitor"]["name"], "Alice Chen");
    let visitor = app
        .get_json(&m.token, &format!("/api/v1/visitors/{}", s["visitor_id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (visitor["real_name"].as_str(), visitor["email"].as_str()),
        (Some("Alice Chen"), Some("alice@example.com"))
    );
    let stored = visitor["prechat"].as_array().unwrap();
    assert_eq!(stored.len(), 4, "the unanswered phone is left out");
    let topic = stored.iter().find(|a| a["key"] == "topic").unwrap();
    assert_eq!(
        (topic["value"].as_str(), topic["choice"]["zh-CN"].as_str()),
        (Some("After-sales"), Some("售后"))
    );
    assert_eq!(
        stored.iter().find(|a| a["key"] == "order_number").unwrap()["label"]["en"],
        "Order number"
    );
    assert!(visitor["prechat_at"].is_string());
    // Answered: not asked again.
    let again = session(&app, json!({ "ent_id": m.ent_id, "token": token })).await;
    assert!(again.get("prechat").is_none());

    // A visitor who chatted before the form existed is not asked either.
    let earlier = visitor_session(&app, &other.ent_id).await;
    let mut ws = Ws::visitor(&app, &earlier.token, "").await;
    ws.send_text("c1", "hello", None).await;
    ws.expect("ack").await;
    assert_eq!(app.patch_settings(&other, json!({ "prechat_form": form() })).await.status(), 200);
    let s2 = session(&app, json!({ "ent_id": other.ent_id, "token": earlier.token })).await;
    assert!(s2.get("prechat").is_none());
    // A visitor the merchant's site verified skips it.
    let secret = new_secret(&app, &m).await;
    let verified = session(
        &app,
        json!({ "ent_id": m.ent_id, "user_id": "u-7", "user_hash": user_hash(&secret, "u-7") }),
    )
    .await;
    assert_eq!(verified["verified"], true);
    assert!(verified.get("prechat").is_none());

    // Switched off: nothing to send.
    assert_eq!(
        app.patch_settings(&m, json!({ "prechat_form": { "enabled": false } })).await.status(),
        200
    );
    let fresh = session(&app, json!({ "ent_id": m.ent_id })).await;
    assert!(fresh.get("prechat").is_none());
    let res = submit(&app, fresh["token"].as_str().unwrap(), answers()).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "prechat_off");
    assert_eq!(submit(&app, "forged", answers()).await.status(), 401);
}

#[tokio::test]
async fn a_busy_address_proves_work_and_then_is_refused() {
    // The real limits (the suite's other tests turn them off).
    let limits = kefu::http::rate::VisitorLimits::default();
    let app = spawn_with(|c| c.visitor_limits = limits.clone()).await;
    let m = app.signup("Flooded Shop").await;
    let elsewhere = app.signup("Another Shop").await;
    assert_eq!(app.patch_settings(&m, json!({ "prechat_form": form() })).await.status(), 200);
    let visitor = || async {
        session(&app, json!({ "ent_id": m.ent_id })).await["token"].as_str().unwrap().to_owned()
    };

    // The first few forms from an address go through as they are.
    for _ in 0..limits.prechat_free_per_ip {
        assert_eq!(submit(&app, &visitor().await, answers()).await.status(), 200);
    }
    // Then each needs a solved challenge: without one, with a wrong nonce, with another
    // visitor's or another merchant's challenge, or one used before, it is refused.
    let token = visitor().await;
    let res = submit(&app, &token, answers()).await;
    assert_eq!(res.status(), 428);
    assert_eq!(error_code(res).await, "proof_required");
    let c = challenge(&app, &token).await;
    let (text, difficulty) =
        (c["challenge"].as_str().unwrap(), c["difficulty"].as_u64().unwrap() as u32);
    assert!(difficulty >= 16);
    let nonce = solve(text, difficulty);
    let with_proof = |challenge: &str, nonce: &str| {
        let mut body = answers();
        body["proof"] = json!({ "challenge": challenge, "nonce": nonce });
        body
    };
    let wrong = (0_u64..)
        .map(|n| n.to_string())
        .find(|n| kefu::visitor::prechat::work(text, n) < difficulty)
        .unwrap();
    assert_eq!(submit(&app, &token, with_proof(text, &wrong)).await.status(), 428);
    let someone_else = visitor().await;
    assert_eq!(submit(&app, &someone_else, with_proof(text, &nonce)).await.status(), 428);
    let foreign_visitor = session(&app, json!({ "ent_id": elsewhere.ent_id })).await;
    let foreign = challenge(&app, foreign_visitor["token"].as_str().unwrap()).await;
    let foreign_text = foreign["challenge"].as_str().unwrap();
    assert_eq!(
        submit(&app, &token, with_proof(foreign_text, &solve(foreign_text, difficulty)))
            .await
            .status(),
        428
    );
    assert_eq!(submit(&app, &token, with_proof(text, &nonce)).await.status(), 200);
    assert_eq!(
        submit(&app, &token, with_proof(text, &nonce)).await.status(),
        428,
        "a challenge is good once"
    );

    // Past the address's limit, even solved forms are refused for a while.
    let mut last = None;
    for _ in 0..limits.prechat_per_ip {
        let res = submit(&app, &visitor().await, answers()).await;
        if res.status() != 428 {
            assert_eq!(res.status(), 429);
            assert!(res.headers().contains_key("retry-after"));
            last = Some(error_code(res).await);
            break;
        }
    }
    assert_eq!(last.as_deref(), Some("rate_limited"));
}

/// The name shown for a visitor comes from the best source that gave one: their own answer
/// beats an agent's real name, which beats the page's `visitor_name`, which beats the
/// generated one; a worse source never overwrites a better.
#[tokio::test]
async fn the_best_name_wins_whatever_came_last() {
    let app = spawn_app().await;
    let m = app.signup("Names Shop").await;
    assert_eq!(app.patch_settings(&m, json!({ "prechat_form": form() })).await.status(), 200);
    let started = session(&app, json!({ "ent_id": m.ent_id, "name": "Link Name" })).await;
    assert_eq!(started["name"], "Link Name");
    let token = started["token"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/visitors/{}", started["visitor_id"].as_str().unwrap());
    let shown =
        || async { app.get_json(&m.token, &path).await["name"].as_str().unwrap().to_owned() };
    let patch = |body: Value| {
        let (app, url, token) = (&app, app.url(&path), m.token.clone());
        async move {
            let res = client().patch(url).bearer_auth(token).json(&body).send().await.unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
            let _ = app;
        }
    };
    // An agent's real name beats the page's hint.
    patch(json!({ "real_name": "Wei Zhang" })).await;
    assert_eq!(shown().await, "Wei Zhang");
    // The visitor's own answer beats the agent's.
    let res = submit(
        &app,
        &token,
        json!({ "answers": { "name": "张伟", "email": "zw@example.com", "topic": "Pre-sales" } }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(shown().await, "张伟");
    // Neither the page's hint on the next visit nor another real name replaces it.
    let again =
        session(&app, json!({ "ent_id": m.ent_id, "name": "Other Link", "token": token })).await;
    assert_eq!(again["name"], "张伟");
    patch(json!({ "real_name": "Someone Else" })).await;
    assert_eq!(shown().await, "张伟");
    // An agent renaming the visitor outright is obeyed.
    patch(json!({ "name": "Zhang Wei (VIP)" })).await;
    assert_eq!(shown().await, "Zhang Wei (VIP)");
}

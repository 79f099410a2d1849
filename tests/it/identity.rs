//! Verified widget identity: the merchant's server proves its user with an HMAC of the user
//! id (or a signed token); that user is one visitor on every device with their history,
//! and an id claimed without proof reveals nothing.

use crate::helpers::Fetch;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{helpers::*, team::add_agent, ws_client::Ws};

/// What the merchant's server computes (docs/integrations.md): hex HMAC-SHA256 of the user
/// id with the identity secret as the key.
pub(crate) fn user_hash(secret: &str, user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn identity_token(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn rotate(app: &TestApp, m: &Merchant, body: Option<Value>) -> reqwest::Response {
    let mut req = client().post(app.url("/api/v1/settings/identity_secret")).bearer_auth(&m.token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

pub(crate) async fn new_secret(app: &TestApp, m: &Merchant) -> String {
    let res = rotate(app, m, None).await;
    assert_eq!(res.status(), 200);
    let secret = res.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("idsec_") && secret.len() == 70, "{secret}");
    secret
}

async fn session(app: &TestApp, body: Value) -> reqwest::Response {
    client().post(app.url("/api/v1/visitor/session")).json(&body).send().await.unwrap()
}

async fn session_ok(app: &TestApp, body: Value) -> Value {
    let res = session(app, body.clone()).await;
    assert_eq!(res.status(), 200, "{body}");
    res.json().await.unwrap()
}

/// The bodies of the messages a visitor's socket replays from the start.
async fn history(app: &TestApp, token: &str) -> Vec<String> {
    let mut ws = Ws::visitor(app, token, "&since=0").await;
    let mut bodies = Vec::new();
    loop {
        let f = ws.next().await.expect("frames until sync_done");
        match f["type"].as_str().unwrap() {
            "message" => bodies.push(f["body"].as_str().unwrap().to_owned()),
            "sync_done" => return bodies,
            _ => {}
        }
    }
}

async fn say(app: &TestApp, token: &str, text: &str) {
    let mut ws = Ws::visitor(app, token, "").await;
    ws.send_text(&format!("c-{}", text.len()), text, None).await;
    let f = ws.expect_where("ack", |f| f["type"] == "ack" || f["type"] == "error").await;
    assert_eq!(f["type"], "ack", "{f}");
}

#[tokio::test]
async fn a_verified_user_is_one_visitor_on_every_device_and_a_bare_claim_sees_nothing() {
    let app = spawn_app().await;
    let m = app.signup("Identity Shop").await;
    let other = app.signup("Other Shop").await;
    let secret = new_secret(&app, &m).await;
    let shown: Value = app.get_as(&m, "/api/v1/settings/identity").await.json().await.unwrap();
    assert_eq!(shown["secret"], secret.as_str());
    let settings: Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(settings["identity_secret_set"], true);
    let proof =
        json!({ "ent_id": m.ent_id, "user_id": "u-1", "user_hash": user_hash(&secret, "u-1") });

    // The phone: proven, so verified; it says something.
    let phone = session_ok(&app, proof.clone()).await;
    assert_eq!(phone["verified"], true);
    assert_eq!(phone["user_id"], "u-1");
    assert_eq!(phone["resumed"], false);
    let phone_token = phone["token"].as_str().unwrap();
    say(&app, phone_token, "ordered on my phone").await;

    // The laptop, with no token of its own: the same visitor, with the history.
    let laptop = session_ok(&app, proof.clone()).await;
    assert_eq!(laptop["visitor_id"], phone["visitor_id"]);
    assert_eq!(laptop["resumed"], true);
    assert!(
        history(&app, laptop["token"].as_str().unwrap())
            .await
            .contains(&"ordered on my phone".to_owned())
    );

    // Claims without a valid proof: anonymous new visitors who see nothing.
    let forged = [
        json!({ "ent_id": m.ent_id, "user_id": "u-1" }),
        json!({ "ent_id": m.ent_id, "user_id": "u-1", "user_hash": user_hash(&secret, "u-2") }),
        json!({ "ent_id": m.ent_id, "user_id": "u-1", "user_hash": user_hash("idsec_guess", "u-1") }),
        json!({ "ent_id": m.ent_id, "user_id": "u-1", "user_hash": "not hex" }),
        json!({ "ent_id": m.ent_id, "user_id": "u-1", "identity_token": "a.b.c" }),
    ];
    for body in forged {
        let s = session_ok(&app, body.clone()).await;
        assert_eq!(s["verified"], false, "{body}");
        assert!(s["user_id"].is_null());
        assert_ne!(s["visitor_id"], phone["visitor_id"], "{body}");
        assert!(history(&app, s["token"].as_str().unwrap()).await.is_empty(), "{body}");
    }
    // Agents see the claim as a hint, apart from the verified id.
    let claimed = session_ok(&app, json!({ "ent_id": m.ent_id, "user_id": "u-1" })).await;
    let detail: Value = app
        .get_as(&m, &format!("/api/v1/visitors/{}", claimed["visitor_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert!(detail["user_id"].is_null());
    assert_eq!(detail["claimed_user_id"], "u-1");
    let detail: Value = app
        .get_as(&m, &format!("/api/v1/visitors/{}", phone["visitor_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["user_id"], "u-1");
    assert!(detail["verified_at"].is_string());
    let found: Value = app.get_as(&m, "/api/v1/visitors?q=u-1").await.json().await.unwrap();
    let found: Vec<&Value> = found["visitors"].as_array().unwrap().iter().collect();
    assert_eq!(found.len(), 1, "only the verified visitor is the user: {found:?}");
    assert_eq!(found[0]["id"], phone["visitor_id"]);

    // The phone's token without the proof (logged out; someone else at the phone): a new
    // anonymous visitor, not the user's history.
    let after_logout = session_ok(&app, json!({ "ent_id": m.ent_id, "token": phone_token })).await;
    assert_ne!(after_logout["visitor_id"], phone["visitor_id"]);
    assert!(history(&app, after_logout["token"].as_str().unwrap()).await.is_empty());

    // Someone who chatted anonymously and then logs in keeps what they said.
    let anon = session_ok(&app, json!({ "ent_id": m.ent_id })).await;
    say(&app, anon["token"].as_str().unwrap(), "before logging in").await;
    let logged_in = session_ok(
        &app,
        json!({ "ent_id": m.ent_id, "token": anon["token"], "user_id": "u-2", "user_hash": user_hash(&secret, "u-2") }),
    )
    .await;
    assert_eq!(logged_in["visitor_id"], anon["visitor_id"]);
    assert_eq!(logged_in["verified"], true);
    let elsewhere = session_ok(
        &app,
        json!({ "ent_id": m.ent_id, "user_id": "u-2", "user_hash": user_hash(&secret, "u-2") }),
    )
    .await;
    assert_eq!(elsewhere["visitor_id"], anon["visitor_id"]);
    // Another user logging in on that browser does not take it over.
    let third = session_ok(
        &app,
        json!({ "ent_id": m.ent_id, "token": logged_in["token"], "user_id": "u-3", "user_hash": user_hash(&secret, "u-3") }),
    )
    .await;
    assert_ne!(third["visitor_id"], anon["visitor_id"]);
    assert!(history(&app, third["token"].as_str().unwrap()).await.is_empty());

    // Another merchant: the proof is worth nothing there, and nothing of this one shows.
    let there = session_ok(
        &app,
        json!({ "ent_id": other.ent_id, "user_id": "u-1", "user_hash": user_hash(&secret, "u-1") }),
    )
    .await;
    assert_eq!(there["verified"], false);
    let res = app
        .get_as(&other, &format!("/api/v1/visitors/{}", phone["visitor_id"].as_str().unwrap()))
        .await;
    assert_eq!(res.status(), 404);
    let theirs: Value = app.get_as(&other, "/api/v1/settings/identity").await.json().await.unwrap();
    assert_eq!(theirs["secret"], "", "each merchant has its own secret");
    let none: Value = app.get_as(&other, "/api/v1/visitors?q=u-1").await.json().await.unwrap();
    assert_eq!(none["visitors"], json!([]));
    // Another merchant's secret proves nothing here either.
    let other_secret = new_secret(&app, &other).await;
    let s = session_ok(&app, json!({ "ent_id": m.ent_id, "user_id": "u-1", "user_hash": user_hash(&other_secret, "u-1") })).await;
    assert_eq!(s["verified"], false);
}

#[tokio::test]
async fn enforcement_rotation_and_signed_tokens() {
    let app = spawn_app().await;
    let m = app.signup("Strict Shop").await;
    let patch = |body: Value| app.patch_settings(&m, body);
    // Enforcement needs a secret to verify with.
    let res = patch(json!({ "identity_required": true })).await;
    assert_eq!(res.status(), 422);
    let first = new_secret(&app, &m).await;
    let res = patch(json!({ "identity_required": true })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["identity_required"], true);

    let claim = |secret: &str, id: &str| json!({ "ent_id": m.ent_id, "user_id": id, "user_hash": user_hash(secret, id) });
    // Unproven claims are refused; people who claim nothing still chat.
    let res = session(&app, json!({ "ent_id": m.ent_id, "user_id": "u-9" })).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "identity_invalid");
    let res = session(&app, claim("idsec_wrong", "u-9")).await;
    assert_eq!(error_code(res).await, "identity_invalid");
    assert_eq!(session_ok(&app, json!({ "ent_id": m.ent_id })).await["verified"], false);
    let user = session_ok(&app, claim(&first, "u-9")).await;
    assert_eq!(user["verified"], true);
    // Bad ids are input errors, not crashes.
    for id in ["", "   ", &"x".repeat(129), "a\u{0}b"] {
        let res = session(&app, claim(&first, id)).await;
        assert_eq!(res.status(), 422, "{id:?}");
    }

    // Rotation: the previous secret keeps working for the grace period (24 h by default).
    let res = rotate(&app, &m, None).await;
    let out: Value = res.json().await.unwrap();
    let second = out["secret"].as_str().unwrap().to_owned();
    let until: chrono::DateTime<chrono::Utc> =
        out["previous_valid_until"].as_str().unwrap().parse().unwrap();
    let hours = (until - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");
    assert_eq!(session_ok(&app, claim(&first, "u-9")).await["visitor_id"], user["visitor_id"]);
    assert_eq!(session_ok(&app, claim(&second, "u-9")).await["visitor_id"], user["visitor_id"]);
    // A leaked secret can be cut off at once.
    let res = rotate(&app, &m, Some(json!({ "keep_previous_hours": 500 }))).await;
    assert_eq!(res.status(), 422);
    let out: Value =
        rotate(&app, &m, Some(json!({ "keep_previous_hours": 0 }))).await.json().await.unwrap();
    assert!(out["previous_valid_until"].is_null());
    let third = out["secret"].as_str().unwrap().to_owned();
    for old in [&first, &second] {
        assert_eq!(error_code(session(&app, claim(old, "u-9")).await).await, "identity_invalid");
    }
    assert_eq!(session_ok(&app, claim(&third, "u-9")).await["visitor_id"], user["visitor_id"]);

    // A signed token proves the id and carries the name and email.
    let now = chrono::Utc::now().timestamp();
    let token = identity_token(
        &third,
        json!({ "sub": "u-10", "exp": now + 300, "name": "Ada Lovelace", "email": "ada@example.com" }),
    );
    let s = session_ok(&app, json!({ "ent_id": m.ent_id, "identity_token": token })).await;
    assert_eq!(s["verified"], true);
    assert_eq!(s["user_id"], "u-10");
    assert_eq!(s["name"], "Ada Lovelace");
    let detail: Value = app
        .get_as(&m, &format!("/api/v1/visitors/{}", s["visitor_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["email"], "ada@example.com");
    for bad in [
        identity_token(&third, json!({ "sub": "u-10", "exp": now - 60 })),
        identity_token(&third, json!({ "sub": "u-10" })),
        identity_token(&first, json!({ "sub": "u-10", "exp": now + 300 })),
    ] {
        let res = session(&app, json!({ "ent_id": m.ent_id, "identity_token": bad })).await;
        assert_eq!(error_code(res).await, "identity_invalid");
    }

    // Only admins see or rotate the secret.
    let (_, _, agent) = add_agent(&app, &m, "agent").await;
    let res = client().get(app.url("/api/v1/settings/identity")).bearer_auth(&agent).sent().await;
    assert_eq!(res.status(), 403);
    let res =
        client().post(app.url("/api/v1/settings/identity_secret")).bearer_auth(&agent).sent().await;
    assert_eq!(res.status(), 403);
    let res = client()
        .post(app.url("/api/v1/settings/identity_secret"))
        .bearer_auth(&m.token)
        .json(&json!({ "keep_previous_hours": "soon" }))
        .sent()
        .await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn devices_logging_in_at_once_make_one_visitor() {
    let app = spawn_app().await;
    let m = app.signup("Busy Shop").await;
    let secret = new_secret(&app, &m).await;
    let body =
        json!({ "ent_id": m.ent_id, "user_id": "u-77", "user_hash": user_hash(&secret, "u-77") });
    let sessions = futures::future::join_all((0..20).map(|_| session_ok(&app, body.clone()))).await;
    let ids: std::collections::HashSet<&str> =
        sessions.iter().map(|s| s["visitor_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

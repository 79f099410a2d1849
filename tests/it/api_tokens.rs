//! API tokens: created by admins (read or write), hashed at rest, shown once, last use
//! recorded, revocable; they reach only the REST API's routes, within their merchant; a
//! merchant's system posts messages into conversations as an agent or as a bot.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

async fn create_token(app: &TestApp, m: &Merchant, body: Value) -> reqwest::Response {
    client().post(app.url("/api/v1/api_tokens")).bearer_auth(&m.token).json(&body).sent().await
}

pub(crate) async fn new_token(app: &TestApp, m: &Merchant, scope: &str) -> (i64, String) {
    let res =
        create_token(app, m, json!({ "name": format!("{scope} integration"), "scope": scope }))
            .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("kefu_{}_", m.ent_id)), "{token}");
    assert!(token.starts_with(body["prefix"].as_str().unwrap()));
    (body["id"].as_i64().unwrap(), token)
}

fn post_message(
    app: &TestApp,
    token: &str,
    conversation: i64,
    body: Value,
) -> reqwest::RequestBuilder {
    client()
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .json(&body)
}

#[tokio::test]
async fn a_merchants_system_reads_and_writes_through_the_api() {
    let app = spawn_app().await;
    let m = app.signup("API Shop").await;
    let other = app.signup("Other API Shop").await;
    let (_, write) = new_token(&app, &m, "write").await;
    let (read_id, read) = new_token(&app, &m, "read").await;

    // The list shows the tokens, never the secrets; the database keeps only hashes.
    let list = app.get_json(&m.token, "/api/v1/api_tokens").await;
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t.get("token").is_none() && t["last_used_at"].is_null()));
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    let stored: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select token_sha256 from {schema}.api_tokens"
    )))
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(stored.iter().all(|h| h.len() == 64 && !write.contains(h.as_str())));

    // A visitor writes; the merchant's system sees it and answers as a bot, then as an agent.
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.send_text("v1", "Where is order #1042?", None).await;
    let conversation = visitor.expect("ack").await["conversation_id"].as_i64().unwrap();
    let page =
        client().get(app.url("/api/v1/conversations?view=all")).bearer_auth(&read).sent().await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.json::<Value>().await.unwrap()["conversations"][0]["id"], conversation);
    let res = post_message(&app, &write, conversation, json!({
        "sender": "bot", "kind": "product", "body": "Your order has shipped",
        "product": { "title": "Order #1042 — shipped", "price": "¥199", "url": "https://shop.example/orders/1042" },
        "client_msg_id": "order-1042-shipped"
    }))
    .sent()
    .await;
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(
        (stored["sender"]["kind"].as_str(), stored["kind"].as_str()),
        (Some("bot"), Some("product"))
    );
    let pushed = visitor
        .expect_where("the product card", |f| f["type"] == "message" && f["kind"] == "product")
        .await;
    assert_eq!(pushed["payload"]["product"]["title"], "Order #1042 — shipped");
    // A retry stores nothing new.
    let again = post_message(
        &app,
        &write,
        conversation,
        json!({
            "sender": "bot", "kind": "product", "body": "Your order has shipped",
            "product": { "title": "Order #1042 — shipped" }, "client_msg_id": "order-1042-shipped"
        }),
    )
    .sent()
    .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["id"].clone(), again["duplicate"].clone()),
        (stored["id"].clone(), json!(true))
    );
    // A rich card: the visitor gets the card as sent, its summary is the title.
    let res = post_message(&app, &write, conversation, json!({
        "sender": "bot", "kind": "card",
        "card": {
            "title": "Order #1042 is on its way",
            "text": "Arrives Thursday.\nThank you for shopping with us!",
            "image": "https://shop.example/img/1042.jpg",
            "fields": [{ "label": "Carrier", "value": "SF Express" }, { "label": "Tracking", "value": "SF1234567890" }],
            "buttons": [{ "label": "Track parcel", "url": "https://shop.example/track/SF1234567890" }]
        }
    }))
    .sent()
    .await;
    assert_eq!(res.status(), 201);
    let card: Value = res.json().await.unwrap();
    assert_eq!(
        (card["kind"].as_str(), card["body"].as_str()),
        (Some("card"), Some("Order #1042 is on its way"))
    );
    let pushed = visitor
        .expect_where("the rich card", |f| f["type"] == "message" && f["kind"] == "card")
        .await;
    assert_eq!(pushed["payload"]["card"]["fields"][1]["value"], "SF1234567890");
    assert_eq!(pushed["payload"]["card"]["buttons"][0]["label"], "Track parcel");
    assert_eq!(
        pushed["payload"]["card"]["text"],
        "Arrives Thursday.\nThank you for shopping with us!"
    );
    // Visitors cannot send cards.
    visitor
        .send(json!({ "type": "send", "client_msg_id": "v-card", "kind": "card", "card": { "title": "Free money", "buttons": [{ "label": "Claim", "url": "https://evil.example" }] } }))
        .await;
    let refused = visitor.expect("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_msg_id"].as_str()),
        (Some("bad_kind"), Some("v-card"))
    );

    let res =
        post_message(&app, &write, conversation, json!({ "body": "Anything else?" })).sent().await;
    assert_eq!(res.status(), 201);
    let as_agent: Value = res.json().await.unwrap();
    assert_eq!(as_agent["sender"]["kind"], "agent");
    let c = app.get_json(&m.token, &format!("/api/v1/conversations/{conversation}")).await;
    assert_eq!(c["status"], "open", "answering as an agent claims it");

    // Bad messages are refused clearly.
    for (body, code) in [
        (json!({ "body": "   " }), "empty_message"),
        (
            json!({ "kind": "product", "product": { "title": "x", "url": "javascript:alert(1)" } }),
            "bad_product",
        ),
        (json!({ "body": "x".repeat(5001) }), "message_too_long"),
        (json!({ "kind": "card" }), "bad_card"),
        (json!({ "kind": "card", "card": { "title": "  " } }), "bad_card"),
        (
            json!({ "kind": "card", "card": { "title": "x", "image": "data:image/png;base64,AAAA" } }),
            "bad_card",
        ),
        (
            json!({ "kind": "card", "card": { "title": "x", "buttons": [{ "label": "Go", "url": "javascript:alert(1)" }] } }),
            "bad_card",
        ),
        (
            json!({ "kind": "card", "card": { "title": "x", "buttons": (0..4).map(|i| json!({ "label": format!("b{i}"), "url": "https://x.example" })).collect::<Vec<_>>() } }),
            "bad_card",
        ),
        (
            json!({ "kind": "card", "card": { "title": "x", "fields": (0..11).map(|i| json!({ "label": format!("f{i}"), "value": "v" })).collect::<Vec<_>>() } }),
            "bad_card",
        ),
        (
            json!({ "kind": "card", "card": { "title": "x", "fields": [{ "label": "", "value": "v" }] } }),
            "bad_card",
        ),
        (json!({ "kind": "card", "card": { "title": "x", "html": "<script>" } }), "bad_frame"),
        (json!({ "body": "hi", "sender": "robot" }), "validation_failed"),
        (json!({ "kind": "image", "body": "hi" }), "validation_failed"),
        (json!({ "body": "hi", "client_msg_id": "not valid!" }), "bad_client_msg_id"),
    ] {
        let res = post_message(&app, &write, conversation, body.clone()).send().await.unwrap();
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(error_code(res).await, code, "{body}");
    }

    // A read token reads only; no token reaches beyond the API's routes.
    let res =
        post_message(&app, &read, conversation, json!({ "body": "hi" })).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "token_scope");
    for (method, path) in [
        ("GET", "/api/v1/settings"),
        ("GET", "/api/v1/api_tokens"),
        ("GET", "/api/v1/stats"),
        ("POST", "/api/v1/api_tokens"),
    ] {
        let res = client()
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&write)
            .json(&json!({ "name": "x", "scope": "write" }))
            .sent()
            .await;
        assert_eq!(res.status(), 403, "{method} {path}");
        assert_eq!(error_code(res).await, "token_scope");
    }
    // Another merchant's objects do not exist for it.
    let res = client()
        .get(app.url(&format!("/api/v1/conversations?ent_id={}", other.ent_id)))
        .bearer_auth(&write)
        .sent()
        .await;
    assert_eq!(res.status(), 404);
    // (Each merchant counts its ids from 1: the other's conversation gets an id this one
    // does not have.)
    crate::isolation::ids_apart(&app, &other, 1_000_000).await;
    let ov = visitor_session(&app, &other.ent_id).await;
    let mut ows = Ws::visitor(&app, &ov.token, "").await;
    ows.send_text("o1", "hello", None).await;
    let theirs = ows.expect("ack").await["conversation_id"].as_i64().unwrap();
    let res = post_message(&app, &write, theirs, json!({ "body": "hi" })).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // Nonsense is not a token.
    for bad in [
        "kefu_",
        "kefu_nothing",
        &format!("kefu_{}_0000", m.ent_id),
        &format!("kefu_{}_{}", other.ent_id, &write[write.len() - 64..]),
    ] {
        let res =
            client().get(app.url("/api/v1/conversations")).bearer_auth(bad).send().await.unwrap();
        assert_eq!(res.status(), 401, "{bad}");
    }

    // Last use is shown; a revoked token stops at once.
    let list = app.get_json(&m.token, "/api/v1/api_tokens").await;
    assert!(list["tokens"].as_array().unwrap().iter().all(|t| t["last_used_at"].is_string()));
    let revoke = |id: i64, who: &Merchant| {
        client().delete(app.url(&format!("/api/v1/api_tokens/{id}"))).bearer_auth(&who.token).send()
    };
    assert_eq!(revoke(read_id, &other).await.unwrap().status(), 404, "another merchant's token");
    assert_eq!(revoke(read_id, &m).await.unwrap().status(), 204);
    assert_eq!(revoke(read_id, &m).await.unwrap().status(), 404);
    let res =
        client().get(app.url("/api/v1/conversations")).bearer_auth(&read).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        app.get_json(&m.token, "/api/v1/api_tokens").await["tokens"].as_array().unwrap().len(),
        1
    );
    let audit = app.get_json(&m.token, "/api/v1/audit").await;
    assert!(audit.to_string().contains("api_token.revoke"));
}

#[tokio::test]
async fn token_requests_are_checked() {
    let app = spawn_app().await;
    let m = app.signup("Strict API Shop").await;
    for body in [
        json!({ "name": "x", "scope": "admin" }),
        json!({ "name": "  ", "scope": "read" }),
        json!({ "scope": "read" }),
        json!({ "name": "x".repeat(81), "scope": "read" }),
    ] {
        let res = create_token(&app, &m, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        error_code(res).await;
    }
    assert!(
        app.get_json(&m.token, "/api/v1/api_tokens").await["tokens"].as_array().unwrap().is_empty()
    );
}

/// A token acts as its admin: it stops when they are demoted to agent, and when they are
/// disabled (promoted again, a still-valid token works again; a disabled admin's does not).
#[tokio::test]
async fn a_token_stops_with_its_admins_rights() {
    let app = spawn_app().await;
    let m = app.signup("Admin Rights Shop").await;
    let (agent_id, _, admin_session) = crate::team::add_agent(&app, &m, "admin").await;
    let admin = Merchant { ent_id: m.ent_id.clone(), token: admin_session, email: String::new() };
    let (_, token) = new_token(&app, &admin, "read").await;
    let reads = || async {
        client().get(app.url("/api/v1/conversations")).bearer_auth(&token).sent().await.status()
    };
    assert_eq!(reads().await, 200);
    let change = |body: Value| {
        client()
            .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
            .bearer_auth(&m.token)
            .json(&body)
            .send()
    };
    assert_eq!(change(json!({ "role": "agent" })).await.unwrap().status(), 200);
    assert_eq!(reads().await, 401, "a demoted admin's token");
    assert_eq!(change(json!({ "role": "admin" })).await.unwrap().status(), 200);
    assert_eq!(reads().await, 200, "promoted again");
    assert_eq!(change(json!({ "disabled": true })).await.unwrap().status(), 200);
    assert_eq!(reads().await, 401, "a disabled admin's token");
}

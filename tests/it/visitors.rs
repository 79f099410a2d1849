//! What agents do to visitor records: names and contacts, notes, tags, the blacklist,
//! clearing history. Changes reach the other agents live.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    team::add_agent,
    ws_client::{Ws, visitor_session},
};

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = client().request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn agents_edit_names_notes_and_tags_and_colleagues_see_it() {
    let app = spawn_app().await;
    let m = app.signup("Profile Shop").await;
    let (_, _, colleague) = add_agent(&app, &m, "agent").await;
    let mut colleague_ws = Ws::agent(&app, &colleague, "").await;
    colleague_ws.expect("hello").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let path = format!("/api/v1/visitors/{}", v.id);
    use reqwest::Method as M;

    let res = call(&app, &m.token, M::PATCH, &path, Some(json!({ "name": "  Alice  ", "real_name": "Alice Wong", "email": "alice@example.com", "phone": "+86 138-0000-0000" }))).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["name"], "Alice");
    let pushed = colleague_ws.expect("visitor").await;
    assert_eq!(pushed["visitor"]["real_name"], "Alice Wong");
    // An empty string clears an optional field; an absent one stays.
    let out: Value = call(&app, &m.token, M::PATCH, &path, Some(json!({ "real_name": "" })))
        .await
        .json()
        .await
        .unwrap();
    assert!(out["real_name"].is_null());
    assert_eq!(out["email"], "alice@example.com");

    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(81) }), "name"),
        (json!({ "email": "nope" }), "email"),
        (json!({ "phone": "call me" }), "phone"),
        (json!({ "name": "a\u{0007}b" }), "name"),
    ] {
        let res = call(&app, &m.token, M::PATCH, &path, Some(body.clone())).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["fields"][field].is_string(), "{body} → {err}");
    }

    // Tags: created on first use, matched in any case, removed by name.
    for tag in ["VIP", "vip", "refund"] {
        let res =
            call(&app, &m.token, M::POST, &format!("{path}/tags"), Some(json!({ "name": tag })))
                .await;
        assert_eq!(res.status(), 200);
    }
    let detail: Value = app.get_as(&m, &path).await.json().await.unwrap();
    assert_eq!(detail["tags"], json!(["refund", "VIP"]));
    let tags: Value = app.get_as(&m, "/api/v1/tags").await.json().await.unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 2);
    let filtered: Value = app.get_as(&m, "/api/v1/visitors?tag=vip").await.json().await.unwrap();
    assert_eq!(filtered["visitors"][0]["id"], v.id.as_str());
    let res = call(&app, &m.token, M::DELETE, &format!("{path}/tags/Vip"), None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["tags"], json!(["refund"]));
    let res = call(&app, &m.token, M::DELETE, &format!("{path}/tags/Vip"), None).await;
    assert_eq!(res.status(), 404);
    let res =
        call(&app, &m.token, M::POST, &format!("{path}/tags"), Some(json!({ "name": "a,b" })))
            .await;
    assert_eq!(res.status(), 422);

    // Notes: newest first with their author; the author or an admin deletes them.
    let res = call(
        &app,
        &colleague,
        M::POST,
        &format!("{path}/notes"),
        Some(json!({ "body": "Wants a refund\nfor order 1042" })),
    )
    .await;
    assert_eq!(res.status(), 201);
    let note: Value = res.json().await.unwrap();
    assert_eq!(note["agent_name"], "Lin Mei");
    call(&app, &m.token, M::POST, &format!("{path}/notes"), Some(json!({ "body": "Called back" })))
        .await;
    let detail: Value = app.get_as(&m, &path).await.json().await.unwrap();
    assert_eq!(detail["notes"][0]["body"], "Called back");
    assert_eq!(detail["notes"][1]["body"], "Wants a refund\nfor order 1042");
    let owners_note = detail["notes"][0]["id"].as_i64().unwrap();
    let res = call(&app, &colleague, M::DELETE, &format!("{path}/notes/{owners_note}"), None).await;
    assert_eq!(res.status(), 403, "not the author, not an admin");
    let res =
        call(&app, &colleague, M::DELETE, &format!("{path}/notes/{}", note["id"]), None).await;
    assert_eq!(res.status(), 204);
    let res =
        call(&app, &m.token, M::POST, &format!("{path}/notes"), Some(json!({ "body": "   " })))
            .await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn blacklisted_visitors_and_addresses_are_shut_out() {
    let app = spawn_app().await;
    let m = app.signup("Block Shop").await;
    use reqwest::Method as M;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut vws = Ws::visitor(&app, &v.token, "").await;
    vws.send_text("c1", "spam", None).await;
    vws.expect("ack").await;

    let res = call(
        &app,
        &m.token,
        M::POST,
        "/api/v1/blacklist",
        Some(json!({ "visitor_id": v.id, "reason": "spam" })),
    )
    .await;
    assert_eq!(res.status(), 201);
    let entry: Value = res.json().await.unwrap();
    assert_eq!(entry["visitor_id"], v.id.as_str());
    // The live socket closes with 4003 and the visitor cannot come back.
    assert_eq!(vws.expect_close().await, 4003);
    let res = client().post(app.url("/api/v1/visitor/ticket")).bearer_auth(&v.token).sent().await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "visitor_blocked");
    let res =
        call(&app, &m.token, M::POST, "/api/v1/blacklist", Some(json!({ "visitor_id": v.id })))
            .await;
    assert_eq!(res.status(), 409);

    // An address range: new sessions from it are refused (test clients come from 127.0.0.1).
    let res =
        call(&app, &m.token, M::POST, "/api/v1/blacklist", Some(json!({ "ip": "127.0.0.9/24" })))
            .await;
    assert_eq!(res.status(), 201);
    let range: Value = res.json().await.unwrap();
    assert_eq!(range["ip"], "127.0.0.0/24");
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 403);

    for body in [
        json!({}),
        json!({ "ip": "10.0.0.0/4" }),
        json!({ "ip": "example.com" }),
        json!({ "visitor_id": v.id, "ip": "1.2.3.4" }),
    ] {
        let res = call(&app, &m.token, M::POST, "/api/v1/blacklist", Some(body.clone())).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    let list: Value = app.get_as(&m, "/api/v1/blacklist").await.json().await.unwrap();
    assert_eq!(list["entries"].as_array().unwrap().len(), 2);

    // Agents block; only admins unblock.
    let (_, _, agent) = add_agent(&app, &m, "agent").await;
    let res =
        call(&app, &agent, M::DELETE, &format!("/api/v1/blacklist/{}", range["id"]), None).await;
    assert_eq!(res.status(), 403);
    let res =
        call(&app, &m.token, M::DELETE, &format!("/api/v1/blacklist/{}", range["id"]), None).await;
    assert_eq!(res.status(), 204);
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
}

/// A block holds at every visitor entry, for a visitor who already holds a token and a
/// socket: the session, tickets (even one taken before), the socket, uploads, left messages,
/// the pre-chat form, ratings and page views.
#[tokio::test]
async fn an_address_block_holds_at_every_visitor_entry() {
    let app = spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let m = app.signup("Everywhere Shop").await;
    use reqwest::Method as M;
    // The visitor started from one address (which their record keeps) …
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "ent_id": m.ent_id }))
        .sent()
        .await;
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    // … and goes on from another (127.0.0.1: no forwarding header), where it is blocked.
    let mut ws = Ws::visitor(&app, &token, "").await;
    ws.send_text("c1", "hello", None).await;
    let ack = ws.expect("ack").await;
    let early_ticket = crate::ws_client::visitor_ticket(&app, &token).await;
    let res =
        call(&app, &m.token, M::POST, "/api/v1/blacklist", Some(json!({ "ip": "127.0.0.1" })))
            .await;
    assert_eq!(res.status(), 201);
    assert_eq!(ws.expect_close().await, 4003, "the socket from the blocked address closes");

    let blocked = |res: reqwest::Response, what: &'static str| async move {
        assert_eq!(res.status(), 403, "{what}");
        assert_eq!(error_code(res).await, "visitor_blocked", "{what}");
    };
    let visitor =
        |method: M, path: &str| client().request(method, app.url(path)).bearer_auth(&token);
    blocked(visitor(M::POST, "/api/v1/visitor/ticket").send().await.unwrap(), "ticket").await;
    let url = crate::ws_client::ws_url(&app, &format!("/ws/visitor?ticket={early_ticket}"));
    assert!(Ws::connect(&url).await.is_err(), "a ticket taken before the block");
    let resume = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "token": token }))
        .sent()
        .await;
    blocked(resume, "session").await;
    let file = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(png(4, 4)).file_name("a.png"));
    let res = visitor(M::POST, "/api/v1/uploads").multipart(file).send().await.unwrap();
    blocked(res, "upload").await;
    let res = visitor(M::POST, "/api/v1/visitor/leave_message")
        .json(&json!({ "body": "call me" }))
        .sent()
        .await;
    blocked(res, "leave-message").await;
    let res =
        visitor(M::POST, "/api/v1/visitor/prechat").json(&json!({ "answers": {} })).sent().await;
    blocked(res, "pre-chat").await;
    let res = visitor(M::POST, "/api/v1/visitor/rating")
        .json(&json!({ "conversation_id": ack["conversation_id"], "score": 1 }))
        .sent()
        .await;
    blocked(res, "rating").await;
    let res = visitor(M::POST, "/api/v1/visitor/page_views")
        .json(&json!({ "views": [{ "url": "https://shop.example/" }] }))
        .sent()
        .await;
    blocked(res, "page views").await;

    // From an address that is not blocked, the same visitor is served.
    let res = visitor(M::POST, "/api/v1/visitor/ticket")
        .header("x-forwarded-for", "198.51.100.7")
        .sent()
        .await;
    assert_eq!(res.status(), 200);
}

/// What a visitor says about where they came from and what they look at reaches agents as
/// links and pictures only when it is http(s): `javascript:` and `data:` are dropped.
#[tokio::test]
async fn visitor_supplied_links_are_http_only() {
    let app = spawn_app().await;
    let m = app.signup("Links Shop").await;
    let extra = json!({ "visitorProduct": {
        "title": "Lamp", "url": "javascript:alert(document.cookie)", "img": "data:image/svg+xml,<svg onload=alert(1)>"
    }, "pageUrl": "javascript:alert(2)" });
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({
            "ent_id": m.ent_id,
            "refer": "javascript:alert(3)",
            "landing_url": "data:text/html,<script>alert(4)</script>",
            "extra": extra,
        }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let id = res.json::<Value>().await.unwrap()["visitor_id"].as_str().unwrap().to_owned();
    let v = app.get_json(&m.token, &format!("/api/v1/visitors/{id}")).await;
    let v = if v["visitor"].is_object() { v["visitor"].clone() } else { v };
    assert!(v["referrer"].is_null(), "{v}");
    assert!(v["landing_url"].is_null(), "{v}");
    assert_eq!(v["extra"]["visitorProduct"]["url"], "");
    assert_eq!(v["extra"]["visitorProduct"]["img"], "");
    assert_eq!(v["extra"]["visitorProduct"]["title"], "Lamp");
    assert_eq!(v["extra"]["pageUrl"], "");
    // http(s) stays.
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "refer": "https://search.example/?q=lamp", "landing_url": "http://shop.example/lamps" }))
        .sent()
        .await;
    let id = res.json::<Value>().await.unwrap()["visitor_id"].as_str().unwrap().to_owned();
    let v = app.get_json(&m.token, &format!("/api/v1/visitors/{id}")).await;
    let v = if v["visitor"].is_object() { v["visitor"].clone() } else { v };
    assert_eq!(v["referrer"], "https://search.example/?q=lamp");
    assert_eq!(v["landing_url"], "http://shop.example/lamps");
    // kefu's own pages are not where a visitor came from (a reloaded chat names itself).
    let own = app.url(&format!("/chatIndex?ent_id={}", m.ent_id));
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "refer": own }))
        .sent()
        .await;
    let id = res.json::<Value>().await.unwrap()["visitor_id"].as_str().unwrap().to_owned();
    let v = app.get_json(&m.token, &format!("/api/v1/visitors/{id}")).await;
    let v = if v["visitor"].is_object() { v["visitor"].clone() } else { v };
    assert!(v["referrer"].is_null(), "{v}");
}

/// Names are stored as they show: a visitor (or an agent) cannot make theirs read backwards,
/// look blank or pose as another with invisible characters.
#[tokio::test]
async fn names_keep_only_what_shows() {
    let app = spawn_app().await;
    let m = app.signup("Names Shop").await;
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "name": "\u{202E}nimdA\u{200B} " }))
        .sent()
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "nimdA");
    let blank = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "name": "\u{200B}\u{2066}\u{3164}" }))
        .json_body::<Value>()
        .await;
    assert!(blank["name"].as_str().unwrap().starts_with("Visitor "), "{blank}");
    // An agent naming a visitor, and an agent's own name.
    let path = format!("/api/v1/visitors/{}", body["visitor_id"].as_str().unwrap());
    let res = call(
        &app,
        &m.token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({ "name": "Li\u{200D}\u{202E}Wei" })),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_json(&m.token, &path).await["name"], "LiWei");
    let res =
        call(&app, &m.token, reqwest::Method::PATCH, &path, Some(json!({ "name": "\u{200B}" })))
            .await;
    assert_eq!(res.status(), 422, "nothing visible is no name");
    let me = app.get_json(&m.token, "/api/v1/me").await;
    let res = call(
        &app,
        &m.token,
        reqwest::Method::PATCH,
        &format!("/api/v1/agents/{}", me["agent"]["id"]),
        Some(json!({ "display_name": "\u{202E}Support" })),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["display_name"], "Support");
}

#[tokio::test]
async fn clearing_history_removes_messages_and_files() {
    let app = spawn_app().await;
    let m = app.signup("Clear Shop").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let upload: Value =
        client()
            .post(app.url("/api/v1/uploads"))
            .bearer_auth(&v.token)
            .multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(png(64, 48)).file_name("receipt.png"),
            ))
            .sent()
            .await
            .json()
            .await
            .unwrap();
    let mut vws = Ws::visitor(&app, &v.token, "").await;
    vws.send_text("c1", "my card number is …", None).await;
    let ack = vws.expect("ack").await;
    vws.send(json!({ "type": "send", "client_msg_id": "c2", "kind": "image", "attachment": { "id": upload["id"] } })).await;
    vws.expect_where("image ack", |f| f["type"] == "ack" && f["client_msg_id"] == "c2").await;
    let conversation = ack["conversation_id"].as_i64().unwrap();
    let usage = || async {
        sqlx::query_scalar::<_, i64>(
            "select visitor_storage_bytes from public.tenants where ent_id = $1",
        )
        .bind(&m.ent_id)
        .fetch_one(app.pool())
        .await
        .unwrap()
    };
    assert!(usage().await > 0);

    let before: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{conversation}/messages"))
        .await
        .json()
        .await
        .unwrap();
    let stored = before["messages"].as_array().unwrap().len();
    assert!(stored >= 2, "the text and the image (plus any automatic notice)");
    let (_, _, agent) = add_agent(&app, &m, "agent").await;
    let path = format!("/api/v1/visitors/{}/messages", v.id);
    let res = call(&app, &agent, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(res.status(), 403, "admins only");
    let res = call(&app, &m.token, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(res.status(), 200);
    let cleared: Value = res.json().await.unwrap();
    // An automatic notice may have been stored after the count above (automation runs off
    // the hot path); the page below must be empty either way.
    assert!(cleared["messages"].as_u64().unwrap() >= stored as u64, "{cleared}");
    assert_eq!(cleared["files"], 1);
    let page: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{conversation}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["messages"], json!([]));
    assert_eq!(usage().await, 0, "the file's bytes (original and thumbnail) are given back");
    let file =
        client().get(upload["url"].as_str().map(|u| app.url(u)).unwrap()).send().await.unwrap();
    assert_eq!(file.status(), 404);
}

#[tokio::test]
async fn the_chat_page_says_when_agents_see_typing_previews() {
    let app = spawn_app().await;
    let m = app.signup("Preview Shop").await;
    let page = |app: &TestApp| {
        let url = app.url(&format!("/chatIndex?ent_id={}&lang=en", m.ent_id));
        async move { client().get(url).text_body().await }
    };
    let note = "Agents can see what you type before you send it.";
    let off = page(&app).await;
    assert!(!off.contains(note));
    assert!(off.contains(r#"data-typing-preview="false""#));
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into {schema}.settings (key, value) values ('typing_preview', 'true')"
    )))
    .execute(app.pool())
    .await
    .unwrap();
    let on = page(&app).await;
    assert!(on.contains(note), "the visitor is told");
    assert!(on.contains(r#"data-typing-preview="true""#));
}

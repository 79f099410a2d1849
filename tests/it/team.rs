//! Team management, quick replies and announcements: what admins may do, what agents may
//! not (403 within their own merchant), and bad input.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{helpers::*, ws_client::Ws};

/// Logs in with email and password; returns the bearer token.
pub async fn login(app: &TestApp, email: &str, password: &str) -> String {
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": email, "password": password }))
        .sent()
        .await;
    assert_eq!(res.status(), 200, "login as {email}");
    let body: Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Adds an agent to `m`'s team (as its owner); returns (agent id, email, token).
pub async fn add_agent(app: &TestApp, m: &Merchant, role: &str) -> (i64, String, String) {
    let (id, email, token, _) = add_agent_with_password(app, m, role).await;
    (id, email, token)
}

/// [`add_agent`], with the agent's first password too.
pub async fn add_agent_with_password(
    app: &TestApp,
    m: &Merchant,
    role: &str,
) -> (i64, String, String, String) {
    add_named_agent(app, m, role, "Lin Mei").await
}

/// [`add_agent_with_password`], for an agent called `name`.
pub async fn add_named_agent(
    app: &TestApp,
    m: &Merchant,
    role: &str,
    name: &str,
) -> (i64, String, String, String) {
    let email = unique_email("agent");
    let res = client()
        .post(app.url("/api/v1/agents"))
        .bearer_auth(&m.token)
        .json(&json!({ "email": email, "display_name": name, "role": role }))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let password = body["password"].as_str().unwrap().to_owned();
    let token = login(app, &email, &password).await;
    (body["agent"]["id"].as_i64().unwrap(), email, token, password)
}

fn send(
    method: reqwest::Method,
    app: &TestApp,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    let req = client().request(method, app.url(path)).bearer_auth(token);
    match body {
        Some(b) => req.json(&b),
        None => req,
    }
}

#[tokio::test]
async fn admins_build_the_team_agents_cannot() {
    let app = spawn_app().await;
    let m = app.signup("Team Shop").await;
    let (agent_id, email, agent_token) = add_agent(&app, &m, "agent").await;

    // The new agent is on the team, with the role and name given.
    let list: Value = app.get_as(&m, "/api/v1/agents").await.json().await.unwrap();
    let row = list["agents"].as_array().unwrap().iter().find(|a| a["id"] == agent_id).unwrap();
    assert_eq!(row["role"], "agent");
    assert_eq!(row["email"], email);
    assert_eq!(row["display_name"], "Lin Mei");

    // An agent cannot add, promote or disable anyone: 403 within their own merchant.
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    for (method, path, body) in [
        (post.clone(), "/api/v1/agents".to_owned(), Some(json!({ "email": unique_email("x") }))),
        (patch.clone(), format!("/api/v1/agents/{agent_id}"), Some(json!({ "role": "admin" }))),
        (post.clone(), format!("/api/v1/agents/{agent_id}/reset_password"), None),
        (
            post.clone(),
            "/api/v1/quick_replies".to_owned(),
            Some(json!({ "title": "t", "body": "b" })),
        ),
    ] {
        let res = send(method.clone(), &app, &agent_token, &path, body).send().await.unwrap();
        assert_eq!(res.status(), 403, "{method} {path} as an agent");
        assert_eq!(error_code(res).await, "forbidden_role");
    }
    // … but renames themselves.
    let res = send(
        patch.clone(),
        &app,
        &agent_token,
        &format!("/api/v1/agents/{agent_id}"),
        Some(json!({ "display_name": "Mei" })),
    )
    .sent()
    .await;
    assert_eq!(res.status(), 200);

    // Bad input: each a clear 4xx.
    let owner_id = list["agents"][0]["id"].as_i64().unwrap();
    for (method, path, body, status, code) in [
        (
            post.clone(),
            "/api/v1/agents".to_owned(),
            json!({ "email": "not-an-email" }),
            422,
            "validation_failed",
        ),
        (post.clone(), "/api/v1/agents".to_owned(), json!({ "email": email }), 409, "email_taken"),
        (
            post.clone(),
            "/api/v1/agents".to_owned(),
            json!({ "email": unique_email("o"), "role": "owner" }),
            422,
            "validation_failed",
        ),
        (
            post.clone(),
            "/api/v1/agents".to_owned(),
            json!({ "email": unique_email("o"), "display_name": "x".repeat(81) }),
            422,
            "validation_failed",
        ),
        (
            post.clone(),
            "/api/v1/agents".to_owned(),
            json!({ "email": unique_email("o"), "max_concurrent_chats": -1 }),
            422,
            "validation_failed",
        ),
        (
            patch.clone(),
            format!("/api/v1/agents/{owner_id}"),
            json!({ "role": "agent" }),
            403,
            "owner_protected",
        ),
        (
            patch.clone(),
            format!("/api/v1/agents/{owner_id}"),
            json!({ "disabled": true }),
            403,
            "owner_protected",
        ),
        (
            patch.clone(),
            format!("/api/v1/agents/{agent_id}"),
            json!({ "role": 7 }),
            422,
            "invalid_body",
        ),
        (patch.clone(), "/api/v1/agents/nope".to_owned(), json!({}), 404, "not_found"),
    ] {
        let res =
            send(method.clone(), &app, &m.token, &path, Some(body.clone())).send().await.unwrap();
        assert_eq!(res.status(), status, "{method} {path} {body}");
        assert_eq!(error_code(res).await, code, "{method} {path} {body}");
    }

    // A password reset gives a new one-time password; the old one stops working, and so do
    // the sessions opened with it (tokens count in whole seconds: let one pass).
    let me = |token: String| {
        let app = &app;
        async move {
            client().get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap().status()
        }
    };
    assert_eq!(me(agent_token.clone()).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = send(
        post.clone(),
        &app,
        &m.token,
        &format!("/api/v1/agents/{agent_id}/reset_password"),
        None,
    )
    .sent()
    .await;
    assert_eq!(res.status(), 200);
    let fresh: Value = res.json().await.unwrap();
    assert_eq!(me(agent_token.clone()).await, 401, "the session from before the reset ended");
    let token = login(&app, &email, fresh["password"].as_str().unwrap()).await;
    assert_eq!(me(token).await, 200);
}

#[tokio::test]
async fn a_disabled_agent_is_shut_out_and_their_chats_go_back_to_the_queue() {
    let app = spawn_app().await;
    let m = app.signup("Disable Shop").await;
    // The owner goes away so the new agent gets the conversation.
    let mut owner_ws = Ws::agent(&app, &m.token, "").await;
    owner_ws.send(json!({ "type": "status", "status": "away" })).await;
    owner_ws.expect_where("owner away", |f| f["type"] == "presence" && f["status"] == "away").await;
    let (agent_id, agent_email, agent_token, password) =
        add_agent_with_password(&app, &m, "agent").await;
    let mut agent_ws = Ws::agent(&app, &agent_token, "").await;
    agent_ws.send(json!({ "type": "status", "status": "online" })).await;
    agent_ws
        .expect_where("agent online", |f| {
            f["type"] == "presence" && f["agent_id"] == agent_id && f["status"] == "online"
        })
        .await;

    let visitor = crate::ws_client::visitor_session(&app, &m.ent_id).await;
    let mut vws = Ws::visitor(&app, &visitor.token, "").await;
    vws.send_text("v1", "hello", None).await;
    let ack = vws.expect("ack").await;
    let conversation = ack["conversation_id"].as_i64().unwrap();
    let c: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{conversation}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["agent_id"], agent_id, "routed to the only online agent");

    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&m.token)
        .json(&json!({ "disabled": true }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["disabled"], true);

    // Their socket is closed with 4003; their token no longer works; the chat is queued.
    assert_eq!(agent_ws.expect_close().await, 4003);
    let res = client().get(app.url("/api/v1/me")).bearer_auth(&agent_token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let c: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{conversation}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "queued");
    assert!(c["agent_id"].is_null());
    owner_ws
        .expect_where("the requeue event", |f| {
            f["type"] == "conversation" && f["conversation"]["status"] == "queued"
        })
        .await;

    // While disabled, signing in is refused, and says why.
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": agent_email, "password": password }))
        .sent()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "account_disabled");
    let browser = client();
    let csrf = form_csrf(&browser, &app, "/login").await;
    let form = [("email", agent_email.as_str()), ("password", &password), ("csrf_token", &csrf)];
    let res = browser.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("turned off"), "the page says why");

    // Enabled again, they sign in again: the session that was ended stays ended.
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&m.token)
        .json(&json!({ "disabled": false }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let res = client().get(app.url("/api/v1/me")).bearer_auth(&agent_token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let agent_token = login(&app, &agent_email, &password).await;
    let res = client().get(app.url("/api/v1/me")).bearer_auth(&agent_token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Nobody disables themselves.
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&agent_token)
        .json(&json!({ "disabled": true }))
        .sent()
        .await;
    assert_eq!(res.status(), 403, "an agent is not an admin");
}

#[tokio::test]
async fn quick_replies_crud_order_and_search() {
    let app = spawn_app().await;
    let m = app.signup("Quick Shop").await;
    let post = |body: Value| {
        client().post(app.url("/api/v1/quick_replies")).bearer_auth(&m.token).json(&body).send()
    };
    let a: Value = post(
        json!({ "group": "Shipping", "title": "Delivery time", "body": "2–3 days\nby courier" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let b: Value = post(json!({ "group": "Shipping", "title": "Tracking", "body": "Your tracking number is in the email." })).await.unwrap().json().await.unwrap();
    let c: Value = post(json!({ "title": "Hello", "body": "Hi! How can I help?", "position": 0 }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["position"], 0);
    assert_eq!(b["position"], 1, "appended after the last");

    let list = |q: &str| {
        let path = format!("/api/v1/quick_replies{q}");
        let (app, m) = (&app, &m);
        async move { app.get_as(m, &path).await.json::<Value>().await.unwrap() }
    };
    let titles = |v: &Value| {
        v["quick_replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        titles(&list("").await),
        ["Hello", "Delivery time", "Tracking"],
        "ungrouped first, then by group and position"
    );
    assert_eq!(titles(&list("?q=TRACK").await), ["Tracking"]);
    assert_eq!(titles(&list("?q=100%25").await), Vec::<String>::new(), "% is literal");

    let res = client()
        .patch(app.url(&format!("/api/v1/quick_replies/{}", b["id"])))
        .bearer_auth(&m.token)
        .json(&json!({ "position": 0, "title": "Where is my parcel" }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let res = client()
        .patch(app.url(&format!("/api/v1/quick_replies/{}", a["id"])))
        .bearer_auth(&m.token)
        .json(&json!({ "position": 1 }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(titles(&list("").await), ["Hello", "Where is my parcel", "Delivery time"]);
    let res = client()
        .delete(app.url(&format!("/api/v1/quick_replies/{}", c["id"])))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 204);
    let res = client()
        .delete(app.url(&format!("/api/v1/quick_replies/{}", c["id"])))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 404);

    for body in [
        json!({ "title": "", "body": "x" }),
        json!({ "title": "x" }),
        json!({ "title": "x", "body": "y".repeat(5001) }),
        json!({ "title": "x", "body": "y", "position": -1 }),
    ] {
        let res = post(body.clone()).await.unwrap();
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(error_code(res).await, "validation_failed");
    }
}

#[tokio::test]
async fn published_announcements_reach_the_workspace() {
    let app = spawn_app().await;
    let m = app.signup("News Shop").await;
    sqlx::query(
        "insert into public.announcements (title, body, published_at) values
            ('Maintenance on Sunday', 'Chat stays up; <b>exports</b> pause for 10 minutes.', now() - interval '1 hour'),
            ('Draft', 'not yet', null),
            ('Scheduled', 'later', now() + interval '1 day')",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let list: Value = app.get_as(&m, "/api/v1/announcements").await.json().await.unwrap();
    let items = list["announcements"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["title"], "Maintenance on Sunday");
    let page = client()
        .get(app.url("/app"))
        .bearer_auth(&m.token)
        .header("accept", "text/html")
        .text_body()
        .await;
    assert!(page.contains("Maintenance on Sunday"), "the banner is on the home page");
    assert!(
        page.contains("exports") && !page.contains("<b>exports"),
        "announcement text is escaped"
    );
}

#[tokio::test]
async fn admin_actions_land_in_the_audit_log() {
    let app = spawn_app().await;
    let m = app.signup("Audit Shop").await;
    let (agent_id, email, agent_token) = add_agent(&app, &m, "agent").await;
    let send = |method: reqwest::Method, path: String, body: Value| {
        client().request(method, app.url(&path)).bearer_auth(&m.token).json(&body).send()
    };
    assert!(
        send(
            reqwest::Method::PATCH,
            format!("/api/v1/agents/{agent_id}"),
            json!({ "max_concurrent_chats": 3 })
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    assert!(
        send(
            reqwest::Method::PATCH,
            "/api/v1/settings".into(),
            json!({ "welcome_message": "Hi", "widget_color": "#111111" })
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    assert!(
        send(
            reqwest::Method::POST,
            "/api/v1/blacklist".into(),
            json!({ "ip": "203.0.113.5", "reason": "spam" })
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    let qr: Value = send(
        reqwest::Method::POST,
        "/api/v1/quick_replies".into(),
        json!({ "title": "Hours", "body": "9–18" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        client()
            .delete(app.url(&format!("/api/v1/quick_replies/{}", qr["id"])))
            .bearer_auth(&m.token)
            .sent()
            .await
            .status()
            .is_success()
    );

    let log: Value = app.get_as(&m, "/api/v1/audit").await.json().await.unwrap();
    let actions: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("quick_reply.delete", "Hours"),
            ("quick_reply.create", "Hours"),
            ("blacklist.add", "203.0.113.5/32"),
            ("settings.update", "welcome_message, widget_color"),
            ("agent.update", email.as_str()),
            ("agent.create", email.as_str()),
        ],
        "newest first"
    );
    assert_eq!(
        log["entries"][0]["agent_name"].as_str().unwrap(),
        m.email.split('@').next().unwrap()
    );
    let found: Value = app.get_as(&m, "/api/v1/audit?q=BLACKLIST").await.json().await.unwrap();
    assert_eq!(found["entries"].as_array().unwrap().len(), 1);
    // A refused action leaves no entry, and agents cannot read the log.
    let res = client()
        .post(app.url("/api/v1/quick_replies"))
        .bearer_auth(&agent_token)
        .json(&json!({ "title": "x", "body": "y" }))
        .sent()
        .await;
    assert_eq!(res.status(), 403);
    let res =
        client().get(app.url("/api/v1/audit")).bearer_auth(&agent_token).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let again: Value = app.get_as(&m, "/api/v1/audit").await.json().await.unwrap();
    assert_eq!(again["entries"].as_array().unwrap().len(), 6);
}

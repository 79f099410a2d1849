//! Conversation statuses: open, pending, snoozed (until a time or the visitor's next
//! message), resolved; the visitor's message wakes and (within the window) reopens;
//! snoozes end and idle conversations resolve on the worker's round. Every change is pushed
//! live and written as an activity line agents see and visitors never do.

use crate::helpers::Fetch;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

async fn set_status(app: &TestApp, m: &Merchant, id: i64, body: Value) -> reqwest::Response {
    client()
        .post(app.url(&format!("/api/v1/conversations/{id}/status")))
        .bearer_auth(&m.token)
        .json(&body)
        .sent()
        .await
}

/// Waits for the agent's `conversation` frame with `event` and then the activity line that
/// records it; returns (conversation, activity payload).
async fn announced(agent: &mut Ws, event: &str) -> (Value, Value) {
    let frame =
        agent.expect_where(event, |f| f["type"] == "conversation" && f["event"] == event).await;
    let line = agent
        .expect_where("activity line", |f| f["type"] == "message" && f["kind"] == "activity")
        .await;
    (frame["conversation"].clone(), line["payload"].clone())
}

async fn list_ids(app: &TestApp, m: &Merchant, status: &str) -> Vec<i64> {
    let page =
        app.get_json(&m.token, &format!("/api/v1/conversations?view=all&status={status}")).await;
    page["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn statuses_move_by_agents_and_visitors_and_are_announced() {
    let app = spawn_app().await;
    let m = app.signup("Status Shop").await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.send_text("v1", "Is the blue one in stock?", None).await;
    let id = visitor.expect("ack").await["conversation_id"].as_i64().unwrap();
    let res = client()
        .post(app.url(&format!("/api/v1/conversations/{id}/claim")))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 200);

    // Pending: waiting on the visitor.
    let res = set_status(&app, &m, id, json!({ "status": "pending" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "pending");
    let (conversation, line) = announced(&mut agent, "status").await;
    assert_eq!(conversation["status"], "pending");
    assert_eq!(
        (line["status"].as_str(), line["from"].as_str(), line["by"].as_str()),
        (Some("pending"), Some("open"), Some("agent"))
    );
    assert_eq!(list_ids(&app, &m, "pending").await, vec![id]);
    assert!(list_ids(&app, &m, "open").await.is_empty());
    assert_eq!(list_ids(&app, &m, "active").await, vec![id]);
    // The same status again changes nothing and announces nothing.
    let res = set_status(&app, &m, id, json!({ "status": "pending" })).await;
    assert_eq!(res.status(), 200);

    // The visitor's message wakes it.
    visitor.send_text("v2", "Any news?", None).await;
    assert_eq!(visitor.expect("ack").await["conversation_id"], id);
    let (conversation, line) = announced(&mut agent, "status").await;
    assert_eq!(conversation["status"], "open");
    assert_eq!((line["from"].as_str(), line["by"].as_str()), (Some("pending"), Some("visitor")));

    // Snoozed until the visitor writes, then woken by their message.
    let res = set_status(&app, &m, id, json!({ "status": "snoozed" })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "snoozed");
    let (conversation, _) = announced(&mut agent, "status").await;
    assert!(conversation.get("snoozed_until").is_none());
    assert_eq!(list_ids(&app, &m, "snoozed").await, vec![id]);
    visitor.send_text("v3", "Hello?", None).await;
    visitor.expect("ack").await;
    let (conversation, line) = announced(&mut agent, "status").await;
    assert_eq!(
        (conversation["status"].as_str(), line["from"].as_str()),
        (Some("open"), Some("snoozed"))
    );

    // Snoozed until a time: the worker wakes it when that time comes, not before.
    let until = Utc::now() + Duration::hours(1);
    let res =
        set_status(&app, &m, id, json!({ "status": "snoozed", "snoozed_until": until })).await;
    let body = res.json::<Value>().await.unwrap();
    assert_eq!(body["status"], "snoozed");
    assert!(body["snoozed_until"].is_string());
    announced(&mut agent, "status").await;
    let timers = crate::helpers::tenant_id(app.pool(), &m.ent_id).await;
    let due: chrono::DateTime<Utc> =
        sqlx::query_scalar("select due_at from public.conversation_timers where tenant_id = $1")
            .bind(timers.0)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!((due - until).num_seconds().abs() <= 1, "the merchant's timer is the snooze's end");
    assert_eq!(kefu::chat::status::run_due(&app.state, Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + Duration::hours(2);
    assert_eq!(kefu::chat::status::run_due(&app.state, later).await.unwrap(), 1);
    let (conversation, line) = announced(&mut agent, "status").await;
    assert_eq!(
        (conversation["status"].as_str(), line["by"].as_str()),
        (Some("open"), Some("auto"))
    );
    // Nothing else is due: the timer is gone.
    let left: i64 =
        sqlx::query_scalar("select count(*) from public.conversation_timers where tenant_id = $1")
            .bind(timers.0)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(left, 0);

    // Resolved: the visitor hears of it (and is asked to rate).
    let res = set_status(&app, &m, id, json!({ "status": "resolved" })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "closed");
    let (_, line) = announced(&mut agent, "closed").await;
    assert_eq!(line["status"], "closed");
    visitor.expect_where("closed", |f| f["type"] == "conversation" && f["event"] == "closed").await;
    assert_eq!(list_ids(&app, &m, "resolved").await, vec![id]);
    // Pending or snoozed needs it reopened first.
    let res = set_status(&app, &m, id, json!({ "status": "pending" })).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "conversation_closed");

    // Within the reopen window (24 h by default) the visitor's message reopens it.
    visitor.send_text("v4", "One more question", None).await;
    visitor
        .expect_where("reopened", |f| f["type"] == "conversation" && f["event"] == "reopened")
        .await;
    assert_eq!(visitor.expect("ack").await["conversation_id"], id, "the same conversation");
    let (conversation, line) = announced(&mut agent, "reopened").await;
    assert_eq!(
        (conversation["status"].as_str(), line["by"].as_str()),
        (Some("open"), Some("visitor"))
    );

    // An agent can resolve and reopen too.
    set_status(&app, &m, id, json!({ "status": "closed" })).await;
    announced(&mut agent, "closed").await;
    let res = set_status(&app, &m, id, json!({ "status": "open" })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "open");
    announced(&mut agent, "reopened").await;

    // Past the window, a new conversation starts.
    set_status(&app, &m, id, json!({ "status": "resolved" })).await;
    let tenant = tenant_id(app.pool(), &m.ent_id).await;
    let mut tx = tenants::TenantTx::begin(app.pool(), tenant).await.unwrap();
    sqlx::query("update conversations set closed_at = now() - interval '25 hours' where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    visitor.send_text("v5", "A new topic", None).await;
    assert_ne!(visitor.expect("ack").await["conversation_id"], id);

    // The visitor never saw the team's activity lines, live or in its history.
    drop(visitor);
    let mut again = Ws::visitor(&app, &v.token, "&since=0").await;
    let mut kinds = Vec::new();
    // Up to the visitor's last message (later ids than every activity line of the first
    // conversation).
    while let Some(f) = again.next().await {
        if f["type"] == "message" {
            kinds.push(f["kind"].as_str().unwrap().to_owned());
            if f["body"] == "A new topic" {
                break;
            }
        }
    }
    assert!(kinds.len() >= 5, "the visitor's five messages: {kinds:?}");
    assert!(kinds.iter().all(|k| k != "activity"), "{kinds:?}");
    // Agents have them in the thread.
    let page = app.get_json(&m.token, &format!("/api/v1/conversations/{id}/messages")).await;
    let activity =
        page["messages"].as_array().unwrap().iter().filter(|m| m["kind"] == "activity").count();
    assert!(activity >= 8, "{activity} activity lines");
}

#[tokio::test]
async fn bad_status_changes_are_refused() {
    let app = spawn_app().await;
    let m = app.signup("Strict Status Shop").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.send_text("v1", "hi", None).await;
    let id = visitor.expect("ack").await["conversation_id"].as_i64().unwrap();
    let past = Utc::now() - Duration::minutes(1);
    let far = Utc::now() + Duration::days(400);
    for (body, field) in [
        (json!({ "status": "sleeping" }), "status"),
        (json!({ "status": "snoozed", "snoozed_until": past }), "snoozed_until"),
        (json!({ "status": "snoozed", "snoozed_until": far }), "snoozed_until"),
        (
            json!({ "status": "pending", "snoozed_until": Utc::now() + Duration::hours(1) }),
            "snoozed_until",
        ),
    ] {
        let res = set_status(&app, &m, id, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["fields"][field].is_string(), "{body} → {err}");
    }
    for body in [json!({ "status": "snoozed", "snoozed_until": "tomorrow" }), json!({}), json!([1])]
    {
        let res = set_status(&app, &m, id, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        error_code(res).await;
    }
    assert_eq!(
        set_status(&app, &m, 999_999_999, json!({ "status": "pending" })).await.status(),
        404
    );
    let res = client()
        .post(app.url("/api/v1/conversations/nope/status"))
        .bearer_auth(&m.token)
        .json(&json!({ "status": "pending" }))
        .sent()
        .await;
    assert_eq!(res.status(), 404);
    for bad in [
        json!({ "auto_resolve_minutes": 50_000 }),
        json!({ "reopen_hours": 721 }),
        json!({ "reopen_hours": -1 }),
    ] {
        assert_eq!(app.patch_settings(&m, bad.clone()).await.status(), 422, "{bad}");
    }
    // Nothing changed.
    let c = app.get_json(&m.token, &format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c["status"], "queued");
}

#[tokio::test]
async fn idle_conversations_resolve_automatically_snoozed_ones_do_not() {
    let app = spawn_app().await;
    let m = app.signup("Quiet Shop").await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;
    let mut ids = Vec::new();
    let mut visitors = Vec::new();
    for n in 0..3 {
        let v = visitor_session(&app, &m.ent_id).await;
        let mut ws = Ws::visitor(&app, &v.token, "").await;
        ws.send_text("v1", &format!("question {n}"), None).await;
        ids.push(ws.expect("ack").await["conversation_id"].as_i64().unwrap());
        visitors.push(ws);
    }
    // One pending, one snoozed until the visitor writes, one left as it is.
    assert_eq!(set_status(&app, &m, ids[1], json!({ "status": "pending" })).await.status(), 200);
    assert_eq!(set_status(&app, &m, ids[2], json!({ "status": "snoozed" })).await.status(), 200);

    // Off by default: nothing is scheduled.
    let tenant = tenant_id(app.pool(), &m.ent_id).await;
    assert_eq!(
        kefu::chat::status::run_due(&app.state, Utc::now() + Duration::days(3)).await.unwrap(),
        0
    );
    let res = app.patch_settings(&m, json!({ "auto_resolve_minutes": 30 })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["auto_resolve_minutes"], 30);
    let scheduled: i64 =
        sqlx::query_scalar("select count(*) from public.conversation_timers where tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(scheduled, 1);

    let now = Utc::now();
    assert_eq!(kefu::chat::status::run_due(&app.state, now).await.unwrap(), 0, "not idle yet");
    assert_eq!(
        kefu::chat::status::run_due(&app.state, now + Duration::minutes(31)).await.unwrap(),
        2
    );
    for _ in 0..2 {
        let (conversation, line) = announced(&mut agent, "closed").await;
        assert_eq!(line["by"], "auto");
        assert!(ids[..2].contains(&conversation["id"].as_i64().unwrap()));
    }
    for ws in &mut visitors[..2] {
        ws.expect_where("closed", |f| f["type"] == "conversation" && f["event"] == "closed").await;
    }
    let c = app.get_json(&m.token, &format!("/api/v1/conversations/{}", ids[2])).await;
    assert_eq!(c["status"], "snoozed", "a snoozed conversation is left to sleep");
    // The worker looks again within the idle time.
    let due: chrono::DateTime<Utc> =
        sqlx::query_scalar("select due_at from public.conversation_timers where tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(due <= now + Duration::minutes(62), "{due}");
}

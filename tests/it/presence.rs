//! Agent availability: a reload within the grace does not flap anyone's presence (nor route
//! a visitor away or send the offline notice); idle agents become away and come back with
//! their next activity; a chosen away stays.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    team::add_agent,
    ws_client::{Ws, visitor_session},
};

/// Frames within `secs` seconds (the socket's own 5 s wait aside).
async fn frames_for(ws: &mut Ws, secs: u64) -> Vec<Value> {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut got = Vec::new();
    while tokio::time::Instant::now() < until {
        let left = until - tokio::time::Instant::now();
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(f)) => got.push(f),
            _ => break,
        }
    }
    got
}

fn agent_presence(frames: &[Value], agent: i64) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["of"] == "agent" && f["agent_id"] == agent)
        .map(|f| f["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn team_presence(frames: &[Value]) -> Vec<bool> {
    frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["of"] == "team")
        .map(|f| f["online"].as_bool().unwrap())
        .collect()
}

async fn me_status(app: &TestApp, token: &str) -> String {
    let me: Value =
        client().get(app.url("/api/v1/me")).bearer_auth(token).sent().await.json().await.unwrap();
    me["agent"]["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_reload_within_the_grace_does_not_flap() {
    let app = spawn_with(|c| c.presence_grace_secs = 3).await;
    let m = app.signup("Steady Shop").await;
    let owner_id = client()
        .get(app.url("/api/v1/me"))
        .bearer_auth(&m.token)
        .json_body::<Value>()
        .await["agent"]["id"]
        .as_i64()
        .unwrap();
    // A colleague who is away watches; a visitor watches the team's availability.
    let (_, _, colleague) = add_agent(&app, &m, "agent").await;
    let mut watcher = Ws::agent(&app, &colleague, "").await;
    watcher.send(json!({ "type": "status", "status": "away" })).await;
    let mut owner = Ws::agent(&app, &m.token, "").await;
    owner.expect("hello").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.expect_where("team online", |f| f["type"] == "presence" && f["online"] == true).await;
    frames_for(&mut watcher, 1).await;

    // The owner reloads: gone, and back within the grace.
    drop(owner);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // A visitor writing meanwhile reaches the owner, not the queue, and no offline notice.
    visitor.send_text("c1", "Anyone there?", None).await;
    let ack = visitor.expect("ack").await;
    let detail: Value = app
        .get_as(&m, &format!("/api/v1/conversations/{}", ack["conversation_id"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["agent_id"], owner_id, "routed to the reloading agent: {detail}");
    let mut owner = Ws::agent(&app, &m.token, "").await;
    owner.expect("hello").await;
    let seen = frames_for(&mut watcher, 4).await;
    assert!(!agent_presence(&seen, owner_id).contains(&"offline".to_owned()), "{seen:#?}");
    let seen = frames_for(&mut visitor, 1).await;
    assert!(!team_presence(&seen).contains(&false), "{seen:#?}");
    assert!(
        !seen.iter().any(|f| f["type"] == "notice" && f["code"] == "offline"),
        "no offline notice: {seen:#?}"
    );

    // Gone for good: offline once the grace is over.
    drop(owner);
    let seen = frames_for(&mut watcher, 5).await;
    assert_eq!(agent_presence(&seen, owner_id).last().map(String::as_str), Some("offline"));
    let seen = frames_for(&mut visitor, 1).await;
    assert_eq!(team_presence(&seen).last(), Some(&false), "{seen:#?}");
}

#[tokio::test]
async fn idle_agents_become_away_and_come_back_with_their_next_activity() {
    let app = spawn_app().await;
    let m = app.signup("Idle Shop").await;
    let res = app.patch_settings(&m, json!({ "auto_away_minutes": 5 })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["auto_away_minutes"], 5);
    let res = app.patch_settings(&m, json!({ "auto_away_minutes": 241 })).await;
    assert_eq!(res.status(), 422);
    let mut owner = Ws::agent(&app, &m.token, "").await;
    owner.expect("hello").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.expect_where("team online", |f| f["type"] == "presence" && f["online"] == true).await;
    let chat = &app.state.chat;
    let now = chrono::Utc::now();

    // Four idle minutes are not enough; six are.
    assert_eq!(chat.auto_away_round(now + chrono::Duration::minutes(4)).await.unwrap(), 0);
    assert_eq!(chat.auto_away_round(now + chrono::Duration::minutes(6)).await.unwrap(), 1);
    owner.expect_where("away", |f| f["type"] == "presence" && f["status"] == "away").await;
    visitor.expect_where("team away", |f| f["type"] == "presence" && f["online"] == false).await;
    assert_eq!(me_status(&app, &m.token).await, "away");
    // Once away, another round changes nothing.
    assert_eq!(chat.auto_away_round(now + chrono::Duration::minutes(12)).await.unwrap(), 0);

    // The agent moves the mouse: online again.
    owner.send(json!({ "type": "active" })).await;
    owner.expect_where("online", |f| f["type"] == "presence" && f["status"] == "online").await;
    visitor.expect_where("team online", |f| f["type"] == "presence" && f["online"] == true).await;
    assert_eq!(me_status(&app, &m.token).await, "online");

    // Away again while disconnected and back with a new connection.
    assert_eq!(
        chat.auto_away_round(chrono::Utc::now() + chrono::Duration::minutes(6)).await.unwrap(),
        1
    );
    drop(owner);
    let mut owner = Ws::agent(&app, &m.token, "").await;
    owner.expect("hello").await;
    assert_eq!(me_status(&app, &m.token).await, "online", "connecting ends an automatic away");

    // A chosen away is the agent's: activity does not undo it.
    owner.send(json!({ "type": "status", "status": "away" })).await;
    owner.expect_where("away", |f| f["type"] == "presence" && f["status"] == "away").await;
    owner.send(json!({ "type": "active" })).await;
    owner.send(json!({ "type": "ping" })).await;
    owner.expect("pong").await;
    assert_eq!(me_status(&app, &m.token).await, "away");

    // Switched off: nobody is made away.
    owner.send(json!({ "type": "status", "status": "online" })).await;
    owner.expect_where("online", |f| f["type"] == "presence" && f["status"] == "online").await;
    app.patch_settings(&m, json!({ "auto_away_minutes": 0 })).await;
    assert_eq!(
        chat.auto_away_round(chrono::Utc::now() + chrono::Duration::hours(5)).await.unwrap(),
        0
    );
    // Visitors cannot send the agents' signal.
    visitor.send(json!({ "type": "active" })).await;
    let refused = visitor.expect("error").await;
    assert_eq!(refused["code"], "forbidden");
}

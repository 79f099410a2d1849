//! Private notes in a conversation and @mentions: the team sees them, the visitor never
//! does (live or on replay); a note is not an answer; a mentioned colleague finds it in
//! their mentions and, when away, gets an e-mail.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::team::add_named_agent;
use crate::ws_client::{Ws, visitor_session};

#[tokio::test]
async fn notes_stay_with_the_team_and_mentions_reach_the_colleague() {
    let app = spawn_app().await;
    let m = app.signup("Notes Shop").await;
    let (ann_id, ann_email, ann, _) = add_named_agent(&app, &m, "agent", "Ann Lee").await;
    let smtp = crate::smtp_server::SmtpServer::start(crate::smtp_server::Security::Plain).await;
    crate::smtp_server::use_for(&app, &smtp).await;

    let mut owner = Ws::agent(&app, &m.token, "").await;
    owner.expect("hello").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.send_text("v1", "Where is my order?", None).await;
    let conversation = visitor.expect("ack").await["conversation_id"].as_i64().unwrap();

    // A visitor cannot write notes.
    visitor
        .send(json!({ "type": "send", "client_msg_id": "v2", "kind": "note", "body": "psst" }))
        .await;
    assert_eq!(visitor.expect("error").await["code"], "bad_kind");

    owner
        .send(json!({ "type": "send", "client_msg_id": "n1", "conversation_id": conversation,
                      "kind": "note", "body": "@Ann Lee can you check order #1042?" }))
        .await;
    let ack = owner.expect("ack").await;
    let note_id = ack["id"].as_i64().unwrap();
    // The note is not an answer: the conversation is still unanswered, and its last message
    // is still the visitor's.
    let item = app.get_json(&m.token, &format!("/api/v1/conversations/{conversation}")).await;
    assert_eq!(item["last_message"], "Where is my order?", "{item}");
    let unanswered = app.get_json(&m.token, "/api/v1/conversations?view=all&unanswered=true").await;
    assert_eq!(unanswered["conversations"][0]["id"], conversation);

    // The visitor's next message frame is the answer that follows, not the note.
    owner.send_text("a1", "It ships today.", Some(conversation)).await;
    owner.expect("ack").await;
    let next = visitor.expect("message").await;
    assert_eq!(next["body"], "It ships today.");
    // Nor does it come back on a reconnect with since=0.
    let mut replay = Ws::visitor(&app, &v.token, "&since=0").await;
    let mut bodies = Vec::new();
    while let Some(f) = replay.next().await {
        if f["type"] == "message" {
            bodies.push(f["body"].as_str().unwrap().to_owned());
        }
    }
    assert!(bodies.contains(&"It ships today.".to_owned()), "{bodies:?}");
    assert!(
        !bodies.iter().any(|b| b.contains("1042")),
        "a note replayed to the visitor: {bodies:?}"
    );

    // The team sees it, with whom it mentions.
    let page =
        app.get_json(&m.token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    let note =
        page["messages"].as_array().unwrap().iter().find(|x| x["id"] == note_id).cloned().unwrap();
    assert_eq!(note["kind"], "note");
    assert_eq!(note["payload"]["mentions"], json!([ann_id]));

    // Ann was away: her mentions list it and an e-mail waits for her.
    let mentions = app.get_json(&ann, "/api/v1/mentions").await;
    assert_eq!(mentions["mentions"][0]["message_id"], note_id);
    let owner_name = app.get_json(&m.token, "/api/v1/me").await["agent"]["display_name"].clone();
    assert_eq!(mentions["mentions"][0]["by_name"], owner_name);
    assert_eq!(app.get_json(&m.token, "/api/v1/mentions").await["mentions"], json!([]));
    let queued: Vec<(String, Value)> =
        sqlx::query_as("select to_addr, about from public.email_outbox where kind = 'mention'")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].0, ann_email);
    assert_eq!(queued[0].1["conversation_id"], conversation);

    // A connected colleague is alerted in the workspace instead (no e-mail).
    let mut ann_ws = Ws::agent(&app, &ann, "").await;
    ann_ws.expect("hello").await;
    owner
        .send(json!({ "type": "send", "client_msg_id": "n2", "conversation_id": conversation,
                      "kind": "note", "body": "thanks @ann lee" }))
        .await;
    owner.expect("ack").await;
    let pushed =
        ann_ws.expect_where("the note", |f| f["type"] == "message" && f["kind"] == "note").await;
    assert_eq!(pushed["payload"]["mentions"], json!([ann_id]));
    let count: i64 =
        sqlx::query_scalar("select count(*) from public.email_outbox where kind = 'mention'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(count, 1);

    // Notes can be added to a resolved conversation too; empty ones are refused.
    assert_eq!(app.close_conversation(&m, conversation).await.status(), 200);
    owner
        .send(json!({ "type": "send", "client_msg_id": "n3", "conversation_id": conversation,
                      "kind": "note", "body": "Refund approved after the call." }))
        .await;
    owner.expect("ack").await;
    owner
        .send(json!({ "type": "send", "client_msg_id": "n4", "conversation_id": conversation,
                      "kind": "note", "body": "   " }))
        .await;
    assert_eq!(owner.expect("error").await["code"], "empty_message");
}

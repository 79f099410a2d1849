//! Search over a merchant's history: words said in any conversation (Chinese without spaces,
//! English by prefix), visitors by name, email, tag and note; bad queries and other merchants.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::{Ws, visitor_session};

async fn search(app: &TestApp, token: &str, q: &str) -> reqwest::Response {
    let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
    client().get(app.url(&format!("/api/v1/search?q={q}"))).bearer_auth(token).send().await.unwrap()
}

async fn found(app: &TestApp, token: &str, q: &str) -> Value {
    let res = search(app, token, q).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{q}: {body}");
    body
}

#[tokio::test]
async fn chinese_and_english_history_tags_and_notes_are_found() {
    let app = spawn_app().await;
    let m = app.signup("Lamp Shop").await;
    let other = app.signup("Other Shop").await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;

    // A resolved conversation in Chinese, an open one in English.
    let zhang = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &zhang.token, "").await;
    ws.send_text("z1", "我想要白色的台灯", None).await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    assert_eq!(app.close_conversation(&m, conversation).await.status(), 200);
    let ann = visitor_session(&app, &m.ent_id).await;
    let mut ws2 = Ws::visitor(&app, &ann.token, "").await;
    ws2.send_text("a1", "How long does shipping take to Berlin?", None).await;
    ws2.expect("ack").await;
    let path = format!("/api/v1/visitors/{}", zhang.id);
    let tag = json!({ "name": "VIP" });
    let res = client().post(app.url(&format!("{path}/tags"))).bearer_auth(&m.token).json(&tag);
    assert_eq!(res.send().await.unwrap().status(), 200);
    let note = json!({ "body": "Prefers WeChat over email" });
    let res = client().post(app.url(&format!("{path}/notes"))).bearer_auth(&m.token).json(&note);
    assert_eq!(res.send().await.unwrap().status(), 201);

    let hits = found(&app, &m.token, "白色").await;
    assert_eq!(hits["words"], json!(["白色"]));
    assert_eq!(hits["messages"][0]["body"], "我想要白色的台灯", "{hits:#}");
    assert_eq!(hits["messages"][0]["conversation_id"], conversation);
    assert_eq!(hits["messages"][0]["status"], "closed");
    // Characters that are there but not next to each other are not the phrase.
    assert_eq!(found(&app, &m.token, "白灯").await["messages"], json!([]));
    // English by word prefix, terms together.
    let hits = found(&app, &m.token, "ship berl").await;
    assert_eq!(hits["messages"].as_array().unwrap().len(), 1, "{hits:#}");
    assert_eq!(found(&app, &m.token, "ship paris").await["messages"], json!([]));
    // Visitors by tag and by what a note says.
    let hits = found(&app, &m.token, "vip").await;
    assert_eq!(hits["visitors"][0]["id"], zhang.id.as_str(), "{hits:#}");
    assert_eq!(hits["visitors"][0]["matched"], "tag");
    assert_eq!(hits["visitors"][0]["conversation_id"], conversation);
    assert_eq!(found(&app, &m.token, "wechat").await["visitors"][0]["matched"], "note");

    // Another merchant finds nothing of this one's.
    let theirs = found(&app, &other.token, "白色").await;
    assert_eq!((theirs["messages"].clone(), theirs["visitors"].clone()), (json!([]), json!([])));
    // Bad queries are clear errors, never a crash: nothing searchable, query syntax.
    for q in ["", "   ", "'&|!:*()", "\u{0}"] {
        let res = search(&app, &m.token, q).await;
        assert_eq!(res.status(), 422, "{q:?}");
        assert_eq!(error_code(res).await, "validation_failed");
    }
    for q in ["a:* & b", "it's", "C++", "<script>", &"长".repeat(500)] {
        assert_eq!(search(&app, &m.token, q).await.status(), 200, "{q:?}");
    }
    let res = client().get(app.url("/api/v1/search?q=x")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

//! CSAT: a closed conversation is rated once by its visitor; agents see it live and on the
//! conversation; nobody else can rate it.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

async fn rate(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    client().post(app.url("/api/v1/visitor/rating")).bearer_auth(token).json(&body).sent().await
}

#[tokio::test]
async fn a_closed_conversation_is_rated_once_by_its_visitor() {
    let app = spawn_app().await;
    let m = app.signup("Rated Shop").await;
    let other = app.signup("Other Shop").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.send_text("c1", "Where is my parcel?", None).await;
    let conversation = visitor.expect("ack").await["conversation_id"].as_i64().unwrap();
    let body = |score: i64| json!({ "conversation_id": conversation, "score": score, "comment": "  Quick\u{0007} and kind  " });

    let res = rate(&app, &v.token, body(5)).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "not_closed");

    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;
    let res = app.close_conversation(&m, conversation).await;
    assert!(res.status().is_success());
    visitor.expect_where("closed", |f| f["type"] == "conversation" && f["event"] == "closed").await;

    // Bad input is refused clearly.
    for bad in [body(0), body(6), json!({ "conversation_id": conversation }), json!({ "score": 3 })]
    {
        let res = rate(&app, &v.token, bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    assert_eq!(rate(&app, "not a token", body(4)).await.status(), 401);
    // Another visitor of the same merchant, or of another merchant, cannot rate it.
    let stranger = visitor_session(&app, &m.ent_id).await;
    assert_eq!(rate(&app, &stranger.token, body(1)).await.status(), 404);
    let elsewhere = visitor_session(&app, &other.ent_id).await;
    assert_eq!(rate(&app, &elsewhere.token, body(1)).await.status(), 404);

    // Several tabs answering at once: one rating.
    let tries = futures::future::join_all((0..8).map(|_| rate(&app, &v.token, body(4)))).await;
    let created: Vec<_> = tries.iter().filter(|r| r.status() == 201).collect();
    assert_eq!(created.len(), 1, "{:?}", tries.iter().map(|r| r.status()).collect::<Vec<_>>());
    assert!(tries.iter().all(|r| matches!(r.status().as_u16(), 201 | 409)));
    let res = rate(&app, &v.token, body(1)).await;
    assert_eq!(error_code(res).await, "already_rated");

    // Agents see it live and on the conversation (comment cleaned).
    let pushed = agent.expect("rating").await;
    assert_eq!(pushed["rating"]["score"], 4);
    assert_eq!(pushed["rating"]["comment"], "Quick and kind");
    let detail = app.get_json(&m.token, &format!("/api/v1/conversations/{conversation}")).await;
    assert_eq!(
        (detail["rating"].as_i64(), detail["rating_comment"].as_str()),
        (Some(4), Some("Quick and kind"))
    );
    let res = app.get_as(&other, &format!("/api/v1/conversations/{conversation}")).await;
    assert_eq!(res.status(), 404);
    let closed = app.get_json(&m.token, "/api/v1/conversations?view=all&status=closed").await;
    assert_eq!(closed["conversations"][0]["rating"], 4);
}

//! Visitor tracking: the widget reports the pages a visitor opens; agents see them live and
//! in the visitor's detail.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

#[tokio::test]
async fn page_views_reach_agents_live_and_the_visitor_detail() {
    let app = spawn_app().await;
    let m = app.signup("Trail Store").await;
    let visitor = visitor_session(&app, &m.ent_id).await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    let post = |body: Value| {
        client()
            .post(app.url("/api/v1/visitor/page_views"))
            .bearer_auth(&visitor.token)
            .json(&body)
            .send()
    };

    let res = post(json!({"views": [
        {"url": "https://shop.example/lamps", "title": "Lamps", "referrer": "https://search.example/?q=lamp"},
        {"url": "https://shop.example/lamps/desk?colour=white", "title": "Desk lamp — white",
         "at": "2999-01-01T00:00:00Z"}
    ]}))
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let first = agent.expect_where("a page view", |f| f["of"] == "page").await;
    assert_eq!(
        (first["visitor_id"].as_str(), first["title"].as_str()),
        (Some(visitor.id.as_str()), Some("Lamps"))
    );
    let second = agent.expect_where("the second page view", |f| f["of"] == "page").await;
    assert_eq!(second["url"], "https://shop.example/lamps/desk?colour=white");

    let detail: Value =
        app.get_as(&m, &format!("/api/v1/visitors/{}", visitor.id)).await.json().await.unwrap();
    let pages = detail["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["title"], "Desk lamp — white", "newest first");
    assert_eq!(pages[1]["referrer"], "https://search.example/?q=lamp");
    let future = chrono::DateTime::parse_from_rfc3339(pages[0]["at"].as_str().unwrap()).unwrap();
    assert!(
        future < chrono::Utc::now() + chrono::Duration::minutes(1),
        "a future time becomes now"
    );

    // Bad input: other schemes, too many at once, not JSON, no visitor token.
    for (body, status) in [
        (json!({"views": [{"url": "javascript:alert(1)"}]}), 422),
        (json!({"views": [{"url": "/relative"}]}), 422),
        (json!({"views": vec![json!({"url": "https://shop.example/"}); 21]}), 422),
        (json!({"pages": []}), 422),
    ] {
        let res = post(body.clone()).await.unwrap();
        assert_eq!(res.status(), status, "{body}");
    }
    let res = client()
        .post(app.url("/api/v1/visitor/page_views"))
        .json(&json!({"views": []}))
        .sent()
        .await;
    assert_eq!(res.status(), 401);
    // An agent's token is not a visitor's.
    let res = client()
        .post(app.url("/api/v1/visitor/page_views"))
        .bearer_auth(&m.token)
        .json(&json!({"views": []}))
        .sent()
        .await;
    assert_eq!(res.status(), 401);
}

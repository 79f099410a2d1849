//! Contacts: the visitor directory with filters, sorts and cursors; bulk tag, block and
//! export; merging two records of one person. Bad queries get clear errors.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::team::add_agent;
use crate::ws_client::{Visitor, Ws, visitor_session};

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let res = client()
        .get(app.url(&format!("/api/v1/visitors?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn ids(page: &Value) -> Vec<String> {
    page["visitors"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().into()).collect()
}

/// Every visitor `query` finds, a page of `limit` at a time, following the cursor.
async fn walk(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let q = match &cursor {
            Some(c) => format!("{query}&limit={limit}&cursor={c}"),
            None => format!("{query}&limit={limit}"),
        };
        let page = list(app, token, &q).await;
        all.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
    panic!("{query}: the cursor never ended");
}

/// Runs `sql` in the merchant's schema (what the site or GeoIP would have set).
async fn in_schema(app: &TestApp, m: &Merchant, sql: &str) {
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("set local search_path = {schema}; {sql}")))
        .execute(app.pool())
        .await
        .unwrap();
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    client().post(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn contacts_are_filtered_sorted_and_paged() {
    let app = spawn_app().await;
    let m = app.signup("Directory Shop").await;
    let mut v: Vec<Visitor> = Vec::new();
    for _ in 0..5 {
        v.push(visitor_session(&app, &m.ent_id).await);
    }
    let names = ["Dora", "alice", "Carl", "Bob", "Eve"];
    for (visitor, name) in v.iter().zip(names) {
        let path = format!("/api/v1/visitors/{}", visitor.id);
        let res = client()
            .patch(app.url(&path))
            .bearer_auth(&m.token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = client()
        .patch(app.url(&format!("/api/v1/visitors/{}", v[1].id)))
        .bearer_auth(&m.token)
        .json(&json!({ "email": "alice@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        post(
            &app,
            &m.token,
            &format!("/api/v1/visitors/{}/tags", v[2].id),
            json!({ "name": "VIP" })
        )
        .await
        .status(),
        200
    );
    in_schema(
        &app,
        &m,
        &format!(
            "update visitors set country = 'CN', visit_count = 7, last_seen_at = now() - interval '3 days' where public_id = '{}';
             update visitors set country = 'DE', visit_count = 3, last_seen_at = now() - interval '1 day' where public_id = '{}';
             update visitors set external_id = 'user-9', verified_at = now(), visit_count = 5 where public_id = '{}';",
            v[0].id, v[1].id, v[3].id
        ),
    )
    .await;
    let mut online = Ws::visitor(&app, &v[4].token, "").await;
    online.expect("hello").await;

    let one = |q: &'static str| {
        let (app, token) = (&app, &m.token);
        async move { ids(&list(app, token, q).await) }
    };
    assert_eq!(one("has_email=true").await, vec![v[1].id.clone()]);
    assert_eq!(one("tag=vip").await, vec![v[2].id.clone()]);
    assert_eq!(one("country=cn").await, vec![v[0].id.clone()]);
    assert_eq!(one("verified=true").await, vec![v[3].id.clone()]);
    assert_eq!(one("verified=false").await.len(), 4);
    assert_eq!(one("online=true").await, vec![v[4].id.clone()]);
    assert_eq!(one("q=ALICE@example").await, vec![v[1].id.clone()]);
    let today = chrono::Utc::now().date_naive();
    let before = format!("seen_before={}", today - chrono::Days::new(2));
    assert_eq!(ids(&list(&app, &m.token, &before).await), vec![v[0].id.clone()]);
    let after = format!("seen_after={}", today - chrono::Days::new(2));
    assert_eq!(ids(&list(&app, &m.token, &after).await).len(), 4);
    let item = &list(&app, &m.token, "tag=VIP").await["visitors"][0];
    assert_eq!(item["tags"], json!(["VIP"]));
    assert_eq!(item["conversations"], 0);
    assert_eq!(item["verified"], false);
    let online_item = &list(&app, &m.token, "online=true").await["visitors"][0];
    assert_eq!(online_item["online"], true);

    // Each order, two at a time, arrives whole and in order.
    let by = |i: usize| v[i].id.clone();
    assert_eq!(walk(&app, &m.token, "sort=name", 2).await, vec![by(1), by(3), by(2), by(0), by(4)]);
    let visits = walk(&app, &m.token, "sort=visits", 2).await;
    assert_eq!(visits[..3], [by(0), by(3), by(1)]);
    assert_eq!(visits.len(), 5);
    let seen = walk(&app, &m.token, "sort=last_seen", 2).await;
    assert_eq!(seen[3..], [by(1), by(0)]);
    let newest = walk(&app, &m.token, "sort=newest", 2).await;
    assert_eq!(newest, (0..5).rev().map(by).collect::<Vec<_>>());
    // The older `before` paging still works for the default order.
    let first = list(&app, &m.token, "limit=2").await;
    let next = first["next_before"].as_i64().unwrap();
    assert_eq!(
        ids(&list(&app, &m.token, &format!("limit=2&before={next}")).await),
        vec![by(2), by(1)]
    );

    // Nonsense is a clear error, never a 500.
    for (query, status, code) in [
        ("online=maybe", 400, "invalid_query"),
        ("sort=shoe_size", 400, "invalid_query"),
        ("limit=lots", 400, "invalid_query"),
        ("cursor=%E2%9C%93", 422, "validation_failed"),
        ("sort=name&cursor=aTEy", 422, "validation_failed"),
        ("seen_after=yesterday", 422, "validation_failed"),
    ] {
        let res = client()
            .get(app.url(&format!("/api/v1/visitors?{query}")))
            .bearer_auth(&m.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{query}");
        assert_eq!(error_code(res).await, code, "{query}");
    }
    // A conversation filter by visitor, for the contact's page.
    let mut ws = Ws::visitor(&app, &v[0].token, "").await;
    ws.send_text("c1", "hello", None).await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    let path = format!("/api/v1/conversations?view=all&status=any&visitor={}", v[0].id);
    let convs = app.get_json(&m.token, &path).await;
    assert_eq!(convs["conversations"][0]["id"], conversation);
    assert_eq!(convs["conversations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bulk_tags_and_blocks_and_only_admins_export() {
    let app = spawn_app().await;
    let m = app.signup("Bulk Shop").await;
    let other = app.signup("Other Bulk Shop").await;
    let (_, _, agent) = add_agent(&app, &m, "agent").await;
    let a = visitor_session(&app, &m.ent_id).await;
    let b = visitor_session(&app, &m.ent_id).await;
    let stranger = visitor_session(&app, &other.ent_id).await;
    let res = client()
        .patch(app.url(&format!("/api/v1/visitors/{}", a.id)))
        .bearer_auth(&m.token)
        .json(&json!({ "name": "=HYPERLINK(\"http://evil\")", "real_name": "王芳" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let bulk = |token: &String, body: Value| {
        let token = token.clone();
        let app = &app;
        async move { post(app, &token, "/api/v1/visitors/bulk", body).await }
    };
    let ids = json!([a.id, b.id, stranger.id]);
    let res = bulk(&agent, json!({ "ids": ids, "action": "tag", "tag": "Wholesale" })).await;
    assert_eq!(res.status(), 200);
    // Another merchant's visitor is skipped: two changed, not three.
    assert_eq!(res.json::<Value>().await.unwrap()["changed"], 2);
    let again = bulk(&agent, json!({ "ids": ids, "action": "tag", "tag": "wholesale" })).await;
    assert_eq!(again.json::<Value>().await.unwrap()["changed"], 0);
    let tagged = list(&app, &m.token, "tag=wholesale").await;
    assert_eq!(tagged["visitors"].as_array().unwrap().len(), 2);
    let theirs = list(&app, &other.token, "").await;
    assert_eq!(theirs["visitors"][0]["tags"], json!([]));
    let res = bulk(&agent, json!({ "ids": [b.id], "action": "untag", "tag": "WHOLESALE" })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["changed"], 1);

    for (body, field) in [
        (json!({ "ids": [], "action": "tag", "tag": "x" }), "ids"),
        (json!({ "ids": vec!["v1"; 501], "action": "tag", "tag": "x" }), "ids"),
        (json!({ "ids": [a.id], "action": "tag" }), "name"),
        (json!({ "ids": [a.id], "action": "tag", "tag": "a,b" }), "name"),
    ] {
        let res = bulk(&agent, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["fields"][field].is_string(), "{body}: {err}");
    }
    let res = bulk(&agent, json!({ "ids": [a.id], "action": "delete_everything" })).await;
    assert_eq!(res.status(), 422);

    // Blocking ends the visitor's chat at once.
    let mut ws = Ws::visitor(&app, &b.token, "").await;
    ws.expect("hello").await;
    let res = bulk(&agent, json!({ "ids": [b.id], "action": "block", "reason": "spam" })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["changed"], 1);
    assert_eq!(ws.expect_close().await, 4003);
    assert_eq!(list(&app, &m.token, &format!("q={}", b.id)).await["visitors"][0]["blocked"], true);

    // The export: admins only, spreadsheet-safe, Chinese intact, audit-logged.
    let res =
        client().get(app.url("/api/v1/visitors/export")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = client()
        .get(app.url("/api/v1/visitors/export?tag=wholesale"))
        .bearer_auth(&m.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}'), "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].contains("id,name,real_name"));
    assert!(lines[1].contains("'=HYPERLINK") && lines[1].contains("王芳"), "{csv}");
    let picked = client()
        .get(app.url(&format!("/api/v1/visitors/export?ids={},{}", b.id, stranger.id)))
        .bearer_auth(&m.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(picked.lines().count(), 2, "{picked}");
    assert!(picked.contains(&b.id) && !picked.contains(&stranger.id));
    let audit = app.get_json(&m.token, "/api/v1/audit").await;
    assert!(audit.to_string().contains("visitor.export"));
    assert!(audit.to_string().contains("blacklist.bulk_add"));
}

#[tokio::test]
async fn merging_two_records_keeps_one_person() {
    let app = spawn_app().await;
    let m = app.signup("Merge Shop").await;
    let (_, _, agent) = add_agent(&app, &m, "agent").await;
    let phone = visitor_session(&app, &m.ent_id).await;
    let desktop = visitor_session(&app, &m.ent_id).await;
    for (v, text) in [(&phone, "from my phone"), (&desktop, "from my desktop")] {
        let mut ws = Ws::visitor(&app, &v.token, "").await;
        ws.send_text("m1", text, None).await;
        ws.expect("ack").await;
    }
    let visitor_path = |v: &Visitor| format!("/api/v1/visitors/{}", v.id);
    let res = client()
        .patch(app.url(&visitor_path(&desktop)))
        .bearer_auth(&m.token)
        .json(&json!({ "email": "li.na@example.com", "real_name": "李娜" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    post(&app, &m.token, &format!("{}/tags", visitor_path(&phone)), json!({ "name": "VIP" })).await;
    post(&app, &m.token, &format!("{}/tags", visitor_path(&desktop)), json!({ "name": "B2B" }))
        .await;
    post(
        &app,
        &m.token,
        &format!("{}/notes", visitor_path(&desktop)),
        json!({ "body": "prefers email" }),
    )
    .await;

    let merge_path = format!("{}/merge", visitor_path(&phone));
    let res = post(&app, &agent, &merge_path, json!({ "from": desktop.id })).await;
    assert_eq!(res.status(), 403, "merging is for admins");
    for (from, status) in [(phone.id.as_str(), 422), ("v-nobody", 422)] {
        let res = post(&app, &m.token, &merge_path, json!({ "from": from })).await;
        assert_eq!(res.status(), status, "{from}");
    }
    let mut desktop_ws = Ws::visitor(&app, &desktop.token, "").await;
    desktop_ws.expect("hello").await;

    let res = post(&app, &m.token, &merge_path, json!({ "from": desktop.id })).await;
    let status = res.status();
    let merged: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["conversations_moved"], 1);
    let v = &merged["visitor"];
    assert_eq!(v["id"], phone.id.as_str());
    assert_eq!(v["email"], "li.na@example.com");
    assert_eq!(v["real_name"], "李娜");
    assert_eq!(v["tags"], json!(["B2B", "VIP"]));
    assert_eq!(v["notes"][0]["body"], "prefers email");
    let convs = app
        .get_json(
            &m.token,
            &format!("/api/v1/conversations?view=all&status=any&visitor={}", phone.id),
        )
        .await;
    assert_eq!(convs["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(app.get_as(&m, &visitor_path(&desktop)).await.status(), 404);
    let audit = app.get_json(&m.token, "/api/v1/audit").await;
    assert!(audit.to_string().contains("visitor.merge"));

    // The desktop's open page is told to reconnect, and comes back as the one person.
    assert_eq!(desktop_ws.expect_close().await, 4008);
    let mut again = Ws::visitor(&app, &desktop.token, "").await;
    again.expect("hello").await;
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "token": desktop.token }))
        .send()
        .await
        .unwrap();
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["visitor_id"], phone.id.as_str());
    assert_eq!(session["resumed"], true);

    // Two different verified users are two people.
    let (x, y) = (visitor_session(&app, &m.ent_id).await, visitor_session(&app, &m.ent_id).await);
    in_schema(
        &app,
        &m,
        &format!(
            "update visitors set external_id = 'u-1', verified_at = now() where public_id = '{}';
             update visitors set external_id = 'u-2', verified_at = now() where public_id = '{}';",
            x.id, y.id
        ),
    )
    .await;
    let res =
        post(&app, &m.token, &format!("{}/merge", visitor_path(&x)), json!({ "from": y.id })).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "different_people");
}

#[tokio::test]
async fn conversations_filter_and_each_agent_keeps_their_views() {
    let app = spawn_app().await;
    let m = app.signup("Filter Shop").await;
    let (agent_id, _, agent) = add_agent(&app, &m, "agent").await;
    let mut conversations = Vec::new();
    for (i, text) in ["first", "second", "third"].iter().enumerate() {
        let v = visitor_session(&app, &m.ent_id).await;
        let mut ws = Ws::visitor(&app, &v.token, "").await;
        ws.send_text(&format!("f{i}"), text, None).await;
        conversations.push((v, ws.expect("ack").await["conversation_id"].as_i64().unwrap()));
    }
    // The first is the agent's and answered; the second is tagged VIP and rated after closing.
    let (first, second) = (conversations[0].1, conversations[1].1);
    let res = post(
        &app,
        &m.token,
        &format!("/api/v1/conversations/{first}/transfer"),
        json!({ "agent_id": agent_id }),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = post(
        &app,
        &agent,
        &format!("/api/v1/conversations/{first}/messages"),
        json!({ "body": "Hello!" }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let path = format!("/api/v1/visitors/{}/tags", conversations[1].0.id);
    post(&app, &m.token, &path, json!({ "name": "VIP" })).await;
    assert_eq!(app.close_conversation(&m, second).await.status(), 200);
    let res = client()
        .post(app.url("/api/v1/visitor/rating"))
        .bearer_auth(&conversations[1].0.token)
        .json(&json!({ "conversation_id": second, "score": 4 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let found = |query: String| {
        let (app, token) = (&app, m.token.clone());
        async move {
            let page = app
                .get_json(&token, &format!("/api/v1/conversations?view=all&status=any&{query}"))
                .await;
            let mut ids: Vec<i64> = page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap())
                .collect();
            ids.sort();
            ids
        }
    };
    let third = conversations[2].1;
    assert_eq!(found(format!("assignee={agent_id}")).await, vec![first]);
    assert_eq!(found("tag=vip".into()).await, vec![second]);
    assert_eq!(found("rating=4".into()).await, vec![second]);
    assert_eq!(found("rating=5".into()).await, Vec::<i64>::new());
    assert_eq!(found("unanswered=true".into()).await, vec![second, third]);
    let today = chrono::Utc::now().date_naive();
    assert_eq!(found(format!("from={today}&to={today}")).await, vec![first, second, third]);
    assert_eq!(found(format!("to={}", today - chrono::Days::new(1))).await, Vec::<i64>::new());
    for query in ["rating=9", "from=soon", "unanswered=perhaps"] {
        let res = client()
            .get(app.url(&format!("/api/v1/conversations?view=all&{query}")))
            .bearer_auth(&m.token)
            .send()
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 400 | 422), "{query}: {}", res.status());
        assert!(error_code(res).await.len() > 3, "{query}");
    }

    // Saved views: each agent's own.
    let res = post(
        &app,
        &agent,
        "/api/v1/views",
        json!({ "name": "My VIPs", "query": "tag=VIP&assignee=me" }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let view: Value = res.json().await.unwrap();
    assert_eq!(app.get_json(&agent, "/api/v1/views").await["views"][0]["name"], "My VIPs");
    assert_eq!(app.get_json(&m.token, "/api/v1/views").await["views"], json!([]));
    let theirs = format!("/api/v1/views/{}", view["id"]);
    let res = client().delete(app.url(&theirs)).bearer_auth(&m.token).send().await.unwrap();
    assert_eq!(res.status(), 404, "another agent's view");
    for body in [
        json!({ "name": "", "query": "a=1" }),
        json!({ "name": "x", "query": "not a query" }),
        json!({ "name": "x", "query": "a".repeat(501) }),
    ] {
        let res = post(&app, &agent, "/api/v1/views", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    let res = client().delete(app.url(&theirs)).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(res.status(), 204);
}

//! Merchant settings and keyword auto-replies: validation, what visitors see change with
//! them, and the chat engine picks changes up at once.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

async fn patch(app: &TestApp, m: &Merchant, body: Value) -> reqwest::Response {
    client().patch(app.url("/api/v1/settings")).bearer_auth(&m.token).json(&body).sent().await
}

#[tokio::test]
async fn settings_are_checked_stored_and_shown_to_visitors() {
    let app = spawn_app().await;
    let m = app.signup("Lumen Store").await;
    let defaults: Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(defaults["widget_color"], "#4f46e5");
    assert_eq!(defaults["default_lang"], "en");
    assert_eq!(defaults["allowed_widget_domains"], json!([]));

    let res = patch(
        &app,
        &m,
        json!({
            "service_name": "Lumen Support", "widget_color": "#0EA5E9", "default_lang": "zh-CN",
            "allowed_widget_domains": ["https://Shop.Lumen.example/lamps", "shop.lumen.example", " "],
            "welcome_message": "<p onclick=\"steal()\">欢迎光临！<script>alert(1)</script></p><p>How can <b>we</b> help? <a href=\"javascript:alert(1)\">x</a> <a href=\"https://lumen.example/faq\" target=\"_top\">FAQ</a></p><img src=x onerror=alert(1)>",
            "notification_email": "ops@lumen.example"
        }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["widget_color"], "#0ea5e9");
    assert_eq!(
        s["allowed_widget_domains"],
        json!(["shop.lumen.example"]),
        "normalized, deduplicated"
    );
    // Rich text, sanitized on the way in: no scripts, handlers, images or unsafe links.
    let welcome_html = "<p>欢迎光临！</p><p>How can <b>we</b> help? <a rel=\"noopener noreferrer nofollow\">x</a> \
        <a href=\"https://lumen.example/faq\" rel=\"noopener noreferrer nofollow\">FAQ</a></p>";
    assert_eq!(s["welcome_message"], welcome_html);

    for (body, field) in [
        (json!({ "widget_color": "blue" }), "widget_color"),
        (json!({ "default_lang": "fr" }), "default_lang"),
        (json!({ "allowed_widget_domains": ["not a domain"] }), "allowed_widget_domains"),
        (json!({ "notification_email": "nope" }), "notification_email"),
        (json!({ "service_name": "x".repeat(81) }), "service_name"),
        (json!({ "welcome_message": "x".repeat(1001) }), "welcome_message"),
    ] {
        let res = patch(&app, &m, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["fields"][field].is_string(), "{body} → {err}");
    }
    let res = patch(&app, &m, json!({ "widget_position": "middle" })).await;
    assert_eq!(res.status(), 422);
    let res = patch(&app, &m, json!({ "no_such_setting": 1 })).await;
    assert_eq!(res.status(), 422, "unknown settings are refused, not ignored");
    let unchanged: Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(unchanged, s, "refused changes store nothing");

    // The chat page: the service name, the colour, the merchant's language for a browser
    // asking for one kefu does not speak, and only the allowed sites may frame it.
    let page = |accept: &'static str, query: &'static str| {
        let url = app.url(&format!("/chatIndex?ent_id={}{query}", m.ent_id));
        async move { client().get(url).header("accept-language", accept).send().await.unwrap() }
    };
    let res = page("fr-FR,fr;q=0.9", "").await;
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'self' https://shop.lumen.example"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Lumen Support</h1>"));
    assert!(html.contains(r##"data-color="#0ea5e9""##));
    assert!(html.contains(r#"<html lang="zh-CN">"#), "the merchant's default language");
    let html = page("fr-FR", "&lang=en").await.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#), "lang= wins");
    let html = page("en-US", "").await.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#), "the browser's language wins over the default");

    // The welcome message goes out with the next new conversation (the cache was invalidated).
    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("c1", "hello", None).await;
    let welcome = ws
        .expect_where("the welcome", |f| f["type"] == "message" && f["sender"]["kind"] == "bot")
        .await;
    assert_eq!(welcome["body"], "欢迎光临！\nHow can we help? x FAQ", "the text reading");
    assert_eq!(welcome["payload"]["html"], welcome_html, "the markup, for pages that show it");

    // Plain text from API clients stays plain text: escaped, its lines kept.
    let res = patch(&app, &m, json!({ "welcome_message": "Hi <3 & welcome\nBye" })).await;
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["welcome_message"], "Hi &lt;3 &amp; welcome<br>Bye");
    // An editor left with an empty paragraph means no welcome message.
    let res = patch(&app, &m, json!({ "welcome_message": "<p><br></p>" })).await;
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["welcome_message"], "");
    let res =
        patch(&app, &m, json!({ "welcome_message": format!("<b>{}</b>", "x".repeat(1001)) })).await;
    assert_eq!(res.status(), 422, "the limit counts text, not markup");
}

#[tokio::test]
async fn logo_and_avatars_are_the_teams_own_images() {
    let app = spawn_app().await;
    let m = app.signup("Picture Shop").await;
    let other = app.signup("Other Shop").await;
    let upload = |token: String, bytes: Vec<u8>, name: &'static str| {
        let url = app.url("/api/v1/uploads");
        async move {
            let form = reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
            let res = client().post(url).bearer_auth(token).multipart(form).send().await.unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    };
    let logo = upload(m.token.clone(), png(200, 200), "logo.png").await;
    let res = patch(&app, &m, json!({ "logo": logo, "avatar": logo })).await;
    assert_eq!(res.status(), 200);
    let s: Value = res.json().await.unwrap();
    let thumb = format!("/u/{}/{logo}/thumb", m.ent_id);
    assert_eq!(s["logo"], logo.as_str());
    assert_eq!(s["logo_url"], thumb.as_str());
    assert_eq!(s["avatar_url"], thumb.as_str());
    let res = client().get(app.url(&thumb)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("image/"));

    // The chat page shows the logo, and knows the service avatar.
    let html = client().get(app.url(&format!("/chatIndex?ent_id={}", m.ent_id))).text_body().await;
    assert!(html.contains(&format!(r#"<img class="chat-avatar chat-logo" src="{thumb}""#)));
    assert!(html.contains(&format!(r#"data-service-avatar="{thumb}""#)));

    // A visitor's upload, a document, another merchant's image or nonsense: refused, and
    // nothing is stored.
    let visitor = visitor_session(&app, &m.ent_id).await;
    let visitors = upload(visitor.token.clone(), png(50, 50), "me.png").await;
    let document = upload(m.token.clone(), b"just text\n".to_vec(), "notes.txt").await;
    let foreign = upload(other.token.clone(), png(50, 50), "theirs.png").await;
    for bad in [visitors, document, foreign, "../../etc/passwd".into(), "x".repeat(26)] {
        let res = patch(&app, &m, json!({ "logo": bad })).await;
        assert_eq!(res.status(), 422, "{bad}");
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["fields"]["logo"].is_string(), "{err}");
    }
    let unchanged: Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(unchanged["logo"], logo.as_str());

    // Removing it brings the initial back.
    let s: Value = patch(&app, &m, json!({ "logo": "" })).await.json().await.unwrap();
    assert_eq!(s["logo_url"], Value::Null);
    let html = client().get(app.url(&format!("/chatIndex?ent_id={}", m.ent_id))).text_body().await;
    assert!(html.contains(r#"<div class="chat-avatar" aria-hidden="true">P</div>"#));

    // An agent chooses their own photo; their replies carry it, live and in the history.
    let (agent_id, _, agent_token) = crate::team::add_agent(&app, &m, "agent").await;
    let photo = upload(agent_token.clone(), png(64, 64), "me.png").await;
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&agent_token)
        .json(&json!({ "avatar": photo }))
        .sent()
        .await;
    assert_eq!(res.status(), 200, "agents choose their own photo");
    let me: Value = res.json().await.unwrap();
    let photo_url = format!("/u/{}/{photo}/thumb", m.ent_id);
    assert_eq!(me["avatar_url"], photo_url.as_str());
    let owner_id: i64 = app.get_as(&m, "/api/v1/me").await.json::<Value>().await.unwrap()["agent"]
        ["id"]
        .as_i64()
        .unwrap();
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{owner_id}")))
        .bearer_auth(&agent_token)
        .json(&json!({ "avatar": photo }))
        .sent()
        .await;
    assert_eq!(res.status(), 403, "but not anybody else's");

    let mut ws = Ws::visitor(&app, &visitor.token, "").await;
    ws.send_text("v1", "hello", None).await;
    let ack = ws.expect("ack").await;
    let conversation = ack["conversation_id"].as_i64().unwrap();
    let mut agent = Ws::agent(&app, &agent_token, "").await;
    agent
        .send(json!({ "type": "send", "client_msg_id": "a1", "conversation_id": conversation, "kind": "text", "body": "Hi!" }))
        .await;
    let reply = ws
        .expect_where("the reply", |f| f["type"] == "message" && f["sender"]["kind"] == "agent")
        .await;
    assert_eq!(reply["sender"]["avatar"], photo_url.as_str());
    let mut again = Ws::visitor(&app, &visitor.token, "&since=0").await;
    let replayed = again
        .expect_where("the replay", |f| f["type"] == "message" && f["sender"]["kind"] == "agent")
        .await;
    assert_eq!(replayed["sender"]["avatar"], photo_url.as_str());

    // Clearing it.
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&agent_token)
        .json(&json!({ "avatar": "" }))
        .sent()
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["avatar_url"], Value::Null);
}

#[tokio::test]
async fn auto_replies_answer_matching_messages_and_follow_changes() {
    let app = spawn_app().await;
    let m = app.signup("Auto Shop").await;
    let post = |body: Value| {
        client().post(app.url("/api/v1/auto_replies")).bearer_auth(&m.token).json(&body).send()
    };
    let res = post(json!({ "keyword": "Price", "reply": "Prices start at $49." })).await.unwrap();
    assert_eq!(res.status(), 201);
    let rule: Value = res.json().await.unwrap();
    assert_eq!(rule["match_kind"], "contains");
    assert_eq!(rule["enabled"], true);
    let res = post(json!({ "keyword": "hi", "match_kind": "exact", "reply": "Hello! 👋" }))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for body in [
        json!({ "keyword": "", "reply": "x" }),
        json!({ "keyword": "x" }),
        json!({ "keyword": "x", "reply": "y", "match_kind": "regex" }),
    ] {
        let res = post(body.clone()).await.unwrap();
        assert_eq!(res.status(), 422, "{body}");
    }

    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("c1", "What is the PRICE of the lamp?", None).await;
    ws.expect_where("the auto-reply", |f| {
        f["type"] == "message" && f["body"] == "Prices start at $49."
    })
    .await;
    ws.send_text("c2", "hi", None).await;
    ws.expect_where("the exact match", |f| f["type"] == "message" && f["body"] == "Hello! 👋")
        .await;

    // Disabled, it stays quiet from the next message on.
    let res = client()
        .patch(app.url(&format!("/api/v1/auto_replies/{}", rule["id"])))
        .bearer_auth(&m.token)
        .json(&json!({ "enabled": false }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    ws.send_text("c3", "price again?", None).await;
    ws.send_text("c4", "hi", None).await;
    let mut bodies = Vec::new();
    while let Some(f) = ws.next().await {
        if f["type"] == "message" && f["sender"]["kind"] == "bot" {
            bodies.push(f["body"].as_str().unwrap().to_owned());
        }
        if bodies.contains(&"Hello! 👋".to_owned())
            && f["type"] == "message"
            && f["body"] == "Hello! 👋"
        {
            break;
        }
    }
    assert!(
        !bodies.iter().any(|b| b == "Prices start at $49."),
        "a disabled rule answered: {bodies:?}"
    );
    let list: Value = app.get_as(&m, "/api/v1/auto_replies").await.json().await.unwrap();
    assert_eq!(list["auto_replies"].as_array().unwrap().len(), 2);
    let res = client()
        .delete(app.url(&format!("/api/v1/auto_replies/{}", rule["id"])))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn outside_business_hours_the_team_is_away_and_visitors_get_the_out_of_hours_message() {
    let app = spawn_app().await;
    let m = app.signup("Hours Shop").await;
    // An agent is connected and online …
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.send(json!({ "type": "status", "status": "online" })).await;
    agent.expect_where("online", |f| f["type"] == "presence" && f["status"] == "online").await;
    // … but the shop is closed every day.
    let closed = json!({
        "enabled": true, "time_zone": "Asia/Shanghai", "days": [[], [], [], [], [], [], []],
        "out_of_hours_message": "<p>We are <b>closed</b> now; we open at 9:00 (Beijing time).</p>"
    });
    let res = patch(&app, &m, json!({ "business_hours": closed })).await;
    assert_eq!(res.status(), 200);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["business_hours"]["enabled"], true);

    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    let team =
        ws.expect_where("team presence", |f| f["type"] == "presence" && f["of"] == "team").await;
    assert_eq!(team["online"], false, "closed: nobody answers");
    assert_eq!(team["agents"], true, "an agent is online, out of hours");
    ws.send_text("c1", "anyone there?", None).await;
    // The stored notice (rich text for the page), then the live notice (its text).
    let stored = ws
        .expect_where("the stored notice", |f| f["type"] == "message" && f["kind"] == "notice")
        .await;
    assert_eq!(
        stored["payload"]["html"],
        "<p>We are <b>closed</b> now; we open at 9:00 (Beijing time).</p>"
    );
    let notice = ws.expect("notice").await;
    assert_eq!(notice["code"], "offline");
    assert_eq!(notice["message"], "We are closed now; we open at 9:00 (Beijing time).");

    // Open around the clock: the team is back.
    let open = json!({
        "enabled": true, "time_zone": "UTC",
        "days": vec![vec![json!({ "from": "00:00", "to": "24:00" })]; 7]
    });
    assert_eq!(patch(&app, &m, json!({ "business_hours": open })).await.status(), 200);
    let v2 = visitor_session(&app, &m.ent_id).await;
    let mut ws2 = Ws::visitor(&app, &v2.token, "").await;
    let team =
        ws2.expect_where("team presence", |f| f["type"] == "presence" && f["of"] == "team").await;
    assert_eq!(team["online"], true);

    for bad in [
        json!({ "enabled": true, "time_zone": "Mars/Base", "days": vec![Vec::<Value>::new(); 7] }),
        json!({ "enabled": true, "time_zone": "UTC", "days": [[]] }),
        json!({ "enabled": true, "time_zone": "UTC", "days": vec![vec![json!({ "from": "18:00", "to": "09:00" })]; 7] }),
        json!({ "enabled": "yes" }),
    ] {
        let res = patch(&app, &m, json!({ "business_hours": bad.clone() })).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
}

/// Seeds three conversations (and two ratings) with known times and checks every number of
/// the reports, and their CSV.
#[tokio::test]
async fn statistics_on_seeded_data() {
    let app = spawn_app().await;
    let m = app.signup("Stats Shop").await;
    let utc = json!({ "enabled": false, "time_zone": "UTC", "days": vec![Vec::<Value>::new(); 7] });
    assert_eq!(patch(&app, &m, json!({ "business_hours": utc })).await.status(), 200);
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "with v as (insert into {schema}.visitors (public_id, name) values ('vstats', 'Stats visitor') returning id),
              a as (select id from {schema}.agents where role = 'owner'),
              c1 as (insert into {schema}.conversations (visitor_id, agent_id, status, created_at, closed_at)
                     select v.id, a.id, 'closed', '2026-11-02 10:00Z', '2026-11-02 10:30Z' from v, a returning id),
              c2 as (insert into {schema}.conversations (visitor_id, agent_id, status, created_at)
                     select v.id, a.id, 'open', '2026-11-02 23:30Z' from v, a returning id),
              c3 as (insert into {schema}.conversations (visitor_id, status, created_at, closed_at)
                     select v.id, 'closed', '2026-11-03 09:00Z', '2026-11-03 09:10Z' from v returning id)
         insert into {schema}.messages (conversation_id, sender_kind, sender_agent_id, kind, body, created_at)
         select c1.id, 'visitor', null, 'text', 'hi', timestamptz '2026-11-02 10:00Z' from c1
         union all select c1.id, 'agent', a.id, 'text', 'hello', '2026-11-02 10:01Z' from c1, a
         union all select c2.id, 'visitor', null, 'text', 'late', '2026-11-02 23:30Z' from c2
         union all select c2.id, 'agent', a.id, 'text', 'yes', '2026-11-02 23:33Z' from c2, a
         union all select c3.id, 'visitor', null, 'text', 'one', '2026-11-03 09:00Z' from c3
         union all select c3.id, 'visitor', null, 'text', 'two', '2026-11-03 09:02Z' from c3"
    )))
    .execute(app.pool())
    .await
    .unwrap();
    // Ratings ten minutes after each resolution: c1 (the owner's) 5 stars, c3 (nobody's) 2.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into {schema}.conversation_ratings (conversation_id, visitor_id, agent_id, score, created_at)
         select c.id, c.visitor_id, c.agent_id, case when c.agent_id is null then 2 else 5 end,
                c.closed_at + interval '10 minutes'
         from {schema}.conversations c where c.status = 'closed'"
    )))
    .execute(app.pool())
    .await
    .unwrap();

    let get = |q: &'static str| {
        let (app, m) = (&app, &m);
        async move { app.get_as(m, &format!("/api/v1/stats{q}")).await }
    };
    let s: Value = get("?from=2026-11-01&to=2026-11-03").await.json().await.unwrap();
    // Per day: conversations, messages, visitor messages, missed (c3: nobody replied),
    // ratings and their average.
    let day = |date: &str, conversations, messages, visitor, missed, ratings, csat: Value| {
        json!({ "date": date, "conversations": conversations, "messages": messages,
                "visitor_messages": visitor, "missed": missed, "ratings": ratings, "csat_average": csat })
    };
    assert_eq!(
        s["days"],
        json!([
            day("2026-11-01", 0, 0, 0, 0, 0, Value::Null),
            day("2026-11-02", 2, 4, 2, 0, 1, json!(5.0)),
            day("2026-11-03", 1, 2, 2, 1, 1, json!(2.0)),
        ])
    );
    assert_eq!((s["conversations"].as_i64(), s["missed"].as_i64()), (Some(3), Some(1)));
    assert_eq!(
        s["csat"],
        json!({ "count": 2, "average": 3.5, "satisfied_share": 0.5, "distribution": [0, 1, 0, 0, 1] })
    );
    // Busiest hours (UTC here): Monday 10:00 and 23:00, Tuesday 09:00.
    let mut hours = vec![vec![0_i64; 24]; 7];
    hours[0][10] = 1;
    hours[0][23] = 1;
    hours[1][9] = 1;
    assert_eq!(s["hours"], json!(hours));
    // First replies after 60 s and 180 s (c3 was never answered).
    assert_eq!(
        s["first_response"],
        json!({ "count": 2, "median_seconds": 120.0, "p90_seconds": 168.0 })
    );
    // Closed after 1,800 s and 600 s.
    assert_eq!(
        s["resolution"],
        json!({ "count": 2, "median_seconds": 1200.0, "p90_seconds": 1680.0 })
    );
    assert_eq!(s["agents"][0]["conversations"], 2);
    assert_eq!(s["agents"][0]["messages"], 2);
    assert_eq!(s["agents"][0]["median_first_response_seconds"], 120.0);
    assert_eq!(s["agents"][0]["p90_first_response_seconds"], 168.0);
    assert_eq!(s["agents"][0]["resolved"], 1);
    assert_eq!(s["agents"][0]["median_resolution_seconds"], 1800.0);
    assert_eq!(
        (s["agents"][0]["ratings"].as_i64(), s["agents"][0]["csat_average"].as_f64()),
        (Some(1), Some(5.0))
    );

    // The same numbers as CSV. A name that looks like a formula is defused.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "update {schema}.agents set display_name = '=HYPERLINK(\"x\")' where role = 'owner'"
    )))
    .execute(app.pool())
    .await
    .unwrap();
    let csv = |table: &'static str| {
        let (app, m) = (&app, &m);
        async move {
            let res = app
                .get_as(
                    m,
                    &format!("/api/v1/stats/export?from=2026-11-01&to=2026-11-03&table={table}"),
                )
                .await;
            assert_eq!(res.status(), 200, "{table}");
            assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
            let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
            assert_eq!(
                disposition,
                format!("attachment; filename=\"kefu-{table}-2026-11-01-2026-11-03.csv\"")
            );
            let text = res.text().await.unwrap();
            text.strip_prefix('\u{feff}').expect("a byte-order mark").to_owned()
        }
    };
    let agents = csv("agents").await;
    let mut lines = agents.lines();
    assert_eq!(
        lines.next(),
        Some(
            "agent_id,agent,conversations,messages,median_first_response_seconds,p90_first_response_seconds,resolved,median_resolution_seconds,ratings,csat_average"
        )
    );
    let owner = lines.next().unwrap();
    assert!(owner.ends_with(",\"'=HYPERLINK(\"\"x\"\")\",2,2,120,168,1,1800,1,5"), "{owner}");
    let summary = csv("summary").await;
    for line in [
        "conversations,3",
        "missed,1",
        "first_response_median_seconds,120",
        "first_response_p90_seconds,168",
        "resolution_median_seconds,1200",
        "resolution_p90_seconds,1680",
        "csat_average,3.5",
        "csat_2_stars,1",
    ] {
        assert!(summary.lines().any(|l| l == line), "{line} in {summary}");
    }
    let days_csv = csv("days").await;
    assert_eq!(days_csv.lines().nth(3), Some("2026-11-03,1,2,2,1,1,2"));
    let hours_csv = csv("hours").await;
    assert!(hours_csv.lines().nth(1).unwrap().starts_with("Monday,0,0,0,0,0,0,0,0,0,0,1,"));
    let res = app.get_as(&m, "/api/v1/stats/export?table=everything").await;
    assert_eq!(res.status(), 422);

    // In Shanghai (UTC+8), 23:30 UTC on the 2nd is the morning of the 3rd.
    let sh = json!({ "enabled": false, "time_zone": "Asia/Shanghai", "days": vec![Vec::<Value>::new(); 7] });
    assert_eq!(patch(&app, &m, json!({ "business_hours": sh })).await.status(), 200);
    let s: Value = get("?from=2026-11-02&to=2026-11-03").await.json().await.unwrap();
    assert_eq!(s["days"][0]["conversations"], 1);
    assert_eq!(s["days"][1]["conversations"], 2);
    assert_eq!(s["hours"][1][7], 1, "23:30 UTC on Monday is 07:30 on Tuesday in Shanghai");

    for q in ["?from=yesterday", "?from=2026-11-05&to=2026-11-01", "?from=2026-01-01&to=2026-11-01"]
    {
        let res = get(q).await;
        assert_eq!(res.status(), 422, "{q}");
    }
}

#[tokio::test]
async fn the_chat_link_sends_visitors_on_to_the_landing_domain() {
    let app = spawn_app().await;
    let m = app.signup("Landing Shop").await;
    for bad in [
        "chat.lumen.example",
        "https://chat.lumen.example/path",
        "javascript:alert(1)",
        "ftp://chat.lumen.example",
    ] {
        let res = patch(&app, &m, json!({ "landing_url": bad })).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    let res = patch(&app, &m, json!({ "landing_url": "https://Chat.Lumen.example/" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["landing_url"], "https://chat.lumen.example");

    let path = format!("/chatIndex?ent_id={}&lang=en&visitor_name=Mia", m.ent_id);
    let res = client().get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], format!("https://chat.lumen.example{path}").as_str());
    // Arrived there: the page itself.
    let res =
        client().get(app.url(&path)).header("host", "chat.lumen.example").send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Inside the widget there is no redirect (the loader talks to the origin it used).
    let res = client().get(app.url(&format!("{path}&embed=1"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Cleared, the link is served where it is.
    assert_eq!(patch(&app, &m, json!({ "landing_url": "" })).await.status(), 200);
    assert_eq!(client().get(app.url(&path)).send().await.unwrap().status(), 200);
}

//! Tenant isolation. Driven by the route table: every tenant-scoped route must have a case
//! here, or the test fails naming it. Each case is requested twice with tenant A's token —
//! once naming A's own objects (must succeed, so a 404 below is meaningful) and once naming
//! tenant B's objects or B's ent_id (must be 404).

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::Method;
use futures::StreamExt as _;
use kefu::http::Scope;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use tenants::TenantMigrator;

use crate::helpers::*;

/// The objects of one tenant that routes can name.
pub(crate) struct Ids {
    pub(crate) ent_id: String,
    pub(crate) agent_id: i64,
    pub(crate) conversation_id: i64,
    pub(crate) visitor_id: String,
    /// A saved view of the owner's Conversations page.
    pub(crate) view_id: i64,
    /// A second visitor, to merge into the first.
    pub(crate) spare_visitor_id: String,
    pub(crate) upload_id: String,
    pub(crate) quick_reply_id: i64,
    pub(crate) note_id: i64,
    pub(crate) blacklist_id: i64,
    pub(crate) auto_reply_id: i64,
    /// A published announcement meant for merchants on this tenant's plan.
    pub(crate) announcement_id: i64,
    /// An agent invited by email who has not joined yet (where email is on).
    pub(crate) invited_agent_id: i64,
    /// Another agent, for the resets (which end that person's sessions).
    pub(crate) reset_agent_id: i64,
    /// Two webhooks: one to act on, one to delete.
    pub(crate) webhook_id: i64,
    pub(crate) webhook_delete_id: i64,
    pub(crate) api_token_id: i64,
    /// A second session of the owner's (another sign-in), to end.
    pub(crate) session_id: String,
}

/// Whether a request its caller may make was served. Routes that need a code from an
/// authenticator app cannot be given a right one by these walks: their handler refusing
/// the code (not a 404 or 403) shows the request got through (tests/it/two_factor.rs covers
/// the right codes and the password change).
pub(crate) async fn served(path: &str, res: reqwest::Response) -> bool {
    if path.starts_with("/api/v1/me/totp/") {
        return res.status() == 401 && error_code(res).await == "invalid_code";
    }
    // Likewise a password change is sent with a wrong current password: a right one would
    // end the walking session.
    if path == "/api/v1/me/password" {
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        return status == 422 && body["error"]["fields"]["current_password"].is_string();
    }
    res.status().is_success()
}

/// What a case sends.
#[derive(Clone)]
pub(crate) enum Body {
    Json(Value),
    /// A multipart upload of a small image (images have thumbnails to fetch too).
    File,
}

pub(crate) fn image_file() -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(png(40, 30)).file_name("lamp.png"))
}

/// Moves every id sequence of `m`'s schema to `offset`. Each merchant counts its ids from 1,
/// so two merchants' first objects share ids; naming one's own object by an id the other
/// also has proves nothing. With each merchant's ids apart, "B's id with A's token" names
/// only an object A does not have.
pub(crate) async fn ids_apart(app: &TestApp, m: &Merchant, offset: i64) {
    let schema = tenants::schema_name(tenant_id(app.pool(), &m.ent_id).await);
    let sequences: Vec<String> = sqlx::query_scalar(
        "select sequence_name::text from information_schema.sequences where sequence_schema = $1",
    )
    .bind(&schema)
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(sequences.len() >= 10, "the merchant's own sequences: {sequences:?}");
    for sequence in sequences {
        sqlx::query("select setval(format('%I.%I', $1::text, $2::text)::regclass, $3)")
            .bind(&schema)
            .bind(&sequence)
            .bind(offset)
            .execute(app.pool())
            .await
            .unwrap();
    }
}

/// Gives the merchant a visitor with a conversation, and collects its ids.
pub(crate) async fn ids_of(app: &TestApp, m: &Merchant) -> Ids {
    let agents: Value = app.get_as(m, "/api/v1/agents").await.json().await.unwrap();
    let visitor = crate::ws_client::visitor_session(app, &m.ent_id).await;
    let mut ws = crate::ws_client::Ws::visitor(app, &visitor.token, "").await;
    ws.send_text("hello", "hello", None).await;
    let ack = ws.expect("ack").await;
    let upload: Value = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .multipart(image_file())
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let post = |path: &str, body: Value| {
        client().post(app.url(path)).bearer_auth(&m.token).json(&body).send()
    };
    let created = |res: reqwest::Response| async move {
        assert!(res.status().is_success(), "{}", res.status());
        res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    };
    let quick_reply_id = created(
        post("/api/v1/quick_replies", serde_json::json!({"title": "Hi", "body": "Hello!"}))
            .await
            .unwrap(),
    )
    .await;
    let note_id = created(
        post(
            &format!("/api/v1/visitors/{}/notes", visitor.id),
            serde_json::json!({"body": "note"}),
        )
        .await
        .unwrap(),
    )
    .await;
    let tagged =
        post(&format!("/api/v1/visitors/{}/tags", visitor.id), serde_json::json!({"name": "vip"}))
            .await
            .unwrap();
    assert!(tagged.status().is_success());
    // An address of its own per call (a merchant cannot block one twice).
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let ip = format!("198.51.100.{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let blacklist_id =
        created(post("/api/v1/blacklist", serde_json::json!({ "ip": ip })).await.unwrap()).await;
    let auto_reply_id = created(
        post(
            "/api/v1/auto_replies",
            serde_json::json!({"keyword": "price", "reply": "See our price list."}),
        )
        .await
        .unwrap(),
    )
    .await;
    // An agent invited by email (the suites walking routes turn email on).
    let invited: Value =
        post("/api/v1/agents", serde_json::json!({ "email": unique_email("invited") }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let invited_agent_id = invited["agent"]["id"].as_i64().unwrap_or_default();
    let reset: Value =
        post("/api/v1/agents", serde_json::json!({ "email": unique_email("reset") }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let reset_agent_id = reset["agent"]["id"].as_i64().unwrap_or_default();
    let hook = serde_json::json!({ "url": "https://hooks.example.com/kefu", "events": ["message.created"] });
    let webhook_id = created(post("/api/v1/webhooks", hook.clone()).await.unwrap()).await;
    let webhook_delete_id = created(post("/api/v1/webhooks", hook).await.unwrap()).await;
    let api_token_id = created(
        post("/api/v1/api_tokens", serde_json::json!({ "name": "walk", "scope": "read" }))
            .await
            .unwrap(),
    )
    .await;
    // The owner signs in once more: a session of theirs to end.
    let other_device = crate::team::login(app, &m.email, PASSWORD).await;
    let sessions = app.get_json(&other_device, "/api/v1/me/sessions").await;
    let session_id = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .expect("the session the request was made with is marked current")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let announcement_id: i64 = sqlx::query_scalar(
        "insert into public.announcements (title, body, plans, published_at)
         select 'For ' || name, 'Hello', array[plan], now() from public.tenants where ent_id = $1
         returning id",
    )
    .bind(&m.ent_id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    Ids {
        session_id,
        api_token_id,
        invited_agent_id,
        reset_agent_id,
        webhook_id,
        webhook_delete_id,
        announcement_id,
        auto_reply_id,
        quick_reply_id,
        note_id,
        blacklist_id,
        upload_id: upload["id"].as_str().unwrap().to_owned(),
        ent_id: m.ent_id.clone(),
        agent_id: agents["agents"][0]["id"].as_i64().unwrap(),
        conversation_id: ack["conversation_id"].as_i64().unwrap(),
        visitor_id: visitor.id,
        spare_visitor_id: crate::ws_client::visitor_session(app, &m.ent_id).await.id,
        view_id: created(
            post("/api/v1/views", serde_json::json!({"name": "Mine", "query": "assignee=me"}))
                .await
                .unwrap(),
        )
        .await,
    }
}

/// The request a route gets when it should act on `target`'s objects: method, path, JSON
/// body. `None`: the route has no case yet — add one.
pub(crate) fn case(
    method: &Method,
    path: &str,
    target: &Ids,
) -> Option<(Method, String, Option<Body>)> {
    let ent = &target.ent_id;
    let conv = target.conversation_id;
    let (url, body) = match (method.as_str(), path) {
        ("GET", "/app") => (format!("/app?ent_id={ent}"), None),
        ("GET", "/app/m") => (format!("/app/m?ent_id={ent}"), None),
        ("GET", "/app/settings") => (format!("/app/settings?ent_id={ent}"), None),
        ("GET", "/api/v1/me") => (format!("/api/v1/me?ent_id={ent}"), None),
        ("GET", "/api/v1/me/totp") => (format!("/api/v1/me/totp?ent_id={ent}"), None),
        ("POST", "/api/v1/me/password") => (
            format!("/api/v1/me/password?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({
                "current_password": "not the password",
                "new_password": "a much better passphrase"
            }))),
        ),
        ("GET", "/api/v1/me/sessions") => (format!("/api/v1/me/sessions?ent_id={ent}"), None),
        ("DELETE", "/api/v1/me/sessions") => (format!("/api/v1/me/sessions?ent_id={ent}"), None),
        ("DELETE", "/api/v1/me/sessions/{id}") => {
            (format!("/api/v1/me/sessions/{}?ent_id={ent}", target.session_id), None)
        }
        ("GET", "/api/v1/me/identities") => (format!("/api/v1/me/identities?ent_id={ent}"), None),
        ("DELETE", "/api/v1/me/identities/{slug}") => {
            (format!("/api/v1/me/identities/corp?ent_id={ent}"), None)
        }
        ("POST", "/api/v1/me/totp") => (format!("/api/v1/me/totp?ent_id={ent}"), None),
        ("POST", "/api/v1/me/totp/confirm") => (
            format!("/api/v1/me/totp/confirm?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "code": "000000" }))),
        ),
        ("POST", "/api/v1/me/totp/disable") => (
            format!("/api/v1/me/totp/disable?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "code": "000000" }))),
        ),
        ("GET", "/api/v1/agents") => (format!("/api/v1/agents?ent_id={ent}"), None),
        ("GET", "/api/v1/agents/{id}") => (format!("/api/v1/agents/{}", target.agent_id), None),
        ("POST", "/api/v1/agents") => (
            format!("/api/v1/agents?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "email": unique_email("iso") }))),
        ),
        ("PATCH", "/api/v1/agents/{id}") => (
            format!("/api/v1/agents/{}", target.agent_id),
            Some(Body::Json(serde_json::json!({ "display_name": "Renamed" }))),
        ),
        ("POST", "/api/v1/agents/{id}/invite") => {
            (format!("/api/v1/agents/{}/invite", target.invited_agent_id), None)
        }
        // Someone else: a reset ends the sessions of the person reset.
        ("POST", "/api/v1/agents/{id}/reset_password") => {
            (format!("/api/v1/agents/{}/reset_password", target.reset_agent_id), None)
        }
        // Someone else (one's own factor goes off in the profile, with a code).
        ("POST", "/api/v1/agents/{id}/reset_2fa") => {
            (format!("/api/v1/agents/{}/reset_2fa", target.reset_agent_id), None)
        }
        ("GET", "/api/v1/quick_replies") => (format!("/api/v1/quick_replies?ent_id={ent}"), None),
        ("POST", "/api/v1/quick_replies") => (
            format!("/api/v1/quick_replies?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "title": "T", "body": "B" }))),
        ),
        ("PATCH", "/api/v1/quick_replies/{id}") => (
            format!("/api/v1/quick_replies/{}", target.quick_reply_id),
            Some(Body::Json(serde_json::json!({ "title": "T2" }))),
        ),
        ("DELETE", "/api/v1/quick_replies/{id}") => {
            (format!("/api/v1/quick_replies/{}", target.quick_reply_id), None)
        }
        ("GET", "/api/v1/announcements") => (format!("/api/v1/announcements?ent_id={ent}"), None),
        ("POST", "/api/v1/announcements/{id}/dismiss") => {
            (format!("/api/v1/announcements/{}/dismiss", target.announcement_id), None)
        }
        ("PATCH", "/api/v1/visitors/{id}") => (
            format!("/api/v1/visitors/{}", target.visitor_id),
            Some(Body::Json(serde_json::json!({ "real_name": "Real" }))),
        ),
        ("POST", "/api/v1/visitors/{id}/notes") => (
            format!("/api/v1/visitors/{}/notes", target.visitor_id),
            Some(Body::Json(serde_json::json!({ "body": "n" }))),
        ),
        ("DELETE", "/api/v1/visitors/{id}/notes/{note_id}") => {
            (format!("/api/v1/visitors/{}/notes/{}", target.visitor_id, target.note_id), None)
        }
        ("POST", "/api/v1/visitors/{id}/tags") => (
            format!("/api/v1/visitors/{}/tags", target.visitor_id),
            Some(Body::Json(serde_json::json!({ "name": "gold" }))),
        ),
        ("DELETE", "/api/v1/visitors/{id}/tags/{name}") => {
            (format!("/api/v1/visitors/{}/tags/vip", target.visitor_id), None)
        }
        ("DELETE", "/api/v1/visitors/{id}/messages") => {
            (format!("/api/v1/visitors/{}/messages", target.visitor_id), None)
        }
        ("GET", "/api/v1/audit") => (format!("/api/v1/audit?ent_id={ent}"), None),
        ("GET", "/api/v1/stats") => (format!("/api/v1/stats?ent_id={ent}"), None),
        ("GET", "/api/v1/stats/export") => {
            (format!("/api/v1/stats/export?table=agents&ent_id={ent}"), None)
        }
        ("GET", "/api/v1/settings") => (format!("/api/v1/settings?ent_id={ent}"), None),
        ("POST", "/api/v1/settings/sso_secret") => {
            (format!("/api/v1/settings/sso_secret?ent_id={ent}"), None)
        }
        ("GET", "/api/v1/settings/identity") => {
            (format!("/api/v1/settings/identity?ent_id={ent}"), None)
        }
        ("POST", "/api/v1/settings/identity_secret") => {
            (format!("/api/v1/settings/identity_secret?ent_id={ent}"), None)
        }
        ("PATCH", "/api/v1/settings") => (
            format!("/api/v1/settings?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "welcome_message": "Hi!" }))),
        ),
        ("GET", "/api/v1/auto_replies") => (format!("/api/v1/auto_replies?ent_id={ent}"), None),
        ("POST", "/api/v1/auto_replies") => (
            format!("/api/v1/auto_replies?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "keyword": "hours", "reply": "9 to 5" }))),
        ),
        ("PATCH", "/api/v1/auto_replies/{id}") => (
            format!("/api/v1/auto_replies/{}", target.auto_reply_id),
            Some(Body::Json(serde_json::json!({ "enabled": false }))),
        ),
        ("DELETE", "/api/v1/auto_replies/{id}") => {
            (format!("/api/v1/auto_replies/{}", target.auto_reply_id), None)
        }
        ("GET", "/api/v1/tags") => (format!("/api/v1/tags?ent_id={ent}"), None),
        ("GET", "/api/v1/search") => (format!("/api/v1/search?q=hello&ent_id={ent}"), None),
        ("GET", "/api/v1/blacklist") => (format!("/api/v1/blacklist?ent_id={ent}"), None),
        ("POST", "/api/v1/blacklist") => (
            format!("/api/v1/blacklist?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "ip": "203.0.113.7" }))),
        ),
        ("DELETE", "/api/v1/blacklist/{id}") => {
            (format!("/api/v1/blacklist/{}", target.blacklist_id), None)
        }
        ("POST", "/api/v1/ws/ticket") => (format!("/api/v1/ws/ticket?ent_id={ent}"), None),
        ("GET", "/api/v1/conversations") => {
            (format!("/api/v1/conversations?view=all&ent_id={ent}"), None)
        }
        ("GET", "/api/v1/conversations/{id}") => (format!("/api/v1/conversations/{conv}"), None),
        ("GET", "/api/v1/conversations/{id}/messages") => {
            (format!("/api/v1/conversations/{conv}/messages"), None)
        }
        ("POST", "/api/v1/conversations/{id}/claim") => {
            (format!("/api/v1/conversations/{conv}/claim"), None)
        }
        ("POST", "/api/v1/conversations/{id}/transfer") => (
            format!("/api/v1/conversations/{conv}/transfer"),
            Some(Body::Json(serde_json::json!({ "agent_id": target.agent_id }))),
        ),
        ("POST", "/api/v1/conversations/{id}/close") => {
            (format!("/api/v1/conversations/{conv}/close"), None)
        }
        ("POST", "/api/v1/conversations/{id}/messages") => (
            format!("/api/v1/conversations/{conv}/messages"),
            Some(Body::Json(
                serde_json::json!({ "body": "From the shop's system", "sender": "bot" }),
            )),
        ),
        ("GET", "/api/v1/api_tokens") => (format!("/api/v1/api_tokens?ent_id={ent}"), None),
        ("POST", "/api/v1/api_tokens") => (
            format!("/api/v1/api_tokens?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "name": "walk", "scope": "write" }))),
        ),
        ("DELETE", "/api/v1/api_tokens/{id}") => {
            (format!("/api/v1/api_tokens/{}", target.api_token_id), None)
        }
        ("POST", "/api/v1/conversations/{id}/status") => (
            format!("/api/v1/conversations/{conv}/status"),
            Some(Body::Json(serde_json::json!({ "status": "pending" }))),
        ),
        ("POST", "/api/v1/conversations/{id}/read") => (
            format!("/api/v1/conversations/{conv}/read"),
            Some(Body::Json(serde_json::json!({ "up_to": 1 }))),
        ),
        ("GET", "/api/v1/visitors") => (format!("/api/v1/visitors?ent_id={ent}"), None),
        ("GET", "/app/conversations") => (format!("/app/conversations?ent_id={ent}"), None),
        ("GET", "/api/v1/mentions") => (format!("/api/v1/mentions?ent_id={ent}"), None),
        ("GET", "/api/v1/views") => (format!("/api/v1/views?ent_id={ent}"), None),
        ("POST", "/api/v1/views") => (
            format!("/api/v1/views?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "name": "VIP", "query": "tag=VIP" }))),
        ),
        ("DELETE", "/api/v1/views/{id}") => (format!("/api/v1/views/{}", target.view_id), None),
        ("GET", "/app/contacts") => (format!("/app/contacts?ent_id={ent}"), None),
        ("GET", "/app/contacts/{id}") => (format!("/app/contacts/{}", target.visitor_id), None),
        ("GET", "/api/v1/visitors/export") => {
            (format!("/api/v1/visitors/export?ent_id={ent}"), None)
        }
        ("POST", "/api/v1/visitors/bulk") => (
            format!("/api/v1/visitors/bulk?ent_id={ent}"),
            Some(Body::Json(
                serde_json::json!({ "ids": [target.visitor_id], "action": "tag", "tag": "walk" }),
            )),
        ),
        ("POST", "/api/v1/visitors/{id}/merge") => (
            format!("/api/v1/visitors/{}/merge", target.visitor_id),
            Some(Body::Json(serde_json::json!({ "from": target.spare_visitor_id }))),
        ),
        ("GET", "/api/v1/visitors/{id}") => {
            (format!("/api/v1/visitors/{}", target.visitor_id), None)
        }
        ("POST", "/api/v1/uploads") => (format!("/api/v1/uploads?ent_id={ent}"), Some(Body::File)),
        ("GET", "/api/v1/webhooks") => (format!("/api/v1/webhooks?ent_id={ent}"), None),
        ("POST", "/api/v1/webhooks") => (
            format!("/api/v1/webhooks?ent_id={ent}"),
            Some(Body::Json(
                serde_json::json!({ "url": "https://hooks.example.com/new", "events": ["visitor.created"] }),
            )),
        ),
        ("PATCH", "/api/v1/webhooks/{id}") => (
            format!("/api/v1/webhooks/{}", target.webhook_id),
            Some(Body::Json(serde_json::json!({ "description": "orders" }))),
        ),
        ("DELETE", "/api/v1/webhooks/{id}") => {
            (format!("/api/v1/webhooks/{}", target.webhook_delete_id), None)
        }
        ("GET", "/api/v1/webhooks/{id}/deliveries") => {
            (format!("/api/v1/webhooks/{}/deliveries", target.webhook_id), None)
        }
        ("POST", "/api/v1/webhooks/{id}/test") => {
            (format!("/api/v1/webhooks/{}/test", target.webhook_id), None)
        }
        ("GET", "/app/billing") => (format!("/app/billing?ent_id={ent}"), None),
        ("GET", "/api/v1/billing") => (format!("/api/v1/billing?ent_id={ent}"), None),
        // These reach Stripe (the local stand-in the suites that walk routes configure).
        ("POST", "/api/v1/billing/checkout") => (
            format!("/api/v1/billing/checkout?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({ "plan": "pro" }))),
        ),
        ("POST", "/api/v1/billing/portal") => (
            format!("/api/v1/billing/portal?ent_id={ent}"),
            Some(Body::Json(serde_json::json!({}))),
        ),
        // Files are served by capability URL under the owner's ent_id: the case names the
        // target's file under the requester's own merchant (A's) path.
        ("GET", "/u/{ent_id}/{id}") => (format!("/u/{{own}}/{}", target.upload_id), None),
        ("GET", "/u/{ent_id}/{id}/thumb") => {
            (format!("/u/{{own}}/{}/thumb", target.upload_id), None)
        }
        _ => return None,
    };
    Some((method.clone(), url, body))
}

#[tokio::test]
async fn every_tenant_route_answers_404_for_another_tenants_objects() {
    let stripe = crate::fake_stripe::FakeStripe::start().await;
    let app = spawn_with(|c| {
        c.base_domain = Some("kefu.test".into());
        stripe.configure(c);
        // The walk adds agents beyond the trial's seats.
        let unlimited =
            serde_json::from_value(serde_json::json!({ "seats": "unlimited", "sso": true }))
                .unwrap();
        c.plans.insert("trial".into(), unlimited);
    })
    .await;
    let a = app.signup("Tenant A").await;
    let b = app.signup("Tenant B").await;
    // Email on once the merchants exist (sign-up would wait for a confirmed address).
    let smtp = crate::smtp_server::SmtpServer::start(crate::smtp_server::Security::Plain).await;
    crate::smtp_server::use_for(&app, &smtp).await;
    ids_apart(&app, &a, 1_000_000).await;
    ids_apart(&app, &b, 2_000_000).await;
    let (own, other) = (ids_of(&app, &a).await, ids_of(&app, &b).await);
    // The agents made after the ids moved apart (each owner is its merchant's agent 1).
    let own = Ids { agent_id: own.reset_agent_id, ..own };
    let other = Ids { agent_id: other.reset_agent_id, ..other };
    // Announcements are the platform's, aimed by plan: B moves to another plan, and so does
    // the announcement meant for B, which A (on the trial) must not reach.
    sqlx::query("update public.tenants set plan = 'starter' where ent_id = $1")
        .bind(&b.ent_id)
        .execute(app.pool())
        .await
        .unwrap();
    sqlx::query("update public.announcements set plans = array['starter'] where id = $1")
        .bind(other.announcement_id)
        .execute(app.pool())
        .await
        .unwrap();
    sqlx::query(
        "insert into public.tenant_domains (tenant_id, domain, verified_at)
         select id, 'support.tenant-b.test', now() from public.tenants where ent_id = $1",
    )
    .bind(&b.ent_id)
    .execute(app.pool())
    .await
    .unwrap();
    app.state.tenants.invalidate_all();

    let routes = kefu::startup::routes(&app.state.config);
    let tenant_routes: Vec<_> =
        routes.table().iter().filter(|r| r.scope == Scope::Tenant).collect();
    assert!(tenant_routes.len() >= 4);
    let mut unlisted = Vec::new();
    let mut checked = 0;
    for route in tenant_routes {
        let (Some((method, own_url, own_body)), Some((_, other_url, other_body))) =
            (case(&route.method, route.path, &own), case(&route.method, route.path, &other))
        else {
            unlisted.push(format!("{} {}", route.method, route.path));
            continue;
        };
        let send = |url: String, body: Option<Body>, host: Option<String>| {
            let url = url.replace("{own}", &own.ent_id);
            let mut req = client().request(method.clone(), app.url(&url)).bearer_auth(&a.token);
            match body {
                Some(Body::Json(body)) => req = req.json(&body),
                Some(Body::File) => req = req.multipart(image_file()),
                None => {}
            }
            if let Some(host) = host {
                req = req.header("host", host);
            }
            req.send()
        };
        let res = send(own_url.clone(), own_body.clone(), None).await.unwrap();
        let status = res.status();
        assert!(
            served(route.path, res).await,
            "{} {own_url} with the owner's token: {status}",
            route.method
        );
        let res = send(other_url.clone(), other_body, None).await.unwrap();
        assert_eq!(res.status(), 404, "{} {other_url} with another tenant's token", route.method);
        // The same request arriving on tenant B's subdomain, or B's custom domain.
        let res =
            send(own_url.clone(), own_body.clone(), Some(format!("{}.kefu.test", other.ent_id)))
                .await
                .unwrap();
        assert_eq!(res.status(), 404, "{} {own_url} on B's host with A's token", route.method);
        let res = send(own_url.clone(), own_body.clone(), Some("support.tenant-b.test".into()))
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            404,
            "{} {own_url} on B's custom domain with A's token",
            route.method
        );
        checked += 1;
    }
    assert!(
        unlisted.is_empty(),
        "tenant-scoped routes without an isolation case (add them to `case`): {unlisted:#?}"
    );
    println!("isolation: {checked} tenant routes × 4 requests checked");
}

static VIOLATIONS: AtomicUsize = AtomicUsize::new(0);
static RELEASES: AtomicUsize = AtomicUsize::new(0);

/// 2,000 concurrent requests for two tenants over a single pooled connection: nobody ever
/// reads the other tenant's data, and every time the connection goes back to the pool its
/// search_path is the default one (the tenant path never outlives its transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_two_tenants_no_leaks() {
    let (_, options) = fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .after_release(|conn, _| {
            Box::pin(async move {
                let path: String = sqlx::query_scalar("select current_setting('search_path')")
                    .fetch_one(&mut *conn)
                    .await?;
                RELEASES.fetch_add(1, Ordering::Relaxed);
                if path != "\"$user\", public" {
                    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
                }
                Ok(true)
            })
        })
        .connect_with(options.clone())
        .await
        .unwrap();
    let mut config = test_config();
    config.db_max_connections = 1;
    let app = spawn_on(config, pool, options, TenantMigrator::embedded()).await;
    let a = app.signup("Leak A").await;
    let b = app.signup("Leak B").await;
    ids_apart(&app, &a, 1_000_000).await;
    ids_apart(&app, &b, 2_000_000).await;
    let (ia, ib) = (ids_of(&app, &a).await, ids_of(&app, &b).await);
    let ia = Ids { agent_id: ia.reset_agent_id, ..ia };
    let ib = Ids { agent_id: ib.reset_agent_id, ..ib };

    let http = client();
    let cross_reads = AtomicUsize::new(0);
    let checked = AtomicUsize::new(0);
    futures::stream::iter(0..2000)
        .for_each_concurrent(64, |i| {
            let (m, ids, other) = if i % 2 == 0 { (&a, &ia, &ib) } else { (&b, &ib, &ia) };
            let (http, app, cross_reads, checked) = (&http, &app, &cross_reads, &checked);
            async move {
                let path = match i % 3 {
                    0 => "/api/v1/me".to_owned(),
                    1 => "/api/v1/agents".to_owned(),
                    _ => format!("/api/v1/agents/{}", ids.agent_id),
                };
                let res = http.get(app.url(&path)).bearer_auth(&m.token).send().await.unwrap();
                assert_eq!(res.status(), 200, "{path}");
                let body = res.text().await.unwrap();
                let mine = match i % 3 {
                    0 => body.contains(&format!("\"ent_id\":\"{}\"", ids.ent_id)),
                    _ => body.contains(&format!("\"id\":{}", ids.agent_id)),
                };
                if !mine
                    || body.contains(&format!("\"id\":{}", other.agent_id))
                    || body.contains(&other.ent_id)
                {
                    cross_reads.fetch_add(1, Ordering::Relaxed);
                }
                checked.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
    assert_eq!(checked.load(Ordering::Relaxed), 2000);
    assert_eq!(cross_reads.load(Ordering::Relaxed), 0, "cross-tenant reads");
    let releases = RELEASES.load(Ordering::Relaxed);
    assert!(
        releases >= 2000,
        "the connection went back to the pool after each request ({releases})"
    );
    assert_eq!(
        VIOLATIONS.load(Ordering::Relaxed),
        0,
        "a connection was released with a tenant search_path"
    );
    println!(
        "leak test: 2000 requests, 0 cross-tenant reads, {releases} releases checked, 0 leaked search_paths"
    );
}

//! Billing against a local Stripe stand-in (tests/it/fake_stripe.rs): webhook signatures,
//! idempotent and order-proof events, the whole lifecycle with a controlled clock, every
//! plan limit (also under concurrency), and manual billing without Stripe keys.

use crate::helpers::Fetch;
use std::sync::Arc;

use billing::ManualClock;
use chrono::{Duration, Utc};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    fake_stripe::{FakeStripe, WEBHOOK_SECRET},
    helpers::*,
    platform::platform_admin,
    team::add_agent,
    ws_client::{Ws, visitor_session},
};

/// kefu with Stripe (the fake) and a clock the test moves.
async fn with_stripe() -> (TestApp, FakeStripe, Arc<ManualClock>) {
    let fake = FakeStripe::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_with_clock(|c| fake.configure(c), clock.clone()).await;
    fake.set_webhook_url(app.url("/webhooks/stripe"));
    (app, fake, clock)
}

async fn billing(app: &TestApp, m: &Merchant) -> Value {
    let res = app.get_as(m, "/api/v1/billing").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A page of the merchant's app, as its owner sees it.
async fn page(app: &TestApp, m: &Merchant, path: &str) -> String {
    let res = client().get(app.url(path)).bearer_auth(&m.token).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    client().post(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

/// The owner subscribes to `plan` through Checkout and Stripe's events arrive. Returns the
/// subscription id.
async fn subscribe(app: &TestApp, fake: &FakeStripe, m: &Merchant, plan: &str) -> String {
    let res = post(app, &m.token, "/api/v1/billing/checkout", json!({ "plan": plan })).await;
    assert_eq!(res.status(), 200);
    let url = res.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned();
    let session = fake.last_session();
    assert_eq!(url, session["url"].as_str().unwrap());
    let (sub, events) = fake.complete_checkout(session["id"].as_str().unwrap());
    fake.deliver_all(&events).await;
    sub
}

fn payload(fake: &FakeStripe, kind: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&fake.event(kind, object)).unwrap()
}

#[tokio::test]
async fn webhook_signatures_are_checked_as_stripe_specifies() {
    let fake = FakeStripe::start().await;
    let app = spawn_with(|c| {
        fake.configure(c);
        // Rotation: the new secret first, the old one still accepted.
        c.stripe_webhook_secrets.insert(0, secrecy::SecretString::from("whsec_new_secret"));
    })
    .await;
    fake.set_webhook_url(app.url("/webhooks/stripe"));
    let now = Utc::now().timestamp();
    // An event kefu ignores, so the signature is all that is tested.
    let body = payload(&fake, "charge.refunded", json!({ "id": "ch_1", "object": "charge" }));
    let sign = |secret: &str, t: i64| billing::signature::header(&body, secret.as_bytes(), t);
    let send = |payload: Vec<u8>, header: Option<String>| fake.deliver_raw(payload, header);

    for (header, expected) in [
        (Some(sign(WEBHOOK_SECRET, now)), 200),
        (Some(sign("whsec_new_secret", now)), 200),
        (
            Some(format!(
                "t={now},v1=00ff,v1={}",
                billing::signature::sign(&body, b"whsec_new_secret", now)
            )),
            200,
        ),
        (Some(sign("whsec_attacker", now)), 400),
        // Outside the 300 s tolerance (its exact edges are unit-tested in billing::signature;
        // a margin keeps the clock's ticks out of it here).
        (Some(sign(WEBHOOK_SECRET, now - 400)), 400),
        (Some(sign(WEBHOOK_SECRET, now + 400)), 400),
        (Some("t=abc,v1=zz".to_owned()), 400),
        (None, 400),
    ] {
        let res = send(body.clone(), header.clone()).await;
        assert_eq!(res.status(), expected, "{header:?}");
        if expected == 400 {
            let code = error_code(res).await;
            assert!(code.starts_with("signature_"), "{code}");
        }
    }
    // The payload itself is signed: one byte changed and the same header no longer fits.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[at] = b'2';
    let res = send(tampered, Some(sign(WEBHOOK_SECRET, now))).await;
    assert_eq!(error_code(res).await, "signature_invalid");
    // Signed, but not an event.
    let junk = b"{\"hello\":1}".to_vec();
    let res =
        send(junk.clone(), Some(billing::signature::header(&junk, WEBHOOK_SECRET.as_bytes(), now)))
            .await;
    assert_eq!(error_code(res).await, "invalid_event");

    // Without webhook secrets (manual billing) the endpoint does not exist.
    let manual = spawn_app().await;
    let res = client()
        .post(manual.url("/webhooks/stripe"))
        .header("stripe-signature", sign(WEBHOOK_SECRET, now))
        .body(body.clone())
        .sent()
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn trial_to_paid_to_past_due_to_suspended_and_back() {
    let (app, fake, clock) = with_stripe().await;
    let m = app.signup("Lifecycle Shop").await;
    let tenant = tenant_id(app.pool(), &m.ent_id).await.0;
    let b = billing(&app, &m).await;
    assert_eq!(
        (b["mode"].as_str(), b["status"].as_str(), b["plan"]["id"].as_str()),
        (Some("stripe"), Some("trialing"), Some("trial"))
    );
    assert!(b["trial_ends_at"].is_string());

    // Checkout: a customer for the owner, then a session for the Price of the plan.
    let sub = subscribe(&app, &fake, &m, "pro").await;
    let requests = fake.requests();
    let customer = requests.iter().find(|r| r.path == "/v1/customers").unwrap();
    assert_eq!(customer.param("email"), Some(m.email.as_str()));
    assert_eq!(customer.param("metadata[tenant_id]"), Some(tenant.to_string().as_str()));
    assert!(customer.stripe_version.is_some(), "the API version is pinned");
    assert!(customer.idempotency_key.is_some(), "creating is idempotent across retries");
    let session = requests.iter().find(|r| r.path == "/v1/checkout/sessions").unwrap();
    assert_eq!(session.param("mode"), Some("subscription"));
    assert_eq!(session.param("line_items[0][price]"), Some("price_pro"));
    assert_eq!(session.param("client_reference_id"), Some(tenant.to_string().as_str()));
    assert!(session.param("success_url").unwrap().ends_with("/app/billing?checkout=success"));

    let b = billing(&app, &m).await;
    assert_eq!((b["status"].as_str(), b["plan"]["id"].as_str()), (Some("active"), Some("pro")));
    assert_eq!(b["subscription"]["status"], "active");
    assert_eq!(b["invoices"].as_array().unwrap().len(), 1);
    assert_eq!(b["invoices"][0]["amount_paid"], 4900);

    // A renewal fails: past due, full service, a banner with the date service ends.
    let s = fake.set_subscription(&sub, |s| s["status"] = json!("past_due"));
    let failed = fake.invoice_object(&s, "open");
    fake.deliver_all(&[fake.event("invoice.payment_failed", failed)]).await;
    let b = billing(&app, &m).await;
    assert_eq!(b["status"], "past_due");
    let grace_end = b["grace_ends_at"].as_str().unwrap().to_owned();
    let html = page(&app, &m, "/app").await;
    assert!(html.contains("billing-banner tone-warning"), "the workspace says a payment failed");
    assert!(html.contains(&grace_end[..10]), "and until when service lasts");
    assert_eq!(
        post(&app, &m.token, "/api/v1/quick_replies", json!({"title": "t", "body": "b"}))
            .await
            .status(),
        201
    );

    // Six days later nothing changed; after the seventh, the job suspends.
    clock.advance(Duration::days(6));
    assert_eq!(kefu::merchant::subscription::job::run_due(&app.state).await.unwrap(), 0);
    assert_eq!(billing(&app, &m).await["status"], "past_due");
    let visitor = visitor_session(&app, &m.ent_id).await;
    let mut visitor_ws = Ws::visitor(&app, &visitor.token, "").await;
    visitor_ws.expect("hello").await;
    let mut agent_ws = Ws::agent(&app, &m.token, "").await;
    agent_ws.expect("hello").await;
    clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(kefu::merchant::subscription::job::run_due(&app.state).await.unwrap(), 1);
    assert_read_only(&app, &m, &mut visitor_ws, &mut agent_ws).await;
    // A late event saying "past due" again does not lift the suspension: the grace is over.
    fake.deliver_all(&[fake.event("customer.subscription.updated", fake.subscription(&sub))]).await;
    assert_eq!(billing(&app, &m).await["status"], "suspended");

    // Paying again reactivates.
    let s = fake.set_subscription(&sub, |s| s["status"] = json!("active"));
    fake.deliver_all(&[fake.event("invoice.paid", fake.invoice_object(&s, "paid"))]).await;
    let b = billing(&app, &m).await;
    assert_eq!(b["status"], "active");
    assert_eq!(b["grace_ends_at"], Value::Null);
    assert_eq!(
        post(&app, &m.token, "/api/v1/quick_replies", json!({"title": "t2", "body": "b"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        client()
            .post(app.url("/api/v1/visitor/session"))
            .json(&json!({ "ent_id": m.ent_id }))
            .sent()
            .await
            .status(),
        200
    );

    // The subscription ends: canceled, read-only; a new Checkout brings it back.
    let s = fake.set_subscription(&sub, |s| {
        s["status"] = json!("canceled");
        s["ended_at"] = json!(Utc::now().timestamp());
    });
    fake.deliver_all(&[fake.event("customer.subscription.deleted", s)]).await;
    assert_eq!(billing(&app, &m).await["status"], "canceled");
    assert_eq!(
        error_code(
            post(&app, &m.token, "/api/v1/quick_replies", json!({"title": "x", "body": "y"})).await
        )
        .await,
        "subscription_inactive"
    );
    let second = subscribe(&app, &fake, &m, "starter").await;
    assert_ne!(second, sub);
    let b = billing(&app, &m).await;
    assert_eq!((b["status"].as_str(), b["plan"]["id"].as_str()), (Some("active"), Some("starter")));
    // The old subscription's end, delivered late, does not end the new one.
    fake.deliver_all(&[fake.event("customer.subscription.deleted", fake.subscription(&sub))]).await;
    assert_eq!(billing(&app, &m).await["status"], "active");

    // The customer stays one: the second Checkout reused it.
    assert_eq!(fake.requests().iter().filter(|r| r.path == "/v1/customers").count(), 1);
}

/// What a merchant suspended for nonpayment looks like end to end.
async fn assert_read_only(app: &TestApp, m: &Merchant, visitor_ws: &mut Ws, agent_ws: &mut Ws) {
    assert_eq!(billing(app, m).await["status"], "suspended");
    // Visitors: their socket closes as paused, the chat page and new sessions are paused.
    let notice = visitor_ws.expect_where("the paused notice", |f| f["type"] == "notice").await;
    assert_eq!(notice["code"], "tenant_suspended");
    assert_eq!(visitor_ws.expect_close().await, 4004);
    let html = client()
        .get(app.url(&format!("/chatIndex?ent_id={}", m.ent_id)))
        .header("accept", "text/html")
        .text_body()
        .await;
    assert!(html.contains("Service paused"));
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id }))
        .sent()
        .await;
    assert_eq!(error_code(res).await, "tenant_suspended");
    // Agents: told, still connected, can read, cannot write.
    agent_ws
        .expect_where("the billing notice", |f| f["type"] == "notice" && f["code"] == "billing")
        .await;
    for path in ["/api/v1/me", "/api/v1/conversations?view=all", "/api/v1/quick_replies", "/app"] {
        assert_eq!(app.get_as(m, path).await.status(), 200, "{path} stays readable");
    }
    let res =
        post(app, &m.token, "/api/v1/quick_replies", json!({"title": "t", "body": "b"})).await;
    assert_eq!(res.status(), 402);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "subscription_inactive");
    assert_eq!(body["error"]["upgrade_url"], "/app/billing");
    agent_ws
        .send(json!({ "type": "send", "client_msg_id": "ro-1", "conversation_id": 1, "kind": "text", "body": "hi" }))
        .await;
    let err = agent_ws.expect("error").await;
    assert_eq!(err["code"], "subscription_inactive");
    let html = page(app, m, "/app").await;
    assert!(html.contains("billing-banner tone-danger"));
    // Billing itself still works, to pay.
    assert_eq!(post(app, &m.token, "/api/v1/billing/portal", json!({})).await.status(), 200);
}

#[tokio::test]
async fn a_trial_ends_by_the_clock_and_a_super_admin_can_extend_it() {
    let (app, _fake, clock) = with_stripe().await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Trial Shop").await;
    let id = tenant_id(app.pool(), &m.ent_id).await.0;
    clock.advance(Duration::days(13));
    assert_eq!(kefu::merchant::subscription::job::run_due(&app.state).await.unwrap(), 0);
    clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(kefu::merchant::subscription::job::run_due(&app.state).await.unwrap(), 1);
    assert_eq!(billing(&app, &m).await["status"], "suspended");
    assert_eq!(
        error_code(
            post(&app, &m.token, "/api/v1/auto_replies", json!({"keyword": "k", "reply": "r"}))
                .await
        )
        .await,
        "subscription_inactive"
    );
    // The job is idempotent: a second round (or another node) changes nothing.
    assert_eq!(kefu::merchant::subscription::job::run_due(&app.state).await.unwrap(), 0);

    let res = admin
        .post(&app, &format!("/api/platform/v1/merchants/{id}/trial"), json!({ "days": 7 }))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["billing_status"], "trialing");
    assert_eq!(billing(&app, &m).await["status"], "trialing");
    assert_eq!(
        post(&app, &m.token, "/api/v1/auto_replies", json!({"keyword": "k", "reply": "r"}))
            .await
            .status(),
        201
    );
    let merchants = admin.get(&app, "/api/platform/v1/merchants").await;
    assert_eq!(merchants["merchants"][0]["billing_status"], "trialing");
}

#[tokio::test]
async fn events_are_handled_once_and_in_any_order() {
    let (app, fake, _clock) = with_stripe().await;
    let m = app.signup("Order Shop").await;
    let sub = subscribe(&app, &fake, &m, "pro").await;

    // Replays: the same event twice is handled once.
    let s = fake.set_subscription(&sub, |s| s["status"] = json!("past_due"));
    let event = fake.event("invoice.payment_failed", fake.invoice_object(&s, "open"));
    let first: Value = fake.deliver(&event).await.json().await.unwrap();
    assert_eq!(first["outcome"], "applied");
    let again: Value = fake.deliver(&event).await.json().await.unwrap();
    assert_eq!(again["outcome"], "duplicate");
    let handled: i64 =
        sqlx::query_scalar("select count(*) from public.stripe_events where id = $1")
            .bind(event["id"].as_str().unwrap())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(handled, 1);

    // Out of order: an old "active" event arrives after the subscription went past due.
    // kefu acts on the subscription as Stripe has it now, not on the event's copy.
    let stale = {
        let mut old = fake.subscription(&sub);
        old["status"] = json!("active");
        fake.event("customer.subscription.updated", old)
    };
    fake.deliver_all(&[stale]).await;
    assert_eq!(billing(&app, &m).await["status"], "past_due");

    // Concurrent deliveries of different events for one merchant settle on Stripe's state.
    fake.set_subscription(&sub, |s| s["status"] = json!("active"));
    let events: Vec<Value> = (0..6)
        .map(|_| fake.event("customer.subscription.updated", fake.subscription(&sub)))
        .collect();
    let answers = join_all(events.iter().map(|e| fake.deliver(e))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(billing(&app, &m).await["status"], "active");

    // Stripe unreachable: the event is refused (Stripe retries it) and nothing is recorded.
    fake.set_failing(Some(500));
    let event = fake.event("customer.subscription.updated", fake.subscription(&sub));
    let res = fake.deliver(&event).await;
    assert_eq!(res.status(), 502);
    fake.set_failing(None);
    let res: Value = fake.deliver(&event).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied", "the retry is handled, not taken for a duplicate");

    // An event for a customer of something else on the same Stripe account is acknowledged.
    let foreign = fake.event("invoice.paid", json!({ "id": "in_other", "object": "invoice", "customer": "cus_unknown", "status": "paid" }));
    let res: Value = fake.deliver(&foreign).await.json().await.unwrap();
    assert_eq!(res["outcome"], "unknown_customer");
}

#[tokio::test]
async fn plan_changes_and_the_portal_go_through_stripe() {
    let (app, fake, _clock) = with_stripe().await;
    let m = app.signup("Upgrade Shop").await;
    let sub = subscribe(&app, &fake, &m, "starter").await;
    // With a live subscription, choosing a plan changes it at once (no second Checkout).
    let res = post(&app, &m.token, "/api/v1/billing/checkout", json!({ "plan": "business" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["url"], "/app/billing?changed=business");
    assert_eq!(fake.subscription(&sub)["items"]["data"][0]["price"]["id"], "price_business");
    let update = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == format!("/v1/subscriptions/{sub}") && r.method == "POST")
        .unwrap();
    assert_eq!(update.param("proration_behavior"), Some("create_prorations"));
    assert_eq!(billing(&app, &m).await["plan"]["id"], "business");
    let res = post(&app, &m.token, "/api/v1/billing/checkout", json!({ "plan": "business" })).await;
    assert_eq!(error_code(res).await, "same_plan");
    for bad in [
        json!({ "plan": "trial" }),
        json!({ "plan": "gold" }),
        json!({}),
        json!({ "plan": "pro", "x": 1 }),
    ] {
        let res = post(&app, &m.token, "/api/v1/billing/checkout", bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
    }

    // The portal, and straight to cancelling.
    let res = post(&app, &m.token, "/api/v1/billing/portal", json!({ "flow": "cancel" })).await;
    assert_eq!(res.status(), 200);
    let portal =
        fake.requests().into_iter().rfind(|r| r.path == "/v1/billing_portal/sessions").unwrap();
    assert_eq!(portal.param("flow_data[type]"), Some("subscription_cancel"));
    assert_eq!(portal.param("flow_data[subscription_cancel][subscription]"), Some(sub.as_str()));
    assert!(portal.param("return_url").unwrap().ends_with("/app/billing"));
    assert_eq!(
        post(&app, &m.token, "/api/v1/billing/portal", json!({ "flow": "other" })).await.status(),
        422
    );
    // Cancelling at the period's end keeps service until then.
    let s = fake.set_subscription(&sub, |s| s["cancel_at_period_end"] = json!(true));
    fake.deliver_all(&[fake.event("customer.subscription.updated", s)]).await;
    let b = billing(&app, &m).await;
    assert_eq!(
        (b["status"].as_str(), b["subscription"]["cancel_at_period_end"].as_bool()),
        (Some("active"), Some(true))
    );

    // Only the owner manages billing.
    let (_, _, admin) = add_agent(&app, &m, "admin").await;
    let res = client().get(app.url("/api/v1/billing")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "forbidden_role");

    // Stripe failing is a clear 502, not a crash.
    fake.set_failing(Some(500));
    let res = post(&app, &m.token, "/api/v1/billing/portal", json!({})).await;
    assert_eq!(res.status(), 502);
    assert_eq!(error_code(res).await, "stripe_unavailable");
}

#[tokio::test]
async fn seats_are_limited_and_counted_under_concurrency() {
    let app = spawn_app().await;
    let m = app.signup("Seat Shop").await;
    // The trial has 3 seats: the owner and two more.
    add_agent(&app, &m, "agent").await;
    let (second, _, _) = add_agent(&app, &m, "agent").await;
    let res =
        post(&app, &m.token, "/api/v1/agents", json!({ "email": unique_email("extra") })).await;
    assert_eq!(res.status(), 402);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plan_limit");
    assert_eq!(body["error"]["upgrade_url"], "/app/billing");
    // Disabling frees a seat; re-enabling takes one again.
    let patch = |id: i64, disabled: bool| {
        client()
            .patch(app.url(&format!("/api/v1/agents/{id}")))
            .bearer_auth(&m.token)
            .json(&json!({ "disabled": disabled }))
            .send()
    };
    assert_eq!(patch(second, true).await.unwrap().status(), 200);
    // Ten admins' requests for the one free seat at once: exactly one gets it.
    let tries = join_all((0..10).map(|i| {
        post(
            &app,
            &m.token,
            "/api/v1/agents",
            json!({ "email": unique_email(&format!("race{i}")) }),
        )
    }))
    .await;
    let won = tries.iter().filter(|r| r.status() == 201).count();
    assert_eq!(won, 1, "{:?}", tries.iter().map(|r| r.status()).collect::<Vec<_>>());
    assert!(tries.iter().all(|r| r.status() == 201 || r.status() == 402));
    assert_eq!(patch(second, false).await.unwrap().status(), 402, "no seat to re-enable into");
    assert_eq!(billing(&app, &m).await["usage"]["seats"], json!({ "used": 3, "limit": 3 }));
}

#[tokio::test]
async fn monthly_conversations_are_capped_and_the_rest_leave_messages() {
    let app = spawn_with(|c| {
        let settings: billing::PlanSettings =
            serde_json::from_value(json!({ "conversations_per_month": 4 })).unwrap();
        c.plans.insert("trial".into(), settings);
    })
    .await;
    let m = app.signup("Busy Shop").await;
    let used = || async { billing(&app, &m).await["usage"]["conversations"]["used"].clone() };
    // A first message answered by nobody costs nothing: throw-away visitors cannot use the
    // month up.
    let mut drive_by = Vec::new();
    for i in 0..3 {
        let v = visitor_session(&app, &m.ent_id).await;
        let mut ws = Ws::visitor(&app, &v.token, "").await;
        ws.send_text(&format!("d{i}"), "hello?", None).await;
        ws.expect("ack").await;
        drive_by.push(ws);
    }
    assert_eq!(used().await, 0);
    // Visitors who write again count, once each.
    for i in 0..4 {
        let v = visitor_session(&app, &m.ent_id).await;
        let mut ws = Ws::visitor(&app, &v.token, "").await;
        for n in 0..3 {
            ws.send_text(&format!("e{i}-{n}"), "hello", None).await;
            ws.expect("ack").await;
        }
        assert_eq!(used().await, i + 1);
    }
    // The month is used up: eight visitors writing at once are all told to leave a message.
    let visitors = join_all((0..8).map(|_| visitor_session(&app, &m.ent_id))).await;
    let outcomes = join_all(visitors.iter().enumerate().map(|(i, v)| {
        let app = &app;
        async move {
            let mut ws = Ws::visitor(app, &v.token, "").await;
            ws.send_text(&format!("c{i}"), "hello", None).await;
            let f =
                ws.expect_where("an answer", |f| f["type"] == "ack" || f["type"] == "error").await;
            f["type"].as_str().unwrap().to_owned() + ":" + f["code"].as_str().unwrap_or("")
        }
    }))
    .await;
    assert!(outcomes.iter().all(|o| o == "error:conversation_limit"), "{outcomes:?}");
    let opened: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from tenant_{}.conversations",
        tenant_id(app.pool(), &m.ent_id).await.0
    )))
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(opened, 7);
    // A conversation already open goes on when its visitor comes back (counted no further).
    drive_by[0].send_text("d0-again", "still there?", None).await;
    drive_by[0].expect("ack").await;
    assert_eq!(used().await, 4);
    // A visitor turned away leaves a message, which agents get.
    let res = client()
        .post(app.url("/api/v1/visitor/leave_message"))
        .bearer_auth(&visitors[0].token)
        .json(&json!({ "name": "Mia", "contact": "mia@example.com", "body": "Call me" }))
        .sent()
        .await;
    assert!(res.status().is_success());
    // The merchant sees why others cannot start one.
    let usage = billing(&app, &m).await["usage"]["conversations"].clone();
    assert_eq!(usage, json!({ "used": 4, "limit": 4 }));
    let html = page(&app, &m, "/app").await;
    assert!(html.contains("conversations are used up"));
}

#[tokio::test]
async fn storage_is_limited_even_for_uploads_at_once() {
    let app = spawn_with(|c| {
        let settings: billing::PlanSettings =
            serde_json::from_value(json!({ "storage_mb": 1 })).unwrap();
        c.plans.insert("trial".into(), settings);
    })
    .await;
    let m = app.signup("Full Shop").await;
    // ~300 KB text files (no thumbnails): three fit in 1 MiB, the fourth does not.
    let file = |i: usize| {
        let body = format!("line {i}\n").repeat(300_000 / 7).into_bytes();
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(body).file_name(format!("notes{i}.txt")))
    };
    let answers = join_all((0..6).map(|i| {
        client().post(app.url("/api/v1/uploads")).bearer_auth(&m.token).multipart(file(i)).send()
    }))
    .await;
    let statuses: Vec<u16> =
        answers.iter().map(|r| r.as_ref().unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 413).count(), 3, "{statuses:?}");
    let res = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .multipart(file(9))
        .sent()
        .await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_limit");
    assert_eq!(body["error"]["upgrade_url"], "/app/billing");
    let used = billing(&app, &m).await["usage"]["storage"]["used"].as_i64().unwrap();
    assert!(used <= 1 << 20 && used > 800_000, "{used}");
    // Nothing of the refused files is left in storage.
    let objects =
        app.state.storage.tenant_objects(tenant_id(app.pool(), &m.ent_id).await).await.unwrap();
    assert_eq!(objects.len(), 3);
}

#[tokio::test]
async fn without_stripe_keys_billing_is_manual() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Manual Shop").await;
    let id = tenant_id(app.pool(), &m.ent_id).await.0;
    let b = billing(&app, &m).await;
    assert_eq!(b["mode"], "manual");
    assert!(b["plans"].as_array().unwrap().iter().all(|p| p["purchasable"] == false));
    let res = post(&app, &m.token, "/api/v1/billing/checkout", json!({ "plan": "pro" })).await;
    assert_eq!(error_code(res).await, "billing_manual");
    let res = post(&app, &m.token, "/api/v1/billing/portal", json!({})).await;
    assert_eq!(error_code(res).await, "billing_manual");
    let html = page(&app, &m, "/app/billing").await;
    assert!(html.contains("assigned by the platform"));

    // A super-admin assigns a plan: active, with its limits; the dashboard counts revenue.
    let res = admin
        .post(&app, &format!("/api/platform/v1/merchants/{id}/plan"), json!({ "plan": "pro" }))
        .await;
    assert_eq!(res.status(), 200);
    let b = billing(&app, &m).await;
    assert_eq!((b["status"].as_str(), b["plan"]["id"].as_str()), (Some("active"), Some("pro")));
    assert_eq!(b["usage"]["seats"]["limit"], 10);
    let dashboard = admin.get(&app, "/api/platform/v1/dashboard").await;
    assert_eq!(dashboard["revenue"]["mrr"], json!([["usd", 4900]]));
    assert_eq!(dashboard["revenue"]["paying"], 1);
}

/// Every plan feature, on every built-in plan, is enforced where it is used: API tokens at
/// creation and on each request, webhooks at creation, single sign-on when a secret is made
/// and when its token is asked for; the settings page says what the plan leaves out.
#[tokio::test]
async fn every_plan_feature_is_enforced_on_every_plan() {
    let app = spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        // Everything on to begin with, so each feature can be set up before the plan changes.
        let all =
            serde_json::from_value(json!({ "api": true, "webhooks": true, "sso": true })).unwrap();
        c.plans.insert("trial".into(), all);
    })
    .await;
    let m = app.signup("Feature Shop").await;
    let post = |path: &str, body: Value| {
        client().post(app.url(path)).bearer_auth(&m.token).json(&body).send()
    };
    let token: Value = post("/api/v1/api_tokens", json!({ "name": "orders", "scope": "read" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_token = token["token"].as_str().unwrap().to_owned();
    app.patch_settings(&m, json!({ "sso_ip_whitelist": ["203.0.113.10"] })).await;
    let secret: Value =
        post("/api/v1/settings/sso_secret", json!({})).await.unwrap().json().await.unwrap();
    let mut secret = secret["secret"].as_str().unwrap().to_owned();

    for plan in app.state.plans.all() {
        sqlx::query("update public.tenants set plan = $2 where ent_id = $1")
            .bind(&m.ent_id)
            .bind(&plan.id)
            .execute(app.pool())
            .await
            .unwrap();
        app.state.tenants.invalidate_all();
        let refused = |res: reqwest::Response, what: &'static str, on: bool| async move {
            let status = res.status();
            if on {
                assert_ne!(status, 402, "{what} on {}", plan.id);
            } else {
                assert_eq!(status, 402, "{what} on {}", plan.id);
                assert_eq!(error_code(res).await, "plan_limit", "{what} on {}", plan.id);
            }
        };
        let f = plan.features;
        // The API: using a token, and making one.
        let res =
            client().get(app.url("/api/v1/conversations")).bearer_auth(&api_token).send().await;
        refused(res.unwrap(), "an API request", f.api).await;
        let res = post("/api/v1/api_tokens", json!({ "name": "more", "scope": "read" })).await;
        refused(res.unwrap(), "a new API token", f.api).await;
        // Webhooks.
        let hook = json!({ "url": "https://hooks.example.com/k", "events": ["visitor.created"] });
        refused(post("/api/v1/webhooks", hook).await.unwrap(), "a new webhook", f.webhooks).await;
        // Single sign-on: a new secret, and a token asked for by the merchant's own system.
        let res = post("/api/v1/settings/sso_secret", json!({})).await.unwrap();
        if f.sso {
            // The new secret replaces the one held so far.
            secret = res.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
        } else {
            refused(res, "a secret", f.sso).await;
        }
        let res = client()
            .get(app.url(&format!("/other/internalToken?ent_id={}&account={}", m.ent_id, m.email)))
            .header("x-forwarded-for", "203.0.113.10")
            .bearer_auth(&secret)
            .sent()
            .await;
        refused(res, "an SSO token", f.sso).await;
        // The settings page names what the plan leaves out, and links the plans.
        let html = page(&app, &m, "/app/settings").await;
        let notes = html.matches("class=\"plan-note\"").count();
        let missing = [f.api, f.webhooks, f.sso].iter().filter(|on| !**on).count();
        assert_eq!(notes, missing, "plan notes on {}", plan.id);
    }
}

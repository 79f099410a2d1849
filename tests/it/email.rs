//! Email against a local SMTP server (tests/it/smtp_server.rs): STARTTLS, implicit TLS and
//! plain SMTP with login; the console's test email; invitations, password resets and
//! address verification with their one-time links; left messages and reminders about
//! unanswered conversations through the durable outbox, with retries and bounces.

use crate::helpers::Fetch;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    platform::{Admin, platform_admin},
    smtp_server::{PASSWORD as SMTP_PASSWORD, Security, SmtpServer, USER as SMTP_USER},
    ws_client::{Ws, visitor_session},
};

/// kefu trusting the mail server's CA, with the console's SMTP settings pointing at it.
async fn with_mail(security: Security) -> (TestApp, SmtpServer, Admin) {
    let smtp = SmtpServer::start(security).await;
    let ca = smtp.ca_file.clone();
    let app = spawn_with(|c| c.smtp_ca_file = Some(ca)).await;
    let admin = platform_admin(&app).await;
    configure_smtp(&app, &admin, &smtp, security, SMTP_PASSWORD).await;
    (app, smtp, admin)
}

async fn configure_smtp(
    app: &TestApp,
    admin: &Admin,
    smtp: &SmtpServer,
    security: Security,
    password: &str,
) {
    let mode = match security {
        Security::Plain => "none",
        Security::StartTls => "starttls",
        Security::Implicit => "tls",
    };
    let res = admin
        .call(
            app,
            reqwest::Method::PUT,
            "/api/platform/v1/settings",
            Some(json!({
                "site_title": "Lumen Chat", "site_keywords": "", "site_description": "", "copyright": "",
                "signup_open": true, "default_lang": "en",
                "smtp": { "host": "localhost", "port": smtp.port, "security": mode, "username": SMTP_USER,
                          "password": password, "from": "support@lumen.example" }
            })),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// The first `…/path/<token>` link in `text`.
fn link(text: &str, path: &str) -> String {
    let start = text.find(path).unwrap_or_else(|| panic!("no {path} link in {text}"));
    let rest = &text[start..];
    let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '<').unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Starts a sign-up on a platform that sends email: 202, "check your email" — whatever the
/// address. Returns the address.
async fn start_signup(app: &TestApp, company: &str, email: &str) {
    let res = client()
        .post(app.url("/api/v1/signup"))
        .json(&json!({ "company": company, "email": email, "password": PASSWORD }))
        .sent()
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "status": "check_email", "email": email }));
}

/// Creates the workspace from the sign-up link in `mail` (the API's way).
async fn confirm_signup(app: &TestApp, mail: &crate::smtp_server::Received) -> Merchant {
    let (_, text, _) = mail.parsed();
    let url = link(&text, &app.url("/signup/confirm/"));
    let token = url.rsplit('/').next().unwrap();
    let res = client()
        .post(app.url("/api/v1/signup/confirm"))
        .json(&json!({ "token": token }))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    Merchant {
        ent_id: body["ent_id"].as_str().unwrap().to_owned(),
        token: body["token"].as_str().unwrap().to_owned(),
        email: mail.to[0].clone(),
    }
}

/// Signs a merchant up where the platform sends email: the link arrives, the workspace is
/// made from it.
async fn signup_by_email(app: &TestApp, smtp: &SmtpServer, company: &str) -> Merchant {
    let before = smtp.received().len();
    start_signup(app, company, &unique_email("owner")).await;
    send_outbox(app).await;
    let mail = smtp.wait_for(before + 1).await[before].clone();
    confirm_signup(app, &mail).await
}

/// Runs a round of the outbox now. (The server's own worker runs too, woken by what is
/// queued, so tests look at what arrived rather than at who sent it.)
async fn send_outbox(app: &TestApp) {
    kefu::notify::outbox::run_due(&app.state).await.unwrap();
}

#[tokio::test]
async fn the_test_email_goes_over_starttls_implicit_tls_and_plain_smtp() {
    for security in [Security::StartTls, Security::Implicit, Security::Plain] {
        let (app, smtp, admin) = with_mail(security).await;
        let res = admin
            .post(
                &app,
                "/api/platform/v1/settings/test_email",
                json!({ "to": "ops@lumen.example" }),
            )
            .await;
        assert_eq!(res.status(), 200, "{security:?}: {}", res.text().await.unwrap());
        let got = smtp.wait_for(1).await;
        let mail = &got[0];
        assert_eq!(mail.to, vec!["ops@lumen.example"]);
        assert_eq!(mail.from, "support@lumen.example");
        assert_eq!(mail.user.as_deref(), Some(SMTP_USER), "logged in");
        assert_eq!(mail.tls, security != Security::Plain, "{security:?}");
        let (subject, text, html) = mail.parsed();
        assert_eq!(subject, "Test email from Lumen Chat");
        assert!(text.contains("Email works") && html.contains("Email works"));

        // Wrong credentials: a clear 502 with the server's answer, nothing crashes.
        configure_smtp(&app, &admin, &smtp, security, "wrong").await;
        let res = admin.post(&app, "/api/platform/v1/settings/test_email", json!({})).await;
        assert_eq!(res.status(), 502);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "email_failed");
        assert!(body["error"]["message"].as_str().unwrap().contains("535"), "{body}");
    }
    // A bad address is refused before anything is sent; without SMTP the answer says so.
    let (app, _smtp, admin) = with_mail(Security::StartTls).await;
    let res = admin
        .post(&app, "/api/platform/v1/settings/test_email", json!({ "to": "not an address" }))
        .await;
    assert_eq!(res.status(), 422);
    let bare = spawn_app().await;
    let bare_admin = platform_admin(&bare).await;
    let res = bare_admin.post(&bare, "/api/platform/v1/settings/test_email", json!({})).await;
    assert_eq!(error_code(res).await, "email_unavailable");
    let _ = app;
}

#[tokio::test]
async fn invitations_resets_and_verification_work_once() {
    let (app, smtp, _admin) = with_mail(Security::StartTls).await;
    // Sign-up: the address is proven before the workspace exists. The page behind the link
    // only shows what it creates (mail scanners open links); its button creates it, once.
    let email = unique_email("owner");
    start_signup(&app, "Lumen Lighting", &email).await;
    send_outbox(&app).await;
    let confirm = smtp.wait_for(1).await[0].clone();
    assert_eq!(confirm.to, vec![email.clone()]);
    let (subject, text, _) = confirm.parsed();
    assert!(subject.contains("Lumen Lighting"), "{subject}");
    let url = link(&text, &app.url("/signup/confirm/"));
    let browser = client();
    let page = browser.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Lumen Lighting"));
    assert!(app.pool().acquire().await.is_ok());
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from public.users where lower(email) = lower($1))",
    )
    .bind(&email)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(!exists, "opening the link creates nothing");
    let path = url.trim_start_matches(&app.url(""));
    let csrf = form_csrf(&browser, &app, path).await;
    let res = browser.post(&url).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app");
    assert_eq!(browser.get(app.url("/app")).send().await.unwrap().status(), 200);
    let verified: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "select email_verified_at from public.users where lower(email) = lower($1)",
    )
    .bind(&email)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(verified.is_some(), "the link proved the address");
    let again = browser.post(&url).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
    assert_eq!(again.status(), 404, "a link works once");
    let token = crate::team::login(&app, &email, PASSWORD).await;
    let ent_id =
        app.get_json(&token, "/api/v1/me").await["tenant"]["ent_id"].as_str().unwrap().to_owned();
    let m = Merchant { ent_id, token, email: email.clone() };

    // Signing up again with the address answers exactly the same, and tells its owner.
    start_signup(&app, "Copycat Lamps", &email).await;
    send_outbox(&app).await;
    let note = smtp.wait_for(2).await[1].clone();
    assert_eq!(note.to, vec![email.clone()]);
    let (subject, text, _) = note.parsed();
    assert!(subject.contains("Someone tried"), "{subject}");
    assert!(text.contains(&app.url("/forgot")) && text.contains(&app.url("/login")), "{text}");
    assert!(!text.contains("/signup/confirm/"), "no link creates anything");
    let ents: i64 = sqlx::query_scalar("select count(*) from public.tenants")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(ents, 1);

    // An agent is invited instead of getting a password.
    let res = client()
        .post(app.url("/api/v1/agents"))
        .bearer_auth(&m.token)
        .json(&json!({ "email": "lin@lumen.example", "display_name": "Lin" }))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(
        (created["invited"].as_bool(), created["password"].clone()),
        (Some(true), Value::Null)
    );
    assert_eq!(created["agent"]["invitation_pending"], true);
    send_outbox(&app).await;
    let invite = smtp.wait_for(3).await[2].clone();
    assert_eq!(invite.to, vec!["lin@lumen.example"]);
    let (subject, text, html) = invite.parsed();
    assert!(subject.contains("Lumen Lighting"), "{subject}");
    let url = link(&text, &app.url("/invite/"));
    assert!(html.contains(&url), "the HTML version links the same page");
    // Kept for looking at (target/screenshots/email-invite.html).
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("email-invite.html"), &html).unwrap();
    // The page, a weak password refused, then the real one: signed in, in the workspace.
    let browser = client();
    let page = browser.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("lin@lumen.example"));
    let csrf = hidden_csrf(&html);
    let weak = browser
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", "short")])
        .sent()
        .await;
    assert_eq!(weak.status(), 422);
    let set = browser
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", "a fine long password")])
        .sent()
        .await;
    assert_eq!(set.status(), 303);
    assert_eq!(set.headers()["location"], "/app");
    assert_eq!(
        browser.get(app.url("/api/v1/me")).send().await.unwrap().status(),
        200,
        "the invitation signs in"
    );
    let again = client()
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", "another long password")])
        .sent()
        .await;
    assert_eq!(again.status(), 404, "the link is used up");
    let agents: Value = app.get_as(&m, "/api/v1/agents").await.json().await.unwrap();
    let lin = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "lin@lumen.example")
        .unwrap()
        .clone();
    assert_eq!(lin["invitation_pending"], false);
    let res = client()
        .post(app.url(&format!("/api/v1/agents/{}/invite", lin["id"])))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(error_code(res).await, "already_joined");

    // Forgot password: same answer for known and unknown addresses; only the known one
    // gets a link, and twenty clicks at once change the password once.
    let forgot = |email: &'static str| {
        let browser = client();
        let url = app.url("/forgot");
        async move {
            let csrf = hidden_csrf(&browser.get(&url).text_body().await);
            let res = browser
                .post(&url)
                .form(&[("csrf_token", csrf.as_str()), ("email", email)])
                .sent()
                .await;
            (res.status(), res.text().await.unwrap())
        }
    };
    let (status, known) = forgot("lin@lumen.example").await;
    assert_eq!(status, 200);
    let (_, unknown) = forgot("nobody@lumen.example").await;
    assert_eq!(
        known.replace("lin@lumen.example", "X"),
        unknown.replace("nobody@lumen.example", "X")
    );
    send_outbox(&app).await;
    let all = smtp.wait_for(4).await;
    assert_eq!(all.len(), 4, "no email for the unknown address");
    let (_, text, _) = all[3].parsed();
    let url = link(&text, &app.url("/reset/"));
    let csrf_browser = client();
    let csrf = hidden_csrf(&csrf_browser.get(&url).text_body().await);
    let tries = join_all((0..20).map(|i| {
        let (browser, url, csrf) = (csrf_browser.clone(), url.clone(), csrf.clone());
        async move {
            let password = format!("new password number {i}");
            browser
                .post(&url)
                .form(&[("csrf_token", csrf.as_str()), ("password", password.as_str())])
                .sent()
                .await
                .status()
        }
    }))
    .await;
    assert_eq!(tries.iter().filter(|s| s.as_u16() == 303).count(), 1, "{tries:?}");
    assert!(tries.iter().all(|s| matches!(s.as_u16(), 303 | 404)), "{tries:?}");
}

/// A password reset link proves the mailbox, not the second factor: a user with two-step
/// verification still gives a code before getting a session.
#[tokio::test]
async fn a_reset_link_does_not_skip_two_step_verification() {
    let (app, smtp, _admin) = with_mail(Security::Implicit).await;
    let m = signup_by_email(&app, &smtp, "Careful Shop").await;
    let post = |path: &'static str, body: Value| {
        client().post(app.url(path)).bearer_auth(&m.token).json(&body).send()
    };
    let offer: Value = post("/api/v1/me/totp", json!({})).await.unwrap().json().await.unwrap();
    let code = kefu::auth::totp::current_code(offer["secret"].as_str().unwrap()).unwrap();
    assert_eq!(
        post("/api/v1/me/totp/confirm", json!({ "code": code })).await.unwrap().status(),
        200
    );

    let browser = client();
    let csrf = hidden_csrf(&browser.get(app.url("/forgot")).text_body().await);
    browser
        .post(app.url("/forgot"))
        .form(&[("csrf_token", csrf.as_str()), ("email", m.email.as_str())])
        .sent()
        .await;
    send_outbox(&app).await;
    let (_, text, _) = smtp.wait_for(2).await[1].parsed();
    let url = link(&text, &app.url("/reset/"));
    let csrf = hidden_csrf(&browser.get(&url).text_body().await);
    let res = browser
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", "a brand new passphrase")])
        .sent()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login/2fa", "the code comes first");
    assert!(
        browser.get(app.url("/app")).send().await.unwrap().status().is_redirection(),
        "no session yet"
    );
}

fn hidden_csrf(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn left_messages_and_unanswered_conversations_are_emailed() {
    let (app, smtp, _admin) = with_mail(Security::Implicit).await;
    let m = signup_by_email(&app, &smtp, "Quiet Shop").await;
    let res = client()
        .patch(app.url("/api/v1/settings"))
        .bearer_auth(&m.token)
        .json(&json!({ "notification_email": "desk@quiet.example", "unanswered_email_minutes": 3 }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);

    // Nobody is online: the visitor's message becomes a reminder due in 3 minutes.
    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("q1", "Is the blue lamp back in stock?", None).await;
    let ack = ws.expect("ack").await;
    let conversation = ack["conversation_id"].as_i64().unwrap();
    // (Each message's automation runs on its own task: wait for the first one's reminder so
    // the second is the one that finds it pending.)
    wait_for_pending(&app, "unanswered", 1).await;
    ws.send_text("q2", "Hello?", None).await;
    ws.expect("ack").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pending = wait_for_pending(&app, "unanswered", 1).await;
    assert_eq!(pending, 1, "one reminder per conversation at a time");
    send_outbox(&app).await;
    assert_eq!(smtp.received().len(), 1, "not due yet");
    make_due(&app).await;
    send_outbox(&app).await;
    let reminder = smtp.wait_for(2).await[1].clone();
    assert_eq!(reminder.to, vec!["desk@quiet.example"]);
    let (subject, text, _) = reminder.parsed();
    assert!(subject.contains("waiting"), "{subject}");
    assert!(text.contains("Is the blue lamp back in stock?"), "{text}");

    // Answered before it is due: the next reminder is dropped, not sent.
    ws.send_text("q3", "Anyone?", None).await;
    ws.expect("ack").await;
    wait_for_pending(&app, "unanswered", 1).await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent
        .send(json!({ "type": "send", "client_msg_id": "a1", "conversation_id": conversation, "kind": "text", "body": "Yes, it is!" }))
        .await;
    agent.expect("ack").await;
    make_due(&app).await;
    send_outbox(&app).await;
    assert_eq!(smtp.received().len(), 2, "the answered conversation's reminder is not sent");
    let dropped: Option<String> = sqlx::query_scalar(
        "select last_error from public.email_outbox where kind = 'unanswered' and dropped_at is not null",
    )
    .fetch_optional(app.pool())
    .await
    .unwrap()
    .flatten();
    assert_eq!(dropped.as_deref(), Some("no longer needed"));

    // A left message reaches the notification email with what the visitor wrote.
    let left = json!({ "name": "Mia", "contact": "mia@example.com", "body": "Please call me <b>tomorrow</b>." });
    leave_message(&app, &v.token, left).await;
    send_outbox(&app).await;
    let left = smtp.wait_for(3).await[2].clone();
    let (subject, text, html) = left.parsed();
    assert!(subject.contains("Mia"), "{subject}");
    assert!(text.contains("mia@example.com") && text.contains("Please call me <b>tomorrow</b>."));
    assert!(
        html.contains("tomorrow") && !html.contains("<b>tomorrow</b>"),
        "escaped in HTML: {html}"
    );
}

/// A message left while nobody is online is a lead: a queued conversation, marked, with the
/// visitor's contact details; the agent who comes online answers it, the visitor (gone) gets
/// the answer by email, and its link brings them back into the same conversation.
#[tokio::test]
async fn a_left_message_is_a_lead_answered_by_email() {
    let (app, smtp, _admin) = with_mail(Security::Implicit).await;
    let m = signup_by_email(&app, &smtp, "Lamp Shop").await;
    let before = smtp.received().len();
    let v = visitor_session(&app, &m.ent_id).await;
    let left =
        json!({ "name": "张伟", "contact": "Zhang.Wei@Example.com", "body": "我想要白色的台灯" });
    let conversation =
        leave_message(&app, &v.token, left).await["conversation_id"].as_i64().unwrap();

    // An agent comes online: the lead is in the list, queued, marked, named as the visitor
    // signed it, with their message; the visitor's profile has the address.
    let list = app.get_json(&m.token, "/api/v1/conversations?view=all&status=any").await;
    let item = &list["conversations"][0];
    assert_eq!(item["id"], conversation, "{list:#}");
    assert_eq!(item["status"], "queued");
    assert_eq!(item["visitor_name"], "张伟");
    assert_eq!(item["last_message"], "我想要白色的台灯");
    assert!(item["left_offline_at"].is_string(), "{item:#}");
    let visitor = app.get_json(&m.token, &format!("/api/v1/visitors/{}", v.id)).await;
    assert_eq!(visitor["email"], "zhang.wei@example.com", "{visitor:#}");

    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;
    agent
        .send(json!({ "type": "send", "client_msg_id": "a1", "conversation_id": conversation,
                      "kind": "text", "body": "白色的有货，今天就能发出。" }))
        .await;
    agent.expect("ack").await;
    wait_for_pending(&app, "answer", 1).await;
    send_outbox(&app).await;
    let answer = smtp.wait_for(before + 1).await[before].clone();
    assert_eq!(answer.to, vec!["zhang.wei@example.com"]);
    let (subject, text, _) = answer.parsed();
    assert!(subject.contains("Lamp Shop"), "{subject}");
    assert!(text.contains("白色的有货，今天就能发出。"), "{text}");

    // The link resumes the visitor: the same visitor and conversation, the answer in it.
    let url = link(&text, &app.url(&format!("/chatIndex?ent_id={}#resume=", m.ent_id)));
    let token = url.split("#resume=").nth(1).unwrap();
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "token": token }))
        .sent()
        .await;
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["visitor_id"], v.id.as_str(), "{session:#}");
    let mut ws = Ws::visitor(&app, session["token"].as_str().unwrap(), "&since=0").await;
    let said = ws
        .expect_where("the answer", |f| f["type"] == "message" && f["sender"]["kind"] == "agent")
        .await;
    assert_eq!(said["conversation_id"], conversation);
    ws.send_text("v2", "太好了，谢谢", None).await;
    assert_eq!(ws.expect("ack").await["conversation_id"], conversation, "the same conversation");

    // An answer the visitor is there to read is not emailed.
    agent
        .send(json!({ "type": "send", "client_msg_id": "a2", "conversation_id": conversation,
                      "kind": "text", "body": "不客气" }))
        .await;
    agent.expect("ack").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pending: i64 =
        sqlx::query_scalar("select count(*) from public.email_outbox where kind = 'answer'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(pending, 1, "only the answer written while the visitor was away");
}

/// The reminder follows the conversation's agent: while they are online nobody is emailed;
/// once they are away their conversation's waiting visitor reaches them by email, though a
/// colleague is online.
#[tokio::test]
async fn reminders_go_to_the_conversations_agent_when_they_are_away() {
    let smtp = SmtpServer::start(Security::Implicit).await;
    let ca = smtp.ca_file.clone();
    let app = spawn_with(|c| c.smtp_ca_file = Some(ca)).await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Busy Desk").await;
    // Lin joins before email is set up (afterwards she would be invited by email instead).
    let (lin_id, lin_email, lin) = crate::team::add_agent(&app, &m, "agent").await;
    configure_smtp(&app, &admin, &smtp, Security::Implicit, SMTP_PASSWORD).await;
    let res = client()
        .patch(app.url("/api/v1/settings"))
        .bearer_auth(&m.token)
        .json(&json!({ "unanswered_email_minutes": 2 }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let mut lin_ws = Ws::agent(&app, &lin, "").await;
    lin_ws.expect("hello").await;

    // Lin is the only one online: the conversation is hers, and she sees it live.
    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("q1", "Is my parcel lost?", None).await;
    ws.expect("ack").await;
    lin_ws.expect("message").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let reminders = || {
        sqlx::query_as::<_, (String, i64)>(
            "select to_addr, (about ->> 'after_message_id')::bigint from public.email_outbox
             where kind = 'unanswered' and sent_at is null and dropped_at is null",
        )
        .fetch_all(app.pool())
    };
    assert_eq!(reminders().await.unwrap(), vec![], "no reminder while her agent is online");

    // The owner comes online, Lin leaves: the next message waits on Lin, who is emailed.
    let mut owner_ws = Ws::agent(&app, &m.token, "").await;
    owner_ws.expect("hello").await;
    drop(lin_ws);
    owner_ws
        .expect_where("Lin offline", |f| {
            f["type"] == "presence" && f["agent_id"] == lin_id && f["status"] == "offline"
        })
        .await;
    ws.send_text("q2", "Hello? Anyone?", None).await;
    let second = ws.expect("ack").await["id"].as_i64().unwrap();
    wait_for_pending(&app, "unanswered", 1).await;
    assert_eq!(reminders().await.unwrap(), vec![(lin_email, second)]);
}

/// The leave-a-message form sent with `body`: 201, the stored message and its conversation.
async fn leave_message(app: &TestApp, token: &str, body: Value) -> Value {
    let res = client()
        .post(app.url("/api/v1/visitor/leave_message"))
        .bearer_auth(token)
        .json(&body)
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn wait_for_pending(app: &TestApp, kind: &str, n: i64) -> i64 {
    for _ in 0..100 {
        let pending: i64 = sqlx::query_scalar(
            "select count(*) from public.email_outbox where kind = $1 and sent_at is null and dropped_at is null",
        )
        .bind(kind)
        .fetch_one(app.pool())
        .await
        .unwrap();
        if pending >= n {
            return pending;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no pending {kind} email");
}

/// Moves every waiting email to now (the reminder's minutes, passed).
async fn make_due(app: &TestApp) {
    sqlx::query("update public.email_outbox set next_attempt_at = now() where sent_at is null and dropped_at is null")
        .execute(app.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn failures_are_retried_with_backoff_and_bounces_dropped() {
    let smtp = SmtpServer::start(Security::StartTls).await;
    let ca = smtp.ca_file.clone();
    let app = spawn_with(|c| c.smtp_ca_file = Some(ca)).await;
    let admin = platform_admin(&app).await;
    // A server that is not there: the email waits and is tried again later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let res = admin
        .call(
            &app,
            reqwest::Method::PUT,
            "/api/platform/v1/settings",
            Some(json!({
                "site_title": "kefu", "site_keywords": "", "site_description": "", "copyright": "",
                "signup_open": true, "default_lang": "en",
                "smtp": { "host": "localhost", "port": dead_port, "security": "starttls", "username": SMTP_USER,
                          "password": SMTP_PASSWORD, "from": "support@lumen.example" }
            })),
        )
        .await;
    assert_eq!(res.status(), 200);
    start_signup(&app, "Retry Shop", &unique_email("owner")).await;
    send_outbox(&app).await;
    let (_, error) = tried(&app, "signup").await;
    let (attempts, later): (i32, bool) = sqlx::query_as(
        "select attempts, next_attempt_at > now() + interval '50 seconds' from public.email_outbox where kind = 'signup'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.is_some());
    assert!(later, "retried after a minute, not at once");

    // The server is back: the retry goes out.
    configure_smtp(&app, &admin, &smtp, Security::StartTls, SMTP_PASSWORD).await;
    make_due(&app).await;
    send_outbox(&app).await;
    let m = confirm_signup(&app, &smtp.wait_for(1).await[0]).await;

    // A refused recipient is permanent: dropped with the reason, not retried.
    let res = client()
        .post(app.url("/api/v1/agents"))
        .bearer_auth(&m.token)
        .json(&json!({ "email": "bounce@lumen.example" }))
        .sent()
        .await;
    assert_eq!(res.status(), 201);
    send_outbox(&app).await;
    let (dropped, error) = tried(&app, "invite").await;
    assert!(dropped, "{error:?}");
    assert!(error.unwrap().contains("550"));
}

/// Waits until the email of `kind` has been tried (by the test's round or the server's
/// worker, whichever claimed it): (dropped, last error).
async fn tried(app: &TestApp, kind: &str) -> (bool, Option<String>) {
    for _ in 0..100 {
        let row: (i32, bool, Option<String>) = sqlx::query_as(
            "select attempts, dropped_at is not null, last_error from public.email_outbox where kind = $1",
        )
        .bind(kind)
        .fetch_one(app.pool())
        .await
        .unwrap();
        if row.0 > 0 {
            return (row.1, row.2);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the {kind} email was never tried");
}

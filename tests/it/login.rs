//! Login, workspace selection, sessions, rate limits and timing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenants::{TenantStatus, TenantTx};

use crate::helpers::*;

async fn login(app: &TestApp, body: Value) -> reqwest::Response {
    client().post(app.url("/api/v1/login")).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn login_with_any_email_case_gives_a_working_session() {
    let app = spawn_app().await;
    let m = app.signup("Acme").await;
    let res = login(&app, json!({ "email": m.email.to_uppercase(), "password": PASSWORD })).await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("kefu_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ent_id"], m.ent_id.as_str());
    let token = body["token"].as_str().unwrap();
    let me = client().get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let last_login: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select last_login_at from public.users where lower(email) = lower($1)")
            .bind(&m.email)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(last_login.is_some());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = spawn_app().await;
    let m = app.signup("Acme").await;
    let wrong = login(&app, json!({ "email": m.email, "password": "not the password" })).await;
    let unknown =
        login(&app, json!({ "email": "nobody@example.com", "password": "not the password" })).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
}

/// The password check runs for unknown emails too, so response time does not reveal which
/// emails have accounts. Without the dummy check an unknown email answers ~10× faster.
/// Minimums, not medians: machine load (other tests run in parallel) only ever adds time,
/// so the fastest attempt of each kind is what the code itself costs.
#[tokio::test]
async fn login_time_does_not_reveal_whether_an_email_exists() {
    let app = spawn_app().await;
    let m = app.signup("Acme").await;
    // Alternate the two kinds of attempt so both see the same machine load.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..18 {
        let email = if i % 2 == 0 { m.email.as_str() } else { "ghost@example.com" };
        let start = Instant::now();
        let res = login(&app, json!({ "email": email, "password": "wrong password!" })).await;
        assert_eq!(res.status(), 401);
        if i % 2 == 0 { known.push(start.elapsed()) } else { unknown.push(start.elapsed()) }
    }
    let fastest = |v: Vec<Duration>| v.into_iter().min().unwrap();
    let (known, unknown) = (fastest(known), fastest(unknown));
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!((0.5..3.0).contains(&ratio), "known {known:?} vs unknown {unknown:?}");
}

#[tokio::test]
async fn a_user_of_several_tenants_chooses_one() {
    let app = spawn_app().await;
    let a = app.signup("Alpha").await;
    let b = app.signup("Bravo").await;
    // Make A's owner an agent of B as well.
    let user_id: i64 = sqlx::query_scalar("select id from public.users where email = $1")
        .bind(&a.email)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let b_id: i64 = sqlx::query_scalar("select id from public.tenants where ent_id = $1")
        .bind(&b.ent_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let mut tx = TenantTx::begin(app.pool(), tenants::TenantId(b_id)).await.unwrap();
    kefu::auth::store::add_member(&mut tx, tenants::TenantId(b_id), user_id).await.unwrap();
    kefu::auth::store::insert_agent(&mut tx, user_id, "agent", "Alpha owner").await.unwrap();
    tx.commit().await.unwrap();

    let res = login(&app, json!({ "email": a.email, "password": PASSWORD })).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none(), "no session before a workspace is chosen");
    let body: Value = res.json().await.unwrap();
    assert!(body.get("token").is_none());
    let names: Vec<&str> =
        body["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha", "Bravo"]);
    let select_token = body["select_token"].as_str().unwrap();

    // The selection token is not a session.
    let res = client().get(app.url("/api/v1/me")).bearer_auth(select_token).send().await.unwrap();
    assert_eq!(res.status(), 401);

    let res = client()
        .post(app.url("/api/v1/login/select"))
        .json(&json!({ "select_token": select_token, "ent_id": b.ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.unwrap();
    let me: Value = client()
        .get(app.url("/api/v1/me"))
        .bearer_auth(token["token"].as_str().unwrap())
        .sent()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"]["name"], "Bravo");
    assert_eq!(me["agent"]["role"], "agent");

    // Choosing a workspace one is not a member of is a 404.
    let c = app.signup("Charlie").await;
    let res = client()
        .post(app.url("/api/v1/login/select"))
        .json(&json!({ "select_token": select_token, "ent_id": c.ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 404);

    // Naming the workspace in the login request skips the choice.
    let res =
        login(&app, json!({ "email": a.email, "password": PASSWORD, "ent_id": b.ent_id })).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant_name"], "Bravo");

    // The page flow: login → chooser → workspace.
    let browser = client();
    let res = form_login(&browser, &app, &a.email, &[]).await;
    assert_eq!(res.status(), 303);
    let csrf = form_csrf(&browser, &app, "/login").await;
    assert_eq!(res.headers()["location"], "/login/select");
    let html = browser.get(app.url("/login/select")).text_body().await;
    assert!(html.contains("Alpha") && html.contains("Bravo"));
    let res = browser
        .post(app.url("/login/select"))
        .form(&[("ent_id", b.ent_id.as_str()), ("csrf_token", &csrf)])
        .sent()
        .await;
    assert_eq!(res.status(), 303);
    let html = browser.get(app.url("/app")).text_body().await;
    assert!(html.contains("Bravo"));
}

#[tokio::test]
async fn sign_up_and_login_are_rate_limited_per_client_ip() {
    let app = spawn_with(|c| {
        c.auth_rate_per_minute = 6;
        c.auth_rate_burst = 3;
    })
    .await;
    let attempt = |xff: &'static str| {
        client()
            .post(app.url("/api/v1/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({ "email": "x@example.com", "password": "whatever!!" }))
            .send()
    };
    for i in 0..3 {
        assert_eq!(
            attempt("10.0.0.1").await.unwrap().status(),
            401,
            "attempt {i} is within the burst"
        );
    }
    // Forwarding headers from an untrusted peer do not buy a fresh bucket.
    let res = attempt("10.9.9.9").await.unwrap();
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(error_code(res).await, "rate_limited");
    let res = client().post(app.url("/api/v1/signup")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 429, "sign-up shares the limit");

    // Behind a trusted proxy, each client has its own bucket.
    let proxied = spawn_with(|c| {
        c.auth_rate_per_minute = 6;
        c.auth_rate_burst = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for client_ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            let res = client()
                .post(proxied.url("/api/v1/login"))
                .header("x-forwarded-for", client_ip)
                .json(&json!({ "email": "x@example.com", "password": "whatever!!" }))
                .sent()
                .await;
            assert_eq!(res.status(), 401);
        }
    }
}

#[tokio::test]
async fn suspended_tenants_are_paused_and_resume() {
    let app = spawn_app().await;
    let m = app.signup("Sleepy").await;
    let tenant = app
        .state
        .tenants
        .by_ent_id(&tenants::EntId::parse(&m.ent_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(app.state.tenants.set_status(tenant.id, TenantStatus::Suspended).await.unwrap());

    let res = app.get_as(&m, "/api/v1/me").await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "tenant_suspended");
    let res = login(&app, json!({ "email": m.email, "password": PASSWORD })).await;
    assert_eq!(res.status(), 403);
    let page = client()
        .get(app.url("/app"))
        .header("accept", "text/html")
        .header("cookie", format!("kefu_session={}", m.token))
        .sent()
        .await;
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("Service paused"), "a readable paused page");

    app.state.tenants.set_status(tenant.id, TenantStatus::Active).await.unwrap();
    assert_eq!(app.get_as(&m, "/api/v1/me").await.status(), 200);
}

#[tokio::test]
async fn cookie_sessions_need_csrf_for_writes_and_logout_ends_them() {
    let app = spawn_app().await;
    let m = app.signup("Cookies").await;
    let browser = client();
    let res = form_login(&browser, &app, &m.email, &[("next", "//evil.example/steal")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app", "a foreign `next` is ignored");
    let csrf = form_csrf(&browser, &app, "/login").await;
    assert_eq!(
        browser.get(app.url("/api/v1/me")).send().await.unwrap().status(),
        200,
        "cookie works for reads"
    );

    // API logout with the cookie needs the CSRF header.
    let res = browser.post(app.url("/api/v1/logout")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res =
        browser.post(app.url("/logout")).form(&[("csrf_token", "forged")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = browser.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).sent().await;
    assert_eq!(res.status(), 303);
    assert_eq!(browser.get(app.url("/api/v1/me")).send().await.unwrap().status(), 401);
    let res = browser.get(app.url("/app")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?next=/app");
}

#[tokio::test]
async fn https_deployments_mark_cookies_secure() {
    let app = spawn_with(|c| c.public_url = Some("https://chat.example.com".into())).await;
    let m = app.signup("Secure").await;
    let res = login(&app, json!({ "email": m.email, "password": PASSWORD })).await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(res.headers().contains_key("strict-transport-security"));
}

/// Without a mail server a reset link cannot come: the page says so and who can help,
/// instead of a form that promises an email.
#[tokio::test]
async fn forgetting_a_password_without_email_says_who_can_help() {
    let app = spawn_app().await;
    let en = client().get(app.url("/forgot")).header("accept-language", "en").sent().await;
    assert_eq!(en.status(), 200);
    let html = en.text().await.unwrap();
    assert!(html.contains("cannot send email") && html.contains("owner or admin"), "{html}");
    assert!(!html.contains(r#"action="/forgot""#), "no form that promises an email");
    let zh = client().get(app.url("/forgot")).header("accept-language", "zh-CN").text_body().await;
    assert!(zh.contains("尚未配置邮件发送") && zh.contains("所有者或管理员"), "{zh}");
}

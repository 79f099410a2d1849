//! The pages that matter, in headless Chromium: `tests/browser/e2e.mjs` (playwright-core)
//! drives a merchant's site on another origin with GOFLY's embed code, the visitor chat and
//! the agent workspace against a real server. Screenshots land in `target/screenshots/`.
//!
//! Needs `chromium` (Debian package) and Node.js; `npm ci` in `tests/browser` is run here
//! when its packages are missing. Without a browser the test says so and passes, unless
//! `KEFU_REQUIRE_BROWSER=1` (`.ci/run` sets it after installing Chromium).

use crate::helpers::Fetch;
use std::path::{Path, PathBuf};

use axum::{Router, extract::Path as UrlPath, response::Html, routing::get};

use crate::helpers::{npm_ci, spawn_app, tenant_id};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium, with the browser scripts' packages installed; `None` (the test then passes,
/// saying it was skipped) on a machine without a browser, unless `KEFU_REQUIRE_BROWSER=1`.
async fn browser_ready() -> Option<PathBuf> {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("KEFU_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "KEFU_REQUIRE_BROWSER=1 but no Chromium was found (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no Chromium on this machine (apt-get install chromium)");
        return None;
    };
    tokio::task::spawn_blocking(|| npm_ci(&browser_dir(), "playwright-core")).await.unwrap();
    Some(chromium)
}

/// Where the scripts put their screenshots.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// Runs `tests/browser/<script>` with the browser, `OUT_DIR` and `env`; fails the test with
/// the script's output unless it succeeds within 3 minutes; returns what it printed.
async fn run_script(script: &str, chromium: &Path, env: &[(&str, &str)]) -> String {
    let run = tokio::process::Command::new("node")
        .arg(browser_dir().join(script))
        .env("OUT_DIR", screenshots())
        .env("CHROMIUM", chromium)
        .envs(env.iter().copied())
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes")
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}

/// A merchant's shop on another origin, with GOFLY's embed code exactly as GOFLY documents it.
async fn spawn_shop(app_url: String) -> String {
    let page = move |UrlPath(ent_id): UrlPath<String>| {
        let app_url = app_url.clone();
        async move {
            Html(format!(
                r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Lumen Store — Desk lamps</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"></head>
<body style="font-family: Georgia, serif; margin: 48px; color: #1f2937; background: #fafaf9">
<h1>Lumen desk lamp</h1>
<p>Warm, dimmable light for late work. Aluminium, three colours.</p>
<p><strong>$49</strong></p>
<!--对接客服代码-->
<script src="{app_url}/static/js/gofly-front.js"></script>
<script>
    GOFLY.init({{
        GOFLY_URL:"{app_url}",//域名,必填
        GOFLY_KEFU_ID: "kefu2",//商户名称,必填
        GOFLY_ENT: "{ent_id}",//商户ID,必填
        GOFLY_BTN_TEXT: "Talk to Lumen",//按钮文件,选填
        GOFLY_EXTRA:{{
            "visitorProduct":{{
                "title":"Lumen desk lamp",
                "price":"$49",
                "img":"data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
                "url":"javascript:alert(document.cookie)",
            }}
        }}
    }})
</script>
<!--//对接客服代码-->
</body>
</html>"#
            ))
        }
    };
    let router = Router::new().route("/shop/{ent_id}", get(page));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// The realtime client both pages share (static/js/socket.js), against a scripted socket:
/// cursor and resyncs, resending until acknowledged, backoff with jitter, errors reported.
/// Needs node only, no browser.
#[tokio::test]
async fn the_pages_socket_client_resumes_resends_and_reports() {
    let script = browser_dir().join("socket.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .output()
        .await
        .expect("node runs (install Node.js)");
    assert!(
        output.status.success(),
        "socket.mjs failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_visitor_and_agent_chat_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    // A trial with single sign-on, which the walk sets up in Settings.
    let app = crate::helpers::spawn_with(|c| {
        let sso = serde_json::from_value(serde_json::json!({ "sso": true })).unwrap();
        c.plans.insert("trial".into(), sso);
    })
    .await;
    let shop = spawn_shop(app.url.clone()).await;
    let out = screenshots();
    std::fs::create_dir_all(&out).unwrap();
    let photo = out.join("visitor-photo.png");
    std::fs::write(&photo, crate::helpers::png(900, 600)).unwrap();

    let stdout = run_script(
        "e2e.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("HOST_URL", shop.as_str()),
            ("PHOTO", photo.to_str().unwrap()),
        ],
    )
    .await;

    // What the browsers did reached the store: the conversations and the left message.
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON summary");
    let ent_id = summary["entId"].as_str().unwrap();
    let schema = format!("tenant_{}", tenant_id(app.pool(), ent_id).await.0);
    let (conversations, left): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select (select count(*) from {schema}.conversations),
                (select m.body from {schema}.messages m
                   join {schema}.conversations c on c.id = m.conversation_id
                  where c.left_offline_at is not null and m.body like 'Please call%')"
    )))
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(conversations, 3, "the widget visitor, the phone visitor and the late visitor");
    assert_eq!(left, "Please call me back about opening hours.");
    for shot in [
        "widget-desktop-open",
        "workspace-image-viewer",
        "workspace-phone-list",
        "workspace-phone-chat",
        "workspace-phone-visitor",
        "widget-desktop-badge",
        "workspace-desktop",
        "workspace-left-message",
        "workspace-search",
        "chat-phone-blocked",
        "chat-phone-zh",
        "chat-phone-leave-message",
    ] {
        assert!(out.join(format!("{shot}.png")).exists(), "screenshot {shot} was written");
    }
}

/// The platform console, start to finish, with a merchant's workspace open beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_console_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    // Some merchants with some traffic, so the pages have something to show.
    let lumen = app.signup("Lumen Lighting").await;
    for name in ["Harbor Books", "Maple Tea House", "Nimbus Cloud"] {
        let m = app.signup(name).await;
        let visitor = crate::ws_client::visitor_session(&app, &m.ent_id).await;
        let mut ws = crate::ws_client::Ws::visitor(&app, &visitor.token, "").await;
        for i in 0..3 {
            ws.send_text(&format!("hello-{i}"), "Hello!", None).await;
            ws.expect("ack").await;
        }
    }
    let email = crate::helpers::unique_email("ops");
    let admin = kefu::platform::create_admin(
        app.pool(),
        &kefu::auth::validate::Email::parse(&email).unwrap(),
    )
    .await
    .unwrap();
    let merchant_id = tenant_id(app.pool(), &lumen.ent_id).await.0;
    let out = screenshots();
    run_script(
        "console.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("ADMIN_EMAIL", email.as_str()),
            ("ADMIN_PASSWORD", admin.password.as_str()),
            ("OWNER_TOKEN", lumen.token.as_str()),
            ("MERCHANT_ID", &merchant_id.to_string()),
        ],
    )
    .await;
    // What the admin did is on record.
    let actions: Vec<String> =
        sqlx::query_scalar("select distinct action from public.platform_audit order by action")
            .fetch_all(app.pool())
            .await
            .unwrap();
    for action in [
        "announcement.publish",
        "merchant.impersonate",
        "merchant.resume",
        "merchant.suspend",
        "merchant.trial",
        "platform.login",
        "system.settings",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    for shot in
        ["console-enrol", "console-dashboard", "console-merchant", "console-support-session"]
    {
        assert!(out.join(format!("{shot}.png")).exists(), "screenshot {shot} was written");
    }
}

/// Signing in with an OpenID Connect provider: the console adds it, the login page offers it,
/// the profile shows and links accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_sign_in_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    let Some(idp) = crate::oauth::spawn_idp(&app.url("/auth/oauth/corp/callback")).await else {
        return;
    };
    let admin = crate::platform::platform_admin(&app).await;
    let owner = app.signup("Lumen Lighting").await;
    crate::oauth::confirm_email(&app, &owner.email).await;
    let other = app.signup("Harbor Books").await;
    run_script(
        "oauth.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("PLATFORM_TOKEN", admin.token.as_str()),
            ("IDP_ISSUER", idp.issuer.as_str()),
            ("CLIENT_ID", crate::oauth::CLIENT_ID),
            ("CLIENT_SECRET", crate::oauth::CLIENT_SECRET),
            ("OWNER_EMAIL", owner.email.as_str()),
            ("OTHER_EMAIL", other.email.as_str()),
            ("PASSWORD", crate::helpers::PASSWORD),
        ],
    )
    .await;
    let linked: i64 = sqlx::query_scalar("select count(*) from public.user_identities")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(linked, 2, "the owner's and the other owner's accounts are linked");
}

/// The billing page with Stripe (the local stand-in): trial, Checkout, paid, portal, cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let stripe = crate::fake_stripe::FakeStripe::start().await;
    let app = crate::helpers::spawn_with(|c| {
        stripe.configure(c);
        let one =
            serde_json::from_value(serde_json::json!({ "conversations_per_month": 1 })).unwrap();
        c.plans.insert("trial".into(), one);
    })
    .await;
    stripe.set_webhook_url(app.url("/webhooks/stripe"));
    let owner = app.signup("Lumen Lighting").await;
    // The month's one conversation is taken (the visitor engaged: they wrote twice).
    let visitor = crate::ws_client::visitor_session(&app, &owner.ent_id).await;
    let mut ws = crate::ws_client::Ws::visitor(&app, &visitor.token, "").await;
    ws.send_text("first", "Hello", None).await;
    ws.expect("ack").await;
    ws.send_text("second", "Anyone there?", None).await;
    ws.expect("ack").await;
    let out = screenshots();
    run_script(
        "billing.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("OWNER_TOKEN", owner.token.as_str()),
            ("ENT_ID", owner.ent_id.as_str()),
        ],
    )
    .await;
    let (status, plan): (String, String) =
        sqlx::query_as("select billing_status, plan from public.tenants where ent_id = $1")
            .bind(&owner.ent_id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), plan.as_str()),
        ("active", "pro"),
        "paid, and ending only at the period's end"
    );
    for shot in ["chat-conversation-limit", "billing-trial", "billing-active", "billing-phone-zh"] {
        assert!(out.join(format!("{shot}.png")).exists(), "screenshot {shot} was written");
    }
}

/// A merchant's "my account" page on another origin: the widget, told who the logged-in user
/// is with the hash the shop's server computed, and a log-out button.
async fn spawn_account_page(app_url: String, ent_id: String, user_hash: String) -> String {
    let page = move || async move {
        Html(format!(
            r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Lumen Store — My orders</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"></head>
<body style="font-family: Georgia, serif; margin: 48px; color: #1f2937; background: #fafaf9">
<h1>My orders</h1>
<p>Signed in as Ada. <button id="logout" type="button" onclick="Kefu.logout()">Log out</button></p>
<script src="{app_url}/static/js/widget.js"></script>
<script>
  Kefu.init({{ entId: "{ent_id}", buttonText: "Help with an order" }});
  Kefu.identify({{ id: "shopper-42", hash: "{user_hash}", name: "Ada" }});
</script>
</body>
</html>"#
        ))
    };
    let router = Router::new().route("/account", get(page));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/account", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Verified widget identity across two devices, logging out, and what the agent sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_user_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    let m = app.signup("Lumen Store").await;
    let res = crate::helpers::client()
        .post(app.url("/api/v1/settings/identity_secret"))
        .bearer_auth(&m.token)
        .sent()
        .await;
    let secret =
        res.json::<serde_json::Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    let hash = {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(b"shopper-42");
        hex::encode(mac.finalize().into_bytes())
    };
    let account = spawn_account_page(app.url.clone(), m.ent_id.clone(), hash).await;
    run_script(
        "identity.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("ACCOUNT_URL", account.as_str()),
            ("OWNER_EMAIL", m.email.as_str()),
        ],
    )
    .await;
    // Two devices, one verified visitor; the logged-out phone became an anonymous one.
    // (The phone's anonymous session starts as its chat reloads, which a busy machine may
    // still be doing: wait for it, then show every visitor row if the count is wrong.)
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    let mut counts = (0, 0);
    for _ in 0..100 {
        counts = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select count(*) filter (where external_id = 'shopper-42'),
                    count(*) filter (where external_id is null)
             from {schema}.visitors"
        )))
        .fetch_one(app.pool())
        .await
        .unwrap();
        if counts != (1, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rows: Vec<(i64, Option<String>, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select id, external_id, name, first_seen_at from {schema}.visitors order by id"
        )))
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(counts, (1_i64, 1_i64), "verified and anonymous visitors: {rows:#?}");
}

/// A working day in Chinese on phones: a lead left while nobody was online, found marked,
/// answered from the phone with the visitor panel, and found again by searching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_day_in_chinese_on_phones() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    let m = app.signup("台灯小店").await;
    crate::team::add_named_agent(&app, &m, "agent", "林小美").await;
    run_script(
        "workday_zh.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("ENT_ID", m.ent_id.as_str()),
            ("OWNER_EMAIL", m.email.as_str()),
            ("OWNER_TOKEN", m.token.as_str()),
            ("COLLEAGUE", "林小美"),
        ],
    )
    .await;
}

/// Contacts: a merchant finds, filters, tags, exports, reads and merges visitor records, on
/// a desktop in English and on a phone in Chinese.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    let m = app.signup("Walnut & Co").await;
    run_script(
        "contacts.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("ENT_ID", m.ent_id.as_str()),
            ("OWNER_EMAIL", m.email.as_str()),
            ("OWNER_TOKEN", m.token.as_str()),
        ],
    )
    .await;
}

/// Private notes and @mentions: the owner on a desktop mentions Ann, who is told on her
/// phone in Chinese and finds it under Mentions; the visitor never sees the note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_and_mentions_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    let m = app.signup("Courier Watch").await;
    let (_, ann_email, _, ann_password) =
        crate::team::add_named_agent(&app, &m, "agent", "Ann Lee").await;
    // Closed all week: only an agent answering makes the team show as online.
    let closed = serde_json::json!({ "business_hours": { "enabled": true, "time_zone": "UTC",
        "days": [[], [], [], [], [], [], []], "out_of_hours_message": "We are closed." } });
    assert_eq!(app.patch_settings(&m, closed).await.status(), 200);
    run_script(
        "notes.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("ENT_ID", m.ent_id.as_str()),
            ("OWNER_EMAIL", m.email.as_str()),
            ("AGENT_EMAIL", ann_email.as_str()),
            ("AGENT_PASSWORD", ann_password.as_str()),
        ],
    )
    .await;
}

/// The pre-chat form: built in Settings, filled in by a visitor, seen by the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prechat_form_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    let m = app.signup("Lumen Store").await;
    run_script(
        "prechat.mjs",
        &chromium,
        &[
            ("APP_URL", app.url.as_str()),
            ("ENT_ID", m.ent_id.as_str()),
            ("OWNER_EMAIL", m.email.as_str()),
            ("OWNER_TOKEN", m.token.as_str()),
        ],
    )
    .await;
}

/// Security journeys: sign-up that proves the address (on a phone, in Chinese), a disabled
/// agent told why, signing another device out from the profile, single sign-on's rules, and
/// what a plan leaves out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_journeys_in_a_real_browser() {
    let Some(chromium) = browser_ready().await else { return };
    let app = spawn_app().await;
    // Before email is on: merchants made at once (one with a disabled agent, one on Starter).
    let lumen = app.signup("Lumen Lighting").await;
    let (agent_id, agent_email, _, agent_password) =
        crate::team::add_agent_with_password(&app, &lumen, "agent").await;
    let res = crate::helpers::client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&lumen.token)
        .json(&serde_json::json!({ "disabled": true }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let starter = app.signup("Harbor Books").await;
    for (m, plan) in [(&starter, "starter"), (&lumen, "business")] {
        sqlx::query("update public.tenants set plan = $2 where ent_id = $1")
            .bind(&m.ent_id)
            .bind(plan)
            .execute(app.pool())
            .await
            .unwrap();
    }
    app.state.tenants.invalidate_all();
    let smtp = crate::smtp_server::SmtpServer::start(crate::smtp_server::Security::Plain).await;
    crate::smtp_server::use_for(&app, &smtp).await;

    let newcomer = crate::helpers::unique_email("newcomer");
    let common = [
        ("APP_URL", app.url.as_str()),
        ("PASSWORD", crate::helpers::PASSWORD),
        ("NEW_EMAIL", newcomer.as_str()),
    ];
    run_script("security.mjs", &chromium, &[&common[..], &[("PHASE", "signup")]].concat()).await;
    kefu::notify::outbox::run_due(&app.state).await.unwrap();
    let mail = smtp.wait_for(1).await[0].clone();
    assert_eq!(mail.to, vec![newcomer.clone()]);
    let (_, text, _) = mail.parsed();
    let start = text.find(&app.url("/signup/confirm/")).expect("the link");
    let confirm_url: String =
        text[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
    run_script(
        "security.mjs",
        &chromium,
        &[
            &common[..],
            &[
                ("PHASE", "rest"),
                ("CONFIRM_URL", confirm_url.as_str()),
                ("AGENT_EMAIL", agent_email.as_str()),
                ("AGENT_PASSWORD", agent_password.as_str()),
                ("OWNER_EMAIL", lumen.email.as_str()),
                ("STARTER_EMAIL", starter.email.as_str()),
            ],
        ]
        .concat(),
    )
    .await;
    let created: i64 =
        sqlx::query_scalar("select count(*) from public.tenants where name = '青柠灯具'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(created, 1, "the link made the workspace, once");
}

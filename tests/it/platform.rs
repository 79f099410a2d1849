//! The super-admin console: its own login with a mandatory second factor, merchant
//! management (suspend end to end, plans, trials, delete, restore, purge, support sessions),
//! announcements pushed live, system settings, exports, and the platform audit log.

use crate::helpers::Fetch;
use std::io::Read as _;

use serde_json::{Value, json};

use crate::{helpers::*, ws_client::Ws};

/// A platform admin signed in through the API (enrolled in TOTP on the way).
pub(crate) struct Admin {
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) secret: String,
    pub(crate) token: String,
    pub(crate) recovery_codes: Vec<String>,
}

/// Creates a platform admin and signs them in through the API, enrolling TOTP on the way.
pub(crate) async fn platform_admin(app: &TestApp) -> Admin {
    let email = unique_email("ops");
    let created = kefu::platform::create_admin(
        app.pool(),
        &kefu::auth::validate::Email::parse(&email).unwrap(),
    )
    .await
    .unwrap();
    let res = client()
        .post(app.url("/api/platform/v1/login"))
        .json(&json!({ "email": email, "password": created.password }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let enrolment = &body["enrolment"];
    let secret = enrolment["secret"].as_str().expect("an enrolment for a new admin").to_owned();
    assert!(enrolment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/kefu:"));
    let code = kefu::auth::totp::current_code(&secret).unwrap();
    let res = client()
        .post(app.url("/api/platform/v1/login/enrol"))
        .json(&json!({ "pending_token": enrolment["pending_token"], "code": code }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let session: Value = res.json().await.unwrap();
    let recovery_codes: Vec<String> = session["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery_codes.len(), 10);
    Admin {
        email,
        password: created.password,
        secret,
        token: session["token"].as_str().unwrap().to_owned(),
        recovery_codes,
    }
}

impl Admin {
    pub(crate) async fn call(
        &self,
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = client().request(method, app.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    pub(crate) async fn post(&self, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
        self.call(app, reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn get(&self, app: &TestApp, path: &str) -> Value {
        let res = self.call(app, reqwest::Method::GET, path, None).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }
}

async fn merchant_id(app: &TestApp, m: &Merchant) -> i64 {
    tenant_id(app.pool(), &m.ent_id).await.0
}

#[tokio::test]
async fn the_console_needs_a_password_and_a_one_time_code() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let login = |body: Value| client().post(app.url("/api/platform/v1/login")).json(&body).send();

    // Enrolled: the password alone is not enough.
    let res = login(json!({ "email": admin.email, "password": admin.password })).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "totp_required");
    let res = login(json!({ "email": admin.email, "password": admin.password, "code": "000000" }))
        .await
        .unwrap();
    assert_eq!(error_code(res).await, "invalid_code");
    // The code used for enrolment cannot be used again (same 30 s step).
    let code = kefu::auth::totp::current_code(&admin.secret).unwrap();
    let res = login(json!({ "email": admin.email, "password": admin.password, "code": code }))
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a replayed code is refused");
    // A recovery code works once (in any case).
    let first = admin.recovery_codes[0].to_uppercase();
    let ok = login(json!({ "email": admin.email, "password": admin.password, "code": first }))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "a recovery code signs in");
    let again = login(json!({ "email": admin.email, "password": admin.password, "code": first }))
        .await
        .unwrap();
    assert_eq!(again.status(), 401, "…once");

    // A merchant owner is not a platform admin, whatever they type.
    let m = app.signup("Not Ops").await;
    let res =
        login(json!({ "email": m.email, "password": PASSWORD, "code": "123456" })).await.unwrap();
    assert_eq!(error_code(res).await, "invalid_credentials");
    // Agent tokens do not open the console; no token, no console.
    let res =
        client().get(app.url("/api/platform/v1/dashboard")).bearer_auth(&m.token).sent().await;
    assert_eq!(res.status(), 401);
    let res = client().get(app.url("/api/platform/v1/merchants")).send().await.unwrap();
    assert_eq!(error_code(res).await, "unauthorized");
    // Console tokens do not open merchant workspaces.
    let res = client().get(app.url("/api/v1/me")).bearer_auth(&admin.token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // An admin whose rights are withdrawn loses the console at once.
    let res = admin.call(&app, reqwest::Method::GET, "/api/platform/v1/dashboard", None).await;
    assert_eq!(res.status(), 200);
    sqlx::query(
        "delete from public.platform_admins where user_id = (select id from public.users where email = $1)",
    )
    .bind(&admin.email)
    .execute(app.pool())
    .await
    .unwrap();
    let res = admin.call(&app, reqwest::Method::GET, "/api/platform/v1/dashboard", None).await;
    assert_eq!(res.status(), 401);
}

/// The browser flow: password, enrolment with a QR code, recovery codes, then the console;
/// pages without a session redirect to the login and come back.
#[tokio::test]
async fn console_pages_sign_in_with_enrolment() {
    let app = spawn_app().await;
    let email = unique_email("ops");
    let created = kefu::platform::create_admin(
        app.pool(),
        &kefu::auth::validate::Email::parse(&email).unwrap(),
    )
    .await
    .unwrap();
    let browser = client();
    let res = browser.get(app.url("/platform/merchants")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/platform/login?next=%2Fplatform%2Fmerchants");

    let csrf = form_csrf(&browser, &app, "/platform/login").await;
    let res = browser
        .post(app.url("/platform/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", &email),
            ("password", "wrong"),
            ("next", ""),
        ])
        .sent()
        .await;
    assert_eq!(res.status(), 401);
    let res = browser
        .post(app.url("/platform/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email.as_str()),
            ("password", created.password.as_str()),
            ("next", "/platform/merchants"),
        ])
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("<svg"), "the enrolment page shows a QR code");
    let marker = "id=\"totp-secret\" class=\"mono\" readonly value=\"";
    let start = html.find(marker).expect("the setup key") + marker.len();
    let secret = html[start..].split('"').next().unwrap().to_owned();

    let res = browser
        .post(app.url("/platform/login/enrol"))
        .form(&[("csrf_token", csrf.as_str()), ("code", "111111"), ("next", "/platform/merchants")])
        .sent()
        .await;
    assert_eq!(res.status(), 401, "a wrong code shows the enrolment again");
    let code = kefu::auth::totp::current_code(&secret).unwrap();
    let res = browser
        .post(app.url("/platform/login/enrol"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("code", code.as_str()),
            ("next", "/platform/merchants"),
        ])
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(html.matches("<li>").count(), 10, "ten recovery codes are shown once");
    assert!(
        html.contains("href=\"/platform/merchants\""),
        "then back to where the admin was going"
    );

    for page in [
        "/platform",
        "/platform/merchants",
        "/platform/announcements",
        "/platform/settings",
        "/platform/audit",
    ] {
        let res = browser.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
    }
    let res = browser.get(app.url("/platform/login")).send().await.unwrap();
    assert_eq!(res.status(), 303, "a signed-in admin skips the login");
    // The audit log recorded the sign-in.
    let logins: i64 = sqlx::query_scalar(
        "select count(*) from public.platform_audit where action = 'platform.login' and actor_email = $1",
    )
    .bind(&email)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(logins, 1);
}

#[tokio::test]
async fn suspending_a_merchant_closes_its_sockets_and_pauses_everything() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Paused Shop").await;
    let other = app.signup("Busy Shop").await;
    let id = merchant_id(&app, &m).await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    agent.expect("hello").await;
    let visitor = crate::ws_client::visitor_session(&app, &m.ent_id).await;
    let mut visitor_ws = Ws::visitor(&app, &visitor.token, "").await;
    visitor_ws.expect("hello").await;
    let mut bystander = Ws::agent(&app, &other.token, "").await;
    bystander.expect("hello").await;

    let res = admin
        .post(
            &app,
            &format!("/api/platform/v1/merchants/{id}/suspend"),
            json!({ "reason": "unpaid" }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "suspended");
    for ws in [&mut agent, &mut visitor_ws] {
        let notice = ws.expect_where("a suspension notice", |f| f["type"] == "notice").await;
        assert_eq!(notice["code"], "tenant_suspended");
        assert_eq!(ws.expect_close().await, 4004);
    }
    // Everything else answers "paused".
    let res = app.get_as(&m, "/api/v1/me").await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "tenant_suspended");
    let page = client()
        .get(app.url(&format!("/chatIndex?ent_id={}", m.ent_id)))
        .header("accept", "text/html")
        .sent()
        .await;
    let html = page.text().await.unwrap();
    assert!(html.contains("Service paused"), "the visitor page says the service is paused");
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        Ws::connect(&crate::ws_client::ws_url(
            &app,
            &format!("/ws/agent?ticket=x&ent_id={}", m.ent_id)
        ))
        .await
        .is_err(),
        "no new sockets"
    );
    // Other merchants are untouched.
    bystander.send(json!({ "type": "ping" })).await;
    bystander.expect("pong").await;
    // Suspending twice is a conflict; resuming brings it back.
    let again =
        admin.post(&app, &format!("/api/platform/v1/merchants/{id}/suspend"), json!({})).await;
    assert_eq!(again.status(), 409);
    let res = admin.post(&app, &format!("/api/platform/v1/merchants/{id}/resume"), json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_as(&m, "/api/v1/me").await.status(), 200);
    let mut back = Ws::agent(&app, &m.token, "").await;
    back.expect("hello").await;

    let audit = admin.get(&app, &format!("/api/platform/v1/audit?tenant_id={id}")).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["merchant.resume", "merchant.suspend"]);
    assert_eq!(audit["entries"][1]["detail"]["reason"], "unpaid");
}

#[tokio::test]
async fn published_announcements_reach_connected_agents_of_their_audience() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let trial = app.signup("Trial Shop").await;
    let pro = app.signup("Pro Shop").await;
    sqlx::query("update public.tenants set plan = 'pro' where ent_id = $1")
        .bind(&pro.ent_id)
        .execute(app.pool())
        .await
        .unwrap();
    app.state.tenants.invalidate_all();
    let mut trial_ws = Ws::agent(&app, &trial.token, "").await;
    trial_ws.expect("hello").await;
    let mut pro_ws = Ws::agent(&app, &pro.token, "").await;
    pro_ws.expect("hello").await;

    // Bad input is refused field by field.
    let res = admin
        .post(&app, "/api/platform/v1/announcements", json!({ "title": "", "body": "x" }))
        .await;
    assert_eq!(res.status(), 422);
    let res = admin
        .post(
            &app,
            "/api/platform/v1/announcements",
            json!({ "title": "T", "body": "x", "plans": ["gold"] }),
        )
        .await;
    assert_eq!(error_code(res).await, "validation_failed");

    // A draft reaches nobody; publishing it to the pro plan reaches the pro merchant only.
    let res = admin
        .post(
            &app,
            "/api/platform/v1/announcements",
            json!({ "title": "New reports", "body": "CSAT is here.", "plans": ["pro"] }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let res =
        admin.post(&app, &format!("/api/platform/v1/announcements/{id}/publish"), json!({})).await;
    assert_eq!(res.status(), 200);
    let frame = pro_ws.expect("announcement").await;
    assert_eq!(frame["event"], "published");
    assert_eq!(frame["announcement"]["title"], "New reports");
    let listed = app.get_as(&pro, "/api/v1/announcements").await.json::<Value>().await.unwrap();
    assert_eq!(listed["announcements"][0]["id"], id);
    let listed = app.get_as(&trial, "/api/v1/announcements").await.json::<Value>().await.unwrap();
    assert_eq!(listed["announcements"].as_array().unwrap().len(), 0, "not for the trial plan");

    // Everyone: the trial merchant hears this one (and nothing before it).
    let res = admin
        .post(
            &app,
            "/api/platform/v1/announcements",
            json!({ "title": "Maintenance", "body": "Sunday 02:00 UTC", "publish": true }),
        )
        .await;
    let everyone = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let frame = trial_ws.expect("announcement").await;
    assert_eq!(frame["announcement"]["id"], everyone);

    // Dismissed: gone from this person's list, on every device.
    let res = client()
        .post(app.url(&format!("/api/v1/announcements/{everyone}/dismiss")))
        .bearer_auth(&trial.token)
        .sent()
        .await;
    assert_eq!(res.status(), 204);
    let listed = app.get_as(&trial, "/api/v1/announcements").await.json::<Value>().await.unwrap();
    assert!(listed["announcements"].as_array().unwrap().is_empty());
    let home = client()
        .get(app.url("/app"))
        .header("cookie", format!("kefu_session={}", trial.token))
        .text_body()
        .await;
    assert!(!home.contains("Sunday 02:00 UTC"), "a dismissed announcement stays hidden");

    // Unpublishing withdraws it from screens.
    let res = admin
        .post(&app, &format!("/api/platform/v1/announcements/{id}/unpublish"), json!({}))
        .await;
    assert_eq!(res.status(), 200);
    // (The pro merchant heard the announcement for everyone too.)
    let frame = pro_ws.expect("announcement").await;
    assert_eq!(
        (frame["event"].as_str(), frame["announcement"]["id"].as_i64()),
        (Some("published"), Some(everyone))
    );
    let frame = pro_ws.expect("announcement").await;
    assert_eq!(
        (frame["event"].as_str(), frame["announcement"]["id"].as_i64()),
        (Some("withdrawn"), Some(id))
    );
    let all = admin.get(&app, "/api/platform/v1/announcements").await;
    assert_eq!(all["announcements"].as_array().unwrap().len(), 2);
}

/// Reads a .tar.gz into (path, bytes) pairs.
fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

#[tokio::test]
async fn an_export_holds_exactly_that_merchants_data() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let mut archives = Vec::new();
    for (name, marker) in [("Export A", "marker-of-A-7f3a"), ("Export B", "marker-of-B-91c2")] {
        let m = app.signup(name).await;
        let visitor = crate::ws_client::visitor_session(&app, &m.ent_id).await;
        let mut ws = Ws::visitor(&app, &visitor.token, "").await;
        ws.send_text(marker, marker, None).await;
        ws.expect("ack").await;
        let upload = client()
            .post(app.url("/api/v1/uploads"))
            .bearer_auth(&m.token)
            .multipart(crate::isolation::image_file())
            .sent()
            .await;
        assert_eq!(upload.status(), 201);
        let upload_id = upload.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        archives.push((m, marker, upload_id));
    }
    let (a, a_marker, a_upload) = &archives[0];
    let (b, b_marker, b_upload) = &archives[1];
    let id = merchant_id(&app, a).await;
    let res = admin
        .call(&app, reqwest::Method::GET, &format!("/api/platform/v1/merchants/{id}/export"), None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains(&a.ent_id));
    let files = untar(&res.bytes().await.unwrap());
    let root = format!("kefu-export-{}/", a.ent_id);
    assert!(files.iter().all(|(p, _)| p.starts_with(&root)), "one folder per export");
    let find = |suffix: &str| {
        files
            .iter()
            .find(|(p, _)| p.ends_with(suffix))
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
    };
    let messages = find("tables/messages.csv").expect("the messages table");
    assert!(messages.starts_with("id,"), "CSV with a header row");
    assert!(messages.contains(a_marker));
    for table in ["agents", "visitors", "conversations", "uploads", "audit_log"] {
        assert!(find(&format!("tables/{table}.csv")).is_some(), "{table}.csv");
    }
    let members = find("platform/members.csv").unwrap();
    assert!(members.contains(&a.email) && !members.contains(&b.email));
    let manifest: Value = serde_json::from_str(&find("manifest.json").unwrap()).unwrap();
    assert_eq!(manifest["merchant"]["ent_id"], a.ent_id);
    assert!(files.iter().any(|(p, _)| p.ends_with(&format!("uploads/{a_upload}"))), "A's upload");
    // Nothing of B anywhere.
    for (path, data) in &files {
        let text = String::from_utf8_lossy(data);
        assert!(
            !text.contains(*b_marker)
                && !text.contains(&b.ent_id)
                && !path.contains(b_upload.as_str()),
            "{path} holds B's data"
        );
    }
    let res = admin
        .call(&app, reqwest::Method::GET, "/api/platform/v1/merchants/999999999/export", None)
        .await;
    assert_eq!(res.status(), 404);
    let res =
        admin.call(&app, reqwest::Method::GET, "/api/platform/v1/merchants/abc/export", None).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn deleted_merchants_can_be_restored_then_are_purged() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Leaving Shop").await;
    let keep = app.signup("Staying Shop").await;
    let id = merchant_id(&app, &m).await;
    let visitor = crate::ws_client::visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &visitor.token, "").await;
    ws.send_text("bye", "bye", None).await;
    ws.expect("ack").await;
    let upload = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .multipart(crate::isolation::image_file())
        .sent()
        .await;
    assert_eq!(upload.status(), 201);
    let objects = app.state.storage.tenant_objects(tenants::TenantId(id)).await.unwrap();
    assert!(!objects.is_empty());

    // Soft delete: gone for everyone, restorable.
    let res = admin.post(&app, &format!("/api/platform/v1/merchants/{id}/delete"), json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "deleted");
    assert!(body["purge_after"].is_string());
    assert_eq!(ws.expect_close().await, 4004);
    let page =
        client().get(app.url(&format!("/chatIndex?ent_id={}", m.ent_id))).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert_eq!(app.get_as(&m, "/api/v1/me").await.status(), 401);
    let res =
        admin.post(&app, &format!("/api/platform/v1/merchants/{id}/restore"), json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_as(&m, "/api/v1/me").await.status(), 200);

    // The purge job leaves it alone during the grace period…
    admin.post(&app, &format!("/api/platform/v1/merchants/{id}/delete"), json!({})).await;
    let purged =
        kefu::platform::lifecycle::purge_due(app.pool(), &app.state.storage).await.unwrap();
    assert_eq!(purged, 0);
    // …and removes everything once it is over.
    sqlx::query(
        "update public.tenants set purge_after = now() - interval '1 minute' where id = $1",
    )
    .bind(id)
    .execute(app.pool())
    .await
    .unwrap();
    let purged =
        kefu::platform::lifecycle::purge_due(app.pool(), &app.state.storage).await.unwrap();
    assert_eq!(purged, 1);
    let schema: Option<String> =
        sqlx::query_scalar("select nspname::text from pg_namespace where nspname = $1")
            .bind(tenants::schema_name(tenants::TenantId(id)))
            .fetch_optional(app.pool())
            .await
            .unwrap();
    assert_eq!(schema, None, "the schema is dropped");
    let users: i64 = sqlx::query_scalar("select count(*) from public.users where email = $1")
        .bind(&m.email)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 0, "accounts left without a workspace go too");
    assert!(app.state.storage.tenant_objects(tenants::TenantId(id)).await.unwrap().is_empty());
    assert_eq!(app.get_as(&keep, "/api/v1/me").await.status(), 200, "others are untouched");
    let res = admin
        .call(&app, reqwest::Method::GET, &format!("/api/platform/v1/merchants/{id}"), None)
        .await;
    assert_eq!(res.status(), 404);
    // The audit trail outlives the merchant.
    let audit = admin.get(&app, &format!("/api/platform/v1/audit?tenant_id={id}")).await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3);

    // A hard delete needs the ent_id typed again.
    let kid = merchant_id(&app, &keep).await;
    let res = admin
        .post(&app, &format!("/api/platform/v1/merchants/{kid}/delete"), json!({ "hard": true }))
        .await;
    assert_eq!(res.status(), 422);
    let res = admin
        .post(
            &app,
            &format!("/api/platform/v1/merchants/{kid}/delete"),
            json!({ "hard": true, "confirm": "nope" }),
        )
        .await;
    assert_eq!(error_code(res).await, "validation_failed");
    assert_eq!(app.get_as(&keep, "/api/v1/me").await.status(), 200);
    let res = admin
        .post(
            &app,
            &format!("/api/platform/v1/merchants/{kid}/delete"),
            json!({ "hard": true, "confirm": keep.ent_id }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let left: i64 = sqlx::query_scalar("select count(*) from public.tenants where id = $1")
        .bind(kid)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn merchants_are_listed_managed_and_supported() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let alpha = app.signup("Alpha Lamps").await;
    let beta = app.signup("Beta Books").await;
    let alpha_id = merchant_id(&app, &alpha).await;

    let list = admin.get(&app, "/api/platform/v1/merchants?q=lamps").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["merchants"][0]["ent_id"], alpha.ent_id);
    let by_email = admin.get(&app, &format!("/api/platform/v1/merchants?q={}", beta.email)).await;
    assert_eq!(by_email["merchants"][0]["ent_id"], beta.ent_id);
    let res = admin
        .call(&app, reqwest::Method::GET, "/api/platform/v1/merchants?status=sleeping", None)
        .await;
    assert_eq!(res.status(), 422);

    // Plans and trials.
    let res = admin
        .post(
            &app,
            &format!("/api/platform/v1/merchants/{alpha_id}/plan"),
            json!({ "plan": "gold" }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = admin
        .post(&app, &format!("/api/platform/v1/merchants/{alpha_id}/trial"), json!({ "days": 0 }))
        .await;
    assert_eq!(res.status(), 422);
    let before = admin.get(&app, &format!("/api/platform/v1/merchants/{alpha_id}")).await;
    let res = admin
        .post(&app, &format!("/api/platform/v1/merchants/{alpha_id}/trial"), json!({ "days": 10 }))
        .await;
    assert_eq!(res.status(), 200);
    let after: Value = res.json().await.unwrap();
    let ends = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["trial_ends_at"].as_str().unwrap()).unwrap()
    };
    assert_eq!((ends(&after) - ends(&before)).num_days(), 10);
    let res = admin
        .post(
            &app,
            &format!("/api/platform/v1/merchants/{alpha_id}/plan"),
            json!({ "plan": "pro" }),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["plan"], "pro");
    let res = admin
        .post(&app, &format!("/api/platform/v1/merchants/{alpha_id}/trial"), json!({ "days": 5 }))
        .await;
    assert_eq!(res.status(), 409, "no trial to extend on a paid plan");
    let pro = admin.get(&app, "/api/platform/v1/merchants?plan=pro").await;
    assert_eq!(pro["total"], 1);

    // Detail: usage counted by the chat itself.
    let visitor = crate::ws_client::visitor_session(&app, &alpha.ent_id).await;
    let mut ws = Ws::visitor(&app, &visitor.token, "").await;
    for i in 0..3 {
        ws.send_text(&format!("m{i}"), "hi", None).await;
    }
    // Nobody is online, so the first message also brings the offline notice, stored by the
    // automation after the sender's ack: wait for it (it is pushed once stored) as well as
    // for the acks, in whatever order they come, before counting.
    let (mut acks, mut noticed) = (0, false);
    while acks < 3 || !noticed {
        let frame = ws.next().await.expect("the acks and the offline notice");
        match frame["type"].as_str() {
            Some("ack") => acks += 1,
            Some("notice") => noticed = frame["code"] == "offline",
            _ => {}
        }
    }
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from {}.messages",
        tenants::schema_name(tenants::TenantId(alpha_id))
    )))
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(stored, 4, "the visitor's three messages and the offline notice");
    let detail = admin.get(&app, &format!("/api/platform/v1/merchants/{alpha_id}")).await;
    assert_eq!(detail["usage"]["messages_today"], stored, "counted as they are stored");
    assert_eq!(detail["usage"]["conversations_month"], 1);
    assert_eq!(detail["usage"]["visitors_online"], 1);
    assert_eq!(detail["agents"][0]["role"], "owner");
    let dashboard = admin.get(&app, "/api/platform/v1/dashboard").await;
    assert_eq!(dashboard["merchants"]["total"], 2);
    assert_eq!(dashboard["messages_today"], stored);
    assert_eq!(dashboard["days"].as_array().unwrap().len(), 14);

    // A support session: the owner's workspace, a banner, and both audit logs say who.
    let browser = client();
    let res = browser
        .post(app.url(&format!("/api/platform/v1/merchants/{alpha_id}/impersonate")))
        .bearer_auth(&admin.token)
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let me = client()
        .get(app.url("/api/v1/me"))
        .bearer_auth(body["token"].as_str().unwrap())
        .sent()
        .await;
    assert_eq!(me.status(), 200);
    // What a support session may not do: leave an API token behind (it would outlive the
    // hour), or change the owner's sign-in.
    let support = body["token"].as_str().unwrap();
    let res = client()
        .post(app.url("/api/v1/api_tokens"))
        .bearer_auth(support)
        .json(&json!({ "name": "left behind", "scope": "write" }))
        .sent()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "support_session");
    let res = client()
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(support)
        .json(&json!({ "current_password": PASSWORD, "new_password": "a much better passphrase" }))
        .sent()
        .await;
    assert_eq!(error_code(res).await, "support_session");
    let home = browser.get(app.url("/app")).text_body().await;
    assert!(
        home.contains("support-banner") && home.contains(&admin.email),
        "the banner names the admin"
    );
    let audit = app.get_as(&alpha, "/api/v1/audit").await.json::<Value>().await.unwrap();
    assert_eq!(audit["entries"][0]["action"], "support.session");
    assert!(audit["entries"][0]["agent_name"].as_str().unwrap().contains(&admin.email));
    let platform_audit = admin.get(&app, "/api/platform/v1/audit?q=impersonate").await;
    assert_eq!(platform_audit["entries"][0]["tenant_id"], alpha_id);
    // Another merchant's owner never sees the banner.
    let beta_home = app.get_as(&beta, "/app").await.text().await.unwrap();
    assert!(!beta_home.contains("support-banner"));

    // Unknown ids are 404 everywhere.
    for path in [
        "/api/platform/v1/merchants/0",
        "/api/platform/v1/merchants/-4",
        "/api/platform/v1/merchants/x",
    ] {
        let res = admin.call(&app, reqwest::Method::GET, path, None).await;
        assert_eq!(res.status(), 404, "{path}");
    }
    let res = admin.post(&app, "/api/platform/v1/merchants/123456789/suspend", json!({})).await;
    assert_eq!(res.status(), 404);
    let res = client()
        .post(app.url(&format!("/api/platform/v1/merchants/{alpha_id}/plan")))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body("{not json")
        .sent()
        .await;
    assert_eq!(error_code(res).await, "malformed_json");
}

#[tokio::test]
async fn system_settings_change_the_site() {
    let app = spawn_app().await;
    let merchant = app.signup("Titled Shop").await;
    let admin = platform_admin(&app).await;
    let put = |body: Value| {
        admin.call(&app, reqwest::Method::PUT, "/api/platform/v1/settings", Some(body))
    };
    let mut doc = json!({
        "site_title": "Acme Support",
        "site_keywords": "help desk",
        "site_description": "Talk to Acme.",
        "copyright": "© 2026 Acme Ltd.",
        "signup_open": false,
        "default_lang": "zh-CN",
        "smtp": { "host": "smtp.acme.test", "port": 2525, "username": "mailer", "password": "s3cret", "from": "help@acme.test", "security": "starttls" }
    });
    for (field, bad) in [("default_lang", json!("fr")), ("site_title", json!(""))] {
        let mut wrong = doc.clone();
        wrong[field] = bad;
        let res = put(wrong).await;
        assert_eq!(res.status(), 422, "{field}");
    }
    let mut wrong = doc.clone();
    wrong["smtp"]["from"] = json!("not an address");
    assert_eq!(put(wrong).await.status(), 422);

    let res = put(doc.clone()).await;
    assert_eq!(res.status(), 200);
    let shown = admin.get(&app, "/api/platform/v1/settings").await;
    assert_eq!(shown["site_title"], "Acme Support");
    assert_eq!(shown["smtp"]["password"], Value::Null, "the password is write-only");
    assert_eq!(shown["smtp"]["password_set"], true);
    // Leaving the password out keeps it.
    doc["smtp"].as_object_mut().unwrap().remove("password");
    doc["site_title"] = json!("Acme Help");
    assert_eq!(put(doc).await.status(), 200);
    let stored: Value =
        sqlx::query_scalar("select value from public.system_settings where key = 'smtp'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(stored["password"], "s3cret");

    // The site follows: title, copyright, default language, closed sign-up.
    let landing = client().get(app.url("/")).text_body().await;
    assert!(landing.contains("<title>Acme Help"));
    assert!(landing.contains("© 2026 Acme Ltd."));
    assert!(landing.contains("<span>Acme Help</span>"), "the brand is the site's title");
    assert!(!landing.contains(r#"href="/signup""#), "closed sign-up is offered nowhere");
    // Every page a merchant or visitor sees carries the site's name, not kefu's.
    let login = client().get(app.url("/login")).text_body().await;
    assert!(login.contains("Acme Help</title>") && !login.contains("kefu<"), "{login}");
    for page in ["/app", "/app/contacts", "/app/conversations"] {
        let html = app.get_as(&merchant, page).await.text().await.unwrap();
        assert!(html.contains(r#"<span class="name-text">Acme Help</span>"#), "{page}");
    }
    let missing = client().get(app.url("/no-such-page")).text_body().await;
    assert!(!missing.contains("· kefu"), "{missing}");
    assert!(landing.contains("<html lang=\"zh-CN\">"), "the default language applies");
    let english = client().get(app.url("/")).header("accept-language", "en").send().await.unwrap();
    assert!(
        english.text().await.unwrap().contains("<html lang=\"en\">"),
        "a browser's choice wins"
    );
    let res = client()
        .post(app.url("/api/v1/signup"))
        .json(&json!({ "company": "Late", "email": unique_email("late"), "password": PASSWORD }))
        .sent()
        .await;
    assert_eq!(error_code(res).await, "signup_closed");
    let audit = admin.get(&app, "/api/platform/v1/audit?q=system").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
}

/// Driven by the route table: every console route other than the login itself refuses a
/// request without a console session, and a merchant's token (pages redirect to the login).
#[tokio::test]
async fn every_console_route_needs_a_console_session() {
    let app = spawn_app().await;
    let m = app.signup("Curious Owner").await;
    let routes = kefu::startup::routes(&app.state.config);
    let open =
        ["/platform/login", "/platform/login/code", "/platform/login/enrol", "/platform/logout"];
    let mut checked = 0;
    for route in routes.table().iter().filter(|r| r.scope == kefu::http::Scope::Platform) {
        if open.contains(&route.path) || route.path.starts_with("/api/platform/v1/login") {
            continue;
        }
        let path = route.path.replace("{id}", "1");
        for token in [None, Some(m.token.as_str())] {
            let mut req = client().request(route.method.clone(), app.url(&path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let res = req.json(&json!({})).send().await.unwrap();
            if path.starts_with("/api/") {
                assert_eq!(res.status(), 401, "{} {path} with {token:?}", route.method);
            } else {
                assert_eq!(res.status(), 303, "{} {path}", route.method);
                let location = res.headers()["location"].to_str().unwrap();
                assert!(location.starts_with("/platform/login?next="), "{location}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked} console routes checked");
}

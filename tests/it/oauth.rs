//! Signing in with an outside identity provider, end to end: a real OpenID Connect provider
//! (`oidc-provider` from npm, run by `tests/oidc/server.mjs`) and a local server speaking
//! GitHub's OAuth protocol and REST API. The browser is a cookie-keeping HTTP client that
//! follows the redirects itself and fills in the provider's sign-in form.
//!
//! Needs Node.js (`npm ci` in `tests/oidc` is run here when its packages are missing).
//! Without it the OpenID Connect test says so and passes, unless `KEFU_REQUIRE_OIDC=1`
//! (`.ci/run` sets it).

use crate::helpers::Fetch;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::{
    helpers::*,
    platform::{Admin, platform_admin},
};

pub(crate) const CLIENT_ID: &str = "kefu-test";
pub(crate) const CLIENT_SECRET: &str = "a-client-secret-of-the-test-provider";

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The provider process (killed when dropped) and its issuer URL.
pub(crate) struct Idp {
    pub(crate) issuer: String,
    _child: tokio::process::Child,
}

/// Starts the OpenID Connect provider for a client whose callback is `redirect_uri`;
/// `None` when Node.js is missing (and that is allowed).
pub(crate) async fn spawn_idp(redirect_uri: &str) -> Option<Idp> {
    let node = std::process::Command::new("node").arg("--version").output();
    if node.is_err() {
        assert!(
            std::env::var("KEFU_REQUIRE_OIDC").as_deref() != Ok("1"),
            "KEFU_REQUIRE_OIDC=1 but Node.js is missing (apt-get install nodejs npm)"
        );
        eprintln!("SKIPPED: no Node.js on this machine (apt-get install nodejs npm)");
        return None;
    }
    tokio::task::spawn_blocking(|| npm_ci(&oidc_dir(), "oidc-provider")).await.unwrap();
    let mut child = tokio::process::Command::new("node")
        .arg(oidc_dir().join("server.mjs"))
        .env("PORT", "0")
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", redirect_uri)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("listening ") {
                return issuer.to_owned();
            }
        }
        panic!("the provider exited before listening");
    })
    .await
    .expect("the provider starts within 30 s");
    // Keep reading: a closed pipe would kill the provider at its next line of output.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(Idp { issuer, _child: child })
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("{} without a Location", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Where kefu sends the browser (its answer must be a redirect).
async fn sent_to(res: reqwest::Response) -> String {
    if !res.status().is_redirection() {
        panic!("kefu sends the browser away: {} {}", res.status(), res.text().await.unwrap());
    }
    location(&res)
}

/// Goes through the provider from `start` (where kefu sent the browser): follows the
/// provider's redirects, signs in there as `login`, and returns kefu's answer to the
/// callback (without following it).
async fn through_provider(
    browser: &reqwest::Client,
    app: &TestApp,
    start: String,
    login: &str,
) -> reqwest::Response {
    let mut url = url::Url::parse(&start).unwrap();
    for _ in 0..12 {
        if url.as_str().starts_with(&app.url) {
            return browser.get(url.as_str()).send().await.unwrap();
        }
        let res = browser.get(url.as_str()).send().await.unwrap();
        if res.status().is_redirection() {
            url = url.join(&location(&res)).unwrap();
            continue;
        }
        assert_eq!(res.status(), 200, "the provider's page at {url}");
        let html = res.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a sign-in form at {url}: {html}"));
        let submit = url.join(action).unwrap();
        let res = browser
            .post(submit.as_str())
            .form(&[("prompt", "login"), ("login", login), ("password", "anything")])
            .sent()
            .await;
        assert!(res.status().is_redirection(), "the provider accepts the sign-in");
        url = submit.join(&location(&res)).unwrap();
    }
    panic!("too many redirects");
}

/// Starts a sign-in at kefu (`GET /auth/oauth/<slug>?next=…`) and completes it at the
/// provider as `login`.
async fn sign_in(
    browser: &reqwest::Client,
    app: &TestApp,
    slug: &str,
    login: &str,
) -> reqwest::Response {
    let res = browser.get(app.url(&format!("/auth/oauth/{slug}?next=/app/settings"))).sent().await;
    through_provider(browser, app, sent_to(res).await, login).await
}

/// Starts linking `slug` from the signed-in browser's profile, as its page does (a JSON call
/// with the CSRF header), and returns where it says to go.
async fn link(browser: &reqwest::Client, app: &TestApp, slug: &str) -> String {
    let csrf = form_csrf(browser, app, "/app").await;
    let res = browser
        .post(app.url(&format!("/auth/oauth/{slug}/link")))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "next": "/app" }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["redirect"].as_str().unwrap().to_owned()
}

async fn create_provider(app: &TestApp, admin: &Admin, body: Value) -> reqwest::Response {
    admin.post(app, "/api/platform/v1/identity_providers", body).await
}

pub(crate) async fn confirm_email(app: &TestApp, email: &str) {
    sqlx::query("update public.users set email_verified_at = now() where lower(email) = lower($1)")
        .bind(email)
        .execute(app.pool())
        .await
        .unwrap();
}

async fn identities_of(app: &TestApp, email: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "select i.subject, i.email from public.user_identities i
         join public.users u on u.id = i.user_id where lower(u.email) = lower($1)
         order by i.subject",
    )
    .bind(email)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

/// Whether the browser now holds a working agent session (its cookie).
async fn signed_in_as(browser: &reqwest::Client, app: &TestApp) -> Option<String> {
    let res = browser.get(app.url("/api/v1/me")).send().await.unwrap();
    if res.status() != 200 {
        return None;
    }
    let me: Value = res.json().await.unwrap();
    me["user"]["email"].as_str().map(str::to_owned)
}

async fn page_says(res: reqwest::Response, status: u16, text: &str) {
    assert_eq!(res.status(), status, "the page's status");
    let html = res.text().await.unwrap();
    assert!(html.contains(text), "the page says {text:?}:\n{html}");
}

#[tokio::test]
async fn openid_connect_sign_in_links_only_through_verified_addresses() {
    let app = spawn_app().await;
    let Some(idp) = spawn_idp(&app.url("/auth/oauth/corp/callback")).await else {
        return;
    };
    let admin = platform_admin(&app).await;

    // Configuring: bad input is refused field by field, the secret is never shown.
    for (body, field) in [
        (json!({"kind": "saml", "name": "X", "client_id": "c", "client_secret": "s"}), "kind"),
        (json!({"kind": "oidc", "name": "X", "client_id": "c", "client_secret": "s"}), "issuer"),
        (
            json!({"kind": "oidc", "name": "X", "issuer": "http://idp.example.com", "client_id": "c", "client_secret": "s"}),
            "issuer",
        ),
        (
            json!({"kind": "oidc", "name": "X", "issuer": "http://127.0.0.1:1", "client_id": "c", "client_secret": "s"}),
            "issuer",
        ),
        (
            json!({"kind": "oidc", "name": "X", "slug": "Bad/Slug", "issuer": idp.issuer, "client_id": "c", "client_secret": "s"}),
            "slug",
        ),
        (
            json!({"kind": "oidc", "name": "X", "issuer": idp.issuer, "client_id": "c"}),
            "client_secret",
        ),
        (json!({"kind": "github", "name": "", "client_id": "c", "client_secret": "s"}), "name"),
    ] {
        let res = create_provider(&app, &admin, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["fields"][field].is_string(), "{body} → {err}");
    }
    let res = create_provider(&app, &admin, json!(["not", "an", "object"])).await;
    assert_eq!(res.status(), 422);
    let res = create_provider(
        &app,
        &admin,
        json!({"kind": "oidc", "name": "Corp SSO", "slug": "corp", "issuer": idp.issuer,
               "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["client_secret_set"], true);
    assert_eq!(created["redirect_uri"], app.url("/auth/oauth/corp/callback"));
    let listed = admin.get(&app, "/api/platform/v1/identity_providers").await;
    assert!(!listed.to_string().contains(CLIENT_SECRET), "the secret is write-only");
    let res = create_provider(
        &app,
        &admin,
        json!({"kind": "oidc", "name": "Corp again", "slug": "corp", "issuer": idp.issuer,
               "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
    )
    .await;
    assert_eq!(error_code(res).await, "slug_taken");

    // The login page offers it.
    let html = client().get(app.url("/login")).text_body().await;
    assert!(html.contains("href=\"/auth/oauth/corp\"") && html.contains("Continue with Corp SSO"));

    // A merchant whose owner never confirmed the address: the provider vouching for the
    // address is not enough (someone else could have registered it first).
    let a = app.signup("Alpha Shop").await;
    let browser = client();
    let res = sign_in(&browser, &app, "corp", &a.email).await;
    page_says(res, 403, "has not confirmed its email address").await;
    assert!(identities_of(&app, &a.email).await.is_empty());
    assert_eq!(signed_in_as(&browser, &app).await, None);

    // Once confirmed, the verified address links and signs in, back to where it started.
    confirm_email(&app, &a.email).await;
    let res = sign_in(&browser, &app, "corp", &a.email).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/app/settings");
    assert!(signed_in_as(&browser, &app).await.is_some(), "the session cookie works");
    assert_eq!(identities_of(&app, &a.email).await, vec![(a.email.clone(), a.email.clone())]);

    // An address the provider does not vouch for, or none at all, never links.
    for (login, says) in [
        (format!("unverified:{}", a.email), "did not confirm an email address"),
        ("noemail:someone".to_owned(), "did not confirm an email address"),
        ("stranger@example.test".to_owned(), "No kefu account uses stranger@example.test"),
    ] {
        let fresh = client();
        let res = sign_in(&fresh, &app, "corp", &login).await;
        page_says(res, 403, says).await;
        assert_eq!(signed_in_as(&fresh, &app).await, None, "{login}");
    }

    // The state: a callback the browser did not start, a replayed one, or one that comes
    // back as a refusal does nothing.
    let fresh = client();
    let res = fresh.get(app.url("/auth/oauth/corp")).send().await.unwrap();
    let authorize = url::Url::parse(&location(&res)).unwrap();
    let state: String =
        authorize.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).unwrap();
    assert!(authorize.query_pairs().any(|(k, v)| k == "code_challenge_method" && v == "S256"));
    assert!(authorize.query_pairs().any(|(k, _)| k == "nonce"));
    let stranger = client();
    let res = stranger
        .get(app.url(&format!("/auth/oauth/corp/callback?code=x&state={state}")))
        .sent()
        .await;
    page_says(res, 400, "started in another browser").await;
    let res =
        fresh.get(app.url("/auth/oauth/corp/callback?code=x&state=not-the-state")).sent().await;
    page_says(res, 400, "started in another browser").await;
    let res = fresh.get(app.url("/auth/oauth/corp")).send().await.unwrap();
    let state: String = url::Url::parse(&location(&res))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let res = fresh
        .get(app.url(&format!("/auth/oauth/corp/callback?error=access_denied&state={state}")))
        .sent()
        .await;
    page_says(res, 403, "was cancelled at Corp SSO").await;
    let replay = client();
    let res = replay.get(app.url("/auth/oauth/corp")).send().await.unwrap();
    let res = through_provider(&replay, &app, sent_to(res).await, &a.email).await;
    assert_eq!(res.status(), 303);
    let callback_url = res.url().clone();
    let again = replay.get(callback_url).send().await.unwrap();
    page_says(again, 400, "started in another browser").await;
    for junk in
        ["/auth/oauth/corp/callback", "/auth/oauth/corp/callback?state=&code=", "/auth/oauth/nope"]
    {
        let res = client().get(app.url(junk)).header("accept", "text/html").send().await.unwrap();
        assert!(res.status().is_client_error(), "{junk}: {}", res.status());
    }

    // Linking from the profile: any provider account, whatever its address, becomes the
    // signed-in user's way in; then it signs in by subject alone.
    let b = app.signup("Beta Shop").await;
    let b_browser = client();
    let res = form_login(&b_browser, &app, &b.email, &[]).await;
    assert_eq!(res.status(), 303);
    let res = link(&b_browser, &app, "corp").await;
    let res = through_provider(&b_browser, &app, res, "b-at-work@corp.test").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/app");
    let mine = b_browser.get(app.url("/api/v1/me/identities")).send().await.unwrap();
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(mine[0]["slug"], "corp");
    assert_eq!(mine[0]["linked"], true);
    assert_eq!(mine[0]["email"], "b-at-work@corp.test");
    let fresh = client();
    let res = sign_in(&fresh, &app, "corp", "b-at-work@corp.test").await;
    assert_eq!(res.status(), 303, "a linked account signs in");
    assert_eq!(signed_in_as(&fresh, &app).await, signed_in_as(&b_browser, &app).await);
    // Without the CSRF token a cookie session does not start a link.
    let res =
        b_browser.post(app.url("/auth/oauth/corp/link")).json(&json!({})).send().await.unwrap();
    assert_eq!(error_code(res).await, "csrf_failed");

    // Someone else cannot take over a linked provider account by linking it too.
    let a_browser = client();
    form_login(&a_browser, &app, &a.email, &[]).await;
    let res = link(&a_browser, &app, "corp").await;
    let res = through_provider(&a_browser, &app, res, "b-at-work@corp.test").await;
    page_says(res, 409, "already linked to another kefu user").await;

    // Unlinking ends that way in (and is idempotent).
    for _ in 0..2 {
        let res = client()
            .delete(app.url("/api/v1/me/identities/corp"))
            .bearer_auth(&b.token)
            .sent()
            .await;
        assert_eq!(res.status(), 204);
    }
    let res = sign_in(&client(), &app, "corp", "b-at-work@corp.test").await;
    page_says(res, 403, "No kefu account uses b-at-work@corp.test").await;

    // A user with a second factor still gives it.
    sqlx::query(
        "update public.users set totp_secret = 'JBSWY3DPEHPK3PXP', totp_enabled_at = now()
         where lower(email) = lower($1)",
    )
    .bind(&a.email)
    .execute(app.pool())
    .await
    .unwrap();
    let fresh = client();
    let res = sign_in(&fresh, &app, "corp", &a.email).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login/2fa"), "{}", location(&res));
    assert_eq!(signed_in_as(&fresh, &app).await, None);

    // Switched off, the provider is gone from the login page and its routes.
    let id = created["id"].as_i64().unwrap();
    let res = admin
        .call(
            &app,
            reqwest::Method::PUT,
            &format!("/api/platform/v1/identity_providers/{id}"),
            Some(json!({"kind": "oidc", "name": "Corp SSO", "slug": "corp", "issuer": idp.issuer,
                        "client_id": CLIENT_ID, "enabled": false})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = client().get(app.url("/login")).text_body().await;
    assert!(!html.contains("/auth/oauth/corp"));
    let res = client().get(app.url("/auth/oauth/corp")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = admin
        .call(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/platform/v1/identity_providers/{id}"),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert!(identities_of(&app, &a.email).await.is_empty(), "links go with the provider");
    // Gone, or never an id: the API's 404 either way.
    for path in [
        format!("/api/platform/v1/identity_providers/{id}"),
        "/api/platform/v1/identity_providers/abc".into(),
    ] {
        let res = admin.call(&app, reqwest::Method::DELETE, &path, None).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(error_code(res).await, "not_found", "{path}");
    }
    let audit: Vec<String> = sqlx::query_scalar(
        "select action from public.platform_audit where action like 'identity_provider.%' order by id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        audit,
        ["identity_provider.create", "identity_provider.update", "identity_provider.delete"]
    );
}

// ---------------------------------------------------------------------------------------
// GitHub

/// What the GitHub-protocol server was asked.
#[derive(Default)]
struct GithubSeen {
    verifier: Option<String>,
    basic_auth: Option<String>,
}

#[derive(Clone)]
struct Github {
    seen: Arc<Mutex<GithubSeen>>,
    /// The account that signs in, and its addresses.
    emails: Value,
}

/// A server speaking GitHub's OAuth web flow and the two REST calls kefu makes, laid out
/// like GitHub Enterprise Server (`/login/oauth/…`, `/api/v3/…`).
async fn spawn_github(addresses: Value) -> (String, Arc<Mutex<GithubSeen>>) {
    async fn authorize(Query(q): Query<std::collections::HashMap<String, String>>) -> Redirect {
        assert_eq!(q["client_id"], "gh-client");
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["scope"].contains("user:email"));
        Redirect::to(&format!("{}?code=gh-code&state={}", q["redirect_uri"], q["state"]))
    }
    async fn token(
        State(gh): State<Github>,
        headers: HeaderMap,
        axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
    ) -> impl IntoResponse {
        let mut seen = gh.seen.lock().unwrap();
        seen.verifier = form.get("code_verifier").cloned();
        seen.basic_auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
        if form.get("code").map(String::as_str) != Some("gh-code") {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "bad_verification_code"})));
        }
        (
            StatusCode::OK,
            Json(
                json!({"access_token": "gho_test", "token_type": "bearer", "scope": "read:user,user:email"}),
            ),
        )
    }
    async fn user(headers: HeaderMap) -> impl IntoResponse {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer gho_test") {
            return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"})));
        }
        (StatusCode::OK, Json(json!({"id": 583231, "login": "octocat", "email": null})))
    }
    async fn emails(State(gh): State<Github>) -> Json<Value> {
        Json(gh.emails.clone())
    }
    let seen = Arc::new(Mutex::new(GithubSeen::default()));
    let router = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route("/api/v3/user", get(user))
        .route("/api/v3/user/emails", get(emails))
        .with_state(Github { seen: seen.clone(), emails: addresses });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

/// Follows kefu's redirect to the GitHub server and back; returns kefu's callback answer.
async fn github_round_trip(browser: &reqwest::Client, app: &TestApp) -> reqwest::Response {
    let res = browser.get(app.url("/auth/oauth/github")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let res = browser.get(location(&res)).send().await.unwrap();
    assert!(res.status().is_redirection());
    browser.get(location(&res)).send().await.unwrap()
}

#[tokio::test]
async fn github_sign_in_uses_the_primary_verified_address() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Gamma Shop").await;
    confirm_email(&app, &m.email).await;
    let (gh, seen) = spawn_github(json!([
        {"email": "octo@users.noreply.example", "primary": false, "verified": true},
        {"email": m.email, "primary": true, "verified": true},
        {"email": "unverified@example.test", "primary": false, "verified": false},
    ]))
    .await;
    let res = create_provider(
        &app,
        &admin,
        json!({"kind": "github", "name": "GitHub", "issuer": gh, "client_id": "gh-client", "client_secret": "gh-secret"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["slug"], "github");

    let browser = client();
    let res = github_round_trip(&browser, &app).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(location(&res), "/app");
    assert!(signed_in_as(&browser, &app).await.is_some());
    assert_eq!(identities_of(&app, &m.email).await, vec![("583231".to_owned(), m.email.clone())]);
    let seen = seen.lock().unwrap();
    assert!(seen.verifier.as_deref().is_some_and(|v| v.len() >= 43), "PKCE verifier sent");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("gh-client:gh-secret");
    assert_eq!(seen.basic_auth.as_deref(), Some(format!("Basic {basic}").as_str()));
}

#[tokio::test]
async fn github_without_a_verified_address_does_not_link() {
    let app = spawn_app().await;
    let admin = platform_admin(&app).await;
    let m = app.signup("Delta Shop").await;
    confirm_email(&app, &m.email).await;
    let (gh, _) =
        spawn_github(json!([{"email": m.email, "primary": true, "verified": false}])).await;
    let res = create_provider(
        &app,
        &admin,
        json!({"kind": "github", "name": "GitHub", "issuer": gh, "client_id": "gh-client", "client_secret": "gh-secret"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let browser = client();
    let res = github_round_trip(&browser, &app).await;
    page_says(res, 403, "GitHub did not confirm an email address").await;
    assert!(identities_of(&app, &m.email).await.is_empty());
}

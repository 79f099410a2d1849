//! Two-step verification for agents: turning it on for oneself, signing in with it (API and
//! pages), recovery codes, turning it off, and merchants requiring it of their team.

use serde_json::{Value, json};

use crate::helpers::*;

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    client().post(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn api_login(app: &TestApp, email: &str, code: Option<&str>) -> reqwest::Response {
    let mut body = json!({ "email": email, "password": PASSWORD });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    client().post(app.url("/api/v1/login")).json(&body).send().await.unwrap()
}

/// A valid-looking code that is not the current one.
fn other_code(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 500_000) % 1_000_000)
}

/// Turns two-step verification on for the merchant's owner; returns the recovery codes.
async fn enable(app: &TestApp, m: &Merchant) -> Vec<String> {
    let res = post(app, &m.token, "/api/v1/me/totp", json!({})).await;
    assert_eq!(res.status(), 200);
    let offer: Value = res.json().await.unwrap();
    let secret = offer["secret"].as_str().unwrap();
    assert!(offer["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(offer["qr_svg"].as_str().unwrap().contains("<svg"));
    let code = kefu::auth::totp::current_code(secret).unwrap();
    let res =
        post(app, &m.token, "/api/v1/me/totp/confirm", json!({ "code": other_code(&code) })).await;
    assert_eq!(error_code(res).await, "invalid_code");
    let res = post(app, &m.token, "/api/v1/me/totp/confirm", json!({ "code": code })).await;
    assert_eq!(res.status(), 200);
    let codes: Vec<String> =
        serde_json::from_value(res.json::<Value>().await.unwrap()["recovery_codes"].clone())
            .unwrap();
    assert_eq!(codes.len(), 10);
    codes
}

#[tokio::test]
async fn agents_turn_on_two_step_verification_and_sign_in_with_it() {
    let app = spawn_app().await;
    let m = app.signup("Careful Shop").await;
    let status: Value = app.get_as(&m, "/api/v1/me/totp").await.json().await.unwrap();
    assert_eq!(status, json!({ "enabled": false, "recovery_codes_left": 0, "required": false }));
    let codes = enable(&app, &m).await;
    let status: Value = app.get_as(&m, "/api/v1/me/totp").await.json().await.unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["recovery_codes_left"], 10);
    let res = post(&app, &m.token, "/api/v1/me/totp", json!({})).await;
    assert_eq!(res.status(), 409, "on already");

    // The password alone is not enough any more.
    assert_eq!(error_code(api_login(&app, &m.email, None).await).await, "totp_required");
    assert_eq!(error_code(api_login(&app, &m.email, Some("000000x")).await).await, "invalid_code");
    let res = api_login(&app, &m.email, Some(&codes[0])).await;
    assert_eq!(res.status(), 200, "a recovery code signs in");
    assert!(res.json::<Value>().await.unwrap()["token"].is_string());
    assert_eq!(
        error_code(api_login(&app, &m.email, Some(&codes[0])).await).await,
        "invalid_code",
        "once"
    );
    // A wrong password with a good code is still a wrong password.
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": m.email, "password": "not the password", "code": codes[1] }))
        .sent()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "invalid_credentials");

    // The pages: password, then the code.
    let browser = client();
    let res = form_login(&browser, &app, &m.email, &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login/2fa");
    assert!(
        browser.get(app.url("/app")).send().await.unwrap().status().is_redirection(),
        "no session yet"
    );
    let csrf = form_csrf(&browser, &app, "/login/2fa").await;
    let res = browser
        .post(app.url("/login/2fa"))
        .form(&[("csrf_token", csrf.as_str()), ("code", "123")])
        .sent()
        .await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("not valid"));
    let res = browser
        .post(app.url("/login/2fa"))
        .form(&[("csrf_token", csrf.as_str()), ("code", codes[1].as_str())])
        .sent()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app");
    assert_eq!(browser.get(app.url("/app")).send().await.unwrap().status(), 200);
    // Without the password step the code page leads back to the login.
    let res = client().get(app.url("/login/2fa")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login");

    // Off again, with a code as proof.
    let res = post(&app, &m.token, "/api/v1/me/totp/disable", json!({ "code": "999999" })).await;
    assert_eq!(error_code(res).await, "invalid_code");
    let res = post(&app, &m.token, "/api/v1/me/totp/disable", json!({ "code": codes[2] })).await;
    assert_eq!(res.status(), 204);
    assert_eq!(api_login(&app, &m.email, None).await.status(), 200);
    let res = post(&app, &m.token, "/api/v1/me/totp/disable", json!({ "nope": 1 })).await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn a_merchant_can_require_two_step_verification_of_its_team() {
    let app = spawn_app().await;
    let m = app.signup("Strict Shop").await;
    let agent_email = unique_email("agent");
    let created: Value = post(
        &app,
        &m.token,
        "/api/v1/agents",
        json!({ "email": agent_email, "display_name": "Lin", "role": "agent" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let agent_password = created["password"].as_str().unwrap().to_owned();
    let agent = crate::team::login(&app, &agent_email, &agent_password).await;
    let res = client()
        .patch(app.url("/api/v1/settings"))
        .bearer_auth(&agent)
        .json(&json!({ "require_2fa": true }))
        .sent()
        .await;
    assert_eq!(res.status(), 403, "admins decide");
    let res = app.patch_settings(&m, json!({ "require_2fa": true })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["require_2fa"], true);

    // The agent has no second factor: the login offers an enrolment instead of a session.
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": agent_email, "password": agent_password }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["token"].is_null(), "no session before enrolling: {body}");
    let e = &body["enrolment"];
    let pending = e["pending_token"].as_str().unwrap();
    let code = kefu::auth::totp::current_code(e["secret"].as_str().unwrap()).unwrap();
    let enrol = |token: &str, code: &str| {
        client()
            .post(app.url("/api/v1/login/enrol"))
            .json(&json!({ "pending_token": token, "code": code }))
            .send()
    };
    assert_eq!(error_code(enrol(pending, &other_code(&code)).await.unwrap()).await, "invalid_code");
    assert_eq!(enrol("junk", &code).await.unwrap().status(), 401);
    assert_eq!(
        enrol(&agent, &code).await.unwrap().status(),
        401,
        "a session is not a pending token"
    );
    let res = enrol(pending, &code).await.unwrap();
    assert_eq!(res.status(), 200);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["ent_id"], m.ent_id.as_str());
    assert_eq!(session["recovery_codes"].as_array().unwrap().len(), 10);
    let token = session["token"].as_str().unwrap();
    let me = client().get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    // Required: it cannot be turned off.
    let recovery = session["recovery_codes"][0].as_str().unwrap();
    let res = post(&app, token, "/api/v1/me/totp/disable", json!({ "code": recovery })).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "totp_required");
    let status = app.get_json(token, "/api/v1/me/totp").await;
    assert_eq!(status["required"], true);

    // Lost phone and codes: an admin resets it; the agent enrols again at the next sign-in.
    let res = post(
        &app,
        token,
        &format!("/api/v1/agents/{}/reset_2fa", created["agent"]["id"]),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 403, "agents cannot");
    let owner_id =
        app.get_as(&m, "/api/v1/me").await.json::<Value>().await.unwrap()["agent"]["id"].clone();
    let res =
        post(&app, &m.token, &format!("/api/v1/agents/{owner_id}/reset_2fa"), json!({})).await;
    assert_eq!(error_code(res).await, "own_factor", "one's own goes off with a code");
    let res = post(
        &app,
        &m.token,
        &format!("/api/v1/agents/{}/reset_2fa", created["agent"]["id"]),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": agent_email, "password": agent_password }))
        .sent()
        .await;
    assert!(res.json::<Value>().await.unwrap()["enrolment"]["pending_token"].is_string());
    let audit: Value = app.get_as(&m, "/api/v1/audit").await.json().await.unwrap();
    assert!(audit.to_string().contains("agent.reset_2fa"), "{audit}");

    // The owner signs in on the pages and is shown the QR code to set it up.
    let browser = client();
    let res = form_login(&browser, &app, &m.email, &[]).await;
    assert_eq!(res.headers()["location"], "/login/2fa");
    let page = browser.get(app.url("/login/2fa")).text_body().await;
    assert!(page.contains("<svg") && page.contains("Set up two-step verification"), "{page}");
    let secret = {
        let marker = "id=\"totp-secret\" class=\"mono\" readonly value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        page[start..].split('"').next().unwrap().to_owned()
    };
    let csrf = form_csrf(&browser, &app, "/login/2fa").await;
    let code = kefu::auth::totp::current_code(&secret).unwrap();
    let res = browser
        .post(app.url("/login/2fa"))
        .form(&[("csrf_token", csrf.as_str()), ("code", code.as_str())])
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Save your recovery codes"), "{html}");
    assert_eq!(browser.get(app.url("/app")).send().await.unwrap().status(), 200);
}

/// Changing one's own password: the current one is needed, the new one follows the rules,
/// this device gets a new session and every other session ends.
#[tokio::test]
async fn changing_the_password_signs_out_every_other_session() {
    let app = spawn_app().await;
    let m = app.signup("Password Shop").await;
    let other_device = crate::team::login(&app, &m.email, PASSWORD).await;
    let change = |token: &str, current: &str, new: &str| {
        client()
            .post(app.url("/api/v1/me/password"))
            .bearer_auth(token)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    let res = change(&m.token, "not it", "a much better passphrase").await.unwrap();
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    assert!(err["error"]["fields"]["current_password"].is_string(), "{err}");
    let res = change(&m.token, PASSWORD, "short").await.unwrap();
    let err: Value = res.json().await.unwrap();
    assert!(err["error"]["fields"]["new_password"].is_string(), "{err}");
    let res = client()
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&m.token)
        .json(&json!({ "new_password": "x" }))
        .sent()
        .await;
    assert_eq!(res.status(), 422);

    let res = change(&m.token, PASSWORD, "a much better passphrase").await.unwrap();
    assert_eq!(res.status(), 200);
    let fresh = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let me = |token: &str| client().get(app.url("/api/v1/me")).bearer_auth(token).send();
    assert_eq!(me(&fresh).await.unwrap().status(), 200, "this device stays signed in");
    assert_eq!(me(&m.token).await.unwrap().status(), 401, "the old session ended");
    assert_eq!(me(&other_device).await.unwrap().status(), 401, "other devices too");
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": m.email, "password": PASSWORD }))
        .sent()
        .await;
    assert_eq!(res.status(), 401, "the old password is gone");
    crate::team::login(&app, &m.email, "a much better passphrase").await;
}

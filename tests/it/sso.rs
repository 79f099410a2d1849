//! Single sign-on from a merchant's own system (GOFLY's flow): a whitelisted server with the
//! merchant's secret gets a one-time token; the agent's browser redeems it once and lands on
//! a local page.

use crate::helpers::Fetch;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::{helpers::*, team::add_agent};

/// kefu whose trial includes SSO, believing forwarding headers from loopback (so a test
/// can come "from" any address).
async fn app() -> TestApp {
    spawn_with(|c| {
        let sso = serde_json::from_value(json!({ "sso": true, "seats": "unlimited" })).unwrap();
        c.plans.insert("trial".into(), sso);
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

async fn settings(app: &TestApp, m: &Merchant, body: Value) {
    let res =
        client().patch(app.url("/api/v1/settings")).bearer_auth(&m.token).json(&body).sent().await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

async fn new_secret(app: &TestApp, m: &Merchant) -> String {
    let res =
        client().post(app.url("/api/v1/settings/sso_secret")).bearer_auth(&m.token).sent().await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned()
}

async fn ask(
    app: &TestApp,
    ent_id: &str,
    account: &str,
    secret: Option<&str>,
    from: &str,
) -> reqwest::Response {
    let mut req = client()
        .get(app.url(&format!("/other/internalToken?ent_id={ent_id}&account={account}")))
        .header("x-forwarded-for", from);
    if let Some(s) = secret {
        req = req.bearer_auth(s);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_whitelisted_server_with_the_secret_signs_an_agent_in_once() {
    let app = app().await;
    let m = app.signup("SSO Shop").await;
    let (_, agent_email, _) = add_agent(&app, &m, "agent").await;

    // Nothing is allowed until both the whitelist and the secret are set.
    assert_eq!(
        error_code(ask(&app, &m.ent_id, &agent_email, Some("x"), "203.0.113.10").await).await,
        "sso_denied"
    );
    settings(&app, &m, json!({ "sso_ip_whitelist": ["203.0.113.10", "198.51.100.0/24", " "] }))
        .await;
    let s: Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(s["sso_ip_whitelist"], json!(["203.0.113.10/32", "198.51.100.0/24"]));
    assert_eq!(s["sso_secret_set"], false);
    assert_eq!(
        error_code(ask(&app, &m.ent_id, &agent_email, Some("x"), "203.0.113.10").await).await,
        "sso_denied"
    );
    let secret = new_secret(&app, &m).await;
    let s: Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(s["sso_secret_set"], true);
    assert!(!s.to_string().contains(&secret), "the secret is never shown again");

    // The whitelist alone is not enough, nor the secret alone.
    for (secret, from) in [
        (None, "203.0.113.10"),
        (Some("wrong"), "203.0.113.10"),
        (Some(secret.as_str()), "203.0.113.11"),
    ] {
        let res = ask(&app, &m.ent_id, &agent_email, secret, from).await;
        assert_eq!(res.status(), 403, "{secret:?} from {from}");
        assert_eq!(error_code(res).await, "sso_denied");
    }
    // Unknown accounts are named as such to the authenticated caller.
    let res = ask(&app, &m.ent_id, "nobody@sso.example", Some(&secret), "198.51.100.7").await;
    assert_eq!(error_code(res).await, "unknown_account");

    let res = ask(&app, &m.ent_id, &agent_email, Some(&secret), "198.51.100.7").await;
    assert_eq!(res.status(), 200);
    let issued: Value = res.json().await.unwrap();
    assert_eq!(issued["expires_in"], 60);
    let token = issued["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "256 bits");
    let stored: i64 = sqlx::query_scalar("select count(*) from public.user_tokens where purpose = 'sso' and token_hash = sha256($1::bytea)")
        .bind(token.as_bytes())
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1, "stored as its SHA-256");

    // Redirects outside the site are refused (and do not use the token up).
    for bad in [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
    ] {
        let url = app.url(&format!("/sso?token={token}&redirect={}", urlencode(bad)));
        let res = client().get(url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(error_code(res).await, "bad_redirect");
    }
    // Fifty redemptions at once: one signs in.
    let url = app.url(&format!("/sso?token={token}&redirect=/main"));
    let answers = join_all((0..50).map(|_| client().get(&url).send())).await;
    let signed_in: Vec<&reqwest::Response> =
        answers.iter().map(|r| r.as_ref().unwrap()).filter(|r| r.status() == 303).collect();
    assert_eq!(signed_in.len(), 1);
    assert!(answers.iter().all(|r| matches!(r.as_ref().unwrap().status().as_u16(), 303 | 401)));
    assert_eq!(signed_in[0].headers()["location"], "/main");
    let cookie = signed_in[0].headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = client().get(app.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["user"]["email"], agent_email.as_str());
    let again = client().get(&url).send().await.unwrap();
    assert_eq!(error_code(again).await, "invalid_token");

    // A token is good for 60 seconds only.
    let res = ask(&app, &m.ent_id, &agent_email, Some(&secret), "203.0.113.10").await;
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    sqlx::query("update public.user_tokens set expires_at = now() - interval '1 second' where purpose = 'sso' and used_at is null")
        .execute(app.pool())
        .await
        .unwrap();
    let res = client().get(app.url(&format!("/sso?token={token}"))).send().await.unwrap();
    assert_eq!(error_code(res).await, "invalid_token");

    // A new secret replaces the old at once.
    let fresh = new_secret(&app, &m).await;
    assert_eq!(
        ask(&app, &m.ent_id, &agent_email, Some(&secret), "203.0.113.10").await.status(),
        403
    );
    assert_eq!(
        ask(&app, &m.ent_id, &agent_email, Some(&fresh), "203.0.113.10").await.status(),
        200
    );
}

#[tokio::test]
async fn merchants_and_plans_keep_sso_to_themselves() {
    let app = app().await;
    let a = app.signup("Shop A").await;
    let b = app.signup("Shop B").await;
    settings(&app, &a, json!({ "sso_ip_whitelist": ["203.0.113.10"] })).await;
    let secret_a = new_secret(&app, &a).await;
    // A's secret does not open B, nor B's agents; B's own setup is empty.
    let res = ask(&app, &b.ent_id, &b.email, Some(&secret_a), "203.0.113.10").await;
    assert_eq!(error_code(res).await, "sso_denied");
    let res = ask(&app, &a.ent_id, &b.email, Some(&secret_a), "203.0.113.10").await;
    assert_eq!(error_code(res).await, "unknown_account", "B's owner is not A's agent");
    // Without forwarding headers being believed, a forged X-Forwarded-For changes nothing.
    let plain = spawn_with(|c| {
        let sso = serde_json::from_value(json!({ "sso": true })).unwrap();
        c.plans.insert("trial".into(), sso);
    })
    .await;
    let p = plain.signup("Plain Shop").await;
    settings(&plain, &p, json!({ "sso_ip_whitelist": ["203.0.113.10"] })).await;
    let secret = new_secret(&plain, &p).await;
    let res = ask(&plain, &p.ent_id, &p.email, Some(&secret), "203.0.113.10").await;
    assert_eq!(error_code(res).await, "sso_denied");
    // A plan without SSO (the default trial): a stranger learns nothing (not even the plan),
    // and no secret can be made.
    let default = spawn_app().await;
    let d = default.signup("Basic Shop").await;
    let res = ask(&default, &d.ent_id, &d.email, Some("x"), "127.0.0.1").await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "sso_denied");
    let res = client()
        .post(default.url("/api/v1/settings/sso_secret"))
        .bearer_auth(&d.token)
        .sent()
        .await;
    assert_eq!(res.status(), 402);
    assert_eq!(error_code(res).await, "plan_limit");
    // Bad whitelist entries are refused with the field named.
    let res = client()
        .patch(app.url("/api/v1/settings"))
        .bearer_auth(&a.token)
        .json(&json!({ "sso_ip_whitelist": ["0.0.0.0/0"] }))
        .sent()
        .await;
    assert_eq!(res.status(), 422);
    let res = client()
        .patch(app.url("/api/v1/settings"))
        .bearer_auth(&a.token)
        .json(&json!({ "sso_ip_whitelist": ["not an address"] }))
        .sent()
        .await;
    assert_eq!(res.status(), 422);
    // A merchant whose plan lost SSO: its own system (address and secret) is told to
    // upgrade; a stranger still hears nothing but 403.
    sqlx::query("update public.tenants set plan = 'starter' where ent_id = $1")
        .bind(&a.ent_id)
        .execute(app.pool())
        .await
        .unwrap();
    app.state.tenants.invalidate_all();
    let res = ask(&app, &a.ent_id, &a.email, Some(&secret_a), "203.0.113.10").await;
    assert_eq!(res.status(), 402);
    assert_eq!(error_code(res).await, "plan_limit");
    let res = ask(&app, &a.ent_id, &a.email, Some("guess"), "203.0.113.10").await;
    assert_eq!(error_code(res).await, "sso_denied");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Turns two-step verification on for whoever `token` belongs to.
async fn enable_two_factor(app: &TestApp, token: &str) {
    let post = |path: &str, body: Value| {
        client().post(app.url(path)).bearer_auth(token).json(&body).send()
    };
    let offer: Value = post("/api/v1/me/totp", json!({})).await.unwrap().json().await.unwrap();
    let code = kefu::auth::totp::current_code(offer["secret"].as_str().unwrap()).unwrap();
    let res = post("/api/v1/me/totp/confirm", json!({ "code": code })).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn single_sign_on_never_reaches_above_whoever_set_the_secret() {
    let app = app().await;
    let m = app.signup("Escalation Shop").await;
    let (_, admin_email, admin) = add_agent(&app, &m, "admin").await;
    let (_, other_admin_email, _) = add_agent(&app, &m, "admin").await;
    let (_, agent_email, agent) = add_agent(&app, &m, "agent").await;
    let (_, plain_email, _) = add_agent(&app, &m, "agent").await;
    let as_admin = Merchant { token: admin.clone(), email: admin_email.clone(), ..m.clone() };
    settings(&app, &as_admin, json!({ "sso_ip_whitelist": ["203.0.113.10"] })).await;
    let secret = new_secret(&app, &as_admin).await;
    let from = "203.0.113.10";

    // The admin's secret opens agents and admins, never the owner (whose password and second
    // factor it would skip).
    let res = ask(&app, &m.ent_id, &m.email, Some(&secret), from).await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "sso_not_allowed");
    for account in [&agent_email, &other_admin_email, &admin_email] {
        assert_eq!(ask(&app, &m.ent_id, account, Some(&secret), from).await.status(), 200);
    }

    // Nobody with a second factor, unless the owner lets single sign-on count as one (an admin
    // cannot).
    enable_two_factor(&app, &agent).await;
    let res = ask(&app, &m.ent_id, &agent_email, Some(&secret), from).await;
    assert_eq!(error_code(res).await, "sso_not_allowed");
    let res = client()
        .patch(app.url("/api/v1/settings"))
        .bearer_auth(&admin)
        .json(&json!({ "sso_satisfies_2fa": true }))
        .sent()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "forbidden_role");
    settings(&app, &m, json!({ "sso_satisfies_2fa": true })).await;
    assert_eq!(ask(&app, &m.ent_id, &agent_email, Some(&secret), from).await.status(), 200);
    // An admin's form sends every field: an unchanged value passes.
    settings(&app, &as_admin, json!({ "sso_satisfies_2fa": true, "service_name": "Esc" })).await;

    // Where the merchant requires a second factor, single sign-on counts as one only by the
    // owner's leave.
    settings(&app, &m, json!({ "sso_satisfies_2fa": false, "require_2fa": true })).await;
    let res = ask(&app, &m.ent_id, &other_admin_email, Some(&secret), from).await;
    assert_eq!(error_code(res).await, "sso_not_allowed");
    settings(&app, &m, json!({ "require_2fa": false })).await;

    // The secret carries its setter's authority as it is now: demoted, it opens agents only;
    // disabled, nothing.
    let admin_id = app.get_json(&admin, "/api/v1/me").await["agent"]["id"].as_i64().unwrap();
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{admin_id}")))
        .bearer_auth(&m.token)
        .json(&json!({ "role": "agent" }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let res = ask(&app, &m.ent_id, &other_admin_email, Some(&secret), from).await;
    assert_eq!(error_code(res).await, "sso_not_allowed");
    assert_eq!(ask(&app, &m.ent_id, &plain_email, Some(&secret), from).await.status(), 200);
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{admin_id}")))
        .bearer_auth(&m.token)
        .json(&json!({ "disabled": true }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let res = ask(&app, &m.ent_id, &plain_email, Some(&secret), from).await;
    assert_eq!(error_code(res).await, "sso_not_allowed");

    // The owner's own secret may sign the owner in.
    let secret = new_secret(&app, &m).await;
    assert_eq!(ask(&app, &m.ent_id, &m.email, Some(&secret), from).await.status(), 200);
}

//! Ended means ended (server-side sessions), and a merchant never reaches a sign-in the
//! platform or another merchant relies on.

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    team::{add_agent, add_agent_with_password, login},
    ws_client::{Ws, agent_ticket, ws_url},
};

fn me(app: &TestApp, token: &str) -> reqwest::RequestBuilder {
    client().get(app.url("/api/v1/me")).bearer_auth(token)
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
    client().post(app.url(path)).bearer_auth(token).json(&body)
}

/// The id of the session `token` belongs to, from its own list.
async fn session_id(app: &TestApp, token: &str) -> String {
    let list = app.get_json(token, "/api/v1/me/sessions").await;
    list["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn logout_ends_the_session_and_its_sockets() {
    let app = spawn_app().await;
    let m = app.signup("Logout Shop").await;
    let token = login(&app, &m.email, PASSWORD).await;
    let mut ws = Ws::agent(&app, &token, "").await;
    ws.expect("hello").await;
    let ticket = agent_ticket(&app, &token).await;

    let res = client().post(app.url("/api/v1/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(status_of(me(&app, &token)).await, 401, "the token no longer works");
    assert_eq!(ws.expect_close().await, 4003, "its socket closes");
    let socket = Ws::connect(&ws_url(&app, &format!("/ws/agent?ticket={ticket}"))).await;
    assert!(socket.is_err(), "a ticket dies with its session");
    assert_eq!(status_of(me(&app, &m.token)).await, 200, "other sessions go on");

    // The page's logout (cookie and form) ends the browser's session the same way.
    let browser = client();
    let res = form_login(&browser, &app, &m.email, &[]).await;
    assert_eq!(res.status(), 303);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("kefu_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("kefu_session=")
        .to_owned();
    assert_eq!(status_of(me(&app, &cookie)).await, 200);
    let csrf = form_csrf(&browser, &app, "/app/settings").await;
    let res = browser.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).sent().await;
    assert_eq!(res.status(), 303);
    assert_eq!(status_of(me(&app, &cookie)).await, 401);
}

#[tokio::test]
async fn a_password_change_in_the_same_second_ends_every_other_session_and_socket() {
    let app = spawn_app().await;
    let m = app.signup("Same Second Shop").await;
    // Another device signs in, opens the workspace's socket and takes a ticket for another.
    let other = login(&app, &m.email, PASSWORD).await;
    let mut other_ws = Ws::agent(&app, &other, "").await;
    other_ws.expect("hello").await;
    let ticket = agent_ticket(&app, &other).await;
    let mut own_ws = Ws::agent(&app, &m.token, "").await;
    own_ws.expect("hello").await;

    // No waiting: whatever second the sessions were issued in, they end.
    let res = post(
        &app,
        &m.token,
        "/api/v1/me/password",
        json!({ "current_password": PASSWORD, "new_password": "a much better passphrase" }),
    )
    .sent()
    .await;
    assert_eq!(res.status(), 200);
    let fresh = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(status_of(me(&app, &other)).await, 401);
    assert_eq!(other_ws.expect_close().await, 4003, "the other device's socket closes");
    assert!(Ws::connect(&ws_url(&app, &format!("/ws/agent?ticket={ticket}"))).await.is_err());
    // This device goes on with its new token; a copy of its old one is worthless.
    assert_eq!(status_of(me(&app, &fresh)).await, 200);
    assert_eq!(status_of(me(&app, &m.token)).await, 401);
    own_ws.send(json!({ "type": "ping" })).await;
    own_ws.expect("pong").await;
}

#[tokio::test]
async fn where_you_are_signed_in_and_signing_out_elsewhere() {
    let app = spawn_app().await;
    let m = app.signup("Devices Shop").await;
    let phone = client()
        .post(app.url("/api/v1/login"))
        .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
        .json(&json!({ "email": m.email, "password": PASSWORD }))
        .json_body::<Value>().await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let laptop = login(&app, &m.email, PASSWORD).await;
    let mut phone_ws = Ws::agent(&app, &phone, "").await;
    phone_ws.expect("hello").await;

    let list = app.get_json(&m.token, "/api/v1/me/sessions").await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let on_phone =
        sessions.iter().find(|s| s["device"].as_str().unwrap().contains("iPhone")).unwrap();
    assert_eq!(on_phone["workspace"], "Devices Shop");
    assert_eq!(on_phone["kind"], "agent");
    assert!(on_phone["ip"].is_string() && on_phone["last_seen_at"].is_string());

    // One device signed out from another.
    let phone_id = session_id(&app, &phone).await;
    let res = client()
        .delete(app.url(&format!("/api/v1/me/sessions/{phone_id}")))
        .bearer_auth(&laptop)
        .sent()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(status_of(me(&app, &phone)).await, 401);
    assert_eq!(phone_ws.expect_close().await, 4003);
    // Someone else's session is out of reach (and nothing says whether it exists).
    let stranger = app.signup("Stranger Shop").await;
    let theirs = session_id(&app, &stranger.token).await;
    let res = client()
        .delete(app.url(&format!("/api/v1/me/sessions/{theirs}")))
        .bearer_auth(&laptop)
        .sent()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(status_of(me(&app, &stranger.token)).await, 200, "untouched");
    let res = client()
        .delete(app.url("/api/v1/me/sessions/not-a-number"))
        .bearer_auth(&laptop)
        .sent()
        .await;
    assert_eq!(res.status(), 404);

    // Everywhere else at once.
    let res =
        client().delete(app.url("/api/v1/me/sessions")).bearer_auth(&m.token).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["ended"], 1, "the laptop");
    assert_eq!(status_of(me(&app, &laptop)).await, 401);
    assert_eq!(status_of(me(&app, &m.token)).await, 200);
    let list = app.get_json(&m.token, "/api/v1/me/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn resets_role_changes_and_second_factors_end_the_affected_sessions() {
    let app = spawn_app().await;
    let m = app.signup("Reset Shop").await;
    let (agent_id, email, token, _) = add_agent_with_password(&app, &m, "agent").await;
    let mut ws = Ws::agent(&app, &token, "").await;
    ws.expect("hello").await;
    let ticket = agent_ticket(&app, &token).await;

    // An admin resets the agent's password: their sessions, sockets and tickets end.
    let res = post(&app, &m.token, &format!("/api/v1/agents/{agent_id}/reset_password"), json!({}))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    let password = res.json::<Value>().await.unwrap()["password"].as_str().unwrap().to_owned();
    assert_eq!(status_of(me(&app, &token)).await, 401);
    assert_eq!(ws.expect_close().await, 4003);
    assert!(Ws::connect(&ws_url(&app, &format!("/ws/agent?ticket={ticket}"))).await.is_err());

    // A role change ends their sessions in this workspace.
    let token = login(&app, &email, &password).await;
    let mut ws = Ws::agent(&app, &token, "").await;
    ws.expect("hello").await;
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&m.token)
        .json(&json!({ "role": "admin" }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(status_of(me(&app, &token)).await, 401);
    assert_eq!(ws.expect_close().await, 4003);
    // Renaming (no new role) ends nothing.
    let token = login(&app, &email, &password).await;
    let res = client()
        .patch(app.url(&format!("/api/v1/agents/{agent_id}")))
        .bearer_auth(&m.token)
        .json(&json!({ "role": "admin", "display_name": "Lin" }))
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(status_of(me(&app, &token)).await, 200);

    // Turning one's own second factor on ends one's other sessions (this one stays).
    let other = login(&app, &email, &password).await;
    let offer: Value =
        post(&app, &token, "/api/v1/me/totp", json!({})).sent().await.json().await.unwrap();
    let code = kefu::auth::totp::current_code(offer["secret"].as_str().unwrap()).unwrap();
    let res = post(&app, &token, "/api/v1/me/totp/confirm", json!({ "code": code })).sent().await;
    assert_eq!(res.status(), 200);
    assert_eq!(status_of(me(&app, &other)).await, 401);
    assert_eq!(status_of(me(&app, &token)).await, 200);
    // An admin resetting it ends all of them.
    let res = post(&app, &m.token, &format!("/api/v1/agents/{agent_id}/reset_2fa"), json!({}))
        .sent()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(status_of(me(&app, &token)).await, 401);
}

#[tokio::test]
async fn a_half_finished_sign_in_dies_with_a_password_reset() {
    let app = spawn_app().await;
    let m = app.signup("Pending Shop").await;
    let (agent_id, email, _, password) = add_agent_with_password(&app, &m, "agent").await;
    // The agent belongs to two workspaces, so the password leads to a choice first.
    let other = app.signup("Second Shop").await;
    let user_id: i64 = sqlx::query_scalar("select id from public.users where email = $1")
        .bind(&email)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let tenant = tenant_id(app.pool(), &other.ent_id).await;
    let mut tx = tenants::TenantTx::begin(app.pool(), tenant).await.unwrap();
    sqlx::query("insert into agents (user_id, role, display_name) values ($1, 'agent', 'Lin')")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("insert into public.tenant_members (tenant_id, user_id) values ($1, $2)")
        .bind(tenant.0)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&json!({ "email": email, "password": password }))
        .sent()
        .await;
    let select_token =
        res.json::<Value>().await.unwrap()["select_token"].as_str().unwrap().to_owned();

    // Meanwhile the person resets their password through an emailed link (the mailbox is
    // theirs): the choice begun with the old password cannot finish.
    let mut tx = app.pool().begin().await.unwrap();
    let actor = kefu::auth::accounts::Actor::Mailbox { user_id };
    let changed = kefu::auth::accounts::set_password(&mut tx, &actor, user_id, "x").await.unwrap();
    tx.commit().await.unwrap();
    assert!(changed.ended.len() <= 1);
    let res = client()
        .post(app.url("/api/v1/login/select"))
        .json(&json!({ "select_token": select_token, "ent_id": m.ent_id }))
        .sent()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "credentials_changed");
    let _ = agent_id;
}

#[tokio::test]
async fn sessions_ended_out_of_band_close_their_sockets_at_the_next_sweep() {
    let app = spawn_app().await;
    let m = app.signup("Sweep Shop").await;
    let mut ws = Ws::agent(&app, &m.token, "").await;
    ws.expect("hello").await;
    // As the command line or a node without the bus would: straight in the database.
    sqlx::query("update public.sessions set ended_at = now()").execute(app.pool()).await.unwrap();
    assert_eq!(kefu::auth::sessions::sweep(&app.state.db, &app.state.chat.hub).await.unwrap(), 1);
    assert_eq!(ws.expect_close().await, 4003);
    assert_eq!(kefu::auth::sessions::sweep(&app.state.db, &app.state.chat.hub).await.unwrap(), 0);
}

#[tokio::test]
async fn a_merchant_cannot_change_the_sign_in_of_a_platform_admin_or_a_shared_account() {
    let app = spawn_with(|c| {
        let unlimited = serde_json::from_value(json!({ "seats": "unlimited" })).unwrap();
        c.plans.insert("trial".into(), unlimited);
    })
    .await;
    let m = app.signup("Takeover Shop").await;
    let (agent_id, email, _) = add_agent(&app, &m, "agent").await;
    // The operator makes the agent a platform admin, the documented way.
    let created = kefu::platform::create_admin(
        app.pool(),
        &kefu::auth::validate::Email::parse(&email).unwrap(),
    )
    .await
    .unwrap();
    assert!(created.existed);

    // The owner tries every way to take the account over.
    for (path, what) in [
        (format!("/api/v1/agents/{agent_id}/reset_password"), "password reset"),
        (format!("/api/v1/agents/{agent_id}/reset_2fa"), "second-factor reset"),
        (format!("/api/v1/agents/{agent_id}/invite"), "invitation"),
    ] {
        let res = post(&app, &m.token, &path, json!({})).send().await.unwrap();
        assert_eq!(res.status(), 409, "{what}");
        assert_eq!(error_code(res).await, "platform_admin", "{what}");
    }
    // The operator's password still opens the console (nothing was changed).
    let res = client()
        .post(app.url("/api/platform/v1/login"))
        .json(&json!({ "email": email, "password": created.password }))
        .sent()
        .await;
    assert_eq!(res.status(), 200, "the enrolment step: the password is the operator's");
    assert!(res.json::<Value>().await.unwrap()["enrolment"].is_object());

    // Someone who is also an agent of another merchant is theirs to keep as well.
    let (shared_id, shared_email, _) = add_agent(&app, &m, "agent").await;
    let other = app.signup("Other Shop").await;
    let user_id: i64 = sqlx::query_scalar("select id from public.users where email = $1")
        .bind(&shared_email)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let tenant = tenant_id(app.pool(), &other.ent_id).await;
    sqlx::query("insert into public.tenant_members (tenant_id, user_id) values ($1, $2)")
        .bind(tenant.0)
        .bind(user_id)
        .execute(app.pool())
        .await
        .unwrap();
    for path in [
        format!("/api/v1/agents/{shared_id}/reset_password"),
        format!("/api/v1/agents/{shared_id}/reset_2fa"),
    ] {
        let res = post(&app, &m.token, &path, json!({})).send().await.unwrap();
        assert_eq!(error_code(res).await, "shared_account", "{path}");
    }

    // An admin never reaches the owner.
    let (_, _, admin) = add_agent(&app, &m, "admin").await;
    let owner_id = app.get_json(&m.token, "/api/v1/me").await["agent"]["id"].as_i64().unwrap();
    let res = post(&app, &admin, &format!("/api/v1/agents/{owner_id}/reset_password"), json!({}))
        .sent()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "owner_protected");
}

//! The role matrix, driven by the route table like the isolation suite: every tenant route
//! declared for admins (`Routes::admin`) answers an agent of the same merchant with 403
//! `forbidden_role` and does nothing; every other tenant route serves agents; every admin
//! route serves an admin who is not the owner; owner routes (billing) refuse admins and
//! serve the owner.

use axum::http::Method;
use kefu::http::{Role, Scope};

use crate::{
    helpers::*,
    isolation::{Body, Ids, case, ids_of, image_file, served},
    team::add_agent,
};

async fn send(
    app: &TestApp,
    token: &str,
    method: &Method,
    url: &str,
    body: Option<Body>,
    ent_id: &str,
) -> reqwest::Response {
    let mut req =
        client().request(method.clone(), app.url(&url.replace("{own}", ent_id))).bearer_auth(token);
    match body {
        Some(Body::Json(b)) => req = req.json(&b),
        Some(Body::File) => req = req.multipart(image_file()),
        None => {}
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn admin_routes_refuse_agents_and_serve_admins() {
    let stripe = crate::fake_stripe::FakeStripe::start().await;
    let app = spawn_with(|c| {
        stripe.configure(c);
        // The walk adds agents beyond the trial's seats.
        let unlimited =
            serde_json::from_value(serde_json::json!({ "seats": "unlimited", "sso": true }))
                .unwrap();
        c.plans.insert("trial".into(), unlimited);
    })
    .await;
    let m = app.signup("Roles Shop").await;
    let (agent_id, _, agent) = add_agent(&app, &m, "agent").await;
    let (_, _, admin) = add_agent(&app, &m, "admin").await;
    // Email on from here (agents above got passwords): invitations can be resent.
    let smtp = crate::smtp_server::SmtpServer::start(crate::smtp_server::Security::Plain).await;
    crate::smtp_server::use_for(&app, &smtp).await;
    let routes = kefu::startup::routes(&app.state.config);
    let tenant_routes: Vec<_> =
        routes.table().iter().filter(|r| r.scope == Scope::Tenant).collect();
    let admin_routes = tenant_routes.iter().filter(|r| r.role == Role::Admin).count();
    assert!(admin_routes >= 9, "the admin routes are declared ({admin_routes})");

    // An agent, in route-table order, on the owner's objects (saved views are each agent's
    // own: the agent's).
    let view: serde_json::Value = client()
        .post(app.url("/api/v1/views"))
        .bearer_auth(&agent)
        .json(&serde_json::json!({ "name": "Mine", "query": "assignee=me" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids = Ids { view_id: view["id"].as_i64().unwrap(), ..ids_of(&app, &m).await };
    for route in &tenant_routes {
        let (method, url, body) = case(&route.method, route.path, &ids)
            .expect("the isolation suite has a case for every tenant route");
        let res = send(&app, &agent, &method, &url, body, &m.ent_id).await;
        match route.role {
            Role::Admin | Role::Owner => {
                assert_eq!(res.status(), 403, "{method} {url} as an agent");
                assert_eq!(error_code(res).await, "forbidden_role", "{method} {url}");
            }
            Role::Agent => {
                let status = res.status();
                assert!(served(route.path, res).await, "{method} {url} as an agent: {status}")
            }
        }
    }

    // An admin (not the owner), on fresh objects; agent routes aimed at the plain agent.
    // Owner routes (billing) refuse admins too.
    let ids = Ids { agent_id, ..ids_of(&app, &m).await };
    for route in tenant_routes.iter().filter(|r| r.role != Role::Agent) {
        let (method, url, body) = case(&route.method, route.path, &ids).unwrap();
        let res = send(&app, &admin, &method, &url, body, &m.ent_id).await;
        if route.role == Role::Owner {
            assert_eq!(res.status(), 403, "{method} {url} as an admin");
            assert_eq!(error_code(res).await, "forbidden_role", "{method} {url}");
        } else {
            assert!(res.status().is_success(), "{method} {url} as an admin: {}", res.status());
        }
    }

    // The owner is served by the owner routes.
    let owner_routes: Vec<_> = tenant_routes.iter().filter(|r| r.role == Role::Owner).collect();
    assert!(owner_routes.len() >= 4, "the billing routes are declared for the owner");
    for route in owner_routes {
        let (method, url, body) = case(&route.method, route.path, &ids).unwrap();
        let res = send(&app, &m.token, &method, &url, body, &m.ent_id).await;
        assert!(res.status().is_success(), "{method} {url} as the owner: {}", res.status());
    }
}

/// API tokens open exactly the routes whose handler takes `Ctx<ApiToken<_>>` (the table's
/// `.api()` routes): a read token the reads, a write token the writes too; on every other
/// tenant route a token is refused with 403 `token_scope` before anything happens.
#[tokio::test]
async fn api_tokens_open_exactly_the_api_routes() {
    let app = spawn_app().await;
    let m = app.signup("Token Walk").await;
    let (_, read) = crate::api_tokens::new_token(&app, &m, "read").await;
    let (_, write) = crate::api_tokens::new_token(&app, &m, "write").await;
    let routes = kefu::startup::routes(&app.state.config);
    let tenant_routes: Vec<_> =
        routes.table().iter().filter(|r| r.scope == Scope::Tenant).collect();
    let api_routes = tenant_routes.iter().filter(|r| r.api).count();
    assert!(api_routes >= 15, "the API's routes are declared ({api_routes})");

    let ids = ids_of(&app, &m).await;
    for route in &tenant_routes {
        let (method, url, body) = case(&route.method, route.path, &ids).unwrap();
        let reads = matches!(method, Method::GET | Method::HEAD);
        if route.api && reads {
            let res = send(&app, &read, &method, &url, body, &m.ent_id).await;
            let status = res.status();
            assert!(served(route.path, res).await, "{method} {url} with a read token: {status}");
            continue;
        }
        let token = if route.api { &read } else { &write };
        let res = send(&app, token, &method, &url, body, &m.ent_id).await;
        if route.path.starts_with("/u/") {
            // An upload's link is its own capability (unguessable, no session read).
            assert!(res.status().is_success(), "{method} {url}");
            continue;
        }
        assert_eq!(res.status(), 403, "{method} {url} with a token (api: {})", route.api);
        assert_eq!(error_code(res).await, "token_scope", "{method} {url}");
    }
    // The writes, with a write token, on fresh objects.
    let ids = ids_of(&app, &m).await;
    for route in tenant_routes.iter().filter(|r| r.api) {
        let (method, url, body) = case(&route.method, route.path, &ids).unwrap();
        let res = send(&app, &write, &method, &url, body, &m.ent_id).await;
        let status = res.status();
        assert!(served(route.path, res).await, "{method} {url} with a write token: {status}");
    }
}

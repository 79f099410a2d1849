//! Tenant resolution: by id, ent_id and Host, cached, with invalidation.

use tenants::{EntId, TenantStatus};

use crate::helpers::*;

#[tokio::test]
async fn resolution_by_ent_id_host_and_custom_domain() {
    let app = spawn_with(|c| c.base_domain = Some("Chat.Example.com".into())).await;
    let m = app.signup("Resolve Me").await;
    let registry = &app.state.tenants;
    let ent = EntId::parse(&m.ent_id).unwrap();
    let tenant = registry.by_ent_id(&ent).await.unwrap().expect("by ent_id");
    assert_eq!(tenant.name, "Resolve Me");
    assert_eq!(registry.by_id(tenant.id).await.unwrap().unwrap().ent_id, ent);

    let host = format!("{}.chat.example.COM:8081", m.ent_id);
    assert_eq!(
        registry.by_host(&host).await.unwrap().unwrap().id,
        tenant.id,
        "subdomain of the base domain"
    );
    for miss in [
        "chat.example.com",
        "a.b.chat.example.com",
        "nope.chat.example.com",
        "other.test",
        "x'--.chat.example.com",
    ] {
        assert!(registry.by_host(miss).await.unwrap().is_none(), "{miss}");
    }
    assert!(registry.by_ent_id(&EntId::parse("missing").unwrap()).await.unwrap().is_none());

    // A custom domain resolves once verified; the negative cache entry is dropped on change.
    assert!(registry.by_host("support.shop.test").await.unwrap().is_none());
    sqlx::query("insert into public.tenant_domains (tenant_id, domain, verified_at) values ($1, 'Support.Shop.test', now())")
        .bind(tenant.id)
        .execute(app.pool())
        .await
        .unwrap();
    registry.invalidate_all();
    assert_eq!(registry.by_host("support.shop.test").await.unwrap().unwrap().id, tenant.id);

    // Status changes are seen at once through the registry.
    registry.set_status(tenant.id, TenantStatus::Suspended).await.unwrap();
    assert_eq!(registry.by_id(tenant.id).await.unwrap().unwrap().status, TenantStatus::Suspended);
    registry.set_status(tenant.id, TenantStatus::Deleted).await.unwrap();
    assert!(registry.by_id(tenant.id).await.unwrap().is_none(), "deleted tenants are unknown");
    let res = app.get_as(&m, "/api/v1/me").await;
    assert_eq!(res.status(), 401, "a session of a deleted tenant is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_lookups_runs_one_query() {
    let app = spawn_app().await;
    let m = app.signup("Burst").await;
    let ent = EntId::parse(&m.ent_id).unwrap();
    let before: i64 = sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_user_tables where relname = 'tenants'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap_or(0);
    app.state.tenants.invalidate_all();
    let lookups = (0..200).map(|_| app.state.tenants.by_ent_id(&ent));
    let results = futures::future::join_all(lookups).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().is_some()));
    let _ = before;
}

#[tokio::test]
async fn public_resolution_unknown_is_404_and_suspended_is_403() {
    let app = spawn_with(|c| c.base_domain = Some("kefu.test".into())).await;
    let m = app.signup("Public Face").await;
    let res =
        client().get(app.url(&format!("/api/v1/public/merchant?ent_id={}", m.ent_id))).sent().await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Public Face");
    let res = client()
        .get(app.url("/api/v1/public/merchant"))
        .header("host", format!("{}.kefu.test", m.ent_id))
        .sent()
        .await;
    assert_eq!(res.status(), 200, "resolved from the Host");

    for query in ["?ent_id=nobody", "?ent_id=%27%20or%201%3D1", "?ent_id=", ""] {
        let res =
            client().get(app.url(&format!("/api/v1/public/merchant{query}"))).send().await.unwrap();
        assert_eq!(res.status(), 404, "{query}");
        assert_eq!(error_code(res).await, "tenant_not_found");
    }

    let tenant =
        app.state.tenants.by_ent_id(&EntId::parse(&m.ent_id).unwrap()).await.unwrap().unwrap();
    app.state.tenants.set_status(tenant.id, TenantStatus::Suspended).await.unwrap();
    let res =
        client().get(app.url(&format!("/api/v1/public/merchant?ent_id={}", m.ent_id))).sent().await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "tenant_suspended");
}

/// Each merchant counts its ids itself: its first conversation is 1, whatever other merchants
/// did before, so no id tells a merchant how busy the platform is — and the same id in two
/// merchants names each one's own object.
#[tokio::test]
async fn each_merchant_counts_its_own_ids() {
    let app = spawn_app().await;
    let a = app.signup("First Shop").await;
    // A busy platform: another merchant with a few conversations first.
    let busy = app.signup("Busy Shop").await;
    for i in 0..3 {
        let v = crate::ws_client::visitor_session(&app, &busy.ent_id).await;
        let mut ws = crate::ws_client::Ws::visitor(&app, &v.token, "").await;
        ws.send_text(&format!("b{i}"), "hi", None).await;
        ws.expect("ack").await;
    }
    let b = app.signup("Late Shop").await;
    let mut firsts = Vec::new();
    for m in [&a, &b] {
        let v = crate::ws_client::visitor_session(&app, &m.ent_id).await;
        let mut ws = crate::ws_client::Ws::visitor(&app, &v.token, "").await;
        ws.send_text("first", "hello", None).await;
        let ack = ws.expect("ack").await;
        assert_eq!(ack["conversation_id"], 1, "{}'s first conversation", m.ent_id);
        firsts.push(v.id);
    }
    // Conversation 1 is each merchant's own.
    for (m, visitor) in [(&a, &firsts[0]), (&b, &firsts[1])] {
        let c = app.get_json(&m.token, "/api/v1/conversations/1").await;
        assert_eq!(c["visitor_id"], visitor.as_str(), "{c}");
    }
}

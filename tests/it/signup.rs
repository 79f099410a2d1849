//! Sign-up: the tenant, its schema and its owner appear together, or not at all.

use serde_json::{Value, json};
use tenants::{Migration, TenantMigrator};

use crate::helpers::*;

#[tokio::test]
async fn signup_creates_tenant_schema_and_owner() {
    let app = spawn_app().await;
    let m = app.signup("Lumen Store").await;

    let (id, name, plan, status, version, trial_days): (i64, String, String, String, i32, f64) =
        sqlx::query_as(
            "select id, name, plan, status, schema_version,
                (extract(epoch from trial_ends_at - created_at) / 86400)::float8
         from public.tenants where ent_id = $1",
        )
        .bind(&m.ent_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!((name.as_str(), plan.as_str(), status.as_str()), ("Lumen Store", "trial", "active"));
    assert_eq!(version, TenantMigrator::embedded().latest());
    assert!((trial_days - 14.0).abs() < 0.01, "trial lasts 14 days, got {trial_days}");

    let schema = format!("tenant_{id}");
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = $1 order by 1",
    )
    .bind(&schema)
    .fetch_all(app.pool())
    .await
    .unwrap();
    for expected in [
        "agents",
        "conversations",
        "messages",
        "notes",
        "settings",
        "tags",
        "visitor_tags",
        "visitors",
        "_kefu_migrations",
    ] {
        assert!(tables.iter().any(|t| t == expected), "{schema} lacks {expected}: {tables:?}");
    }

    let me: Value = app.get_as(&m, "/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["agent"]["role"], "owner");
    assert_eq!(me["user"]["email"], m.email.as_str());
    assert_eq!(me["tenant"]["ent_id"], m.ent_id.as_str());
    let members: i64 =
        sqlx::query_scalar("select count(*) from public.tenant_members where tenant_id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(members, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signups_with_one_email_exactly_one_wins() {
    let app = spawn_app().await;
    let email = unique_email("race");
    let attempts = (0..12).map(|i| {
        let (url, email) = (app.url("/api/v1/signup"), email.clone());
        async move {
            client()
                .post(url)
                .json(&json!({ "company": format!("Racer {i}"), "email": email.to_uppercase(), "password": PASSWORD }))
                .sent()
                .await
        }
    });
    let responses = futures::future::join_all(attempts).await;
    let mut created = 0;
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            409 => assert_eq!(error_code(res).await, "email_taken"),
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!(created, 1, "exactly one sign-up wins");
    let pool = app.pool();
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap()
    };
    assert_eq!(count("select count(*) from public.users").await, 1);
    assert_eq!(count("select count(*) from public.tenants").await, 1);
    assert_eq!(
        count(
            "select count(*) from information_schema.schemata where schema_name like 'tenant\\_%'"
        )
        .await,
        1,
        "losing sign-ups leave no schema behind"
    );
}

#[tokio::test]
async fn signup_reports_every_bad_field() {
    let app = spawn_app().await;
    let res = client()
        .post(app.url("/api/v1/signup"))
        .json(&json!({ "company": "  ", "email": "not-an-email", "password": "short" }))
        .sent()
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields = body["error"]["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 3, "{fields:?}");
    assert!(fields["email"].as_str().unwrap().contains("valid email"));
    assert!(fields["password"].as_str().unwrap().contains("10 characters"));
}

#[tokio::test]
async fn a_failing_provisioning_leaves_nothing_behind() {
    let app = spawn_app().await;
    let broken = TenantMigrator::embedded().with(Migration {
        version: 9_999,
        name: "broken",
        sql: "create table oops (;",
    });
    let email = kefu::auth::validate::Email::parse(&unique_email("atomic")).unwrap();
    let err = kefu::merchant::create(
        app.pool(),
        &broken,
        &app.state.tenants,
        kefu::merchant::NewMerchant {
            company: "Half".into(),
            owner_email: email,
            owner_password_hash: "x".into(),
        },
    )
    .await;
    assert!(err.is_err());
    let (users, tenants, schemas): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from public.users), (select count(*) from public.tenants),
                (select count(*) from information_schema.schemata where schema_name like 'tenant\\_%')",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((users, tenants, schemas), (0, 0, 0));
}

#[tokio::test]
async fn signup_page_flow_lands_in_the_workspace() {
    let app = spawn_app().await;
    let browser = client();
    let csrf = form_csrf(&browser, &app, "/signup").await;

    // Without the CSRF token: refused, nothing created.
    let email = unique_email("page");
    let form = [("company", "Page Co"), ("email", email.as_str()), ("password", PASSWORD)];
    let res = browser.post(app.url("/signup")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 403);

    let mut with_token = form.to_vec();
    with_token.push(("csrf_token", &csrf));
    let res = browser.post(app.url("/signup")).form(&with_token).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()["location"], "/app");
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("kefu_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );

    let workspace = browser.get(app.url("/app")).send().await.unwrap();
    assert_eq!(workspace.status(), 200);
    let html = workspace.text().await.unwrap();
    assert!(html.contains("Page Co"));
    assert!(html.contains("/chatIndex?ent_id="));

    // Invalid input re-renders the form with field messages, in the page's language.
    let res = browser
        .post(app.url("/signup?lang=zh-CN"))
        .form(&[("company", "X"), ("email", "bad"), ("password", "short"), ("csrf_token", &csrf)])
        .sent()
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("请输入有效的邮箱地址"), "localized field error: {html}");
    assert!(html.contains("至少需要 10 个字符"));
}

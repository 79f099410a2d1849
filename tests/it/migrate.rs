//! `kefu migrate` and the refusal to serve a database that is behind — through the library
//! and through the real binary.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use kefu::startup::prepare_database;
use tenants::{Function, MigrateOptions, Migration, TenantMigrator};

use crate::helpers::*;

/// Runs the embedded migrations over the one tenant a test set back, which must catch up.
async fn migrate_the_one_behind(app: &TestApp) {
    let report = TenantMigrator::embedded()
        .migrate_all(app.pool(), &MigrateOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((report.migrated, report.failed.len()), (1, 0));
}

fn next_migration() -> TenantMigrator {
    let embedded = TenantMigrator::embedded();
    let version = embedded.latest() + 1;
    embedded.with(Migration { version, name: "test_extra", sql: "create table extra (id bigint primary key); alter table agents add column nickname text;" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_migration_blocks_serving_until_migrate_runs_and_migrate_is_idempotent() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.signup(&format!("Shop {i}")).await;
    }
    let newer = next_migration();
    let err = prepare_database(app.pool(), &newer).await.unwrap_err().to_string();
    assert!(err.contains("5 tenant schema(s) behind") && err.contains("kefu migrate"), "{err}");

    let options = MigrateOptions { concurrency: 3, ..MigrateOptions::default() };
    let report = newer.migrate_all(app.pool(), &options, |_, _| {}).await.unwrap();
    assert_eq!((report.behind, report.migrated, report.applied, report.failed.len()), (5, 5, 5, 0));
    prepare_database(app.pool(), &newer).await.expect("current after migrate");
    let again = newer.migrate_all(app.pool(), &options, |_, _| {}).await.unwrap();
    assert_eq!((again.behind, again.applied), (0, 0), "idempotent");

    // Every schema really has the new table and column, recorded once.
    let (tables, records): (i64, i64) = sqlx::query_as(
        "select (select count(*) from information_schema.tables where table_name = 'extra' and table_schema like 'tenant\\_%'),
                (select count(*) from information_schema.columns where column_name = 'nickname')",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((tables, records), (5, 5));
}

#[tokio::test]
async fn a_migration_changed_after_it_ran_is_reported_not_reapplied() {
    let app = spawn_app().await;
    app.signup("Checksum").await;
    let v = TenantMigrator::embedded().latest() + 1;
    let original = TenantMigrator::embedded().with(Migration {
        version: v,
        name: "x",
        sql: "create table x1 (id int);",
    });
    original.migrate_all(app.pool(), &MigrateOptions::default(), |_, _| {}).await.unwrap();
    // Pretend the tenant is behind again, with an edited migration.
    sqlx::query("update public.tenants set schema_version = 1").execute(app.pool()).await.unwrap();
    let edited = TenantMigrator::embedded().with(Migration {
        version: v,
        name: "x",
        sql: "create table x2 (id int);",
    });
    let report =
        edited.migrate_all(app.pool(), &MigrateOptions::default(), |_, _| {}).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("changed after it was applied"), "{:?}", report.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_to_serve_behind_and_migrate_fixes_it() {
    let app = spawn_app().await;
    app.signup("Binary One").await;
    app.signup("Binary Two").await;
    let url = database_url(&app.options);
    let kefu = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
        cmd.args(args)
            .env("DATABASE_URL", &url)
            .env("KEFU_DATA_DIR", tempfile::tempdir().unwrap().keep())
            .env("KEFU_JWT_SECRET", "binary-test-secret-".repeat(3))
            .env("KEFU_LOG", "warn")
            .env_remove("KEFU_CONFIG");
        cmd
    };
    // One tenant falls behind (as after an upgrade that added a tenant migration).
    sqlx::query("update public.tenants set schema_version = 0 where name = 'Binary Two'")
        .execute(app.pool())
        .await
        .unwrap();

    let out = kefu(&["serve", "-p", "0"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 tenant schema(s) behind") && stderr.contains("kefu migrate"),
        "{stderr}"
    );

    for expected_behind in [1, 0] {
        let out = kefu(&["migrate"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("tenant schemas: {expected_behind} behind")), "{stdout}");
    }

    // Now it serves; SIGTERM stops it cleanly.
    let mut child =
        kefu(&["serve", "-p", "0"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url_line = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains("kefu is running at"))
        .expect("serve prints its URL");
    let base = url_line.split("at ").nth(1).unwrap().trim().to_owned();
    let health = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "graceful shutdown exits 0");
}

#[tokio::test]
async fn cli_manages_tenants_and_admins() {
    let app = spawn_app().await;
    let url = database_url(&app.options);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("KEFU_DATA_DIR", tempfile::tempdir().unwrap().keep())
            .env("KEFU_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) =
        run(&["tenant", "create", "--name", "CLI Shop", "--owner-email", "cli@example.com"]);
    assert!(ok, "{out}");
    let ent_id = out.split("ent_id ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let password =
        out.split("password: ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let res = client()
        .post(app.url("/api/v1/login"))
        .json(&serde_json::json!({"email": "cli@example.com", "password": password}))
        .sent()
        .await;
    assert_eq!(res.status(), 200, "the printed password works");

    let (ok, out) = run(&["tenant", "list"]);
    assert!(ok && out.contains(&ent_id) && out.contains("CLI Shop"), "{out}");
    let (ok, out) = run(&["tenant", "suspend", &ent_id]);
    assert!(ok && out.contains("suspended"), "{out}");
    let status: String = sqlx::query_scalar("select status from public.tenants where ent_id = $1")
        .bind(&ent_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(status, "suspended");
    let (ok, _) = run(&["tenant", "resume", &ent_id]);
    assert!(ok);
    let (ok, out) = run(&["tenant", "suspend", "no-such-tenant"]);
    assert!(!ok && out.contains("no merchant"), "{out}");
    let (ok, out) = run(&["tenant", "create", "--name", "Dup", "--owner-email", "CLI@example.com"]);
    assert!(!ok && out.contains("already exists"), "{out}");

    let (ok, out) = run(&["admin", "create", "--email", "root@example.com"]);
    assert!(ok && out.contains("Password: "), "{out}");
    let admins: i64 = sqlx::query_scalar("select count(*) from public.platform_admins")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(admins, 1);
    let res = client().post(app.url("/api/v1/login")).json(&serde_json::json!({"email": "root@example.com", "password": out.split("Password: ").nth(1).unwrap().split_whitespace().next().unwrap()})).send().await.unwrap();
    assert_eq!(res.status(), 403, "a platform admin without a merchant has no workspace");
    assert_eq!(error_code(res).await, "no_workspace");
    let (ok, out) = run(&["install", "--email", "second@example.com"]);
    assert!(ok && out.contains("tenant schemas: 0 behind") && out.contains("Password: "), "{out}");
    let (ok, out) = run(&["admin", "create", "--email", "not an email"]);
    assert!(!ok && out.contains("valid email"), "{out}");
}

/// Tenant migration 0007: the welcome, offline and out-of-hours messages stored as plain
/// text (before they became rich text) are escaped into HTML with their lines kept.
#[tokio::test]
async fn plain_text_messages_become_rich_text() {
    let app = spawn_app().await;
    let m = app.signup("Old Shop").await;
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    // The tenant as it was at version 6, with values written by that version.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"delete from {schema}._kefu_migrations where version = 7;
           update public.tenants set schema_version = 6 where ent_id = '{ent}';
           insert into {schema}.settings (key, value) values
             ('welcome_message', to_jsonb(E'Hi & welcome <3\nAsk us "anything"'::text)),
             ('offline_message', to_jsonb(''::text)),
             ('business_hours', '{{"enabled": true, "time_zone": "UTC", "days": [[],[],[],[],[],[],[]], "out_of_hours_message": "Closed.\nBack at 9."}}'),
             ('service_name', to_jsonb('Not <touched>'::text));"#,
        ent = m.ent_id
    )))
    .execute(app.pool())
    .await
    .unwrap();
    migrate_the_one_behind(&app).await;
    let s: serde_json::Value = app.get_as(&m, "/api/v1/settings").await.json().await.unwrap();
    assert_eq!(s["welcome_message"], "Hi &amp; welcome &lt;3<br>Ask us \"anything\"");
    assert_eq!(s["offline_message"], "");
    assert_eq!(s["business_hours"]["out_of_hours_message"], "Closed.<br>Back at 9.");
    assert_eq!(s["service_name"], "Not <touched>");
}

/// Messages left before they were conversations (0022) become leads: each a queued
/// conversation marked left while offline, the text its visitor's message, an address in
/// the profile; one whose visitor was deleted since gets a visitor of its own.
#[tokio::test]
async fn left_messages_of_before_become_leads() {
    let app = spawn_app().await;
    let m = app.signup("Old Leads").await;
    let v = crate::ws_client::visitor_session(&app, &m.ent_id).await;
    let schema = format!("tenant_{}", tenant_id(app.pool(), &m.ent_id).await.0);
    // The tenant as it was at version 21, with two left messages.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"drop index {schema}.messages_mentions_idx;
           alter table {schema}.visitors drop column name_rank;
           drop table {schema}.saved_views;
           drop table {schema}.visitor_merges;
           drop index {schema}.visitors_visit_count_idx;
           drop index {schema}.messages_search_idx;
           alter table {schema}.messages drop column search;
           alter table {schema}.conversations drop column left_offline_at;
           create table {schema}.leave_messages (
               id bigint primary key, visitor_id bigint references {schema}.visitors (id) on delete set null,
               name text not null default '', contact text not null default '', body text not null,
               handled_at timestamptz, created_at timestamptz not null default now());
           insert into {schema}.leave_messages (id, visitor_id, name, contact, body)
           select 1, id, 'Ann', 'Ann@Example.com', 'Call me back' from {schema}.visitors where public_id = '{visitor}';
           insert into {schema}.leave_messages (id, visitor_id, name, contact, body)
           values (2, null, '', 'WeChat: lamp_fan', '还有白色的吗？');
           delete from {schema}._kefu_migrations where version >= 22;
           update public.tenants set schema_version = 21 where ent_id = '{ent}';"#,
        visitor = v.id,
        ent = m.ent_id
    )))
    .execute(app.pool())
    .await
    .unwrap();
    migrate_the_one_behind(&app).await;
    let list = app.get_json(&m.token, "/api/v1/conversations?view=all&status=any").await;
    let leads = list["conversations"].as_array().unwrap();
    assert_eq!(leads.len(), 2, "{list:#}");
    assert!(leads.iter().all(|c| c["status"] == "queued" && c["left_offline_at"].is_string()));
    let said = |text: &str| leads.iter().find(|c| c["last_message"] == text).cloned();
    let orphan =
        said("还有白色的吗？\n\nWeChat: lamp_fan").expect("the orphan's message, contact kept");
    assert_eq!(orphan["visitor_name"], "Visitor");
    let ann = said("Call me back").expect("Ann's message");
    let visitor = app
        .get_json(&m.token, &format!("/api/v1/visitors/{}", ann["visitor_id"].as_str().unwrap()))
        .await;
    assert_eq!(visitor["email"], "ann@example.com", "{visitor:#}");
    assert_eq!(visitor["real_name"], "Ann");
    // They are searchable like every message.
    let found = app.get_json(&m.token, "/api/v1/search?q=%E7%99%BD%E8%89%B2").await;
    assert_eq!(found["messages"].as_array().unwrap().len(), 1, "{found:#}");
}

/// A function (tenants/functions/) is re-applied wherever its text changed, and a changed
/// function holds serving back like a migration does, until `migrate` applies it.
#[tokio::test]
async fn a_changed_tenant_function_is_reapplied_by_migrate() {
    let app = spawn_app().await;
    app.signup("Function One").await;
    app.signup("Function Two").await;
    let embedded = TenantMigrator::embedded();
    let store = embedded.functions().iter().find(|f| f.name == "store_messages").unwrap();
    let changed = format!(
        "{}\ncomment on function store_messages(bigint[], text[], bigint[], text[], text[], text[], text[], bigint) is 'v2';",
        store.sql
    );
    let newer = embedded
        .clone()
        .with_functions(vec![Function { name: "store_messages", sql: changed.leak() }]);
    prepare_database(app.pool(), &embedded).await.expect("current with the embedded functions");
    let err = prepare_database(app.pool(), &newer).await.unwrap_err().to_string();
    assert!(err.contains("2 tenant schema(s) behind"), "{err}");

    let report =
        newer.migrate_all(app.pool(), &MigrateOptions::default(), |_, _| {}).await.unwrap();
    assert_eq!((report.behind, report.migrated, report.applied, report.failed.len()), (2, 2, 0, 0));
    let commented: i64 = sqlx::query_scalar(
        "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where p.proname = 'store_messages' and n.nspname like 'tenant\\_%'
           and obj_description(p.oid, 'pg_proc') = 'v2'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(commented, 2, "every schema has the new definition");
    prepare_database(app.pool(), &newer).await.expect("current after migrate");
    let again = newer.migrate_all(app.pool(), &MigrateOptions::default(), |_, _| {}).await.unwrap();
    assert_eq!(again.behind, 0, "idempotent");
    // Going back is a change too (a rollback of the binary re-applies its own text).
    assert_eq!(embedded.tenants_behind(app.pool()).await.unwrap().len(), 2);
}

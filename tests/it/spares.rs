//! Spare tenant schemas (tenants/src/spares.rs): sign-up claims one built ahead of time, the
//! tenant it becomes works like any other, the stock is topped up, and a spare left behind by
//! a newer migration is dropped instead of handed out.

use std::time::Duration;

use sqlx::PgPool;
use tenants::{TenantMigrator, spares};

use crate::{
    helpers::{spawn_app, spawn_with, stored_visitor_message_ids, tenant_id},
    ws_client::{Ws, visitor_session},
};

async fn spare_ids(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("select tenant_id from public.spare_schemas order by tenant_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn schema_exists(pool: &PgPool, id: i64) -> bool {
    sqlx::query_scalar::<_, bool>(
        "select exists (select 1 from pg_namespace where nspname = 'tenant_' || $1::text)",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until the background job has `want` spares ready.
async fn stocked(pool: &PgPool, want: usize) -> Vec<i64> {
    for _ in 0..300 {
        let ids = spare_ids(pool).await;
        if ids.len() == want {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the spare stock never reached {want}: {:?}", spare_ids(pool).await);
}

#[tokio::test]
async fn sign_up_takes_a_spare_and_the_stock_is_topped_up() {
    let app = spawn_with(|c| {
        c.spare_schemas = 2;
        c.spare_interval_secs = 1;
    })
    .await;
    let pool = app.pool();
    let ready = stocked(pool, 2).await;
    for &id in &ready {
        assert!(schema_exists(pool, id).await, "spare {id} has its schema");
    }

    // Two sign-ups at once take the two spares, one each.
    let (a, b) = tokio::join!(app.signup("Spare One"), app.signup("Spare Two"));
    let (ta, tb) = (tenant_id(pool, &a.ent_id).await.0, tenant_id(pool, &b.ent_id).await.0);
    let mut taken = vec![ta, tb];
    taken.sort_unstable();
    assert_eq!(taken, ready, "each sign-up claimed a different spare");
    let version: i32 =
        sqlx::query_scalar("select schema_version from public.tenants where id = $1")
            .bind(ta)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(version, TenantMigrator::embedded().latest());

    // The adopted schema is a whole tenant: its pinned message function stores a chat.
    let v = visitor_session(&app, &a.ent_id).await;
    let mut visitor = Ws::visitor(&app, &v.token, "").await;
    visitor.expect("hello").await;
    visitor.send_text("spare-1", "hello from a spare schema", None).await;
    let ack = visitor.expect("ack").await;
    assert_eq!(
        stored_visitor_message_ids(pool, &a.ent_id).await,
        vec![ack["id"].as_i64().unwrap()]
    );

    // The job builds two new ones; the tenants keep theirs.
    let refilled = stocked(pool, 2).await;
    assert!(refilled.iter().all(|id| !taken.contains(id)), "{refilled:?} are new spares");
    let res = app.get_as(&b, "/api/v1/conversations").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_out_of_date_spare_is_dropped_not_handed_out() {
    let app = spawn_app().await; // no background stock: this test drives refills itself
    let pool = app.pool();
    let migrator = TenantMigrator::embedded();
    let report = spares::refill(pool, &migrator, 1).await.unwrap();
    assert_eq!((report.built, report.dropped), (1, 0));
    assert_eq!(spares::count(pool).await.unwrap(), 1);
    let again = spares::refill(pool, &migrator, 1).await.unwrap();
    assert_eq!((again.built, again.dropped), (0, 0), "a full stock is left alone");

    // As if this binary had just gained a tenant migration the spare lacks.
    let [old] = spare_ids(pool).await[..] else { panic!("one spare") };
    sqlx::query("update public.spare_schemas set schema_version = schema_version - 1")
        .execute(pool)
        .await
        .unwrap();
    let m = app.signup("Fresh Schema").await;
    let tenant = tenant_id(pool, &m.ent_id).await.0;
    assert_ne!(tenant, old, "an out-of-date spare is never claimed");
    assert_eq!(spare_ids(pool).await, vec![old]);

    let report = spares::refill(pool, &migrator, 1).await.unwrap();
    assert_eq!((report.built, report.dropped), (1, 1));
    assert!(!schema_exists(pool, old).await, "the out-of-date spare's schema is dropped");
    let [new] = spare_ids(pool).await[..] else { panic!("one spare") };
    assert!(new > tenant && schema_exists(pool, new).await);

    // A spare is only a schema until it is claimed: no tenant row, so nothing resolves to it.
    let rows: i64 = sqlx::query_scalar("select count(*) from public.tenants where id = $1")
        .bind(new)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(app.get_as(&m, "/api/v1/conversations").await.status(), 200);
}

//! Tenant provisioning latency: `create schema` + the tenant migrations + the records, in one
//! transaction, committed — what sign-up pays. Runs on a private durable cluster (fsync on),
//! started with the same launcher `kefu serve` uses.
//!
//!     cargo bench --bench provisioning                 # 300 tenants
//!     cargo bench --bench provisioning -- --tenants 2000
//!
//! Also reports `migrate_all` of one new tenant migration across every provisioned tenant.

use std::time::{Duration, Instant};

use kefu::db::{EmbeddedOptions, EmbeddedPostgres, PLATFORM_MIGRATOR, pool_options};
use tenants::{MigrateOptions, Migration, NewTenant, TenantMigrator, provision};

fn main() {
    let mut tenants = 300usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tenants" => tenants = args.next().and_then(|v| v.parse().ok()).expect("--tenants N"),
            "--bench" => {}
            other if other.starts_with("--") => {}
            _ => {}
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = EmbeddedPostgres::start(&dir.path().join("pg"), EmbeddedOptions::default())
        .expect("embedded PostgreSQL starts");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = runtime.block_on(run(&pg, tenants));
    let _ = pg.stop_immediately();
    result.expect("benchmark");
}

async fn run(pg: &EmbeddedPostgres, count: usize) -> anyhow::Result<()> {
    pg.ensure_database("bench").await?;
    let pool = pool_options(8).connect_with(pg.connect_options("bench")).await?;
    PLATFORM_MIGRATOR.run(&pool).await?;
    let migrator = TenantMigrator::embedded();

    // Warm-up: first-use costs (catalog caches, plan caches) are not what sign-up pays.
    for _ in 0..10 {
        provision_one(&pool, &migrator).await?;
    }
    let mut samples = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        provision_one(&pool, &migrator).await?;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "provisioning {count} tenants (schema + {} tenant migration(s), one transaction, durable commit):",
        migrator.latest()
    );
    println!(
        "  p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   ({:.0} tenants/s)",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*samples.last().unwrap()),
        count as f64 / total.as_secs_f64()
    );

    let newer = migrator.clone().with(Migration {
        version: migrator.latest() + 1,
        name: "bench_extra",
        sql: "create table bench_extra (id bigint primary key, note text); alter table visitors add column bench_flag boolean",
    });
    let report = newer
        .migrate_all(
            &pool,
            &MigrateOptions { concurrency: 4, ..MigrateOptions::default() },
            |_, _| {},
        )
        .await?;
    println!(
        "migrate_all: {} tenants, 1 new migration each, concurrency 4: {:.2?} ({:.0} tenants/s), {} failed",
        report.behind,
        report.elapsed,
        report.behind as f64 / report.elapsed.as_secs_f64(),
        report.failed.len()
    );
    pool.close().await;
    Ok(())
}

async fn provision_one(pool: &sqlx::PgPool, migrator: &TenantMigrator) -> anyhow::Result<()> {
    let tx = pool.begin().await?;
    let new =
        NewTenant { name: "Bench".into(), plan: "trial".into(), trial_ends_at: None, ent_id: None };
    let (_, tx) = provision(tx, migrator, new).await?;
    tx.commit().await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

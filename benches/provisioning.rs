//! Tenant provisioning latency — what sign-up pays for the tenant, in one transaction,
//! committed — with a spare schema ready (claim it, insert the row) and without one (`create
//! schema` + every tenant migration), measured in a database already holding `--tenants`
//! tenants. Runs on a private durable cluster (fsync on), started with the same launcher
//! `kefu serve` uses.
//!
//!     cargo bench --bench provisioning                 # 300 tenants
//!     cargo bench --bench provisioning -- --tenants 10000
//!
//! Also reports `migrate_all` of one new tenant migration across every provisioned tenant.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kefu::db::{EmbeddedOptions, EmbeddedPostgres, PLATFORM_MIGRATOR, pool_options};
use tenants::{MigrateOptions, Migration, NewTenant, TenantMigrator, provision, spares};

/// Sign-ups measured with a spare schema ready (and a third as many without).
const SAMPLES: usize = 300;

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

    // Fill the database first: `count` tenants, four at a time (the catalog's size is what
    // makes provisioning slow, so the measurements below run against it).
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|_| provision_one(&pool, &migrator))
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "filled {count} tenants (schema + {} tenant migration(s) each, 4 at a time): {:.1?} ({:.0} tenants/s)",
        migrator.latest(),
        started.elapsed(),
        count as f64 / started.elapsed().as_secs_f64()
    );

    // Sign-up as the server does it: a spare schema is ready (the server's job keeps a few),
    // so provisioning claims it instead of running the migrations. The refill is not timed.
    let mut with_spare = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        spares::refill(&pool, &migrator, 1).await?;
        let t = Instant::now();
        provision_one(&pool, &migrator).await?;
        with_spare.push(t.elapsed());
    }
    report(&format!("with a spare schema ready, {SAMPLES} sign-ups"), with_spare);

    // And without one (the stock ran out): the schema is built inside the sign-up.
    let mut on_demand = Vec::with_capacity(SAMPLES / 3);
    for _ in 0..SAMPLES / 3 {
        let t = Instant::now();
        provision_one(&pool, &migrator).await?;
        on_demand.push(t.elapsed());
    }
    report(&format!("no spare (schema built on demand), {} sign-ups", SAMPLES / 3), on_demand);

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

/// Prints the percentiles of `samples` under `what`.
fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!("provisioning, {what} (one transaction, durable commit):");
    println!(
        "  p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*samples.last().unwrap()),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

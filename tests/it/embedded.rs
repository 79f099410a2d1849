//! The embedded PostgreSQL launcher: restart, crash recovery, adoption.

use kefu::db::{EmbeddedOptions, EmbeddedPostgres};
use nix::{sys::signal, unistd::Pid};
use sqlx::{ConnectOptions as _, Connection as _};

async fn answers(pg: &EmbeddedPostgres) -> bool {
    match pg.connect_options("postgres").connect().await {
        Ok(mut conn) => {
            let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            one == 1
        }
        Err(_) => false,
    }
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

#[tokio::test]
async fn survives_restart_kill_and_adopts_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("data").join("postgres");
    let start = {
        let cluster = cluster.clone();
        move || EmbeddedPostgres::start(&cluster, EmbeddedOptions { unsafe_fast: true }).unwrap()
    };

    let pg = blocking(start.clone()).await.unwrap();
    assert!(pg.started_here());
    assert!(answers(&pg).await);

    // A second start while it runs adopts it — and does not stop it when done.
    let adopted = blocking(start.clone()).await.unwrap();
    assert!(!adopted.started_here());
    assert!(answers(&adopted).await);
    adopted.stop(false).unwrap();
    assert!(answers(&pg).await, "an adopted server is left running");

    // Clean stop, then start again on the same cluster (no second initdb).
    let pg = blocking(move || {
        pg.stop(false).unwrap();
        pg
    })
    .await
    .unwrap();
    assert!(!answers(&pg).await);
    let pg = blocking(start.clone()).await.unwrap();
    assert!(pg.started_here());
    assert!(answers(&pg).await);

    // The whole server killed (as when the machine's OOM killer or `kill -9` hits kefu's
    // database): the stale postmaster.pid is handled and the next start recovers.
    let pid_file = pg.cluster_dir().join("postmaster.pid");
    let pid: i32 =
        std::fs::read_to_string(&pid_file).unwrap().lines().next().unwrap().trim().parse().unwrap();
    signal::kill(Pid::from_raw(pid), signal::Signal::SIGKILL).unwrap();
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Children of a SIGKILLed postmaster exit on their own once they notice; give them a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(pid_file.exists(), "a killed server leaves its pid file behind");
    let pg = blocking(start).await.unwrap();
    assert!(pg.started_here());
    assert!(answers(&pg).await, "recovered after SIGKILL");
    blocking(move || pg.stop_immediately().unwrap()).await.unwrap();
}

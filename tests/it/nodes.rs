//! kefu as separate processes (for stopping and killing them) and a NATS server for several
//! of them to share.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

use crate::helpers::*;

/// The visitor limits a test with many visitors from one address turns off.
pub const VISITOR_LIMITS_OFF: &[&str] = &[
    "SESSIONS_PER_IP",
    "SESSIONS_PER_VISITOR",
    "NEW_VISITORS_PER_IP",
    "CONVERSATIONS_PER_IP",
    "CONVERSATIONS_PER_VISITOR",
    "TICKETS_PER_IP",
    "TICKETS_PER_VISITOR",
    "SOCKETS_PER_VISITOR",
];

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `kefu serve` process on a fixed port and database, restartable.
pub struct Server {
    pub port: u16,
    pub url: String,
    database_url: String,
    data_dir: std::path::PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Server {
    /// A server for `options`' database (not started); `env` adds to its environment.
    pub fn new(port: u16, options: &PgConnectOptions, env: &[(&str, &str)]) -> Self {
        Self {
            port,
            url: format!("http://127.0.0.1:{port}"),
            database_url: database_url(options),
            data_dir: tempfile::tempdir().unwrap().keep(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            child: None,
        }
    }

    pub fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["serve", "-p", &self.port.to_string()])
            .env("DATABASE_URL", &self.database_url)
            .env("KEFU_DATA_DIR", &self.data_dir)
            .env("KEFU_JWT_SECRET", "restart-test-secret-".repeat(3))
            .env("KEFU_WS_RATE_PER_SEC", "100000")
            .env("KEFU_WS_RATE_BURST", "100000")
            .env("KEFU_AUTH_RATE_PER_MINUTE", "100000")
            .env("KEFU_AUTH_RATE_BURST", "100000")
            .env("KEFU_SPARE_SCHEMAS", "0")
            // Every client here comes from 127.0.0.1: the visitor limits are tested elsewhere.
            .envs(VISITOR_LIMITS_OFF.iter().map(|k| (format!("KEFU_VISITOR_LIMITS__{k}"), "0")))
            .env("KEFU_LOG", "warn")
            .env_remove("KEFU_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(res) = client().get(format!("{}/readyz", self.url)).send().await {
                if res.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("kefu did not become ready");
    }

    /// Signs a merchant up; returns its ent_id and the owner's token.
    pub async fn signup(&self, company: &str) -> (String, String) {
        let body = json!({"company": company, "email": unique_email("node"), "password": PASSWORD});
        let res = client().post(format!("{}/api/v1/signup", self.url)).json(&body).send().await;
        let signup: Value = res.unwrap().json().await.unwrap();
        (
            signup["ent_id"].as_str().unwrap().to_owned(),
            signup["token"].as_str().unwrap().to_owned(),
        )
    }

    /// A new visitor of `ent_id`: its token.
    pub async fn visitor_token(&self, ent_id: &str) -> String {
        let res = client()
            .post(format!("{}/api/v1/visitor/session", self.url))
            .json(&json!({ "ent_id": ent_id }))
            .send()
            .await;
        let session: Value = res.unwrap().json().await.unwrap();
        session["token"].as_str().unwrap().to_owned()
    }

    /// Stops the process with `signal` and returns its exit status.
    pub async fn stop(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `nats-server` on loopback (the Debian package), restartable on the same port.
pub struct Nats {
    bin: String,
    pub port: u16,
    pub url: String,
    child: Option<Child>,
}

impl Nats {
    /// Starts one, or — when nats-server is not installed — says so and returns `None`,
    /// unless `KEFU_REQUIRE_NATS=1` (`.ci/run` sets it after installing it).
    pub async fn start() -> Option<Nats> {
        let bin = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|bin| {
                Command::new(bin)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var("KEFU_REQUIRE_NATS").as_deref() != Ok("1"),
                "KEFU_REQUIRE_NATS=1 but nats-server is missing (apt-get install nats-server)"
            );
            eprintln!("skipped: nats-server is not installed (apt-get install nats-server)");
            return None;
        };
        let port = free_port();
        let mut nats = Nats {
            bin: bin.to_owned(),
            port,
            url: format!("nats://127.0.0.1:{port}"),
            child: None,
        };
        nats.restart().await;
        Some(nats)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start");
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

//! kefu-bench: a load generator for kefu's real-time chat, run on loopback.
//!
//!   kefu-bench idle  --visitors 19000     hold idle visitor sockets, report server RSS per socket
//!   kefu-bench load  --visitors 2000 --rate 10000 --duration 20 [--tenants 1000]
//!                                          visitor → agent traffic at a fixed rate: durable
//!                                          msgs/s delivered and end-to-end latency measured
//!                                          from the *intended* send time (no coordinated omission)
//!   kefu-bench burst --visitors 5000 --cycles 3
//!                                          connect all at once, leave all at once; the server's
//!                                          open files and RSS must return to the baseline
//!
//! Without `--url` it starts `kefu serve` itself (the release binary next to this one) on
//! an embedded PostgreSQL in a temporary directory, so it knows the server's pid; with
//! `--nodes N` it starts N of them on that one database and a `nats-server` for their bus
//! (`load` then spreads visitors over the nodes, so messages cross between them). The
//! machine allows 20,000 open files per process, so `idle` spreads sockets over worker
//! processes, each connecting from its own 127.0.0.x address (ephemeral ports are per
//! source address). See docs/benchmarks.md.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use futures::{SinkExt as _, StreamExt as _, stream};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

#[derive(Parser)]
#[command(name = "kefu-bench", about = "Load generator for kefu")]
struct Cli {
    /// Target an already running server instead of starting one.
    #[arg(long, global = true)]
    url: Option<String>,
    /// With --url: the server's pid, for RSS and open-file readings.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Without --url: kefu processes to start, sharing one database and a NATS server.
    #[arg(long, global = true, default_value_t = 1)]
    nodes: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Hold idle visitor sockets and measure the server's memory per socket.
    Idle {
        #[arg(long, default_value_t = 19_000)]
        visitors: usize,
        /// Sockets per worker process (each process may hold 20,000 files).
        #[arg(long, default_value_t = 7_000)]
        per_process: usize,
    },
    /// Visitors send at a fixed total rate; agents receive. Reports delivered msgs/s and
    /// end-to-end latency.
    Load {
        #[arg(long, default_value_t = 1_000)]
        visitors: usize,
        /// Agent sockets per merchant.
        #[arg(long, default_value_t = 1)]
        agents: usize,
        /// Merchants the visitors are spread over (visitor n talks to merchant n mod T).
        #[arg(long, default_value_t = 1)]
        tenants: usize,
        /// Messages per second, all visitors together.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 15)]
        duration: u64,
        #[arg(long, default_value_t = 3)]
        warmup: u64,
    },
    /// Connect many visitors in one burst, then drop them all at once; repeat.
    Burst {
        #[arg(long, default_value_t = 5_000)]
        visitors: usize,
        #[arg(long, default_value_t = 3)]
        cycles: usize,
    },
    /// (internal) A worker process of `idle`.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        ent_id: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        source: Ipv4Addr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        if let Mode::Worker { ent_id, count, source } = &cli.mode {
            let url = cli.url.clone().context("workers need --url")?;
            return worker(&url, ent_id, *count, *source).await;
        }
        let server = match &cli.url {
            Some(url) => Server {
                url: url.trim_end_matches('/').to_owned(),
                pid: cli.server_pid,
                child: None,
                dir: None,
                others: Vec::new(),
                nats: None,
            },
            None => Server::start(cli.nodes.max(1)).await?,
        };
        let result = match cli.mode {
            Mode::Idle { visitors, per_process } => idle(&server, visitors, per_process).await,
            Mode::Load { visitors, agents, tenants, rate, duration, warmup } => {
                let shape = Shape { visitors, agents, tenants: tenants.clamp(1, visitors.max(1)) };
                load(&server, shape, rate, duration, warmup).await
            }
            Mode::Burst { visitors, cycles } => burst(&server, visitors, cycles).await,
            Mode::Worker { .. } => unreachable!(),
        };
        server.stop().await;
        result
    })
}

// ---------------------------------------------------------------------------------------
// The server under test

struct Server {
    url: String,
    pid: Option<u32>,
    child: Option<Child>,
    dir: Option<PathBuf>,
    /// Further nodes (`--nodes`), on the first one's database: (url, process).
    others: Vec<(String, Child)>,
    nats: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `kefu serve` on `port`; `database_url` None: on the embedded cluster in `dir`.
fn spawn_kefu(
    port: u16,
    dir: &std::path::Path,
    database_url: Option<&str>,
    nats_url: Option<&str>,
) -> anyhow::Result<Child> {
    let kefu = std::env::current_exe()?.with_file_name("kefu");
    if !kefu.exists() {
        bail!("{} not found; build it first: cargo build --release", kefu.display());
    }
    let mut command = Command::new(&kefu);
    command
        .args(["serve", "-p", &port.to_string(), "--config"])
        .arg(dir.join("kefu.toml"))
        .arg("--data-dir")
        .arg(dir)
        .env("KEFU_AUTH_RATE_PER_MINUTE", "1000000")
        .env("KEFU_AUTH_RATE_BURST", "1000000")
        .env("KEFU_LOG", std::env::var("KEFU_LOG").unwrap_or_else(|_| "warn".into()))
        .env_remove("DATABASE_URL")
        .env_remove("KEFU_NATS_URL")
        .stdout(Stdio::null());
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(url) = nats_url {
        command.env("KEFU_NATS_URL", url);
    }
    command.spawn().with_context(|| format!("starting {}", kefu.display()))
}

async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("kefu at {url} did not become ready")
}

impl Server {
    /// Starts `nodes` kefu processes (and, for more than one, a nats-server for their bus).
    async fn start(nodes: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kefu-bench-{}", std::process::id()));
        // The merchants the bench creates are on the trial: lift its limits (a load run
        // opens thousands of conversations), and the limits on visitors (its thousands of
        // visitors all come from this machine's few addresses).
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("kefu.toml"),
            "[plans.trial]\nseats = \"unlimited\"\nconversations_per_month = \"unlimited\"\nstorage_mb = \"unlimited\"\n\
             [visitor_limits]\nsessions_per_ip = 0\nsessions_per_visitor = 0\nnew_visitors_per_ip = 0\nconversations_per_ip = 0\n\
             conversations_per_visitor = 0\ntickets_per_ip = 0\ntickets_per_visitor = 0\nsockets_per_visitor = 0\n",
        )?;
        let (nats, nats_url) = if nodes > 1 {
            let port = free_port()?;
            let bin = ["nats-server", "/usr/sbin/nats-server"]
                .into_iter()
                .find(|b| Command::new(b).arg("--version").stdout(Stdio::null()).status().is_ok())
                .context("--nodes needs nats-server (apt-get install nats-server)")?;
            let child = Command::new(bin)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (Some(child), Some(format!("nats://127.0.0.1:{port}")))
        } else {
            (None, None)
        };
        let port = free_port()?;
        let child = spawn_kefu(port, &dir, None, nats_url.as_deref())?;
        let mut server = Server {
            url: format!("http://127.0.0.1:{port}"),
            pid: Some(child.id()),
            child: Some(child),
            dir: Some(dir.clone()),
            others: Vec::new(),
            nats,
        };
        wait_ready(&server.url).await?;
        eprintln!("kefu-bench: started kefu (pid {}) at {}", server.pid.unwrap(), server.url);
        if nodes > 1 {
            // The first node's embedded cluster: its socket directory is in postmaster.pid.
            let pid_file = std::fs::read_to_string(dir.join("postgres/postmaster.pid"))?;
            let socket = pid_file.lines().nth(4).context("postmaster.pid names no socket")?;
            let database_url = format!("postgres://kefu@localhost/kefu?host={socket}&port=5432");
            for n in 1..nodes {
                let port = free_port()?;
                let node_dir = dir.join(format!("node-{n}"));
                std::fs::create_dir_all(&node_dir)?;
                std::fs::copy(dir.join("kefu.toml"), node_dir.join("kefu.toml"))?;
                // Every node signs tokens with the same secret (the first node's).
                std::fs::copy(dir.join("jwt_secret"), node_dir.join("jwt_secret"))
                    .context("copying the first node's jwt_secret")?;
                let child = spawn_kefu(port, &node_dir, Some(&database_url), nats_url.as_deref())?;
                let url = format!("http://127.0.0.1:{port}");
                server.others.push((url.clone(), child));
                wait_ready(&url).await?;
                eprintln!("kefu-bench: started node {} at {url}", n + 1);
            }
        }
        Ok(server)
    }

    /// Every node's URL, the first first.
    fn urls(&self) -> Vec<String> {
        std::iter::once(self.url.clone())
            .chain(self.others.iter().map(|(u, _)| u.clone()))
            .collect()
    }

    async fn stop(mut self) {
        let children = self.others.drain(..).map(|(_, c)| c).chain(self.child.take());
        for mut child in children.collect::<Vec<_>>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        if let Some(mut nats) = self.nats.take() {
            let _ = nats.kill();
            let _ = nats.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Resident memory in KiB (of every node).
    fn rss_kib(&self) -> Option<u64> {
        let others: u64 =
            self.others.iter().filter_map(|(_, c)| proc_status(c.id(), "VmRSS:")).sum();
        Some(proc_status(self.pid?, "VmRSS:")? + others)
    }

    /// The embedded cluster's processes (children of its postmaster) and the sum of their
    /// private memory in KiB (`RssAnon`: what each backend holds of its own — catalog caches,
    /// plans, work memory — without the shared buffers every process maps).
    fn postgres_memory(&self) -> Option<(usize, u64)> {
        let pid_file = self.dir.as_ref()?.join("postgres/postmaster.pid");
        let postmaster: u32 =
            std::fs::read_to_string(pid_file).ok()?.lines().next()?.parse().ok()?;
        let mut count = 1;
        let mut kib = proc_status(postmaster, "RssAnon:")?;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if proc_status(pid, "PPid:") == Some(u64::from(postmaster)) {
                count += 1;
                kib += proc_status(pid, "RssAnon:").unwrap_or(0);
            }
        }
        Some((count, kib))
    }

    /// Open file descriptors.
    fn open_files(&self) -> Option<usize> {
        Some(std::fs::read_dir(format!("/proc/{}/fd", self.pid?)).ok()?.count())
    }

    /// The server's established TCP connections whose peer is `peer` (from /proc/net/tcp).
    fn connections_from(&self, peer: Ipv4Addr) -> usize {
        let Ok(addr) = self.ws_addr() else { return 0 };
        let port = format!("{:04X}", addr.port());
        let peer_hex = format!("{:08X}", u32::from_le_bytes(peer.octets()));
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3
                    && f[1].ends_with(&format!(":{port}"))
                    && f[2].starts_with(&peer_hex)
                    && f[3] == "01"
            })
            .count()
    }

    fn ws_addr(&self) -> anyhow::Result<SocketAddr> {
        let host = self.url.trim_start_matches("http://");
        host.parse().map_err(|_| anyhow!("--url must be http://IP:PORT on this machine"))
    }
}

/// The number after `key` in `/proc/<pid>/status` (memory fields are in KiB).
fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

// ---------------------------------------------------------------------------------------
// Clients

type Socket = WebSocketStream<tokio::net::TcpStream>;

/// The WebSocket handshake of every generator socket. Its read buffer is small, like the
/// server's: tungstenite zeroes the free part of the buffer (128 KiB by default) before each
/// read, which cost the generator ~4 % of the machine's CPU at 2,000 msgs/s.
async fn handshake(url: String, stream: tokio::net::TcpStream) -> anyhow::Result<Socket> {
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    Ok(client_async_with_config(url, stream, Some(config)).await?.0)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("http client")
}

async fn post(
    http: &reqwest::Client,
    url: String,
    body: Value,
    bearer: Option<&str>,
) -> anyhow::Result<Value> {
    let mut req = http.post(url).json(&body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = req.send().await?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// A merchant to load (the `n`th of this run): its ent_id and the owner's token.
async fn merchant(server: &Server, n: usize) -> anyhow::Result<(String, String)> {
    let email = format!("bench{}-{n}@example.com", std::process::id());
    let body = json!({"company": "Bench", "email": email, "password": "benchmark password 1"});
    let res = post(&http(), format!("{}/api/v1/signup", server.url), body, None).await?;
    Ok((
        res["ent_id"].as_str().context("ent_id")?.to_owned(),
        res["token"].as_str().context("token")?.to_owned(),
    ))
}

async fn visitor_token(http: &reqwest::Client, url: &str, ent_id: &str) -> anyhow::Result<String> {
    let res = post(http, format!("{url}/api/v1/visitor/session"), json!({"ent_id": ent_id}), None)
        .await?;
    Ok(res["token"].as_str().context("token")?.to_owned())
}

/// Opens `path` (which needs a fresh ticket from `ticket_url`) from `source`.
async fn open_socket(
    http: &reqwest::Client,
    url: &str,
    ticket_url: &str,
    token: &str,
    path: &str,
    source: Ipv4Addr,
) -> anyhow::Result<Socket> {
    let ticket = post(http, format!("{url}{ticket_url}"), json!({}), Some(token)).await?;
    let ticket = ticket["ticket"].as_str().context("ticket")?;
    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let sep = if path.contains('?') { '&' } else { '?' };
    handshake(format!("ws://{addr}{path}{sep}ticket={ticket}"), stream).await
}

// ---------------------------------------------------------------------------------------
// idle

async fn worker(url: &str, ent_id: &str, count: usize, source: Ipv4Addr) -> anyhow::Result<()> {
    let http = http();
    // Phase 1: sessions and tickets (HTTP), so the parent can read the server's memory
    // before any socket exists.
    let tickets: Vec<String> = stream::iter(0..count)
        .map(|_| async {
            let token = visitor_token(&http, url, ent_id).await?;
            let ticket =
                post(&http, format!("{url}/api/v1/visitor/ticket"), json!({}), Some(&token))
                    .await?;
            anyhow::Ok(ticket["ticket"].as_str().context("ticket")?.to_owned())
        })
        .buffer_unordered(64)
        .filter_map(|r| async move { r.map_err(|e| eprintln!("worker {source}: {e:#}")).ok() })
        .collect()
        .await;
    println!("prepared {}", tickets.len());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    stdin.next_line().await?; // "go"
    // Phase 2: the sockets.
    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
    let sockets: Vec<Socket> = stream::iter(tickets)
        .map(|ticket| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            handshake(format!("ws://{addr}/ws/visitor?ticket={ticket}"), stream).await
        })
        .buffer_unordered(256)
        .filter_map(|r| async move { r.map_err(|e| eprintln!("worker {source}: {e:#}")).ok() })
        .collect()
        .await;
    let held = sockets.len();
    // Keep reading so pings are answered and the sockets stay alive.
    for mut ws in sockets {
        tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
    println!("held {held}");
    while stdin.next_line().await?.is_some() {}
    Ok(())
}

async fn idle(server: &Server, visitors: usize, per_process: usize) -> anyhow::Result<()> {
    let (ent_id, _) = merchant(server, 0).await?;
    let exe = std::env::current_exe()?;
    let mut workers: Vec<Child> = Vec::new();
    let mut remaining = visitors;
    for n in 0.. {
        if remaining == 0 {
            break;
        }
        let count = remaining.min(per_process);
        remaining -= count;
        workers.push(
            Command::new(&exe)
                .args([
                    "--url",
                    &server.url,
                    "worker",
                    "--ent-id",
                    &ent_id,
                    "--count",
                    &count.to_string(),
                ])
                .args(["--source", &format!("127.0.0.{}", 10 + n)])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?,
        );
    }
    let mut outputs = Vec::new();
    for w in &mut workers {
        let mut out = BufReader::new(tokio::process::ChildStdout::from_std(
            w.stdout.take().context("stdout")?,
        )?)
        .lines();
        while let Some(line) = out.next_line().await? {
            if line.starts_with("prepared ") {
                break;
            }
        }
        outputs.push(out);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss0, fds0) = (server.rss_kib(), server.open_files());
    let started = Instant::now();
    for w in &mut workers {
        use std::io::Write as _;
        writeln!(w.stdin.as_mut().context("stdin")?, "go")?;
    }
    let mut held = 0;
    for out in &mut outputs {
        while let Some(line) = out.next_line().await? {
            if let Some(n) = line.strip_prefix("held ") {
                held += n.parse::<usize>()?;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss1, fds1) = (server.rss_kib(), server.open_files());
    println!("idle: {held} of {visitors} visitor sockets held (opened in {elapsed:.1?})");
    if let (Some(a), Some(b), Some(f0), Some(f1)) = (rss0, rss1, fds0, fds1) {
        println!(
            "idle: server RSS {:.1} MiB → {:.1} MiB; {:.2} KiB per socket; open files {f0} → {f1}",
            a as f64 / 1024.0,
            b as f64 / 1024.0,
            (b.saturating_sub(a)) as f64 / held.max(1) as f64
        );
    }
    for mut w in workers {
        drop(w.stdin.take());
        let _ = tokio::task::spawn_blocking(move || w.wait()).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// load

/// Who takes part in a load run.
#[derive(Clone, Copy)]
struct Shape {
    visitors: usize,
    /// Agent sockets per merchant.
    agents: usize,
    tenants: usize,
}

async fn load(
    server: &Server,
    Shape { visitors, agents, tenants }: Shape,
    rate: u64,
    duration: u64,
    warmup: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let merchants: Vec<(String, String)> = stream::iter(0..tenants)
        .map(|n| merchant(server, n))
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    if tenants > 1 {
        eprintln!("kefu-bench: {tenants} merchants signed up in {:.1?}", started.elapsed());
    }
    let http = http();
    // Merchant m's agents are on node m mod N, visitor n on node n mod N: with several
    // nodes, most messages cross the bus.
    let urls = server.urls();
    let origin = Instant::now();
    // The whole window's latencies, and each second's on its own: a tail spread evenly over
    // the run and a few stalls give the same p99 but call for different fixes.
    let latencies = Arc::new(Mutex::new(Latencies {
        total: latency_histogram()?,
        seconds: vec![latency_histogram()?; duration.max(1) as usize],
    }));
    let delivered = Arc::new(AtomicU64::new(0));
    // The measured window, in ns since `origin`; set once the schedule's start is known.
    let window = Arc::new((AtomicU64::new(u64::MAX), AtomicU64::new(0)));

    // Every visitor message the first agent socket of each merchant receives, in the window
    // or not.
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for (m, (_, owner)) in merchants.iter().enumerate() {
        for a in 0..agents {
            let mut ws = open_socket(
                &http,
                &urls[m % urls.len()],
                "/api/v1/ws/ticket",
                owner,
                "/ws/agent",
                Ipv4Addr::LOCALHOST,
            )
            .await?;
            let (latencies, delivered, window) =
                (latencies.clone(), delivered.clone(), window.clone());
            let received = (a == 0).then(|| received.clone());
            readers.push(tokio::spawn(async move {
                // Pings (answered by tungstenite) and other non-text frames are not the end.
                while let Some(Ok(frame)) = ws.next().await {
                    let Message::Text(text) = frame else { continue };
                    let now = origin.elapsed().as_nanos() as u64;
                    // The generator shares the server's two cores: find the intended time without
                    // parsing the whole frame (only visitor messages carry `"body":"bench:<ns>"`).
                    let Some(intended) = bench_stamp(&text) else { continue };
                    if let Some(received) = &received {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    let from = window.0.load(Ordering::Relaxed);
                    if (from..window.1.load(Ordering::Relaxed)).contains(&intended) {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        let micros = (now.saturating_sub(intended) / 1_000).max(1);
                        latencies.lock().unwrap().record((intended - from) / 1_000_000_000, micros);
                    }
                }
            }));
        }
    }
    eprintln!("kefu-bench: opening {visitors} visitor sockets…");
    let sockets: Vec<Socket> = stream::iter(0..visitors)
        .map(|n| {
            let (http, url, ent_id) = (&http, &urls[n % urls.len()], &merchants[n % tenants].0);
            async move {
                let token = visitor_token(http, url, ent_id).await?;
                let source = Ipv4Addr::new(127, 0, 1, 1 + (n / 20_000) as u8);
                open_socket(http, url, "/api/v1/visitor/ticket", &token, "/ws/visitor", source)
                    .await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    // Every visitor opens its conversation first (its first message creates and routes it),
    // so the measured traffic is messages in established conversations; the opening storm
    // is reported on its own.
    let opening = Instant::now();
    let sockets: Vec<Socket> = stream::iter(sockets.into_iter().enumerate())
        .map(|(n, mut ws)| async move {
            let hello =
                json!({"type": "send", "client_msg_id": format!("open-{n}"), "body": "hello"});
            ws.send(Message::text(hello.to_string())).await?;
            while let Some(frame) = ws.next().await {
                if let Message::Text(text) = frame? {
                    if text.contains("\"type\":\"ack\"") {
                        return Ok(ws);
                    }
                    if text.contains("\"type\":\"error\"") {
                        bail!("opening a conversation failed: {text}");
                    }
                }
            }
            bail!("the socket closed before its first message was acknowledged")
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let opening = opening.elapsed();
    eprintln!(
        "kefu-bench: {visitors} conversations opened in {:.2} s ({:.0}/s)",
        opening.as_secs_f64(),
        visitors as f64 / opening.as_secs_f64()
    );
    let start_at = origin.elapsed() + Duration::from_millis(200);
    let stop_at = Duration::from_secs(warmup + duration) + start_at;
    window.0.store((start_at + Duration::from_secs(warmup)).as_nanos() as u64, Ordering::Relaxed);
    window.1.store(stop_at.as_nanos() as u64, Ordering::Relaxed);
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    // How late the generator itself wrote each message to its socket: the part of the
    // end-to-end latency spent waiting for a CPU on this side (or for socket backpressure).
    let lateness = Arc::new(Mutex::new(latency_histogram()?));
    // Each socket task sends what it is told to; one metronome thread tells them when.
    // tokio's timers have a 1 ms granularity, which would add up to a millisecond of the
    // generator's own lateness to every measurement; a thread sleeping with nanosleep is
    // within tens of microseconds. The body still carries the *intended* time, so a socket
    // that cannot keep up (backpressure) shows up as latency.
    let mut triggers = Vec::with_capacity(visitors);
    let mut tasks = Vec::new();
    for (n, ws) in sockets.into_iter().enumerate() {
        let (acked, errors, sent) = (acked.clone(), errors.clone(), sent.clone());
        let (lateness, window) = (lateness.clone(), window.clone());
        let (trigger, mut due) = tokio::sync::mpsc::unbounded_channel::<(u64, Duration)>();
        triggers.push(trigger);
        let (mut sink, mut stream) = ws.split();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                if text.contains("\"type\":\"ack\"") {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else if text.contains("\"type\":\"error\"") {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            while let Some((k, intended)) = due.recv().await {
                let body = format!(
                    r#"{{"type":"send","client_msg_id":"b{n}-{k}","body":"bench:{}"}}"#,
                    intended.as_nanos()
                );
                if sink.send(Message::text(body)).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let intended = intended.as_nanos() as u64;
                if intended >= window.0.load(Ordering::Relaxed) {
                    let late = (origin.elapsed().as_nanos() as u64).saturating_sub(intended);
                    let _ = lateness.lock().unwrap().record((late / 1_000).max(1));
                }
            }
            sink
        }));
    }
    // Visitors take turns: visitor n sends at start + (k * visitors + n) / rate.
    let metronome = std::thread::spawn(move || {
        let tick = Duration::from_nanos(1_000_000_000 / rate.max(1));
        for slot in 0_u64.. {
            let intended = start_at + tick * slot as u32;
            if intended >= stop_at {
                break;
            }
            if let Some(wait) = intended.checked_sub(origin.elapsed()) {
                std::thread::sleep(wait);
            }
            let n = (slot % visitors as u64) as usize;
            let _ = triggers[n].send((slot / visitors as u64, intended));
        }
        // Dropping the triggers ends the socket tasks' loops.
    });
    tokio::task::spawn_blocking(move || metronome.join()).await?.ok();
    // Keep the sockets open until everything sent is acknowledged and delivered (or 10 s):
    // a message still in flight at the end must count as late, not vanish.
    let mut sinks = Vec::new();
    for t in tasks {
        sinks.extend(t.await.ok());
    }
    let sent = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (acked.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed) < sent
        || received.load(Ordering::Relaxed) < sent)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for reader in readers {
        reader.abort();
    }
    drop(sinks);
    let undelivered = sent.saturating_sub(received.load(Ordering::Relaxed));
    let latencies = latencies.lock().unwrap();
    let h = &latencies.total;
    let n = delivered.load(Ordering::Relaxed);
    println!(
        "load: {visitors} visitors over {tenants} merchant(s) → {agents} agent socket(s) each, target {rate} msgs/s, measured {duration} s after {warmup} s warm-up"
    );
    println!(
        "load: delivered {:.0} msgs/s durable (sent {sent}, acked {}, {} errors, {undelivered} not delivered within 10 s); latency {}",
        n as f64 / duration as f64,
        acked.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        quantiles(h)
    );
    println!(
        "load: of which the generator's own lateness in writing them: {}",
        quantiles(&lateness.lock().unwrap())
    );
    for (second, h) in latencies.seconds.iter().enumerate() {
        println!(
            "load:   second {:>3}: {:>6} msgs, p50 {:>6.2} ms, p99 {:>7.2} ms, max {:>7.2} ms",
            second + 1,
            h.len(),
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    if let Some(rss) = server.rss_kib() {
        println!(
            "load: server RSS {:.1} MiB ({} node(s))",
            rss as f64 / 1024.0,
            server.urls().len()
        );
    }
    if let Some((backends, private_kib)) = server.postgres_memory() {
        println!(
            "load: PostgreSQL: {backends} processes, {:.1} MiB private memory (RssAnon, shared buffers not counted)",
            private_kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// A histogram of latencies in microseconds, up to a minute.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// "p50 … ms, p99 … ms, p99.9 … ms, max … ms" of a histogram in microseconds.
fn quantiles(h: &Histogram<u64>) -> String {
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max())
    )
}

/// End-to-end latencies of a load run's measured window, in microseconds.
struct Latencies {
    total: Histogram<u64>,
    /// One per second of the window, by intended send time.
    seconds: Vec<Histogram<u64>>,
}

impl Latencies {
    fn record(&mut self, second: u64, micros: u64) {
        let _ = self.total.record(micros);
        if let Some(h) = self.seconds.get_mut(second as usize) {
            let _ = h.record(micros);
        }
    }
}

/// The intended send time in a visitor message frame of the load test.
fn bench_stamp(frame: &str) -> Option<u64> {
    if !frame.starts_with(r#"{"type":"message""#) {
        return None;
    }
    let start = frame.find(r#""body":"bench:"#)? + r#""body":"bench:"#.len();
    let digits = &frame[start..];
    digits[..digits.find('"')?].parse().ok()
}

// ---------------------------------------------------------------------------------------
// burst

async fn burst(server: &Server, visitors: usize, cycles: usize) -> anyhow::Result<()> {
    if visitors > 19_000 {
        bail!("one process can hold at most ~19,000 sockets");
    }
    let (ent_id, _) = merchant(server, 0).await?;
    let http = http();
    let url = server.url.clone();
    let _ = server.ws_addr()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, fds0) = (server.rss_kib().unwrap_or(0), server.open_files().unwrap_or(0));
    println!("burst: baseline server RSS {:.1} MiB, {fds0} open files", rss0 as f64 / 1024.0);
    let tokens: Vec<String> = stream::iter(0..visitors)
        .map(|_| visitor_token(&http, &url, &ent_id))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    for cycle in 1..=cycles {
        let source = Ipv4Addr::new(127, 0, 2, cycle as u8);
        // Tickets first, then every connection at once.
        let tickets: Vec<String> = stream::iter(&tokens)
            .map(|t| post(&http, format!("{url}/api/v1/visitor/ticket"), json!({}), Some(t)))
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|r| r.map(|v| v["ticket"].as_str().unwrap_or_default().to_owned()))
            .collect::<anyhow::Result<_>>()?;
        let addr = server.ws_addr()?;
        let started = Instant::now();
        let sockets: Vec<Socket> =
            futures::future::join_all(tickets.iter().map(|ticket| async move {
                let socket = tokio::net::TcpSocket::new_v4().ok()?;
                socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
                let stream = socket.connect(addr).await.ok()?;
                handshake(format!("ws://{addr}/ws/visitor?ticket={ticket}"), stream).await.ok()
            }))
            .await
            .into_iter()
            .flatten()
            .collect();
        let connected = sockets.len();
        let connect_time = started.elapsed();
        let fds_peak = server.open_files().unwrap_or(0);
        let held = server.connections_from(source);
        drop(sockets); // everyone leaves at once
        let settle = Instant::now();
        let mut left = held;
        while settle.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = server.connections_from(source);
            if left == 0 {
                break;
            }
        }
        let released_in = settle.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, fds_after) = (server.rss_kib().unwrap_or(0), server.open_files().unwrap_or(0));
        let alive =
            http.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success());
        println!(
            "burst {cycle}: {connected}/{visitors} connected in {connect_time:.1?}; server sockets from {source}: {held} → {left} in {released_in:.1?}; \
             server open files {fds0} → {fds_peak} → {fds_after}; RSS {:.1} MiB; server {}",
            rss as f64 / 1024.0,
            if alive { "up" } else { "DOWN" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bench_stamp;

    #[test]
    fn finds_the_intended_time_in_a_visitor_message_frame() {
        let frame = r#"{"type":"message","id":7,"conversation_id":3,"sender":{"kind":"visitor","agent_id":null,"name":"v"},"kind":"text","body":"bench:123456789","client_msg_id":"b1-0","created_at":"2026-11-23T08:00:00Z"}"#;
        assert_eq!(bench_stamp(frame), Some(123_456_789));
        assert_eq!(bench_stamp(r#"{"type":"ack","client_msg_id":"b1-0","id":7}"#), None);
        assert_eq!(bench_stamp(r#"{"type":"message","body":"hello"}"#), None);
        assert_eq!(bench_stamp(r#"{"type":"message","body":"bench:12x"}"#), None);
    }
}

//! Test harness: the shared cluster, per-test databases and a running server per test.

use std::{
    path::PathBuf,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use kefu::{
    config::Config,
    db::{EmbeddedOptions, EmbeddedPostgres, PLATFORM_MIGRATOR, pool_options},
    startup::{AppState, Application, prepare_database},
};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{ConnectOptions as _, Connection as _, PgPool, postgres::PgConnectOptions};
use tenants::TenantMigrator;

struct Cluster {
    pg: EmbeddedPostgres,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
const TEMPLATE: &str = "kefu_template";

/// The process's cluster, started on first use and stopped when the test binary exits.
fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        init_logging();
        reap_abandoned_clusters();
        let dir = std::env::temp_dir().join(format!("kefu-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pg = EmbeddedPostgres::start(&dir.join("pg"), EmbeddedOptions { unsafe_fast: true })
            .expect("the test PostgreSQL cluster starts (are the PostgreSQL server binaries installed?)");
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { nix::libc::atexit(stop_cluster) };
        let cluster = Cluster { pg, dir };
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(create_template(&cluster.pg))
            });
        });
        cluster
    })
}

extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        let _ = c.pg.stop_immediately();
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

/// Stops clusters left behind by test processes that were killed before their exit hook.
fn reap_abandoned_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("kefu-test-").and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if PathBuf::from(format!("/proc/{pid}")).exists() {
            continue;
        }
        let pid_file = entry.path().join("pg").join("postmaster.pid");
        if let Some(server) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(server),
                nix::sys::signal::Signal::SIGQUIT,
            );
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

async fn create_template(pg: &EmbeddedPostgres) {
    pg.ensure_database(TEMPLATE).await.unwrap();
    let pool = PgPool::connect_with(pg.connect_options(TEMPLATE)).await.unwrap();
    PLATFORM_MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
}

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        kefu::telemetry::init(kefu::config::LogFormat::Text);
    }
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A new database with the platform schema, private to the caller.
pub async fn fresh_database() -> (String, PgConnectOptions) {
    let cluster = cluster();
    let name = format!("t_{}_{}", std::process::id(), DB_COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut conn = cluster.pg.connect_options("postgres").connect().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name} template {TEMPLATE}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let options = cluster.pg.connect_options(&name);
    (name, options)
}

/// A `DATABASE_URL` for `database` on the test cluster (for running the kefu binary).
pub fn database_url(options: &PgConnectOptions) -> String {
    let socket = options.get_socket().expect("unix socket").display().to_string();
    format!("postgres://kefu@localhost/{}?host={socket}&port=5432", options.get_database().unwrap())
}

/// A running kefu server on its own database.
pub struct TestApp {
    pub url: String,
    pub state: AppState,
    pub options: PgConnectOptions,
}

pub fn test_config() -> Config {
    let data_dir = tempfile::tempdir().unwrap().keep();
    Config {
        data_dir,
        port: 0,
        jwt_secret: Some(SecretString::from("test-secret-".repeat(4))),
        auth_rate_per_minute: 100_000,
        auth_rate_burst: 100_000,
        ws_rate_per_sec: 100_000,
        ws_rate_burst: 100_000,
        // Agents leaving count as present this long (presence.rs tests set their own).
        presence_grace_secs: 1,
        // Sign-ups build their schemas (tests/it/spares.rs tests the spare stock).
        spare_schemas: 0,
        // Two message writers: sharding is exercised, and a test app opens few connections.
        writer_shards: 2,
        // Every test client comes from 127.0.0.1: the tests about visitor limits set them.
        visitor_limits: kefu::http::rate::VisitorLimits::off(),
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config();
    configure(&mut config);
    let (_, options) = fresh_database().await;
    let pool = pool_options(config.db_max_connections).connect_with(options.clone()).await.unwrap();
    spawn_on(config, pool, options, TenantMigrator::embedded()).await
}

/// A server whose billing decisions follow `clock` (tests move it).
pub async fn spawn_with_clock(
    configure: impl FnOnce(&mut Config),
    clock: std::sync::Arc<dyn billing::Clock>,
) -> TestApp {
    let mut config = test_config();
    configure(&mut config);
    let (_, options) = fresh_database().await;
    let pool = pool_options(config.db_max_connections).connect_with(options.clone()).await.unwrap();
    start(config, pool, options, TenantMigrator::embedded(), Some(clock)).await
}

/// Starts a server on an existing pool (tests that instrument the pool build it themselves).
pub async fn spawn_on(
    config: Config,
    pool: PgPool,
    options: PgConnectOptions,
    migrator: TenantMigrator,
) -> TestApp {
    start(config, pool, options, migrator, None).await
}

async fn start(
    config: Config,
    pool: PgPool,
    options: PgConnectOptions,
    migrator: TenantMigrator,
    clock: Option<std::sync::Arc<dyn billing::Clock>>,
) -> TestApp {
    prepare_database(&pool, &migrator).await.unwrap();
    let mut app = Application::build(config, pool, migrator).await.unwrap();
    if let Some(clock) = clock {
        app = app.with_clock(clock);
    }
    let url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp { url, state, options }
}

/// A request's answer read whole, for checks that look only at its body (a transport error
/// or an unreadable body fails the test).
pub trait Fetch {
    /// The response (a transport error fails the test; any status is an answer).
    fn sent(self) -> impl std::future::Future<Output = reqwest::Response> + Send;
    fn text_body(self) -> impl std::future::Future<Output = String> + Send;
    fn json_body<T: serde::de::DeserializeOwned>(
        self,
    ) -> impl std::future::Future<Output = T> + Send;
}

impl Fetch for reqwest::RequestBuilder {
    async fn sent(self) -> reqwest::Response {
        self.send().await.unwrap()
    }

    async fn text_body(self) -> String {
        self.send().await.unwrap().text().await.unwrap()
    }

    async fn json_body<T: serde::de::DeserializeOwned>(self) -> T {
        self.send().await.unwrap().json::<T>().await.unwrap()
    }
}

/// A client with a cookie store that does not follow redirects (tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A merchant created through the API.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub ent_id: String,
    pub token: String,
    pub email: String,
}

pub const PASSWORD: &str = "correct horse battery";

static EMAIL_COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}{}@example.com", EMAIL_COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.db
    }

    /// Signs a merchant up through `POST /api/v1/signup` (with a fresh client, so this
    /// app's cookie jar stays empty).
    pub async fn signup(&self, company: &str) -> Merchant {
        let email = unique_email("owner");
        let res = client()
            .post(self.url("/api/v1/signup"))
            .json(&json!({ "company": company, "email": email, "password": PASSWORD }))
            .sent()
            .await;
        assert_eq!(res.status(), 201, "signup failed: {}", res.text().await.unwrap());
        let body: Value = res.json().await.unwrap();
        Merchant {
            ent_id: body["ent_id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
            email,
        }
    }

    /// `GET path` as `merchant` (bearer token).
    pub async fn get_as(&self, merchant: &Merchant, path: &str) -> reqwest::Response {
        client().get(self.url(path)).bearer_auth(&merchant.token).send().await.unwrap()
    }

    /// `GET path` with a bearer `token`, read as JSON.
    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        client().get(self.url(path)).bearer_auth(token).send().await.unwrap().json().await.unwrap()
    }

    /// `POST /api/v1/conversations/{conversation}/close` as `merchant`.
    pub async fn close_conversation(
        &self,
        merchant: &Merchant,
        conversation: i64,
    ) -> reqwest::Response {
        let path = format!("/api/v1/conversations/{conversation}/close");
        client().post(self.url(&path)).bearer_auth(&merchant.token).sent().await
    }

    /// `PATCH /api/v1/settings` as `merchant`.
    pub async fn patch_settings(&self, merchant: &Merchant, body: Value) -> reqwest::Response {
        client()
            .patch(self.url("/api/v1/settings"))
            .bearer_auth(&merchant.token)
            .json(&body)
            .sent()
            .await
    }
}

/// Asserts the JSON error shape and returns the code.
pub async fn error_code(res: reqwest::Response) -> String {
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert!(
        ctype.starts_with("application/json"),
        "{status}: expected a JSON error, got {ctype:?}: {text}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: no error.code in {text}"))
        .to_owned();
    assert!(body["error"]["message"].is_string(), "{status}: no error.message in {text}");
    code
}

/// Opens the page at `path` like a browser (keeping its cookies) and returns the CSRF token
/// its form carries.
pub async fn form_csrf(browser: &reqwest::Client, app: &TestApp, path: &str) -> String {
    let page = browser.get(app.url(path)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200, "GET {path}");
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Submits the login form as `email` (with `extra` fields), returning the raw response.
pub async fn form_login(
    browser: &reqwest::Client,
    app: &TestApp,
    email: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = form_csrf(browser, app, "/login").await;
    let mut form = vec![("email", email), ("password", PASSWORD), ("csrf_token", csrf.as_str())];
    form.extend_from_slice(extra);
    browser.post(app.url("/login")).form(&form).send().await.unwrap()
}

/// The internal id of a merchant's tenant.
pub async fn tenant_id(pool: &PgPool, ent_id: &str) -> tenants::TenantId {
    let id: i64 = sqlx::query_scalar("select id from public.tenants where ent_id = $1")
        .bind(ent_id)
        .fetch_one(pool)
        .await
        .unwrap();
    tenants::TenantId(id)
}

/// The ids of every visitor message stored in the tenant's schema, ascending.
pub async fn stored_visitor_message_ids(pool: &PgPool, ent_id: &str) -> Vec<i64> {
    let tenant = tenant_id(pool, ent_id).await;
    let mut tx = tenants::TenantTx::begin(pool, tenant).await.unwrap();
    let ids =
        sqlx::query_scalar("select id from messages where sender_kind = 'visitor' order by id")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    ids
}

/// A command-line tool from PyPI: `bin` of a virtualenv `target/test-tools/<venv>` with
/// `requirements` (a path from the repository root) installed, created on first use.
/// `None` without python3 (and venv) or PyPI.
pub fn python_tool(venv: &str, requirements: &str, bin: &str) -> Option<std::path::PathBuf> {
    use std::process::Command;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/test-tools").join(venv);
    let bin = venv.join("bin").join(bin);
    if bin.exists() {
        return Some(bin);
    }
    let created = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().ok()?;
    if !created.success() {
        return None;
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(root.join(requirements))
        .status()
        .ok()?;
    (installed.success() && bin.exists()).then_some(bin)
}

/// A PNG of `width` × `height` pixels (a gradient).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 160])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Installs a test fixture's npm packages from its lock file (`npm ci` in `dir`) unless
/// `package` is already there.
pub fn npm_ci(dir: &std::path::Path, package: &str) {
    if dir.join("node_modules").join(package).join("package.json").exists() {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm runs (install Node.js and npm)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// A 1×1 PNG whose header declares `width` × `height` pixels (a decompression bomb's
/// shape), with a valid header checksum so decoders get as far as the dimensions.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut p = png(1, 1);
    p[16..20].copy_from_slice(&width.to_be_bytes());
    p[20..24].copy_from_slice(&height.to_be_bytes());
    // CRC-32 (IEEE) over the IHDR chunk's type and data.
    let mut crc = !0u32;
    for &b in &p[12..29] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    p[29..33].copy_from_slice(&(!crc).to_be_bytes());
    p
}

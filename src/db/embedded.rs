//! A private PostgreSQL server, run from the server binaries installed on the machine.
//!
//! Without `DATABASE_URL`, kefu keeps its database cluster in `<data-dir>/postgres` and runs
//! it itself: `initdb` the first time, then `pg_ctl start` with no TCP listener
//! (`listen_addresses=''`) and a unix socket in a short private directory under the system
//! temp dir (socket paths are limited to 107 bytes). PostgreSQL refuses to run as root, so
//! when kefu runs as root the cluster belongs to, and runs as, the unprivileged `postgres`
//! user (or `nobody`); if that user cannot reach the data directory (e.g. it is under
//! `/root`, mode 0700), the cluster lives under `/var/lib/kefu/` and `<data-dir>/postgres`
//! is a symlink to it.
//!
//! A server left running by a killed kefu is adopted on the next start; a stale
//! `postmaster.pid` (its process gone) is removed.

use std::{
    fs,
    os::unix::{
        fs::{MetadataExt as _, PermissionsExt as _, symlink},
        process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, anyhow, bail};
use nix::unistd::{Gid, Uid, User, chown, geteuid};
use sha2::{Digest as _, Sha256};
use sqlx::{ConnectOptions as _, Connection as _, postgres::PgConnectOptions};

/// The database superuser created by `initdb`.
const SUPERUSER: &str = "kefu";
/// Names the socket file only: nothing listens on TCP.
const PORT: u16 = 5432;
const LOG_FILE: &str = "kefu-server.log";

/// How to run the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbeddedOptions {
    /// Turn off fsync and friends. Only for throw-away clusters (tests): a crash of the
    /// machine can corrupt such a cluster; a crash of the server process cannot.
    pub unsafe_fast: bool,
}

/// A running (or adopted) embedded server.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    cluster_dir: PathBuf,
    socket_dir: PathBuf,
    owner: Option<User>,
    started_here: bool,
}

impl EmbeddedPostgres {
    /// Creates the cluster at `cluster_dir` if needed and makes sure a server runs on it.
    /// Blocking: call it from `spawn_blocking` inside async code.
    pub fn start(cluster_dir: &Path, options: EmbeddedOptions) -> anyhow::Result<Self> {
        let bin_dir = find_binaries()?;
        let owner = server_user()?;
        let cluster_dir = place_cluster(cluster_dir, owner.as_ref())?;
        let socket_dir = socket_dir_for(&cluster_dir);
        let mut pg = Self { bin_dir, cluster_dir, socket_dir, owner, started_here: false };
        if !pg.cluster_dir.join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        match pg.running_server()? {
            Some(socket_dir) => {
                tracing::info!(cluster = %pg.cluster_dir.display(), "reusing the PostgreSQL server already running on this cluster");
                pg.socket_dir = socket_dir;
            }
            None => {
                pg.start_server(options)?;
                pg.started_here = true;
            }
        }
        Ok(pg)
    }

    /// Whether this process started the server (`false`: an already running one was adopted).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Where the cluster really lives (after following the fallback symlink).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// Connection options for `database` over the private socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
            .application_name("kefu")
    }

    /// Creates `database` unless it exists.
    pub async fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        let mut conn = self
            .connect_options("postgres")
            .connect()
            .await
            .context("connecting to the embedded PostgreSQL")?;
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            // The name is ours (a constant or a generated test name), never request data.
            debug_assert!(database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            sqlx::query(sqlx::AssertSqlSafe(format!("create database {database}")))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        Ok(())
    }

    /// Stops the server if this process started it (fast shutdown: sessions are ended,
    /// everything committed is on disk). A server adopted from an earlier run is left alone
    /// unless `even_if_adopted`.
    pub fn stop(&self, even_if_adopted: bool) -> anyhow::Result<()> {
        if !self.started_here && !even_if_adopted {
            return Ok(());
        }
        self.pg_ctl_stop("fast")
    }

    /// Stops the server at once (for throw-away test clusters).
    pub fn stop_immediately(&self) -> anyhow::Result<()> {
        self.pg_ctl_stop("immediate")
    }

    fn pg_ctl_stop(&self, mode: &str) -> anyhow::Result<()> {
        let out = self.run(
            "pg_ctl",
            &["stop", "-D", path_str(&self.cluster_dir)?, "-m", mode, "-w", "-t", "60", "-s"],
        )?;
        if !out.status.success() && self.running_server()?.is_some() {
            bail!("pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        // The socket directory is ours and empty once the server is gone; fails harmlessly
        // if something else was put there.
        let _ = fs::remove_dir(&self.socket_dir);
        Ok(())
    }

    fn initdb(&self) -> anyhow::Result<()> {
        tracing::info!(cluster = %self.cluster_dir.display(), "creating the embedded PostgreSQL cluster");
        let out = self.run(
            "initdb",
            &[
                "-D",
                path_str(&self.cluster_dir)?,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ],
        )?;
        if !out.status.success() {
            bail!(
                "initdb failed for {}:\n{}{}",
                self.cluster_dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The socket directory of a live server on this cluster, if one runs. Removes a stale
    /// `postmaster.pid` (and socket lock) whose process is gone.
    fn running_server(&self) -> anyhow::Result<Option<PathBuf>> {
        let pid_file = self.cluster_dir.join("postmaster.pid");
        let Ok(contents) = fs::read_to_string(&pid_file) else {
            return Ok(None);
        };
        let lines: Vec<&str> = contents.lines().collect();
        let pid: Option<i32> = lines.first().and_then(|l| l.trim().parse().ok());
        if pid.is_some_and(is_postgres_process) {
            let socket_dir = lines
                .get(4)
                .map(|l| PathBuf::from(l.trim()))
                .unwrap_or_else(|| self.socket_dir.clone());
            return Ok(Some(socket_dir));
        }
        tracing::warn!(pid_file = %pid_file.display(), "removing a stale postmaster.pid (its server is gone)");
        fs::remove_file(&pid_file)
            .with_context(|| format!("removing stale {}", pid_file.display()))?;
        let lock = self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock"));
        if lock.exists() {
            let _ = fs::remove_file(&lock);
        }
        Ok(None)
    }

    fn start_server(&self, options: EmbeddedOptions) -> anyhow::Result<()> {
        prepare_socket_dir(&self.socket_dir, self.owner.as_ref())?;
        let mut server_options = format!(
            "-c listen_addresses='' -k {} -p {PORT} -c max_connections=200",
            path_str(&self.socket_dir)?
        );
        if options.unsafe_fast {
            server_options
                .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.cluster_dir.join(LOG_FILE);
        let out = self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                path_str(&self.cluster_dir)?,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "60",
                "-s",
                "-o",
                &server_options,
            ],
        )?;
        if !out.status.success() {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "the embedded PostgreSQL did not start ({}):\n{}\n{}",
                self.cluster_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// Runs one of the server programs, as the cluster's owner when kefu is root. It gets
    /// its own process group, so a Ctrl-C in kefu's terminal does not stop the database
    /// under kefu's graceful shutdown.
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.args(args)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .current_dir("/")
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(user) = &self.owner {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw()).env("HOME", &user.dir);
        }
        cmd.output().with_context(|| format!("running {}", self.bin_dir.join(program).display()))
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir`, then the
/// newest `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_binaries() -> anyhow::Result<PathBuf> {
    find_binaries_in(
        "pg_config",
        Path::new("/usr/lib/postgresql"),
        &std::env::var_os("PATH").unwrap_or_default(),
    )
}

/// [`find_binaries`] with its three places made explicit (for tests).
pub fn find_binaries_in(
    pg_config: &str,
    versioned_root: &Path,
    path: &std::ffi::OsStr,
) -> anyhow::Result<PathBuf> {
    let complete =
        |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|p| dir.join(p).is_file());
    if let Ok(out) = Command::new(pg_config).arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && complete(&dir) {
            return Ok(dir);
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir(versioned_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.pop() {
        return Ok(dir);
    }
    for dir in std::env::split_paths(path) {
        if let Ok(initdb) = fs::canonicalize(dir.join("initdb")) {
            if let Some(real) = initdb.parent().filter(|d| complete(d)) {
                return Ok(real.to_owned());
            }
        }
    }
    Err(anyhow!(
        "kefu runs its own PostgreSQL when DATABASE_URL is not set, and needs the PostgreSQL server \
         programs for that (initdb, pg_ctl, postgres), but found none: not via `pg_config --bindir`, \
         not in /usr/lib/postgresql/*/bin, not on PATH. Install the PostgreSQL server with your \
         package manager (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install \
         postgresql-server`; macOS: `brew install postgresql`), or set DATABASE_URL=postgres://… to \
         use an existing server."
    ))
}

/// The unprivileged user the server runs as when kefu runs as root; `None` otherwise.
fn server_user() -> anyhow::Result<Option<User>> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) = User::from_name(name)? {
            return Ok(Some(user));
        }
    }
    bail!(
        "kefu runs as root and PostgreSQL refuses to: create an unprivileged `postgres` user \
         (installing the postgresql package does), or run kefu as a normal user"
    )
}

/// Decides where the cluster really lives and creates that directory, owned by `owner`.
fn place_cluster(requested: &Path, owner: Option<&User>) -> anyhow::Result<PathBuf> {
    let requested = std::path::absolute(requested)?;
    let parent = requested
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", requested.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut real = requested.clone();
    if let Some(user) = owner {
        if requested.is_symlink() {
            real = fs::canonicalize(&requested)?;
        } else if !traversable(parent, user.uid, user.gid)? {
            if requested.exists() {
                bail!(
                    "the database cluster {} cannot be reached by the `{}` user PostgreSQL runs as \
                     (a parent directory is not searchable by it). Use a --data-dir outside it, or \
                     allow it with `chmod o+x` on the parents.",
                    requested.display(),
                    user.name
                );
            }
            let digest =
                hex::encode(&Sha256::digest(requested.as_os_str().as_encoded_bytes())[..8]);
            real = PathBuf::from("/var/lib/kefu").join(format!("postgres-{digest}"));
            fs::create_dir_all("/var/lib/kefu")?;
            fs::set_permissions("/var/lib/kefu", fs::Permissions::from_mode(0o755))?;
            tracing::warn!(
                requested = %requested.display(),
                real = %real.display(),
                "the `{}` user cannot reach the data directory; the cluster lives elsewhere and is linked from it",
                user.name
            );
            symlink(&real, &requested)
                .with_context(|| format!("linking {}", requested.display()))?;
        }
    }
    if !real.exists() {
        fs::create_dir_all(&real).with_context(|| format!("creating {}", real.display()))?;
    }
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700))?;
    if let Some(user) = owner {
        chown_tree_root(&real, user)?;
    }
    Ok(real)
}

fn chown_tree_root(dir: &Path, user: &User) -> anyhow::Result<()> {
    let meta = fs::metadata(dir)?;
    if meta.uid() != user.uid.as_raw() {
        chown(dir, Some(user.uid), Some(user.gid))
            .with_context(|| format!("handing {} to {}", dir.display(), user.name))?;
    }
    Ok(())
}

/// Whether `uid`/`gid` may search every directory from `/` down to `dir`.
fn traversable(dir: &Path, uid: Uid, gid: Gid) -> anyhow::Result<bool> {
    for ancestor in dir.ancestors() {
        let meta =
            fs::metadata(ancestor).with_context(|| format!("inspecting {}", ancestor.display()))?;
        let mode = meta.mode();
        let ok = if meta.uid() == uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A short, private socket directory derived from the cluster's path.
fn socket_dir_for(cluster: &Path) -> PathBuf {
    let digest = hex::encode(&Sha256::digest(cluster.as_os_str().as_encoded_bytes())[..6]);
    let tmp = std::env::temp_dir();
    let base = if tmp.as_os_str().len() > 60 || tmp.to_string_lossy().contains(' ') {
        PathBuf::from("/tmp")
    } else {
        tmp
    };
    base.join(format!("kefu-{digest}"))
}

fn prepare_socket_dir(dir: &Path, owner: Option<&User>) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating the socket directory {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    if let Some(user) = owner {
        chown_tree_root(dir, user)?;
    }
    Ok(())
}

fn is_postgres_process(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_start().starts_with("postgres"))
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().ok_or_else(|| anyhow!("{} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_what_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err =
            find_binaries_in("/nonexistent/pg_config", empty.path(), empty.path().as_os_str())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("apt-get install postgresql") && err.contains("DATABASE_URL"),
            "{err}"
        );
    }

    #[test]
    fn traversal_is_checked_for_the_server_user() {
        let Ok(Some(user)) = server_user() else {
            return;
        }; // only meaningful as root
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner");
        fs::create_dir(&inner).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(
            !traversable(&inner, user.uid, user.gid).unwrap(),
            "a 0700 root-owned parent blocks the server user"
        );
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(traversable(&inner, user.uid, user.gid).unwrap());
    }
}

//! The command line: `kefu serve | install | migrate | tenant … | admin …`.

use std::{io::IsTerminal as _, net::IpAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tenants::{EntId, MigrateOptions, Registry, RegistryOptions, TenantMigrator, TenantStatus};

use crate::{
    auth::{password, validate::Email},
    config::{Config, Overrides},
    db::{self, Database},
    merchant, platform,
    startup::{Application, prepare_database, shutdown_signal},
    telemetry,
};

#[derive(Parser)]
#[command(name = "kefu", version, about = "Multi-tenant live-chat customer service")]
struct Cli {
    /// Where kefu keeps its data (embedded database, generated secrets) [env: KEFU_DATA_DIR] [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [env: KEFU_CONFIG] [default: ./kefu.toml if present]
    #[arg(long, global = true, value_name = "FILE", env = "KEFU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP, WebSockets, background work).
    Serve {
        /// Port to listen on [env: KEFU_PORT] [default: 8081]
        #[arg(short, long)]
        port: Option<u16>,
        /// Address to listen on [env: KEFU_BIND] [default: 127.0.0.1]
        #[arg(long)]
        bind: Option<IpAddr>,
    },
    /// Prepare the database and create the first platform admin (prints its password once).
    Install {
        #[arg(long)]
        email: String,
    },
    /// Bring the platform schema and every tenant schema to this version.
    Migrate {
        /// Tenants migrated at the same time [default: 4]
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Manage merchants (tenants).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage platform admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a merchant with an owner (prints the owner's password once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
    },
    /// List merchants.
    List,
    /// Suspend a merchant: its pages show "service paused", its API answers 403.
    Suspend { ent_id: String },
    /// Resume a suspended merchant.
    Resume { ent_id: String },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a platform admin (or reset an existing one's password); prints the password once.
    Create {
        #[arg(long)]
        email: String,
    },
}

/// Entry point of the `kefu` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (port, bind) = match &cli.command {
        Command::Serve { port, bind } => (*port, *bind),
        _ => (None, None),
    };
    let overrides = Overrides { data_dir: cli.data_dir.clone(), port, bind };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kefu: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kefu: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nkefu: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let db = Database::connect(&config).await?;
    let result = match command {
        Command::Serve { .. } => serve(&db, config).await,
        Command::Install { email } => install(&db, &config, &email).await,
        Command::Migrate { concurrency } => {
            migrate(&db, concurrency.unwrap_or(config.migrate_concurrency)).await
        }
        Command::Tenant { command } => tenant(&db, command).await,
        Command::Admin { command: AdminCommand::Create { email } } => {
            create_admin(&db, &email).await
        }
    };
    db.shutdown().await;
    result
}

async fn serve(db: &Database, config: Config) -> anyhow::Result<()> {
    let migrator = TenantMigrator::embedded();
    prepare_database(&db.pool, &migrator).await?;
    let admins = platform::admin_count(&db.pool).await?;
    let data_dir = config.data_dir.clone();
    let embedded = db.embedded.is_some();
    let app = Application::build(config, db.pool.clone(), migrator).await?;
    let url = app.state().config.display_url(app.port());
    println!();
    println!("  kefu is running at {url}");
    println!();
    println!("  ▸ Create a merchant workspace:  {url}/signup");
    println!("  ▸ Log in as an agent:           {url}/login");
    println!(
        "  ▸ Platform console:            {url}/platform  (two-step verification set up at first sign-in)"
    );
    if admins == 0 {
        println!(
            "  ▸ Platform admin: none yet — run `kefu admin create --email you@example.com` (prints a password once)"
        );
    }
    if embedded {
        println!(
            "  ▸ Data: {} (PostgreSQL cluster in {}/postgres)",
            data_dir.display(),
            data_dir.display()
        );
    }
    println!();
    println!("  Press Ctrl-C to stop.");
    println!();
    app.run_until_stopped(shutdown_signal()).await.context("serving")?;
    Ok(())
}

/// Applies platform migrations, then brings every tenant schema up to date.
async fn migrate(db: &Database, concurrency: usize) -> anyhow::Result<()> {
    let before = db::platform_pending(&db.pool).await?.len();
    db::PLATFORM_MIGRATOR.run(&db.pool).await.context("applying platform migrations")?;
    println!("platform schema: {before} migration(s) applied");
    let migrator = TenantMigrator::embedded();
    let progress =
        if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template(
            "tenants {bar:40.cyan/blue} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    let options = MigrateOptions { concurrency, ..MigrateOptions::default() };
    let report = migrator
        .migrate_all(&db.pool, &options, |done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
        })
        .await?;
    progress.finish_and_clear();
    println!(
        "tenant schemas: {} behind, {} migrated ({} migration(s) applied) in {:.1?}, {} retried, {} failed; latest version {}",
        report.behind,
        report.migrated,
        report.applied,
        report.elapsed,
        report.retried,
        report.failed.len(),
        migrator.latest()
    );
    if !report.failed.is_empty() {
        for (tenant, error) in report.failed.iter().take(20) {
            eprintln!("  tenant {tenant}: {error}");
        }
        bail!(
            "{} tenant schema(s) could not be migrated; fix the cause and run `kefu migrate` again (it resumes)",
            report.failed.len()
        );
    }
    Ok(())
}

async fn install(db: &Database, config: &Config, email: &str) -> anyhow::Result<()> {
    migrate(db, config.migrate_concurrency).await?;
    create_admin(db, email).await
}

async fn create_admin(db: &Database, email: &str) -> anyhow::Result<()> {
    let email = Email::parse(email)
        .map_err(|key| anyhow::anyhow!("--email: {}", crate::i18n::Lang::En.tr(key)))?;
    ensure_platform_schema(db).await?;
    let admin = platform::create_admin(&db.pool, &email).await?;
    println!();
    println!(
        "  Platform admin {}{}",
        email.as_str(),
        if admin.existed { " (existing account; password reset)" } else { "" }
    );
    println!("  Password: {}", admin.password);
    println!("  This password is shown once. Keep it somewhere safe.");
    println!();
    Ok(())
}

/// Creates the platform schema on a brand-new database (commands other than `serve` and
/// `migrate` may be the first thing run).
async fn ensure_platform_schema(db: &Database) -> anyhow::Result<()> {
    if db::is_fresh(&db.pool).await? {
        db::PLATFORM_MIGRATOR.run(&db.pool).await?;
    }
    Ok(())
}

async fn tenant(db: &Database, command: TenantCommand) -> anyhow::Result<()> {
    ensure_platform_schema(db).await?;
    let registry = Registry::new(db.pool.clone(), RegistryOptions::default());
    match command {
        TenantCommand::Create { name, owner_email } => {
            let company = crate::auth::validate::company(&name)
                .map_err(|k| anyhow::anyhow!("--name: {}", crate::i18n::Lang::En.tr(k)))?;
            let email = Email::parse(&owner_email)
                .map_err(|k| anyhow::anyhow!("--owner-email: {}", crate::i18n::Lang::En.tr(k)))?;
            let generated = password::generate();
            let hash = password::hash(generated.clone()).await?;
            let created = merchant::create(
                &db.pool,
                &TenantMigrator::embedded(),
                &registry,
                merchant::NewMerchant {
                    company,
                    owner_email: email.clone(),
                    owner_password_hash: hash,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "merchant created: ent_id {}  name {:?}",
                created.tenant.ent_id, created.tenant.name
            );
            println!("owner: {}  password: {}  (shown once)", email.as_str(), generated);
        }
        TenantCommand::List => {
            let tenants = registry.list().await?;
            println!(
                "{:<14} {:<10} {:<9} {:>6}  {:<20}  NAME",
                "ENT_ID", "STATUS", "PLAN", "SCHEMA", "CREATED"
            );
            for t in &tenants {
                println!(
                    "{:<14} {:<10} {:<9} {:>6}  {:<20}  {}",
                    t.ent_id.as_str(),
                    t.status.as_str(),
                    t.plan,
                    t.schema_version,
                    t.created_at.format("%Y-%m-%d %H:%M"),
                    t.name
                );
            }
            println!("{} merchant(s)", tenants.len());
        }
        TenantCommand::Suspend { ent_id } => {
            set_status(&registry, &ent_id, TenantStatus::Suspended).await?
        }
        TenantCommand::Resume { ent_id } => {
            set_status(&registry, &ent_id, TenantStatus::Active).await?
        }
    }
    Ok(())
}

async fn set_status(registry: &Registry, ent_id: &str, status: TenantStatus) -> anyhow::Result<()> {
    let ent_id = EntId::parse(ent_id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = registry.by_ent_id(&ent_id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(tenant) = tenant else { bail!("no merchant with ent_id {ent_id}") };
    registry.set_status(tenant.id, status).await?;
    println!("merchant {ent_id} is now {}", status.as_str());
    Ok(())
}

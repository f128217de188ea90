//! The `tocsin` command: serve, migrate, manage API tokens, and listen for test deliveries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tocsin::app::telemetry::say;
use tocsin::app::{self, Application};
use tocsin::config::{Flags, Settings};
use tocsin::domain::tenant::TenantId;
use tocsin::domain::time::rfc3339_ms;
use tocsin::domain::token::Role;
use tocsin::service::{tenant, tokens, ServiceError};

#[derive(Parser)]
#[command(name = "tocsin", version, about = "Delivers security events to webhooks, chat and SIEMs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (API and delivery).
    Serve {
        #[command(flatten)]
        flags: Flags,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        flags: Flags,
    },
    /// Create, list or revoke API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Show or set a tenant's settings.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Receive webhooks locally: print each delivery and check its signatures.
    Listen(tocsin::listen::ListenArgs),
    /// Copy the embedded SQLite store to a new file while `tocsin serve` runs (a consistent
    /// snapshot; on PostgreSQL use pg_dump).
    Backup {
        /// The new file to write (it must not exist).
        #[arg(long)]
        to: std::path::PathBuf,
        #[command(flatten)]
        flags: Flags,
    },
    /// Copy an embedded SQLite store into an empty PostgreSQL database (then serve with
    /// --database postgres://… and the same master key).
    MigrateStore {
        /// The SQLite store: sqlite://path/to/tocsin.db
        #[arg(long)]
        from: String,
        /// The empty PostgreSQL database: postgres://user:password@host/db
        #[arg(long)]
        to: String,
    },
    /// Check the tamper-evident chains of the audit log and the delivery attempts: exits 0 when
    /// every link verifies, 1 naming the first entry that does not.
    VerifyLog {
        #[command(flatten)]
        flags: Flags,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (shown once).
    Create {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// admin, viewer or publisher
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        flags: Flags,
    },
    /// List a tenant's tokens (never their values).
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        flags: Flags,
    },
    /// Revoke a token by id.
    Revoke {
        #[arg(long, default_value = "default")]
        tenant: String,
        id: String,
        #[command(flatten)]
        flags: Flags,
    },
}

#[derive(Subcommand)]
enum TenantAction {
    /// Show the tenant's product profile, or set it (NAME), or return it to the deployment's
    /// default (--clear). Its webhooks deliver in the new contract from their next attempt.
    Profile {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// tocsin, phishnet, pentest, netrecon, selki, gophish, or one of TOCSIN_PROFILE_DIR
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        clear: bool,
        #[command(flatten)]
        flags: Flags,
    },
}

/// A failure the user can act on: printed as one line, exit code 2.
struct UsageError(String);

fn runtime() -> Option<tokio::runtime::Runtime> {
    // Few blocking threads: each keeps its own malloc arena, and SQLite reads are pooled anyway.
    match tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(32).build() {
        Ok(r) => Some(r),
        Err(e) => {
            say(false, format_args!("error: cannot start the runtime: {e}"));
            None
        }
    }
}

/// Runs a command that needs no settings (listen).
fn standalone(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    tocsin::app::telemetry::init("warn", tocsin::config::LogFormat::Text);
    let Some(rt) = runtime() else { return ExitCode::FAILURE };
    match rt.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(false, format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// mimalloc instead of the system allocator: glibc's malloc/free were about a fifth of the
/// server's CPU under load (buffers allocated on one thread and freed on another). Built
/// without transparent huge pages (`no_thp`): with them the server's RSS doubled.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = match &cli.command {
        Command::Listen(args) => return standalone(tocsin::listen::run(args.clone())),
        Command::MigrateStore { from, to, .. } => return migrate_store(from, to),
        Command::Serve { flags } | Command::Migrate { flags } | Command::VerifyLog { flags } => flags,
        Command::Backup { flags, .. } => flags,
        Command::Token { action } => match action {
            TokenAction::Create { flags, .. } | TokenAction::List { flags, .. } | TokenAction::Revoke { flags, .. } => {
                flags
            }
        },
        Command::Tenant { action: TenantAction::Profile { flags, .. } } => flags,
    };
    let settings = match Settings::load(flags) {
        Ok(s) => s,
        Err(e) => {
            say(false, format_args!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    // The profiles are settings too: a bad one stops every command the same way.
    if let Err(e) = settings.load_profiles() {
        say(false, format_args!("error: {e:#}"));
        return ExitCode::from(2);
    }
    tocsin::app::telemetry::init(&settings.log, settings.log_format);
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    if let Command::VerifyLog { .. } = cli.command {
        return runtime.block_on(verify_log(settings));
    }
    match runtime.block_on(run(cli.command, settings)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(UsageError(msg))) => {
            say(false, format_args!("error: {msg}"));
            ExitCode::from(2)
        }
        Err(e) => {
            say(false, format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<Result<(), UsageError>> {
    match command {
        Command::Serve { .. } => {
            tracing::info!(database = %settings.database.redacted(), listen = %settings.listen, "starting tocsin");
            if settings.metrics_token.is_none() && !settings.listen.ip().is_loopback() {
                // Its per-webhook circuit gauge names every tenant and webhook id.
                tracing::warn!(
                    listen = %settings.listen,
                    "GET /metrics is open to anyone who reaches this address: set TOCSIN_METRICS_TOKEN"
                );
            }
            let app = Application::build(settings).await?;
            if let Some(token) = &app.bootstrap_token {
                say(
                    true,
                    format_args!("Bootstrap admin token for tenant \"default\" (shown only this once, store it now):"),
                );
                say(true, format_args!("{}", token.expose()));
            }
            tracing::info!(addr = %app.local_addr(), "listening");
            app.run_until(app::shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::Migrate { .. } => {
            let store = tocsin::store::open(&settings.database).await?;
            let applied = store.migrate().await?;
            say(true, format_args!("migrations applied: {applied:?}"));
        }
        Command::Token { action } => return token_command(action, settings).await,
        Command::Tenant { action } => return tenant_command(action, settings).await,
        Command::VerifyLog { .. } => unreachable!("handled apart: its own exit codes"),
        Command::Backup { to, .. } => return backup_command(&settings, to).await,
        Command::Listen(_) | Command::MigrateStore { .. } => unreachable!("handled before settings are loaded"),
    }
    Ok(Ok(()))
}

/// `tocsin migrate-store --from sqlite://… --to postgres://…`: 0 with the counts, 2 when the
/// URLs are not those or the target is not empty.
fn migrate_store(from: &str, to: &str) -> ExitCode {
    use tocsin::store::DatabaseUrl;
    tocsin::app::telemetry::init("warn", tocsin::config::LogFormat::Text);
    let usage = |msg: String| {
        say(false, format_args!("error: {msg}"));
        ExitCode::from(2)
    };
    let source = match DatabaseUrl::parse(from) {
        Ok(DatabaseUrl::Sqlite(path)) if path.exists() => path,
        Ok(DatabaseUrl::Sqlite(path)) => return usage(format!("--from: no SQLite store at {}", path.display())),
        Ok(DatabaseUrl::Postgres(_)) => return usage("--from must be the SQLite store (sqlite://…)".into()),
        Err(e) => return usage(format!("--from: {e}")),
    };
    let target = match DatabaseUrl::parse(to) {
        Ok(url @ DatabaseUrl::Postgres(_)) => url,
        Ok(_) => return usage("--to must be a PostgreSQL database (postgres://…)".into()),
        Err(e) => return usage(format!("--to: {e}")),
    };
    let Some(rt) = runtime() else { return ExitCode::FAILURE };
    let copied = rt.block_on(async {
        // Both at this version's schema first (the source as `serve` would bring it).
        let source_store = tocsin::store::open(&DatabaseUrl::Sqlite(source.clone())).await?;
        source_store.migrate().await?;
        drop(source_store);
        let store = tocsin::store::open(&target).await?;
        store.migrate().await?;
        anyhow::Ok(store.copy_from_sqlite(&source).await)
    });
    match copied {
        Ok(Ok(tables)) => {
            for (table, rows) in &tables {
                say(true, format_args!("{table}: {rows} rows"));
            }
            let total: u64 = tables.iter().map(|(_, n)| n).sum();
            say(true, format_args!("copied {total} rows into {}", target.redacted()));
            say(
                true,
                format_args!(
                    "next: tocsin serve --database '{}' with the same master key (master.key of the SQLite \
                     data directory, or TOCSIN_MASTER_KEY)",
                    target.redacted()
                ),
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e @ (tocsin::store::copy::CopyError::NotEmpty(_) | tocsin::store::copy::CopyError::NotPostgres))) => {
            usage(e.to_string())
        }
        Ok(Err(e)) => {
            say(false, format_args!("error: {e}"));
            ExitCode::FAILURE
        }
        Err(e) => {
            say(false, format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `tocsin backup --to FILE`: the SQLite store copied while it serves.
async fn backup_command(settings: &Settings, to: std::path::PathBuf) -> anyhow::Result<Result<(), UsageError>> {
    let path = match &settings.database {
        tocsin::store::DatabaseUrl::Postgres(_) => {
            return Ok(Err(UsageError(
                "the database is PostgreSQL: back it up with pg_dump (see the README); \
                 tocsin backup copies the embedded SQLite store"
                    .into(),
            )))
        }
        tocsin::store::DatabaseUrl::Sqlite(path) => path.clone(),
    };
    // The file is copied as it is: never opened as a store (nor migrated) by this command.
    if !path.exists() {
        return Ok(Err(UsageError(format!(
            "no Tocsin database at {}: pass the server's data directory (--data-dir or TOCSIN_DATA_DIR)",
            path.display()
        ))));
    }
    let target = to.clone();
    match tokio::task::spawn_blocking(move || tocsin::store::sqlite::backup(&path, &target)).await? {
        Ok(pages) => {
            say(true, format_args!("backed up {} ({pages} pages) to {}", settings.database.redacted(), to.display()));
            say(
                true,
                format_args!(
                    "keep the master key with it ({} or TOCSIN_MASTER_KEY): the webhooks' secrets are sealed with it",
                    settings.data_dir.join("master.key").display()
                ),
            );
            Ok(Ok(()))
        }
        Err(tocsin::store::StoreError::Conflict(msg)) => Ok(Err(UsageError(format!("--to: {msg}")))),
        Err(e) => Err(e.into()),
    }
}

/// `tocsin verify-log`: 0 when every chain verifies, 1 at the first entry that does not, 2 when
/// the store cannot be opened.
async fn verify_log(settings: Settings) -> ExitCode {
    let (store, cipher) = match app::open_store_as_is(&settings).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(msg)) => {
            say(false, format_args!("error: {msg}"));
            return ExitCode::from(2);
        }
        Err(e) => {
            say(false, format_args!("error: {e:#}"));
            return ExitCode::from(2);
        }
    };
    let report = match store.verify_chains(&cipher).await {
        Ok(report) => report,
        Err(e) => {
            say(false, format_args!("error: {e:#}"));
            return ExitCode::from(2);
        }
    };
    for c in &report.chains {
        say(
            true,
            format_args!(
                "ok: {} chain of tenant {}: {} entries from {} verify; head {} (entry {})",
                c.chain.as_str(),
                c.tenant,
                c.entries,
                c.first_seq,
                c.head.hash,
                c.head.seq
            ),
        );
    }
    if report.unchained > 0 {
        say(true, format_args!("note: {} entries written before the chains existed are not covered", report.unchained));
    }
    match report.broken {
        Some(broken) => {
            say(false, format_args!("TAMPERED: {broken}"));
            ExitCode::FAILURE
        }
        None => {
            let entries: u64 = report.chains.iter().map(|c| c.entries).sum();
            say(true, format_args!("verified: {} chains, {entries} entries", report.chains.len()));
            ExitCode::SUCCESS
        }
    }
}

async fn token_command(action: TokenAction, settings: Settings) -> anyhow::Result<Result<(), UsageError>> {
    let store = match app::open_existing_store(&settings).await? {
        Ok(store) => store,
        Err(msg) => return Ok(Err(UsageError(msg))),
    };
    let tenant_of = |t: &str| TenantId::parse(t).map_err(|e| UsageError(format!("--tenant: {}", e.message)));
    let usage = |e: ServiceError| match e {
        ServiceError::Store(e) => Err(anyhow::Error::from(e)),
        other => Ok(UsageError(other.to_string())),
    };
    match action {
        TokenAction::Create { tenant, role, name, .. } => {
            let tenant = match tenant_of(&tenant) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            let role = match Role::parse(&role) {
                Ok(r) => r,
                Err(e) => return Ok(Err(UsageError(format!("--role: {}", e.message)))),
            };
            let (record, token) = match tokens::create(store.as_ref(), &tenant, role, &name, "cli").await {
                Ok(created) => created,
                Err(e) => return usage(e).map(Err),
            };
            say(
                false,
                format_args!(
                    "token {} ({} of tenant {}), shown only this once:",
                    record.id,
                    role.as_str(),
                    record.tenant_id
                ),
            );
            say(true, format_args!("{}", token.expose()));
        }
        TokenAction::List { tenant, .. } => {
            let tenant = match tenant_of(&tenant) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            let listed = match tokens::list(store.as_ref(), &tenant).await {
                Ok(listed) => listed,
                Err(e) => return usage(e).map(Err),
            };
            for t in listed {
                let state = t.revoked_at.map_or("active".to_string(), |r| format!("revoked {}", rfc3339_ms(r)));
                say(
                    true,
                    format_args!(
                        "{}  {:<9}  {:<12}  {}  {}  {}",
                        t.id,
                        t.role.as_str(),
                        t.prefix,
                        rfc3339_ms(t.created_at),
                        state,
                        t.name
                    ),
                );
            }
        }
        TokenAction::Revoke { tenant, id, .. } => {
            let tenant = match tenant_of(&tenant) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            match tokens::revoke(store.as_ref(), &tenant, &id, "cli").await {
                Ok(id) => say(true, format_args!("revoked {id}")),
                Err(ServiceError::NotFound(_)) => {
                    return Ok(Err(UsageError(format!("no live token {id} in tenant {tenant}"))))
                }
                Err(e) => return usage(e).map(Err),
            }
        }
    }
    Ok(Ok(()))
}

async fn tenant_command(action: TenantAction, settings: Settings) -> anyhow::Result<Result<(), UsageError>> {
    let TenantAction::Profile { tenant, name, clear, .. } = action;
    let tenant = match TenantId::parse(&tenant) {
        Ok(t) => t,
        Err(e) => return Ok(Err(UsageError(format!("--tenant: {}", e.message)))),
    };
    let profiles = settings.load_profiles()?;
    let store = match app::open_existing_store(&settings).await? {
        Ok(store) => store,
        Err(msg) => return Ok(Err(UsageError(msg))),
    };
    if name.is_none() && !clear {
        let chosen = store.tenant_profile(&tenant).await?;
        let profile = profiles.resolve(chosen.as_deref());
        let whose =
            if chosen.as_deref() == Some(profile.name.as_str()) { "its own" } else { "the deployment's default" };
        say(true, format_args!("tenant {tenant} speaks profile {} ({whose})", profile.name));
        return Ok(Ok(()));
    }
    let audit = |stored: Option<&str>| tocsin::store::AuditEntry {
        tenant_id: tenant.clone(),
        actor: "cli".into(),
        action: "tenant.set_profile".into(),
        target: format!("tenant:{tenant}"),
        details: serde_json::json!({"profile": stored}),
        at: tocsin::domain::time::now_ms(),
    };
    match tenant::choose_profile(&store, &profiles, &tenant, name.as_deref(), audit).await {
        Ok(profile) => say(true, format_args!("tenant {tenant} now speaks profile {}", profile.name)),
        Err(ServiceError::Store(e)) => return Err(e.into()),
        Err(e) => return Ok(Err(UsageError(e.to_string()))),
    }
    Ok(Ok(()))
}

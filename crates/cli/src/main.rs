//! `keta`: the one binary. Run `keta --help` for the commands. It resolves the server's
//! settings (`config`), opens the store and serves `keta-web`; the other commands are thin
//! layers over the library crates (`anyhow` errors only here).

mod backups;
mod bench;
mod config;
mod crash_trials;
mod demo;
mod demo_accounts;
mod demo_checkins;
#[cfg(test)]
mod demo_documents;
mod demo_ledger;
mod demo_monitors;
mod demo_notes;
mod dose;
mod logging;
mod monitor_sim;
mod pk;
mod research_export;
mod score;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keta", version, about = "Keta: an open clinical platform for ketamine and esketamine treatment.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as JSON objects (one per line) or as text; default json for `serve`, text otherwise.
    #[arg(long, global = true, env = "KETA_LOG_FORMAT", value_enum)]
    log_format: Option<logging::LogFormat>,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up; boxing would not pay")]
enum Command {
    /// Create (or reuse) a synthetic demo clinic under ./keta-data/ on SQLite and serve it.
    ///
    /// With --database-url the clinic is built in that database instead (SQLite or PostgreSQL),
    /// for trying Keta or a benchmark on PostgreSQL.
    Demo {
        #[command(flatten)]
        opts: DemoOptions,
    },
    /// Serve Keta. Settings come from --config FILE (TOML), then KETA_* variables, then flags;
    /// `--print-config` shows the result.
    Serve {
        #[command(flatten)]
        opts: config::ServeOptions,
    },
    /// Create or update the database schema, then exit.
    Migrate {
        /// sqlite://PATH or postgres://USER@HOST/DB
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
    },
    /// Score one questionnaire and print JSON, e.g. `keta score phq9 1 2 1 0 2 1 1 0 1`.
    ///
    /// Instruments: phq9, gad7, qids_sr16, pcl5, who5, cssrs_screen, madrs, cadss, cadss6, moaas, pain_nrs.
    /// Give one answer per item in order; for yes/no items use yes/no, and `-` for an item not asked.
    Score {
        instrument: String,
        #[arg(allow_hyphen_values = true, num_args = 0..)]
        answers: Vec<String>,
    },
    /// Print the OpenAPI document (as committed in docs/openapi.json).
    Openapi,
    /// The dose calculator (clinical-reference §2.1), the protocol library and course schedules, as JSON.
    Dose {
        #[command(subcommand)]
        command: dose::DoseCommand,
    },
    /// Pharmacokinetics: concentration curves, the model catalogue, the benchmark.
    Pk {
        #[command(subcommand)]
        command: pk::PkCommand,
    },
    /// Build a large synthetic clinic and measure chart reads and durable vitals writes
    /// (SQLite, and PostgreSQL with --postgres-url or KETA_TEST_POSTGRES_URL).
    Bench {
        #[command(flatten)]
        opts: bench::BenchOptions,
    },
    /// Kill -9 trials: concurrent writers over HTTP against a real `keta serve` killed at random
    /// moments; after each kill every acknowledged write must be present exactly once, the
    /// SQLite integrity check and `keta audit verify` must pass (see bench/crash-trials.sh).
    CrashTrials {
        #[command(flatten)]
        opts: crash_trials::CrashTrialOptions,
    },
    /// Simulated bedside monitors sending HL7 v2 ORU^R01 over MLLP to `keta serve --mllp-bind`:
    /// one connection per chair, chair 3 desaturates and chair 2's blood pressure climbs; prints
    /// the ACKs counted and their latencies (the throughput benchmark, docs/benchmarks.md).
    MonitorSim {
        #[command(flatten)]
        opts: monitor_sim::MonitorSimOptions,
    },
    /// Print the current 6-digit TOTP code for a base32 key (like `oathtool --totp -b`),
    /// e.g. to sign in to the demo clinic from a script.
    Totp {
        /// The base32 TOTP key.
        key: String,
    },
    /// Staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Take a consistent online backup: FILE plus FILE.manifest.json (docs/reliability.md).
    Backup {
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
        /// The backup file to write (it must not exist); the manifest goes beside it.
        #[arg(long)]
        to: PathBuf,
        /// Also append the audit chain's head to this anchor file.
        #[arg(long, env = "KETA_AUDIT_ANCHOR_FILE")]
        audit_anchor_file: Option<PathBuf>,
    },
    /// Restore a backup into a new, empty database, verifying it and its audit chain first.
    /// Every sign-in session in the backup is ended.
    Restore {
        /// The backup file (its FILE.manifest.json must lie beside it).
        #[arg(long)]
        from: PathBuf,
        /// The empty target: sqlite://PATH (a new file) or postgres://USER@HOST/DB (a new database).
        #[arg(long)]
        database_url: String,
    },
    /// Exports of the clinic's data.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Between-session check-ins.
    Checkins {
        #[command(subcommand)]
        command: CheckinsCommand,
    },
}

/// The options of `keta demo`.
#[derive(clap::Args)]
struct DemoOptions {
    /// Address to listen on.
    #[arg(long, env = "KETA_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Folder for the demo database.
    #[arg(long, env = "KETA_DEMO_DIR", default_value = "keta-data")]
    dir: PathBuf,
    /// Seed for the synthetic clinic: the same seed gives the same clinic.
    #[arg(long, default_value_t = demo::DEFAULT_SEED)]
    seed: u64,
    /// Delete the demo database first and build a fresh one.
    #[arg(long)]
    fresh: bool,
    /// Also listen for bedside monitors (HL7 v2 over MLLP) here, e.g. 127.0.0.1:2575, with a
    /// demo monitor registered to each "Chair N" (`keta monitor-sim` sends as them).
    #[arg(long, env = "KETA_MLLP_BIND")]
    mllp_bind: Option<SocketAddr>,
    /// A folder of the clinic's own protocol files (`*.toml`), added to the built-in library.
    #[arg(long, env = "KETA_PROTOCOLS_DIR")]
    protocols_dir: Option<PathBuf>,
    /// Build and serve the demo clinic in this database instead of the folder's demo.db
    /// (sqlite://PATH or postgres://USER@HOST/DB), e.g. to try Keta on PostgreSQL or serve it
    /// from several `keta serve` instances (bench/load.sh); an existing clinic there is
    /// reused. `--fresh` does not apply: give an empty database.
    #[arg(long, env = "KETA_DEMO_DATABASE_URL", conflicts_with = "fresh")]
    database_url: Option<String>,
    /// Build the clinic and its accounts, then exit without serving.
    #[arg(long)]
    build_only: bool,
    #[command(flatten)]
    shared: config::SharedOptions,
    #[arg(skip)]
    shared_origins: config::CliOrigins,
}

#[derive(Subcommand)]
enum CheckinsCommand {
    /// Issue links for the check-ins due now, send their reminders (KETA_SMTP_URL and
    /// KETA_MAIL_FROM; log-only when unset), record expiries and escalate urgent alerts nobody
    /// acknowledged in the clinic's time, once. `keta serve` does this every
    /// KETA_CHECKIN_SWEEP_SECONDS (escalation every minute); this is for cron or a one-off run.
    Sweep {
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
        /// The address links point at, e.g. https://keta.clinic.example.
        #[arg(long, env = "KETA_PUBLIC_URL")]
        public_url: String,
        /// SMTP server, smtp://[user:pass@]host[:port]; unset: log-only delivery.
        #[arg(long, env = "KETA_SMTP_URL", hide_env_values = true)]
        smtp_url: Option<String>,
        /// The From mailbox (needed with --smtp-url).
        #[arg(long, env = "KETA_MAIL_FROM")]
        mail_from: Option<String>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The de-identified research data set (HIPAA Safe Harbor, the clinic's k threshold) of
    /// the patients who consented to research use: CSV files and a data dictionary in DIR
    /// (new or empty). Audited with its parameters.
    Research {
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
        /// The folder to write (it must be new or empty).
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The first account must be an administrator (first-run setup).
    /// The password is read from KETA_NEW_PASSWORD or, if unset, from the first line of standard input.
    /// Prints the TOTP key to add to the user's authenticator app.
    Add {
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        username: String,
        /// The name printed on signatures.
        #[arg(long)]
        display_name: String,
        /// administrator, prescriber, nurse, front_desk, auditor or researcher.
        #[arg(long)]
        role: String,
        /// Site ids the user works at, comma-separated (e.g. 1,2).
        #[arg(long, value_delimiter = ',')]
        sites: Vec<i64>,
        /// Allow break-glass access to patients of other sites.
        #[arg(long)]
        break_glass: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-verify the hash chain; exits 1 and names the first bad entry if any entry
    /// was edited, deleted or reordered outside Keta.
    Verify {
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
        /// An anchor file (or a backup manifest): the chain must still hold every head recorded
        /// in it, so a chain whose tail was cut off fails, naming the anchored entry.
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
    /// Append the chain's current head to an anchor file kept outside the database
    /// (`keta serve` does this every KETA_AUDIT_ANCHOR_INTERVAL_SECONDS with --audit-anchor-file).
    Anchor {
        #[arg(long, env = "KETA_DATABASE_URL")]
        database_url: String,
        #[arg(long, env = "KETA_AUDIT_ANCHOR_FILE")]
        to: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Which values came from KETA_* variables rather than flags (for --print-config).
    if let Some((name, sub)) = matches.subcommand() {
        let origins = config::CliOrigins::from_matches(sub);
        match &mut cli.command {
            Command::Serve { opts } if name == "serve" => opts.origins = origins,
            Command::Demo { opts } if name == "demo" => opts.shared_origins = origins,
            _ => {}
        }
    }
    match cli.command {
        // Scoring is pure and instant; it needs no runtime or logging.
        Command::Score { instrument, answers } => score::run(&instrument, &answers),
        Command::Dose { command } => dose::run(command),
        Command::Pk { command } => pk::run(command),
        Command::Openapi => {
            print!("{}", keta_web::openapi_json());
            std::process::ExitCode::SUCCESS
        }
        Command::Totp { key } => {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match keta_store::credentials::totp_at_step(
                &key,
                now.div_euclid(keta_store::credentials::TOTP_STEP_SECONDS),
            ) {
                Some(code) => {
                    println!("{code}");
                    std::process::ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: '{key}' is not a base32 key (letters A-Z and digits 2-7)");
                    std::process::ExitCode::from(2)
                }
            }
        }
        other => {
            logging::init(
                cli.log_format.unwrap_or(logging::LogFormat::default_for(matches!(other, Command::Serve { .. }))),
            );
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            match rt.block_on(run(other)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Demo { opts } => run_demo(opts).await,
        Command::MonitorSim { opts } => monitor_sim::run(opts).await,
        Command::Serve { opts } => serve(opts).await,
        Command::Export { command: ExportCommand::Research { database_url, to } } => {
            let store = keta_store::Store::open(&database_url).await.context("opening the database")?;
            let export = research_export::run(&store, &research_export::command_line_actor(), &to).await?;
            println!(
                "research export written to {}: {} consenting patients, {} tables plus data_dictionary.csv, k = {}, {} cells suppressed",
                to.display(),
                export.patients,
                export.tables.len(),
                export.k_threshold,
                export.suppressed_cells
            );
            Ok(())
        }
        Command::Backup { database_url, to, audit_anchor_file } => {
            backup(&database_url, &to, audit_anchor_file.as_deref()).await
        }
        Command::Restore { from, database_url } => restore(&from, &database_url).await,
        Command::Audit { command: AuditCommand::Anchor { database_url, to } } => {
            let store = keta_store::Store::open(&database_url).await.context("opening the database")?;
            match store.audit_head().await? {
                Some(h) => {
                    keta_store::backup::append_anchor(&to, &h, store.now())
                        .with_context(|| format!("appending to {}", to.display()))?;
                    println!("anchored audit entry {} {} in {}", h.seq, h.row_hash, to.display());
                }
                None => println!("the audit chain is empty: nothing to anchor"),
            }
            Ok(())
        }
        Command::Checkins { command: CheckinsCommand::Sweep { database_url, public_url, smtp_url, mail_from } } => {
            config::check_public_url(&public_url, "--public-url")?;
            let store = keta_store::Store::open(&database_url).await.context("opening the database")?;
            let delivery = config::ReminderConfig { public_url: None, smtp_url, mail_from };
            let reminders = reminders_for(public_url, &delivery, Outbox::No)?;
            let s = keta_web::reminders::sweep_and_send(&store, &reminders).await.context("running the sweep")?;
            let e = keta_web::escalation::escalate_and_send(&store, &reminders)
                .await
                .context("escalating unacknowledged urgent alerts")?;
            println!(
                "{{\"issued\": {}, \"sent\": {}, \"expired\": {}, \"failed\": {}, \"escalated\": {}, \"escalations_sent\": {}, \"delivery\": {:?}}}",
                s.issued,
                s.sent,
                s.expired,
                s.failed,
                e.escalated,
                e.sent,
                reminders.describe()
            );
            Ok(())
        }
        Command::Migrate { database_url } => {
            keta_store::Store::open(&database_url).await.context("migrating")?;
            println!("schema is at version {}", keta_store::latest_version());
            Ok(())
        }
        Command::User {
            command: UserCommand::Add { database_url, username, display_name, role, sites, break_glass },
        } => add_user(&database_url, username, display_name, &role, sites, break_glass).await,
        Command::Audit { command: AuditCommand::Verify { database_url, anchor } } => {
            verify_audit(&database_url, anchor.as_deref()).await
        }
        Command::Bench { opts } => bench::run(opts).await,
        Command::CrashTrials { opts } => crash_trials::run(opts).await,
        Command::Score { .. } | Command::Openapi | Command::Totp { .. } | Command::Dose { .. } | Command::Pk { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}

/// `keta demo`: build (or reuse) the synthetic clinic, then serve it.
async fn run_demo(opts: DemoOptions) -> anyhow::Result<()> {
    let DemoOptions {
        bind,
        dir,
        seed,
        fresh,
        mllp_bind,
        protocols_dir,
        database_url,
        build_only,
        shared,
        shared_origins,
    } = opts;
    let settings = shared.resolve_alone(&shared_origins)?;
    let protocols = config::protocol_library(protocols_dir.as_deref())?;
    let path = dir.join("demo.db");
    if fresh {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let url = database_url.unwrap_or_else(|| format!("sqlite://{}", path.display()));
    let store = keta_store::Store::open_with(&url, keta_store::system_clock(), settings.store)
        .await
        .with_context(|| format!("opening {url}"))?;
    let summary = demo::ensure(&store, seed).await.context("building the demo clinic")?;
    demo_accounts::ensure(&store).await.context("creating the demo accounts")?;
    demo_ledger::ensure(&store).await.context("building the demo ledger")?;
    demo_notes::ensure(&store).await.context("signing the demo's session notes")?;
    demo_checkins::ensure(&store).await.context("setting up the demo's check-ins")?;
    if build_only {
        println!("Keta demo clinic: {summary}");
        keta_web::shutdown::settle(&store).await;
        return Ok(());
    }
    let mut monitors = None;
    if let Some(mllp) = mllp_bind {
        demo_monitors::ensure(&store).await.context("registering the demo monitors")?;
        let runtime = keta_web::monitors::MonitorRuntime {
            settings: keta_web::monitors::MonitorSettings::default(),
            raw_retention: time::Duration::days(i64::from(config::DEFAULT_MLLP_RAW_RETENTION_DAYS)),
        };
        let (addr, _) = keta_web::monitors::spawn_listener(mllp, store.clone(), runtime.settings.clone())
            .await
            .with_context(|| format!("listening for monitors on {mllp}"))?;
        keta_web::monitors::spawn_raw_purge(store.clone(), runtime.raw_retention);
        monitors = Some(runtime);
        println!("Bedside monitors (HL7 v2 over MLLP): {addr}  (try `keta monitor-sim --to {addr}`)");
    }
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("listening on {bind}"))?;
    let addr = listener.local_addr()?;
    println!("Keta demo clinic: {summary}");
    println!("Database: {}", keta_store::backup::redact(&url));
    println!("Serving on http://{addr}  (API: http://{addr}/api/v1/patients, OpenAPI: http://{addr}/api/openapi.json)");
    println!(
        "Sign in at http://{addr}/login with password \"{}\" and the code from `keta totp KEY`:",
        demo_accounts::DEMO_PASSWORD
    );
    for a in demo_accounts::accounts() {
        println!("  {:<11} {:<14} TOTP key {}", a.username, a.role.label(), a.totp_key);
    }
    let reminders = reminders_served_at(&settings.reminders, addr, Outbox::Demo)?;
    println!("Check-in reminders: {}", reminders.describe());
    println!("Press Ctrl-C to stop.");
    keta_web::reminders::spawn_sweeper(store.clone(), reminders.clone(), settings.web.checkin_sweep);
    let mut state =
        keta_web::AppState::new(store).with_settings(settings.web).with_reminders(reminders).with_protocols(protocols);
    if let Some(m) = monitors {
        state = state.with_monitors(m);
    }
    keta_web::serve(listener, state, keta_web::shutdown::signal()).await?;
    Ok(())
}

/// `keta serve`: the resolved settings, the store, the background tasks, then the listener.
async fn serve(opts: config::ServeOptions) -> anyhow::Result<()> {
    let print = opts.print_config;
    let cfg = opts.resolve()?;
    if print {
        print!("{}", cfg.print());
        return Ok(());
    }
    let store = keta_store::Store::open_with(&cfg.database_url, keta_store::system_clock(), cfg.shared.store)
        .await
        .context("opening the database")?;
    let listener =
        tokio::net::TcpListener::bind(cfg.bind).await.with_context(|| format!("listening on {}", cfg.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?store.backend(), "serving");
    let reminders = reminders_served_at(&cfg.shared.reminders, addr, Outbox::No)?;
    tracing::info!(delivery = %reminders.describe(), public_url = %reminders.public_url, "check-in reminders");
    if keta_web::cluster::follow_other_instances(&store) {
        tracing::info!("following changes made through other instances (PostgreSQL LISTEN)");
    }
    keta_web::reminders::spawn_sweeper(store.clone(), reminders.clone(), cfg.shared.web.checkin_sweep);
    if let Some(schedule) = cfg.backups {
        tracing::info!(dir = %schedule.dir.display(), every_s = schedule.every.as_secs(), keep = schedule.keep, "scheduled backups");
        backups::spawn_scheduled_backups(store.clone(), schedule);
    }
    backups::spawn_anchoring(store.clone(), cfg.audit_anchoring);
    let mut monitors = None;
    if let Some(mllp) = cfg.mllp {
        let (mllp_addr, _) = keta_web::monitors::spawn_listener(mllp.bind, store.clone(), mllp.settings.clone())
            .await
            .with_context(|| format!("listening for monitors on {}", mllp.bind))?;
        tracing::info!(addr = %mllp_addr, "listening for bedside monitors (HL7 v2 over MLLP)");
        keta_web::monitors::spawn_raw_purge(store.clone(), mllp.raw_retention);
        monitors =
            Some(keta_web::monitors::MonitorRuntime { settings: mllp.settings, raw_retention: mllp.raw_retention });
    }
    let mut observe = keta_web::observe::Observability::new(store.clone());
    observe.shutdown_grace = cfg.shutdown_grace;
    observe.metrics_token = cfg.metrics_token;
    let mut state = keta_web::AppState::new(store.clone())
        .with_settings(cfg.shared.web)
        .with_reminders(reminders)
        .with_trusted_proxies(cfg.trusted_proxies)
        .with_protocols(cfg.protocols)
        .with_bulk(cfg.bulk)
        .with_documents(keta_web::ui::print::Documents::from_dir(cfg.documents_dir))
        .with_observability(observe);
    if let Some(m) = monitors {
        state = state.with_monitors(m);
    }
    let served = match cfg.tls {
        Some((cert, key)) => {
            let tls = keta_web::serving::tls_config(&cert, &key).map_err(anyhow::Error::msg)?;
            tracing::info!(%addr, cert = %cert.display(), "serving HTTPS");
            keta_web::serving::serve_tls(listener, tls, state, keta_web::shutdown::signal()).await
        }
        None => keta_web::serve(listener, state, keta_web::shutdown::signal()).await,
    };
    keta_web::shutdown::settle(&store).await;
    served?;
    Ok(())
}

/// `keta backup`: a consistent copy with its manifest, and the audit head anchored when asked.
async fn backup(
    database_url: &str,
    to: &std::path::Path,
    audit_anchor_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let store = keta_store::Store::open(database_url).await.context("opening the database")?;
    let manifest = store.backup_to(to).await.with_context(|| format!("backing up to {}", to.display()))?;
    if let (Some(f), Some(head)) = (audit_anchor_file, &manifest.survey.audit_head) {
        keta_store::backup::append_anchor(f, head, manifest.taken_at)
            .with_context(|| format!("appending the audit anchor to {}", f.display()))?;
    }
    println!(
        "backup written: {} ({} bytes, SHA-256 {}), manifest {}",
        to.display(),
        manifest.file_bytes,
        manifest.file_sha256,
        keta_store::backup::manifest_path(to).display()
    );
    match &manifest.survey.audit_head {
        Some(h) => println!("audit chain head: entry {} {}", h.seq, h.row_hash),
        None => println!("audit chain: empty"),
    }
    println!(
        "{} tables, {} rows, schema version {}",
        manifest.survey.tables.len(),
        manifest.survey.tables.values().sum::<i64>(),
        manifest.survey.schema_version
    );
    Ok(())
}

/// `keta restore`: a backup into an empty database, its audit trail verified.
async fn restore(from: &std::path::Path, database_url: &str) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let report = keta_store::backup::restore(from, database_url, now)
        .await
        .with_context(|| format!("restoring {}", from.display()))?;
    println!(
        "restored {} tables, {} rows from the backup taken {}",
        report.tables,
        report.rows,
        report.backup_taken_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    );
    match &report.audit_head {
        Some(h) => println!(
            "audit trail intact: {} entries verified up to the anchored head, entry {} {}",
            report.audit_entries_verified, h.seq, h.row_hash
        ),
        None => println!("audit trail: empty"),
    }
    println!("sign-in sessions ended: {}", report.sign_in_sessions_ended);
    println!("done: {database_url} is ready to serve");
    Ok(())
}

/// `keta user add`: an account, its password from KETA_NEW_PASSWORD or standard input.
async fn add_user(
    database_url: &str,
    username: String,
    display_name: String,
    role: &str,
    sites: Vec<i64>,
    break_glass: bool,
) -> anyhow::Result<()> {
    let role = keta_domain::access::Role::parse(role).with_context(|| {
        format!("unknown role '{role}': use administrator, prescriber, nurse, front_desk or auditor")
    })?;
    let password = match std::env::var("KETA_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let store = keta_store::Store::open(database_url).await.context("opening the database")?;
    let actor = keta_store::Actor::system();
    let new = keta_store::accounts::NewUser {
        username,
        display_name,
        role,
        password,
        site_ids: sites.into_iter().map(keta_domain::ids::SiteId).collect(),
        can_break_glass: break_glass,
        totp_secret: None,
    };
    let (user, secret) = store.create_user(&actor, new).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("created {} ({}), id {}", user.username, user.role.label(), user.id);
    println!("TOTP key for the authenticator app (shown once): {secret}");
    Ok(())
}

/// `keta audit verify`: the audit chain, its anchors, the ledger and the signed notes; exits 1 on a break.
async fn verify_audit(database_url: &str, anchor: Option<&std::path::Path>) -> anyhow::Result<()> {
    let anchors = match anchor {
        Some(f) => Some(keta_store::backup::read_anchors(f)?),
        None => None,
    };
    let store = keta_store::Store::open(database_url).await.context("opening the database")?;
    let mut ok = true;
    match store.verify_audit_chain().await? {
        (n, None) => {
            println!("audit trail intact: {n} entries verified");
            let waiting = store.unsealed_audit_entries().await?;
            if waiting > 0 {
                println!(
                    "{waiting} newer entries are committed but not yet chained (the database disk is full?); they are chained once there is room"
                );
            }
        }
        (n, Some(b)) => {
            ok = false;
            println!("audit trail BROKEN at entry {}: {} ({n} entries before it verified)", b.seq, b.reason);
        }
    }
    if let Some(anchors) = anchors {
        let n = anchors.len();
        match store.check_audit_anchors(anchors).await? {
            None => println!("audit anchors intact: all {n} anchored heads are in the chain"),
            Some(b) => {
                ok = false;
                println!("audit trail BROKEN at anchored entry {}: it {}", b.seq, b.reason);
            }
        }
    }
    let ledger = store.verify_ledger(&keta_store::Actor::system()).await?;
    match &ledger.first_break {
        None => println!("controlled-substance ledger intact: {} entries verified", ledger.entries_checked),
        Some(b) => {
            ok = false;
            println!("controlled-substance ledger BROKEN: {b:?}");
        }
    }
    let notes = store.verify_signed_notes(&keta_store::Actor::system()).await?;
    if notes.is_empty() {
        println!("signed notes intact");
    }
    for (session, v) in notes {
        ok = false;
        println!("signed note of session {session} BROKEN: {}", v.problems.join("; "));
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Whether log-only reminders are kept for the `/outbox` screen: only in the demo, whose
/// patients are synthetic. A real server without SMTP logs masked lines and keeps nothing, as
/// the outbox would show every patient's working link.
#[derive(Clone, Copy, PartialEq)]
enum Outbox {
    Demo,
    No,
}

/// E-mail through the SMTP settings when set, otherwise log-only.
fn reminders_for(
    public: String,
    delivery: &config::ReminderConfig,
    outbox: Outbox,
) -> anyhow::Result<keta_web::reminders::Reminders> {
    use keta_web::reminders::Reminders;
    Ok(match (&delivery.smtp_url, outbox) {
        (Some(_), _) => Reminders::with_delivery(
            keta_notify::Delivery::from_settings(delivery.smtp_url.as_deref(), delivery.mail_from.as_deref())
                .context("setting up e-mail delivery")?,
            public,
        ),
        (None, Outbox::Demo) => Reminders::log_only(public),
        (None, Outbox::No) => Reminders::with_delivery(keta_notify::Delivery::log_only(), public),
    })
}

/// Reminder delivery ([`reminders_for`]) with links to the configured public address
/// (default: the address served).
fn reminders_served_at(
    r: &config::ReminderConfig,
    addr: std::net::SocketAddr,
    outbox: Outbox,
) -> anyhow::Result<keta_web::reminders::Reminders> {
    let public = r.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    reminders_for(public, r, outbox)
}

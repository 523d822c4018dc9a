//! `clinic-auth`: the server and the admin command line. This file parses arguments
//! and configuration and calls into the libraries; it holds no rules of its own.

mod backup;
mod check_config;
mod settings;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use clinic_auth_app::{App, By, SystemClock, accounts, admin, oidc, time as admin_time};
use clinic_auth_core::{AccountKind, OrgKind, Password, Role};
use clinic_auth_web::AppState;
use serde_json::json;
use settings::{Overrides, Settings};

/// jemalloc rather than glibc's malloc: a request's memory is often freed on another
/// worker thread than the one that allocated it, and glibc takes the owning arena's
/// lock for that (futex wake-ups from malloc and realloc in a profile under load).
/// Its options (`.cargo/config.toml`) give memory back to the system when idle.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// clinic-auth: a self-hostable login server for multi-tenant clinic software.
#[derive(Parser, Debug)]
#[command(name = "clinic-auth", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "CLINIC_AUTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: the SQLite file and generated keys.
    #[arg(long, global = true, env = "CLINIC_AUTH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "CLINIC_AUTH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// The address people reach the server at, used in links (default http://localhost:PORT
    /// when listening on loopback, else http://LISTEN).
    #[arg(long, global = true, env = "CLINIC_AUTH_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Show log lines (admin commands print only their result otherwise); twice: debug.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (migrates the database first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CLINIC_AUTH_LISTEN", value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Address for Prometheus to scrape /metrics on (default 127.0.0.1:9464), or off.
        #[arg(long, env = "CLINIC_AUTH_METRICS_LISTEN", value_name = "ADDR|off")]
        metrics_listen: Option<String>,
    },
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Organizations (clinics and solo providers).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Staff members of an organization.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Patient-portal accounts.
    #[command(subcommand)]
    Patient(PatientCommand),
    /// Platform support accounts.
    #[command(name = "platform-admin", subcommand)]
    PlatformAdmin(PlatformAdminCommand),
    /// The audit trail: verify its hash chains, export events.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Apps that sign members in with OpenID Connect, and the provider's signing keys.
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// Print a one-time link with which an account's holder sets a new password.
    PasswordReset {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
    /// Copy the SQLite database, consistently, while the server runs (not the key).
    Backup {
        /// The new backup file (never overwritten).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Put a backup back, with every server stopped: checks the key opens it and its
    /// audit trail verifies, then replaces the database (kept as *.before-restore).
    Restore {
        /// A file made by `clinic-auth backup`.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Load the settings as `serve` would and report every problem with its fix;
    /// exits non-zero on any error.
    CheckConfig,
}

#[derive(Subcommand, Debug)]
enum OrgCommand {
    /// Create an organization.
    Create {
        /// Display name, e.g. "Riverside Clinic".
        #[arg(long)]
        name: String,
        /// clinic (many users) or solo (one provider).
        #[arg(long, value_parser = ["clinic", "solo"])]
        kind: String,
        /// Id used in URLs and commands (default: derived from the name).
        #[arg(long)]
        id: Option<String>,
    },
    /// List organizations.
    List,
    /// MFA settings: platform support enables MFA; then choose mode and methods.
    Mfa {
        #[arg(long)]
        org: String,
        /// Turn MFA on for the organization.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Turn MFA off for the organization (members keep their factors).
        #[arg(long)]
        disable: bool,
        /// off, optional (members may opt in) or required ("Mandatory 2FA", clinics only).
        #[arg(long, value_parser = ["off", "optional", "required"])]
        mode: Option<String>,
        /// Allowed methods, comma-separated: authenticator[,email,sms,passkey].
        #[arg(long)]
        methods: Option<String>,
        /// Grace period for Mandatory 2FA: days (0-30) members may choose "Remind me later".
        #[arg(long)]
        grace_days: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// Add a member; prints an invitation link unless a password is given on stdin.
    Add {
        /// Organization id.
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["owner", "admin", "provider", "staff"])]
        role: String,
        /// Read the initial password from standard input instead of inviting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// A member's two-factor setting: clinic_default, required or not_required.
    Mfa {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long = "override", value_parser = ["clinic_default", "required", "not_required"])]
        value: String,
    },
    /// An account's factor status (which factors, enrolled and last used), no secrets.
    Status {
        #[arg(long)]
        email: String,
    },
    /// Remove every factor of someone who lost them all, after verifying who they are.
    ResetMfa {
        #[arg(long)]
        email: String,
        /// How their identity was verified, e.g. "called back on the number on file".
        #[arg(long, value_name = "NOTE")]
        verified_by: String,
    },
    /// Let a member sign in once without 2FA; they set it up again right after.
    Bypass {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check every organization's hash chain; exits non-zero if any event was edited,
    /// inserted, deleted or reordered.
    Verify {
        /// A file outside the database that keeps each chain's last verified event.
        /// Each run checks the chains still reach it (catching newest events cut
        /// off), then moves it forward. Created on the first run.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Print events as CSV (or JSON with --json), oldest first.
    Export {
        /// Only this organization (default: all).
        #[arg(long)]
        org: Option<String>,
        /// Only events of this member (email or id).
        #[arg(long)]
        member: Option<String>,
        /// Only this event type, e.g. mfa_reset.
        #[arg(long)]
        kind: Option<String>,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (UTC), inclusive.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum OidcCommand {
    /// Registered apps.
    #[command(subcommand)]
    Client(OidcClientCommand),
    /// The keys that sign ID tokens.
    #[command(subcommand)]
    Keys(OidcKeysCommand),
}

#[derive(Subcommand, Debug)]
enum OidcClientCommand {
    /// Register an app; prints its client_id and, for a confidential app, its secret
    /// (shown this once only).
    Create {
        /// The name members see ("Riverside EHR").
        #[arg(long)]
        name: String,
        /// Where the app receives the sign-in (exact match; repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where the app may send the browser after signing out (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Where the app is told that a member's session ended.
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// A browser or mobile app that cannot keep a secret (PKCE only).
        #[arg(long, conflicts_with = "confidential", required_unless_present = "confidential")]
        public: bool,
        /// A server-side app with a client secret.
        #[arg(long)]
        confidential: bool,
        /// Admit only this organization's accounts.
        #[arg(long)]
        org: Option<String>,
        /// A patient-portal app: patients sign in, at the patient pages.
        #[arg(long)]
        patients: bool,
        /// Every sign-in through this app proves a second factor.
        #[arg(long)]
        require_mfa: bool,
        /// How ID tokens are signed for this app: RS256 (default) or ES256.
        #[arg(long, value_name = "ALG")]
        id_token_alg: Option<String>,
    },
    /// List registered apps.
    List,
}

#[derive(Subcommand, Debug)]
enum OidcKeysCommand {
    /// Make new signing keys; the old public keys stay published until tokens they
    /// signed have expired.
    Rotate,
}

#[derive(Subcommand, Debug)]
enum PatientCommand {
    /// Add a patient-portal account; prints an invitation link.
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PlatformAdminCommand {
    /// Create a platform admin; prints an invitation link unless a password is given.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One rustls crypto provider (ring) for every TLS client in the process.
    clinic_auth_notify::install_default_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json_out = cli.global.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if json_out {
                let code = e
                    .downcast_ref::<clinic_auth_app::Error>()
                    .map(|a| clinic_auth_web::error_code(a.kind))
                    .unwrap_or("error");
                println!("{}", json!({"error": {"code": code, "message": format!("{e:#}")}}));
            } else {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// `serve` logs at `log_level`; every other command prints its result and logs only
/// warnings, unless `-v` (then `log_level`) or `-vv` (debug).
fn init_logging(s: &Settings, serving: bool, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match (serving, verbose) {
        (_, 2..) => "debug",
        (true, _) | (false, 1) => s.log_level.as_str(),
        (false, 0) => "warn",
    };
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if s.log_format == "json" { builder.json().try_init() } else { builder.try_init() };
}

async fn open_store(s: &Settings) -> anyhow::Result<Arc<dyn clinic_auth_store::Store>> {
    if s.database_url.is_none() {
        create_private_dir(&s.data_dir)?;
    }
    let url = s.database_url();
    clinic_auth_store::check_url(&url)?;
    // The audit chain is keyed from the encryption keyring: no key, no store.
    let keys = s.sealer()?.audit_chain_keys().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let store = clinic_auth_store::connect(&url, keys)
        .await
        .with_context(|| format!("opening the database ({})", redact_url(&url)))?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// An audit checkpoint file: `{"chain": {"seq": N, "hash": "v1:…"}}`; none yet is empty.
fn read_checkpoint(
    path: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeMap<String, clinic_auth_core::audit::ChainHead>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("reading checkpoint {}", path.display())),
    };
    let raw: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("checkpoint {} is not valid JSON", path.display()))?;
    raw.into_iter()
        .map(|(chain, v)| {
            let seq = v.get("seq").and_then(serde_json::Value::as_i64);
            let hash = v.get("hash").and_then(serde_json::Value::as_str);
            match (seq, hash) {
                (Some(seq), Some(hash)) => {
                    Ok((chain, clinic_auth_core::audit::ChainHead { seq, hash: hash.to_owned() }))
                }
                _ => bail!("checkpoint {}: chain {chain:?} needs a seq and a hash", path.display()),
            }
        })
        .collect()
}

/// Replaces the checkpoint file whole (write, then rename), so a crash never leaves half of one.
fn write_checkpoint(
    path: &std::path::Path,
    heads: &std::collections::BTreeMap<String, clinic_auth_core::audit::ChainHead>,
) -> anyhow::Result<()> {
    let map: serde_json::Map<String, serde_json::Value> =
        heads.iter().map(|(c, h)| (c.clone(), json!({"seq": h.seq, "hash": h.hash}))).collect();
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(map))?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing checkpoint {}", path.display()))?;
    Ok(())
}

/// The data directory holds the database and keys: only its owner may read it.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting data directory {}", dir.display()))?;
    Ok(())
}

/// A database URL without its password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn read_password_stdin(wanted: bool) -> anyhow::Result<Option<Password>> {
    if !wanted {
        return Ok(None);
    }
    let mut s = String::new();
    std::io::stdin().take(4096).read_to_string(&mut s).context("reading the password from standard input")?;
    let pw = s.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        bail!("no password on standard input");
    }
    Ok(Some(Password::new(pw)))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    let (listen, metrics_listen) = match &cli.command {
        Command::Serve { listen, metrics_listen } => (*listen, metrics_listen.clone()),
        _ => (None, None),
    };
    let overrides = Overrides {
        listen,
        data_dir: g.data_dir.clone(),
        database_url: g.database_url.clone(),
        public_url: g.public_url.clone(),
        metrics_listen,
    };
    if let Command::CheckConfig = cli.command {
        if let Ok(s) = Settings::load_unchecked(g.config.as_deref(), &overrides) {
            init_logging(&s, false, g.verbose);
        }
        let problems = check_config::check(g.config.as_deref(), &overrides).await;
        let errors = check_config::report(&problems, g.json);
        if errors > 0 {
            std::process::exit(1);
        }
        return Ok(());
    }
    let settings = Settings::load(g.config.as_deref(), &overrides)?;
    init_logging(&settings, matches!(cli.command, Command::Serve { .. }), g.verbose);

    match cli.command {
        Command::Serve { .. } => serve(settings).await,
        Command::Backup { to } => {
            let b = backup::backup(&settings, &to).await?;
            let key = settings.encryption_key_file.clone().unwrap_or_else(|| settings.data_dir.join("encryption.key"));
            print_out(
                g.json,
                json!({"backup": b.file.display().to_string(), "bytes": b.bytes}),
                &format!(
                    "Backed up the database to {} ({} bytes). The encryption key is not in it: keep a copy of {} (or your encryption_key setting) apart from it.",
                    b.file.display(),
                    b.bytes,
                    key.display()
                ),
            );
            Ok(())
        }
        Command::Restore { from } => {
            let r = backup::restore(&settings, &from).await?;
            let kept = r.kept.as_ref().map(|k| k.display().to_string());
            let mut text = format!(
                "Restored {} into {}. Audit trail intact: {} event(s) in {} chain(s).",
                from.display(),
                r.database.display(),
                r.events,
                r.chains
            );
            match &r.opened_key {
                Some(kid) => text.push_str(&format!(" The encryption key opens signing key {kid}.")),
                None => text.push_str(" The backup holds no signing key to test the encryption key on."),
            }
            if let Some(k) = &kept {
                text.push_str(&format!("\nThe replaced database is kept as {k}."));
            }
            print_out(
                g.json,
                json!({"restored": r.database.display().to_string(), "events": r.events, "chains": r.chains,
                    "keyring_opened": r.opened_key, "kept": kept}),
                &text,
            );
            Ok(())
        }
        Command::Migrate => {
            let store = open_store(&settings).await?;
            print_out(g.json, json!({"migrated": true, "store": store.backend_name()}), "Database is up to date.");
            Ok(())
        }
        command => admin(settings, g.json, command).await,
    }
}

async fn app_state(settings: &Settings, bound: std::net::SocketAddr) -> anyhow::Result<App> {
    let store = open_store(settings).await?;
    let sealer = settings.sealer()?;
    let senders = settings.senders()?;
    tracing::info!(email = %senders.email.describe(), sms = %senders.sms.describe(), "code delivery");
    Ok(App::new(store, Arc::new(SystemClock), settings.web_config(bound)?, sealer, senders))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Held while serving: `restore` refuses to replace the database under a server.
    let _serving = backup::hold_serve_lock(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let bound = listener.local_addr()?;
    let state = app_state(&settings, bound).await?;
    let metrics = match settings.metrics_address()? {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            // The sign-in server matters more than its metrics: say so loudly and go on.
            Err(e) => {
                tracing::error!(address = %addr, error = %e, "cannot listen for metrics; /metrics is off");
                None
            }
        },
        None => None,
    };
    tracing::info!(address = %bound, store = state.store.backend_name(), public_url = %state.config.public_url, "clinic-auth is serving");
    let note = clinic_auth_web::start_up_note(&state.config);
    if let Some(why) = &note.passkeys_off {
        tracing::warn!("passkeys are off: {why}");
    }
    if let Some(link) = accounts::ensure_setup_link(&state).await? {
        // Shown on the console only: whoever runs the server creates the first admin.
        println!("No platform admin exists yet. Create the first one within 24 hours at:\n  {link}\n");
    }
    println!("{}", note.open);
    let state = AppState::new(state);
    let metrics_task = match metrics {
        Some(l) => {
            println!("Prometheus metrics at http://{}/metrics", l.local_addr()?);
            Some(tokio::spawn(clinic_auth_web::serve_metrics(l, state.clone(), std::future::pending())))
        }
        None => None,
    };
    // The last line printed: tests and scripts read up to it and may close the pipe.
    println!("clinic-auth is listening on http://{bound} (public URL {})", state.config.public_url);
    let served = clinic_auth_web::serve(listener, state, shutdown_signal()).await.context("serving");
    if let Some(t) = metrics_task {
        t.abort();
    }
    served?;
    tracing::info!("clinic-auth stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn print_out(json_out: bool, value: serde_json::Value, text: &str) {
    if json_out { println!("{value}") } else { println!("{text}") }
}

fn account_json(a: &clinic_auth_store::Account) -> serde_json::Value {
    json!({
        "id": a.id.to_string(),
        "kind": a.kind.as_str(),
        "email": a.email.as_str(),
        "org_id": a.org_id.as_ref().map(|o| o.to_string()),
        "role": a.role.map(Role::as_str),
    })
}

async fn admin(settings: Settings, json_out: bool, command: Command) -> anyhow::Result<()> {
    let state = app_state(&settings, settings.listen).await?;
    let by = By::operator();
    match command {
        Command::Org(OrgCommand::Create { name, kind, id }) => {
            let kind: OrgKind = kind.parse()?;
            let org = accounts::create_org(&state, &by, &name, kind, id.as_deref()).await?;
            print_out(
                json_out,
                json!({"id": org.id.as_str(), "name": org.name, "kind": org.kind.as_str()}),
                &format!("Created {} organization {:?} with id {}", org.kind, org.name, org.id),
            );
        }
        Command::Org(OrgCommand::List) => {
            let orgs = state.store.list_orgs().await?;
            if json_out {
                let list: Vec<_> = orgs
                    .iter()
                    .map(|o| json!({"id": o.id.as_str(), "name": o.name, "kind": o.kind.as_str()}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for o in orgs {
                    println!("{}\t{}\t{}", o.id, o.kind, o.name);
                }
            }
        }
        Command::Org(OrgCommand::Mfa { org, enable, disable, mode, methods, grace_days }) => {
            let change = clinic_auth_app::policy::OrgMfaChange {
                enabled: if enable {
                    Some(true)
                } else if disable {
                    Some(false)
                } else {
                    None
                },
                mode: mode.map(|m| m.parse()).transpose()?,
                methods: methods.map(|m| m.parse()).transpose()?,
                grace_days: grace_days.map(|d| clinic_auth_core::policy::GraceDays::parse(&d)).transpose()?,
            };
            // No flag: show the settings without changing (or auditing) anything.
            let org = if change.is_empty() {
                clinic_auth_app::accounts::get_org(&state, &by, &org).await?
            } else {
                clinic_auth_app::policy::set_org_mfa(&state, &by, &org, change).await?
            };
            let mfa = &org.mfa;
            print_out(
                json_out,
                json!({"id": org.id.as_str(), "mfa": {"enabled": mfa.enabled, "mode": mfa.mode.as_str(),
                    "methods": mfa.methods.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                    "grace_days": mfa.grace_days.get()}}),
                &format!(
                    "{}: MFA {}, mode {}, methods {}, grace period {} days",
                    org.id,
                    if mfa.enabled { "enabled" } else { "disabled" },
                    mfa.mode,
                    mfa.methods,
                    mfa.grace_days
                ),
            );
        }
        Command::Member(MemberCommand::Mfa { org, email, value }) => {
            let value: clinic_auth_core::MemberOverride = value.parse()?;
            let member = clinic_auth_app::policy::set_member_override(&state, &by, &org, &email, value).await?;
            let mut v = account_json(&member);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("mfa_override".into(), json!(member.mfa_override.as_str()));
            }
            print_out(json_out, v, &format!("{}: two-factor setting {}", member.email, member.mfa_override));
        }
        Command::Member(MemberCommand::Add { org, email, role, password_stdin }) => {
            let role: Role = role.parse()?;
            let pw = read_password_stdin(password_stdin)?;
            let added =
                accounts::add_account(&state, &by, AccountKind::Member, Some(&org), &email, Some(role), pw).await?;
            report_added(json_out, &added);
        }
        Command::Patient(PatientCommand::Add { org, email, password_stdin }) => {
            let pw = read_password_stdin(password_stdin)?;
            let added = accounts::add_account(&state, &by, AccountKind::Patient, Some(&org), &email, None, pw).await?;
            report_added(json_out, &added);
        }
        Command::PlatformAdmin(PlatformAdminCommand::Create { email, password_stdin }) => {
            let pw = read_password_stdin(password_stdin)?;
            let added = accounts::add_account(&state, &by, AccountKind::PlatformAdmin, None, &email, None, pw).await?;
            report_added(json_out, &added);
        }
        Command::Member(MemberCommand::Status { email }) => {
            let m = admin::member_status(&state, &by, None, &email).await?;
            let factors: Vec<_> = m
                .factors
                .iter()
                .map(|f| {
                    json!({"kind": f.kind.as_str(), "label": f.label, "created_at": f.created_at.0,
                    "last_used_at": f.last_used_at.map(|t| t.0)})
                })
                .collect();
            let mut v = account_json(&m.account);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("status".into(), json!(m.account.status.as_str()));
                obj.insert("mfa_override".into(), json!(m.account.mfa_override.as_str()));
                obj.insert("factors".into(), json!(factors));
                obj.insert("recovery_code_set".into(), json!(m.has_recovery_code));
                obj.insert("bypass_pending".into(), json!(m.bypass_valid));
                obj.insert("mfa_required".into(), json!(m.mfa_required));
            }
            let mut text = format!(
                "{} ({}, {}), two-factor setting {}{}",
                m.account.email,
                m.account.kind,
                m.account.status,
                m.account.mfa_override,
                if m.bypass_valid { ", one-time bypass pending" } else { "" }
            );
            for f in &m.factors {
                let used = f.last_used_at.map(admin_time::date_time).unwrap_or_else(|| "never".into());
                text.push_str(&format!(
                    "\n  {}: enrolled {}, last used {used}",
                    f.label,
                    admin_time::date_time(f.created_at)
                ));
            }
            if m.factors.is_empty() {
                text.push_str("\n  no second factor");
            }
            print_out(json_out, v, &text);
        }
        Command::Member(MemberCommand::ResetMfa { email, verified_by }) => {
            let removed = admin::reset_mfa(&state, &by, None, &email, Some(&verified_by)).await?;
            print_out(
                json_out,
                json!({"email": email, "removed_factors": removed}),
                &format!("Removed {removed} factor(s) of {email}; they set up 2FA again at their next sign-in."),
            );
        }
        Command::Member(MemberCommand::Bypass { email }) => {
            let b = admin::grant_bypass(&state, &by, None, &email).await?;
            print_out(
                json_out,
                json!({"email": email, "expires_at": b.expires_at.0}),
                &format!("{email} may sign in once without 2FA until {}.", admin_time::date_time(b.expires_at)),
            );
        }
        Command::Audit(AuditCommand::Verify { checkpoint }) => {
            let seen = match &checkpoint {
                Some(path) => read_checkpoint(path)?,
                None => Default::default(),
            };
            let r = state.store.verify_audit(&seen).await?;
            if !r.breaks.is_empty() {
                let breaks: Vec<String> = r.breaks.iter().map(ToString::to_string).collect();
                bail!("the audit trail failed verification:\n  {}", breaks.join("\n  "));
            }
            if let Some(path) = &checkpoint {
                write_checkpoint(path, &r.heads)?;
            }
            print_out(
                json_out,
                json!({"intact": true, "chains": r.chains, "events": r.events, "breaks": []}),
                &format!("Audit trail intact: {} event(s) in {} chain(s).", r.events, r.chains),
            );
        }
        Command::Audit(AuditCommand::Export { org, member, kind, from, to }) => {
            let q = admin::AuditQuery { member, kind, from, to, limit: None, before: None };
            // Page by page, oldest first, written as it is read: an export of any
            // length runs in the same memory.
            use std::io::Write;
            let mut walk = admin::AuditExport::start(&state, &by, org.as_deref(), &q).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout());
            out.write_all(if json_out { b"[" } else { admin::CSV_HEADER.as_bytes() })?;
            let mut first = true;
            while let Some(page) = walk.next_page().await? {
                if json_out {
                    for e in &page {
                        let v = json!({"id": e.id, "at": e.at.0, "org_id": e.org_id, "kind": e.kind,
                            "outcome": e.outcome, "actor_id": e.actor_id, "subject_id": e.subject_id,
                            "client_ip": e.client_ip, "user_agent": e.user_agent, "detail": e.detail, "seq": e.seq,
                            "hash": e.hash});
                        out.write_all(if first { b"" } else { b"," })?;
                        serde_json::to_writer(&mut out, &v)?;
                        first = false;
                    }
                } else {
                    let mut text = String::new();
                    admin::csv_rows(&page, walk.names(), &mut text);
                    out.write_all(text.as_bytes())?;
                }
            }
            if json_out {
                out.write_all(b"]\n")?;
            }
            out.flush()?;
        }
        Command::Oidc(OidcCommand::Client(OidcClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            public: _,
            confidential,
            org,
            patients,
            require_mfa,
            id_token_alg,
        })) => {
            let new = oidc::clients::NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                confidential,
                org_id: org,
                patients,
                require_mfa,
                id_token_alg,
            };
            let registered = oidc::clients::register(&state, &by, new).await?;
            let c = &registered.client;
            let secret = registered.client_secret.as_ref().map(|s| s.expose().to_owned());
            let mut v = client_json(c);
            if let (Some(obj), Some(secret)) = (v.as_object_mut(), &secret) {
                obj.insert("client_secret".into(), json!(secret));
            }
            let text = match &secret {
                Some(secret) => format!(
                    "Registered {:?}.\n  client_id:     {}\n  client_secret: {secret}\nThe secret is shown only now; store it in the app's configuration.\nDiscovery: {}/.well-known/openid-configuration",
                    c.name,
                    c.client_id,
                    oidc::issuer(&state)
                ),
                None => format!(
                    "Registered {:?} (public, PKCE).\n  client_id: {}\nDiscovery: {}/.well-known/openid-configuration",
                    c.name,
                    c.client_id,
                    oidc::issuer(&state)
                ),
            };
            print_out(json_out, v, &text);
        }
        Command::Oidc(OidcCommand::Client(OidcClientCommand::List)) => {
            let clients = oidc::clients::list(&state, &by).await?;
            if json_out {
                println!("{}", serde_json::Value::Array(clients.iter().map(client_json).collect()));
            } else {
                for c in clients {
                    let kind = if c.secret_hash.is_some() { "confidential" } else { "public" };
                    println!(
                        "{}\t{kind}\t{}\t{}",
                        c.client_id,
                        c.org_id.as_ref().map(|o| o.as_str()).unwrap_or("any"),
                        c.name
                    );
                }
            }
        }
        Command::Oidc(OidcCommand::Keys(OidcKeysCommand::Rotate)) => {
            let kids = oidc::keys::rotate(&state, &by).await?;
            print_out(
                json_out,
                json!({"kids": kids}),
                &format!(
                    "New signing keys: {}. The previous public keys stay published until tokens they signed expire.",
                    kids.join(", ")
                ),
            );
        }
        Command::PasswordReset { email } => {
            let account = accounts::find_by_email(&state, &email).await?;
            let url = accounts::password_reset_link(&state, &by, &account.id.to_string()).await?;
            print_out(
                json_out,
                json!({"account": account_json(&account), "reset_url": url}),
                &format!("Give this one-time link (valid 24 hours) to {}:\n  {url}", account.email),
            );
        }
        Command::Serve { .. }
        | Command::Migrate
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::CheckConfig => {}
    }
    Ok(())
}

fn client_json(c: &clinic_auth_store::OidcClient) -> serde_json::Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "confidential": c.secret_hash.is_some(),
        "org_id": c.org_id.as_ref().map(|o| o.as_str()),
        "realm": c.realm.as_str(),
        "require_mfa": c.require_mfa,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "id_token_signed_response_alg": c.id_token_alg,
    })
}

fn report_added(json_out: bool, added: &accounts::Added) {
    let mut v = account_json(&added.account);
    if let (Some(obj), Some(url)) = (v.as_object_mut(), &added.invitation_url) {
        obj.insert("invitation_url".into(), json!(url));
        obj.insert("invitation_emailed".into(), json!(added.invitation_emailed));
    }
    let text = match &added.invitation_url {
        Some(url) if added.invitation_emailed => format!(
            "Added {} ({}) and emailed them an invitation. The link, if they need it again:\n  {url}",
            added.account.email, added.account.kind
        ),
        Some(url) => format!(
            "Added {} ({}). The invitation email could not be sent; send them this link:\n  {url}",
            added.account.email, added.account.kind
        ),
        None => format!("Added {} ({}) with the given password.", added.account.email, added.account.kind),
    };
    print_out(json_out, v, &text);
}

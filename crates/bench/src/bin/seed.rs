//! Adds benchmark members to a clinic through the store (not the HTTP path): each has
//! the password of a template member (its hash is copied, so seeding costs no
//! Argon2), an authenticator whose secret the load generator can compute codes from,
//! and `--flows` sign-ins already past the password, waiting for the code.
//!
//! Writes one line per sign-in in flight to `--out`: `FLOW_TOKEN SECRET_HEX EMAIL`.
//!
//! With `--audit-events N` it instead appends N sign-in events about the template
//! member to the clinic's audit chain, each through the store's own append (chained
//! and keyed as the server writes them), to grow a trail of millions quickly.
//!
//!   seed --database-url sqlite:/tmp/d/clinic-auth.db --keyring-file /tmp/d/encryption.key \
//!        --org bench-clinic --template member0@bench.test --members 20000 --flows 1 --out flows.txt

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use clinic_auth_app::Sealer;
use clinic_auth_core::login_flow::{FLOW_LIFETIME_SECS, FlowStep, LoginFlow};
use clinic_auth_core::totp::TotpSecret;
use clinic_auth_core::{AccountId, AccountKind, Email, FactorKind, OrgId, Realm, Role, SecretToken, UnixTime};
use clinic_auth_store::{ClientInfo, NewAccount, NewAuditEvent, NewFactor, Store, Via};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    database_url: String,
    /// The server's encryption keyring (`VERSION:BASE64` lines).
    #[arg(long)]
    keyring_file: std::path::PathBuf,
    #[arg(long)]
    org: String,
    /// A member made with the CLI (`member add --password-stdin`) whose password hash
    /// every seeded member shares.
    #[arg(long)]
    template: String,
    #[arg(long)]
    members: usize,
    /// Sign-ins waiting at the code step, per member.
    #[arg(long, default_value_t = 1)]
    flows: usize,
    /// Emails are `PREFIX-N@bench.test`.
    #[arg(long, default_value = "m")]
    prefix: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Append this many audit events instead of adding members.
    #[arg(long, default_value_t = 0)]
    audit_events: usize,
}

fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keyring = std::fs::read_to_string(&args.keyring_file).context("reading the keyring")?;
    let sealer = Arc::new(Sealer::from_keyring(&keyring)?);
    let keys = sealer.audit_chain_keys().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let store = clinic_auth_store::connect(&args.database_url, keys).await?;
    let org = OrgId::parse(&args.org)?;
    let template = store
        .find_account(Realm::Staff, &Email::parse(&args.template)?)
        .await?
        .context("the template member does not exist")?;
    let Some(hash) = template.password_hash.clone() else { bail!("the template member has no password") };

    let started = Instant::now();
    if args.audit_events > 0 {
        append_events(&store, &org, template.id, args.audit_events, args.concurrency).await?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "appended {} audit events in {secs:.1}s ({:.0}/s)",
            args.audit_events,
            args.audit_events as f64 / secs
        );
        store.close().await?;
        return Ok(());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4096);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (store, sealer, org, hash, next, tx) =
            (store.clone(), sealer.clone(), org.clone(), hash.clone(), next.clone(), tx.clone());
        let (members, flows, prefix) = (args.members, args.flows, args.prefix.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= members {
                    return Ok::<_, anyhow::Error>(());
                }
                for line in
                    seed_member(&*store, &sealer, &org, &hash, &format!("{prefix}-{i}@bench.test"), flows).await?
                {
                    tx.send(line).await.ok();
                }
            }
        }));
    }
    drop(tx);
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::sink()),
    };
    while let Some(line) = rx.recv().await {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("seeded {} members in {secs:.1}s ({:.0}/s)", args.members, args.members as f64 / secs);
    store.close().await?;
    Ok(())
}

/// `n` events on the clinic's chain from `concurrency` writers (the store batches
/// their commits as it does the server's).
async fn append_events(
    store: &Arc<dyn Store>,
    org: &OrgId,
    subject: AccountId,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (store, org, next) = (store.clone(), org.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                store.append_audit(&event("sign_in", &org, subject, now())).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn event(kind: &'static str, org: &OrgId, subject: AccountId, at: UnixTime) -> NewAuditEvent {
    NewAuditEvent {
        at,
        kind,
        outcome: "success",
        org_id: Some(org.clone()),
        actor_id: None,
        subject_id: Some(subject),
        client: ClientInfo { ip: "127.0.0.1".into(), user_agent: "clinic-auth-bench seed".into() },
        detail: r#"{"via":"bench seed"}"#.into(),
        via: Via::default(),
    }
}

/// One member with an authenticator, and `flows` sign-ins waiting for its code.
async fn seed_member(
    store: &dyn Store,
    sealer: &Sealer,
    org: &OrgId,
    hash: &str,
    email: &str,
    flows: usize,
) -> anyhow::Result<Vec<String>> {
    let at = now();
    let email = Email::parse(email)?;
    let id = AccountId::new_random();
    let account = NewAccount {
        id,
        kind: AccountKind::Member,
        email: email.clone(),
        org_id: Some(org.clone()),
        role: Some(Role::Provider),
        password_hash: Some(hash.to_owned()),
        now: at,
    };
    store.insert_account(&account, None, &event("account_created", org, id, at)).await?;
    let secret = TotpSecret::generate();
    let context = clinic_auth_app::mfa_state::sealing_context_for(id, FactorKind::Authenticator);
    let factor = NewFactor {
        id: AccountId::new_random().to_string(),
        account_id: id,
        kind: FactorKind::Authenticator,
        label: "Authenticator app".into(),
        secret: Some(sealer.seal(secret.as_bytes(), &context).map_err(|e| anyhow::anyhow!("{}", e.message))?),
        last_used_step: None,
        now: at,
        target: None,
    };
    store.enroll_factor(&factor, None, &event("factor_enrolled", org, id, at)).await?;
    let stamp = store.get_account(id).await?.context("the member just added is gone")?.security_stamp;
    let mut lines = Vec::with_capacity(flows);
    for _ in 0..flows {
        let token = SecretToken::generate();
        let flow = LoginFlow {
            realm: Realm::Staff,
            email: email.clone(),
            step: FlowStep::SecondFactor { account_id: id, method: FactorKind::Authenticator },
            created_at: at,
            expires_at: UnixTime(at.0 + FLOW_LIFETIME_SECS),
            stamp,
            client_ip: Some("127.0.0.1".into()),
            org_hint: None,
        };
        store.insert_flow(&token.hash(), &flow).await?;
        let hex: String = secret.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        lines.push(format!("{} {hex} {}", token.expose(), email.as_str()));
    }
    Ok(lines)
}

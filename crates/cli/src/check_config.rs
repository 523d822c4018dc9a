//! `clinic-auth check-config`: loads the settings exactly as `serve` does and reports
//! every problem at once, each with what to do about it, instead of stopping at the
//! first. Errors stop `serve` or break sign-ins; warnings are worth a look. It changes
//! nothing: no database or key file is created, no migration is run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clinic_auth_app::{App, SystemClock};
use serde_json::json;

use crate::settings::{Overrides, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub level: Level,
    /// What is wrong, naming the setting.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn error(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Problem { level: Level::Error, what: what.into(), fix: fix.into() });
    }
    fn warning(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Problem { level: Level::Warning, what: what.into(), fix: fix.into() });
    }
}

/// Every problem of the configuration `serve` would run with.
pub async fn check(config_file: Option<&Path>, overrides: &Overrides) -> Vec<Problem> {
    let mut p = Problems::default();
    let s = match Settings::load_unchecked(config_file, overrides) {
        Ok(s) => s,
        Err(e) => {
            p.error(
                format!("{e:#}"),
                "fix the file or variable named above (a number, boolean or address where one is expected)",
            );
            return p.0;
        }
    };
    for what in s.problems() {
        p.error(what, "see the configuration table in the README for the allowed values");
    }
    let bound = s.listen;
    let public_url = match s.public_url(bound) {
        Ok(u) => Some(u),
        Err(e) => {
            p.error(
                format!("{e:#}"),
                "set public_url to the address people reach the server at, e.g. https://auth.clinic.example",
            );
            None
        }
    };
    check_delivery(&s, &mut p);
    if let Some(url) = &public_url {
        check_web(&s, url, &mut p);
    }
    if let Ok(Some(addr)) = s.metrics_address()
        && !addr.ip().is_loopback()
    {
        p.warning(
            format!("metrics_listen {addr} is not a loopback address: anyone who reaches it reads the metrics"),
            "keep it on 127.0.0.1 (or a private interface behind a firewall) and let Prometheus scrape from there",
        );
    }
    check_store_and_key(&s, &mut p).await;
    p.0
}

fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_delivery(s: &Settings, p: &mut Problems) {
    if s.email_transport == "smtp" {
        match s.smtp_host.as_deref().filter(|h| !h.is_empty()) {
            None => {
                p.error("email_transport = smtp but smtp_host is not set", "set smtp_host (and smtp_port, smtp_tls)")
            }
            Some(host) => {
                if s.smtp_tls == "none" && !is_local_host(host) {
                    p.error(
                        format!("smtp_tls = none sends codes and the SMTP password in plain text to {host}"),
                        "use smtp_tls = starttls (port 587) or tls (port 465); none is only for a relay on this machine",
                    );
                }
            }
        }
        if s.smtp_username.is_some() != s.smtp_password.is_some() {
            p.error(
                "only one of smtp_username and smtp_password is set",
                "set both, or neither for a relay without sign-in",
            );
        }
    }
    if s.sms_transport == "twilio" {
        if s.twilio_account_sid.as_deref().is_none_or(str::is_empty) {
            p.error("sms_transport = twilio but twilio_account_sid is not set", "set twilio_account_sid (AC…)");
        }
        let api_key = s.twilio_api_key_sid.is_some() && s.twilio_api_key_secret.is_some();
        if s.twilio_auth_token.is_none() && !api_key {
            p.error(
                "sms_transport = twilio but neither twilio_auth_token nor twilio_api_key_sid + twilio_api_key_secret is set",
                "set twilio_auth_token, or an API key (twilio_api_key_sid and twilio_api_key_secret)",
            );
        }
        if s.twilio_from.is_none() && s.twilio_messaging_service_sid.is_none() {
            p.error(
                "sms_transport = twilio but neither twilio_from nor twilio_messaging_service_sid is set",
                "set twilio_from (+1…) or twilio_messaging_service_sid (MG…)",
            );
        }
        match url::Url::parse(&s.twilio_base_url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && u.host_str().is_some_and(is_local_host) => {}
            Ok(_) => p.error(
                format!("twilio_base_url {} is plain HTTP to a remote host: the auth token would cross the network in the clear", s.twilio_base_url),
                "use an https:// URL (the default is https://api.twilio.com)",
            ),
            Err(_) => p.error(format!("twilio_base_url {:?} is not a URL", s.twilio_base_url), "use https://api.twilio.com or unset it"),
        }
    }
    // Whatever the checks above missed, the senders themselves refuse at start-up.
    if p.0.iter().all(|x| x.level != Level::Error)
        && let Err(e) = s.senders()
    {
        p.error(format!("{e:#}"), "fix the email or SMS settings named above");
    }
}

fn check_web(s: &Settings, url: &url::Url, p: &mut Problems) {
    let Ok(config) = s.web_config(s.listen) else {
        p.error(
            "passkey_origin is not a URL",
            "set passkey_origin to an origin such as https://auth.clinic.example, or unset it",
        );
        return;
    };
    if let Some(why) = clinic_auth_web::start_up_note(&config).passkeys_off {
        p.warning(
            format!("passkeys (\"Trust this device\") are off: {why}"),
            "serve the sign-in pages on an https:// host name and set public_url to it",
        );
    }
    let host_is_local = url.host_str().is_some_and(is_local_host);
    if url.scheme() == "http" && !host_is_local && config.secure_cookies() {
        p.error(
            format!("public_url {url} is plain HTTP, but cookies are Secure (cookie_security = {}): browsers will not send them back, so nobody can sign in", s.cookie_security),
            "put clinic-auth behind a TLS proxy and set public_url to its https:// address",
        );
    }
    if url.scheme() == "https" && s.cookie_security == "insecure" {
        p.warning(
            "cookie_security = insecure on an https:// public_url: session cookies lack the Secure attribute",
            "remove cookie_security (auto) or set it to secure",
        );
    }
}

async fn check_store_and_key(s: &Settings, p: &mut Problems) {
    let url = s.database_url();
    if clinic_auth_store::check_url(&url).is_err() {
        p.error(
            format!("database_url {} is not sqlite:PATH or postgres://…", crate::redact_url(&url)),
            "set database_url to sqlite:PATH or postgres://USER:PASS@HOST/DB",
        );
        return;
    }
    let sqlite = url.starts_with("sqlite:");
    let db_file = crate::backup::sqlite_path(s, "check-config").ok();
    let db_exists = db_file.as_ref().is_some_and(|f| f.exists());
    // The key, without generating one (serve would, for a new SQLite store).
    let default_key_file = s.data_dir.join("encryption.key");
    let key_missing = s.encryption_key.is_none() && s.encryption_key_file.is_none() && !default_key_file.exists();
    let sealer = if key_missing {
        if !sqlite {
            p.error(
                "no encryption key is set, and PostgreSQL needs one shared by every instance",
                "set encryption_key or encryption_key_file (CLINIC_AUTH_ENCRYPTION_KEY[_FILE]); make one with: echo \"1:$(head -c 32 /dev/urandom | base64)\"",
            );
        } else if db_exists {
            p.error(
                format!("the database exists but its encryption key {} is missing", default_key_file.display()),
                "put back the key file from your backup; without it sealed secrets do not open and the audit trail does not verify",
            );
        } else {
            p.warning(
                format!("no encryption key yet: the first start generates {}", default_key_file.display()),
                "back it up with the database once it exists",
            );
        }
        None
    } else {
        match s.sealer() {
            Ok(sealer) => Some(sealer),
            Err(e) => {
                p.error(
                    format!("{e:#}"),
                    "fix encryption_key / encryption_key_file: VERSION:BASE64 lines of 32-byte keys",
                );
                None
            }
        }
    };
    if sqlite && !db_exists {
        if let Some(dir) = db_file.as_ref().and_then(|f| f.parent()).filter(|d| !d.as_os_str().is_empty())
            && dir.exists()
            && std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly())
        {
            p.error(
                format!("cannot create the database in {}: read-only", dir.display()),
                "make the data directory writable by the server's user",
            );
        }
        p.warning(
            format!("no database yet: the first start creates {}", crate::redact_url(&url)),
            "nothing to do for a new installation",
        );
        return;
    }
    // Reach the database (the key's audit keys, or a throwaway pair when there is no key).
    let keys = match &sealer {
        Some(s) => s.audit_chain_keys().ok(),
        None => clinic_auth_app::Sealer::from_keyring(&clinic_auth_app::Sealer::generate_keyring())
            .ok()
            .and_then(|s| s.audit_chain_keys().ok()),
    };
    let Some(keys) = keys else { return };
    let opened = tokio::time::timeout(Duration::from_secs(5), clinic_auth_store::connect(&url, keys)).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            p.error(
                format!("cannot reach the database {}: {e}", crate::redact_url(&url)),
                "check database_url (host, port, user, password, database name) and that the database server runs",
            );
            return;
        }
        Err(_) => {
            p.error(
                format!("cannot reach the database {}: no answer within 5 seconds", crate::redact_url(&url)),
                "check the host and port in database_url and any firewall between here and the database",
            );
            return;
        }
    };
    match store.pending_migrations().await {
        Ok(pending) if !pending.is_empty() => p.warning(
            format!("{} migration(s) are not applied yet", pending.len()),
            "serve applies them at start; or run clinic-auth migrate first",
        ),
        Ok(_) => {}
        Err(e) => {
            p.error(format!("cannot read the database: {e}"), "check database_url and the database user's rights")
        }
    }
    if let Some(sealer) = sealer
        && let Ok(config) = s.web_config(s.listen)
        && let Ok(senders) = s.senders()
    {
        let app = App::new(store.clone(), Arc::new(SystemClock), config, sealer, senders);
        if clinic_auth_app::oidc::keys::keyring_opens_a_sealed_key(&app).await.is_err() {
            p.error(
                "the encryption key does not open the secrets sealed in the database",
                "use the key that was in use when they were sealed (add it back to the keyring as an older version)",
            );
        }
    }
    let _ = store.close().await;
}

/// Prints the problems, one a line with its fix; the number of errors.
pub fn report(problems: &[Problem], json_out: bool) -> usize {
    let errors = problems.iter().filter(|p| p.level == Level::Error).count();
    let warnings = problems.len() - errors;
    if json_out {
        let list = |level: Level| -> Vec<serde_json::Value> {
            problems.iter().filter(|p| p.level == level).map(|p| json!({"problem": p.what, "fix": p.fix})).collect()
        };
        println!("{}", json!({"ok": errors == 0, "errors": list(Level::Error), "warnings": list(Level::Warning)}));
    } else {
        for p in problems {
            let level = if p.level == Level::Error { "error" } else { "warning" };
            println!("{level}: {}\n  fix: {}", p.what, p.fix);
        }
        if problems.is_empty() {
            println!("The configuration is complete: no problems found.");
        } else {
            println!("{errors} error(s), {warnings} warning(s).");
        }
    }
    errors
}

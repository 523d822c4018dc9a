//! Configuration: built-in defaults, then the config file, then `CLINIC_AUTH_*`
//! environment variables, then command-line flags. One typed `Settings` results.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Where the SQLite file and generated keys live.
    pub data_dir: PathBuf,
    /// `sqlite:PATH` or `postgres://…`; default: `sqlite:` in the data directory.
    pub database_url: Option<String>,
    /// The address users reach the server at; default `http://localhost:PORT` when
    /// listening on loopback, else `http://` + listen address.
    pub public_url: Option<String>,
    /// Shown in page titles.
    pub platform_name: String,
    /// `auto` (Secure unless plain-HTTP localhost), `secure` or `insecure`.
    pub cookie_security: String,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter such as `info` or `clinic_auth=debug`.
    pub log_level: String,
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    pub password_min_length: usize,
    pub invitation_valid_days: i64,
    /// How long an admin's one-time bypass ("Disable two-factor authentication") stays usable.
    pub bypass_valid_hours: i64,
    /// Trust `X-Forwarded-For` (only behind your own reverse proxy).
    pub trust_forwarded_for: bool,
    /// Passkeys: the relying-party id (a hostname, e.g. `auth.clinic.example` or the
    /// parent `clinic.example`); default: the public URL's host.
    pub passkey_rp_id: Option<String>,
    /// Passkeys: the origin browsers use (`https://auth.clinic.example`); default: the
    /// public URL's origin.
    pub passkey_origin: Option<String>,
    /// The AEAD keyring that seals authenticator secrets, inline (`VERSION:BASE64` lines).
    pub encryption_key: Option<String>,
    /// …or a file holding it. Default: `DATA_DIR/encryption.key`, generated on first
    /// start for the embedded SQLite store.
    pub encryption_key_file: Option<PathBuf>,

    /// `outbox` (files in DATA_DIR/outbox/email, for trying things out) or `smtp`.
    pub email_transport: String,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `starttls`, `tls` (implicit TLS, usually port 465) or `none` (a relay on this machine only).
    pub smtp_tls: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// The From address of code emails, e.g. `Riverside Clinic <no-reply@riverside.example>`.
    pub email_from: String,
    /// Put the code in the subject line too (visible on lock screens; off by default).
    pub email_code_in_subject: bool,
    /// `outbox` (files in DATA_DIR/outbox/sms) or `twilio`.
    pub sms_transport: String,
    pub twilio_base_url: String,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub twilio_api_key_sid: Option<String>,
    pub twilio_api_key_secret: Option<String>,
    /// Sender number (E.164) …
    pub twilio_from: Option<String>,
    /// … or a Messaging Service SID (`MG…`).
    pub twilio_messaging_service_sid: Option<String>,
    /// Where Prometheus scrapes `/metrics`: an address and port of its own, loopback
    /// by default so that metrics are never public; `off` for none.
    pub metrics_listen: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_url: None,
            platform_name: "clinic-auth".into(),
            cookie_security: "auto".into(),
            log_format: "text".into(),
            log_level: "info".into(),
            session_idle_minutes: 15,
            session_absolute_hours: 12,
            password_min_length: clinic_auth_core::password::DEFAULT_MIN_LENGTH,
            invitation_valid_days: 7,
            bypass_valid_hours: 24,
            trust_forwarded_for: false,
            passkey_rp_id: None,
            passkey_origin: None,
            encryption_key: None,
            encryption_key_file: None,
            email_transport: "outbox".into(),
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            email_from: "clinic-auth <no-reply@localhost>".into(),
            email_code_in_subject: false,
            sms_transport: "outbox".into(),
            twilio_base_url: "https://api.twilio.com".into(),
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_api_key_sid: None,
            twilio_api_key_secret: None,
            twilio_from: None,
            twilio_messaging_service_sid: None,
            metrics_listen: "127.0.0.1:9464".into(),
        }
    }
}

/// Values given on the command line (each also readable from its environment variable).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
}

/// Settings whose values are text (or paths), never numbers or booleans.
const TEXT_KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "public_url",
    "platform_name",
    "passkey_rp_id",
    "passkey_origin",
    "cookie_security",
    "log_format",
    "log_level",
    "encryption_key",
    "encryption_key_file",
    "email_transport",
    "smtp_host",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "email_from",
    "sms_transport",
    "twilio_base_url",
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_api_key_sid",
    "twilio_api_key_secret",
    "twilio_from",
    "twilio_messaging_service_sid",
    "metrics_listen",
];

impl Settings {
    /// The settings as `serve` reads them, before their values are checked.
    pub fn load_unchecked(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config_file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        // Text settings are taken from the environment exactly as written: figment would
        // read `+15551234567` or an all-digit password as a number.
        let raw_text: std::collections::BTreeMap<String, String> = TEXT_KEYS
            .iter()
            .filter_map(|k| {
                std::env::var(format!("CLINIC_AUTH_{}", k.to_uppercase())).ok().map(|v| ((*k).to_owned(), v))
            })
            .collect();
        let mut ignored = vec!["config", "test_postgres_url"];
        ignored.extend_from_slice(TEXT_KEYS);
        let settings: Settings = fig
            .merge(Env::prefixed("CLINIC_AUTH_").ignore(&ignored))
            .merge(Serialized::defaults(raw_text))
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("reading configuration")?;
        Ok(settings)
    }

    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let settings = Settings::load_unchecked(config_file, overrides)?;
        if let Some(first) = settings.problems().into_iter().next() {
            bail!("{first}");
        }
        Ok(settings)
    }

    /// Every value out of its range or set of words (`check-config` lists them all;
    /// every other command stops at the first).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                p.push(what.to_owned());
            }
        };
        need(
            matches!(self.cookie_security.as_str(), "auto" | "secure" | "insecure"),
            "cookie_security must be auto, secure or insecure",
        );
        need(matches!(self.log_format.as_str(), "text" | "json"), "log_format must be text or json");
        need(self.session_idle_minutes >= 1 && self.session_absolute_hours >= 1, "session timeouts must be at least 1");
        need(
            self.session_idle_minutes <= self.session_absolute_hours * 60,
            "session_idle_minutes cannot exceed session_absolute_hours",
        );
        need((8..=64).contains(&self.password_min_length), "password_min_length must be between 8 and 64");
        need(matches!(self.email_transport.as_str(), "outbox" | "smtp"), "email_transport must be outbox or smtp");
        need(matches!(self.sms_transport.as_str(), "outbox" | "twilio"), "sms_transport must be outbox or twilio");
        need(matches!(self.smtp_tls.as_str(), "starttls" | "tls" | "none"), "smtp_tls must be starttls, tls or none");
        need((1..=90).contains(&self.invitation_valid_days), "invitation_valid_days must be between 1 and 90");
        need((1..=720).contains(&self.bypass_valid_hours), "bypass_valid_hours must be between 1 and 720");
        need(
            self.metrics_address().is_ok(),
            "metrics_listen must be an address and port (such as 127.0.0.1:9464) or off",
        );
        p
    }

    /// Where to serve `/metrics`; `None` when `metrics_listen` is `off` (or empty).
    pub fn metrics_address(&self) -> anyhow::Result<Option<SocketAddr>> {
        match self.metrics_listen.trim() {
            "" | "off" => Ok(None),
            addr => {
                Ok(Some(addr.parse().with_context(|| format!("metrics_listen {addr:?} is not an address and port"))?))
            }
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("clinic-auth.db").display()))
    }

    /// The public URL; by default `http://localhost:PORT` on loopback (passkeys work
    /// there), otherwise `http://` and the address actually bound.
    pub fn public_url(&self, bound: SocketAddr) -> anyhow::Result<Url> {
        let url = match &self.public_url {
            Some(raw) => Url::parse(raw).with_context(|| format!("public_url {raw:?} is not a URL"))?,
            None => clinic_auth_web::default_public_url(bound)
                .with_context(|| format!("no public URL from the listen address {bound}"))?,
        };
        if !matches!(url.scheme(), "http" | "https") {
            bail!("public_url must start with http:// or https://");
        }
        Ok(url)
    }

    /// Loads the encryption keyring. For the embedded SQLite default a missing key file
    /// is generated (owner-only); with PostgreSQL every instance must share one key, so
    /// it has to be configured.
    pub fn sealer(&self) -> anyhow::Result<clinic_auth_app::Sealer> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = match (&self.encryption_key, &self.encryption_key_file) {
            (Some(k), _) => k.replace(';', "\n"),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading encryption_key_file {}", path.display()))?,
            (None, None) => {
                if !self.database_url().starts_with("sqlite:") {
                    bail!(
                        "set encryption_key or encryption_key_file (CLINIC_AUTH_ENCRYPTION_KEY[_FILE]): \
                         every instance on a shared database must use the same key"
                    );
                }
                let path = self.data_dir.join("encryption.key");
                match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let text = clinic_auth_app::Sealer::generate_keyring();
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(&path)
                            .with_context(|| format!("creating {}", path.display()))?;
                        f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
                        tracing::info!(path = %path.display(), "generated a new encryption key; back it up with the database");
                        text
                    }
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
        };
        Ok(clinic_auth_app::Sealer::from_keyring(&text)?)
    }

    /// Where codes go: SMTP / Twilio as configured, or the file outbox.
    pub fn senders(&self) -> anyhow::Result<clinic_auth_app::Senders> {
        use clinic_auth_notify as notify;
        use std::sync::Arc;
        let outbox = self.data_dir.join("outbox");
        let email: Arc<dyn notify::EmailSender> = match self.email_transport.as_str() {
            "smtp" => Arc::new(notify::SmtpSender::new(notify::SmtpConfig {
                host: self.smtp_host.clone().context("email_transport = smtp needs smtp_host")?,
                port: self.smtp_port,
                tls: match self.smtp_tls.as_str() {
                    "tls" => notify::SmtpTls::Implicit,
                    "none" => notify::SmtpTls::None,
                    _ => notify::SmtpTls::StartTls,
                },
                username: self.smtp_username.clone(),
                password: self.smtp_password.clone(),
                from: self.email_from.clone(),
                code_in_subject: self.email_code_in_subject,
                timeout_secs: 15,
            })?),
            _ => Arc::new(notify::OutboxEmail::new(outbox.join("email"), self.email_from.clone())),
        };
        let sms: Arc<dyn notify::SmsSender> = match self.sms_transport.as_str() {
            "twilio" => {
                let auth = match (&self.twilio_auth_token, &self.twilio_api_key_sid, &self.twilio_api_key_secret) {
                    (_, Some(sid), Some(secret)) => {
                        notify::TwilioAuth::ApiKey { sid: sid.clone(), secret: secret.clone() }
                    }
                    (Some(token), _, _) => notify::TwilioAuth::AuthToken(token.clone()),
                    _ => bail!(
                        "sms_transport = twilio needs twilio_auth_token, or twilio_api_key_sid and twilio_api_key_secret"
                    ),
                };
                let from = match (&self.twilio_messaging_service_sid, &self.twilio_from) {
                    (Some(mg), _) => notify::TwilioFrom::MessagingService(mg.clone()),
                    (None, Some(number)) => notify::TwilioFrom::Number(number.clone()),
                    _ => bail!("sms_transport = twilio needs twilio_from or twilio_messaging_service_sid"),
                };
                Arc::new(notify::TwilioSender::new(notify::TwilioConfig {
                    base_url: self.twilio_base_url.clone(),
                    account_sid: self
                        .twilio_account_sid
                        .clone()
                        .context("sms_transport = twilio needs twilio_account_sid")?,
                    auth,
                    from,
                    timeout_secs: 15,
                })?)
            }
            _ => Arc::new(notify::OutboxSms::new(outbox.join("sms"))),
        };
        Ok(clinic_auth_app::Senders { email, sms })
    }

    pub fn web_config(&self, bound: SocketAddr) -> anyhow::Result<clinic_auth_web::WebConfig> {
        use clinic_auth_web::CookieSecurity;
        let mut c = clinic_auth_web::WebConfig::new(self.public_url(bound)?);
        c.platform_name = self.platform_name.clone();
        c.cookie_security = match self.cookie_security.as_str() {
            "secure" => CookieSecurity::Secure,
            "insecure" => CookieSecurity::Insecure,
            _ => CookieSecurity::Auto,
        };
        c.session = clinic_auth_core::SessionTimeouts {
            idle_secs: self.session_idle_minutes * 60,
            absolute_secs: self.session_absolute_hours * 3600,
        };
        c.password_policy = clinic_auth_core::PasswordPolicy::with_min_length(self.password_min_length);
        c.link_ttl_secs = self.invitation_valid_days * 24 * 3600;
        c.bypass_ttl_secs = self.bypass_valid_hours * 3600;
        c.trust_forwarded_for = self.trust_forwarded_for;
        c.passkey_rp_id = self.passkey_rp_id.clone().filter(|s| !s.is_empty());
        c.passkey_origin = match self.passkey_origin.as_deref().filter(|s| !s.is_empty()) {
            Some(o) => Some(Url::parse(o).with_context(|| format!("passkey_origin {o:?} is not a URL"))?),
            None => None,
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own Error
    fn text_settings_from_the_environment_stay_text() {
        // figment's Jail sets and restores the variables around the closure.
        let vars = [
            ("CLINIC_AUTH_TWILIO_FROM", "+15005550006"),
            ("CLINIC_AUTH_SMTP_PASSWORD", "0123456789"),
            ("CLINIC_AUTH_SMTP_PORT", "2525"),
            ("CLINIC_AUTH_TRUST_FORWARDED_FOR", "true"),
        ];
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            let loaded = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(loaded.twilio_from.as_deref(), Some("+15005550006"));
            assert_eq!(loaded.smtp_password.as_deref(), Some("0123456789"));
            assert_eq!(loaded.smtp_port, 2525);
            assert!(loaded.trust_forwarded_for);
            Ok(())
        });
    }

    fn listening_on(listen: &str) -> clinic_auth_web::WebConfig {
        let settings = Settings { listen: listen.parse().unwrap(), ..Settings::default() };
        settings.web_config(settings.listen).unwrap()
    }

    #[test]
    fn unconfigured_loopback_server_is_reached_at_localhost_with_passkeys() {
        for listen in ["127.0.0.1:8080", "[::1]:8080"] {
            let config = listening_on(listen);
            assert_eq!(config.public_url.as_str(), "http://localhost:8080/", "listen {listen}");
            assert_eq!(config.link("/setup/x"), "http://localhost:8080/setup/x");
            assert!(!config.secure_cookies(), "plain-HTTP localhost: cookies without Secure");
            let note = clinic_auth_web::start_up_note(&config);
            assert_eq!(note.passkeys_off, None, "listen {listen}");
            assert_eq!(
                note.open,
                "Open http://localhost:8080/ in a browser; passkeys (\"Trust this device\") work there."
            );
        }
    }

    #[test]
    fn unconfigured_server_on_another_address_keeps_its_ip_and_warns_passkeys_are_off() {
        for (listen, url) in [("0.0.0.0:8080", "http://0.0.0.0:8080/"), ("192.0.2.1:8080", "http://192.0.2.1:8080/")] {
            let config = listening_on(listen);
            assert_eq!(config.public_url.as_str(), url);
            let note = clinic_auth_web::start_up_note(&config);
            let why = note.passkeys_off.unwrap_or_default();
            assert!(why.contains("passkeys need a hostname, not an IP address"), "listen {listen}: {why}");
            assert!(
                note.open.starts_with(&format!("Open {url} in a browser; passkeys (\"Trust this device\") are off"))
            );
        }
    }

    #[test]
    fn a_configured_public_url_wins_over_the_listen_address() {
        let settings = Settings {
            listen: "127.0.0.1:8080".parse().unwrap(),
            public_url: Some("https://auth.riverside.example".into()),
            ..Settings::default()
        };
        let config = settings.web_config(settings.listen).unwrap();
        assert_eq!(config.public_url.as_str(), "https://auth.riverside.example/");
        assert_eq!(clinic_auth_web::start_up_note(&config).passkeys_off, None);
    }
}

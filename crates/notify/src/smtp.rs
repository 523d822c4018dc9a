//! Email over SMTP with lettre.

use std::error::Error as _;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use crate::content::email_content;
use crate::recipient::mask_email;
use crate::{CodeMessage, ConfigError, Delivered, DeliveryError, EmailContent, EmailSender};

/// How [`SmtpSender`] reaches the SMTP server.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    /// Usually 587 for [`SmtpTls::StartTls`], 465 for [`SmtpTls::Implicit`], 25 for a local relay.
    pub port: u16,
    pub tls: SmtpTls,
    /// Given together with `password`, or not at all.
    pub username: Option<String>,
    /// Kept in memory only as long as needed; never printed by `Debug`.
    pub password: Option<String>,
    /// The `From` mailbox, e.g. "Clinic Auth <no-reply@example.org>".
    pub from: String,
    /// Put the code at the start of the subject ("123456 is your … code"). Off by default: a
    /// subject shows up in notification previews and mail server logs.
    pub code_in_subject: bool,
    /// Limit for connecting and for each SMTP command (1–600). A whole send is given three times
    /// this.
    pub timeout_secs: u64,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .field("code_in_subject", &self.code_in_subject)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Transport security towards the SMTP server. Certificates are checked against the Mozilla CA
/// bundle compiled in (webpki-roots), not the system store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    StartTls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Implicit,
    /// No encryption at all. Only for a relay on this machine: [`SmtpSender::new`] refuses any
    /// host other than `localhost`, `127.0.0.0/8` or `::1`, since the password and codes would
    /// cross the network in clear text.
    None,
}

/// Sends codes through an SMTP server (lettre's `AsyncSmtpTransport<Tokio1Executor>`; one
/// connection per message).
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
    tls: SmtpTls,
    authenticated: bool,
    code_in_subject: bool,
    send_timeout: Duration,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("server", &self.describe())
            .field("from", &self.from.to_string())
            .field("authenticated", &self.authenticated)
            .field("code_in_subject", &self.code_in_subject)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub fn new(cfg: SmtpConfig) -> Result<SmtpSender, ConfigError> {
        let SmtpConfig { host, port, tls, username, password, from, code_in_subject, timeout_secs } = cfg;
        let password = password.map(Zeroizing::new);
        let host = host.trim().to_owned();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
            return Err(ConfigError::SmtpHost);
        }
        if port == 0 {
            return Err(ConfigError::SmtpPort);
        }
        if !(1..=600).contains(&timeout_secs) {
            return Err(ConfigError::Timeout(timeout_secs));
        }
        if tls == SmtpTls::None && !is_local_host(&host) {
            return Err(ConfigError::PlaintextSmtpNotLocal(host));
        }
        let from: Mailbox = from.trim().parse().map_err(|_| ConfigError::SmtpFrom(from.clone()))?;

        let tls_setting = match tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_parameters(&host)?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters(&host)?),
        };
        let timeout = Duration::from_secs(timeout_secs);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(port)
            .tls(tls_setting)
            .timeout(Some(timeout));
        let authenticated = match (username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user, password.as_str().to_owned()));
                true
            }
            (None, None) => false,
            _ => return Err(ConfigError::SmtpCredentials),
        };

        Ok(SmtpSender {
            transport: builder.build(),
            from,
            host,
            port,
            tls,
            authenticated,
            code_in_subject,
            send_timeout: timeout.saturating_mul(3),
        })
    }
}

/// lettre builds the rustls config with its `ring` feature's provider when no process default is
/// installed, so this does not depend on the binary having installed one.
fn tls_parameters(host: &str) -> Result<TlsParameters, ConfigError> {
    TlsParameters::new(host.to_owned()).map_err(|e| ConfigError::Tls { transport: "SMTP", reason: e.to_string() })
}

pub(crate) fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[async_trait]
impl EmailSender for SmtpSender {
    async fn send_code(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError> {
        let masked = mask_email(to);
        let message = build_message(&self.from, to, msg, self.code_in_subject)?;
        let result = tokio::time::timeout(self.send_timeout, self.transport.send(message)).await;
        let outcome = match result {
            Err(_elapsed) => Err(DeliveryError::Temporary("SMTP server took too long".to_owned())),
            Ok(Err(e)) => Err(classify(&e)),
            Ok(Ok(response)) => Ok(Delivered { provider_id: queue_id(&response) }),
        };
        match &outcome {
            Ok(delivered) => tracing::info!(
                transport = "smtp",
                server = %self.host,
                to = %masked,
                purpose = ?msg.purpose,
                provider_id = delivered.provider_id.as_deref().unwrap_or("-"),
                "code email handed to SMTP server"
            ),
            Err(e) => {
                tracing::warn!(transport = "smtp", server = %self.host, to = %masked, error = %e, "code email not sent")
            }
        }
        outcome
    }

    async fn send_notice(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError> {
        self.send_content(to, content, "security notice").await
    }

    async fn send_invitation(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError> {
        self.send_content(to, content, "invitation").await
    }

    async fn send_password_reset(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError> {
        self.send_content(to, content, "password reset").await
    }

    async fn send_email_change(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError> {
        self.send_content(to, content, "email change").await
    }

    fn describe(&self) -> String {
        let tls = match self.tls {
            SmtpTls::StartTls => "STARTTLS",
            SmtpTls::Implicit => "implicit TLS",
            SmtpTls::None => "no TLS, local relay",
        };
        let auth = if self.authenticated { ", authenticated" } else { "" };
        format!("SMTP {}:{} ({tls}{auth})", self.host, self.port)
    }
}

impl SmtpSender {
    /// Sends prepared content; `what` names it in the log (never the content itself).
    async fn send_content(&self, to: &str, content: &EmailContent, what: &str) -> Result<Delivered, DeliveryError> {
        let masked = mask_email(to);
        let message = build_content_message(&self.from, to, content.clone())?;
        let result = tokio::time::timeout(self.send_timeout, self.transport.send(message)).await;
        let outcome = match result {
            Err(_elapsed) => Err(DeliveryError::Temporary("SMTP server took too long".to_owned())),
            Ok(Err(e)) => Err(classify(&e)),
            Ok(Ok(response)) => Ok(Delivered { provider_id: queue_id(&response) }),
        };
        match &outcome {
            Ok(_) => tracing::info!(transport = "smtp", server = %self.host, to = %masked, what, "email sent"),
            Err(e) => {
                tracing::warn!(transport = "smtp", server = %self.host, to = %masked, what, error = %e, "email not sent")
            }
        }
        outcome
    }
}

/// The RFC 5322 message for one code, shared with the outbox.
pub(crate) fn build_message(
    from: &Mailbox,
    to: &str,
    msg: &CodeMessage<'_>,
    code_in_subject: bool,
) -> Result<Message, DeliveryError> {
    build_content_message(from, to, email_content(msg, code_in_subject))
}

/// The RFC 5322 message for any content (codes and security notices).
pub(crate) fn build_content_message(from: &Mailbox, to: &str, content: EmailContent) -> Result<Message, DeliveryError> {
    let address: Address =
        to.trim().parse().map_err(|_| DeliveryError::Rejected("recipient is not a valid email address".to_owned()))?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, address))
        .subject(content.subject)
        .message_id(None)
        .multipart(MultiPart::alternative_plain_html(content.text, content.html))
        .map_err(|_| DeliveryError::Rejected("could not build the email message".to_owned()))
}

/// The queue id from a "250 2.0.0 Ok: queued as 4F2B1C" answer (Postfix and many others).
fn queue_id(response: &Response) -> Option<String> {
    response.message().find_map(|line| {
        let (_, after) = line.split_once("queued as ")?;
        let id = after.split_whitespace().next()?.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        (!id.is_empty()).then(|| id.to_owned())
    })
}

/// Maps lettre's error to ours without its text: an SMTP server's answer may quote the recipient.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    if let Some(code) = e.status() {
        let code = code.to_string();
        let what = match code.as_str() {
            "530" | "534" | "535" | "538" => "authentication failed or required",
            "550" | "551" | "553" => "mailbox or address refused",
            "552" => "message too large or mailbox full",
            "554" => "transaction failed",
            "421" => "service not available",
            "450" | "451" | "452" => "mailbox busy or server error",
            "454" => "temporary authentication failure",
            _ => "refused",
        };
        return if e.is_permanent() {
            DeliveryError::Rejected(format!("SMTP server answered {code} ({what})"))
        } else {
            DeliveryError::Temporary(format!("SMTP server answered {code} ({what})"))
        };
    }
    if e.is_timeout() {
        return DeliveryError::Temporary("SMTP server timed out".to_owned());
    }
    if e.is_tls() {
        return DeliveryError::Temporary("TLS with the SMTP server failed".to_owned());
    }
    if e.is_client() {
        // e.g. no authentication mechanism in common, or a non-ASCII address the server cannot take.
        return DeliveryError::Rejected("SMTP server lacks a feature this message needs".to_owned());
    }
    if e.is_response() {
        return DeliveryError::Temporary("unreadable answer from the SMTP server".to_owned());
    }
    match io_error_kind(e) {
        Some(kind) => DeliveryError::Temporary(format!("SMTP connection failed ({kind})")),
        None => DeliveryError::Temporary("SMTP connection failed".to_owned()),
    }
}

fn io_error_kind(e: &lettre::transport::smtp::Error) -> Option<std::io::ErrorKind> {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(host: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: host.to_owned(),
            port: 587,
            tls,
            username: None,
            password: None,
            from: "Clinic Auth <no-reply@example.org>".to_owned(),
            code_in_subject: false,
            timeout_secs: 10,
        }
    }

    #[test]
    fn plaintext_is_only_for_a_local_relay() {
        for host in ["localhost", "127.0.0.1", "::1", "[::1]", "127.0.0.2"] {
            assert!(SmtpSender::new(cfg(host, SmtpTls::None)).is_ok(), "{host}");
        }
        for host in ["mail.example.org", "10.0.0.5", "localhost.example.org"] {
            assert!(matches!(SmtpSender::new(cfg(host, SmtpTls::None)), Err(ConfigError::PlaintextSmtpNotLocal(_))));
        }
    }

    #[test]
    fn tls_modes_build_without_a_process_default_crypto_provider() {
        // Nothing in this test binary installs a provider; keep it that way.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let s = SmtpSender::new(cfg("mail.example.org", SmtpTls::StartTls)).unwrap();
        assert_eq!(s.describe(), "SMTP mail.example.org:587 (STARTTLS)");
        let s = SmtpSender::new(SmtpConfig { port: 465, ..cfg("mail.example.org", SmtpTls::Implicit) }).unwrap();
        assert_eq!(s.describe(), "SMTP mail.example.org:465 (implicit TLS)");
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = [
            cfg("", SmtpTls::StartTls),
            SmtpConfig { port: 0, ..cfg("mail.example.org", SmtpTls::StartTls) },
            SmtpConfig { timeout_secs: 0, ..cfg("mail.example.org", SmtpTls::StartTls) },
            SmtpConfig { from: "not a mailbox".to_owned(), ..cfg("mail.example.org", SmtpTls::StartTls) },
            SmtpConfig { username: Some("u".to_owned()), ..cfg("mail.example.org", SmtpTls::StartTls) },
            SmtpConfig { password: Some("p".to_owned()), ..cfg("mail.example.org", SmtpTls::StartTls) },
        ];
        for c in bad {
            assert!(SmtpSender::new(c.clone()).is_err(), "{c:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = SmtpConfig {
            username: Some("mailer".to_owned()),
            password: Some("hunter2-secret".to_owned()),
            ..cfg("mail.example.org", SmtpTls::StartTls)
        };
        assert!(!format!("{c:?}").contains("hunter2-secret"));
        let s = SmtpSender::new(c).unwrap();
        assert!(!format!("{s:?}").contains("hunter2-secret"));
        assert!(s.describe().ends_with("(STARTTLS, authenticated)"));
    }
}

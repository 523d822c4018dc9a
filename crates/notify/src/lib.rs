//! Delivery of one-time sign-in codes: email over SMTP, text messages through Twilio's REST API,
//! and file outboxes for development.
//!
//! The web crate holds an `Arc<dyn EmailSender>` and an `Arc<dyn SmsSender>`, chosen by the binary
//! from configuration ([`SmtpSender`] or [`OutboxEmail`]; [`TwilioSender`] or [`OutboxSms`]).
//!
//! # Secrets
//! The code in a [`CodeMessage`] is a secret: it appears only in the message itself, never in
//! logs, `Debug` output or errors. Logs name the transport and a masked recipient
//! (`d•••@riverside.test`, `+1••••••4567`).
//!
//! # TLS and the rustls crypto provider
//! Both transports use rustls with the *ring* provider and the webpki-roots CA bundle, and both
//! are given that provider explicitly, so building a sender never panics for want of a
//! process-default provider. Other code in the same process is not so lucky: once this crate is
//! linked, reqwest's rustls backend is compiled in for everyone, and `reqwest::Client::new()`
//! *panics* unless a process-default provider is installed. The binary (and any test harness that
//! builds a default reqwest client) should call [`install_default_crypto_provider`] first thing.

mod backchannel;
mod content;
mod outbox;
mod recipient;
mod smtp;
mod twilio;

#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;

use async_trait::async_trait;

pub use backchannel::LogoutPoster;
pub use content::{
    EmailContent, SecurityNotice, SetupDue, email_change_content, email_change_taken_content, email_content,
    invitation_content, mfa_reminder_content, notice_content, password_reset_content, sms_text,
};
pub use outbox::{OutboxEmail, OutboxSms};
pub use recipient::{mask_email, mask_phone};
pub use smtp::{SmtpConfig, SmtpSender, SmtpTls};
pub use twilio::{TWILIO_BASE_URL, TwilioAuth, TwilioConfig, TwilioFrom, TwilioSender};

/// What a code message says. `code` is secret: never log it, never put it in errors.
#[derive(Clone, Copy)]
pub struct CodeMessage<'a> {
    /// The clinic's display name, e.g. "Riverside Clinic".
    pub org_name: &'a str,
    /// The one-time code, e.g. "123456".
    pub code: &'a str,
    /// How long the code is valid, in minutes (10 in clinic-auth).
    pub valid_minutes: i64,
    pub purpose: CodePurpose,
    /// The clinic's logo (a public URL) for the email's HTML part; `None` for none.
    pub logo_url: Option<&'a str>,
}

impl fmt::Debug for CodeMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeMessage")
            .field("org_name", &self.org_name)
            .field("code", &"[redacted]")
            .field("valid_minutes", &self.valid_minutes)
            .field("purpose", &self.purpose)
            .field("logo_url", &self.logo_url)
            .finish()
    }
}

/// Why the code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// A second-factor check while signing in.
    SignIn,
    /// Confirming a new email address or phone number while setting up two-step verification.
    Setup,
}

/// A message the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The provider's id for the message if it gave one: Twilio's message SID, the SMTP server's
    /// queue id (from a "250 … queued as ID" answer), or the outbox file name.
    pub provider_id: Option<String>,
}

/// Why a message was not delivered. The reason is short and meant for operators; it never
/// contains the code or the recipient's address or number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The provider could not be reached or failed; trying again later may work.
    #[error("delivery failed, try again later: {0}")]
    Temporary(String),
    /// The provider refused this message (bad number, bad address, auth failure).
    #[error("delivery refused: {0}")]
    Rejected(String),
}

/// A sender's configuration is unusable. Raised at start-up by the senders' `new`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("SMTP host is empty or not a host name")]
    SmtpHost,
    #[error("SMTP port must not be 0")]
    SmtpPort,
    #[error("SMTP without TLS is only allowed to a relay on this machine (localhost, 127.0.0.1, ::1), not {0:?}")]
    PlaintextSmtpNotLocal(String),
    #[error("SMTP username and password must be given together")]
    SmtpCredentials,
    #[error("SMTP `from` is not a valid mailbox such as \"Clinic Auth <no-reply@example.org>\": {0:?}")]
    SmtpFrom(String),
    #[error("could not set up TLS for {transport}: {reason}")]
    Tls { transport: &'static str, reason: String },
    #[error("timeout must be between 1 and 600 seconds, not {0}")]
    Timeout(u64),
    #[error("Twilio base URL must be an https URL (http only to localhost), not {0:?}")]
    TwilioBaseUrl(String),
    #[error("Twilio account SID must be \"AC\" followed by 32 hex digits")]
    TwilioAccountSid,
    #[error("Twilio API key SID must be \"SK\" followed by 32 hex digits")]
    TwilioApiKeySid,
    #[error("Twilio auth token or API key secret is empty")]
    TwilioSecret,
    #[error("Twilio sender number must be E.164, such as +15551234567")]
    TwilioFromNumber,
    #[error("Twilio messaging service SID must be \"MG\" followed by 32 hex digits")]
    TwilioMessagingService,
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
}

/// Sends codes by email.
#[async_trait]
pub trait EmailSender: Send + Sync + fmt::Debug {
    /// Sends `msg` to the email address `to`.
    async fn send_code(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError>;
    /// Sends a security notice (see [`notice_content`]); it holds no secret.
    async fn send_notice(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError>;
    /// Sends an invitation (see [`invitation_content`]): it holds a one-time link to
    /// choose a password, so it goes only to the invited address.
    async fn send_invitation(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError>;
    /// Sends a password-reset email (see [`password_reset_content`]): it holds a
    /// one-time link to choose a new password, so it goes only to the account's own
    /// address.
    async fn send_password_reset(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError>;
    /// Sends the email that confirms a change of sign-in email (see
    /// [`email_change_content`], [`email_change_taken_content`]): it may hold a
    /// one-time link that makes `to` the account's sign-in email, so it goes only to
    /// that new address.
    async fn send_email_change(&self, to: &str, content: &EmailContent) -> Result<Delivered, DeliveryError>;
    /// e.g. "SMTP mail.example.org:587 (STARTTLS)" or "outbox /data/outbox/email" — for start-up logs.
    fn describe(&self) -> String;
}

/// Sends codes by text message.
#[async_trait]
pub trait SmsSender: Send + Sync + fmt::Debug {
    /// `to` is E.164, e.g. "+15551234567".
    async fn send_code(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError>;
    /// e.g. `Twilio https://api.twilio.com (account AC…, auth token, from +15550001111)` — for start-up logs.
    fn describe(&self) -> String;
}

/// Installs rustls' *ring* provider as the process default, unless one is installed already.
/// Returns whether this call installed it.
///
/// Call it at the top of `main` (and in test harnesses that build `reqwest::Client::new()`):
/// with this crate linked, reqwest's rustls backend is on, and it panics when it finds no
/// process-default provider. This crate's own senders do not need it.
pub fn install_default_crypto_provider() -> bool {
    rustls::crypto::ring::default_provider().install_default().is_ok()
}

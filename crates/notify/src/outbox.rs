//! File outboxes for development: each message becomes one file a developer (or a test) can read.
//! The files hold the codes in clear text, so the directory is created 0700 and files are 0600.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use lettre::message::Mailbox;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::content::sms_text;
use crate::recipient::{mask_email, mask_phone};
use crate::smtp::build_message;
use crate::{CodeMessage, Delivered, DeliveryError, EmailSender, SmsSender};

/// Writes each email as an RFC 5322 `.eml` file (exactly what would go over SMTP) into a directory.
/// Always includes the code in plain and HTML parts; the subject follows the default (no code).
#[derive(Debug, Clone)]
pub struct OutboxEmail {
    dir: PathBuf,
    from: String,
}

impl OutboxEmail {
    /// `dir` is created (mode 0700) at the first message; `from` is a mailbox such as
    /// "Clinic Auth <no-reply@localhost>" (if it does not parse, sending fails with `Rejected`).
    pub fn new(dir: PathBuf, from: String) -> OutboxEmail {
        OutboxEmail { dir, from }
    }
}

#[async_trait]
impl EmailSender for OutboxEmail {
    async fn send_code(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError> {
        let from: Mailbox = self
            .from
            .trim()
            .parse()
            .map_err(|_| DeliveryError::Rejected("outbox `from` is not a valid mailbox".to_owned()))?;
        let message = build_message(&from, to, msg, false)?;
        let bytes = Zeroizing::new(message.formatted());
        let name = write_new_file(&self.dir, "eml", &bytes).await?;
        tracing::info!(transport = "outbox", to = %mask_email(to), file = %name, purpose = ?msg.purpose, "code email written to outbox");
        Ok(Delivered { provider_id: Some(name) })
    }

    async fn send_notice(&self, to: &str, content: &crate::EmailContent) -> Result<Delivered, DeliveryError> {
        self.write_content(to, content, "security notice").await
    }

    async fn send_invitation(&self, to: &str, content: &crate::EmailContent) -> Result<Delivered, DeliveryError> {
        self.write_content(to, content, "invitation").await
    }

    async fn send_password_reset(&self, to: &str, content: &crate::EmailContent) -> Result<Delivered, DeliveryError> {
        self.write_content(to, content, "password reset").await
    }

    async fn send_email_change(&self, to: &str, content: &crate::EmailContent) -> Result<Delivered, DeliveryError> {
        self.write_content(to, content, "email change").await
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }
}

impl OutboxEmail {
    async fn write_content(
        &self,
        to: &str,
        content: &crate::EmailContent,
        what: &str,
    ) -> Result<Delivered, DeliveryError> {
        let from: Mailbox = self
            .from
            .trim()
            .parse()
            .map_err(|_| DeliveryError::Rejected("outbox `from` is not a valid mailbox".to_owned()))?;
        let message = crate::smtp::build_content_message(&from, to, content.clone())?;
        let name = write_new_file(&self.dir, "eml", &message.formatted()).await?;
        tracing::info!(transport = "outbox", to = %mask_email(to), file = %name, what, "email written to outbox");
        Ok(Delivered { provider_id: Some(name) })
    }
}

/// Writes each text message as a JSON file `{"to", "body", "created_at"}` into a directory.
#[derive(Debug, Clone)]
pub struct OutboxSms {
    dir: PathBuf,
}

impl OutboxSms {
    /// `dir` is created (mode 0700) at the first message.
    pub fn new(dir: PathBuf) -> OutboxSms {
        OutboxSms { dir }
    }
}

#[derive(Serialize)]
struct SmsFile<'a> {
    to: &'a str,
    body: &'a str,
    /// RFC 3339, UTC.
    created_at: String,
}

#[async_trait]
impl SmsSender for OutboxSms {
    async fn send_code(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError> {
        let body = Zeroizing::new(sms_text(msg));
        let file = SmsFile { to: to.trim(), body: &body, created_at: rfc3339_utc(SystemTime::now()) };
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&file)
                .map_err(|_| DeliveryError::Rejected("could not encode the outbox file".to_owned()))?,
        );
        let name = write_new_file(&self.dir, "json", &json).await?;
        tracing::info!(transport = "outbox", to = %mask_phone(to), file = %name, purpose = ?msg.purpose, "code text message written to outbox");
        Ok(Delivered { provider_id: Some(name) })
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }
}

/// Writes `bytes` to a new file `<time>-<random>.<ext>` in `dir` (created 0700), mode 0600. The
/// file is written under a hidden temporary name and renamed, so readers never see half a message.
/// Returns the file name.
async fn write_new_file(dir: &Path, ext: &str, bytes: &[u8]) -> Result<String, DeliveryError> {
    let io = |what: &str, e: std::io::Error| DeliveryError::Temporary(format!("outbox {what} failed ({})", e.kind()));

    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await.map_err(|e| io("creating the directory", e))?;

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let stem = format!("{}{:03}-{:016x}", now.as_secs(), now.subsec_millis(), rand::random::<u64>());
    let name = format!("{stem}.{ext}");
    let tmp = dir.join(format!(".{stem}.tmp"));

    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let write = async {
        use tokio::io::AsyncWriteExt;
        let mut file = options.open(&tmp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, dir.join(&name)).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io("writing a message", e));
    }
    Ok(name)
}

/// `2026-03-01T09:30:00Z`.
fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_772_357_400)), "2026-03-01T09:30:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(4_102_444_799)), "2099-12-31T23:59:59Z");
    }
}

//! Text messages through Twilio's Programmable Messaging REST API (no SDK: one form POST).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::content::sms_text;
use crate::recipient::mask_phone;
use crate::smtp::is_local_host;
use crate::{CodeMessage, ConfigError, Delivered, DeliveryError, SmsSender};

/// Twilio's production API.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// How [`TwilioSender`] reaches Twilio.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` ([`TWILIO_BASE_URL`]) in production; a fake's `http://127.0.0.1:…`
    /// in tests (plain http is accepted only for localhost).
    pub base_url: String,
    /// "AC" and 32 hex digits.
    pub account_sid: String,
    pub auth: TwilioAuth,
    pub from: TwilioFrom,
    /// Limit for the whole request (1–600 seconds).
    pub timeout_secs: u64,
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth", &self.auth)
            .field("from", &self.from)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Credentials for HTTP basic auth. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TwilioAuth {
    /// The account's auth token; the user name is the account SID.
    AuthToken(String),
    /// An API key ("SK…") and its secret: Twilio's recommended choice, revocable on its own.
    ApiKey { sid: String, secret: String },
}

impl fmt::Debug for TwilioAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwilioAuth::AuthToken(_) => f.write_str("AuthToken([redacted])"),
            TwilioAuth::ApiKey { sid, .. } => {
                f.debug_struct("ApiKey").field("sid", sid).field("secret", &"[redacted]").finish()
            }
        }
    }
}

/// Where messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioFrom {
    /// A Twilio phone number in E.164 (sent as `From`).
    Number(String),
    /// A messaging service SID, "MG…" (sent as `MessagingServiceSid`).
    MessagingService(String),
}

/// Sends codes with Twilio: `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`.
pub struct TwilioSender {
    client: reqwest::Client,
    messages_url: Url,
    base_url: String,
    account_sid: String,
    user: String,
    secret: Zeroizing<String>,
    from: TwilioFrom,
}

impl fmt::Debug for TwilioSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSender").field("api", &self.describe()).finish_non_exhaustive()
    }
}

impl TwilioSender {
    pub fn new(cfg: TwilioConfig) -> Result<TwilioSender, ConfigError> {
        let TwilioConfig { base_url, account_sid, auth, from, timeout_secs } = cfg;
        if !is_sid(&account_sid, "AC") {
            return Err(ConfigError::TwilioAccountSid);
        }
        let (user, secret) = match auth {
            TwilioAuth::AuthToken(token) => (account_sid.clone(), Zeroizing::new(token)),
            TwilioAuth::ApiKey { sid, secret } => {
                if !is_sid(&sid, "SK") {
                    return Err(ConfigError::TwilioApiKeySid);
                }
                (sid, Zeroizing::new(secret))
            }
        };
        if secret.trim().is_empty() {
            return Err(ConfigError::TwilioSecret);
        }
        match &from {
            TwilioFrom::Number(n) if !is_e164(n) => return Err(ConfigError::TwilioFromNumber),
            TwilioFrom::MessagingService(sid) if !is_sid(sid, "MG") => {
                return Err(ConfigError::TwilioMessagingService);
            }
            _ => {}
        }
        if !(1..=600).contains(&timeout_secs) {
            return Err(ConfigError::Timeout(timeout_secs));
        }

        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        let bad_url = || ConfigError::TwilioBaseUrl(base_url.clone());
        let base = Url::parse(&base_url).map_err(|_| bad_url())?;
        let local = base.host_str().is_some_and(is_local_host);
        let scheme_ok = base.scheme() == "https" || (base.scheme() == "http" && local);
        if !scheme_ok
            || base.host_str().is_none()
            || !base.username().is_empty()
            || base.password().is_some()
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(bad_url());
        }
        let messages_url = Url::parse(&format!("{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"))
            .map_err(|_| bad_url())?;

        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(Duration::from_secs(timeout_secs))
            .connect_timeout(Duration::from_secs(timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clinic-auth-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;

        Ok(TwilioSender { client, messages_url, base_url, account_sid, user, secret, from })
    }
}

/// rustls with the ring provider passed in (no process default needed) and the webpki-roots CA
/// bundle (no system store needed).
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls { transport: "Twilio", reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // reqwest is built without HTTP/2 here.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s.get(2..).is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_e164(s: &str) -> bool {
    match s.strip_prefix('+') {
        Some(digits) => {
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
        }
        None => false,
    }
}

#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<u32>,
}

#[async_trait]
impl SmsSender for TwilioSender {
    async fn send_code(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError> {
        let masked = mask_phone(to);
        let outcome = self.post(to, msg).await;
        match &outcome {
            Ok(delivered) => tracing::info!(
                transport = "twilio",
                to = %masked,
                purpose = ?msg.purpose,
                provider_id = delivered.provider_id.as_deref().unwrap_or("-"),
                "code text message accepted by Twilio"
            ),
            Err(e) => tracing::warn!(transport = "twilio", to = %masked, error = %e, "code text message not sent"),
        }
        outcome
    }

    fn describe(&self) -> String {
        let from = match &self.from {
            TwilioFrom::Number(n) => format!("from {n}"),
            TwilioFrom::MessagingService(sid) => format!("messaging service {sid}"),
        };
        let key = if self.user == self.account_sid { "auth token" } else { "API key" };
        format!("Twilio {} (account {}, {key}, {from})", self.base_url, self.account_sid)
    }
}

impl TwilioSender {
    async fn post(&self, to: &str, msg: &CodeMessage<'_>) -> Result<Delivered, DeliveryError> {
        let to = to.trim();
        if !is_e164(to) {
            return Err(DeliveryError::Rejected("recipient is not an E.164 phone number".to_owned()));
        }
        let body = Zeroizing::new(sms_text(msg));
        let from = match &self.from {
            TwilioFrom::Number(n) => ("From", n.as_str()),
            TwilioFrom::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [("To", to), ("Body", body.as_str()), from];
        let response = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.user, Some(self.secret.as_str()))
            .form(&form)
            .send()
            .await
            .map_err(|e| request_error(&e))?;

        let status = response.status();
        // Twilio's answers are small; the bound keeps a misbehaving proxy from filling memory.
        let bytes = read_limited(response, 64 * 1024).await;
        if status.is_success() {
            let sid = serde_json::from_slice::<Created>(&bytes).ok().and_then(|c| c.sid);
            if sid.is_none() {
                tracing::warn!(
                    transport = "twilio",
                    http_status = status.as_u16(),
                    "Twilio accepted without a message SID"
                );
            }
            return Ok(Delivered { provider_id: sid });
        }
        // Twilio's `message` can quote the number ("The 'To' number +1… is not valid"): only its code.
        let code = serde_json::from_slice::<TwilioErrorBody>(&bytes).ok().and_then(|b| b.code);
        let reason = match code {
            Some(code) => format!("Twilio answered HTTP {} with error {code}{}", status.as_u16(), hint(code)),
            None => format!("Twilio answered HTTP {}", status.as_u16()),
        };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
        {
            Err(DeliveryError::Temporary(reason))
        } else {
            Err(DeliveryError::Rejected(reason))
        }
    }
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if out.len() + chunk.len() > limit {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    out
}

/// Operator hints for the errors one meets setting up SMS (https://www.twilio.com/docs/api/errors).
fn hint(code: u32) -> &'static str {
    match code {
        20003 => " (authentication failed: check account SID and auth token or API key)",
        20404 => " (not found: check the account SID)",
        21211 => " (invalid 'To' number)",
        21408 => " (sending to this region is not enabled)",
        21606 | 21659 | 21212 => " ('From' number cannot send from this account)",
        21610 => " (recipient replied STOP)",
        21612 | 21614 => " (number cannot receive text messages)",
        30007 => " (carrier filtered the message)",
        _ => "",
    }
}

/// reqwest's own text names the URL; ours does not need to.
fn request_error(e: &reqwest::Error) -> DeliveryError {
    let reason = if e.is_timeout() {
        "Twilio did not answer in time"
    } else if e.is_connect() {
        "could not connect to Twilio"
    } else {
        "request to Twilio failed"
    };
    DeliveryError::Temporary(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";

    fn cfg() -> TwilioConfig {
        TwilioConfig {
            base_url: TWILIO_BASE_URL.to_owned(),
            account_sid: AC.to_owned(),
            auth: TwilioAuth::AuthToken("token-secret".to_owned()),
            from: TwilioFrom::Number("+15550001111".to_owned()),
            timeout_secs: 10,
        }
    }

    #[test]
    fn production_config_builds_without_a_process_default_crypto_provider() {
        // Nothing in this test binary installs a provider; keep it that way.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let s = TwilioSender::new(cfg()).unwrap();
        assert_eq!(
            s.describe(),
            "Twilio https://api.twilio.com (account AC0123456789abcdef0123456789abcdef, auth token, from +15550001111)"
        );
        assert_eq!(
            s.messages_url.as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = [
            TwilioConfig { account_sid: "AB0123456789abcdef0123456789abcdef".to_owned(), ..cfg() },
            TwilioConfig { account_sid: "AC123".to_owned(), ..cfg() },
            TwilioConfig { auth: TwilioAuth::AuthToken(" ".to_owned()), ..cfg() },
            TwilioConfig { auth: TwilioAuth::ApiKey { sid: "SKnope".to_owned(), secret: "s".to_owned() }, ..cfg() },
            TwilioConfig { from: TwilioFrom::Number("5550001111".to_owned()), ..cfg() },
            TwilioConfig { from: TwilioFrom::MessagingService("MG1".to_owned()), ..cfg() },
            TwilioConfig { base_url: "api.twilio.com".to_owned(), ..cfg() },
            TwilioConfig { base_url: "ftp://api.twilio.com".to_owned(), ..cfg() },
            TwilioConfig { base_url: "http://api.twilio.com".to_owned(), ..cfg() },
            TwilioConfig { base_url: "https://user:pw@api.twilio.com".to_owned(), ..cfg() },
            TwilioConfig { timeout_secs: 0, ..cfg() },
        ];
        for c in bad {
            assert!(TwilioSender::new(c.clone()).is_err(), "{c:?}");
        }
    }

    #[test]
    fn plain_http_is_allowed_to_localhost_only() {
        assert!(TwilioSender::new(TwilioConfig { base_url: "http://127.0.0.1:8080/".to_owned(), ..cfg() }).is_ok());
        assert!(TwilioSender::new(TwilioConfig { base_url: "http://localhost:8080".to_owned(), ..cfg() }).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = TwilioConfig {
            auth: TwilioAuth::ApiKey {
                sid: "SK0123456789abcdef0123456789abcdef".to_owned(),
                secret: "key-secret".to_owned(),
            },
            ..cfg()
        };
        assert!(!format!("{c:?}").contains("key-secret"));
        let s = TwilioSender::new(c).unwrap();
        assert!(!format!("{s:?}").contains("key-secret"));
        assert!(!format!("{:?}", cfg()).contains("token-secret"));
    }
}

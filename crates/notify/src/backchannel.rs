//! Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0): one form POST
//! of a signed logout token to the URI an app registered.

use std::time::Duration;

use crate::ConfigError;

/// Posts logout tokens. Redirects are not followed (the spec forbids it) and a slow
/// app cannot hold a delivery longer than the timeout.
#[derive(Debug, Clone)]
pub struct LogoutPoster {
    client: reqwest::Client,
}

impl LogoutPoster {
    pub fn new() -> Result<LogoutPoster, ConfigError> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::twilio::tls_config()?)
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clinic-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Ok(LogoutPoster { client })
    }

    /// Delivers one logout token; `Err` says why it failed (never the token). The app
    /// answers 200 (or 204) when it ended the session.
    pub async fn post(&self, url: &str, logout_token: &str) -> Result<(), String> {
        let res = self
            .client
            .post(url)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", logout_token)])
            .send()
            .await
            .map_err(|e| format!("no answer: {}", e.without_url()))?;
        match res.status().as_u16() {
            200 | 204 => Ok(()),
            s => Err(format!("answered HTTP {s}")),
        }
    }
}

//! The client's address and user agent, for throttles, sessions and audit events.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use clinic_auth_store::ClientInfo;

use crate::AppState;

#[derive(Debug, Clone)]
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| parts.headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            // The right-most entry is the one our own proxy added.
            .and_then(|v| v.rsplit(',').next())
            .map(|s| s.trim().to_owned())
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok());
        let ip = forwarded.or(peer).unwrap_or_else(|| "unknown".to_owned());
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect())
            .unwrap_or_default();
        Ok(Client(ClientInfo { ip, user_agent }))
    }
}

/// What `/healthz` and the log say when requests carry `X-Forwarded-For` while
/// `trust_forwarded_for` is off.
pub const UNTRUSTED_FORWARDED_FOR: &str = "requests carry X-Forwarded-For but trust_forwarded_for is off: \
     every client appears as the proxy's address, so one client's failures lock everyone out";

/// Remembers whether a request came with `X-Forwarded-For` while the server does not
/// trust it. Behind a reverse proxy that means every client shares the proxy's address
/// for throttles and lockouts; start-up cannot know, so the first such request tells.
#[derive(Debug, Default)]
pub struct ForwardedForSeen(std::sync::atomic::AtomicBool);

impl ForwardedForSeen {
    /// Looks at one request; the first one with the header while trust is off logs a
    /// warning (once per process).
    pub fn observe(&self, trust_forwarded_for: bool, headers: &axum::http::HeaderMap) {
        use std::sync::atomic::Ordering;
        if trust_forwarded_for || !headers.contains_key("x-forwarded-for") || self.0.load(Ordering::Relaxed) {
            return;
        }
        if !self.0.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{UNTRUSTED_FORWARDED_FOR}. If a reverse proxy of yours adds the header, set trust_forwarded_for = true \
                 (CLINIC_AUTH_TRUST_FORWARDED_FOR=true); if clients reach this server directly, leave it off (they \
                 can forge the header) and ignore this warning"
            );
        }
    }

    pub fn seen(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn with_forwarded_for() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h
    }

    #[test]
    fn forwarded_for_is_noticed_only_while_untrusted() {
        let seen = ForwardedForSeen::default();
        seen.observe(false, &HeaderMap::new());
        assert!(!seen.seen(), "no header, nothing to say");
        seen.observe(true, &with_forwarded_for());
        assert!(!seen.seen(), "trusted: the header is used, nothing to say");
        seen.observe(false, &with_forwarded_for());
        assert!(seen.seen());
        seen.observe(false, &HeaderMap::new());
        assert!(seen.seen(), "once seen, it stays for the life of the process");
    }
}

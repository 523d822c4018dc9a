//! Settings the web application runs with. The binary fills them from defaults,
//! the config file and `CLINIC_AUTH_*` variables.

use clinic_auth_core::{PasswordPolicy, SessionTimeouts};
use url::Url;

/// Whether cookies carry the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecurity {
    /// Secure unless the public URL is plain-HTTP on a loopback host.
    Auto,
    Secure,
    /// Only for plain-HTTP development; never behind a public address.
    Insecure,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The address people and programs reach this server at (links are built from it).
    pub public_url: Url,
    /// Shown in page titles and, later, as the authenticator-app issuer.
    pub platform_name: String,
    pub cookie_security: CookieSecurity,
    pub session: SessionTimeouts,
    pub password_policy: PasswordPolicy,
    /// Seconds an invitation or password-reset link stays valid.
    pub link_ttl_secs: i64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Password hashes computed at once; more wait their turn.
    pub hashing_concurrency: usize,
    /// The WebAuthn relying-party id passkeys are bound to (a hostname such as
    /// `clinic.example`); the public URL's host when unset.
    pub passkey_rp_id: Option<String>,
    /// The origin browsers make passkeys on; the public URL's origin when unset.
    pub passkey_origin: Option<Url>,
    /// Seconds a one-time bypass ("Disable two-factor authentication") stays usable.
    pub bypass_ttl_secs: i64,
    /// Most events one CSV export from the web may hold (the command line has no limit).
    pub audit_export_max_events: usize,
}

impl WebConfig {
    pub fn new(public_url: Url) -> WebConfig {
        WebConfig {
            public_url,
            platform_name: "clinic-auth".to_owned(),
            cookie_security: CookieSecurity::Auto,
            session: SessionTimeouts::default(),
            password_policy: PasswordPolicy::default(),
            link_ttl_secs: 7 * 24 * 3600,
            trust_forwarded_for: false,
            hashing_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            passkey_rp_id: None,
            passkey_origin: None,
            bypass_ttl_secs: clinic_auth_core::policy::BYPASS_DEFAULT_SECS,
            audit_export_max_events: 100_000,
        }
    }

    pub fn secure_cookies(&self) -> bool {
        match self.cookie_security {
            CookieSecurity::Secure => true,
            CookieSecurity::Insecure => false,
            CookieSecurity::Auto => !(self.public_url.scheme() == "http" && is_loopback(&self.public_url)),
        }
    }

    /// An absolute link to `path` on this server.
    pub fn link(&self, path: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> WebConfig {
        WebConfig::new(
            Url::parse(url).unwrap_or_else(|_| Url::parse("https://x.test").unwrap_or_else(|_| unreachable!())),
        )
    }

    #[test]
    fn cookies_are_secure_except_on_plain_http_loopback() {
        assert!(!cfg("http://localhost:8080").secure_cookies());
        assert!(!cfg("http://127.0.0.1:8080").secure_cookies());
        assert!(!cfg("http://[::1]:8080").secure_cookies());
        assert!(cfg("http://auth.clinic.test").secure_cookies());
        assert!(cfg("https://localhost").secure_cookies());
        let mut c = cfg("http://localhost:8080");
        c.cookie_security = CookieSecurity::Secure;
        assert!(c.secure_cookies());
    }

    #[test]
    fn links_are_absolute() {
        assert_eq!(cfg("https://auth.clinic.test/").link("/invite/x"), "https://auth.clinic.test/invite/x");
        assert_eq!(cfg("https://clinic.test/auth/").link("/login"), "https://clinic.test/auth/login");
    }
}

//! Settings the web application runs with. The binary fills them from defaults,
//! the config file and `CLINIC_AUTH_*` variables.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clinic_auth_core::{PasswordPolicy, SessionTimeouts};
use url::Url;

/// The public URL when none is configured, from the address the server actually
/// bound: `http://localhost:PORT/` on the loopback addresses `localhost` stands for
/// (127.0.0.1 and ::1), because browsers treat `localhost` as a secure context and so
/// allow passkeys there; `http://ADDRESS:PORT/` anywhere else (an IP address, on which
/// passkeys are off). Other 127.x.y.z addresses keep their IP: `localhost` would not
/// reach a server bound to them.
pub fn default_public_url(bound: SocketAddr) -> Result<Url, url::ParseError> {
    if is_localhost_address(bound.ip()) {
        Url::parse(&format!("http://localhost:{}/", bound.port()))
    } else {
        Url::parse(&format!("http://{bound}/"))
    }
}

fn is_localhost_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

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
    fn default_public_url_is_localhost_on_loopback_and_the_address_elsewhere() {
        let cases = [
            ("127.0.0.1:8080", "http://localhost:8080/"),
            ("127.0.0.1:41234", "http://localhost:41234/"),
            ("[::1]:8080", "http://localhost:8080/"),
            // `localhost` resolves to 127.0.0.1 / ::1 only: a link to it would miss these.
            ("127.0.0.2:8080", "http://127.0.0.2:8080/"),
            ("0.0.0.0:8080", "http://0.0.0.0:8080/"),
            ("192.0.2.1:8080", "http://192.0.2.1:8080/"),
            ("192.0.2.1:80", "http://192.0.2.1/"),
            ("[::]:8080", "http://[::]:8080/"),
            ("[2001:db8::1]:443", "http://[2001:db8::1]:443/"),
        ];
        for (bound, expected) in cases {
            let bound: SocketAddr = bound.parse().unwrap();
            let url = default_public_url(bound).unwrap();
            assert_eq!(url.as_str(), expected, "listening on {bound}");
        }
    }

    #[test]
    fn default_loopback_public_url_keeps_plain_http_cookies() {
        let url = default_public_url(SocketAddr::from(([127, 0, 0, 1], 8080))).unwrap();
        assert!(!WebConfig::new(url).secure_cookies(), "auto treats http://localhost as plain-HTTP loopback");
    }

    #[test]
    fn links_are_absolute() {
        assert_eq!(cfg("https://auth.clinic.test/").link("/invite/x"), "https://auth.clinic.test/invite/x");
        assert_eq!(cfg("https://clinic.test/auth/").link("/login"), "https://clinic.test/auth/login");
    }
}

//! A short readable name for the device behind a `User-Agent` header ("Chrome on
//! Windows", "Safari on iPhone"), so that a member can tell their sessions and
//! passkeys apart. It is a hint, never evidence: the header is whatever the client
//! sent, so nothing is decided on it.
//!
//! The parser looks for a handful of well-known product tokens and nothing else; it
//! reads at most [`MAX_READ_BYTES`] of the header, so a long or hostile header costs
//! no more than a short one.

/// How much of a header is read: real ones are a few hundred bytes.
pub const MAX_READ_BYTES: usize = 512;

/// Longest program name taken from a non-browser client's first product token.
const MAX_PROGRAM_CHARS: usize = 32;

/// Browsers, by the token that names them. Order matters: Edge, Opera and Samsung
/// Internet also send `Chrome/`, Chrome also sends `Safari/` (headless Chrome sends
/// `HeadlessChrome/`, which holds `Chrome/`), and Chrome and Firefox on iOS send their
/// own tokens beside Safari's.
const BROWSERS: [(&str, &str); 11] = [
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
];

/// Operating systems, by the token that names them. iPhones and iPads say "like Mac
/// OS X", and Android says "Linux": the more precise names come first.
const SYSTEMS: [(&str, &str); 7] = [
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

/// What the header says, as far as this module reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// A known browser ("Chrome"), if one is named.
    pub browser: Option<&'static str>,
    /// A known operating system ("Windows"), if one is named.
    pub system: Option<&'static str>,
    /// A program that is not a browser, by its first product token ("curl" for
    /// `curl/8.5.0`): letters, digits, `.`, `_` and `-` only, at most 32 of them.
    pub program: Option<String>,
}

impl Device {
    /// Reads a `User-Agent` header (its first [`MAX_READ_BYTES`]).
    pub fn parse(user_agent: &str) -> Device {
        let ua = prefix(user_agent, MAX_READ_BYTES);
        let find = |table: &[(&str, &'static str)]| {
            table.iter().find(|(needle, _)| ua.contains(needle)).map(|(_, name)| *name)
        };
        let browser = find(&BROWSERS);
        let system = find(&SYSTEMS);
        let program = if browser.is_none() && system.is_none() { program_name(ua) } else { None };
        Device { browser, system, program }
    }

    /// "Chrome on Windows", "Firefox", "Android", "curl"; `None` when the header names
    /// nothing this module knows.
    pub fn name(&self) -> Option<String> {
        match (self.browser, self.system) {
            (Some(b), Some(s)) => Some(format!("{b} on {s}")),
            (Some(b), None) => Some(b.to_owned()),
            (None, Some(s)) => Some(s.to_owned()),
            (None, None) => self.program.clone(),
        }
    }
}

/// The readable name of the device behind a `User-Agent` header, if it names one
/// (see [`Device::name`]).
pub fn device_name(user_agent: &str) -> Option<String> {
    Device::parse(user_agent).name()
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// A program's own name from its first product token (`python-requests/2.31` →
/// `python-requests`); a browser-like `Mozilla/…` is not a program's name.
fn program_name(ua: &str) -> Option<String> {
    let token = ua.trim_start().split(['/', ' ', '(', ';']).next()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let named = token.starts_with(|c: char| c.is_ascii_alphabetic())
        && token.len() <= MAX_PROGRAM_CHARS
        && token.chars().all(plain)
        && !token.eq_ignore_ascii_case("Mozilla");
    named.then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_get_short_names() {
        let table: &[(&str, Option<&str>)] = &[
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                Some("Chrome on Windows"),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
                Some("Safari on iPhone"),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
                Some("Chrome on iPad"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                Some("Safari on macOS"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
                Some("Firefox on macOS"),
            ),
            (
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
                Some("Firefox on Linux"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
                Some("Edge on Windows"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
                Some("Samsung Internet on Android"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                Some("Chrome on Android"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                Some("Opera on Windows"),
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                Some("Chrome on ChromeOS"),
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
                Some("Chrome on Linux"),
            ),
            ("curl/8.5.0", Some("curl")),
            ("python-requests/2.31.0", Some("python-requests")),
            ("Go-http-client/1.1", Some("Go-http-client")),
            ("", None),
            ("Mozilla/5.0", None),
            ("   ", None),
            ("<script>alert(1)</script>", None),
            ("/1.0", None),
            ("9lives/1.0", None),
        ];
        for (ua, want) in table {
            assert_eq!(device_name(ua).as_deref(), *want, "{ua:?}");
        }
    }

    #[test]
    fn long_program_names_and_long_headers_are_cut() {
        assert_eq!(device_name(&format!("{}/1", "a".repeat(33))), None);
        assert_eq!(device_name(&format!("{}/1", "a".repeat(32))), Some("a".repeat(32)));
        // A browser named past the bytes read is not seen.
        let padded = format!("Mozilla/5.0 ({}) Firefox/127.0", "x".repeat(MAX_READ_BYTES));
        assert_eq!(device_name(&padded), None);
        // A cut inside a multi-byte character does not split it.
        let wide = format!("{}Firefox/1", "é".repeat(MAX_READ_BYTES));
        assert_eq!(prefix(&wide, MAX_READ_BYTES).len(), MAX_READ_BYTES);
        assert_eq!(prefix(&format!("a{}", "é".repeat(MAX_READ_BYTES)), MAX_READ_BYTES).len(), MAX_READ_BYTES - 1);
    }
}

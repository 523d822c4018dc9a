//! Email addresses as account identifiers.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enter a valid email address, like name@clinic.org")]
pub struct EmailError;

/// A syntactically plausible email address, trimmed and lower-cased so that one
/// person cannot hold two accounts by changing letter case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let s = input.trim().to_lowercase();
        // RFC 5321 limits: 64 octets local part, 254 for the whole path.
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(EmailError);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError);
        }
        if local.chars().any(|c| "<>()[]\\,;:\"".contains(c)) {
            return Err(EmailError);
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(EmailError);
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-');
            if !ok {
                return Err(EmailError);
            }
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_are_normalized() {
        assert_eq!(Email::parse("  Dr.Lee@Riverside.Test ").map(|e| e.0), Ok("dr.lee@riverside.test".into()));
        for ok in ["a@b.co", "first.last+tag@sub.clinic.org", "x@xn--bcher-kva.example"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        let long_local = format!("{}@a.co", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a b@c.co",
            "a@b..co",
            ".a@b.co",
            "a.@b.co",
            "a..b@c.co",
            "a@-b.co",
            "a@b-.co",
            "a@b_c.co",
            "<a>@b.co",
            "a\n@b.co",
            &long_local,
            &long_total,
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad:?}");
        }
    }
}

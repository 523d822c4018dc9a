//! Password rules from NIST SP 800-63B: a minimum length, a generous maximum, no
//! composition rules, and a check against commonly used and breached passwords and
//! against words from the account's own context.

use std::collections::HashSet;
use std::sync::LazyLock;
use zeroize::Zeroizing;

/// SP 800-63B-4 asks for at least 15 characters when a password is the only factor and
/// at least 8 when it is part of multi-factor authentication.
pub const DEFAULT_MIN_LENGTH: usize = 15;
pub const LOWEST_MIN_LENGTH: usize = 8;
/// At least 64 must be allowed; we allow 128 so passphrases fit.
pub const MAX_LENGTH: usize = 128;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("Use at least {0} characters. A few unrelated words make a strong, memorable password.")]
    TooShort(usize),
    #[error("Use at most {MAX_LENGTH} characters.")]
    TooLong,
    #[error("This password is too common or has appeared in data breaches. Choose another.")]
    Common,
    #[error("Don't use your email address or the service's name in your password.")]
    ContextWord,
    #[error("Avoid repeated or sequential characters like 'aaaa' or '1234'.")]
    Repetitive,
    #[error("The two passwords don't match.")]
    Mismatch,
}

/// How long passwords must be; the rest of the rules are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: DEFAULT_MIN_LENGTH }
    }
}

impl PasswordPolicy {
    /// A configured minimum, clamped into what the standard allows.
    pub fn with_min_length(min: usize) -> PasswordPolicy {
        PasswordPolicy { min_length: min.clamp(LOWEST_MIN_LENGTH, 64) }
    }
}

/// A password as typed at sign-in: never printed, wiped from memory when dropped.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(s: String) -> Password {
        Password(Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A password that passed the policy and may be hashed and stored.
#[derive(Clone)]
pub struct NewPassword(Password);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

impl NewPassword {
    /// Checks a chosen password. `context` holds words a guesser would try first: the
    /// account's email and the service's name.
    pub fn parse(
        input: Password,
        confirm: Option<&str>,
        policy: PasswordPolicy,
        context: &[&str],
    ) -> Result<NewPassword, PasswordError> {
        let pw = input.expose();
        let len = pw.chars().count();
        if len < policy.min_length {
            return Err(PasswordError::TooShort(policy.min_length));
        }
        if len > MAX_LENGTH {
            return Err(PasswordError::TooLong);
        }
        if let Some(c) = confirm {
            // Not secret-dependent timing worth protecting: both strings are the user's own input.
            if c != pw {
                return Err(PasswordError::Mismatch);
            }
        }
        let lower = pw.to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return Err(PasswordError::Common);
        }
        for word in context {
            let w = word.to_lowercase();
            let local = w.split('@').next().unwrap_or_default();
            if (!w.is_empty() && lower.contains(&w)) || (local.len() >= 4 && lower.contains(local)) {
                return Err(PasswordError::ContextWord);
            }
        }
        if is_repetitive(&lower) {
            return Err(PasswordError::Repetitive);
        }
        Ok(NewPassword(input))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// True when the whole password is one character repeated, one short block repeated,
/// or a run of consecutive characters ("abcdef…", "98765…").
fn is_repetitive(pw: &str) -> bool {
    let chars: Vec<char> = pw.chars().collect();
    let n = chars.len();
    for block in 1..=3 {
        if n >= block * 2 && n.is_multiple_of(block) {
            let first = chars.get(..block).unwrap_or_default();
            if chars.chunks(block).all(|c| c == first) {
                return true;
            }
        }
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| match w {
            [a, b] => *b as i64 - *a as i64,
            _ => 0,
        })
        .collect();
    !steps.is_empty() && (steps.iter().all(|&d| d == 1) || steps.iter().all(|&d| d == -1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str) -> Result<NewPassword, PasswordError> {
        NewPassword::parse(
            Password::new(pw.into()),
            None,
            PasswordPolicy::default(),
            &["dr.lee@riverside.test", "clinic-auth"],
        )
    }

    #[test]
    fn long_passphrases_are_accepted_without_composition_rules() {
        assert!(check("correct horse battery staple").is_ok());
        assert!(check("all lowercase words only here").is_ok());
        assert!(check("ünïcödé pässphrasé wörks fine").is_ok());
        assert!(check(&"ab cd ef gh ".repeat(11)[..MAX_LENGTH]).is_ok());
    }

    #[test]
    fn length_limits_count_characters() {
        assert_eq!(check("short").err(), Some(PasswordError::TooShort(15)));
        assert_eq!(check(&"x1y2z3".repeat(22)).err(), Some(PasswordError::TooLong));
        // 15 two-byte characters are 15 characters, not 30.
        assert!(check("éàüöïçñøåæœßðþł").is_ok());
        let eight = PasswordPolicy::with_min_length(8);
        assert!(NewPassword::parse(Password::new("tulip-ox".into()), None, eight, &[]).is_ok());
        assert_eq!(PasswordPolicy::with_min_length(3).min_length, LOWEST_MIN_LENGTH);
    }

    #[test]
    fn common_passwords_are_rejected_in_any_case() {
        assert_eq!(
            NewPassword::parse(Password::new("PASSWORD".into()), None, PasswordPolicy::with_min_length(8), &[]).err(),
            Some(PasswordError::Common)
        );
        assert_eq!(check("1qaz2wsx3edc4rfv").err(), Some(PasswordError::Common));
    }

    #[test]
    fn context_words_and_repetition_are_rejected() {
        assert_eq!(check("dr.lee@riverside.test!!").err(), Some(PasswordError::ContextWord));
        assert_eq!(check("my dr.lee password is long").err(), Some(PasswordError::ContextWord));
        assert_eq!(check("clinic-auth is my password").err(), Some(PasswordError::ContextWord));
        assert_eq!(check("aaaaaaaaaaaaaaaa").err(), Some(PasswordError::Repetitive));
        assert_eq!(check("abcabcabcabcabcabc").err(), Some(PasswordError::Repetitive));
        assert_eq!(check("abcdefghijklmnop").err(), Some(PasswordError::Repetitive));
        assert_eq!(check("9876543210zyx").err(), Some(PasswordError::TooShort(15)));
    }

    #[test]
    fn confirmation_must_match() {
        let r = NewPassword::parse(
            Password::new("correct horse battery".into()),
            Some("correct horse batteyr"),
            PasswordPolicy::default(),
            &[],
        );
        assert_eq!(r.err(), Some(PasswordError::Mismatch));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Password::new("hunter2".into())), "Password([redacted])");
    }
}

//! Codes sent by email or text message: 6 digits, valid 10 minutes, a few attempts,
//! "Resend" after a cooldown, a new code replacing the previous one.

use rand::Rng;
use zeroize::Zeroizing;

use crate::clock::UnixTime;
use crate::throttle::ThrottleRule;

/// "Your Authentication Code expires 10 minutes after it is sent."
pub const CODE_TTL_SECS: i64 = 10 * 60;
/// Wrong entries one code allows before a new one must be sent.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long "Resend" waits after a code was sent.
pub const RESEND_COOLDOWN_SECS: i64 = 30;

/// Codes sent to one account: 5 in 15 minutes, then a wait that doubles (each send
/// costs money and can be used to pester someone).
pub const SENDS_PER_ACCOUNT: ThrottleRule =
    ThrottleRule { free_failures: 5, base_lock_secs: 5 * 60, max_lock_secs: 60 * 60, window_secs: 15 * 60 };
/// Codes requested from one client address, across accounts.
pub const SENDS_PER_CLIENT: ThrottleRule =
    ThrottleRule { free_failures: 20, base_lock_secs: 10 * 60, max_lock_secs: 60 * 60, window_secs: 60 * 60 };

/// A 6-digit code (secret; never printed).
#[derive(Clone)]
pub struct OneTimeCode(Zeroizing<String>);

impl std::fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeCode([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Enter the 6-digit code we sent you.")]
pub struct OneTimeCodeError;

impl OneTimeCode {
    /// Uniform over 000000–999999.
    pub fn generate() -> OneTimeCode {
        let n: u32 = rand::rng().random_range(0..1_000_000);
        OneTimeCode(Zeroizing::new(format!("{n:06}")))
    }

    /// Accepts the code as typed or pasted: spaces and dashes are ignored.
    pub fn parse(input: &str) -> Result<OneTimeCode, OneTimeCodeError> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(OneTimeCode(Zeroizing::new(digits)))
        } else {
            Err(OneTimeCodeError)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A sent code's state, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeChallenge {
    pub sent_at: UnixTime,
    pub expires_at: UnixTime,
    pub attempts: u32,
}

/// What entering a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    Wrong {
        attempts_left: u32,
    },
    Expired,
    /// The attempts are used up: only a new code can help.
    TooManyAttempts,
}

impl CodeChallenge {
    pub fn sent(now: UnixTime) -> CodeChallenge {
        CodeChallenge { sent_at: now, expires_at: now.plus_secs(CODE_TTL_SECS), attempts: 0 }
    }

    /// Seconds until "Resend" may send again; `None` when it may now.
    pub fn resend_wait(&self, now: UnixTime) -> Option<i64> {
        let left = now.secs_until(self.sent_at.plus_secs(RESEND_COOLDOWN_SECS));
        (left > 0).then_some(left)
    }

    /// Judges an entry. `attempts` is the count *including* this entry (the store
    /// increments it atomically first); `matches` says whether the code was right.
    pub fn check(&self, now: UnixTime, attempts: u32, matches: bool) -> CodeCheck {
        if now >= self.expires_at {
            CodeCheck::Expired
        } else if attempts > MAX_ATTEMPTS {
            CodeCheck::TooManyAttempts
        } else if matches {
            CodeCheck::Accepted
        } else if attempts >= MAX_ATTEMPTS {
            CodeCheck::TooManyAttempts
        } else {
            CodeCheck::Wrong { attempts_left: MAX_ATTEMPTS - attempts }
        }
    }
}

/// For showing where a code went: `d•••@riverside.test`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_parse_tolerantly() {
        for _ in 0..200 {
            let c = OneTimeCode::generate();
            assert_eq!(c.expose().len(), 6);
            assert!(c.expose().bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(OneTimeCode::parse(" 123 456 ").map(|c| c.expose().to_owned()), Ok("123456".into()));
        assert_eq!(OneTimeCode::parse("123-456").map(|c| c.expose().to_owned()), Ok("123456".into()));
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert!(OneTimeCode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", OneTimeCode::generate()), "OneTimeCode([redacted])");
    }

    #[test]
    fn codes_expire_after_ten_minutes() {
        let c = CodeChallenge::sent(UnixTime(1000));
        assert_eq!(c.check(UnixTime(1000 + 599), 1, true), CodeCheck::Accepted);
        assert_eq!(c.check(UnixTime(1000 + 600), 1, true), CodeCheck::Expired);
    }

    #[test]
    fn attempts_are_limited() {
        let c = CodeChallenge::sent(UnixTime(0));
        let t = UnixTime(10);
        assert_eq!(c.check(t, 1, false), CodeCheck::Wrong { attempts_left: 4 });
        assert_eq!(c.check(t, 4, false), CodeCheck::Wrong { attempts_left: 1 });
        assert_eq!(c.check(t, 5, false), CodeCheck::TooManyAttempts);
        assert_eq!(c.check(t, 5, true), CodeCheck::Accepted, "the fifth entry may still be right");
        assert_eq!(c.check(t, 6, true), CodeCheck::TooManyAttempts, "not after that");
    }

    #[test]
    fn resend_waits_for_the_cooldown() {
        let c = CodeChallenge::sent(UnixTime(100));
        assert_eq!(c.resend_wait(UnixTime(100)), Some(30));
        assert_eq!(c.resend_wait(UnixTime(129)), Some(1));
        assert_eq!(c.resend_wait(UnixTime(130)), None);
    }

    #[test]
    fn emails_are_masked() {
        assert_eq!(mask_email("dr.lee@riverside.test"), "d•••@riverside.test");
    }
}

//! When a signed-in session ends.

use crate::clock::UnixTime;

/// How long after proving a second factor a session may change 2FA settings.
pub const STEP_UP_SECS: i64 = 10 * 60;

/// Whether a session proved a second factor recently enough to change 2FA settings.
pub fn recently_verified(verified_at: Option<UnixTime>, now: UnixTime) -> bool {
    verified_at.is_some_and(|t| t.secs_until(now) < STEP_UP_SECS)
}

/// Idle timeout (HIPAA automatic logoff) and absolute lifetime of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        SessionTimeouts { idle_secs: 15 * 60, absolute_secs: 12 * 60 * 60 }
    }
}

impl SessionTimeouts {
    /// A session is live if it was used within the idle timeout and has not passed its
    /// absolute lifetime.
    pub fn is_live(&self, created_at: UnixTime, last_seen_at: UnixTime, now: UnixTime) -> bool {
        last_seen_at.secs_until(now) < self.idle_secs && created_at.secs_until(now) < self.absolute_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_lasts_ten_minutes() {
        assert!(!recently_verified(None, UnixTime(100)));
        assert!(recently_verified(Some(UnixTime(100)), UnixTime(100 + 599)));
        assert!(!recently_verified(Some(UnixTime(100)), UnixTime(100 + 600)));
    }

    #[test]
    fn idle_and_absolute_timeouts() {
        let t = SessionTimeouts::default();
        let start = UnixTime(0);
        assert!(t.is_live(start, start, UnixTime(14 * 60)));
        assert!(!t.is_live(start, start, UnixTime(15 * 60)));
        // kept alive by use, until the absolute limit
        assert!(t.is_live(start, UnixTime(11 * 3600 + 3000), UnixTime(11 * 3600 + 3500)));
        assert!(!t.is_live(start, UnixTime(12 * 3600 - 10), UnixTime(12 * 3600)));
    }
}

/// What a second factor is being proved or a code sent for. A code sent for one
/// purpose never works for another, and every refusal in the audit trail says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The second step of a sign-in.
    SignIn,
    /// Confirming a new factor while setting it up.
    Enroll,
    /// Proving a factor again inside a session before a sensitive change.
    StepUp,
}

impl Purpose {
    /// The word stored with a code and written in audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "sign_in",
            Purpose::Enroll => "enroll",
            Purpose::StepUp => "step_up",
        }
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod purpose_tests {
    use super::Purpose;

    #[test]
    fn purposes_keep_the_words_stored_codes_and_audit_trails_use() {
        let words: Vec<&str> = [Purpose::SignIn, Purpose::Enroll, Purpose::StepUp].iter().map(|p| p.as_str()).collect();
        assert_eq!(words, ["sign_in", "enroll", "step_up"]);
    }
}

//! Limits on repeated failures (passwords now, codes later), with exponential
//! backoff. The store keeps the counters; these functions decide.

use crate::clock::UnixTime;

/// How many failures are free, and how long a lock lasts after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures allowed within `window_secs` before the first lock.
    pub free_failures: u32,
    /// The first lock's length; each further failure doubles it.
    pub base_lock_secs: i64,
    pub max_lock_secs: i64,
    /// Failures older than this (and not locked) are forgotten.
    pub window_secs: i64,
}

impl ThrottleRule {
    /// "Someone may know your password" emails: one per member a day (the first one
    /// locks the key for the rest of the day).
    pub const PASSWORD_KNOWN_NOTICE: ThrottleRule =
        ThrottleRule { free_failures: 0, base_lock_secs: 24 * 3600, max_lock_secs: 24 * 3600, window_secs: 24 * 3600 };

    /// "Send reminder" (to set up two-factor authentication) for one member: one a day,
    /// whoever sends it and however (Users page, "Remind everyone not set up", the
    /// API). Counted with `Store::reserve_attempt`; a reminder within the day is
    /// skipped.
    pub const MFA_REMINDERS_PER_MEMBER: ThrottleRule =
        ThrottleRule { free_failures: 0, base_lock_secs: 24 * 3600, max_lock_secs: 24 * 3600, window_secs: 24 * 3600 };

    /// Wrong passwords for one email address: 5 free, then 30 s, 1 min, 2 min … 15 min.
    pub const PASSWORD_PER_ACCOUNT: ThrottleRule =
        ThrottleRule { free_failures: 5, base_lock_secs: 30, max_lock_secs: 15 * 60, window_secs: 15 * 60 };
    /// Wrong passwords from one client address, across accounts (password spraying).
    pub const PASSWORD_PER_CLIENT: ThrottleRule =
        ThrottleRule { free_failures: 20, base_lock_secs: 60, max_lock_secs: 60 * 60, window_secs: 15 * 60 };

    /// Wrong second-factor codes for one member, across sign-ins and devices: 5 free,
    /// then 1 min, 2 min … 15 min.
    pub const SECOND_FACTOR_PER_ACCOUNT: ThrottleRule =
        ThrottleRule { free_failures: 5, base_lock_secs: 60, max_lock_secs: 15 * 60, window_secs: 15 * 60 };

    /// "Resend invitation" for one account: 5 within an hour, then none for an hour.
    /// Counted with `Store::reserve_attempt`; the resend that goes over is refused.
    pub const INVITATION_RESENDS_PER_ACCOUNT: ThrottleRule =
        ThrottleRule { free_failures: 5, base_lock_secs: 60 * 60, max_lock_secs: 60 * 60, window_secs: 60 * 60 };

    /// "Forgot your password?" for one email address (in one realm): 3 reset emails
    /// within an hour, then none for an hour. Counted with `Store::reserve_attempt`
    /// whether or not an account uses the address; a request over the limit gets the
    /// same answer and sends nothing.
    pub const PASSWORD_RESETS_PER_ADDRESS: ThrottleRule =
        ThrottleRule { free_failures: 3, base_lock_secs: 60 * 60, max_lock_secs: 60 * 60, window_secs: 60 * 60 };
    /// "Forgot your password?" from one client address, across email addresses: 20
    /// within an hour, then none for an hour (the client is told to wait).
    pub const PASSWORD_RESETS_PER_CLIENT: ThrottleRule =
        ThrottleRule { free_failures: 20, base_lock_secs: 60 * 60, max_lock_secs: 60 * 60, window_secs: 60 * 60 };

    /// "Change email" for one account: 3 requests (3 links to new addresses, 3
    /// notices to the current one) within an hour, then none for an hour (the holder
    /// is told to wait). Counted with `Store::reserve_attempt` once the current
    /// password was right.
    pub const EMAIL_CHANGES_PER_ACCOUNT: ThrottleRule =
        ThrottleRule { free_failures: 3, base_lock_secs: 60 * 60, max_lock_secs: 60 * 60, window_secs: 60 * 60 };

    /// When a key with `failures` recorded failures is locked until, counting from the
    /// latest failure at `now`.
    pub fn locked_until(&self, failures: u32, now: UnixTime) -> Option<UnixTime> {
        let over = failures.checked_sub(self.free_failures)?;
        if over == 0 {
            return None;
        }
        let doublings = (over - 1).min(30);
        let secs = self.base_lock_secs.saturating_mul(1_i64 << doublings).min(self.max_lock_secs);
        Some(now.plus_secs(secs))
    }

    /// The time before which failures no longer count, for a window starting at `now`.
    pub fn window_start_cutoff(&self, now: UnixTime) -> UnixTime {
        now.plus_secs(-self.window_secs)
    }
}

/// Wrong answers in a row for one member's factor, whatever time passes between them
/// (NIST SP 800-63B: at most 100 consecutive failed attempts): then the factor stays
/// locked until the member proves another factor or an admin resets their MFA.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 100;

/// The stored state of one throttle key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: u32,
    pub locked_until: UnixTime,
}

impl ThrottleState {
    /// Seconds left on a lock, if locked at `now`.
    pub fn locked_for(&self, now: UnixTime) -> Option<i64> {
        let left = now.secs_until(self.locked_until);
        (left > 0).then_some(left)
    }
}

/// Words for a wait, rounded up: "30 seconds", "2 minutes".
pub fn describe_wait(secs: i64) -> String {
    if secs <= 60 {
        let s = secs.max(1);
        format!("{s} second{}", if s == 1 { "" } else { "s" })
    } else {
        let m = (secs + 59) / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mfa_reminder_a_day_per_member() {
        let r = ThrottleRule::MFA_REMINDERS_PER_MEMBER;
        let t = UnixTime(1000);
        // The first reminder locks the member's key for a day from when it was sent.
        assert_eq!(r.locked_until(1, t), Some(UnixTime(1000 + 24 * 3600)));
        assert_eq!(r.locked_until(5, t), Some(UnixTime(1000 + 24 * 3600)));
        assert_eq!(r.window_start_cutoff(t), UnixTime(1000 - 24 * 3600));
    }

    #[test]
    fn free_failures_do_not_lock() {
        let r = ThrottleRule::PASSWORD_PER_ACCOUNT;
        for n in 0..=5 {
            assert_eq!(r.locked_until(n, UnixTime(1000)), None, "{n}");
        }
    }

    #[test]
    fn locks_double_up_to_the_cap() {
        let r = ThrottleRule::PASSWORD_PER_ACCOUNT;
        let t = UnixTime(1000);
        let table = [(6, 30), (7, 60), (8, 120), (9, 240), (10, 480), (11, 900), (12, 900), (200, 900)];
        for (failures, secs) in table {
            assert_eq!(r.locked_until(failures, t), Some(UnixTime(1000 + secs)), "{failures}");
        }
    }

    #[test]
    fn five_invitation_resends_an_hour() {
        let r = ThrottleRule::INVITATION_RESENDS_PER_ACCOUNT;
        let t = UnixTime(1000);
        for n in 1..=5 {
            assert_eq!(r.locked_until(n, t), None, "{n}");
        }
        assert_eq!(r.locked_until(6, t), Some(UnixTime(1000 + 3600)));
        assert_eq!(r.locked_until(9, t), Some(UnixTime(1000 + 3600)), "never longer than an hour");
        assert_eq!(r.window_start_cutoff(t), UnixTime(1000 - 3600));
    }

    #[test]
    fn reset_requests_per_address_and_per_client() {
        let t = UnixTime(1000);
        let address = ThrottleRule::PASSWORD_RESETS_PER_ADDRESS;
        for n in 1..=3 {
            assert_eq!(address.locked_until(n, t), None, "{n}");
        }
        assert_eq!(address.locked_until(4, t), Some(UnixTime(1000 + 3600)), "the fourth within an hour waits an hour");
        assert_eq!(address.locked_until(10, t), Some(UnixTime(1000 + 3600)));
        let client = ThrottleRule::PASSWORD_RESETS_PER_CLIENT;
        assert_eq!(client.locked_until(20, t), None);
        assert_eq!(client.locked_until(21, t), Some(UnixTime(1000 + 3600)));
        assert_eq!(client.locked_until(40, t), Some(UnixTime(1000 + 3600)), "never longer than an hour");
    }

    #[test]
    fn email_changes_per_account_are_three_an_hour() {
        let t = UnixTime(1000);
        let rule = ThrottleRule::EMAIL_CHANGES_PER_ACCOUNT;
        for n in 1..=3 {
            assert_eq!(rule.locked_until(n, t), None, "{n}");
        }
        assert_eq!(rule.locked_until(4, t), Some(UnixTime(1000 + 3600)), "the fourth within an hour waits an hour");
        assert_eq!(rule.locked_until(12, t), Some(UnixTime(1000 + 3600)), "never longer than an hour");
        assert_eq!(rule.window_start_cutoff(t), UnixTime(1000 - 3600));
    }

    #[test]
    fn lock_state_reports_time_left() {
        let s = ThrottleState { failures: 6, locked_until: UnixTime(130) };
        assert_eq!(s.locked_for(UnixTime(100)), Some(30));
        assert_eq!(s.locked_for(UnixTime(130)), None);
        assert_eq!(describe_wait(30), "30 seconds");
        assert_eq!(describe_wait(61), "2 minutes");
        assert_eq!(describe_wait(60), "60 seconds");
        assert_eq!(describe_wait(1), "1 second");
    }
}

//! "Change email": the rules of changing an account's sign-in email. The change is
//! asked for from a signed-in session and made only when the link sent to the new
//! address is used; these functions decide what a request and a link may do.

use crate::{Email, UnixTime};

/// How long the link to the new address works: an hour, like a password-reset link
/// (the server's `link_ttl_secs` when that is shorter).
pub const LINK_TTL_SECS: i64 = 3600;

/// Why a request to change the sign-in email is refused before anything happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRefused {
    /// The new address is the account's email already.
    SameAddress,
}

/// A request to change `current` to `new`: refused when they are the same address
/// (both are parsed, so case and surrounding spaces do not count).
pub fn check_request(current: &Email, new: &Email) -> Result<(), RequestRefused> {
    if current == new { Err(RequestRefused::SameAddress) } else { Ok(()) }
}

/// What a change link is at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Unused and unexpired: it may make the change.
    Usable,
    /// It made its change already.
    Used,
    /// It expired, or a newer request or "Cancel" ended it.
    Ended,
}

pub fn link_state(used_at: Option<UnixTime>, expires_at: UnixTime, now: UnixTime) -> LinkState {
    match used_at {
        Some(_) => LinkState::Used,
        None if now < expires_at => LinkState::Usable,
        None => LinkState::Ended,
    }
}

/// When a link asked for at `now` stops working, under the server's cap on links.
pub fn link_expires_at(now: UnixTime, server_link_ttl_secs: i64) -> UnixTime {
    now.plus_secs(LINK_TTL_SECS.min(server_link_ttl_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn the_same_address_is_refused_whatever_its_case() {
        let current = email("dana@riverside.test");
        assert_eq!(check_request(&current, &email(" Dana@Riverside.TEST ")), Err(RequestRefused::SameAddress));
        assert_eq!(check_request(&current, &email("dana@hillside.test")), Ok(()));
    }

    #[test]
    fn a_link_is_usable_until_used_or_ended() {
        let t = UnixTime(1000);
        let table = [
            (None, UnixTime(1001), LinkState::Usable),
            (None, UnixTime(1000), LinkState::Ended),
            (None, UnixTime(10), LinkState::Ended),
            (Some(UnixTime(900)), UnixTime(5000), LinkState::Used),
            (Some(UnixTime(900)), UnixTime(10), LinkState::Used),
        ];
        for (used_at, expires_at, state) in table {
            assert_eq!(link_state(used_at, expires_at, t), state, "{used_at:?} {expires_at:?}");
        }
    }

    #[test]
    fn links_work_an_hour_or_less() {
        assert_eq!(link_expires_at(UnixTime(1000), 7 * 24 * 3600), UnixTime(1000 + 3600));
        assert_eq!(link_expires_at(UnixTime(1000), 600), UnixTime(1600), "the server's shorter cap wins");
    }
}

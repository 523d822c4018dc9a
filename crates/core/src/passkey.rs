//! Passkeys on trusted devices: the rules around a WebAuthn credential that do not
//! need the WebAuthn library itself — its name, how many a member may keep, how long
//! a ceremony stays open, what a signature counter says, and the device hint.
//!
//! The WebAuthn ceremony (CBOR, COSE keys, signatures) is checked by `webauthn-rs` at
//! the web edge; this module decides what to do with what it reports.

use sha2::{Digest, Sha256};

use crate::token::hex;

/// How long a started ceremony (options sent, response not yet back) stays good.
pub const CEREMONY_SECS: i64 = 5 * 60;

/// Passkeys one account may keep: one per trusted device, and a member seldom has
/// more than a few. The limit keeps the sign-in options small.
pub const MAX_PASSKEYS_PER_ACCOUNT: usize = 10;

/// Longest credential response the server reads (a real one is 1–3 KiB).
pub const MAX_RESPONSE_BYTES: usize = 12 * 1024;

/// A passkey's name as the member sees and edits it ("Work laptop").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

pub const MAX_NAME_CHARS: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyNameError {
    #[error("Give the device a name.")]
    Empty,
    #[error("Keep the name to 60 characters or fewer.")]
    TooLong,
    #[error("The name can't contain control characters.")]
    ControlCharacter,
}

impl PasskeyName {
    pub fn parse(s: &str) -> Result<PasskeyName, PasskeyNameError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PasskeyNameError::Empty);
        }
        if s.chars().count() > MAX_NAME_CHARS {
            return Err(PasskeyNameError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(PasskeyNameError::ControlCharacter);
        }
        Ok(PasskeyName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A first name from the browser's User-Agent ("Chrome on Linux"), so that the
    /// list on the account page tells devices apart before the member renames any.
    pub fn from_user_agent(user_agent: Option<&str>) -> PasskeyName {
        let name = user_agent.and_then(crate::user_agent::device_name);
        PasskeyName(name.unwrap_or_else(|| "This device".to_owned()))
    }
}

/// What a credential's signature counter says about a sign-in (WebAuthn §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterVerdict {
    /// The counter went up: store the new value.
    Advanced,
    /// Neither side keeps a counter (synced passkeys report 0 every time).
    NotKept,
    /// The counter did not go up although the credential keeps one: a copy of the
    /// credential may exist. The sign-in fails and is audited.
    CloneWarning,
}

/// Judges a presented counter against the stored one. WebAuthn leaves the response
/// to the relying party; ours (and webauthn-rs's, which refuses the same answers in
/// the ceremony) is strict: once either side has counted, the counter must go up.
/// Device-bound authenticators count every use; synced passkeys (iCloud Keychain,
/// Google Password Manager and the like) report 0 every time and never trip it.
pub fn counter_verdict(stored: u32, presented: u32) -> CounterVerdict {
    if stored == 0 && presented == 0 {
        CounterVerdict::NotKept
    } else if presented > stored {
        CounterVerdict::Advanced
    } else {
        CounterVerdict::CloneWarning
    }
}

/// Why a passkey's answer is taken for a copied credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneSign {
    /// The signature counter did not advance.
    CounterNotAdvanced,
    /// The credential's backup eligibility differs from the one it registered with.
    /// It is fixed for a credential's life (WebAuthn §6.1.3), so a device-bound
    /// credential suddenly claiming to be synced is someone else's copy.
    BackupEligibilityChanged,
}

impl CloneSign {
    pub fn as_str(self) -> &'static str {
        match self {
            CloneSign::CounterNotAdvanced => "counter_not_advanced",
            CloneSign::BackupEligibilityChanged => "backup_eligibility_changed",
        }
    }
}

/// What the store keeps of a passkey to judge its next use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredUse {
    pub sign_count: u32,
    /// As registered; never updated from later answers.
    pub backup_eligible: bool,
}

/// What the authenticator reported with this sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedUse {
    pub counter: u32,
    pub backup_eligible: bool,
}

/// Whether an otherwise valid passkey answer is accepted, and whether its counter
/// must be stored as advanced.
pub fn judge_use(stored: StoredUse, presented: PresentedUse) -> Result<CounterVerdict, CloneSign> {
    if stored.backup_eligible != presented.backup_eligible {
        return Err(CloneSign::BackupEligibilityChanged);
    }
    match counter_verdict(stored.sign_count, presented.counter) {
        CounterVerdict::CloneWarning => Err(CloneSign::CounterNotAdvanced),
        v => Ok(v),
    }
}

/// The device hint a browser keeps after trusting itself: a short digest of the
/// credential id. It only picks the passkey as the default method; the sign-in itself
/// still needs the credential's signature, so the hint carries no authority.
pub fn device_hint(credential_id: &str) -> String {
    let digest = Sha256::digest(format!("clinic-auth:device-hint:{credential_id}").as_bytes());
    hex(digest.get(..12).unwrap_or_default())
}

/// Device hints a browser may carry (several members may share a front-desk PC).
pub const MAX_DEVICE_HINTS: usize = 8;

/// Reads the hints a client presents (comma-separated), ignoring anything that is not
/// the shape of one.
pub fn parse_device_hints(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .take(MAX_DEVICE_HINTS)
        .map(str::to_owned)
        .collect()
}

/// Adds a hint to a browser's list: newest first, no repeats, bounded.
pub fn remember_device_hint(existing: &[String], hint: &str) -> String {
    let mut all = vec![hint.to_owned()];
    all.extend(existing.iter().filter(|h| *h != hint).cloned());
    all.truncate(MAX_DEVICE_HINTS);
    all.join(",")
}

/// Whether a browser's hints name one of the account's passkeys.
pub fn is_trusted_device(hints: &[String], credential_ids: &[&str]) -> bool {
    credential_ids.iter().any(|id| {
        let mine = device_hint(id);
        hints.iter().any(|h| h.eq_ignore_ascii_case(&mine))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PasskeyName::parse("  Work laptop ").map(|n| n.0), Ok("Work laptop".to_owned()));
        assert_eq!(PasskeyName::parse("   "), Err(PasskeyNameError::Empty));
        assert_eq!(PasskeyName::parse(&"é".repeat(60)).map(|n| n.0.chars().count()), Ok(60));
        assert_eq!(PasskeyName::parse(&"a".repeat(61)), Err(PasskeyNameError::TooLong));
        assert_eq!(PasskeyName::parse("a\u{0}b"), Err(PasskeyNameError::ControlCharacter));
    }

    #[test]
    fn first_name_comes_from_the_browser() {
        let chrome_linux =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(PasskeyName::from_user_agent(Some(chrome_linux)).as_str(), "Chrome on Linux");
        let safari_iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        assert_eq!(PasskeyName::from_user_agent(Some(safari_iphone)).as_str(), "Safari on iPhone");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";
        assert_eq!(PasskeyName::from_user_agent(Some(edge)).as_str(), "Edge on Windows");
        assert_eq!(PasskeyName::from_user_agent(None).as_str(), "This device");
    }

    #[test]
    fn counters_must_advance_once_either_side_counts() {
        use CounterVerdict::*;
        assert_eq!(counter_verdict(0, 0), NotKept, "synced passkeys report 0 every time");
        assert_eq!(counter_verdict(0, 1), Advanced);
        assert_eq!(counter_verdict(5, 6), Advanced);
        assert_eq!(counter_verdict(5, 5), CloneWarning, "repeated");
        assert_eq!(counter_verdict(5, 3), CloneWarning, "went backwards");
        assert_eq!(counter_verdict(5, 0), CloneWarning, "stopped counting");
    }

    #[test]
    fn a_credential_changing_its_backup_eligibility_is_a_copy() {
        let bound = StoredUse { sign_count: 4, backup_eligible: false };
        let synced = StoredUse { sign_count: 0, backup_eligible: true };
        assert_eq!(judge_use(bound, PresentedUse { counter: 5, backup_eligible: false }), Ok(CounterVerdict::Advanced));
        assert_eq!(
            judge_use(bound, PresentedUse { counter: 5, backup_eligible: true }),
            Err(CloneSign::BackupEligibilityChanged)
        );
        assert_eq!(
            judge_use(bound, PresentedUse { counter: 4, backup_eligible: false }),
            Err(CloneSign::CounterNotAdvanced)
        );
        assert_eq!(judge_use(synced, PresentedUse { counter: 0, backup_eligible: true }), Ok(CounterVerdict::NotKept));
        assert_eq!(
            judge_use(synced, PresentedUse { counter: 0, backup_eligible: false }),
            Err(CloneSign::BackupEligibilityChanged)
        );
    }

    #[test]
    fn device_hints_recognize_only_their_credential() {
        let hint = device_hint("cred-A");
        assert_eq!(hint.len(), 24);
        assert_ne!(hint, device_hint("cred-B"));
        let hints = parse_device_hints(&format!("junk,{hint},{}", "z".repeat(24)));
        assert_eq!(hints, vec![hint.clone()]);
        assert!(is_trusted_device(&hints, &["cred-B", "cred-A"]));
        assert!(!is_trusted_device(&hints, &["cred-B"]));
        assert!(!is_trusted_device(&[], &["cred-A"]));
    }

    #[test]
    fn remembered_hints_are_bounded_and_unique() {
        let many: Vec<String> = (0..20).map(|i| device_hint(&format!("c{i}"))).collect();
        let joined = remember_device_hint(&many, &many[3]);
        let parsed = parse_device_hints(&joined);
        assert_eq!(parsed.len(), MAX_DEVICE_HINTS);
        assert_eq!(parsed[0], many[3]);
        assert_eq!(parsed.iter().filter(|h| **h == many[3]).count(), 1);
    }
}

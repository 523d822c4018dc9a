//! What an operator's dashboard counts of the audit trail: sign-ins by realm and
//! outcome, second-factor checks by method and outcome, lockouts, bypasses and
//! resets. The store counts each event once its transaction has committed, from the
//! kind, outcome and detail it wrote (`tally`).
//!
//! Every label value is one of a fixed set of words chosen here (`&'static str`):
//! a value the trail holds that is not in the set becomes `other`, so no email,
//! account id, client address or free text can ever become a label.

use crate::{FactorKind, Realm};

/// Sign-ins, by `realm` and `outcome` (`success` or why it was refused).
pub const SIGN_INS: &str = "clinic_auth_sign_ins_total";
/// Answers to a second factor, by `method` and `outcome`: `accepted`, `wrong`,
/// `replayed`, `locked`, `expired` or `other`.
pub const SECOND_FACTOR_CHECKS: &str = "clinic_auth_second_factor_checks_total";
/// Attempts refused by a lock and factors newly locked, by `lock`: `account` (the
/// email's password lock), `client` (the client address's), `second_factor` (the
/// member's short lock after wrong codes), `factor` (100 wrong answers in a row).
pub const LOCKOUTS: &str = "clinic_auth_lockouts_total";
/// One-time bypasses, by `stage`: `granted` or `used`.
pub const BYPASSES: &str = "clinic_auth_bypasses_total";
/// Resets, by `what`: `mfa`, `password` (a reset link used) or `unlock` (an admin
/// lifted a lock).
pub const RESETS: &str = "clinic_auth_resets_total";

/// An increment of one counter (`by`, 1 but for a lock period's refusals), with
/// its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub name: &'static str,
    pub labels: Vec<(&'static str, &'static str)>,
    pub by: u64,
}

impl Tally {
    fn new(name: &'static str, labels: &[(&'static str, &'static str)]) -> Tally {
        Tally { name, labels: labels.to_vec(), by: 1 }
    }
}

/// The counters an audit event adds to (none for most kinds), from what the store
/// keeps of it: its kind, outcome and JSON detail.
pub fn tally(kind: &str, outcome: &str, detail: &str) -> Vec<Tally> {
    let detail: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
    // One event stands for every refusal of a lock period (`with_refusals`).
    let refusals = detail.get("refusals").and_then(serde_json::Value::as_u64).unwrap_or(1);
    let mut counted = by_kind(kind, outcome == "success", &detail);
    for t in &mut counted {
        t.by = refusals;
    }
    counted
}

fn by_kind(kind: &str, success: bool, detail: &serde_json::Value) -> Vec<Tally> {
    let field = |name: &str| detail.get(name).and_then(serde_json::Value::as_str).unwrap_or("");
    let method = || field("method").parse::<FactorKind>().map(FactorKind::as_str).unwrap_or("other");
    match kind {
        "sign_in" => {
            let realm = field("realm").parse::<Realm>().map(Realm::as_str).unwrap_or("unknown");
            let why = if success { "success" } else { sign_in_refusal(field("reason")) };
            let mut t = vec![Tally::new(SIGN_INS, &[("realm", realm), ("outcome", why)])];
            match why {
                "account_locked" => t.push(Tally::new(LOCKOUTS, &[("lock", "account")])),
                "client_locked" => t.push(Tally::new(LOCKOUTS, &[("lock", "client")])),
                _ => {}
            }
            t
        }
        "second_factor" => {
            let why = if success { "accepted" } else { second_factor_refusal(field("reason")) };
            let mut t = vec![Tally::new(SECOND_FACTOR_CHECKS, &[("method", method()), ("outcome", why)])];
            if field("reason") == "locked" {
                t.push(Tally::new(LOCKOUTS, &[("lock", "second_factor")]));
            }
            t
        }
        "recovery_code_used" => {
            vec![Tally::new(
                SECOND_FACTOR_CHECKS,
                &[("method", FactorKind::RecoveryCode.as_str()), ("outcome", "accepted")],
            )]
        }
        "factor_locked" => vec![Tally::new(LOCKOUTS, &[("lock", "factor")])],
        "bypass_granted" => vec![Tally::new(BYPASSES, &[("stage", "granted")])],
        "bypass_used" => vec![Tally::new(BYPASSES, &[("stage", "used")])],
        "mfa_reset" => vec![Tally::new(RESETS, &[("what", "mfa")])],
        "password_reset" => vec![Tally::new(RESETS, &[("what", "password")])],
        "second_factor_unlocked" => vec![Tally::new(RESETS, &[("what", "unlock")])],
        _ => vec![],
    }
}

/// Why a sign-in was refused, as one of the trail's fixed reasons.
fn sign_in_refusal(reason: &str) -> &'static str {
    match reason {
        "wrong_password" => "wrong_password",
        "unknown_account" => "unknown_account",
        "no_password_set" => "no_password_set",
        "account_deactivated" => "account_deactivated",
        "account_locked" => "account_locked",
        "client_locked" => "client_locked",
        "second_factor_abandoned" => "second_factor_abandoned",
        _ => "other",
    }
}

/// A refused second-factor answer, in the dashboard's words.
fn second_factor_refusal(reason: &str) -> &'static str {
    match reason {
        "wrong_code" | "incorrect_code" | "unknown_credential" => "wrong",
        "replayed_code" | "code_already_used" | "counter_went_backwards" => "replayed",
        "locked" | "factor_locked" | "attempts_exhausted" => "locked",
        "code_expired" | "expired" => "expired",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;
    use crate::{Purpose, Realm};

    fn of(e: Event<'_>) -> Vec<Tally> {
        tally(e.kind(), e.outcome(), &e.detail())
    }

    fn one(name: &'static str, labels: &[(&'static str, &'static str)]) -> Vec<Tally> {
        vec![Tally::new(name, labels)]
    }

    #[test]
    fn audit_events_count_towards_the_operators_counters() {
        let table: Vec<(Event<'_>, Vec<Tally>)> = vec![
            (
                Event::SignedIn { realm: Realm::Patient, method: "password" },
                one(SIGN_INS, &[("realm", "patient"), ("outcome", "success")]),
            ),
            (
                Event::SignInRefused {
                    realm: Realm::Staff,
                    reason: "wrong_password",
                    email: Some("dr.lee@riverside.test"),
                },
                one(SIGN_INS, &[("realm", "staff"), ("outcome", "wrong_password")]),
            ),
            (
                Event::SignInRefused {
                    realm: Realm::Patient,
                    reason: "account_locked",
                    email: Some("dr.lee@riverside.test"),
                },
                vec![
                    Tally::new(SIGN_INS, &[("realm", "patient"), ("outcome", "account_locked")]),
                    Tally::new(LOCKOUTS, &[("lock", "account")]),
                ],
            ),
            (
                Event::SecondFactorProved { method: FactorKind::Sms, purpose: Purpose::SignIn, passkey_id: None },
                one(SECOND_FACTOR_CHECKS, &[("method", "sms"), ("outcome", "accepted")]),
            ),
            (
                Event::SecondFactorRefused {
                    method: FactorKind::Authenticator,
                    reason: "replayed_code",
                    purpose: Some(Purpose::SignIn),
                },
                one(SECOND_FACTOR_CHECKS, &[("method", "authenticator"), ("outcome", "replayed")]),
            ),
            (
                Event::SecondFactorRefused { method: FactorKind::Email, reason: "wrong_code", purpose: None },
                one(SECOND_FACTOR_CHECKS, &[("method", "email"), ("outcome", "wrong")]),
            ),
            (
                Event::SecondFactorRefused { method: FactorKind::Email, reason: "locked", purpose: None },
                vec![
                    Tally::new(SECOND_FACTOR_CHECKS, &[("method", "email"), ("outcome", "locked")]),
                    Tally::new(LOCKOUTS, &[("lock", "second_factor")]),
                ],
            ),
            (
                Event::RecoveryCodeUsed { purpose: Purpose::SignIn },
                one(SECOND_FACTOR_CHECKS, &[("method", "recovery_code"), ("outcome", "accepted")]),
            ),
            (
                Event::FactorLocked { method: FactorKind::Authenticator, consecutive_failures: 100 },
                one(LOCKOUTS, &[("lock", "factor")]),
            ),
            (Event::BypassGranted { expires_at: "2027-01-01T00:00:00Z" }, one(BYPASSES, &[("stage", "granted")])),
            (Event::BypassUsed { then_setup: true }, one(BYPASSES, &[("stage", "used")])),
            (Event::MfaReset { identity_verified: Some("called back") }, one(RESETS, &[("what", "mfa")])),
            (Event::PasswordReset, one(RESETS, &[("what", "password")])),
            (Event::SecondFactorUnlocked, one(RESETS, &[("what", "unlock")])),
            (Event::SignedOut, vec![]),
        ];
        for (event, expected) in table {
            assert_eq!(of(event.clone()), expected, "{event:?}");
        }
    }

    #[test]
    fn values_outside_the_fixed_words_never_become_labels() {
        // A reason or method the trail might one day hold (or a tampered row) is
        // `other`, never the text itself.
        let t = tally("sign_in", "failure", r#"{"reason":"dr.lee@riverside.test","realm":"10.0.0.7"}"#);
        assert_eq!(t, one(SIGN_INS, &[("realm", "unknown"), ("outcome", "other")]));
        let t = tally("second_factor", "failure", r#"{"method":"0b5c…","reason":"x@y.test"}"#);
        assert_eq!(t, one(SECOND_FACTOR_CHECKS, &[("method", "other"), ("outcome", "other")]));
        assert_eq!(
            tally("sign_in", "success", "not json"),
            one(SIGN_INS, &[("realm", "unknown"), ("outcome", "success")])
        );
    }
}

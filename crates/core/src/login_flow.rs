//! The server-side state of one sign-in attempt and its transitions. The HTML pages
//! and the JSON API both drive the same flow through these functions.

use crate::account::{AccountStatus, Realm};
use crate::clock::UnixTime;
use crate::email::Email;

/// How long a started sign-in may take before it has to start over.
pub const FLOW_LIFETIME_SECS: i64 = 15 * 60;

/// Where a login flow stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum FlowStep {
    /// The email is known to the flow (not necessarily to us); the password is next.
    Password,
}

impl FlowStep {
    /// The name clients see as `next`.
    pub fn name(&self) -> &'static str {
        match self {
            FlowStep::Password => "password",
        }
    }
}

/// One sign-in attempt. Unknown emails get a flow too, so that the first step
/// answers the same whether or not an account exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFlow {
    pub realm: Realm,
    pub email: Email,
    pub step: FlowStep,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl LoginFlow {
    pub fn start(realm: Realm, email: Email, now: UnixTime) -> LoginFlow {
        LoginFlow {
            realm,
            email,
            step: FlowStep::Password,
            created_at: now,
            expires_at: now.plus_secs(FLOW_LIFETIME_SECS),
        }
    }

    pub fn is_expired(&self, now: UnixTime) -> bool {
        now >= self.expires_at
    }
}

/// What checking the password found. `NoSuchAccount` is only ever reported after a
/// dummy hash was verified, so it costs the same time as `Wrong`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Correct(AccountStatus),
    Wrong,
    NoSuchAccount,
}

/// Why a password step did not sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRejection {
    /// Unknown email, no password set yet, or wrong password: one answer for all.
    Incorrect,
    /// The password was right but the account is deactivated.
    Deactivated,
}

/// What comes after a password step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPassword {
    /// The sign-in is complete: create a session.
    SignIn,
    Rejected(PasswordRejection),
}

/// Decides the step after a password. A failure counts against the throttles only
/// when it is `Incorrect`.
pub fn after_password(check: PasswordCheck) -> AfterPassword {
    match check {
        PasswordCheck::Correct(AccountStatus::Active) => AfterPassword::SignIn,
        PasswordCheck::Correct(AccountStatus::Deactivated) => AfterPassword::Rejected(PasswordRejection::Deactivated),
        PasswordCheck::Wrong | PasswordCheck::NoSuchAccount => AfterPassword::Rejected(PasswordRejection::Incorrect),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_correct_password_on_an_active_account_signs_in() {
        let table = [
            (PasswordCheck::Correct(AccountStatus::Active), AfterPassword::SignIn),
            (
                PasswordCheck::Correct(AccountStatus::Deactivated),
                AfterPassword::Rejected(PasswordRejection::Deactivated),
            ),
            (PasswordCheck::Wrong, AfterPassword::Rejected(PasswordRejection::Incorrect)),
            (PasswordCheck::NoSuchAccount, AfterPassword::Rejected(PasswordRejection::Incorrect)),
        ];
        for (check, expected) in table {
            assert_eq!(after_password(check), expected, "{check:?}");
        }
    }

    #[test]
    fn flows_expire() {
        let email = Email::parse("a@b.co").expect("valid email");
        let f = LoginFlow::start(Realm::Staff, email, UnixTime(100));
        assert!(!f.is_expired(UnixTime(100 + FLOW_LIFETIME_SECS - 1)));
        assert!(f.is_expired(UnixTime(100 + FLOW_LIFETIME_SECS)));
        assert_eq!(f.step.name(), "password");
    }
}

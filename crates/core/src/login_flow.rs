//! The server-side state of one sign-in attempt and its transitions. The HTML pages
//! and the JSON API both drive the same flow through these functions.

use crate::account::{AccountStatus, Realm};
use crate::clock::UnixTime;
use crate::email::Email;
use crate::ids::AccountId;
use crate::policy::{FactorKind, MethodSet, Requirement};

/// How long a started sign-in may take before it has to start over.
pub const FLOW_LIFETIME_SECS: i64 = 15 * 60;

/// Wrong second-factor codes one sign-in attempt may make before it must start over
/// (the member's own lockout counts across attempts as well).
pub const MAX_CODE_ATTEMPTS_PER_FLOW: u32 = 5;

/// Where a login flow stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum FlowStep {
    /// The email is known to the flow (not necessarily to us); the password is next.
    Password,
    /// The password was right; a second factor is next. (Wrong answers are counted
    /// by the store, in one statement, before an answer is checked.)
    SecondFactor { account_id: AccountId, method: FactorKind },
    /// The password was right and MFA applies, but nothing is enrolled: setting up a
    /// factor is part of this sign-in, and no session exists before it completes.
    Enroll {
        account_id: AccountId,
        allowed: MethodSet,
        /// The method the member picked when more than one is allowed.
        #[serde(default)]
        chosen: Option<FactorKind>,
        /// The member proved a factor their organization no longer allows; the one
        /// set up now replaces it (and the old ones are removed).
        #[serde(default)]
        replacing: bool,
    },
}

impl FlowStep {
    /// The name clients see as `next`.
    pub fn name(&self) -> &'static str {
        match self {
            FlowStep::Password => "password",
            FlowStep::SecondFactor { .. } => "second_factor",
            FlowStep::Enroll { .. } => "enroll",
        }
    }

    pub fn account_id(&self) -> Option<AccountId> {
        match self {
            FlowStep::Password => None,
            FlowStep::SecondFactor { account_id, .. } | FlowStep::Enroll { account_id, .. } => Some(*account_id),
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
    /// The account's security stamp when the password was accepted (0 before).
    pub stamp: i64,
}

impl LoginFlow {
    pub fn start(realm: Realm, email: Email, now: UnixTime) -> LoginFlow {
        LoginFlow {
            realm,
            email,
            step: FlowStep::Password,
            created_at: now,
            expires_at: now.plus_secs(FLOW_LIFETIME_SECS),
            stamp: 0,
        }
    }

    /// Whether the flow may go on for an account whose security stamp is now
    /// `account_stamp`: any change to the account's password, factors, bypass, status
    /// or sessions since the password was accepted ends the sign-in.
    pub fn is_current_for(&self, account_stamp: i64) -> bool {
        self.stamp == account_stamp
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPassword {
    /// The sign-in is complete: create a session.
    SignIn,
    /// Ask for a second factor, starting with `method`.
    SecondFactor {
        method: FactorKind,
    },
    /// Set up a second factor first.
    Enroll {
        allowed: MethodSet,
    },
    Rejected(PasswordRejection),
}

/// Decides the step after a password, given what the policy requires of the account.
/// A failure counts against the throttles only when it is `Incorrect`.
pub fn after_password(check: PasswordCheck, requirement: &Requirement) -> AfterPassword {
    match check {
        PasswordCheck::Correct(AccountStatus::Active) => match requirement {
            Requirement::NoSecondFactor | Requirement::Bypass { then_enroll: None } => AfterPassword::SignIn,
            Requirement::Challenge { default, .. } => AfterPassword::SecondFactor { method: *default },
            Requirement::Enroll { allowed } | Requirement::Bypass { then_enroll: Some(allowed) } => {
                AfterPassword::Enroll { allowed: *allowed }
            }
        },
        PasswordCheck::Correct(AccountStatus::Deactivated) => AfterPassword::Rejected(PasswordRejection::Deactivated),
        PasswordCheck::Wrong | PasswordCheck::NoSuchAccount => AfterPassword::Rejected(PasswordRejection::Incorrect),
    }
}

/// The method setup goes on with: the one chosen, or the only one allowed.
pub fn enrollment_method(allowed: MethodSet, chosen: Option<FactorKind>) -> Option<FactorKind> {
    let allowed = allowed.first_factors();
    match chosen.filter(|c| allowed.contains(*c)) {
        Some(c) => Some(c),
        None => {
            let mut it = allowed.iter();
            match (it.next(), it.next()) {
                (Some(only), None) => Some(only),
                (None, _) => Some(FactorKind::Authenticator),
                _ => None,
            }
        }
    }
}

/// What a wrong second-factor code does to the flow: count it, or end the flow when
/// the attempts are used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterWrongCode {
    TryAgain { attempts_left: u32 },
    StartOver,
}

/// After a refused answer, given how many answers the flow has had counted
/// (including this one).
pub fn after_wrong_code(attempts: u32) -> AfterWrongCode {
    if attempts >= MAX_CODE_ATTEMPTS_PER_FLOW {
        AfterWrongCode::StartOver
    } else {
        AfterWrongCode::TryAgain { attempts_left: MAX_CODE_ATTEMPTS_PER_FLOW - attempts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_step_follows_the_requirement() {
        let auth = MethodSet::authenticator_only();
        let challenge =
            Requirement::Challenge { default: FactorKind::Authenticator, others: vec![FactorKind::RecoveryCode] };
        let active = PasswordCheck::Correct(AccountStatus::Active);
        let table = [
            (active, Requirement::NoSecondFactor, AfterPassword::SignIn),
            (active, challenge.clone(), AfterPassword::SecondFactor { method: FactorKind::Authenticator }),
            (active, Requirement::Enroll { allowed: auth }, AfterPassword::Enroll { allowed: auth }),
            (active, Requirement::Bypass { then_enroll: None }, AfterPassword::SignIn),
            (active, Requirement::Bypass { then_enroll: Some(auth) }, AfterPassword::Enroll { allowed: auth }),
            (
                PasswordCheck::Correct(AccountStatus::Deactivated),
                challenge.clone(),
                AfterPassword::Rejected(PasswordRejection::Deactivated),
            ),
            (PasswordCheck::Wrong, Requirement::NoSecondFactor, AfterPassword::Rejected(PasswordRejection::Incorrect)),
            (PasswordCheck::NoSuchAccount, challenge, AfterPassword::Rejected(PasswordRejection::Incorrect)),
        ];
        for (check, req, expected) in table {
            assert_eq!(after_password(check, &req), expected, "{check:?} {req:?}");
        }
    }

    #[test]
    fn wrong_codes_are_counted_until_the_flow_must_start_over() {
        for attempts in 1..MAX_CODE_ATTEMPTS_PER_FLOW {
            assert_eq!(
                after_wrong_code(attempts),
                AfterWrongCode::TryAgain { attempts_left: MAX_CODE_ATTEMPTS_PER_FLOW - attempts }
            );
        }
        assert_eq!(after_wrong_code(MAX_CODE_ATTEMPTS_PER_FLOW), AfterWrongCode::StartOver);
        assert_eq!(after_wrong_code(MAX_CODE_ATTEMPTS_PER_FLOW + 100), AfterWrongCode::StartOver);
    }

    #[test]
    fn a_flow_dies_when_the_account_stamp_moves_on() {
        let email = Email::parse("a@b.co").expect("valid email");
        let f = LoginFlow { stamp: 7, ..LoginFlow::start(Realm::Staff, email, UnixTime(100)) };
        assert!(f.is_current_for(7));
        assert!(!f.is_current_for(8));
    }

    #[test]
    fn setup_asks_for_a_choice_only_between_several_methods() {
        let both = MethodSet::parse("email,sms").expect("set");
        assert_eq!(enrollment_method(both, None), None, "ask: Emails or Texts?");
        assert_eq!(enrollment_method(both, Some(FactorKind::Sms)), Some(FactorKind::Sms));
        assert_eq!(enrollment_method(both, Some(FactorKind::Authenticator)), None, "not an allowed choice");
        assert_eq!(enrollment_method(MethodSet::only(FactorKind::Email), None), Some(FactorKind::Email));
        assert_eq!(enrollment_method(MethodSet::default(), None), Some(FactorKind::Authenticator));
    }

    #[test]
    fn steps_survive_storage_as_json() {
        let step = FlowStep::Enroll {
            account_id: AccountId::new_random(),
            allowed: MethodSet::authenticator_only(),
            chosen: Some(FactorKind::Sms),
            replacing: true,
        };
        let json = serde_json::to_string(&step).expect("serialize");
        assert_eq!(serde_json::from_str::<FlowStep>(&json).expect("deserialize"), step);
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

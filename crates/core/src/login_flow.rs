//! The server-side state of one sign-in attempt and its transitions. The HTML pages
//! and the JSON API both drive the same flow through these functions.

use crate::account::{AccountStatus, Realm};
use crate::clock::UnixTime;
use crate::email::Email;
use crate::ids::{AccountId, OrgId};
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
        /// The member signed in with an admin's one-time bypass, which removed their
        /// factors: setup says why it is shown.
        #[serde(default)]
        after_bypass: bool,
        /// The member is in their clinic's grace period: until then they may choose
        /// "Remind me later" and sign in without setting up.
        #[serde(default)]
        remind_until: Option<UnixTime>,
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
    /// The address the password was accepted from, for the "someone may know your
    /// password" notice when the sign-in is then abandoned.
    pub client_ip: Option<String>,
    /// The clinic whose sign-in page this started on (`/login?org=ID`), for its
    /// branding: a hint, which proves nothing and decides nothing else.
    pub org_hint: Option<OrgId>,
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
            client_ip: None,
            org_hint: None,
        }
    }

    /// The same flow, started on `org`'s sign-in page.
    pub fn with_org_hint(self, org: Option<OrgId>) -> LoginFlow {
        LoginFlow { org_hint: org, ..self }
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

    /// Whether this flow, found expired, was abandoned at the second factor: the
    /// password was right and no second factor followed.
    pub fn abandoned_at_second_factor(&self) -> Option<AccountId> {
        match self.step {
            FlowStep::SecondFactor { account_id, .. } => Some(account_id),
            _ => None,
        }
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
    /// Set up a second factor first (or, until `remind_until`, "Remind me later").
    Enroll {
        allowed: MethodSet,
        remind_until: Option<UnixTime>,
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
            Requirement::Enroll { allowed, remind_until } => {
                AfterPassword::Enroll { allowed: *allowed, remind_until: *remind_until }
            }
            Requirement::Bypass { then_enroll: Some(allowed) } => {
                AfterPassword::Enroll { allowed: *allowed, remind_until: None }
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

/// What the member asked of the setup page besides going on: to pick another method
/// ("Choose another method"), or to enter another phone number ("Use a different
/// number").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetupAsk {
    #[default]
    GoOn,
    ChooseAgain,
    NewPhone,
}

/// Where setting up a second factor stands, at sign-in and from the account page alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStage {
    /// Several methods are allowed and none is picked: ask which.
    Choose,
    /// Scan the QR code into an authenticator app and enter its code.
    Authenticator,
    /// Enter the mobile number the texts go to.
    Phone,
    /// Enter the code sent by email or text: `Code(Email)` also before the email is
    /// sent ("Send code"); `Code(Sms)` only once a text is out (before that, `Phone`).
    Code(FactorKind),
}

impl SetupStage {
    /// The name the setup page's template branches on.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupStage::Choose => "choose",
            SetupStage::Authenticator => "authenticator",
            SetupStage::Phone => "phone",
            SetupStage::Code(FactorKind::Sms) => "code_sms",
            SetupStage::Code(_) => "code",
        }
    }

    /// The channel whose code the page asks for, in the code stage.
    pub fn code_channel(self) -> Option<FactorKind> {
        match self {
            SetupStage::Code(channel) => Some(channel),
            _ => None,
        }
    }
}

/// Decides what the setup page shows. `allowed` are the methods the member may set up;
/// `chosen` the one they picked (the flow's record at sign-in; the account page's
/// `?method=`); `in_flight` the channel of a setup code already sent and still good.
/// The method is the chosen one, else the one a code is out for, else the only one
/// allowed; with none of those the member chooses.
pub fn setup_stage(
    allowed: MethodSet,
    chosen: Option<FactorKind>,
    in_flight: Option<FactorKind>,
    asked: SetupAsk,
) -> SetupStage {
    if asked == SetupAsk::ChooseAgain {
        return SetupStage::Choose;
    }
    let allowed = allowed.first_factors();
    let method = chosen.filter(|c| allowed.contains(*c)).or(in_flight).or_else(|| enrollment_method(allowed, None));
    match method {
        None => SetupStage::Choose,
        Some(FactorKind::Sms) if asked == SetupAsk::NewPhone => SetupStage::Phone,
        Some(channel @ (FactorKind::Email | FactorKind::Sms)) if in_flight == Some(channel) => {
            SetupStage::Code(channel)
        }
        Some(FactorKind::Sms) => SetupStage::Phone,
        Some(FactorKind::Email) => SetupStage::Code(FactorKind::Email),
        Some(_) => SetupStage::Authenticator,
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
            (
                active,
                Requirement::Enroll { allowed: auth, remind_until: None },
                AfterPassword::Enroll { allowed: auth, remind_until: None },
            ),
            (
                active,
                Requirement::Enroll { allowed: auth, remind_until: Some(UnixTime(9)) },
                AfterPassword::Enroll { allowed: auth, remind_until: Some(UnixTime(9)) },
            ),
            (active, Requirement::Bypass { then_enroll: None }, AfterPassword::SignIn),
            (
                active,
                Requirement::Bypass { then_enroll: Some(auth) },
                AfterPassword::Enroll { allowed: auth, remind_until: None },
            ),
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
    fn the_setup_stage_is_worked_out_from_the_choice_and_the_code_in_flight() {
        use FactorKind::{Authenticator as Auth, Email, Sms};
        use SetupAsk::{ChooseAgain, GoOn, NewPhone};
        use SetupStage::{Authenticator, Choose, Code, Phone};
        let set = |s: &str| MethodSet::parse(s).expect("set");
        let (texts_or_emails, all) = (set("email,sms"), set("authenticator,email,sms,passkey"));
        let table = [
            // Several methods and nothing picked: ask; a pick outside the set does not count.
            (texts_or_emails, None, None, GoOn, Choose),
            (all, Some(FactorKind::Passkey), None, GoOn, Choose),
            (texts_or_emails, Some(Auth), None, GoOn, Choose),
            // One method allowed (or none configured: an authenticator app) needs no choice.
            (MethodSet::authenticator_only(), None, None, GoOn, Authenticator),
            (MethodSet::default(), None, None, GoOn, Authenticator),
            (set("authenticator,passkey"), None, None, GoOn, Authenticator),
            (MethodSet::only(Email), None, None, GoOn, Code(Email)),
            (MethodSet::only(Sms), None, None, GoOn, Phone),
            // Emails: the code form, with "Send code" until one is out.
            (texts_or_emails, Some(Email), None, GoOn, Code(Email)),
            (texts_or_emails, Some(Email), Some(Email), GoOn, Code(Email)),
            // Texts: the number first, then the code.
            (texts_or_emails, Some(Sms), None, GoOn, Phone),
            (texts_or_emails, Some(Sms), Some(Sms), GoOn, Code(Sms)),
            (texts_or_emails, Some(Sms), Some(Sms), NewPhone, Phone),
            // A code out for another channel does not fill the chosen one's code form.
            (texts_or_emails, Some(Email), Some(Sms), GoOn, Code(Email)),
            (texts_or_emails, Some(Sms), Some(Email), GoOn, Phone),
            // Nothing picked but a code out: go on with that channel.
            (texts_or_emails, None, Some(Sms), GoOn, Code(Sms)),
            (texts_or_emails, None, Some(Email), GoOn, Code(Email)),
            // "Use a different number" only means something while setting up texts.
            (texts_or_emails, Some(Email), None, NewPhone, Code(Email)),
            (texts_or_emails, None, None, NewPhone, Choose),
            (MethodSet::authenticator_only(), None, None, NewPhone, Authenticator),
            (all, Some(Auth), None, GoOn, Authenticator),
            // "Choose another method" always asks again.
            (all, Some(Sms), Some(Sms), ChooseAgain, Choose),
            (MethodSet::only(Email), None, None, ChooseAgain, Choose),
        ];
        for (allowed, chosen, in_flight, asked, expected) in table {
            assert_eq!(
                setup_stage(allowed, chosen, in_flight, asked),
                expected,
                "{allowed} {chosen:?} {in_flight:?} {asked:?}"
            );
        }
    }

    #[test]
    fn the_setup_page_names_each_stage() {
        let names = [
            SetupStage::Choose,
            SetupStage::Authenticator,
            SetupStage::Phone,
            SetupStage::Code(FactorKind::Email),
            SetupStage::Code(FactorKind::Sms),
        ]
        .map(SetupStage::as_str);
        assert_eq!(names, ["choose", "authenticator", "phone", "code", "code_sms"]);
        assert_eq!(SetupStage::Code(FactorKind::Sms).code_channel(), Some(FactorKind::Sms));
        assert_eq!(SetupStage::Phone.code_channel(), None);
    }

    #[test]
    fn steps_survive_storage_as_json() {
        let step = FlowStep::Enroll {
            account_id: AccountId::new_random(),
            allowed: MethodSet::authenticator_only(),
            chosen: Some(FactorKind::Sms),
            replacing: true,
            after_bypass: true,
            remind_until: Some(UnixTime(1_800_000_000)),
        };
        let json = serde_json::to_string(&step).expect("serialize");
        assert_eq!(serde_json::from_str::<FlowStep>(&json).expect("deserialize"), step);
        // A flow stored before the grace period existed reads as no grace.
        let old = json.replace(",\"remind_until\":1800000000", "");
        assert!(!old.contains("remind_until"), "{old}");
        let FlowStep::Enroll { remind_until, .. } = serde_json::from_str::<FlowStep>(&old).expect("old") else {
            panic!("enroll")
        };
        assert_eq!(remind_until, None);
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

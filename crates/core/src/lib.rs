//! The rules of clinic-auth, as pure types and functions.
//!
//! Nothing in this crate does I/O: no clock reads, no sockets, no SQL. The edges
//! (store, web, cli) pass time in through [`clock::Clock`] and persist what the
//! functions here decide.

pub mod account;
pub mod answer;
pub mod audit;
pub mod branding;
pub mod clock;
pub mod email;
pub mod email_change;
pub mod ids;
pub mod login_flow;
pub mod oidc;
pub mod one_time_code;
pub mod passkey;
pub mod password;
pub mod permission;
pub mod phone;
pub mod policy;
pub mod recovery_code;
pub mod session;
pub mod throttle;
pub mod token;
pub mod totp;
pub mod user_agent;

pub use account::{AccountKind, AccountStatus, OrgKind, Realm, Role};
pub use answer::{AnswerError, FactorAnswer};
pub use clock::{Clock, ManualClock, UnixTime};
pub use email::Email;
pub use ids::{AccountId, OrgId};
pub use login_flow::{FlowStep, LoginFlow};
pub use one_time_code::{CodeChallenge, OneTimeCode};
pub use password::{NewPassword, Password, PasswordPolicy};
pub use phone::UsPhone;
pub use policy::{FactorKind, MemberOverride, MethodSet, MfaMode, OrgMfa, Requirement};
pub use recovery_code::RecoveryCode;
pub use session::{Purpose, SessionTimeouts};
pub use throttle::{ThrottleRule, ThrottleState};
pub use token::{SecretToken, TokenHash};
pub use totp::{TotpCode, TotpSecret};

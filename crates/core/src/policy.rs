//! Who must use a second factor at sign-in, and which one they are asked for:
//! the rules of DESIGN.md ("Rules of the domain") as one pure function,
//! [`requirement`].

use std::fmt;
use std::str::FromStr;

use crate::account::{OrgKind, ParseEnumError, string_enum};
use crate::clock::UnixTime;

string_enum!(
    /// An organization's MFA setting. `required` is shown as "Mandatory 2FA".
    MfaMode, "MFA mode", { Off => "off", Optional => "optional", Required => "required" }
);

string_enum!(
    /// Per member: follow the organization, or require / exempt this one member.
    MemberOverride, "member override", {
        ClinicDefault => "clinic_default", Required => "required", NotRequired => "not_required"
    }
);

string_enum!(
    /// A second way to prove identity.
    FactorKind, "factor", {
        Authenticator => "authenticator", Email => "email", Sms => "sms", Passkey => "passkey",
        RecoveryCode => "recovery_code"
    }
);

/// The factors an organization can allow members to enroll, in display order.
/// Recovery codes are not among them: every member who enrolls gets one.
const ENROLLABLE: [FactorKind; 4] =
    [FactorKind::Authenticator, FactorKind::Email, FactorKind::Sms, FactorKind::Passkey];

/// The order factors are listed in at a challenge ("Try another method"), and the
/// default when neither a trusted device nor a preference decides; the recovery
/// code, a last resort that rotates on use, comes last.
const CHALLENGE_ORDER: [FactorKind; 5] =
    [FactorKind::Authenticator, FactorKind::Passkey, FactorKind::Sms, FactorKind::Email, FactorKind::RecoveryCode];

const fn bit(kind: FactorKind) -> u8 {
    match kind {
        FactorKind::Authenticator => 1,
        FactorKind::Email => 2,
        FactorKind::Sms => 4,
        FactorKind::Passkey => 8,
        FactorKind::RecoveryCode => 0,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{name}\" is not a method an organization can allow; choose from authenticator, email, sms, passkey.")]
pub struct MethodSetError {
    pub name: String,
}

/// A set of enrollable factor kinds (an organization's allowed methods). Stored and
/// sent as its canonical comma list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MethodSet(u8);

impl From<MethodSet> for String {
    fn from(m: MethodSet) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for MethodSet {
    type Error = MethodSetError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        MethodSet::parse(&s)
    }
}

impl MethodSet {
    /// Reads a comma-separated list such as `"authenticator, email"`. Spaces,
    /// letter case, repeats and empty items are tolerated; the empty string is the
    /// empty set. An unknown name or `recovery_code` is an error naming it.
    pub fn parse(input: &str) -> Result<MethodSet, MethodSetError> {
        let mut bits = 0;
        for item in input.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = item.to_ascii_lowercase().parse::<FactorKind>().ok().filter(|k| bit(*k) != 0);
            let Some(kind) = kind else { return Err(MethodSetError { name: item.to_owned() }) };
            bits |= bit(kind);
        }
        Ok(MethodSet(bits))
    }

    /// The set of one kind. `only(RecoveryCode)` is the empty set, since recovery
    /// codes cannot be allowed or refused.
    pub fn only(kind: FactorKind) -> MethodSet {
        MethodSet(bit(kind))
    }

    /// The fallback when nothing else is configured: every authenticator app works
    /// offline and costs nothing to send.
    pub fn authenticator_only() -> MethodSet {
        MethodSet::only(FactorKind::Authenticator)
    }

    /// What a new organization, a patient or a platform admin may use: an
    /// authenticator app, and a passkey on devices they choose to trust.
    pub fn standard() -> MethodSet {
        MethodSet(bit(FactorKind::Authenticator) | bit(FactorKind::Passkey))
    }

    /// The methods a member can set up as their first factor. A passkey is made
    /// after setup, when the member trusts the device ("Trust this device?"), so it
    /// is never the first factor.
    pub fn first_factors(self) -> MethodSet {
        MethodSet(self.0 & !bit(FactorKind::Passkey))
    }

    pub fn contains(self, kind: FactorKind) -> bool {
        bit(kind) != 0 && self.0 & bit(kind) != 0
    }

    /// This set after a form that showed a box for each of `shown` came back with
    /// `chosen` ticked: the shown methods become what was ticked, and a method the form
    /// did not show is kept as it was (an older form must not turn passkeys off).
    pub fn with_shown(self, shown: MethodSet, chosen: MethodSet) -> MethodSet {
        MethodSet((self.0 & !shown.0) | (chosen.0 & shown.0))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set in the order authenticator, email, sms, passkey.
    pub fn iter(self) -> impl Iterator<Item = FactorKind> {
        ENROLLABLE.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromStr for MethodSet {
    type Err = MethodSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MethodSet::parse(s)
    }
}

/// The canonical form, e.g. `authenticator,email`; it parses back to the same set.
impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, kind) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(kind.as_str())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("Mandatory 2FA is for clinic organizations; solo providers turn 2FA on for themselves.")]
    RequiredNeedsClinic,
    #[error(
        "Choose at least one two-factor method your members can set up first (passkeys are added afterwards, on trusted devices)."
    )]
    NoMethods,
}

/// Seconds in a day, for grace periods.
const DAY_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Enter a grace period of 0 to 30 days (a whole number).")]
pub struct GraceDaysError;

/// How many days members of a clinic may put off setting up two-factor
/// authentication ("Remind me later") after Mandatory 2FA is turned on, or after they
/// join: 0 (setup is forced at once, the default) to 30. Cannot hold more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GraceDays(u8);

impl GraceDays {
    pub const MAX: u8 = 30;
    /// No grace: setup is forced at the first sign-in.
    pub const NONE: GraceDays = GraceDays(0);

    pub fn new(days: i64) -> Result<GraceDays, GraceDaysError> {
        u8::try_from(days).ok().filter(|d| *d <= Self::MAX).map(GraceDays).ok_or(GraceDaysError)
    }

    /// Reads a whole number of days as typed into a form ("7", " 0 "). Anything else,
    /// or more than 30, is an error.
    pub fn parse(input: &str) -> Result<GraceDays, GraceDaysError> {
        let t = input.trim();
        if t.is_empty() || t.len() > 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GraceDaysError);
        }
        GraceDays::new(t.parse::<i64>().map_err(|_| GraceDaysError)?)
    }

    pub fn get(self) -> u8 {
        self.0
    }

    pub fn secs(self) -> i64 {
        i64::from(self.0) * DAY_SECS
    }
}

impl fmt::Display for GraceDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An organization's MFA settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgMfa {
    /// Set by platform support; until then the organization's mode has no effect.
    pub enabled: bool,
    /// Chosen by the organization's admins.
    pub mode: MfaMode,
    /// Chosen by the organization's admins.
    pub methods: MethodSet,
    /// Chosen by the organization's admins: days members may postpone setup under
    /// Mandatory 2FA.
    pub grace_days: GraceDays,
    /// When Mandatory 2FA came into force (enabled and mode `required`); `None` while
    /// it is not. Set and cleared only by [`OrgMfa::apply`], never by a save that
    /// leaves Mandatory 2FA as it was.
    pub required_since: Option<UnixTime>,
}

/// A new organization: MFA not yet enabled by support, authenticator apps allowed.
impl Default for OrgMfa {
    fn default() -> Self {
        OrgMfa {
            enabled: false,
            mode: MfaMode::Off,
            methods: MethodSet::standard(),
            grace_days: GraceDays::NONE,
            required_since: None,
        }
    }
}

/// A change to an organization's MFA settings; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrgMfaChange {
    /// Platform support's switch.
    pub enabled: Option<bool>,
    /// The organization's owners' and admins' choices.
    pub mode: Option<MfaMode>,
    pub methods: Option<MethodSet>,
    pub grace_days: Option<GraceDays>,
}

impl OrgMfaChange {
    pub fn is_empty(&self) -> bool {
        self.enabled.is_none() && self.mode.is_none() && self.methods.is_none() && self.grace_days.is_none()
    }
}

/// Why a change to an organization's MFA settings was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgMfaChangeError {
    #[error("Say what to change: enabled, mode, methods or grace_days.")]
    NothingToChange,
    #[error("MFA is not enabled for this organization yet. Ask platform support to enable it.")]
    NotEnabled,
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

impl OrgMfa {
    /// The settings after `change` at `now`, for an organization of `org_kind`. While
    /// support has not enabled MFA, admins cannot switch a mode on (methods may be
    /// prepared). `required_since` becomes `now` when Mandatory 2FA comes into force,
    /// stays as it was while it stays in force, and is cleared when it stops.
    pub fn apply(&self, org_kind: OrgKind, change: &OrgMfaChange, now: UnixTime) -> Result<OrgMfa, OrgMfaChangeError> {
        if change.is_empty() {
            return Err(OrgMfaChangeError::NothingToChange);
        }
        let mut next = OrgMfa {
            enabled: change.enabled.unwrap_or(self.enabled),
            mode: change.mode.unwrap_or(self.mode),
            methods: change.methods.unwrap_or(self.methods),
            grace_days: change.grace_days.unwrap_or(self.grace_days),
            required_since: None,
        };
        next.required_since = match (self.mandatory_in_force(), next.mandatory_in_force()) {
            // A row from before the time was recorded starts counting now.
            (true, true) => self.required_since.or(Some(now)),
            (false, true) => Some(now),
            (_, false) => None,
        };
        if !next.enabled && change.mode.is_some_and(|m| m != MfaMode::Off) {
            return Err(OrgMfaChangeError::NotEnabled);
        }
        OrgMfa::check(org_kind, next.mode, next.methods)?;
        Ok(next)
    }

    /// Mandatory 2FA is in force: support enabled MFA and the admins chose `required`.
    pub fn mandatory_in_force(&self) -> bool {
        self.enabled && self.mode == MfaMode::Required
    }

    /// Whether admins of an organization of `org_kind` may save `mode` and `methods`.
    pub fn check(org_kind: OrgKind, mode: MfaMode, methods: MethodSet) -> Result<(), PolicyError> {
        if mode == MfaMode::Required && org_kind != OrgKind::Clinic {
            return Err(PolicyError::RequiredNeedsClinic);
        }
        if mode != MfaMode::Off && methods.first_factors().is_empty() {
            return Err(PolicyError::NoMethods);
        }
        Ok(())
    }
}

/// Everything the rules need to know about one account signing in.
#[derive(Debug, Clone, Copy)]
pub struct MemberContext<'a> {
    pub org_kind: Option<OrgKind>,
    /// `None` for patients and platform admins: no organization policy applies,
    /// though they may still have factors of their own.
    pub org: Option<&'a OrgMfa>,
    pub override_: MemberOverride,
    pub enrolled: &'a [FactorKind],
    pub preferred: Option<FactorKind>,
    /// This browser was trusted by the member (it holds their passkey).
    pub trusted_device: bool,
    /// An unexpired one-time bypass granted by an admin is pending.
    pub bypass_valid: bool,
    /// A platform admin: support staff who can reset anyone's second factor, so they
    /// always need one of their own.
    pub platform_admin: bool,
    /// When the member joined the organization (accepted the invitation, or the
    /// account was created with a password): their grace period counts from here when
    /// that is later than the start of Mandatory 2FA.
    pub joined: UnixTime,
    pub now: UnixTime,
}

/// What sign-in asks for after the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The password was enough.
    NoSecondFactor,
    /// Ask for `default`; "Try another method" lists `others`.
    Challenge { default: FactorKind, others: Vec<FactorKind> },
    /// MFA applies but nothing is enrolled: enrollment with one of `allowed`
    /// completes before any session exists, unless `remind_until` is set: the
    /// member is in their clinic's grace period and may choose "Remind me later"
    /// (and sign in with the password alone) until then.
    Enroll { allowed: MethodSet, remind_until: Option<UnixTime> },
    /// Sign in once without a second factor. Using the bypass clears the member's
    /// factors, so when MFA applies they enroll (`then_enroll`) before the session.
    Bypass { then_enroll: Option<MethodSet> },
}

/// Whether this member must have a second factor (DESIGN rules 2 and 3; platform
/// admins always).
pub fn mfa_applies(ctx: &MemberContext<'_>) -> bool {
    if ctx.platform_admin {
        return true;
    }
    match ctx.override_ {
        MemberOverride::Required => true,
        MemberOverride::NotRequired => false,
        MemberOverride::ClinicDefault => {
            ctx.org_kind == Some(OrgKind::Clinic) && ctx.org.is_some_and(|o| o.enabled && o.mode == MfaMode::Required)
        }
    }
}

/// What a member in this context may enroll as a first factor.
fn allowed_for(ctx: &MemberContext<'_>) -> MethodSet {
    allowed_methods(ctx.org).first_factors()
}

/// The second-factor requirement at sign-in, by DESIGN.md's rules in order.
pub fn requirement(ctx: &MemberContext<'_>) -> Requirement {
    // Rule 1: a valid bypass wins over everything, factors included.
    if ctx.bypass_valid {
        return Requirement::Bypass { then_enroll: mfa_applies(ctx).then(|| allowed_for(ctx)) };
    }
    // Rule 4: whoever has a factor is challenged, whatever the policy (with the
    // factors sign-in may use: see `sign_in_factors`).
    let enrolled = sign_in_factors(ctx);
    if let Some(&first) = enrolled.first() {
        let has = |k: FactorKind| enrolled.contains(&k);
        let default = if ctx.trusted_device && has(FactorKind::Passkey) {
            FactorKind::Passkey
        } else if let Some(p) = ctx.preferred.filter(|&p| p != FactorKind::RecoveryCode && has(p)) {
            p
        } else {
            // CHALLENGE_ORDER puts the recovery code last, so it is the default only
            // when it is the only factor.
            first
        };
        let others = enrolled.into_iter().filter(|&k| k != default).collect();
        return Requirement::Challenge { default, others };
    }
    // Rule 5: MFA applies and nothing is enrolled (in the clinic's grace period,
    // setup may wait).
    if mfa_applies(ctx) {
        let remind_until = setup_deadline(ctx).filter(|deadline| ctx.now < *deadline);
        return Requirement::Enroll { allowed: allowed_for(ctx), remind_until };
    }
    Requirement::NoSecondFactor
}

/// When a member without a second factor must have set one up, if their clinic's
/// grace period applies to them at all. It applies only where the clinic's Mandatory
/// 2FA is why MFA applies (member setting Clinic default) and the grace period is
/// at least a day; a member set to Required, a platform admin, and a sign-in with a
/// one-time bypass are never given one.
pub fn setup_deadline(ctx: &MemberContext<'_>) -> Option<UnixTime> {
    let org = ctx.org?;
    let by_clinic = !ctx.platform_admin
        && ctx.override_ == MemberOverride::ClinicDefault
        && ctx.org_kind == Some(OrgKind::Clinic)
        && org.mandatory_in_force();
    (by_clinic && org.grace_days != GraceDays::NONE).then(|| grace_deadline(org, ctx.joined))
}

/// The end of a member's grace period: `grace_days` after Mandatory 2FA came into
/// force or after the member joined, whichever is later.
pub fn grace_deadline(org: &OrgMfa, joined: UnixTime) -> UnixTime {
    let start = org.required_since.map_or(joined, |since| since.max(joined));
    start.plus_secs(org.grace_days.secs())
}

/// Whole days left until `deadline`, to the nearest day; 0 in the last 24 hours (and
/// after).
pub fn days_left(now: UnixTime, deadline: UnixTime) -> u32 {
    let secs = now.secs_until(deadline);
    if secs < DAY_SECS { 0 } else { u32::try_from((secs + DAY_SECS / 2) / DAY_SECS).unwrap_or(u32::MAX) }
}

/// The time left until `deadline` in words: "7 days", "1 day", "less than a day".
pub fn describe_days_left(now: UnixTime, deadline: UnixTime) -> String {
    match days_left(now, deadline) {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

/// The organization's allowed methods when they bind the factors a member already
/// has: members of an organization with MFA enabled. (Patients and platform admins
/// have no organization policy here.)
fn methods_in_force(ctx: &MemberContext<'_>) -> Option<MethodSet> {
    ctx.org.filter(|o| o.enabled).map(|o| o.methods)
}

/// The member's second factors that the organization no longer allows (say texts,
/// after the clinic switched to authenticator apps only). The recovery code is
/// never among them.
pub fn outside_allowed(ctx: &MemberContext<'_>) -> Vec<FactorKind> {
    match methods_in_force(ctx) {
        Some(allowed) => CHALLENGE_ORDER
            .into_iter()
            .filter(|k| *k != FactorKind::RecoveryCode && ctx.enrolled.contains(k) && !allowed.contains(*k))
            .collect(),
        None => Vec::new(),
    }
}

/// The factors a sign-in may ask for, in challenge order. A factor the organization
/// no longer allows is not offered once the member has an allowed one; while it is
/// all they have (besides the recovery code), it is offered once more, so that they
/// can prove who they are and move to an allowed method (`must_replace`).
pub fn sign_in_factors(ctx: &MemberContext<'_>) -> Vec<FactorKind> {
    let enrolled: Vec<FactorKind> = CHALLENGE_ORDER.into_iter().filter(|k| ctx.enrolled.contains(k)).collect();
    let outside = outside_allowed(ctx);
    let has_allowed_first = enrolled.iter().any(|k| *k != FactorKind::RecoveryCode && !outside.contains(k));
    if has_allowed_first { enrolled.into_iter().filter(|k| !outside.contains(k)).collect() } else { enrolled }
}

/// When every second factor the member has (the recovery code aside) is one the
/// organization no longer allows: after proving one of them, they set up one of these
/// allowed methods before any session exists, and the old ones are removed.
pub fn must_replace(ctx: &MemberContext<'_>) -> Option<MethodSet> {
    let outside = outside_allowed(ctx);
    let first_factors = ctx.enrolled.iter().filter(|k| **k != FactorKind::RecoveryCode).count();
    (!outside.is_empty() && outside.len() == first_factors && !ctx.bypass_valid).then(|| allowed_for(ctx))
}

/// Whether the member may turn 2FA on for themselves: always when it applies to
/// them; patients and platform admins always; members when their organization has
/// MFA enabled and not switched off.
pub fn may_opt_in(ctx: &MemberContext<'_>) -> bool {
    mfa_applies(ctx)
        || match ctx.org {
            None => true,
            Some(org) => org.enabled && matches!(org.mode, MfaMode::Optional | MfaMode::Required),
        }
}

/// The methods an account may set up: its organization's allowed methods when the
/// organization has MFA on (and allows any); authenticator apps otherwise.
pub fn allowed_methods(org: Option<&OrgMfa>) -> MethodSet {
    match org {
        Some(o) if o.enabled && !o.methods.first_factors().is_empty() => o.methods,
        _ => MethodSet::standard(),
    }
}

/// Every method a sign-in can use: the enrolled ones, plus the account's registered
/// email when email codes are allowed ("You will receive the one-time code in your
/// account's registered email"). The email fallback only joins existing factors; it
/// never makes a second factor required.
pub fn available_methods(enrolled: &[FactorKind], allowed: MethodSet) -> Vec<FactorKind> {
    let mut kinds = enrolled.to_vec();
    if !kinds.is_empty() && !kinds.contains(&FactorKind::Email) && allowed.contains(FactorKind::Email) {
        let at = kinds.iter().position(|k| *k == FactorKind::RecoveryCode).unwrap_or(kinds.len());
        kinds.insert(at, FactorKind::Email);
    }
    kinds
}

/// Whether "Trust this device?" is offered: passkeys are allowed, and the member
/// already has another factor to fall back on when the device is lost.
pub fn may_trust_device(enrolled: &[FactorKind], allowed: MethodSet) -> bool {
    allowed.contains(FactorKind::Passkey)
        && enrolled.iter().any(|k| matches!(k, FactorKind::Authenticator | FactorKind::Email | FactorKind::Sms))
}

/// Whether the member may remove their last factor: not while MFA applies to them.
pub fn may_turn_off(ctx: &MemberContext<'_>) -> bool {
    !mfa_applies(ctx)
}

/// How long a one-time bypass stays usable when nobody configured otherwise.
pub const BYPASS_DEFAULT_SECS: i64 = 24 * 3600;

/// Whether a one-time bypass that expires at `expires_at` can still be used.
pub fn bypass_valid(expires_at: Option<crate::clock::UnixTime>, now: crate::clock::UnixTime) -> bool {
    expires_at.is_some_and(|t| now < t)
}

/// What members of an organization will experience under `mfa`, for the Edit Clinic
/// page: one sentence per fact, in the order people read them.
pub fn describe_for_members(org_kind: OrgKind, mfa: &OrgMfa) -> Vec<String> {
    let methods: Vec<&str> = mfa
        .methods
        .iter()
        .map(|k| match k {
            FactorKind::Authenticator => "an authenticator app",
            FactorKind::Email => "codes by email",
            FactorKind::Sms => "codes by text message",
            FactorKind::Passkey => "passkeys",
            FactorKind::RecoveryCode => "recovery codes",
        })
        .collect();
    let list = methods.join(", ");
    let mut out = Vec::new();
    if !mfa.enabled {
        out.push("Two-factor authentication has not been enabled for this organization by platform support yet: members sign in with their password, unless they are set to Required or already use a second factor.".to_owned());
        return out;
    }
    match mfa.mode {
        MfaMode::Off => out.push(
            "Nobody is asked to set up two-factor authentication. Members who already set it up keep using it."
                .to_owned(),
        ),
        MfaMode::Optional => out.push(format!(
            "Members may turn on two-factor authentication from their account page, using {list}. Nobody is forced to."
        )),
        MfaMode::Required if org_kind == OrgKind::Clinic && mfa.grace_days != GraceDays::NONE => {
            let days = match mfa.grace_days.get() {
                1 => "1 day".to_owned(),
                n => format!("{n} days"),
            };
            out.push(format!(
                "Mandatory 2FA with a grace period of {days}: members without a second factor are offered setup ({list}) at each sign-in and may choose \"Remind me later\" for {days} after Mandatory 2FA was turned on, or after they join if that is later. After that, setup is required before they can use the application."
            ))
        }
        MfaMode::Required if org_kind == OrgKind::Clinic => out.push(format!(
            "Mandatory 2FA: every member without a second factor sets one up ({list}) at their next sign-in, before they can use the application."
        )),
        MfaMode::Required => out.push("Mandatory 2FA is only for clinics; solo providers opt in themselves.".to_owned()),
    }
    out.push("Members set to Required always need a second factor; members set to Not required are never forced to set one up.".to_owned());
    out.push("Whoever has a second factor is always asked for it when signing in.".to_owned());
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_form_changes_only_the_methods_it_showed() {
        let set = |s: &str| MethodSet::parse(s).unwrap();
        let legacy = set("authenticator,email,sms");
        let all = set("authenticator,email,sms,passkey");
        let table = [
            // (current, shown, ticked, after)
            ("authenticator,passkey", legacy, "authenticator", "authenticator,passkey"),
            ("authenticator,passkey", legacy, "authenticator,sms", "authenticator,sms,passkey"),
            ("authenticator,passkey", all, "authenticator,passkey", "authenticator,passkey"),
            ("authenticator,passkey", all, "authenticator", "authenticator"),
            ("email", all, "", ""),
            ("email,passkey", set(""), "authenticator", "email,passkey"),
        ];
        for (current, shown, ticked, after) in table {
            assert_eq!(set(current).with_shown(shown, set(ticked)), set(after), "{current} {shown} {ticked}");
        }
    }

    #[test]
    fn org_mfa_changes_merge_and_are_checked() {
        let off = OrgMfa::default();
        let enable = OrgMfaChange { enabled: Some(true), ..Default::default() };
        let required = OrgMfaChange { mode: Some(MfaMode::Required), ..Default::default() };
        assert_eq!(
            off.apply(OrgKind::Clinic, &OrgMfaChange::default(), UnixTime(0)),
            Err(OrgMfaChangeError::NothingToChange)
        );
        assert_eq!(off.apply(OrgKind::Clinic, &required, UnixTime(0)), Err(OrgMfaChangeError::NotEnabled));
        let on = off.apply(OrgKind::Clinic, &enable, UnixTime(0)).unwrap();
        assert_eq!(on, OrgMfa { enabled: true, ..off });
        let mandatory = on.apply(OrgKind::Clinic, &required, UnixTime(0)).unwrap();
        assert_eq!((mandatory.enabled, mandatory.mode, mandatory.methods), (true, MfaMode::Required, off.methods));
        assert_eq!(
            on.apply(OrgKind::Solo, &required, UnixTime(0)),
            Err(OrgMfaChangeError::Invalid(PolicyError::RequiredNeedsClinic))
        );
        // Turning a mode off needs no enabling first.
        let off_mode = OrgMfaChange { mode: Some(MfaMode::Off), ..Default::default() };
        assert_eq!(off.apply(OrgKind::Clinic, &off_mode, UnixTime(0)).map(|m| m.mode), Ok(MfaMode::Off));
    }

    use super::*;
    use FactorKind::*;

    fn member<'a>(org_kind: OrgKind, org: &'a OrgMfa, enrolled: &'a [FactorKind]) -> MemberContext<'a> {
        MemberContext {
            org_kind: Some(org_kind),
            org: Some(org),
            override_: MemberOverride::ClinicDefault,
            enrolled,
            preferred: None,
            trusted_device: false,
            bypass_valid: false,
            platform_admin: false,
            joined: UnixTime(0),
            now: UnixTime(0),
        }
    }

    fn set(s: &str) -> MethodSet {
        MethodSet::parse(s).unwrap()
    }

    const REQUIRED_CLINIC: OrgMfa = OrgMfa {
        enabled: true,
        mode: MfaMode::Required,
        methods: MethodSet(bit(Email) | bit(Sms)),
        grace_days: GraceDays(0),
        required_since: None,
    };

    /// A method the clinic removed: offered only while it is all the member has, and
    /// then only to move to an allowed one.
    #[test]
    fn factors_outside_the_allowed_methods_are_only_a_way_to_move() {
        let app_only =
            OrgMfa { enabled: true, mode: MfaMode::Required, methods: set("authenticator"), ..OrgMfa::default() };
        // enrolled, outside, offered at sign-in, must replace
        type Row = (&'static [FactorKind], &'static [FactorKind], &'static [FactorKind], bool);
        let table: [Row; 6] = [
            (&[Sms, RecoveryCode], &[Sms], &[Sms, RecoveryCode], true),
            (&[Authenticator, Sms, RecoveryCode], &[Sms], &[Authenticator, RecoveryCode], false),
            (&[Authenticator, RecoveryCode], &[], &[Authenticator, RecoveryCode], false),
            (&[Passkey, Email, RecoveryCode], &[Passkey, Email], &[Passkey, Email, RecoveryCode], true),
            (&[Authenticator, Passkey, RecoveryCode], &[Passkey], &[Authenticator, RecoveryCode], false),
            (&[RecoveryCode], &[], &[RecoveryCode], false),
        ];
        for (enrolled, outside, offered, replace) in table {
            let ctx = member(OrgKind::Clinic, &app_only, enrolled);
            assert_eq!(outside_allowed(&ctx), outside, "{enrolled:?}");
            assert_eq!(sign_in_factors(&ctx), offered, "{enrolled:?}");
            assert_eq!(must_replace(&ctx), replace.then(|| set("authenticator")), "{enrolled:?}");
        }
        // No organization policy in force (MFA not enabled, patients): nothing is outside.
        let disabled = OrgMfa { enabled: false, ..app_only };
        assert!(outside_allowed(&member(OrgKind::Clinic, &disabled, &[Sms])).is_empty());
        let patient = MemberContext { org: None, org_kind: None, ..member(OrgKind::Clinic, &app_only, &[Sms]) };
        assert_eq!(must_replace(&patient), None);
        // A pending bypass wins: it clears every factor anyway.
        let bypass = MemberContext { bypass_valid: true, ..member(OrgKind::Clinic, &app_only, &[Sms]) };
        assert_eq!(must_replace(&bypass), None);
        // The challenge itself follows the offered factors.
        let ctx = member(OrgKind::Clinic, &app_only, &[Authenticator, Sms, RecoveryCode]);
        let preferring_sms = MemberContext { preferred: Some(Sms), ..ctx };
        assert_eq!(
            requirement(&preferring_sms),
            Requirement::Challenge { default: Authenticator, others: vec![RecoveryCode] }
        );
    }

    /// Every combination, against the rules written out plainly.
    #[test]
    fn every_combination_follows_the_rules() {
        let enrolled_cases: [&[FactorKind]; 3] = [&[], &[Authenticator], &[Authenticator, RecoveryCode]];
        let mut cases = 0;
        for org_kind in [OrgKind::Clinic, OrgKind::Solo] {
            for enabled in [false, true] {
                for mode in [MfaMode::Off, MfaMode::Optional, MfaMode::Required] {
                    for has_methods in [false, true] {
                        let methods = if has_methods { set("email,sms") } else { MethodSet::default() };
                        let org = OrgMfa { enabled, mode, methods, ..OrgMfa::default() };
                        for override_ in
                            [MemberOverride::ClinicDefault, MemberOverride::Required, MemberOverride::NotRequired]
                        {
                            for enrolled in enrolled_cases {
                                for bypass_valid in [false, true] {
                                    let ctx =
                                        MemberContext { override_, bypass_valid, ..member(org_kind, &org, enrolled) };

                                    // Rules 2 and 3.
                                    let applies = match override_ {
                                        MemberOverride::Required => true,
                                        MemberOverride::NotRequired => false,
                                        MemberOverride::ClinicDefault => {
                                            org_kind == OrgKind::Clinic && enabled && mode == MfaMode::Required
                                        }
                                    };
                                    let allowed =
                                        if enabled && has_methods { set("email,sms") } else { set("authenticator") };
                                    let expected = if bypass_valid {
                                        // Rule 1.
                                        Requirement::Bypass { then_enroll: if applies { Some(allowed) } else { None } }
                                    } else if enrolled.is_empty() {
                                        // Rule 5, or nothing to do.
                                        if applies {
                                            Requirement::Enroll { allowed, remind_until: None }
                                        } else {
                                            Requirement::NoSecondFactor
                                        }
                                    } else if enrolled.len() == 1 {
                                        // Rule 4.
                                        Requirement::Challenge { default: Authenticator, others: vec![] }
                                    } else {
                                        Requirement::Challenge { default: Authenticator, others: vec![RecoveryCode] }
                                    };

                                    let why = format!(
                                        "{org_kind} enabled={enabled} {mode} methods={methods} {override_} {enrolled:?} bypass={bypass_valid}"
                                    );
                                    assert_eq!(requirement(&ctx), expected, "{why}");
                                    assert_eq!(mfa_applies(&ctx), applies, "{why}");
                                    assert_eq!(may_turn_off(&ctx), !applies, "{why}");
                                    let opt_in = applies || (enabled && mode != MfaMode::Off);
                                    assert_eq!(may_opt_in(&ctx), opt_in, "{why}");
                                    cases += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 2 * 2 * 3 * 2 * 3 * 3 * 2);
    }

    #[test]
    fn patients_and_platform_admins_have_no_org_policy() {
        let base = MemberContext {
            org_kind: None,
            org: None,
            override_: MemberOverride::ClinicDefault,
            enrolled: &[],
            preferred: None,
            trusted_device: false,
            bypass_valid: false,
            platform_admin: false,
            joined: UnixTime(0),
            now: UnixTime(0),
        };
        assert_eq!(requirement(&base), Requirement::NoSecondFactor);
        assert!(may_opt_in(&base));
        assert!(may_turn_off(&base));
        let with_factor = MemberContext { enrolled: &[Email], ..base };
        assert_eq!(requirement(&with_factor), Requirement::Challenge { default: Email, others: vec![] });
        let required = MemberContext { override_: MemberOverride::Required, ..base };
        assert_eq!(
            requirement(&required),
            Requirement::Enroll { allowed: MethodSet::authenticator_only(), remind_until: None }
        );
        assert!(!may_turn_off(&required));
    }

    #[test]
    fn platform_admins_always_need_a_second_factor() {
        let support = MemberContext {
            org_kind: None,
            org: None,
            override_: MemberOverride::NotRequired,
            enrolled: &[],
            preferred: None,
            trusted_device: false,
            bypass_valid: false,
            platform_admin: true,
            joined: UnixTime(0),
            now: UnixTime(0),
        };
        assert!(mfa_applies(&support), "no override exempts support staff");
        assert_eq!(
            requirement(&support),
            Requirement::Enroll { allowed: MethodSet::authenticator_only(), remind_until: None }
        );
        assert!(!may_turn_off(&support));
        let enrolled = MemberContext { enrolled: &[Authenticator, RecoveryCode], ..support };
        assert!(matches!(requirement(&enrolled), Requirement::Challenge { default: Authenticator, .. }));
    }

    #[test]
    fn org_kind_matters_only_for_the_clinic_default() {
        // A solo organization with (invalid) stored mode `required` does not force MFA.
        let ctx = member(OrgKind::Solo, &REQUIRED_CLINIC, &[]);
        assert_eq!(requirement(&ctx), Requirement::NoSecondFactor);
        let ctx = member(OrgKind::Clinic, &REQUIRED_CLINIC, &[]);
        assert_eq!(requirement(&ctx), Requirement::Enroll { allowed: set("email,sms"), remind_until: None });
        // An organization without a kind (not a member) is not a clinic.
        let ctx = MemberContext { org_kind: None, ..member(OrgKind::Clinic, &REQUIRED_CLINIC, &[]) };
        assert!(!mfa_applies(&ctx));
    }

    #[test]
    fn default_factor_choice() {
        let all: &[FactorKind] = &[Email, RecoveryCode, Sms, Passkey, Authenticator];
        // Every method allowed: the order alone decides here.
        let org = OrgMfa { methods: set("authenticator,email,sms,passkey"), ..REQUIRED_CLINIC };
        let base = member(OrgKind::Clinic, &org, all);
        let challenge = |ctx: MemberContext<'_>| match requirement(&ctx) {
            Requirement::Challenge { default, others } => (default, others),
            other => panic!("expected a challenge, got {other:?}"),
        };
        for (trusted_device, preferred, enrolled, default, others) in [
            // Ordering when nothing else decides.
            (false, None, all, Authenticator, vec![Passkey, Sms, Email, RecoveryCode]),
            (false, None, &[Email, Sms][..], Sms, vec![Email]),
            (false, None, &[Email, Passkey], Passkey, vec![Email]),
            (false, None, &[RecoveryCode, Email], Email, vec![RecoveryCode]),
            (false, None, &[RecoveryCode], RecoveryCode, vec![]),
            // Duplicates in storage do not duplicate choices.
            (false, None, &[Email, Email], Email, vec![]),
            // The trusted device's passkey first.
            (true, None, all, Passkey, vec![Authenticator, Sms, Email, RecoveryCode]),
            (true, Some(Email), all, Passkey, vec![Authenticator, Sms, Email, RecoveryCode]),
            // A trusted device without a passkey enrolled falls back.
            (true, Some(Sms), &[Email, Sms], Sms, vec![Email]),
            (true, None, &[Email], Email, vec![]),
            // The member's preference, when it is enrolled.
            (false, Some(Email), all, Email, vec![Authenticator, Passkey, Sms, RecoveryCode]),
            (false, Some(Sms), &[Authenticator, Email], Authenticator, vec![Email]),
            // A recovery code is never preferred over a real factor.
            (false, Some(RecoveryCode), &[Email, RecoveryCode], Email, vec![RecoveryCode]),
        ] {
            let ctx = MemberContext { trusted_device, preferred, enrolled, ..base };
            assert_eq!(
                challenge(ctx),
                (default, others),
                "trusted={trusted_device} preferred={preferred:?} {enrolled:?}"
            );
        }
    }

    #[test]
    fn bypass_then_enroll_uses_allowed_methods() {
        let org = OrgMfa {
            enabled: true,
            mode: MfaMode::Required,
            methods: set("passkey,authenticator"),
            ..OrgMfa::default()
        };
        let ctx = MemberContext { bypass_valid: true, ..member(OrgKind::Clinic, &org, &[Authenticator]) };
        // The passkey comes after setup ("Trust this device?"), never as the first factor.
        assert_eq!(requirement(&ctx), Requirement::Bypass { then_enroll: Some(set("authenticator")) });
        let exempt = MemberContext { override_: MemberOverride::NotRequired, ..ctx };
        assert_eq!(requirement(&exempt), Requirement::Bypass { then_enroll: None });
    }

    #[test]
    fn method_sets_parse_and_print() {
        for (input, canonical) in [
            ("", ""),
            ("   ", ""),
            ("authenticator", "authenticator"),
            ("email,authenticator", "authenticator,email"),
            (" sms , email ,sms", "email,sms"),
            ("Passkey, SMS", "sms,passkey"),
            ("authenticator,,email,", "authenticator,email"),
            ("passkey,sms,email,authenticator", "authenticator,email,sms,passkey"),
        ] {
            let s = set(input);
            assert_eq!(s.to_string(), canonical, "{input:?}");
            assert_eq!(set(canonical), s);
            assert_eq!(canonical.parse::<MethodSet>(), Ok(s));
        }
        for (input, name) in [("recovery_code", "recovery_code"), ("email, totp", "totp"), ("sms,e-mail", "e-mail")] {
            let err = MethodSet::parse(input).unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().contains(&format!("\"{name}\"")), "{err}");
        }
    }

    #[test]
    fn method_set_queries() {
        let s = set("sms,authenticator");
        assert!(s.contains(Authenticator) && s.contains(Sms));
        assert!(!s.contains(Email) && !s.contains(Passkey) && !s.contains(RecoveryCode));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Authenticator, Sms]);
        assert!(!s.is_empty());
        assert!(MethodSet::default().is_empty());
        assert_eq!(MethodSet::default().iter().count(), 0);
        assert_eq!(MethodSet::only(Passkey).iter().collect::<Vec<_>>(), vec![Passkey]);
        assert!(MethodSet::only(RecoveryCode).is_empty());
        assert_eq!(MethodSet::authenticator_only(), set("authenticator"));
    }

    #[test]
    fn org_settings_are_checked() {
        let some = set("authenticator");
        let none = MethodSet::default();
        for (kind, mode, methods, want) in [
            (OrgKind::Clinic, MfaMode::Required, some, Ok(())),
            (OrgKind::Clinic, MfaMode::Optional, some, Ok(())),
            (OrgKind::Clinic, MfaMode::Off, none, Ok(())),
            (OrgKind::Solo, MfaMode::Optional, some, Ok(())),
            (OrgKind::Solo, MfaMode::Off, none, Ok(())),
            (OrgKind::Solo, MfaMode::Required, some, Err(PolicyError::RequiredNeedsClinic)),
            (OrgKind::Clinic, MfaMode::Required, none, Err(PolicyError::NoMethods)),
            (OrgKind::Solo, MfaMode::Optional, none, Err(PolicyError::NoMethods)),
        ] {
            assert_eq!(OrgMfa::check(kind, mode, methods), want, "{kind} {mode} {methods}");
        }
        assert_eq!(
            PolicyError::RequiredNeedsClinic.to_string(),
            "Mandatory 2FA is for clinic organizations; solo providers turn 2FA on for themselves."
        );
    }

    #[test]
    fn opting_in_and_out() {
        let off = OrgMfa { enabled: true, mode: MfaMode::Off, methods: set("authenticator"), ..OrgMfa::default() };
        let optional_disabled =
            OrgMfa { enabled: false, mode: MfaMode::Optional, methods: set("authenticator"), ..OrgMfa::default() };
        let optional = OrgMfa { enabled: true, ..optional_disabled };
        for (org, override_, opt_in, turn_off) in [
            (&off, MemberOverride::ClinicDefault, false, true),
            (&off, MemberOverride::Required, true, false),
            (&optional_disabled, MemberOverride::ClinicDefault, false, true),
            (&optional, MemberOverride::ClinicDefault, true, true),
            (&optional, MemberOverride::NotRequired, true, true),
            (&REQUIRED_CLINIC, MemberOverride::ClinicDefault, true, false),
            (&REQUIRED_CLINIC, MemberOverride::NotRequired, true, true),
        ] {
            let ctx = MemberContext { override_, ..member(OrgKind::Clinic, org, &[Authenticator]) };
            assert_eq!((may_opt_in(&ctx), may_turn_off(&ctx)), (opt_in, turn_off), "{org:?} {override_}");
        }
    }

    #[test]
    fn enum_names() {
        for k in FactorKind::ALL {
            assert_eq!(k.as_str().parse::<FactorKind>(), Ok(*k));
        }
        assert_eq!(MemberOverride::NotRequired.as_str(), "not_required");
        assert_eq!("clinic_default".parse::<MemberOverride>(), Ok(MemberOverride::ClinicDefault));
        assert_eq!("required".parse::<MfaMode>(), Ok(MfaMode::Required));
        assert!("mandatory".parse::<MfaMode>().is_err());
    }

    #[test]
    fn the_registered_email_joins_existing_factors_only_when_allowed() {
        use FactorKind::*;
        let email = MethodSet::parse("sms,email").expect("set");
        let sms_only = MethodSet::only(Sms);
        assert_eq!(available_methods(&[Sms, RecoveryCode], email), vec![Sms, Email, RecoveryCode]);
        assert_eq!(available_methods(&[Sms, RecoveryCode], sms_only), vec![Sms, RecoveryCode]);
        assert_eq!(available_methods(&[], email), Vec::<FactorKind>::new(), "never makes 2FA required");
        assert_eq!(available_methods(&[Email, RecoveryCode], email), vec![Email, RecoveryCode], "not twice");
    }

    #[test]
    fn allowed_methods_fall_back_to_authenticator_apps_and_passkeys() {
        let on = OrgMfa {
            enabled: true,
            mode: MfaMode::Optional,
            methods: MethodSet::only(FactorKind::Sms),
            ..OrgMfa::default()
        };
        assert_eq!(allowed_methods(Some(&on)), MethodSet::only(FactorKind::Sms));
        assert_eq!(allowed_methods(Some(&OrgMfa { enabled: false, ..on })), MethodSet::standard());
        assert_eq!(allowed_methods(Some(&OrgMfa { methods: MethodSet::default(), ..on })), MethodSet::standard());
        // Passkeys alone leave nothing to set up first.
        let passkeys_only = OrgMfa { methods: MethodSet::only(FactorKind::Passkey), ..on };
        assert_eq!(allowed_methods(Some(&passkeys_only)), MethodSet::standard());
        assert_eq!(allowed_methods(None), MethodSet::standard());
        assert_eq!(MethodSet::standard().first_factors(), MethodSet::authenticator_only());
    }

    #[test]
    fn passkeys_are_offered_on_top_of_another_factor() {
        use FactorKind::*;
        assert!(may_trust_device(&[Authenticator, RecoveryCode], MethodSet::standard()));
        assert!(may_trust_device(&[Sms, RecoveryCode, Passkey], set("sms,passkey")));
        assert!(!may_trust_device(&[Authenticator, RecoveryCode], MethodSet::authenticator_only()));
        assert!(!may_trust_device(&[RecoveryCode], MethodSet::standard()));
        assert!(!may_trust_device(&[Passkey, RecoveryCode], MethodSet::standard()));
        assert!(!may_trust_device(&[], MethodSet::standard()));
        assert_eq!(
            OrgMfa::check(OrgKind::Clinic, MfaMode::Required, MethodSet::only(Passkey)),
            Err(PolicyError::NoMethods)
        );
    }

    #[test]
    fn bypass_expires_and_summaries_say_what_members_get() {
        use crate::clock::UnixTime;
        assert!(bypass_valid(Some(UnixTime(10)), UnixTime(9)));
        assert!(!bypass_valid(Some(UnixTime(10)), UnixTime(10)));
        assert!(!bypass_valid(None, UnixTime(0)));
        let mfa = OrgMfa {
            enabled: true,
            mode: MfaMode::Required,
            methods: MethodSet::parse("authenticator,sms").unwrap(),
            ..OrgMfa::default()
        };
        let text = describe_for_members(OrgKind::Clinic, &mfa).join(" ");
        assert!(text.contains("Mandatory 2FA: every member without a second factor sets one up (an authenticator app, codes by text message)"), "{text}");
        let off = describe_for_members(OrgKind::Clinic, &OrgMfa { mode: MfaMode::Off, ..mfa }).join(" ");
        assert!(off.contains("keep using it"), "{off}");
        let disabled = describe_for_members(OrgKind::Clinic, &OrgMfa::default()).join(" ");
        assert!(disabled.contains("not been enabled"), "{disabled}");
    }

    const DAY: i64 = 24 * 3600;

    fn mandatory_with_grace(days: i64, since: i64) -> OrgMfa {
        OrgMfa { grace_days: GraceDays::new(days).unwrap(), required_since: Some(UnixTime(since)), ..REQUIRED_CLINIC }
    }

    fn in_grace(ctx: &MemberContext<'_>) -> Option<UnixTime> {
        match requirement(ctx) {
            Requirement::Enroll { remind_until, .. } => remind_until,
            other => panic!("expected setup, got {other:?}"),
        }
    }

    #[test]
    fn grace_days_parse_from_zero_to_thirty_only() {
        for (input, days) in [("0", 0), ("7", 7), (" 30 ", 30), ("007", 7)] {
            assert_eq!(GraceDays::parse(input).map(GraceDays::get), Ok(days), "{input:?}");
        }
        for input in ["31", "-1", "", " ", "7.5", "1e1", "seven", "+3", "0x1", "1000", "99999999999999999999"] {
            assert_eq!(GraceDays::parse(input), Err(GraceDaysError), "{input:?}");
        }
        assert_eq!(GraceDays::new(30).map(GraceDays::get), Ok(30));
        assert_eq!(GraceDays::new(31), Err(GraceDaysError));
        assert_eq!(GraceDays::new(-1), Err(GraceDaysError));
        assert_eq!(GraceDays::new(256), Err(GraceDaysError));
        assert_eq!(GraceDays::new(2).unwrap().secs(), 2 * DAY);
        assert_eq!(GraceDays::default(), GraceDays::NONE);
        assert!(GraceDaysError.to_string().contains("0 to 30 days"));
    }

    #[test]
    fn the_grace_period_ends_a_number_of_days_after_mandatory_2fa_or_joining() {
        let since = 1_000_000;
        let org = mandatory_with_grace(7, since);
        let deadline = UnixTime(since + 7 * DAY);
        // Joined before Mandatory 2FA: counts from when it was turned on.
        let early = MemberContext { joined: UnixTime(10), now: UnixTime(since), ..member(OrgKind::Clinic, &org, &[]) };
        assert_eq!(setup_deadline(&early), Some(deadline));
        assert_eq!(in_grace(&early), Some(deadline));
        // The last second of the grace period still offers "Remind me later"; at the
        // deadline setup is forced.
        assert_eq!(in_grace(&MemberContext { now: UnixTime(deadline.0 - 1), ..early }), Some(deadline));
        assert_eq!(in_grace(&MemberContext { now: deadline, ..early }), None);
        assert_eq!(in_grace(&MemberContext { now: UnixTime(deadline.0 + DAY), ..early }), None);
        // Joined after Mandatory 2FA was turned on: counts from joining.
        let late = MemberContext { joined: UnixTime(since + 20 * DAY), ..early };
        let late_deadline = UnixTime(since + 27 * DAY);
        assert_eq!(in_grace(&MemberContext { now: UnixTime(since + 26 * DAY), ..late }), Some(late_deadline));
        assert_eq!(in_grace(&MemberContext { now: late_deadline, ..late }), None);
        // No time recorded (cannot happen after `apply`): from joining.
        let unknown = OrgMfa { required_since: None, ..org };
        assert_eq!(grace_deadline(&unknown, UnixTime(50)), UnixTime(50 + 7 * DAY));
    }

    #[test]
    fn the_grace_period_is_only_for_the_clinic_default() {
        let org = mandatory_with_grace(7, 1_000);
        let base = MemberContext { now: UnixTime(2_000), ..member(OrgKind::Clinic, &org, &[]) };
        assert!(in_grace(&base).is_some());
        // 0 days: forced at once.
        let none = OrgMfa { grace_days: GraceDays::NONE, ..org };
        assert_eq!(in_grace(&MemberContext { org: Some(&none), ..base }), None);
        assert_eq!(setup_deadline(&MemberContext { org: Some(&none), ..base }), None);
        // A member set to Required was chosen by an admin: no grace.
        assert_eq!(in_grace(&MemberContext { override_: MemberOverride::Required, ..base }), None);
        // Not required: nothing to set up at all.
        let exempt = MemberContext { override_: MemberOverride::NotRequired, ..base };
        assert_eq!(requirement(&exempt), Requirement::NoSecondFactor);
        // Platform admins never get grace.
        let support = MemberContext { platform_admin: true, org: None, org_kind: None, ..base };
        assert_eq!(in_grace(&support), None);
        let support_in_clinic = MemberContext { platform_admin: true, ..base };
        assert_eq!(in_grace(&support_in_clinic), None);
        // A bypass sign-in still forces setup.
        let bypass = MemberContext { bypass_valid: true, ..base };
        assert_eq!(requirement(&bypass), Requirement::Bypass { then_enroll: Some(set("email,sms")) });
        // Whoever has a factor is challenged, grace or not.
        let enrolled = MemberContext { enrolled: &[Email], ..base };
        assert!(matches!(requirement(&enrolled), Requirement::Challenge { .. }));
        // Mandatory 2FA not in force (MFA not enabled, or Optional): nothing to postpone.
        let disabled = OrgMfa { enabled: false, ..org };
        assert_eq!(requirement(&MemberContext { org: Some(&disabled), ..base }), Requirement::NoSecondFactor);
        assert_eq!(setup_deadline(&MemberContext { org: Some(&disabled), ..base }), None);
        let optional = OrgMfa { mode: MfaMode::Optional, ..org };
        assert_eq!(setup_deadline(&MemberContext { org: Some(&optional), ..base }), None);
        // Solo organizations have no Mandatory 2FA.
        assert_eq!(setup_deadline(&MemberContext { org_kind: Some(OrgKind::Solo), ..base }), None);
    }

    #[test]
    fn required_since_moves_only_when_mandatory_2fa_starts_or_stops() {
        let on = OrgMfa { enabled: true, mode: MfaMode::Optional, ..OrgMfa::default() };
        let required = OrgMfaChange { mode: Some(MfaMode::Required), ..Default::default() };
        let mandatory = on.apply(OrgKind::Clinic, &required, UnixTime(100)).unwrap();
        assert_eq!(mandatory.required_since, Some(UnixTime(100)));
        // Saving again (same mode, or only the grace period or methods) keeps it.
        let again = mandatory.apply(OrgKind::Clinic, &required, UnixTime(200)).unwrap();
        assert_eq!(again.required_since, Some(UnixTime(100)));
        let grace = OrgMfaChange { grace_days: Some(GraceDays::new(7).unwrap()), ..Default::default() };
        let with_grace = again.apply(OrgKind::Clinic, &grace, UnixTime(300)).unwrap();
        assert_eq!((with_grace.required_since, with_grace.grace_days.get()), (Some(UnixTime(100)), 7));
        // Stopping clears it; starting again starts again.
        let optional = OrgMfaChange { mode: Some(MfaMode::Optional), ..Default::default() };
        let stopped = with_grace.apply(OrgKind::Clinic, &optional, UnixTime(400)).unwrap();
        assert_eq!((stopped.required_since, stopped.grace_days.get()), (None, 7), "the grace period is kept");
        assert_eq!(
            stopped.apply(OrgKind::Clinic, &required, UnixTime(500)).unwrap().required_since,
            Some(UnixTime(500))
        );
        // Support turning MFA off stops Mandatory 2FA too; turning it on again restarts it.
        let disable = OrgMfaChange { enabled: Some(false), ..Default::default() };
        let disabled = with_grace.apply(OrgKind::Clinic, &disable, UnixTime(600)).unwrap();
        assert_eq!(disabled.required_since, None);
        let enable = OrgMfaChange { enabled: Some(true), ..Default::default() };
        assert_eq!(
            disabled.apply(OrgKind::Clinic, &enable, UnixTime(700)).unwrap().required_since,
            Some(UnixTime(700))
        );
        // A row without the time (older than the grace period) starts counting at the next save.
        let legacy = OrgMfa { required_since: None, ..with_grace };
        assert_eq!(legacy.apply(OrgKind::Clinic, &grace, UnixTime(800)).unwrap().required_since, Some(UnixTime(800)));
        // Only grace_days is a change too.
        assert!(!grace.is_empty());
    }

    #[test]
    fn days_left_in_words() {
        let deadline = UnixTime(100 * DAY);
        for (secs_left, days, words) in [
            (7 * DAY, 7, "7 days"),
            (7 * DAY - 1, 7, "7 days"),
            (2 * DAY + DAY / 2, 3, "3 days"),
            (2 * DAY + DAY / 2 - 1, 2, "2 days"),
            (DAY + DAY / 2 - 1, 1, "1 day"),
            (DAY, 1, "1 day"),
            (DAY - 1, 0, "less than a day"),
            (1, 0, "less than a day"),
            (0, 0, "less than a day"),
            (-5, 0, "less than a day"),
        ] {
            let now = UnixTime(deadline.0 - secs_left);
            assert_eq!(
                (days_left(now, deadline), describe_days_left(now, deadline).as_str()),
                (days, words),
                "{secs_left}"
            );
        }
    }

    #[test]
    fn members_read_about_the_grace_period() {
        let org = mandatory_with_grace(7, 0);
        let text = describe_for_members(OrgKind::Clinic, &org).join(" ");
        assert!(text.contains("grace period of 7 days") && text.contains("Remind me later"), "{text}");
        let one = OrgMfa { grace_days: GraceDays::new(1).unwrap(), ..org };
        assert!(describe_for_members(OrgKind::Clinic, &one).join(" ").contains("grace period of 1 day:"));
        let none = describe_for_members(OrgKind::Clinic, &OrgMfa { grace_days: GraceDays::NONE, ..org }).join(" ");
        assert!(!none.contains("Remind me later") && none.contains("at their next sign-in"), "{none}");
    }
}

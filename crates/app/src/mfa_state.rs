//! An account's second factors as the policy sees them: what is enrolled, what the
//! organization allows, and what a sign-in or a setup page may offer. Read once per
//! request by `load`; every decision is a pure function in `clinic_auth_core::policy`.

use clinic_auth_core::policy::{self, MemberContext};
use clinic_auth_core::{AccountKind, FactorKind, MethodSet, Requirement, UnixTime};
use clinic_auth_store::{Account, Factor, Org};

use crate::{App, Error};

/// An account's factors and the policy around them.
#[derive(Debug, Clone)]
pub struct MfaState {
    pub org: Option<Org>,
    pub factors: Vec<Factor>,
    pub has_recovery_code: bool,
    /// An admin-granted one-time bypass is waiting and unexpired.
    pub bypass_valid: bool,
    /// When this state was read: the grace period of Mandatory 2FA is measured from it.
    pub now: UnixTime,
}

impl MfaState {
    pub fn enrolled(&self) -> Vec<FactorKind> {
        let mut kinds: Vec<FactorKind> = self.factors.iter().map(|f| f.kind).collect();
        if self.has_recovery_code {
            kinds.push(FactorKind::RecoveryCode);
        }
        kinds
    }

    /// The requirement at sign-in on a browser that may hold one of the account's
    /// passkeys: on a trusted device the passkey is the default.
    pub fn requirement_on_device(&self, account: &Account, device_hints: &[String]) -> Requirement {
        let enrolled = self.enrolled();
        let mut ctx = self.context(account, &enrolled);
        ctx.trusted_device = is_trusted_device(&self.factors, device_hints);
        policy::requirement(&ctx)
    }

    fn context<'a>(&'a self, account: &Account, enrolled: &'a [FactorKind]) -> MemberContext<'a> {
        // Patients and platform admins are never under an organization's staff policy.
        let org = if account.kind == AccountKind::Member { self.org.as_ref() } else { None };
        MemberContext {
            org_kind: org.map(|o| o.kind),
            org: org.map(|o| &o.mfa),
            override_: account.mfa_override,
            enrolled,
            preferred: account.preferred_factor,
            trusted_device: false,
            // Only members are under an organization's admins; nobody else can hold a bypass.
            bypass_valid: self.bypass_valid && account.kind == AccountKind::Member,
            platform_admin: account.kind == AccountKind::PlatformAdmin,
            joined: account.joined(),
            now: self.now,
        }
    }

    /// When this member's grace period for setting up two-factor authentication ends,
    /// while they are in it (they have no factor and may still choose "Remind me
    /// later"); `None` otherwise.
    pub fn remind_until(&self, account: &Account) -> Option<UnixTime> {
        match self.requirement(account) {
            Requirement::Enroll { remind_until, .. } => remind_until,
            _ => None,
        }
    }

    /// Their grace period's end whether or not it has passed, for a member without a
    /// second factor under the clinic's Mandatory 2FA with a grace period (reminders
    /// say "by when").
    pub fn setup_deadline(&self, account: &Account) -> Option<UnixTime> {
        let enrolled = self.enrolled();
        policy::setup_deadline(&self.context(account, &enrolled))
    }

    pub fn requirement(&self, account: &Account) -> Requirement {
        let enrolled = self.enrolled();
        policy::requirement(&self.context(account, &enrolled))
    }

    pub fn may_opt_in(&self, account: &Account) -> bool {
        let enrolled = self.enrolled();
        policy::may_opt_in(&self.context(account, &enrolled))
    }

    pub fn may_turn_off(&self, account: &Account) -> bool {
        let enrolled = self.enrolled();
        policy::may_turn_off(&self.context(account, &enrolled))
    }

    /// The methods this account may set up: the organization's allowed methods for
    /// members of an organization with MFA on; authenticator apps otherwise.
    pub fn allowed_methods(&self, account: &Account) -> MethodSet {
        let org = if account.kind == AccountKind::Member { self.org.as_ref().map(|o| &o.mfa) } else { None };
        policy::allowed_methods(org)
    }

    /// The methods this account may set up as a first factor (passkeys come after,
    /// on trusted devices).
    pub fn setup_methods(&self, account: &Account) -> MethodSet {
        self.allowed_methods(account).first_factors()
    }

    /// Whether to offer "Trust this device?" to this account.
    pub fn may_trust_device(&self, account: &Account) -> bool {
        policy::may_trust_device(&self.enrolled(), self.allowed_methods(account))
    }

    /// Every method a sign-in can use: the enrolled ones, plus the account's own email
    /// when the organization allows email codes ("You will receive the one-time code in
    /// your account's registered email"). The email fallback is offered only to
    /// members who already use a second factor; it never makes one required.
    pub fn available(&self, account: &Account) -> Vec<FactorKind> {
        let enrolled = self.enrolled();
        let offered = policy::sign_in_factors(&self.context(account, &enrolled));
        policy::available_methods(&offered, self.allowed_methods(account))
    }

    /// The member's factors that their organization no longer allows.
    pub fn outside_allowed(&self, account: &Account) -> Vec<FactorKind> {
        let enrolled = self.enrolled();
        policy::outside_allowed(&self.context(account, &enrolled))
    }

    /// Every factor the member has is one the organization no longer allows: after
    /// proving one, they set up one of these before a session exists.
    pub fn must_replace(&self, account: &Account) -> Option<MethodSet> {
        let enrolled = self.enrolled();
        policy::must_replace(&self.context(account, &enrolled))
    }

    /// Where codes for `kind` go for this account.
    pub fn code_target(&self, account: &Account, kind: FactorKind) -> Option<String> {
        match self.factor(kind).and_then(|f| f.target.clone()) {
            Some(t) => Some(t),
            None if kind == FactorKind::Email && self.available(account).contains(&FactorKind::Email) => {
                Some(account.email.to_string())
            }
            None => None,
        }
    }

    pub fn factor(&self, kind: FactorKind) -> Option<&Factor> {
        self.factors.iter().find(|f| f.kind == kind)
    }
}

pub async fn load(state: &App, account: &Account) -> Result<MfaState, Error> {
    let org = match &account.org_id {
        Some(o) => state.store.get_org(o).await?,
        None => None,
    };
    let factors = state.store.list_factors(account.id).await?;
    let has_recovery_code = state.store.recovery_code_hash(account.id).await?.is_some();
    Ok(MfaState::of(state, account, org, factors, has_recovery_code))
}

impl MfaState {
    /// The state of `account` from what was read already (the Users list reads every
    /// member's at once).
    pub fn of(
        state: &App,
        account: &Account,
        org: Option<Org>,
        factors: Vec<Factor>,
        has_recovery_code: bool,
    ) -> MfaState {
        let now = state.now();
        let bypass_valid = policy::bypass_valid(account.bypass.map(|b| b.expires_at), now);
        MfaState { org, factors, has_recovery_code, bypass_valid, now }
    }
}

pub(crate) fn sealing_context(account: &Account, kind: FactorKind) -> String {
    sealing_context_for(account.id, kind)
}

/// The associated data a factor's secret is sealed under: a secret copied to another
/// account or kind does not open. (Public for the benchmark seeder.)
pub fn sealing_context_for(account: clinic_auth_core::AccountId, kind: FactorKind) -> String {
    format!("clinic-auth:factor:{kind}:{account}")
}

pub(crate) fn uuid_like() -> String {
    clinic_auth_core::AccountId::new_random().to_string()
}

/// The label people see for a method.
pub fn method_label(kind: FactorKind) -> &'static str {
    match kind {
        FactorKind::Authenticator => "Authenticator app",
        FactorKind::Email => "Email",
        FactorKind::Sms => "Text message",
        // "Passkey on this device" only where it is this device (the sign-in's
        // "Try another method" on a trusted browser).
        FactorKind::Passkey => "Passkey",
        FactorKind::RecoveryCode => "Recovery code",
    }
}

/// Whether this browser holds one of the account's passkeys (by the device hints it
/// presented): on a trusted device the passkey is the default second factor.
pub fn is_trusted_device(factors: &[Factor], device_hints: &[String]) -> bool {
    let ids: Vec<&str> = factors.iter().filter_map(|f| f.passkey.as_ref()).map(|p| p.credential_id.as_str()).collect();
    clinic_auth_core::passkey::is_trusted_device(device_hints, &ids)
}

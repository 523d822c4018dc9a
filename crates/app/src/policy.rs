//! Organization MFA policy and per-member overrides.

use clinic_auth_core::policy::GraceDays;
use clinic_auth_core::{MemberOverride, MethodSet, MfaMode};
use clinic_auth_store::{Account, Org};

use super::{By, access, audit_event};
use crate::{App, Error, ErrorKind};
use clinic_auth_core::audit::Event;

pub use clinic_auth_core::policy::OrgMfaChange;
use clinic_auth_core::policy::OrgMfaChangeError;

/// Applies a change: platform support turns MFA on or off for an organization; the
/// organization's owners and admins choose mode and methods once it is on. The rules
/// are `OrgMfa::apply` and `Actor::may_change_org_mfa`.
pub async fn set_org_mfa(state: &App, by: &By, org_id: &str, change: OrgMfaChange) -> Result<Org, Error> {
    let org = access::get_org(state, by, org_id).await?;
    if !by.actor.may_change_org_mfa(&org.id, &change) {
        if change.enabled.is_some() && by.actor.may_set_org_policy(&org.id) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "Only platform support can turn MFA on or off for an organization.",
            ));
        }
        return Err(Error::forbidden());
    }
    let mfa = org.mfa.apply(org.kind, &change, state.now()).map_err(|e| match e {
        OrgMfaChangeError::NothingToChange => Error::new(ErrorKind::NothingToChange, e.to_string()),
        OrgMfaChangeError::NotEnabled => Error::new(ErrorKind::OrgMfaOff, e.to_string()),
        OrgMfaChangeError::Invalid(e) => Error::new(ErrorKind::InvalidPolicy, e.to_string()),
    })?;
    let methods = mfa.methods.to_string();
    let changed = Event::OrgMfaChanged {
        enabled: mfa.enabled,
        mode: mfa.mode,
        methods: &methods,
        grace_days: mfa.grace_days.get(),
    };
    let mut event = audit_event(state, changed, &by.client);
    event.org_id = Some(org.id.clone());
    event.actor_id = by.account_id;
    if !state.store.set_org_mfa(&org.id, &mfa, &event).await? {
        return Err(Error::not_found("The organization"));
    }
    Ok(Org { mfa, ..org })
}

/// What Edit Clinic sends: the mode, the methods the form showed boxes for (`shown`)
/// and those ticked (`chosen`), and the grace period (`None` from a form older than
/// the grace period field, which keeps it).
#[derive(Debug, Clone, Copy)]
pub struct ClinicSettingsForm {
    pub mode: MfaMode,
    pub shown: MethodSet,
    pub chosen: MethodSet,
    pub grace_days: Option<GraceDays>,
}

/// Clinic Settings saved from a form. Methods the form did not show keep their state,
/// and saving what is already in force writes nothing (so the start of Mandatory 2FA,
/// from which grace periods count, does not move).
pub async fn save_clinic_settings(state: &App, by: &By, org_id: &str, form: ClinicSettingsForm) -> Result<Org, Error> {
    let org = access::get_org(state, by, org_id).await?;
    let methods = org.mfa.methods.with_shown(form.shown, form.chosen);
    let grace_days = form.grace_days.unwrap_or(org.mfa.grace_days);
    if form.mode == org.mfa.mode
        && methods == org.mfa.methods
        && grace_days == org.mfa.grace_days
        && by.actor.may_set_org_policy(&org.id)
    {
        return Ok(org);
    }
    let change =
        OrgMfaChange { enabled: None, mode: Some(form.mode), methods: Some(methods), grace_days: Some(grace_days) };
    set_org_mfa(state, by, org_id, change).await
}

/// Sets a member's two-factor setting: Clinic default, Required or Not required.
pub async fn set_member_override(
    state: &App,
    by: &By,
    org_id: &str,
    who: &str,
    value: MemberOverride,
) -> Result<Account, Error> {
    let member =
        access::authorize(state, by, Some(org_id), who, clinic_auth_core::permission::MemberAction::SetOverride)
            .await?;
    let changed = Event::MemberMfaOverrideChanged { from: member.mfa_override, to: value };
    let mut event = audit_event(state, changed, &by.client);
    event.org_id = member.org_id.clone();
    event.actor_id = by.account_id;
    event.subject_id = Some(member.id);
    state.store.set_mfa_override(member.id, value, &event).await?;
    Ok(Account { mfa_override: value, ..member })
}

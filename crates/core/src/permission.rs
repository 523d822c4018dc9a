//! Who may do what to whom. The web layer asks these functions; it never decides.

use crate::account::{AccountKind, Role};
use crate::ids::OrgId;

/// The parts of an account that decide what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The `clinic-auth` command line, run by the operator on the server itself.
    Operator,
    PlatformAdmin,
    Member {
        org: OrgId,
        role: Role,
    },
    Patient {
        org: OrgId,
    },
}

/// The account an action is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub kind: AccountKind,
    pub org: Option<&'a OrgId>,
    pub role: Option<Role>,
}

impl Actor {
    fn is_support(&self) -> bool {
        matches!(self, Actor::Operator | Actor::PlatformAdmin)
    }

    fn manages(&self, org: &OrgId) -> Option<Role> {
        match self {
            Actor::Member { org: own, role } if own == org && role.manages_members() => Some(*role),
            _ => None,
        }
    }

    /// Creating organizations and platform admins is platform support's job.
    pub fn may_administer_platform(&self) -> bool {
        self.is_support()
    }

    /// Reading an organization: support, or anyone who belongs to it.
    pub fn may_view_org(&self, org: &OrgId) -> bool {
        match self {
            Actor::Operator | Actor::PlatformAdmin => true,
            Actor::Member { org: own, .. } | Actor::Patient { org: own } => own == org,
        }
    }

    /// Adding a member with `role` to `org`. Admins cannot make owners, so an admin
    /// cannot raise anyone (or a second account of theirs) above themselves.
    pub fn may_add_member(&self, org: &OrgId, role: Role) -> bool {
        if self.is_support() {
            return true;
        }
        match self.manages(org) {
            Some(Role::Owner) => true,
            Some(_) => role != Role::Owner,
            None => false,
        }
    }

    /// Adding a patient to `org`'s portal.
    pub fn may_add_patient(&self, org: &OrgId) -> bool {
        self.is_support() || self.manages(org).is_some()
    }

    /// Choosing an organization's MFA mode and methods (after support enabled MFA).
    pub fn may_set_org_policy(&self, org: &OrgId) -> bool {
        self.is_support() || self.manages(org).is_some()
    }

    /// Changing an organization's MFA settings: turning MFA on or off (`enabled`) is
    /// platform support's; mode and methods are also the organization's owners' and
    /// admins'. Nobody else may change anything, not even nothing.
    pub fn may_change_org_mfa(&self, org: &OrgId, change: &crate::policy::OrgMfaChange) -> bool {
        if change.enabled.is_some() && !self.is_support() {
            return false;
        }
        self.may_set_org_policy(org)
    }

    /// Setting a member's two-factor override. Support for anyone; owners and admins
    /// for their own organization's members.
    pub fn may_set_member_mfa(&self, target: &Target<'_>) -> bool {
        if self.is_support() {
            return true;
        }
        target.kind == AccountKind::Member && target.org.is_some_and(|o| self.manages(o).is_some())
    }

    /// Seeing a password-reset link, or choosing a password, for someone else's
    /// account: only the operator at the server's shell (`clinic-auth password-reset`,
    /// `--password-stdin`), who holds the machine anyway. Anyone else who saw the link
    /// or chose the password could sign in as that person (ASVS 6.4.6), so the API and
    /// the pages never show one: a reset goes by email to the account's own address.
    pub fn may_handle_password_for_others(&self) -> bool {
        matches!(self, Actor::Operator)
    }

    /// Seeing a new account's invitation link. Whoever holds the link chooses the
    /// account's first password, so this is the same rule as
    /// [`Actor::may_handle_password_for_others`]: only the operator at the server's
    /// shell (`clinic-auth member add`, `patient add`, `platform-admin create`). Anyone
    /// else who invites (a clinic's owners and admins, platform admins) has the link
    /// emailed to the new account's own address and never sees it (ASVS 6.4.6).
    pub fn may_see_invitation_link(&self) -> bool {
        self.may_handle_password_for_others()
    }

    /// "Resend invitation": emailing a fresh invitation link to `target`'s own address
    /// (the sender never sees it). Whoever may invite that kind of account may resend
    /// it: support for anyone, a clinic's owners and admins for their own clinic's
    /// members and patients, except that only an owner (or support) reaches an owner.
    pub fn may_resend_invitation(&self, target: &Target<'_>) -> Verdict {
        let allowed = match (target.kind, target.org, target.role) {
            (AccountKind::PlatformAdmin, _, _) => self.may_administer_platform(),
            (AccountKind::Member, Some(o), Some(r)) => self.may_add_member(o, r),
            (AccountKind::Patient, Some(o), _) => self.may_add_patient(o),
            _ => false,
        };
        if allowed {
            return Verdict::Allowed;
        }
        match self {
            Actor::Member { org, role } if target.kind != AccountKind::PlatformAdmin && target.org == Some(org) => {
                if !role.manages_members() {
                    Verdict::Denied(Denial::Role)
                } else {
                    Verdict::Denied(Denial::OwnerProtected)
                }
            }
            _ => Verdict::Denied(Denial::NotVisible),
        }
    }

    /// Having a password-reset link emailed to `target`'s own address (the sender never
    /// sees it). The same rule as the other actions on a member (an admin not for an
    /// owner, a platform admin not for another platform admin, acting on oneself needs
    /// a fresh second factor), plus: a clinic's owners and admins may send their own
    /// patients a reset email, though they touch no other patient credential.
    pub fn may_send_password_reset(&self, target: &Target<'_>, is_self: bool) -> Verdict {
        if target.kind == AccountKind::Patient && target.org.is_some_and(|o| self.manages(o).is_some()) {
            return Verdict::Allowed;
        }
        self.may_act_on_member(target, is_self, MemberAction::SendPasswordReset)
    }
}

/// What an admin (or support) does to one member from the Users page, the platform
/// console, the API or the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// Reading the member's role, 2FA status and override (never secrets).
    ViewStatus,
    /// The two-factor setting: Clinic default / Required / Not required.
    SetOverride,
    /// "Disable two-factor authentication": a one-time bypass.
    GrantBypass,
    /// Removes every factor (passkeys included) and the recovery code.
    ResetMfa,
    /// Ends every session of the member.
    RevokeSessions,
    Deactivate,
    Reactivate,
    /// Changes the member's role to the one given.
    ChangeRole(Role),
    /// Emails the member a password-reset link (see [`Actor::may_send_password_reset`]).
    SendPasswordReset,
    /// Lifts the locks that wrong second-factor codes put on the member (someone
    /// else's guesses, often): it only lets the member back in.
    Unlock,
    /// Emails the member a reminder to set up two-factor authentication (no link, no
    /// secret): harmless, like reading their status.
    SendMfaReminder,
}

impl MemberAction {
    /// Actions that could keep an owner out of their own clinic.
    fn could_lock_out(self) -> bool {
        !matches!(
            self,
            MemberAction::ViewStatus
                | MemberAction::SetOverride
                | MemberAction::Reactivate
                | MemberAction::Unlock
                | MemberAction::SendMfaReminder
        )
    }
}

/// The answer to "may this actor do that to this member?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed once the actor proves their own second factor again (an admin acting
    /// on their own account).
    NeedsStepUp,
    Denied(Denial),
}

/// Why an action on a member is refused; each has its own answer for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Not this actor's to see: another organization's member, a platform admin, or
    /// (for a clinic admin) a patient. Answered like "no such member".
    NotVisible,
    /// The actor's role cannot do this (a provider, or a platform admin acting on
    /// another platform admin).
    Role,
    /// Only an owner or support may do this to the clinic's owner.
    OwnerProtected,
    /// Only an owner or support may make someone an owner.
    OwnersAppointOwners,
    /// Nobody deactivates or re-roles themself.
    NotOnYourself,
    /// The action exists only for staff members (the bypass, roles).
    NotAMember,
}

impl MemberAction {
    /// Actions that only make sense for a clinic's staff member.
    fn members_only(self) -> bool {
        matches!(self, MemberAction::GrantBypass | MemberAction::ChangeRole(_) | MemberAction::SendMfaReminder)
    }
}

/// Whether a self-action's second factor has been proved: recently, or not at all
/// needed because the actor has no second factor to prove.
pub fn self_action_proven(actor_has_factor: bool, verified_at: Option<crate::UnixTime>, now: crate::UnixTime) -> bool {
    !actor_has_factor || crate::session::recently_verified(verified_at, now)
}

impl Actor {
    /// Whether this actor may do `action` to the member `target`. `is_self` says the
    /// target is the actor's own account.
    ///
    /// - Support may act on any member; a clinic's owners and admins only on members
    ///   of their own organization, never on platform admins or patients.
    /// - An admin cannot use anything that could lock an owner out on an owner, and
    ///   cannot make anyone an owner or change an owner's role.
    /// - Nobody deactivates or re-roles themself (the clinic would lose its admin);
    ///   other actions on oneself need a fresh second factor.
    pub fn may_act_on_member(&self, target: &Target<'_>, is_self: bool, action: MemberAction) -> Verdict {
        if target.kind != AccountKind::Member {
            return match self {
                _ if action.members_only() && self.is_support() => Verdict::Denied(Denial::NotAMember),
                Actor::Operator => Verdict::Allowed,
                Actor::PlatformAdmin if target.kind == AccountKind::Patient => Verdict::Allowed,
                Actor::PlatformAdmin => Verdict::Denied(Denial::Role),
                _ => Verdict::Denied(Denial::NotVisible),
            };
        }
        if self.is_support() {
            return Verdict::Allowed;
        }
        let role = match self {
            Actor::Member { org, role } if target.org == Some(org) => *role,
            _ => return Verdict::Denied(Denial::NotVisible),
        };
        if !role.manages_members() {
            return Verdict::Denied(Denial::Role);
        }
        if is_self {
            return match action {
                MemberAction::ViewStatus | MemberAction::SendMfaReminder => Verdict::Allowed,
                MemberAction::Deactivate | MemberAction::Reactivate | MemberAction::ChangeRole(_) => {
                    Verdict::Denied(Denial::NotOnYourself)
                }
                _ => Verdict::NeedsStepUp,
            };
        }
        if role != Role::Owner {
            if target.role == Some(Role::Owner) && action.could_lock_out() {
                return Verdict::Denied(Denial::OwnerProtected);
            }
            if action == MemberAction::ChangeRole(Role::Owner) {
                return Verdict::Denied(Denial::OwnersAppointOwners);
            }
        }
        Verdict::Allowed
    }

    /// The identity note a reset by this actor carries: support must say how they
    /// verified the member (seed 002: support resets a lost phone); a clinic admin,
    /// who knows their staff, may add one.
    pub fn identity_note_for_reset(&self, note: Option<&str>) -> Result<Option<IdentityNote>, IdentityNoteError> {
        match note.map(IdentityNote::parse) {
            Some(Ok(n)) => Ok(Some(n)),
            None | Some(Err(IdentityNoteError::Missing)) if self.is_support() => Err(IdentityNoteError::Missing),
            None | Some(Err(IdentityNoteError::Missing)) => Ok(None),
            Some(Err(e)) => Err(e),
        }
    }

    /// Reading the audit trail: support everywhere (`None` = all organizations), a
    /// clinic's owners and admins for their own organization.
    pub fn may_view_audit(&self, org: Option<&OrgId>) -> bool {
        match org {
            _ if self.is_support() => true,
            Some(o) => self.manages(o).is_some(),
            None => false,
        }
    }

    /// The organization a clinic admin administers, if any.
    pub fn administered_org(&self) -> Option<&OrgId> {
        match self {
            Actor::Member { org, role } if role.manages_members() => Some(org),
            _ => None,
        }
    }

    /// Platform support (the command line or a platform admin).
    pub fn is_platform_support(&self) -> bool {
        self.is_support()
    }

    /// How an account that an audit event names (of `kind`, in `org`) is shown to
    /// this reader of the trail. Support sees every address; a clinic's readers see
    /// their own organization's people, and platform admins only as
    /// [`PLATFORM_SUPPORT_NAME`]: support staff's addresses are not the clinic's.
    pub fn sees_in_audit(&self, kind: AccountKind, org: Option<&OrgId>) -> ShownAs {
        if self.is_support() {
            return ShownAs::Address;
        }
        if kind == AccountKind::PlatformAdmin {
            return ShownAs::PlatformSupport;
        }
        match (self.administered_org(), org) {
            (Some(own), Some(theirs)) if own == theirs => ShownAs::Address,
            _ => ShownAs::IdOnly,
        }
    }
}

/// What a clinic's audit view shows for a platform admin.
pub const PLATFORM_SUPPORT_NAME: &str = "Platform support";

/// How an account named in the audit trail appears to the one reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShownAs {
    /// By email address.
    Address,
    /// As [`PLATFORM_SUPPORT_NAME`], without their address.
    PlatformSupport,
    /// By account id only: not someone this reader knows.
    IdOnly,
}

/// How support verified a member's identity before resetting their MFA ("called back
/// on the number on file"): one line of at most [`IdentityNote::MAX_CHARS`] characters.
/// It goes into the audit trail, so it is kept short and free of control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityNote(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityNoteError {
    #[error("Record how you verified the member's identity (for example: \"called back on the number on file\").")]
    Missing,
    #[error("Keep the identity note to one line of at most 500 characters.")]
    Invalid,
}

impl IdentityNote {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(s: &str) -> Result<IdentityNote, IdentityNoteError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(IdentityNoteError::Missing);
        }
        if s.chars().count() > Self::MAX_CHARS || s.chars().any(char::is_control) {
            return Err(IdentityNoteError::Invalid);
        }
        Ok(IdentityNote(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_mfa_changes_need_the_right_role_even_when_empty() {
        use crate::policy::{MfaMode, OrgMfaChange};
        let org = OrgId::parse("riverside").unwrap();
        let other = OrgId::parse("hillside").unwrap();
        let admin = Actor::Member { org: org.clone(), role: Role::Admin };
        let provider = Actor::Member { org: org.clone(), role: Role::Provider };
        let patient = Actor::Patient { org: org.clone() };
        let empty = OrgMfaChange::default();
        let mode = OrgMfaChange { mode: Some(MfaMode::Required), ..Default::default() };
        let enable = OrgMfaChange { enabled: Some(true), ..Default::default() };
        assert!(admin.may_change_org_mfa(&org, &mode));
        assert!(admin.may_change_org_mfa(&org, &empty));
        assert!(!admin.may_change_org_mfa(&other, &mode));
        assert!(!admin.may_change_org_mfa(&org, &enable), "enabling MFA is support's");
        for nobody in [&provider, &patient] {
            assert!(!nobody.may_change_org_mfa(&org, &empty));
            assert!(!nobody.may_change_org_mfa(&org, &mode));
        }
        assert!(Actor::PlatformAdmin.may_change_org_mfa(&other, &enable));
        assert!(Actor::Operator.may_change_org_mfa(&org, &mode));
    }

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).unwrap_or_else(|_| OrgId::from_name(s))
    }

    #[test]
    fn a_clinic_reads_platform_admins_in_its_audit_trail_as_platform_support() {
        use AccountKind::{Member, Patient, PlatformAdmin};
        let (riverside, hillside) = (org("riverside"), org("hillside"));
        let owner = Actor::Member { org: riverside.clone(), role: Role::Owner };
        let admin = Actor::Member { org: riverside.clone(), role: Role::Admin };
        let staff = Actor::Member { org: riverside.clone(), role: Role::Staff };
        let table: &[(&Actor, AccountKind, Option<&OrgId>, ShownAs)] = &[
            (&owner, PlatformAdmin, None, ShownAs::PlatformSupport),
            (&admin, PlatformAdmin, None, ShownAs::PlatformSupport),
            (&admin, Member, Some(&riverside), ShownAs::Address),
            (&admin, Patient, Some(&riverside), ShownAs::Address),
            (&admin, Member, Some(&hillside), ShownAs::IdOnly),
            (&staff, Member, Some(&riverside), ShownAs::IdOnly),
            (&Actor::PlatformAdmin, PlatformAdmin, None, ShownAs::Address),
            (&Actor::PlatformAdmin, Member, Some(&hillside), ShownAs::Address),
            (&Actor::Operator, PlatformAdmin, None, ShownAs::Address),
        ];
        for (reader, kind, in_org, want) in table {
            assert_eq!(reader.sees_in_audit(*kind, *in_org), *want, "{reader:?} reading {kind:?} of {in_org:?}");
        }
    }

    #[test]
    fn adding_members_by_role() {
        let a = org("clinic-a");
        let b = org("clinic-b");
        let owner = Actor::Member { org: a.clone(), role: Role::Owner };
        let admin = Actor::Member { org: a.clone(), role: Role::Admin };
        let provider = Actor::Member { org: a.clone(), role: Role::Provider };
        let patient = Actor::Patient { org: a.clone() };
        let table = [
            (&Actor::Operator, &a, Role::Owner, true),
            (&Actor::PlatformAdmin, &b, Role::Owner, true),
            (&owner, &a, Role::Owner, true),
            (&owner, &a, Role::Staff, true),
            (&owner, &b, Role::Staff, false),
            (&admin, &a, Role::Admin, true),
            (&admin, &a, Role::Owner, false),
            (&admin, &b, Role::Staff, false),
            (&provider, &a, Role::Staff, false),
            (&patient, &a, Role::Staff, false),
        ];
        for (actor, o, role, allowed) in table {
            assert_eq!(actor.may_add_member(o, role), allowed, "{actor:?} {o} {role}");
        }
        assert!(admin.may_add_patient(&a));
        assert!(!admin.may_add_patient(&b));
        assert!(!provider.may_add_patient(&a));
        assert!(!admin.may_administer_platform());
        assert!(Actor::PlatformAdmin.may_administer_platform());
    }

    #[test]
    fn password_resets_by_role() {
        let a = org("clinic-a");
        let b = org("clinic-b");
        let owner = Actor::Member { org: a.clone(), role: Role::Owner };
        let admin = Actor::Member { org: a.clone(), role: Role::Admin };
        let staff = Actor::Member { org: a.clone(), role: Role::Staff };
        let m = |org, role| Target { kind: AccountKind::Member, org: Some(org), role: Some(role) };
        let pat = Target { kind: AccountKind::Patient, org: Some(&a), role: None };
        let padmin = Target { kind: AccountKind::PlatformAdmin, org: None, role: None };
        let pat_b = Target { kind: AccountKind::Patient, org: Some(&b), role: None };
        let patient = Actor::Patient { org: a.clone() };
        use Verdict::{Allowed, Denied, NeedsStepUp};
        // (actor, target, is the actor's own account, verdict for a reset email)
        let table = [
            // support: any clinic member or patient; the operator anyone
            (&Actor::PlatformAdmin, m(&b, Role::Owner), false, Allowed),
            (&Actor::PlatformAdmin, pat.clone(), false, Allowed),
            (&Actor::Operator, padmin.clone(), false, Allowed),
            (&Actor::Operator, pat.clone(), false, Allowed),
            // one platform admin cannot lock another out (as with an MFA reset)
            (&Actor::PlatformAdmin, padmin.clone(), false, Denied(Denial::Role)),
            (&Actor::PlatformAdmin, padmin.clone(), true, Denied(Denial::Role)),
            // a clinic's owners and admins: their own members, per the member rules
            (&owner, m(&a, Role::Owner), false, Allowed),
            (&owner, m(&a, Role::Owner), true, NeedsStepUp),
            (&owner, m(&b, Role::Staff), false, Denied(Denial::NotVisible)),
            (&admin, m(&a, Role::Staff), false, Allowed),
            (&admin, m(&a, Role::Admin), true, NeedsStepUp),
            (&admin, m(&a, Role::Owner), false, Denied(Denial::OwnerProtected)),
            (&admin, padmin.clone(), false, Denied(Denial::NotVisible)),
            // "send the patient a reset email": their own clinic's patients only
            (&owner, pat.clone(), false, Allowed),
            (&admin, pat.clone(), false, Allowed),
            (&admin, pat_b.clone(), false, Denied(Denial::NotVisible)),
            // everyone else: nobody
            (&staff, m(&a, Role::Staff), false, Denied(Denial::Role)),
            (&staff, pat.clone(), false, Denied(Denial::NotVisible)),
            (&patient, pat.clone(), false, Denied(Denial::NotVisible)),
            (&patient, m(&a, Role::Staff), false, Denied(Denial::NotVisible)),
        ];
        for (actor, target, is_self, verdict) in table {
            assert_eq!(actor.may_send_password_reset(&target, is_self), verdict, "{actor:?} {target:?} self={is_self}");
        }
        // Only the shell ever sees a reset link or chooses someone's password.
        let table = [
            (&Actor::Operator, true),
            (&Actor::PlatformAdmin, false),
            (&owner, false),
            (&admin, false),
            (&staff, false),
            (&patient, false),
        ];
        for (actor, allowed) in table {
            assert_eq!(actor.may_handle_password_for_others(), allowed, "{actor:?}");
        }
        assert!(owner.may_view_org(&a) && !owner.may_view_org(&b));
        assert!(admin.may_set_org_policy(&a) && !admin.may_set_org_policy(&b) && !staff.may_set_org_policy(&a));
        assert!(admin.may_set_member_mfa(&m(&a, Role::Owner)));
        assert!(!admin.may_set_member_mfa(&m(&b, Role::Staff)));
        assert!(!staff.may_set_member_mfa(&m(&a, Role::Staff)));
        assert!(!admin.may_set_member_mfa(&pat));
        assert!(Actor::PlatformAdmin.may_set_member_mfa(&m(&b, Role::Staff)));
        assert!(Actor::Patient { org: a.clone() }.may_view_org(&a));
    }

    #[test]
    fn member_actions_respect_org_owner_and_self() {
        use MemberAction::*;
        let a = org("clinic-a");
        let b = org("clinic-b");
        let owner = Actor::Member { org: a.clone(), role: Role::Owner };
        let admin = Actor::Member { org: a.clone(), role: Role::Admin };
        let provider = Actor::Member { org: a.clone(), role: Role::Provider };
        let m = |org, role| Target { kind: AccountKind::Member, org: Some(org), role: Some(role) };
        let padmin = Target { kind: AccountKind::PlatformAdmin, org: None, role: None };
        let pat = Target { kind: AccountKind::Patient, org: Some(&a), role: None };
        let all = [ViewStatus, SetOverride, GrantBypass, ResetMfa, RevokeSessions, Deactivate, Reactivate, Unlock];
        for action in all {
            // cross-organization, platform admins and patients: never for a clinic admin
            let hidden = Verdict::Denied(Denial::NotVisible);
            assert_eq!(admin.may_act_on_member(&m(&b, Role::Staff), false, action), hidden, "{action:?}");
            assert_eq!(owner.may_act_on_member(&padmin, false, action), hidden, "{action:?}");
            assert_eq!(admin.may_act_on_member(&pat, false, action), hidden, "{action:?}");
            let role = Verdict::Denied(Denial::Role);
            assert_eq!(provider.may_act_on_member(&m(&a, Role::Staff), false, action), role);
            assert_eq!(provider.may_act_on_member(&m(&a, Role::Owner), false, action), role, "not 'owner protected'");
            assert_eq!(admin.may_act_on_member(&m(&a, Role::Staff), false, action), Verdict::Allowed);
            assert_eq!(Actor::PlatformAdmin.may_act_on_member(&m(&b, Role::Owner), false, action), Verdict::Allowed);
            assert_eq!(owner.may_act_on_member(&m(&a, Role::Owner), false, action), Verdict::Allowed);
        }
        // owner protection against admins
        for action in [GrantBypass, ResetMfa, RevokeSessions, Deactivate, ChangeRole(Role::Staff)] {
            let protected = Verdict::Denied(Denial::OwnerProtected);
            assert_eq!(admin.may_act_on_member(&m(&a, Role::Owner), false, action), protected, "{action:?}");
        }
        assert_eq!(admin.may_act_on_member(&m(&a, Role::Owner), false, ViewStatus), Verdict::Allowed);
        assert_eq!(
            admin.may_act_on_member(&m(&a, Role::Staff), false, ChangeRole(Role::Owner)),
            Verdict::Denied(Denial::OwnersAppointOwners)
        );
        assert_eq!(admin.may_act_on_member(&m(&a, Role::Staff), false, ChangeRole(Role::Admin)), Verdict::Allowed);
        assert_eq!(owner.may_act_on_member(&m(&a, Role::Staff), false, ChangeRole(Role::Owner)), Verdict::Allowed);
        // acting on oneself
        for action in [SetOverride, GrantBypass, ResetMfa, RevokeSessions] {
            assert_eq!(admin.may_act_on_member(&m(&a, Role::Admin), true, action), Verdict::NeedsStepUp);
            assert_eq!(owner.may_act_on_member(&m(&a, Role::Owner), true, action), Verdict::NeedsStepUp);
        }
        for action in [Deactivate, ChangeRole(Role::Staff)] {
            assert_eq!(
                owner.may_act_on_member(&m(&a, Role::Owner), true, action),
                Verdict::Denied(Denial::NotOnYourself)
            );
        }
        assert_eq!(Actor::Operator.may_act_on_member(&padmin, false, ResetMfa), Verdict::Allowed);
        assert_eq!(Actor::PlatformAdmin.may_act_on_member(&padmin, false, ResetMfa), Verdict::Denied(Denial::Role));
        assert_eq!(Actor::PlatformAdmin.may_act_on_member(&pat, false, ResetMfa), Verdict::Allowed);
        // The bypass and roles are for staff only, even for support.
        for who in [&pat, &padmin] {
            for action in [GrantBypass, ChangeRole(Role::Staff)] {
                assert_eq!(
                    Actor::PlatformAdmin.may_act_on_member(who, false, action),
                    Verdict::Denied(Denial::NotAMember)
                );
                assert_eq!(Actor::Operator.may_act_on_member(who, false, action), Verdict::Denied(Denial::NotAMember));
            }
        }
    }

    #[test]
    fn only_the_operator_sees_an_invitation_link() {
        let a = org("clinic-a");
        let table = [
            (Actor::Operator, true),
            (Actor::PlatformAdmin, false),
            (Actor::Member { org: a.clone(), role: Role::Owner }, false),
            (Actor::Member { org: a.clone(), role: Role::Admin }, false),
            (Actor::Member { org: a.clone(), role: Role::Provider }, false),
            (Actor::Member { org: a.clone(), role: Role::Staff }, false),
            (Actor::Patient { org: a.clone() }, false),
        ];
        for (actor, sees) in table {
            assert_eq!(actor.may_see_invitation_link(), sees, "{actor:?}");
        }
    }

    #[test]
    fn invitations_are_resent_by_whoever_may_invite_that_account() {
        use Verdict::{Allowed, Denied};
        let a = org("clinic-a");
        let b = org("clinic-b");
        let owner = Actor::Member { org: a.clone(), role: Role::Owner };
        let admin = Actor::Member { org: a.clone(), role: Role::Admin };
        let provider = Actor::Member { org: a.clone(), role: Role::Provider };
        let patient = Actor::Patient { org: a.clone() };
        let m = |org, role| Target { kind: AccountKind::Member, org: Some(org), role: Some(role) };
        let pat = Target { kind: AccountKind::Patient, org: Some(&a), role: None };
        let pat_b = Target { kind: AccountKind::Patient, org: Some(&b), role: None };
        let padmin = Target { kind: AccountKind::PlatformAdmin, org: None, role: None };
        let table = [
            (&Actor::Operator, padmin.clone(), Allowed),
            (&Actor::PlatformAdmin, padmin.clone(), Allowed),
            (&Actor::PlatformAdmin, m(&b, Role::Owner), Allowed),
            (&Actor::PlatformAdmin, pat_b.clone(), Allowed),
            (&owner, m(&a, Role::Owner), Allowed),
            (&owner, m(&a, Role::Staff), Allowed),
            (&owner, pat.clone(), Allowed),
            (&admin, m(&a, Role::Staff), Allowed),
            (&admin, m(&a, Role::Admin), Allowed),
            (&admin, pat.clone(), Allowed),
            (&admin, m(&a, Role::Owner), Denied(Denial::OwnerProtected)),
            (&admin, m(&b, Role::Staff), Denied(Denial::NotVisible)),
            (&admin, pat_b.clone(), Denied(Denial::NotVisible)),
            (&admin, padmin.clone(), Denied(Denial::NotVisible)),
            (&provider, m(&a, Role::Staff), Denied(Denial::Role)),
            (&provider, pat.clone(), Denied(Denial::Role)),
            (&patient, pat.clone(), Denied(Denial::NotVisible)),
            (&patient, m(&a, Role::Staff), Denied(Denial::NotVisible)),
        ];
        for (actor, target, verdict) in table {
            assert_eq!(actor.may_resend_invitation(&target), verdict, "{actor:?} {target:?}");
        }
    }

    #[test]
    fn support_must_note_how_identity_was_verified_and_admins_may() {
        let admin = Actor::Member { org: org("clinic-a"), role: Role::Admin };
        for support in [Actor::PlatformAdmin, Actor::Operator] {
            assert_eq!(support.identity_note_for_reset(None), Err(IdentityNoteError::Missing));
            assert_eq!(support.identity_note_for_reset(Some("  ")), Err(IdentityNoteError::Missing));
            assert!(support.identity_note_for_reset(Some("video call, badge shown")).unwrap().is_some());
        }
        assert_eq!(admin.identity_note_for_reset(None), Ok(None));
        assert_eq!(admin.identity_note_for_reset(Some(" ")), Ok(None));
        assert_eq!(admin.identity_note_for_reset(Some("x\ny")), Err(IdentityNoteError::Invalid));
    }

    #[test]
    fn acting_on_oneself_needs_a_recent_proof_when_there_is_a_factor() {
        let now = crate::UnixTime(1_800_000_000);
        assert!(self_action_proven(false, None, now), "nothing to prove");
        assert!(!self_action_proven(true, None, now));
        assert!(self_action_proven(true, Some(crate::UnixTime(now.0 - 60)), now));
        assert!(!self_action_proven(true, Some(crate::UnixTime(now.0 - 11 * 60)), now));
    }

    #[test]
    fn audit_trail_visibility() {
        let a = org("clinic-a");
        let b = org("clinic-b");
        let admin = Actor::Member { org: a.clone(), role: Role::Admin };
        let staff = Actor::Member { org: a.clone(), role: Role::Staff };
        assert!(admin.may_view_audit(Some(&a)));
        assert!(!admin.may_view_audit(Some(&b)));
        assert!(!admin.may_view_audit(None));
        assert!(!staff.may_view_audit(Some(&a)));
        assert!(Actor::PlatformAdmin.may_view_audit(None));
        assert!(Actor::Operator.may_view_audit(Some(&b)));
        assert_eq!(admin.administered_org(), Some(&a));
        assert_eq!(staff.administered_org(), None);
    }

    #[test]
    fn identity_notes_are_one_bounded_line() {
        assert_eq!(IdentityNote::parse("  called back  ").map(|n| n.0), Ok("called back".to_owned()));
        assert_eq!(IdentityNote::parse(" "), Err(IdentityNoteError::Missing));
        assert!(IdentityNote::parse(&"a".repeat(500)).is_ok());
        assert_eq!(IdentityNote::parse(&"a".repeat(501)), Err(IdentityNoteError::Invalid));
        assert_eq!(IdentityNote::parse("line one\nline two"), Err(IdentityNoteError::Invalid));
    }
}

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

    /// Setting a member's two-factor override. Support for anyone; owners and admins
    /// for their own organization's members.
    pub fn may_set_member_mfa(&self, target: &Target<'_>) -> bool {
        if self.is_support() {
            return true;
        }
        target.kind == AccountKind::Member && target.org.is_some_and(|o| self.manages(o).is_some())
    }

    /// Issuing a password-reset link for `target`. Support may for anyone; clinic
    /// owners and admins for their own organization's members and patients, but an
    /// admin not for an owner, and nobody in a clinic for a platform admin.
    pub fn may_reset_password(&self, target: &Target<'_>) -> bool {
        if self.is_support() {
            return true;
        }
        let Some(org) = target.org else { return false };
        match (self.manages(org), target.kind) {
            (Some(_), AccountKind::Patient) => true,
            (Some(Role::Owner), AccountKind::Member) => true,
            (Some(_), AccountKind::Member) => target.role != Some(Role::Owner),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).unwrap_or_else(|_| OrgId::from_name(s))
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
        let table = [
            (&Actor::PlatformAdmin, m(&b, Role::Owner), true),
            (&Actor::Operator, padmin.clone(), true),
            (&owner, m(&a, Role::Owner), true),
            (&owner, m(&b, Role::Staff), false),
            (&admin, m(&a, Role::Staff), true),
            (&admin, m(&a, Role::Owner), false),
            (&admin, pat.clone(), true),
            (&admin, padmin.clone(), false),
            (&staff, m(&a, Role::Staff), false),
        ];
        for (actor, target, allowed) in table {
            assert_eq!(actor.may_reset_password(&target), allowed, "{actor:?} {target:?}");
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
}

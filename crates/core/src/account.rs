//! Who an account belongs to: organizations, members and their roles, patients and
//! platform admins.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be one of: {allowed}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub allowed: &'static str,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { what: $what, allowed: concat!($($s, " "),+) }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// A tenant is a clinic (many users) or a solo provider.
    OrgKind, "organization kind", { Clinic => "clinic", Solo => "solo" }
);

string_enum!(
    /// A member's role inside one organization.
    Role, "role", { Owner => "owner", Admin => "admin", Provider => "provider", Staff => "staff" }
);

string_enum!(
    /// What an account is.
    AccountKind, "account kind", { Member => "member", Patient => "patient", PlatformAdmin => "platform_admin" }
);

string_enum!(
    /// Which sign-in page an account uses. Staff (members and platform admins) sign in
    /// at `/login`; patients at the patient portal. An email is unique within a realm.
    Realm, "realm", { Staff => "staff", Patient => "patient" }
);

string_enum!(
    /// Whether an account may sign in.
    AccountStatus, "account status", { Active => "active", Deactivated => "deactivated" }
);

impl AccountKind {
    pub fn realm(self) -> Realm {
        match self {
            AccountKind::Member | AccountKind::PlatformAdmin => Realm::Staff,
            AccountKind::Patient => Realm::Patient,
        }
    }
}

impl Role {
    /// Owners and admins manage their organization's members.
    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        for k in OrgKind::ALL {
            assert_eq!(k.as_str().parse::<OrgKind>(), Ok(*k));
        }
        let err = "doctor".parse::<Role>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("role must be one of: owner admin provider staff "));
    }

    #[test]
    fn patients_have_their_own_realm() {
        assert_eq!(AccountKind::Patient.realm(), Realm::Patient);
        assert_eq!(AccountKind::Member.realm(), Realm::Staff);
        assert_eq!(AccountKind::PlatformAdmin.realm(), Realm::Staff);
    }

    #[test]
    fn only_owners_and_admins_manage_members() {
        assert!(Role::Owner.manages_members());
        assert!(Role::Admin.manages_members());
        assert!(!Role::Provider.manages_members());
        assert!(!Role::Staff.manages_members());
    }
}

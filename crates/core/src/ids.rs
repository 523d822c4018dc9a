//! Identifiers that can only hold valid values.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an organization id is 3 to 63 lowercase letters, digits and single hyphens")]
    BadOrgId,
    #[error("not a valid account id")]
    BadAccountId,
}

/// An organization's id: a readable slug such as `riverside-clinic`, used in URLs
/// and by support staff on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(s: &str) -> Result<OrgId, IdError> {
        let ok_len = (3..=63).contains(&s.len());
        let ok_chars = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_hyphens = !s.starts_with('-') && !s.ends_with('-') && !s.contains("--");
        if ok_len && ok_chars && ok_hyphens { Ok(OrgId(s.to_owned())) } else { Err(IdError::BadOrgId) }
    }

    /// Derives an id from an organization's display name: "Riverside Clinic, LLC"
    /// becomes `riverside-clinic-llc`. Names with too few letters get a prefix.
    pub fn from_name(name: &str) -> OrgId {
        let mut slug = String::new();
        for c in name.chars().flat_map(|c| c.to_lowercase()) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
            if slug.len() >= 55 {
                break;
            }
        }
        let slug = slug.trim_end_matches('-').to_owned();
        let slug = if slug.len() < 3 { format!("org-{slug}") } else { slug };
        OrgId::parse(slug.trim_end_matches('-')).unwrap_or_else(|_| OrgId("org".to_owned()))
    }

    /// The same id with a numeric suffix, for when the derived one is taken. The base
    /// is cut to 55 characters, less for a suffix of more than 7 digits, so that the
    /// result stays within the 63 that [`OrgId::parse`] allows.
    pub fn with_suffix(&self, n: u32) -> OrgId {
        let suffix = format!("-{n}");
        let keep = 55.min(63_usize.saturating_sub(suffix.len()));
        let base: String = self.0.chars().take(keep).collect();
        OrgId(format!("{}{suffix}", base.trim_end_matches('-')))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's, patient's or platform admin's id (a random UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AccountId(uuid::Uuid);

impl AccountId {
    pub fn new_random() -> AccountId {
        AccountId(uuid::Uuid::new_v4())
    }
    pub fn parse(s: &str) -> Result<AccountId, IdError> {
        uuid::Uuid::parse_str(s).map(AccountId).map_err(|_| IdError::BadAccountId)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_accept_slugs_only() {
        for ok in ["abc", "riverside-clinic", "a1-b2", &"x".repeat(63)] {
            assert!(OrgId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ab", "Riverside", "a_b", "-abc", "abc-", "a--b", "ümlaut", &"x".repeat(64), "a b c"] {
            assert_eq!(OrgId::parse(bad), Err(IdError::BadOrgId), "{bad}");
        }
    }

    #[test]
    fn org_id_is_derived_from_a_name() {
        assert_eq!(OrgId::from_name("Riverside Clinic, LLC").as_str(), "riverside-clinic-llc");
        assert_eq!(OrgId::from_name("  Dr. Ng  ").as_str(), "dr-ng");
        assert_eq!(OrgId::from_name("Ö").as_str(), "org");
        assert_eq!(OrgId::from_name("ab").as_str(), "org-ab");
        assert!(OrgId::parse(OrgId::from_name(&"word ".repeat(40)).as_str()).is_ok());
        assert_eq!(OrgId::from_name("Riverside").with_suffix(2).as_str(), "riverside-2");
    }

    #[test]
    fn suffixed_ids_stay_within_63_characters() {
        // Found by the property tests: a 55-character base and a suffix of 8 or more
        // digits made an id that `parse` refuses.
        let long = OrgId::parse(&"x".repeat(63)).unwrap();
        assert_eq!(long.with_suffix(2).as_str(), format!("{}-2", "x".repeat(55)));
        assert_eq!(long.with_suffix(9_999_999).as_str(), format!("{}-9999999", "x".repeat(55)));
        let biggest = long.with_suffix(u32::MAX);
        assert_eq!(biggest.as_str(), format!("{}-4294967295", "x".repeat(52)));
        assert_eq!(OrgId::parse(biggest.as_str()), Ok(biggest));
        let hyphen_at_cut = OrgId::parse(&format!("{}-b", "a".repeat(52))).unwrap();
        assert_eq!(hyphen_at_cut.with_suffix(123_456_789).as_str(), format!("{}-123456789", "a".repeat(52)));
    }

    #[test]
    fn account_ids_round_trip() {
        let id = AccountId::new_random();
        assert_eq!(AccountId::parse(&id.to_string()), Ok(id));
        assert_eq!(AccountId::parse("nope"), Err(IdError::BadAccountId));
    }
}

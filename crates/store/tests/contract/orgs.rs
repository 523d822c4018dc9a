//! Organizations, their MFA policy, and what the Users page reads about members.

use clinic_auth_core::policy::GraceDays;
use clinic_auth_core::{AccountKind, FactorKind, MethodSet, MfaMode, OrgId, OrgKind, OrgMfa};
use clinic_auth_store::{LogoInfo, Org, OrgBranding, OrgLogo, StoreError};

use crate::harness::{NOW, TestStore, audit, new_factor};

contract!(
    orgs_round_trip_in_name_order,
    org_mfa_policy_is_set_only_for_a_known_org,
    the_grace_period_and_the_start_of_mandatory_2fa_are_kept,
    org_branding_is_set_cleared_and_audited,
    org_logo_is_stored_replaced_and_removed,
    member_security_reads_only_members
);

async fn orgs_round_trip_in_name_order(t: TestStore) {
    let solo = Org {
        id: OrgId::parse("b-solo").unwrap(),
        name: "Alpha".into(),
        kind: OrgKind::Solo,
        created_at: NOW,
        mfa: OrgMfa {
            enabled: true,
            mode: MfaMode::Optional,
            methods: MethodSet::only(FactorKind::Sms),
            grace_days: GraceDays::new(3).unwrap(),
            required_since: None,
        },
    };
    t.insert_org(&solo, &audit("org_created", Some(&solo.id), None)).await.unwrap();
    let clinic = t.org("a-clinic").await;
    assert_eq!(t.get_org(&solo.id).await.unwrap(), Some(solo.clone()));
    assert_eq!(t.get_org(&OrgId::parse("nobody").unwrap()).await.unwrap(), None);
    let names: Vec<String> = t.list_orgs().await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["Alpha", "Clinic a-clinic"]);

    // The id is unique; the refused insert writes no event either.
    let again = Org { name: "Another".into(), ..clinic.clone() };
    let err = t.insert_org(&again, &audit("org_created", Some(&clinic.id), None)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("organization")), "{err:?}");
    assert_eq!(t.audit_kinds(Some(&clinic.id)).await, ["org_created"]);
    assert!(t.audit_intact().await);
}

async fn org_branding_is_set_cleared_and_audited(t: TestStore) {
    let org = t.org("riverside").await;
    let nobody = OrgId::parse("nobody").unwrap();
    assert_eq!(t.get_org_branding(&org.id).await.unwrap(), Some(OrgBranding::default()));
    assert_eq!(t.get_org_branding(&nobody).await.unwrap(), None);

    let event = audit("org_branding_changed", Some(&org.id), None);
    assert!(t.set_org_branding(&org.id, Some("Riverside Family Clinic"), Some("#0b5d3b"), &event).await.unwrap());
    let set = t.get_org_branding(&org.id).await.unwrap().unwrap();
    assert_eq!(set.display_name.as_deref(), Some("Riverside Family Clinic"));
    assert_eq!(set.accent_color.as_deref(), Some("#0b5d3b"));
    assert!(set.is_set() && set.logo.is_none());
    // The organization itself is untouched.
    assert_eq!(t.get_org(&org.id).await.unwrap().map(|o| o.name), Some(org.name.clone()));

    // Cleared parts read back as unset; an unknown organization changes nothing.
    assert!(t.set_org_branding(&org.id, None, Some("#0b5d3b"), &event).await.unwrap());
    assert_eq!(t.get_org_branding(&org.id).await.unwrap().unwrap().display_name, None);
    assert!(!t.set_org_branding(&nobody, Some("X"), None, &audit("org_branding_changed", None, None)).await.unwrap());
    assert_eq!(t.audit_kinds(Some(&org.id)).await.iter().filter(|k| *k == "org_branding_changed").count(), 2);
    assert!(t.audit_intact().await);
}

async fn org_logo_is_stored_replaced_and_removed(t: TestStore) {
    let org = t.org("riverside").await;
    let other = t.org("lakeside").await;
    let nobody = OrgId::parse("nobody").unwrap();
    let event = audit("org_branding_changed", Some(&org.id), None);
    assert_eq!(t.get_org_logo(&org.id).await.unwrap(), None);
    assert!(!t.delete_org_logo(&org.id, &event).await.unwrap(), "nothing to remove");

    // Every byte value survives the round trip (BLOB / BYTEA).
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let png = OrgLogo { content_type: "image/png".into(), bytes, sha256: "ab".repeat(32), updated_at: NOW };
    assert!(t.put_org_logo(&org.id, &png, &event).await.unwrap());
    assert_eq!(t.get_org_logo(&org.id).await.unwrap(), Some(png.clone()));
    assert_eq!(t.get_org_logo(&other.id).await.unwrap(), None);
    let info = LogoInfo { content_type: "image/png".into(), sha256: "ab".repeat(32), updated_at: NOW };
    assert_eq!(t.get_org_branding(&org.id).await.unwrap().unwrap().logo, Some(info));

    // A new upload replaces the old one.
    let later = clinic_auth_core::UnixTime(NOW.0 + 60);
    let webp = OrgLogo {
        content_type: "image/webp".into(),
        bytes: b"RIFF".to_vec(),
        sha256: "cd".repeat(32),
        updated_at: later,
    };
    assert!(t.put_org_logo(&org.id, &webp, &event).await.unwrap());
    assert_eq!(t.get_org_logo(&org.id).await.unwrap(), Some(webp.clone()));
    assert!(!t.put_org_logo(&nobody, &webp, &audit("org_branding_changed", None, None)).await.unwrap());

    assert!(t.delete_org_logo(&org.id, &event).await.unwrap());
    assert_eq!(t.get_org_logo(&org.id).await.unwrap(), None);
    assert_eq!(t.get_org_branding(&org.id).await.unwrap().unwrap().logo, None);
    assert_eq!(t.audit_kinds(Some(&org.id)).await.iter().filter(|k| *k == "org_branding_changed").count(), 3);
    assert!(t.audit_intact().await);
}

async fn org_mfa_policy_is_set_only_for_a_known_org(t: TestStore) {
    let org = t.org("riverside").await;
    let mfa = OrgMfa {
        enabled: true,
        mode: MfaMode::Required,
        methods: MethodSet::authenticator_only(),
        ..OrgMfa::default()
    };
    assert!(t.set_org_mfa(&org.id, &mfa, &audit("mfa_policy", Some(&org.id), None)).await.unwrap());
    assert_eq!(t.get_org(&org.id).await.unwrap().unwrap().mfa, mfa);

    let nobody = OrgId::parse("nobody").unwrap();
    assert!(!t.set_org_mfa(&nobody, &mfa, &audit("mfa_policy", Some(&nobody), None)).await.unwrap());
    assert!(t.audit_kinds(Some(&nobody)).await.is_empty(), "no event for a change that did not happen");
    assert_eq!(t.audit_kinds(Some(&org.id)).await, ["org_created", "mfa_policy"]);
}

async fn the_grace_period_and_the_start_of_mandatory_2fa_are_kept(t: TestStore) {
    let org = t.org("riverside").await;
    assert_eq!(t.get_org(&org.id).await.unwrap().unwrap().mfa.grace_days, GraceDays::NONE, "none by default");
    let mfa = OrgMfa {
        enabled: true,
        mode: MfaMode::Required,
        methods: MethodSet::authenticator_only(),
        grace_days: GraceDays::new(30).unwrap(),
        required_since: Some(NOW.plus_secs(5)),
    };
    assert!(t.set_org_mfa(&org.id, &mfa, &audit("mfa_policy", Some(&org.id), None)).await.unwrap());
    assert_eq!(t.get_org(&org.id).await.unwrap().unwrap().mfa, mfa);
    assert_eq!(t.list_orgs().await.unwrap()[0].mfa, mfa);
    // Mandatory 2FA off: the time is cleared, the grace period kept.
    let off = OrgMfa { mode: MfaMode::Optional, required_since: None, ..mfa };
    assert!(t.set_org_mfa(&org.id, &off, &audit("mfa_policy", Some(&org.id), None)).await.unwrap());
    assert_eq!(t.get_org(&org.id).await.unwrap().unwrap().mfa, off);
}

async fn member_security_reads_only_members(t: TestStore) {
    let org = t.org("riverside").await;
    let other = t.org("elsewhere").await;
    let a = t.member(&org, "a@riverside.test").await;
    let b = t.member(&org, "b@riverside.test").await;
    let outsider = t.member(&other, "c@elsewhere.test").await;
    let admin = t.account(AccountKind::PlatformAdmin, None, "support@platform.test").await;
    for (who, id) in [(&a, "fa"), (&outsider, "fo"), (&admin, "fp")] {
        let event = audit("factor_enrolled", who.org_id.as_ref(), Some(who.id));
        t.enroll_factor(&new_factor(who, FactorKind::Authenticator, id), Some("rc-hash"), &event).await.unwrap();
    }
    t.session(&a, "a1").await;
    t.session(&a, "a2").await;
    t.session(&b, "b1").await;
    t.session(&outsider, "o1").await;

    let s = t.org_member_security(&org.id).await.unwrap();
    assert_eq!(s.factors.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["fa"]);
    assert_eq!(s.with_recovery_code, [a.id]);
    let mut sessions = s.sessions.clone();
    sessions.sort_by_key(|(id, _)| id.to_string());
    let mut want = vec![(a.id, 2), (b.id, 1)];
    want.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(sessions, want);
}

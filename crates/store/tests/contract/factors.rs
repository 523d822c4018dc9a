//! Second factors: pending and enrolled ones, TOTP steps, the recovery code, an
//! account's MFA settings, and the admin's one-time bypass.

use clinic_auth_core::{AccountId, FactorKind, MemberOverride};
use clinic_auth_store::{Bypass, PendingFactor};

use crate::harness::{NOW, TestStore, audit, audit_via, new_factor, new_session, sealed, successes};

contract!(
    pending_factors_are_replaced_per_kind,
    enrolling_replaces_a_factor_of_the_same_kind,
    a_totp_step_is_accepted_once,
    removing_factors_one_kind_or_all,
    a_recovery_code_is_swapped_once,
    mfa_override_and_preferred_factor,
    a_bypass_is_used_once,
);

async fn pending_factors_are_replaced_per_kind(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let pending = |tag, bound: &str| PendingFactor {
        account_id: m.id,
        kind: FactorKind::Authenticator,
        secret: sealed(tag),
        created_at: NOW,
        expires_at: NOW.plus_secs(600 + i64::from(tag)),
        bound_to: bound.to_owned(),
    };
    t.put_pending_factor(&pending(1, "flow-a")).await.unwrap();
    t.put_pending_factor(&pending(2, "flow-b")).await.unwrap();
    assert_eq!(t.get_pending_factor(m.id, FactorKind::Authenticator).await.unwrap(), Some(pending(2, "flow-b")));
    assert_eq!(t.get_pending_factor(m.id, FactorKind::Sms).await.unwrap(), None);
}

async fn enrolling_replaces_a_factor_of_the_same_kind(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let keep = t.session(&m, "keep").await;
    let other = t.session(&m, "other").await;
    let pending = PendingFactor {
        account_id: m.id,
        kind: FactorKind::Authenticator,
        secret: sealed(1),
        created_at: NOW,
        expires_at: NOW.plus_secs(600),
        bound_to: "x".into(),
    };
    t.put_pending_factor(&pending).await.unwrap();

    let first = new_factor(&m, FactorKind::Authenticator, "totp-1");
    let event = audit_via("factor_enrolled", &m, None, Some(&keep));
    t.enroll_factor(&first, Some("rc-1"), &event).await.unwrap();
    assert_eq!(t.get_pending_factor(m.id, FactorKind::Authenticator).await.unwrap(), None);
    assert_eq!(t.recovery_code_hash(m.id).await.unwrap().as_deref(), Some("rc-1"));
    assert_eq!(t.get_session(&other).await.unwrap(), None, "other sessions end");
    assert!(t.get_session(&keep).await.unwrap().is_some(), "the one it was made through stays");
    assert_eq!(t.reload(&m).await.security_stamp, m.security_stamp + 1);

    let sms = new_factor(&m, FactorKind::Sms, "sms-1");
    t.enroll_factor(&sms, None, &event).await.unwrap();
    let second = new_factor(&m, FactorKind::Authenticator, "totp-2");
    t.enroll_factor(&second, None, &event).await.unwrap();
    let factors = t.list_factors(m.id).await.unwrap();
    let ids: Vec<&str> = factors.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["sms-1", "totp-2"], "a new authenticator replaces the old one");
    let totp = &factors[1];
    assert_eq!((totp.account_id, totp.kind, totp.secret.clone()), (m.id, FactorKind::Authenticator, Some(sealed(1))));
    assert_eq!((totp.created_at, totp.last_used_at, totp.passkey.clone()), (NOW, Some(NOW), None));
    assert_eq!(factors[0].target.as_deref(), Some("+15005550006"));
    assert_eq!(t.recovery_code_hash(m.id).await.unwrap().as_deref(), Some("rc-1"), "kept without a new one");
    assert_eq!(t.list_factors(AccountId::new_random()).await.unwrap(), []);
}

async fn a_totp_step_is_accepted_once(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let factor = new_factor(&m, FactorKind::Authenticator, "totp");
    t.enroll_factor(&factor, None, &audit("factor_enrolled", Some(&org.id), Some(m.id))).await.unwrap();
    let event = audit("totp_used", Some(&org.id), Some(m.id));
    let at = NOW.plus_secs(30);

    assert!(t.use_totp_step("totp", 10, at, &event).await.unwrap());
    assert!(!t.use_totp_step("totp", 10, at, &event).await.unwrap(), "a replay");
    assert!(!t.use_totp_step("totp", 9, at, &event).await.unwrap(), "an older step");
    assert!(!t.use_totp_step("nothing", 11, at, &event).await.unwrap());
    let results = t
        .concurrently(8, |store, _| {
            let event = event.clone();
            async move { store.use_totp_step("totp", 11, at, &event).await.unwrap() }
        })
        .await;
    assert_eq!(successes(&results), 1, "one process accepts a step: {results:?}");
    let stored = &t.list_factors(m.id).await.unwrap()[0];
    assert_eq!((stored.last_used_step, stored.last_used_at), (Some(11), Some(at)));
    let used = t.audit_kinds(Some(&org.id)).await.into_iter().filter(|k| k == "totp_used").count();
    assert_eq!(used, 2, "an event for each accepted step only");
}

async fn removing_factors_one_kind_or_all(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("factor_changed", Some(&org.id), Some(m.id));
    t.enroll_factor(&new_factor(&m, FactorKind::Authenticator, "totp"), Some("rc"), &event).await.unwrap();
    t.enroll_factor(&new_factor(&m, FactorKind::Email, "email"), None, &event).await.unwrap();
    t.enroll_factor(&new_factor(&m, FactorKind::Sms, "sms"), None, &event).await.unwrap();
    t.set_preferred_factor(m.id, Some(FactorKind::Sms)).await.unwrap();
    t.reserve_factor_attempt(m.id, FactorKind::Sms, 10).await.unwrap();
    let pending = PendingFactor {
        account_id: m.id,
        kind: FactorKind::Passkey,
        secret: sealed(3),
        created_at: NOW,
        expires_at: NOW.plus_secs(600),
        bound_to: "x".into(),
    };
    t.put_pending_factor(&pending).await.unwrap();
    let stamp = t.reload(&m).await.security_stamp;

    assert_eq!(t.remove_factors(m.id, Some(FactorKind::Email), &event).await.unwrap(), 1);
    let kinds: Vec<FactorKind> = t.list_factors(m.id).await.unwrap().iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [FactorKind::Sms, FactorKind::Authenticator], "by creation, then id");
    assert_eq!(t.recovery_code_hash(m.id).await.unwrap().as_deref(), Some("rc"), "one kind leaves the rest");
    assert_eq!(t.reload(&m).await.security_stamp, stamp + 1);

    assert_eq!(t.remove_factors(m.id, None, &event).await.unwrap(), 2);
    assert_eq!(t.list_factors(m.id).await.unwrap(), []);
    assert_eq!(t.recovery_code_hash(m.id).await.unwrap(), None);
    assert_eq!(t.get_pending_factor(m.id, FactorKind::Passkey).await.unwrap(), None);
    assert_eq!(t.reload(&m).await.preferred_factor, None);
    assert_eq!(t.factor_failures(m.id).await.unwrap(), []);
    assert_eq!(t.reload(&m).await.security_stamp, stamp + 2);
}

async fn a_recovery_code_is_swapped_once(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("recovery_code_used", Some(&org.id), Some(m.id));
    assert!(!t.replace_recovery_code(m.id, Some("rc-0"), "rc-1", NOW, &event).await.unwrap(), "none to swap");
    assert!(t.replace_recovery_code(m.id, None, "rc-1", NOW, &event).await.unwrap(), "set unconditionally");
    assert!(t.replace_recovery_code(m.id, None, "rc-2", NOW, &event).await.unwrap(), "and replaced so");

    let results = t
        .concurrently(8, |store, i| {
            let event = event.clone();
            async move {
                store.replace_recovery_code(m.id, Some("rc-2"), &format!("rc-new-{i}"), NOW, &event).await.unwrap()
            }
        })
        .await;
    assert_eq!(successes(&results), 1, "a code is used once: {results:?}");
    assert!(t.recovery_code_hash(m.id).await.unwrap().unwrap().starts_with("rc-new-"));
    assert!(!t.replace_recovery_code(m.id, Some("rc-2"), "rc-3", NOW, &event).await.unwrap());
    let used = t.audit_kinds(Some(&org.id)).await.into_iter().filter(|k| k == "recovery_code_used").count();
    assert_eq!(used, 3);
}

async fn mfa_override_and_preferred_factor(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    assert_eq!(m.mfa_override, MemberOverride::ClinicDefault);
    t.set_mfa_override(m.id, MemberOverride::NotRequired, &audit("mfa_override", Some(&org.id), Some(m.id)))
        .await
        .unwrap();
    t.set_preferred_factor(m.id, Some(FactorKind::Passkey)).await.unwrap();
    let now = t.reload(&m).await;
    assert_eq!((now.mfa_override, now.preferred_factor), (MemberOverride::NotRequired, Some(FactorKind::Passkey)));
    t.set_preferred_factor(m.id, None).await.unwrap();
    assert_eq!(t.reload(&m).await.preferred_factor, None);
    assert_eq!(t.audit_kinds(Some(&org.id)).await.last().map(String::as_str), Some("mfa_override"));
}

async fn a_bypass_is_used_once(t: TestStore) {
    let org = t.org("riverside").await;
    let admin = t.member(&org, "admin@riverside.test").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("mfa_bypass", Some(&org.id), Some(m.id));
    t.enroll_factor(&new_factor(&m, FactorKind::Authenticator, "totp"), Some("rc"), &event).await.unwrap();
    let bypass = Bypass { granted_at: NOW, expires_at: NOW.plus_secs(3600), granted_by: Some(admin.id) };
    assert!(!t.grant_bypass(AccountId::new_random(), &bypass, &event).await.unwrap());
    assert!(t.grant_bypass(m.id, &bypass, &event).await.unwrap());
    assert_eq!(t.reload(&m).await.bypass, Some(bypass));

    let expired = NOW.plus_secs(3600);
    assert!(!t.use_bypass(m.id, expired, &event, None).await.unwrap(), "an expired bypass");
    // Racing sign-ins, each through the same flow: one uses the bypass and starts
    // the session, in the same transaction.
    let flow = t.flow(&m, "flow").await;
    let via = audit_via("mfa_bypass_used", &m, Some(&flow), None);
    let signed_in = audit("signed_in", Some(&org.id), Some(m.id));
    let session = new_session(&m, "bypassed", m.security_stamp);
    let results = t
        .concurrently(6, |store, _| {
            let (via, signed_in, flow, session) = (via.clone(), signed_in.clone(), flow.clone(), session.clone());
            async move { store.use_bypass(m.id, NOW, &via, Some((&session, &flow, &signed_in))).await.unwrap() }
        })
        .await;
    assert_eq!(successes(&results), 1, "one sign-in clears a bypass: {results:?}");
    assert_eq!(t.reload(&m).await.bypass, None);
    assert_eq!(t.list_factors(m.id).await.unwrap(), [], "every factor goes");
    assert_eq!(t.recovery_code_hash(m.id).await.unwrap(), None);
    assert!(t.get_session(&session.token_hash).await.unwrap().is_some(), "the session started");
    assert_eq!(t.get_flow(&flow).await.unwrap(), None, "and ended its flow");
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds[kinds.len() - 2..], ["mfa_bypass_used", "signed_in"]);

    // Without a session to start; then with no bypass left.
    assert!(t.grant_bypass(m.id, &bypass, &event).await.unwrap());
    assert!(t.use_bypass(m.id, NOW, &event, None).await.unwrap());
    assert!(!t.use_bypass(m.id, NOW, &event, None).await.unwrap());
}

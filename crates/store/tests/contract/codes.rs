//! Codes sent by email or text message.

use clinic_auth_core::{CodeChallenge, FactorKind};
use clinic_auth_store::StoredCode;

use crate::harness::{NOW, TestStore, audit, new_factor, successes};

contract!(codes_round_trip_and_count_attempts, a_code_is_consumed_once);

fn code(account: clinic_auth_core::AccountId, channel: FactorKind, hash: &str) -> StoredCode {
    StoredCode {
        account_id: account,
        channel,
        purpose: "sign_in".into(),
        target: "m@riverside.test".into(),
        code_hash: hash.into(),
        challenge: CodeChallenge { sent_at: NOW, expires_at: NOW.plus_secs(600), attempts: 0 },
        bound_to: "flow".into(),
    }
}

async fn codes_round_trip_and_count_attempts(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("code_sent", Some(&org.id), Some(m.id));
    let email = code(m.id, FactorKind::Email, "mac-1");
    t.put_code(&email, &event).await.unwrap();
    assert_eq!(t.get_code(m.id, FactorKind::Email).await.unwrap(), Some(email.clone()));
    assert_eq!(t.get_code(m.id, FactorKind::Sms).await.unwrap(), None);

    let counts = t
        .concurrently(6, |store, _| async move { store.count_code_attempt(m.id, FactorKind::Email).await.unwrap() })
        .await;
    let mut counts: Vec<u32> = counts.into_iter().flatten().collect();
    counts.sort();
    assert_eq!(counts, [1, 2, 3, 4, 5, 6], "every entry counted");
    assert_eq!(t.get_code(m.id, FactorKind::Email).await.unwrap().unwrap().challenge.attempts, 6);
    assert_eq!(t.count_code_attempt(m.id, FactorKind::Sms).await.unwrap(), None, "no code");

    // A new code replaces the old one, and its count.
    let resent =
        StoredCode { purpose: "step_up".into(), bound_to: "session".into(), ..code(m.id, FactorKind::Email, "mac-2") };
    t.put_code(&resent, &event).await.unwrap();
    assert_eq!(t.get_code(m.id, FactorKind::Email).await.unwrap(), Some(resent));

    t.delete_code(m.id, FactorKind::Email).await.unwrap();
    assert_eq!(t.get_code(m.id, FactorKind::Email).await.unwrap(), None);
    assert_eq!(t.audit_kinds(Some(&org.id)).await.into_iter().filter(|k| k == "code_sent").count(), 2);
}

async fn a_code_is_consumed_once(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("code_sent", Some(&org.id), Some(m.id));
    t.enroll_factor(&new_factor(&m, FactorKind::Sms, "sms"), None, &event).await.unwrap();
    t.put_code(&code(m.id, FactorKind::Sms, "mac-1"), &event).await.unwrap();

    assert!(!t.consume_code(m.id, FactorKind::Sms, "mac-0", None).await.unwrap(), "another code");
    assert!(!t.consume_code(m.id, FactorKind::Email, "mac-1", None).await.unwrap(), "another channel");
    let used_at = NOW.plus_secs(42);
    let proved = audit("second_factor_proved", Some(&org.id), Some(m.id));
    let results = t
        .concurrently(8, |store, _| {
            let proved = proved.clone();
            async move { store.consume_code(m.id, FactorKind::Sms, "mac-1", Some((used_at, &proved))).await.unwrap() }
        })
        .await;
    assert_eq!(successes(&results), 1, "a code is used once: {results:?}");
    assert_eq!(t.get_code(m.id, FactorKind::Sms).await.unwrap(), None);
    assert_eq!(t.list_factors(m.id).await.unwrap()[0].last_used_at, Some(used_at), "the factor's last use");
    let proofs = t.audit_kinds(Some(&org.id)).await.into_iter().filter(|k| k == "second_factor_proved").count();
    assert_eq!(proofs, 1);

    // Used for something other than a second factor: consumed, nothing else recorded.
    t.put_code(&code(m.id, FactorKind::Sms, "mac-2"), &event).await.unwrap();
    assert!(t.consume_code(m.id, FactorKind::Sms, "mac-2", None).await.unwrap());
    assert_eq!(t.list_factors(m.id).await.unwrap()[0].last_used_at, Some(used_at));
}

//! Throttles, and each account's consecutive failures per factor.

use clinic_auth_core::{FactorKind, ThrottleRule, ThrottleState};

use crate::harness::{NOW, TestStore, audit, successes};

contract!(
    failures_are_counted_and_earn_locks,
    reserved_attempts_stop_at_the_lock_under_concurrency,
    factor_failures_stop_at_the_cap_under_concurrency,
    an_unlock_clears_the_members_locks_and_is_audited,
);

/// Two failures free, then a lock of 60 s, doubling; failures forgotten after 300 s.
const RULE: ThrottleRule = ThrottleRule { free_failures: 2, base_lock_secs: 60, max_lock_secs: 600, window_secs: 300 };

async fn failures_are_counted_and_earn_locks(t: TestStore) {
    let org = t.org("riverside").await;
    assert_eq!(t.get_throttle("ip:1").await.unwrap(), None);
    let event = audit("sign_in_refused", Some(&org.id), None);
    let s1 = t.record_failure("ip:1", RULE, NOW, Some(&event)).await.unwrap();
    let s2 = t.record_failure("ip:1", RULE, NOW, None).await.unwrap();
    let s3 = t.record_failure("ip:1", RULE, NOW.plus_secs(1), None).await.unwrap();
    assert_eq!((s1.failures, s2.failures), (1, 2));
    assert_eq!((s1.locked_until, s2.locked_until), (clinic_auth_core::UnixTime(0), clinic_auth_core::UnixTime(0)));
    assert_eq!(s3, ThrottleState { failures: 3, locked_until: NOW.plus_secs(61) });
    assert_eq!(t.get_throttle("ip:1").await.unwrap(), Some(s3));
    assert_eq!(t.get_throttle("ip:2").await.unwrap(), None, "keys are apart");
    assert_eq!(t.audit_kinds(Some(&org.id)).await.last().map(String::as_str), Some("sign_in_refused"));

    // Concurrent failures are all counted.
    let states =
        t.concurrently(8, |store, _| async move { store.record_failure("ip:3", RULE, NOW, None).await.unwrap() }).await;
    let mut counts: Vec<u32> = states.iter().map(|s| s.failures).collect();
    counts.sort();
    assert_eq!(counts, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(t.get_throttle("ip:3").await.unwrap().unwrap().locked_until, NOW.plus_secs(600), "capped");

    // The window passed and no lock in force: the count starts again.
    let later = NOW.plus_secs(1000);
    assert_eq!(t.record_failure("ip:1", RULE, later, None).await.unwrap().failures, 1);
    t.clear_throttle("ip:1").await.unwrap();
    assert_eq!(t.get_throttle("ip:1").await.unwrap(), None);
    assert!(t.get_throttle("ip:3").await.unwrap().is_some());
}

async fn reserved_attempts_stop_at_the_lock_under_concurrency(t: TestStore) {
    let states =
        t.concurrently(10, |store, _| async move { store.reserve_attempt("resend:m", RULE, NOW).await.unwrap() }).await;
    // Two free, and the third, which earns the lock; the rest are refused unchecked.
    assert_eq!(successes(&states), 3, "{states:?}");
    let mut counts: Vec<u32> = states.iter().flatten().map(|s| s.failures).collect();
    counts.sort();
    assert_eq!(counts, [1, 2, 3]);
    let locked = t.get_throttle("resend:m").await.unwrap().unwrap();
    assert_eq!(locked, ThrottleState { failures: 3, locked_until: NOW.plus_secs(60) });

    // Refused while locked (and nothing counted), counted again once it is over.
    assert_eq!(t.reserve_attempt("resend:m", RULE, NOW.plus_secs(59)).await.unwrap(), None);
    assert_eq!(t.get_throttle("resend:m").await.unwrap(), Some(locked));
    let after = t.reserve_attempt("resend:m", RULE, NOW.plus_secs(60)).await.unwrap().unwrap();
    assert_eq!(after, ThrottleState { failures: 4, locked_until: NOW.plus_secs(180) });
    // Past the window the count restarts.
    let much_later = NOW.plus_secs(2000);
    assert_eq!(t.reserve_attempt("resend:m", RULE, much_later).await.unwrap().map(|s| s.failures), Some(1));
}

async fn factor_failures_stop_at_the_cap_under_concurrency(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let counts = t
        .concurrently(
            10,
            |store, _| async move { store.reserve_factor_attempt(m.id, FactorKind::Sms, 4).await.unwrap() },
        )
        .await;
    let mut taken: Vec<u32> = counts.into_iter().flatten().collect();
    taken.sort();
    assert_eq!(taken, [1, 2, 3, 4], "never past the cap");
    assert_eq!(t.reserve_factor_attempt(m.id, FactorKind::Authenticator, 4).await.unwrap(), Some(1));
    let mut failures = t.factor_failures(m.id).await.unwrap();
    failures.sort_by_key(|(k, _)| k.as_str());
    assert_eq!(failures, [(FactorKind::Authenticator, 1), (FactorKind::Sms, 4)]);
    t.clear_factor_failures(m.id).await.unwrap();
    assert_eq!(t.factor_failures(m.id).await.unwrap(), []);
    assert_eq!(t.reserve_factor_attempt(m.id, FactorKind::Sms, 4).await.unwrap(), Some(1), "counted from the start");
}

async fn an_unlock_clears_the_members_locks_and_is_audited(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    for who in [m.id, other.id] {
        t.reserve_factor_attempt(who, FactorKind::Sms, 4).await.unwrap();
    }
    let key = format!("second-factor:{}", m.id);
    let rule = ThrottleRule { free_failures: 0, base_lock_secs: 600, max_lock_secs: 600, window_secs: 600 };
    t.reserve_attempt(&key, rule, NOW).await.unwrap();
    t.reserve_attempt("second-factor:other", rule, NOW).await.unwrap();
    assert_eq!(t.reserve_attempt(&key, rule, NOW).await.unwrap(), None, "locked");

    let event = audit("second_factor_unlocked", Some(&org.id), Some(m.id));
    t.unlock_second_factor(m.id, &key, &event).await.unwrap();
    assert_eq!(t.factor_failures(m.id).await.unwrap(), []);
    assert!(t.reserve_attempt(&key, rule, NOW).await.unwrap().is_some(), "the lock is gone");
    // Nobody else's.
    assert_eq!(t.factor_failures(other.id).await.unwrap(), [(FactorKind::Sms, 1)]);
    assert_eq!(t.reserve_attempt("second-factor:other", rule, NOW).await.unwrap(), None);
    assert!(t.audit_kinds(Some(&org.id)).await.contains(&"second_factor_unlocked".to_owned()));
}

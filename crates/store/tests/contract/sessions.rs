//! Sessions, and the sign-in that must still be current to start one.

use clinic_auth_core::{AccountId, AccountStatus};
use clinic_auth_store::{SessionRecord, StoreError};

use crate::harness::{NOW, TestStore, audit, new_session, successes, token};

contract!(
    sessions_round_trip,
    a_session_starts_only_while_its_sign_in_is_current,
    one_flow_earns_one_session_under_concurrency,
    revoking_ends_every_session_and_sign_in,
);

async fn sessions_round_trip(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let flow = t.flow(&m, "flow").await;
    let s = clinic_auth_store::NewSession {
        second_factor: false,
        proved: "password".into(),
        ..new_session(&m, "s", m.security_stamp)
    };
    t.insert_session(&s, &flow, &audit("signed_in", Some(&org.id), Some(m.id))).await.unwrap();
    assert_eq!(t.get_flow(&flow).await.unwrap(), None, "the flow that earned it ends");
    let want = SessionRecord {
        account_id: m.id,
        csrf_token: "csrf-s".into(),
        created_at: NOW,
        last_seen_at: NOW,
        verified_at: None,
        sid: "sid-s".into(),
        proved: "password".into(),
    };
    assert_eq!(t.get_session(&s.token_hash).await.unwrap(), Some(want.clone()));
    assert_eq!(t.get_session(&token("other")).await.unwrap(), None);

    // The last-seen time only moves forward.
    let later = NOW.plus_secs(60);
    t.touch_session(&s.token_hash, later).await.unwrap();
    t.touch_session(&s.token_hash, NOW.plus_secs(30)).await.unwrap();
    t.mark_session_verified(&s.token_hash, later, "password,authenticator").await.unwrap();
    let want = SessionRecord {
        last_seen_at: later,
        verified_at: Some(later),
        proved: "password,authenticator".into(),
        ..want
    };
    assert_eq!(t.get_session(&s.token_hash).await.unwrap(), Some(want));
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 1);

    // Ended with an audit event (sign-out) or without (expired).
    let second = t.session(&m, "second").await;
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 2);
    t.delete_session(&s.token_hash, Some(&audit("signed_out", Some(&org.id), Some(m.id)))).await.unwrap();
    t.delete_session(&second, None).await.unwrap();
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 0);
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds.iter().filter(|k| *k == "signed_out").count(), 1);
    assert_eq!(kinds.last().map(String::as_str), Some("signed_out"));
}

async fn a_session_starts_only_while_its_sign_in_is_current(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("signed_in", Some(&org.id), Some(m.id));
    let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::MissingReference("login flow")));

    // The stamp moved after the password was accepted (here: the row is edited, as a
    // concurrent security change would leave it).
    let flow = t.flow(&m, "stale").await;
    t.raw(&format!("UPDATE accounts SET security_stamp = security_stamp + 1 WHERE id = '{}'", m.id)).await;
    assert!(refused(t.insert_session(&new_session(&m, "s1", 0), &flow, &event).await));
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 0);

    // A flow straight from its password (no account yet) vouches for the stamp it read.
    let fresh = token("fresh");
    t.insert_flow(&fresh, &clinic_auth_core::LoginFlow::start(m.realm(), m.email.clone(), NOW)).await.unwrap();
    let stamp = t.reload(&m).await.security_stamp;
    assert!(refused(t.insert_session(&new_session(&m, "s2", stamp - 1), &fresh, &event).await));
    assert!(t.insert_session(&new_session(&m, "s3", stamp), &fresh, &event).await.is_ok());

    // Not for a deactivated account, nor with an unknown flow.
    let flow = t.flow(&m, "late").await;
    t.raw(&format!("UPDATE accounts SET status = 'deactivated' WHERE id = '{}'", m.id)).await;
    assert_eq!(t.reload(&m).await.status, AccountStatus::Deactivated);
    assert!(refused(t.insert_session(&new_session(&m, "s4", stamp), &flow, &event).await));
    assert!(refused(t.insert_session(&new_session(&m, "s5", stamp), &token("unknown"), &event).await));
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 1);
    assert_eq!(t.audit_kinds(Some(&org.id)).await.iter().filter(|k| *k == "signed_in").count(), 1);
}

async fn one_flow_earns_one_session_under_concurrency(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let flow = t.flow(&m, "flow").await;
    let event = audit("signed_in", Some(&org.id), Some(m.id));
    let results = t
        .concurrently(6, |store, i| {
            let (flow, event, s) = (flow.clone(), event.clone(), new_session(&m, &format!("s{i}"), m.security_stamp));
            async move { store.insert_session(&s, &flow, &event).await }
        })
        .await;
    assert_eq!(successes(&results), 1, "{results:?}");
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 1);
}

async fn revoking_ends_every_session_and_sign_in(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    t.session(&m, "a").await;
    t.session(&m, "b").await;
    let kept = t.session(&other, "c").await;
    let flow = t.flow(&m, "in-flight").await;
    let stamp = t.reload(&m).await.security_stamp;
    let event = audit("sessions_revoked", Some(&org.id), Some(m.id));
    assert_eq!(t.revoke_sessions(m.id, &event).await.unwrap(), 2);
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 0);
    assert_eq!(t.get_flow(&flow).await.unwrap(), None);
    assert_eq!(t.reload(&m).await.security_stamp, stamp + 1);
    assert!(t.get_session(&kept).await.unwrap().is_some(), "another account's session stays");
    assert_eq!(t.revoke_sessions(AccountId::new_random(), &event).await.unwrap(), 0);
}

//! Sessions, and the sign-in that must still be current to start one.

use clinic_auth_core::{AccountId, AccountStatus};
use clinic_auth_store::{Account, ClientInfo, NewSession, SessionRecord, SessionSummary, StoreError};

use crate::harness::{NOW, TestStore, audit, new_session, successes, token};

contract!(
    sessions_round_trip,
    a_session_starts_only_while_its_sign_in_is_current,
    one_flow_earns_one_session_under_concurrency,
    revoking_ends_every_session_and_sign_in,
    own_sessions_are_listed_newest_first_and_ended_one_by_its_public_id,
    ending_the_other_sessions_keeps_the_asking_one_and_the_stamp,
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

/// A session of `account` named `name`, begun `secs` after [`NOW`] from `ip` and
/// `user_agent`.
async fn session_at(t: &TestStore, account: &Account, name: &str, secs: i64, ip: &str, user_agent: &str) {
    let flow = t.flow(account, &format!("flow-of-{name}")).await;
    let s = NewSession {
        now: NOW.plus_secs(secs),
        client: ClientInfo { ip: ip.into(), user_agent: user_agent.into() },
        ..new_session(account, name, t.reload(account).await.security_stamp)
    };
    t.insert_session(&s, &flow, &audit("signed_in", account.org_id.as_ref(), Some(account.id))).await.unwrap();
}

fn summary(name: &str, secs: i64, ip: &str, user_agent: &str) -> SessionSummary {
    SessionSummary {
        sid: format!("sid-{name}"),
        created_at: NOW.plus_secs(secs),
        last_seen_at: NOW.plus_secs(secs),
        client: ClientInfo { ip: ip.into(), user_agent: user_agent.into() },
    }
}

fn sids(list: &[SessionSummary]) -> Vec<&str> {
    list.iter().map(|s| s.sid.as_str()).collect()
}

async fn own_sessions_are_listed_newest_first_and_ended_one_by_its_public_id(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    session_at(&t, &m, "laptop", 0, "10.0.0.1", "Firefox").await;
    session_at(&t, &m, "phone", 60, "2001:db8::7", "Safari").await;
    session_at(&t, &other, "theirs", 30, "10.0.0.9", "Chrome").await;
    let stamp = t.reload(&m).await.security_stamp;
    assert_eq!(
        t.list_sessions(m.id).await.unwrap(),
        vec![summary("phone", 60, "2001:db8::7", "Safari"), summary("laptop", 0, "10.0.0.1", "Firefox")]
    );
    t.touch_session(&token("laptop"), NOW.plus_secs(90)).await.unwrap();
    let listed = t.list_sessions(m.id).await.unwrap();
    assert_eq!(sids(&listed), ["sid-phone", "sid-laptop"], "use does not reorder the list");
    assert_eq!(listed[1].last_seen_at, NOW.plus_secs(90));
    assert_eq!(sids(&t.list_sessions(other.id).await.unwrap()), ["sid-theirs"]);
    assert!(t.list_sessions(AccountId::new_random()).await.unwrap().is_empty());

    // Another account's session, or one that does not exist, is not ended and not audited.
    let event = audit("session_ended", Some(&org.id), Some(m.id));
    assert!(!t.end_session_by_sid(m.id, "sid-theirs", &event).await.unwrap());
    assert!(!t.end_session_by_sid(m.id, "sid-unknown", &event).await.unwrap());
    assert!(t.get_session(&token("theirs")).await.unwrap().is_some());
    assert!(!t.audit_kinds(Some(&org.id)).await.contains(&"session_ended".to_owned()));

    assert!(t.end_session_by_sid(m.id, "sid-laptop", &event).await.unwrap());
    assert_eq!(t.get_session(&token("laptop")).await.unwrap(), None);
    assert!(t.get_session(&token("phone")).await.unwrap().is_some());
    assert!(!t.end_session_by_sid(m.id, "sid-laptop", &event).await.unwrap(), "once");
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds.iter().filter(|k| *k == "session_ended").count(), 1);
    assert_eq!(t.reload(&m).await.security_stamp, stamp, "the stamp stays");
    assert!(t.audit_intact().await);
}

async fn ending_the_other_sessions_keeps_the_asking_one_and_the_stamp(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    session_at(&t, &m, "a", 0, "10.0.0.1", "A").await;
    session_at(&t, &m, "b", 10, "10.0.0.2", "B").await;
    session_at(&t, &m, "c", 20, "10.0.0.3", "C").await;
    session_at(&t, &other, "d", 30, "10.0.0.4", "D").await;
    let flow = t.flow(&m, "in-flight").await;
    let stamp = t.reload(&m).await.security_stamp;
    let event = audit("other_sessions_ended", Some(&org.id), Some(m.id));
    let count = |kinds: Vec<String>| kinds.iter().filter(|k| *k == "other_sessions_ended").count();

    let ended = t.end_other_sessions(m.id, &token("b"), &event).await.unwrap();
    assert_eq!(
        {
            let mut e = ended.clone();
            e.sort_by(|x, y| x.sid.cmp(&y.sid));
            e
        },
        vec![summary("a", 0, "10.0.0.1", "A"), summary("c", 20, "10.0.0.3", "C")],
        "the ended sessions, as they were"
    );
    assert_eq!(sids(&t.list_sessions(m.id).await.unwrap()), ["sid-b"]);
    assert_eq!(sids(&t.list_sessions(other.id).await.unwrap()), ["sid-d"], "another account's session stays");
    assert_eq!(t.reload(&m).await.security_stamp, stamp, "the stamp stays, so b's sign-ins stay valid");
    assert!(t.get_flow(&flow).await.unwrap().is_some(), "a sign-in in flight is not a session");
    assert_eq!(count(t.audit_kinds(Some(&org.id)).await), 1);

    // Nothing left to end: nothing audited.
    assert!(t.end_other_sessions(m.id, &token("b"), &event).await.unwrap().is_empty());
    assert_eq!(count(t.audit_kinds(Some(&org.id)).await), 1);

    // A session that has ended, or another account's, cannot end the account's sessions.
    session_at(&t, &m, "e", 40, "10.0.0.5", "E").await;
    assert!(t.end_other_sessions(m.id, &token("a"), &event).await.unwrap().is_empty());
    assert!(t.end_other_sessions(m.id, &token("d"), &event).await.unwrap().is_empty());
    assert_eq!(sids(&t.list_sessions(m.id).await.unwrap()), ["sid-e", "sid-b"]);
    assert_eq!(count(t.audit_kinds(Some(&org.id)).await), 1);
    assert!(t.audit_intact().await);
}

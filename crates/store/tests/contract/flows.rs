//! Login flows, and the second-factor answers counted against them.

use clinic_auth_core::{FactorKind, FlowStep, LoginFlow, MethodSet, UnixTime};

use crate::harness::{NOW, TestStore, successes, token};

contract!(
    flows_round_trip,
    a_flow_takes_its_account_and_stamp_once,
    flow_attempts_stop_at_max_under_concurrency,
    abandoned_sign_ins_are_taken_once_with_where_they_came_from,
);

async fn flows_round_trip(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let id = token("flow");
    let flow = LoginFlow::start(m.realm(), m.email.clone(), NOW);
    t.insert_flow(&id, &flow).await.unwrap();
    assert_eq!(t.get_flow(&id).await.unwrap(), Some(flow.clone()));
    assert_eq!(t.get_flow(&token("other")).await.unwrap(), None);

    // The clinic a sign-in started for is kept with it.
    let hinted_id = token("hinted");
    let hinted = LoginFlow::start(m.realm(), m.email.clone(), NOW).with_org_hint(Some(org.id.clone()));
    t.insert_flow(&hinted_id, &hinted).await.unwrap();
    assert_eq!(t.get_flow(&hinted_id).await.unwrap().and_then(|f| f.org_hint), Some(org.id.clone()));

    let enroll = LoginFlow {
        step: FlowStep::Enroll {
            account_id: m.id,
            allowed: MethodSet::standard(),
            chosen: Some(FactorKind::Sms),
            replacing: true,
            after_bypass: true,
            remind_until: Some(NOW.plus_secs(7 * 86_400)),
        },
        stamp: 4,
        ..flow.clone()
    };
    assert!(t.update_flow(&id, &enroll).await.unwrap());
    assert_eq!(t.get_flow(&id).await.unwrap(), Some(enroll));
    assert!(!t.update_flow(&token("other"), &flow).await.unwrap());

    t.delete_flow(&id).await.unwrap();
    assert_eq!(t.get_flow(&id).await.unwrap(), None);
    assert!(!t.update_flow(&id, &flow).await.unwrap(), "a deleted flow is gone");
}

async fn a_flow_takes_its_account_and_stamp_once(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    let id = token("flow");
    t.insert_flow(&id, &LoginFlow::start(m.realm(), m.email.clone(), NOW)).await.unwrap();
    let step = |account| FlowStep::SecondFactor { account_id: account, method: FactorKind::Authenticator };
    let first = LoginFlow { step: step(m.id), stamp: 3, ..LoginFlow::start(m.realm(), m.email.clone(), NOW) };
    assert!(t.update_flow(&id, &first).await.unwrap());
    // A later update changes the step, never the account or stamp recorded first.
    let later = LoginFlow { step: step(other.id), stamp: 9, ..first.clone() };
    assert!(t.update_flow(&id, &later).await.unwrap());
    let stored = t.get_flow(&id).await.unwrap().unwrap();
    assert_eq!((stored.step, stored.stamp), (step(other.id), 3));
    // The row's account is still the first: moving that account's stamp ends the flow.
    t.revoke_sessions(m.id, &crate::harness::audit("sessions_revoked", Some(&org.id), Some(m.id))).await.unwrap();
    assert_eq!(t.get_flow(&id).await.unwrap(), None);
}

async fn flow_attempts_stop_at_max_under_concurrency(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let id = t.flow(&m, "flow").await;
    let counts = t
        .concurrently(12, |store, _| {
            let id = id.clone();
            async move { store.reserve_flow_attempt(&id, 5).await.unwrap() }
        })
        .await;
    assert_eq!(successes(&counts), 5, "{counts:?}");
    let mut taken: Vec<u32> = counts.into_iter().flatten().collect();
    taken.sort();
    assert_eq!(taken, [1, 2, 3, 4, 5], "each answer its own place");
    assert_eq!(t.reserve_flow_attempt(&id, 6).await.unwrap(), Some(6), "a higher max lets one more through");
    assert_eq!(t.reserve_flow_attempt(&token("gone"), 5).await.unwrap(), None);
}

/// Expired flows that had accepted a password are deleted and returned once; those
/// left at the second factor are the abandoned sign-ins (with their address); flows
/// still running, or that never got past the email, are not.
async fn abandoned_sign_ins_are_taken_once_with_where_they_came_from(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let at_factor = LoginFlow {
        step: FlowStep::SecondFactor { account_id: m.id, method: FactorKind::Authenticator },
        stamp: m.security_stamp,
        client_ip: Some("203.0.113.9".into()),
        ..LoginFlow::start(m.realm(), m.email.clone(), NOW)
    };
    let at_setup = LoginFlow {
        step: FlowStep::Enroll {
            account_id: m.id,
            allowed: MethodSet::standard(),
            chosen: None,
            replacing: false,
            after_bypass: false,
            remind_until: None,
        },
        ..at_factor.clone()
    };
    t.insert_flow(&token("factor"), &at_factor).await.unwrap();
    t.insert_flow(&token("setup"), &at_setup).await.unwrap();
    t.insert_flow(&token("email"), &LoginFlow::start(m.realm(), m.email.clone(), NOW)).await.unwrap();
    assert_eq!(t.get_flow(&token("factor")).await.unwrap(), Some(at_factor.clone()), "the address is kept");

    assert!(t.take_abandoned_sign_ins(NOW).await.unwrap().is_empty(), "nothing has expired yet");
    let later = UnixTime(at_factor.expires_at.0 + 1);
    let taken = t.take_abandoned_sign_ins(later).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(
        (taken[0].account_id, taken[0].started_at, taken[0].client_ip.as_deref()),
        (m.id, NOW, Some("203.0.113.9"))
    );
    assert!(t.take_abandoned_sign_ins(later).await.unwrap().is_empty(), "taken once");
    assert_eq!(t.get_flow(&token("setup")).await.unwrap(), None, "expired flows past the password are gone");
    assert!(t.get_flow(&token("email")).await.unwrap().is_some(), "the rest is left to the purge");
}

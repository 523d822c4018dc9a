//! Second-factor answers of a sign-in: read in one snapshot, settled in one write,
//! with every limit exact when answers race.

use clinic_auth_core::{CodeChallenge, FactorKind, ThrottleRule};
use clinic_auth_store::{
    AcceptedAnswer, AfterAnswer, AnswerBlocked, AnswerLimits, Consume, NewAuditEvent, NewFactor, NewPasskey,
    PasskeyState, RefusedAnswer, SealedSecret, StoreResult, StoredCode,
};

use crate::harness::{NOW, TestStore, audit, new_factor, new_session, successes, token};

contract!(
    an_answer_is_read_at_once,
    a_right_answer_ends_the_flow_and_starts_the_session_once,
    a_totp_step_is_used_once_across_flows,
    a_changed_account_or_a_lock_blocks_a_right_answer,
    wrong_answers_count_exactly_when_they_race,
);

const LOCKOUT: &str = "second-factor:";

fn limits<'a>(
    flow: &'a clinic_auth_core::TokenHash,
    account: &clinic_auth_store::Account,
    key: &'a str,
) -> AnswerLimits<'a> {
    AnswerLimits {
        flow,
        account: account.id,
        stamp: account.security_stamp,
        method: FactorKind::Authenticator,
        now: NOW,
        max_flow_attempts: 5,
        throttle_key: key,
        throttle_rule: ThrottleRule::SECOND_FACTOR_PER_ACCOUNT,
        failure_cap: 100,
        clear_counts: true,
    }
}

/// A clinic and a member with an authenticator ("totp-1") and a recovery code ("rc-1"),
/// as stored after that.
async fn member_with_authenticator(t: &TestStore) -> (clinic_auth_store::Org, clinic_auth_store::Account) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let enrolled = audit("factor_enrolled", Some(&org.id), Some(m.id));
    t.enroll_factor(&new_factor(&m, FactorKind::Authenticator, "totp-1"), Some("rc-1"), &enrolled).await.unwrap();
    let m = t.reload(&m).await;
    (org, m)
}

async fn an_answer_is_read_at_once(t: TestStore) {
    let (org, m) = member_with_authenticator(&t).await;
    assert!(t.load_answer(&token("nobody"), LOCKOUT).await.unwrap().is_none());
    let key = format!("{LOCKOUT}{}", m.id);
    t.record_failure(&key, ThrottleRule::SECOND_FACTOR_PER_ACCOUNT, NOW, None).await.unwrap();
    t.reserve_factor_attempt(m.id, FactorKind::Authenticator, 100).await.unwrap();
    // A passkey (bytes of every value, flags, a counter) and a text-message factor
    // with a code sent: on PostgreSQL these rows come back as JSON, and every column
    // must decode as the store's own reads decode it.
    let secret = SealedSecret { ciphertext: (0..=255).collect(), nonce: vec![0xab, 0x01, 0xf0], key_version: 7 };
    let passkey = NewPasskey {
        factor: NewFactor { secret: Some(secret), ..new_factor(&m, FactorKind::Passkey, "pk-1") },
        state: PasskeyState {
            credential_id: "cred-1".into(),
            sign_count: 9,
            backup_eligible: true,
            backup_state: false,
        },
    };
    assert!(t.insert_passkey(&passkey, &audit("passkey_added", Some(&org.id), Some(m.id)), 10).await.unwrap());
    let sms = audit("factor_enrolled", Some(&org.id), Some(m.id));
    t.enroll_factor(&new_factor(&m, FactorKind::Sms, "sms-1"), None, &sms).await.unwrap();
    let code = StoredCode {
        account_id: m.id,
        channel: FactorKind::Sms,
        purpose: "sign_in".into(),
        target: "+15005550006".into(),
        code_hash: "mac-1".into(),
        challenge: CodeChallenge { sent_at: NOW, expires_at: NOW.plus_secs(600), attempts: 0 },
        bound_to: "f".into(),
    };
    t.put_code(&code, &audit("code_sent", Some(&org.id), Some(m.id))).await.unwrap();
    assert_eq!(t.count_code_attempt(m.id, FactorKind::Sms).await.unwrap(), Some(1));
    let m = t.reload(&m).await;
    let flow = t.flow(&m, "f").await;
    let cx = t.load_answer(&flow, LOCKOUT).await.unwrap().expect("the flow");
    assert_eq!(Some(&cx.flow), t.get_flow(&flow).await.unwrap().as_ref());
    assert_eq!(cx.account, t.get_account(m.id).await.unwrap());
    assert_eq!(cx.org, t.get_org(&org.id).await.unwrap());
    let factors = t.list_factors(m.id).await.unwrap();
    assert_eq!(factors.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["pk-1", "sms-1", "totp-1"]);
    assert_eq!(cx.factors, factors, "every factor, oldest first, as stored");
    let code = StoredCode { challenge: CodeChallenge { attempts: 1, ..code.challenge }, ..code };
    assert_eq!(cx.codes, [code]);
    assert_eq!(cx.throttle, t.get_throttle(&key).await.unwrap());
    assert_eq!(cx.flow_attempts, 0);
    assert_eq!(cx.account.as_ref().map(|a| a.id), Some(m.id));
    assert_eq!(cx.org.as_ref().map(|o| &o.id), Some(&org.id));
    assert_eq!(cx.recovery_code_hash.as_deref(), Some("rc-1"));
    assert_eq!(cx.throttle.map(|s| s.failures), Some(1), "the member's lockout, by their id");
    assert_eq!(cx.factor_failures, [(FactorKind::Authenticator, 1)]);
}

async fn a_right_answer_ends_the_flow_and_starts_the_session_once(t: TestStore) {
    let (org, m) = member_with_authenticator(&t).await;
    let flow = t.flow(&m, "f").await;
    let key = format!("{LOCKOUT}{}", m.id);
    t.record_failure(&key, ThrottleRule::SECOND_FACTOR_PER_ACCOUNT, NOW, None).await.unwrap();
    let before = t.audit_kinds(Some(&org.id)).await.len();
    // Eight answers race on one flow, each with a later step: one session only.
    let results: Vec<StoreResult<Result<(), AnswerBlocked>>> = t
        .concurrently(8, |s, i| {
            let (flow, m, key) = (flow.clone(), m.clone(), key.clone());
            async move {
                let session = new_session(&m, &format!("s{i}"), m.security_stamp);
                // Three on one chain: stored two at a time, the head following.
                let events = [
                    audit("second_factor", m.org_id.as_ref(), Some(m.id)),
                    audit("recovery_code_shown", m.org_id.as_ref(), Some(m.id)),
                    audit("signed_in", m.org_id.as_ref(), Some(m.id)),
                ];
                let answer = AcceptedAnswer {
                    limits: limits(&flow, &m, &key),
                    consume: Consume::TotpStep { factor_id: "totp-1", step: 1000 + i as i64 },
                    then: AfterAnswer::Session(&session),
                    audit: &events,
                };
                s.accept_answer(&answer).await
            }
        })
        .await;
    let settled: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(successes(&settled), 1, "{settled:?}");
    assert!(settled.iter().filter(|r| r.is_err()).all(|r| *r == Err(AnswerBlocked::FlowOver)));
    assert!(t.get_flow(&flow).await.unwrap().is_none(), "the flow is over");
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 1);
    assert_eq!(t.get_throttle(&key).await.unwrap(), None, "a right answer clears the lockout count");
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds[before..], ["second_factor", "recovery_code_shown", "signed_in"], "the winner's events only");
    assert!(t.audit_intact().await);
}

async fn a_totp_step_is_used_once_across_flows(t: TestStore) {
    let (_, m) = member_with_authenticator(&t).await;
    let mut flows = Vec::new();
    for i in 0..6 {
        flows.push(t.flow(&m, &format!("f{i}")).await);
    }
    let key = format!("{LOCKOUT}{}", m.id);
    // The same code, answered on six sign-ins at once: a replay everywhere but one.
    let results: Vec<_> = t
        .concurrently(6, |s, i| {
            let (flow, m, key) = (flows[i].clone(), m.clone(), key.clone());
            async move {
                let session = new_session(&m, &format!("s{i}"), m.security_stamp);
                let answer = AcceptedAnswer {
                    limits: limits(&flow, &m, &key),
                    consume: Consume::TotpStep { factor_id: "totp-1", step: 2000 },
                    then: AfterAnswer::Session(&session),
                    audit: &[],
                };
                s.accept_answer(&answer).await.unwrap()
            }
        })
        .await;
    assert_eq!(successes(&results), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| *r == Err(AnswerBlocked::AlreadyUsed)));
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 1);
    let left = flows_left(&t, &flows).await;
    assert_eq!(left, 5, "a blocked answer changes nothing: its flow is still there");
}

async fn flows_left(t: &TestStore, flows: &[clinic_auth_core::TokenHash]) -> usize {
    let mut n = 0;
    for f in flows {
        n += usize::from(t.get_flow(f).await.unwrap().is_some());
    }
    n
}

async fn a_changed_account_or_a_lock_blocks_a_right_answer(t: TestStore) {
    let (org, m) = member_with_authenticator(&t).await;
    let key = format!("{LOCKOUT}{}", m.id);
    let accept = |flow, step| accept_step(&t, &m, &key, flow, step);
    // Locked meanwhile (another process counted the failures): refused, nothing used.
    let flow = t.flow(&m, "locked").await;
    for _ in 0..6 {
        t.record_failure(&key, ThrottleRule::SECOND_FACTOR_PER_ACCOUNT, NOW, None).await.unwrap();
    }
    assert!(matches!(accept(flow.clone(), 10).await, Err(AnswerBlocked::Locked(until)) if until > NOW));
    assert!(t.get_flow(&flow).await.unwrap().is_some());
    assert!(t.get_throttle(&key).await.unwrap().is_some(), "the lock stays");
    t.clear_throttle(&key).await.unwrap();
    // The factor at its cap meanwhile.
    for _ in 0..100 {
        t.reserve_factor_attempt(m.id, FactorKind::Authenticator, 100).await.unwrap();
    }
    assert_eq!(accept(flow.clone(), 11).await, Err(AnswerBlocked::FactorLocked));
    t.clear_factor_failures(m.id).await.unwrap();
    // The account's stamp moved under the sign-in (changes that move it also end its
    // flows; the answer's own check holds even when a flow is left behind).
    t.raw(&format!("UPDATE accounts SET security_stamp = security_stamp + 1 WHERE id = '{}'", m.id)).await;
    assert_eq!(accept(flow.clone(), 12).await, Err(AnswerBlocked::FlowOver));
    assert!(t.get_flow(&flow).await.unwrap().is_some());
    t.set_account_status(
        m.id,
        clinic_auth_core::AccountStatus::Deactivated,
        &audit("member_deactivated", Some(&org.id), Some(m.id)),
    )
    .await
    .unwrap();
    assert_eq!(accept(t.flow(&m, "deactivated").await, 13).await, Err(AnswerBlocked::FlowOver), "an inactive account");
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 0);
    // The step was never used by the blocked answers.
    let f = t.list_factors(m.id).await.unwrap();
    assert_eq!(f[0].last_used_step, None);
}

async fn accept_step(
    t: &TestStore,
    m: &clinic_auth_store::Account,
    key: &str,
    flow: clinic_auth_core::TokenHash,
    step: i64,
) -> Result<(), AnswerBlocked> {
    let session = new_session(m, &format!("s{step}"), m.security_stamp);
    let answer = AcceptedAnswer {
        limits: limits(&flow, m, key),
        consume: Consume::TotpStep { factor_id: "totp-1", step },
        then: AfterAnswer::Session(&session),
        audit: &[],
    };
    t.accept_answer(&answer).await.unwrap()
}

async fn wrong_answers_count_exactly_when_they_race(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let flow = t.flow(&m, "f").await;
    let key = format!("{LOCKOUT}{}", m.id);
    let before = t.audit_kinds(Some(&org.id)).await.len();
    let refuse = |s: std::sync::Arc<dyn clinic_auth_store::Store>, flow: clinic_auth_core::TokenHash| {
        let (m, key) = (m.clone(), key.clone());
        async move {
            let event: NewAuditEvent = audit("second_factor", m.org_id.as_ref(), Some(m.id));
            let locked = audit("factor_locked", m.org_id.as_ref(), Some(m.id));
            let answer = RefusedAnswer {
                limits: limits(&flow, &m, &key),
                sent_code: None,
                audit: &event,
                locked_audit: &locked,
            };
            s.refuse_answer(&answer).await.unwrap()
        }
    };
    // Ten wrong answers at once on a flow that takes five.
    let results = t.concurrently(10, |s, _| refuse(s, flow.clone())).await;
    assert_eq!(successes(&results), 5, "{results:?}");
    let mut counted: Vec<u32> = results.iter().filter_map(|r| r.as_ref().ok()).map(|c| c.flow_attempts).collect();
    counted.sort_unstable();
    assert_eq!(counted, [1, 2, 3, 4, 5], "each answer has its own number");
    assert!(t.get_flow(&flow).await.unwrap().is_none(), "the last one ends the sign-in");
    assert_eq!(t.audit_kinds(Some(&org.id)).await.len() - before, 5, "one event per counted answer");
    // The member's lockout goes on across sign-ins and is exact: the sixth failure
    // locks, and nothing is counted once locked.
    let second = t.flow(&m, "g").await;
    let results = t.concurrently(4, |s, _| refuse(s, second.clone())).await;
    assert_eq!(successes(&results), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(AnswerBlocked::Locked(_)))));
    assert_eq!(t.get_throttle(&key).await.unwrap().map(|s| s.failures), Some(6));
    assert_eq!(t.factor_failures(m.id).await.unwrap(), [(FactorKind::Authenticator, 6)]);
    assert!(t.audit_intact().await);
}

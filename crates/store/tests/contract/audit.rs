//! The audit trail: appends, listing, verification, and the one-time re-key.

use clinic_auth_core::AccountId;
use clinic_auth_core::audit::ChainBreak;
use clinic_auth_store::{AuditFilter, NewAuditEvent};

use crate::harness::{NOW, TestStore, audit};

contract!(
    events_are_listed_newest_first_by_filter,
    verification_finds_edits_deletions_and_cut_chains,
    concurrent_appends_keep_every_chain_intact,
    a_trail_from_before_chains_is_rekeyed_once,
    a_rekey_request_beside_a_keyed_trail_is_refused,
);

fn at(kind: &'static str, org: Option<&clinic_auth_core::OrgId>, secs: i64) -> NewAuditEvent {
    NewAuditEvent { at: NOW.plus_secs(secs), ..audit(kind, org, None) }
}

async fn events_are_listed_newest_first_by_filter(t: TestStore) {
    let a = t.org("clinic-a").await;
    let b = t.org("clinic-b").await;
    let (actor, subject) = (AccountId::new_random(), AccountId::new_random());
    let detailed = NewAuditEvent {
        outcome: "failure",
        actor_id: Some(actor),
        subject_id: Some(subject),
        detail: r#"{"reason":"wrong code"}"#.into(),
        ..at("code_refused", Some(&a.id), 10)
    };
    t.append_audit(&detailed).await.unwrap();
    t.append_audit(&NewAuditEvent { actor_id: Some(subject), ..at("role_changed", Some(&a.id), 20) }).await.unwrap();
    t.append_audit(&at("role_changed", Some(&b.id), 30)).await.unwrap();
    t.append_audit(&at("platform_admin_created", None, 40)).await.unwrap();

    let store = &t;
    let list = |f: AuditFilter| async move {
        let events = store.list_audit(&AuditFilter { limit: 50, ..f }).await.unwrap();
        events.into_iter().map(|e| (e.kind, e.at.0 - NOW.0)).collect::<Vec<_>>()
    };
    let all = t.list_audit(&AuditFilter { limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let stored = all.iter().find(|e| e.kind == "code_refused").unwrap();
    assert_eq!((stored.outcome.as_str(), stored.org_id.as_deref()), ("failure", Some("clinic-a")));
    assert_eq!(
        (stored.actor_id.clone(), stored.subject_id.clone()),
        (Some(actor.to_string()), Some(subject.to_string()))
    );
    assert_eq!((stored.client_ip.as_str(), stored.user_agent.as_str()), ("10.0.0.1", "contract"));
    assert_eq!((stored.detail.as_str(), stored.seq), (r#"{"reason":"wrong code"}"#, Some(2)));
    assert!(stored.hash.as_deref().is_some_and(|h| h.starts_with("v1:")), "{stored:?}");

    assert_eq!(
        list(AuditFilter { org_id: Some(a.id.clone()), ..Default::default() }).await,
        [("role_changed", 20), ("code_refused", 10), ("org_created", 0)].map(|(k, s)| (k.to_owned(), s))
    );
    assert_eq!(list(AuditFilter { subject_id: Some(subject), ..Default::default() }).await.len(), 1);
    assert_eq!(list(AuditFilter { member: Some(subject), ..Default::default() }).await.len(), 2, "actor or subject");
    assert_eq!(list(AuditFilter { kind: Some("role_changed".into()), ..Default::default() }).await.len(), 2);
    let window = AuditFilter { since: Some(NOW.plus_secs(20)), until: Some(NOW.plus_secs(40)), ..Default::default() };
    assert_eq!(list(window).await.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [30, 20], "since inclusive, until not");
    let page = AuditFilter { before_id: Some(all[1].id), limit: 2, ..Default::default() };
    let events = t.list_audit(&page).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [all[2].id, all[3].id]);
    // An export's walk: oldest first, after a cursor, with the filters kept.
    let walk = AuditFilter { after_id: Some(all[4].id), limit: 2, ..Default::default() };
    let events = t.list_audit(&walk).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [all[3].id, all[2].id]);
    let walk = AuditFilter { after_id: Some(0), org_id: Some(a.id.clone()), limit: 50, ..Default::default() };
    assert_eq!(
        t.list_audit(&walk).await.unwrap().into_iter().map(|e| e.kind).collect::<Vec<_>>(),
        ["org_created", "code_refused", "role_changed"]
    );

    // No limit given: 100.
    for i in 0..101 {
        t.append_audit(&at("bulk", Some(&b.id), 100 + i)).await.unwrap();
    }
    assert_eq!(t.list_audit(&AuditFilter::default()).await.unwrap().len(), 100);
    assert!(t.audit_intact().await);
}

async fn verification_finds_edits_deletions_and_cut_chains(t: TestStore) {
    let a = t.org("clinic-a").await;
    t.org("clinic-b").await;
    for i in 0..3 {
        t.append_audit(&at("role_changed", Some(&a.id), i)).await.unwrap();
    }
    t.append_audit(&at("platform_admin_created", None, 9)).await.unwrap();
    let clean = t.verify_audit(&Default::default()).await.unwrap();
    assert_eq!((clean.chains, clean.events, clean.breaks.len()), (3, 6, 0), "{clean:?}");
    assert_eq!(clean.heads["clinic-a"].seq, 4);
    let a_event = |seq: i64| format!("(SELECT id FROM audit_events WHERE chain = 'clinic-a' AND seq = {seq})");

    // An edit, found at its place; undone, the chain verifies again.
    t.raw(&format!("UPDATE audit_events SET outcome = 'failure' WHERE id = {}", a_event(3))).await;
    let r = t.verify_audit(&Default::default()).await.unwrap();
    assert!(matches!(&r.breaks[..], [ChainBreak::Edited { chain, seq: 3, .. }] if chain == "clinic-a"), "{r:?}");
    assert_eq!(r.heads.get("clinic-b"), clean.heads.get("clinic-b"), "other chains still verify");
    t.raw(&format!("UPDATE audit_events SET outcome = 'success' WHERE id = {}", a_event(3))).await;
    assert!(t.audit_intact().await);

    // The newest event deleted: the head says more.
    let checkpoint = clean.heads.clone();
    t.raw(&format!("DELETE FROM audit_events WHERE id = {}", a_event(4))).await;
    let r = t.verify_audit(&Default::default()).await.unwrap();
    assert!(matches!(&r.breaks[..], [ChainBreak::TailMissing { head: 4, missing: 1, .. }]), "{r:?}");
    // ...and the head rewound as well: only a checkpoint kept elsewhere can tell.
    let prev = t.verify_audit(&Default::default()).await.unwrap();
    assert!(!prev.heads.contains_key("clinic-a"));
    t.raw("UPDATE audit_chain_heads SET seq = 3, hash = (SELECT hash FROM audit_events WHERE chain = 'clinic-a' AND seq = 3) WHERE chain = 'clinic-a'").await;
    assert!(t.audit_intact().await);
    let r = t.verify_audit(&checkpoint).await.unwrap();
    assert!(matches!(&r.breaks[..], [ChainBreak::BehindCheckpoint { checkpoint: 4, last: 3, .. }]), "{r:?}");

    // A whole chain gone, head and all: its organization still exists.
    t.raw("DELETE FROM audit_events WHERE chain = 'clinic-b'").await;
    t.raw("DELETE FROM audit_chain_heads WHERE chain = 'clinic-b'").await;
    let r = t.verify_audit(&Default::default()).await.unwrap();
    assert!(matches!(&r.breaks[..], [ChainBreak::ChainMissing { chain }] if chain == "clinic-b"), "{r:?}");
}

async fn concurrent_appends_keep_every_chain_intact(t: TestStore) {
    let a = t.org("clinic-a").await;
    let b = t.org("clinic-b").await;
    let orgs = [Some(a.id.clone()), Some(b.id.clone()), None];
    t.concurrently(30, |store, i| {
        let event = at("bulk", orgs[i % 3].as_ref(), i64::try_from(i).unwrap());
        async move { store.append_audit(&event).await.unwrap() }
    })
    .await;
    let r = t.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks.is_empty(), "{:?}", r.breaks);
    assert_eq!((r.chains, r.events), (3, 32));
    assert_eq!((r.heads["clinic-a"].seq, r.heads["clinic-b"].seq, r.heads[""].seq), (11, 11, 10));
}

/// Makes the database look as if migration 0006 (keyed hashes) had not run yet, so
/// that the next migrate applies it, as an upgrade from an older version does.
async fn before_migration_0006(t: &TestStore) {
    t.raw("DELETE FROM _sqlx_migrations WHERE version = 6").await;
    t.raw("DROP TABLE audit_rekey_pending").await;
}

fn rekeyed(kinds: &[String]) -> usize {
    kinds.iter().filter(|k| *k == "audit_chain_rekeyed").count()
}

async fn a_trail_from_before_chains_is_rekeyed_once(t: TestStore) {
    let a = t.org("clinic-a").await;
    t.append_audit(&at("role_changed", Some(&a.id), 1)).await.unwrap();
    t.append_audit(&at("platform_admin_created", None, 2)).await.unwrap();
    let before = t.verify_audit(&Default::default()).await.unwrap();
    // As a database written before chains looks.
    t.raw("UPDATE audit_events SET chain = NULL, seq = NULL, prev_hash = NULL, hash = NULL").await;
    t.raw("DELETE FROM audit_chain_heads").await;
    assert!(!t.verify_audit(&Default::default()).await.unwrap().breaks.is_empty());
    before_migration_0006(&t).await;
    t.migrate().await.unwrap();
    let after = t.verify_audit(&Default::default()).await.unwrap();
    assert!(after.breaks.is_empty(), "{:?}", after.breaks);
    assert_eq!(after.events, before.events + 1, "every event, and the record of the re-keying");
    let kinds = t.audit_kinds(None).await;
    assert_eq!(rekeyed(&kinds), 1);
    t.migrate().await.unwrap();
    assert_eq!(rekeyed(&t.audit_kinds(None).await), 1, "once only");
}

async fn a_rekey_request_beside_a_keyed_trail_is_refused(t: TestStore) {
    let a = t.org("clinic-a").await;
    for i in 0..3 {
        t.append_audit(&at("role_changed", Some(&a.id), i)).await.unwrap();
    }
    // Someone with database access edits an event, then asks for a re-key.
    t.raw("UPDATE audit_events SET outcome = 'failure' WHERE chain = 'clinic-a' AND seq = 2").await;
    t.raw("INSERT INTO audit_rekey_pending (id) VALUES (1)").await;
    t.migrate().await.unwrap();
    let r = t.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks.iter().any(|b| matches!(b, ChainBreak::Edited { seq: 2, .. })), "{r:?}");
    assert!(r.breaks.contains(&ChainBreak::RekeyRequested), "{r:?}");
    assert_eq!(rekeyed(&t.audit_kinds(None).await), 0, "nothing re-keyed");
}

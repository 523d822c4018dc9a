//! Passkeys and WebAuthn ceremonies.

use clinic_auth_core::{AccountId, FactorKind};
use clinic_auth_store::{Ceremony, NewPasskey, PasskeyState, PasskeyUse, StoreError};

use crate::harness::{NOW, TestStore, audit, new_factor, sealed, successes};

contract!(
    concurrent_passkeys_stop_at_max,
    passkeys_stop_at_max_and_credentials_are_unique,
    a_passkey_counter_must_advance,
    renaming_and_removing_a_passkey,
    a_ceremony_is_taken_once,
);

/// Registrations racing at the limit: no more than `max` get through, on PostgreSQL
/// too (the account row is locked before the counting INSERT).
async fn concurrent_passkeys_stop_at_max(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let event = audit("passkey_added", Some(&org.id), Some(m.id));
    let results = t
        .concurrently(6, |store, i| {
            let (p, event) = (passkey(&m, &format!("pk-{i}"), 0), event.clone());
            async move { store.insert_passkey(&p, &event, 3).await.unwrap() }
        })
        .await;
    assert_eq!(successes(&results), 3, "{results:?}");
    assert_eq!(t.list_factors(m.id).await.unwrap().len(), 3);
}

fn passkey(account: &clinic_auth_store::Account, id: &str, sign_count: u32) -> NewPasskey {
    NewPasskey {
        factor: clinic_auth_store::NewFactor {
            secret: Some(sealed(5)),
            ..new_factor(account, FactorKind::Passkey, id)
        },
        state: PasskeyState {
            credential_id: format!("cred-{id}"),
            sign_count,
            backup_eligible: true,
            backup_state: false,
        },
    }
}

async fn passkeys_stop_at_max_and_credentials_are_unique(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    let event = audit("passkey_added", Some(&org.id), Some(m.id));
    assert!(t.insert_passkey(&passkey(&m, "pk-1", 0), &event, 2).await.unwrap());
    assert!(t.insert_passkey(&passkey(&m, "pk-2", 0), &event, 2).await.unwrap());
    assert!(!t.insert_passkey(&passkey(&m, "pk-3", 0), &event, 2).await.unwrap(), "at the limit");
    let stored = t.list_factors(m.id).await.unwrap();
    assert_eq!(stored.len(), 2);
    let state = stored[0].passkey.clone().unwrap();
    assert_eq!((state.credential_id.as_str(), state.sign_count, state.backup_eligible), ("cred-pk-1", 0, true));
    assert_eq!(t.reload(&m).await.security_stamp, m.security_stamp + 2);

    // A credential id is registered once, to anyone.
    let stolen = NewPasskey { state: passkey(&m, "pk-1", 0).state, ..passkey(&other, "pk-9", 0) };
    let err = t.insert_passkey(&stolen, &event, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("passkey")), "{err:?}");
    let ghost = clinic_auth_store::Account { id: AccountId::new_random(), ..other.clone() };
    let err = t.insert_passkey(&passkey(&ghost, "pk-8", 0), &event, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference("account")), "{err:?}");
    let added = t.audit_kinds(Some(&org.id)).await.into_iter().filter(|k| k == "passkey_added").count();
    assert_eq!(added, 2);
}

async fn a_passkey_counter_must_advance(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    t.insert_passkey(&passkey(&m, "pk", 5), &audit("passkey_added", Some(&org.id), Some(m.id)), 5).await.unwrap();
    let event = audit("passkey_used", Some(&org.id), Some(m.id));
    let used = |sign_count, must_advance| PasskeyUse {
        account_id: m.id,
        factor_id: "pk".into(),
        sign_count,
        counter_must_advance: must_advance,
        backup_state: true,
        sealed: sealed(6),
        now: NOW.plus_secs(i64::from(sign_count)),
    };
    assert!(!t.use_passkey(&used(5, true), &event).await.unwrap(), "not past the stored counter");
    assert!(!t.use_passkey(&used(3, true), &event).await.unwrap());
    assert!(!t.use_passkey(&PasskeyUse { account_id: other.id, ..used(9, true) }, &event).await.unwrap(), "not theirs");
    let results = t
        .concurrently(6, |store, _| {
            let (u, event) = (used(7, true), event.clone());
            async move { store.use_passkey(&u, &event).await.unwrap() }
        })
        .await;
    assert_eq!(successes(&results), 1, "one process accepts an assertion: {results:?}");
    let f = &t.list_factors(m.id).await.unwrap()[0];
    let state = f.passkey.clone().unwrap();
    assert_eq!(
        (state.sign_count, state.backup_state, f.secret.clone(), f.last_used_at),
        (7, true, Some(sealed(6)), Some(NOW.plus_secs(7)))
    );
    // A credential that keeps no counter (synced passkeys report 0) needs no advance.
    assert!(t.use_passkey(&used(0, false), &event).await.unwrap());
    assert!(t.use_passkey(&used(0, false), &event).await.unwrap());
    let uses = t.audit_kinds(Some(&org.id)).await.into_iter().filter(|k| k == "passkey_used").count();
    assert_eq!(uses, 3, "an event for each accepted use only");
}

async fn renaming_and_removing_a_passkey(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let other = t.member(&org, "o@riverside.test").await;
    let event = audit("passkey_changed", Some(&org.id), Some(m.id));
    t.insert_passkey(&passkey(&m, "pk-1", 0), &event, 5).await.unwrap();
    t.insert_passkey(&passkey(&m, "pk-2", 0), &event, 5).await.unwrap();
    t.set_preferred_factor(m.id, Some(FactorKind::Passkey)).await.unwrap();

    assert!(t.rename_passkey(m.id, "pk-1", "Laptop", &event).await.unwrap());
    assert_eq!(t.list_factors(m.id).await.unwrap()[0].label, "Laptop");
    assert!(!t.rename_passkey(other.id, "pk-1", "Mine", &event).await.unwrap(), "not theirs");
    assert!(!t.rename_passkey(m.id, "pk-9", "None", &event).await.unwrap());

    assert!(!t.remove_passkey(other.id, "pk-1", &event).await.unwrap(), "not theirs");
    let stamp = t.reload(&m).await.security_stamp;
    assert!(t.remove_passkey(m.id, "pk-1", &event).await.unwrap());
    assert_eq!(t.reload(&m).await.preferred_factor, Some(FactorKind::Passkey), "one passkey is left");
    assert!(t.remove_passkey(m.id, "pk-2", &event).await.unwrap());
    let now = t.reload(&m).await;
    assert_eq!((now.preferred_factor, now.security_stamp), (None, stamp + 2), "the preference goes with the last");
    assert!(!t.remove_passkey(m.id, "pk-2", &event).await.unwrap());
    assert_eq!(t.list_factors(m.id).await.unwrap(), []);
}

async fn a_ceremony_is_taken_once(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let ceremony = |state: &str, expires| Ceremony {
        key: "key".into(),
        account_id: m.id,
        state: state.into(),
        created_at: NOW,
        expires_at: expires,
    };
    t.put_ceremony(&ceremony("first", NOW.plus_secs(300))).await.unwrap();
    t.put_ceremony(&ceremony("second", NOW.plus_secs(300))).await.unwrap();
    let results = t.concurrently(6, |store, _| async move { store.take_ceremony("key", NOW).await.unwrap() }).await;
    assert_eq!(successes(&results), 1, "answered once");
    let taken = results.into_iter().flatten().next().unwrap();
    assert_eq!((taken.state.as_str(), taken.account_id, taken.expires_at), ("second", m.id, NOW.plus_secs(300)));

    // An expired one is taken out all the same, and not given.
    t.put_ceremony(&ceremony("late", NOW.plus_secs(1))).await.unwrap();
    assert!(t.take_ceremony("key", NOW.plus_secs(1)).await.unwrap().is_none());
    t.put_ceremony(&ceremony("again", NOW.plus_secs(300))).await.unwrap();
    assert!(t.take_ceremony("key", NOW).await.unwrap().is_some_and(|c| c.state == "again"));

    let orphan = Ceremony { account_id: AccountId::new_random(), ..ceremony("x", NOW) };
    let err = t.put_ceremony(&orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference("account")), "{err:?}");
}

//! "Change email": a waiting change per account (the newest replaces the others,
//! "Cancel" ends it), and the one transaction that makes it, once, only under the
//! conditions of the request and while the address is free in the realm.

use clinic_auth_core::{AccountKind, Email, Realm};
use clinic_auth_store::{Account, EmailChangeConfirmed, LinkPurpose, NewEmailChange};

use crate::harness::{NOW, TestStore, audit, find, password_link, token};

contract!(
    an_email_change_waits_and_the_newest_replaces_the_others,
    an_email_change_applies_once_and_only_as_requested,
    two_confirms_of_one_link_race_and_one_wins,
    two_accounts_racing_for_one_address_get_it_once,
);

/// A change of `account`'s email to `new`, link `name`, asked at `NOW + at` for an hour.
fn change(account: &Account, name: &str, new: &str, at: i64) -> NewEmailChange {
    NewEmailChange {
        token_hash: token(name),
        account_id: account.id,
        new_email: Email::parse(new).unwrap(),
        old_email: account.email.clone(),
        stamp: account.security_stamp,
        created_at: NOW.plus_secs(at),
        expires_at: NOW.plus_secs(at + 3600),
    }
}

async fn an_email_change_waits_and_the_newest_replaces_the_others(t: TestStore) {
    let org = t.org("riverside").await;
    let a = t.member(&org, "a@riverside.test").await;
    let b = t.member(&org, "b@riverside.test").await;
    let requested = audit("email_change_requested", Some(&org.id), Some(a.id));
    assert_eq!(t.pending_email_change(a.id, NOW).await.unwrap(), None);

    t.insert_email_change(&change(&a, "first", "one@new.test", 0), &requested).await.unwrap();
    t.insert_email_change(&change(&b, "theirs", "b2@new.test", 0), &requested).await.unwrap();
    let first = t.get_email_change(&token("first")).await.unwrap().unwrap();
    assert_eq!((first.new_email.as_str(), first.old_email.as_str()), ("one@new.test", "a@riverside.test"));
    assert_eq!((first.account_id, first.stamp, first.used_at), (a.id, a.security_stamp, None));
    assert_eq!(t.pending_email_change(a.id, NOW).await.unwrap(), Some(first.clone()));
    assert_eq!(t.pending_email_change(a.id, NOW.plus_secs(3600)).await.unwrap(), None, "an hour");
    assert_eq!(t.get_email_change(&token("unknown")).await.unwrap(), None);

    // A newer request ends the older one, at once; another account's stays.
    t.insert_email_change(&change(&a, "second", "two@new.test", 10), &requested).await.unwrap();
    let first = t.get_email_change(&token("first")).await.unwrap().unwrap();
    assert!(!first.is_usable(NOW.plus_secs(10)), "replaced: {first:?}");
    let pending = t.pending_email_change(a.id, NOW.plus_secs(10)).await.unwrap().unwrap();
    assert_eq!(pending.new_email.as_str(), "two@new.test");
    let now = NOW.plus_secs(10);
    assert_eq!(
        t.confirm_email_change(&token("first"), now, &audit("email_changed", None, None)).await.unwrap(),
        EmailChangeConfirmed::Unusable,
        "a replaced link changes nothing"
    );
    assert!(t.pending_email_change(b.id, now).await.unwrap().is_some());

    // "Cancel": only the account's own, audited only when there was one.
    let mut cancelled = audit("email_change_cancelled", Some(&org.id), Some(a.id));
    cancelled.at = NOW.plus_secs(20);
    assert!(t.cancel_email_change(a.id, &cancelled).await.unwrap());
    assert_eq!(t.pending_email_change(a.id, NOW.plus_secs(20)).await.unwrap(), None);
    assert!(!t.cancel_email_change(a.id, &cancelled).await.unwrap(), "nothing left to cancel");
    assert!(t.pending_email_change(b.id, NOW.plus_secs(20)).await.unwrap().is_some(), "theirs stays");
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds.iter().filter(|k| *k == "email_change_requested").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "email_change_cancelled").count(), 1);
    assert_eq!(t.reload(&a).await.email.as_str(), "a@riverside.test", "nothing changed the account");
    assert!(t.audit_intact().await);
}

async fn an_email_change_applies_once_and_only_as_requested(t: TestStore) {
    let org = t.org("riverside").await;
    let a = t.member(&org, "a@riverside.test").await;
    let session = t.session(&a, "here").await;
    let flow = t.flow(&a, "in-flight").await;
    let reset = password_link("reset", LinkPurpose::PasswordReset, Some(a.id));
    t.insert_password_link(&reset, &audit("reset_sent", Some(&org.id), Some(a.id))).await.unwrap();
    let requested = audit("email_change_requested", Some(&org.id), Some(a.id));
    let changed = audit("email_changed", Some(&org.id), Some(a.id));
    let at = |secs: i64| NOW.plus_secs(secs);

    // Expired: nothing.
    t.insert_email_change(&change(&a, "late", "late@new.test", 0), &requested).await.unwrap();
    assert_eq!(
        t.confirm_email_change(&token("late"), at(3600), &changed).await.unwrap(),
        EmailChangeConfirmed::Unusable
    );

    // Taken by another account of the realm: nothing, and the link stays unused.
    t.member(&org, "taken@riverside.test").await;
    t.insert_email_change(&change(&a, "taken", "taken@riverside.test", 1), &requested).await.unwrap();
    assert_eq!(
        t.confirm_email_change(&token("taken"), at(2), &changed).await.unwrap(),
        EmailChangeConfirmed::AddressTaken
    );
    assert_eq!(t.get_email_change(&token("taken")).await.unwrap().unwrap().used_at, None);
    assert_eq!(t.reload(&a).await.email.as_str(), "a@riverside.test");
    // A patient with the address is in another realm: no obstacle.
    t.account(AccountKind::Patient, Some(&org), "new@riverside.test").await;

    // The security stamp moved on since the request (a password reset, say): nothing.
    t.insert_email_change(&change(&a, "stale", "new@riverside.test", 3), &requested).await.unwrap();
    t.raw(&format!("UPDATE accounts SET security_stamp = security_stamp + 1 WHERE id = '{}'", a.id)).await;
    assert_eq!(
        t.confirm_email_change(&token("stale"), at(4), &changed).await.unwrap(),
        EmailChangeConfirmed::AccountChanged
    );
    assert_eq!(t.get_email_change(&token("stale")).await.unwrap().unwrap().used_at, None, "rolled back");

    // As requested: the email changes, the link is used, reset links void; the stamp,
    // the sessions and the sign-ins in flight stay.
    let a = t.reload(&a).await;
    t.insert_email_change(&change(&a, "good", "new@riverside.test", 5), &requested).await.unwrap();
    assert_eq!(t.confirm_email_change(&token("good"), at(6), &changed).await.unwrap(), EmailChangeConfirmed::Changed);
    let now = t.reload(&a).await;
    assert_eq!(now.email.as_str(), "new@riverside.test");
    assert_eq!(now.security_stamp, a.security_stamp, "the sign-in name is not a credential");
    assert_eq!(find(&t, Realm::Staff, "a@riverside.test").await, None, "the old address is free");
    assert_eq!(find(&t, Realm::Staff, "new@riverside.test").await.unwrap().id, a.id);
    assert_eq!(find(&t, Realm::Patient, "new@riverside.test").await.unwrap().kind, AccountKind::Patient);
    assert_eq!(t.get_email_change(&token("good")).await.unwrap().unwrap().used_at, Some(at(6)));
    assert!(t.get_session(&session).await.unwrap().is_some(), "sessions stay");
    assert!(t.get_flow(&flow).await.unwrap().is_some(), "sign-ins in flight stay");
    assert!(!t.get_password_link(&reset.token_hash).await.unwrap().unwrap().is_usable(at(6)), "reset links void");
    // Once.
    assert_eq!(t.confirm_email_change(&token("good"), at(7), &changed).await.unwrap(), EmailChangeConfirmed::Unusable);

    // The email is no longer the one of the request: nothing.
    t.insert_email_change(&change(&a, "old-email", "other@riverside.test", 8), &requested).await.unwrap();
    assert_eq!(
        t.confirm_email_change(&token("old-email"), at(9), &changed).await.unwrap(),
        EmailChangeConfirmed::AccountChanged
    );
    // A deactivated account: nothing.
    t.insert_email_change(&change(&now, "inactive", "other@riverside.test", 10), &requested).await.unwrap();
    t.raw(&format!("UPDATE accounts SET status = 'deactivated' WHERE id = '{}'", a.id)).await;
    assert_eq!(
        t.confirm_email_change(&token("inactive"), at(11), &changed).await.unwrap(),
        EmailChangeConfirmed::AccountChanged
    );
    assert_eq!(t.reload(&a).await.email.as_str(), "new@riverside.test");
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds.iter().filter(|k| *k == "email_changed").count(), 1, "audited once, with the change");
    assert!(t.audit_intact().await);
}

async fn two_confirms_of_one_link_race_and_one_wins(t: TestStore) {
    let org = t.org("riverside").await;
    let a = t.member(&org, "a@riverside.test").await;
    let requested = audit("email_change_requested", Some(&org.id), Some(a.id));
    t.insert_email_change(&change(&a, "link", "new@riverside.test", 0), &requested).await.unwrap();
    let org_id = org.id.clone();
    let results = t
        .concurrently(8, move |store, _| {
            let event = audit("email_changed", Some(&org_id), Some(a.id));
            async move { store.confirm_email_change(&token("link"), NOW.plus_secs(1), &event).await.unwrap() }
        })
        .await;
    assert_eq!(results.iter().filter(|r| **r == EmailChangeConfirmed::Changed).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, EmailChangeConfirmed::Changed | EmailChangeConfirmed::Unusable)));
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds.iter().filter(|k| *k == "email_changed").count(), 1);
}

async fn two_accounts_racing_for_one_address_get_it_once(t: TestStore) {
    let org = t.org("riverside").await;
    let requested = audit("email_change_requested", Some(&org.id), None);
    let mut accounts = Vec::new();
    for i in 0..6 {
        let account = t.member(&org, &format!("m{i}@riverside.test")).await;
        t.insert_email_change(&change(&account, &format!("link-{i}"), "wanted@riverside.test", 0), &requested)
            .await
            .unwrap();
        accounts.push(account);
    }
    let org_id = org.id.clone();
    let results = t
        .concurrently(6, move |store, i| {
            let event = audit("email_changed", Some(&org_id), None);
            async move { store.confirm_email_change(&token(&format!("link-{i}")), NOW.plus_secs(1), &event).await }
        })
        .await;
    let results: Vec<EmailChangeConfirmed> = results.into_iter().map(|r| r.expect("never an error")).collect();
    assert_eq!(results.iter().filter(|r| **r == EmailChangeConfirmed::Changed).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, EmailChangeConfirmed::Changed | EmailChangeConfirmed::AddressTaken)));
    let holder = find(&t, Realm::Staff, "wanted@riverside.test").await.unwrap();
    let mut still = 0;
    for a in &accounts {
        if t.reload(a).await.email == a.email {
            still += 1;
        } else {
            assert_eq!(a.id, holder.id);
        }
    }
    assert_eq!(still, 5, "the others keep their email");
    assert_eq!(t.audit_kinds(Some(&org.id)).await.iter().filter(|k| *k == "email_changed").count(), 1);
    assert!(t.audit_intact().await);
}

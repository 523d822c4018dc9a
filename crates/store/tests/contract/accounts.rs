//! Accounts and password links: invitations, resets, and the first admin's setup.

use clinic_auth_core::{AccountId, AccountKind, AccountStatus, OrgId, Realm, Role};
use clinic_auth_store::{LinkPurpose, NewAccount, NewPasswordLink, StoreError};

use crate::harness::{NOW, TestStore, audit, find, new_account, password_link, token};

contract!(
    accounts_round_trip,
    an_invitation_link_sets_the_password_once,
    a_reissued_invitation_replaces_the_old_only_while_no_password_is_set,
    the_setup_link_creates_the_first_admin_once,
    status_and_role_change_only_known_accounts,
    a_password_change_keeps_only_the_session_that_made_it,
);

async fn accounts_round_trip(t: TestStore) {
    let org = t.org("riverside").await;
    let b = t.member(&org, "b@riverside.test").await;
    let a = t.member(&org, "a@riverside.test").await;
    let patient = t.account(AccountKind::Patient, None, "a@riverside.test").await;
    assert_eq!(
        (a.kind, a.org_id.as_ref(), a.role, a.status),
        (AccountKind::Member, Some(&org.id), Some(Role::Staff), AccountStatus::Active)
    );
    assert_eq!(a.password_hash.as_deref(), Some("hash-of-a@riverside.test"));
    assert_eq!((a.created_at, a.bypass, a.preferred_factor), (NOW, None, None));

    // One email per realm: the same address is another account in another realm.
    assert_eq!(find(&t, Realm::Staff, "a@riverside.test").await, Some(a.clone()));
    assert_eq!(find(&t, Realm::Patient, "a@riverside.test").await, Some(patient));
    assert_eq!(find(&t, Realm::Staff, "nobody@riverside.test").await, None);
    assert_eq!(t.get_account(AccountId::new_random()).await.unwrap(), None);
    let twin = NewAccount {
        role: Some(Role::Admin),
        ..new_account(AccountKind::Member, Some(&org), "a@riverside.test", None)
    };
    let err = t.insert_account(&twin, None, &audit("account_created", Some(&org.id), None)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("an account with this email")), "{err:?}");
    let orphan = NewAccount {
        org_id: Some(OrgId::parse("nowhere").unwrap()),
        ..new_account(AccountKind::Member, None, "x@nowhere.test", None)
    };
    let err = t.insert_account(&orphan, None, &audit("account_created", None, None)).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference("organization")), "{err:?}");

    // Members by email, and only members.
    let members: Vec<AccountId> = t.list_members(&org.id).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(members, [a.id, b.id]);

    assert_eq!(t.count_platform_admins().await.unwrap(), 0);
    t.account(AccountKind::PlatformAdmin, None, "support@platform.test").await;
    assert_eq!(t.count_platform_admins().await.unwrap(), 1);

    t.rehash_password(a.id, "argon2-new", NOW.plus_secs(1)).await.unwrap();
    assert_eq!(t.reload(&a).await.password_hash.as_deref(), Some("argon2-new"));
    assert_eq!(t.reload(&b).await.password_hash.as_deref(), Some("hash-of-b@riverside.test"));
}

async fn an_invitation_link_sets_the_password_once(t: TestStore) {
    let org = t.org("riverside").await;
    let (id, invitation) = t.invite(&org, "new@riverside.test", "invite").await;
    let stored = t.get_password_link(&invitation.token_hash).await.unwrap().unwrap();
    assert_eq!((stored.purpose, stored.account_id, stored.used_at), (LinkPurpose::Invitation, Some(id), None));
    assert!(stored.is_usable(NOW));
    assert_eq!(t.get_password_link(&token("nothing")).await.unwrap(), None);
    let account = t.get_account(id).await.unwrap().unwrap();
    assert_eq!(account.password_hash, None);
    assert_eq!(account.joined_at, None, "not joined before the invitation is accepted");

    // A second link (a reset) and a session in flight: both end with the new password.
    let reset = password_link("reset", LinkPurpose::PasswordReset, Some(id));
    t.insert_password_link(&reset, &audit("reset_sent", Some(&org.id), Some(id))).await.unwrap();
    let session = t.session(&account, "s").await;
    let flow = t.flow(&account, "f").await;
    let later = NOW.plus_secs(60);

    // Not for another account, and not once expired.
    let event = audit("password_set", Some(&org.id), Some(id));
    let other = AccountId::new_random();
    assert!(!t.set_password_with_link(&invitation.token_hash, other, "pw", later, &event).await.unwrap());
    let expired = NOW.plus_secs(3600);
    assert!(!t.set_password_with_link(&invitation.token_hash, id, "pw", expired, &event).await.unwrap());

    let results = t
        .concurrently(4, |store, i| {
            let (hash, event) = (invitation.token_hash.clone(), event.clone());
            async move { store.set_password_with_link(&hash, id, &format!("pw{i}"), later, &event).await.unwrap() }
        })
        .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "a link sets a password once: {results:?}");
    let account = t.reload(&account).await;
    assert!(account.password_hash.as_deref().is_some_and(|h| h.starts_with("pw")));
    assert_eq!(account.security_stamp, 1);
    assert_eq!((account.joined_at, account.joined()), (Some(later), later), "joined with the first password");
    assert_eq!(t.get_password_link(&invitation.token_hash).await.unwrap().unwrap().used_at, Some(later));
    assert!(!t.get_password_link(&reset.token_hash).await.unwrap().unwrap().is_usable(later), "other links void");
    assert_eq!(t.get_session(&session).await.unwrap(), None, "sessions end");
    assert_eq!(t.get_flow(&flow).await.unwrap(), None, "sign-ins in flight end");
    assert_eq!(t.audit_kinds(Some(&org.id)).await.iter().filter(|k| *k == "password_set").count(), 1);
}

async fn a_reissued_invitation_replaces_the_old_only_while_no_password_is_set(t: TestStore) {
    let org = t.org("riverside").await;
    let (id, first) = t.invite(&org, "new@riverside.test", "first").await;
    let second =
        NewPasswordLink { created_at: NOW.plus_secs(10), ..password_link("second", LinkPurpose::Invitation, Some(id)) };
    let event = audit("invitation_resent", Some(&org.id), Some(id));
    assert!(t.reissue_invitation(&second, &event).await.unwrap());
    let first_now = t.get_password_link(&first.token_hash).await.unwrap().unwrap();
    assert_eq!(first_now.expires_at, second.created_at, "the old link is voided");
    assert!(t.get_password_link(&second.token_hash).await.unwrap().unwrap().is_usable(NOW.plus_secs(10)));

    // No account named, or the password set already: nothing changes.
    let nobody = password_link("nobody", LinkPurpose::Invitation, None);
    assert!(!t.reissue_invitation(&nobody, &event).await.unwrap());
    let at = NOW.plus_secs(20);
    let set = audit("password_set", Some(&org.id), Some(id));
    assert!(t.set_password_with_link(&second.token_hash, id, "pw", at, &set).await.unwrap());
    assert_eq!(t.get_account(id).await.unwrap().unwrap().joined_at, Some(at));
    // A later reset does not move when the member joined.
    let reset = password_link("reset", LinkPurpose::PasswordReset, Some(id));
    t.insert_password_link(&reset, &audit("reset_sent", Some(&org.id), Some(id))).await.unwrap();
    assert!(t.set_password_with_link(&reset.token_hash, id, "pw2", at.plus_secs(5), &set).await.unwrap());
    let joined = t.get_account(id).await.unwrap().unwrap();
    assert_eq!((joined.password_hash.as_deref(), joined.joined_at), (Some("pw2"), Some(at)));
    let third = password_link("third", LinkPurpose::Invitation, Some(id));
    assert!(!t.reissue_invitation(&third, &event).await.unwrap());
    assert_eq!(t.get_password_link(&third.token_hash).await.unwrap(), None);
    assert_eq!(t.audit_kinds(Some(&org.id)).await.iter().filter(|k| *k == "invitation_resent").count(), 1);
}

async fn the_setup_link_creates_the_first_admin_once(t: TestStore) {
    let old = password_link("setup-old", LinkPurpose::Setup, None);
    t.insert_password_link(&old, &audit("setup_link", None, None)).await.unwrap();
    let new = password_link("setup-new", LinkPurpose::Setup, None);
    t.replace_setup_link(&new, NOW.plus_secs(5)).await.unwrap();
    assert!(!t.get_password_link(&old.token_hash).await.unwrap().unwrap().is_usable(NOW.plus_secs(5)));

    let admin = |n: usize| new_account(AccountKind::PlatformAdmin, None, &format!("admin{n}@platform.test"), Some("h"));
    let at = NOW.plus_secs(6);
    let event = audit("platform_admin_created", None, None);
    assert!(!t.create_admin_with_setup_link(&old.token_hash, &admin(0), at, &event).await.unwrap(), "a replaced link");
    let results = t
        .concurrently(4, |store, i| {
            let (hash, account, event) = (new.token_hash.clone(), admin(i + 1), event.clone());
            async move { store.create_admin_with_setup_link(&hash, &account, at, &event).await.unwrap() }
        })
        .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
    assert_eq!(t.count_platform_admins().await.unwrap(), 1);
    assert_eq!(t.get_password_link(&new.token_hash).await.unwrap().unwrap().used_at, Some(at));
    assert_eq!(t.audit_kinds(None).await.iter().filter(|k| *k == "platform_admin_created").count(), 1);
    assert!(t.audit_intact().await);
}

async fn status_and_role_change_only_known_accounts(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let admin = t.account(AccountKind::PlatformAdmin, None, "support@platform.test").await;
    let session = t.session(&m, "s").await;
    let event = |kind| audit(kind, Some(&org.id), Some(m.id));

    assert!(t.set_role(m.id, Role::Owner, &event("role_changed")).await.unwrap());
    assert_eq!(t.reload(&m).await.role, Some(Role::Owner));
    assert!(!t.set_role(admin.id, Role::Owner, &event("role_changed")).await.unwrap(), "members only");
    assert!(!t.set_role(AccountId::new_random(), Role::Owner, &event("role_changed")).await.unwrap());

    assert!(t.set_account_status(m.id, AccountStatus::Deactivated, &event("deactivated")).await.unwrap());
    let now = t.reload(&m).await;
    assert_eq!((now.status, now.security_stamp), (AccountStatus::Deactivated, m.security_stamp + 1));
    assert_eq!(t.get_session(&session).await.unwrap(), None, "deactivating ends every session");
    assert!(t.set_account_status(m.id, AccountStatus::Active, &event("reactivated")).await.unwrap());
    assert_eq!(t.reload(&m).await.security_stamp, m.security_stamp + 1, "reactivating moves nothing");
    let unknown = AccountId::new_random();
    assert!(!t.set_account_status(unknown, AccountStatus::Deactivated, &event("deactivated")).await.unwrap());
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds[kinds.len() - 3..], ["role_changed", "deactivated", "reactivated"]);
}

async fn a_password_change_keeps_only_the_session_that_made_it(t: TestStore) {
    let org = t.org("riverside").await;
    let account = t.member(&org, "a@riverside.test").await;
    let other = t.member(&org, "b@riverside.test").await;
    let here = t.session(&account, "here").await;
    let elsewhere = t.session(&account, "elsewhere").await;
    let theirs = t.session(&other, "theirs").await;
    let flow = t.flow(&account, "in-flight").await;
    let reset = password_link("reset", LinkPurpose::PasswordReset, Some(account.id));
    t.insert_password_link(&reset, &audit("reset_sent", Some(&org.id), Some(account.id))).await.unwrap();
    let stamp = t.reload(&account).await.security_stamp;
    let event = audit("password_changed", Some(&org.id), Some(account.id));

    // Only from a session of the account itself.
    assert!(!t.change_password(account.id, "new-hash", &theirs, &event).await.unwrap());
    assert!(!t.change_password(account.id, "new-hash", &token("gone"), &event).await.unwrap());
    assert_eq!(t.reload(&account).await.password_hash.as_deref(), Some("hash-of-a@riverside.test"));

    assert!(t.change_password(account.id, "new-hash", &here, &event).await.unwrap());
    let changed = t.reload(&account).await;
    assert_eq!(changed.password_hash.as_deref(), Some("new-hash"));
    assert_eq!(changed.security_stamp, stamp + 1, "the stamp moves on, ending the apps' grants");
    assert!(t.get_session(&here).await.unwrap().is_some(), "the session that changed it stays");
    assert_eq!(t.get_session(&elsewhere).await.unwrap(), None, "every other session ends");
    assert!(t.get_session(&theirs).await.unwrap().is_some(), "another account's sessions are untouched");
    assert_eq!(t.get_flow(&flow).await.unwrap(), None, "sign-ins in flight end");
    assert!(!t.get_password_link(&reset.token_hash).await.unwrap().unwrap().is_usable(NOW), "unused links void");
    let kinds = t.audit_kinds(Some(&org.id)).await;
    assert_eq!(kinds.iter().filter(|k| *k == "password_changed").count(), 1, "audited once, with the change");

    // A deactivated account changes nothing, even from a session left behind.
    t.raw(&format!("UPDATE accounts SET status = 'deactivated' WHERE id = '{}'", other.id)).await;
    assert!(!t.change_password(other.id, "x", &theirs, &event).await.unwrap());
    assert_eq!(t.reload(&other).await.password_hash.as_deref(), Some("hash-of-b@riverside.test"));
    assert!(t.audit_intact().await);
}

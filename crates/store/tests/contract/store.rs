//! The store as a whole: which backend, reachability, migrations, and purging.

use clinic_auth_core::{CodeChallenge, FactorKind, LoginFlow, UnixTime};
use clinic_auth_store::{Ceremony, LinkPurpose, NewPasswordLink, PendingFactor, StoreError, StoredCode};

use crate::harness::{Backend, NOW, TestStore, audit, chain_keys, sealed, token};

contract!(names_its_backend_answers_and_migrates_again, purging_deletes_only_what_expired);

#[tokio::test]
async fn unknown_database_urls_are_refused() {
    for url in ["mysql://localhost/db", "file:store.db", ""] {
        assert!(matches!(clinic_auth_store::check_url(url), Err(StoreError::UnsupportedUrl)), "{url}");
        let err = clinic_auth_store::connect(url, chain_keys()).await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl), "{url}: {err:?}");
    }
    for url in ["sqlite:store.db", "postgres://h/db", "postgresql://h/db"] {
        assert!(clinic_auth_store::check_url(url).is_ok(), "{url}");
    }
}

async fn names_its_backend_answers_and_migrates_again(t: TestStore) {
    let want = match t.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(t.backend_name(), want);
    t.ping().await.unwrap();
    let org = t.org("riverside").await;
    t.migrate().await.unwrap();
    t.migrate().await.unwrap();
    assert_eq!(t.get_org(&org.id).await.unwrap(), Some(org), "data survives");
    assert_eq!(t.audit_kinds(None).await, ["org_created"], "no re-key of a keyed trail");
}

async fn purging_deletes_only_what_expired(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let now = NOW.plus_secs(3600);
    let idle_cutoff = NOW.plus_secs(1800);

    // Unused links are kept a week past their expiry; used ones are kept. (First,
    // since using a link ends the account's sessions and sign-ins.)
    let week = 7 * 24 * 3600;
    let link = |name: &str, expires: UnixTime| NewPasswordLink {
        token_hash: token(name),
        purpose: LinkPurpose::PasswordReset,
        account_id: Some(m.id),
        created_at: NOW,
        expires_at: expires,
    };
    let event = audit("reset_sent", Some(&org.id), Some(m.id));
    for l in [
        link("link-due", UnixTime(now.0 - week)),
        link("link-kept", UnixTime(now.0 - week + 1)),
        link("link-used", now),
    ] {
        t.insert_password_link(&l, &event).await.unwrap();
    }
    assert!(t.set_password_with_link(&token("link-used"), m.id, "pw", NOW, &event).await.unwrap());
    t.raw("UPDATE password_links SET expires_at = 0 WHERE token_hash = 'hash-link-used'").await;

    // Each other kind of row twice: one due (at the boundary), one not.
    for (name, expires) in [("flow-due", now), ("flow-kept", now.plus_secs(1))] {
        let flow = LoginFlow { expires_at: expires, ..LoginFlow::start(m.realm(), m.email.clone(), NOW) };
        t.insert_flow(&token(name), &flow).await.unwrap();
    }
    let idle = t.session(&m, "idle").await;
    let active = t.session(&m, "active").await;
    t.touch_session(&idle, UnixTime(idle_cutoff.0 - 1)).await.unwrap();
    t.touch_session(&active, idle_cutoff).await.unwrap();
    for (channel, expires) in [(FactorKind::Email, now), (FactorKind::Sms, now.plus_secs(1))] {
        let code = StoredCode {
            account_id: m.id,
            channel,
            purpose: "sign_in".into(),
            target: "x".into(),
            code_hash: "mac".into(),
            challenge: CodeChallenge { sent_at: NOW, expires_at: expires, attempts: 0 },
            bound_to: "flow".into(),
        };
        t.put_code(&code, &audit("code_sent", Some(&org.id), Some(m.id))).await.unwrap();
    }
    for (key, expires) in [("due", now), ("kept", now.plus_secs(1))] {
        let c =
            Ceremony { key: key.into(), account_id: m.id, state: "{}".into(), created_at: NOW, expires_at: expires };
        t.put_ceremony(&c).await.unwrap();
    }
    for (kind, expires) in [(FactorKind::Authenticator, now), (FactorKind::Passkey, now.plus_secs(1))] {
        let secret = sealed(1);
        let p = PendingFactor {
            account_id: m.id,
            kind,
            secret,
            created_at: NOW,
            expires_at: expires,
            bound_to: "b".into(),
        };
        t.put_pending_factor(&p).await.unwrap();
    }

    assert_eq!(t.purge_expired(now, idle_cutoff).await.unwrap(), 6);
    assert_eq!(t.get_flow(&token("flow-due")).await.unwrap(), None);
    assert!(t.get_flow(&token("flow-kept")).await.unwrap().is_some());
    assert_eq!(t.get_session(&idle).await.unwrap(), None);
    assert!(t.get_session(&active).await.unwrap().is_some());
    assert_eq!(t.get_code(m.id, FactorKind::Email).await.unwrap(), None);
    assert!(t.get_code(m.id, FactorKind::Sms).await.unwrap().is_some());
    assert_eq!(t.get_pending_factor(m.id, FactorKind::Authenticator).await.unwrap(), None);
    assert!(t.get_pending_factor(m.id, FactorKind::Passkey).await.unwrap().is_some());
    assert_eq!(t.get_password_link(&token("link-due")).await.unwrap(), None);
    assert!(t.get_password_link(&token("link-kept")).await.unwrap().is_some());
    assert!(t.get_password_link(&token("link-used")).await.unwrap().is_some());
    assert!(t.take_ceremony("due", NOW).await.unwrap().is_none());
    assert!(t.take_ceremony("kept", NOW).await.unwrap().is_some());
    assert_eq!(t.purge_expired(now, idle_cutoff).await.unwrap(), 0, "nothing left to purge");
}

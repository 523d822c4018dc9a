//! OpenID Connect: apps, signing keys, authorization requests, grants with their codes
//! and tokens (each used once, all ended with their grant), back-channel logouts, and
//! the session id and proofs that sign-ins hand to apps.

use clinic_auth_core::{AccountId, OrgId, Realm, UnixTime};
use clinic_auth_store::{
    Account, AuthorizationRequest, CodeTaken, LogoutDelivery, NewOidcToken, OidcClient, OidcCode, OidcGrant,
    OidcTokenKind, Org, PendingLogout, RefreshTaken, SigningKey, StoreError,
};

use crate::harness::{Backend, NOW, TestStore, audit, new_session, token};

contract!(
    clients_round_trip_and_are_unique,
    signing_keys_rotate_and_stay_published_for_a_while,
    authorization_requests_are_put_read_and_deleted,
    a_grant_is_stored_with_its_code,
    a_code_is_taken_once,
    racing_presentations_of_a_code_get_one_fresh,
    tokens_are_issued_only_while_the_grant_lives,
    a_refresh_token_rotates_once,
    racing_rotations_of_a_refresh_token_rotate_once,
    a_refresh_token_of_a_revoked_grant_does_not_rotate,
    revoking_a_grant_ends_its_codes_and_tokens,
    an_access_token_is_deleted_once,
    grants_are_listed_by_account_session_and_time,
    logouts_are_queued_once_retried_and_finished,
    purging_deletes_expired_oidc_rows,
    sessions_keep_a_unique_sid_and_what_they_proved,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_gives_existing_sessions_a_sid_sqlite() {
    existing_sessions_get_a_sid_and_password_only(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_gives_existing_sessions_a_sid_postgres() {
    existing_sessions_get_a_sid_and_password_only(Backend::Postgres).await;
}

fn client(id: &str, org: Option<&Org>) -> OidcClient {
    OidcClient {
        client_id: id.into(),
        name: format!("App {id}"),
        secret_hash: Some(format!("secret-of-{id}")),
        org_id: org.map(|o| o.id.clone()),
        realm: Realm::Staff,
        require_mfa: true,
        redirect_uris: vec![format!("https://{id}.test/cb"), format!("https://{id}.test/other")],
        post_logout_redirect_uris: vec![format!("https://{id}.test/bye")],
        backchannel_logout_uri: Some(format!("https://{id}.test/logout")),
        id_token_alg: "ES256".into(),
        created_at: NOW,
    }
}

/// A clinic, a member and a registered app.
async fn setup(t: &TestStore) -> (Org, Account, OidcClient) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    let c = client("chart", Some(&org));
    t.insert_oidc_client(&c, &audit("oidc_client_registered", Some(&org.id), None)).await.unwrap();
    (org, m, c)
}

fn grant(id: &str, client: &OidcClient, account: &Account, sid: &str, created_at: UnixTime) -> OidcGrant {
    OidcGrant {
        id: id.into(),
        client_id: client.client_id.clone(),
        account_id: account.id,
        sid: sid.into(),
        stamp: account.security_stamp,
        scope: "openid email".into(),
        nonce: Some(format!("nonce-{id}")),
        auth_time: NOW,
        proved: "password,authenticator".into(),
        created_at,
        revoked_at: None,
    }
}

fn code(name: &str, grant: &OidcGrant) -> OidcCode {
    OidcCode {
        code_hash: token(name),
        grant_id: grant.id.clone(),
        redirect_uri: "https://chart.test/cb".into(),
        code_challenge: format!("challenge-{name}"),
        expires_at: NOW.plus_secs(60),
    }
}

fn new_token(name: &str, kind: OidcTokenKind) -> NewOidcToken {
    NewOidcToken { token_hash: token(name), kind, expires_at: NOW.plus_secs(3600) }
}

/// An access and a refresh token named `{name}-access` and `{name}-refresh`.
fn pair(name: &str) -> [NewOidcToken; 2] {
    [
        new_token(&format!("{name}-access"), OidcTokenKind::Access),
        new_token(&format!("{name}-refresh"), OidcTokenKind::Refresh),
    ]
}

/// A grant `id` of `account` through `client` in session `sid`, with its code `code-{id}`.
async fn granted(t: &TestStore, id: &str, client: &OidcClient, account: &Account, sid: &str) -> OidcGrant {
    let g = grant(id, client, account, sid, NOW);
    let event = audit("oidc_granted", account.org_id.as_ref(), Some(account.id));
    t.insert_oidc_grant(&g, &code(&format!("code-{id}"), &g), &event).await.unwrap();
    g
}

/// A grant with tokens `{id}-access` and `{id}-refresh`.
async fn granted_with_tokens(t: &TestStore, id: &str, client: &OidcClient, account: &Account) -> OidcGrant {
    let g = granted(t, id, client, account, "sid-1").await;
    let event = audit("oidc_tokens_issued", account.org_id.as_ref(), Some(account.id));
    assert!(t.issue_oidc_tokens(&g.id, &pair(id), &event).await.unwrap());
    g
}

fn ids_of(logouts: Vec<PendingLogout>) -> Vec<String> {
    logouts.into_iter().map(|l| l.id).collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

async fn clients_round_trip_and_are_unique(t: TestStore) {
    let (org, _, c) = setup(&t).await;
    assert_eq!(t.get_oidc_client("chart").await.unwrap(), Some(c.clone()));
    assert_eq!(t.get_oidc_client("nope").await.unwrap(), None);
    assert_eq!(t.audit_kinds(Some(&org.id)).await.last().map(String::as_str), Some("oidc_client_registered"));

    // A public, platform-wide app without back-channel logout; listed by name.
    let public = OidcClient {
        name: "Booking".into(),
        secret_hash: None,
        org_id: None,
        realm: Realm::Patient,
        require_mfa: false,
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        id_token_alg: "RS256".into(),
        ..client("booking", None)
    };
    t.insert_oidc_client(&public, &audit("oidc_client_registered", None, None)).await.unwrap();
    assert_eq!(t.get_oidc_client("booking").await.unwrap(), Some(public.clone()));
    assert_eq!(t.list_oidc_clients().await.unwrap(), [c.clone(), public], "by name");

    let event = audit("oidc_client_registered", Some(&org.id), None);
    let again = OidcClient { name: "Another".into(), ..c.clone() };
    let err = t.insert_oidc_client(&again, &event).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("client")), "{err:?}");
    let orphan = OidcClient { org_id: Some(OrgId::parse("nowhere").unwrap()), ..client("orphan", None) };
    let err = t.insert_oidc_client(&orphan, &event).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference(_)), "{err:?}");
    assert_eq!(t.get_oidc_client("chart").await.unwrap(), Some(c));
    assert_eq!(t.list_oidc_clients().await.unwrap().len(), 2);
    assert_eq!(count(&t.audit_kinds(None).await, "oidc_client_registered"), 2, "no event for a refused one");
}

async fn signing_keys_rotate_and_stay_published_for_a_while(t: TestStore) {
    let key = |kid: &str, created: i64| SigningKey {
        kid: kid.into(),
        alg: "ES256".into(),
        private_sealed: format!("sealed-{kid}"),
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        created_at: NOW.plus_secs(created),
        retired_at: None,
        publish_until: None,
    };
    let kids = |keys: Vec<SigningKey>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(t.list_signing_keys(NOW).await.unwrap(), []);
    t.add_signing_key(&key("a", 30), None, None).await.unwrap();
    assert_eq!(t.list_signing_keys(NOW).await.unwrap(), [key("a", 30)]);

    // "b" is created before "a" (say, on another server) yet is the current key
    // once it retires "a": the current key comes first, whatever its age.
    let event = audit("oidc_key_rotated", None, None);
    t.add_signing_key(&key("b", 20), Some((NOW.plus_secs(100), NOW.plus_secs(1000))), Some(&event)).await.unwrap();
    let retired_a =
        SigningKey { retired_at: Some(NOW.plus_secs(100)), publish_until: Some(NOW.plus_secs(1000)), ..key("a", 30) };
    assert_eq!(t.list_signing_keys(NOW).await.unwrap(), [key("b", 20), retired_a.clone()]);
    assert_eq!(t.audit_kinds(None).await.last().map(String::as_str), Some("oidc_key_rotated"));

    // Only the key that still signs is retired by the next rotation; retired keys
    // follow the current one, newest first.
    t.add_signing_key(&key("c", 10), Some((NOW.plus_secs(200), NOW.plus_secs(2000))), None).await.unwrap();
    let keys = t.list_signing_keys(NOW).await.unwrap();
    assert_eq!(kids(keys.clone()), ["c", "a", "b"]);
    assert_eq!(keys[1], retired_a, "an already retired key keeps its times");
    assert_eq!((keys[2].retired_at, keys[2].publish_until), (Some(NOW.plus_secs(200)), Some(NOW.plus_secs(2000))));

    // Published until `publish_until`, not at it.
    assert_eq!(kids(t.list_signing_keys(NOW.plus_secs(999)).await.unwrap()), ["c", "a", "b"]);
    assert_eq!(kids(t.list_signing_keys(NOW.plus_secs(1000)).await.unwrap()), ["c", "b"]);
    assert_eq!(kids(t.list_signing_keys(NOW.plus_secs(2000)).await.unwrap()), ["c"]);

    // A key that cannot be stored retires nothing: one transaction.
    let err = t.add_signing_key(&key("b", 40), Some((NOW, NOW)), Some(&event)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(t.list_signing_keys(NOW).await.unwrap()[0], key("c", 10));
    assert_eq!(count(&t.audit_kinds(None).await, "oidc_key_rotated"), 1);
}

async fn authorization_requests_are_put_read_and_deleted(t: TestStore) {
    let request = |params: &str| AuthorizationRequest {
        client_id: "chart".into(),
        params: params.into(),
        created_at: NOW,
        expires_at: NOW.plus_secs(600),
    };
    let (id, other) = (token("request"), token("other"));
    t.put_authorization_request(&id, &request("{\"a\":1}")).await.unwrap();
    t.put_authorization_request(&other, &request("{\"b\":2}")).await.unwrap();
    assert_eq!(t.get_authorization_request(&id).await.unwrap(), Some(request("{\"a\":1}")));
    t.put_authorization_request(&id, &request("{\"a\":3}")).await.unwrap();
    assert_eq!(t.get_authorization_request(&id).await.unwrap(), Some(request("{\"a\":3}")), "put replaces");
    t.delete_authorization_request(&id).await.unwrap();
    assert_eq!(t.get_authorization_request(&id).await.unwrap(), None);
    assert_eq!(t.get_authorization_request(&other).await.unwrap(), Some(request("{\"b\":2}")));
    t.delete_authorization_request(&id).await.unwrap();
}

async fn a_grant_is_stored_with_its_code(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let g = granted(&t, "g1", &c, &m, "sid-1").await;
    assert_eq!(t.list_oidc_grants(m.id, None, NOW).await.unwrap(), std::slice::from_ref(&g));
    assert_eq!(t.audit_kinds(Some(&org.id)).await.last().map(String::as_str), Some("oidc_granted"));
    match t.take_oidc_code(&token("code-g1"), NOW).await.unwrap() {
        CodeTaken::Fresh { code: taken, grant: of } => assert_eq!((taken, of), (code("code-g1", &g), g.clone())),
        other => panic!("{other:?}"),
    }

    // Not for an unknown app or account; and neither the grant nor its code nor the
    // event is kept when either part fails.
    let event = audit("oidc_granted", Some(&org.id), Some(m.id));
    let stray = OidcGrant { client_id: "nope".into(), ..grant("g2", &c, &m, "sid-1", NOW) };
    let err = t.insert_oidc_grant(&stray, &code("code-g2", &stray), &event).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference(_)), "{err:?}");
    let stray = OidcGrant { account_id: AccountId::new_random(), ..grant("g3", &c, &m, "sid-1", NOW) };
    let err = t.insert_oidc_grant(&stray, &code("code-g3", &stray), &event).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference(_)), "{err:?}");
    let g4 = grant("g4", &c, &m, "sid-1", NOW);
    let err = t.insert_oidc_grant(&g4, &code("code-g1", &g4), &event).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(t.list_oidc_grants(m.id, None, NOW).await.unwrap(), [g]);
    for name in ["code-g2", "code-g3"] {
        assert_eq!(t.take_oidc_code(&token(name), NOW).await.unwrap(), CodeTaken::Unknown);
    }
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_granted"), 1);
}

async fn a_code_is_taken_once(t: TestStore) {
    let (_, m, c) = setup(&t).await;
    let g = granted(&t, "g1", &c, &m, "sid-1").await;
    // Expiry is the caller's to check: a late code is still used up.
    let late = NOW.plus_secs(3600);
    let fresh = t.take_oidc_code(&token("code-g1"), late).await.unwrap();
    assert_eq!(fresh, CodeTaken::Fresh { code: code("code-g1", &g), grant: g.clone() });
    assert_eq!(t.take_oidc_code(&token("code-g1"), late).await.unwrap(), CodeTaken::Reused { grant: g.clone() });
    assert_eq!(t.take_oidc_code(&token("code-g1"), NOW).await.unwrap(), CodeTaken::Reused { grant: g });
    assert_eq!(t.take_oidc_code(&token("code-other"), NOW).await.unwrap(), CodeTaken::Unknown);
}

async fn racing_presentations_of_a_code_get_one_fresh(t: TestStore) {
    let (_, m, c) = setup(&t).await;
    let fresh = |r: &CodeTaken| matches!(r, CodeTaken::Fresh { .. });
    for i in 0..5 {
        let g = granted(&t, &format!("g{i}"), &c, &m, "sid-1").await;
        let code = token(&format!("code-g{i}"));
        let (a, b) = tokio::join!(t.take_oidc_code(&code, NOW), t.take_oidc_code(&code, NOW));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!([&a, &b].into_iter().filter(|r| fresh(r)).count(), 1, "{a:?} {b:?}");
        assert!([&a, &b].contains(&&CodeTaken::Reused { grant: g }), "{a:?} {b:?}");
    }
    // And on separate threads, many at once.
    granted(&t, "many", &c, &m, "sid-1").await;
    let results = t
        .concurrently(8, |store, _| async move { store.take_oidc_code(&token("code-many"), NOW).await.unwrap() })
        .await;
    assert_eq!(results.iter().filter(|r| fresh(r)).count(), 1, "{results:?}");
}

async fn tokens_are_issued_only_while_the_grant_lives(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let g = granted_with_tokens(&t, "g1", &c, &m).await;
    let access = t.get_oidc_token(&token("g1-access")).await.unwrap().unwrap();
    assert_eq!(
        (access.kind, access.expires_at, access.used_at, access.grant),
        (OidcTokenKind::Access, NOW.plus_secs(3600), None, g.clone())
    );
    let refresh = t.get_oidc_token(&token("g1-refresh")).await.unwrap().unwrap();
    assert_eq!((refresh.kind, refresh.used_at), (OidcTokenKind::Refresh, None));
    assert_eq!(t.get_oidc_token(&token("unknown")).await.unwrap(), None);
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_tokens_issued"), 1);

    let event = audit("oidc_tokens_issued", Some(&org.id), Some(m.id));
    assert!(t.revoke_oidc_grant(&g.id, NOW, &audit("oidc_grant_revoked", Some(&org.id), Some(m.id))).await.unwrap());
    assert!(!t.issue_oidc_tokens(&g.id, &pair("late"), &event).await.unwrap());
    assert!(!t.issue_oidc_tokens("no-such-grant", &pair("stray"), &event).await.unwrap());
    for name in ["late-access", "late-refresh", "stray-access"] {
        assert_eq!(t.get_oidc_token(&token(name)).await.unwrap(), None, "{name}");
    }
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_tokens_issued"), 1, "no event when refused");
}

async fn a_refresh_token_rotates_once(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let g = granted_with_tokens(&t, "g1", &c, &m).await;
    let event = audit("oidc_tokens_refreshed", Some(&org.id), Some(m.id));
    let later = NOW.plus_secs(60);

    let rotated = t.rotate_refresh_token(&token("g1-refresh"), later, &pair("r1"), &event).await.unwrap();
    assert_eq!(rotated, RefreshTaken::Rotated { grant: g.clone() });
    let old = t.get_oidc_token(&token("g1-refresh")).await.unwrap().unwrap();
    assert_eq!(old.used_at, Some(later), "kept, used, to spot a replay");
    for name in ["r1-access", "r1-refresh"] {
        assert_eq!(t.get_oidc_token(&token(name)).await.unwrap().unwrap().grant, g, "{name}");
    }

    // Presented again: a replay, and nothing is stored.
    let again = t.rotate_refresh_token(&token("g1-refresh"), later, &pair("r2"), &event).await.unwrap();
    assert_eq!(again, RefreshTaken::Reused { grant: g.clone() });
    assert_eq!(t.get_oidc_token(&token("r2-refresh")).await.unwrap(), None);
    // The successor rotates in its turn.
    let next = t.rotate_refresh_token(&token("r1-refresh"), later, &pair("r3"), &event).await.unwrap();
    assert_eq!(next, RefreshTaken::Rotated { grant: g });
    // An access token or an unknown one is no refresh token.
    for name in ["g1-access", "nope"] {
        let r = t.rotate_refresh_token(&token(name), later, &pair("r4"), &event).await.unwrap();
        assert_eq!(r, RefreshTaken::Unknown, "{name}");
    }
    assert_eq!(t.get_oidc_token(&token("r4-access")).await.unwrap(), None);
    assert!(t.get_oidc_token(&token("g1-access")).await.unwrap().unwrap().used_at.is_none());
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_tokens_refreshed"), 2);
}

async fn racing_rotations_of_a_refresh_token_rotate_once(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    granted_with_tokens(&t, "g1", &c, &m).await;
    let event = audit("oidc_tokens_refreshed", Some(&org.id), Some(m.id));
    let results = t
        .concurrently(8, |store, i| {
            let event = event.clone();
            async move {
                store.rotate_refresh_token(&token("g1-refresh"), NOW, &pair(&format!("r{i}")), &event).await.unwrap()
            }
        })
        .await;
    let rotated = results.iter().filter(|r| matches!(r, RefreshTaken::Rotated { .. })).count();
    assert_eq!(rotated, 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| matches!(r, RefreshTaken::Reused { .. })).count(), 7);
    let mut successors = 0;
    for i in 0..8 {
        successors += usize::from(t.get_oidc_token(&token(&format!("r{i}-refresh"))).await.unwrap().is_some());
    }
    assert_eq!(successors, 1);
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_tokens_refreshed"), 1);
}

async fn a_refresh_token_of_a_revoked_grant_does_not_rotate(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let event = audit("oidc_tokens_refreshed", Some(&org.id), Some(m.id));

    // Revoked through the store: its tokens are gone with it.
    let g = granted_with_tokens(&t, "g1", &c, &m).await;
    assert!(t.revoke_oidc_grant(&g.id, NOW, &audit("oidc_grant_revoked", Some(&org.id), Some(m.id))).await.unwrap());
    let r = t.rotate_refresh_token(&token("g1-refresh"), NOW, &pair("r1"), &event).await.unwrap();
    assert_eq!(r, RefreshTaken::Unknown);

    // A revoked grant whose refresh token is still there (the row edited by hand):
    // the token is refused all the same, as a replay of a dead grant.
    let g = granted_with_tokens(&t, "g2", &c, &m).await;
    t.raw(&format!("UPDATE oidc_grants SET revoked_at = {} WHERE id = 'g2'", NOW.0)).await;
    let r = t.rotate_refresh_token(&token("g2-refresh"), NOW, &pair("r2"), &event).await.unwrap();
    assert_eq!(r, RefreshTaken::Reused { grant: OidcGrant { revoked_at: Some(NOW), ..g } });
    for name in ["r1-access", "r1-refresh", "r2-access", "r2-refresh"] {
        assert_eq!(t.get_oidc_token(&token(name)).await.unwrap(), None, "{name}");
    }
    assert_eq!(t.get_oidc_token(&token("g2-refresh")).await.unwrap().unwrap().used_at, None, "not used up");
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_tokens_refreshed"), 0);
}

async fn revoking_a_grant_ends_its_codes_and_tokens(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let g = granted_with_tokens(&t, "g1", &c, &m).await;
    let kept = granted_with_tokens(&t, "g2", &c, &m).await;
    let event = audit("oidc_grant_revoked", Some(&org.id), Some(m.id));
    let at = NOW.plus_secs(5);

    assert!(t.revoke_oidc_grant(&g.id, at, &event).await.unwrap());
    for name in ["g1-access", "g1-refresh"] {
        assert_eq!(t.get_oidc_token(&token(name)).await.unwrap(), None, "{name}");
    }
    assert_eq!(t.take_oidc_code(&token("code-g1"), at).await.unwrap(), CodeTaken::Unknown, "its unused code goes");
    // The grant itself stays, revoked; a second revocation changes nothing.
    let revoked = OidcGrant { revoked_at: Some(at), ..g.clone() };
    assert!(!t.revoke_oidc_grant(&g.id, NOW.plus_secs(9), &event).await.unwrap());
    assert!(!t.revoke_oidc_grant("no-such-grant", at, &event).await.unwrap());
    assert_eq!(t.list_oidc_grants(m.id, None, NOW).await.unwrap(), [kept.clone(), revoked]);
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_grant_revoked"), 1);

    // Another grant of the same session is untouched.
    assert_eq!(t.get_oidc_token(&token("g2-access")).await.unwrap().unwrap().grant, kept);
    assert!(matches!(t.take_oidc_code(&token("code-g2"), at).await.unwrap(), CodeTaken::Fresh { .. }));
}

async fn an_access_token_is_deleted_once(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    granted_with_tokens(&t, "g1", &c, &m).await;
    let event = audit("oidc_token_revoked", Some(&org.id), Some(m.id));
    assert!(t.delete_oidc_token(&token("g1-access"), &event).await.unwrap());
    assert_eq!(t.get_oidc_token(&token("g1-access")).await.unwrap(), None);
    assert!(!t.delete_oidc_token(&token("g1-access"), &event).await.unwrap());
    // A refresh token is revoked by ending its grant, not by this.
    assert!(!t.delete_oidc_token(&token("g1-refresh"), &event).await.unwrap());
    assert!(t.get_oidc_token(&token("g1-refresh")).await.unwrap().is_some());
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_token_revoked"), 1);
}

async fn grants_are_listed_by_account_session_and_time(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let other = t.member(&org, "o@riverside.test").await;
    let event = audit("oidc_granted", Some(&org.id), Some(m.id));
    let add = async |id: &str, account: &Account, sid: &str, created: i64| {
        let g = grant(id, &c, account, sid, NOW.plus_secs(created));
        t.insert_oidc_grant(&g, &code(&format!("code-{id}"), &g), &event).await.unwrap();
        g
    };
    let g1 = add("g1", &m, "sid-a", 0).await;
    let g2 = add("g2", &m, "sid-b", 10).await;
    let g3 = add("g3", &m, "sid-a", 20).await;
    let g4 = add("g4", &other, "sid-a", 30).await;
    assert!(t.revoke_oidc_grant("g1", NOW, &event).await.unwrap());
    let g1 = OidcGrant { revoked_at: Some(NOW), ..g1 };

    assert_eq!(t.list_oidc_grants(m.id, None, NOW).await.unwrap(), [g3.clone(), g2.clone(), g1.clone()]);
    assert_eq!(t.list_oidc_grants(m.id, Some("sid-a"), NOW).await.unwrap(), [g3.clone(), g1]);
    assert_eq!(t.list_oidc_grants(m.id, None, NOW.plus_secs(10)).await.unwrap(), [g3.clone(), g2]);
    assert_eq!(t.list_oidc_grants(m.id, Some("sid-a"), NOW.plus_secs(1)).await.unwrap(), [g3]);
    assert_eq!(t.list_oidc_grants(m.id, Some("sid-c"), NOW).await.unwrap(), []);
    assert_eq!(t.list_oidc_grants(other.id, Some("sid-a"), NOW).await.unwrap(), [g4]);
}

async fn logouts_are_queued_once_retried_and_finished(t: TestStore) {
    let (org, m, _) = setup(&t).await;
    let logout = |id: &str, client: &str, sid: &str, created: i64| PendingLogout {
        id: id.into(),
        client_id: client.into(),
        account_id: m.id,
        sid: sid.into(),
        attempts: 0,
        created_at: NOW.plus_secs(created),
    };
    let (l1, l2, l3) =
        (logout("l1", "chart", "s1", 0), logout("l2", "billing", "s1", 1), logout("l3", "chart", "s2", 2));
    t.enqueue_logouts(&[l1.clone(), l2.clone()]).await.unwrap();
    // The same app and session again (another sign-out of it): ignored.
    t.enqueue_logouts(&[logout("dup", "chart", "s1", 3), l3.clone()]).await.unwrap();

    assert_eq!(t.due_logouts(NOW.plus_secs(5), 10).await.unwrap(), [l1.clone(), l2.clone(), l3.clone()]);
    assert_eq!(ids_of(t.due_logouts(NOW, 10).await.unwrap()), ["l1"], "not before it was queued");
    assert_eq!(ids_of(t.due_logouts(NOW.plus_secs(5), 2).await.unwrap()), ["l1", "l2"]);

    // A failed attempt waits for its retry time; a delivered one leaves the queue.
    let event = audit("oidc_logout_delivered", Some(&org.id), Some(m.id));
    t.finish_logout("l1", LogoutDelivery::RetryAt(NOW.plus_secs(60)), NOW.plus_secs(5), None).await.unwrap();
    t.finish_logout("l2", LogoutDelivery::Delivered, NOW.plus_secs(5), Some(&event)).await.unwrap();
    assert_eq!(ids_of(t.due_logouts(NOW.plus_secs(59), 10).await.unwrap()), ["l3"]);
    let due = t.due_logouts(NOW.plus_secs(60), 10).await.unwrap();
    assert_eq!(due, [PendingLogout { attempts: 1, ..l1 }, l3], "oldest first");
    assert_eq!(count(&t.audit_kinds(Some(&org.id)).await, "oidc_logout_delivered"), 1);

    // Once delivered, a new sign-out of that session is queued again.
    t.enqueue_logouts(&[logout("l4", "billing", "s1", 70)]).await.unwrap();
    assert_eq!(ids_of(t.due_logouts(NOW.plus_secs(70), 10).await.unwrap()), ["l1", "l3", "l4"]);

    // Two instances find l3 due: one claim wins, and it is not due during the lease.
    let (a, b) = tokio::join!(
        t.claim_logout("l3", NOW.plus_secs(70), NOW.plus_secs(130)),
        t.claim_logout("l3", NOW.plus_secs(70), NOW.plus_secs(130))
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one claim wins");
    assert_eq!(ids_of(t.due_logouts(NOW.plus_secs(71), 10).await.unwrap()), ["l1", "l4"]);
    assert!(!t.claim_logout("l3", NOW.plus_secs(71), NOW.plus_secs(200)).await.unwrap());
    assert!(t.claim_logout("l3", NOW.plus_secs(130), NOW.plus_secs(190)).await.unwrap(), "the lease ran out");
    assert!(!t.claim_logout("l2", NOW.plus_secs(130), NOW.plus_secs(190)).await.unwrap(), "delivered");
    t.finish_logout("l3", LogoutDelivery::RetryAt(NOW.plus_secs(70)), NOW.plus_secs(130), None).await.unwrap();

    // Giving up leaves the queue too; a late outcome changes nothing.
    t.finish_logout("l1", LogoutDelivery::RetryAt(NOW.plus_secs(90)), NOW.plus_secs(60), None).await.unwrap();
    t.finish_logout("l1", LogoutDelivery::GaveUp, NOW.plus_secs(90), None).await.unwrap();
    t.finish_logout("l1", LogoutDelivery::RetryAt(NOW.plus_secs(100)), NOW.plus_secs(95), None).await.unwrap();
    assert_eq!(ids_of(t.due_logouts(NOW.plus_secs(200), 10).await.unwrap()), ["l3", "l4"]);
}

async fn purging_deletes_expired_oidc_rows(t: TestStore) {
    let (org, m, c) = setup(&t).await;
    let now = NOW.plus_secs(10_000);
    let day = 24 * 3600;
    // One of each: expired (due) and not (kept).
    for (name, expires) in [("due", now.0 - 1), ("kept", now.0 + 1)] {
        let request = AuthorizationRequest {
            client_id: c.client_id.clone(),
            params: "{}".into(),
            created_at: NOW,
            expires_at: UnixTime(expires),
        };
        t.put_authorization_request(&token(&format!("request-{name}")), &request).await.unwrap();
        let g = grant(&format!("g-{name}"), &c, &m, "sid-1", NOW);
        let code = OidcCode { expires_at: UnixTime(expires), ..code(&format!("code-{name}"), &g) };
        t.insert_oidc_grant(&g, &code, &audit("oidc_granted", Some(&org.id), Some(m.id))).await.unwrap();
        let tokens = [NewOidcToken {
            expires_at: UnixTime(expires),
            ..new_token(&format!("token-{name}"), OidcTokenKind::Access)
        }];
        assert!(t.issue_oidc_tokens(&g.id, &tokens, &audit("oidc_tokens_issued", Some(&org.id), None)).await.unwrap());
    }
    // Logouts: finished over a day ago (due), finished within the day or still
    // queued (kept).
    let logout = |id: &str| PendingLogout {
        id: id.into(),
        client_id: c.client_id.clone(),
        account_id: m.id,
        sid: id.into(),
        attempts: 0,
        created_at: NOW,
    };
    let names = ["delivered-old", "gave-up-old", "delivered-new", "queued"];
    t.enqueue_logouts(&names.map(logout)).await.unwrap();
    let old = UnixTime(now.0 - day - 1);
    t.finish_logout("delivered-old", LogoutDelivery::Delivered, old, None).await.unwrap();
    t.finish_logout("gave-up-old", LogoutDelivery::GaveUp, old, None).await.unwrap();
    t.finish_logout("delivered-new", LogoutDelivery::Delivered, UnixTime(now.0 - day + 1), None).await.unwrap();

    assert_eq!(t.purge_expired(now, NOW).await.unwrap(), 5);
    assert_eq!(t.get_authorization_request(&token("request-due")).await.unwrap(), None);
    assert!(t.get_authorization_request(&token("request-kept")).await.unwrap().is_some());
    assert_eq!(t.take_oidc_code(&token("code-due"), now).await.unwrap(), CodeTaken::Unknown);
    assert!(matches!(t.take_oidc_code(&token("code-kept"), now).await.unwrap(), CodeTaken::Fresh { .. }));
    assert_eq!(t.get_oidc_token(&token("token-due")).await.unwrap(), None);
    assert!(t.get_oidc_token(&token("token-kept")).await.unwrap().is_some());
    assert_eq!(t.list_oidc_grants(m.id, None, NOW).await.unwrap().len(), 2, "grants stay");
    assert_eq!(ids_of(t.due_logouts(now, 10).await.unwrap()), ["queued"], "a queued logout stays");
    // A second later, what was kept at its boundary goes: the code and token kept
    // above, the request, and the logout delivered just under a day before.
    assert_eq!(t.purge_expired(now.plus_secs(2), NOW).await.unwrap(), 4);
    assert_eq!(t.purge_expired(now.plus_secs(2), NOW).await.unwrap(), 0, "nothing left to purge");
}

async fn sessions_keep_a_unique_sid_and_what_they_proved(t: TestStore) {
    let (org, m, _) = setup(&t).await;
    let event = audit("signed_in", Some(&org.id), Some(m.id));
    let s = t.session(&m, "first").await;
    let record = t.get_session(&s).await.unwrap().unwrap();
    assert_eq!((record.sid.as_str(), record.proved.as_str()), ("sid-first", "password,authenticator"));

    // Another session cannot take a sid in use; its sign-in stays for a retry.
    let flow = t.flow(&m, "second-flow").await;
    let clash =
        clinic_auth_store::NewSession { sid: "sid-first".into(), ..new_session(&m, "second", m.security_stamp) };
    assert!(t.insert_session(&clash, &flow, &event).await.is_err());
    assert!(t.get_flow(&flow).await.unwrap().is_some());
    assert_eq!(t.count_sessions(m.id).await.unwrap(), 1);

    let passkey = clinic_auth_store::NewSession {
        proved: "password,passkey".into(),
        ..new_session(&m, "second", m.security_stamp)
    };
    t.insert_session(&passkey, &flow, &event).await.unwrap();
    let record = t.get_session(&passkey.token_hash).await.unwrap().unwrap();
    assert_eq!((record.sid.as_str(), record.proved.as_str()), ("sid-second", "password,passkey"));

    // A step-up records what the session has proved since, only for that session.
    t.mark_session_verified(&passkey.token_hash, NOW.plus_secs(30), "password,authenticator,passkey").await.unwrap();
    let record = t.get_session(&passkey.token_hash).await.unwrap().unwrap();
    assert_eq!(
        (record.verified_at, record.proved.as_str()),
        (Some(NOW.plus_secs(30)), "password,authenticator,passkey")
    );
    assert_eq!(t.get_session(&s).await.unwrap().unwrap().proved, "password,authenticator");
}

/// Sessions from before migration 0008 get a sid each (all different) and count as
/// password-only; new ones are written as before.
async fn existing_sessions_get_a_sid_and_password_only(backend: Backend) {
    let Some(t) = TestStore::open_at(backend, 7).await else { return };
    let account = AccountId::new_random();
    t.raw(&format!(
        "INSERT INTO accounts (id, kind, realm, email, password_hash, created_at, updated_at)
         VALUES ('{account}', 'patient', 'patient', 'p@example.test', 'h', {now}, {now})",
        now = NOW.0
    ))
    .await;
    for name in ["a", "b", "c"] {
        t.raw(&format!(
            "INSERT INTO sessions (token_hash, account_id, csrf_token, created_at, last_seen_at, client_ip, user_agent,
               verified_at)
             VALUES ('hash-{name}', '{account}', 'csrf', {now}, {now}, 'ip', 'ua', {now})",
            now = NOW.0
        ))
        .await;
    }
    t.migrate().await.unwrap();
    let mut sids = Vec::new();
    for name in ["a", "b", "c"] {
        let s = t.get_session(&token(name)).await.unwrap().unwrap();
        assert_eq!(s.proved, "password", "a second factor proved before is not claimed");
        assert_eq!(s.sid.len(), 32, "{}", s.sid);
        sids.push(s.sid);
    }
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), 3, "each its own sid");
}

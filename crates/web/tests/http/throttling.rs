//! Failed-password limits per account and per client address, with backoff, kept in
//! the store.

use clinic_auth_core::{OrgKind, Role};
use serde_json::Value;

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp};

both_stores!(repeated_wrong_passwords_lock_the_account_with_backoff, one_client_guessing_across_accounts_is_limited);

const WRONG: &str = "wrong horse battery staple";

async fn repeated_wrong_passwords_lock_the_account_with_backoff(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    for i in 0..6 {
        let res = app.api_login("staff", "dr.lee@riverside.test", WRONG).await;
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    // Locked now: even the right password waits.
    let res = app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    assert_eq!(body["error"]["retry_after"], 30);
    assert!(body["error"]["message"].as_str().unwrap().contains("30 seconds"));
    // The refused attempt is on the record for the clinic's admin, with its reason:
    // refusals while locked are counted in memory and written as one event per lock
    // period (at its end, or at shutdown).
    assert_eq!(app.state.locked_refusals.unwritten(), 1);
    app.state.flush_locked_refusals(true).await;
    let events = app.audit_of(Some("sign_in"), 1).await;
    assert_eq!(events[0].outcome, "failure");
    assert_eq!(events[0].org_id.as_deref(), Some("riverside-clinic"));
    assert!(events[0].detail.contains("\"reason\":\"account_locked\""), "{}", events[0].detail);
    // An unknown email is locked the same way, so a lock tells nothing.
    for _ in 0..6 {
        app.api_login("staff", "ghost@riverside.test", WRONG).await;
    }
    assert_eq!(app.api_login("staff", "ghost@riverside.test", WRONG).await.status(), 429);

    app.clock.advance(30);
    // The next failure doubles the lock.
    assert_eq!(app.api_login("staff", "dr.lee@riverside.test", WRONG).await.status(), 401);
    let res = app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "60");
    app.clock.advance(60);
    assert_eq!(app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await.status(), 200);
    // Success clears the account's counter.
    assert_eq!(app.api_login("staff", "dr.lee@riverside.test", WRONG).await.status(), 401);
    assert_eq!(app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await.status(), 200);
}

async fn one_client_guessing_across_accounts_is_limited(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    for i in 0..21 {
        let res = app.api_login("staff", &format!("guess{i}@riverside.test"), WRONG).await;
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    let res = app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 429, "this client address is locked out");
    app.clock.advance(61);
    assert_eq!(app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await.status(), 200);
}

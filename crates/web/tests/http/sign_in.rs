//! The sign-in flow through the JSON API.

use clinic_auth_core::{OrgKind, Role};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{Options, PASSWORD, TestApp};

both_stores!(
    member_signs_in_and_gets_a_bearer_session,
    unknown_email_and_wrong_password_get_the_same_answer,
    deactivated_accounts_cannot_sign_in,
    each_sign_in_gets_a_new_session_and_a_flow_is_used_once,
    passwords_are_stored_as_argon2id_hashes,
);

async fn member_signs_in_and_gets_a_bearer_session(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let res = app.start_login("staff", "Dr.Lee@Riverside.test").await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["next"], "password");
    let flow = started["flow_id"].as_str().unwrap();
    let res = app.submit_password(flow, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["next"], "done");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["account"]["email"], "dr.lee@riverside.test");
    assert_eq!(body["account"]["role"], "provider");
    let token = body["session_token"].as_str().unwrap();
    let (status, me) = app.get_json("/api/v1/me", token).await;
    assert_eq!(status, 200);
    assert_eq!(me["org_id"], org.id.as_str());
    // The token is not a cookie credential and cookies are not API credentials.
    let (status, err) = app.get_json("/api/v1/me", "not-a-token").await;
    assert_eq!((status, err["error"]["code"].as_str()), (401, Some("unauthorized")));
    let res = app.api().post(app.url("/api/v1/logout")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let (status, _) = app.get_json("/api/v1/me", token).await;
    assert_eq!(status, 401, "signed-out tokens are dead");
}

async fn unknown_email_and_wrong_password_get_the_same_answer(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let known = app.start_login("staff", "dr.lee@riverside.test").await;
    let unknown = app.start_login("staff", "nobody@riverside.test").await;
    assert_eq!(known.status(), unknown.status());
    let known: Value = known.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(known["next"], unknown["next"]);

    let wrong = app.submit_password(known["flow_id"].as_str().unwrap(), "wrong horse battery staple").await;
    let missing = app.submit_password(unknown["flow_id"].as_str().unwrap(), "wrong horse battery staple").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.status(), missing.status());
    let (wrong, missing): (Value, Value) = (wrong.json().await.unwrap(), missing.json().await.unwrap());
    let (wrong, missing) = (crate::harness::without_request_id(wrong), crate::harness::without_request_id(missing));
    assert_eq!(wrong, missing);
    assert_eq!(wrong["error"]["code"], "incorrect_credentials");
    assert_eq!(wrong["error"]["message"], "Email or password is incorrect.");
    // An invited member without a password yet answers the same.
    let invited = clinic_auth_app::accounts::add_account(
        &app.state,
        &clinic_auth_app::By::operator(),
        clinic_auth_core::AccountKind::Member,
        Some(org.id.as_str()),
        "new@riverside.test",
        Some(Role::Staff),
        None,
    )
    .await
    .unwrap();
    assert!(invited.invitation_url.is_some());
    let res = app.api_login("staff", "new@riverside.test", "").await;
    assert_eq!(crate::harness::without_request_id(res.json::<Value>().await.unwrap()), wrong);
    let failures: Vec<_> =
        app.audit_kinds().await.into_iter().filter(|(k, o)| k == "sign_in" && o == "failure").collect();
    assert_eq!(failures.len(), 3, "each failure is audited");
}

async fn deactivated_accounts_cannot_sign_in(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let m = app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let token = app.token("staff", "dr.lee@riverside.test").await;
    set_status(&app, &m.id.to_string(), "deactivated").await;
    let res = app.api_login("staff", "dr.lee@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "account_deactivated");
    let (status, _) = app.get_json("/api/v1/me", &token).await;
    assert_eq!(status, 401, "a deactivated account's sessions stop working");
    // A wrong password on a deactivated account reveals nothing.
    let res = app.api_login("staff", "dr.lee@riverside.test", "wrong horse battery staple").await;
    assert_eq!(res.status(), 401);
}

/// Deactivation has no endpoint yet (administration issue); set it in the store.
async fn set_status(app: &TestApp, id: &str, status: &str) {
    let mut conn_url = app.database_url.clone();
    if conn_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&conn_url).await.unwrap();
        sqlx::query("UPDATE accounts SET status = ?1 WHERE id = ?2")
            .bind(status)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    } else {
        conn_url = conn_url.replace("postgresql:", "postgres:");
        let pool = sqlx::PgPool::connect(&conn_url).await.unwrap();
        sqlx::query("UPDATE accounts SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
}

async fn each_sign_in_gets_a_new_session_and_a_flow_is_used_once(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let a = app.token("staff", "dr.lee@riverside.test").await;
    let b = app.token("staff", "dr.lee@riverside.test").await;
    assert_ne!(a, b);
    assert_eq!(a.len(), 43, "256 random bits, base64url");
    let started: Value = app.start_login("staff", "dr.lee@riverside.test").await.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    assert_eq!(app.submit_password(flow, PASSWORD).await.status(), 200);
    let again = app.submit_password(flow, PASSWORD).await;
    assert_eq!(again.status(), 410);
    assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "flow_expired");
}

async fn passwords_are_stored_as_argon2id_hashes(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let m = app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let hash = app.state.store.get_account(m.id).await.unwrap().unwrap().password_hash.unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_has_bounded_concurrency_and_other_requests_keep_flowing() {
    let app =
        TestApp::spawn_with(crate::harness::Backend::Sqlite, Options { hashing_concurrency: 1, ..Default::default() })
            .await
            .unwrap();
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let mut flows = Vec::new();
    for _ in 0..8 {
        let v: Value = app.start_login("staff", "dr.lee@riverside.test").await.json().await.unwrap();
        flows.push(v["flow_id"].as_str().unwrap().to_owned());
    }
    let burst: Vec<_> = flows
        .iter()
        .map(|f| {
            let (client, url) = (app.api(), app.url(&format!("/api/v1/login/{f}/password")));
            tokio::spawn(
                async move { client.post(url).json(&json!({"password": PASSWORD})).send().await.unwrap().status() },
            )
        })
        .collect();
    // While eight hashes queue behind one permit, a health check still answers.
    let health = app.api().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let pending = burst.iter().filter(|h| !h.is_finished()).count();
    assert!(pending > 0, "the health check answered while sign-ins were still hashing");
    for h in burst {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert_eq!(app.state.hasher.peak_in_flight(), 1, "never more hashes at once than permits");
}

//! Password resets: the link goes by email to the account's own address only; no
//! administrator sees it or chooses anyone's password; only the server's shell prints
//! one (audited); and the account's holder is told when the password changes.

use std::time::Duration;

use clinic_auth_app::{By, accounts};
use clinic_auth_core::permission::Actor;
use clinic_auth_core::{OrgKind, Role};
use clinic_auth_notify::testkit::CapturedEmail;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp};

both_stores!(
    clinic_admins_send_a_reset_email_but_never_see_the_link,
    nobody_chooses_a_password_for_someone_else_over_the_api,
    platform_admins_cannot_reset_each_others_password,
    a_password_reset_tells_the_member_without_a_link_or_code,
    accepting_an_invitation_sends_no_password_changed_notice,
    only_the_operator_gets_a_reset_link_and_it_is_audited,
);

fn reset_path(id: impl std::fmt::Display) -> String {
    format!("/api/v1/accounts/{id}/password-reset")
}

/// The reset emails received so far (those that carry a `/reset/` link).
fn reset_emails(app: &TestApp) -> Vec<CapturedEmail> {
    app.smtp.messages().into_iter().filter(|m| m.text_body().is_some_and(|t| t.contains("/reset/"))).collect()
}

/// The reset link in the one reset email sent to `to`, after checking it went to that
/// address alone.
async fn emailed_link(app: &TestApp, to: &str) -> String {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = reset_emails(app).into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 1, "one reset email to {to}");
    let mail = &found[0];
    assert_eq!(mail.to, vec![to.to_owned()], "the reset email goes to the account's own address only");
    assert_eq!(mail.header("To").as_deref(), Some(to));
    let text = mail.text_body().unwrap();
    let link = text.split_whitespace().find(|w| w.contains("/reset/")).unwrap().to_owned();
    assert!(link.starts_with(&format!("{}/reset/", app.base)), "{link}");
    link
}

async fn clinic_admins_send_a_reset_email_but_never_see_the_link(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    let patient = app.patient(&a, "pat@example.test").await;
    let nurse = app.member(&a, "nurse@a.test", Role::Staff).await;
    app.enroll_authenticator(&nurse).await;
    let admin_t = app.token("staff", "admin@a.test").await;

    for (who, email) in [(patient.id, "pat@example.test"), (nurse.id, "nurse@a.test")] {
        let (s, body) = app.post_json(&reset_path(who), &admin_t, json!({})).await;
        assert_eq!(s, 202, "{body}");
        assert_eq!(body, json!({"reset_emailed": true}), "the answer holds no link");
        assert!(!body.to_string().contains("/reset/"));
        let link = emailed_link(&app, email).await;
        // The account's holder, and only they, can use it.
        assert_eq!(app.use_password_link(&link, "a brand new passphrase here").await, 200);
    }
    assert_eq!(app.api_login("patient", "pat@example.test", "a brand new passphrase here").await.status(), 200);
    // No reset email went anywhere else (the admin's inbox included).
    for m in reset_emails(&app) {
        assert!(m.to == ["pat@example.test"] || m.to == ["nurse@a.test"], "{:?}", m.to);
    }
    let issued = app.audit_of(Some("password_reset_link_issued"), 10).await;
    assert_eq!(issued.len(), 2);
    assert!(issued.iter().all(|e| e.detail.contains("\"delivery\":\"email\"")), "{issued:?}");
}

async fn nobody_chooses_a_password_for_someone_else_over_the_api(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "owner@a.test", Role::Owner).await;
    app.platform_admin("support@platform.test").await;
    let owner_t = app.token("staff", "owner@a.test").await;
    let support_t = app.token("staff", "support@platform.test").await;
    let chosen = "a password the admin picked";
    let tries = [
        (
            &owner_t,
            format!("/api/v1/orgs/{}/members", a.id),
            json!({"email": "n@a.test", "role": "staff", "password": chosen}),
        ),
        (&owner_t, format!("/api/v1/orgs/{}/patients", a.id), json!({"email": "p@a.test", "password": chosen})),
        (
            &support_t,
            format!("/api/v1/orgs/{}/members", a.id),
            json!({"email": "m@a.test", "role": "staff", "password": chosen}),
        ),
        (&support_t, "/api/v1/platform-admins".to_owned(), json!({"email": "x@platform.test", "password": chosen})),
    ];
    for (t, path, body) in tries {
        let (s, e) = app.post_json(&path, t, body).await;
        assert_eq!((s, e["error"]["code"].as_str()), (403, Some("password_not_allowed")), "{path}: {e}");
    }
    for (realm, email) in
        [("staff", "n@a.test"), ("patient", "p@a.test"), ("staff", "m@a.test"), ("staff", "x@platform.test")]
    {
        assert_eq!(app.api_login(realm, email, chosen).await.status(), 401, "{email} was not created with it");
    }
}

async fn platform_admins_cannot_reset_each_others_password(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let doc = app.member(&a, "doc@a.test", Role::Provider).await;
    app.platform_admin("one@platform.test").await;
    let two = app.platform_admin("two@platform.test").await;
    let one_t = app.token("staff", "one@platform.test").await;

    let (s, e) = app.post_json(&reset_path(two.id), &one_t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")), "{e}");
    // Same rule as an MFA reset between platform admins.
    let (s, _) = app
        .post_json(
            &format!("/api/v1/platform/accounts/{}/mfa-reset", two.id),
            &one_t,
            json!({"identity_verified": "video call"}),
        )
        .await;
    assert_eq!(s, 403);
    assert!(reset_emails(&app).iter().all(|m| m.to != ["two@platform.test"]), "no reset email to the other admin");
    assert!(app.audit_of(Some("password_reset_link_issued"), 10).await.is_empty());
    // Support still helps clinic members, by email.
    let (s, body) = app.post_json(&reset_path(doc.id), &one_t, json!({})).await;
    assert_eq!((s, body), (202, json!({"reset_emailed": true})));
    emailed_link(&app, "doc@a.test").await;
    // The shell can reset a platform admin.
    let url = accounts::password_reset_link(&app.state, &By::operator(), &two.id.to_string()).await.unwrap();
    assert_eq!(app.use_password_link(&url, "a brand new passphrase here").await, 200);
}

async fn a_password_reset_tells_the_member_without_a_link_or_code(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let doc = app.member(&a, "doc@a.test", Role::Provider).await;
    let url = accounts::password_reset_link(&app.state, &By::operator(), &doc.id.to_string()).await.unwrap();
    let before = app.smtp.messages().len();
    assert_eq!(app.use_password_link(&url, "a brand new passphrase here").await, 200);
    let mails = app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    let notice =
        mails.iter().find(|m| m.subject().as_deref() == Some("Your Clinic A password was changed")).unwrap_or_else(
            || panic!("a password-changed notice: {:?}", mails.iter().map(|m| m.subject()).collect::<Vec<_>>()),
        );
    assert_eq!(notice.to, vec!["doc@a.test".to_owned()]);
    for body in [notice.text_body().unwrap(), notice.html_body().unwrap()] {
        assert!(!body.contains("http") && !body.contains("/reset/"), "no link: {body}");
        assert!(!body.contains(url.rsplit('/').next().unwrap()), "no token");
    }
    assert!(notice.find_code().is_none(), "no code");
    assert!(!notice.text_body().unwrap().chars().any(|c| c.is_ascii_digit()), "nothing code-like");
}

async fn accepting_an_invitation_sends_no_password_changed_notice(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "owner@a.test", Role::Owner).await;
    let owner_t = app.token("staff", "owner@a.test").await;
    let (s, added) = app
        .post_json(&format!("/api/v1/orgs/{}/members", a.id), &owner_t, json!({"email": "new@a.test", "role": "staff"}))
        .await;
    assert_eq!(s, 201, "{added}");
    assert!(added.get("invitation_url").is_none(), "{added}");
    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    let text = mail.iter().find(|m| m.to == vec!["new@a.test".to_owned()]).unwrap().text_body().unwrap();
    let invite = text.split_whitespace().find(|w| w.contains("/invite/")).unwrap().to_owned();
    assert_eq!(app.use_password_link(&invite, PASSWORD).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed: Vec<Option<String>> = app
        .smtp
        .messages()
        .iter()
        .map(CapturedEmail::subject)
        .filter(|s| s.as_deref().is_some_and(|s| s.contains("password was changed")))
        .collect();
    assert!(changed.is_empty(), "a first password is no change: {changed:?}");
}

async fn only_the_operator_gets_a_reset_link_and_it_is_audited(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let admin = app.member(&a, "admin@a.test", Role::Admin).await;
    let doc = app.member(&a, "doc@a.test", Role::Provider).await;
    // A clinic admin or a platform admin asking the service for a link gets none.
    for actor in [Actor::Member { org: a.id.clone(), role: Role::Admin }, Actor::PlatformAdmin] {
        let by = By { actor, account_id: Some(admin.id), ..By::operator() };
        let e = accounts::password_reset_link(&app.state, &by, &doc.id.to_string()).await.unwrap_err();
        assert_eq!(e.kind, clinic_auth_app::ErrorKind::Forbidden, "{e:?}");
    }
    let url = accounts::password_reset_link(&app.state, &By::operator(), &doc.id.to_string()).await.unwrap();
    assert!(url.starts_with(&format!("{}/reset/", app.base)));
    let issued = app.audit_of(Some("password_reset_link_issued"), 10).await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    let e = &issued[0];
    assert_eq!(e.actor_id, None);
    assert_eq!(e.subject_id.as_deref(), Some(doc.id.to_string().as_str()));
    assert_eq!(e.user_agent, "clinic-auth cli");
    let detail: Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(detail, json!({"by": "operator", "delivery": "shown_to_operator"}));
    assert!(!e.detail.contains(url.rsplit('/').next().unwrap()), "the audit holds no token");
    assert!(reset_emails(&app).is_empty(), "the operator passes the link on");
}

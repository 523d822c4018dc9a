//! Invitations: an invitation link goes by email to the new account's own address, and
//! only the operator at the server's shell ever sees one (ASVS 6.4.6: nobody chooses a
//! password for someone else). "Resend invitation" emails a fresh link, voids the old
//! ones, is limited to 5 an hour per account, and is for whoever may invite.

use std::time::Duration;

use clinic_auth_app::{By, accounts};
use clinic_auth_core::{OrgKind, Role};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp, csrf_of};

both_stores!(
    only_the_operator_gets_an_invitation_link,
    resent_invitation_emails_a_working_link_and_voids_the_older_one,
    resend_invitation_from_the_member_page_needs_csrf_and_shows_no_link,
    a_sixth_resend_within_the_hour_is_refused,
    providers_and_other_clinics_cannot_resend_invitations,
);

fn resend_path(org: &str, member: impl std::fmt::Display) -> String {
    format!("/api/v1/orgs/{org}/members/{member}/invitation")
}

/// The invitation links emailed to `to` so far, oldest first, after checking each
/// email went to that address alone.
fn invitation_links(app: &TestApp, to: &str) -> Vec<String> {
    let mut links = Vec::new();
    for m in app.smtp.messages() {
        let Some(text) = m.text_body() else { continue };
        let Some(link) = text.split_whitespace().find(|w| w.contains("/invite/")) else { continue };
        if m.to.iter().any(|t| t == to) {
            assert_eq!(m.to, vec![to.to_owned()], "an invitation goes to the account's own address only");
            assert!(link.starts_with(&format!("{}/invite/", app.base)), "{link}");
            links.push(link.to_owned());
        }
    }
    links
}

/// Waits until `n` invitation emails reached `to`, and returns their links.
async fn wait_for_links(app: &TestApp, to: &str, n: usize) -> Vec<String> {
    for _ in 0..50 {
        let links = invitation_links(app, to);
        if links.len() >= n {
            return links;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} invitation emails to {to}, got {:?}", invitation_links(app, to));
}

async fn page(client: &reqwest::Client, url: &str) -> (u16, String) {
    let res = client.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn only_the_operator_gets_an_invitation_link(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    app.platform_admin("support@platform.test").await;
    let admin_t = app.token("staff", "admin@a.test").await;
    let support_t = app.token("staff", "support@platform.test").await;
    let org = a.id.as_str();
    // The API never answers a link, to a clinic admin or to platform support.
    let asks = [
        (&admin_t, format!("/api/v1/orgs/{org}/members"), json!({"email": "new@a.test", "role": "staff"})),
        (&admin_t, format!("/api/v1/orgs/{org}/patients"), json!({"email": "pat@a.test"})),
        (&support_t, format!("/api/v1/orgs/{org}/members"), json!({"email": "owner2@a.test", "role": "owner"})),
        (&support_t, "/api/v1/platform-admins".to_owned(), json!({"email": "second@platform.test"})),
    ];
    for (t, path, body) in asks {
        let (s, added) = app.post_json(&path, t, body).await;
        assert_eq!(s, 201, "{path}: {added}");
        assert_eq!(added["invitation_emailed"], true, "{added}");
        assert!(added.get("invitation_url").is_none() && !added.to_string().contains("/invite/"), "{added}");
    }
    for to in ["new@a.test", "pat@a.test", "owner2@a.test", "second@platform.test"] {
        assert_eq!(wait_for_links(&app, to, 1).await.len(), 1, "{to} got their invitation by email");
    }
    // Email down: the answer says so, still without a link.
    app.smtp.set_failing(Some(451));
    let (s, added) = app
        .post_json(&format!("/api/v1/orgs/{org}/members"), &admin_t, json!({"email": "late@a.test", "role": "staff"}))
        .await;
    app.smtp.set_failing(None);
    assert_eq!((s, &added["invitation_emailed"]), (201, &Value::Bool(false)), "{added}");
    assert!(added.get("invitation_url").is_none(), "{added}");
    // Still down: the resend says so too. Once email works, a resend delivers it.
    let resend = resend_path(org, "late@a.test");
    app.smtp.set_failing(Some(451));
    let (s, body) = app.post_json(&resend, &admin_t, json!({})).await;
    app.smtp.set_failing(None);
    assert_eq!((s, body), (202, json!({"invitation_emailed": false})));
    assert!(invitation_links(&app, "late@a.test").is_empty());
    let (s, body) = app.post_json(&resend, &admin_t, json!({})).await;
    assert_eq!((s, body), (202, json!({"invitation_emailed": true})));
    let link = wait_for_links(&app, "late@a.test", 1).await.remove(0);
    assert_eq!(app.use_password_link(&link, PASSWORD).await, 200);
    // The service gives the link to the operator alone (the command line prints it):
    // not to a clinic admin or a platform admin calling it, whatever the page or API.
    let admin = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse("admin@a.test").unwrap())
        .await;
    let admin_id = admin.unwrap().unwrap().id;
    let admins = [
        clinic_auth_core::permission::Actor::Member { org: a.id.clone(), role: Role::Admin },
        clinic_auth_core::permission::Actor::PlatformAdmin,
    ];
    for (n, actor) in admins.into_iter().enumerate() {
        let by = By { actor, account_id: Some(admin_id), ..By::operator() };
        let email = format!("svc{n}@a.test");
        let added = accounts::add_account(
            &app.state,
            &by,
            clinic_auth_core::AccountKind::Member,
            Some(org),
            &email,
            Some(Role::Staff),
            None,
        )
        .await
        .unwrap();
        assert!(added.invitation_url.is_none() && added.invitation_emailed, "{added:?}");
    }
    let added = accounts::add_account(
        &app.state,
        &By::operator(),
        clinic_auth_core::AccountKind::Member,
        Some(org),
        "cli@a.test",
        Some(Role::Staff),
        None,
    )
    .await
    .unwrap();
    assert!(added.invitation_url.is_some_and(|u| u.starts_with(&format!("{}/invite/", app.base))));
}

async fn resent_invitation_emails_a_working_link_and_voids_the_older_one(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let admin = app.member(&a, "admin@a.test", Role::Admin).await;
    let t = app.token("staff", "admin@a.test").await;
    let org = a.id.as_str();
    let (s, added) = app
        .post_json(&format!("/api/v1/orgs/{org}/members"), &t, json!({"email": "new@a.test", "role": "staff"}))
        .await;
    assert_eq!(s, 201, "{added}");
    let id = added["account"]["id"].as_str().unwrap().to_owned();
    let first = wait_for_links(&app, "new@a.test", 1).await.remove(0);

    // By id or by email: a new link, by email, never in the answer.
    let (s, body) = app.post_json(&resend_path(org, "new@a.test"), &t, json!({})).await;
    assert_eq!((s, body.clone()), (202, json!({"invitation_emailed": true})));
    let links = wait_for_links(&app, "new@a.test", 2).await;
    let second = links[1].clone();
    assert_ne!(first, second, "a fresh link");
    let mail = app.smtp.messages().into_iter().rfind(|m| m.to == vec!["new@a.test".to_owned()]).unwrap();
    assert_eq!(mail.subject().as_deref(), Some("You're invited to sign in to Clinic A"));

    // The older link is void; the new one sets the password, once, and the member signs in.
    assert_eq!(app.use_password_link(&first, PASSWORD).await, 410, "the older link no longer works");
    assert_eq!(app.use_password_link(&second, PASSWORD).await, 200);
    assert_eq!(app.use_password_link(&second, PASSWORD).await, 410);
    assert_eq!(app.api_login("staff", "new@a.test", PASSWORD).await.status(), 200);

    // Audited, without the token.
    let resent = app.audit_of(Some("invitation_resent"), 10).await;
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!(resent[0].actor_id.as_deref(), Some(admin.id.to_string().as_str()));
    assert_eq!(resent[0].subject_id.as_deref(), Some(id.as_str()));
    assert_eq!(resent[0].org_id.as_deref(), Some(org));
    assert!(!resent[0].detail.contains(second.rsplit('/').next().unwrap()), "the audit holds no token");

    // Once the member has a password there is nothing to resend.
    let before = app.smtp.messages().len();
    for path in [resend_path(org, &id), format!("/api/v1/accounts/{id}/invitation")] {
        let (s, e) = app.post_json(&path, &t, json!({})).await;
        assert_eq!((s, e["error"]["code"].as_str()), (409, Some("already_active")), "{path}: {e}");
    }
    let (s, e) = app.post_json(&resend_path(org, admin.id), &t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("already_active")), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.messages().len(), before, "nothing was sent");
    assert_eq!(app.audit_of(Some("invitation_resent"), 10).await.len(), 1);

    // A patient's invitation is resent by id (the account route), by their clinic's admin.
    let (s, pat) = app.post_json(&format!("/api/v1/orgs/{org}/patients"), &t, json!({"email": "pat@a.test"})).await;
    assert_eq!(s, 201, "{pat}");
    let pat_id = pat["account"]["id"].as_str().unwrap();
    let (s, body) = app.post_json(&format!("/api/v1/accounts/{pat_id}/invitation"), &t, json!({})).await;
    assert_eq!((s, body), (202, json!({"invitation_emailed": true})));
    let links = wait_for_links(&app, "pat@a.test", 2).await;
    assert_eq!(app.use_password_link(&links[0], PASSWORD).await, 410);
    assert_eq!(app.use_password_link(&links[1], PASSWORD).await, 200);
}

async fn resend_invitation_from_the_member_page_needs_csrf_and_shows_no_link(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    let active = app.member(&a, "nurse@a.test", Role::Staff).await;
    let invited = accounts::add_account(
        &app.state,
        &By::operator(),
        clinic_auth_core::AccountKind::Member,
        Some(a.id.as_str()),
        "new@a.test",
        Some(Role::Staff),
        None,
    )
    .await
    .unwrap()
    .account;
    let first = wait_for_links(&app, "new@a.test", 1).await.remove(0);

    let b = app.browser();
    let (_, html) = page(&b, &app.url("/login")).await;
    b.post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "admin@a.test")])
        .send()
        .await
        .unwrap();
    let (_, html) = page(&b, &app.url("/login/password")).await;
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/account");

    // Only an account without a password offers it.
    let (_, html) = page(&b, &app.url(&format!("/admin/users/{}", active.id))).await;
    assert!(!html.contains("Resend invitation"), "{html}");
    let member_page = format!("/admin/users/{}", invited.id);
    let (s, html) = page(&b, &app.url(&member_page)).await;
    assert_eq!(s, 200);
    assert!(html.contains("Resend invitation") && !html.contains("/invite/"), "{html}");

    let res = b.post(app.url(&format!("{member_page}/invitation"))).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(res.status(), 403, "a forged form is refused");
    assert_eq!(invitation_links(&app, "new@a.test").len(), 1, "and sends nothing");

    let res = b
        .post(app.url(&format!("{member_page}/invitation")))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], format!("{member_page}?notice=invitation_sent"));
    let (_, html) = page(&b, &app.url(&format!("{member_page}?notice=invitation_sent"))).await;
    assert!(html.contains("We emailed a new invitation to the member.") && !html.contains("/invite/"), "{html}");
    let links = wait_for_links(&app, "new@a.test", 2).await;
    assert_eq!(app.use_password_link(&first, PASSWORD).await, 410);
    assert_eq!(app.use_password_link(&links[1], PASSWORD).await, 200);
    assert_eq!(app.api_login("staff", "new@a.test", PASSWORD).await.status(), 200);

    // Platform support resends from the platform console (any account, here a patient).
    let pat = accounts::add_account(
        &app.state,
        &By::operator(),
        clinic_auth_core::AccountKind::Patient,
        Some(a.id.as_str()),
        "pat@a.test",
        None,
        None,
    )
    .await
    .unwrap()
    .account;
    wait_for_links(&app, "pat@a.test", 1).await;
    app.platform_admin("support@platform.test").await;
    let support = app.browser();
    let (_, html) = page(&support, &app.url("/login")).await;
    support
        .post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "support@platform.test")])
        .send()
        .await
        .unwrap();
    let (_, html) = page(&support, &app.url("/login/password")).await;
    support
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    app.clock.advance(30);
    let code = app.authenticator_code("support@platform.test").unwrap();
    let (_, html) = page(&support, &app.url("/login/verify")).await;
    let res = support
        .post(app.url("/login/verify"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/account");
    let console = format!("/platform/accounts/{}", pat.id);
    let (_, html) = page(&support, &app.url(&console)).await;
    assert!(html.contains("Resend invitation") && !html.contains("/invite/"), "{html}");
    let res = support
        .post(app.url(&format!("{console}/invitation")))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], format!("{console}?notice=invitation_sent"));
    assert_eq!(wait_for_links(&app, "pat@a.test", 2).await.len(), 2);

    // Now active: the page offers no resend, and a resend is refused with a reason.
    let (_, html) = page(&b, &app.url(&member_page)).await;
    assert!(!html.contains("Resend invitation"), "{html}");
    let res = b
        .post(app.url(&format!("{member_page}/invitation")))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("already has a password"));
}

async fn a_sixth_resend_within_the_hour_is_refused(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    let t = app.token("staff", "admin@a.test").await;
    let org = a.id.as_str();
    let (s, added) = app
        .post_json(&format!("/api/v1/orgs/{org}/members"), &t, json!({"email": "new@a.test", "role": "staff"}))
        .await;
    assert_eq!(s, 201, "{added}");
    let path = resend_path(org, "new@a.test");
    for n in 1..=5 {
        let (s, body) = app.post_json(&path, &t, json!({})).await;
        assert_eq!(s, 202, "resend {n}: {body}");
        app.clock.advance(60);
    }
    wait_for_links(&app, "new@a.test", 6).await;
    for _ in 0..2 {
        let res = app.api().post(app.url(&path)).bearer_auth(&t).send().await.unwrap();
        assert_eq!(res.status(), 429);
        let wait: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&wait), "{wait}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_resends", "{body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(invitation_links(&app, "new@a.test").len(), 6, "the refused resends sent nothing");
    assert_eq!(app.audit_of(Some("invitation_resent"), 20).await.len(), 5);
    // Another account's resends are counted apart.
    let (s, _) = app
        .post_json(&format!("/api/v1/orgs/{org}/members"), &t, json!({"email": "other@a.test", "role": "staff"}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(app.post_json(&resend_path(org, "other@a.test"), &t, json!({})).await.0, 202);
    // An hour later it works again, and the latest link is the one that works.
    app.clock.advance(3601);
    let t = app.token("staff", "admin@a.test").await;
    let (s, body) = app.post_json(&path, &t, json!({})).await;
    assert_eq!(s, 202, "{body}");
    let links = wait_for_links(&app, "new@a.test", 7).await;
    assert_eq!(app.use_password_link(&links[5], PASSWORD).await, 410);
    assert_eq!(app.use_password_link(&links[6], PASSWORD).await, 200);
}

async fn providers_and_other_clinics_cannot_resend_invitations(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b = app.org("Clinic B", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    app.member(&a, "dr@a.test", Role::Provider).await;
    app.member(&b, "admin@b.test", Role::Admin).await;
    let invite = |org: &str, email: &str, role: Role| {
        let (org, email) = (org.to_owned(), email.to_owned());
        let state = app.state.clone();
        async move {
            accounts::add_account(
                &state,
                &By::operator(),
                clinic_auth_core::AccountKind::Member,
                Some(&org),
                &email,
                Some(role),
                None,
            )
            .await
            .unwrap()
            .account
        }
    };
    let new = invite(a.id.as_str(), "new@a.test", Role::Staff).await;
    let new_owner = invite(a.id.as_str(), "owner@a.test", Role::Owner).await;
    wait_for_links(&app, "owner@a.test", 1).await;
    let provider_t = app.token("staff", "dr@a.test").await;
    let admin_t = app.token("staff", "admin@a.test").await;
    let other_t = app.token("staff", "admin@b.test").await;
    let org = a.id.as_str();
    let sent = app.smtp.messages().len();

    let (s, e) = app.post_json(&resend_path(org, new.id), &provider_t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")), "a provider: {e}");
    let (s, e) = app.post_json(&format!("/api/v1/accounts/{}/invitation", new.id), &provider_t, json!({})).await;
    assert_eq!(s, 403, "a provider, by account: {e}");
    // Another clinic's admin: as if there were no such member.
    let (s, e) = app.post_json(&resend_path(org, new.id), &other_t, json!({})).await;
    assert_eq!(s, 404, "not their organization: {e}");
    let (s, e) = app.post_json(&resend_path(b.id.as_str(), new.id), &other_t, json!({})).await;
    assert_eq!(s, 404, "not their member: {e}");
    let (s, e) = app.post_json(&format!("/api/v1/accounts/{}/invitation", new.id), &other_t, json!({})).await;
    assert_eq!(s, 404, "not their member, by account: {e}");
    // An admin cannot reach an owner (they could not have invited one).
    let (s, e) = app.post_json(&resend_path(org, new_owner.id), &admin_t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("owner_protected")), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.messages().len(), sent, "nothing was sent");
    assert!(app.audit_of(Some("invitation_resent"), 10).await.is_empty());
    // Their own clinic's admin may.
    assert_eq!(app.post_json(&resend_path(org, new.id), &admin_t, json!({})).await.0, 202);
}

//! "Change email" (the sign-in name): asked for from the account page or the API with
//! the current password and a recent second factor; a link to the new address, a
//! notice to the old one; nothing changes until the link's page is confirmed (with or
//! without a session), once; a newer request, "Cancel", an hour, or a change to the
//! account's security ends the link; the answer never says whether the new address
//! has an account; limited per account.

use std::time::Duration;

use clinic_auth_core::{OrgKind, Role};
use clinic_auth_notify::testkit::CapturedEmail;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp, csrf_of, location_of, page_of};

both_stores!(
    change_email_on_the_pages_changes_nothing_until_the_new_address_confirms,
    change_email_over_the_api_for_a_patient,
    email_change_links_expire_are_replaced_and_cancelled,
    email_change_answers_the_same_whether_or_not_the_address_is_taken,
    an_address_taken_before_the_confirm_is_refused_without_a_change,
    a_password_change_after_the_request_ends_the_link,
    email_change_requests_are_limited_per_account,
);

const CONFIRM: &str = "/account/email/confirm?token=";

/// The emails to `to` whose subject contains `subject`, once there are `n` (the
/// request's emails go out from a task of their own).
async fn mails_to(app: &TestApp, to: &str, subject: &str, n: usize) -> Vec<CapturedEmail> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = app
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to) && m.subject().is_some_and(|s| s.contains(subject)))
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), n, "{n} email(s) to {to} about {subject:?}");
    found
}

/// The confirm link in an email to the new address: the only link, to that address alone.
fn link_in(app: &TestApp, mail: &CapturedEmail) -> String {
    assert_eq!(mail.to.len(), 1, "the link goes to the new address alone");
    let text = mail.text_body().unwrap();
    let link = text.split_whitespace().find(|w| w.contains(CONFIRM)).unwrap().to_owned();
    assert!(link.starts_with(&format!("{}{CONFIRM}", app.base)), "the link is on public_url: {link}");
    assert_eq!(text.matches("http").count(), 1, "no other link: {text}");
    assert!(text.contains("The link works once, until"), "{text}");
    link
}

fn token_of(link: &str) -> String {
    link.rsplit("token=").next().unwrap().to_owned()
}

/// "Change email" on the pages: the form, then the answer to it.
async fn request_on_pages(app: &TestApp, b: &reqwest::Client, new_email: &str, password: &str) -> reqwest::Response {
    let (s, html) = page_of(b, &app.url("/account/email")).await;
    assert_eq!(s, 200, "{html}");
    b.post(app.url("/account/email"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("new_email", new_email), ("current_password", password)])
        .send()
        .await
        .unwrap()
}

/// Opens a link's page and presses "Confirm new email"; the answer.
async fn confirm_on_page(b: &reqwest::Client, link: &str) -> reqwest::Response {
    let (s, html) = page_of(b, link).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("Confirm new email"), "{html}");
    b.post(link.split('?').next().unwrap())
        .form(&[("csrf", csrf_of(&html)), ("token", token_of(link))])
        .send()
        .await
        .unwrap()
}

/// The next step of an API sign-in with `email` and the test password: its status and
/// `next` (`second_factor`, or empty with a session).
async fn sign_in_answer(app: &TestApp, realm: &str, email: &str) -> (u16, String) {
    let res = app.api_login(realm, email, PASSWORD).await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["next"].as_str().unwrap_or_default().to_owned())
}

async fn change_email_on_the_pages_changes_nothing_until_the_new_address_confirms(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    let doc = app.member(&org, "doc@a.test", Role::Provider).await;
    app.enroll_authenticator(&doc).await;
    let here = app.browser();
    assert_eq!(location_of(&app.sign_in_with_pages(&here, "/login", "doc@a.test").await), "/account");
    let token = app.token("staff", "doc@a.test").await;
    let (_, html) = page_of(&here, &app.url("/account")).await;
    assert!(html.contains("<a href=\"/account/email\">Change email</a>"), "{html}");

    // The second factor of the sign-in is older than 10 minutes: prove it again first.
    app.clock.advance(11 * 60);
    let res = here.get(app.url("/account/email")).send().await.unwrap();
    assert_eq!(location_of(&res), "/account/2fa/verify?next=email");
    let res = here
        .post(app.url("/account/email"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("new_email", "dana@new.test"), ("current_password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/account/2fa/verify?next=email", "the form cannot skip the step-up");
    app.clock.advance(30);
    let code = app.authenticator_code("doc@a.test").unwrap();
    let (_, html) = page_of(&here, &app.url("/account/2fa/verify?next=email")).await;
    let res = here
        .post(app.url("/account/2fa/verify?method=authenticator"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", code.as_str()), ("next", "email")])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/account/email", "back to the form");
    let (_, html) = page_of(&here, &app.url("/account/email")).await;
    assert!(html.contains("doc@a.test") && html.contains("New email") && html.contains("Current password"));

    // The current password; a new, well-formed address.
    let res = request_on_pages(&app, &here, "dana@new.test", "not my password at all").await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Your current password is not correct"));
    let refused = &app.audit_of(Some("email_changed"), 1).await[0];
    assert_eq!((refused.outcome.as_str(), refused.detail.as_str()), ("failure", r#"{"reason":"wrong_password"}"#));
    let res = request_on_pages(&app, &here, " DOC@a.test ", PASSWORD).await;
    assert_eq!(res.status(), 400, "the same address is no change");
    assert!(res.text().await.unwrap().contains("That is your sign-in email already"));
    assert_eq!(request_on_pages(&app, &here, "not an address", PASSWORD).await.status(), 400);

    let res = request_on_pages(&app, &here, "Dana@New.test", PASSWORD).await;
    assert_eq!(location_of(&res), "/account?notice=email_change_sent");
    let (_, html) = page_of(&here, &app.url("/account?notice=email_change_sent")).await;
    assert!(html.contains("We sent a link to your new address"), "{html}");
    assert!(html.contains("Waiting for you to confirm <strong>dana@new.test</strong>"), "{html}");
    let link = link_in(&app, &mails_to(&app, "dana@new.test", "Confirm your new Clinic A sign-in email", 1).await[0]);
    let notice = &mails_to(&app, "doc@a.test", "Change of your Clinic A sign-in email requested", 1).await[0];
    let text = notice.text_body().unwrap();
    assert!(text.contains("d•••@new.test") && !text.contains("dana@new.test"), "the new address masked: {text}");
    assert!(text.contains("change your password and tell your clinic") && !text.contains("http"), "{text}");
    let requested = &app.audit_of(Some("email_change_requested"), 1).await[0];
    assert_eq!(requested.detail, r#"{"new_email":"dana@new.test"}"#);
    assert!(!requested.detail.contains(&token_of(&link)), "the audit holds no link");

    // Nothing changed yet: the old address signs in, the new one does not; the API
    // shows the waiting change; opening the link (as a mail scanner would) changes nothing.
    assert_eq!(sign_in_answer(&app, "staff", "doc@a.test").await, (200, "second_factor".to_owned()));
    assert_eq!(sign_in_answer(&app, "staff", "dana@new.test").await.0, 401);
    let (s, me) = app.get_json("/api/v1/me", &token).await;
    assert_eq!((s, me["email"].as_str()), (200, Some("doc@a.test")), "{me}");
    assert_eq!(me["pending_email_change"]["new_email"], "dana@new.test", "{me}");
    let fresh = app.browser();
    let (s, html) = page_of(&fresh, &link).await;
    assert_eq!(s, 200);
    assert!(html.contains("Make <strong>dana@new.test</strong> the sign-in email"), "{html}");
    assert_eq!(app.get_json("/api/v1/me", &token).await.1["email"], "doc@a.test", "a GET changes nothing");

    // Confirmed from a browser that is not signed in.
    let before = app.smtp.messages().len();
    let res = confirm_on_page(&fresh, &link).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your sign-in email is changed") && html.contains("dana@new.test"), "{html}");
    assert!(html.contains("<a href=\"/login\">Sign in with your new email</a>"), "{html}");
    assert_eq!(sign_in_answer(&app, "staff", "dana@new.test").await, (200, "second_factor".to_owned()));
    assert_eq!(sign_in_answer(&app, "staff", "doc@a.test").await.0, 401, "the old address no longer signs in");
    // Sessions stay, and show the new address.
    let (s, me) = app.get_json("/api/v1/me", &token).await;
    assert_eq!((s, me["email"].as_str()), (200, Some("dana@new.test")), "{me}");
    assert!(me.get("pending_email_change").is_none(), "{me}");
    let (s, html) = page_of(&here, &app.url("/account")).await;
    assert_eq!(s, 200);
    assert!(html.contains("dana@new.test") && !html.contains("Waiting for you to confirm"), "{html}");
    // Once only.
    assert_eq!(page_of(&fresh, &link).await.0, 410);
    let (s, e) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": token_of(&link)})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("link_expired")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("already used"), "{e}");
    // Both addresses are told; audited with both addresses.
    app.smtp.wait_for(before + 2, Duration::from_secs(5)).await;
    let old = &mails_to(&app, "doc@a.test", "Your Clinic A sign-in email was changed", 1).await[0];
    assert!(old.text_body().unwrap().contains("d•••@new.test"));
    mails_to(&app, "dana@new.test", "This is now your Clinic A sign-in email", 1).await;
    let changed = &app.audit_of(Some("email_changed"), 1).await[0];
    assert_eq!(changed.outcome, "success");
    assert_eq!(changed.detail, r#"{"new_email":"dana@new.test","old_email":"doc@a.test"}"#);
    assert_eq!(changed.subject_id.as_deref(), Some(doc.id.to_string().as_str()));
}

async fn change_email_over_the_api_for_a_patient(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    // A staff account with the address does not matter: realms are apart.
    app.member(&org, "pat@new.test", Role::Staff).await;
    let token = app.token("patient", "pat@example.test").await;
    let body = |new: &str, pw: &str| json!({"new_email": new, "current_password": pw});

    let (s, e) = app.post_json("/api/v1/me/email", &token, body("pat@new.test", "wrong password, surely")).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_credentials")), "{e}");
    let (s, e) = app.post_json("/api/v1/me/email", &token, body("PAT@example.test", PASSWORD)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("nothing_to_change")), "{e}");
    let (s, e) = app.post_json("/api/v1/me/email", &token, body("nope", PASSWORD)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_email")), "{e}");
    let (s, v) = app.post_json("/api/v1/me/email", &token, body("pat@new.test", PASSWORD)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["pending_email_change"]["new_email"], "pat@new.test", "{v}");
    let (_, me) = app.get_json("/api/v1/me", &token).await;
    assert_eq!(me["pending_email_change"], v["pending_email_change"], "{me}");
    assert_eq!(me["email"], "pat@example.test");

    let link = link_in(&app, &mails_to(&app, "pat@new.test", "Confirm your new", 1).await[0]);
    let (s, e) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": "not-a-token"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("link_expired")), "{e}");
    let (s, v) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": token_of(&link)})).await;
    assert_eq!((s, v), (200, json!({"email": "pat@new.test"})));
    assert_eq!(app.api_login("patient", "pat@new.test", PASSWORD).await.status(), 200);
    assert_eq!(app.api_login("patient", "pat@example.test", PASSWORD).await.status(), 401);
    assert_eq!(app.api_login("staff", "pat@new.test", PASSWORD).await.status(), 200, "the staff account is untouched");
    mails_to(&app, "pat@example.test", "sign-in email was changed", 1).await;
    mails_to(&app, "pat@new.test", "This is now your", 1).await;
    let (s, e) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": token_of(&link)})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("link_expired")), "single use: {e}");
}

async fn email_change_links_expire_are_replaced_and_cancelled(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    let token = app.token("patient", "pat@example.test").await;
    let b = app.browser();

    // An hour.
    ask(&app, &token, "one@new.test").await;
    let first = link_in(&app, &mails_to(&app, "one@new.test", "Confirm", 1).await[0]);
    app.clock.advance(3599);
    assert_eq!(page_of(&b, &first).await.0, 200, "a second before the hour");
    app.clock.advance(1);
    let (s, html) = page_of(&b, &first).await;
    assert_eq!(s, 410);
    assert!(html.contains("This link has expired"), "{html}");
    // (A second more: that request no longer counts against the 3 an hour.)
    app.clock.advance(1);
    let token = app.token("patient", "pat@example.test").await;
    assert!(app.get_json("/api/v1/me", &token).await.1.get("pending_email_change").is_none());

    // Only the newest works.
    ask(&app, &token, "two@new.test").await;
    let second = link_in(&app, &mails_to(&app, "two@new.test", "Confirm", 1).await[0]);
    ask(&app, &token, "three@new.test").await;
    let third = link_in(&app, &mails_to(&app, "three@new.test", "Confirm", 1).await[0]);
    assert_eq!(page_of(&b, &second).await.0, 410, "replaced by the newer request");
    let (s, e) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": token_of(&second)})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("link_expired")), "{e}");
    assert_eq!(app.get_json("/api/v1/me", &token).await.1["pending_email_change"]["new_email"], "three@new.test");

    // "Cancel" over the API ends it.
    let res = app.api().delete(app.url("/api/v1/me/email")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(page_of(&b, &third).await.0, 410, "cancelled");
    assert!(app.get_json("/api/v1/me", &token).await.1.get("pending_email_change").is_none());
    assert_eq!(app.audit_of(Some("email_change_cancelled"), 5).await.len(), 1);

    // And on the account page.
    ask(&app, &token, "four@new.test").await;
    let fourth = link_in(&app, &mails_to(&app, "four@new.test", "Confirm", 1).await[0]);
    let page = app.browser();
    assert_eq!(location_of(&app.sign_in_with_pages(&page, "/portal/login", "pat@example.test").await), "/account");
    let (_, html) = page_of(&page, &app.url("/account")).await;
    assert!(html.contains("Waiting for you to confirm <strong>four@new.test</strong>"), "{html}");
    let res =
        page.post(app.url("/account/email/cancel")).form(&[("csrf", csrf_of(&html).as_str())]).send().await.unwrap();
    assert_eq!(location_of(&res), "/account?notice=email_change_cancelled");
    let (_, html) = page_of(&page, &app.url("/account?notice=email_change_cancelled")).await;
    assert!(html.contains("The email change is cancelled") && !html.contains("Waiting for you to confirm"), "{html}");
    assert_eq!(page_of(&b, &fourth).await.0, 410);
    assert_eq!(app.api_login("patient", "pat@example.test", PASSWORD).await.status(), 200, "nothing changed");
}

/// "Change email" over the API to `new`, answered 202.
async fn ask(app: &TestApp, token: &str, new: &str) {
    let body = json!({"new_email": new, "current_password": PASSWORD});
    let (s, v) = app.post_json("/api/v1/me/email", token, body).await;
    assert_eq!(s, 202, "{v}");
}

/// Status and body of an API answer, with the new address taken out.
async fn answer_without(res: (u16, Value), new: &str) -> (u16, String) {
    (res.0, res.1.to_string().replace(new, "NEW"))
}

async fn email_change_answers_the_same_whether_or_not_the_address_is_taken(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "doc@a.test", Role::Provider).await;
    app.member(&org, "taken@a.test", Role::Staff).await;
    let token = app.token("staff", "doc@a.test").await;
    let body = |new: &str| json!({"new_email": new, "current_password": PASSWORD});

    let free = app.post_json("/api/v1/me/email", &token, body("free@a.test")).await;
    let free = answer_without(free, "free@a.test").await;
    let (_, me_free) = app.get_json("/api/v1/me", &token).await;
    let taken = app.post_json("/api/v1/me/email", &token, body("taken@a.test")).await;
    let taken = answer_without(taken, "taken@a.test").await;
    let (_, me_taken) = app.get_json("/api/v1/me", &token).await;
    assert_eq!(free.0, 202);
    assert_eq!(free, taken, "the same answer for a taken address");
    assert_eq!(
        me_free.to_string().replace("free@a.test", "NEW"),
        me_taken.to_string().replace("taken@a.test", "NEW"),
        "and the same waiting change"
    );
    // On the pages too (another member: each account has 3 requests an hour).
    app.member(&org, "nurse@a.test", Role::Staff).await;
    let b = app.browser();
    app.sign_in_with_pages(&b, "/login", "nurse@a.test").await;
    let free = request_on_pages(&app, &b, "free2@a.test", PASSWORD).await;
    let taken = request_on_pages(&app, &b, "taken@a.test", PASSWORD).await;
    assert_eq!((free.status(), location_of(&free)), (taken.status(), location_of(&taken)));

    // Only the address learns it: no link, and what happened. The holder is told
    // about both requests alike.
    let mails = mails_to(&app, "taken@a.test", "sign-in email was not changed", 2).await;
    for m in &mails {
        let text = m.text_body().unwrap();
        assert!(text.contains("this address already has an account") && !text.contains("http"), "{text}");
    }
    link_in(&app, &mails_to(&app, "free@a.test", "Confirm", 1).await[0]);
    mails_to(&app, "doc@a.test", "Change of your Clinic A sign-in email requested", 2).await;
    mails_to(&app, "nurse@a.test", "Change of your Clinic A sign-in email requested", 2).await;
    let events = app.audit_of(Some("email_change_requested"), 10).await;
    assert_eq!(events.iter().filter(|e| e.detail.contains(r#""taken":"true""#)).count(), 2, "{events:?}");
}

async fn an_address_taken_before_the_confirm_is_refused_without_a_change(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "doc@a.test", Role::Provider).await;
    let token = app.token("staff", "doc@a.test").await;
    let body = json!({"new_email": "shared@a.test", "current_password": PASSWORD});
    assert_eq!(app.post_json("/api/v1/me/email", &token, body).await.0, 202);
    let link = link_in(&app, &mails_to(&app, "shared@a.test", "Confirm", 1).await[0]);
    let b = app.browser();
    let (_, html) = page_of(&b, &link).await;
    // Another account takes the address in the meantime.
    app.member(&org, "shared@a.test", Role::Staff).await;
    let res = b
        .post(app.url("/account/email/confirm"))
        .form(&[("csrf", csrf_of(&html)), ("token", token_of(&link))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("This address already has an account"));
    let (s, e) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": token_of(&link)})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("email_taken")), "{e}");
    assert_eq!(app.get_json("/api/v1/me", &token).await.1["email"], "doc@a.test", "nothing changed");
    assert_eq!(app.api_login("staff", "doc@a.test", PASSWORD).await.status(), 200);
    let refused = &app.audit_of(Some("email_changed"), 1).await[0];
    assert_eq!((refused.outcome.as_str(), refused.detail.as_str()), ("failure", r#"{"reason":"address_taken"}"#));
}

async fn a_password_change_after_the_request_ends_the_link(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    let token = app.token("patient", "pat@example.test").await;
    let body = json!({"new_email": "pat@new.test", "current_password": PASSWORD});
    assert_eq!(app.post_json("/api/v1/me/email", &token, body).await.0, 202);
    let link = link_in(&app, &mails_to(&app, "pat@new.test", "Confirm", 1).await[0]);
    let new_password = "a brand new passphrase here";
    let change = json!({"current_password": PASSWORD, "new_password": new_password});
    let res = app.api().post(app.url("/api/v1/me/password")).bearer_auth(&token).json(&change).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let (s, html) = page_of(&app.browser(), &link).await;
    assert_eq!(s, 410);
    assert!(html.contains("the account changed since it was sent"), "{html}");
    let (s, e) = app.post_anonymous("/api/v1/email-changes/confirm", json!({"token": token_of(&link)})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("link_expired")), "{e}");
    assert_eq!(app.api_login("patient", "pat@example.test", new_password).await.status(), 200, "nothing changed");
    assert!(app.get_json("/api/v1/me", &token).await.1.get("pending_email_change").is_none());
}

async fn email_change_requests_are_limited_per_account(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    app.patient(&org, "other@example.test").await;
    let token = app.token("patient", "pat@example.test").await;
    let other = app.token("patient", "other@example.test").await;
    let request = |token: &str, i: usize| {
        let body = json!({"new_email": format!("n{i}@new.test"), "current_password": PASSWORD});
        let (app, token) = (&app, token.to_owned());
        async move { app.post_json("/api/v1/me/email", &token, body).await }
    };
    for i in 0..3 {
        assert_eq!(request(&token, i).await.0, 202, "request {i}");
    }
    let res = app
        .api()
        .post(app.url("/api/v1/me/email"))
        .bearer_auth(&token)
        .json(&json!({"new_email": "n3@new.test", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "3600");
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "too_many_attempts");
    assert_eq!(request(&other, 9).await.0, 202, "another account goes on");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp.messages().iter().all(|m| !m.to.iter().any(|t| t == "n3@new.test")), "nothing sent");
    app.clock.advance(3600 + 1);
    let token = app.token("patient", "pat@example.test").await;
    assert_eq!(request(&token, 4).await.0, 202, "an hour later");
}

//! Self-service passwords: "Forgot your password?" on both sign-in pages and over the
//! API (the same answer, after the same store work, with or without an account;
//! limited per address and per client; a one-time link valid an hour that ends every
//! session and keeps the second factor), and "Change password" from the account page
//! and the API (current password, a recent second factor, the other sessions end).

use std::time::Duration;

use clinic_auth_core::{OrgKind, Role};
use clinic_auth_notify::testkit::CapturedEmail;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{Options, PASSWORD, TestApp, csrf_of, location_of, page_of};

both_stores!(
    forgot_password_answers_the_same_whether_or_not_an_account_uses_the_address,
    forgot_password_does_the_same_store_work_whether_or_not_an_account_uses_the_address,
    forgot_password_link_resets_once_ends_sessions_and_still_asks_for_the_second_factor,
    forgot_password_links_work_for_one_hour,
    forgot_password_over_the_api_for_patients,
    forgot_password_is_limited_per_address_and_per_client,
    change_password_needs_a_recent_second_factor_and_the_current_password,
    change_password_over_the_api,
);

const NEW_PASSWORD: &str = "a brand new passphrase here";
const SENT: &str = "If an account uses that address, we&#39;ve sent it a link to choose a new password. The link \
                    works once, for 1 hour.";

/// The reset emails received so far (those that carry a `/reset/` link).
fn reset_emails(app: &TestApp) -> Vec<CapturedEmail> {
    app.smtp.messages().into_iter().filter(|m| m.text_body().is_some_and(|t| t.contains("/reset/"))).collect()
}

/// The reset emails to `to`, once there are `n` (waiting for the task that sends them).
async fn reset_emails_to(app: &TestApp, to: &str, n: usize) -> Vec<CapturedEmail> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = reset_emails(app).into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), n, "{n} reset email(s) to {to}");
    found
}

/// The link in a reset email, after checking the email holds that link and a plain
/// explanation only, for the account's own address alone.
fn link_in(app: &TestApp, mail: &CapturedEmail, to: &str) -> String {
    assert_eq!(mail.to, vec![to.to_owned()], "the reset email goes to the address alone");
    let text = mail.text_body().unwrap();
    let link = text.split_whitespace().find(|w| w.contains("/reset/")).unwrap().to_owned();
    assert!(link.starts_with(&format!("{}/reset/", app.base)), "the link is on public_url: {link}");
    for body in [text.clone(), mail.html_body().unwrap()] {
        assert_eq!(body.matches("http").count(), 1, "no other link: {body}");
    }
    assert!(text.contains("The link works once, until"), "{text}");
    assert!(text.contains("your second factors stay as they are"), "{text}");
    assert!(mail.find_code().is_none(), "no code");
    link
}

/// "Forgot your password?" on the pages at `base`: the form's page, then the answer
/// to "Send reset link" for `email`.
async fn forgot_on_pages(app: &TestApp, b: &reqwest::Client, base: &str, email: &str) -> reqwest::Response {
    let forgot = format!("{base}/forgot-password");
    let (s, html) = page_of(b, &app.url(&forgot)).await;
    assert_eq!(s, 200);
    assert!(html.contains("Send reset link"), "{html}");
    b.post(app.url(&forgot)).form(&[("csrf", csrf_of(&html).as_str()), ("email", email)]).send().await.unwrap()
}

async fn forgot_over_api(app: &TestApp, body: Value) -> reqwest::Response {
    app.api().post(app.url("/api/v1/password-resets")).json(&body).send().await.unwrap()
}

/// A response's status, headers other than `date`, and body.
async fn whole(res: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        // The date and the request's own id differ from one answer to the next.
        .filter(|(k, _)| k.as_str() != "date" && k.as_str() != "x-request-id")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    headers.sort();
    (status, headers, res.text().await.unwrap())
}

async fn forgot_password_answers_the_same_whether_or_not_an_account_uses_the_address(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "doc@a.test", Role::Provider).await;
    // Both sign-in pages link to it, on the email step and the password step.
    let b = app.browser();
    for base in ["/login", "/portal/login"] {
        let (_, html) = page_of(&b, &app.url(base)).await;
        assert!(html.contains(&format!("<a href=\"{base}/forgot-password\">Forgot your password?</a>")), "{html}");
    }
    let (_, html) = page_of(&b, &app.url("/login")).await;
    b.post(app.url("/login")).form(&[("csrf", csrf_of(&html).as_str()), ("email", "doc@a.test")]).send().await.unwrap();
    let (_, html) = page_of(&b, &app.url("/login/password")).await;
    assert!(html.contains("<a href=\"/login/forgot-password\">Forgot your password?</a>"), "{html}");
    // From the password step, the form already holds the address being signed in.
    let (_, html) = page_of(&b, &app.url("/login/forgot-password")).await;
    assert!(html.contains("value=\"doc@a.test\""), "{html}");

    let known = whole(forgot_on_pages(&app, &b, "/login", "doc@a.test").await).await;
    let unknown = whole(forgot_on_pages(&app, &b, "/login", "nobody@a.test").await).await;
    assert_eq!(known.0, 200);
    assert!(known.2.contains(SENT), "{}", known.2);
    assert!(!known.2.contains("doc@a.test"), "the answer does not repeat the address");
    assert_eq!(known, unknown, "byte for byte the same page, with the same headers");
    // The same over the API.
    let known = whole(forgot_over_api(&app, json!({"email": "doc@a.test", "realm": "staff"})).await).await;
    let unknown = whole(forgot_over_api(&app, json!({"email": "nobody@a.test", "realm": "staff"})).await).await;
    assert_eq!((known.0, known.2.as_str()), (202, r#"{"accepted":true}"#));
    assert_eq!(known, unknown);
    // A staff address asked at the patient portal has no patient account there.
    let patient_side = whole(forgot_on_pages(&app, &b, "/portal/login", "doc@a.test").await).await;
    assert_eq!(patient_side.0, 200);

    let mails = reset_emails_to(&app, "doc@a.test", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reset_emails(&app).len(), 2, "nothing went to the unknown address or for the patient realm");
    for m in &mails {
        link_in(&app, m, "doc@a.test");
    }
    // A malformed address is refused on the form, like at sign-in.
    let res = forgot_on_pages(&app, &b, "/login", "not an email").await;
    assert_eq!(res.status(), 400);
    let res = forgot_over_api(&app, json!({"email": "doc@a.test", "realm": "both"})).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "invalid_realm");

    // On the record: the requests, with the address kept only where no account uses it.
    let events = app.audit_of(Some("password_reset_requested"), 20).await;
    let sent: Vec<_> = events.iter().filter(|e| e.outcome == "success").collect();
    assert_eq!(sent.len(), 2, "{events:?}");
    assert!(sent.iter().all(|e| e.detail == r#"{"delivery":"email"}"# && e.org_id.as_deref() == Some("clinic-a")));
    let unknown: Vec<_> = events.iter().filter(|e| e.detail.contains("unknown_account")).collect();
    assert_eq!(unknown.len(), 3, "{events:?}");
    assert!(unknown.iter().all(|e| e.outcome == "failure" && e.subject_id.is_none()));
    assert!(unknown.iter().any(|e| e.detail.contains("nobody@a.test")));
}

/// The store calls of the request just made (and the work it left to a task), without
/// the background loops' own.
fn store_calls(app: &TestApp) -> Vec<&'static str> {
    let calls = app.recorder.as_ref().expect("a recording store").take_calls();
    calls.into_iter().filter(|c| !matches!(*c, "due_logouts" | "purge_expired")).collect()
}

async fn forgot_password_does_the_same_store_work_whether_or_not_an_account_uses_the_address(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, Options { record_store: true, ..Default::default() }).await.unwrap();
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "doc@a.test", Role::Provider).await;
    let b = app.browser();
    let (_, html) = page_of(&b, &app.url("/login/forgot-password")).await;
    let csrf = csrf_of(&html);
    let ask = |email: &'static str| {
        let req = b.post(app.url("/login/forgot-password")).form(&[("csrf", csrf.clone()), ("email", email.into())]);
        async move { assert_eq!(req.send().await.unwrap().status(), 200) }
    };

    store_calls(&app);
    ask("nobody@a.test").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unknown = store_calls(&app);
    ask("doc@a.test").await;
    reset_emails_to(&app, "doc@a.test", 1).await;
    let known = store_calls(&app);

    // The same reads and counts, in the same order; then one write, the audit event
    // in its transaction either way (with the link when there is an account).
    let reads = ["reserve_attempt", "find_account", "reserve_attempt"];
    assert_eq!(unknown, [&reads[..], &["append_audit"]].concat(), "{unknown:?}");
    assert_eq!(known[..reads.len()], reads, "{known:?}");
    assert_eq!(known[reads.len()], "insert_password_link", "{known:?}");
    // What remains is the email's own work, in its task after the write: the clinic's
    // name and branding (display name, logo) for the email.
    assert_eq!(known[reads.len() + 1..], ["get_org", "get_org_branding"], "{known:?}");
}

/// Email, then `password`, on the pages at `base`: the answer to the password.
async fn password_step(
    app: &TestApp,
    b: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let (_, html) = page_of(b, &app.url(base)).await;
    let res = b.post(app.url(base)).form(&[("csrf", csrf_of(&html).as_str()), ("email", email)]).send().await.unwrap();
    assert_eq!(location_of(&res), format!("{base}/password"));
    let (_, html) = page_of(b, &app.url(&format!("{base}/password"))).await;
    b.post(app.url(&format!("{base}/password")))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// Chooses `password` on a reset link's page; the answer.
async fn choose_on_link(b: &reqwest::Client, link: &str, password: &str) -> reqwest::Response {
    let (s, html) = page_of(b, link).await;
    assert_eq!(s, 200, "{html}");
    b.post(link)
        .form(&[("csrf", csrf_of(&html).as_str()), ("new_password", password), ("confirm_password", password)])
        .send()
        .await
        .unwrap()
}

async fn forgot_password_link_resets_once_ends_sessions_and_still_asks_for_the_second_factor(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    let doc = app.member(&org, "doc@a.test", Role::Provider).await;
    app.enroll_authenticator(&doc).await;
    let signed_in = app.browser();
    assert_eq!(location_of(&app.sign_in_with_pages(&signed_in, "/login", "doc@a.test").await), "/account");
    let token = app.token("staff", "doc@a.test").await;

    let b = app.browser();
    assert_eq!(forgot_on_pages(&app, &b, "/login", "doc@a.test").await.status(), 200);
    let mail = reset_emails_to(&app, "doc@a.test", 1).await.remove(0);
    assert_eq!(mail.subject().as_deref(), Some("Reset your Clinic A password"));
    let link = link_in(&app, &mail, "doc@a.test");
    let event = &app.audit_of(Some("password_reset_requested"), 1).await[0];
    assert_eq!(event.subject_id.as_deref(), Some(doc.id.to_string().as_str()));
    assert!(!event.detail.contains(link.rsplit('/').next().unwrap()), "the audit holds no link");

    let before = app.smtp.messages().len();
    let res = choose_on_link(&b, &link, NEW_PASSWORD).await;
    assert_eq!(location_of(&res), "/login?notice=password_set");
    // Once only.
    let (s, _) = page_of(&b, &link).await;
    assert_eq!(s, 410, "the link works once");
    assert_eq!(app.use_password_link(&link, "yet another passphrase here").await, 410);
    // Every session ended, in the browser and over the API.
    let res = signed_in.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location_of(&res), "/login", "the browser's session ended");
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 401, "the API session ended");
    // The holder is told.
    let mails = app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    assert!(
        mails.iter().any(|m| m.subject().as_deref() == Some("Your Clinic A password was changed")),
        "a password-changed notice"
    );
    assert_eq!(app.audit_of(Some("password_reset"), 5).await.len(), 1);

    // The old password no longer works; the new one leads to the second factor, not
    // to a session.
    let fresh = app.browser();
    let res = password_step(&app, &fresh, "/login", "doc@a.test", PASSWORD).await;
    assert_eq!(res.status(), 401);
    let res = password_step(&app, &fresh, "/login", "doc@a.test", NEW_PASSWORD).await;
    assert_eq!(location_of(&res), "/login/verify", "the reset kept the authenticator");
    let (s, html) = page_of(&fresh, &app.url("/login/verify")).await;
    assert_eq!(s, 200);
    assert!(html.contains("Verify it"), "{html}");
    let res = fresh.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location_of(&res), "/login", "no session before the second factor");
    let started: Value = app.start_login("staff", "doc@a.test").await.json().await.unwrap();
    let progress: Value =
        app.submit_password(started["flow_id"].as_str().unwrap(), NEW_PASSWORD).await.json().await.unwrap();
    assert_eq!(progress["next"], "second_factor", "{progress}");
    assert!(progress.get("session_token").is_none(), "{progress}");
}

async fn forgot_password_links_work_for_one_hour(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "doc@a.test", Role::Provider).await;
    assert_eq!(forgot_over_api(&app, json!({"email": "doc@a.test"})).await.status(), 202);
    let first = link_in(&app, &reset_emails_to(&app, "doc@a.test", 1).await[0], "doc@a.test");
    app.clock.advance(59 * 60);
    assert_eq!(forgot_over_api(&app, json!({"email": "doc@a.test"})).await.status(), 202);
    let mails = reset_emails_to(&app, "doc@a.test", 2).await;
    let second = mails.iter().map(|m| link_in(&app, m, "doc@a.test")).find(|l| *l != first).unwrap();
    app.clock.advance(60 + 1);
    let b = app.browser();
    assert_eq!(page_of(&b, &first).await.0, 410, "an hour and a second later, the link is over");
    assert_eq!(app.use_password_link(&first, NEW_PASSWORD).await, 410);
    assert_eq!(page_of(&b, &second).await.0, 200, "the later link still has its hour");
    assert_eq!(app.use_password_link(&second, NEW_PASSWORD).await, 200);
    assert_eq!(app.api_login("staff", "doc@a.test", NEW_PASSWORD).await.status(), 200);
}

async fn forgot_password_over_the_api_for_patients(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    let res = forgot_over_api(&app, json!({"email": "pat@example.test", "realm": "patient"})).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"accepted": true}), "the answer holds no link");
    let link = link_in(&app, &reset_emails_to(&app, "pat@example.test", 1).await[0], "pat@example.test");
    // Without a realm the address is a staff one: no staff account uses it.
    assert_eq!(forgot_over_api(&app, json!({"email": "pat@example.test"})).await.status(), 202);
    // The patient chooses the password on the page and goes back to the portal.
    let b = app.browser();
    let res = choose_on_link(&b, &link, NEW_PASSWORD).await;
    assert_eq!(location_of(&res), "/portal/login?notice=password_set");
    assert_eq!(app.api_login("patient", "pat@example.test", NEW_PASSWORD).await.status(), 200);
    // Through the portal's own pages too.
    assert_eq!(forgot_on_pages(&app, &b, "/portal/login", "pat@example.test").await.status(), 200);
    reset_emails_to(&app, "pat@example.test", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reset_emails(&app).len(), 2, "nothing for the staff realm");
}

/// "Send reset link" from the client address `ip` (behind a trusted proxy).
async fn forgot_from(app: &TestApp, ip: &str, email: &str) -> reqwest::Response {
    let b = app.browser();
    let (_, html) = page_of(&b, &app.url("/login/forgot-password")).await;
    b.post(app.url("/login/forgot-password"))
        .header("x-forwarded-for", ip)
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", email)])
        .send()
        .await
        .unwrap()
}

async fn forgot_password_is_limited_per_address_and_per_client(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, Options { trust_forwarded_for: true, ..Default::default() }).await;
    let app = app.unwrap();
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "doc@a.test", Role::Provider).await;

    // Per address: three emails an hour, from wherever asked; then the same answer
    // and nothing sent, as for an address without an account.
    let mut answers = Vec::new();
    for (i, email) in ["doc@a.test", "doc@a.test", "doc@a.test", "doc@a.test", "nobody@a.test"].iter().enumerate() {
        answers.push(whole(forgot_from(&app, &format!("198.51.100.{i}"), email).await).await);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "one answer, over the limit or not");
    assert_eq!(answers[0].0, 200);
    let mails = reset_emails_to(&app, "doc@a.test", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reset_emails(&app).len(), 3, "the fourth request sent nothing");
    for m in &mails {
        assert!(!m.text_body().unwrap().contains("198.51.100"), "nothing about who asked");
    }
    let limited = app.audit_of(Some("password_reset_requested"), 10).await;
    assert!(limited.iter().any(|e| e.detail.contains("address_limited")), "{limited:?}");
    let api = forgot_over_api(&app, json!({"email": "doc@a.test"})).await;
    assert_eq!(api.status(), 202, "over the address's limit, the API answers the same");
    app.clock.advance(3600 + 1);
    assert_eq!(forgot_from(&app, "198.51.100.9", "doc@a.test").await.status(), 200, "an hour later");
    reset_emails_to(&app, "doc@a.test", 4).await;

    // Per client: twenty an hour from one address, whatever the email; then 429 with
    // the wait, on the page and over the API, while other clients go on.
    let client = "203.0.113.7";
    for i in 0..20 {
        assert_eq!(forgot_from(&app, client, &format!("someone{i}@a.test")).await.status(), 200, "request {i}");
    }
    let res = forgot_from(&app, client, "doc@a.test").await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "3600");
    let html = res.text().await.unwrap();
    assert!(html.contains("Too many password reset requests") && html.contains("60 minutes"), "{html}");
    let res = app
        .api()
        .post(app.url("/api/v1/password-resets"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": "doc@a.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "too_many_attempts");
    assert_eq!(forgot_from(&app, "203.0.113.8", "nobody@a.test").await.status(), 200, "another client goes on");
    app.clock.advance(3600 + 1);
    assert_eq!(forgot_from(&app, client, "nobody@a.test").await.status(), 200, "after the wait");
}

/// The account page's "Change password" form; its CSRF token.
async fn change_form(app: &TestApp, b: &reqwest::Client) -> String {
    let (s, html) = page_of(b, &app.url("/account/password")).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("Apps that use your account"), "the page says apps sign in again: {html}");
    csrf_of(&html)
}

async fn change(app: &TestApp, b: &reqwest::Client, current: &str, new: &str, confirm: &str) -> reqwest::Response {
    let csrf = change_form(app, b).await;
    b.post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ])
        .send()
        .await
        .unwrap()
}

async fn change_password_needs_a_recent_second_factor_and_the_current_password(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    let doc = app.member(&org, "doc@a.test", Role::Provider).await;
    app.enroll_authenticator(&doc).await;
    let here = app.browser();
    assert_eq!(location_of(&app.sign_in_with_pages(&here, "/login", "doc@a.test").await), "/account");
    let elsewhere = app.browser();
    app.sign_in_with_pages(&elsewhere, "/login", "doc@a.test").await;
    let token = app.token("staff", "doc@a.test").await;
    let (_, html) = page_of(&here, &app.url("/account")).await;
    assert!(html.contains("<a href=\"/account/password\">Change password</a>"), "{html}");

    // The second factor of the sign-in is older than 10 minutes: prove it again first.
    app.clock.advance(11 * 60);
    let res = here.get(app.url("/account/password")).send().await.unwrap();
    assert_eq!(location_of(&res), "/account/2fa/verify?next=password");
    let (_, html) = page_of(&here, &app.url("/account")).await;
    let res = here
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/account/2fa/verify?next=password", "the form cannot skip the step-up");
    app.clock.advance(30);
    let code = app.authenticator_code("doc@a.test").unwrap();
    let (_, html) = page_of(&here, &app.url("/account/2fa/verify?next=password")).await;
    let res = here
        .post(app.url("/account/2fa/verify?method=authenticator"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", code.as_str()), ("next", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/account/password", "back to the form");

    // The current password is required; a wrong one counts like one at sign-in.
    let res = change(&app, &here, "not my password at all", NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Your current password is not correct"));
    let refused = &app.audit_of(Some("password_changed"), 1).await[0];
    assert_eq!((refused.outcome.as_str(), refused.detail.as_str()), ("failure", r#"{"reason":"wrong_password"}"#));
    let res = change(&app, &here, PASSWORD, NEW_PASSWORD, "something else entirely").await;
    assert_eq!(res.status(), 400, "the confirmation must match");
    let res = change(&app, &here, PASSWORD, "short", "short").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("at least 15 characters"), "the password policy applies");
    let res = change(&app, &here, PASSWORD, PASSWORD, PASSWORD).await;
    assert_eq!(res.status(), 400, "the new password must be new");
    // (A correct current password started the count over.)
    for _ in 0..6 {
        change(&app, &here, "not my password at all", NEW_PASSWORD, NEW_PASSWORD).await;
    }
    let res = change(&app, &here, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(res.status(), 429, "six wrong passwords lock the email, as at sign-in");
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(app.api_login("staff", "doc@a.test", PASSWORD).await.status(), 429, "sign-in shares the count");
    app.clock.advance(30);

    let before = app.smtp.messages().len();
    let res = change(&app, &here, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(location_of(&res), "/account?notice=password_changed");
    let (s, html) = page_of(&here, &app.url("/account?notice=password_changed")).await;
    assert_eq!(s, 200, "this session stays");
    assert!(html.contains("Your password is changed"), "{html}");
    let res = elsewhere.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location_of(&res), "/login", "the other browser's session ended");
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 401, "the API session ended");
    // Told by email, without a link or a code; audited.
    let mails = app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    let notice = mails.iter().find(|m| m.subject().as_deref() == Some("Your Clinic A password was changed")).unwrap();
    assert_eq!(notice.to, vec!["doc@a.test".to_owned()]);
    let text = notice.text_body().unwrap();
    assert!(text.contains("from its account page") && !text.contains("http"), "{text}");
    let changed = &app.audit_of(Some("password_changed"), 1).await[0];
    assert_eq!(changed.outcome, "success");
    let me = doc.id.to_string();
    assert_eq!((changed.actor_id.as_deref(), changed.subject_id.as_deref()), (Some(me.as_str()), Some(me.as_str())));
    // The new password signs in, and still with the second factor.
    assert_eq!(app.api_login("staff", "doc@a.test", PASSWORD).await.status(), 401);
    let progress: Value = app.api_login("staff", "doc@a.test", NEW_PASSWORD).await.json().await.unwrap();
    assert_eq!(progress["next"], "second_factor", "{progress}");
}

async fn change_password_over_the_api(app: TestApp) {
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    let doc = app.member(&org, "doc@a.test", Role::Provider).await;
    app.enroll_authenticator(&doc).await;
    let body = |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    // A patient without a second factor has nothing to prove first.
    let token = app.token("patient", "pat@example.test").await;
    let other = app.token("patient", "pat@example.test").await;
    let (s, e) = app.post_json("/api/v1/me/password", &token, body("wrong password, surely", NEW_PASSWORD)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_credentials")), "{e}");
    let (s, e) = app.post_json("/api/v1/me/password", &token, body(PASSWORD, "short")).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("weak_password")), "{e}");
    let (s, e) = app.post_json("/api/v1/me/password", &token, body(PASSWORD, PASSWORD)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("nothing_to_change")), "{e}");
    let res = app
        .api()
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&token)
        .json(&body(PASSWORD, NEW_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200, "this session stays");
    assert_eq!(app.get_json("/api/v1/me", &other).await.0, 401, "the other one ended");
    assert_eq!(app.api_login("patient", "pat@example.test", NEW_PASSWORD).await.status(), 200);

    // A member with a factor proves it first.
    let token = app.token("staff", "doc@a.test").await;
    app.clock.advance(11 * 60);
    let (s, e) = app.post_json("/api/v1/me/password", &token, body(PASSWORD, NEW_PASSWORD)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("step_up_required")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("/api/v1/me/mfa/verify"), "{e}");
    app.clock.advance(30);
    let code = app.authenticator_code("doc@a.test").unwrap();
    let (s, v) = app.post_json("/api/v1/me/mfa/verify", &token, json!({"code": code})).await;
    assert!(s == 200 || s == 204, "{s} {v}");
    let (s, v) = app.post_json("/api/v1/me/password", &token, body(PASSWORD, NEW_PASSWORD)).await;
    assert_eq!(s, 204, "{v}");
    let progress: Value = app.api_login("staff", "doc@a.test", NEW_PASSWORD).await.json().await.unwrap();
    assert_eq!(progress["next"], "second_factor", "{progress}");
}

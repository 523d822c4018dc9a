//! Second factor, part 2: codes by email (real SMTP) and text message (Twilio's API).

use std::time::Duration;

use clinic_auth_app::By;
use clinic_auth_app::policy::{self, OrgMfaChange};
use clinic_auth_core::{MethodSet, MfaMode, OrgKind, Role};
use clinic_auth_store::Org;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{PASSWORD, TWILIO_SID, TestApp, csrf_of};

both_stores!(
    email_codes_set_up_and_sign_in_over_real_smtp,
    sms_setup_takes_us_mobile_numbers_only_and_confirms_before_saving,
    codes_expire_after_ten_minutes,
    each_code_allows_a_few_attempts_and_is_single_use,
    resend_waits_for_the_cooldown_and_a_new_code_replaces_the_old,
    sends_are_limited_per_member_and_per_client,
    a_provider_failure_is_retryable_and_keeps_the_sign_in,
    a_code_not_sent_at_the_password_step_is_named_and_the_sign_in_goes_on,
    email_and_text_appear_under_try_another_method,
    members_choose_between_emails_and_texts_on_the_setup_page,
    the_account_email_is_offered_when_the_clinic_allows_email_codes,
    optional_members_add_email_or_text_codes_from_their_account,
);

const WAIT: Duration = Duration::from_secs(5);
const PHONE: &str = "(201) 555-0123";

pub(crate) async fn clinic(app: &TestApp, methods: &str) -> Org {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let change = OrgMfaChange {
        enabled: Some(true),
        mode: Some(MfaMode::Required),
        methods: Some(MethodSet::parse(methods).unwrap()),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    org
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.api().post(app.url(path)).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn password_step(app: &TestApp) -> (String, Value) {
    let started: Value = app.start_login("staff", "dr.lee@riverside.test").await.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap().to_owned();
    let res = app.submit_password(&flow, PASSWORD).await;
    assert_eq!(res.status(), 200);
    (flow, res.json().await.unwrap())
}

/// How many emails with a code arrived so far.
pub(crate) fn code_emails(app: &TestApp) -> usize {
    app.smtp.messages().iter().filter(|m| m.find_code().is_some()).count()
}

/// The `n`th emailed code. Security notices (a factor was added, …) arrive in the
/// same mailbox and carry no code, so they are skipped.
pub(crate) async fn last_email_code(app: &TestApp, n: usize) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let codes: Vec<String> = app.smtp.messages().iter().filter_map(|m| m.find_code()).collect();
        if codes.len() >= n {
            return codes[n - 1].clone();
        }
        assert!(std::time::Instant::now() < deadline, "expected {n} emailed codes, got {}", codes.len());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub(crate) async fn last_sms_code(app: &TestApp, n: usize) -> String {
    let sms = app.twilio.wait_for(n, WAIT).await;
    assert!(sms.len() >= n, "expected {n} texts, got {}", sms.len());
    sms[n - 1].find_code().expect("code in the text")
}

/// Enrolls email codes at sign-in; returns the recovery code.
async fn enroll_email(app: &TestApp) -> String {
    let (flow, progress) = password_step(app).await;
    assert_eq!(progress["next"], "enroll");
    let (s, sent) = post(app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    assert_eq!(s, 200, "{sent}");
    let code = last_email_code(app, code_emails(app)).await;
    let (s, done) = post(app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await;
    assert_eq!(s, 200, "{done}");
    done["recovery_code"].as_str().unwrap().to_owned()
}

async fn email_codes_set_up_and_sign_in_over_real_smtp(app: TestApp) {
    clinic(&app, "email").await;
    let (flow, progress) = password_step(&app).await;
    assert_eq!(progress["allowed_methods"], json!(["email"]));
    let (s, sent) = post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(sent["sent_to"], "d•••@riverside.test");
    let mail = &app.smtp.wait_for(1, WAIT).await[0];
    assert_eq!(mail.to, vec!["dr.lee@riverside.test".to_owned()]);
    let code = mail.find_code().unwrap();
    let subject = mail.subject().unwrap();
    assert!(subject.contains("Riverside Clinic") && !subject.contains(&code), "{subject}");
    let text = mail.text_body().unwrap();
    assert!(text.contains("expires 10 minutes after it is sent"), "{text}");
    assert!(mail.html_body().unwrap().contains(&code));
    let (s, done) = post(
        &app,
        &format!("/api/v1/login/{flow}/enroll/code/confirm"),
        json!({"code": format!("{} {}", &code[..3], &code[3..])}),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert!(done["recovery_code"].is_string() && done["session_token"].is_string());

    // Next sign-in, an hour later: the code goes out with the password step.
    app.clock.advance(3600);
    let (flow, progress) = password_step(&app).await;
    assert_eq!((progress["next"].as_str(), progress["method"].as_str()), (Some("second_factor"), Some("email")));
    assert_eq!(progress["sent_to"], "d•••@riverside.test");
    assert_eq!(progress["other_methods"], json!(["recovery_code"]));
    let code = last_email_code(&app, 2).await;
    let (s, signed_in) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await;
    assert_eq!(s, 200);
    // The Users page's "last used" is this sign-in, not the setup.
    use clinic_auth_core::Clock;
    let token = signed_in["session_token"].as_str().unwrap();
    let (_, me) = app.get_json("/api/v1/me/mfa", token).await;
    let email = me["factors"].as_array().unwrap().iter().find(|f| f["kind"] == "email").cloned().unwrap();
    assert_eq!(email["last_used_at"].as_i64(), Some(app.clock.now().0), "{email}");
    let kinds = app.audit_kinds().await;
    assert!(kinds.contains(&("code_sent".into(), "success".into())));
    assert!(kinds.contains(&("factor_enrolled".into(), "success".into())));
    // No code in the audit trail.
    let events = app.audit_of(None, 500).await;
    assert!(events.iter().all(|e| !e.detail.contains(&code)));
}

async fn sms_setup_takes_us_mobile_numbers_only_and_confirms_before_saving(app: TestApp) {
    clinic(&app, "sms").await;
    let (flow, _) = password_step(&app).await;
    let path = format!("/api/v1/login/{flow}/enroll/sms");
    for (input, needle) in [
        ("+44 20 7946 0958", "US mobile numbers"),
        ("+1 416 555 0123", "US mobile numbers"),
        ("(800) 555-0123", "cannot receive text messages"),
        ("555-0123", "10-digit US mobile number"),
        ("call me maybe", "10-digit US mobile number"),
    ] {
        let (s, e) = post(&app, &path, json!({"phone": input})).await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_phone")), "{input}");
        assert!(e["error"]["message"].as_str().unwrap().contains(needle), "{input}: {e}");
    }
    assert!(app.twilio.requests().is_empty(), "nothing sent to a refused number");
    let (s, sent) = post(&app, &path, json!({"phone": PHONE})).await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(sent["sent_to"], "(•••) •••-0123");
    let req = &app.twilio.wait_for(1, WAIT).await[0];
    assert_eq!(req.account_sid, TWILIO_SID);
    assert!(req.auth_ok);
    assert_eq!(req.to(), Some("+12015550123"));
    assert_eq!(req.field("From"), Some("+15005550006"));
    assert!(req.body().unwrap().contains("Riverside Clinic"));
    let account = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse("dr.lee@riverside.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        app.state.store.list_factors(account.id).await.unwrap().is_empty(),
        "the number is saved only after its code"
    );
    let code = req.find_code().unwrap();
    let (s, done) = post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await;
    assert_eq!(s, 200, "{done}");
    let factors = app.state.store.list_factors(account.id).await.unwrap();
    assert_eq!(factors[0].target.as_deref(), Some("+12015550123"));
    // Signing in texts the saved number.
    let (flow, progress) = password_step(&app).await;
    assert_eq!(progress["method"], "sms");
    let code = last_sms_code(&app, 2).await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await.0, 200);
}

async fn codes_expire_after_ten_minutes(app: TestApp) {
    clinic(&app, "email").await;
    let (flow, _) = password_step(&app).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    let code = last_email_code(&app, 1).await;
    app.clock.advance(10 * 60);
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("code_expired")));
    // A fresh sign-in and a fresh code work; one entered at 9:59 is fine.
    let (flow, _) = password_step(&app).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    let code = last_email_code(&app, 2).await;
    app.clock.advance(10 * 60 - 1);
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await;
    assert_eq!(s, 200);
}

async fn each_code_allows_a_few_attempts_and_is_single_use(app: TestApp) {
    clinic(&app, "email").await;
    let (flow, _) = password_step(&app).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    let code = last_email_code(&app, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let confirm = format!("/api/v1/login/{flow}/enroll/code/confirm");
    for left in [4, 3, 2, 1] {
        let (s, e) = post(&app, &confirm, json!({"code": wrong})).await;
        assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_code")));
        assert!(e["error"]["message"].as_str().unwrap().contains(&format!("{left} tr")), "{e}");
    }
    let (s, e) = post(&app, &confirm, json!({"code": wrong})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("code_attempts_exhausted")));
    let (s, e) = post(&app, &confirm, json!({"code": code})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (410, Some("code_expired")),
        "the used-up code is gone, even the right one"
    );
    let (s, e) = post(&app, &confirm, json!({"code": "12345"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_code")));
    // A new code works once.
    app.clock.advance(30);
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/resend"), json!({})).await.0, 200);
    let code = last_email_code(&app, 2).await;
    assert_eq!(post(&app, &confirm, json!({"code": code})).await.0, 200);
    let (flow, _) = password_step(&app).await;
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await;
    assert_ne!(s, 200, "a used code never works again");
}

async fn resend_waits_for_the_cooldown_and_a_new_code_replaces_the_old(app: TestApp) {
    clinic(&app, "email").await;
    let (flow, _) = password_step(&app).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    let first = last_email_code(&app, 1).await;
    let resend = format!("/api/v1/login/{flow}/resend");
    app.clock.advance(10);
    let res = app.api().post(app.url(&resend)).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "20");
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "resend_too_soon");
    app.clock.advance(20);
    let (s, sent) = post(&app, &resend, json!({})).await;
    assert_eq!((s, sent["resend_in"].as_i64()), (200, Some(30)));
    let second = last_email_code(&app, 2).await;
    let confirm = format!("/api/v1/login/{flow}/enroll/code/confirm");
    if first != second {
        let (s, e) = post(&app, &confirm, json!({"code": first})).await;
        assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_code")), "the older code no longer works");
    }
    assert_eq!(post(&app, &confirm, json!({"code": second})).await.0, 200);
}

async fn sends_are_limited_per_member_and_per_client(app: TestApp) {
    let org = clinic(&app, "email").await;
    let (flow, _) = password_step(&app).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    let resend = format!("/api/v1/login/{flow}/resend");
    for _ in 0..4 {
        app.clock.advance(30);
        assert_eq!(post(&app, &resend, json!({})).await.0, 200);
    }
    app.clock.advance(30);
    let (s, e) = post(&app, &resend, json!({})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("too_many_codes_sent")),
        "five codes in 15 minutes per member"
    );
    assert_eq!(app.smtp.messages().len(), 5);

    // One client asking for codes for many members is stopped too.
    for i in 0..14 {
        app.member(&org, &format!("m{i}@riverside.test"), Role::Staff).await;
    }
    let mut statuses = Vec::new();
    for i in 0..14 {
        let started: Value = app.start_login("staff", &format!("m{i}@riverside.test")).await.json().await.unwrap();
        let f = started["flow_id"].as_str().unwrap().to_owned();
        app.submit_password(&f, PASSWORD).await;
        statuses.push(post(&app, &format!("/api/v1/login/{f}/enroll/email"), json!({})).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 14, "{statuses:?}");
    app.member(&org, "late@riverside.test", Role::Staff).await;
    let started: Value = app.start_login("staff", "late@riverside.test").await.json().await.unwrap();
    let f = started["flow_id"].as_str().unwrap().to_owned();
    app.submit_password(&f, PASSWORD).await;
    let (s, e) = post(&app, &format!("/api/v1/login/{f}/enroll/email"), json!({})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("too_many_codes_sent")),
        "20 codes an hour per client address"
    );
}

async fn a_provider_failure_is_retryable_and_keeps_the_sign_in(app: TestApp) {
    clinic(&app, "sms").await;
    let (flow, _) = password_step(&app).await;
    app.twilio.set_failing(Some(500));
    let res = app
        .api()
        .post(app.url(&format!("/api/v1/login/{flow}/enroll/sms")))
        .json(&json!({"phone": PHONE}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "delivery_failed");
    assert!(e["error"]["message"].as_str().unwrap().contains("couldn't send the text message"));
    assert!(app.audit_kinds().await.contains(&("code_sent".into(), "failure".into())));
    // The provider is back: the same sign-in goes on, no cooldown in the way.
    app.twilio.set_failing(None);
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/enroll/sms"), json!({"phone": PHONE})).await;
    assert_eq!(s, 200);
    let code = last_sms_code(&app, app.twilio.requests().len()).await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await.0, 200);
    // SMTP refusing mail is also a clear, retryable error.
    app.smtp.set_failing(Some(451));
    let org2 = app.org("Hillside Clinic", OrgKind::Clinic).await;
    policy::set_org_mfa(
        &app.state,
        &By::operator(),
        org2.id.as_str(),
        OrgMfaChange {
            enabled: Some(true),
            mode: Some(MfaMode::Required),
            methods: Some(MethodSet::parse("email").unwrap()),
            grace_days: None,
        },
    )
    .await
    .unwrap();
    app.member(&org2, "nurse@hillside.test", Role::Staff).await;
    let started: Value = app.start_login("staff", "nurse@hillside.test").await.json().await.unwrap();
    let f = started["flow_id"].as_str().unwrap().to_owned();
    app.submit_password(&f, PASSWORD).await;
    let (s, e) = post(&app, &format!("/api/v1/login/{f}/enroll/email"), json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (503, Some("delivery_failed")));
}

async fn a_code_not_sent_at_the_password_step_is_named_and_the_sign_in_goes_on(app: TestApp) {
    clinic(&app, "email").await;
    enroll_email(&app).await;
    // The provider fails: the password is still accepted, and the answer says why no
    // code came instead of failing the step.
    app.smtp.set_failing(Some(451));
    let (flow, progress) = password_step(&app).await;
    assert_eq!((progress["next"].as_str(), progress["method"].as_str()), (Some("second_factor"), Some("email")));
    assert_eq!(progress["delivery_error"], "delivery_failed", "{progress}");
    assert!(progress.get("sent_to").is_none(), "{progress}");
    app.smtp.set_failing(None);
    let resend = format!("/api/v1/login/{flow}/resend");
    let mut last = post(&app, &resend, json!({})).await;
    assert_eq!(last.0, 200, "{}", last.1);
    // Past the send limit, a new sign-in names the limit the same way.
    for _ in 0..10 {
        app.clock.advance(30);
        last = post(&app, &resend, json!({})).await;
        if last.0 != 200 {
            break;
        }
    }
    assert_eq!((last.0, last.1["error"]["code"].as_str()), (429, Some("too_many_codes_sent")));
    app.clock.advance(30);
    let (_, progress) = password_step(&app).await;
    assert_eq!(progress["next"], "second_factor");
    assert_eq!(progress["delivery_error"], "too_many_codes_sent", "{progress}");
}

async fn email_and_text_appear_under_try_another_method(app: TestApp) {
    clinic(&app, "authenticator,email").await;
    enroll_email(&app).await;
    let (flow, progress) = password_step(&app).await;
    assert_eq!(progress["method"], "email");
    let (s, p) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "recovery_code"})).await;
    assert_eq!((s, p["method"].as_str()), (200, Some("recovery_code")));
    let (s, p) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "email"})).await;
    assert_eq!((s, p["method"].as_str()), (200, Some("email")));
    assert_eq!(p["sent_to"], "d•••@riverside.test");
    let code = last_email_code(&app, code_emails(&app)).await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await.0, 200);
}

async fn members_choose_between_emails_and_texts_on_the_setup_page(app: TestApp) {
    clinic(&app, "email,sms").await;
    let b = app.browser();
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "dr.lee@riverside.test")])
        .send()
        .await
        .unwrap();
    let html = b.get(app.url("/login/password")).send().await.unwrap().text().await.unwrap();
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/login/setup");
    let html = b.get(app.url("/login/setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(">Emails<") && html.contains(">Texts<") && html.contains(">Submit<"), "{html}");
    let csrf = csrf_of(&html);
    let res = b
        .post(app.url("/login/setup/method"))
        .form(&[("csrf", csrf.as_str()), ("method", "sms")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/login/setup");
    let html = b.get(app.url("/login/setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Phone Number") && html.contains("type=\"tel\""));
    let res = b
        .post(app.url("/login/setup/phone"))
        .form(&[("csrf", csrf.as_str()), ("phone", "+44 20 7946 0958")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("US mobile numbers"));
    b.post(app.url("/login/setup/phone")).form(&[("csrf", csrf.as_str()), ("phone", PHONE)]).send().await.unwrap();
    let html = b.get(app.url("/login/setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Enter Code") && html.contains("Resend") && html.contains("(•••) •••-0123"));
    let code = last_sms_code(&app, 1).await;
    let res = b
        .post(app.url("/login/setup/code"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("Save your recovery code"));
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 200);
}

async fn the_account_email_is_offered_when_the_clinic_allows_email_codes(app: TestApp) {
    clinic(&app, "sms,email").await;
    let (flow, _) = password_step(&app).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/sms"), json!({"phone": PHONE})).await;
    let code = last_sms_code(&app, 1).await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await.0, 200);
    let (flow, progress) = password_step(&app).await;
    assert_eq!(progress["method"], "sms");
    assert_eq!(
        progress["other_methods"],
        json!(["email", "recovery_code"]),
        "the registered email, as in the help article"
    );
    let (s, p) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "email"})).await;
    assert_eq!((s, p["sent_to"].as_str()), (200, Some("d•••@riverside.test")));
    let code = last_email_code(&app, 1).await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await.0, 200);
    // Without email in the clinic's methods, it is not offered.
    let org = app.state.store.list_orgs().await.unwrap().remove(0);
    let change = OrgMfaChange { methods: Some(MethodSet::parse("sms").unwrap()), ..Default::default() };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    let (flow, progress) = password_step(&app).await;
    assert_eq!(progress["other_methods"], json!(["recovery_code"]));
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "email"})).await;
    assert_eq!(s, 400);
}

async fn optional_members_add_email_or_text_codes_from_their_account(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let change = OrgMfaChange {
        enabled: Some(true),
        mode: Some(MfaMode::Optional),
        methods: Some(MethodSet::parse("email,sms").unwrap()),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    app.member(&org, "nurse@riverside.test", Role::Staff).await;

    // Pages: My account → Enable → Emails/Texts → code → recovery code.
    let b = app.browser();
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "dr.lee@riverside.test")])
        .send()
        .await
        .unwrap();
    let html = b.get(app.url("/login/password")).send().await.unwrap().text().await.unwrap();
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/account", "optional: no second factor yet");
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Enable two-factor authentication"));
    let html = b.get(app.url("/account/2fa/setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(">Emails<") && html.contains(">Texts<"), "choice between the allowed methods");
    assert!(!html.contains("<svg"), "authenticator apps are not allowed here");
    let csrf = csrf_of(&html);
    let res = b
        .post(app.url("/account/2fa/setup/method"))
        .form(&[("csrf", csrf.as_str()), ("method", "email")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/account/2fa/setup?method=email");
    let html = b.get(app.url("/account/2fa/setup?method=email")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("d•••@riverside.test") && html.contains("Enter Code"));
    let code = last_email_code(&app, 1).await;
    let page = b
        .post(app.url("/account/2fa/setup/code"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Save your recovery code"));
    let (_, progress) = password_step(&app).await;
    assert_eq!(progress["method"], "email", "from now on, always challenged");

    // API: the same for texts.
    let token = app.token("staff", "nurse@riverside.test").await;
    let (s, e) = app.post_json("/api/v1/me/mfa/sms", &token, json!({"phone": "+49 30 901820"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_phone")));
    let (s, sent) = app.post_json("/api/v1/me/mfa/sms", &token, json!({"phone": PHONE})).await;
    assert_eq!((s, sent["sent_to"].as_str()), (200, Some("(•••) •••-0123")));
    let code = last_sms_code(&app, 1).await;
    let (s, done) = app.post_json("/api/v1/me/mfa/code/confirm", &token, json!({"method": "sms", "code": code})).await;
    assert_eq!(s, 200, "{done}");
    assert!(done["recovery_code"].is_string());
    let (_, status) = app.get_json("/api/v1/me/mfa", &token).await;
    assert_eq!(status["factors"][0]["kind"], "sms");
}

//! The security campaign's defects, each as the attack that worked before its fix:
//! stale sign-ins, concurrent guesses, codes used across sign-ins, endless guessing.

use clinic_auth_app::{By, admin};
use clinic_auth_core::{AccountStatus, MfaMode, OrgKind, Role};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::TestApp;
use crate::mfa::{clinic_with_member, enroll_at_sign_in, now, password_step, post, set_mode, sign_in_with};
use crate::otp;

both_stores!(
    a_stale_sign_in_cannot_set_up_2fa_after_the_member_did,
    a_secret_shown_to_one_sign_in_is_never_shown_to_another,
    every_change_to_the_account_ends_its_sign_ins_in_flight,
    concurrent_wrong_codes_are_never_checked_past_the_limits,
    one_authenticator_code_sent_eight_times_at_once_signs_in_once,
    one_recovery_code_sent_eight_times_at_once_signs_in_once,
    an_emailed_code_finishes_only_the_sign_in_that_asked_for_it,
    a_factor_locks_after_a_hundred_wrong_codes_in_a_row_until_another_is_proved,
    a_factor_change_ends_the_other_sessions_but_not_the_one_that_made_it,
    showing_a_code_page_sends_nothing,
    a_method_the_clinic_removed_only_moves_the_member_to_an_allowed_one,
    a_recovery_code_alone_is_still_proved_before_a_2fa_change,
    a_password_used_without_the_second_factor_is_reported_once_a_day,
    a_sign_in_abandoned_at_the_second_factor_is_reported_unless_the_member_signed_in_since,
);

const DR: &str = "dr.lee@riverside.test";

/// Audit events of `kind` whose detail has `reason`.
async fn refusals(app: &TestApp, reason: &str) -> usize {
    app.audit_of(Some("second_factor"), 10_000)
        .await
        .iter()
        .filter(|e| e.outcome == "failure" && e.detail.contains(&format!("\"reason\":\"{reason}\"")))
        .count()
}

async fn a_stale_sign_in_cannot_set_up_2fa_after_the_member_did(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    // Someone who knows the password stops at "set up 2FA".
    let (stale, progress) = password_step(&app, DR).await;
    assert_eq!(progress["next"], "enroll");
    // The member signs in and sets up their own authenticator.
    let (uri, _, _) = enroll_at_sign_in(&app, DR).await;
    // The old sign-in is dead at every step: it can neither start nor finish setup.
    let (s, e) = post(&app, &format!("/api/v1/login/{stale}/enroll/authenticator"), json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("flow_expired")), "{e}");
    let (s, e) = post(
        &app,
        &format!("/api/v1/login/{stale}/enroll/authenticator/confirm"),
        json!({"code": otp::code(&uri, now(&app))}),
    )
    .await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("flow_expired")), "{e}");
    let kinds = app.audit_kinds().await;
    assert!(!kinds.iter().any(|(k, _)| k == "factor_replaced"), "{kinds:?}");
    // The member's own authenticator still signs in.
    app.clock.advance(30);
    let (s, done) = sign_in_with(&app, DR, None, &otp::code(&uri, now(&app))).await;
    assert_eq!(s, 200, "{done}");
}

async fn a_secret_shown_to_one_sign_in_is_never_shown_to_another(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (stale, _) = password_step(&app, DR).await;
    let (s, shown) = post(&app, &format!("/api/v1/login/{stale}/enroll/authenticator"), json!({})).await;
    assert_eq!(s, 200, "{shown}");
    let (uri, _, _) = enroll_at_sign_in(&app, DR).await;
    assert_ne!(
        shown["otpauth_uri"],
        Value::String(uri),
        "the member's secret is not the one shown to the other sign-in"
    );
}

async fn every_change_to_the_account_ends_its_sign_ins_in_flight(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let by = By::operator();
    let changes: [(&str, &str); 6] = [
        ("reset@riverside.test", "mfa_reset"),
        ("bypass@riverside.test", "bypass"),
        ("off@riverside.test", "deactivated"),
        ("revoked@riverside.test", "sessions_revoked"),
        ("password@riverside.test", "password_reset"),
        ("newphone@riverside.test", "factor_replaced"),
    ];
    for (email, change) in changes {
        let account = app.member(&org, email, Role::Provider).await;
        app.enroll_authenticator(&account).await;
        let (flow, progress) = password_step(&app, email).await;
        assert_eq!(progress["next"], "second_factor", "{progress}");
        match change {
            "mfa_reset" => {
                admin::reset_mfa(&app.state, &by, None, email, Some("called back")).await.unwrap();
            }
            "bypass" => {
                admin::grant_bypass(&app.state, &by, None, email).await.unwrap();
            }
            "deactivated" => {
                admin::set_status(&app.state, &by, None, email, AccountStatus::Deactivated).await.unwrap();
                admin::set_status(&app.state, &by, None, email, AccountStatus::Active).await.unwrap();
            }
            "sessions_revoked" => {
                admin::revoke_sessions(&app.state, &by, None, email).await.unwrap();
            }
            "password_reset" => {
                use clinic_auth_app::accounts;
                use clinic_auth_store::LinkPurpose;
                let link = accounts::password_reset_link(&app.state, &by, &account.id.to_string()).await.unwrap();
                let token = link.rsplit('/').next().unwrap().to_owned();
                let password = clinic_auth_core::Password::new("a brand new passphrase here".into());
                accounts::set_password_with_link(
                    &app.state,
                    &token,
                    LinkPurpose::PasswordReset,
                    password,
                    "a brand new passphrase here",
                    &Default::default(),
                )
                .await
                .unwrap();
            }
            _ => app.enroll_authenticator(&account).await,
        }
        app.clock.advance(30);
        let code = app.authenticator_code(email).unwrap();
        let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await;
        assert_eq!((s, e["error"]["code"].as_str()), (410, Some("flow_expired")), "after {change}: {e}");
    }
}

async fn concurrent_wrong_codes_are_never_checked_past_the_limits(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, _) = enroll_at_sign_in(&app, DR).await;
    let wrong = if otp::code(&uri, now(&app)) == "000000" { "111111" } else { "000000" };
    let hammer = |flows: Vec<String>, each: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        for flow in flows {
            for _ in 0..each {
                let (http, url) = (app.api(), app.url(&format!("/api/v1/login/{flow}/code")));
                tasks.spawn(async move {
                    http.post(url).json(&json!({"code": wrong})).send().await.unwrap().status().as_u16()
                });
            }
        }
        tasks
    };
    // 150 guesses at once on one sign-in: at most its 5 answers are checked.
    let (flow, _) = password_step(&app, DR).await;
    let statuses = hammer(vec![flow], 150).join_all().await;
    assert!(statuses.iter().all(|s| [401, 410, 429].contains(s)), "{statuses:?}");
    assert!(refusals(&app, "wrong_code").await <= 5, "checked {}", refusals(&app, "wrong_code").await);

    // 180 at once across 6 sign-ins: the member's lock (at the 6th failure) holds.
    app.clock.advance(16 * 60);
    let before = refusals(&app, "wrong_code").await;
    let mut flows = Vec::new();
    for _ in 0..6 {
        flows.push(password_step(&app, DR).await.0);
    }
    let statuses = hammer(flows, 30).join_all().await;
    assert!(statuses.iter().all(|s| [401, 410, 429].contains(s)), "{statuses:?}");
    let checked = refusals(&app, "wrong_code").await - before;
    assert!(checked <= 6, "checked {checked}");
    assert!(statuses.contains(&429), "the member was locked");
}

async fn one_authenticator_code_sent_eight_times_at_once_signs_in_once(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, _) = enroll_at_sign_in(&app, DR).await;
    app.clock.advance(30);
    let mut flows = Vec::new();
    for _ in 0..8 {
        flows.push(password_step(&app, DR).await.0);
    }
    let code = otp::code(&uri, now(&app));
    let mut tasks = tokio::task::JoinSet::new();
    for flow in flows {
        let (http, url) = (app.api(), app.url(&format!("/api/v1/login/{flow}/code")));
        let code = code.clone();
        tasks.spawn(async move { http.post(url).json(&json!({"code": code})).send().await.unwrap().status().as_u16() });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 401, 429].contains(s)), "{statuses:?}");
}

async fn one_recovery_code_sent_eight_times_at_once_signs_in_once(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (_, _, recovery) = enroll_at_sign_in(&app, DR).await;
    let mut flows = Vec::new();
    for _ in 0..8 {
        let (flow, _) = password_step(&app, DR).await;
        let (s, _) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "recovery_code"})).await;
        assert_eq!(s, 200);
        flows.push(flow);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for flow in flows {
        let (http, url) = (app.api(), app.url(&format!("/api/v1/login/{flow}/code")));
        let code = recovery.clone();
        tasks.spawn(async move { http.post(url).json(&json!({"code": code})).send().await.unwrap().status().as_u16() });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
}

async fn an_emailed_code_finishes_only_the_sign_in_that_asked_for_it(app: TestApp) {
    use crate::codes::{clinic, last_email_code};
    clinic(&app, "email").await;
    // Set up email codes, then sign in twice: A asks for a code, B switches to email.
    let (flow, _) = password_step(&app, DR).await;
    post(&app, &format!("/api/v1/login/{flow}/enroll/email"), json!({})).await;
    let setup = last_email_code(&app, 1).await;
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": setup})).await;
    assert_eq!(s, 200);
    app.clock.advance(60);
    let (a, progress) = password_step(&app, DR).await;
    assert_eq!(progress["method"], "email", "{progress}");
    let code_a = last_email_code(&app, 2).await;
    let (b, _) = password_step(&app, DR).await;
    post(&app, &format!("/api/v1/login/{b}/method"), json!({"method": "email"})).await;
    let (s, e) = post(&app, &format!("/api/v1/login/{b}/code"), json!({"code": code_a})).await;
    assert_ne!(s, 200, "A's code does not finish B: {e}");
    let (s, done) = post(&app, &format!("/api/v1/login/{a}/code"), json!({"code": code_a})).await;
    assert_eq!(s, 200, "A's code still finishes A: {done}");
}

async fn a_factor_locks_after_a_hundred_wrong_codes_in_a_row_until_another_is_proved(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, recovery) = enroll_at_sign_in(&app, DR).await;
    let wrong = |app: &TestApp| if otp::code(&uri, now(app)) == "000000" { "111111" } else { "000000" };
    // Slowly enough that no short lock ever applies: 5 a sign-in, one sign-in every
    // 16 minutes. Time alone never resets the count.
    for _ in 0..20 {
        app.clock.advance(16 * 60);
        let (flow, _) = password_step(&app, DR).await;
        for _ in 0..5 {
            let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong(&app)})).await;
            assert!([401, 410].contains(&s), "{e}");
        }
    }
    app.clock.advance(16 * 60);
    let (flow, _) = password_step(&app, DR).await;
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("factor_locked")), "the right code too: {e}");
    assert!(app.audit_kinds().await.iter().any(|(k, _)| k == "factor_locked"));
    let notices = app.smtp.messages();
    assert!(notices.iter().any(|m| m.subject().is_some_and(|s| s.contains("was locked"))), "the member is told");
    // Another factor unlocks it.
    let (s, done) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "recovery_code"})).await;
    assert_eq!(s, 200, "{done}");
    let (s, done) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": recovery})).await;
    assert_eq!(s, 200, "{done}");
    app.clock.advance(30);
    let (s, done) = sign_in_with(&app, DR, None, &otp::code(&uri, now(&app))).await;
    assert_eq!(s, 200, "{done}");
}

async fn a_factor_change_ends_the_other_sessions_but_not_the_one_that_made_it(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, first, _) = enroll_at_sign_in(&app, DR).await;
    app.clock.advance(30);
    let (s, second) = sign_in_with(&app, DR, None, &otp::code(&uri, now(&app))).await;
    assert_eq!(s, 200);
    let second = second["session_token"].as_str().unwrap().to_owned();
    // From the second session (just signed in with a factor), a new phone.
    let (s, setup) = app.post_json("/api/v1/me/mfa/authenticator", &second, json!({})).await;
    assert_eq!(s, 200, "{setup}");
    let new_uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    app.clock.advance(30);
    let (s, done) = app
        .post_json("/api/v1/me/mfa/authenticator/confirm", &second, json!({"code": otp::code(&new_uri, now(&app))}))
        .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(app.get_json("/api/v1/me", &second).await.0, 200, "the session that made the change stays");
    assert_eq!(app.get_json("/api/v1/me", &first).await.0, 401, "the other session ended");
    // An MFA reset by an admin ends every session of the member.
    admin::reset_mfa(&app.state, &By::operator(), None, DR, Some("called back")).await.unwrap();
    assert_eq!(app.get_json("/api/v1/me", &second).await.0, 401);
}

async fn showing_a_code_page_sends_nothing(app: TestApp) {
    use crate::codes::code_emails;
    use crate::harness::{PASSWORD, csrf_of};
    use clinic_auth_app::policy::{self, OrgMfaChange};
    use clinic_auth_core::MethodSet;
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let change = OrgMfaChange {
        enabled: Some(true),
        mode: Some(MfaMode::Optional),
        methods: Some(MethodSet::parse("email").unwrap()),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    app.member(&org, DR, Role::Provider).await;
    let b = app.browser();
    let text = |res: reqwest::Response| async move { res.text().await.unwrap() };
    let html = text(b.get(app.url("/login")).send().await.unwrap()).await;
    b.post(app.url("/login")).form(&[("csrf", csrf_of(&html).as_str()), ("email", DR)]).send().await.unwrap();
    let html = text(b.get(app.url("/login/password")).send().await.unwrap()).await;
    b.post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    // A link (or a prefetch, or a crawler) opening the page sends no code.
    for _ in 0..2 {
        let html = text(b.get(app.url("/account/2fa/setup?method=email")).send().await.unwrap()).await;
        assert!(html.contains("Send code"), "{html}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(code_emails(&app), 0);
    // "Send code" is a form: a POST with the session's CSRF token.
    let html = text(b.get(app.url("/account/2fa/setup?method=email")).send().await.unwrap()).await;
    let forged = b.post(app.url("/account/2fa/setup/resend")).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let res =
        b.post(app.url("/account/2fa/setup/resend")).form(&[("csrf", csrf_of(&html).as_str())]).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    crate::codes::last_email_code(&app, 1).await;
}

async fn a_method_the_clinic_removed_only_moves_the_member_to_an_allowed_one(app: TestApp) {
    use crate::codes::{clinic, last_sms_code};
    use clinic_auth_app::policy::{self, OrgMfaChange};
    use clinic_auth_core::MethodSet;
    let org = clinic(&app, "sms").await;
    // Dr. Lee sets up text codes; then the clinic allows authenticator apps only.
    let (flow, _) = password_step(&app, DR).await;
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/enroll/sms"), json!({"phone": "(201) 555-0123"})).await;
    assert_eq!(s, 200);
    let code = last_sms_code(&app, 1).await;
    let (s, done) = post(&app, &format!("/api/v1/login/{flow}/enroll/code/confirm"), json!({"code": code})).await;
    assert_eq!(s, 200, "{done}");
    let old_recovery = done["recovery_code"].as_str().unwrap().to_owned();
    let change = OrgMfaChange {
        enabled: None,
        mode: None,
        methods: Some(MethodSet::parse("authenticator").unwrap()),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    // The Users page tells the admin who is still on a method the clinic removed.
    let members = admin::list_members(&app.state, &By::operator(), org.id.as_str(), None).await.unwrap();
    let dr = members.iter().find(|m| m.account.email.as_str() == DR).unwrap();
    assert_eq!(dr.outside_allowed, vec![clinic_auth_core::FactorKind::Sms]);

    // The next sign-in proves the texted code once, and must set up an app before
    // any session exists.
    app.clock.advance(60);
    let (flow, progress) = password_step(&app, DR).await;
    assert_eq!(progress["method"], "sms", "{progress}");
    let code = last_sms_code(&app, 2).await;
    let (s, next) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await;
    assert_eq!(s, 200, "{next}");
    assert_eq!(next["next"], "enroll", "{next}");
    assert!(next.get("session_token").is_none(), "no session before an allowed method is set up");
    assert_eq!(next["allowed_methods"], json!(["authenticator"]));
    let (s, setup) = post(&app, &format!("/api/v1/login/{flow}/enroll/authenticator"), json!({})).await;
    assert_eq!(s, 200);
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let (s, done) = post(
        &app,
        &format!("/api/v1/login/{flow}/enroll/authenticator/confirm"),
        json!({"code": otp::code(&uri, now(&app))}),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert!(done["session_token"].is_string());
    let new_recovery = done["recovery_code"].as_str().expect("a new recovery code, shown once").to_owned();
    assert_ne!(new_recovery, old_recovery);

    // The texted codes are gone (audited), and sign-in asks for the app.
    let removed = app.audit_of(Some("factor_removed"), 100).await;
    assert!(removed.iter().any(|e| e.detail.contains("\"method\":\"sms\"") && e.detail.contains("method_not_allowed")));
    app.clock.advance(30);
    let (flow, progress) = password_step(&app, DR).await;
    assert_eq!(progress["method"], "authenticator", "{progress}");
    assert!(!progress["other_methods"].as_array().unwrap().contains(&json!("sms")), "{progress}");
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "sms"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("method_unavailable")), "{e}");
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": old_recovery})).await;
    assert_ne!(s, 200, "the old recovery code was replaced: {e}");
}

/// The step-up gate is one rule at every door. An account whose factors are gone but
/// whose recovery code is still stored proves that code before setting up 2FA from a
/// session, as the admin console always asked: the API's and account page's copies of
/// the gate looked at factors only, so whoever held the session could enrol their own
/// authenticator app without proving anything.
async fn a_recovery_code_alone_is_still_proved_before_a_2fa_change(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Optional).await;
    let member = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse(DR).unwrap())
        .await
        .unwrap()
        .unwrap();
    let token = app.token("staff", DR).await;
    let code = clinic_auth_core::RecoveryCode::generate();
    let event = clinic_auth_app::audit_event(
        &app.state,
        clinic_auth_core::audit::Event::RecoveryCodeReplaced,
        &Default::default(),
    );
    let at = clinic_auth_core::UnixTime(now(&app));
    assert!(app.state.store.replace_recovery_code(member.id, None, &code.hash(), at, &event).await.unwrap());
    let (s, v) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("step_up_required")), "{}", v["error"]);
    // Proving the recovery code opens the gate.
    let (s, v) = app
        .post_json("/api/v1/me/mfa/verify", &token, json!({"method": "recovery_code", "code": code.display()}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!(s, 200, "{}", v["error"]);
}

/// A sign-in that gets past the password and fails the second factor to the limit
/// tells the member ("someone may know your password"), once a day.
async fn a_password_used_without_the_second_factor_is_reported_once_a_day(app: TestApp) {
    let org = app.org("Riverside", clinic_auth_core::OrgKind::Clinic).await;
    let dr = app.member(&org, DR, Role::Provider).await;
    app.enroll_authenticator(&dr).await;
    let wait = std::time::Duration::from_secs(5);
    let before = app.smtp.messages().len();
    let known = |app: &TestApp| {
        app.smtp.messages().iter().filter(|m| m.subject().is_some_and(|s| s.contains("may know your"))).count()
    };
    // Wrong codes until the sign-in ends: one email, with when and from where.
    let fail_a_sign_in = || async {
        let started: Value = app.start_login("staff", DR).await.json().await.unwrap();
        let flow = started["flow_id"].as_str().unwrap().to_owned();
        assert_eq!(app.submit_password(&flow, crate::harness::PASSWORD).await.status(), 200);
        let path = format!("/api/v1/login/{flow}/code");
        for _ in 0..clinic_auth_core::login_flow::MAX_CODE_ATTEMPTS_PER_FLOW {
            app.post_anonymous(&path, json!({"code": "000000"})).await;
        }
        let (s, v) = app.post_anonymous(&path, json!({"code": "000000"})).await;
        assert_eq!(s, 410, "the sign-in is over: {v}");
    };
    assert_eq!(known(&app), 0);
    fail_a_sign_in().await;
    app.smtp.wait_for(before + 1, wait).await;
    assert_eq!(known(&app), 1);
    let mail =
        app.smtp.messages().into_iter().find(|m| m.subject().is_some_and(|s| s.contains("may know your"))).unwrap();
    let body = mail.text_body().unwrap();
    assert!(body.contains("127.0.0.1") && body.contains("Forgot your password?"), "{body}");
    assert!(!body.contains("000000"), "never the code tried");
    // Again the same day (once the member's lockout window is over, so that this
    // sign-in too fails to its limit): no second email; the next day: one more.
    app.clock.advance(16 * 60);
    fail_a_sign_in().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(known(&app), 1, "once a day");
    app.clock.advance(24 * 3600 + 1);
    fail_a_sign_in().await;
    for _ in 0..50 {
        if known(&app) == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(known(&app), 2, "a day later, it is reported again");
}

/// A sign-in that gets past the password and is left at the second factor until it
/// expires is on the trail and tells the member, unless they signed in since it began
/// (a member who started on one device and finished on another).
async fn a_sign_in_abandoned_at_the_second_factor_is_reported_unless_the_member_signed_in_since(app: TestApp) {
    let org = app.org("Riverside", clinic_auth_core::OrgKind::Clinic).await;
    let dr = app.member(&org, DR, Role::Provider).await;
    app.enroll_authenticator(&dr).await;
    let known = |app: &TestApp| {
        app.smtp
            .messages()
            .into_iter()
            .filter(|m| m.subject().is_some_and(|s| s.contains("may know your")))
            .collect::<Vec<_>>()
    };
    let abandoned = || async {
        let events = app.audit_of(Some("sign_in"), 1000).await;
        events.into_iter().filter(|e| e.detail.contains("second_factor_abandoned")).collect::<Vec<_>>()
    };
    let abandon_a_sign_in = || async {
        let started: Value = app.start_login("staff", DR).await.json().await.unwrap();
        let flow = started["flow_id"].as_str().unwrap().to_owned();
        let res = app.submit_password(&flow, crate::harness::PASSWORD).await;
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["next"], "second_factor", "{v}");
    };

    abandon_a_sign_in().await;
    // Not yet expired: nothing is reported.
    app.state.purge_expired().await.unwrap();
    assert!(abandoned().await.is_empty());
    app.clock.advance(clinic_auth_core::login_flow::FLOW_LIFETIME_SECS + 1);
    app.state.purge_expired().await.unwrap();
    let events = abandoned().await;
    assert_eq!(events.len(), 1, "one event for the abandoned sign-in");
    assert_eq!(events[0].subject_id.as_deref(), Some(dr.id.to_string().as_str()));
    assert_eq!(events[0].client_ip, "127.0.0.1", "from where the password was typed");
    for _ in 0..50 {
        if !known(&app).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mails = known(&app);
    assert_eq!(mails.len(), 1);
    let body = mails[0].text_body().unwrap();
    assert!(body.contains("127.0.0.1") && body.contains("never finished"), "{body}");
    // Purging again finds nothing new: each abandoned sign-in is reported once.
    app.state.purge_expired().await.unwrap();
    assert_eq!(abandoned().await.len(), 1);

    // A day later: abandoned, then the member signs in (another device): recorded, no email.
    app.clock.advance(24 * 3600 + 1);
    abandon_a_sign_in().await;
    app.clock.advance(60);
    app.token("staff", DR).await;
    app.clock.advance(clinic_auth_core::login_flow::FLOW_LIFETIME_SECS + 1);
    app.state.purge_expired().await.unwrap();
    assert_eq!(abandoned().await.len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(known(&app).len(), 1, "the member signed in since: no email");
}

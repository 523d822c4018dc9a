//! Second factor, part 1: policy, authenticator apps, recovery codes, the MFA sign-in.

use clinic_auth_app::By;
use clinic_auth_app::policy::{self, OrgMfaChange};
use clinic_auth_core::{MemberOverride, MfaMode, OrgKind, Role};
use clinic_auth_store::Org;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{Options, PASSWORD, TestApp, csrf_of};
use crate::otp;

both_stores!(
    mandatory_clinic_sends_member_without_factor_to_setup,
    optional_org_members_opt_in_and_out,
    member_overrides_beat_the_clinic_default,
    replayed_code_is_rejected,
    codes_two_steps_away_are_rejected,
    recovery_code_signs_in_once_and_rotates,
    repeated_wrong_codes_lock_the_flow_and_the_member,
    re_enrolling_invalidates_the_old_secret,
    policy_changes_follow_roles_and_rules,
    secrets_are_sealed_and_hashed_at_rest,
    patients_are_untouched_by_staff_policy,
    mfa_sign_in_works_through_the_pages,
    a_shown_qr_code_expires_after_fifteen_minutes,
    a_code_costs_one_read_and_one_write,
);

pub(crate) async fn set_mode(app: &TestApp, org: &Org, mode: MfaMode) {
    let change = OrgMfaChange { enabled: Some(true), mode: Some(mode), methods: None, grace_days: None };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
}

pub(crate) fn now(app: &TestApp) -> i64 {
    use clinic_auth_core::Clock;
    app.clock.now().0
}

/// Signs in through email and password; returns (flow id, progress).
pub(crate) async fn password_step(app: &TestApp, email: &str) -> (String, Value) {
    let started: Value = app.start_login("staff", email).await.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap().to_owned();
    let res = app.submit_password(&flow, PASSWORD).await;
    assert_eq!(res.status(), 200);
    (flow, res.json().await.unwrap())
}

pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.api().post(app.url(path)).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sign-in that ends in authenticator setup; returns (otpauth URI, session token, recovery code).
pub(crate) async fn enroll_at_sign_in(app: &TestApp, email: &str) -> (String, String, String) {
    let (flow, progress) = password_step(app, email).await;
    assert_eq!(progress["next"], "enroll", "{progress}");
    assert!(progress.get("session_token").is_none(), "no session before setup completes");
    let (s, setup) = post(app, &format!("/api/v1/login/{flow}/enroll/authenticator"), json!({})).await;
    assert_eq!(s, 200, "{setup}");
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let (s, done) = post(
        app,
        &format!("/api/v1/login/{flow}/enroll/authenticator/confirm"),
        json!({"code": otp::code(&uri, now(app))}),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["next"], "done");
    (uri, done["session_token"].as_str().unwrap().to_owned(), done["recovery_code"].as_str().unwrap().to_owned())
}

/// A full sign-in with a code; returns the response of the code step.
pub(crate) async fn sign_in_with(app: &TestApp, email: &str, method: Option<&str>, code: &str) -> (u16, Value) {
    let (flow, progress) = password_step(app, email).await;
    assert_eq!(progress["next"], "second_factor", "{progress}");
    if let Some(m) = method {
        let (s, p) = post(app, &format!("/api/v1/login/{flow}/method"), json!({"method": m})).await;
        assert_eq!((s, p["method"].as_str()), (200, Some(m)));
    }
    post(app, &format!("/api/v1/login/{flow}/code"), json!({"code": code})).await
}

pub(crate) async fn clinic_with_member(app: &TestApp) -> Org {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    org
}

async fn mandatory_clinic_sends_member_without_factor_to_setup(app: TestApp) {
    let org = clinic_with_member(&app).await;
    // Before Mandatory 2FA the password is enough.
    assert_eq!(password_step(&app, "dr.lee@riverside.test").await.1["next"], "done");
    set_mode(&app, &org, MfaMode::Required).await;
    let (flow, progress) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(progress["next"], "enroll");
    assert_eq!(progress["allowed_methods"], json!(["authenticator"]));
    // The flow cannot skip setup by asking for a code step.
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": "123456"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("flow_expired")), "{e}");

    let (uri, token, recovery) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    assert!(uri.starts_with("otpauth://totp/Riverside%20Clinic:dr.lee%40riverside.test?secret="), "{uri}");
    assert!(uri.ends_with("&issuer=Riverside%20Clinic&algorithm=SHA1&digits=6&period=30"), "{uri}");
    assert_eq!(otp::secret_of(&uri).len(), 20, "160-bit secret");
    assert_eq!(recovery.len(), 29, "{recovery}");
    let (s, status) = app.get_json("/api/v1/me/mfa", &token).await;
    assert_eq!(s, 200);
    assert_eq!(status["enabled"], true);
    assert_eq!(status["required"], true);
    assert_eq!(status["may_turn_off"], false);
    // Next time: the authenticator is the default, the recovery code the other method.
    app.clock.advance(30);
    let (flow, progress) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(progress["next"], "second_factor");
    assert_eq!(progress["method"], "authenticator");
    assert_eq!(progress["other_methods"], json!(["recovery_code"]));
    let (s, done) =
        post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!(s, 200, "{done}");
    assert!(done.get("recovery_code").is_none());
    let kinds = app.audit_kinds().await;
    assert!(kinds.contains(&("factor_enrolled".into(), "success".into())));
    assert!(kinds.contains(&("org_mfa_changed".into(), "success".into())));
    assert!(kinds.contains(&("second_factor".into(), "success".into())));
}

async fn optional_org_members_opt_in_and_out(app: TestApp) {
    let org = clinic_with_member(&app).await;
    let token = app.token("staff", "dr.lee@riverside.test").await;
    let (_, status) = app.get_json("/api/v1/me/mfa", &token).await;
    assert_eq!(
        (status["enabled"].as_bool(), status["may_opt_in"].as_bool()),
        (Some(false), Some(false)),
        "MFA not enabled yet"
    );
    let (s, e) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("mfa_not_enabled")));

    set_mode(&app, &org, MfaMode::Optional).await;
    let (_, status) = app.get_json("/api/v1/me/mfa", &token).await;
    assert_eq!(status["may_opt_in"], true);
    let (s, setup) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!(s, 200);
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let (s, e) = app.post_json("/api/v1/me/mfa/authenticator/confirm", &token, json!({"code": "000000"})).await;
    assert_eq!(s, 401, "setup completes only after a correct code: {e}");
    let (s, enrolled) = app
        .post_json("/api/v1/me/mfa/authenticator/confirm", &token, json!({"code": otp::code(&uri, now(&app))}))
        .await;
    assert_eq!(s, 200);
    assert!(enrolled["recovery_code"].is_string());
    // Opted in: always challenged from now on.
    app.clock.advance(30);
    let (_, progress) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(progress["next"], "second_factor");
    // Turning off needs a recent second factor.
    app.clock.advance(11 * 60);
    let token = {
        let (s, done) = sign_in_with(&app, "dr.lee@riverside.test", None, &otp::code(&uri, now(&app))).await;
        assert_eq!(s, 200);
        done["session_token"].as_str().unwrap().to_owned()
    };
    app.clock.advance(11 * 60);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200);
    let res = app.api().delete(app.url("/api/v1/me/mfa")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "step_up_required");
    let (s, _) = app.post_json("/api/v1/me/mfa/verify", &token, json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!(s, 200);
    let res = app.api().delete(app.url("/api/v1/me/mfa")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(password_step(&app, "dr.lee@riverside.test").await.1["next"], "done", "opted out");
    assert!(app.audit_kinds().await.contains(&("factor_removed".into(), "success".into())));
    // The member hears of it at their registered address.
    let told = |subject: &'static str| {
        app.smtp.messages().into_iter().any(|m| {
            m.header("To").as_deref() == Some("dr.lee@riverside.test") && m.subject().as_deref() == Some(subject)
        })
    };
    assert!(told("A sign-in method was added to your Riverside Clinic account"));
    assert!(told("A sign-in method was removed from your Riverside Clinic account"));
}

async fn member_overrides_beat_the_clinic_default(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "admin@riverside.test", Role::Admin).await;
    app.member(&org, "nurse@riverside.test", Role::Staff).await;
    app.member(&org, "locum@riverside.test", Role::Provider).await;
    let admin = app.token("staff", "admin@riverside.test").await;
    let path = format!("/api/v1/orgs/{}/mfa", org.id);
    // An admin cannot turn MFA on for the organization; platform support does.
    let res = app.api().put(app.url(&path)).bearer_auth(&admin).json(&json!({"enabled": true})).send().await.unwrap();
    assert_eq!(res.status(), 403);
    set_mode(&app, &org, MfaMode::Off).await;
    let put = |who: &str, value: &str| {
        let (c, url, t) = (app.api(), app.url(&format!("/api/v1/orgs/{}/members/{who}/mfa", org.id)), admin.clone());
        let body = json!({"override": value});
        async move { c.put(url).bearer_auth(t).json(&body).send().await.unwrap() }
    };
    let res = put("nurse@riverside.test", "required").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["mfa_override"], "required");
    assert_eq!(password_step(&app, "nurse@riverside.test").await.1["next"], "enroll", "required beats mode off");
    assert_eq!(password_step(&app, "locum@riverside.test").await.1["next"], "done");

    // Mandatory 2FA, with one member exempted.
    let res =
        app.api().put(app.url(&path)).bearer_auth(&admin).json(&json!({"mode": "required"})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(put("locum@riverside.test", "not_required").await.status(), 200);
    assert_eq!(password_step(&app, "locum@riverside.test").await.1["next"], "done", "not_required beats Mandatory 2FA");
    assert_eq!(password_step(&app, "admin@riverside.test").await.1["next"], "enroll");
    assert_eq!(put("nobody@riverside.test", "required").await.status(), 404);
    assert_eq!(put("locum@riverside.test", "sometimes").await.status(), 400);
    let via_cli = policy::set_member_override(
        &app.state,
        &By::operator(),
        org.id.as_str(),
        "locum@riverside.test",
        MemberOverride::ClinicDefault,
    )
    .await
    .unwrap();
    assert_eq!(via_cli.mfa_override, MemberOverride::ClinicDefault);
    assert_eq!(password_step(&app, "locum@riverside.test").await.1["next"], "enroll");
    assert!(app.audit_kinds().await.contains(&("member_mfa_override_changed".into(), "success".into())));
}

async fn replayed_code_is_rejected(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, _) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    // The code that confirmed setup cannot sign in again in the same step.
    let same = otp::code(&uri, now(&app));
    let (s, e) = sign_in_with(&app, "dr.lee@riverside.test", None, &same).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("code_already_used")), "{e}");
    app.clock.advance(30);
    let next = otp::code(&uri, now(&app));
    assert_eq!(sign_in_with(&app, "dr.lee@riverside.test", None, &next).await.0, 200);
    let (s, e) = sign_in_with(&app, "dr.lee@riverside.test", None, &next).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("code_already_used")));
    // Nor can a code from an earlier step that is still inside the window.
    let earlier = otp::code(&uri, now(&app) - 30);
    assert_eq!(sign_in_with(&app, "dr.lee@riverside.test", None, &earlier).await.0, 401);
    // The store itself refuses a step already used, so two processes racing with one
    // code cannot both win.
    let account = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse("dr.lee@riverside.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let factor = app.state.store.list_factors(account.id).await.unwrap().remove(0);
    let used = factor.last_used_step.unwrap();
    let proved = clinic_auth_core::audit::Event::SecondFactorProved {
        method: clinic_auth_core::FactorKind::Authenticator,
        purpose: clinic_auth_core::Purpose::SignIn,
        passkey_id: None,
    };
    let event = clinic_auth_app::audit_event(&app.state, proved, &Default::default());
    let at = app.state.now();
    assert!(!app.state.store.use_totp_step(&factor.id, used, at, &event).await.unwrap(), "same step twice");
    assert!(!app.state.store.use_totp_step(&factor.id, used - 1, at, &event).await.unwrap(), "an older step");
    // Spaces and dashes are fine in a fresh code.
    app.clock.advance(30);
    let fresh = otp::code(&uri, now(&app));
    let spaced = format!("{} {}", &fresh[..3], &fresh[3..]);
    assert_eq!(sign_in_with(&app, "dr.lee@riverside.test", None, &spaced).await.0, 200);
}

async fn codes_two_steps_away_are_rejected(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, _) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    app.clock.advance(120);
    let t = now(&app);
    for off in [-60, 60, 90] {
        let (s, e) = sign_in_with(&app, "dr.lee@riverside.test", None, &otp::code(&uri, t + off)).await;
        assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_code")), "offset {off}");
    }
    // One step either side is network delay, and accepted.
    assert_eq!(sign_in_with(&app, "dr.lee@riverside.test", None, &otp::code(&uri, t + 30)).await.0, 200);
    let (s, e) = sign_in_with(&app, "dr.lee@riverside.test", None, "12345").await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_code")));
}

async fn recovery_code_signs_in_once_and_rotates(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (_, _, first) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    let typed = first.to_lowercase().replace('-', " ");
    let (s, done) = sign_in_with(&app, "dr.lee@riverside.test", Some("recovery_code"), &typed).await;
    assert_eq!(s, 200, "{done}");
    let second = done["recovery_code"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "using the code issues a new one");
    let (s, e) = sign_in_with(&app, "dr.lee@riverside.test", Some("recovery_code"), &first).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_code")), "the used code never works again");
    assert_eq!(sign_in_with(&app, "dr.lee@riverside.test", Some("recovery_code"), &second).await.0, 200);
    let (flow, _) = password_step(&app, "dr.lee@riverside.test").await;
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/method"), json!({"method": "sms"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("method_unavailable")));
    assert!(app.audit_kinds().await.contains(&("recovery_code_used".into(), "success".into())));
    let notices = app
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.subject().as_deref() == Some("Your Riverside Clinic recovery code was used"))
        .count();
    assert_eq!(notices, 2, "one notice for each use of a recovery code");
}

async fn repeated_wrong_codes_lock_the_flow_and_the_member(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, _) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    app.clock.advance(30);
    let wrong = if otp::code(&uri, now(&app)) == "111111" { "222222" } else { "111111" };
    let (flow, _) = password_step(&app, "dr.lee@riverside.test").await;
    for i in 0..4 {
        let (s, _) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await;
        assert_eq!(s, 401, "attempt {i}");
    }
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("flow_expired")), "five wrong codes end the sign-in");
    // The member's own counter goes on across sign-ins: the sixth failure locks.
    let (flow, _) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 401);
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (429, Some("too_many_attempts")), "locked even with the right code");
    assert!(e["error"]["message"].as_str().unwrap().contains("try again in"));
    // Hammering a locked member writes nothing: the refusals are counted in memory
    // and recorded as one event when the lock period ends.
    let failures = |kinds: Vec<(String, String)>| {
        kinds.into_iter().filter(|(k, o)| k == "second_factor" && o == "failure").count()
    };
    let written = app.audit_kinds().await.len();
    for _ in 0..29 {
        assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 429);
    }
    assert_eq!(app.audit_kinds().await.len(), written, "refusals while locked write no event each");
    assert_eq!(app.state.locked_refusals.unwritten(), 30);
    app.state.flush_locked_refusals(false).await;
    assert_eq!(app.audit_kinds().await.len(), written, "the lock period is not over");
    app.clock.advance(60);
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!(s, 200);
    assert_eq!(failures(app.audit_kinds().await), 6, "each wrong code is audited at once");
    app.state.flush_locked_refusals(false).await;
    assert_eq!(failures(app.audit_kinds().await), 7, "and the lock period as one event");
    assert_eq!(app.state.locked_refusals.unwritten(), 0);
    let period = app.audit_of(Some("second_factor"), 1).await.remove(0);
    let detail: serde_json::Value = serde_json::from_str(&period.detail).unwrap();
    assert_eq!((detail["reason"].as_str(), detail["refusals"].as_u64()), (Some("locked"), Some(30)), "{detail}");
    assert!(detail["last_at"].as_i64().is_some(), "{detail}");
}

async fn re_enrolling_invalidates_the_old_secret(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (old_uri, token, recovery) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    app.clock.advance(11 * 60);
    let (s, e) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("step_up_required")),
        "a new phone needs a current code first"
    );
    let (s, v) =
        app.post_json("/api/v1/me/mfa/verify", &token, json!({"method": "recovery_code", "code": recovery})).await;
    assert_eq!(s, 200, "old phone lost: the recovery code proves it's them");
    assert!(v["recovery_code"].is_string(), "and is replaced");
    let (s, setup) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!(s, 200);
    let new_uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    assert_ne!(otp::secret_of(&new_uri), otp::secret_of(&old_uri));
    let (s, enrolled) = app
        .post_json("/api/v1/me/mfa/authenticator/confirm", &token, json!({"code": otp::code(&new_uri, now(&app))}))
        .await;
    assert_eq!(s, 200, "{enrolled}");
    assert!(enrolled.get("recovery_code").is_none(), "replacing the app keeps the recovery code");
    app.clock.advance(30);
    let t = now(&app);
    let (s, e) = sign_in_with(&app, "dr.lee@riverside.test", None, &otp::code(&old_uri, t)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_code")), "the old phone's codes stop at once");
    assert_eq!(sign_in_with(&app, "dr.lee@riverside.test", None, &otp::code(&new_uri, t)).await.0, 200);
    let (_, status) = app.get_json("/api/v1/me/mfa", &token).await;
    assert_eq!(status["factors"].as_array().unwrap().len(), 1);
    assert!(app.audit_kinds().await.contains(&("factor_replaced".into(), "success".into())));
}

async fn policy_changes_follow_roles_and_rules(app: TestApp) {
    let clinic = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let solo = app.org("Dr Ng", OrgKind::Solo).await;
    let other = app.org("Hillside Clinic", OrgKind::Clinic).await;
    app.member(&clinic, "admin@riverside.test", Role::Admin).await;
    app.member(&clinic, "doc@riverside.test", Role::Provider).await;
    let admin = app.token("staff", "admin@riverside.test").await;
    let doc = app.token("staff", "doc@riverside.test").await;
    let put = |path: String, token: String, body: Value| {
        let (c, url) = (app.api(), app.url(&path));
        async move {
            let res = c.put(url).bearer_auth(token).json(&body).send().await.unwrap();
            let s = res.status().as_u16();
            (s, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, e) = put(format!("/api/v1/orgs/{}/mfa", clinic.id), admin.clone(), json!({"mode": "required"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("mfa_not_enabled")));
    policy::set_org_mfa(
        &app.state,
        &By::operator(),
        clinic.id.as_str(),
        OrgMfaChange { enabled: Some(true), ..Default::default() },
    )
    .await
    .unwrap();
    let (s, _) = put(format!("/api/v1/orgs/{}/mfa", clinic.id), doc.clone(), json!({"mode": "required"})).await;
    assert_eq!(s, 403, "providers do not set policy");
    // Not even an empty change: it would write a policy event in the provider's name.
    let before = app.audit_kinds().await.iter().filter(|(k, _)| k == "org_mfa_changed").count();
    let (s, _) = put(format!("/api/v1/orgs/{}/mfa", clinic.id), doc.clone(), json!({})).await;
    assert_eq!(s, 403, "a provider's empty change is refused too");
    let (s, e) = put(format!("/api/v1/orgs/{}/mfa", clinic.id), admin.clone(), json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("nothing_to_change")), "{e}");
    let after = app.audit_kinds().await.iter().filter(|(k, _)| k == "org_mfa_changed").count();
    assert_eq!(before, after, "no policy event for a change that changed nothing");
    let (s, e) = put(format!("/api/v1/orgs/{}/mfa", other.id), admin.clone(), json!({"mode": "required"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, e) =
        put(format!("/api/v1/orgs/{}/mfa", clinic.id), admin.clone(), json!({"methods": ["carrier-pigeon"]})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_policy")));
    let (s, e) =
        put(format!("/api/v1/orgs/{}/mfa", clinic.id), admin.clone(), json!({"mode": "optional", "methods": []})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_policy")), "{e}");
    let (s, org) = put(format!("/api/v1/orgs/{}/mfa", clinic.id), admin.clone(), json!({"mode": "required"})).await;
    assert_eq!((s, org["mfa"]["mode"].as_str()), (200, Some("required")));
    let err = policy::set_org_mfa(
        &app.state,
        &By::operator(),
        solo.id.as_str(),
        OrgMfaChange { enabled: Some(true), mode: Some(MfaMode::Required), methods: None, grace_days: None },
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.kind,
        clinic_auth_app::ErrorKind::InvalidPolicy,
        "Mandatory 2FA is for clinics; solo providers opt in"
    );
    // Support turning MFA off stops forcing setup.
    policy::set_org_mfa(
        &app.state,
        &By::operator(),
        clinic.id.as_str(),
        OrgMfaChange { enabled: Some(false), ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(password_step(&app, "doc@riverside.test").await.1["next"], "done");
}

async fn secrets_are_sealed_and_hashed_at_rest(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, recovery) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    let secret = otp::secret_of(&uri);
    let account = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse("dr.lee@riverside.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let factors = app.state.store.list_factors(account.id).await.unwrap();
    let sealed = factors[0].secret.clone().unwrap();
    assert!(
        !sealed.ciphertext.windows(secret.len()).any(|w| w == secret.as_slice()),
        "TOTP secret not stored in the clear"
    );
    assert_eq!(sealed.nonce.len(), 12);
    let stored = app.state.store.recovery_code_hash(account.id).await.unwrap().unwrap();
    assert_eq!(stored.len(), 64, "SHA-256 hex");
    assert!(!stored.contains(&recovery.replace('-', "")));
    // The audit trail never holds the secret or the codes.
    let events = app.audit_of(None, 1000).await;
    let b32 = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    for e in events {
        assert!(!e.detail.contains(&b32) && !e.detail.contains(&recovery), "{}", e.detail);
    }
}

async fn patients_are_untouched_by_staff_policy(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    set_mode(&app, &org, MfaMode::Required).await;
    let res = app.api_login("patient", "pat@example.test", PASSWORD).await;
    let done = res.json::<Value>().await.unwrap();
    assert_eq!(done["next"], "done", "Mandatory 2FA is for staff: {done}");

    // A patient may turn on an authenticator for their own account…
    let token = done["session_token"].as_str().unwrap().to_owned();
    let (s, setup) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!(s, 200, "{setup}");
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let (s, v) = app
        .post_json("/api/v1/me/mfa/authenticator/confirm", &token, json!({"code": otp::code(&uri, now(&app))}))
        .await;
    assert_eq!(s, 200, "{v}");
    // …and from then on signs in with it (and can turn it off again, nothing requires it).
    let res = app.api_login("patient", "pat@example.test", PASSWORD).await;
    let progress = res.json::<Value>().await.unwrap();
    assert_eq!(
        (progress["next"].as_str(), progress["method"].as_str()),
        (Some("second_factor"), Some("authenticator"))
    );
    let (_, status) = app.get_json("/api/v1/me/mfa", &token).await;
    assert_eq!(status["may_turn_off"], true, "{status}");
}

async fn mfa_sign_in_works_through_the_pages(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let b = app.browser();
    let location =
        |r: &reqwest::Response| r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let sign_in = |b: reqwest::Client| {
        let app = &app;
        async move {
            let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
            b.post(app.url("/login"))
                .form(&[("csrf", csrf_of(&html).as_str()), ("email", "dr.lee@riverside.test")])
                .send()
                .await
                .unwrap();
            let html = b.get(app.url("/login/password")).send().await.unwrap().text().await.unwrap();
            b.post(app.url("/login/password"))
                .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
                .send()
                .await
                .unwrap()
        }
    };
    let res = sign_in(b.clone()).await;
    assert_eq!(location(&res), "/login/setup");
    assert_eq!(location(&b.get(app.url("/account")).send().await.unwrap()), "/login", "no session during setup");
    let html = b.get(app.url("/login/setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<svg") && html.contains("Trouble scanning?") && html.contains("Enable 2FA"));
    assert!(html.contains("autocomplete=\"one-time-code\"") && html.contains("inputmode=\"numeric\""));
    let key: String = html.split("id=\"setup-key\">").nth(1).unwrap().split('<').next().unwrap().replace(' ', "");
    assert_eq!(key.len(), 32);
    let uri = format!("otpauth://totp/x?secret={key}");
    let res = b
        .post(app.url("/login/setup"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", "000000")])
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("That code didn"));
    let html = b.get(app.url("/login/setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&key.chars().take(4).collect::<String>()), "a reload shows the same key");
    let res = b
        .post(app.url("/login/setup"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", &otp::code(&uri, now(&app)))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Save your recovery code"));
    let recovery = page.split("id=\"recovery-code\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 200, "signed in after setup");

    let b = app.browser();
    let res = sign_in(b.clone()).await;
    assert_eq!(location(&res), "/login/verify");
    let html = b.get(app.url("/login/verify")).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Enter the 6-digit code from your authenticator app.") && html.contains("Try another method")
    );
    let html = b.get(app.url("/login/methods")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Recovery code"));
    let res = b
        .post(app.url("/login/methods"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("method", "recovery_code")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/login/verify");
    let html = b.get(app.url("/login/verify")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Recovery code"));
    let res = b
        .post(app.url("/login/verify"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", recovery.as_str())])
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(page.contains("Save your recovery code") && !page.contains(&recovery), "a new code, not the used one");
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Two-factor authentication is <strong>on</strong>"));
    assert!(!html.contains("Turn off two-factor authentication"), "Mandatory 2FA: no way to turn it off");
}

async fn a_shown_qr_code_expires_after_fifteen_minutes(app: TestApp) {
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Optional).await;
    let token = app.token("staff", "dr.lee@riverside.test").await;
    let (_, first) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    let uri = first["otpauth_uri"].as_str().unwrap().to_owned();
    // Reloading within the window shows the same secret (a scanned code stays good).
    app.clock.advance(5 * 60);
    let (_, again) = app.post_json("/api/v1/me/mfa/authenticator", &token, json!({})).await;
    assert_eq!(again["otpauth_uri"], first["otpauth_uri"]);
    app.clock.advance(10 * 60);
    let (s, e) = app
        .post_json("/api/v1/me/mfa/authenticator/confirm", &token, json!({"code": otp::code(&uri, now(&app))}))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (410, Some("setup_expired")), "{e}");
}

/// The store calls of the requests just made, without the background loops' own.
fn store_calls(app: &TestApp) -> Vec<&'static str> {
    let calls = app.recorder.as_ref().expect("a recording store").take_calls();
    calls.into_iter().filter(|c| !matches!(*c, "due_logouts" | "purge_expired")).collect()
}

async fn a_code_costs_one_read_and_one_write(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, Options { record_store: true, ..Default::default() }).await.unwrap();
    let org = clinic_with_member(&app).await;
    set_mode(&app, &org, MfaMode::Required).await;
    let (uri, _, _) = enroll_at_sign_in(&app, "dr.lee@riverside.test").await;
    app.clock.advance(30);
    let (flow, _) = password_step(&app, "dr.lee@riverside.test").await;
    store_calls(&app);
    // A right code: everything read at once, everything settled at once (the step, the
    // flow's end, the session, the audit events).
    let (s, done) =
        post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!((s, done["next"].as_str()), (200, Some("done")), "{done}");
    assert_eq!(store_calls(&app), ["load_answer", "accept_answer"]);
    // A wrong code: one read, one write that counts it everywhere.
    app.clock.advance(30);
    let wrong = if otp::code(&uri, now(&app)) == "111111" { "222222" } else { "111111" };
    let (flow, _) = password_step(&app, "dr.lee@riverside.test").await;
    store_calls(&app);
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 401);
    assert_eq!(store_calls(&app), ["load_answer", "refuse_answer"]);
    // Locked: a read and nothing else.
    for _ in 0..3 {
        assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 401);
    }
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 410);
    let (flow, _) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 401);
    store_calls(&app);
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0, 429);
    assert_eq!(store_calls(&app), ["load_answer"]);
    // The same sign-in again while the lock is on: refused from memory, no store call.
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (429, Some("too_many_attempts")));
    assert_eq!(store_calls(&app), Vec::<&str>::new());
    assert_eq!(app.state.locked_refusals.unwritten(), 2);
    // An admin's unlock lets that very sign-in go on.
    clinic_auth_app::admin::unlock(&app.state, &By::operator(), None, "dr.lee@riverside.test").await.unwrap();
    let (s, done) =
        post(&app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!((s, done["next"].as_str()), (200, Some("done")), "{done}");
}

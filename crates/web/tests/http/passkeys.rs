//! Second factor, part 3: passkeys on trusted devices, through the JSON ceremonies,
//! answered by webauthn-authenticator-rs's software passkey (real P-256 keys, real
//! CBOR attestation and assertion signatures).

use clinic_auth_app::By;
use clinic_auth_app::policy::{self, OrgMfaChange};
use clinic_auth_core::{MfaMode, OrgKind, Role};
use clinic_auth_store::Org;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp, csrf_of, passkey_origin};
use crate::otp;

both_stores!(
    a_trusted_device_signs_in_with_its_passkey_by_default,
    wrong_origin_is_rejected,
    wrong_challenge_is_rejected,
    replayed_assertion_is_rejected,
    another_members_credential_is_rejected,
    counter_going_backwards_is_a_clone_warning,
    clone_warnings_come_from_the_ceremony_and_from_backup_flags,
    user_verification_is_required,
    ceremonies_expire_and_are_bound_to_their_flow,
    passkeys_are_listed_renamed_and_removed,
    passkeys_follow_the_organizations_methods_and_limits,
    a_passkey_proves_a_step_up,
    refused_passkeys_end_the_sign_in_and_lock_the_member,
    the_pages_trust_verify_and_remove_a_device,
    an_mfa_reset_removes_passkeys_and_members_hear_of_changes,
);

const EMAIL: &str = "dr.lee@riverside.test";

fn now(app: &TestApp) -> i64 {
    use clinic_auth_core::Clock;
    app.clock.now().0
}

fn origin(app: &TestApp) -> Url {
    Url::parse(&passkey_origin(app.addr.port())).unwrap()
}

/// A platform authenticator that verifies its user (as Touch ID would).
fn device() -> SoftPasskey {
    SoftPasskey::new(true)
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.api().post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn clinic(app: &TestApp) -> Org {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let change = OrgMfaChange { enabled: Some(true), mode: Some(MfaMode::Required), methods: None, grace_days: None };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    org
}

/// Email and password; returns (flow id, progress).
async fn password_step(app: &TestApp, email: &str, hints: &[&str]) -> (String, Value) {
    let (_, started) = post(app, "/api/v1/login", None, json!({"realm": "staff", "email": email})).await;
    let flow = started["flow_id"].as_str().unwrap().to_owned();
    let (s, progress) = post(
        app,
        &format!("/api/v1/login/{flow}/password"),
        None,
        json!({"password": PASSWORD, "device_hints": hints}),
    )
    .await;
    assert_eq!(s, 200, "{progress}");
    (flow, progress)
}

/// A member of the clinic who set up an authenticator app at sign-in; returns
/// (otpauth URI, session token).
async fn enrolled_member(app: &TestApp, org: &Org, email: &str) -> (String, String) {
    app.member(org, email, Role::Provider).await;
    let (flow, progress) = password_step(app, email, &[]).await;
    assert_eq!(progress["next"], "enroll", "{progress}");
    assert_eq!(progress["allowed_methods"], json!(["authenticator"]), "a passkey is never the first factor");
    let (_, setup) = post(app, &format!("/api/v1/login/{flow}/enroll/authenticator"), None, json!({})).await;
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let code = otp::code(&uri, now(app));
    let (s, done) =
        post(app, &format!("/api/v1/login/{flow}/enroll/authenticator/confirm"), None, json!({"code": code})).await;
    assert_eq!(s, 200, "{done}");
    (uri, done["session_token"].as_str().unwrap().to_owned())
}

/// "Trust this device?" → Continue, through the API. Returns the response body.
async fn trust(app: &TestApp, token: &str, device: &mut SoftPasskey, name: Option<&str>) -> (u16, Value) {
    let (s, options) = post(app, "/api/v1/me/passkeys/options", Some(token), json!({})).await;
    assert_eq!(s, 200, "{options}");
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = device.do_registration(origin(app), options).unwrap();
    post(app, "/api/v1/me/passkeys", Some(token), json!({"credential": credential, "name": name})).await
}

/// Asks the flow for passkey options and lets `device` answer them at `at`.
async fn assertion(app: &TestApp, flow: &str, device: &mut SoftPasskey, at: Url) -> Value {
    let (s, options) = post(app, &format!("/api/v1/login/{flow}/passkey/options"), None, json!({})).await;
    assert_eq!(s, 200, "{options}");
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    serde_json::to_value(device.do_authentication(at, options).unwrap()).unwrap()
}

async fn answer(app: &TestApp, flow: &str, credential: &Value) -> (u16, Value) {
    post(app, &format!("/api/v1/login/{flow}/passkey"), None, json!({"credential": credential})).await
}

/// A member of a Mandatory-2FA clinic with an authenticator app who trusted one
/// device; returns (session token, that device).
async fn trusted_member(app: &TestApp) -> (String, SoftPasskey) {
    let org = clinic(app).await;
    let (_, token) = enrolled_member(app, &org, EMAIL).await;
    let mut laptop = device();
    assert_eq!(trust(app, &token, &mut laptop, None).await.0, 200);
    (token, laptop)
}

/// Email, password, then the passkey's answer from `device` on the right origin.
async fn passkey_sign_in(app: &TestApp, device: &mut SoftPasskey) -> (u16, Value) {
    let (flow, _) = password_step(app, EMAIL, &[]).await;
    let credential = assertion(app, &flow, device, origin(app)).await;
    answer(app, &flow, &credential).await
}

fn error_code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn a_trusted_device_signs_in_with_its_passkey_by_default(app: TestApp) {
    let org = clinic(&app).await;
    let (_, token) = enrolled_member(&app, &org, EMAIL).await;
    let mut laptop = device();
    let (s, added) = trust(&app, &token, &mut laptop, Some("Exam room laptop")).await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(added["name"], "Exam room laptop");
    let hint = added["device_hint"].as_str().unwrap().to_owned();

    // On the trusted device the passkey is the default; the rest is one click away.
    let (flow, progress) = password_step(&app, EMAIL, &[&hint]).await;
    assert_eq!(progress["method"], "passkey", "{progress}");
    assert_eq!(progress["other_methods"], json!(["authenticator", "recovery_code"]));
    let credential = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    let (s, done) = answer(&app, &flow, &credential).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["next"], "done");
    assert!(done["session_token"].as_str().is_some());

    // Elsewhere (no hint, or a hint of no passkey of this member) the app stays the default.
    for hints in [vec![], vec!["0123456789abcdef01234567"]] {
        let (_, progress) = password_step(&app, EMAIL, &hints).await;
        assert_eq!(progress["method"], "authenticator", "{progress}");
        assert_eq!(progress["other_methods"], json!(["passkey", "recovery_code"]));
    }

    let (_, list) = app.get_json("/api/v1/me/passkeys", &token).await;
    let keys = list["passkeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "Exam room laptop");
    assert!(keys[0]["last_used_at"].is_i64(), "{list}");
    // The credential itself is sealed at rest, never stored or shown in the clear.
    let factors = app
        .state
        .store
        .list_factors(
            app.state
                .store
                .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse(EMAIL).unwrap())
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap();
    let pk = factors.iter().find(|f| f.kind == clinic_auth_core::FactorKind::Passkey).unwrap();
    let sealed = pk.secret.as_ref().unwrap();
    assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains("cred_id"));
    assert!(pk.passkey.as_ref().unwrap().sign_count >= 1, "the software passkey counts its uses");
    let kinds = app.audit_kinds().await;
    assert!(kinds.contains(&("factor_enrolled".into(), "success".into())));
    let events = app.audit_of(Some("sign_in"), 50).await;
    assert!(events.iter().any(|e| e.outcome == "success" && e.detail.contains("\"method\":\"passkey\"")));
}

async fn wrong_origin_is_rejected(app: TestApp) {
    let org = clinic(&app).await;
    let (_, token) = enrolled_member(&app, &org, EMAIL).await;
    // A page on another origin that may use the same RP id (another app on the same
    // host, here another port): the browser lets it ask, the server must refuse it.
    let phishing = Url::parse(&format!("http://localhost:{}", app.addr.port().wrapping_add(1))).unwrap();

    // Registration made on another site's page is refused.
    let (s, options) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    assert_eq!(s, 200);
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let mut laptop = device();
    let credential = laptop.do_registration(phishing.clone(), options).unwrap();
    let (s, e) = post(&app, "/api/v1/me/passkeys", Some(&token), json!({"credential": credential})).await;
    assert_eq!((s, error_code(&e)), (400, Some("passkey_rejected")), "{e}");
    let (_, list) = app.get_json("/api/v1/me/passkeys", &token).await;
    assert_eq!(list["passkeys"], json!([]));

    // A sign-in answer made for another origin is refused, and counts as a failure.
    let (s, _) = trust(&app, &token, &mut laptop, None).await;
    assert_eq!(s, 200);
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow, &mut laptop, phishing).await;
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "{e}");
    let events = app.audit_of(Some("second_factor"), 50).await;
    assert!(
        events.iter().any(|e| e.outcome == "failure" && e.detail.contains("wrong_origin")),
        "{:?}",
        events.iter().map(|e| &e.detail).collect::<Vec<_>>()
    );
}

async fn wrong_challenge_is_rejected(app: TestApp) {
    let (token, mut laptop) = trusted_member(&app).await;

    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    // The answer to the first options…
    let stale = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    // …is not an answer to the second: asking again replaced the challenge.
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/passkey/options"), None, json!({})).await;
    assert_eq!(s, 200);
    let (s, e) = answer(&app, &flow, &stale).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "{e}");
    assert_eq!(last_second_factor_reason(&app).await, "wrong_challenge");

    // A registration answer to earlier options is refused too: asking again replaced them.
    let (_, options_a) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    let (_, options_b) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    assert_ne!(options_a["publicKey"]["challenge"], options_b["publicKey"]["challenge"]);
    let options_a: CreationChallengeResponse = serde_json::from_value(options_a).unwrap();
    let credential = device().do_registration(origin(&app), options_a).unwrap();
    let (s, e) = post(&app, "/api/v1/me/passkeys", Some(&token), json!({"credential": credential})).await;
    assert_eq!((s, error_code(&e)), (400, Some("passkey_rejected")), "{e}");
}

async fn replayed_assertion_is_rejected(app: TestApp) {
    let (_, mut laptop) = trusted_member(&app).await;

    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    assert_eq!(answer(&app, &flow, &credential).await.0, 200);
    // The same answer again to the same sign-in: that flow is over (it gave its session).
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (410, Some("flow_expired")), "{e}");

    // In a new sign-in, with options outstanding, the captured answer does not fit.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/passkey/options"), None, json!({})).await;
    assert_eq!(s, 200);
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "{e}");
    // And the options were used up by that attempt: nothing to answer any more.
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (410, Some("passkey_expired")), "{e}");
}

async fn another_members_credential_is_rejected(app: TestApp) {
    let org = clinic(&app).await;
    let (_, token_a) = enrolled_member(&app, &org, EMAIL).await;
    let (_, token_b) = enrolled_member(&app, &org, "nurse.kim@riverside.test").await;
    let mut laptop_a = device();
    let mut laptop_b = device();
    assert_eq!(trust(&app, &token_a, &mut laptop_a, None).await.0, 200);
    let (s, added_b) = trust(&app, &token_b, &mut laptop_b, None).await;
    assert_eq!(s, 200);

    // B's hint does not make the passkey the default for A.
    let hint_b = added_b["device_hint"].as_str().unwrap();
    let (flow, progress) = password_step(&app, EMAIL, &[hint_b]).await;
    assert_eq!(progress["method"], "authenticator");

    // A's sign-in answered by B's passkey (B's device, told to use B's credential).
    let (_, options) = post(&app, &format!("/api/v1/login/{flow}/passkey/options"), None, json!({})).await;
    let (_, b_list) = app.get_json("/api/v1/me/passkeys", &token_b).await;
    assert_eq!(b_list["passkeys"].as_array().unwrap().len(), 1);
    let (_, b_options) = post(&app, "/api/v1/me/mfa/verify/passkey/options", Some(&token_b), json!({})).await;
    let mut forged = options.clone();
    forged["publicKey"]["allowCredentials"] = b_options["publicKey"]["allowCredentials"].clone();
    let forged: RequestChallengeResponse = serde_json::from_value(forged).unwrap();
    let credential = serde_json::to_value(laptop_b.do_authentication(origin(&app), forged).unwrap()).unwrap();
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "{e}");
    assert_eq!(last_second_factor_reason(&app).await, "unknown_credential");
    let (_, a_list) = app.get_json("/api/v1/me/passkeys", &token_a).await;
    assert_eq!(a_list["passkeys"].as_array().unwrap().len(), 1, "A still has just their own passkey");
}

/// The reason of the newest refused second factor in the audit trail.
async fn last_second_factor_reason(app: &TestApp) -> String {
    let events = app.audit_of(Some("second_factor"), 1).await;
    let detail: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(events[0].outcome, "failure", "{detail}");
    detail["reason"].as_str().unwrap().to_owned()
}

async fn user_verification_is_required(app: TestApp) {
    let org = clinic(&app).await;
    let (_, token) = enrolled_member(&app, &org, EMAIL).await;
    // A browser that skips the fingerprint: options tampered to "discouraged", so the
    // authenticator signs without verifying its user.
    let (_, mut options) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    assert_eq!(options["publicKey"]["authenticatorSelection"]["userVerification"], "required", "{options}");
    options["publicKey"]["authenticatorSelection"]["userVerification"] = json!("discouraged");
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = device().do_registration(origin(&app), options).unwrap();
    let (s, e) = post(&app, "/api/v1/me/passkeys", Some(&token), json!({"credential": credential})).await;
    assert_eq!((s, error_code(&e)), (400, Some("passkey_rejected")), "{e}");
    let events = app.audit_of(Some("factor_enrolled"), 1).await;
    assert!(events[0].outcome == "failure" && events[0].detail.contains("user_not_verified"), "{:?}", events[0]);

    // The same at sign-in, with a passkey registered properly.
    let mut laptop = device();
    assert_eq!(trust(&app, &token, &mut laptop, None).await.0, 200);
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let (_, mut options) = post(&app, &format!("/api/v1/login/{flow}/passkey/options"), None, json!({})).await;
    assert_eq!(options["publicKey"]["userVerification"], "required", "{options}");
    options["publicKey"]["userVerification"] = json!("discouraged");
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = serde_json::to_value(laptop.do_authentication(origin(&app), options).unwrap()).unwrap();
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "{e}");
    assert_eq!(last_second_factor_reason(&app).await, "user_not_verified");
}

async fn counter_going_backwards_is_a_clone_warning(app: TestApp) {
    let (_, mut laptop) = trusted_member(&app).await;
    assert_eq!(passkey_sign_in(&app, &mut laptop).await.0, 200);

    // The genuine device has since counted far ahead; this one lags behind: a copy.
    sqlx_exec(&app, "UPDATE factors SET sign_count = 1000 WHERE kind = 'passkey'").await;
    let (s, e) = passkey_sign_in(&app, &mut laptop).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_clone_warning")), "{e}");
    let kinds = app.audit_kinds().await;
    assert!(kinds.contains(&("passkey_clone_warning".into(), "failure".into())), "{kinds:?}");
    // The stored counter is left alone, so the copy keeps failing.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    assert_eq!(error_code(&answer(&app, &flow, &credential).await.1), Some("passkey_clone_warning"));
}

/// Rewrites the stored (sealed) credential's own counter, the one webauthn-rs checks
/// inside the ceremony, as a genuine device far ahead would have left it.
async fn set_sealed_counter(app: &TestApp, email: &str, counter: u32) {
    use clinic_auth_core::{Email, FactorKind, Realm};
    let store = &app.state.store;
    let account = store.find_account(Realm::Staff, &Email::parse(email).unwrap()).await.unwrap().unwrap();
    let factors = store.list_factors(account.id).await.unwrap();
    let pk = factors.iter().find(|f| f.kind == FactorKind::Passkey).unwrap();
    let context = format!("clinic-auth:factor:passkey:{}", account.id);
    let plain = app.state.sealer.open(pk.secret.as_ref().unwrap(), &context).unwrap();
    let mut passkey: Value = serde_json::from_slice(&plain).unwrap();
    passkey["cred"]["counter"] = json!(counter);
    let sealed = app.state.sealer.seal(&serde_json::to_vec(&passkey).unwrap(), &context).unwrap();
    let sql = "UPDATE factors SET secret = $1, nonce = $2 WHERE id = $3";
    if app.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        let sql = sql.replace('$', "?");
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&sealed.ciphertext).bind(&sealed.nonce).bind(&pk.id);
        q.execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).bind(&sealed.ciphertext).bind(&sealed.nonce).bind(&pk.id).execute(&pool).await.unwrap();
    }
}

async fn clone_warnings_come_from_the_ceremony_and_from_backup_flags(app: TestApp) {
    let (_, mut laptop) = trusted_member(&app).await;
    assert_eq!(passkey_sign_in(&app, &mut laptop).await.0, 200);

    // The credential itself has counted far ahead: the library refuses the answer
    // (CredentialPossibleCompromise) and we warn, audit and count it.
    set_sealed_counter(&app, EMAIL, 1000).await;
    let (s, e) = passkey_sign_in(&app, &mut laptop).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_clone_warning")), "{e}");
    let events = app.audit_of(Some("passkey_clone_warning"), 1).await;
    assert!(events[0].detail.contains("counter_not_advanced"), "{:?}", events[0]);
    assert_eq!(last_second_factor_reason(&app).await, "counter_not_advanced");

    // A credential registered as synced (backup eligible) that now answers as a
    // device-bound one is not the credential that was registered.
    set_sealed_counter(&app, EMAIL, 0).await;
    sqlx_exec(&app, "UPDATE factors SET sign_count = 0, backup_eligible = TRUE WHERE kind = 'passkey'").await;
    let (s, e) = passkey_sign_in(&app, &mut laptop).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_clone_warning")), "{e}");
    assert_eq!(last_second_factor_reason(&app).await, "backup_eligibility_changed");
    // With the flag as registered, the same device is welcome again.
    sqlx_exec(&app, "UPDATE factors SET backup_eligible = FALSE WHERE kind = 'passkey'").await;
    assert_eq!(passkey_sign_in(&app, &mut laptop).await.0, 200);
}

/// The first column of the first row `sql` returns, as text.
async fn sqlx_text(app: &TestApp, sql: &'static str) -> String {
    use sqlx::Row;
    if app.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).fetch_one(&pool).await.unwrap().get::<String, _>(0)
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).fetch_one(&pool).await.unwrap().get::<String, _>(0)
    }
}

async fn sqlx_exec(app: &TestApp, sql: &'static str) {
    use sqlx::Executor;
    if app.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        pool.execute(sql).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        pool.execute(sql).await.unwrap();
    }
}

async fn ceremonies_expire_and_are_bound_to_their_flow(app: TestApp) {
    let (_, mut laptop) = trusted_member(&app).await;

    // Options are good for five minutes.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    app.clock.advance(301);
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (410, Some("passkey_expired")), "{e}");

    // An answer to one flow's options cannot finish another flow.
    let (flow_1, _) = password_step(&app, EMAIL, &[]).await;
    let (flow_2, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow_1, &mut laptop, origin(&app)).await;
    let (s, e) = answer(&app, &flow_2, &credential).await;
    assert_eq!((s, error_code(&e)), (400, Some("passkey_not_started")), "flow 2 is not at a passkey step: {e}");
    let (s, _) = post(&app, &format!("/api/v1/login/{flow_2}/passkey/options"), None, json!({})).await;
    assert_eq!(s, 200);
    let (s, e) = answer(&app, &flow_2, &credential).await;
    assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "flow 2 has its own challenge: {e}");
    assert_eq!(answer(&app, &flow_1, &credential).await.0, 200);

    // The stored ceremony is sealed (it names the keys an answer is checked against),
    // and one changed in the database is not used.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    let stored = sqlx_text(&app, "SELECT state FROM webauthn_ceremonies").await;
    assert!(!stored.contains("cred_id") && !stored.contains("challenge"), "sealed: {stored}");
    sqlx_exec(&app, "UPDATE webauthn_ceremonies SET state = '1.AAAAAAAAAAAAAAAA.AAAA'").await;
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (410, Some("passkey_expired")), "{e}");

    // Garbage is a clear error, not a crash.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    assert_eq!(post(&app, &format!("/api/v1/login/{flow}/passkey/options"), None, json!({})).await.0, 200);
    let (s, e) = answer(&app, &flow, &json!({"id": 5})).await;
    assert_eq!((s, error_code(&e)), (400, Some("invalid_passkey_response")), "{e}");
    // A genuine answer padded past 12 KiB (still under the 16 KiB body limit) is
    // refused before it is parsed.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let mut padded = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    padded["extensions"] = json!({"pad": "x".repeat(12 * 1024)});
    let (s, e) = answer(&app, &flow, &padded).await;
    assert_eq!((s, error_code(&e)), (400, Some("invalid_passkey_response")), "{e}");
}

async fn passkeys_are_listed_renamed_and_removed(app: TestApp) {
    let org = clinic(&app).await;
    let (_, token) = enrolled_member(&app, &org, EMAIL).await;
    let (_, other) = enrolled_member(&app, &org, "nurse.kim@riverside.test").await;
    let mut laptop = device();
    let (_, added) = trust(&app, &token, &mut laptop, None).await;
    let id = added["id"].as_str().unwrap().to_owned();
    let hint = added["device_hint"].as_str().unwrap().to_owned();
    assert_eq!(added["name"], "This device", "named from the User-Agent, which reqwest does not send");

    let rename = |token: String, name: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            let res = app
                .api()
                .patch(app.url(&format!("/api/v1/me/passkeys/{id}")))
                .bearer_auth(token)
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (s, list) = rename(token.clone(), json!("  Front desk PC ")).await;
    assert_eq!((s, &list["passkeys"][0]["name"]), (200, &json!("Front desk PC")));
    assert!(app.audit_kinds().await.contains(&("passkey_renamed".into(), "success".into())), "renames are audited");
    let (s, e) = rename(token.clone(), json!("x".repeat(61))).await;
    assert_eq!((s, error_code(&e)), (400, Some("invalid_name")));
    // Someone else's passkey is not theirs to rename or remove.
    let (s, e) = rename(other.clone(), json!("Mine now")).await;
    assert_eq!((s, error_code(&e)), (404, Some("not_found")));
    let res = app.api().delete(app.url(&format!("/api/v1/me/passkeys/{id}"))).bearer_auth(&other).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // Removing needs a fresh second factor once the session is older than 10 minutes.
    app.clock.advance(11 * 60);
    let res = app.api().delete(app.url(&format!("/api/v1/me/passkeys/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let (s, _) = post(&app, "/api/v1/me/mfa/verify/passkey/options", Some(&token), json!({})).await;
    assert_eq!(s, 200);
    let (_, options) = post(&app, "/api/v1/me/mfa/verify/passkey/options", Some(&token), json!({})).await;
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = laptop.do_authentication(origin(&app), options).unwrap();
    let (s, v) = post(&app, "/api/v1/me/mfa/verify/passkey", Some(&token), json!({"credential": credential})).await;
    assert_eq!((s, &v["verified"]), (200, &json!(true)), "{v}");
    let res = app.api().delete(app.url(&format!("/api/v1/me/passkeys/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["passkeys"], json!([]));

    // The device's hint now points at nothing: the authenticator app is the default again.
    let (_, progress) = password_step(&app, EMAIL, &[&hint]).await;
    assert_eq!(progress["method"], "authenticator");
    assert_eq!(progress["other_methods"], json!(["recovery_code"]));
    let kinds = app.audit_kinds().await;
    assert!(kinds.contains(&("factor_removed".into(), "success".into())));
}

async fn passkeys_follow_the_organizations_methods_and_limits(app: TestApp) {
    let org = clinic(&app).await;
    let (uri, token) = enrolled_member(&app, &org, EMAIL).await;
    // A clinic that allows only authenticator apps offers no "Trust this device?".
    let change = OrgMfaChange {
        enabled: None,
        mode: None,
        methods: Some(clinic_auth_core::MethodSet::authenticator_only()),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    let (s, e) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    assert_eq!((s, error_code(&e)), (403, Some("passkey_not_allowed")), "{e}");
    // Passkeys alone are not a policy: members need something to set up first.
    let change = OrgMfaChange {
        enabled: None,
        mode: None,
        methods: Some(clinic_auth_core::MethodSet::only(clinic_auth_core::FactorKind::Passkey)),
        grace_days: None,
    };
    assert!(policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.is_err());
    let change = OrgMfaChange {
        enabled: None,
        mode: None,
        methods: Some(clinic_auth_core::MethodSet::standard()),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();

    // Ten trusted devices at most.
    for i in 0..9 {
        let (s, e) = trust(&app, &token, &mut device(), Some(&format!("Device {i}"))).await;
        assert_eq!(s, 200, "{e}");
    }
    // Options fetched at nine in one session, a tenth trusted meanwhile from another
    // (a second browser): the first session ended when the tenth was added (ASVS
    // 7.4.3), so its late answer is refused (and the store's INSERT holds the limit
    // besides).
    let (s, late) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    assert_eq!(s, 200);
    let late: CreationChallengeResponse = serde_json::from_value(late).unwrap();
    let late = device().do_registration(origin(&app), late).unwrap();
    app.clock.advance(30);
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let (s, other) =
        post(&app, &format!("/api/v1/login/{flow}/code"), None, json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!(s, 200, "{other}");
    let other = other["session_token"].as_str().unwrap().to_owned();
    assert_eq!(trust(&app, &other, &mut device(), Some("Device 9")).await.0, 200);
    let (s, e) = post(&app, "/api/v1/me/passkeys", Some(&token), json!({"credential": late})).await;
    assert_eq!((s, error_code(&e)), (401, Some("unauthorized")), "{e}");
    let token = other;
    let (_, list) = app.get_json("/api/v1/me/passkeys", &token).await;
    assert_eq!(list["passkeys"].as_array().unwrap().len(), 10);
    let (s, e) = post(&app, "/api/v1/me/passkeys/options", Some(&token), json!({})).await;
    assert_eq!((s, error_code(&e)), (409, Some("too_many_passkeys")), "{e}");
}

async fn a_passkey_proves_a_step_up(app: TestApp) {
    let (token, mut laptop) = trusted_member(&app).await;
    app.clock.advance(11 * 60);
    let (s, e) = post(&app, "/api/v1/me/mfa/recovery-code", Some(&token), json!({})).await;
    assert_eq!((s, error_code(&e)), (403, Some("step_up_required")));
    let (_, options) = post(&app, "/api/v1/me/mfa/verify/passkey/options", Some(&token), json!({})).await;
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = laptop.do_authentication(origin(&app), options).unwrap();
    let (s, _) = post(&app, "/api/v1/me/mfa/verify/passkey", Some(&token), json!({"credential": credential})).await;
    assert_eq!(s, 200);
    let (s, body) = post(&app, "/api/v1/me/mfa/recovery-code", Some(&token), json!({})).await;
    assert_eq!(s, 200, "{body}");
    // The same answer cannot prove it twice.
    let (s, e) = post(&app, "/api/v1/me/mfa/verify/passkey", Some(&token), json!({"credential": credential})).await;
    assert_eq!((s, error_code(&e)), (410, Some("passkey_expired")), "{e}");
}

async fn refused_passkeys_end_the_sign_in_and_lock_the_member(app: TestApp) {
    let (_, mut laptop) = trusted_member(&app).await;
    let elsewhere = Url::parse(&format!("http://localhost:{}", app.addr.port().wrapping_add(1))).unwrap();

    // Four refused answers leave the sign-in open; the fifth ends it.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    for attempt in 1..=5 {
        let credential = assertion(&app, &flow, &mut laptop, elsewhere.clone()).await;
        let (s, e) = answer(&app, &flow, &credential).await;
        if attempt < 5 {
            assert_eq!((s, error_code(&e)), (401, Some("passkey_rejected")), "attempt {attempt}: {e}");
        } else {
            assert_eq!((s, error_code(&e)), (410, Some("flow_expired")), "attempt {attempt}: {e}");
        }
    }
    // The failures also count against the member: the sixth in 15 minutes locks the
    // second factor, even for a correct passkey in a new sign-in.
    let (flow, _) = password_step(&app, EMAIL, &[]).await;
    let credential = assertion(&app, &flow, &mut laptop, elsewhere).await;
    assert_eq!(answer(&app, &flow, &credential).await.0, 401);
    let credential = assertion(&app, &flow, &mut laptop, origin(&app)).await;
    let (s, e) = answer(&app, &flow, &credential).await;
    assert_eq!((s, error_code(&e)), (429, Some("too_many_attempts")), "{e}");
}

/// The WebAuthn options a page carries in its `data-passkey-options` attribute.
fn page_options(html: &str) -> Value {
    let raw =
        html.split("data-passkey-options=\"").nth(1).expect("passkey options on the page").split('"').next().unwrap();
    let json = raw
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&");
    serde_json::from_str(&json).unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn page_sign_in(app: &TestApp, b: &reqwest::Client) -> reqwest::Response {
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/login")).form(&[("csrf", csrf_of(&html).as_str()), ("email", EMAIL)]).send().await.unwrap();
    let html = b.get(app.url("/login/password")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
}

async fn the_pages_trust_verify_and_remove_a_device(app: TestApp) {
    let org = clinic(&app).await;
    app.member(&org, EMAIL, Role::Provider).await;
    let b = app.browser();
    assert_eq!(location(&page_sign_in(&app, &b).await), "/login/setup");
    let html = b.get(app.url("/login/setup")).send().await.unwrap().text().await.unwrap();
    let key: String = html.split("id=\"setup-key\">").nth(1).unwrap().split('<').next().unwrap().replace(' ', "");
    let uri = format!("otpauth://totp/x?secret={key}");
    let res = b
        .post(app.url("/login/setup"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", &otp::code(&uri, now(&app)))])
        .send()
        .await
        .unwrap();
    // Setup done: the recovery code, then "Trust this device?".
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Save your recovery code") && page.contains("href=\"/account/trust-device?after=setup\""),
        "{page}"
    );
    let later = b.get(app.url("/account/trust-device")).send().await.unwrap().text().await.unwrap();
    assert!(later.contains("href=\"/account\">Not now"), "from the account page, Not now goes back: {later}");
    let html = b.get(app.url("/account/trust-device?after=setup")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Trust this device?") && html.contains("/static/passkey.js"));
    assert!(html.contains("href=\"/account?notice=mfa_on\">Not now"), "{html}");
    let options: CreationChallengeResponse = serde_json::from_value(page_options(&html)).unwrap();
    let mut laptop = device();
    let credential = laptop.do_registration(origin(&app), options).unwrap();
    let res = b
        .post(app.url("/account/trust-device"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("credential", &serde_json::to_string(&credential).unwrap()),
            ("name", "Exam room 2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/account?notice=device_trusted");
    let cookie = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(cookie.iter().any(|c| c.starts_with("clinic_auth_device=") && c.contains("HttpOnly")), "{cookie:?}");
    let account = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("Exam room 2") && account.contains("this device"), "{account}");
    let csrf = csrf_of(&account);
    b.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();

    // Signing in again on this browser: the passkey is the default.
    assert_eq!(location(&page_sign_in(&app, &b).await), "/login/verify");
    let html = b.get(app.url("/login/verify")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("data-passkey=\"authenticate\"") && html.contains("Try another method"), "{html}");
    // Another browser (no passkey of the member's) is never offered the passkey.
    let other = app.browser();
    assert_eq!(location(&page_sign_in(&app, &other).await), "/login/verify");
    let methods = other.get(app.url("/login/methods")).send().await.unwrap().text().await.unwrap();
    assert!(methods.contains("Recovery code") && !methods.contains("value=\"passkey\""), "{methods}");
    let options: RequestChallengeResponse = serde_json::from_value(page_options(&html)).unwrap();
    let credential = laptop.do_authentication(origin(&app), options).unwrap();
    let res = b
        .post(app.url("/login/verify"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("credential", &serde_json::to_string(&credential).unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/account");

    // Later in the session, trusting or removing needs a fresh second factor.
    app.clock.advance(11 * 60);
    let res = b.get(app.url("/account/trust-device")).send().await.unwrap();
    assert_eq!(location(&res), "/account/2fa/verify?next=trust-device");
    let account = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let id = account.split("data-passkey-id=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let remove = app.url(&format!("/account/passkeys/{id}/remove"));
    let res = b.post(&remove).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(res.status(), 403, "no removal without the form's token");
    let res = b.post(&remove).form(&[("csrf", csrf_of(&account).as_str())]).send().await.unwrap();
    assert_eq!(location(&res), "/account/2fa/verify?next=account");
    let html =
        b.get(app.url("/account/2fa/verify?next=account&method=passkey")).send().await.unwrap().text().await.unwrap();
    let options: RequestChallengeResponse = serde_json::from_value(page_options(&html)).unwrap();
    let credential = laptop.do_authentication(origin(&app), options).unwrap();
    let res = b
        .post(app.url("/account/2fa/verify?method=passkey"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("next", "account"),
            ("credential", &serde_json::to_string(&credential).unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/account");
    // The account page's Remove asks first; the question removes nothing.
    assert!(account.contains(&format!("href=\"/account/passkeys/{id}/remove\"")), "{account}");
    let ask = b.get(&remove).send().await.unwrap();
    assert_eq!(ask.status(), 200);
    let ask = ask.text().await.unwrap();
    assert!(
        ask.contains("Remove the passkey \u{201c}Exam room 2\u{201d}?") && ask.contains("no longer be trusted"),
        "{ask}"
    );
    assert!(
        ask.contains(&format!("action=\"/account/passkeys/{id}/remove\"")) && ask.contains("Remove passkey"),
        "{ask}"
    );
    let still = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(still.contains("Exam room 2"), "asking removed nothing: {still}");
    let missing = b.get(app.url("/account/passkeys/no-such-passkey/remove")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let res = b.post(&remove).form(&[("csrf", csrf_of(&ask).as_str())]).send().await.unwrap();
    assert_eq!(location(&res), "/account?notice=passkey_removed");
    let account = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(!account.contains("Exam room 2") && account.contains("Trust this device"), "{account}");
}

async fn an_mfa_reset_removes_passkeys_and_members_hear_of_changes(app: TestApp) {
    let org = clinic(&app).await;
    let (_, token) = enrolled_member(&app, &org, EMAIL).await;
    let mut laptop = device();
    let (_, added) = trust(&app, &token, &mut laptop, Some("Exam room 2")).await;
    let (_, second) = trust(&app, &token, &mut device(), Some("Old tablet")).await;
    let id = second["id"].as_str().unwrap();
    let res = app.api().delete(app.url(&format!("/api/v1/me/passkeys/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // The member hears of each passkey added and removed, by name, with no secret.
    app.smtp.wait_for(4, std::time::Duration::from_secs(5)).await;
    let mails: Vec<_> = app.smtp.messages().into_iter().filter(|m| m.header("To").as_deref() == Some(EMAIL)).collect();
    let texts: Vec<String> = mails.iter().map(|m| format!("{:?} {:?}", m.subject(), m.text_body())).collect();
    assert!(texts.iter().any(|t| t.contains("added") && t.contains("Exam room 2")), "{texts:#?}");
    assert!(texts.iter().any(|t| t.contains("removed") && t.contains("Old tablet")), "{texts:#?}");

    // Support resets the member's MFA (every factor gone): passkeys included.
    let removed = clinic_auth_app::admin::reset_mfa(
        &app.state,
        &By::operator(),
        Some(org.id.as_str()),
        EMAIL,
        Some("called back on the number on file"),
    )
    .await
    .unwrap();
    assert_eq!(removed, 2, "the authenticator app and the remaining passkey");
    let hint = added["device_hint"].as_str().unwrap();
    let (_, progress) = password_step(&app, EMAIL, &[hint]).await;
    assert_eq!(progress["next"], "enroll", "the trusted device no longer skips setup: {progress}");
}

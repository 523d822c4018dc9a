//! Clinic administration, platform support, the one-time bypass, security notices
//! and the hash-chained audit trail (issue #6).

use std::time::Duration;

use clinic_auth_app::By;
use clinic_auth_app::policy::{self, OrgMfaChange};
use clinic_auth_core::{Clock, MfaMode, OrgKind, Role};
use clinic_auth_store::Org;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{Backend, PASSWORD, TestApp};
use crate::otp;

both_stores!(
    clinic_admin_manages_members_over_the_api,
    permission_boundaries_hold,
    bypass_is_used_once_then_setup_follows,
    unused_bypass_expires,
    platform_support_looks_up_resets_and_bypasses,
    audit_trail_filters_and_exports_csv,
    audit_chain_detects_edits_and_deletions,
    long_audit_trails_page_and_export_whole,
    audit_chain_refuses_forged_events_and_catches_a_rewound_head,
    a_trail_from_before_keyed_hashes_is_rekeyed_once,
    a_rekey_request_cannot_launder_a_keyed_trail,
    a_plain_hash_trail_is_rekeyed_only_as_far_as_it_verifies,
    deleting_the_platform_chain_is_reported,
    concurrent_appends_keep_every_chain_intact,
);

fn now(app: &TestApp) -> i64 {
    app.clock.now().0
}

async fn mandatory(app: &TestApp, org: &Org) {
    let change = OrgMfaChange { enabled: Some(true), mode: Some(MfaMode::Required), methods: None, grace_days: None };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.api().post(app.url(path)).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn put_json(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app.api().put(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The password step; returns (flow id, progress).
async fn password_step(app: &TestApp, email: &str) -> (String, Value) {
    let started: Value = app.start_login("staff", email).await.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap().to_owned();
    let res = app.submit_password(&flow, PASSWORD).await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    (flow, body)
}

/// Completes authenticator setup in a flow at the enroll step; returns (uri, session token).
async fn finish_setup(app: &TestApp, flow: &str) -> (String, String) {
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
    (uri, done["session_token"].as_str().unwrap().to_owned())
}

/// Signs in a member of a Mandatory-2FA clinic for the first time, setting up an authenticator.
async fn enrolled(app: &TestApp, email: &str) -> (String, String) {
    let (flow, progress) = password_step(app, email).await;
    assert_eq!(progress["next"], "enroll", "{progress}");
    let out = finish_setup(app, &flow).await;
    app.clock.advance(30);
    out
}

/// Signs in with the authenticator; returns the session token.
async fn sign_in_with_code(app: &TestApp, email: &str, uri: &str) -> String {
    let (flow, progress) = password_step(app, email).await;
    assert_eq!(progress["next"], "second_factor", "{progress}");
    let (s, done) = post(app, &format!("/api/v1/login/{flow}/code"), json!({"code": otp::code(uri, now(app))})).await;
    assert_eq!(s, 200, "{done}");
    app.clock.advance(30);
    done["session_token"].as_str().unwrap().to_owned()
}

async fn subjects(app: &TestApp) -> Vec<String> {
    let mails = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    let _ = mails;
    app.smtp.messages().into_iter().filter_map(|m| m.subject()).collect()
}

async fn clinic_admin_manages_members_over_the_api(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    mandatory(&app, &org).await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    app.member(&org, "admin@riverside.test", Role::Admin).await;
    let staff = app.member(&org, "nurse@riverside.test", Role::Staff).await;
    app.member(&org, "locum@riverside.test", Role::Provider).await;
    let (_, admin) = enrolled(&app, "admin@riverside.test").await;
    let (_, nurse) = enrolled(&app, "nurse@riverside.test").await;
    let base = "/api/v1/orgs/riverside-clinic/members";

    // The searchable list with role, 2FA status and override.
    let (s, list) = app.get_json(base, &admin).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 4);
    // The list (read for all members at once) says what each member's own page says.
    for row in list.as_array().unwrap() {
        let email = row["account"]["email"].as_str().unwrap();
        let (_, one) = app.get_json(&format!("{base}/{email}"), &admin).await;
        for key in ["factors", "recovery_code_set", "active_sessions", "mfa_required", "bypass_pending"] {
            assert!(row.get(key).is_some(), "{key} in {row}");
            assert_eq!(row[key], one[key], "{email}: {key}");
        }
    }
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["active_sessions"].as_i64() > Some(0) && r["recovery_code_set"] == true),
        "someone is signed in with a recovery code saved: {list}"
    );
    let (_, found) = app.get_json(&format!("{base}?q=nurse"), &admin).await;
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["account"]["role"], "staff");
    assert_eq!(found[0]["factors"][0]["kind"], "authenticator");
    assert!(found[0]["factors"][0]["last_used_at"].is_i64());
    assert!(found[0].get("secret").is_none() && !found[0].to_string().contains("otpauth"));
    assert_eq!(found[0]["mfa_required"], true);
    let (_, providers) = app.get_json(&format!("{base}?q=provider"), &admin).await;
    assert_eq!(providers[0]["account"]["email"], "locum@riverside.test");

    // Not required for the locum: no setup at sign-in.
    let (s, v) =
        put_json(&app, &format!("{base}/locum@riverside.test/mfa"), &admin, json!({"override": "not_required"})).await;
    assert_eq!((s, v["mfa_override"].as_str()), (200, Some("not_required")));
    assert_eq!(password_step(&app, "locum@riverside.test").await.1["next"], "done");

    // Revoking sessions ends the nurse's token at once.
    assert_eq!(app.get_json("/api/v1/me", &nurse).await.0, 200);
    let (s, v) = app.post_json(&format!("{base}/{}/sessions/revoke", staff.id), &admin, json!({})).await;
    assert_eq!((s, v["revoked_sessions"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(app.get_json("/api/v1/me", &nurse).await.0, 401);

    // Deactivate and reactivate.
    let (s, v) =
        put_json(&app, &format!("{base}/nurse@riverside.test/status"), &admin, json!({"status": "deactivated"})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("deactivated")));
    let res = app.api_login("staff", "nurse@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "account_deactivated");
    let (s, _) =
        put_json(&app, &format!("{base}/nurse@riverside.test/status"), &admin, json!({"status": "active"})).await;
    assert_eq!(s, 200);
    assert_eq!(password_step(&app, "nurse@riverside.test").await.1["next"], "second_factor");
    let (s, e) =
        put_json(&app, &format!("{base}/nurse@riverside.test/status"), &admin, json!({"status": "gone"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_status")));

    // Roles: an admin promotes to provider, but never to owner.
    let (s, v) =
        put_json(&app, &format!("{base}/nurse@riverside.test/role"), &admin, json!({"role": "provider"})).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("provider")));
    let (s, e) = put_json(&app, &format!("{base}/nurse@riverside.test/role"), &admin, json!({"role": "owner"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")), "{e}");

    // Reset MFA removes every factor; setup comes back at the next sign-in.
    let (s, v) = app.post_json(&format!("{base}/nurse@riverside.test/mfa-reset"), &admin, json!({})).await;
    assert_eq!((s, v["removed_factors"].as_u64()), (200, Some(1)), "{v}");
    let (_, st) = app.get_json(&format!("{base}/nurse@riverside.test"), &admin).await;
    assert_eq!(st["factors"], json!([]));
    assert_eq!(st["recovery_code_set"], false);
    assert_eq!(password_step(&app, "nurse@riverside.test").await.1["next"], "enroll");

    // Notices went to the member's registered email, with no secret in them.
    let subjects = subjects(&app).await;
    assert!(
        subjects.iter().any(|s| s == "Two-factor authentication was reset on your Riverside Clinic account"),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s == "A sign-in method was added to your Riverside Clinic account"),
        "{subjects:?}"
    );
    let reset = app.smtp.messages().into_iter().find(|m| m.subject().is_some_and(|s| s.contains("was reset"))).unwrap();
    assert_eq!(reset.header("To").as_deref(), Some("nurse@riverside.test"));
    assert!(reset.find_code().is_none(), "a notice holds no code");

    // Turning Mandatory 2FA off stops forcing setup but keeps the factors members have.
    let (s, _) = put_json(&app, "/api/v1/orgs/riverside-clinic/mfa", &admin, json!({"mode": "off"})).await;
    assert_eq!(s, 200);
    assert_eq!(password_step(&app, "nurse@riverside.test").await.1["next"], "done", "no setup forced");
    assert_eq!(password_step(&app, "admin@riverside.test").await.1["next"], "second_factor", "factors kept");

    let kinds = app.audit_kinds().await;
    for k in [
        "member_mfa_override_changed",
        "sessions_revoked",
        "account_deactivated",
        "account_reactivated",
        "role_changed",
        "mfa_reset",
    ] {
        assert!(kinds.iter().any(|(kind, o)| kind == k && o == "success"), "{k} audited: {kinds:?}");
    }
    assert!(app.state.store.verify_audit(&Default::default()).await.unwrap().breaks.is_empty());
}

async fn permission_boundaries_hold(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b = app.org("Clinic B", OrgKind::Clinic).await;
    mandatory(&app, &a).await;
    app.member(&a, "owner@a.test", Role::Owner).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    app.member(&a, "dr@a.test", Role::Provider).await;
    app.member(&b, "staff@b.test", Role::Staff).await;
    let support = app.platform_admin("support@platform.test").await;
    let (admin_uri, admin) = enrolled(&app, "admin@a.test").await;
    let (_, dr) = enrolled(&app, "dr@a.test").await;
    let code = |(s, v): (u16, Value)| (s, v["error"]["code"].as_str().map(str::to_owned));

    // Another organization's members and the organization itself are invisible, for
    // every action, through either organization's address.
    for base in ["/api/v1/orgs/clinic-b/members/staff@b.test", "/api/v1/orgs/clinic-a/members/staff@b.test"] {
        for path in ["bypass", "mfa-reset", "sessions/revoke"] {
            let r = code(app.post_json(&format!("{base}/{path}"), &admin, json!({})).await);
            assert_eq!(r.0, 404, "{base}/{path}: {r:?}");
        }
        for (path, body) in [
            ("mfa", json!({"override": "not_required"})),
            ("status", json!({"status": "deactivated"})),
            ("role", json!({"role": "admin"})),
        ] {
            let r = code(put_json(&app, &format!("{base}/{path}"), &admin, body).await);
            assert_eq!(r.0, 404, "{base}/{path}: {r:?}");
        }
        assert_eq!(app.get_json(base, &admin).await.0, 404, "{base}");
    }
    let untouched = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse("staff@b.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((untouched.role, untouched.status), (Some(Role::Staff), clinic_auth_core::AccountStatus::Active));
    assert_eq!(app.get_json("/api/v1/orgs/clinic-b/members", &admin).await.0, 404);
    assert_eq!(app.get_json("/api/v1/orgs/clinic-b/audit", &admin).await.0, 404);
    assert_eq!(app.get_json("/api/v1/audit", &admin).await.0, 403);
    // A platform admin is nobody's member.
    let padmin = format!("/api/v1/orgs/clinic-a/members/{}/mfa-reset", support.id);
    assert_eq!(app.post_json(&padmin, &admin, json!({})).await.0, 404);
    assert_eq!(app.get_json("/api/v1/platform/accounts/support@platform.test", &admin).await.0, 403);
    // Roles: a provider manages nobody.
    assert_eq!(code(app.get_json("/api/v1/orgs/clinic-a/members", &dr).await), (403, Some("forbidden".into())));
    assert_eq!(app.post_json("/api/v1/orgs/clinic-a/members/admin@a.test/bypass", &dr, json!({})).await.0, 403);
    // The owner cannot be locked out by an admin.
    for path in ["bypass", "mfa-reset", "sessions/revoke"] {
        let r =
            code(app.post_json(&format!("/api/v1/orgs/clinic-a/members/owner@a.test/{path}"), &admin, json!({})).await);
        assert_eq!(r, (403, Some("owner_protected".into())), "{path}");
    }
    let r =
        put_json(&app, "/api/v1/orgs/clinic-a/members/owner@a.test/status", &admin, json!({"status": "deactivated"}))
            .await;
    assert_eq!(code(r), (403, Some("owner_protected".into())));
    let r = put_json(&app, "/api/v1/orgs/clinic-a/members/owner@a.test/role", &admin, json!({"role": "staff"})).await;
    assert_eq!(code(r), (403, Some("owner_protected".into())));
    // Acting on oneself: no deactivating, and a fresh second factor for the rest.
    let r =
        put_json(&app, "/api/v1/orgs/clinic-a/members/admin@a.test/status", &admin, json!({"status": "deactivated"}))
            .await;
    assert_eq!(code(r), (403, Some("not_on_yourself".into())));
    app.clock.advance(11 * 60); // past the 10-minute step-up window of the sign-in
    for path in ["sessions/revoke", "mfa-reset", "bypass"] {
        let own = format!("/api/v1/orgs/clinic-a/members/admin@a.test/{path}");
        assert_eq!(
            code(app.post_json(&own, &admin, json!({})).await),
            (403, Some("step_up_required".into())),
            "{path}"
        );
    }
    let (_, st) = app.get_json("/api/v1/orgs/clinic-a/members/admin@a.test", &admin).await;
    assert_eq!(
        (st["factors"].as_array().map(Vec::len), st["bypass_pending"].as_bool()),
        (Some(1), Some(false)),
        "nothing happened without the step-up: {st}"
    );
    let r =
        put_json(&app, "/api/v1/orgs/clinic-a/members/admin@a.test/mfa", &admin, json!({"override": "not_required"}))
            .await;
    assert_eq!(code(r), (403, Some("step_up_required".into())));
    let (s, v) =
        app.post_json("/api/v1/me/mfa/verify", &admin, json!({"code": otp::code(&admin_uri, now(&app))})).await;
    assert_eq!(s, 200, "{v}");
    let r =
        put_json(&app, "/api/v1/orgs/clinic-a/members/admin@a.test/mfa", &admin, json!({"override": "required"})).await;
    assert_eq!(r.0, 200, "{}", r.1);
    // Platform support may act across organizations.
    let t = app.token("staff", "support@platform.test").await;
    assert_eq!(app.post_json("/api/v1/orgs/clinic-b/members/staff@b.test/bypass", &t, json!({})).await.0, 201);
    assert_eq!(app.get_json("/api/v1/audit", &t).await.0, 200);
}

async fn bypass_is_used_once_then_setup_follows(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    mandatory(&app, &org).await;
    app.member(&org, "admin@riverside.test", Role::Admin).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    app.member(&org, "locum@riverside.test", Role::Provider).await;
    let (_, admin) = enrolled(&app, "admin@riverside.test").await;
    let (old_uri, _) = enrolled(&app, "dr.lee@riverside.test").await;

    let (s, v) =
        app.post_json("/api/v1/orgs/riverside-clinic/members/dr.lee@riverside.test/bypass", &admin, json!({})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["expires_at"].as_i64(), Some(now(&app) + 24 * 3600));
    // Granting removes nothing by itself.
    let (_, st) = app.get_json("/api/v1/orgs/riverside-clinic/members/dr.lee@riverside.test", &admin).await;
    assert_eq!((st["bypass_pending"].as_bool(), st["factors"].as_array().map(Vec::len)), (Some(true), Some(1)));
    let subjects = subjects(&app).await;
    assert!(
        subjects.iter().any(|s| s.starts_with("You may sign in once without two-factor authentication")),
        "{subjects:?}"
    );

    // Used once: no code asked, the old factors are gone, setup comes before any session.
    let (flow, progress) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(progress["next"], "enroll", "{progress}");
    assert!(progress.get("session_token").is_none());
    let (_, st) = app.get_json("/api/v1/orgs/riverside-clinic/members/dr.lee@riverside.test", &admin).await;
    assert_eq!((st["bypass_pending"].as_bool(), st["factors"].as_array().map(Vec::len)), (Some(false), Some(0)));
    let removed =
        app.smtp.messages().into_iter().filter(|m| m.header("To").as_deref() == Some("dr.lee@riverside.test"));
    assert!(
        removed
            .filter_map(|m| m.subject())
            .any(|s| s == "A sign-in method was removed from your Riverside Clinic account"),
        "using the bypass removed the factors, and the member is told"
    );
    let (new_uri, token) = finish_setup(&app, &flow).await;
    assert_ne!(otp::secret_of(&new_uri), otp::secret_of(&old_uri));
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200);
    app.clock.advance(30);
    // ...and only once: the next sign-in asks for the new authenticator.
    sign_in_with_code(&app, "dr.lee@riverside.test", &new_uri).await;

    // A member who is Not required signs straight in with the bypass, and is offered
    // (not forced) setup again.
    let (s, _) = put_json(
        &app,
        "/api/v1/orgs/riverside-clinic/members/locum@riverside.test/mfa",
        &admin,
        json!({"override": "not_required"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(password_step(&app, "locum@riverside.test").await.1["next"], "done");
    let (s, _) =
        app.post_json("/api/v1/orgs/riverside-clinic/members/locum@riverside.test/bypass", &admin, json!({})).await;
    assert_eq!(s, 201);
    let (_, progress) = password_step(&app, "locum@riverside.test").await;
    assert_eq!(progress["next"], "done", "{progress}");
    assert_eq!(progress["suggest_setup"], true, "{progress}");
    let (_, progress) = password_step(&app, "locum@riverside.test").await;
    assert!(progress.get("suggest_setup").is_none(), "only right after the bypass: {progress}");
    let kinds = app.audit_kinds().await;
    let count = |k: &str| kinds.iter().filter(|(kind, _)| kind == k).count();
    assert_eq!((count("bypass_granted"), count("bypass_used")), (2, 2), "{kinds:?}");
}

async fn unused_bypass_expires(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    mandatory(&app, &org).await;
    app.member(&org, "admin@riverside.test", Role::Admin).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let (admin_uri, admin) = enrolled(&app, "admin@riverside.test").await;
    let (uri, _) = enrolled(&app, "dr.lee@riverside.test").await;
    let (s, _) =
        app.post_json("/api/v1/orgs/riverside-clinic/members/dr.lee@riverside.test/bypass", &admin, json!({})).await;
    assert_eq!(s, 201);
    app.clock.advance(24 * 3600);
    let (_, progress) = password_step(&app, "dr.lee@riverside.test").await;
    assert_eq!(progress["next"], "second_factor", "an expired bypass is not used: {progress}");
    // The admin's session idled out meanwhile: they sign in again.
    let admin = sign_in_with_code(&app, "admin@riverside.test", &admin_uri).await;
    let (_, st) = app.get_json("/api/v1/orgs/riverside-clinic/members/dr.lee@riverside.test", &admin).await;
    assert_eq!((st["bypass_pending"].as_bool(), st["factors"].as_array().map(Vec::len)), (Some(false), Some(1)));
    sign_in_with_code(&app, "dr.lee@riverside.test", &uri).await;
    assert!(!app.audit_kinds().await.iter().any(|(k, _)| k == "bypass_used"));
}

async fn platform_support_looks_up_resets_and_bypasses(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.platform_admin("support@platform.test").await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    app.patient(&org, "pat@example.test").await;
    let t = app.token("staff", "support@platform.test").await;
    // Support enables MFA for the clinic; its owner makes it mandatory.
    let (s, v) = put_json(&app, "/api/v1/orgs/riverside-clinic/mfa", &t, json!({"enabled": true})).await;
    assert_eq!((s, v["mfa"]["enabled"].as_bool()), (200, Some(true)));
    let owner = app.token("staff", "owner@riverside.test").await;
    let (s, _) = put_json(&app, "/api/v1/orgs/riverside-clinic/mfa", &owner, json!({"mode": "required"})).await;
    assert_eq!(s, 200);
    let (_, owner_token) = enrolled(&app, "owner@riverside.test").await;
    let _ = owner_token;

    let (s, st) = app.get_json("/api/v1/platform/accounts/owner@riverside.test", &t).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["factors"][0]["kind"], "authenticator");
    assert!(!st.to_string().contains("secret"), "{st}");
    // A reset needs a record of how identity was verified.
    let (s, e) = app.post_json("/api/v1/platform/accounts/owner@riverside.test/mfa-reset", &t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("identity_note_required")));
    let long = "x".repeat(501);
    for bad in [long.as_str(), "called back\nthen reset"] {
        let (s, e) = app
            .post_json(
                "/api/v1/platform/accounts/owner@riverside.test/mfa-reset",
                &t,
                json!({"identity_verified": bad}),
            )
            .await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_note")), "{e}");
    }
    let note = "Called back on the clinic's number on file; confirmed date of hire";
    let (s, v) = app
        .post_json("/api/v1/platform/accounts/owner@riverside.test/mfa-reset", &t, json!({"identity_verified": note}))
        .await;
    assert_eq!((s, v["removed_factors"].as_u64()), (200, Some(1)));
    let events = app.audit_of(Some("mfa_reset"), 10).await;
    assert!(events[0].detail.contains("Called back"), "{}", events[0].detail);
    assert_eq!(events[0].org_id.as_deref(), Some("riverside-clinic"));
    let (s, _) = app.post_json("/api/v1/platform/accounts/owner@riverside.test/bypass", &t, json!({})).await;
    assert_eq!(s, 201);

    // Patients: untouched by the staff policy; they may opt in, and support can reset them.
    let pat = app.token("patient", "pat@example.test").await;
    let (s, setup) = app.post_json("/api/v1/me/mfa/authenticator", &pat, json!({})).await;
    assert_eq!(s, 200, "{setup}");
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let (s, _) =
        app.post_json("/api/v1/me/mfa/authenticator/confirm", &pat, json!({"code": otp::code(&uri, now(&app))})).await;
    assert_eq!(s, 200);
    let (s, st) = app.get_json("/api/v1/platform/accounts/pat@example.test", &t).await;
    assert_eq!((s, st["account"]["kind"].as_str(), st["mfa_required"].as_bool()), (200, Some("patient"), Some(false)));
    let (s, _) = app
        .post_json("/api/v1/platform/accounts/pat@example.test/mfa-reset", &t, json!({"identity_verified": "ID check"}))
        .await;
    assert_eq!(s, 200);
    let (s, e) = app.post_json("/api/v1/platform/accounts/pat@example.test/bypass", &t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("not_a_member")));
    let (s, v) = app.get_json("/api/v1/audit/verify", &t).await;
    assert_eq!((s, v["intact"].as_bool()), (200, Some(true)), "{v}");
}

async fn audit_trail_filters_and_exports_csv(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b = app.org("Clinic B", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    app.member(&a, "dr@a.test", Role::Provider).await;
    app.member(&b, "staff@b.test", Role::Staff).await;
    let admin = app.token("staff", "admin@a.test").await;
    app.token("staff", "dr@a.test").await;
    app.token("staff", "staff@b.test").await;
    assert_eq!(app.api_login("staff", "dr@a.test", "wrong password entirely").await.status(), 401);

    let (s, events) = app.get_json("/api/v1/orgs/clinic-a/audit", &admin).await;
    assert_eq!(s, 200, "{events}");
    let events = events.as_array().unwrap();
    assert!(events.iter().all(|e| e["org_id"] == "clinic-a"), "only the clinic's own events");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "sign_in" && e["outcome"] == "failure" && e["detail"]["reason"] == "wrong_password")
    );
    assert!(events.iter().all(|e| !e.to_string().contains("wrong password entirely")), "no secret in events");
    let (_, dr) = app.get_json("/api/v1/orgs/clinic-a/audit?member=dr@a.test&kind=sign_in", &admin).await;
    let dr = dr.as_array().unwrap();
    assert_eq!(dr.len(), 2, "{dr:?}");
    let today = clinic_auth_app::time::day(app.clock.now());
    let (_, dated) = app.get_json(&format!("/api/v1/orgs/clinic-a/audit?from={today}&to={today}"), &admin).await;
    assert_eq!(dated.as_array().unwrap().len(), events.len());
    let (_, none) = app.get_json("/api/v1/orgs/clinic-a/audit?from=2099-01-01", &admin).await;
    assert_eq!(none, json!([]));
    let (s, e) = app.get_json("/api/v1/orgs/clinic-a/audit?from=yesterday", &admin).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_date")));

    let res =
        app.api().get(app.url("/api/v1/orgs/clinic-a/audit?format=csv")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,time,organization,event,outcome,actor"), "{}", lines[0]);
    assert_eq!(lines.len(), events.len() + 1);
    assert!(csv.contains("\"dr@a.test\"") && !csv.contains("staff@b.test"), "{csv}");
}

/// Appends `n` events of kind `test_event` to `org`'s chain, a second apart from `from`.
async fn append_test_events(app: &TestApp, org: &clinic_auth_store::Org, n: i64, from: i64) {
    for i in 0..n {
        let event = clinic_auth_store::NewAuditEvent {
            via: Default::default(),
            at: clinic_auth_core::UnixTime(from + i),
            kind: "test_event",
            outcome: "success",
            org_id: Some(org.id.clone()),
            actor_id: None,
            subject_id: None,
            client: Default::default(),
            detail: format!("{{\"n\":{i}}}"),
        };
        app.state.store.append_audit(&event).await.unwrap();
    }
}

async fn long_audit_trails_page_and_export_whole(app: TestApp) {
    let app = TestApp::spawn_with(
        app.backend,
        crate::harness::Options { audit_export_max_events: 1500, ..Default::default() },
    )
    .await
    .unwrap();
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&org, "admin@a.test", Role::Admin).await;
    let admin = app.token("staff", "admin@a.test").await;
    // More events than one page of the store (1000) holds.
    append_test_events(&app, &org, 1100, 1_800_000_000).await;
    let total = app.state.store.verify_audit(&Default::default()).await.unwrap().heads["clinic-a"].seq as usize;
    assert!(total > 1100, "{total}");

    // The JSON pages: 200 by default, each pointing at the next, never overlapping.
    let mut seen = std::collections::BTreeSet::new();
    let mut next = Some("/api/v1/orgs/clinic-a/audit?kind=test_event".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let res = app.api().get(app.url(&path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(res.status(), 200);
        next = res.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l.trim_start_matches('<').split('>').next().unwrap().to_owned()
        });
        let page: Value = res.json().await.unwrap();
        let page = page.as_array().unwrap();
        assert!(page.len() <= 200);
        for e in page {
            assert!(seen.insert(e["id"].as_i64().unwrap()), "an event on two pages");
        }
        pages += 1;
    }
    assert_eq!((seen.len(), pages), (1100, 6), "every event once, on 6 pages");
    // A page never holds more than 1000, whatever is asked.
    let res = app
        .api()
        .get(app.url("/api/v1/orgs/clinic-a/audit?kind=test_event&limit=5000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("link"), "more pages follow");
    assert_eq!(res.json::<Value>().await.unwrap().as_array().unwrap().len(), 1000);
    let (s, e) = app.get_json("/api/v1/orgs/clinic-a/audit?limit=lots", &admin).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_request")), "{e}");

    // The CSV holds every event, not the first page of them.
    let res =
        app.api().get(app.url("/api/v1/orgs/clinic-a/audit?format=csv")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert_eq!(text.lines().count(), total + 1);
    // Oldest first, across the store's pages, each event once.
    let ids: Vec<i64> =
        text.lines().skip(1).map(|l| l.split(',').next().unwrap().trim_matches('"').parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first, no repeats");

    // Past the export limit it is refused, never cut short.
    append_test_events(&app, &org, 400, 1_800_002_000).await;
    let (s, e) = app.get_json("/api/v1/orgs/clinic-a/audit?format=csv", &admin).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("export_too_large")), "{e}");
    let res = app
        .api()
        .get(app.url("/api/v1/orgs/clinic-a/audit?format=csv&member=admin@a.test"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a narrower export still works");
}

/// Runs raw SQL against the test's database, as someone with access to the store would.
async fn raw_sql(app: &TestApp, sql: &str) {
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

async fn audit_chain_detects_edits_and_deletions(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    for i in 0..3 {
        app.member(&org, &format!("m{i}@riverside.test"), Role::Staff).await;
        app.token("staff", &format!("m{i}@riverside.test")).await;
    }
    let store = &app.state.store;
    let ok = store.verify_audit(&Default::default()).await.unwrap();
    assert!(ok.breaks.is_empty(), "{:?}", ok.breaks);
    assert!(ok.events >= 7, "{ok:?}");
    let mid = "(SELECT id FROM audit_events WHERE chain = 'riverside-clinic' AND seq = 3)";

    // An edit (a failure made to look like a success) is found...
    raw_sql(&app, &format!("UPDATE audit_events SET outcome = 'failure' WHERE id = {mid}")).await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert_eq!(r.breaks.len(), 1, "{r:?}");
    assert!(r.breaks[0].to_string().contains("#3) was changed"), "{}", r.breaks[0]);
    raw_sql(&app, &format!("UPDATE audit_events SET outcome = 'success' WHERE id = {mid}")).await;
    assert!(store.verify_audit(&Default::default()).await.unwrap().breaks.is_empty(), "restored");

    // ...and so is a deleted event in the middle,
    raw_sql(&app, &format!("DELETE FROM audit_events WHERE id = {mid}")).await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks[0].to_string().contains("event #3 is missing"), "{}", r.breaks[0]);

    // A whole organization's chain deleted, head and all, is missed by nobody.
    let fresh = TestApp::spawn(app.backend).await.unwrap();
    fresh.org("Riverside Clinic", OrgKind::Clinic).await;
    fresh.org("Hillside Clinic", OrgKind::Clinic).await;
    raw_sql(&fresh, "DELETE FROM audit_events WHERE chain = 'hillside-clinic'").await;
    raw_sql(&fresh, "DELETE FROM audit_chain_heads WHERE chain = 'hillside-clinic'").await;
    let r = fresh.state.store.verify_audit(&Default::default()).await.unwrap();
    assert_eq!(r.breaks.len(), 1, "{r:?}");
    assert!(r.breaks[0].to_string().contains("\"hillside-clinic\" has no audit events"), "{}", r.breaks[0]);

    // and the newest event deleted, through the API as platform support sees it.
    let fresh = TestApp::spawn(app.backend).await.unwrap();
    let org = fresh.org("Riverside Clinic", OrgKind::Clinic).await;
    fresh.member(&org, "m@riverside.test", Role::Staff).await;
    fresh.platform_admin("support@platform.test").await;
    let t = fresh.token("staff", "support@platform.test").await;
    raw_sql(
        &fresh,
        "DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events WHERE chain = 'riverside-clinic')",
    )
    .await;
    let (s, v) = fresh.get_json("/api/v1/audit/verify", &t).await;
    assert_eq!((s, v["intact"].as_bool()), (200, Some(false)), "{v}");
    assert!(v["breaks"][0].as_str().unwrap().contains("the last 1 event(s) are missing"), "{v}");
}

/// One stored event's id, seq and hash, newest first, of `chain`.
async fn chain_rows(app: &TestApp, chain: &str) -> Vec<(i64, i64, String)> {
    let events = app.audit_of(None, 1000).await;
    let mut rows: Vec<_> = events
        .into_iter()
        .filter(|e| e.org_id.as_deref().unwrap_or("") == chain)
        .map(|e| (e.id, e.seq.unwrap(), e.hash.unwrap()))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows
}

async fn audit_chain_refuses_forged_events_and_catches_a_rewound_head(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    for i in 0..3 {
        app.member(&org, &format!("m{i}@riverside.test"), Role::Staff).await;
    }
    let store = &app.state.store;
    let intact = store.verify_audit(&Default::default()).await.unwrap();
    assert!(intact.breaks.is_empty(), "{:?}", intact.breaks);
    let rows = chain_rows(&app, "riverside-clinic").await;
    assert!(rows.iter().all(|(_, _, h)| h.starts_with("v1:")), "hashes are keyed: {rows:?}");
    assert_eq!(intact.heads["riverside-clinic"].seq, rows[0].1);
    assert_eq!(intact.heads["riverside-clinic"].hash, rows[0].2);

    // Someone with database access rewrites the newest event and recomputes a hash the
    // way an unkeyed chain would allow: it is not clinic-auth's hash.
    let (newest, seq, _) = rows[0].clone();
    let forged = format!("v1:{}", "ab".repeat(32));
    raw_sql(&app, &format!("UPDATE audit_events SET outcome = 'failure', hash = '{forged}' WHERE id = {newest}")).await;
    raw_sql(&app, &format!("UPDATE audit_chain_heads SET hash = '{forged}' WHERE chain = 'riverside-clinic'")).await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks[0].to_string().contains(&format!("#{seq}) was changed")), "{r:?}");

    // An event slipped in without a hash is reported, and migrating again (as every
    // start does) does not chain it in.
    let fresh = TestApp::spawn(app.backend).await.unwrap();
    fresh.org("Riverside Clinic", OrgKind::Clinic).await;
    raw_sql(
        &fresh,
        "INSERT INTO audit_events (at, kind, outcome, org_id, client_ip, user_agent, detail)
         VALUES (1800000000, 'mfa_reset', 'success', 'riverside-clinic', '10.0.0.1', 'x', '{}')",
    )
    .await;
    fresh.state.store.migrate().await.unwrap();
    let r = fresh.state.store.verify_audit(&Default::default()).await.unwrap();
    assert!(!r.breaks.is_empty(), "an unhashed row must not pass: {r:?}");

    // The newest events deleted and the head rewound to a genuine earlier state: the
    // keyed chain alone cannot tell, a checkpoint kept elsewhere can.
    let fresh = TestApp::spawn(app.backend).await.unwrap();
    let org = fresh.org("Riverside Clinic", OrgKind::Clinic).await;
    fresh.member(&org, "a@riverside.test", Role::Staff).await;
    fresh.member(&org, "b@riverside.test", Role::Staff).await;
    let checkpoint = fresh.state.store.verify_audit(&Default::default()).await.unwrap().heads;
    assert!(checkpoint["riverside-clinic"].seq >= 3, "{checkpoint:?}");
    let rows = chain_rows(&fresh, "riverside-clinic").await;
    let (newest, _, _) = rows[0];
    let (_, earlier_seq, earlier_hash) = rows[1].clone();
    raw_sql(&fresh, &format!("DELETE FROM audit_events WHERE id = {newest}")).await;
    raw_sql(
        &fresh,
        &format!(
            "UPDATE audit_chain_heads SET seq = {earlier_seq}, hash = '{earlier_hash}' WHERE chain = 'riverside-clinic'"
        ),
    )
    .await;
    assert!(fresh.state.store.verify_audit(&Default::default()).await.unwrap().breaks.is_empty());
    let r = fresh.state.store.verify_audit(&checkpoint).await.unwrap();
    assert_eq!(r.breaks.len(), 1, "{r:?}");
    assert!(r.breaks[0].to_string().contains("events were cut off"), "{}", r.breaks[0]);
}

/// Makes the database look as if migration 0006 (keyed hashes) had not run yet, so
/// that the next migrate applies it, as an upgrade from an older version does.
async fn before_migration_0006(app: &TestApp) {
    raw_sql(app, "DELETE FROM _sqlx_migrations WHERE version = 6").await;
    raw_sql(app, "DROP TABLE audit_rekey_pending").await;
}

async fn a_trail_from_before_keyed_hashes_is_rekeyed_once(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "a@riverside.test", Role::Staff).await;
    let store = &app.state.store;
    let before = store.verify_audit(&Default::default()).await.unwrap();
    // As a database written before chains (or before keyed hashes) looks.
    raw_sql(&app, "UPDATE audit_events SET chain = NULL, seq = NULL, prev_hash = NULL, hash = NULL").await;
    raw_sql(&app, "DELETE FROM audit_chain_heads").await;
    assert!(!store.verify_audit(&Default::default()).await.unwrap().breaks.is_empty());
    before_migration_0006(&app).await;
    store.migrate().await.unwrap();
    let after = store.verify_audit(&Default::default()).await.unwrap();
    assert!(after.breaks.is_empty(), "{:?}", after.breaks);
    assert_eq!(after.events, before.events + 1, "every event, plus the record of the re-keying");
    let rekeyed = |kinds: Vec<(String, String)>| kinds.iter().filter(|(k, _)| k == "audit_chain_rekeyed").count();
    assert_eq!(rekeyed(app.audit_kinds().await), 1);
    store.migrate().await.unwrap();
    assert_eq!(rekeyed(app.audit_kinds().await), 1, "once only");
}

/// Whether `audit verify` finds the re-key request reported as tampering.
fn reports_rekey_request(r: &clinic_auth_store::AuditVerification) -> bool {
    r.breaks.iter().any(|b| matches!(b, clinic_auth_core::audit::ChainBreak::RekeyRequested))
}

async fn a_rekey_request_cannot_launder_a_keyed_trail(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    for i in 0..3 {
        app.member(&org, &format!("m{i}@riverside.test"), Role::Staff).await;
    }
    let store = &app.state.store;
    assert!(store.verify_audit(&Default::default()).await.unwrap().breaks.is_empty());
    // Someone with database access edits one event and deletes another...
    raw_sql(&app, "UPDATE audit_events SET outcome = 'failure' WHERE chain = 'riverside-clinic' AND seq = 2").await;
    raw_sql(&app, "DELETE FROM audit_events WHERE chain = 'riverside-clinic' AND seq = 3").await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks[0].to_string().contains("#2) was changed"), "{r:?}");
    // ...then asks for a re-key, and migrates (as every start does): nothing is
    // re-chained, the edit is still reported, and so is the request itself.
    raw_sql(&app, "INSERT INTO audit_rekey_pending (id) VALUES (1)").await;
    store.migrate().await.unwrap();
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks.iter().any(|b| b.to_string().contains("#2) was changed")), "{r:?}");
    assert!(reports_rekey_request(&r), "{r:?}");
    assert!(app.audit_kinds().await.iter().all(|(k, _)| k != "audit_chain_rekeyed"), "no re-keying happened");

    // Stripping every hash first, so that the trail looks older than keyed hashes,
    // does not help either: the request did not come from migration 0006.
    let fresh = TestApp::spawn(app.backend).await.unwrap();
    let org = fresh.org("Riverside Clinic", OrgKind::Clinic).await;
    fresh.member(&org, "a@riverside.test", Role::Staff).await;
    raw_sql(&fresh, "UPDATE audit_events SET outcome = 'failure' WHERE chain = 'riverside-clinic' AND seq = 2").await;
    raw_sql(&fresh, "UPDATE audit_events SET chain = NULL, seq = NULL, prev_hash = NULL, hash = NULL").await;
    raw_sql(&fresh, "DELETE FROM audit_chain_heads").await;
    raw_sql(&fresh, "INSERT INTO audit_rekey_pending (id) VALUES (1)").await;
    fresh.state.store.migrate().await.unwrap();
    let r = fresh.state.store.verify_audit(&Default::default()).await.unwrap();
    assert!(reports_rekey_request(&r) && r.breaks.len() > 1, "{r:?}");
}

/// Rewrites `app`'s trail as clinic-auth wrote it before keyed hashes: plain
/// SHA-256 hashes, chained the same way.
async fn as_unkeyed_trail(app: &TestApp) {
    use clinic_auth_core::audit::{ChainedFields, GENESIS, unkeyed_hash};
    let mut events = app.audit_of(None, 1000).await;
    events.sort_by_key(|e| (e.org_id.clone().unwrap_or_default(), e.seq));
    let mut heads: std::collections::BTreeMap<String, (i64, String)> = Default::default();
    for e in &events {
        let chain = e.org_id.clone().unwrap_or_default();
        let prev = heads.get(&chain).map(|(_, h)| h.clone()).unwrap_or_else(|| GENESIS.to_owned());
        let seq = e.seq.unwrap();
        let fields = ChainedFields {
            chain: &chain,
            seq,
            at: e.at.0,
            kind: &e.kind,
            outcome: &e.outcome,
            org_id: e.org_id.as_deref(),
            actor_id: e.actor_id.as_deref(),
            subject_id: e.subject_id.as_deref(),
            client_ip: &e.client_ip,
            user_agent: &e.user_agent,
            detail: &e.detail,
        };
        let hash = unkeyed_hash(&prev, &fields);
        raw_sql(app, &format!("UPDATE audit_events SET prev_hash = '{prev}', hash = '{hash}' WHERE id = {}", e.id))
            .await;
        heads.insert(chain, (seq, hash));
    }
    for (chain, (seq, hash)) in heads {
        raw_sql(app, &format!("UPDATE audit_chain_heads SET seq = {seq}, hash = '{hash}' WHERE chain = '{chain}'"))
            .await;
    }
}

async fn a_plain_hash_trail_is_rekeyed_only_as_far_as_it_verifies(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b = app.org("Clinic B", OrgKind::Clinic).await;
    for i in 0..3 {
        app.member(&a, &format!("m{i}@a.test"), Role::Staff).await;
        app.member(&b, &format!("m{i}@b.test"), Role::Staff).await;
    }
    let store = &app.state.store;
    let before = store.verify_audit(&Default::default()).await.unwrap();
    assert!(before.breaks.is_empty(), "{:?}", before.breaks);
    as_unkeyed_trail(&app).await;
    before_migration_0006(&app).await;
    // Before the upgrade, someone edits an event of clinic A without fixing its hash.
    raw_sql(&app, "UPDATE audit_events SET outcome = 'failure' WHERE chain = 'clinic-a' AND seq = 3").await;
    store.migrate().await.unwrap();
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert_eq!(r.breaks.len(), 1, "only clinic A is broken: {r:?}");
    assert!(
        matches!(&r.breaks[0], clinic_auth_core::audit::ChainBreak::Unlinked { chain, seq: 3, .. } | clinic_auth_core::audit::ChainBreak::Edited { chain, seq: 3, .. } if chain == "clinic-a"),
        "{r:?}"
    );
    assert!(!reports_rekey_request(&r), "the genuine request was taken");
    assert_eq!(r.heads["clinic-b"], before.heads["clinic-b"], "an intact chain re-keys to the same hashes");
    let rows = chain_rows(&app, "clinic-a").await;
    let keyed = |seq: i64| rows.iter().find(|r| r.1 == seq).unwrap().2.starts_with("v1:");
    assert!(keyed(1) && keyed(2) && !keyed(3) && !keyed(4), "re-keyed up to the edit only: {rows:?}");
    let rekeyed = app.audit_of(Some("audit_chain_rekeyed"), 10).await;
    assert_eq!((rekeyed.len(), rekeyed[0].outcome.as_str()), (1, "failure"), "{rekeyed:?}");
    let detail: Value = serde_json::from_str(&rekeyed[0].detail).unwrap();
    let unverified = rows.iter().filter(|r| r.1 >= 3).count() as u64;
    assert_eq!(detail["not_verified"].as_u64(), Some(unverified), "{detail}");
}

async fn deleting_the_platform_chain_is_reported(app: TestApp) {
    app.org("Riverside Clinic", OrgKind::Clinic).await;
    let store = &app.state.store;
    // No platform admin yet: no platform chain is needed.
    raw_sql(&app, "DELETE FROM audit_events WHERE chain = ''").await;
    raw_sql(&app, "DELETE FROM audit_chain_heads WHERE chain = ''").await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks.is_empty(), "{r:?}");

    app.platform_admin("support@platform.test").await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks.is_empty(), "{r:?}");
    // Every platform event deleted, head and all.
    raw_sql(&app, "DELETE FROM audit_events WHERE chain = ''").await;
    raw_sql(&app, "DELETE FROM audit_chain_heads WHERE chain = ''").await;
    let r = store.verify_audit(&Default::default()).await.unwrap();
    assert_eq!(r.breaks.len(), 1, "{r:?}");
    assert!(r.breaks[0].to_string().contains("platform's audit chain is gone"), "{}", r.breaks[0]);
}

async fn concurrent_appends_keep_every_chain_intact(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = app.state.store.clone();
        let org_id = (i % 2 == 0).then(|| org.id.clone());
        tasks.spawn(async move {
            let event = clinic_auth_store::NewAuditEvent {
                via: Default::default(),
                at: clinic_auth_core::UnixTime(1_800_000_000 + i),
                kind: "test_event",
                outcome: "success",
                org_id,
                actor_id: None,
                subject_id: None,
                client: Default::default(),
                detail: "{}".into(),
            };
            store.append_audit(&event).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let r = app.state.store.verify_audit(&Default::default()).await.unwrap();
    assert!(r.breaks.is_empty(), "{:?}", r.breaks);
    assert_eq!(r.events, 41, "every append took its own place: {r:?}");
    assert_eq!(r.chains, 2, "one chain for the clinic, one for the platform");
}

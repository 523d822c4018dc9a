//! The grace period for Mandatory 2FA: "Remind me later" at sign-in (pages and API),
//! forced setup after it, the Users list's "Not set up" and its reminders, and the
//! Edit Clinic field.

use std::time::Duration;

use clinic_auth_app::By;
use clinic_auth_app::policy::{self, OrgMfaChange};
use clinic_auth_core::oidc::{Acr, Proved};
use clinic_auth_core::policy::GraceDays;
use clinic_auth_core::{Clock, MemberOverride, MfaMode, OrgKind, Role, SecretToken};
use clinic_auth_store::Org;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{TestApp, csrf_of, location_of, page_of};
use crate::mfa::{password_step, post};

both_stores!(
    without_a_grace_period_setup_is_forced_at_once,
    in_the_grace_period_remind_me_later_signs_in_with_the_password_only,
    after_the_grace_period_setup_is_forced,
    the_sign_in_api_offers_remind_later_while_the_grace_period_lasts,
    reminders_go_to_members_not_set_up_once_a_day,
    edit_clinic_validates_the_grace_period_and_a_plain_save_moves_nothing,
);

const DAY: i64 = 24 * 3600;
const MEMBER: &str = "dr.lee@riverside.test";

/// A clinic under Mandatory 2FA with `grace` days, one provider without a factor and
/// an owner with an authenticator app (so the owner signs in to the console).
async fn clinic(app: &TestApp, grace: i64) -> Org {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, MEMBER, Role::Provider).await;
    let owner = app.member(&org, "owner@riverside.test", Role::Owner).await;
    app.enroll_authenticator(&owner).await;
    let change = OrgMfaChange {
        enabled: Some(true),
        mode: Some(MfaMode::Required),
        methods: None,
        grace_days: Some(GraceDays::new(grace).unwrap()),
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap()
}

/// Email and password on the sign-in pages; where they lead.
async fn pages_sign_in(app: &TestApp, b: &reqwest::Client, email: &str) -> String {
    let res = app.sign_in_with_pages(b, "/login", email).await;
    location_of(&res)
}

/// "Remind me later" as the setup page's form sends it.
async fn remind_me_later(app: &TestApp, b: &reqwest::Client) -> reqwest::Response {
    let (_, html) = page_of(b, &app.url("/login/setup")).await;
    b.post(app.url("/login/setup/later")).form(&[("csrf", csrf_of(&html))]).send().await.unwrap()
}

fn acr_of_session(proved: &str) -> Acr {
    Proved::parse(proved).acr()
}

async fn without_a_grace_period_setup_is_forced_at_once(app: TestApp) {
    clinic(&app, 0).await;
    let b = app.browser();
    assert_eq!(pages_sign_in(&app, &b, MEMBER).await, "/login/setup");
    let (s, html) = page_of(&b, &app.url("/login/setup")).await;
    assert_eq!(s, 200);
    assert!(!html.contains("Remind me later") && !html.contains("left to set it up"), "{html}");
    // Posting the form anyway does not sign in.
    let res = remind_me_later(&app, &b).await;
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("set it up to continue"), "{html}");
    let (s, html) = page_of(&b, &app.url("/account")).await;
    assert!(s != 200 || !html.contains(MEMBER), "no session");
    // The API says the same.
    let (flow, progress) = password_step(&app, MEMBER).await;
    assert_eq!(progress["next"], "enroll");
    assert!(progress.get("remind_later_until").is_none() && progress.get("days_left").is_none(), "{progress}");
    let (s, e) = post(&app, &format!("/api/v1/login/{flow}/remind-later"), json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("mfa_required")), "{e}");
    assert!(app.audit_of(Some("mfa_setup_postponed"), 10).await.is_empty());
}

async fn in_the_grace_period_remind_me_later_signs_in_with_the_password_only(app: TestApp) {
    clinic(&app, 7).await;
    let b = app.browser();
    assert_eq!(pages_sign_in(&app, &b, MEMBER).await, "/login/setup");
    let (s, html) = page_of(&b, &app.url("/login/setup")).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("Your clinic requires two-factor authentication. You have 7 days left to set it up."),
        "{html}"
    );
    assert!(html.contains("<button type=\"submit\" class=\"secondary\">Remind me later</button>"), "{html}");
    assert!(html.contains("action=\"/login/setup/later\""), "{html}");
    // The setup choices are there as usual.
    assert!(html.contains("Enable 2FA"), "{html}");

    // The form needs its CSRF token.
    let res = b.post(app.url("/login/setup/later")).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(res.status(), 403);

    // A day later the count has moved on (the flow is restarted: flows last 15 minutes).
    app.clock.advance(DAY + 60);
    let b = app.browser();
    assert_eq!(pages_sign_in(&app, &b, MEMBER).await, "/login/setup");
    let (_, html) = page_of(&b, &app.url("/login/setup")).await;
    assert!(html.contains("You have 6 days left to set it up."), "{html}");
    let res = remind_me_later(&app, &b).await;
    assert_eq!(location_of(&res), "/account", "signed in");
    let (s, html) = page_of(&b, &app.url("/account")).await;
    assert!(s == 200 && html.contains(MEMBER), "{html}");

    // The session proved the password only: apps that demand a second factor still
    // ask for setup (the step-up path), and the member still has no factor.
    let member = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse(MEMBER).unwrap())
        .await;
    let member = member.unwrap().unwrap();
    assert!(app.state.store.list_factors(member.id).await.unwrap().is_empty());
    let sessions = app.state.store.list_sessions(member.id).await.unwrap();
    assert_eq!(sessions.len(), 1);
    let event = app.audit_of(Some("sign_in"), 1).await.remove(0);
    assert!(event.detail.contains("\"method\":\"password\""), "{}", event.detail);
    let postponed = app.audit_of(Some("mfa_setup_postponed"), 10).await;
    assert_eq!(postponed.len(), 1);
    assert_eq!(postponed[0].detail, "{\"days_left\":\"6\"}");
    assert_eq!(postponed[0].subject_id, Some(member.id.to_string()));
}

async fn after_the_grace_period_setup_is_forced(app: TestApp) {
    let org = clinic(&app, 2).await;
    let since = org.mfa.required_since.unwrap();
    // The last minute of the grace period still offers it.
    app.clock.set(clinic_auth_core::UnixTime(since.0 + 2 * DAY - 60));
    let b = app.browser();
    assert_eq!(pages_sign_in(&app, &b, MEMBER).await, "/login/setup");
    let (_, html) = page_of(&b, &app.url("/login/setup")).await;
    assert!(html.contains("You have less than a day left to set it up.") && html.contains("Remind me later"), "{html}");
    // The deadline passes while the setup page is open: the button no longer works.
    app.clock.advance(60);
    let res = b.post(app.url("/login/setup/later")).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("set it up to continue") && !html.contains("Remind me later"), "{html}");
    // A new sign-in after the deadline: forced, as without a grace period.
    let b = app.browser();
    assert_eq!(pages_sign_in(&app, &b, MEMBER).await, "/login/setup");
    let (_, html) = page_of(&b, &app.url("/login/setup")).await;
    assert!(!html.contains("Remind me later") && !html.contains("left to set it up"), "{html}");
    let (flow, progress) = password_step(&app, MEMBER).await;
    assert!(progress.get("remind_later_until").is_none(), "{progress}");
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/remind-later"), json!({})).await;
    assert_eq!(s, 403);

    // Someone who joins now gets their own two days, counted from joining.
    app.member(&org, "new@riverside.test", Role::Staff).await;
    let (_, progress) = password_step(&app, "new@riverside.test").await;
    assert_eq!(progress["days_left"], 2, "{progress}");
    assert_eq!(progress["remind_later_until"], app.clock.now().0 + 2 * DAY, "{progress}");

    // A member set to Required by an admin gets no grace period.
    let by = By::operator();
    policy::set_member_override(&app.state, &by, org.id.as_str(), "new@riverside.test", MemberOverride::Required)
        .await
        .unwrap();
    let (_, progress) = password_step(&app, "new@riverside.test").await;
    assert_eq!(progress["next"], "enroll");
    assert!(progress.get("remind_later_until").is_none(), "{progress}");
}

async fn the_sign_in_api_offers_remind_later_while_the_grace_period_lasts(app: TestApp) {
    let org = clinic(&app, 7).await;
    let since = org.mfa.required_since.unwrap();
    assert_eq!(since, app.clock.now(), "Mandatory 2FA started now");
    let (flow, progress) = password_step(&app, MEMBER).await;
    assert_eq!(progress["next"], "enroll", "{progress}");
    assert_eq!(progress["days_left"], 7);
    assert_eq!(progress["remind_later_until"], since.0 + 7 * DAY);
    assert!(progress.get("session_token").is_none());
    let res = app.api().get(app.url(&format!("/api/v1/login/{flow}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["remind_later_until"], since.0 + 7 * DAY, "{again}");

    let (s, done) = post(&app, &format!("/api/v1/login/{flow}/remind-later"), json!({})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["next"], "done");
    let token = done["session_token"].as_str().unwrap().to_owned();
    let (s, me) = app.get_json("/api/v1/me", &token).await;
    assert_eq!((s, me["email"].as_str()), (200, Some(MEMBER)), "{me}");
    let record = app.state.store.get_session(&SecretToken::from_presented(&token).unwrap().hash()).await;
    let record = record.unwrap().unwrap();
    assert_eq!(acr_of_session(&record.proved), Acr::Password, "no second factor was proved");
    // The flow is used up.
    let (s, _) = post(&app, &format!("/api/v1/login/{flow}/remind-later"), json!({})).await;
    assert_eq!(s, 410);

    // The organization's settings carry the grace period and when Mandatory 2FA started.
    let owner = app.token("staff", "owner@riverside.test").await;
    let (s, o) = app.get_json("/api/v1/orgs/riverside-clinic", &owner).await;
    assert_eq!(s, 200, "{o}");
    assert_eq!((o["mfa"]["grace_days"].as_i64(), o["mfa"]["required_since"].as_i64()), (Some(7), Some(since.0)));
    let put = |body: Value| {
        let owner = owner.clone();
        let app = &app;
        async move {
            let res = app
                .api()
                .put(app.url("/api/v1/orgs/riverside-clinic/mfa"))
                .bearer_auth(&owner)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for bad in [json!({"grace_days": 31}), json!({"grace_days": -1}), json!({"grace_days": 1000})] {
        let (s, e) = put(bad.clone()).await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_policy")), "{bad} {e}");
    }
    let (s, e) = put(json!({"grace_days": "seven"})).await;
    assert_eq!(s, 400, "{e}");
    app.clock.advance(100);
    let (s, o) = put(json!({"grace_days": 30})).await;
    assert_eq!(s, 200, "{o}");
    assert_eq!((o["mfa"]["grace_days"].as_i64(), o["mfa"]["required_since"].as_i64()), (Some(30), Some(since.0)));
    let (s, o) = put(json!({"mode": "optional"})).await;
    assert_eq!(s, 200, "{o}");
    assert!(o["mfa"].get("required_since").is_none(), "{o}");
    let changes = app.audit_of(Some("org_mfa_changed"), 1).await;
    assert!(changes[0].detail.contains("\"grace_days\":\"30\""), "{}", changes[0].detail);
}

async fn reminders_go_to_members_not_set_up_once_a_day(app: TestApp) {
    let org = clinic(&app, 7).await;
    app.member(&org, "nurse@riverside.test", Role::Staff).await;
    let exempt = app.member(&org, "billing@riverside.test", Role::Staff).await;
    let by = By::operator();
    policy::set_member_override(&app.state, &by, org.id.as_str(), exempt.email.as_str(), MemberOverride::NotRequired)
        .await
        .unwrap();
    let owner = app.browser();
    assert_eq!(pages_sign_in(&app, &owner, "owner@riverside.test").await, "/account");

    let (s, html) = page_of(&owner, &app.url("/admin/users")).await;
    assert_eq!(s, 200);
    assert!(html.contains("2 members have not set up two-factor authentication."), "{html}");
    assert!(html.contains("Not set up — 7 days left"), "{html}");
    assert!(html.contains("Remind everyone not set up"), "{html}");
    assert_eq!(html.matches(">Send reminder</button>").count(), 2, "not for the owner (set up) nor billing (exempt)");
    let (_, only) = page_of(&owner, &app.url("/admin/users?show=not_set_up")).await;
    assert!(only.contains(MEMBER) && only.contains("nurse@") && !only.contains("billing@"), "{only}");

    // One member.
    let lee = app
        .state
        .store
        .find_account(clinic_auth_core::Realm::Staff, &clinic_auth_core::Email::parse(MEMBER).unwrap())
        .await;
    let lee = lee.unwrap().unwrap();
    let res = owner
        .post(app.url("/admin/users/remind"))
        .form(&[("csrf", csrf_of(&html)), ("member", lee.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/admin/users?notice=reminder_sent");
    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    let mail = mail.iter().find(|m| m.header("To").as_deref() == Some(MEMBER)).expect("reminder");
    assert_eq!(mail.subject().as_deref(), Some("Set up two-factor authentication for Riverside Clinic"));
    let text = mail.text_body().unwrap();
    assert!(text.contains("Riverside Clinic requires two-factor authentication"), "{text}");
    assert!(text.contains("you have 7 days left") && text.contains("next time you sign in"), "{text}");
    assert!(text.contains(&format!("Sign in at: {}/login", app.base)), "{text}");
    let sent = app.audit_of(Some("mfa_reminder_sent"), 10).await;
    assert_eq!((sent.len(), sent[0].subject_id.clone()), (1, Some(lee.id.to_string())));

    // Again the same day: skipped, and the page says why.
    let res = owner
        .post(app.url("/admin/users/remind"))
        .form(&[("csrf", csrf_of(&html)), ("member", lee.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let again = res.text().await.unwrap();
    assert!(again.contains("already went to this member in the last 24 hours"), "{again}");

    // Everyone: the nurse is emailed, Dr. Lee skipped and named.
    let res = owner.post(app.url("/admin/users/remind-all")).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let report = res.text().await.unwrap();
    assert!(
        report.contains("We emailed a reminder to set up two-factor authentication to: nurse@riverside.test."),
        "{report}"
    );
    assert!(report.contains("Skipped, already reminded in the last 24 hours: dr.lee@riverside.test."), "{report}");
    let to_nurse = app.smtp.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(to_nurse.iter().filter(|m| m.header("To").as_deref() == Some(MEMBER)).count(), 1);
    assert_eq!(app.audit_of(Some("mfa_reminder_sent"), 10).await.len(), 2);

    // The JSON API: the same limit, and no reminder for a member who is set up or exempt.
    let token = app.token("staff", "owner@riverside.test").await;
    let (s, e) =
        app.post_json(&format!("/api/v1/orgs/riverside-clinic/members/{MEMBER}/mfa-reminder"), &token, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (429, Some("reminder_too_soon")), "{e}");
    let (s, e) = app
        .post_json("/api/v1/orgs/riverside-clinic/members/billing@riverside.test/mfa-reminder", &token, json!({}))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("reminder_not_needed")), "{e}");
    let (s, e) = app
        .post_json("/api/v1/orgs/riverside-clinic/members/owner@riverside.test/mfa-reminder", &token, json!({}))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("reminder_not_needed")), "{e}");
    let (s, list) = app.get_json("/api/v1/orgs/riverside-clinic/members", &token).await;
    assert_eq!(s, 200);
    let lee_view = list.as_array().unwrap().iter().find(|m| m["account"]["email"] == MEMBER).unwrap();
    assert_eq!(lee_view["mfa_not_set_up"], true, "{lee_view}");
    assert_eq!(lee_view["mfa_setup_due"], org.mfa.required_since.unwrap().0 + 7 * DAY, "{lee_view}");

    // A day later Dr. Lee may be reminded again (the owner signs in again: sessions idle out).
    app.clock.advance(DAY);
    let token = app.token("staff", "owner@riverside.test").await;
    let (s, v) =
        app.post_json(&format!("/api/v1/orgs/riverside-clinic/members/{MEMBER}/mfa-reminder"), &token, json!({})).await;
    assert_eq!(s, 200, "{v}");
    let (s, r) = app.post_json("/api/v1/orgs/riverside-clinic/mfa-reminders", &token, json!({})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["sent"], json!(["nurse@riverside.test"]), "{r}");
    assert_eq!(r["skipped_sent_recently"], json!([MEMBER]), "{r}");
    // Another clinic's admin cannot remind this clinic's members.
    let other = app.org("Other Clinic", OrgKind::Clinic).await;
    let other_admin = app.member(&other, "admin@other.test", Role::Admin).await;
    let _ = other_admin;
    let other_token = app.token("staff", "admin@other.test").await;
    let (s, _) = app
        .post_json(&format!("/api/v1/orgs/riverside-clinic/members/{MEMBER}/mfa-reminder"), &other_token, json!({}))
        .await;
    assert!(s == 403 || s == 404, "{s}");
}

async fn edit_clinic_validates_the_grace_period_and_a_plain_save_moves_nothing(app: TestApp) {
    let org = clinic(&app, 0).await;
    let since = org.mfa.required_since.unwrap();
    let mfa_now = || async { app.state.store.get_org(&org.id).await.unwrap().unwrap().mfa };
    let owner = app.browser();
    assert_eq!(pages_sign_in(&app, &owner, "owner@riverside.test").await, "/account");
    let (s, html) = page_of(&owner, &app.url("/admin/edit")).await;
    assert_eq!(s, 200);
    let csrf = csrf_of(&html);
    assert!(html.contains("<label for=\"grace-days\">Grace period (days)</label>"), "{html}");
    assert!(html.contains("name=\"grace_days\" type=\"number\" min=\"0\" max=\"30\""), "{html}");
    let form = |csrf: &str, grace: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("mode", "required".to_owned()),
            ("methods_shown", "authenticator,email,sms,passkey".to_owned()),
            ("method_authenticator", "on".to_owned()),
            ("method_passkey", "on".to_owned()),
            ("grace_days", grace.to_owned()),
        ]
    };
    let before = mfa_now().await;
    for bad in ["31", "-1", "abc", "", "7.5", "1000"] {
        let res = owner.post(app.url("/admin/edit")).form(&form(&csrf, bad)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("Grace period: Enter a grace period of 0 to 30 days"), "{bad:?}: {html}");
        assert!(html.contains(&format!("value=\"{bad}\"")), "what was typed is shown again: {html}");
        assert_eq!(mfa_now().await, before, "nothing saved for {bad:?}");
    }
    // Saving a grace period days later does not move the start of Mandatory 2FA (the
    // owner signs in again: sessions idle out).
    app.clock.advance(3 * DAY);
    let owner = app.browser();
    assert_eq!(pages_sign_in(&app, &owner, "owner@riverside.test").await, "/account");
    let (_, html) = page_of(&owner, &app.url("/admin/edit")).await;
    let csrf = csrf_of(&html);
    let res = owner.post(app.url("/admin/edit")).form(&form(&csrf, "7")).send().await.unwrap();
    assert_eq!(location_of(&res), "/admin?notice=saved");
    let after = mfa_now().await;
    assert_eq!((after.grace_days.get(), after.required_since), (7, Some(since)));
    let (_, html) = page_of(&owner, &app.url("/admin")).await;
    assert!(html.contains("7 days (counted from"), "{html}");
    assert!(html.contains("Mandatory 2FA with a grace period of 7 days"), "{html}");
    // Saving again unchanged writes nothing at all.
    let changes = app.audit_of(Some("org_mfa_changed"), 100).await.len();
    app.clock.advance(120);
    let res = owner.post(app.url("/admin/edit")).form(&form(&csrf, "7")).send().await.unwrap();
    assert_eq!(location_of(&res), "/admin?notice=saved");
    assert_eq!(mfa_now().await, after);
    assert_eq!(app.audit_of(Some("org_mfa_changed"), 100).await.len(), changes);
    // A form from before the field keeps the grace period.
    let legacy: Vec<_> = form(&csrf, "").into_iter().filter(|(k, _)| *k != "grace_days").collect();
    let res = owner.post(app.url("/admin/edit")).form(&legacy).send().await.unwrap();
    assert_eq!(location_of(&res), "/admin?notice=saved");
    assert_eq!(mfa_now().await.grace_days.get(), 7);
}

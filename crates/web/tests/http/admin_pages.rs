//! The admin pages and the platform console as a browser uses them.

use clinic_auth_app::By;
use clinic_auth_app::policy::{self, OrgMfaChange};
use clinic_auth_core::{MethodSet, MfaMode, OrgKind, Role};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp, csrf_of};

both_stores!(
    clinic_admin_pages_manage_members_with_csrf_and_boundaries,
    platform_console_enables_mfa_and_resets_with_a_note,
    admins_change_roles_reactivate_and_sign_members_out_on_the_pages,
    a_bypass_sign_in_offers_setup_again_where_it_is_optional,
    a_clinic_reads_platform_support_where_a_platform_admin_acted,
    saving_clinic_settings_keeps_passkeys_and_what_the_form_does_not_show,
    platform_support_registers_a_clinic_app_and_sees_its_secret_once,
    an_admin_unlocks_a_member_locked_by_wrong_codes,
);

async fn page(client: &reqwest::Client, url: &str) -> (u16, String) {
    let res = client.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// A browser signed in as `email`, answering the code of an authenticator the
/// harness set up (platform admins have one).
async fn signed_in(app: &TestApp, email: &str) -> reqwest::Client {
    let b = app.browser();
    let res = app.sign_in_with_pages(&b, "/login", email).await;
    assert_eq!(location(&res), "/account", "{email} signs in");
    b
}

/// The audit page's table (the filter above it lists every event's words).
fn audit_table(html: &str) -> &str {
    html.split("id=\"audit\"").nth(1).unwrap_or_default()
}

async fn post_form(
    app: &TestApp,
    b: &reqwest::Client,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (_, html) = page(b, &app.url(form_page)).await;
    let csrf = csrf_of(&html);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post(app.url(action)).form(&all).send().await.unwrap()
}

async fn clinic_admin_pages_manage_members_with_csrf_and_boundaries(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b_org = app.org("Clinic B", OrgKind::Clinic).await;
    let admin = app.member(&a, "admin@a.test", Role::Admin).await;
    let owner = app.member(&a, "owner@a.test", Role::Owner).await;
    let nurse = app.member(&a, "nurse@a.test", Role::Staff).await;
    app.member(&a, "dr@a.test", Role::Provider).await;
    let other = app.member(&b_org, "staff@b.test", Role::Staff).await;
    let b = signed_in(&app, "admin@a.test").await;

    let (s, html) = page(&b, &app.url("/account")).await;
    assert!(s == 200 && html.contains("href=\"/admin\""), "the account page links to Clinic Settings");
    let (s, html) = page(&b, &app.url("/admin")).await;
    assert_eq!(s, 200);
    assert!(html.contains("Clinic Settings") && html.contains("not enabled yet"), "{html}");
    let (s, html) = page(&b, &app.url("/admin/users?q=nurse")).await;
    assert_eq!(s, 200);
    assert!(html.contains("nurse@a.test") && !html.contains("dr@a.test"), "search narrows the list");

    // Invite: the invitation goes by email; the page never shows the link (whoever
    // holds it chooses the new member's password).
    let res =
        post_form(&app, &b, "/admin/users", "/admin/users/invite", &[("email", "new@a.test"), ("role", "staff")]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("We emailed an invitation to new@a.test."), "{html}");
    assert!(!html.contains("/invite/"), "no invitation link on the page: {html}");
    // When the mail server refuses, the member exists all the same and the page says
    // to fix the email settings and resend; still no link.
    app.smtp.set_failing(Some(451));
    let res =
        post_form(&app, &b, "/admin/users", "/admin/users/invite", &[("email", "new2@a.test"), ("role", "staff")])
            .await;
    app.smtp.set_failing(None);
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(
            "The invitation email to new2@a.test could not be sent. Check the email settings, then use Resend \
             invitation on their page."
        ),
        "{html}"
    );
    assert!(!html.contains("/invite/"), "no invitation link on the page: {html}");
    let (_, html) = page(&b, &app.url("/admin/users")).await;
    assert!(!html.contains("/invite/"), "{html}");

    // Actions need the session's CSRF token.
    let nurse_page = format!("/admin/users/{}", nurse.id);
    let res = b
        .post(app.url(&format!("{nurse_page}/bypass")))
        .form(&[("csrf", "forged"), ("disable", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = post_form(&app, &b, &nurse_page, &format!("{nurse_page}/bypass"), &[("disable", "on")]).await;
    assert_eq!(location(&res), format!("{nurse_page}?notice=bypass"));
    let (_, html) = page(&b, &app.url(&nurse_page)).await;
    assert!(html.contains("granted, usable once until"), "{html}");
    let res = post_form(&app, &b, &nurse_page, &format!("{nurse_page}/mfa"), &[("override", "not_required")]).await;
    assert_eq!(location(&res), format!("{nurse_page}?notice=override"));
    let res = post_form(
        &app,
        &b,
        &nurse_page,
        &format!("{nurse_page}/status"),
        &[("status", "deactivated"), ("confirmed", "yes")],
    )
    .await;
    assert_eq!(location(&res), format!("{nurse_page}?notice=status"));
    let res = post_form(&app, &b, &nurse_page, &format!("{nurse_page}/unknown"), &[]).await;
    assert_eq!(res.status(), 404);

    // Boundaries: another clinic's member, the owner, a platform admin, and oneself.
    let (s, html) = page(&b, &app.url(&format!("/admin/users/{}", other.id))).await;
    assert_eq!(s, 404);
    assert!(html.contains("<a href=\"/admin/users\">Back to Users</a>"), "an admin's 404 leads back to Users: {html}");
    let owner_page = format!("/admin/users/{}", owner.id);
    let res = post_form(&app, &b, &owner_page, &format!("{owner_page}/reset"), &[]).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("Only an owner or platform support"));
    let support = app.platform_admin("support@platform.test").await;
    assert_eq!(page(&b, &app.url(&format!("/admin/users/{}", support.id))).await.0, 404);
    assert_eq!(page(&b, &app.url("/platform")).await.0, 403);
    // Acting on oneself with a factor enrolled and no recent proof: off to step-up first.
    let own = format!("/admin/users/{}", admin.id);
    // Adding a factor elsewhere ends this session (ASVS 7.4.3); sign in again with it,
    // and let the proof of that sign-in age past 10 minutes.
    app.enroll_authenticator(&admin).await;
    assert_ne!(page(&b, &app.url("/admin/users")).await.0, 200, "the other session ended");
    let b = signed_in(&app, "admin@a.test").await;
    app.clock.advance(11 * 60);
    let res = post_form(&app, &b, &own, &format!("{own}/revoke"), &[]).await;
    assert_eq!(location(&res), "/account/2fa/verify?next=admin");

    // A provider has no admin pages; the audit log is the clinic's own.
    let dr = signed_in(&app, "dr@a.test").await;
    let (s, html) = page(&dr, &app.url("/admin/users")).await;
    assert_eq!(s, 403);
    assert!(html.contains("Back to your account") && !html.contains("Go to the sign-in page"), "{html}");
    let (s, html) = page(&b, &app.url("/admin/audit?kind=bypass_granted")).await;
    assert_eq!(s, 200);
    let table = audit_table(&html);
    assert!(table.contains("<td>Bypass granted</td>") && table.contains("nurse@a.test"), "{html}");
    assert!(!table.contains("bypass_granted") && !table.contains("{\""), "words, not codes or JSON: {table}");
    let (s, html) = page(&b, &app.url("/admin/audit?from=someday")).await;
    assert_eq!(s, 400);
    assert!(html.contains("YYYY-MM-DD"));
    let res = b.get(app.url("/admin/audit.csv")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csv = res.text().await.unwrap();
    assert!(csv.contains("\"account_deactivated\"") && !csv.contains("staff@b.test"), "{csv}");
}

async fn platform_console_enables_mfa_and_resets_with_a_note(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let member = app.member(&org, "dr@riverside.test", Role::Provider).await;
    app.platform_admin("support@platform.test").await;
    let b = signed_in(&app, "support@platform.test").await;
    let res = b.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(location(&res), "/platform");
    let (s, html) = page(&b, &app.url("/platform")).await;
    assert!(s == 200 && html.contains("Enable MFA"), "{html}");
    assert!(html.contains("Not enabled"), "{html}");
    let res = post_form(&app, &b, "/platform", "/platform/orgs/riverside-clinic/enable-mfa", &[]).await;
    assert_eq!(location(&res), "/platform?notice=mfa_enabled");
    assert!(app.state.store.get_org(&org.id).await.unwrap().unwrap().mfa.enabled);
    // The console names modes as Clinic Settings does ("Mandatory 2FA", not "required").
    let change = OrgMfaChange { enabled: None, mode: Some(MfaMode::Required), methods: None, grace_days: None };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    let (_, html) = page(&b, &app.url("/platform")).await;
    assert!(html.contains("Enabled: Mandatory 2FA") && !html.contains("mode required"), "{html}");
    let change = OrgMfaChange { enabled: None, mode: Some(MfaMode::Optional), methods: None, grace_days: None };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();

    let res = b.get(app.url("/platform/lookup?email=dr@riverside.test")).send().await.unwrap();
    let account_page = format!("/platform/accounts/{}", member.id);
    assert_eq!(location(&res), account_page);
    let (s, html) = page(&b, &app.url("/platform/lookup?email=nobody@riverside.test")).await;
    assert_eq!(s, 404, "{html}");
    let res = post_form(&app, &b, &account_page, &format!("{account_page}/reset"), &[("note", "")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Record how you verified"));
    let (_, html) = page(&b, &app.url(&account_page)).await;
    assert!(html.contains("signs the member out everywhere"), "the page says what a reset does");
    assert!(html.contains("<dd id=\"member-org\">Riverside"), "support sees the member's organization: {html}");
    // The member is signed in somewhere (a lost phone, say) when support resets MFA.
    let phone = signed_in(&app, "dr@riverside.test").await;
    // "Are you sure?" first, saying what will happen; nothing changes until confirmed.
    let res = post_form(&app, &b, &account_page, &format!("{account_page}/reset"), &[("note", "called back")]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Reset MFA for dr@riverside.test?") && html.contains("signs them out everywhere"), "{html}");
    assert!(html.contains("name=\"confirmed\" value=\"yes\"") && html.contains("value=\"called back\""), "{html}");
    assert_eq!(phone.get(app.url("/account")).send().await.unwrap().status(), 200, "not reset yet");
    let res = post_form(
        &app,
        &b,
        &account_page,
        &format!("{account_page}/reset"),
        &[("note", "called back"), ("confirmed", "yes")],
    )
    .await;
    assert_eq!(location(&res), format!("{account_page}?notice=reset"));
    let (_, html) = page(&b, &app.url(&format!("{account_page}?notice=reset"))).await;
    assert!(html.contains("signed out everywhere"), "the notice says so");
    let res = phone.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&res), "/login", "the reset ended the member's session");
    let (s, html) = page(&b, &app.url("/admin/audit")).await;
    let table = audit_table(&html);
    assert!(
        s == 200 && table.contains("<td>MFA reset</td>") && table.contains("identity verified:</span> called back"),
        "{html}"
    );
}

async fn admins_change_roles_reactivate_and_sign_members_out_on_the_pages(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    let dr = app.member(&a, "dr@a.test", Role::Provider).await;
    let b = signed_in(&app, "admin@a.test").await;
    let dr_browser = signed_in(&app, "dr@a.test").await;
    let dr_page = format!("/admin/users/{}", dr.id);

    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/role"), &[("role", "staff")]).await;
    assert_eq!(location(&res), format!("{dr_page}?notice=role"));
    let account = app.state.store.get_account(dr.id).await.unwrap().unwrap();
    assert_eq!(account.role, Some(Role::Staff));
    // An admin cannot make anyone an owner.
    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/role"), &[("role", "owner")]).await;
    assert_eq!(res.status(), 403);

    // Sign out everywhere: the member's browser is signed out at once.
    assert_eq!(page(&dr_browser, &app.url("/account")).await.0, 200);
    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/revoke"), &[]).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign dr@a.test out everywhere?"), "asked first: {html}");
    assert_eq!(page(&dr_browser, &app.url("/account")).await.0, 200, "not signed out yet");
    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/revoke"), &[("confirmed", "yes")]).await;
    assert_eq!(location(&res), format!("{dr_page}?notice=revoked"));
    let res = dr_browser.get(app.url("/account")).send().await.unwrap();
    assert!(location(&res).starts_with("/login"), "revoked: {}", location(&res));

    // Deactivated members cannot sign in; reactivated ones can again.
    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/status"), &[("status", "deactivated")]).await;
    assert!(res.text().await.unwrap().contains("Deactivate dr@a.test?"), "asked first");
    assert_eq!(app.api_login("staff", "dr@a.test", PASSWORD).await.status(), 200, "not deactivated yet");
    let res =
        post_form(&app, &b, &dr_page, &format!("{dr_page}/status"), &[("status", "deactivated"), ("confirmed", "yes")])
            .await;
    assert_eq!(location(&res), format!("{dr_page}?notice=status"));
    assert_eq!(app.api_login("staff", "dr@a.test", PASSWORD).await.status(), 403);
    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/status"), &[("status", "active")]).await;
    assert_eq!(location(&res), format!("{dr_page}?notice=status"));
    assert_eq!(app.api_login("staff", "dr@a.test", PASSWORD).await.status(), 200);
    let kinds = app.audit_kinds().await;
    for kind in ["role_changed", "sessions_revoked", "account_deactivated", "account_reactivated"] {
        assert!(kinds.iter().any(|(k, _)| k == kind), "{kind} is audited: {kinds:?}");
    }
}

async fn a_bypass_sign_in_offers_setup_again_where_it_is_optional(app: TestApp) {
    use clinic_auth_app::policy::{self, OrgMfaChange};
    use clinic_auth_app::{By, admin};
    use clinic_auth_core::MfaMode;
    let org = app.org("Clinic A", OrgKind::Clinic).await;
    let change = OrgMfaChange { enabled: Some(true), mode: Some(MfaMode::Optional), methods: None, grace_days: None };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    let dr = app.member(&org, "dr@a.test", Role::Provider).await;
    // Dr. turned 2FA on for themself, then lost the phone.
    app.enroll_authenticator(&dr).await;
    admin::grant_bypass(&app.state, &By::operator(), None, "dr@a.test").await.unwrap();

    let b = app.browser();
    let (_, html) = page(&b, &app.url("/login")).await;
    b.post(app.url("/login")).form(&[("csrf", csrf_of(&html).as_str()), ("email", "dr@a.test")]).send().await.unwrap();
    let (_, html) = page(&b, &app.url("/login/password")).await;
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/account/2fa/setup?notice=bypass", "prompted to set up again");
    let (s, html) = page(&b, &app.url("/account/2fa/setup?notice=bypass")).await;
    assert_eq!(s, 200);
    assert!(html.contains("your old methods were"), "{html}");
    assert!(html.contains("Trouble scanning?") && html.contains("href=\"/account\">Cancel"), "{html}");
    // Not forced: the account page is open to them.
    assert_eq!(page(&b, &app.url("/account")).await.0, 200);
    assert!(app.state.store.list_factors(dr.id).await.unwrap().is_empty());
}

async fn a_clinic_reads_platform_support_where_a_platform_admin_acted(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "admin@riverside.test", Role::Admin).await;
    app.member(&org, "dr@riverside.test", Role::Provider).await;
    app.platform_admin("support@platform.test").await;
    let support = app.token("staff", "support@platform.test").await;
    let (s, v) =
        app.post_json("/api/v1/platform/accounts/dr@riverside.test/bypass", &support, serde_json::json!({})).await;
    assert_eq!(s, 201, "{v}");
    let admin = app.token("staff", "admin@riverside.test").await;

    // The clinic's views: the page, its CSV, the API's JSON and CSV.
    let b = signed_in(&app, "admin@riverside.test").await;
    let (s, html) = page(&b, &app.url("/admin/audit?kind=bypass_granted")).await;
    assert!(s == 200 && html.contains("dr@riverside.test"), "{html}");
    assert!(html.contains("Platform support") && !html.contains("support@platform.test"), "{html}");
    let csv = b.get(app.url("/admin/audit.csv")).send().await.unwrap().text().await.unwrap();
    assert!(csv.contains("\"Platform support\"") && !csv.contains("support@platform.test"), "{csv}");
    let (s, events) = app.get_json("/api/v1/orgs/riverside-clinic/audit?kind=bypass_granted", &admin).await;
    assert_eq!(s, 200, "{events}");
    assert_eq!(
        (events[0]["actor"].as_str(), events[0]["subject"].as_str()),
        (Some("Platform support"), Some("dr@riverside.test"))
    );
    let res = app
        .api()
        .get(app.url("/api/v1/orgs/riverside-clinic/audit?format=csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let csv = res.text().await.unwrap();
    assert!(csv.contains("\"Platform support\"") && !csv.contains("support@platform.test"), "{csv}");

    // Platform support's own views keep the address.
    let (s, events) = app.get_json("/api/v1/audit?kind=bypass_granted", &support).await;
    assert_eq!((s, events[0]["actor"].as_str()), (200, Some("support@platform.test")), "{events}");
    let (s, events) = app.get_json("/api/v1/orgs/riverside-clinic/audit?kind=bypass_granted", &support).await;
    assert_eq!((s, events[0]["actor"].as_str()), (200, Some("support@platform.test")), "{events}");
    let res = app.api().get(app.url("/api/v1/audit?format=csv")).bearer_auth(&support).send().await.unwrap();
    assert!(res.text().await.unwrap().contains("\"support@platform.test\""));
    let b = signed_in(&app, "support@platform.test").await;
    let (s, html) = page(&b, &app.url("/admin/audit?kind=bypass_granted")).await;
    assert!(s == 200 && html.contains("support@platform.test"), "{html}");
}

/// The fields Edit Clinic sends when Save is pressed without touching anything: the
/// checked mode, the ticked boxes, the number fields and the hidden ones, as a browser
/// would.
fn form_as_shown(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for input in html.split("<input").skip(1) {
        let tag = input.split('>').next().unwrap_or_default();
        let attr = |name: &str| {
            tag.split(&format!("{name}=\"")).nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned)
        };
        let (Some(kind), Some(name), value) = (attr("type"), attr("name"), attr("value")) else { continue };
        let sent = match kind.as_str() {
            "hidden" | "number" => true,
            "checkbox" | "radio" => tag.contains(" checked"),
            _ => false,
        };
        if sent {
            fields.push((name, value.unwrap_or_default()));
        }
    }
    fields
}

/// Edit Clinic → Save must not turn passkeys off: the form has a box for them
/// ("Trusted devices (passkeys)"), saving without changes changes nothing (not even
/// the audit trail), and a form from before the passkey box keeps them too.
async fn saving_clinic_settings_keeps_passkeys_and_what_the_form_does_not_show(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    let with_passkeys = MethodSet::parse("authenticator,passkey").unwrap();
    let change = OrgMfaChange {
        enabled: Some(true),
        mode: Some(MfaMode::Optional),
        methods: Some(with_passkeys),
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    let mfa_now = || async { app.state.store.get_org(&org.id).await.unwrap().unwrap().mfa };
    let changes = || async { app.audit_of(Some("org_mfa_changed"), 100).await.len() };
    let b = signed_in(&app, "owner@riverside.test").await;

    let (status, html) = page(&b, &app.url("/admin/edit")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Trusted devices (passkeys)"), "the form has a passkey box");
    let before = (mfa_now().await, changes().await);
    let res = b.post(app.url("/admin/edit")).form(&form_as_shown(&html)).send().await.unwrap();
    assert_eq!(location(&res), "/admin?notice=saved");
    assert_eq!((mfa_now().await, changes().await), before, "saving without changes changes nothing");

    // Mandatory 2FA, as the help article says, keeps the passkeys.
    let mut fields = form_as_shown(&html);
    for (name, value) in &mut fields {
        if name == "mode" {
            *value = "required".to_owned();
        }
    }
    b.post(app.url("/admin/edit")).form(&fields).send().await.unwrap();
    assert_eq!(mfa_now().await.mode, MfaMode::Required);
    assert_eq!(mfa_now().await.methods, with_passkeys, "passkeys stay allowed");
    // Saving Mandatory 2FA again as shown, later, moves nothing: not the start that
    // grace periods count from, not the grace period, not the trail.
    let mandatory = (mfa_now().await, changes().await);
    assert!(mandatory.0.required_since.is_some());
    app.clock.advance(120);
    let (_, html) = page(&b, &app.url("/admin/edit")).await;
    assert!(html.contains("name=\"grace_days\" type=\"number\""), "the form has the grace period");
    let res = b.post(app.url("/admin/edit")).form(&form_as_shown(&html)).send().await.unwrap();
    assert_eq!(location(&res), "/admin?notice=saved");
    assert_eq!((mfa_now().await, changes().await), mandatory, "a plain save of Mandatory 2FA changes nothing");

    // A form from before the passkey box (no methods_shown) leaves passkeys alone.
    let (_, html) = page(&b, &app.url("/admin/edit")).await;
    let legacy = [("csrf", csrf_of(&html)), ("mode", "required".to_owned()), ("method_sms", "on".to_owned())];
    b.post(app.url("/admin/edit")).form(&legacy).send().await.unwrap();
    assert_eq!(mfa_now().await.methods, MethodSet::parse("sms,passkey").unwrap());

    // Unticking the passkey box is how passkeys are turned off.
    let (_, html) = page(&b, &app.url("/admin/edit")).await;
    let fields: Vec<_> = form_as_shown(&html).into_iter().filter(|(name, _)| name != "method_passkey").collect();
    b.post(app.url("/admin/edit")).form(&fields).send().await.unwrap();
    assert_eq!(mfa_now().await.methods, MethodSet::parse("sms").unwrap());
}

async fn platform_support_registers_a_clinic_app_and_sees_its_secret_once(app: TestApp) {
    app.platform_admin("support@platform.test").await;
    let org = app.org("Riverside", OrgKind::Clinic).await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    let b = signed_in(&app, "support@platform.test").await;
    let (status, html) = page(&b, &app.url("/platform/apps")).await;
    assert_eq!(status, 200);
    assert!(html.contains("No apps are registered yet."), "{html}");
    assert!(html.contains(&format!("{}/.well-known/openid-configuration", app.base)));

    // A plain-http redirect URI off loopback is refused and the form keeps what was typed.
    let res = post_form(
        &app,
        &b,
        "/platform/apps",
        "/platform/apps",
        &[("name", "Riverside EHR"), ("redirect_uris", "http://ehr.riverside.example/cb"), ("kind", "confidential")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("must use https://"), "{html}");
    assert!(html.contains("http://ehr.riverside.example/cb"));

    let res = post_form(
        &app,
        &b,
        "/platform/apps",
        "/platform/apps",
        &[
            ("name", "Riverside EHR"),
            ("redirect_uris", "https://ehr.riverside.example/cb\nhttps://ehr.riverside.example/cb2"),
            ("kind", "confidential"),
            ("org", org.id.as_str()),
            ("require_mfa", "on"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let secret = html.split("id=\"client-secret\">").nth(1).and_then(|r| r.split('<').next()).unwrap().to_owned();
    let client_id = html.split("id=\"client-id\">").nth(1).and_then(|r| r.split('<').next()).unwrap().to_owned();
    assert_eq!(secret.len(), 43, "a 256-bit secret");
    let stored = app.state.store.get_oidc_client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.org_id.as_ref(), Some(&org.id));
    assert!(stored.require_mfa);
    assert_eq!(stored.redirect_uris.len(), 2);
    assert_ne!(stored.secret_hash.as_deref(), Some(secret.as_str()), "only a hash is stored");
    // The list shows the app, never the secret again.
    let (_, html) = page(&b, &app.url("/platform/apps")).await;
    assert!(html.contains("Riverside EHR") && html.contains(&client_id));
    assert!(!html.contains(&secret));
    assert_eq!(app.audit_of(Some("app_registered"), 10).await.len(), 1);

    // A clinic owner may not see or register apps.
    let owner = signed_in(&app, "owner@riverside.test").await;
    let (status, _) = page(&owner, &app.url("/platform/apps")).await;
    assert_eq!(status, 403);
}

async fn an_admin_unlocks_a_member_locked_by_wrong_codes(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    app.member(&a, "nurse@a.test", Role::Staff).await;
    let dr = app.member(&a, "dr@a.test", Role::Provider).await;
    app.enroll_authenticator(&dr).await;
    // Someone with the password guesses codes until the member is locked out.
    let mut locked = serde_json::Value::Null;
    for _ in 0..4 {
        let (flow, _) = crate::mfa::password_step(&app, "dr@a.test").await;
        for _ in 0..4 {
            let (s, v) =
                crate::mfa::post(&app, &format!("/api/v1/login/{flow}/code"), serde_json::json!({"code": "000000"}))
                    .await;
            if s == 429 {
                locked = v;
            }
        }
    }
    let message = locked["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "the member is locked out");
    // The member's own code is refused while locked.
    let code = app.authenticator_code("dr@a.test").unwrap();
    let (status, _) = crate::mfa::sign_in_with(&app, "dr@a.test", None, &code).await;
    assert_eq!(status, 429, "locked");

    let b = signed_in(&app, "admin@a.test").await;
    let dr_page = format!("/admin/users/{}", dr.id);
    let (_, html) = page(&b, &app.url(&dr_page)).await;
    assert!(html.contains("id=\"member-locked\"") && html.contains(">Unlock</button>"), "{html}");
    // A staff member cannot unlock anyone.
    let nurse = app.token("staff", "nurse@a.test").await;
    let (s, _) =
        app.post_json(&format!("/api/v1/orgs/{}/members/{}/unlock", a.id, dr.id), &nurse, serde_json::json!({})).await;
    assert_eq!(s, 403);
    let res = post_form(&app, &b, &dr_page, &format!("{dr_page}/unlock"), &[]).await;
    assert_eq!(location(&res), format!("{dr_page}?notice=unlocked"));
    let (_, html) = page(&b, &app.url(&dr_page)).await;
    assert!(!html.contains("id=\"member-locked\""), "{html}");
    assert_eq!(app.audit_of(Some("second_factor_unlocked"), 10).await.len(), 1);
    app.clock.advance(30);
    let code = app.authenticator_code("dr@a.test").unwrap();
    let (status, v) = crate::mfa::sign_in_with(&app, "dr@a.test", None, &code).await;
    assert_eq!(status, 200, "unlocked, the member signs in with their own code: {v}");
    // The API does the same.
    let admin = app.token("staff", "admin@a.test").await;
    let (s, _) =
        app.post_json(&format!("/api/v1/orgs/{}/members/{}/unlock", a.id, dr.id), &admin, serde_json::json!({})).await;
    assert_eq!(s, 204);
}

//! The HTML pages as a browser uses them: forms, cookies, CSRF tokens, redirects.

use clinic_auth_app::{By, accounts};
use clinic_auth_core::{AccountKind, OrgKind};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp, csrf_of};

both_stores!(
    setup_link_creates_the_first_platform_admin_once,
    invited_member_sets_a_password_signs_in_and_out,
    patient_signs_in_at_the_portal_only,
    forms_without_a_valid_csrf_token_are_refused,
    pages_send_security_headers,
    password_page_without_a_flow_sends_back_to_email,
    signing_in_again_ends_the_browsers_previous_session,
);

async fn page(client: &reqwest::Client, url: &str) -> (u16, String) {
    let res = client.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Email → Continue → password → Continue, as the pages ask.
async fn sign_in_with_pages(
    app: &TestApp,
    b: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let (_, html) = page(b, &app.url(base)).await;
    let res = b.post(app.url(base)).form(&[("csrf", csrf_of(&html).as_str()), ("email", email)]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{base}/password"));
    let (status, html) = page(b, &app.url(&format!("{base}/password"))).await;
    assert_eq!(status, 200);
    assert!(html.contains("autocomplete=\"current-password\""));
    b.post(app.url(&format!("{base}/password")))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn setup_link_creates_the_first_platform_admin_once(app: TestApp) {
    let link = accounts::ensure_setup_link(&app.state).await.unwrap().expect("no admin yet, so a link");
    let path = link.strip_prefix(&app.base).unwrap().to_owned();
    // A second start makes a new link and voids the first.
    let link2 = accounts::ensure_setup_link(&app.state).await.unwrap().unwrap();
    let b = app.browser();
    let (status, _) = page(&b, &link).await;
    assert_eq!(status, 410, "the replaced link no longer works");
    let path2 = link2.strip_prefix(&app.base).unwrap().to_owned();
    let (status, html) = page(&b, &app.url(&path2)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Create the first platform admin"));
    assert!(html.contains("autocomplete=\"new-password\""));
    let csrf = csrf_of(&html);
    let form = [
        ("csrf", csrf.as_str()),
        ("email", "root@platform.test"),
        ("new_password", PASSWORD),
        ("confirm_password", PASSWORD),
    ];
    let res = b.post(app.url(&path2)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?notice=password_set");
    let res = b.post(app.url(&path2)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 410, "a setup link works once");
    let _ = path;
    assert!(accounts::ensure_setup_link(&app.state).await.unwrap().is_none(), "no new link once an admin exists");
    // Platform admins always use a second factor: the first sign-in sets one up.
    let res = sign_in_with_pages(&app, &b, "/login", "root@platform.test", PASSWORD).await;
    assert_eq!(location(&res), "/login/setup");
    let (_, html) = page(&b, &app.url("/login/setup")).await;
    let key = html.split("id=\"setup-key\">").nth(1).and_then(|r| r.split('<').next()).expect("setup key");
    let uri = format!("otpauth://totp/x?secret={}", key.replace(' ', ""));
    use clinic_auth_core::Clock;
    let code = crate::otp::code(&uri, app.clock.now().0);
    let res = b
        .post(app.url("/login/setup"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("Save your recovery code"));
    let (_, html) = page(&b, &app.url("/account")).await;
    assert!(html.contains("Platform admin") && html.contains("root@platform.test"), "{html}");
    assert!(html.contains("Two-factor authentication is <strong>on</strong>."), "{html}");
    assert!(app.audit_kinds().await.contains(&("account_created".into(), "success".into())));
}

async fn invited_member_sets_a_password_signs_in_and_out(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let added = accounts::add_account(
        &app.state,
        &By::operator(),
        AccountKind::Member,
        Some(org.id.as_str()),
        "dr.lee@riverside.test",
        Some(clinic_auth_core::Role::Provider),
        None,
    )
    .await
    .unwrap();
    let invite = added.invitation_url.expect("invitation link");
    let b = app.browser();
    let (status, html) = page(&b, &invite).await;
    assert_eq!(status, 200);
    assert!(html.contains("Riverside Clinic") && html.contains("Set your password"));
    let csrf = csrf_of(&html);
    // A weak password is refused with the reason, and nothing is stored.
    let res = b
        .post(&invite)
        .form(&[("csrf", csrf.as_str()), ("new_password", "password"), ("confirm_password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("at least 15 characters"));
    let res = b
        .post(&invite)
        .form(&[("csrf", csrf.as_str()), ("new_password", PASSWORD), ("confirm_password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?notice=password_set");
    let (_, html) = page(&b, &app.url("/login?notice=password_set")).await;
    assert!(html.contains("Your password is set"));

    let before = b.get(app.url("/login")).send().await.unwrap();
    drop(before);
    let res = sign_in_with_pages(&app, &b, "/login", "dr.lee@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");
    let set_cookie: Vec<String> =
        res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session_cookie = set_cookie.iter().find(|c| c.starts_with("clinic_auth_session=")).expect("session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"), "{session_cookie}");
    let (status, html) = page(&b, &app.url("/account")).await;
    assert_eq!(status, 200);
    assert!(html.contains("dr.lee@riverside.test") && html.contains("Riverside Clinic") && html.contains("provider"));

    let res = b.post(app.url("/logout")).form(&[("csrf", csrf_of(&html).as_str())]).send().await.unwrap();
    assert_eq!(location(&res), "/login?notice=signed_out");
    let res = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&res), "/login", "signed out: the account page sends to sign-in");
    // The invitation works once.
    let (status, html) = page(&b, &invite).await;
    assert_eq!(status, 410);
    assert!(html.contains("already been used or has expired"));
    let kinds = app.audit_kinds().await;
    for k in ["invitation_accepted", "sign_in", "sign_out"] {
        assert!(kinds.iter().any(|(kind, _)| kind == k), "audit has {k}");
    }
}

async fn patient_signs_in_at_the_portal_only(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.patient(&org, "pat@example.test").await;
    let b = app.browser();
    let res = sign_in_with_pages(&app, &b, "/login", "pat@example.test", PASSWORD).await;
    assert_eq!(res.status(), 401, "patients cannot sign in on the staff page");
    assert!(res.text().await.unwrap().contains("Email or password is incorrect."));
    let b = app.browser();
    let (_, html) = page(&b, &app.url("/portal/login")).await;
    assert!(html.contains("Patient portal sign-in"));
    let res = sign_in_with_pages(&app, &b, "/portal/login", "pat@example.test", PASSWORD).await;
    assert_eq!(location(&res), "/account");
    let (_, html) = page(&b, &app.url("/account")).await;
    assert!(html.contains("Patient portal") && html.contains("pat@example.test"));
    let res = b.post(app.url("/logout")).form(&[("csrf", csrf_of(&html).as_str())]).send().await.unwrap();
    assert_eq!(location(&res), "/portal/login?notice=signed_out");
}

async fn forms_without_a_valid_csrf_token_are_refused(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", clinic_auth_core::Role::Provider).await;
    let b = app.browser();
    let (_, html) = page(&b, &app.url("/login")).await;
    let good = csrf_of(&html);
    let res = b.post(app.url("/login")).form(&[("email", "dr.lee@riverside.test")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = b
        .post(app.url("/login"))
        .form(&[("csrf", "x".repeat(43).as_str()), ("email", "dr.lee@riverside.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A right token from a cross-site page is still refused.
    let res = b
        .post(app.url("/login"))
        .header("origin", "https://evil.test")
        .form(&[("csrf", good.as_str()), ("email", "dr.lee@riverside.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("came from another site"));
    let res = b
        .post(app.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", good.as_str()), ("email", "a@b.co")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A signed-in form needs the session's token, not the pre-sign-in one.
    let res = sign_in_with_pages(&app, &b, "/login", "dr.lee@riverside.test", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let res = b.post(app.url("/logout")).form(&[("csrf", good.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let (status, _) = page(&b, &app.url("/account")).await;
    assert_eq!(status, 200, "still signed in after the refused sign-out");
}

async fn pages_send_security_headers(app: TestApp) {
    let res = app.browser().get(app.url("/login")).send().await.unwrap();
    let h = res.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script"), "no inline script");
    assert!(!html.contains("http://") && !html.contains("https://"), "no assets from other hosts");
    let css = app.browser().get(app.url("/static/style.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

async fn password_page_without_a_flow_sends_back_to_email(app: TestApp) {
    let b = app.browser();
    let res = b.get(app.url("/login/password")).send().await.unwrap();
    assert_eq!(location(&res), "/login");
    // An expired flow says so.
    let (_, html) = page(&b, &app.url("/login")).await;
    b.post(app.url("/login")).form(&[("csrf", csrf_of(&html).as_str()), ("email", "a@b.co")]).send().await.unwrap();
    app.clock.advance(clinic_auth_core::login_flow::FLOW_LIFETIME_SECS);
    let res = b.get(app.url("/login/password")).send().await.unwrap();
    assert_eq!(location(&res), "/login?notice=flow_expired");
    let (_, html) = page(&b, &app.url("/login?notice=flow_expired")).await;
    assert!(html.contains("took too long"));
    let (_, html) = page(&b, &app.url("/login?notice=%3Cscript%3E")).await;
    assert!(!html.contains("<script>"), "notices are fixed texts, never echoed");
}

fn session_token(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("clinic_auth_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned()
}

async fn signing_in_again_ends_the_browsers_previous_session(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", clinic_auth_core::Role::Provider).await;
    let b = app.browser();
    let first = session_token(&sign_in_with_pages(&app, &b, "/login", "dr.lee@riverside.test", PASSWORD).await);
    assert_eq!(app.get_json("/api/v1/me", &first).await.0, 200);
    let second = session_token(&sign_in_with_pages(&app, &b, "/login", "dr.lee@riverside.test", PASSWORD).await);
    assert_ne!(first, second, "a new session id at every sign-in");
    assert_eq!(
        app.get_json("/api/v1/me", &first).await.0,
        401,
        "the old session is gone, not just replaced in the cookie"
    );
    assert_eq!(app.get_json("/api/v1/me", &second).await.0, 200);
}

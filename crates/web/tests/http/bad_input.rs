//! Bad input gets a clear error with a stable code, never a panic or a 500.

use clinic_auth_app::{By, accounts};
use clinic_auth_core::{AccountKind, OrgKind, Role};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{TestApp, csrf_of};

both_stores!(api_errors_are_json_with_stable_codes, pages_show_clear_errors, expired_invitations_are_refused);

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("<no code>").to_owned())
}

async fn api_errors_are_json_with_stable_codes(app: TestApp) {
    let c = app.api();
    let login = app.url("/api/v1/login");
    assert_eq!(code(app.start_login("staff", "not-an-email").await).await, (400, "invalid_email".into()));
    assert_eq!(code(app.start_login("doctor", "a@b.co").await).await, (400, "invalid_realm".into()));
    let res = c.post(&login).header("content-type", "application/json").body("{\"email\": ").send().await.unwrap();
    assert_eq!(code(res).await, (400, "invalid_request".into()));
    let res = c.post(&login).body("email=a@b.co").send().await.unwrap();
    assert_eq!(code(res).await, (415, "unsupported_media_type".into()));
    // Just over the 16 KiB limit: small enough to be sent whole before the refusal.
    let big = json!({"email": "a@b.co", "pad": "x".repeat(17 * 1024)});
    let res = c.post(&login).json(&big).send().await.unwrap();
    assert_eq!(code(res).await, (413, "payload_too_large".into()));
    let res = c.get(&login).send().await.unwrap();
    assert_eq!(code(res).await, (405, "method_not_allowed".into()));
    let res = c.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(code(res).await, (404, "not_found".into()));
    assert_eq!(code(app.submit_password(&"x".repeat(43), "pw").await).await, (410, "flow_expired".into()));
    assert_eq!(code(app.submit_password("not-a-flow", "pw").await).await, (410, "flow_expired".into()));
    app.platform_admin("support@platform.test").await;
    let t = app.token("staff", "support@platform.test").await;
    let (s, e) =
        app.post_json("/api/v1/orgs/no-such-clinic/members", &t, json!({"email": "a@b.co", "role": "staff"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, e) =
        app.post_json("/api/v1/orgs/NOT A SLUG/members", &t, json!({"email": "a@b.co", "role": "staff"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let members = format!("/api/v1/orgs/{}/members", org.id);
    let (s, e) = app.post_json(&members, &t, json!({"email": "a@b", "role": "staff"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_email")));
    let (s, e) = app.post_json(&members, &t, json!({"email": "a@b.co", "role": "doctor"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_role")));
    let (s, e) = app.post_json(&members, &t, json!({"email": "a@b.co"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_role")));
    let (s, e) = app.post_json("/api/v1/orgs", &t, json!({"name": "  ", "kind": "clinic"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_name")));
    let (s, e) = app.post_json("/api/v1/orgs", &t, json!({"name": "A", "kind": "clinic", "id": "Bad Id"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_org_id")));
    let (s, e) = app.post_json("/api/v1/accounts/not-a-uuid/password-reset", &t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    // Nothing was half-written by the refused requests.
    let (s, _) = app.post_json(&members, &t, json!({"email": "a@b.co", "role": "staff"})).await;
    assert_eq!(s, 201);
}

async fn pages_show_clear_errors(app: TestApp) {
    let b = app.browser();
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let res = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "not an email")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("Enter a valid email address"));
    assert!(html.contains("value=\"not an email\""), "what was typed stays in the field");
    let res = b
        .post(app.url("/login"))
        .body("%%%")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let res = b.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("Page not found"));
    let res = b.get(app.url("/invite/garbage")).send().await.unwrap();
    assert_eq!(res.status(), 410);
    let big = "x".repeat(64 * 1024);
    let res = b.post(app.url("/login")).form(&[("csrf", "x"), ("email", big.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("too large"));
}

async fn expired_invitations_are_refused(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let added = accounts::add_account(
        &app.state,
        &By::operator(),
        AccountKind::Member,
        Some(org.id.as_str()),
        "late@riverside.test",
        Some(Role::Staff),
        None,
    )
    .await
    .unwrap();
    let invite = added.invitation_url.unwrap();
    app.clock.advance(7 * 24 * 3600 - 1);
    assert_eq!(app.browser().get(&invite).send().await.unwrap().status(), 200);
    app.clock.advance(1);
    let res = app.browser().get(&invite).send().await.unwrap();
    assert_eq!(res.status(), 410);
    assert!(res.text().await.unwrap().contains("Ask your administrator for a new one"));
    let token = invite.rsplit('/').next().unwrap();
    let res = app
        .api()
        .post(app.url(&format!("/api/v1/password-links/{token}")))
        .json(&json!({"password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(res).await, (410, "link_expired".into()));
}

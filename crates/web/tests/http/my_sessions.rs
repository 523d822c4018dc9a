//! "My sessions": the account page and `/api/v1/me/sessions` list the account's live
//! sessions and sign out the others, one or all, never someone else's; each ending is
//! audited and told to the apps that session signed into.

use axum::http::StatusCode;
use clinic_auth_core::{OrgKind, Role};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{TestApp, csrf_of, location_of, page_of, without_request_id};
use crate::oidc_logout::{claims, listener, register, signed_into, wait_for};

both_stores!(
    the_account_page_lists_each_session_and_marks_this_device,
    signing_out_another_session_from_the_list_ends_it_and_keeps_this_one,
    signing_out_of_all_other_sessions_leaves_only_this_one,
    another_members_session_cannot_be_ended,
    session_forms_without_the_csrf_token_are_refused,
    the_api_lists_ends_and_revokes_the_other_sessions,
    idle_and_expired_sessions_are_not_listed_nor_counted,
    the_apps_of_each_ended_session_are_told_and_this_ones_are_not,
);

const WINDOWS_CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
const LINUX_FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0";

const DR: &str = "dr.lee@riverside.test";

/// A browser sending `user_agent`, signed in as `email` on the staff pages.
async fn signed_in_browser(app: &TestApp, email: &str, user_agent: &str) -> reqwest::Client {
    let b = app.browser_as(user_agent);
    let res = app.sign_in_with_pages(&b, "/login", email).await;
    assert_eq!(location_of(&res), "/account", "{email} is signed in");
    b
}

/// The account page's session rows: (sid, the row's HTML).
fn session_rows(html: &str) -> Vec<(String, String)> {
    let list = html.split("<ul class=\"sessions\">").nth(1).expect("a list of sessions");
    let list = list.split("</ul>").next().unwrap();
    list.split("<li data-sid=\"")
        .skip(1)
        .map(|row| (row.split('"').next().unwrap().to_owned(), row.split("</li>").next().unwrap().to_owned()))
        .collect()
}

/// The sid of the row marked "This device" on `b`'s account page, and the page.
async fn this_device(app: &TestApp, b: &reqwest::Client) -> (String, String) {
    let (status, html) = page_of(b, &app.url("/account")).await;
    assert_eq!(status, 200);
    let marked: Vec<String> =
        session_rows(&html).into_iter().filter(|(_, row)| row.contains("This device")).map(|(sid, _)| sid).collect();
    assert_eq!(marked.len(), 1, "one session is this device: {html}");
    (marked[0].clone(), html)
}

/// Whether `b` is still signed in: its account page answers, or it is sent to sign in.
async fn signed_in(app: &TestApp, b: &reqwest::Client) -> bool {
    let res = b.get(app.url("/account")).send().await.unwrap();
    match res.status().as_u16() {
        200 => true,
        303 => {
            assert_eq!(location_of(&res), "/login", "a signed-out browser is sent to sign in");
            false
        }
        other => panic!("the account page answered {other}"),
    }
}

async fn post_form(app: &TestApp, b: &reqwest::Client, path: &str, csrf: Option<&str>) -> reqwest::Response {
    let form: Vec<(&str, &str)> = csrf.map(|c| vec![("csrf", c)]).unwrap_or_default();
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let res = app.api().delete(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The session list of the bearer token's account, as the API answers it.
async fn api_list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get_json("/api/v1/me/sessions", token).await;
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

/// The sid the API marks `current` for `token`.
async fn api_sid(app: &TestApp, token: &str) -> String {
    let list = api_list(app, token).await;
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    current[0]["sid"].as_str().unwrap().to_owned()
}

async fn the_account_page_lists_each_session_and_marks_this_device(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, DR, Role::Provider).await;
    let laptop = signed_in_browser(&app, DR, WINDOWS_CHROME).await;
    app.clock.advance(60);
    let phone = signed_in_browser(&app, DR, IPHONE_SAFARI).await;

    let (laptop_sid, html) = this_device(&app, &laptop).await;
    assert!(html.contains("Your sessions"), "{html}");
    let rows = session_rows(&html);
    assert_eq!(rows.len(), 2, "both sessions are listed: {html}");
    let (phone_sid, phone_row) = rows.iter().find(|(sid, _)| *sid != laptop_sid).unwrap().clone();
    let laptop_row = &rows.iter().find(|(sid, _)| *sid == laptop_sid).unwrap().1;
    assert_eq!(rows[0].0, phone_sid, "newest first");
    assert!(laptop_row.contains("Chrome on Windows"), "{laptop_row}");
    assert!(phone_row.contains("Safari on iPhone"), "{phone_row}");
    for row in [laptop_row, &phone_row] {
        assert!(row.contains("from 127.0.0.1"), "where from: {row}");
    }
    assert!(laptop_row.contains("signed in 2027-01-15 08:00 UTC"), "{laptop_row}");
    assert!(phone_row.contains("signed in 2027-01-15 08:01 UTC"), "{phone_row}");
    // This device is signed out with "Sign out" below, not from the list.
    assert!(!laptop_row.contains("<form"), "{laptop_row}");
    assert!(phone_row.contains(&format!("action=\"/account/sessions/{phone_sid}/sign-out\"")), "{phone_row}");
    assert!(html.contains("Sign out of all other sessions"));
    assert!(!html.contains("token_hash") && !html.contains("hash-"), "no token hash is shown");

    // The phone sees the same two, with "This device" on its own.
    let (marked, html) = this_device(&app, &phone).await;
    assert_eq!(marked, phone_sid);
    assert_eq!(session_rows(&html).len(), 2);
    let phone_row = session_rows(&html).into_iter().find(|(sid, _)| *sid == phone_sid).unwrap().1;
    assert!(phone_row.contains("Safari on iPhone") && phone_row.contains("last active 2027-01-15 08:01 UTC"));

    // Alone, there is nothing else to sign out.
    app.member(&org, "alone@riverside.test", Role::Staff).await;
    let (_, other) = this_device(&app, &signed_in_browser(&app, "alone@riverside.test", LINUX_FIREFOX).await).await;
    assert!(!other.contains("Sign out of all other sessions"), "{other}");
}

async fn signing_out_another_session_from_the_list_ends_it_and_keeps_this_one(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let dr = app.member(&org, DR, Role::Provider).await;
    let laptop = signed_in_browser(&app, DR, WINDOWS_CHROME).await;
    let phone = signed_in_browser(&app, DR, IPHONE_SAFARI).await;
    let (laptop_sid, html) = this_device(&app, &laptop).await;
    let (phone_sid, _) = this_device(&app, &phone).await;
    let stamp = app.state.store.get_account(dr.id).await.unwrap().unwrap().security_stamp;

    let path = format!("/account/sessions/{phone_sid}/sign-out");
    let res = post_form(&app, &laptop, &path, Some(&csrf_of(&html))).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location_of(&res), "/account?notice=session_signed_out");
    let (_, html) = page_of(&laptop, &app.url("/account?notice=session_signed_out")).await;
    assert!(html.contains("That session was signed out."), "{html}");
    let left: Vec<String> = session_rows(&html).into_iter().map(|(sid, _)| sid).collect();
    assert_eq!(left, vec![laptop_sid.clone()]);
    assert!(!signed_in(&app, &phone).await, "the phone's next request is sent to sign in");
    assert!(signed_in(&app, &laptop).await, "this one stays");
    // Its own session cannot be ended from the list: "Sign out" does that.
    let res =
        post_form(&app, &laptop, &format!("/account/sessions/{laptop_sid}/sign-out"), Some(&csrf_of(&html))).await;
    assert_eq!(res.status(), 409);
    assert!(signed_in(&app, &laptop).await);

    let events = app.audit_of(Some("session_ended"), 10).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.outcome, "success");
    assert_eq!((e.actor_id.clone(), e.subject_id.clone()), (Some(dr.id.to_string()), Some(dr.id.to_string())));
    assert_eq!(e.org_id.as_deref(), Some(org.id.as_str()));
    let detail: Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(detail, json!({"sid": phone_sid, "by": "self"}));
    assert_eq!(e.user_agent, WINDOWS_CHROME, "written for the session that asked");
    let stamp_after = app.state.store.get_account(dr.id).await.unwrap().unwrap().security_stamp;
    assert_eq!(stamp_after, stamp, "the security stamp stays");
}

async fn signing_out_of_all_other_sessions_leaves_only_this_one(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let dr = app.member(&org, DR, Role::Provider).await;
    app.member(&org, "colleague@riverside.test", Role::Staff).await;
    let laptop = signed_in_browser(&app, DR, WINDOWS_CHROME).await;
    let phone = signed_in_browser(&app, DR, IPHONE_SAFARI).await;
    let desktop = signed_in_browser(&app, DR, LINUX_FIREFOX).await;
    let colleague = signed_in_browser(&app, "colleague@riverside.test", LINUX_FIREFOX).await;
    let (desktop_sid, html) = this_device(&app, &desktop).await;
    assert_eq!(session_rows(&html).len(), 3);
    let stamp = app.state.store.get_account(dr.id).await.unwrap().unwrap().security_stamp;

    let res = post_form(&app, &desktop, "/account/sessions/sign-out-others", Some(&csrf_of(&html))).await;
    assert_eq!(location_of(&res), "/account?notice=other_sessions_ended");
    let (marked, html) = this_device(&app, &desktop).await;
    assert_eq!(marked, desktop_sid);
    assert_eq!(session_rows(&html).len(), 1, "one left: {html}");
    assert!(!html.contains("Sign out of all other sessions"));
    assert!(!signed_in(&app, &laptop).await && !signed_in(&app, &phone).await);
    assert!(signed_in(&app, &desktop).await);
    assert!(signed_in(&app, &colleague).await, "another member's session is untouched");
    let stamp_after = app.state.store.get_account(dr.id).await.unwrap().unwrap().security_stamp;
    assert_eq!(stamp_after, stamp, "the security stamp stays: this session's sign-ins into apps go on");

    let events = app.audit_of(Some("other_sessions_ended"), 10).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor_id, Some(dr.id.to_string()));
    assert_eq!(
        serde_json::from_str::<Value>(&events[0].detail).unwrap(),
        json!({"by": "self", "kept_sid": desktop_sid})
    );
    // Nothing more to end: nothing more audited.
    let res = post_form(&app, &desktop, "/account/sessions/sign-out-others", Some(&csrf_of(&html))).await;
    assert_eq!(location_of(&res), "/account?notice=other_sessions_ended");
    assert_eq!(app.audit_of(Some("other_sessions_ended"), 10).await.len(), 1);
}

async fn another_members_session_cannot_be_ended(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, DR, Role::Provider).await;
    app.member(&org, "nurse@riverside.test", Role::Staff).await;
    let dr = signed_in_browser(&app, DR, WINDOWS_CHROME).await;
    let dr_token = app.token("staff", DR).await;
    let nurse = signed_in_browser(&app, "nurse@riverside.test", IPHONE_SAFARI).await;
    let nurse_token = app.token("staff", "nurse@riverside.test").await;
    let (nurse_sid, _) = this_device(&app, &nurse).await;
    let nurse_api_sid = api_sid(&app, &nurse_token).await;

    // Over the API: as unknown as a made-up sid, and nothing is said about it.
    for sid in [nurse_sid.as_str(), nurse_api_sid.as_str()] {
        let (status, body) = delete(&app, &format!("/api/v1/me/sessions/{sid}"), &dr_token).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
        let (_, made_up) = delete(&app, "/api/v1/me/sessions/0123456789abcdef", &dr_token).await;
        assert_eq!(
            without_request_id(body),
            without_request_id(made_up),
            "another member's session answers like one that does not exist"
        );
    }
    assert!(
        api_list(&app, &dr_token).await.iter().all(|s| s["sid"] != nurse_sid.as_str() && s["sid"] != nurse_api_sid),
        "another member's sessions are never listed"
    );
    // Through the page: refused, no effect.
    let (_, html) = page_of(&dr, &app.url("/account")).await;
    let res = post_form(&app, &dr, &format!("/account/sessions/{nurse_sid}/sign-out"), Some(&csrf_of(&html))).await;
    assert_eq!(res.status(), 404);
    assert!(signed_in(&app, &nurse).await, "the nurse is still signed in");
    assert_eq!(app.get_json("/api/v1/me", &nurse_token).await.0, 200);
    assert!(app.audit_of(Some("session_ended"), 10).await.is_empty(), "nothing ended, nothing audited");
}

async fn session_forms_without_the_csrf_token_are_refused(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, DR, Role::Provider).await;
    let laptop = signed_in_browser(&app, DR, WINDOWS_CHROME).await;
    let phone = signed_in_browser(&app, DR, IPHONE_SAFARI).await;
    let (phone_sid, phone_html) = this_device(&app, &phone).await;
    let one = format!("/account/sessions/{phone_sid}/sign-out");
    let others = "/account/sessions/sign-out-others";
    // No token, a made-up one, and another session's (the phone's) token.
    let phone_csrf = csrf_of(&phone_html);
    let made_up = "x".repeat(43);
    for csrf in [None, Some(made_up.as_str()), Some(phone_csrf.as_str())] {
        for path in [one.as_str(), others] {
            let res = post_form(&app, &laptop, path, csrf).await;
            assert_eq!(res.status(), 403, "{path} with {csrf:?}");
        }
    }
    // Nor cross-site, even with the right token.
    let (_, html) = page_of(&laptop, &app.url("/account")).await;
    let res = laptop
        .post(app.url(others))
        .header("origin", "https://evil.test")
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(signed_in(&app, &phone).await, "the phone is still signed in");
    assert!(app.audit_of(Some("session_ended"), 10).await.is_empty());
    assert!(app.audit_of(Some("other_sessions_ended"), 10).await.is_empty());
}

async fn the_api_lists_ends_and_revokes_the_other_sessions(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let dr = app.member(&org, DR, Role::Provider).await;
    let first = app.token("staff", DR).await;
    app.clock.advance(5);
    let second = app.token("staff", DR).await;
    app.clock.advance(5);
    let third = app.token("staff", DR).await;
    app.clock.advance(5);
    let browser = signed_in_browser(&app, DR, IPHONE_SAFARI).await;
    assert_eq!(app.get_json("/api/v1/me/sessions", "not-a-token").await.0, 401);

    let list = api_list(&app, &first).await;
    assert_eq!(list.len(), 4, "{list:?}");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let s = current[0];
    assert_eq!(s["device"], "Unknown device", "a program that sends no User-Agent");
    assert_eq!((s["client_ip"].as_str(), s["user_agent"].as_str()), (Some("127.0.0.1"), Some("")));
    assert!(s["created_at"].is_i64() && s["last_seen_at"].is_i64() && s["sid"].is_string());
    let fields: Vec<&String> = s.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["client_ip", "created_at", "current", "device", "last_seen_at", "sid", "user_agent"],
        "no token, no hash"
    );
    assert_eq!(list[0]["device"], "Safari on iPhone", "newest first");
    let first_sid = api_sid(&app, &first).await;
    let second_sid = api_sid(&app, &second).await;

    // One other session.
    let (status, body) = delete(&app, &format!("/api/v1/me/sessions/{second_sid}"), &first).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(app.get_json("/api/v1/me", &second).await.0, 401, "that session has ended");
    assert_eq!(app.get_json("/api/v1/me", &first).await.0, 200);
    let (status, body) = delete(&app, &format!("/api/v1/me/sessions/{second_sid}"), &first).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "once");
    // Not its own: that is /api/v1/logout.
    let (status, body) = delete(&app, &format!("/api/v1/me/sessions/{first_sid}"), &first).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("current_session")), "{body}");
    assert_eq!(app.get_json("/api/v1/me", &first).await.0, 200);
    assert_eq!(app.audit_of(Some("session_ended"), 10).await.len(), 1);

    // Every other one: the third token and the browser.
    let (status, body) = app.post_json("/api/v1/me/sessions/revoke-others", &first, json!({})).await;
    assert_eq!((status, body), (200, json!({"ended_sessions": 2})));
    assert_eq!(app.get_json("/api/v1/me", &third).await.0, 401);
    assert!(!signed_in(&app, &browser).await);
    let list = api_list(&app, &first).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sid"].as_str(), Some(first_sid.as_str()));
    let (status, body) = app.post_json("/api/v1/me/sessions/revoke-others", &first, json!({})).await;
    assert_eq!((status, body), (200, json!({"ended_sessions": 0})));
    let events = app.audit_of(Some("other_sessions_ended"), 10).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject_id, Some(dr.id.to_string()));
}

async fn idle_and_expired_sessions_are_not_listed_nor_counted(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, DR, Role::Provider).await;
    let stale = app.token("staff", DR).await;
    let kept = app.token("staff", DR).await;
    let stale_sid = api_sid(&app, &stale).await;
    // `kept` is used every ten minutes; `stale` is left idle past fifteen.
    app.clock.advance(10 * 60);
    assert_eq!(api_list(&app, &kept).await.len(), 2);
    app.clock.advance(10 * 60);
    let list = api_list(&app, &kept).await;
    assert_eq!(list.len(), 1, "the idle session is not listed: {list:?}");
    assert_ne!(list[0]["sid"].as_str(), Some(stale_sid.as_str()));
    let (status, body) = app.post_json("/api/v1/me/sessions/revoke-others", &kept, json!({})).await;
    assert_eq!((status, body), (200, json!({"ended_sessions": 0})), "an idle session is not counted as ended");
    assert_eq!(app.get_json("/api/v1/me", &stale).await.0, 401);

    // Past the absolute limit (12 hours from its sign-in at 0 minutes), even when used
    // every ten minutes: a session signed in later is still listed.
    app.clock.advance(60);
    let later = app.token("staff", DR).await;
    for elapsed in (31..=721).step_by(10) {
        app.clock.advance(10 * 60);
        let listed = api_list(&app, &later).await.len();
        assert_eq!(listed, if elapsed < 12 * 60 { 2 } else { 1 }, "after {elapsed} minutes");
        assert_eq!(app.get_json("/api/v1/me", &kept).await.0, if elapsed < 12 * 60 { 200 } else { 401 });
    }
}

async fn the_apps_of_each_ended_session_are_told_and_this_ones_are_not(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let dr = app.member(&org, DR, Role::Provider).await;
    let (ehr_url, ehr_seen) = listener(StatusCode::OK).await;
    let ehr = register(&app, "EHR", Some(&ehr_url)).await;
    let tokens = [app.token("staff", DR).await, app.token("staff", DR).await, app.token("staff", DR).await];
    let mut sids = Vec::new();
    for t in &tokens {
        let sid = api_sid(&app, t).await;
        signed_into(&app, &ehr, &dr, &sid).await;
        sids.push(sid);
    }
    let told = |tokens: Vec<String>| -> Vec<String> {
        let mut sids: Vec<String> =
            tokens.iter().map(|t| claims(t)["sid"].as_str().unwrap_or_default().to_owned()).collect();
        sids.sort();
        sids
    };

    let (status, _) = delete(&app, &format!("/api/v1/me/sessions/{}", sids[1]), &tokens[0]).await;
    assert_eq!(status, 204);
    assert_eq!(told(wait_for(&ehr_seen, 1).await), [sids[1].clone()], "the ended session's app is told");

    let (status, body) = app.post_json("/api/v1/me/sessions/revoke-others", &tokens[0], json!({})).await;
    assert_eq!((status, body), (200, json!({"ended_sessions": 1})));
    let mut want = vec![sids[1].clone(), sids[2].clone()];
    want.sort();
    assert_eq!(told(wait_for(&ehr_seen, 2).await), want);
    // A moment more: the session kept is never told.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(ehr_seen.lock().unwrap().len(), 2, "the session that asked keeps its apps");
    assert_eq!(app.get_json("/api/v1/me", &tokens[0]).await.0, 200);
}

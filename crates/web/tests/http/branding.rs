//! Branding per clinic: the console page and the API set the display name, accent
//! colour and logo; the logo and theme are served safely; sign-in pages reached with
//! the clinic's hint, and every email and text, show the clinic.

use std::time::Duration;

use clinic_auth_core::{OrgKind, Role};
use clinic_auth_store::Org;
use serde_json::{Value, json};

use crate::both_stores;
use crate::codes::{clinic, code_emails, last_email_code};
use crate::harness::{PASSWORD, TestApp, csrf_of, location_of, page_of};

both_stores!(
    admins_set_the_name_and_colour_and_a_colour_too_light_for_white_text_is_refused,
    logo_uploads_are_checked_and_the_logo_is_served_with_safe_headers,
    the_console_page_uploads_a_logo_with_its_csrf_token_and_refuses_big_files_with_a_page,
    a_browser_still_sending_a_huge_upload_gets_the_page_not_a_broken_connection,
    the_console_page_saves_name_and_colour_and_removes_the_logo,
    the_theme_stylesheet_carries_the_accent_and_hinted_sign_in_pages_link_it,
    an_unknown_malformed_or_unbranded_hint_looks_like_the_platform,
    the_hint_stays_through_the_sign_in_and_the_emailed_code_names_the_clinic,
    texts_put_the_clinic_name_in_front_and_stay_one_segment,
    security_emails_name_the_clinic_and_show_its_logo,
    another_clinics_admin_cannot_see_or_change_the_branding,
);

const WAIT: Duration = Duration::from_secs(5);
const NAME: &str = "Riverside Family Clinic";
const GREEN: &str = "#0b5d3b";

/// A PNG's signature and IHDR header: enough to be recognised and measured.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    v
}

const SVG: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"><script>alert(2)</script></svg>";

/// A `multipart/form-data` body of text fields and one file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----clinicauthtestboundary7d3a";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some((filename, content_type, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"{filename}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn owner_token(app: &TestApp) -> (Org, String) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    let token = app.token("staff", "owner@riverside.test").await;
    (org, token)
}

async fn put_json(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app.api().put(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn put_logo(app: &TestApp, org: &Org, token: &str, content_type: &str, bytes: Vec<u8>) -> (u16, Value) {
    let res = app
        .api()
        .put(app.url(&format!("/api/v1/orgs/{}/branding/logo", org.id)))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sets name, colour and a logo as platform support, from the server's shell.
async fn brand_as_operator(app: &TestApp, org: &Org, name: &str) {
    use clinic_auth_app::{By, branding};
    branding::save(&app.state, &By::operator(), org.id.as_str(), name, GREEN).await.unwrap();
    branding::set_logo(&app.state, &By::operator(), org.id.as_str(), png(240, 80), Some("image/png")).await.unwrap();
}

/// Sets name, colour and a logo through the API.
async fn brand(app: &TestApp, org: &Org, token: &str) {
    let path = format!("/api/v1/orgs/{}/branding", org.id);
    let (s, v) = put_json(app, &path, token, json!({"display_name": NAME, "accent_color": GREEN})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = put_logo(app, org, token, "image/png", png(240, 80)).await;
    assert_eq!(s, 200, "{v}");
}

async fn admins_set_the_name_and_colour_and_a_colour_too_light_for_white_text_is_refused(app: TestApp) {
    let (org, token) = owner_token(&app).await;
    let path = format!("/api/v1/orgs/{}/branding", org.id);
    let (s, v) = app.get_json(&path, &token).await;
    assert_eq!((s, &v["display_name"], &v["shown_name"]), (200, &Value::Null, &json!("Riverside Clinic")), "{v}");

    let (s, v) =
        put_json(&app, &path, &token, json!({"display_name": "  Riverside Family Clinic ", "accent_color": "#0B5D3B"}))
            .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["display_name"].as_str(), v["accent_color"].as_str()), (Some(NAME), Some(GREEN)));
    let (_, read) = app.get_json(&path, &token).await;
    assert_eq!(read["shown_name"], NAME);

    // White text on #777777 is 4.48:1: refused, and the answer says why.
    let (s, v) = put_json(&app, &path, &token, json!({"display_name": NAME, "accent_color": "#777777"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_branding")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("4.5:1"), "{v}");
    for bad in
        [json!({"accent_color": "blue"}), json!({"display_name": "a\u{7}b"}), json!({"display_name": "x".repeat(81)})]
    {
        let (s, v) = put_json(&app, &path, &token, bad.clone()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_branding")), "{bad} → {v}");
    }
    let (_, read) = app.get_json(&path, &token).await;
    assert_eq!(read["accent_color"], GREEN, "refused changes change nothing");

    let events = app.audit_of(Some("org_branding_changed"), 10).await;
    assert_eq!(events.len(), 1, "one change, audited once");
    assert_eq!(events[0].detail, r#"{"changed":"display_name,accent_color"}"#);
    assert_eq!(events[0].org_id.as_deref(), Some(org.id.as_str()));

    // Empty clears a part; the organization's name shows again.
    let (s, v) = put_json(&app, &path, &token, json!({"display_name": "", "accent_color": GREEN})).await;
    assert_eq!((s, &v["display_name"], v["shown_name"].as_str()), (200, &Value::Null, Some("Riverside Clinic")));
}

async fn logo_uploads_are_checked_and_the_logo_is_served_with_safe_headers(app: TestApp) {
    let (org, token) = owner_token(&app).await;
    let logo_path = format!("/branding/{}/logo", org.id);
    assert_eq!(app.api().get(app.url(&logo_path)).send().await.unwrap().status(), 404, "no logo yet");

    // Refused: SVG (whatever it claims), bytes of another format, too many pixels, too big.
    for (ct, bytes, code) in [
        ("image/svg+xml", SVG.to_vec(), "invalid_logo"),
        ("image/png", SVG.to_vec(), "invalid_logo"),
        ("image/png", b"GIF89a\x10\x00\x10\x00\x00\x00\x00".to_vec(), "invalid_logo"),
        ("image/jpeg", png(10, 10), "invalid_logo"),
        ("image/png", png(2048, 100), "invalid_logo"),
        (
            "image/png",
            {
                let mut b = png(10, 10);
                b.resize(300 * 1024, 0);
                b
            },
            "logo_too_large",
        ),
    ] {
        let (s, v) = put_logo(&app, &org, &token, ct, bytes).await;
        assert_eq!(v["error"]["code"].as_str(), Some(code), "{ct}: {v}");
        assert_eq!(s, if code == "logo_too_large" { 413 } else { 400 }, "{v}");
    }
    let (s, v) = put_logo(&app, &org, &token, "image/png", png(2048, 100)).await;
    assert!(v["error"]["message"].as_str().unwrap().contains("1024×1024"), "{s} {v}");
    assert!(app.audit_of(Some("org_branding_changed"), 10).await.is_empty(), "nothing refused is audited");

    // Exactly 256 KiB is accepted.
    let mut big = png(1024, 1024);
    big.resize(256 * 1024, 0);
    let (s, v) = put_logo(&app, &org, &token, "image/png", big.clone()).await;
    assert_eq!(s, 200, "{v}");
    let url = v["logo_url"].as_str().unwrap();
    assert!(url.starts_with(&app.url(&format!("{logo_path}?v="))), "{url}");

    let res = app.api().get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'");
    assert_eq!(h["cache-control"], "public, max-age=300");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    assert_eq!(res.bytes().await.unwrap().to_vec(), big);

    let again = app.api().get(url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    let other = app.api().get(url).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(other.status(), 200);

    let res = app
        .api()
        .delete(app.url(&format!("/api/v1/orgs/{}/branding/logo", org.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.api().get(app.url(&logo_path)).send().await.unwrap().status(), 404);
    let details: Vec<String> =
        app.audit_of(Some("org_branding_changed"), 10).await.into_iter().map(|e| e.detail).collect();
    assert_eq!(details, [r#"{"changed":"logo"}"#, r#"{"changed":"logo"}"#], "upload and removal, no image bytes");
    assert_eq!(app.api().get(app.url("/branding/not%20an%20id/logo")).send().await.unwrap().status(), 404);
}

/// A signed-in owner's browser on the branding page, and the page's HTML.
async fn owner_on_the_page(app: &TestApp) -> (Org, reqwest::Client, String) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    let b = app.browser();
    let res = app.sign_in_with_pages(&b, "/login", "owner@riverside.test").await;
    assert_eq!(location_of(&res), "/account");
    let (status, html) = page_of(&b, &app.url("/admin/branding")).await;
    assert_eq!(status, 200, "{html}");
    (org, b, html)
}

async fn post_multipart(app: &TestApp, b: &reqwest::Client, path: &str, ct: &str, body: Vec<u8>) -> reqwest::Response {
    b.post(app.url(path)).header("content-type", ct).body(body).send().await.unwrap()
}

async fn the_console_page_uploads_a_logo_with_its_csrf_token_and_refuses_big_files_with_a_page(app: TestApp) {
    let (org, b, html) = owner_on_the_page(&app).await;
    assert!(html.contains("enctype=\"multipart/form-data\"") && html.contains("href=\"/admin/branding\""), "{html}");
    let csrf = csrf_of(&html);

    // Without the session's token nothing is stored.
    for token in ["", "forged-token-forged-token-forged-token-00"] {
        let (ct, body) = multipart(&[("csrf", token)], Some(("logo.png", "image/png", &png(100, 40))));
        let res = post_multipart(&app, &b, "/admin/branding/logo", &ct, body).await;
        assert_eq!(res.status(), 403, "token {token:?}");
        assert!(res.text().await.unwrap().contains("This form expired"));
    }
    assert!(app.state.store.get_org_logo(&org.id).await.unwrap().is_none());

    // SVG and huge images are refused on the page, with the reason.
    let (ct, body) = multipart(&[("csrf", &csrf)], Some(("logo.svg", "image/svg+xml", SVG)));
    let res = post_multipart(&app, &b, "/admin/branding/logo", &ct, body).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("SVG logos are not accepted"));
    let (ct, body) = multipart(&[("csrf", &csrf)], Some(("wide.png", "image/png", &png(5000, 10))));
    let res = post_multipart(&app, &b, "/admin/branding/logo", &ct, body).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("at most 1024×1024 pixels"));

    // Too big: a page that says so (the whole body is read, so the browser sees it).
    for size in [300 * 1024, 4 * 1024 * 1024] {
        let mut huge = png(10, 10);
        huge.resize(size, 7);
        let (ct, body) = multipart(&[("csrf", &csrf)], Some(("big.png", "image/png", &huge)));
        let res = post_multipart(&app, &b, "/admin/branding/logo", &ct, body).await;
        assert_eq!(res.status(), 413, "{size} bytes");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let page = res.text().await.unwrap();
        assert!(page.contains("larger than 256 KiB") && page.contains("<h1>Branding</h1>"), "{page}");
    }
    assert!(app.state.store.get_org_logo(&org.id).await.unwrap().is_none());

    let (ct, body) = multipart(&[("csrf", &csrf)], Some(("logo.png", "image/png", &png(100, 40))));
    let res = post_multipart(&app, &b, "/admin/branding/logo", &ct, body).await;
    assert_eq!(location_of(&res), "/admin/branding?notice=logo_saved");
    let (_, html) = page_of(&b, &app.url("/admin/branding?notice=logo_saved")).await;
    assert!(html.contains("The logo is saved.") && html.contains(&format!("src=\"/branding/{}/logo?v=", org.id)));
    assert!(html.contains("Remove logo"));
    assert_eq!(app.state.store.get_org_logo(&org.id).await.unwrap().map(|l| l.content_type), Some("image/png".into()));
}

/// The answer to a 12 MiB upload written slowly over a raw connection, as a browser
/// on a slow line would: the server reads (and drops) it to the end and answers with
/// the page; it does not answer early and reset the connection under the sender.
async fn a_browser_still_sending_a_huge_upload_gets_the_page_not_a_broken_connection(app: TestApp) {
    use reqwest::cookie::CookieStore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "owner@riverside.test", Role::Owner).await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let b = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    app.sign_in_with_pages(&b, "/login", "owner@riverside.test").await;
    let url = reqwest::Url::parse(&app.url("/admin/branding/logo")).unwrap();
    let cookies = jar.cookies(&url).unwrap().to_str().unwrap().to_owned();

    let (ct, head_of_body) = multipart(&[("csrf", "x")], None);
    let filler = vec![b'a'; 12 * 1024 * 1024];
    let host = url.host_str().unwrap();
    let port = url.port().unwrap();
    let mut conn = tokio::net::TcpStream::connect((host, port)).await.unwrap();
    let head = format!(
        "POST /admin/branding/logo HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookies}\r\nContent-Type: {ct}\r\n\
         Sec-Fetch-Site: same-origin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        head_of_body.len() + filler.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut sent = Ok(());
    for piece in std::iter::once(&head_of_body[..]).chain(filler.chunks(64 * 1024)) {
        sent = conn.write_all(piece).await;
        if sent.is_err() {
            break;
        }
    }
    assert!(sent.is_ok(), "the connection broke while the upload was being sent: {sent:?}");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(_))), "reading the answer: {read:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer.lines().next().unwrap_or_default());
    assert!(answer.contains("larger than 256 KiB"));
    assert!(app.state.store.get_org_logo(&org.id).await.unwrap().is_none());
}

async fn the_console_page_saves_name_and_colour_and_removes_the_logo(app: TestApp) {
    let (org, b, html) = owner_on_the_page(&app).await;
    let csrf = csrf_of(&html);
    let save = |fields: Vec<(&'static str, String)>| {
        let b = b.clone();
        let url = app.url("/admin/branding");
        async move { b.post(url).form(&fields).send().await.unwrap() }
    };
    // A colour too light for white text: the form again, with the reason.
    let res = save(vec![
        ("csrf", csrf.clone()),
        ("display_name", NAME.into()),
        ("accent_color", "#ffcc00".into()),
        ("accent_picker", "#1f5fbf".into()),
        ("accent_shown", String::new()),
    ])
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("white text on it has a contrast of"));

    // The picker's choice counts when the text was left as shown.
    let res = save(vec![
        ("csrf", csrf.clone()),
        ("display_name", NAME.into()),
        ("accent_color", String::new()),
        ("accent_picker", GREEN.into()),
        ("accent_shown", String::new()),
    ])
    .await;
    assert_eq!(location_of(&res), "/admin/branding?notice=branding_saved");
    let stored = app.state.store.get_org_branding(&org.id).await.unwrap().unwrap();
    assert_eq!((stored.display_name.as_deref(), stored.accent_color.as_deref()), (Some(NAME), Some(GREEN)));

    // The console now shows the clinic: its name in the header, its theme linked.
    let (_, html) = page_of(&b, &app.url("/admin/branding")).await;
    assert!(html.contains(&format!("<span class=\"clinic-name\">{NAME}</span>")), "{html}");
    assert!(html.contains(&format!("href=\"/branding/{}/theme.css?v=0b5d3b\"", org.id)));
    let (_, account) = page_of(&b, &app.url("/account")).await;
    assert!(account.contains(&format!("<span class=\"clinic-name\">{NAME}</span>")), "members' own pages too");

    let (ct, body) = multipart(&[("csrf", &csrf)], Some(("logo.png", "image/png", &png(100, 40))));
    post_multipart(&app, &b, "/admin/branding/logo", &ct, body).await;
    assert!(app.state.store.get_org_logo(&org.id).await.unwrap().is_some());
    let res = b.post(app.url("/admin/branding/logo/remove")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(location_of(&res), "/admin/branding?notice=logo_removed");
    assert!(app.state.store.get_org_logo(&org.id).await.unwrap().is_none());
    let res = b.post(app.url("/admin/branding/logo/remove")).form(&[("csrf", "wrong")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

async fn the_theme_stylesheet_carries_the_accent_and_hinted_sign_in_pages_link_it(app: TestApp) {
    let (org, token) = owner_token(&app).await;
    let theme = format!("/branding/{}/theme.css", org.id);
    assert_eq!(app.api().get(app.url(&theme)).send().await.unwrap().status(), 404, "no accent yet");
    brand(&app, &org, &token).await;

    let res = app.api().get(app.url(&theme)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    assert_eq!(res.text().await.unwrap(), ":root { --accent: #0b5d3b; }\n");

    for base in ["/login", "/portal/login"] {
        let (status, html) = page_of(&app.browser(), &app.url(&format!("{base}?org={}", org.id))).await;
        assert_eq!(status, 200);
        assert!(html.contains(&format!("<link rel=\"stylesheet\" href=\"/branding/{}/theme.css?v=0b5d3b\">", org.id)));
        assert!(html.contains(&format!("<img class=\"logo\" src=\"/branding/{}/logo?v=", org.id)), "{html}");
        assert!(html.contains(&format!("<span class=\"clinic-name\">{NAME}</span>")));
        assert!(html.contains(&format!(
            "<title>{} · {NAME}</title>",
            if base == "/login" { "Sign in" } else { "Patient portal sign-in" }
        )));
        assert!(html.contains(&format!("name=\"org\" value=\"{}\"", org.id)), "the form carries the hint");
        // The platform's own page is untouched.
        let (_, plain) = page_of(&app.browser(), &app.url(base)).await;
        assert!(!plain.contains("theme.css") && !plain.contains(NAME) && plain.contains("<header class=\"brand\">"));
    }
}

async fn an_unknown_malformed_or_unbranded_hint_looks_like_the_platform(app: TestApp) {
    let unbranded = app.org("Lakeside Clinic", OrgKind::Clinic).await;
    let b = app.browser();
    let (_, plain) = page_of(&b, &app.url("/login")).await;
    for malformed in ["%3Cscript%3E", "A", "riverside/../x", "x%0ay"] {
        let (status, html) = page_of(&b, &app.url(&format!("/login?org={malformed}"))).await;
        assert_eq!((status, &html), (200, &plain), "?org={malformed}");
    }
    // A well-formed id of nobody and an unbranded clinic's id: the same page, but for
    // the id the form carries back.
    let (_, nobody) = page_of(&b, &app.url("/login?org=no-such-clinic")).await;
    let (_, lakeside) = page_of(&b, &app.url(&format!("/login?org={}", unbranded.id))).await;
    assert_eq!(nobody.replace("no-such-clinic", "ID"), lakeside.replace(unbranded.id.as_str(), "ID"));
    assert!(!lakeside.contains("Lakeside Clinic") && lakeside.contains("<header class=\"brand\">"));

    // And a sign-in started with such a hint goes on like any other.
    app.member(&unbranded, "dr.moss@lakeside.test", Role::Provider).await;
    let res = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf_of(&nobody).as_str()), ("email", "dr.moss@lakeside.test"), ("org", "no-such-clinic")])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/login/password");
    let (_, html) = page_of(&b, &app.url("/login/password")).await;
    assert!(html.contains("<header class=\"brand\">") && !html.contains("theme.css"));
}

async fn the_hint_stays_through_the_sign_in_and_the_emailed_code_names_the_clinic(app: TestApp) {
    let org = clinic(&app, "email").await;
    brand_as_operator(&app, &org, NAME).await;
    let other = app.org("Lakeside Clinic", OrgKind::Clinic).await;
    brand_as_operator(&app, &other, "Lakeside Health").await;

    let b = app.browser();
    let clinic_header = |html: &str, name: &str| html.contains(&format!("<span class=\"clinic-name\">{name}</span>"));
    let (_, html) = page_of(&b, &app.url(&format!("/login?org={}", org.id))).await;
    assert!(clinic_header(&html, NAME));
    let res = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "dr.lee@riverside.test"), ("org", org.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/login/password");
    // The password page has no ?org= of its own: the flow carries the clinic.
    let (_, html) = page_of(&b, &app.url("/login/password")).await;
    assert!(clinic_header(&html, NAME), "{html}");
    assert!(html.contains(&format!("/branding/{}/theme.css", org.id)));
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location_of(&res), "/login/setup");
    let (_, html) = page_of(&b, &app.url("/login/setup")).await;
    assert!(clinic_header(&html, NAME), "the setup page: {html}");

    // Setting up email codes sends one: it names the clinic and shows its logo.
    let before = code_emails(&app);
    let res = b.post(app.url("/login/setup/resend")).form(&[("csrf", csrf_of(&html).as_str())]).send().await.unwrap();
    assert!(res.status().is_redirection(), "Send code: {}", res.status());
    let code = last_email_code(&app, before + 1).await;
    let mail = app.smtp.messages().into_iter().rev().find(|m| m.find_code().is_some()).unwrap();
    assert_eq!(mail.subject().as_deref(), Some("Your Riverside Family Clinic verification code"));
    assert!(
        mail.text_body().unwrap().contains("finish signing in to Riverside Family Clinic")
            || mail.text_body().unwrap().contains("at Riverside Family Clinic")
    );
    let html_part = mail.html_body().unwrap();
    let logo = app.url(&format!("/branding/{}/logo?v=", org.id));
    assert!(
        html_part.contains(&format!("<img src=\"{logo}")) && html_part.contains(&format!("alt=\"{NAME}\"")),
        "{html_part}"
    );

    // The recovery code at the end of the sign-in is in the clinic's look too.
    let res = b
        .post(app.url("/login/setup/code"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    let saved = res.text().await.unwrap();
    assert!(saved.contains("Save your recovery code") && clinic_header(&saved, NAME), "{saved}");

    // A member of Riverside who came through Lakeside's link sees Lakeside until the
    // password, then their own clinic.
    let b = app.browser();
    let (_, html) = page_of(&b, &app.url(&format!("/login?org={}", other.id))).await;
    assert!(clinic_header(&html, "Lakeside Health"));
    b.post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("email", "dr.lee@riverside.test"), ("org", other.id.as_str())])
        .send()
        .await
        .unwrap();
    let (_, html) = page_of(&b, &app.url("/login/password")).await;
    assert!(clinic_header(&html, "Lakeside Health"), "before the password nothing says whose account it is");
    // "Forgot your password?" from there keeps the link's clinic, before and after sending.
    let (_, forgot) = page_of(&b, &app.url("/login/forgot-password")).await;
    assert!(clinic_header(&forgot, "Lakeside Health"), "{forgot}");
    let res = b
        .post(app.url("/login/forgot-password"))
        .form(&[("csrf", csrf_of(&forgot).as_str()), ("email", "dr.lee@riverside.test")])
        .send()
        .await
        .unwrap();
    let sent = res.text().await.unwrap();
    assert!(clinic_header(&sent, "Lakeside Health") && sent.contains("Check your email"), "{sent}");
    let (_, plain) = page_of(&app.browser(), &app.url("/login/forgot-password")).await;
    assert!(!plain.contains("clinic-name"), "without a hinted sign-in, the platform's look: {plain}");
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let (_, html) = page_of(&b, &app.url(&location_of(&res))).await;
    assert!(clinic_header(&html, NAME), "after it, the member's own clinic: {html}");
}

async fn texts_put_the_clinic_name_in_front_and_stay_one_segment(app: TestApp) {
    let org = clinic(&app, "sms").await;
    for (n, name) in
        [NAME.to_owned(), "Saint Mary's Community Health Center of the Greater Riverside Valley Region".to_owned()]
            .into_iter()
            .enumerate()
    {
        brand_as_operator(&app, &org, &name).await;
        let started: Value = app.start_login("staff", "dr.lee@riverside.test").await.json().await.unwrap();
        let flow = started["flow_id"].as_str().unwrap().to_owned();
        let progress: Value = app.submit_password(&flow, PASSWORD).await.json().await.unwrap();
        assert_eq!(progress["next"], "enroll", "{progress}");
        let (s, v) =
            app.post_anonymous(&format!("/api/v1/login/{flow}/enroll/sms"), json!({"phone": "(201) 555-0123"})).await;
        assert_eq!(s, 200, "{v}");
        let texts = app.twilio.wait_for(n + 1, WAIT).await;
        let body = texts[n].body().unwrap().to_owned();
        assert!(
            body.ends_with(": your verification code is ") || body.contains(": your verification code is "),
            "{body}"
        );
        let shown = body.split(": your verification code is").next().unwrap();
        assert!(name.starts_with(shown.trim_end_matches("...")), "{body}");
        assert!(body.chars().count() <= 160, "one GSM-7 segment: {} chars", body.chars().count());
        app.clock.advance(60);
    }
}

async fn security_emails_name_the_clinic_and_show_its_logo(app: TestApp) {
    let (org, token) = owner_token(&app).await;
    brand(&app, &org, &token).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let before = app.smtp.messages().len();
    let res = app
        .api()
        .post(app.url("/api/v1/password-resets"))
        .json(&json!({"email": "dr.lee@riverside.test", "realm": "staff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let mail = app.smtp.wait_for(before + 1, WAIT).await.pop().expect("the reset email");
    assert_eq!(mail.subject().as_deref(), Some("Reset your Riverside Family Clinic password"));
    let html = mail.html_body().unwrap();
    assert!(html.contains(&format!("<img src=\"{}", app.url(&format!("/branding/{}/logo?v=", org.id)))), "{html}");
    assert!(html.contains(&format!("alt=\"{NAME}\"")));

    // An invitation from the Users page's API names the clinic too.
    let before = app.smtp.messages().len();
    let (s, v) = app
        .post_json(
            &format!("/api/v1/orgs/{}/members", org.id),
            &token,
            json!({"email": "new@riverside.test", "role": "staff"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mail = app.smtp.wait_for(before + 1, WAIT).await.pop().expect("the invitation");
    assert_eq!(mail.subject().as_deref(), Some("You're invited to sign in to Riverside Family Clinic"));
}

async fn another_clinics_admin_cannot_see_or_change_the_branding(app: TestApp) {
    let (org, _) = owner_token(&app).await;
    let other = app.org("Lakeside Clinic", OrgKind::Clinic).await;
    app.member(&other, "admin@lakeside.test", Role::Admin).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let stranger = app.token("staff", "admin@lakeside.test").await;
    let provider = app.token("staff", "dr.lee@riverside.test").await;
    let path = format!("/api/v1/orgs/{}/branding", org.id);

    let (s, _) = app.get_json(&path, &stranger).await;
    assert_eq!(s, 404, "another clinic's branding is not even there");
    let (s, _) = put_json(&app, &path, &stranger, json!({"display_name": "Hijacked"})).await;
    assert_eq!(s, 404);
    let (s, _) = put_logo(&app, &org, &stranger, "image/png", png(10, 10)).await;
    assert_eq!(s, 404);
    let res = app.api().delete(app.url(&format!("{path}/logo"))).bearer_auth(&stranger).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // Its own members read it; only owners and admins change it.
    let (s, _) = app.get_json(&path, &provider).await;
    assert_eq!(s, 200);
    let (s, v) = put_json(&app, &path, &provider, json!({"display_name": "Mine now"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, _) = put_logo(&app, &org, &provider, "image/png", png(10, 10)).await;
    assert_eq!(s, 403);

    // The console page too: Lakeside's admin cannot open Riverside's.
    let b = app.browser();
    app.sign_in_with_pages(&b, "/login", "admin@lakeside.test").await;
    let (status, _) = page_of(&b, &app.url(&format!("/admin/branding?org={}", org.id))).await;
    assert_eq!(status, 404);
    let (status, html) = page_of(&b, &app.url("/admin/branding")).await;
    assert!(status == 200 && html.contains("Lakeside Clinic"), "their own: {status}");
    assert_eq!(app.state.store.get_org_branding(&org.id).await.unwrap().unwrap().display_name, None);
    assert!(app.audit_of(Some("org_branding_changed"), 10).await.is_empty());
}

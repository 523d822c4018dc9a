//! Checks that turn rows of `docs/security/asvs-5.0.md` from "untested" into facts:
//! password fields, no hints or questions, no forced rotation, cookie names and
//! attributes, HSTS, CORS, cookies ignored by the API, and the CSP.

use clinic_auth_app::{By, accounts};
use clinic_auth_core::{OrgKind, Role};
use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::CreationChallengeResponse;

use crate::both_stores;
use crate::harness::{Backend, Options, PASSWORD, TestApp, csrf_of, passkey_origin};

both_stores!(a_password_keeps_working_after_four_hundred_days,);

const EMAIL: &str = "dr.lee@riverside.test";

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn https_app() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, Options { https_public_url: true, ..Default::default() }).await.unwrap()
}

/// Cookies carried by hand: a `Secure` cookie must come back even though the test
/// speaks plain HTTP to the port (as a TLS proxy would). Keeps every `Set-Cookie` seen.
#[derive(Default)]
struct Jar {
    cookies: Vec<(String, String)>,
    set: Vec<String>,
}

impl Jar {
    fn take(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let line = v.to_str().unwrap().to_owned();
            let (name, value) = line.split(';').next().unwrap().split_once('=').unwrap();
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            self.cookies.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                self.cookies.push((name, value));
            }
            self.set.push(line);
        }
    }

    fn header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> reqwest::Response {
        let res = app.api().get(app.url(path)).header("cookie", self.header()).send().await.unwrap();
        self.take(&res);
        res
    }

    async fn post(&mut self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let res = app.api().post(app.url(path)).header("cookie", self.header()).form(form).send().await.unwrap();
        self.take(&res);
        res
    }

    async fn page(&mut self, app: &TestApp, path: &str) -> String {
        let res = self.get(app, path).await;
        assert_eq!(res.status(), 200, "{path}");
        res.text().await.unwrap()
    }
}

/// The WebAuthn options a page carries in its `data-passkey-options` attribute.
fn page_options(html: &str) -> Value {
    let raw =
        html.split("data-passkey-options=\"").nth(1).expect("passkey options on the page").split('"').next().unwrap();
    let json = raw.replace("&#34;", "\"").replace("&#39;", "'").replace("&#60;", "<").replace("&#62;", ">");
    serde_json::from_str(&json.replace("&#38;", "&")).unwrap()
}

/// A member with an authenticator signs in on the pages (email, password, code) and
/// trusts this browser with a passkey, so that all four cookies are set.
async fn sign_in_and_trust_a_device(app: &TestApp) -> Jar {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let account = app.member(&org, EMAIL, Role::Provider).await;
    app.enroll_authenticator(&account).await;
    let mut jar = Jar::default();
    let html = jar.page(app, "/login").await;
    let res = jar.post(app, "/login", &[("csrf", &csrf_of(&html)), ("email", EMAIL)]).await;
    assert_eq!(location(&res), "/login/password");
    let html = jar.page(app, "/login/password").await;
    let res = jar.post(app, "/login/password", &[("csrf", &csrf_of(&html)), ("password", PASSWORD)]).await;
    assert_eq!(location(&res), "/login/verify");
    let html = jar.page(app, "/login/verify").await;
    app.clock.advance(30); // the enrolment used this step's code
    let code = app.authenticator_code(EMAIL).unwrap();
    let res = jar.post(app, "/login/verify", &[("csrf", &csrf_of(&html)), ("code", &code)]).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let html = jar.page(app, "/account/trust-device").await;
    let options: CreationChallengeResponse = serde_json::from_value(page_options(&html)).unwrap();
    let origin = Url::parse(&passkey_origin(app.addr.port())).unwrap();
    let mut authenticator = SoftPasskey::new(true);
    let credential = authenticator.do_registration(origin, options).unwrap();
    let credential = serde_json::to_string(&credential).unwrap();
    let res = jar
        .post(app, "/account/trust-device", &[("csrf", &csrf_of(&html)), ("credential", &credential), ("name", "Desk")])
        .await;
    assert_eq!(location(&res), "/account?notice=device_trusted");
    jar
}

/// The `Set-Cookie` lines seen for the cookie called `name`, and its attributes
/// (lower-cased, without the name=value pair).
fn attributes_of<'a>(jar: &'a Jar, name: &str) -> Vec<(&'a str, Vec<String>)> {
    let lines: Vec<_> = jar
        .set
        .iter()
        .filter(|l| l.split('=').next() == Some(name))
        .map(|l| (l.as_str(), l.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect()))
        .collect();
    assert!(!lines.is_empty(), "no Set-Cookie for {name} in {:?}", jar.set);
    lines
}

const COOKIES: [(&str, &str); 4] = [
    ("clinic_auth_session", "samesite=lax"),
    ("clinic_auth_flow", "samesite=lax"),
    ("clinic_auth_csrf", "samesite=strict"),
    ("clinic_auth_device", "samesite=strict"),
];

/// V3.3.1, V3.3.3, V3.3.4 and V3.3.2 behind HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_every_sign_in_cookie_is_host_prefixed_secure_and_http_only() {
    let app = https_app().await;
    let jar = sign_in_and_trust_a_device(&app).await;
    for line in &jar.set {
        assert!(line.starts_with("__Host-"), "every cookie is __Host- prefixed: {line}");
    }
    for (name, same_site) in COOKIES {
        for (line, attrs) in attributes_of(&jar, &format!("__Host-{name}")) {
            assert!(attrs.iter().any(|a| a == "secure"), "Secure: {line}");
            assert!(attrs.iter().any(|a| a == "path=/"), "Path=/: {line}");
            assert!(!attrs.iter().any(|a| a.starts_with("domain")), "no Domain: {line}");
            let removal = line.split(';').next().unwrap().ends_with('=');
            if !removal {
                assert!(attrs.iter().any(|a| a == "httponly"), "HttpOnly: {line}");
                assert!(attrs.iter().any(|a| a == same_site), "{same_site}: {line}");
            }
        }
    }
    // The session cookie works: the account page opens with it.
    let mut jar = jar;
    let html = jar.page(&app, "/account").await;
    assert!(html.contains(EMAIL));
}

/// On plain-HTTP localhost (development) the cookies cannot be `Secure`, so they keep
/// plain names; they are still `HttpOnly` with the same `SameSite` values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_plain_http_localhost_cookies_are_not_prefixed_but_keep_same_site() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let jar = sign_in_and_trust_a_device(&app).await;
    for line in &jar.set {
        assert!(!line.starts_with("__Host-") && !line.contains("Secure"), "development cookie: {line}");
    }
    for (name, same_site) in COOKIES {
        for (line, attrs) in attributes_of(&jar, name) {
            assert!(attrs.iter().any(|a| a == "path=/") && !attrs.iter().any(|a| a.starts_with("domain")), "{line}");
            if !line.split(';').next().unwrap().ends_with('=') {
                assert!(attrs.iter().any(|a| a == "httponly") && attrs.iter().any(|a| a == same_site), "{line}");
            }
        }
    }
}

/// Every `<input …>` tag of a page, lower-cased.
fn inputs(html: &str) -> Vec<String> {
    html.split("<input").skip(1).map(|rest| rest.split('>').next().unwrap().to_ascii_lowercase()).collect()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    tag.split(&marker).nth(1).map(|r| r.split('"').next().unwrap().to_owned())
}

/// The password inputs of a page: anything whose name, id or autocomplete speaks of a
/// password. Each must be `type="password"`.
fn assert_password_inputs_are_masked(html: &str, expected: usize, page: &str) {
    let password_inputs: Vec<String> = inputs(html)
        .into_iter()
        .filter(|tag| {
            ["name", "id", "autocomplete"]
                .iter()
                .any(|a| attr(tag, a).is_some_and(|v| v.contains("password") || v.contains("passwd")))
        })
        .collect();
    assert_eq!(password_inputs.len(), expected, "{page}: {password_inputs:?}");
    for tag in &password_inputs {
        assert_eq!(attr(tag, "type").as_deref(), Some("password"), "{page}: {tag}");
    }
}

/// Words of password hints and knowledge-based "secret questions" (ASVS 6.4.2).
const HINT_WORDS: [&str; 8] = [
    "password hint",
    "password_hint",
    "passwordhint",
    "security question",
    "security_question",
    "secret question",
    "secret_question",
    "maiden name",
];

fn assert_no_hint_or_question(text: &str, page: &str) {
    let lower = text.to_ascii_lowercase().replace("&#39;", "'");
    for word in HINT_WORDS.iter().chain(&["secret answer", "secret_answer", "reminder"]) {
        assert!(!lower.contains(word), "{page} mentions {word:?}");
    }
    for tag in inputs(text) {
        for a in ["name", "id"] {
            let v = attr(&tag, a).unwrap_or_default();
            assert!(!v.contains("hint") && !v.contains("question") && !v.contains("answer"), "{page}: field {tag}");
        }
    }
    for field in ["<select", "<textarea"] {
        assert!(!lower.contains(field), "{page} has a {field} field");
    }
}

/// The pages where a password is typed: staff and portal sign-in, an invitation, a
/// reset link and the first-admin setup link.
async fn password_pages(app: &TestApp) -> Vec<(String, String, usize)> {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let member = app.member(&org, EMAIL, Role::Provider).await;
    app.patient(&org, "pat@example.test").await;
    let mut pages = Vec::new();
    for (start, email) in [("/login", EMAIL), ("/portal/login", "pat@example.test")] {
        let b = app.browser();
        let html = b.get(app.url(start)).send().await.unwrap().text().await.unwrap();
        pages.push((start.to_owned(), html.clone(), 0));
        b.post(app.url(start)).form(&[("csrf", csrf_of(&html).as_str()), ("email", email)]).send().await.unwrap();
        let path = format!("{start}/password");
        let html = b.get(app.url(&path)).send().await.unwrap().text().await.unwrap();
        pages.push((path, html, 1));
    }
    let invited = accounts::add_account(
        &app.state,
        &By::operator(),
        clinic_auth_core::AccountKind::Member,
        Some(org.id.as_str()),
        "new@riverside.test",
        Some(Role::Provider),
        None,
    )
    .await
    .unwrap();
    let reset = accounts::password_reset_link(&app.state, &By::operator(), &member.id.to_string()).await.unwrap();
    let setup = accounts::ensure_setup_link(&app.state).await.unwrap().expect("no platform admin yet");
    for (what, link) in [("invitation", invited.invitation_url.unwrap()), ("reset", reset), ("setup", setup)] {
        let res = app.browser().get(&link).send().await.unwrap();
        assert_eq!(res.status(), 200, "{what}");
        pages.push((what.to_owned(), res.text().await.unwrap(), 2));
    }
    pages
}

/// V6.2.6: every password field is masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_password_field_is_type_password() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for (page, html, expected) in password_pages(&app).await {
        assert_password_inputs_are_masked(&html, expected, &page);
    }
}

/// V6.4.2: no password hints or secret questions, on the pages or in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_hints_or_secret_questions_anywhere() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for (page, html, _) in password_pages(&app).await {
        assert_no_hint_or_question(&html, &page);
    }
    let openapi = app.api().get(app.url("/api/v1/openapi.json")).send().await.unwrap().text().await.unwrap();
    let lower = openapi.to_ascii_lowercase();
    assert!(lower.contains("\"password\""), "the document describes the password step");
    // "reminder" alone is the 2FA setup reminder an admin emails (grace period for
    // Mandatory 2FA); a *password* reminder is what V6.4.2 forbids.
    let password_reminders = ["password reminder", "password_reminder", "password-reminder", "passwordreminder"];
    for word in HINT_WORDS.iter().chain(&["question", "secret_answer"]).chain(&password_reminders) {
        assert!(!lower.contains(word), "the OpenAPI document mentions {word:?}");
    }
}

/// V6.2.10: no password expires: one set today still signs in 400 days later, with
/// nothing asking for a new one.
async fn a_password_keeps_working_after_four_hundred_days(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, EMAIL, Role::Provider).await;
    let token = app.token("staff", EMAIL).await;
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200);
    // A day at a time, so that nothing sees one jump of a year.
    for _ in 0..400 {
        app.clock.advance(24 * 3600);
    }
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 401, "the old session is long over");
    let res = app.api_login("staff", EMAIL, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["session_token"].as_str().unwrap_or_else(|| panic!("a session, no rotation step: {body}"));
    assert_eq!(app.get_json("/api/v1/me", token).await.0, 200);
    // The pages agree: straight to the account page.
    let b = app.browser();
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/login")).form(&[("csrf", csrf_of(&html).as_str()), ("email", EMAIL)]).send().await.unwrap();
    let html = b.get(app.url("/login/password")).send().await.unwrap().text().await.unwrap();
    let res = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/account");
}

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// V3.4.1: behind HTTPS every response (page, API, static file, error) carries HSTS
/// for a year with `includeSubDomains`; on plain-HTTP localhost none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_with_subdomains_is_sent_on_every_response_over_https_only() {
    let paths = ["/login", "/api/v1/openapi.json", "/static/style.css", "/api/v1/me", "/no-such-page"];
    let app = https_app().await;
    for path in paths {
        let res = app.api().get(app.url(path)).send().await.unwrap();
        let hsts = res.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(hsts.as_deref(), Some(HSTS), "{path} ({})", res.status());
    }
    let res = app.api().post(app.url("/api/v1/login")).body("not json").send().await.unwrap();
    assert_eq!(res.headers()["strict-transport-security"], HSTS, "an API error too");
    let plain = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for path in paths {
        let res = plain.api().get(plain.url(path)).send().await.unwrap();
        assert!(!res.headers().contains_key("strict-transport-security"), "development, {path}");
    }
}

fn assert_no_cors(res: &reqwest::Response, what: &str) {
    let cors: Vec<_> = res.headers().keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
    assert!(cors.is_empty(), "{what} sent {cors:?}");
}

/// V3.4.2: no CORS header at all, whatever origin asks, preflight or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_sends_no_cors_headers_even_to_another_origin() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, EMAIL, Role::Provider).await;
    let token = app.token("staff", EMAIL).await;
    let evil = "https://evil.example";
    for path in ["/api/v1/login", "/api/v1/me", "/api/v1/openapi.json"] {
        let res = app
            .api()
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", evil)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_no_cors(&res, &format!("preflight of {path}"));
    }
    let res = app.api().get(app.url("/api/v1/me")).bearer_auth(&token).header("origin", evil).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_no_cors(&res, "GET /api/v1/me");
    let res = app
        .api()
        .post(app.url("/api/v1/login"))
        .header("origin", evil)
        .json(&serde_json::json!({"realm": "staff", "email": EMAIL}))
        .send()
        .await
        .unwrap();
    assert_no_cors(&res, "POST /api/v1/login");
    let res = app.api().get(app.url("/api/v1/openapi.json")).header("origin", evil).send().await.unwrap();
    assert_no_cors(&res, "GET /api/v1/openapi.json");
}

/// V3.5.2: the JSON API reads no cookies. A page session's cookie alone gets 401; the
/// same token as a bearer token works, so only the way it was sent was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_ignores_a_valid_session_cookie() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, EMAIL, Role::Provider).await;
    let mut jar = Jar::default();
    let html = jar.page(&app, "/login").await;
    jar.post(&app, "/login", &[("csrf", &csrf_of(&html)), ("email", EMAIL)]).await;
    let html = jar.page(&app, "/login/password").await;
    let res = jar.post(&app, "/login/password", &[("csrf", &csrf_of(&html)), ("password", PASSWORD)]).await;
    assert_eq!(location(&res), "/account");
    let session = jar.value("clinic_auth_session").expect("session cookie").to_owned();
    let cookie = jar.header();
    let res = app.api().get(app.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 401, "a cookie is not an API credential");
    let res = app.api().post(app.url("/api/v1/logout")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 401, "nor for a change");
    let res = app.api().get(app.url("/api/v1/me")).bearer_auth(&session).send().await.unwrap();
    assert_eq!(res.status(), 200, "the same token as a bearer token");
    assert!(jar.page(&app, "/account").await.contains(EMAIL), "still signed in on the pages");
}

/// V3.4.3: the CSP names `object-src 'none'` and `base-uri 'none'` itself, on pages
/// and API answers alike, and allows no inline script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csp_forbids_plugins_and_base_changes_explicitly() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for path in ["/login", "/api/v1/openapi.json", "/no-such-page"] {
        let res = app.api().get(app.url(path)).send().await.unwrap();
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in ["object-src 'none'", "base-uri 'none'", "default-src 'none'", "script-src 'self'"] {
            assert!(directives.contains(&wanted), "{path}: {wanted} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    }
}

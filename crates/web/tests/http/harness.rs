//! Starts the real application on a random loopback port with a fresh store: a
//! temporary SQLite file, or a uniquely named PostgreSQL database that is dropped
//! afterwards.
//!
//! Shared with the process suite of the `clinic-auth` binary
//! (`crates/cli/tests/process`), which includes this file by path.

use std::net::SocketAddr;
use std::sync::Arc;

use clinic_auth_app::{App, WebConfig};
use clinic_auth_app::{By, accounts};
use clinic_auth_core::{AccountKind, ManualClock, OrgKind, Password, Role, UnixTime};
use clinic_auth_notify::testkit::{SmtpCapture, TwilioFake};
use clinic_auth_store::{Account, Org, Store};
use clinic_auth_web::AppState;
use serde_json::{Value, json};

pub const POSTGRES_ENV: &str = "CLINIC_AUTH_TEST_POSTGRES_URL";
pub const PASSWORD: &str = "correct horse battery staple";
pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "test-auth-token";

/// Real SMTP and Twilio senders, pointed at the capture servers.
fn senders(smtp: &SmtpCapture, twilio: &TwilioFake) -> clinic_auth_app::Senders {
    clinic_auth_notify::install_default_crypto_provider();
    let email = clinic_auth_notify::SmtpSender::new(clinic_auth_notify::SmtpConfig {
        host: smtp.addr().ip().to_string(),
        port: smtp.addr().port(),
        tls: clinic_auth_notify::SmtpTls::None,
        username: None,
        password: None,
        from: "Riverside Clinic <no-reply@riverside.test>".into(),
        code_in_subject: false,
        timeout_secs: 5,
    })
    .expect("smtp sender");
    let sms = clinic_auth_notify::TwilioSender::new(clinic_auth_notify::TwilioConfig {
        base_url: twilio.base_url(),
        account_sid: TWILIO_SID.into(),
        auth: clinic_auth_notify::TwilioAuth::AuthToken(TWILIO_TOKEN.into()),
        from: clinic_auth_notify::TwilioFrom::Number("+15005550006".into()),
        timeout_secs: 5,
    })
    .expect("twilio sender");
    clinic_auth_app::Senders { email: std::sync::Arc::new(email), sms: std::sync::Arc::new(sms) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
#[allow(dead_code)] // the TempDir is held only to delete it on drop
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<(TestDb, String)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("test.db").display());
                Some((TestDb::Sqlite(dir), url))
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
                    eprintln!(
                        "PostgreSQL suite skipped: set {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it"
                    );
                    return None;
                };
                let name = format!("clinic_auth_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}"));
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("postgres url");
                url.set_path(&name);
                Some((TestDb::Postgres { admin_url, name }, url.to_string()))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
                        let _ = sqlx::Executor::execute(
                            &mut conn,
                            sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

#[allow(dead_code)] // kept alive (TempDir, database) or read by some tests only
pub struct TestApp {
    /// A real SMTP server on loopback that receives the code emails.
    pub smtp: SmtpCapture,
    /// A Twilio-shaped HTTP server on loopback that receives the text messages.
    pub twilio: TwilioFake,
    /// With `Options::record_store`: the store the application uses, noting which
    /// methods are called.
    pub recorder: Option<Arc<clinic_auth_store::testkit::RecordingStore>>,
    pub base: String,
    pub addr: SocketAddr,
    pub state: App,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
    pub db: TestDb,
    pub backend: Backend,
    /// Authenticator apps set up for accounts by the harness (platform admins always
    /// have one): email → otpauth URI, so that signing in can answer the code.
    pub authenticators: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

pub struct Options {
    pub hashing_concurrency: usize,
    pub audit_export_max_events: usize,
    pub trust_forwarded_for: bool,
    /// Serve as if behind a TLS proxy: `public_url` is `https://localhost:{port}`, so
    /// cookies are `Secure` with `__Host-` names and HSTS is sent. The test still talks
    /// plain HTTP to the port, so it must carry cookies itself (a cookie store would
    /// not send `Secure` cookies over HTTP).
    pub https_public_url: bool,
    /// Put a `RecordingStore` between the application and its store (`recorder`).
    pub record_store: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hashing_concurrency: 2,
            audit_export_max_events: 100_000,
            trust_forwarded_for: false,
            https_public_url: false,
            record_store: false,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, opts: Options) -> Option<TestApp> {
        let (db, database_url) = TestDb::create(backend).await?;
        let sealer =
            clinic_auth_app::Sealer::from_keyring(&clinic_auth_app::Sealer::generate_keyring()).expect("keyring");
        let keys = sealer.audit_chain_keys().expect("audit keys");
        let store: Arc<dyn Store> = clinic_auth_store::connect(&database_url, keys).await.expect("connect store");
        store.migrate().await.expect("migrate");
        let recorder =
            opts.record_store.then(|| Arc::new(clinic_auth_store::testkit::RecordingStore::new(store.clone())));
        let store: Arc<dyn Store> = match &recorder {
            Some(r) => r.clone(),
            None => store,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let public_url =
            if opts.https_public_url { format!("https://localhost:{}", addr.port()) } else { base.clone() };
        let mut config = WebConfig::new(url::Url::parse(&public_url).expect("url"));
        config.hashing_concurrency = opts.hashing_concurrency;
        config.audit_export_max_events = opts.audit_export_max_events;
        config.trust_forwarded_for = opts.trust_forwarded_for;
        // Passkeys need a hostname: the software authenticator answers for localhost.
        config.passkey_rp_id = Some("localhost".into());
        config.passkey_origin = Some(url::Url::parse(&passkey_origin(addr.port())).expect("origin"));
        // A fixed start keeps TOTP-free tests independent of the wall clock.
        let clock = Arc::new(ManualClock::new(UnixTime(1_800_000_000)));
        let smtp = SmtpCapture::start().await;
        let twilio = TwilioFake::start(TWILIO_SID, TWILIO_TOKEN).await;
        let senders = senders(&smtp, &twilio);
        let state = App::new(store, clock.clone(), config, sealer, senders);
        tokio::spawn(clinic_auth_web::serve(listener, AppState::new(state.clone()), std::future::pending()));
        Some(TestApp {
            smtp,
            twilio,
            recorder,
            base,
            addr,
            state,
            clock,
            database_url,
            db,
            backend,
            authenticators: Default::default(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client like a browser: keeps cookies, does not follow redirects.
    pub fn browser(&self) -> reqwest::Client {
        clinic_auth_notify::install_default_crypto_provider();
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// A browser (see [`TestApp::browser`]) that sends `user_agent` as its User-Agent.
    pub fn browser_as(&self, user_agent: &str) -> reqwest::Client {
        clinic_auth_notify::install_default_crypto_provider();
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .build()
            .expect("client")
    }

    /// A client like a program: no cookies.
    pub fn api(&self) -> reqwest::Client {
        clinic_auth_notify::install_default_crypto_provider();
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
    }

    pub async fn org(&self, name: &str, kind: OrgKind) -> Org {
        accounts::create_org(&self.state, &By::operator(), name, kind, None).await.expect("create org")
    }

    pub async fn member(&self, org: &Org, email: &str, role: Role) -> Account {
        accounts::add_account(
            &self.state,
            &By::operator(),
            AccountKind::Member,
            Some(org.id.as_str()),
            email,
            Some(role),
            Some(Password::new(PASSWORD.into())),
        )
        .await
        .expect("add member")
        .account
    }

    pub async fn patient(&self, org: &Org, email: &str) -> Account {
        accounts::add_account(
            &self.state,
            &By::operator(),
            AccountKind::Patient,
            Some(org.id.as_str()),
            email,
            None,
            Some(Password::new(PASSWORD.into())),
        )
        .await
        .expect("add patient")
        .account
    }

    /// A platform admin with a password and, as platform admins must have, an
    /// authenticator app (its URI is in `authenticators`).
    pub async fn platform_admin(&self, email: &str) -> Account {
        let account = accounts::add_account(
            &self.state,
            &By::operator(),
            AccountKind::PlatformAdmin,
            None,
            email,
            None,
            Some(Password::new(PASSWORD.into())),
        )
        .await
        .expect("add admin")
        .account;
        self.enroll_authenticator(&account).await;
        account
    }

    /// Sets up an authenticator app for `account` (outside any of its sessions, which
    /// therefore end) and keeps its URI for `authenticator_code`.
    pub async fn enroll_authenticator(&self, account: &Account) {
        use clinic_auth_app::factors;
        use clinic_auth_core::Clock;
        let session = clinic_auth_core::SecretToken::generate().hash();
        let within = clinic_auth_app::Within::Session(&session);
        let setup = factors::begin_authenticator(&self.state, account, within).await.expect("authenticator");
        let code = crate::otp::code(&setup.uri, self.clock.now().0);
        factors::confirm_authenticator(&self.state, account, &code, within, &Default::default())
            .await
            .expect("confirm");
        self.authenticators.lock().expect("lock").insert(account.email.to_string(), setup.uri);
    }

    /// Uses an invitation or reset link (as emailed) to choose `password`; the status.
    pub async fn use_password_link(&self, link: &str, password: &str) -> u16 {
        let token = link.rsplit('/').next().expect("a link");
        let res = self
            .api()
            .post(self.url(&format!("/api/v1/password-links/{token}")))
            .json(&json!({"password": password}))
            .send()
            .await
            .expect("send");
        res.status().as_u16()
    }

    /// The current code of an authenticator the harness set up for `email`.
    pub fn authenticator_code(&self, email: &str) -> Option<String> {
        use clinic_auth_core::Clock;
        let uri = self.authenticators.lock().expect("lock").get(email).cloned()?;
        Some(crate::otp::code(&uri, self.clock.now().0))
    }

    /// Email, password, and the authenticator's code when asked, on the sign-in pages at
    /// `base` (`/login` or `/portal/login`): the last answer.
    pub async fn sign_in_with_pages(&self, b: &reqwest::Client, base: &str, email: &str) -> reqwest::Response {
        let (_, html) = page_of(b, &self.url(base)).await;
        let res =
            b.post(self.url(base)).form(&[("csrf", csrf_of(&html).as_str()), ("email", email)]).send().await.unwrap();
        assert_eq!(location_of(&res), format!("{base}/password"), "{email} gives the email");
        let (_, html) = page_of(b, &self.url(&format!("{base}/password"))).await;
        let mut res = b
            .post(self.url(&format!("{base}/password")))
            .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        if location_of(&res) == format!("{base}/verify") {
            // Each code works once: the next 30-second step's.
            self.clock.advance(30);
            let code = self.authenticator_code(email).expect("an authenticator the harness set up");
            let (_, html) = page_of(b, &self.url(&format!("{base}/verify"))).await;
            res = b
                .post(self.url(&format!("{base}/verify")))
                .form(&[("csrf", csrf_of(&html).as_str()), ("code", code.as_str())])
                .send()
                .await
                .unwrap();
        }
        res
    }

    /// Starts an API sign-in and returns the flow id.
    pub async fn start_login(&self, realm: &str, email: &str) -> reqwest::Response {
        self.api()
            .post(self.url("/api/v1/login"))
            .json(&json!({"realm": realm, "email": email}))
            .send()
            .await
            .expect("send")
    }

    pub async fn submit_password(&self, flow_id: &str, password: &str) -> reqwest::Response {
        self.api()
            .post(self.url(&format!("/api/v1/login/{flow_id}/password")))
            .json(&json!({"password": password}))
            .send()
            .await
            .expect("send")
    }

    /// Signs in through the API; returns the response of the password step.
    pub async fn api_login(&self, realm: &str, email: &str, password: &str) -> reqwest::Response {
        let started: Value = self.start_login(realm, email).await.json().await.expect("json");
        let flow = started["flow_id"].as_str().expect("flow id").to_owned();
        self.submit_password(&flow, password).await
    }

    /// Signs in through the API and returns the session token, answering the code of
    /// an authenticator the harness set up (moving the clock to the next 30-second
    /// step when this step's code was used already).
    pub async fn token(&self, realm: &str, email: &str) -> String {
        let started: Value = self.start_login(realm, email).await.json().await.expect("json");
        let flow = started["flow_id"].as_str().expect("flow id").to_owned();
        let res = self.submit_password(&flow, PASSWORD).await;
        assert_eq!(res.status(), 200, "sign-in of {email} failed");
        let mut body: Value = res.json().await.expect("json");
        if body["next"] == "second_factor"
            && let Some(code) = self.authenticator_code(email)
        {
            let path = format!("/api/v1/login/{flow}/code");
            let (mut s, mut v) = self.post_anonymous(&path, json!({"code": code})).await;
            if s == 401 && v["error"]["code"] == "code_already_used" {
                self.clock.advance(30);
                let code = self.authenticator_code(email).expect("code");
                (s, v) = self.post_anonymous(&path, json!({"code": code})).await;
            }
            assert_eq!(s, 200, "second factor of {email}: {v}");
            body = v;
        }
        body["session_token"].as_str().unwrap_or_else(|| panic!("no session for {email}: {body}")).to_owned()
    }

    pub async fn post_anonymous(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self.api().post(self.url(path)).json(&body).send().await.expect("send");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self.api().get(self.url(path)).bearer_auth(token).send().await.expect("send");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let res = self.api().post(self.url(path)).bearer_auth(token).json(&body).send().await.expect("send");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The newest `limit` audit events of one kind (all kinds with `None`), newest first.
    pub async fn audit_of(&self, kind: Option<&str>, limit: i64) -> Vec<clinic_auth_store::AuditEvent> {
        let filter = clinic_auth_store::AuditFilter { kind: kind.map(str::to_owned), limit, ..Default::default() };
        self.state.store.list_audit(&filter).await.expect("audit")
    }

    pub async fn audit_kinds(&self) -> Vec<(String, String)> {
        let events = self
            .state
            .store
            .list_audit(&clinic_auth_store::AuditFilter { limit: 1000, ..Default::default() })
            .await
            .expect("audit");
        events.into_iter().map(|e| (e.kind, e.outcome)).collect()
    }
}

/// The origin passkeys are made for in tests.
pub fn passkey_origin(port: u16) -> String {
    format!("http://localhost:{port}")
}

/// The value of the hidden `csrf` field in a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("page has a csrf field") + marker.len();
    html[start..].split('"').next().expect("csrf value").to_owned()
}

/// Runs each named test function against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::harness::{Backend, TestApp};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite app");
                    super::$name(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = TestApp::spawn(Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

/// A page's status and HTML.
pub async fn page_of(client: &reqwest::Client, url: &str) -> (u16, String) {
    let res = client.get(url).send().await.expect("send");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// Where a redirect goes ("" when it is not one).
pub fn location_of(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default()
}

/// A JSON answer without its request's id (`error.request_id`), which differs from one
/// request to the next, for tests that compare two answers.
pub fn without_request_id(mut v: Value) -> Value {
    if let Some(error) = v.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("request_id");
    }
    v
}

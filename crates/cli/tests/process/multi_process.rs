//! Two server processes on one PostgreSQL database serve one user interchangeably:
//! sessions, login flows and failure counters live in the store.

use clinic_auth_core::{OrgKind, Role};
use serde_json::{Value, json};

use crate::binary::ServerProcess;
use crate::harness::{Backend, PASSWORD, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_sessions_flows_and_limits() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let (a, b) = (ServerProcess::start(&app.database_url), ServerProcess::start(&app.database_url));
    clinic_auth_notify::install_default_crypto_provider();
    let http = reqwest::Client::new();

    // Start on A, finish on B.
    let started: Value = http
        .post(format!("{}/api/v1/login", a.base))
        .json(&json!({"email": "dr.lee@riverside.test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    let res = http
        .post(format!("{}/api/v1/login/{flow}/password", b.base))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["session_token"].as_str().unwrap().to_owned();
    // A session made through B is honoured by A, and ended everywhere at once.
    let me = http.get(format!("{}/api/v1/me", a.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(http.post(format!("{}/api/v1/logout", a.base)).bearer_auth(&token).send().await.unwrap().status(), 204);
    assert_eq!(http.get(format!("{}/api/v1/me", b.base)).bearer_auth(&token).send().await.unwrap().status(), 401);

    // Failures counted on both add up to one lock.
    for i in 0..6 {
        let server = if i % 2 == 0 { &a } else { &b };
        let v: Value = http
            .post(format!("{}/api/v1/login", server.base))
            .json(&json!({"email": "dr.lee@riverside.test"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let f = v["flow_id"].as_str().unwrap();
        let r = http
            .post(format!("{}/api/v1/login/{f}/password", server.base))
            .json(&json!({"password": "wrong horse battery staple"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let v: Value = http
        .post(format!("{}/api/v1/login", a.base))
        .json(&json!({"email": "dr.lee@riverside.test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let f = v["flow_id"].as_str().unwrap();
    let r = http
        .post(format!("{}/api/v1/login/{f}/password", b.base))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

fn real_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Answers are counted before they are checked in the database, so two processes
/// together check no more than one would: one code signs in once, and a storm of
/// guesses across both stops at the member's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_accept_a_code_once_and_check_no_guess_past_the_limit() {
    use clinic_auth_app::By;
    use clinic_auth_app::policy::{self, OrgMfaChange};
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let change = OrgMfaChange {
        enabled: Some(true),
        mode: Some(clinic_auth_core::MfaMode::Required),
        methods: None,
        grace_days: None,
    };
    policy::set_org_mfa(&app.state, &By::operator(), org.id.as_str(), change).await.unwrap();
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let servers = [ServerProcess::start(&app.database_url), ServerProcess::start(&app.database_url)];
    clinic_auth_notify::install_default_crypto_provider();
    let password_step = |i: usize| {
        let base = servers[i % 2].base.clone();
        async move {
            let (_, v) = post(&base, "/api/v1/login".into(), json!({"email": "dr.lee@riverside.test"})).await;
            let flow = v["flow_id"].as_str().unwrap().to_owned();
            let (s, v) = post(&base, format!("/api/v1/login/{flow}/password"), json!({"password": PASSWORD})).await;
            assert_eq!(s, 200, "{v}");
            (flow, v)
        }
    };
    // Set up an authenticator in real time (the servers use the real clock).
    let (flow, v) = password_step(0).await;
    assert_eq!(v["next"], "enroll");
    let (_, setup) = post(&servers[0].base, format!("/api/v1/login/{flow}/enroll/authenticator"), json!({})).await;
    let uri = setup["otpauth_uri"].as_str().unwrap().to_owned();
    let (s, done) = post(
        &servers[1].base,
        format!("/api/v1/login/{flow}/enroll/authenticator/confirm"),
        json!({"code": crate::otp::code(&uri, real_now())}),
    )
    .await;
    assert_eq!(s, 200, "{done}");

    // One code (the next step's, within the allowed drift) on 8 sign-ins at once,
    // half on each process: one session.
    let mut flows = Vec::new();
    for i in 0..8 {
        flows.push(password_step(i).await.0);
    }
    let code = crate::otp::code(&uri, real_now() + 30);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, flow) in flows.into_iter().enumerate() {
        let (base, code) = (servers[i % 2].base.clone(), code.clone());
        tasks.spawn(async move { post(&base, format!("/api/v1/login/{flow}/code"), json!({"code": code})).await.0 });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");

    // 180 wrong codes at once on 6 sign-ins across both processes.
    let before = wrong_codes_checked(&app).await;
    let mut flows = Vec::new();
    for i in 0..6 {
        flows.push(password_step(i).await.0);
    }
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, flow) in flows.iter().enumerate() {
        for _ in 0..30 {
            let (base, flow) = (servers[i % 2].base.clone(), flow.clone());
            tasks.spawn(
                async move { post(&base, format!("/api/v1/login/{flow}/code"), json!({"code": wrong})).await.0 },
            );
        }
    }
    let statuses = tasks.join_all().await;
    assert!(statuses.iter().all(|s| [401, 410, 429].contains(s)), "{statuses:?}");
    let checked = wrong_codes_checked(&app).await - before;
    assert!(checked <= 6, "the member's lock is at the 6th failure, yet {checked} were checked");
}

async fn post(base: &str, path: String, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

async fn wrong_codes_checked(app: &TestApp) -> usize {
    app.audit_of(Some("second_factor"), 10_000)
        .await
        .iter()
        .filter(|e| e.outcome == "failure" && e.detail.contains("\"reason\":\"wrong_code\""))
        .count()
}

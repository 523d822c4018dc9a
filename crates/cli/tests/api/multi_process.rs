//! Two server processes on one PostgreSQL database serve one user interchangeably:
//! sessions, login flows and failure counters live in the store.

use clinic_auth_core::{OrgKind, Role};
use serde_json::{Value, json};

use crate::harness::{Backend, PASSWORD, ServerProcess, TestApp};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_reports_an_unreachable_database() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let health = |app: &TestApp| {
        let (c, url) = (app.api(), app.url("/healthz"));
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(health(&app).await, 200);
    let crate::harness::TestDb::Postgres { admin_url, name } = &app.db else { unreachable!() };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .await
        .unwrap();
    assert_eq!(health(&app).await, 503);
    let res = app.api().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "unavailable");
}

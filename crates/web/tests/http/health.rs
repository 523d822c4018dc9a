//! `/healthz`: 200 while the database answers, with warnings about the set-up; 503
//! once it does not.

use serde_json::Value;

use crate::both_stores;
use crate::harness::{Backend, Options, TestApp, TestDb};

both_stores!(
    healthz_warns_once_a_request_carries_x_forwarded_for_that_is_not_trusted,
    healthz_has_no_warnings_without_x_forwarded_for,
    healthz_has_no_warnings_when_x_forwarded_for_is_trusted,
);

const UNTRUSTED_FORWARDED_FOR: &str = "requests carry X-Forwarded-For but trust_forwarded_for is off: every client \
                                       appears as the proxy's address, so one client's failures lock everyone out";

async fn health(app: &TestApp) -> Value {
    let res = app.api().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A page request as a reverse proxy would pass it on.
async fn through_a_proxy(app: &TestApp) {
    let res = app.browser().get(app.url("/login")).header("x-forwarded-for", "203.0.113.7").send().await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn healthz_warns_once_a_request_carries_x_forwarded_for_that_is_not_trusted(app: TestApp) {
    assert_eq!(health(&app).await["warnings"], Value::Null, "no warning before such a request");
    through_a_proxy(&app).await;
    let body = health(&app).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["store"], app.state.store.backend_name(), "{body}");
    assert_eq!(body["warnings"], serde_json::json!([UNTRUSTED_FORWARDED_FOR]), "{body}");
    // Said once, however many such requests follow.
    through_a_proxy(&app).await;
    assert_eq!(health(&app).await["warnings"].as_array().map(Vec::len), Some(1));
}

async fn healthz_has_no_warnings_without_x_forwarded_for(app: TestApp) {
    let res = app.browser().get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = health(&app).await;
    assert_eq!(body, serde_json::json!({"status": "ok", "store": app.state.store.backend_name()}));
}

async fn healthz_has_no_warnings_when_x_forwarded_for_is_trusted(app: TestApp) {
    let app =
        TestApp::spawn_with(app.backend, Options { trust_forwarded_for: true, ..Default::default() }).await.unwrap();
    through_a_proxy(&app).await;
    let body = health(&app).await;
    assert_eq!(body, serde_json::json!({"status": "ok", "store": app.state.store.backend_name()}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_reports_an_unreachable_database() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let health = |app: &TestApp| {
        let (c, url) = (app.api(), app.url("/healthz"));
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(health(&app).await, 200);
    let TestDb::Postgres { admin_url, name } = &app.db else { unreachable!() };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .await
        .unwrap();
    assert_eq!(health(&app).await, 503);
    let res = app.api().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "unavailable");
}

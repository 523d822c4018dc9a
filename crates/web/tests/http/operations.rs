//! What the operator runs beside the server: Prometheus metrics on a listener of their
//! own, `/readyz`, and request ids in headers, JSON errors and error pages.

use std::collections::BTreeMap;

use clinic_auth_core::{OrgKind, Role};
use clinic_auth_web::AppState;
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{Backend, Options, PASSWORD, TestApp};

both_stores!(
    metrics_count_sign_ins_and_second_factors_without_personal_data,
    readyz_is_ready_with_the_database_migrations_and_keyring,
    readyz_names_migrations_not_applied,
    readyz_names_a_keyring_that_does_not_open_the_sealed_keys,
);

/// Serves `/metrics` for `app` on a port of its own, as `serve` does.
async fn metrics_listener(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(clinic_auth_web::serve_metrics(listener, AppState::new(app.state.clone()), std::future::pending()));
    format!("http://{addr}/metrics")
}

/// The scrape, parsed by a Prometheus text-format parser that is not ours.
async fn scrape(url: &str) -> (String, prometheus_parse::Scrape) {
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = res.text().await.unwrap();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    (text, parsed)
}

fn labels_of(s: &prometheus_parse::Sample) -> BTreeMap<String, String> {
    s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn value(s: &prometheus_parse::Sample) -> f64 {
    match &s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        _ => f64::NAN,
    }
}

/// The value of `metric` with exactly these labels (among others), if scraped.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, want: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| {
            let l = labels_of(s);
            want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(value)
}

/// Whether `v` looks like something personal or identifying: an email address, an id
/// (a UUID, with or without hyphens, or any long run of hex), or an IP address.
fn looks_personal(v: &str) -> bool {
    let hex_run = v.split(|c: char| !c.is_ascii_hexdigit()).any(|run| run.len() >= 16);
    let uuid = v.len() == 36 && v.chars().filter(|c| *c == '-').count() == 4;
    v.contains('@') || hex_run || uuid || v.parse::<std::net::IpAddr>().is_ok() || v.contains("127.0.0.1")
}

async fn metrics_count_sign_ins_and_second_factors_without_personal_data(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    let lee = app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    app.enroll_authenticator(&lee).await;
    app.member(&org, "front.desk@riverside.test", Role::Staff).await;
    // A sign-in with a second factor, a wrong password, an unknown email, a page that
    // is not there, and a path with an id in it.
    let token = app.token("staff", "dr.lee@riverside.test").await;
    let started: Value = app.start_login("staff", "front.desk@riverside.test").await.json().await.unwrap();
    let flow_id = started["flow_id"].as_str().unwrap().to_owned();
    assert_eq!(app.submit_password(&flow_id, "not the password at all").await.status(), 401);
    assert_eq!(app.api_login("staff", "nobody@riverside.test", PASSWORD).await.status(), 401);
    assert_eq!(app.api().get(app.url("/no/such/page")).send().await.unwrap().status(), 404);
    let (status, _) = app.get_json("/api/v1/me", &token).await;
    assert_eq!(status, 200);

    let (text, scrape) = scrape(&metrics_listener(&app).await).await;
    // Every family the text declares, the parser read.
    for declared in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = declared.split_whitespace().next().unwrap();
        assert!(scrape.samples.iter().any(|s| s.metric == name), "{name} declared but not parsed:\n{text}");
    }
    let at_least = |metric: &str, labels: &[(&str, &str)], n: f64| {
        let v = sample(&scrape, metric, labels).unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{text}"));
        assert!(v >= n, "{metric} {labels:?} = {v}, want at least {n}");
    };
    at_least("clinic_auth_sign_ins_total", &[("realm", "staff"), ("outcome", "success")], 1.0);
    at_least("clinic_auth_sign_ins_total", &[("outcome", "wrong_password")], 1.0);
    at_least("clinic_auth_sign_ins_total", &[("outcome", "unknown_account")], 1.0);
    at_least("clinic_auth_second_factor_checks_total", &[("method", "authenticator"), ("outcome", "accepted")], 1.0);
    at_least("clinic_auth_sessions_active", &[], 1.0);
    at_least("clinic_auth_db_pool_max_connections", &[], 1.0);
    at_least("clinic_auth_db_pool_connections", &[("state", "idle")], 0.0);
    at_least("clinic_auth_password_hash_queue_depth", &[], 0.0);
    at_least("clinic_auth_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    for histogram in [
        "clinic_auth_http_request_duration_seconds",
        "clinic_auth_audit_append_seconds",
        "clinic_auth_password_hash_wait_seconds",
    ] {
        assert!(scrape.samples.iter().any(|s| s.metric == histogram), "no {histogram} in\n{text}");
    }
    // Latency by route template: the flow's id is not in any label, the template is.
    // (The parser skips lines whose label values hold braces, as templates do: read
    // those in the text.)
    let routes: Vec<String> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "clinic_auth_http_request_duration_seconds")
        .filter_map(|s| labels_of(s).get("route").cloned())
        .collect();
    assert!(routes.iter().any(|r| r == "unmatched"), "{routes:?}");
    assert!(routes.iter().any(|r| r == "/api/v1/login"), "{routes:?}");
    assert!(text.contains(r#"route="/api/v1/login/{flow_id}/password""#), "{text}");
    // Every label value in the text, parsed or not, is checked below too.
    let raw_values: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split("=\"").skip(1).map(|v| v.split('"').next().unwrap_or_default()))
        .collect();
    assert!(raw_values.contains(&"/api/v1/login/{flow_id}/password"), "{raw_values:?}");
    for v in &raw_values {
        assert!(!looks_personal(v), "label value {v:?} looks personal");
    }
    // No label anywhere holds an email, an id, an address, a token.
    for s in &scrape.samples {
        for (k, v) in labels_of(s) {
            assert!(!looks_personal(&v), "{}: label {k}={v:?} looks personal", s.metric);
            for secret in [&flow_id, &token, &lee.id.to_string(), &org.id.to_string()] {
                if secret.len() > 8 {
                    assert!(!v.contains(secret.as_str()), "{}: label {k}={v:?} holds an id", s.metric);
                }
            }
        }
    }
    assert!(!text.contains("riverside.test"), "no email anywhere in the scrape");
    // The public listener has no /metrics.
    assert_eq!(app.api().get(app.url("/metrics")).send().await.unwrap().status(), 404);
}

#[test]
fn the_personal_data_check_catches_what_it_is_for() {
    for personal in [
        "dr.lee@riverside.test",
        "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        "f47ac10b58cc4372a5670e02b2c3d479",
        "/admin/users/f47ac10b58cc4372a5670e02b2c3d479",
        "203.0.113.7",
        "::1",
    ] {
        assert!(looks_personal(personal), "{personal}");
    }
    for fine in ["staff", "/api/v1/login/{flow_id}/password", "0.1.0", "wrong_password", "unmatched", "200"] {
        assert!(!looks_personal(fine), "{fine}");
    }
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let res = app.api().get(app.url("/readyz")).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Makes the OpenID Connect signing keys (sealed under the keyring), as first use does.
async fn seal_signing_keys(app: &TestApp) {
    assert_eq!(app.api().get(app.url("/oauth2/jwks")).send().await.unwrap().status(), 200);
}

async fn readyz_is_ready_with_the_database_migrations_and_keyring(app: TestApp) {
    seal_signing_keys(&app).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ready", "checks": {"database": "ok", "migrations": "ok", "keyring": "ok"}}));
}

async fn readyz_names_migrations_not_applied(app: TestApp) {
    raw_sql(&app, "DELETE FROM _sqlx_migrations WHERE version = 8").await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], json!(["migrations"]));
    assert_eq!(body["checks"]["migrations"], "1 migration(s) not applied (8): run `clinic-auth migrate`");
    assert_eq!(body["checks"]["keyring"], "ok");
    // /healthz stays cheap: the database answers.
    assert_eq!(app.api().get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

async fn readyz_names_a_keyring_that_does_not_open_the_sealed_keys(app: TestApp) {
    seal_signing_keys(&app).await;
    // As if the database came from a server with another key: the sealed text is
    // well-formed, but this keyring's key did not seal it.
    raw_sql(
        &app,
        "UPDATE oidc_signing_keys SET private_sealed = '1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'",
    )
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], json!(["keyring"]));
    assert_eq!(body["checks"]["keyring"], "the encryption keyring cannot open the secrets sealed in the database");
    assert_eq!(body["checks"]["database"], "ok");
}

async fn raw_sql(app: &TestApp, sql: &str) {
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

fn request_id_of(res: &reqwest::Response) -> String {
    res.headers().get("x-request-id").expect("x-request-id header").to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_that_errors_quote() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let ok = app.api().get(app.url("/healthz")).send().await.unwrap();
    let first = request_id_of(&ok);
    assert_eq!(first.len(), 36, "a fresh UUID: {first}");
    let again = request_id_of(&app.api().get(app.url("/healthz")).send().await.unwrap());
    assert_ne!(first, again, "a new id per request");
    // A JSON error names it.
    let res = app.api().get(app.url("/api/v1/me")).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let id = request_id_of(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], id.as_str(), "{body}");
    // So does an error page.
    let res = app.browser().get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let id = request_id_of(&res);
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!("Reference: <code>{id}</code>")), "{html}");
    // A client's own X-Request-Id is not taken when no proxy is trusted.
    let res = app.api().get(app.url("/healthz")).header("x-request-id", "from-the-client").send().await.unwrap();
    assert_ne!(request_id_of(&res), "from-the-client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_sane_request_id_is_kept() {
    let app = TestApp::spawn_with(Backend::Sqlite, Options { trust_forwarded_for: true, ..Default::default() })
        .await
        .unwrap();
    let res = app.api().get(app.url("/api/v1/me")).header("x-request-id", "lb-7f3a.42_x").send().await.unwrap();
    assert_eq!(request_id_of(&res), "lb-7f3a.42_x");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "lb-7f3a.42_x");
    for insane in ["has space", "<b>", &"x".repeat(65)] {
        let res = app.api().get(app.url("/healthz")).header("x-request-id", insane).send().await.unwrap();
        let id = request_id_of(&res);
        assert_ne!(id, insane);
        assert_eq!(id.len(), 36, "replaced by a fresh id: {id}");
    }
}

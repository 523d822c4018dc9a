//! The OpenAPI document is served, checked in, and covers every API route.

use crate::harness::{Backend, TestApp};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test]
async fn openapi_document_is_served_and_matches_the_checked_in_copy() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let served = app.api().get(app.url("/api/v1/openapi.json")).send().await.unwrap().text().await.unwrap();
    let expected = clinic_auth_web::openapi_json();
    assert!(served == expected, "the served document differs from the generated one");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, format!("{expected}\n")).unwrap();
    }
    let on_disk = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        on_disk.trim_end() == expected,
        "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p clinic-auth-web --test http openapi"
    );
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/login",
        "/api/v1/login/{flow_id}/password",
        "/api/v1/logout",
        "/api/v1/me",
        "/api/v1/orgs",
        "/api/v1/orgs/{org_id}",
        "/api/v1/orgs/{org_id}/members",
        "/api/v1/orgs/{org_id}/patients",
        "/api/v1/platform-admins",
        "/api/v1/accounts/{account_id}/password-reset",
        "/api/v1/password-links/{token}",
    ] {
        assert!(paths.contains_key(p), "documented: {p}");
    }
}

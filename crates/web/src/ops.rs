//! The operator's endpoints: `/readyz` on the public listener (may a load balancer
//! send traffic here?), and `/metrics` on a listener of its own (`metrics_listen`,
//! loopback by default) so that metrics are never public.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/readyz", get(readyz))
}

/// `200 {"status":"ready","checks":{…}}` when the database answers, every migration
/// is applied and the keyring opens what the database sealed; otherwise `503` with
/// `"status":"not_ready"`, `failed` naming the checks that failed and each check's
/// problem in words. `/healthz` stays the cheap liveness check.
async fn readyz(State(state): State<AppState>) -> Response {
    let checks = clinic_auth_app::ops::readiness(&state).await;
    let failed: Vec<&str> = checks.iter().filter(|c| c.problem.is_some()).map(|c| c.name).collect();
    let detail: serde_json::Map<String, serde_json::Value> =
        checks.iter().map(|c| (c.name.to_owned(), serde_json::json!(c.problem.as_deref().unwrap_or("ok")))).collect();
    let (status, word) =
        if failed.is_empty() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not_ready") };
    let mut body = serde_json::json!({"status": word, "checks": detail});
    if let Some(fields) = body.as_object_mut()
        && !failed.is_empty()
    {
        fields.insert("failed".to_owned(), serde_json::json!(failed));
    }
    (status, axum::Json(body)).into_response()
}

/// The metrics listener's one route.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = crate::http::metrics::handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are off in this process\n").into_response();
    };
    clinic_auth_app::ops::refresh_gauges(&state).await;
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

/// Serves `/metrics` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http::metrics::handle();
    axum::serve(listener, metrics_router(state)).with_graceful_shutdown(shutdown).await
}

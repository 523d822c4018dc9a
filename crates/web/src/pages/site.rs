//! The front door, the health check and the static files.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;
use crate::http::auth::MaybeSignedIn;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/static/style.css", get(stylesheet))
        .route("/static/passkey.js", get(script))
}

async fn home(MaybeSignedIn(s): MaybeSignedIn) -> Redirect {
    if s.is_some() { Redirect::to("/account") } else { Redirect::to("/login") }
}

/// `200 {"status":"ok"}` while the database answers, `503` otherwise; `warnings` lists
/// set-up problems (such as an ignored `X-Forwarded-For`) and is left out when there are none.
async fn healthz(State(state): State<AppState>) -> Response {
    let (status, mut body) = match state.store_answers().await {
        Ok(store) => (StatusCode::OK, serde_json::json!({"status": "ok", "store": store})),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "unavailable"}))
        }
    };
    let warnings = state.warnings();
    if let Some(fields) = body.as_object_mut()
        && !warnings.is_empty()
    {
        fields.insert("warnings".to_owned(), serde_json::json!(warnings));
    }
    (status, axum::Json(body)).into_response()
}

/// A file served as it is, cached for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/style.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../static/passkey.js"))
}

//! One error type for the whole application. Each variant of trouble carries a stable
//! machine-readable `code`, a message a person can act on, and an HTTP status. Store
//! and internal failures are logged in full and answered with a generic 500.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clinic_auth_store::StoreError;

#[derive(Debug, Clone)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds until trying again can succeed (sent as `Retry-After`).
    pub retry_after: Option<i64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} was not found."))
    }

    pub fn unauthorized() -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Sign in first.")
    }

    pub fn forbidden() -> AppError {
        AppError::new(StatusCode::FORBIDDEN, "forbidden", "You are not allowed to do that.")
    }

    pub fn too_many_attempts(retry_after: i64) -> AppError {
        let wait = clinic_auth_core::throttle::describe_wait(retry_after);
        AppError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_attempts",
            message: format!("Too many failed attempts. For your security, try again in {wait}."),
            retry_after: Some(retry_after),
        }
    }

    /// Something went wrong on our side. The detail goes to the log, not the client.
    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        tracing::error!(detail = %detail, "internal error");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. Please try again; if it keeps happening, contact support.",
        )
    }

    pub fn with_retry_after(mut self, secs: i64) -> AppError {
        self.retry_after = Some(secs);
        self
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                AppError::new(StatusCode::CONFLICT, "conflict", format!("{} already exists.", capitalize(what)))
            }
            StoreError::MissingReference(what) => AppError::not_found(&capitalize(what)),
            other => AppError::internal(other),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_email`, `incorrect_credentials`, `too_many_attempts`, …
    pub code: &'static str,
    /// For people; may change between versions.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code, message: self.message, retry_after: self.retry_after } };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

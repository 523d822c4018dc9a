//! How an error reaches a client: an HTTP status, a stable machine-readable `code`
//! and a message a person can act on. `status_and_code` is the one table from the
//! application's `ErrorKind`s; the only errors made here are the HTTP layer's own
//! (a forged cross-site form, a body too large, a wrong method or media type).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clinic_auth_app::{self as app, ErrorKind};
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
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError { status, code, message: message.into(), retry_after: None }
    }

    pub fn not_found(what: &str) -> AppError {
        app::Error::not_found(what).into()
    }

    pub fn unauthorized() -> AppError {
        app::Error::unauthorized().into()
    }

    pub fn forbidden() -> AppError {
        app::Error::forbidden().into()
    }

    /// Something went wrong on our side. The detail goes to the log, not the client.
    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        app::Error::internal(detail).into()
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
        app::Error::from(e).into()
    }
}

impl From<app::Error> for AppError {
    fn from(e: app::Error) -> Self {
        let (status, code) = status_and_code(e.kind);
        AppError { status, code, message: e.message, retry_after: e.retry_after }
    }
}

/// The stable code of a kind of error, for the command line's JSON output.
pub fn error_code(kind: ErrorKind) -> &'static str {
    status_and_code(kind).1
}

/// The one table from what went wrong to an HTTP status and the stable JSON code
/// clients branch on. A code never changes once published.
pub fn status_and_code(kind: ErrorKind) -> (StatusCode, &'static str) {
    use ErrorKind as K;
    use StatusCode as S;
    match kind {
        K::InvalidRequest => (S::BAD_REQUEST, "invalid_request"),
        K::InvalidEmail => (S::BAD_REQUEST, "invalid_email"),
        K::InvalidPhone => (S::BAD_REQUEST, "invalid_phone"),
        K::InvalidCode => (S::BAD_REQUEST, "invalid_code"),
        K::InvalidName => (S::BAD_REQUEST, "invalid_name"),
        K::InvalidRole => (S::BAD_REQUEST, "invalid_role"),
        K::InvalidRealm => (S::BAD_REQUEST, "invalid_realm"),
        K::InvalidKind => (S::BAD_REQUEST, "invalid_kind"),
        K::InvalidStatus => (S::BAD_REQUEST, "invalid_status"),
        K::InvalidOverride => (S::BAD_REQUEST, "invalid_override"),
        K::InvalidPolicy => (S::BAD_REQUEST, "invalid_policy"),
        K::InvalidBranding => (S::BAD_REQUEST, "invalid_branding"),
        K::InvalidLogo => (S::BAD_REQUEST, "invalid_logo"),
        K::LogoTooLarge => (S::PAYLOAD_TOO_LARGE, "logo_too_large"),
        K::InvalidOrgId => (S::BAD_REQUEST, "invalid_org_id"),
        K::InvalidNote => (S::BAD_REQUEST, "invalid_note"),
        K::InvalidDate => (S::BAD_REQUEST, "invalid_date"),
        K::InvalidFormat => (S::BAD_REQUEST, "invalid_format"),
        K::InvalidPasskeyResponse => (S::BAD_REQUEST, "invalid_passkey_response"),
        K::WeakPassword => (S::BAD_REQUEST, "weak_password"),
        K::PasswordMismatch => (S::BAD_REQUEST, "password_mismatch"),
        K::NothingToChange => (S::BAD_REQUEST, "nothing_to_change"),
        K::IdentityNoteRequired => (S::BAD_REQUEST, "identity_note_required"),
        K::NotAMember => (S::BAD_REQUEST, "not_a_member"),
        K::UsePlatformConsole => (S::BAD_REQUEST, "use_platform_console"),
        K::ExportTooLarge => (S::BAD_REQUEST, "export_too_large"),
        K::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
        K::Forbidden => (S::FORBIDDEN, "forbidden"),
        K::NotOnYourself => (S::FORBIDDEN, "not_on_yourself"),
        K::OwnerProtected => (S::FORBIDDEN, "owner_protected"),
        K::PasswordNotAllowed => (S::FORBIDDEN, "password_not_allowed"),
        K::StepUpRequired => (S::FORBIDDEN, "step_up_required"),
        K::MfaRequired => (S::FORBIDDEN, "mfa_required"),
        K::IncorrectCredentials => (S::UNAUTHORIZED, "incorrect_credentials"),
        K::AccountDeactivated => (S::FORBIDDEN, "account_deactivated"),
        K::FlowExpired => (S::GONE, "flow_expired"),
        K::TooManyAttempts => (S::TOO_MANY_REQUESTS, "too_many_attempts"),
        K::MethodUnavailable => (S::BAD_REQUEST, "method_unavailable"),
        K::MfaNotAvailable => (S::FORBIDDEN, "mfa_not_enabled"),
        K::MfaOff => (S::BAD_REQUEST, "mfa_off"),
        K::OrgMfaOff => (S::CONFLICT, "mfa_not_enabled"),
        K::IncorrectCode => (S::UNAUTHORIZED, "incorrect_code"),
        K::CodeAlreadyUsed => (S::UNAUTHORIZED, "code_already_used"),
        K::CodeAttemptsExhausted => (S::UNAUTHORIZED, "code_attempts_exhausted"),
        K::CodeExpired => (S::GONE, "code_expired"),
        K::SetupExpired => (S::GONE, "setup_expired"),
        K::FactorLocked => (S::FORBIDDEN, "factor_locked"),
        K::ResendTooSoon => (S::TOO_MANY_REQUESTS, "resend_too_soon"),
        K::TooManyCodesSent => (S::TOO_MANY_REQUESTS, "too_many_codes_sent"),
        K::TooManyResends => (S::TOO_MANY_REQUESTS, "too_many_resends"),
        K::ReminderTooSoon => (S::TOO_MANY_REQUESTS, "reminder_too_soon"),
        K::ReminderNotNeeded => (S::CONFLICT, "reminder_not_needed"),
        K::DeliveryFailed => (S::SERVICE_UNAVAILABLE, "delivery_failed"),
        K::PasskeysUnavailable => (S::SERVICE_UNAVAILABLE, "passkeys_unavailable"),
        K::PasskeyNotStarted => (S::BAD_REQUEST, "passkey_not_started"),
        K::PasskeyExpired => (S::GONE, "passkey_expired"),
        K::PasskeyRejected => (S::UNAUTHORIZED, "passkey_rejected"),
        K::PasskeyRegistrationRejected => (S::BAD_REQUEST, "passkey_rejected"),
        K::PasskeyCloneWarning => (S::UNAUTHORIZED, "passkey_clone_warning"),
        K::PasskeyAlreadyRegistered => (S::CONFLICT, "passkey_already_registered"),
        K::PasskeyNotAllowed => (S::FORBIDDEN, "passkey_not_allowed"),
        K::TooManyPasskeys => (S::CONFLICT, "too_many_passkeys"),
        K::LinkExpired => (S::GONE, "link_expired"),
        K::NotFound => (S::NOT_FOUND, "not_found"),
        K::Conflict => (S::CONFLICT, "conflict"),
        K::EmailTaken => (S::CONFLICT, "email_taken"),
        K::AlreadyActive => (S::CONFLICT, "already_active"),
        K::ReactivateFirst => (S::CONFLICT, "account_deactivated"),
        K::CurrentSession => (S::CONFLICT, "current_session"),
        K::Internal => (S::INTERNAL_SERVER_ERROR, "internal"),
    }
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
    /// This request's id (also in the `X-Request-Id` header and in the server's log
    /// lines for it): quote it to whoever runs the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                retry_after: self.retry_after,
                request_id: crate::http::request_id::current(),
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

/// The HTTP status an error is answered with, for handlers that show some errors
/// inline (on the form) and others as an error page.
pub trait Status {
    fn status(&self) -> StatusCode;
}

impl Status for AppError {
    fn status(&self) -> StatusCode {
        self.status
    }
}

impl Status for app::Error {
    fn status(&self) -> StatusCode {
        status_and_code(self.kind).0
    }
}

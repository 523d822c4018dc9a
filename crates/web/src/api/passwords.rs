//! Self-service passwords over the API: "Forgot your password?"
//! (`POST /api/v1/password-resets`) and "Change password" (`POST /api/v1/me/password`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clinic_auth_app::{ErrorKind, passwords};
use clinic_auth_core::{Password, Realm};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, parse_enum, step_up_hint};
use crate::error::ErrorBody;
use crate::http::client::Client;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/password-resets", post(request_password_reset))
        .route("/api/v1/me/password", post(change_my_password))
}

#[derive(Deserialize, ToSchema)]
pub struct RequestReset {
    email: String,
    /// `staff` (default) or `patient`: which sign-in the address is for
    #[serde(default)]
    realm: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResetAccepted {
    /// Always `true`: the answer is the same whether or not an account uses the
    /// address. When one does (active, with a password), a reset link valid 1 hour
    /// went to that address by email; the link is never in the answer.
    accepted: bool,
}

/// "Forgot your password?": email a one-time reset link (valid 1 hour) to the address,
/// if an account of `realm` uses it. The answer never says whether one does. Limited
/// per address (over the limit the answer is the same, and nothing is sent) and per
/// client address (`429 too_many_attempts` with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/password-resets", tag = "sign-in", request_body = RequestReset,
    responses((status = 202, body = ResetAccepted),
        (status = 400, description = "`invalid_email`, `invalid_realm`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many requests from this client; see `Retry-After`", body = ErrorBody)))]
async fn request_password_reset(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<RequestReset>,
) -> Result<Response, AppError> {
    let realm = match body.realm.as_deref() {
        None => Realm::Staff,
        Some(r) => parse_enum::<Realm>(r, ErrorKind::InvalidRealm)?,
    };
    passwords::request_reset(&state, realm, &body.email, &client.0).await?;
    Ok((StatusCode::ACCEPTED, Json(ResetAccepted { accepted: true })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Change the signed-in account's password. Where the account has a second factor,
/// one must have been proved in this session within the last 10 minutes
/// (`POST /api/v1/me/mfa/verify`). Every other session of the account ends, and with
/// the security stamp every token its apps hold; this session stays.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "sign-in", request_body = ChangePassword,
    security(("bearer" = [])),
    responses((status = 204, description = "Changed; the account's holder is told by email"),
        (status = 400, description = "`weak_password`, `nothing_to_change` (the new password is the current one)", body = ErrorBody),
        (status = 401, description = "`incorrect_credentials`: the current password is wrong (counted like a wrong password at sign-in)", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords; see `Retry-After`", body = ErrorBody)))]
async fn change_my_password(c: Caller, ApiJson(body): ApiJson<ChangePassword>) -> Result<StatusCode, AppError> {
    let current = Password::new(body.current_password);
    let new = Password::new(body.new_password);
    passwords::change_password(&c.state, &c.session, current, new, None, &c.client).await.map_err(step_up_hint)?;
    Ok(StatusCode::NO_CONTENT)
}

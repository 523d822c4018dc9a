//! "Change email" over the API: ask for it (`POST /api/v1/me/email`), cancel it
//! (`DELETE /api/v1/me/email`), and use the emailed link's token
//! (`POST /api/v1/email-changes/confirm`, no bearer token: the token is the proof).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clinic_auth_app::email_change;
use clinic_auth_core::Password;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, step_up_hint};
use crate::error::ErrorBody;
use crate::http::client::Client;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/email", post(change_my_email).delete(cancel_my_email_change))
        .route("/api/v1/email-changes/confirm", post(confirm_email_change))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeEmail {
    new_email: String,
    current_password: String,
}

/// A change of sign-in email waiting for the link sent to the new address.
#[derive(Serialize, ToSchema)]
pub struct PendingEmailChange {
    new_email: String,
    /// Unix seconds: when the link stops working
    expires_at: i64,
}

impl From<email_change::Pending> for PendingEmailChange {
    fn from(p: email_change::Pending) -> Self {
        PendingEmailChange { new_email: p.new_email.to_string(), expires_at: p.expires_at.0 }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EmailChangeRequested {
    pending_email_change: PendingEmailChange,
}

/// Change the signed-in account's sign-in email. Where the account has a second
/// factor, one must have been proved in this session within the last 10 minutes
/// (`POST /api/v1/me/mfa/verify`). A one-time link (valid 1 hour) goes to the new
/// address, a notice to the current one; nothing changes until the link is used
/// (`POST /api/v1/email-changes/confirm`). The answer is the same whether or not
/// another account uses the new address (that address is told so by email instead of
/// getting a link). A new request replaces the waiting one. 3 requests an hour.
#[utoipa::path(post, path = "/api/v1/me/email", tag = "sign-in", request_body = ChangeEmail,
    security(("bearer" = [])),
    responses((status = 202, body = EmailChangeRequested),
        (status = 400, description = "`invalid_email`, `nothing_to_change` (the new address is the current one)", body = ErrorBody),
        (status = 401, description = "`incorrect_credentials`: the current password is wrong (counted like a wrong password at sign-in)", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many requests or wrong passwords; see `Retry-After`", body = ErrorBody)))]
async fn change_my_email(c: Caller, ApiJson(body): ApiJson<ChangeEmail>) -> Result<Response, AppError> {
    let current = Password::new(body.current_password);
    let pending = email_change::request_change(&c.state, &c.session, &body.new_email, current, &c.client)
        .await
        .map_err(step_up_hint)?;
    let body = EmailChangeRequested { pending_email_change: pending.into() };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Cancel the waiting change of sign-in email: its link stops working. Nothing to
/// cancel is not an error.
#[utoipa::path(delete, path = "/api/v1/me/email", tag = "sign-in", security(("bearer" = [])),
    responses((status = 204, description = "No change is waiting any more")))]
async fn cancel_my_email_change(c: Caller) -> Result<StatusCode, AppError> {
    email_change::cancel(&c.state, &c.session, &c.client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmEmailChange {
    /// The `token` of the link emailed to the new address
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct EmailChanged {
    /// The account's sign-in email now
    email: String,
}

/// Use the link emailed to the new address: the account's sign-in email becomes the
/// new one. Needs no session. The old and the new address are told by email.
#[utoipa::path(post, path = "/api/v1/email-changes/confirm", tag = "sign-in", request_body = ConfirmEmailChange,
    responses((status = 200, body = EmailChanged),
        (status = 409, description = "`email_taken`: another account uses the address now; nothing changed", body = ErrorBody),
        (status = 410, description = "`link_expired`: unknown, used, expired, replaced or cancelled link, or the account changed since (password, 2FA, email); nothing changed", body = ErrorBody)))]
async fn confirm_email_change(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<ConfirmEmailChange>,
) -> Result<Json<EmailChanged>, AppError> {
    let account = email_change::confirm(&state, &body.token, &client.0).await?;
    Ok(Json(EmailChanged { email: account.email.to_string() }))
}

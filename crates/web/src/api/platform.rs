//! The platform support console's look-ups and recovery, `/api/v1/platform/accounts/…`:
//! any account by id or email, across organizations.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic_auth_app::admin;
use serde::Deserialize;
use utoipa::IntoParams;

use super::Caller;
use super::members::{BypassView, MemberStatusView, ResetBody, ResetView};
use crate::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/platform/accounts/{account}", get(platform_status))
        .route("/api/v1/platform/accounts/{account}/mfa-reset", post(platform_reset))
        .route("/api/v1/platform/accounts/{account}/bypass", post(platform_bypass))
}

/// Any account, as the path names it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    /// Account id or email
    account: String,
}

/// Platform support: any account's factor status (by id or email), without secrets.
#[utoipa::path(get, path = "/api/v1/platform/accounts/{account}", tag = "platform", security(("bearer" = [])),
    params(AccountPath),
    responses((status = 200, body = MemberStatusView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn platform_status(
    c: Caller,
    Path(AccountPath { account }): Path<AccountPath>,
) -> Result<Json<MemberStatusView>, AppError> {
    let m = admin::member_status(&c.state, &c.by(), None, &account).await?;
    Ok(Json(MemberStatusView::from(&m)))
}

/// Platform support: reset the MFA of someone who lost every factor, recording how
/// their identity was verified.
#[utoipa::path(post, path = "/api/v1/platform/accounts/{account}/mfa-reset", tag = "platform", request_body = ResetBody, security(("bearer" = [])),
    params(AccountPath),
    responses((status = 200, body = ResetView), (status = 400, description = "`identity_note_required`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn platform_reset(
    c: Caller,
    Path(AccountPath { account }): Path<AccountPath>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<ResetView>, AppError> {
    let removed = admin::reset_mfa(&c.state, &c.by(), None, &account, body.identity_verified.as_deref()).await?;
    Ok(Json(ResetView { removed_factors: removed }))
}

/// Platform support: grant a member a one-time bypass.
#[utoipa::path(post, path = "/api/v1/platform/accounts/{account}/bypass", tag = "platform", security(("bearer" = [])),
    params(AccountPath),
    responses((status = 201, body = BypassView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn platform_bypass(c: Caller, Path(AccountPath { account }): Path<AccountPath>) -> Result<Response, AppError> {
    let b = admin::grant_bypass(&c.state, &c.by(), None, &account).await?;
    Ok((StatusCode::CREATED, Json(BypassView { expires_at: b.expires_at.0 })).into_response())
}

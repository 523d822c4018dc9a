//! The session a bearer token stands for: `/api/v1/me` and `/api/v1/logout`.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic_auth_app::sign_in;

use super::Caller;
use super::accounts::AccountView;
use crate::error::ErrorBody;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/logout", post(logout)).route("/api/v1/me", get(me))
}

/// End the session of the bearer token.
#[utoipa::path(post, path = "/api/v1/logout", tag = "sign-in", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(c: Caller) -> Result<StatusCode, AppError> {
    sign_in::sign_out(&c.state, &c.session, &c.client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "sign-in", security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
async fn me(c: Caller) -> Json<AccountView> {
    Json(AccountView::from(&c.session.account))
}

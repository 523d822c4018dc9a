//! The session a bearer token stands for: `/api/v1/me` and `/api/v1/logout`.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic_auth_app::{email_change, sign_in};
use serde::Serialize;
use utoipa::ToSchema;

use super::Caller;
use super::accounts::AccountView;
use super::email_change::PendingEmailChange;
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

/// The signed-in account, and its change of email waiting for its link, if any.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    account: AccountView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_email_change: Option<PendingEmailChange>,
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "sign-in", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = ErrorBody)))]
async fn me(c: Caller) -> Result<Json<MeView>, AppError> {
    let pending = email_change::pending(&c.state, &c.session.account).await?;
    Ok(Json(MeView {
        account: AccountView::from(&c.session.account),
        pending_email_change: pending.map(PendingEmailChange::from),
    }))
}

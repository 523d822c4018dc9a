//! Choosing a password with an emailed link, `/api/v1/password-links/{token}`: an
//! invitation, a reset, or the first admin's setup link.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use clinic_auth_app::accounts;
use clinic_auth_core::Password;
use serde::Deserialize;
use utoipa::ToSchema;

use super::accounts::AccountView;
use crate::error::ErrorBody;
use crate::http::client::Client;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/password-links/{token}", post(use_password_link))
}

#[derive(Deserialize, ToSchema)]
pub struct UseLink {
    /// Only for the first-admin setup link.
    #[serde(default)]
    email: Option<String>,
    password: String,
}

/// Set a password with an invitation, reset or setup link's token (the last path
/// segment of the link).
#[utoipa::path(post, path = "/api/v1/password-links/{token}", tag = "sign-in", request_body = UseLink,
    params(("token" = String, Path)),
    responses((status = 200, body = AccountView),
        (status = 400, description = "`weak_password`, `invalid_email`", body = ErrorBody),
        (status = 410, description = "`link_expired`", body = ErrorBody)))]
async fn use_password_link(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<UseLink>,
) -> Result<Json<AccountView>, AppError> {
    let confirm = body.password.clone();
    let password = Password::new(body.password);
    let email = body.email.as_deref();
    let account = accounts::use_password_link(&state, &token, email, password, &confirm, &client.0).await?;
    Ok(Json(AccountView::from(&account)))
}

//! The signed-in account's passkeys (trusted devices), `/api/v1/me/passkeys…`, and the
//! WebAuthn options and answers every passkey operation exchanges.

use axum::extract::Path;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use clinic_auth_app::passkeys;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Caller;
use crate::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/passkeys", get(my_passkeys).post(my_passkey_add))
        .route("/api/v1/me/passkeys/options", post(my_passkey_options))
        .route("/api/v1/me/passkeys/{passkey_id}", patch(my_passkey_rename).delete(my_passkey_remove))
}

/// WebAuthn options for `navigator.credentials.get()` or `.create()`. Binary fields
/// (`challenge`, `user.id`, credential `id`s) are base64url strings.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOptions {
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

pub(super) fn passkey_options<T: Serialize>(options: &T) -> Result<Json<PasskeyOptions>, AppError> {
    let mut value = serde_json::to_value(options).map_err(|e| AppError::internal(format!("passkey options: {e}")))?;
    let public_key = value.get_mut("publicKey").map(serde_json::Value::take).unwrap_or_default();
    Ok(Json(PasskeyOptions { public_key }))
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyAnswer {
    /// The `PublicKeyCredential` the browser returned, as JSON with base64url binary
    /// fields (`id`, `rawId`, `type`, `response`).
    #[schema(value_type = Object)]
    pub(super) credential: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    passkeys: Vec<PasskeyView>,
}

/// A passkey as its owner sees it: never the credential itself.
#[derive(Serialize, ToSchema)]
pub struct PasskeyView {
    id: String,
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; absent until first used to sign in.
    last_used_at: Option<i64>,
    /// The credential is synced between devices by its provider.
    synced: bool,
    /// This browser is the device the passkey was made on (by its device hint).
    this_device: bool,
}

impl From<passkeys::PasskeyView> for PasskeyView {
    fn from(p: passkeys::PasskeyView) -> Self {
        let passkeys::PasskeyView { id, name, created_at, last_used_at, synced, this_device } = p;
        PasskeyView { id, name, created_at, last_used_at, synced, this_device }
    }
}

fn passkey_list(views: Vec<passkeys::PasskeyView>) -> PasskeyList {
    PasskeyList { passkeys: views.into_iter().map(PasskeyView::from).collect() }
}

/// The account's passkeys (trusted devices): names, dates, never the credentials.
#[utoipa::path(get, path = "/api/v1/me/passkeys", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = PasskeyList)))]
async fn my_passkeys(c: Caller) -> Result<Json<PasskeyList>, AppError> {
    Ok(Json(passkey_list(passkeys::list(&c.state, &c.session.account, &[]).await?)))
}

/// Start trusting this device: options for `navigator.credentials.create()`. Needs a
/// second factor proved in the last 10 minutes.
#[utoipa::path(post, path = "/api/v1/me/passkeys/options", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = PasskeyOptions),
        (status = 403, description = "`step_up_required`, `passkey_not_allowed`", body = ErrorBody),
        (status = 409, description = "`too_many_passkeys`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_passkey_options(c: Caller) -> Result<Json<PasskeyOptions>, AppError> {
    c.require_step_up().await?;
    passkey_options(&passkeys::begin_registration(&c.state, &c.session.account, &c.session.token_hash).await?)
}

#[derive(Deserialize, ToSchema)]
pub struct NewPasskeyBody {
    /// The credential `navigator.credentials.create()` returned, as JSON.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// A name for the device (default: browser and system from the User-Agent).
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AddedPasskey {
    id: String,
    name: String,
    /// Keep it and send it with the password at sign-in (`device_hints`) to make the
    /// passkey the default method on this device.
    device_hint: String,
}

/// Finish trusting this device with the new credential.
#[utoipa::path(post, path = "/api/v1/me/passkeys", tag = "two-factor", request_body = NewPasskeyBody, security(("bearer" = [])),
    responses((status = 200, body = AddedPasskey),
        (status = 400, description = "`passkey_rejected`, `invalid_passkey_response`, `invalid_name`", body = ErrorBody),
        (status = 409, description = "`passkey_already_registered`", body = ErrorBody),
        (status = 410, description = "`passkey_expired`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_passkey_add(c: Caller, ApiJson(body): ApiJson<NewPasskeyBody>) -> Result<Json<AddedPasskey>, AppError> {
    c.require_step_up().await?;
    let response = body.credential.to_string();
    let added = passkeys::finish_registration(
        &c.state,
        &c.session.account,
        &c.session.token_hash,
        &response,
        body.name.as_deref(),
        &c.client,
    )
    .await?;
    Ok(Json(AddedPasskey { id: added.id, name: added.name, device_hint: added.device_hint }))
}

#[derive(Deserialize, ToSchema)]
pub struct RenamePasskey {
    name: String,
}

/// Rename a passkey.
#[utoipa::path(patch, path = "/api/v1/me/passkeys/{passkey_id}", tag = "two-factor", request_body = RenamePasskey,
    params(("passkey_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = PasskeyList), (status = 400, description = "`invalid_name`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
async fn my_passkey_rename(
    c: Caller,
    Path(passkey_id): Path<String>,
    ApiJson(body): ApiJson<RenamePasskey>,
) -> Result<Json<PasskeyList>, AppError> {
    passkeys::rename(&c.state, &c.session.account, &passkey_id, &body.name, &c.client).await?;
    my_passkeys(c).await
}

/// Remove a passkey: its device is no longer trusted. Needs a recent second factor.
#[utoipa::path(delete, path = "/api/v1/me/passkeys/{passkey_id}", tag = "two-factor",
    params(("passkey_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = PasskeyList), (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
async fn my_passkey_remove(c: Caller, Path(passkey_id): Path<String>) -> Result<Json<PasskeyList>, AppError> {
    c.require_step_up().await?;
    passkeys::remove(&c.state, &c.session.account, &c.session.token_hash, &passkey_id, &c.client).await?;
    my_passkeys(c).await
}

//! The signed-in account's own second factors, `/api/v1/me/mfa…`: status, proving a
//! factor again (step-up, by code or passkey), setting factors up, the recovery code,
//! turning 2FA off.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic_auth_app::{Error, ErrorKind, Within, factors, passkeys};
use clinic_auth_core::FactorKind;
use clinic_auth_store::Factor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::passkeys::{PasskeyAnswer, PasskeyOptions, passkey_options};
use super::second_factor::{AuthenticatorSetupView, EnrollPhone, SentView, SubmitCode};
use super::{Caller, parse_enum};
use crate::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/mfa", get(my_mfa).delete(my_mfa_off))
        .route("/api/v1/me/mfa/verify", post(my_mfa_verify))
        .route("/api/v1/me/mfa/verify/passkey/options", post(my_verify_passkey_options))
        .route("/api/v1/me/mfa/verify/passkey", post(my_verify_passkey))
        .route("/api/v1/me/mfa/authenticator", post(my_authenticator))
        .route("/api/v1/me/mfa/authenticator/confirm", post(my_authenticator_confirm))
        .route("/api/v1/me/mfa/email", post(my_email))
        .route("/api/v1/me/mfa/sms", post(my_sms))
        .route("/api/v1/me/mfa/code/confirm", post(my_code_confirm))
        .route("/api/v1/me/mfa/recovery-code", post(my_recovery_code))
}

#[derive(Serialize, ToSchema)]
pub struct FactorView {
    /// `authenticator`, `email`, `sms` or `passkey`
    kind: &'static str,
    label: String,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<i64>,
}

impl From<&Factor> for FactorView {
    fn from(f: &Factor) -> Self {
        FactorView {
            kind: f.kind.as_str(),
            label: f.label.clone(),
            created_at: f.created_at.0,
            last_used_at: f.last_used_at.map(|t| t.0),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MfaStatusView {
    enabled: bool,
    factors: Vec<FactorView>,
    recovery_code_set: bool,
    /// MFA applies to this account (organization policy or override).
    required: bool,
    may_opt_in: bool,
    may_turn_off: bool,
    /// A second factor was proved in this session within the last 10 minutes, so
    /// 2FA settings may change.
    recently_verified: bool,
}

/// The signed-in account's two-factor status.
#[utoipa::path(get, path = "/api/v1/me/mfa", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = MfaStatusView), (status = 401, body = ErrorBody)))]
async fn my_mfa(c: Caller) -> Result<Json<MfaStatusView>, AppError> {
    let status = factors::status(&c.state, &c.session).await?;
    Ok(Json(MfaStatusView {
        enabled: !status.mfa.factors.is_empty(),
        factors: status.mfa.factors.iter().map(FactorView::from).collect(),
        recovery_code_set: status.mfa.has_recovery_code,
        required: status.required,
        may_opt_in: status.may_opt_in,
        may_turn_off: status.may_turn_off,
        recently_verified: status.recently_verified,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyFactor {
    /// `authenticator` (default) or `recovery_code`
    #[serde(default)]
    method: Option<String>,
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct Verified {
    verified: bool,
    /// The replacement recovery code, shown once, when the recovery code was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_code: Option<String>,
}

/// Prove a second factor again, allowing 2FA changes for 10 minutes.
#[utoipa::path(post, path = "/api/v1/me/mfa/verify", tag = "two-factor", request_body = VerifyFactor, security(("bearer" = [])),
    responses((status = 200, body = Verified), (status = 401, body = ErrorBody),
        (status = 403, description = "`factor_locked`: 100 wrong answers in a row; use another method", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn my_mfa_verify(c: Caller, ApiJson(body): ApiJson<VerifyFactor>) -> Result<Json<Verified>, AppError> {
    let method = match body.method.as_deref() {
        None => FactorKind::Authenticator,
        Some(m) => parse_enum::<FactorKind>(m, ErrorKind::MethodUnavailable)?,
    };
    let answer = factors::StepUpAnswer::Code { method, code: &body.code };
    let proof = factors::step_up(&c.state, &c.session.account, &c.session.token_hash, answer, &c.client).await?;
    let recovery_code = match proof {
        factors::Proof::RecoveryCode(c) => Some(c.display()),
        factors::Proof::Authenticator | factors::Proof::Code | factors::Proof::Passkey => None,
    };
    Ok(Json(Verified { verified: true, recovery_code }))
}

/// Start setting up (or replacing) the authenticator app. Replacing needs a recent
/// second factor.
#[utoipa::path(post, path = "/api/v1/me/mfa/authenticator", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = AuthenticatorSetupView), (status = 403, description = "`step_up_required`, `mfa_not_enabled`", body = ErrorBody)))]
async fn my_authenticator(c: Caller) -> Result<Json<AuthenticatorSetupView>, AppError> {
    c.require_setup_allowed().await?;
    Ok(Json(
        factors::begin_authenticator(&c.state, &c.session.account, Within::Session(&c.session.token_hash))
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    /// Shown once: the account's first recovery code (absent when replacing an app).
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_code: Option<String>,
}

/// Confirm the authenticator app with its current code ("Enable 2FA"). A replaced app's
/// secret stops working at once.
#[utoipa::path(post, path = "/api/v1/me/mfa/authenticator/confirm", tag = "two-factor", request_body = SubmitCode, security(("bearer" = [])),
    responses((status = 200, body = Enrolled), (status = 401, body = ErrorBody), (status = 410, description = "`setup_expired`", body = ErrorBody)))]
async fn my_authenticator_confirm(c: Caller, ApiJson(body): ApiJson<SubmitCode>) -> Result<Json<Enrolled>, AppError> {
    c.require_step_up().await?;
    let within = Within::Session(&c.session.token_hash);
    let code = factors::confirm_authenticator(&c.state, &c.session.account, &body.code, within, &c.client).await?;
    Ok(Json(Enrolled { recovery_code: code.map(|c| c.display()) }))
}

async fn my_code_setup(c: &Caller, kind: FactorKind, phone: Option<&str>) -> Result<Json<SentView>, AppError> {
    c.require_setup_allowed().await?;
    let within = Within::Session(&c.session.token_hash);
    Ok(Json(factors::send_setup_code(&c.state, &c.session.account, kind, phone, within, &c.client).await?.into()))
}

/// Set up codes by email (to the account's email): sends a confirmation code.
#[utoipa::path(post, path = "/api/v1/me/mfa/email", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = SentView), (status = 400, description = "`method_unavailable`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn my_email(c: Caller) -> Result<Json<SentView>, AppError> {
    my_code_setup(&c, FactorKind::Email, None).await
}

/// Set up codes by text message to a US mobile number: sends a confirmation code.
#[utoipa::path(post, path = "/api/v1/me/mfa/sms", tag = "two-factor", request_body = EnrollPhone, security(("bearer" = [])),
    responses((status = 200, body = SentView), (status = 400, description = "`invalid_phone`, `method_unavailable`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn my_sms(c: Caller, ApiJson(body): ApiJson<EnrollPhone>) -> Result<Json<SentView>, AppError> {
    my_code_setup(&c, FactorKind::Sms, Some(&body.phone)).await
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmCodeFactor {
    /// `email` or `sms`
    method: String,
    code: String,
}

/// Confirm an email or phone with the code sent to it; the factor is saved only now.
#[utoipa::path(post, path = "/api/v1/me/mfa/code/confirm", tag = "two-factor", request_body = ConfirmCodeFactor, security(("bearer" = [])),
    responses((status = 200, body = Enrolled), (status = 401, body = ErrorBody), (status = 410, description = "`code_expired`", body = ErrorBody)))]
async fn my_code_confirm(c: Caller, ApiJson(body): ApiJson<ConfirmCodeFactor>) -> Result<Json<Enrolled>, AppError> {
    c.require_step_up().await?;
    let kind = parse_enum::<FactorKind>(&body.method, ErrorKind::MethodUnavailable)?;
    if !matches!(kind, FactorKind::Email | FactorKind::Sms) {
        return Err(Error::new(ErrorKind::MethodUnavailable, "Confirm `email` or `sms` here.").into());
    }
    let within = Within::Session(&c.session.token_hash);
    let code =
        factors::confirm_code_enrollment(&c.state, &c.session.account, kind, &body.code, within, &c.client).await?;
    Ok(Json(Enrolled { recovery_code: code.map(|c| c.display()) }))
}

#[derive(Serialize, ToSchema)]
pub struct NewRecoveryCode {
    /// Shown once; the previous code stops working.
    recovery_code: String,
}

/// Replace the recovery code (needs a recent second factor).
#[utoipa::path(post, path = "/api/v1/me/mfa/recovery-code", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = NewRecoveryCode), (status = 400, description = "`mfa_off`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody)))]
async fn my_recovery_code(c: Caller) -> Result<Json<NewRecoveryCode>, AppError> {
    c.require_step_up().await?;
    let code = factors::new_recovery_code(&c.state, &c.session.account, &c.client).await?;
    Ok(Json(NewRecoveryCode { recovery_code: code.display() }))
}

/// Turn two-factor authentication off (when no policy requires it; needs a recent second factor).
#[utoipa::path(delete, path = "/api/v1/me/mfa", tag = "two-factor", security(("bearer" = [])),
    responses((status = 204), (status = 403, description = "`mfa_required`, `step_up_required`", body = ErrorBody)))]
async fn my_mfa_off(c: Caller) -> Result<StatusCode, AppError> {
    c.require_step_up().await?;
    factors::turn_off(&c.state, &c.session.account, &c.session.token_hash, &c.client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prove a second factor again with a passkey: the options.
#[utoipa::path(post, path = "/api/v1/me/mfa/verify/passkey/options", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = PasskeyOptions), (status = 400, description = "`method_unavailable`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_verify_passkey_options(c: Caller) -> Result<Json<PasskeyOptions>, AppError> {
    let bound = passkeys::Bound::StepUp(&c.session.token_hash);
    passkey_options(&passkeys::begin_authentication(&c.state, &c.session.account, bound, None).await?)
}

/// Prove a second factor again with the passkey's answer, allowing 2FA changes for
/// 10 minutes.
#[utoipa::path(post, path = "/api/v1/me/mfa/verify/passkey", tag = "two-factor", request_body = PasskeyAnswer, security(("bearer" = [])),
    responses((status = 200, body = Verified), (status = 401, body = ErrorBody), (status = 410, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_verify_passkey(c: Caller, ApiJson(body): ApiJson<PasskeyAnswer>) -> Result<Json<Verified>, AppError> {
    let response = body.credential.to_string();
    let answer = factors::StepUpAnswer::Passkey { credential: &response };
    factors::step_up(&c.state, &c.session.account, &c.session.token_hash, answer, &c.client).await?;
    Ok(Json(Verified { verified: true, recovery_code: None }))
}

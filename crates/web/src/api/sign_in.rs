//! Signing in, `/api/v1/login…`: a flow from the email through the password and the
//! second factor (or its first setup) to the session token.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic_auth_app::sign_in::SignInStep;
use clinic_auth_app::{Error, ErrorKind, codes, sign_in};
use clinic_auth_core::{FactorKind, MethodSet, Password, Realm, UnixTime};
use clinic_auth_store::ClientInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::AccountView;
use super::parse_enum;
use super::passkeys::{PasskeyAnswer, PasskeyOptions, passkey_options};
use super::second_factor::{AuthenticatorSetupView, EnrollPhone, SentView, SubmitCode};
use crate::error::{ErrorBody, error_code};
use crate::http::client::Client;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

/// A step of a sign-in: the flow's secret id (the path's `{flow_id}`), where the
/// request came from, and the application.
struct Flow {
    state: AppState,
    id: String,
    client: ClientInfo,
}

impl FromRequestParts<AppState> for Flow {
    type Rejection = PathRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PathRejection> {
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        let Path(id) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(Flow { state: state.clone(), id, client })
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login", post(start_login))
        .route("/api/v1/login/{flow_id}", get(login_progress))
        .route("/api/v1/login/{flow_id}/password", post(submit_password))
        .route("/api/v1/login/{flow_id}/method", post(login_method))
        .route("/api/v1/login/{flow_id}/code", post(login_code))
        .route("/api/v1/login/{flow_id}/resend", post(login_resend))
        .route("/api/v1/login/{flow_id}/enroll/authenticator", post(login_enroll))
        .route("/api/v1/login/{flow_id}/enroll/authenticator/confirm", post(login_enroll_confirm))
        .route("/api/v1/login/{flow_id}/enroll/email", post(login_enroll_email))
        .route("/api/v1/login/{flow_id}/enroll/sms", post(login_enroll_sms))
        .route("/api/v1/login/{flow_id}/enroll/code/confirm", post(login_enroll_code_confirm))
        .route("/api/v1/login/{flow_id}/remind-later", post(login_remind_later))
        .route("/api/v1/login/{flow_id}/passkey/options", post(login_passkey_options))
        .route("/api/v1/login/{flow_id}/passkey", post(login_passkey))
}

#[derive(Deserialize, ToSchema)]
pub struct StartLogin {
    /// `staff` (default) or `patient`
    #[serde(default)]
    realm: Option<String>,
    email: String,
    /// The clinic this sign-in is for (its organization id): the codes it sends carry
    /// that clinic's name until the account is known. A hint only: an unknown id is
    /// ignored.
    #[serde(default)]
    org: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginStarted {
    /// Secret: pass it back in the next step's path. Valid 15 minutes.
    flow_id: String,
    /// The next step: `password`
    next: &'static str,
    expires_at: i64,
}

/// Start signing in with an email. Any well-formed email gets a flow.
#[utoipa::path(post, path = "/api/v1/login", tag = "sign-in", request_body = StartLogin,
    responses((status = 201, body = LoginStarted), (status = 400, description = "`invalid_email`", body = ErrorBody)))]
async fn start_login(State(state): State<AppState>, ApiJson(body): ApiJson<StartLogin>) -> Result<Response, AppError> {
    let realm = match body.realm.as_deref() {
        None => Realm::Staff,
        Some(r) => parse_enum::<Realm>(r, ErrorKind::InvalidRealm)?,
    };
    let started = sign_in::start(&state, realm, &body.email, body.org.as_deref()).await?;
    let view = LoginStarted {
        flow_id: started.flow_token.expose().to_owned(),
        next: started.flow.step.name(),
        expires_at: started.flow.expires_at.0,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct SubmitPassword {
    password: String,
    /// Device hints this client kept from registering passkeys (`device_hint` of
    /// `POST /api/v1/me/passkeys`). A matching hint only makes `passkey` the default
    /// method; the passkey itself must still answer.
    #[serde(default)]
    device_hints: Vec<String>,
}

/// Where a sign-in stands. `next` says what to do: `second_factor` (submit a code
/// for `method`, or switch to one of `other_methods`), `enroll` (set up one of
/// `allowed_methods`), or `done` (the session is granted).
#[derive(Serialize, ToSchema, Default)]
pub struct LoginProgress {
    next: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_methods: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_methods: Option<Vec<&'static str>>,
    /// With `enroll`, while the member is in their clinic's grace period: until when
    /// (Unix seconds) they may postpone setup with `POST …/remind-later`.
    #[serde(skip_serializing_if = "Option::is_none")]
    remind_later_until: Option<i64>,
    /// With `remind_later_until`: whole days left (0 in the last day).
    #[serde(skip_serializing_if = "Option::is_none")]
    days_left: Option<u32>,
    /// Secret: send as `Authorization: Bearer <session_token>` (when `done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<AccountView>,
    /// Shown once: the first recovery code after setup, or the replacement for one used.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_code: Option<String>,
    /// For `email` and `sms`: where the code went (masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_to: Option<String>,
    /// Seconds until `/resend` works again.
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_in: Option<i64>,
    /// Set when the code could not be sent (`delivery_failed`, `too_many_codes_sent`): retry with `/resend`.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_error: Option<&'static str>,
    /// With `done` after a one-time bypass removed the member's factors: offer setting
    /// 2FA up again (`POST /api/v1/me/mfa/…`); it was not required, so not forced.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suggest_setup: bool,
}

fn done(s: sign_in::SignedInSession) -> LoginProgress {
    LoginProgress {
        next: "done",
        session_token: Some(s.token.expose().to_owned()),
        token_type: Some("Bearer"),
        account: Some(AccountView::from(&s.account)),
        recovery_code: s.new_recovery_code.map(|c| c.display()),
        suggest_setup: s.suggest_setup,
        ..Default::default()
    }
}

/// After a second factor: `done`, or `enroll` when the factor was one the
/// organization no longer allows (set up an allowed one; the session follows).
fn proved(p: sign_in::Proved) -> LoginProgress {
    match p {
        sign_in::Proved::SignedIn(s) => done(*s),
        sign_in::Proved::Enroll { allowed } => {
            LoginProgress { next: "enroll", allowed_methods: Some(kinds(allowed.iter())), ..Default::default() }
        }
    }
}

fn kinds(list: impl IntoIterator<Item = FactorKind>) -> Vec<&'static str> {
    list.into_iter().map(FactorKind::as_str).collect()
}

/// Submit the password for a flow.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/password", tag = "sign-in", request_body = SubmitPassword,
    params(("flow_id" = String, Path, description = "From the previous step")),
    responses((status = 200, body = LoginProgress),
        (status = 401, description = "`incorrect_credentials` (unknown email and wrong password alike)", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = ErrorBody)))]
async fn submit_password(f: Flow, ApiJson(body): ApiJson<SubmitPassword>) -> Result<Json<LoginProgress>, AppError> {
    let hints = clinic_auth_core::passkey::parse_device_hints(&body.device_hints.join(","));
    let progress =
        match sign_in::submit_password(&f.state, &f.id, Password::new(body.password), &hints, &f.client).await? {
            sign_in::PasswordOutcome::SignedIn(s) => done(*s),
            sign_in::PasswordOutcome::SecondFactor { method, others } => {
                let mut progress = LoginProgress {
                    next: "second_factor",
                    method: Some(method.as_str()),
                    other_methods: Some(kinds(others)),
                    ..Default::default()
                };
                with_sending(&mut progress, sign_in::ensure_code_sent(&f.state, &f.id, false, &f.client).await)?;
                progress
            }
            sign_in::PasswordOutcome::Enroll { allowed, remind_until } => enroll(allowed, remind_until, f.state.now()),
        };
    Ok(Json(progress))
}

/// Fills in where a code went, or why it could not be sent (the flow goes on): a
/// failed delivery and the send limits (the kinds answered with 429) become
/// `delivery_error`, with the code they would have been answered with; `/resend`
/// retries.
fn with_sending(progress: &mut LoginProgress, sent: Result<Option<codes::SentTo>, Error>) -> Result<(), Error> {
    match sent {
        Ok(Some(s)) => {
            progress.sent_to = Some(s.masked);
            progress.resend_in = Some(s.resend_in);
        }
        Ok(None) => {}
        Err(e) if not_sent(e.kind) => progress.delivery_error = Some(error_code(e.kind)),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The errors of sending a code that leave the sign-in going on.
fn not_sent(kind: ErrorKind) -> bool {
    use ErrorKind as K;
    matches!(kind, K::DeliveryFailed | K::ResendTooSoon | K::TooManyCodesSent | K::TooManyResends | K::TooManyAttempts)
}

/// Where a sign-in stands.
#[utoipa::path(get, path = "/api/v1/login/{flow_id}", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 410, description = "`flow_expired`", body = ErrorBody)))]
async fn login_progress(f: Flow) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(where_it_stands(&f).await?))
}

async fn where_it_stands(f: &Flow) -> Result<LoginProgress, Error> {
    let progress = match sign_in::resume(&f.state, &f.id).await?.step {
        SignInStep::Password => LoginProgress { next: "password", ..Default::default() },
        SignInStep::SecondFactor { method, others, .. } => LoginProgress {
            next: "second_factor",
            method: Some(method.as_str()),
            other_methods: Some(kinds(others)),
            ..Default::default()
        },
        SignInStep::Enroll { allowed, remind_until, .. } => enroll(allowed, remind_until, f.state.now()),
    };
    Ok(progress)
}

/// The setup step, with "Remind me later" while the grace period lasts.
fn enroll(allowed: MethodSet, remind_until: Option<UnixTime>, now: UnixTime) -> LoginProgress {
    let remind_until = remind_until.filter(|until| now < *until);
    LoginProgress {
        next: "enroll",
        allowed_methods: Some(kinds(allowed.iter())),
        remind_later_until: remind_until.map(|t| t.0),
        days_left: remind_until.map(|t| clinic_auth_core::policy::days_left(now, t)),
        ..Default::default()
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ChooseMethod {
    /// One of the flow's `other_methods`
    method: String,
}

/// "Try another method": switch the second-factor step to another enrolled method.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/method", tag = "sign-in", request_body = ChooseMethod,
    params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 400, description = "`method_unavailable`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody)))]
async fn login_method(f: Flow, ApiJson(body): ApiJson<ChooseMethod>) -> Result<Json<LoginProgress>, AppError> {
    let method = parse_enum::<FactorKind>(&body.method, ErrorKind::MethodUnavailable)?;
    sign_in::choose_method(&f.state, &f.id, method).await?;
    let mut progress = where_it_stands(&f).await?;
    with_sending(&mut progress, sign_in::ensure_code_sent(&f.state, &f.id, false, &f.client).await)?;
    Ok(Json(progress))
}

/// Submit the second factor for the flow's current method.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/code", tag = "sign-in", request_body = SubmitCode,
    params(("flow_id" = String, Path)),
    responses((status = 200, description = "`done`, with the session (and a new recovery code after using one)", body = LoginProgress),
        (status = 400, description = "`invalid_code` (not a code at all; not counted)", body = ErrorBody),
        (status = 401, description = "`incorrect_code`, `code_already_used`", body = ErrorBody),
        (status = 403, description = "`factor_locked`: 100 wrong answers in a row; use another method", body = ErrorBody),
        (status = 410, description = "`flow_expired` (also after too many wrong codes, or when the account changed during the sign-in)", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody)))]
async fn login_code(f: Flow, ApiJson(body): ApiJson<SubmitCode>) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(proved(sign_in::submit_code(&f.state, &f.id, &body.code, &f.client).await?)))
}

/// During sign-in: start setting up an authenticator app (the same secret is returned
/// again until it is confirmed or 15 minutes pass).
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/authenticator", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = AuthenticatorSetupView), (status = 410, body = ErrorBody)))]
async fn login_enroll(f: Flow) -> Result<Json<AuthenticatorSetupView>, AppError> {
    sign_in::choose_enrollment_method(&f.state, &f.id, FactorKind::Authenticator).await?;
    let (_, setup) = sign_in::begin_enrollment(&f.state, &f.id).await?;
    Ok(Json(setup.into()))
}

/// During sign-in: confirm the authenticator app with its current code ("Enable 2FA").
/// The answer carries the session and the recovery code, shown once.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/authenticator/confirm", tag = "sign-in", request_body = SubmitCode,
    params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 400, body = ErrorBody), (status = 410, description = "`setup_expired`, `flow_expired`", body = ErrorBody)))]
async fn login_enroll_confirm(f: Flow, ApiJson(body): ApiJson<SubmitCode>) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(done(sign_in::confirm_enrollment(&f.state, &f.id, &body.code, &f.client).await?)))
}

/// Send a new code for the current step (second factor by email or text, or setup of one).
/// Replaces the previous code; refused during the 30-second cooldown and past the send limits.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/resend", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = SentView),
        (status = 400, description = "`method_unavailable` (the current step sends no code)", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody),
        (status = 429, description = "`resend_too_soon`, `too_many_codes_sent` (with Retry-After)", body = ErrorBody),
        (status = 503, description = "`delivery_failed`: the email or SMS provider failed; try again", body = ErrorBody)))]
async fn login_resend(f: Flow) -> Result<Json<SentView>, AppError> {
    Ok(Json(sign_in::resend(&f.state, &f.id, &f.client).await?.into()))
}

/// During sign-in: set up codes by email; a code goes to the account's email.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/email", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = SentView), (status = 400, description = "`method_unavailable`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login_enroll_email(f: Flow) -> Result<Json<SentView>, AppError> {
    sign_in::choose_enrollment_method(&f.state, &f.id, FactorKind::Email).await?;
    Ok(Json(sign_in::send_enrollment_code(&f.state, &f.id, None, false, &f.client).await?.into()))
}

/// During sign-in: set up codes by text message to a US mobile number.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/sms", tag = "sign-in", request_body = EnrollPhone, params(("flow_id" = String, Path)),
    responses((status = 200, body = SentView), (status = 400, description = "`invalid_phone`, `method_unavailable`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login_enroll_sms(f: Flow, ApiJson(body): ApiJson<EnrollPhone>) -> Result<Json<SentView>, AppError> {
    sign_in::choose_enrollment_method(&f.state, &f.id, FactorKind::Sms).await?;
    Ok(Json(sign_in::send_enrollment_code(&f.state, &f.id, Some(&body.phone), false, &f.client).await?.into()))
}

/// During sign-in: confirm the email or phone with the code sent to it. The answer
/// carries the session and the recovery code, shown once.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/code/confirm", tag = "sign-in", request_body = SubmitCode,
    params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 401, description = "`incorrect_code`, `code_attempts_exhausted`", body = ErrorBody),
        (status = 410, description = "`code_expired`", body = ErrorBody)))]
async fn login_enroll_code_confirm(
    f: Flow,
    ApiJson(body): ApiJson<SubmitCode>,
) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(done(sign_in::confirm_code_enrollment(&f.state, &f.id, &body.code, &f.client).await?)))
}

/// "Remind me later": during the clinic's grace period for Mandatory 2FA (the `enroll`
/// step has `remind_later_until`), finish signing in without setting up 2FA. The
/// session proves the password only: apps that demand a second factor still ask for
/// setup. Audited as `mfa_setup_postponed`.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/remind-later", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, description = "`done`, with the session", body = LoginProgress),
        (status = 403, description = "`mfa_required`: no grace period (any more); set up 2FA", body = ErrorBody),
        (status = 410, description = "`flow_expired` (also when the flow is not at `enroll`)", body = ErrorBody)))]
async fn login_remind_later(f: Flow) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(done(sign_in::remind_later(&f.state, &f.id, &f.client).await?)))
}

/// Start the passkey step of a sign-in: switches the flow to `passkey` and returns
/// the options. Good for one answer, for 5 minutes.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/passkey/options", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = PasskeyOptions),
        (status = 400, description = "`method_unavailable` (no passkey)", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable` (server not configured for passkeys)", body = ErrorBody)))]
async fn login_passkey_options(f: Flow) -> Result<Json<PasskeyOptions>, AppError> {
    passkey_options(&sign_in::begin_passkey(&f.state, &f.id).await?)
}

/// Finish the sign-in with the passkey's answer.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/passkey", tag = "sign-in", request_body = PasskeyAnswer,
    params(("flow_id" = String, Path)),
    responses((status = 200, description = "`done`, with the session", body = LoginProgress),
        (status = 400, description = "`invalid_passkey_response`", body = ErrorBody),
        (status = 401, description = "`passkey_rejected` (wrong origin, challenge, credential or signature), `passkey_clone_warning`", body = ErrorBody),
        (status = 410, description = "`passkey_expired` (options used or too old), `flow_expired`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn login_passkey(f: Flow, ApiJson(body): ApiJson<PasskeyAnswer>) -> Result<Json<LoginProgress>, AppError> {
    let response = body.credential.to_string();
    Ok(Json(proved(sign_in::submit_passkey(&f.state, &f.id, &response, &f.client).await?)))
}

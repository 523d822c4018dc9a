//! The JSON API under `/api/v1`, for integrators and scripts. It calls the same
//! services as the pages. Authentication is `Authorization: Bearer <session_token>`;
//! cookies are never accepted here, so no request can be forged cross-site.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clinic_auth_core::{
    AccountKind, FactorKind, FlowStep, MemberOverride, MethodSet, MfaMode, OrgKind, Password, Realm, Role,
};
use clinic_auth_store::{Account, LinkPurpose, Org};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::Status;
use crate::error::{ErrorBody, ErrorDetail};
use crate::http::auth::ApiSignedIn;
use crate::http::client::Client;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};
use clinic_auth_app::{By, Within, accounts, codes, factors, passkeys, sign_in};
use clinic_auth_app::{Error, ErrorKind};

mod admin;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(admin::routes())
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(start_login))
        .route("/api/v1/login/{flow_id}/password", post(submit_password))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/orgs", post(create_org))
        .route("/api/v1/orgs/{org_id}", get(get_org))
        .route("/api/v1/orgs/{org_id}/members", post(add_member))
        .route("/api/v1/orgs/{org_id}/patients", post(add_patient))
        .route("/api/v1/platform-admins", post(add_platform_admin))
        .route("/api/v1/accounts/{account_id}/password-reset", post(password_reset))
        .route("/api/v1/accounts/{account_id}/invitation", post(resend_account_invitation))
        .route("/api/v1/password-links/{token}", post(use_password_link))
        .route("/api/v1/login/{flow_id}", get(login_progress))
        .route("/api/v1/login/{flow_id}/method", post(login_method))
        .route("/api/v1/login/{flow_id}/code", post(login_code))
        .route("/api/v1/login/{flow_id}/enroll/authenticator", post(login_enroll))
        .route("/api/v1/login/{flow_id}/enroll/authenticator/confirm", post(login_enroll_confirm))
        .route("/api/v1/login/{flow_id}/resend", post(login_resend))
        .route("/api/v1/login/{flow_id}/enroll/email", post(login_enroll_email))
        .route("/api/v1/login/{flow_id}/enroll/sms", post(login_enroll_sms))
        .route("/api/v1/login/{flow_id}/enroll/code/confirm", post(login_enroll_code_confirm))
        .route("/api/v1/me/mfa", get(my_mfa).delete(my_mfa_off))
        .route("/api/v1/me/mfa/verify", post(my_mfa_verify))
        .route("/api/v1/me/mfa/authenticator", post(my_authenticator))
        .route("/api/v1/me/mfa/authenticator/confirm", post(my_authenticator_confirm))
        .route("/api/v1/me/mfa/recovery-code", post(my_recovery_code))
        .route("/api/v1/me/mfa/email", post(my_email))
        .route("/api/v1/me/mfa/sms", post(my_sms))
        .route("/api/v1/me/mfa/code/confirm", post(my_code_confirm))
        .route("/api/v1/orgs/{org_id}/mfa", put(set_org_mfa))
        .route("/api/v1/orgs/{org_id}/members/{member}/mfa", put(set_member_mfa))
        .route("/api/v1/login/{flow_id}/passkey/options", post(login_passkey_options))
        .route("/api/v1/login/{flow_id}/passkey", post(login_passkey))
        .route("/api/v1/me/passkeys", get(my_passkeys).post(my_passkey_add))
        .route("/api/v1/me/passkeys/options", post(my_passkey_options))
        .route("/api/v1/me/passkeys/{passkey_id}", axum::routing::patch(my_passkey_rename).delete(my_passkey_remove))
        .route("/api/v1/me/mfa/verify/passkey/options", post(my_verify_passkey_options))
        .route("/api/v1/me/mfa/verify/passkey", post(my_verify_passkey))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clinic-auth API",
        description = "Sign-in and account administration for clinic-auth. Errors are `{\"error\": {\"code\", \"message\"}}` with a stable `code`.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(
                start_login, submit_password, login_progress, login_method, login_code, login_resend, login_enroll,
        login_enroll_confirm, login_enroll_email, login_enroll_sms, login_enroll_code_confirm,
                logout, me, my_mfa, my_mfa_off, my_mfa_verify, my_authenticator, my_authenticator_confirm, my_recovery_code,
                my_email, my_sms, my_code_confirm, login_passkey_options, login_passkey, my_passkeys, my_passkey_options,
        my_passkey_add, my_passkey_rename, my_passkey_remove, my_verify_passkey_options, my_verify_passkey,
        create_org, get_org, set_org_mfa, add_member, set_member_mfa, add_patient, add_platform_admin, password_reset,
        resend_account_invitation, use_password_link
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "sign-in", description = "The sign-in flow"),
        (name = "two-factor", description = "The signed-in account's second factors"),
        (name = "admin", description = "Organizations, accounts and policy")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers of the extractors every operation shares, documented once here rather
/// than on each path (where an operation documents the status itself, its own entry
/// stays): 401 `unauthorized` from `ApiSignedIn` on operations that take a bearer token,
/// and 400 `invalid_request`, 413 `payload_too_large` and 415 `unsupported_media_type`
/// from `ApiJson` on operations that take a JSON body.
struct ExtractorResponses;

impl utoipa::Modify for ExtractorResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let mut shared = Vec::new();
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    shared.push(("401", "`unauthorized`: no bearer token, or its session ended"));
                }
                if op.request_body.is_some() {
                    shared.push(("400", "`invalid_request`: the body is not JSON of the documented shape"));
                    shared.push(("413", "`payload_too_large`: the body is over 16 KiB"));
                    shared
                        .push(("415", "`unsupported_media_type`: send the body with `Content-Type: application/json`"));
                }
                for (status, description) in shared {
                    op.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

/// The OpenAPI document, as served and as checked into `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.merge(admin::AdminDoc::openapi());
    utoipa::Modify::modify(&ExtractorResponses, &mut doc);
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

// ----- views -----

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// UUID
    id: String,
    /// `member`, `patient` or `platform_admin`
    kind: &'static str,
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    /// `owner`, `admin`, `provider` or `staff` (members only)
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `active` or `deactivated`
    status: &'static str,
    /// Whether a password is set (false until an invitation is accepted)
    password_set: bool,
    /// Unix seconds
    created_at: i64,
    /// Two-factor setting: `clinic_default`, `required` or `not_required`
    mfa_override: &'static str,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            id: a.id.to_string(),
            kind: a.kind.as_str(),
            email: a.email.to_string(),
            org_id: a.org_id.as_ref().map(|o| o.to_string()),
            role: a.role.map(Role::as_str),
            status: a.status.as_str(),
            password_set: a.password_hash.is_some(),
            created_at: a.created_at.0,
            mfa_override: a.mfa_override.as_str(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrgView {
    id: String,
    name: String,
    /// `clinic` or `solo`
    kind: &'static str,
    created_at: i64,
    mfa: OrgMfaView,
}

#[derive(Serialize, ToSchema)]
pub struct OrgMfaView {
    /// Turned on by platform support.
    enabled: bool,
    /// `off`, `optional` or `required` (Mandatory 2FA)
    mode: &'static str,
    /// Methods members may set up: `authenticator`, `email`, `sms`, `passkey`
    methods: Vec<&'static str>,
}

impl From<&Org> for OrgView {
    fn from(o: &Org) -> Self {
        OrgView {
            id: o.id.to_string(),
            name: o.name.clone(),
            kind: o.kind.as_str(),
            created_at: o.created_at.0,
            mfa: OrgMfaView {
                enabled: o.mfa.enabled,
                mode: o.mfa.mode.as_str(),
                methods: o.mfa.methods.iter().map(|k| k.as_str()).collect(),
            },
        }
    }
}

fn by(s: &ApiSignedIn, client: Client) -> By {
    By::signed_in(&s.0, client.0)
}

fn parse_enum<T: std::str::FromStr<Err = clinic_auth_core::account::ParseEnumError>>(
    s: &str,
    kind: ErrorKind,
) -> Result<T, clinic_auth_app::Error> {
    s.parse::<T>().map_err(|e| Error::new(kind, format!("{}.", e)))
}

// ----- sign-in -----

#[derive(Deserialize, ToSchema)]
pub struct StartLogin {
    /// `staff` (default) or `patient`
    #[serde(default)]
    realm: Option<String>,
    email: String,
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
    let started = sign_in::start(&state, realm, &body.email).await?;
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
async fn submit_password(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<SubmitPassword>,
) -> Result<Json<LoginProgress>, AppError> {
    let hints = clinic_auth_core::passkey::parse_device_hints(&body.device_hints.join(","));
    let progress =
        match sign_in::submit_password(&state, &flow_id, Password::new(body.password), &hints, &client.0).await? {
            sign_in::PasswordOutcome::SignedIn(s) => done(*s),
            sign_in::PasswordOutcome::SecondFactor { method, others } => {
                let mut progress = LoginProgress {
                    next: "second_factor",
                    method: Some(method.as_str()),
                    other_methods: Some(kinds(others)),
                    ..Default::default()
                };
                with_sending(
                    &mut progress,
                    sign_in::ensure_code_sent(&state, &flow_id, false, &client.0).await.map_err(Into::into),
                )?;
                progress
            }
            sign_in::PasswordOutcome::Enroll { allowed } => {
                LoginProgress { next: "enroll", allowed_methods: Some(kinds(allowed.iter())), ..Default::default() }
            }
        };
    Ok(Json(progress))
}

/// Fills in where a code went, or why it could not be sent (the flow goes on).
fn with_sending(progress: &mut LoginProgress, sent: Result<Option<codes::SentTo>, AppError>) -> Result<(), AppError> {
    match sent {
        Ok(Some(s)) => {
            progress.sent_to = Some(s.masked);
            progress.resend_in = Some(s.resend_in);
        }
        Ok(None) => {}
        Err(e) if e.code == "delivery_failed" || e.status() == StatusCode::TOO_MANY_REQUESTS => {
            progress.delivery_error = Some(e.code)
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Where a sign-in stands.
#[utoipa::path(get, path = "/api/v1/login/{flow_id}", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 410, description = "`flow_expired`", body = ErrorBody)))]
async fn login_progress(
    State(state): State<AppState>,
    Path(flow_id): Path<String>,
) -> Result<Json<LoginProgress>, AppError> {
    let flow = sign_in::current(&state, &flow_id).await?;
    let progress = match &flow.step {
        FlowStep::Password => LoginProgress { next: "password", ..Default::default() },
        FlowStep::SecondFactor { .. } => {
            let at = sign_in::past_password(&state, &flow_id).await?;
            let (method, others) = sign_in::methods(&state, &at).await?;
            LoginProgress {
                next: "second_factor",
                method: Some(method.as_str()),
                other_methods: Some(kinds(others)),
                ..Default::default()
            }
        }
        FlowStep::Enroll { allowed, .. } => {
            LoginProgress { next: "enroll", allowed_methods: Some(kinds(allowed.iter())), ..Default::default() }
        }
    };
    Ok(Json(progress))
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
async fn login_method(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<ChooseMethod>,
) -> Result<Json<LoginProgress>, AppError> {
    let method = parse_enum::<FactorKind>(&body.method, ErrorKind::MethodUnavailable)?;
    sign_in::choose_method(&state, &flow_id, method).await?;
    let Json(mut progress) = login_progress(State(state.clone()), Path(flow_id.clone())).await?;
    with_sending(
        &mut progress,
        sign_in::ensure_code_sent(&state, &flow_id, false, &client.0).await.map_err(Into::into),
    )?;
    Ok(Json(progress))
}

#[derive(Deserialize, ToSchema)]
pub struct SubmitCode {
    /// A 6-digit code (spaces and dashes are ignored) or the recovery code
    code: String,
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
async fn login_code(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<SubmitCode>,
) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(proved(sign_in::submit_code(&state, &flow_id, &body.code, &client.0).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct AuthenticatorSetupView {
    /// The otpauth:// URI (Google Key Uri Format) that the QR code holds. Secret.
    otpauth_uri: String,
    /// The key for typing into the app by hand, in groups of four. Secret.
    setup_key: String,
    /// The QR code of `otpauth_uri`, as SVG.
    qr_svg: String,
    issuer: String,
}

impl From<factors::AuthenticatorSetup> for AuthenticatorSetupView {
    fn from(s: factors::AuthenticatorSetup) -> Self {
        AuthenticatorSetupView { otpauth_uri: s.uri, setup_key: s.setup_key, qr_svg: s.qr_svg, issuer: s.issuer }
    }
}

/// During sign-in: start setting up an authenticator app (the same secret is returned
/// again until it is confirmed or 15 minutes pass).
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/authenticator", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = AuthenticatorSetupView), (status = 410, body = ErrorBody)))]
async fn login_enroll(
    State(state): State<AppState>,
    Path(flow_id): Path<String>,
) -> Result<Json<AuthenticatorSetupView>, AppError> {
    sign_in::choose_enrollment_method(&state, &flow_id, FactorKind::Authenticator).await?;
    let (_, setup) = sign_in::begin_enrollment(&state, &flow_id).await?;
    Ok(Json(setup.into()))
}

/// During sign-in: confirm the authenticator app with its current code ("Enable 2FA").
/// The answer carries the session and the recovery code, shown once.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/authenticator/confirm", tag = "sign-in", request_body = SubmitCode,
    params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 400, body = ErrorBody), (status = 410, description = "`setup_expired`, `flow_expired`", body = ErrorBody)))]
async fn login_enroll_confirm(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<SubmitCode>,
) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(done(sign_in::confirm_enrollment(&state, &flow_id, &body.code, &client.0).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct SentView {
    /// Where the code went (masked).
    sent_to: String,
    /// Seconds until a resend is possible.
    resend_in: i64,
}

impl From<codes::SentTo> for SentView {
    fn from(s: codes::SentTo) -> Self {
        SentView { sent_to: s.masked, resend_in: s.resend_in }
    }
}

/// Send a new code for the current step (second factor by email or text, or setup of one).
/// Replaces the previous code; refused during the 30-second cooldown and past the send limits.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/resend", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = SentView),
        (status = 400, description = "`method_unavailable` (the current step sends no code)", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody),
        (status = 429, description = "`resend_too_soon`, `too_many_codes_sent` (with Retry-After)", body = ErrorBody),
        (status = 503, description = "`delivery_failed`: the email or SMS provider failed; try again", body = ErrorBody)))]
async fn login_resend(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
) -> Result<Json<SentView>, AppError> {
    let flow = sign_in::current(&state, &flow_id).await?;
    let sent = match flow.step {
        FlowStep::Enroll { .. } => sign_in::send_enrollment_code(&state, &flow_id, None, true, &client.0).await?,
        _ => sign_in::ensure_code_sent(&state, &flow_id, true, &client.0)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::MethodUnavailable, "The current method needs no code to be sent."))?,
    };
    Ok(Json(sent.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct EnrollPhone {
    /// A US mobile number in any usual form, e.g. "(555) 123-4567"
    phone: String,
}

/// During sign-in: set up codes by email; a code goes to the account's email.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/email", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = SentView), (status = 400, description = "`method_unavailable`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login_enroll_email(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
) -> Result<Json<SentView>, AppError> {
    sign_in::choose_enrollment_method(&state, &flow_id, FactorKind::Email).await?;
    Ok(Json(sign_in::send_enrollment_code(&state, &flow_id, None, false, &client.0).await?.into()))
}

/// During sign-in: set up codes by text message to a US mobile number.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/sms", tag = "sign-in", request_body = EnrollPhone, params(("flow_id" = String, Path)),
    responses((status = 200, body = SentView), (status = 400, description = "`invalid_phone`, `method_unavailable`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login_enroll_sms(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<EnrollPhone>,
) -> Result<Json<SentView>, AppError> {
    sign_in::choose_enrollment_method(&state, &flow_id, FactorKind::Sms).await?;
    Ok(Json(sign_in::send_enrollment_code(&state, &flow_id, Some(&body.phone), false, &client.0).await?.into()))
}

/// During sign-in: confirm the email or phone with the code sent to it. The answer
/// carries the session and the recovery code, shown once.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/enroll/code/confirm", tag = "sign-in", request_body = SubmitCode,
    params(("flow_id" = String, Path)),
    responses((status = 200, body = LoginProgress), (status = 401, description = "`incorrect_code`, `code_attempts_exhausted`", body = ErrorBody),
        (status = 410, description = "`code_expired`", body = ErrorBody)))]
async fn login_enroll_code_confirm(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<SubmitCode>,
) -> Result<Json<LoginProgress>, AppError> {
    Ok(Json(done(sign_in::confirm_code_enrollment(&state, &flow_id, &body.code, &client.0).await?)))
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
async fn my_mfa(State(state): State<AppState>, s: ApiSignedIn) -> Result<Json<MfaStatusView>, AppError> {
    let a = &s.0.account;
    let m = factors::load(&state, a).await?;
    let verified = state.store.get_session(&s.0.token_hash).await?.and_then(|r| r.verified_at);
    let required = !m.may_turn_off(a);
    Ok(Json(MfaStatusView {
        enabled: !m.factors.is_empty(),
        factors: m
            .factors
            .iter()
            .map(|f| FactorView {
                kind: f.kind.as_str(),
                label: f.label.clone(),
                created_at: f.created_at.0,
                last_used_at: f.last_used_at.map(|t| t.0),
            })
            .collect(),
        recovery_code_set: m.has_recovery_code,
        required,
        may_opt_in: m.may_opt_in(a),
        may_turn_off: m.may_turn_off(a),
        recently_verified: factors::recently_verified(verified, state.now()),
    }))
}

async fn require_step_up(state: &AppState, s: &ApiSignedIn) -> Result<(), AppError> {
    factors::require_recent_proof(state, s.0.account.id, &s.0.token_hash)
        .await
        .map_err(|e| e.with_message("Confirm it's you first: POST a current code to /api/v1/me/mfa/verify.").into())
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
async fn my_mfa_verify(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<VerifyFactor>,
) -> Result<Json<Verified>, AppError> {
    let method = match body.method.as_deref() {
        None => FactorKind::Authenticator,
        Some(m) => parse_enum::<FactorKind>(m, ErrorKind::MethodUnavailable)?,
    };
    let answer = factors::StepUpAnswer::Code { method, code: &body.code };
    let proof = factors::step_up(&state, &s.0.account, &s.0.token_hash, answer, &client.0).await?;
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
async fn my_authenticator(
    State(state): State<AppState>,
    s: ApiSignedIn,
) -> Result<Json<AuthenticatorSetupView>, AppError> {
    let m = factors::load(&state, &s.0.account).await?;
    factors::require_setup_available(&m, &s.0.account)?;
    require_step_up(&state, &s).await?;
    Ok(Json(factors::begin_authenticator(&state, &s.0.account, Within::Session(&s.0.token_hash)).await?.into()))
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
async fn my_authenticator_confirm(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<SubmitCode>,
) -> Result<Json<Enrolled>, AppError> {
    require_step_up(&state, &s).await?;
    let within = Within::Session(&s.0.token_hash);
    let code = factors::confirm_authenticator(&state, &s.0.account, &body.code, within, &client.0).await?;
    state.store.mark_session_verified(&s.0.token_hash, state.now()).await?;
    Ok(Json(Enrolled { recovery_code: code.map(|c| c.display()) }))
}

async fn my_code_setup(
    state: &AppState,
    client: Client,
    s: &ApiSignedIn,
    kind: FactorKind,
    phone: Option<&str>,
) -> Result<Json<SentView>, AppError> {
    let m = factors::load(state, &s.0.account).await?;
    factors::require_setup_available(&m, &s.0.account)?;
    require_step_up(state, s).await?;
    let allowed = m.setup_methods(&s.0.account);
    let within = Within::Session(&s.0.token_hash);
    Ok(Json(factors::begin_code_enrollment(state, &s.0.account, kind, phone, allowed, within, &client.0).await?.into()))
}

/// Set up codes by email (to the account's email): sends a confirmation code.
#[utoipa::path(post, path = "/api/v1/me/mfa/email", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = SentView), (status = 400, description = "`method_unavailable`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn my_email(State(state): State<AppState>, client: Client, s: ApiSignedIn) -> Result<Json<SentView>, AppError> {
    my_code_setup(&state, client, &s, FactorKind::Email, None).await
}

/// Set up codes by text message to a US mobile number: sends a confirmation code.
#[utoipa::path(post, path = "/api/v1/me/mfa/sms", tag = "two-factor", request_body = EnrollPhone, security(("bearer" = [])),
    responses((status = 200, body = SentView), (status = 400, description = "`invalid_phone`, `method_unavailable`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn my_sms(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<EnrollPhone>,
) -> Result<Json<SentView>, AppError> {
    my_code_setup(&state, client, &s, FactorKind::Sms, Some(&body.phone)).await
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
async fn my_code_confirm(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<ConfirmCodeFactor>,
) -> Result<Json<Enrolled>, AppError> {
    require_step_up(&state, &s).await?;
    let kind = parse_enum::<FactorKind>(&body.method, ErrorKind::MethodUnavailable)?;
    if !matches!(kind, FactorKind::Email | FactorKind::Sms) {
        return Err(Error::new(ErrorKind::MethodUnavailable, "Confirm `email` or `sms` here.").into());
    }
    let within = Within::Session(&s.0.token_hash);
    let code = factors::confirm_code_enrollment(&state, &s.0.account, kind, &body.code, within, &client.0).await?;
    state.store.mark_session_verified(&s.0.token_hash, state.now()).await?;
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
async fn my_recovery_code(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
) -> Result<Json<NewRecoveryCode>, AppError> {
    require_step_up(&state, &s).await?;
    let code = factors::new_recovery_code(&state, &s.0.account, &client.0).await?;
    Ok(Json(NewRecoveryCode { recovery_code: code.display() }))
}

/// Turn two-factor authentication off (when no policy requires it; needs a recent second factor).
#[utoipa::path(delete, path = "/api/v1/me/mfa", tag = "two-factor", security(("bearer" = [])),
    responses((status = 204), (status = 403, description = "`mfa_required`, `step_up_required`", body = ErrorBody)))]
async fn my_mfa_off(State(state): State<AppState>, client: Client, s: ApiSignedIn) -> Result<StatusCode, AppError> {
    require_step_up(&state, &s).await?;
    factors::turn_off(&state, &s.0.account, &s.0.token_hash, &client.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct OrgMfaChangeBody {
    /// Platform admins only: turn MFA on or off for the organization.
    #[serde(default)]
    enabled: Option<bool>,
    /// `off`, `optional` or `required` (clinic organizations only)
    #[serde(default)]
    mode: Option<String>,
    /// Allowed methods, e.g. `["authenticator"]`
    #[serde(default)]
    methods: Option<Vec<String>>,
}

/// Change an organization's MFA settings.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/mfa", tag = "admin", request_body = OrgMfaChangeBody, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 200, body = OrgView), (status = 400, description = "`invalid_policy`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`mfa_not_enabled`", body = ErrorBody)))]
async fn set_org_mfa(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<OrgMfaChangeBody>,
) -> Result<Json<OrgView>, AppError> {
    let change = clinic_auth_app::policy::OrgMfaChange {
        enabled: body.enabled,
        mode: body.mode.as_deref().map(|m| parse_enum::<MfaMode>(m, ErrorKind::InvalidPolicy)).transpose()?,
        methods: body
            .methods
            .map(|m| MethodSet::parse(&m.join(",")).map_err(|e| Error::new(ErrorKind::InvalidPolicy, e.to_string())))
            .transpose()?,
    };
    let org = clinic_auth_app::policy::set_org_mfa(&state, &by(&s, client), &org_id, change).await?;
    Ok(Json(OrgView::from(&org)))
}

#[derive(Deserialize, ToSchema)]
pub struct MemberMfaBody {
    /// `clinic_default`, `required` or `not_required`
    #[serde(rename = "override")]
    value: String,
}

/// Set a member's two-factor setting (by member id or email).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{member}/mfa", tag = "admin", request_body = MemberMfaBody, security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_member_mfa(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberMfaBody>,
) -> Result<Json<AccountView>, AppError> {
    let value = parse_enum::<MemberOverride>(&body.value, ErrorKind::InvalidOverride)?;
    let account =
        clinic_auth_app::policy::set_member_override(&state, &by(&s, client), &org_id, &member, value).await?;
    Ok(Json(AccountView::from(&account)))
}

/// End the session of the bearer token.
#[utoipa::path(post, path = "/api/v1/logout", tag = "sign-in", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, client: Client, s: ApiSignedIn) -> Result<StatusCode, AppError> {
    sign_in::sign_out(&state, &s.0, &client.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "sign-in", security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
async fn me(s: ApiSignedIn) -> Json<AccountView> {
    Json(AccountView::from(&s.0.account))
}

// ----- administration -----

#[derive(Deserialize, ToSchema)]
pub struct CreateOrg {
    name: String,
    /// `clinic` or `solo`
    kind: String,
    /// Optional id (3–63 lowercase letters, digits, hyphens); derived from the name otherwise.
    #[serde(default)]
    id: Option<String>,
}

/// Create an organization (platform admins).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "admin", request_body = CreateOrg, security(("bearer" = [])),
    responses((status = 201, body = OrgView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_org(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<Response, AppError> {
    let kind = parse_enum::<OrgKind>(&body.kind, ErrorKind::InvalidKind)?;
    let org = accounts::create_org(&state, &by(&s, client), &body.name, kind, body.id.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(OrgView::from(&org))).into_response())
}

/// An organization (platform admins, or its own accounts).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path)), responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)))]
async fn get_org(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
) -> Result<Json<OrgView>, AppError> {
    let org = accounts::get_org(&state, &by(&s, client), &org_id).await?;
    Ok(Json(OrgView::from(&org)))
}

#[derive(Deserialize, ToSchema)]
pub struct AddAccount {
    email: String,
    /// Members only: `owner`, `admin`, `provider` or `staff`
    #[serde(default)]
    role: Option<String>,
    /// Refused (`403 password_not_allowed`): nobody chooses another person's password.
    /// The new account's holder chooses it through the invitation.
    #[serde(default)]
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountAdded {
    account: AccountView,
    /// The invitation (a link to choose a password, valid `invitation_valid_days`) was
    /// emailed to the new account's own address. The link itself is never in the
    /// answer: whoever holds it chooses the account's password. `false`: it could not
    /// be delivered; fix the email settings, then resend it
    /// (`POST /api/v1/orgs/{org_id}/members/{member}/invitation`).
    invitation_emailed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationResent {
    /// The new invitation went by email to the account's own address (`false`: it
    /// could not be delivered). Older unused invitation links no longer work. The link
    /// itself is never in the answer.
    pub(crate) invitation_emailed: bool,
}

async fn add(
    state: &AppState,
    by: &By,
    kind: AccountKind,
    org: Option<&str>,
    body: AddAccount,
) -> Result<Response, AppError> {
    let role = match (kind, body.role.as_deref()) {
        (AccountKind::Member, Some(r)) => Some(parse_enum::<Role>(r, ErrorKind::InvalidRole)?),
        _ => None,
    };
    let added =
        accounts::add_account(state, by, kind, org, &body.email, role, body.password.map(Password::new)).await?;
    let view =
        AccountAdded { account: AccountView::from(&added.account), invitation_emailed: added.invitation_emailed };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Add a member to an organization (platform admins; the organization's owners and admins).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 201, body = AccountAdded), (status = 400, body = ErrorBody), (status = 403, description = "`forbidden`, `password_not_allowed`", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`email_taken`", body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&state, &by(&s, client), AccountKind::Member, Some(&org_id), body).await
}

/// Add a patient-portal account to an organization.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/patients", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 201, body = AccountAdded), (status = 400, body = ErrorBody),
        (status = 403, description = "`forbidden`, `password_not_allowed`", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_patient(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&state, &by(&s, client), AccountKind::Patient, Some(&org_id), body).await
}

/// Add a platform admin (platform admins).
#[utoipa::path(post, path = "/api/v1/platform-admins", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    responses((status = 201, body = AccountAdded), (status = 400, description = "`invalid_email`", body = ErrorBody),
        (status = 403, description = "`forbidden`, `password_not_allowed`", body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_platform_admin(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&state, &by(&s, client), AccountKind::PlatformAdmin, None, body).await
}

#[derive(Serialize, ToSchema)]
pub struct ResetEmailed {
    /// The reset link went by email to the account's own address (`false`: it could
    /// not be delivered; ask again later). The link itself is never in the answer.
    reset_emailed: bool,
}

/// Email a password-reset link to the account's own address.
///
/// Platform support for clinic members and patients (not for another platform admin);
/// a clinic's owners and admins for their members (admins not for an owner) and their
/// patients. The caller never sees the link, and nobody chooses a password for someone
/// else; only the server's shell (`clinic-auth password-reset`) prints a link. The link
/// is valid up to 24 hours and ends every session of the account when used; the
/// account's holder is told by email when the password changes.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/password-reset", tag = "admin", security(("bearer" = [])),
    params(("account_id" = String, Path)),
    responses((status = 202, body = ResetEmailed),
        (status = 403, description = "`forbidden`, `owner_protected`, `step_up_required` (your own account)", body = ErrorBody),
        (status = 404, description = "Unknown, or not yours to manage", body = ErrorBody)))]
async fn password_reset(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(account_id): Path<String>,
) -> Result<Response, AppError> {
    let emailed = accounts::send_password_reset(&state, &by(&s, client), &account_id).await?;
    Ok((StatusCode::ACCEPTED, Json(ResetEmailed { reset_emailed: emailed })).into_response())
}

/// "Resend invitation": email a fresh invitation link to an account that has no
/// password yet (any kind of account, by id).
///
/// Whoever may invite that kind of account may resend it: platform support for anyone,
/// a clinic's owners and admins for their members (admins not for an owner) and their
/// patients. The new link is valid `invitation_valid_days` and goes to the account's own
/// address; the account's older unused invitation links stop working; the caller never
/// sees the link. At most 5 resends per account in an hour (`429 too_many_resends`,
/// with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/invitation", tag = "admin", security(("bearer" = [])),
    params(("account_id" = String, Path)),
    responses((status = 202, body = InvitationResent),
        (status = 403, description = "`forbidden`, `owner_protected`", body = ErrorBody),
        (status = 404, description = "Unknown, or not yours to manage", body = ErrorBody),
        (status = 409, description = "`already_active` (the account has a password), `account_deactivated`", body = ErrorBody),
        (status = 429, description = "`too_many_resends`: 5 within the hour already; see `Retry-After`", body = ErrorBody)))]
async fn resend_account_invitation(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(account_id): Path<String>,
) -> Result<Response, AppError> {
    let emailed = accounts::resend_invitation_to(&state, &by(&s, client), &account_id).await?;
    Ok((StatusCode::ACCEPTED, Json(InvitationResent { invitation_emailed: emailed })).into_response())
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
    let purpose = accounts::link_purpose(&state, &token).await?;
    let confirm = body.password.clone();
    let password = Password::new(body.password);
    let account = match purpose {
        LinkPurpose::Setup => {
            let email = body.email.unwrap_or_default();
            accounts::create_first_admin(&state, &token, &email, password, &confirm, &client.0).await?
        }
        p => accounts::set_password_with_link(&state, &token, p, password, &confirm, &client.0).await?,
    };
    Ok(Json(AccountView::from(&account)))
}

// ----- passkeys -----

/// WebAuthn options for `navigator.credentials.get()` or `.create()`. Binary fields
/// (`challenge`, `user.id`, credential `id`s) are base64url strings.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOptions {
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

fn passkey_options<T: Serialize>(options: &T) -> Result<Json<PasskeyOptions>, AppError> {
    let mut value = serde_json::to_value(options).map_err(|e| AppError::internal(format!("passkey options: {e}")))?;
    let public_key = value.get_mut("publicKey").map(serde_json::Value::take).unwrap_or_default();
    Ok(Json(PasskeyOptions { public_key }))
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyAnswer {
    /// The `PublicKeyCredential` the browser returned, as JSON with base64url binary
    /// fields (`id`, `rawId`, `type`, `response`).
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// Start the passkey step of a sign-in: switches the flow to `passkey` and returns
/// the options. Good for one answer, for 5 minutes.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/passkey/options", tag = "sign-in", params(("flow_id" = String, Path)),
    responses((status = 200, body = PasskeyOptions),
        (status = 400, description = "`method_unavailable` (no passkey)", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable` (server not configured for passkeys)", body = ErrorBody)))]
async fn login_passkey_options(
    State(state): State<AppState>,
    Path(flow_id): Path<String>,
) -> Result<Json<PasskeyOptions>, AppError> {
    passkey_options(&sign_in::begin_passkey(&state, &flow_id).await?)
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
async fn login_passkey(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<PasskeyAnswer>,
) -> Result<Json<LoginProgress>, AppError> {
    let response = body.credential.to_string();
    Ok(Json(proved(sign_in::submit_passkey(&state, &flow_id, &response, &client.0).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    passkeys: Vec<passkeys::PasskeyView>,
}

/// The account's passkeys (trusted devices): names, dates, never the credentials.
#[utoipa::path(get, path = "/api/v1/me/passkeys", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = PasskeyList)))]
async fn my_passkeys(State(state): State<AppState>, s: ApiSignedIn) -> Result<Json<PasskeyList>, AppError> {
    let factors = state.store.list_factors(s.0.account.id).await?;
    Ok(Json(PasskeyList { passkeys: passkeys::views(&factors, &[]) }))
}

/// Start trusting this device: options for `navigator.credentials.create()`. Needs a
/// second factor proved in the last 10 minutes.
#[utoipa::path(post, path = "/api/v1/me/passkeys/options", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = PasskeyOptions),
        (status = 403, description = "`step_up_required`, `passkey_not_allowed`", body = ErrorBody),
        (status = 409, description = "`too_many_passkeys`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_passkey_options(State(state): State<AppState>, s: ApiSignedIn) -> Result<Json<PasskeyOptions>, AppError> {
    require_step_up(&state, &s).await?;
    passkey_options(&passkeys::begin_registration(&state, &s.0.account, &s.0.token_hash).await?)
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
async fn my_passkey_add(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<NewPasskeyBody>,
) -> Result<Json<AddedPasskey>, AppError> {
    require_step_up(&state, &s).await?;
    let response = body.credential.to_string();
    let added = passkeys::finish_registration(
        &state,
        &s.0.account,
        &s.0.token_hash,
        &response,
        body.name.as_deref(),
        &client.0,
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
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(passkey_id): Path<String>,
    ApiJson(body): ApiJson<RenamePasskey>,
) -> Result<Json<PasskeyList>, AppError> {
    passkeys::rename(&state, &s.0.account, &passkey_id, &body.name, &client.0).await?;
    my_passkeys(State(state), s).await
}

/// Remove a passkey: its device is no longer trusted. Needs a recent second factor.
#[utoipa::path(delete, path = "/api/v1/me/passkeys/{passkey_id}", tag = "two-factor",
    params(("passkey_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = PasskeyList), (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
async fn my_passkey_remove(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(passkey_id): Path<String>,
) -> Result<Json<PasskeyList>, AppError> {
    require_step_up(&state, &s).await?;
    passkeys::remove(&state, &s.0.account, &s.0.token_hash, &passkey_id, &client.0).await?;
    my_passkeys(State(state), s).await
}

/// Prove a second factor again with a passkey: the options.
#[utoipa::path(post, path = "/api/v1/me/mfa/verify/passkey/options", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = PasskeyOptions), (status = 400, description = "`method_unavailable`", body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_verify_passkey_options(
    State(state): State<AppState>,
    s: ApiSignedIn,
) -> Result<Json<PasskeyOptions>, AppError> {
    let bound = passkeys::Bound::StepUp(&s.0.token_hash);
    passkey_options(&passkeys::begin_authentication(&state, &s.0.account, bound, None).await?)
}

/// Prove a second factor again with the passkey's answer, allowing 2FA changes for
/// 10 minutes.
#[utoipa::path(post, path = "/api/v1/me/mfa/verify/passkey", tag = "two-factor", request_body = PasskeyAnswer, security(("bearer" = [])),
    responses((status = 200, body = Verified), (status = 401, body = ErrorBody), (status = 410, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "`passkeys_unavailable`", body = ErrorBody)))]
async fn my_verify_passkey(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<PasskeyAnswer>,
) -> Result<Json<Verified>, AppError> {
    let response = body.credential.to_string();
    let answer = factors::StepUpAnswer::Passkey { credential: &response };
    factors::step_up(&state, &s.0.account, &s.0.token_hash, answer, &client.0).await?;
    Ok(Json(Verified { verified: true, recovery_code: None }))
}

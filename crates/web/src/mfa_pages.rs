//! The second-factor pages: the code step of sign-in, "Try another method", setting up
//! an authenticator app (during sign-in and from the account page), and the account
//! page's 2FA actions behind a fresh second factor.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use clinic_auth_core::login_flow::{SetupAsk, SetupStage, setup_stage};
use clinic_auth_core::{FactorKind, RecoveryCode};
use serde::Deserialize;

use crate::error::Status;
use crate::error_page::{PageError, render, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::cookies::{self, Kind};
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::pages::{PATIENT, RealmPages, STAFF, restart};
use crate::{AppError, AppState};
use clinic_auth_app::factors::{self, AuthenticatorSetup, Proof, method_label};
use clinic_auth_app::sign_in::{self, SignedInSession};
use clinic_auth_app::{Error, ErrorKind};
use clinic_auth_app::{Within, codes};
use clinic_auth_store::ClientInfo;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/verify", get(staff_verify_page).post(staff_verify_submit))
        .route("/login/methods", get(staff_methods_page).post(staff_methods_submit))
        .route("/login/setup", get(staff_setup_page).post(staff_setup_submit))
        .route("/portal/login/verify", get(patient_verify_page).post(patient_verify_submit))
        .route("/portal/login/methods", get(patient_methods_page).post(patient_methods_submit))
        .route("/portal/login/setup", get(patient_setup_page).post(patient_setup_submit))
        .route("/account/2fa/setup", get(account_setup_page).post(account_setup_submit))
        .route("/account/2fa/setup/method", axum::routing::post(account_setup_method))
        .route("/account/2fa/setup/phone", axum::routing::post(account_setup_phone))
        .route("/account/2fa/setup/code", axum::routing::post(account_setup_code))
        .route("/account/2fa/setup/resend", axum::routing::post(account_setup_resend))
        .route("/account/2fa/verify", get(step_up_page).post(step_up_submit))
        .route("/account/2fa/resend", axum::routing::post(step_up_resend))
        .route("/login/resend", axum::routing::post(staff_resend))
        .route("/portal/login/resend", axum::routing::post(patient_resend))
        .route("/login/setup/method", axum::routing::post(staff_setup_method))
        .route("/login/setup/phone", axum::routing::post(staff_setup_phone))
        .route("/login/setup/code", axum::routing::post(staff_setup_code))
        .route("/login/setup/resend", axum::routing::post(staff_setup_resend))
        .route("/portal/login/setup/method", axum::routing::post(patient_setup_method))
        .route("/portal/login/setup/phone", axum::routing::post(patient_setup_phone))
        .route("/portal/login/setup/code", axum::routing::post(patient_setup_code))
        .route("/portal/login/setup/resend", axum::routing::post(patient_setup_resend))
        .route("/account/2fa/off", get(off_page).post(off_submit))
        .route("/account/2fa/recovery-code", get(recovery_page).post(recovery_submit))
}

/// Sets the session cookie after a completed sign-in and shows the new recovery code
/// when there is one; otherwise goes to the account page.
pub async fn signed_in(state: &AppState, jar: CookieJar, done: SignedInSession) -> Result<Response, PageError> {
    // A session this browser held before is ended, not left behind the new one.
    if let Some(old) = cookies::get(state, &jar, Kind::Session).and_then(clinic_auth_core::SecretToken::from_presented)
    {
        state.store.delete_session(&old.hash(), None).await?;
    }
    let why = if done.used_recovery_code { Shown::Replacement } else { Shown::FirstCode };
    let jar = cookies::remove(state, jar, Kind::Flow);
    let jar = cookies::remove(state, jar, Kind::Csrf);
    let jar = cookies::set(state, jar, Kind::Session, done.token.expose().to_owned());
    // Setup just finished: "Trust this device?" comes after the recovery code.
    let next = match why {
        Shown::FirstCode if crate::passkey_pages::offer_trust(state, &done.account, &jar).await? => {
            "/account/trust-device?after=setup"
        }
        _ => "/account",
    };
    Ok(match done.new_recovery_code {
        Some(code) => (jar, recovery_code_page(state, &code, next, why)).into_response(),
        None if done.suggest_setup => (jar, Redirect::to("/account/2fa/setup?notice=bypass")).into_response(),
        None => (jar, Redirect::to("/account")).into_response(),
    })
}

#[derive(Template)]
#[template(path = "recovery_code.html")]
struct RecoveryCodePage<'a> {
    title: &'a str,
    platform_name: &'a str,
    intro: &'a str,
    code: String,
    next: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
}

/// Why a recovery code is being shown.
#[derive(Clone, Copy)]
enum Shown {
    /// Setup just finished (at sign-in or from the account page).
    FirstCode,
    /// The old code was just used or replaced.
    Replacement,
}

fn recovery_code_page(state: &AppState, code: &RecoveryCode, next: &str, why: Shown) -> Response {
    let intro = match why {
        Shown::FirstCode => "Two-factor authentication is set up. Here is your recovery code.",
        Shown::Replacement => {
            "Your previous recovery code has been used up or replaced and no longer works. Here is your new one."
        }
    };
    render(&RecoveryCodePage {
        title: "Save your recovery code",
        platform_name: &state.config.platform_name,
        intro,
        code: code.display(),
        next,
        notice: None,
        error: None,
    })
}

// ----- sign-in: the code step -----

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    heading: &'a str,
    action: &'a str,
    method: &'a str,
    next: Option<&'a str>,
    others_url: Option<String>,
    sent_to: Option<String>,
    resend_action: Option<String>,
    resend_in: i64,
    /// WebAuthn request options (JSON) when the method is a passkey.
    passkey_options: String,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

fn flow_token(state: &AppState, jar: &CookieJar) -> Option<String> {
    cookies::get(state, jar, Kind::Flow).map(str::to_owned)
}

/// Errors that mean "this sign-in is over": back to the start with a notice.
fn is_flow_over(e: &clinic_auth_app::Error) -> bool {
    e.is(ErrorKind::FlowExpired)
}

async fn verify_page(
    state: AppState,
    jar: CookieJar,
    p: &RealmPages,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let Some(token) = flow_token(&state, &jar) else { return Ok(Redirect::to(p.base).into_response()) };
    let at = match sign_in::past_password(&state, &token).await {
        Ok(at) if at.flow.realm == p.realm => at,
        Ok(_) => return Ok(Redirect::to(p.base).into_response()),
        Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, &state)),
        Err(e) => return Err(e.into()),
    };
    let (method, others) = match sign_in::methods(&state, &at).await {
        Ok(m) => m,
        Err(_) => return Ok(Redirect::to(p.setup).into_response()),
    };
    // Showing the page sends nothing (a GET changes nothing): the code went out with
    // the password or the choice of method, or goes out with "Send code".
    let mut error = error;
    let sent = sign_in::code_in_flight(&state, &at).await?;
    let coded = matches!(method, FactorKind::Email | FactorKind::Sms);
    let mut passkey_options = String::new();
    if method == FactorKind::Passkey {
        match sign_in::begin_passkey(&state, &token).await {
            Ok(o) => passkey_options = options_json(&o)?,
            Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, &state)),
            Err(e) if !e.is_internal() => error = error.or(Some(e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    let (jar, csrf) = csrf::form_token(&state, jar, None);
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = VerifyPage {
        title: "Verify it's you",
        platform_name: &state.config.platform_name,
        heading: "Verify it's you",
        action: p.verify,
        method: method.as_str(),
        next: None,
        others_url: (!others.is_empty()).then(|| p.methods.to_owned()),
        resend_in: sent.as_ref().map(|s| s.resend_in).unwrap_or(0),
        sent_to: sent.map(|s| s.masked),
        resend_action: coded.then(|| format!("{}/resend", p.base)),
        passkey_options,
        csrf,
        notice: None,
        error: error.map(|e| e.message),
    };
    Ok((jar, render_with(status, &page)).into_response())
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
    /// A passkey's answer (JSON), posted by passkey.js.
    #[serde(default)]
    credential: String,
}

/// WebAuthn options as the page's data attribute carries them.
pub(crate) fn options_json<T: serde::Serialize>(options: &T) -> Result<String, AppError> {
    serde_json::to_string(options).map_err(|e| AppError::internal(format!("passkey options: {e}")))
}

async fn verify_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: CodeForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    let result = if form.credential.is_empty() {
        sign_in::submit_code(&state, &token, &form.code, &client.0).await
    } else {
        sign_in::submit_passkey(&state, &token, &form.credential, &client.0).await
    };
    match result {
        Ok(sign_in::Proved::SignedIn(done)) => signed_in(&state, jar, *done).await,
        Ok(sign_in::Proved::Enroll { .. }) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => {
            let jar = cookies::remove(&state, jar, Kind::Flow);
            Err(PageError(AppError { message: format!("{} ", e.message) + "Go back to the sign-in page.", ..e.into() }))
                .map(|r: Response| (jar, r).into_response())
        }
        Err(e) if e.status().is_client_error() => verify_page(state, jar, p, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

async fn resend_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: CsrfForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::ensure_code_sent(&state, &token, true, &client.0).await {
        Ok(_) => Ok(Redirect::to(p.verify).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if !e.is_internal() => verify_page(state, jar, p, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "methods.html")]
struct MethodsPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    action: &'a str,
    back: &'a str,
    methods: Vec<(&'static str, &'static str)>,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

async fn methods_page(state: AppState, jar: CookieJar, p: &RealmPages) -> Result<Response, PageError> {
    let Some(token) = flow_token(&state, &jar) else { return Ok(Redirect::to(p.base).into_response()) };
    let at = match sign_in::past_password(&state, &token).await {
        Ok(at) if at.flow.realm == p.realm => at,
        Ok(_) => return Ok(Redirect::to(p.base).into_response()),
        Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, &state)),
        Err(e) => return Err(e.into()),
    };
    let (_, others) = sign_in::methods(&state, &at).await?;
    let (jar, csrf) = csrf::form_token(&state, jar, None);
    let page = MethodsPage {
        title: "Try another method",
        platform_name: &state.config.platform_name,
        action: p.methods,
        back: p.verify,
        methods: others.into_iter().map(|k| (k.as_str(), method_label(k))).collect(),
        csrf,
        notice: None,
        error: None,
    };
    Ok((jar, render(&page)).into_response())
}

#[derive(Deserialize)]
struct MethodForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: String,
}

/// Sends the first email or text code of a sign-in step (a POST, behind CSRF). A
/// refusal (too many sends, a provider down) is shown on the code page, whose "Send
/// code" tries again.
pub(crate) async fn send_first_code(state: &AppState, token: &str, client: &ClientInfo) -> Result<(), PageError> {
    match sign_in::ensure_code_sent(state, token, false, client).await {
        Ok(_) => Ok(()),
        Err(e) if !e.is_internal() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn methods_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: MethodForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    let method: FactorKind = form
        .method
        .parse()
        .map_err(|_| Error::new(ErrorKind::MethodUnavailable, "Choose one of the listed methods."))?;
    match sign_in::choose_method(&state, &token, method).await {
        Ok(()) => {
            send_first_code(&state, &token, &client.0).await?;
            Ok(Redirect::to(p.verify).into_response())
        }
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) => Err(e.into()),
    }
}

// ----- setting up an authenticator app -----

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    action: &'a str,
    cancel: Option<&'a str>,
    qr_svg: String,
    setup_key: String,
    issuer: String,
    account: String,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

/// Where the setup form posts, and where "Cancel" goes (account page only).
struct EnrollTarget<'a> {
    action: &'a str,
    cancel: Option<&'a str>,
    notice: Option<&'static str>,
}

fn enroll_page(
    state: &AppState,
    jar: CookieJar,
    session: Option<&SignedIn>,
    setup: AuthenticatorSetup,
    email: String,
    target: EnrollTarget<'_>,
    error: Option<AppError>,
) -> Response {
    let EnrollTarget { action, cancel, notice } = target;
    let (jar, csrf) = csrf::form_token(state, jar, session);
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    // The SVG comes from our QR encoder; drop its XML prolog for inline HTML.
    let svg = setup.qr_svg.find("<svg").map(|i| setup.qr_svg[i..].to_owned()).unwrap_or_default();
    let page = EnrollPage {
        title: "Set up two-factor authentication",
        platform_name: &state.config.platform_name,
        action,
        cancel,
        qr_svg: svg,
        setup_key: setup.setup_key,
        issuer: setup.issuer,
        account: email,
        csrf,
        notice,
        error: error.map(|e| e.message),
    };
    (jar, render_with(status, &page)).into_response()
}

#[derive(Template)]
#[template(path = "enroll_code.html")]
struct EnrollCodePage<'a> {
    title: &'a str,
    platform_name: &'a str,
    base: &'a str,
    stage: &'a str,
    methods: Vec<(&'static str, &'static str)>,
    phone: String,
    /// Where the code went; `None` before one was sent ("Send code").
    sent_to: Option<String>,
    resend_in: i64,
    can_change: bool,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

/// The words of seed 001 for the choice: "Emails" or "Texts".
fn setup_choice_label(kind: FactorKind) -> &'static str {
    match kind {
        FactorKind::Email => "Emails",
        FactorKind::Sms => "Texts",
        other => method_label(other),
    }
}

#[derive(Deserialize, Default)]
struct SetupQuery {
    #[serde(default)]
    step: Option<String>,
}

struct SetupView {
    stage: SetupStage,
    phone: String,
    sent: Option<codes::SentTo>,
    error: Option<AppError>,
}

/// What `?step=` asks of the setup page.
fn asked(step: Option<&str>) -> SetupAsk {
    match step {
        Some("choose") => SetupAsk::ChooseAgain,
        Some("phone") => SetupAsk::NewPhone,
        _ => SetupAsk::GoOn,
    }
}

/// The code in flight, shown on the code form of its own channel only.
fn sent_for(stage: SetupStage, live: Option<(FactorKind, codes::SentTo)>) -> Option<codes::SentTo> {
    live.filter(|(channel, _)| stage.code_channel() == Some(*channel)).map(|(_, sent)| sent)
}

/// What setup during sign-in shows: the choice of method, the QR code, the phone
/// number form, or the code form.
async fn setup_page(
    state: AppState,
    jar: CookieJar,
    p: &RealmPages,
    step: Option<&str>,
    error: Option<AppError>,
    phone: String,
) -> Result<Response, PageError> {
    let Some(token) = flow_token(&state, &jar) else { return Ok(Redirect::to(p.base).into_response()) };
    let at = match sign_in::past_password(&state, &token).await {
        Ok(at) if at.flow.realm == p.realm => at,
        Ok(_) => return Ok(Redirect::to(p.base).into_response()),
        Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, &state)),
        Err(e) => return Err(e.into()),
    };
    let clinic_auth_core::FlowStep::Enroll { allowed, chosen, replacing, .. } = at.flow.step else {
        return Ok(Redirect::to(p.verify).into_response());
    };
    let notice = replacing.then_some(REPLACING);
    let can_change = allowed.iter().count() > 1;
    let live = sign_in::enrollment_method(&at).zip(sign_in::enrollment_code_sent(&state, &at).await?);
    let stage = setup_stage(allowed, chosen, live.as_ref().map(|(k, _)| *k), asked(step));
    if stage == SetupStage::Authenticator {
        let setup = factors::begin_authenticator(&state, &at.account, Within::SignIn(&at.flow_hash)).await?;
        let target = EnrollTarget { action: p.setup, cancel: None, notice };
        return Ok(enroll_page(&state, jar, None, setup, at.account.email.to_string(), target, error));
    }
    let view = SetupView { stage, phone, sent: sent_for(stage, live), error };
    let (jar, csrf) = csrf::form_token(&state, jar, None);
    let status = view.error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = EnrollCodePage {
        title: "Set up two-factor authentication",
        platform_name: &state.config.platform_name,
        base: p.base,
        stage: view.stage.as_str(),
        methods: allowed.iter().map(|k| (k.as_str(), setup_choice_label(k))).collect(),
        phone: view.phone,
        resend_in: view.sent.as_ref().map(|s| s.resend_in).unwrap_or(0),
        sent_to: view.sent.map(|s| s.masked),
        can_change: can_change && view.stage != SetupStage::Choose,
        csrf,
        notice,
        error: view.error.map(|e| e.message),
    };
    Ok((jar, render_with(status, &page)).into_response())
}

async fn setup_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: CodeForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::confirm_enrollment(&state, &token, &form.code, &client.0).await {
        Ok(done) => signed_in(&state, jar, done).await,
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => setup_page(state, jar, p, None, Some(e.into()), String::new()).await,
        Err(e) => Err(e.into()),
    }
}

async fn setup_method_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: MethodForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    let result = match form.method.parse::<FactorKind>() {
        Ok(m) => sign_in::choose_enrollment_method(&state, &token, m).await,
        Err(_) => Err(Error::new(ErrorKind::MethodUnavailable, "Choose one of the offered methods.")),
    };
    match result {
        Ok(()) => {
            if form.method == "email" {
                // Best effort: a refusal shows on the code page, whose "Send code" retries.
                let _ = sign_in::send_enrollment_code(&state, &token, None, false, &client.0).await;
            }
            Ok(Redirect::to(p.setup).into_response())
        }
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => {
            setup_page(state, jar, p, Some("choose"), Some(e.into()), String::new()).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct PhoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
}

async fn setup_phone_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: PhoneForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::send_enrollment_code(&state, &token, Some(&form.phone), false, &client.0).await {
        Ok(_) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if !e.is_internal() => setup_page(state, jar, p, Some("phone"), Some(e.into()), form.phone).await,
        Err(e) => Err(e.into()),
    }
}

async fn setup_code_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: CodeForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::confirm_code_enrollment(&state, &token, &form.code, &client.0).await {
        Ok(done) => signed_in(&state, jar, done).await,
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => setup_page(state, jar, p, None, Some(e.into()), String::new()).await,
        Err(e) => Err(e.into()),
    }
}

async fn setup_resend_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: CsrfForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::send_enrollment_code(&state, &token, None, true, &client.0).await {
        Ok(_) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if !e.is_internal() => setup_page(state, jar, p, None, Some(e.into()), String::new()).await,
        Err(e) => Err(e.into()),
    }
}

macro_rules! realm_handlers {
    ($p:expr, $vp:ident, $vs:ident, $mp:ident, $ms:ident, $sp:ident, $ss:ident, $rs:ident, $sm:ident, $sph:ident, $sc:ident, $sr:ident) => {
        async fn $vp(State(s): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
            verify_page(s, jar, &$p, None).await
        }
        async fn $vs(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<CodeForm>,
        ) -> Result<Response, PageError> {
            verify_submit(s, jar, c, &$p, f).await
        }
        async fn $mp(State(s): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
            methods_page(s, jar, &$p).await
        }
        async fn $ms(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<MethodForm>,
        ) -> Result<Response, PageError> {
            methods_submit(s, jar, c, &$p, f).await
        }
        async fn $sp(
            State(s): State<AppState>,
            jar: CookieJar,
            Query(q): Query<SetupQuery>,
        ) -> Result<Response, PageError> {
            setup_page(s, jar, &$p, q.step.as_deref(), None, String::new()).await
        }
        async fn $ss(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<CodeForm>,
        ) -> Result<Response, PageError> {
            setup_submit(s, jar, c, &$p, f).await
        }
        async fn $rs(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<CsrfForm>,
        ) -> Result<Response, PageError> {
            resend_submit(s, jar, c, &$p, f).await
        }
        async fn $sm(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<MethodForm>,
        ) -> Result<Response, PageError> {
            setup_method_submit(s, jar, c, &$p, f).await
        }
        async fn $sph(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<PhoneForm>,
        ) -> Result<Response, PageError> {
            setup_phone_submit(s, jar, c, &$p, f).await
        }
        async fn $sc(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<CodeForm>,
        ) -> Result<Response, PageError> {
            setup_code_submit(s, jar, c, &$p, f).await
        }
        async fn $sr(
            State(s): State<AppState>,
            jar: CookieJar,
            c: Client,
            PageForm(f): PageForm<CsrfForm>,
        ) -> Result<Response, PageError> {
            setup_resend_submit(s, jar, c, &$p, f).await
        }
    };
}

realm_handlers!(
    STAFF,
    staff_verify_page,
    staff_verify_submit,
    staff_methods_page,
    staff_methods_submit,
    staff_setup_page,
    staff_setup_submit,
    staff_resend,
    staff_setup_method,
    staff_setup_phone,
    staff_setup_code,
    staff_setup_resend
);
realm_handlers!(
    PATIENT,
    patient_verify_page,
    patient_verify_submit,
    patient_methods_page,
    patient_methods_submit,
    patient_setup_page,
    patient_setup_submit,
    patient_resend,
    patient_setup_method,
    patient_setup_phone,
    patient_setup_code,
    patient_setup_resend
);

// ----- the account page's 2FA actions -----

/// Where a step-up sends back to; only these fixed places, never a URL from outside.
fn next_path(next: &str) -> &'static str {
    match next {
        "setup" => "/account/2fa/setup",
        "off" => "/account/2fa/off",
        "recovery-code" => "/account/2fa/recovery-code",
        "trust-device" => "/account/trust-device",
        "admin" => "/admin/users",
        _ => "/account",
    }
}

/// Changing 2FA that exists needs a second factor proved within the last minutes.
pub(crate) async fn needs_step_up(state: &AppState, s: &SignedIn) -> Result<bool, AppError> {
    Ok(!factors::has_recent_proof(state, s.account.id, &s.token_hash).await?)
}

pub(crate) fn step_up_redirect(next: &str) -> Response {
    Redirect::to(&format!("/account/2fa/verify?next={next}")).into_response()
}

#[derive(Deserialize, Default)]
struct AccountSetupQuery {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    step: Option<String>,
    /// `bypass`: the member just signed in with a one-time bypass.
    #[serde(default)]
    notice: Option<String>,
}

/// What the setup page says when a one-time bypass brought the member there.
const REPLACING: &str = "Your organization no longer allows the method you just used. Set up one of the \
                         methods it allows to continue; the old one is then removed.";

const AFTER_BYPASS: &str = "You signed in once without two-factor authentication, and your old methods were \
     removed. Set up your authenticator app again now, or choose Cancel to do it later from your account page.";

async fn account_setup_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<AccountSetupQuery>,
) -> Result<Response, PageError> {
    let method = q.method.as_deref().and_then(|m| m.parse::<FactorKind>().ok());
    let notice = (q.notice.as_deref() == Some("bypass")).then_some(AFTER_BYPASS);
    account_setup_render(&state, jar, &s, method, q.step.as_deref(), None, String::new(), notice).await
}

/// The email or text channel with a setup code in flight, if any.
async fn live_setup_channel(state: &AppState, s: &SignedIn) -> Result<Option<(FactorKind, codes::SentTo)>, AppError> {
    for kind in [FactorKind::Sms, FactorKind::Email] {
        if let Some(sent) =
            codes::live(state, &s.account, kind, codes::Purpose::Enroll, Within::Session(&s.token_hash)).await?
        {
            return Ok(Some((kind, sent)));
        }
    }
    Ok(None)
}

/// Setting up (or adding) a factor from the account page, among the methods the
/// organization allows.
#[allow(clippy::too_many_arguments)]
async fn account_setup_render(
    state: &AppState,
    jar: CookieJar,
    s: &SignedIn,
    method: Option<FactorKind>,
    step: Option<&str>,
    error: Option<AppError>,
    phone: String,
    notice: Option<&'static str>,
) -> Result<Response, PageError> {
    let mfa_state = factors::load(state, &s.account).await?;
    factors::require_setup_available(&mfa_state, &s.account)?;
    if needs_step_up(state, s).await? {
        return Ok(step_up_redirect("setup"));
    }
    let allowed = mfa_state.setup_methods(&s.account);
    let live = live_setup_channel(state, s).await?;
    let asked = asked(step);
    // The account page keeps no choice on the server: "Use a different number" is its
    // record that texts are being set up.
    let chosen = if asked == SetupAsk::NewPhone { Some(FactorKind::Sms) } else { method };
    let stage = setup_stage(allowed, chosen, live.as_ref().map(|(k, _)| *k), asked);
    if stage == SetupStage::Authenticator {
        let setup = factors::begin_authenticator(state, &s.account, Within::Session(&s.token_hash)).await?;
        let target = EnrollTarget { action: "/account/2fa/setup", cancel: Some("/account"), notice };
        return Ok(enroll_page(state, jar, Some(s), setup, s.account.email.to_string(), target, error));
    }
    let view = SetupView { stage, phone, sent: sent_for(stage, live), error };
    let status = view.error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = EnrollCodePage {
        title: "Set up two-factor authentication",
        platform_name: &state.config.platform_name,
        base: "/account/2fa",
        stage: view.stage.as_str(),
        methods: allowed.iter().map(|k| (k.as_str(), setup_choice_label(k))).collect(),
        phone: view.phone,
        resend_in: view.sent.as_ref().map(|s| s.resend_in).unwrap_or(0),
        sent_to: view.sent.map(|s| s.masked),
        can_change: allowed.iter().count() > 1 && view.stage != SetupStage::Choose,
        csrf: s.csrf_token.clone(),
        notice,
        error: view.error.map(|e| e.message),
    };
    Ok((jar, render_with(status, &page)).into_response())
}

async fn account_setup_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("setup"));
    }
    let within = Within::Session(&s.token_hash);
    let result = factors::confirm_authenticator(&state, &s.account, &form.code, within, &client.0).await;
    account_enrolled(&state, jar, &s, result, Some(FactorKind::Authenticator)).await
}

/// After confirming a factor from the account page: the first recovery code, or back
/// to the account.
async fn account_enrolled(
    state: &AppState,
    jar: CookieJar,
    s: &SignedIn,
    result: Result<Option<RecoveryCode>, clinic_auth_app::Error>,
    method: Option<FactorKind>,
) -> Result<Response, PageError> {
    match result {
        Ok(code) => {
            state.store.mark_session_verified(&s.token_hash, state.now()).await?;
            let next = if crate::passkey_pages::offer_trust(state, &s.account, &jar).await? {
                "/account/trust-device?after=setup"
            } else {
                "/account?notice=mfa_on"
            };
            Ok(match code {
                Some(code) => recovery_code_page(state, &code, next, Shown::FirstCode),
                None => Redirect::to("/account?notice=mfa_on").into_response(),
            })
        }
        Err(e) if e.status().is_client_error() => {
            account_setup_render(state, jar, s, method, None, Some(e.into()), String::new(), None).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn account_setup_method(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<MethodForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let method = form.method.parse::<FactorKind>().unwrap_or(FactorKind::Authenticator);
    let m = factors::load(&state, &s.account).await?;
    let allowed = m.setup_methods(&s.account);
    if method == FactorKind::Email && allowed.contains(method) && !needs_step_up(&state, &s).await? {
        // Best effort: a refusal shows on the code page, whose "Send code" retries.
        let within = Within::Session(&s.token_hash);
        let _ = factors::begin_code_enrollment(&state, &s.account, method, None, allowed, within, &client.0).await;
    }
    Ok(Redirect::to(&format!("/account/2fa/setup?method={}", method.as_str())).into_response())
}

async fn account_setup_phone(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<PhoneForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("setup"));
    }
    let allowed = factors::load(&state, &s.account).await?.setup_methods(&s.account);
    let within = Within::Session(&s.token_hash);
    match factors::begin_code_enrollment(
        &state,
        &s.account,
        FactorKind::Sms,
        Some(&form.phone),
        allowed,
        within,
        &client.0,
    )
    .await
    {
        Ok(_) => Ok(Redirect::to("/account/2fa/setup?method=sms").into_response()),
        Err(e) if !e.is_internal() => {
            account_setup_render(
                &state,
                jar,
                &s,
                Some(FactorKind::Sms),
                Some("phone"),
                Some(e.into()),
                form.phone,
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn account_setup_code(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("setup"));
    }
    let Some((kind, _)) = live_setup_channel(&state, &s).await? else {
        let e = Error::new(ErrorKind::CodeExpired, "That code has expired. Send a new code.");
        return account_setup_render(&state, jar, &s, None, None, Some(e.into()), String::new(), None).await;
    };
    let within = Within::Session(&s.token_hash);
    let result = factors::confirm_code_enrollment(&state, &s.account, kind, &form.code, within, &client.0).await;
    account_enrolled(&state, jar, &s, result, Some(kind)).await
}

async fn account_setup_resend(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let kind = match live_setup_channel(&state, &s).await? {
        Some((k, _)) => k,
        None => FactorKind::Email,
    };
    match factors::resend_enrollment_code(&state, &s.account, kind, Within::Session(&s.token_hash), &client.0).await {
        Ok(_) => Ok(Redirect::to(&format!("/account/2fa/setup?method={}", kind.as_str())).into_response()),
        Err(e) if !e.is_internal() => {
            account_setup_render(&state, jar, &s, Some(kind), None, Some(e.into()), String::new(), None).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct StepUpQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    method: Option<String>,
}

async fn step_up_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<StepUpQuery>,
) -> Result<Response, PageError> {
    step_up_render(&state, jar, &s, &q.next, q.method.as_deref(), None).await
}

async fn step_up_resend(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<StepUpQuery>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let method = q.method.as_deref().and_then(|m| m.parse::<FactorKind>().ok()).unwrap_or(FactorKind::Email);
    let within = Within::Session(&s.token_hash);
    match factors::ensure_code_sent(&state, &s.account, method, codes::Purpose::StepUp, within, true, &client.0).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/account/2fa/verify?next={}&method={}", next_key(&q.next), method.as_str()))
                .into_response())
        }
        Err(e) if !e.is_internal() => {
            step_up_render(&state, jar, &s, &q.next, Some(method.as_str()), Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

fn next_key(next: &str) -> &str {
    match next {
        "setup" | "off" | "recovery-code" | "trust-device" | "admin" => next,
        _ => "account",
    }
}

async fn step_up_render(
    state: &AppState,
    jar: CookieJar,
    s: &SignedIn,
    next: &str,
    method: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let mfa_state = factors::load(state, &s.account).await?;
    let enrolled = mfa_state.enrolled();
    let method = method
        .and_then(|m| m.parse::<FactorKind>().ok())
        .filter(|m| enrolled.contains(m))
        .or_else(|| enrolled.first().copied())
        .unwrap_or(FactorKind::Authenticator);
    let next_key = next_key(next);
    let other = enrolled.iter().find(|k| **k != method).copied();
    let action = format!("/account/2fa/verify?method={}", method.as_str());
    let coded = matches!(method, FactorKind::Email | FactorKind::Sms);
    let mut error = error;
    // Showing the page sends nothing: "Send code" (a POST) does.
    let sent = if coded {
        codes::live(state, &s.account, method, codes::Purpose::StepUp, Within::Session(&s.token_hash)).await?
    } else {
        None
    };
    let mut passkey_options = String::new();
    if method == FactorKind::Passkey {
        let bound = clinic_auth_app::passkeys::Bound::StepUp(&s.token_hash);
        match clinic_auth_app::passkeys::begin_authentication(state, &s.account, bound, None).await {
            Ok(o) => passkey_options = options_json(&o)?,
            Err(e) if !e.is_internal() => error = error.or(Some(e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    let (jar, csrf) = csrf::form_token(state, jar, Some(s));
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = VerifyPage {
        title: "Confirm it's you",
        platform_name: &state.config.platform_name,
        heading: "Confirm it's you",
        action: &action,
        method: method.as_str(),
        next: Some(next_key),
        others_url: other.map(|o| format!("/account/2fa/verify?next={next_key}&method={}", o.as_str())),
        resend_in: sent.as_ref().map(|s| s.resend_in).unwrap_or(0),
        sent_to: sent.map(|s| s.masked),
        resend_action: coded.then(|| format!("/account/2fa/resend?method={}&next={next_key}", method.as_str())),
        passkey_options,
        csrf,
        notice: None,
        error: error.map(|e| e.message),
    };
    Ok((jar, render_with(status, &page)).into_response())
}

async fn step_up_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<StepUpQuery>,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let method = q.method.as_deref().and_then(|m| m.parse::<FactorKind>().ok()).unwrap_or(FactorKind::Authenticator);
    let answer = if method == FactorKind::Passkey {
        factors::StepUpAnswer::Passkey { credential: &form.credential }
    } else {
        factors::StepUpAnswer::Code { method, code: &form.code }
    };
    match factors::step_up(&state, &s.account, &s.token_hash, answer, &client.0).await {
        Ok(proof) => {
            let next = next_path(&form.next);
            match proof {
                Proof::RecoveryCode(fresh) => Ok(recovery_code_page(&state, &fresh, next, Shown::Replacement)),
                Proof::Authenticator | Proof::Code | Proof::Passkey => Ok(Redirect::to(next).into_response()),
            }
        }
        Err(e) if e.status().is_client_error() => {
            step_up_render(&state, jar, &s, &form.next, Some(method.as_str()), Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "confirm_action.html")]
struct ConfirmPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    heading: &'a str,
    message: &'a str,
    action: &'a str,
    button: &'a str,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

async fn confirm_render(
    state: &AppState,
    s: &SignedIn,
    heading: &str,
    message: &str,
    action: &str,
    button: &str,
    error: Option<AppError>,
) -> Response {
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    render_with(
        status,
        &ConfirmPage {
            title: heading,
            platform_name: &state.config.platform_name,
            heading,
            message,
            action,
            button,
            csrf: s.csrf_token.clone(),
            notice: None,
            error: error.map(|e| e.message),
        },
    )
}

const OFF_TEXT: &str =
    "Signing in will need only your password. You can turn two-factor authentication on again at any time.";
const NEW_CODE_TEXT: &str = "Your current recovery code will stop working, and a new one will be shown once.";

async fn off_page(State(state): State<AppState>, PageSignedIn(s): PageSignedIn) -> Result<Response, PageError> {
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("off"));
    }
    Ok(confirm_render(
        &state,
        &s,
        "Turn off two-factor authentication?",
        OFF_TEXT,
        "/account/2fa/off",
        "Turn off 2FA",
        None,
    )
    .await)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn off_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("off"));
    }
    match factors::turn_off(&state, &s.account, &s.token_hash, &client.0).await {
        Ok(()) => Ok(Redirect::to("/account?notice=mfa_off").into_response()),
        Err(e) if e.status().is_client_error() => Ok(confirm_render(
            &state,
            &s,
            "Turn off two-factor authentication?",
            OFF_TEXT,
            "/account/2fa/off",
            "Turn off 2FA",
            Some(e.into()),
        )
        .await),
        Err(e) => Err(e.into()),
    }
}

async fn recovery_page(State(state): State<AppState>, PageSignedIn(s): PageSignedIn) -> Result<Response, PageError> {
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("recovery-code"));
    }
    Ok(confirm_render(
        &state,
        &s,
        "Get a new recovery code?",
        NEW_CODE_TEXT,
        "/account/2fa/recovery-code",
        "Get a new recovery code",
        None,
    )
    .await)
}

async fn recovery_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("recovery-code"));
    }
    let code = factors::new_recovery_code(&state, &s.account, &client.0).await?;
    Ok(recovery_code_page(&state, &code, "/account", Shown::Replacement))
}

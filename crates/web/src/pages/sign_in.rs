//! Signing in and out: the email and password steps, the second factor (a code or a
//! passkey, "Send code", "Try another method"), and signing out. Staff and patients
//! use the same handlers, each realm at its own addresses (`routes_for`).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::factors::method_label;
use clinic_auth_app::sign_in::{self, FlowAt, Resumed, SignInStep, SignedInSession};
use clinic_auth_app::{Error, ErrorKind, branding};
use clinic_auth_core::{FactorKind, OrgId, Password, Realm};
use clinic_auth_store::ClientInfo;
use serde::Deserialize;

use super::views::{Shown, VerifyPage, recovery_code_page};
use super::{
    CodeForm, CsrfForm, MethodForm, NoticeQuery, RealmPages, frame, notice_text, options_json, pages_for, trust_device,
};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render, render_with};
use crate::http::auth::MaybeSignedIn;
use crate::http::client::Client;
use crate::http::cookies::{self, Kind};
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/logout", post(logout))
}

/// One realm's sign-in pages: every handler gets the realm's addresses first.
pub(super) fn routes_for(p: RealmPages) -> Router<AppState> {
    Router::new()
        .route(
            p.base,
            get(move |st, jar, q| email_page(p, st, jar, q)).post(move |st, jar, f| email_submit(p, st, jar, f)),
        )
        .route(
            p.password,
            get(move |st, jar| password_page(p, st, jar))
                .post(move |st, jar, cl, f| password_submit(p, st, jar, cl, f)),
        )
        .route(
            p.verify,
            get(move |st, jar| verify_page(p, st, jar)).post(move |st, jar, cl, f| verify_submit(p, st, jar, cl, f)),
        )
        .route(
            p.methods,
            get(move |st, jar| methods_page(p, st, jar)).post(move |st, jar, cl, f| methods_submit(p, st, jar, cl, f)),
        )
        .route(p.resend, post(move |st, jar, cl, f| resend_submit(p, st, jar, cl, f)))
}

pub(super) fn flow_token(state: &AppState, jar: &CookieJar) -> Option<String> {
    cookies::get(state, jar, Kind::Flow).map(str::to_owned)
}

/// Errors that mean "this sign-in is over": back to the start with a notice.
pub(super) fn is_flow_over(e: &Error) -> bool {
    e.is(ErrorKind::FlowExpired)
}

/// Back to the realm's first page, saying the sign-in took too long.
pub(super) fn restart(p: RealmPages, jar: CookieJar, state: &AppState) -> Response {
    let jar = cookies::remove(state, jar, Kind::Flow);
    (jar, Redirect::to(&format!("{}?notice=flow_expired", p.base))).into_response()
}

/// This browser's sign-in in this realm, past its password (with its token); or, when
/// there is none, the answer to give instead: the realm's first page, or `restart`.
pub(super) async fn flow_at(state: &AppState, jar: &CookieJar, p: RealmPages) -> Result<(String, FlowAt), Response> {
    let Some(token) = flow_token(state, jar) else { return Err(Redirect::to(p.base).into_response()) };
    match sign_in::past_password(state, &token).await {
        Ok(at) if at.flow.realm == p.realm => Ok((token, at)),
        Ok(_) => Err(Redirect::to(p.base).into_response()),
        Err(e) if is_flow_over(&e) => Err(restart(p, jar.clone(), state)),
        Err(e) => Err(PageError::from(e).into_response()),
    }
}

// ----- email -----

#[derive(Template)]
#[template(path = "login_email.html")]
struct LoginEmailPage<'a> {
    frame: Frame<'a>,
    heading: &'a str,
    action: &'a str,
    csrf: String,
    email: String,
    portal: bool,
    forgot: &'a str,
    /// The clinic this sign-in page was reached for (`?org=ID`), carried by the form.
    org: String,
}

/// The first page, in the look of the clinic `hint` names when it set its branding
/// (an unknown or malformed hint looks like no hint at all).
async fn email_form(
    state: &AppState,
    jar: CookieJar,
    p: RealmPages,
    email: String,
    hint: Option<OrgId>,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Response {
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let look = branding::look_for_hint(state, hint.as_ref()).await;
    let page = LoginEmailPage {
        frame: frame(state, p.heading).notice(notice).error(error).brand(look),
        heading: p.heading,
        action: p.base,
        csrf,
        email,
        portal: p.realm == Realm::Patient,
        forgot: p.forgot,
        org: hint.map(|o| o.to_string()).unwrap_or_default(),
    };
    (jar, render_with(page.frame.status(), &page)).into_response()
}

async fn email_page(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let email = q.email.filter(|e| e.len() <= 254).unwrap_or_default();
    let hint = branding::parse_hint(q.org.as_deref());
    email_form(&state, jar, p, email, hint, notice_text(q.notice.as_deref()), None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmailForm {
    csrf: String,
    email: String,
    /// The clinic the page was reached for, if any.
    org: String,
}

async fn email_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    PageForm(form): PageForm<EmailForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    match sign_in::start(&state, p.realm, &form.email, Some(&form.org)).await {
        Ok(started) => {
            let jar = cookies::set(&state, jar, Kind::Flow, started.flow_token.expose().to_owned());
            Ok((jar, Redirect::to(p.password)).into_response())
        }
        Err(e) if e.status().is_client_error() => {
            let hint = branding::parse_hint(Some(&form.org));
            Ok(email_form(&state, jar, p, form.email, hint, None, Some(e.into())).await)
        }
        Err(e) => Err(e.into()),
    }
}

// ----- password -----

#[derive(Template)]
#[template(path = "login_password.html")]
struct LoginPasswordPage<'a> {
    frame: Frame<'a>,
    heading: &'a str,
    action: &'a str,
    restart: &'a str,
    csrf: String,
    email: String,
    forgot: &'a str,
}

async fn password_form(
    state: &AppState,
    jar: CookieJar,
    p: RealmPages,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let Some(token) = flow_token(state, &jar) else {
        return Ok(Redirect::to(p.base).into_response());
    };
    let flow = match sign_in::current(state, &token).await {
        Ok(f) if f.realm == p.realm => f,
        Ok(_) => return Ok(Redirect::to(p.base).into_response()),
        Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, state)),
        Err(e) => return Err(e.into()),
    };
    let look = sign_in::look(state, &token).await;
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let page = LoginPasswordPage {
        frame: frame(state, p.heading).error(error).brand(look),
        heading: p.heading,
        action: p.password,
        restart: p.base,
        csrf,
        email: flow.email.to_string(),
        forgot: p.forgot,
    };
    Ok((jar, render_with(page.frame.status(), &page)).into_response())
}

async fn password_page(p: RealmPages, State(state): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    password_form(&state, jar, p, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    csrf: String,
    password: String,
}

async fn password_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else {
        return Ok(restart(p, jar, &state));
    };
    if sign_in::current(&state, &token).await.map(|f| f.realm != p.realm).unwrap_or(false) {
        return Ok(Redirect::to(p.base).into_response());
    }
    let hints = cookies::device_hints(&state, &jar);
    match sign_in::submit_password(&state, &token, Password::new(form.password), &hints, &client.0).await {
        Ok(sign_in::PasswordOutcome::SignedIn(done)) => signed_in(&state, jar, *done).await,
        Ok(sign_in::PasswordOutcome::SecondFactor { .. }) => {
            send_first_code(&state, &token, &client.0).await?;
            Ok(Redirect::to(p.verify).into_response())
        }
        Ok(sign_in::PasswordOutcome::Enroll { .. }) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => {
            let retry = e.retry_after;
            let mut res = password_form(&state, jar, p, Some(e.into())).await?;
            if let Some(v) = retry.and_then(|s| header::HeaderValue::from_str(&s.to_string()).ok()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets the session cookie after a completed sign-in and shows the new recovery code
/// when there is one; otherwise goes to the account page.
pub(super) async fn signed_in(state: &AppState, jar: CookieJar, done: SignedInSession) -> Result<Response, PageError> {
    // A session this browser held before is ended, not left behind the new one.
    if let Some(old) = cookies::get(state, &jar, Kind::Session) {
        clinic_auth_app::sessions::end(state, old).await?;
    }
    let why = if done.used_recovery_code { Shown::Replacement } else { Shown::FirstCode };
    let jar = cookies::remove(state, jar, Kind::Flow);
    let jar = cookies::remove(state, jar, Kind::Csrf);
    let jar = cookies::set(state, jar, Kind::Session, done.token.expose().to_owned());
    // Setup just finished: "Trust this device?" comes after the recovery code.
    // An app's sign-in waits for this one: back to it (after a new recovery code).
    let app = crate::oidc::pending_app_sign_in(state, &jar);
    let next = match why {
        _ if app => clinic_auth_app::oidc::paths::RESUME,
        Shown::FirstCode if trust_device::offer_trust(state, &done.account, &jar).await? => {
            "/account/trust-device?after=setup"
        }
        _ => "/account",
    };
    Ok(match done.new_recovery_code {
        Some(code) => {
            let look = clinic_auth_app::branding::look_for_account(state, &done.account, None).await;
            (jar, recovery_code_page(state, &code, next, why, look)).into_response()
        }
        None if done.suggest_setup && !app => (jar, Redirect::to("/account/2fa/setup?notice=bypass")).into_response(),
        None if app => (jar, Redirect::to(clinic_auth_app::oidc::paths::RESUME)).into_response(),
        None => (jar, Redirect::to("/account")).into_response(),
    })
}

// ----- the second factor -----

async fn verify_form(
    state: &AppState,
    jar: CookieJar,
    p: RealmPages,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let Some(token) = flow_token(state, &jar) else { return Ok(Redirect::to(p.base).into_response()) };
    // One read of the flow, its account and their MFA state says what to show.
    let step = match sign_in::resume(state, &token).await {
        Ok(Resumed { step: SignInStep::Password, .. }) => return Ok(restart(p, jar, state)),
        Ok(r) if r.realm != p.realm => return Ok(Redirect::to(p.base).into_response()),
        Ok(r) => r.step,
        Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, state)),
        Err(e) => return Err(e.into()),
    };
    let SignInStep::SecondFactor { method, others, sent } = step else {
        return Ok(Redirect::to(p.setup).into_response());
    };
    // Showing the page sends nothing (a GET changes nothing): the code went out with
    // the password or the choice of method, or goes out with "Send code".
    let mut error = error;
    let coded = matches!(method, FactorKind::Email | FactorKind::Sms);
    let mut passkey_options = String::new();
    if method == FactorKind::Passkey {
        match sign_in::begin_passkey(state, &token).await {
            Ok(o) => passkey_options = options_json(&o)?,
            Err(e) if is_flow_over(&e) => return Ok(restart(p, jar, state)),
            Err(e) if !e.is_internal() => error = error.or(Some(e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    let look = sign_in::look(state, &token).await;
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let page = VerifyPage {
        frame: frame(state, "Verify it's you").error(error).brand(look),
        heading: "Verify it's you",
        action: p.verify,
        method: method.as_str(),
        next: None,
        others_url: (!others.is_empty()).then(|| p.methods.to_owned()),
        resend_in: sent.as_ref().map(|s| s.resend_in).unwrap_or(0),
        sent_to: sent.map(|s| s.masked),
        resend_action: coded.then(|| p.resend.to_owned()),
        passkey_options,
        csrf,
    };
    Ok((jar, render_with(page.frame.status(), &page)).into_response())
}

async fn verify_page(p: RealmPages, State(state): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    verify_form(&state, jar, p, None).await
}

async fn verify_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<CodeForm>,
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
            let mut over = AppError::from(e);
            over.message = format!("{} Go back to the sign-in page.", over.message);
            Err(PageError(over))
        }
        Err(e) if e.status().is_client_error() => verify_form(&state, jar, p, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

async fn resend_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::ensure_code_sent(&state, &token, true, &client.0).await {
        Ok(_) => Ok(Redirect::to(p.verify).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if !e.is_internal() => verify_form(&state, jar, p, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

/// Sends the first email or text code of a sign-in step (a POST, behind CSRF). A
/// refusal (too many sends, a provider down) is shown on the code page, whose "Send
/// code" tries again.
async fn send_first_code(state: &AppState, token: &str, client: &ClientInfo) -> Result<(), PageError> {
    match sign_in::ensure_code_sent(state, token, false, client).await {
        Ok(_) => Ok(()),
        Err(e) if !e.is_internal() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

// ----- "Try another method" -----

#[derive(Template)]
#[template(path = "methods.html")]
struct MethodsPage<'a> {
    frame: Frame<'a>,
    action: &'a str,
    back: &'a str,
    methods: Vec<(&'static str, &'static str)>,
    csrf: String,
}

async fn methods_page(p: RealmPages, State(state): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    let (token, at) = match flow_at(&state, &jar, p).await {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let look = sign_in::look(&state, &token).await;
    let (_, others) = sign_in::methods(&state, &at, &cookies::device_hints(&state, &jar)).await?;
    let (jar, csrf) = csrf::form_token(&state, jar, None);
    // Offered only in a browser that holds one, so here it is this device's.
    let label = |k: FactorKind| if k == FactorKind::Passkey { "Passkey on this device" } else { method_label(k) };
    let page = MethodsPage {
        frame: frame(&state, "Try another method").brand(look),
        action: p.methods,
        back: p.verify,
        methods: others.into_iter().map(|k| (k.as_str(), label(k))).collect(),
        csrf,
    };
    Ok((jar, render(&page)).into_response())
}

async fn methods_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<MethodForm>,
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

// ----- signing out -----

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    MaybeSignedIn(s): MaybeSignedIn,
    PageForm(f): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    let Some(s) = s else {
        let jar = cookies::remove(&state, jar, Kind::Session);
        return Ok((jar, Redirect::to("/login?notice=signed_out")).into_response());
    };
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    sign_in::sign_out(&state, &s, &client.0).await?;
    let jar = cookies::remove(&state, jar, Kind::Session);
    let base = pages_for(s.account.realm()).base;
    Ok((jar, Redirect::to(&format!("{base}?notice=signed_out"))).into_response())
}

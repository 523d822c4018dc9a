//! The HTML pages. Each handler extracts, calls a service, and renders; the sign-in
//! flow itself lives in `service::login`, shared with the API.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use clinic_auth_core::{AccountKind, Password, Realm};
use clinic_auth_store::LinkPurpose;
use serde::Deserialize;

use crate::error::Status;
use crate::error_page::{PageError, render, render_with};
use crate::http::auth::MaybeSignedIn;
use crate::http::client::Client;
use crate::http::cookies::{self, Kind};
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};
use clinic_auth_app::ErrorKind;
use clinic_auth_app::time::date_time;
use clinic_auth_app::{accounts, sign_in};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/static/style.css", get(stylesheet))
        .route("/login", get(staff_email_page).post(staff_email_submit))
        .route("/login/password", get(staff_password_page).post(staff_password_submit))
        .route("/portal/login", get(patient_email_page).post(patient_email_submit))
        .route("/portal/login/password", get(patient_password_page).post(patient_password_submit))
        .route("/account", get(account_page))
        .route("/logout", axum::routing::post(logout))
        .route("/setup/{token}", get(setup_page).post(setup_submit))
        .route("/invite/{token}", get(invite_page).post(invite_submit))
        .route("/reset/{token}", get(reset_page).post(reset_submit))
}

/// Fixed texts for `?notice=…`; nothing from the query string is echoed.
fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "signed_out" => Some("You have been signed out."),
        "password_set" => Some("Your password is set. Sign in to continue."),
        "flow_expired" => Some("Your sign-in took too long. Please start again."),
        "session_ended" => Some("Your session ended. Please sign in again."),
        "mfa_on" => Some("Two-factor authentication is on."),
        "mfa_off" => Some("Two-factor authentication is off."),
        "verified" => Some("Thanks — you can change your two-factor settings for the next 10 minutes."),
        "device_trusted" => Some("This device is trusted. Next time, sign in with its passkey."),
        "passkey_renamed" => Some("The device was renamed."),
        "passkey_removed" => Some("The passkey was removed. That device is no longer trusted."),
        _ => None,
    }
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

pub(crate) struct RealmPages {
    pub(crate) realm: Realm,
    pub(crate) base: &'static str,
    pub(crate) password: &'static str,
    pub(crate) heading: &'static str,
    pub(crate) verify: &'static str,
    pub(crate) methods: &'static str,
    pub(crate) setup: &'static str,
}

pub(crate) const STAFF: RealmPages = RealmPages {
    realm: Realm::Staff,
    base: "/login",
    password: "/login/password",
    heading: "Sign in",
    verify: "/login/verify",
    methods: "/login/methods",
    setup: "/login/setup",
};
pub(crate) const PATIENT: RealmPages = RealmPages {
    realm: Realm::Patient,
    base: "/portal/login",
    password: "/portal/login/password",
    heading: "Patient portal sign-in",
    verify: "/portal/login/verify",
    methods: "/portal/login/methods",
    setup: "/portal/login/setup",
};

pub(crate) fn pages_for(realm: Realm) -> &'static RealmPages {
    match realm {
        Realm::Staff => &STAFF,
        Realm::Patient => &PATIENT,
    }
}

async fn home(MaybeSignedIn(s): MaybeSignedIn) -> Redirect {
    if s.is_some() { Redirect::to("/account") } else { Redirect::to("/login") }
}

/// `200 {"status":"ok"}` while the database answers, `503` otherwise; `warnings` lists
/// set-up problems (such as an ignored `X-Forwarded-For`) and is left out when there are none.
async fn healthz(State(state): State<AppState>) -> Response {
    let (status, mut body) = match state.store.ping().await {
        Ok(()) => (StatusCode::OK, serde_json::json!({"status": "ok", "store": state.store.backend_name()})),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "unavailable"}))
        }
    };
    let warnings = state.warnings();
    if let Some(fields) = body.as_object_mut()
        && !warnings.is_empty()
    {
        fields.insert("warnings".to_owned(), serde_json::json!(warnings));
    }
    (status, axum::Json(body)).into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../static/style.css"),
    )
        .into_response()
}

// ----- sign-in: email -----

#[derive(Template)]
#[template(path = "login_email.html")]
struct LoginEmailPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    heading: &'a str,
    action: &'a str,
    csrf: String,
    email: String,
    portal: bool,
    notice: Option<&'a str>,
    error: Option<String>,
}

fn email_page(
    state: &AppState,
    jar: CookieJar,
    p: &RealmPages,
    email: String,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Response {
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = LoginEmailPage {
        title: p.heading,
        platform_name: &state.config.platform_name,
        heading: p.heading,
        action: p.base,
        csrf,
        email,
        portal: p.realm == Realm::Patient,
        notice,
        error: error.map(|e| e.message),
    };
    (jar, render_with(status, &page)).into_response()
}

async fn email_page_get(state: AppState, jar: CookieJar, p: &RealmPages, q: NoticeQuery) -> Response {
    email_page(&state, jar, p, String::new(), notice_text(q.notice.as_deref()), None)
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

async fn email_submit(state: AppState, jar: CookieJar, p: &RealmPages, form: EmailForm) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    match sign_in::start(&state, p.realm, &form.email).await {
        Ok(started) => {
            let jar = cookies::set(&state, jar, Kind::Flow, started.flow_token.expose().to_owned());
            Ok((jar, Redirect::to(p.password)).into_response())
        }
        Err(e) if e.status().is_client_error() => Ok(email_page(&state, jar, p, form.email, None, Some(e.into()))),
        Err(e) => Err(e.into()),
    }
}

async fn staff_email_page(State(s): State<AppState>, jar: CookieJar, Query(q): Query<NoticeQuery>) -> Response {
    email_page_get(s, jar, &STAFF, q).await
}
async fn patient_email_page(State(s): State<AppState>, jar: CookieJar, Query(q): Query<NoticeQuery>) -> Response {
    email_page_get(s, jar, &PATIENT, q).await
}
async fn staff_email_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    PageForm(f): PageForm<EmailForm>,
) -> Result<Response, PageError> {
    email_submit(s, jar, &STAFF, f).await
}
async fn patient_email_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    PageForm(f): PageForm<EmailForm>,
) -> Result<Response, PageError> {
    email_submit(s, jar, &PATIENT, f).await
}

// ----- sign-in: password -----

#[derive(Template)]
#[template(path = "login_password.html")]
struct LoginPasswordPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    heading: &'a str,
    action: &'a str,
    restart: &'a str,
    csrf: String,
    email: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

pub(crate) fn restart(p: &RealmPages, jar: CookieJar, state: &AppState) -> Response {
    let jar = cookies::remove(state, jar, Kind::Flow);
    (jar, Redirect::to(&format!("{}?notice=flow_expired", p.base))).into_response()
}

async fn password_page(
    state: AppState,
    jar: CookieJar,
    p: &RealmPages,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let Some(token) = cookies::get(&state, &jar, Kind::Flow).map(str::to_owned) else {
        return Ok(Redirect::to(p.base).into_response());
    };
    let flow = match sign_in::current(&state, &token).await {
        Ok(f) if f.realm == p.realm => f,
        Ok(_) => return Ok(Redirect::to(p.base).into_response()),
        Err(e) if e.is(ErrorKind::FlowExpired) => return Ok(restart(p, jar, &state)),
        Err(e) => return Err(e.into()),
    };
    let (jar, csrf) = csrf::form_token(&state, jar, None);
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = LoginPasswordPage {
        title: p.heading,
        platform_name: &state.config.platform_name,
        heading: p.heading,
        action: p.password,
        restart: p.base,
        csrf,
        email: flow.email.to_string(),
        notice: None,
        error: error.map(|e| e.message),
    };
    Ok((jar, render_with(status, &page)).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

async fn password_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    p: &RealmPages,
    form: PasswordForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = cookies::get(&state, &jar, Kind::Flow).map(str::to_owned) else {
        return Ok(restart(p, jar, &state));
    };
    if sign_in::current(&state, &token).await.map(|f| f.realm != p.realm).unwrap_or(false) {
        return Ok(Redirect::to(p.base).into_response());
    }
    let hints = cookies::device_hints(&state, &jar);
    match sign_in::submit_password(&state, &token, Password::new(form.password), &hints, &client.0).await {
        Ok(sign_in::PasswordOutcome::SignedIn(done)) => crate::mfa_pages::signed_in(&state, jar, *done).await,
        Ok(sign_in::PasswordOutcome::SecondFactor { .. }) => {
            crate::mfa_pages::send_first_code(&state, &token, &client.0).await?;
            Ok(Redirect::to(p.verify).into_response())
        }
        Ok(sign_in::PasswordOutcome::Enroll { .. }) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if e.is(ErrorKind::FlowExpired) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => {
            let retry = e.retry_after;
            let mut res = password_page(state, jar, p, Some(e.into())).await?;
            if let Some(v) = retry.and_then(|s| header::HeaderValue::from_str(&s.to_string()).ok()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

async fn staff_password_page(State(s): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    password_page(s, jar, &STAFF, None).await
}
async fn patient_password_page(State(s): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    password_page(s, jar, &PATIENT, None).await
}
async fn staff_password_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(f): PageForm<PasswordForm>,
) -> Result<Response, PageError> {
    password_submit(s, jar, client, &STAFF, f).await
}
async fn patient_password_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(f): PageForm<PasswordForm>,
) -> Result<Response, PageError> {
    password_submit(s, jar, client, &PATIENT, f).await
}

// ----- account and sign-out -----

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    email: String,
    kind_label: &'a str,
    org_name: Option<String>,
    role: Option<&'a str>,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
    factors: Vec<(&'static str, String, Option<String>)>,
    has_recovery_code: bool,
    may_opt_in: bool,
    may_turn_off: bool,
    required: bool,
    passkeys: Vec<PasskeyRow>,
    may_trust_device: bool,
    this_device_trusted: bool,
    /// "Clinic Settings" for owners and admins, "Platform console" for support.
    admin_link: Option<(&'static str, &'static str)>,
}

struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: Option<String>,
    synced: bool,
    this_device: bool,
}

async fn account_page(
    State(state): State<AppState>,
    jar: axum_extra::extract::CookieJar,
    MaybeSignedIn(s): MaybeSignedIn,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let Some(s) = s else {
        return Ok(Redirect::to("/login").into_response());
    };
    let a = &s.account;
    let mfa = clinic_auth_app::factors::load(&state, a).await?;
    let hints = cookies::device_hints(&state, &jar);
    let passkeys: Vec<PasskeyRow> = clinic_auth_app::passkeys::views(&mfa.factors, &hints)
        .into_iter()
        .map(|v| PasskeyRow {
            id: v.id,
            name: v.name,
            created: date_time(clinic_auth_core::UnixTime(v.created_at)),
            last_used: v.last_used_at.map(|t| date_time(clinic_auth_core::UnixTime(t))),
            synced: v.synced,
            this_device: v.this_device,
        })
        .collect();
    let this_device_trusted = passkeys.iter().any(|p| p.this_device);
    let factors = mfa
        .factors
        .iter()
        .filter(|f| f.kind != clinic_auth_core::FactorKind::Passkey)
        .map(|f| {
            (clinic_auth_app::factors::method_label(f.kind), date_time(f.created_at), f.last_used_at.map(date_time))
        })
        .collect();
    let required = matches!(mfa.requirement(a), clinic_auth_core::Requirement::Enroll { .. });
    let org_name = match &a.org_id {
        Some(o) => state.store.get_org(o).await?.map(|o| o.name),
        None => None,
    };
    let kind_label = match a.kind {
        AccountKind::PlatformAdmin => "Platform admin",
        AccountKind::Member => "Clinic staff",
        AccountKind::Patient => "Patient portal",
    };
    let page = AccountPage {
        title: "Your account",
        platform_name: &state.config.platform_name,
        email: a.email.to_string(),
        kind_label,
        org_name,
        role: a.role.map(|r| r.as_str()),
        csrf: s.csrf_token.clone(),
        notice: notice_text(q.notice.as_deref()),
        error: None,
        factors,
        has_recovery_code: mfa.has_recovery_code,
        may_opt_in: mfa.may_opt_in(a),
        may_turn_off: mfa.may_turn_off(a),
        required,
        may_trust_device: state.webauthn.is_some() && mfa.may_trust_device(a),
        passkeys,
        this_device_trusted,
        admin_link: match (a.kind, a.role) {
            (AccountKind::PlatformAdmin, _) => Some(("/platform", "Platform console")),
            (AccountKind::Member, Some(r)) if r.manages_members() => Some(("/admin", "Clinic Settings")),
            _ => None,
        },
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    MaybeSignedIn(s): MaybeSignedIn,
    PageForm(f): PageForm<CsrfOnly>,
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

// ----- password links: first-admin setup, invitations, resets -----

#[derive(Template)]
#[template(path = "set_password.html")]
struct SetPasswordPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    heading: &'a str,
    intro: &'a str,
    button: &'a str,
    action: String,
    ask_email: bool,
    email: String,
    org_name: Option<String>,
    min_length: usize,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

fn link_texts(purpose: LinkPurpose) -> (&'static str, &'static str, &'static str, &'static str) {
    match purpose {
        LinkPurpose::Setup => (
            "Create the first platform admin",
            "This server has no administrator yet. Create the platform admin account that sets up clinics and their staff.",
            "Create account",
            "setup",
        ),
        LinkPurpose::Invitation => (
            "Set your password",
            "You have been invited. Choose a password to finish setting up your account.",
            "Set password",
            "invite",
        ),
        LinkPurpose::PasswordReset => (
            "Choose a new password",
            "Choose a new password for your account. Signing in elsewhere will end.",
            "Set password",
            "reset",
        ),
    }
}

async fn link_page(
    state: &AppState,
    jar: CookieJar,
    token: &str,
    purpose: LinkPurpose,
    entered_email: Option<String>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let opened = accounts::open_link(state, token, purpose).await?;
    let (heading, intro, button, prefix) = link_texts(purpose);
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let page = SetPasswordPage {
        title: heading,
        platform_name: &state.config.platform_name,
        heading,
        intro,
        button,
        action: format!("/{prefix}/{token}"),
        ask_email: purpose == LinkPurpose::Setup,
        email: entered_email.or_else(|| opened.account.as_ref().map(|a| a.email.to_string())).unwrap_or_default(),
        org_name: opened.org.map(|o| o.name),
        min_length: state.config.password_policy.min_length,
        csrf,
        notice: None,
        error: error.map(|e| e.message),
    };
    Ok((jar, render_with(status, &page)).into_response())
}

#[derive(Deserialize)]
struct SetPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn link_submit(
    state: AppState,
    jar: CookieJar,
    client: Client,
    token: String,
    purpose: LinkPurpose,
    form: SetPasswordForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let password = Password::new(form.new_password);
    let result = match purpose {
        LinkPurpose::Setup => {
            accounts::create_first_admin(&state, &token, &form.email, password, &form.confirm_password, &client.0).await
        }
        _ => {
            accounts::set_password_with_link(&state, &token, purpose, password, &form.confirm_password, &client.0).await
        }
    };
    match result {
        Ok(account) => {
            let base = pages_for(account.realm()).base;
            Ok(Redirect::to(&format!("{base}?notice=password_set")).into_response())
        }
        Err(e) if !e.is_internal() && !e.is(ErrorKind::LinkExpired) => {
            link_page(&state, jar, &token, purpose, Some(form.email).filter(|e| !e.is_empty()), Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn setup_page(State(s): State<AppState>, jar: CookieJar, Path(t): Path<String>) -> Result<Response, PageError> {
    link_page(&s, jar, &t, LinkPurpose::Setup, None, None).await
}
async fn invite_page(State(s): State<AppState>, jar: CookieJar, Path(t): Path<String>) -> Result<Response, PageError> {
    link_page(&s, jar, &t, LinkPurpose::Invitation, None, None).await
}
async fn reset_page(State(s): State<AppState>, jar: CookieJar, Path(t): Path<String>) -> Result<Response, PageError> {
    link_page(&s, jar, &t, LinkPurpose::PasswordReset, None, None).await
}
async fn setup_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    c: Client,
    Path(t): Path<String>,
    PageForm(f): PageForm<SetPasswordForm>,
) -> Result<Response, PageError> {
    link_submit(s, jar, c, t, LinkPurpose::Setup, f).await
}
async fn invite_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    c: Client,
    Path(t): Path<String>,
    PageForm(f): PageForm<SetPasswordForm>,
) -> Result<Response, PageError> {
    link_submit(s, jar, c, t, LinkPurpose::Invitation, f).await
}
async fn reset_submit(
    State(s): State<AppState>,
    jar: CookieJar,
    c: Client,
    Path(t): Path<String>,
    PageForm(f): PageForm<SetPasswordForm>,
) -> Result<Response, PageError> {
    link_submit(s, jar, c, t, LinkPurpose::PasswordReset, f).await
}

//! Setting up a second factor: during sign-in, when the policy asks for one (each
//! realm at `{base}/setup…`), and from the account page (`/account/2fa/setup…`). Both
//! show the same pages; which one is `clinic_auth_core::login_flow::setup_stage`.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::codes::{self, SentTo};
use clinic_auth_app::factors::{self, method_label};
use clinic_auth_app::sign_in;
use clinic_auth_app::{Error, ErrorKind, Within};
use clinic_auth_core::login_flow::{SetupAsk, SetupStage, setup_stage};
use clinic_auth_core::{FactorKind, FlowStep, MethodSet, RecoveryCode};
use clinic_auth_store::Account;
use serde::Deserialize;

use super::sign_in::{flow_at, flow_token, is_flow_over, restart, signed_in};
use super::step_up::{needs_step_up, step_up_redirect};
use super::views::{Shown, recovery_code_page};
use super::{CodeForm, CsrfForm, MethodForm, PhoneForm, RealmPages, frame, trust_device};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

/// Setup from the account page.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/2fa/setup", get(account_page).post(account_submit))
        .route("/account/2fa/setup/method", post(account_method))
        .route("/account/2fa/setup/phone", post(account_phone))
        .route("/account/2fa/setup/code", post(account_code))
        .route("/account/2fa/setup/resend", post(account_resend))
}

/// Setup during one realm's sign-in: every handler gets the realm's addresses first.
pub(super) fn routes_for(p: RealmPages) -> Router<AppState> {
    let action = |name: &str| format!("{}/{name}", p.setup);
    Router::new()
        .route(
            p.setup,
            get(move |s, jar, q| setup_page(p, s, jar, q)).post(move |s, jar, c, f| setup_submit(p, s, jar, c, f)),
        )
        .route(&action("method"), post(move |s, jar, c, f| method_submit(p, s, jar, c, f)))
        .route(&action("phone"), post(move |s, jar, c, f| phone_submit(p, s, jar, c, f)))
        .route(&action("code"), post(move |s, jar, c, f| code_submit(p, s, jar, c, f)))
        .route(&action("resend"), post(move |s, jar, c, f| resend_submit(p, s, jar, c, f)))
}

// ----- the pages both setups show -----

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage<'a> {
    frame: Frame<'a>,
    action: &'a str,
    cancel: Option<&'a str>,
    qr_svg: String,
    setup_key: String,
    issuer: String,
    account: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "enroll_code.html")]
struct EnrollCodePage<'a> {
    frame: Frame<'a>,
    base: &'a str,
    stage: &'a str,
    methods: Vec<(&'static str, &'static str)>,
    phone: String,
    /// Where the code went; `None` before one was sent ("Send code").
    sent_to: Option<String>,
    resend_in: i64,
    can_change: bool,
    csrf: String,
}

/// The words of seed 001 for the choice: "Emails" or "Texts".
fn setup_choice_label(kind: FactorKind) -> &'static str {
    match kind {
        FactorKind::Email => "Emails",
        FactorKind::Sms => "Texts",
        other => method_label(other),
    }
}

/// Where a setup happens: during a sign-in or in a session.
struct Place<'a> {
    account: &'a Account,
    /// What the setup's secret and codes are bound to.
    within: Within<'a>,
    /// The session (whose CSRF token the forms carry); `None` during sign-in.
    session: Option<&'a SignedIn>,
    /// The forms post to `{base}/setup…`: `/login`, `/portal/login` or `/account/2fa`.
    base: &'a str,
    /// "Cancel" (the account page only).
    cancel: Option<&'a str>,
    /// The methods on offer.
    allowed: MethodSet,
}

/// What the member asked of the setup page (`?step=`, and on the account page
/// `?method=`), or the form they sent, shown again with its error.
#[derive(Default)]
struct Asked {
    /// The method picked on the account page; sign-in keeps its pick in the flow.
    method: Option<FactorKind>,
    step: SetupAsk,
    /// The phone number typed.
    phone: String,
    error: Option<AppError>,
}

impl Asked {
    fn again(error: impl Into<AppError>) -> Asked {
        Asked { error: Some(error.into()), ..Asked::default() }
    }
}

#[derive(Deserialize, Default)]
struct SetupQuery {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    step: Option<String>,
    /// `bypass`: the member just signed in with a one-time bypass (account page).
    #[serde(default)]
    notice: Option<String>,
}

impl SetupQuery {
    fn asked(&self) -> Asked {
        let step = match self.step.as_deref() {
            Some("choose") => SetupAsk::ChooseAgain,
            Some("phone") => SetupAsk::NewPhone,
            _ => SetupAsk::GoOn,
        };
        Asked { method: self.method.as_deref().and_then(|m| m.parse().ok()), step, ..Asked::default() }
    }
}

/// What one showing of the setup page holds.
struct SetupView<'a> {
    stage: SetupStage,
    /// A setup code in flight; shown on the code form of its own channel only.
    live: Option<SentTo>,
    notice: Option<&'a str>,
    asked: Asked,
}

/// Shows the stage: the QR code (starting a new authenticator secret), or the choice,
/// phone number or code form.
async fn render_setup(
    state: &AppState,
    jar: CookieJar,
    place: &Place<'_>,
    view: SetupView<'_>,
) -> Result<Response, PageError> {
    let SetupView { stage, live, notice, asked } = view;
    let frame = frame(state, "Set up two-factor authentication").notice(notice).error(asked.error);
    if stage == SetupStage::Authenticator {
        let setup = factors::begin_authenticator(state, place.account, place.within).await?;
        // The SVG comes from our QR encoder; drop its XML prolog for inline HTML.
        let svg = setup.qr_svg.find("<svg").map(|i| setup.qr_svg[i..].to_owned()).unwrap_or_default();
        let (jar, csrf) = csrf::form_token(state, jar, place.session);
        let page = EnrollPage {
            frame,
            action: &format!("{}/setup", place.base),
            cancel: place.cancel,
            qr_svg: svg,
            setup_key: setup.setup_key,
            issuer: setup.issuer,
            account: place.account.email.to_string(),
            csrf,
        };
        return Ok((jar, render_with(page.frame.status(), &page)).into_response());
    }
    let (jar, csrf) = csrf::form_token(state, jar, place.session);
    let sent = live.filter(|s| stage.code_channel() == Some(s.channel));
    let page = EnrollCodePage {
        frame,
        base: place.base,
        stage: stage.as_str(),
        methods: place.allowed.iter().map(|k| (k.as_str(), setup_choice_label(k))).collect(),
        phone: asked.phone,
        resend_in: sent.as_ref().map(|s| s.resend_in).unwrap_or(0),
        sent_to: sent.map(|s| s.masked),
        can_change: place.allowed.iter().count() > 1 && stage != SetupStage::Choose,
        csrf,
    };
    Ok((jar, render_with(page.frame.status(), &page)).into_response())
}

// ----- during sign-in -----

/// What setup during sign-in says when the member's organization no longer allows the
/// method they just proved.
const REPLACING: &str = "Your organization no longer allows the method you just used. Set up one of the \
                         methods it allows to continue; the old one is then removed.";

async fn setup_form(state: &AppState, jar: CookieJar, p: RealmPages, asked: Asked) -> Result<Response, PageError> {
    let at = match flow_at(state, &jar, p).await {
        Ok((_, at)) => at,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let FlowStep::Enroll { allowed, chosen, replacing, .. } = at.flow.step else {
        return Ok(Redirect::to(p.verify).into_response());
    };
    let live = sign_in::enrollment_code_sent(state, &at).await?;
    let stage = setup_stage(allowed, chosen, live.as_ref().map(|s| s.channel), asked.step);
    let place = Place {
        account: &at.account,
        within: Within::SignIn(&at.flow_hash),
        session: None,
        base: p.base,
        cancel: None,
        allowed,
    };
    render_setup(state, jar, &place, SetupView { stage, live, notice: replacing.then_some(REPLACING), asked }).await
}

async fn setup_page(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<SetupQuery>,
) -> Result<Response, PageError> {
    setup_form(&state, jar, p, q.asked()).await
}

/// The authenticator app's first code.
async fn setup_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::confirm_enrollment(&state, &token, &form.code, &client.0).await {
        Ok(done) => signed_in(&state, jar, done).await,
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => setup_form(&state, jar, p, Asked::again(e)).await,
        Err(e) => Err(e.into()),
    }
}

/// "Emails" or "Texts".
async fn method_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<MethodForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    let result = match form.method.parse::<FactorKind>() {
        Ok(m) => sign_in::choose_enrollment_method(&state, &token, m).await.map(|()| m),
        Err(_) => Err(Error::new(ErrorKind::MethodUnavailable, "Choose one of the offered methods.")),
    };
    match result {
        Ok(method) => {
            if method == FactorKind::Email {
                // Best effort: a refusal shows on the code page, whose "Send code" retries.
                let _ = sign_in::send_enrollment_code(&state, &token, None, false, &client.0).await;
            }
            Ok(Redirect::to(p.setup).into_response())
        }
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => {
            let asked = Asked { step: SetupAsk::ChooseAgain, ..Asked::again(e) };
            setup_form(&state, jar, p, asked).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn phone_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<PhoneForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::send_enrollment_code(&state, &token, Some(&form.phone), false, &client.0).await {
        Ok(_) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if !e.is_internal() => {
            let asked = Asked { step: SetupAsk::NewPhone, phone: form.phone, ..Asked::again(e) };
            setup_form(&state, jar, p, asked).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The emailed or texted code.
async fn code_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::confirm_code_enrollment(&state, &token, &form.code, &client.0).await {
        Ok(done) => signed_in(&state, jar, done).await,
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => setup_form(&state, jar, p, Asked::again(e)).await,
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
    match sign_in::send_enrollment_code(&state, &token, None, true, &client.0).await {
        Ok(_) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if !e.is_internal() => setup_form(&state, jar, p, Asked::again(e)).await,
        Err(e) => Err(e.into()),
    }
}

// ----- from the account page -----

const AFTER_BYPASS: &str = "You signed in once without two-factor authentication, and your old methods were \
     removed. Set up your authenticator app again now, or choose Cancel to do it later from your account page.";

/// The setup code in flight in this session, texts first.
async fn live_setup_code(state: &AppState, s: &SignedIn) -> Result<Option<SentTo>, AppError> {
    for kind in [FactorKind::Sms, FactorKind::Email] {
        if let Some(sent) =
            codes::live(state, &s.account, kind, codes::Purpose::Enroll, Within::Session(&s.token_hash)).await?
        {
            return Ok(Some(sent));
        }
    }
    Ok(None)
}

/// Setting up (or adding) a factor from the account page, among the methods the
/// organization allows.
async fn account_form(
    state: &AppState,
    jar: CookieJar,
    s: &SignedIn,
    asked: Asked,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let mfa_state = factors::load(state, &s.account).await?;
    factors::require_setup_available(&mfa_state, &s.account)?;
    if needs_step_up(state, s).await? {
        return Ok(step_up_redirect("setup"));
    }
    let allowed = mfa_state.setup_methods(&s.account);
    let live = live_setup_code(state, s).await?;
    // The account page keeps no choice on the server: "Use a different number" is its
    // record that texts are being set up.
    let chosen = if asked.step == SetupAsk::NewPhone { Some(FactorKind::Sms) } else { asked.method };
    let stage = setup_stage(allowed, chosen, live.as_ref().map(|s| s.channel), asked.step);
    let place = Place {
        account: &s.account,
        within: Within::Session(&s.token_hash),
        session: Some(s),
        base: "/account/2fa",
        cancel: Some("/account"),
        allowed,
    };
    render_setup(state, jar, &place, SetupView { stage, live, notice, asked }).await
}

async fn account_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<SetupQuery>,
) -> Result<Response, PageError> {
    let notice = (q.notice.as_deref() == Some("bypass")).then_some(AFTER_BYPASS);
    account_form(&state, jar, &s, q.asked(), notice).await
}

/// The authenticator app's first code.
async fn account_submit(
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
    result: Result<Option<RecoveryCode>, Error>,
    method: Option<FactorKind>,
) -> Result<Response, PageError> {
    match result {
        Ok(code) => {
            state.store.mark_session_verified(&s.token_hash, state.now()).await?;
            let next = if trust_device::offer_trust(state, &s.account, &jar).await? {
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
            account_form(state, jar, s, Asked { method, ..Asked::again(e) }, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// "Emails" or "Texts": an email code goes out at once.
async fn account_method(
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

async fn account_phone(
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
    let sms = FactorKind::Sms;
    match factors::begin_code_enrollment(&state, &s.account, sms, Some(&form.phone), allowed, within, &client.0).await {
        Ok(_) => Ok(Redirect::to("/account/2fa/setup?method=sms").into_response()),
        Err(e) if !e.is_internal() => {
            let asked = Asked { method: Some(sms), step: SetupAsk::NewPhone, phone: form.phone, ..Asked::again(e) };
            account_form(&state, jar, &s, asked, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The emailed or texted code.
async fn account_code(
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
    let Some(kind) = live_setup_code(&state, &s).await?.map(|sent| sent.channel) else {
        let e = Error::new(ErrorKind::CodeExpired, "That code has expired. Send a new code.");
        return account_form(&state, jar, &s, Asked::again(e), None).await;
    };
    let within = Within::Session(&s.token_hash);
    let result = factors::confirm_code_enrollment(&state, &s.account, kind, &form.code, within, &client.0).await;
    account_enrolled(&state, jar, &s, result, Some(kind)).await
}

async fn account_resend(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let kind = live_setup_code(&state, &s).await?.map(|sent| sent.channel).unwrap_or(FactorKind::Email);
    match factors::resend_enrollment_code(&state, &s.account, kind, Within::Session(&s.token_hash), &client.0).await {
        Ok(_) => Ok(Redirect::to(&format!("/account/2fa/setup?method={}", kind.as_str())).into_response()),
        Err(e) if !e.is_internal() => {
            account_form(&state, jar, &s, Asked { method: Some(kind), ..Asked::again(e) }, None).await
        }
        Err(e) => Err(e.into()),
    }
}

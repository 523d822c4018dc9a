//! Setting up a second factor: during sign-in, when the policy asks for one (each
//! realm at `{login}/setup…`), and from the account page (`/account/2fa/setup…`).
//! Both show the same pages, whose stage is `clinic_auth_core::login_flow::setup_stage`,
//! and take the same five forms (`SetupPost`).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::codes::SentTo;
use clinic_auth_app::factors::{self, method_label};
use clinic_auth_app::sign_in::{self, SignedInSession};
use clinic_auth_app::{Error, ErrorKind, Within};
use clinic_auth_core::login_flow::{SetupAsk, SetupStage, setup_stage};
use clinic_auth_core::{FactorKind, FlowStep, MethodSet, RecoveryCode};
use clinic_auth_store::{Account, ClientInfo};
use serde::Deserialize;

use super::sign_in::{flow_at, flow_token, is_flow_over, restart, signed_in};
use super::step_up::{needs_step_up, step_up_first, verified_post};
use super::views::{Shown, recovery_code_page};
use super::{RealmPages, Visit, frame, trust_device};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

/// Where setup lives on the account page.
const ACCOUNT_SETUP: &str = "/account/2fa/setup";

/// Setup from the account page: the page, and each form at its address.
pub(super) fn routes() -> Router<AppState> {
    let page = Router::new().route(ACCOUNT_SETUP, get(account_page));
    SetupPost::ALL
        .into_iter()
        .fold(page, |router, form| router.route(&form.path(ACCOUNT_SETUP), post(move |v, f| account_post(form, v, f))))
}

/// Setup during one realm's sign-in: the page, and each form at its address; every
/// handler gets the realm's addresses first.
pub(super) fn routes_for(p: RealmPages) -> Router<AppState> {
    let page = Router::new()
        .route(p.setup, get(move |st, jar, q| setup_page(p, st, jar, q)))
        .route(&remind_later_path(p), post(move |st, jar, cl, f| remind_later_submit(p, st, jar, cl, f)));
    SetupPost::ALL.into_iter().fold(page, |router, form| {
        router.route(&form.path(p.setup), post(move |st, jar, cl, f| setup_post(form, p, st, jar, cl, f)))
    })
}

/// The forms a setup page posts.
#[derive(Debug, Clone, Copy)]
enum SetupPost {
    /// The authenticator app's first code.
    Authenticator,
    /// "Emails" or "Texts"; an email code goes out at once.
    Method,
    /// The mobile number a text goes to.
    Phone,
    /// The emailed or texted code.
    Code,
    /// "Send code" or "Resend".
    Resend,
}

impl SetupPost {
    const ALL: [SetupPost; 5] =
        [SetupPost::Authenticator, SetupPost::Method, SetupPost::Phone, SetupPost::Code, SetupPost::Resend];

    /// Where the form posts, under the setup page's address.
    fn path(self, setup: &str) -> String {
        let form = match self {
            SetupPost::Authenticator => "",
            SetupPost::Method => "/method",
            SetupPost::Phone => "/phone",
            SetupPost::Code => "/code",
            SetupPost::Resend => "/resend",
        };
        format!("{setup}{form}")
    }

    /// Whether a refusal is shown on the setup page rather than as an error page.
    fn shows(self, e: &Error) -> bool {
        match self {
            // A send the provider refused can be tried again from the page.
            SetupPost::Phone | SetupPost::Resend => !e.is_internal(),
            SetupPost::Authenticator | SetupPost::Method | SetupPost::Code => e.status().is_client_error(),
        }
    }

    /// The setup page shown again with the refusal: the choice again, or the phone
    /// number typed; `method` is the one the form was about (the account page's).
    fn again(self, e: Error, method: Option<FactorKind>, phone: String) -> Asked {
        match self {
            SetupPost::Method => Asked { step: SetupAsk::ChooseAgain, method, ..Asked::again(e) },
            SetupPost::Phone => Asked { step: SetupAsk::NewPhone, method, phone, ..Asked::again(e) },
            SetupPost::Authenticator | SetupPost::Code | SetupPost::Resend => Asked { method, ..Asked::again(e) },
        }
    }
}

/// Every field the setup forms post.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SetupForm {
    csrf: String,
    code: String,
    method: String,
    phone: String,
}

// ----- the pages both setups show -----

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage<'a> {
    frame: Frame<'a>,
    action: &'a str,
    cancel: Option<&'a str>,
    /// Where "Remind me later" posts, during the clinic's grace period.
    remind_later: Option<String>,
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
    /// Where "Remind me later" posts, during the clinic's grace period.
    remind_later: Option<String>,
    csrf: String,
    /// A number the form accepts, as the example in the hint.
    phone_example: &'static str,
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
    /// Where "Remind me later" posts (sign-in, in the clinic's grace period only).
    remind_later: Option<String>,
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
#[serde(default)]
struct SetupQuery {
    method: Option<String>,
    step: Option<String>,
    /// `bypass`: the member just signed in with a one-time bypass (account page).
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
    let look = clinic_auth_app::branding::look_for_place(state, place.account, place.within).await;
    let frame = frame(state, "Set up two-factor authentication").notice(notice).error(asked.error).brand(look);
    let (jar, csrf) = csrf::form_token(state, jar, place.session);
    if stage == SetupStage::Authenticator {
        let setup = factors::begin_authenticator(state, place.account, place.within).await?;
        // The SVG comes from our QR encoder; drop its XML prolog for inline HTML.
        let svg = setup.qr_svg.find("<svg").map(|i| setup.qr_svg[i..].to_owned()).unwrap_or_default();
        let page = EnrollPage {
            frame,
            action: &format!("{}/setup", place.base),
            cancel: place.cancel,
            remind_later: place.remind_later.clone(),
            qr_svg: svg,
            setup_key: setup.setup_key,
            issuer: setup.issuer,
            account: place.account.email.to_string(),
            csrf,
        };
        return Ok((jar, render_with(page.frame.status(), &page)).into_response());
    }
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
        remind_later: place.remind_later.clone(),
        csrf,
        phone_example: clinic_auth_core::UsPhone::EXAMPLE,
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
    let FlowStep::Enroll { allowed, chosen, replacing, after_bypass, remind_until, .. } = at.flow.step else {
        return Ok(Redirect::to(p.verify).into_response());
    };
    let live = sign_in::enrollment_code_sent(state, &at).await?;
    let stage = setup_stage(allowed, chosen, live.as_ref().map(|s| s.channel), asked.step);
    let now = state.now();
    let remind_until = remind_until.filter(|until| now < *until);
    let place = Place {
        account: &at.account,
        within: Within::SignIn(&at.flow_hash),
        session: None,
        base: p.base,
        cancel: None,
        allowed,
        remind_later: remind_until.map(|_| remind_later_path(p)),
    };
    let in_grace = remind_until.map(|until| {
        format!(
            "Your clinic requires two-factor authentication. You have {} left to set it up.",
            clinic_auth_core::policy::describe_days_left(now, until)
        )
    });
    let notice = if replacing {
        Some(REPLACING)
    } else if after_bypass {
        Some(BYPASS_THEN_SETUP)
    } else {
        in_grace.as_deref()
    };
    render_setup(state, jar, &place, SetupView { stage, live, notice, asked }).await
}

/// Where "Remind me later" posts during one realm's sign-in.
fn remind_later_path(p: RealmPages) -> String {
    format!("{}/later", p.setup)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemindLaterForm {
    csrf: String,
}

/// "Remind me later": in the clinic's grace period, the sign-in finishes without
/// setting up; after it, the setup page again with why not.
async fn remind_later_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<RemindLaterForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match sign_in::remind_later(&state, &token, &client.0).await {
        Ok(done) => signed_in(&state, jar, done).await,
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if e.status().is_client_error() => setup_form(&state, jar, p, Asked::again(e)).await,
        Err(e) => Err(e.into()),
    }
}

/// The bypass sign-in, where setup is required: why setup is shown.
const BYPASS_THEN_SETUP: &str = "Your administrator let you sign in once without two-factor authentication. Set up \
     your authenticator app again.";

async fn setup_page(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<SetupQuery>,
) -> Result<Response, PageError> {
    setup_form(&state, jar, p, q.asked()).await
}

async fn setup_post(
    posted: SetupPost,
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<SetupForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let Some(token) = flow_token(&state, &jar) else { return Ok(restart(p, jar, &state)) };
    match setup_step(&state, &token, posted, &form, &client.0).await {
        Ok(Some(done)) => signed_in(&state, jar, done).await,
        Ok(None) => Ok(Redirect::to(p.setup).into_response()),
        Err(e) if is_flow_over(&e) => Ok(restart(p, jar, &state)),
        Err(e) if posted.shows(&e) => setup_form(&state, jar, p, posted.again(e, None, form.phone)).await,
        Err(e) => Err(e.into()),
    }
}

/// Does what a form posted during sign-in asks; `Some` once setup, and with it the
/// sign-in, is complete.
async fn setup_step(
    state: &AppState,
    token: &str,
    posted: SetupPost,
    form: &SetupForm,
    client: &ClientInfo,
) -> Result<Option<SignedInSession>, Error> {
    match posted {
        SetupPost::Authenticator => sign_in::confirm_enrollment(state, token, &form.code, client).await.map(Some),
        SetupPost::Code => sign_in::confirm_code_enrollment(state, token, &form.code, client).await.map(Some),
        SetupPost::Method => {
            let method = form
                .method
                .parse::<FactorKind>()
                .map_err(|_| Error::new(ErrorKind::MethodUnavailable, "Choose one of the offered methods."))?;
            sign_in::choose_enrollment_method(state, token, method).await?;
            if method == FactorKind::Email {
                // Best effort: a refusal shows on the code page, whose "Send code" retries.
                let _ = sign_in::send_enrollment_code(state, token, None, false, client).await;
            }
            Ok(None)
        }
        SetupPost::Phone => {
            sign_in::send_enrollment_code(state, token, Some(&form.phone), false, client).await.map(|_| None)
        }
        SetupPost::Resend => sign_in::send_enrollment_code(state, token, None, true, client).await.map(|_| None),
    }
}

// ----- from the account page -----

const AFTER_BYPASS: &str = "You signed in once without two-factor authentication, and your old methods were \
     removed. Set up your authenticator app again now, or choose Cancel to do it later from your account page.";

/// The setup code in flight in this session, texts first.
async fn live_setup_code(state: &AppState, s: &SignedIn) -> Result<Option<SentTo>, AppError> {
    Ok(factors::setup_code_in_flight(state, &s.account, Within::Session(&s.token_hash)).await?)
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
    if let Some(first) = step_up_first(state, s, "setup").await? {
        return Ok(first);
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
        remind_later: None,
    };
    render_setup(state, jar, &place, SetupView { stage, live, notice, asked }).await
}

async fn account_page(
    Visit { state, jar, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<SetupQuery>,
) -> Result<Response, PageError> {
    let notice = (q.notice.as_deref() == Some("bypass")).then_some(AFTER_BYPASS);
    account_form(&state, jar, &s, q.asked(), notice).await
}

/// Where a form from the account page leads.
enum Outcome {
    /// The factor is set up (with the first recovery code, when there is one).
    Enrolled(Option<RecoveryCode>),
    /// Back to the setup page, going on with this method.
    Setup(FactorKind),
}

/// What a form from the account page came to, and the method it was about.
struct Step {
    method: Option<FactorKind>,
    result: Result<Outcome, Error>,
}

async fn account_post(
    posted: SetupPost,
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<SetupForm>,
) -> Result<Response, PageError> {
    // Choosing a method and "Send code" set nothing up; the other forms need a second
    // factor proved lately.
    let first = match posted {
        SetupPost::Method | SetupPost::Resend => csrf::verify(&state, &jar, Some(&s), &form.csrf).map(|()| None)?,
        SetupPost::Authenticator | SetupPost::Phone | SetupPost::Code => {
            verified_post(&state, &jar, &s, &form.csrf, "setup").await?
        }
    };
    if let Some(first) = first {
        return Ok(first);
    }
    let Step { method, result } = account_step(&state, &s, posted, &form, &client.0).await?;
    match result {
        Ok(Outcome::Enrolled(code)) => account_enrolled(&state, &jar, &s, code).await,
        Ok(Outcome::Setup(kind)) => {
            Ok(Redirect::to(&format!("{ACCOUNT_SETUP}?method={}", kind.as_str())).into_response())
        }
        Err(e) if posted.shows(&e) => account_form(&state, jar, &s, posted.again(e, method, form.phone), None).await,
        Err(e) => Err(e.into()),
    }
}

/// Does what a form from the account page asks.
async fn account_step(
    state: &AppState,
    s: &SignedIn,
    posted: SetupPost,
    form: &SetupForm,
    client: &ClientInfo,
) -> Result<Step, PageError> {
    let (account, within) = (&s.account, Within::Session(&s.token_hash));
    Ok(match posted {
        SetupPost::Authenticator => Step {
            method: Some(FactorKind::Authenticator),
            result: factors::confirm_authenticator(state, account, &form.code, within, client)
                .await
                .map(Outcome::Enrolled),
        },
        SetupPost::Method => {
            let method = form.method.parse::<FactorKind>().unwrap_or(FactorKind::Authenticator);
            if method == FactorKind::Email && !needs_step_up(state, s).await? {
                // Best effort: a refusal (such as email not being allowed) shows on
                // the code page, whose "Send code" retries.
                let _ = factors::send_setup_code(state, account, method, None, within, client).await;
            }
            Step { method: Some(method), result: Ok(Outcome::Setup(method)) }
        }
        SetupPost::Phone => {
            let (sms, phone) = (FactorKind::Sms, Some(form.phone.as_str()));
            let sent = factors::send_setup_code(state, account, sms, phone, within, client).await;
            Step { method: Some(sms), result: sent.map(|_| Outcome::Setup(sms)) }
        }
        SetupPost::Code => match live_setup_code(state, s).await?.map(|sent| sent.channel) {
            Some(kind) => Step {
                method: Some(kind),
                result: factors::confirm_code_enrollment(state, account, kind, &form.code, within, client)
                    .await
                    .map(Outcome::Enrolled),
            },
            None => Step {
                method: None,
                result: Err(Error::new(ErrorKind::CodeExpired, "That code has expired. Send a new code.")),
            },
        },
        SetupPost::Resend => {
            let kind = live_setup_code(state, s).await?.map(|sent| sent.channel).unwrap_or(FactorKind::Email);
            let sent = factors::resend_enrollment_code(state, account, kind, within, client).await;
            Step { method: Some(kind), result: sent.map(|_| Outcome::Setup(kind)) }
        }
    })
}

/// After a factor is confirmed from the account page: the first recovery code, or
/// back to the account.
async fn account_enrolled(
    state: &AppState,
    jar: &CookieJar,
    s: &SignedIn,
    code: Option<RecoveryCode>,
) -> Result<Response, PageError> {
    // Confirming the factor proved it in this session (the enroll use case says so).
    let app = crate::oidc::pending_app_sign_in(state, jar);
    let next = if app {
        // An app asked for a second factor and the member had none: back to it.
        clinic_auth_app::oidc::paths::RESUME
    } else if trust_device::offer_trust(state, &s.account, jar).await? {
        "/account/trust-device?after=setup"
    } else {
        "/account?notice=mfa_on"
    };
    Ok(match code {
        Some(code) => {
            let look = clinic_auth_app::branding::look_for_account(state, &s.account, None).await;
            recovery_code_page(state, &code, next, Shown::FirstCode, look)
        }
        None if app => Redirect::to(next).into_response(),
        None => Redirect::to("/account?notice=mfa_on").into_response(),
    })
}

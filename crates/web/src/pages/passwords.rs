//! Self-service passwords: "Forgot your password?" under each realm's sign-in pages
//! (`routes_for`), and "Change password" from the account page (`/account/password`,
//! behind a recent second factor where one is enrolled).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use clinic_auth_app::branding::Look;
use clinic_auth_app::{passwords, sign_in};
use clinic_auth_core::Password;
use serde::Deserialize;

use super::sign_in::flow_token;
use super::step_up::{step_up_first, verified_post};
use super::{RealmPages, Visit, frame};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

/// The one answer to "Send reset link", whether or not an account uses the address.
const RESET_SENT: &str = "If an account uses that address, we've sent it a link to choose a new \
                                     password. The link works once, for 1 hour.";

/// "Forgot your password?" at one realm's address.
pub(super) fn routes_for(p: RealmPages) -> Router<AppState> {
    Router::new().route(
        p.forgot,
        get(move |st, jar| forgot_page(p, st, jar)).post(move |st, jar, cl, f| forgot_submit(p, st, jar, cl, f)),
    )
}

/// "Change password" on the account pages.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/account/password", get(change_page).post(change_submit))
}

// ----- "Forgot your password?" -----

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage<'a> {
    frame: Frame<'a>,
    /// The answer after "Send reset link" (no form, nothing that differs per request).
    sent: bool,
    sent_text: &'a str,
    action: &'a str,
    back: &'a str,
    csrf: String,
    email: String,
}

/// The look of this browser's sign-in in this realm: a sign-in started on a clinic's
/// link (`/login?org=…`) keeps the clinic's branding on "Forgot your password?".
async fn sign_in_look(state: &AppState, jar: &CookieJar, p: RealmPages) -> Option<Look> {
    let token = flow_token(state, jar)?;
    match sign_in::current(state, &token).await {
        Ok(flow) if flow.realm == p.realm => sign_in::look(state, &token).await,
        _ => None,
    }
}

fn forgot_form(
    state: &AppState,
    jar: CookieJar,
    p: RealmPages,
    (email, look): (String, Option<Look>),
    error: Option<AppError>,
) -> Response {
    let retry_after = error.as_ref().and_then(|e| e.retry_after);
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let page = ForgotPage {
        frame: frame(state, "Forgot your password?").error(error).brand(look),
        sent: false,
        sent_text: RESET_SENT,
        action: p.forgot,
        back: p.base,
        csrf,
        email,
    };
    let mut res = (jar, render_with(page.frame.status(), &page)).into_response();
    if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The form, with the email of this browser's sign-in in this realm when there is one
/// (the link is under its password step).
async fn forgot_page(p: RealmPages, State(state): State<AppState>, jar: CookieJar) -> Response {
    let email = match flow_token(&state, &jar) {
        Some(token) => match sign_in::current(&state, &token).await {
            Ok(flow) if flow.realm == p.realm => flow.email.to_string(),
            _ => String::new(),
        },
        None => String::new(),
    };
    let look = sign_in_look(&state, &jar, p).await;
    forgot_form(&state, jar, p, (email, look), None)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ForgotForm {
    csrf: String,
    email: String,
}

async fn forgot_submit(
    p: RealmPages,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageForm(form): PageForm<ForgotForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let look = sign_in_look(&state, &jar, p).await;
    match passwords::request_reset(&state, p.realm, &form.email, &client.0).await {
        Ok(()) => {
            let page = ForgotPage {
                frame: frame(&state, "Check your email").brand(look),
                sent: true,
                sent_text: RESET_SENT,
                action: p.forgot,
                back: p.base,
                csrf: String::new(),
                email: String::new(),
            };
            Ok(render_with(page.frame.status(), &page))
        }
        Err(e) if e.status().is_client_error() => Ok(forgot_form(&state, jar, p, (form.email, look), Some(e.into()))),
        Err(e) => Err(e.into()),
    }
}

// ----- "Change password" -----

#[derive(Template)]
#[template(path = "change_password.html")]
struct ChangePage<'a> {
    frame: Frame<'a>,
    csrf: String,
    email: String,
    min_length: usize,
}

fn change_form(state: &AppState, s: &SignedIn, error: Option<AppError>) -> Response {
    let retry_after = error.as_ref().and_then(|e| e.retry_after);
    let page = ChangePage {
        frame: frame(state, "Change password").error(error),
        csrf: s.csrf_token.clone(),
        email: s.account.email.to_string(),
        min_length: state.config.password_policy.min_length,
    };
    let mut res = render_with(page.frame.status(), &page);
    if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The form, once a second factor was proved lately (where the account has one).
async fn change_page(Visit { state, session: PageSignedIn(s), .. }: Visit) -> Result<Response, PageError> {
    if let Some(first) = step_up_first(&state, &s, "password").await? {
        return Ok(first);
    }
    Ok(change_form(&state, &s, None))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChangeForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn change_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<ChangeForm>,
) -> Result<Response, PageError> {
    if let Some(first) = verified_post(&state, &jar, &s, &form.csrf, "password").await? {
        return Ok(first);
    }
    let current = Password::new(form.current_password);
    let new = Password::new(form.new_password);
    match passwords::change_password(&state, &s, current, new, Some(&form.confirm_password), &client.0).await {
        Ok(()) => Ok(Redirect::to("/account?notice=password_changed").into_response()),
        Err(e) if e.status().is_client_error() && !e.is(clinic_auth_app::ErrorKind::Unauthorized) => {
            Ok(change_form(&state, &s, Some(e.into())))
        }
        Err(e) => Err(e.into()),
    }
}

//! "Change email" (the sign-in name): the form on the account pages
//! (`/account/email`, behind a recent second factor where one is enrolled, like
//! "Change password"), "Cancel" on a waiting change, and the page behind the emailed
//! link (`/account/email/confirm?token=…`), which works with or without a session and
//! changes nothing until its button is pressed (mail scanners open links).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::email_change;
use clinic_auth_app::time::date_time;
use clinic_auth_core::Password;
use serde::Deserialize;

use super::step_up::{step_up_first, verified_post};
use super::{CsrfForm, Visit, frame, pages_for};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{MaybeSignedIn, PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/email", get(change_page).post(change_submit))
        .route("/account/email/cancel", post(cancel_submit))
        .route(email_change::CONFIRM_PATH, get(confirm_page).post(confirm_submit))
}

// ----- "Change email" -----

#[derive(Template)]
#[template(path = "change_email.html")]
struct ChangePage<'a> {
    frame: Frame<'a>,
    csrf: String,
    email: String,
    new_email: String,
    /// The change waiting for its link: the new address and when the link expires.
    pending: Option<(String, String)>,
}

async fn change_form(
    state: &AppState,
    s: &SignedIn,
    new_email: String,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let retry_after = error.as_ref().and_then(|e| e.retry_after);
    let pending = email_change::pending(state, &s.account).await?;
    let page = ChangePage {
        frame: frame(state, "Change email").error(error),
        csrf: s.csrf_token.clone(),
        email: s.account.email.to_string(),
        new_email,
        pending: pending.map(|p| (p.new_email.to_string(), date_time(p.expires_at))),
    };
    let mut res = render_with(page.frame.status(), &page);
    if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(res)
}

/// The form, once a second factor was proved lately (where the account has one).
async fn change_page(Visit { state, session: PageSignedIn(s), .. }: Visit) -> Result<Response, PageError> {
    if let Some(first) = step_up_first(&state, &s, "email").await? {
        return Ok(first);
    }
    change_form(&state, &s, String::new(), None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChangeForm {
    csrf: String,
    new_email: String,
    current_password: String,
}

async fn change_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<ChangeForm>,
) -> Result<Response, PageError> {
    if let Some(first) = verified_post(&state, &jar, &s, &form.csrf, "email").await? {
        return Ok(first);
    }
    let current = Password::new(form.current_password);
    match email_change::request_change(&state, &s, &form.new_email, current, &client.0).await {
        Ok(_) => Ok(Redirect::to("/account?notice=email_change_sent").into_response()),
        Err(e) if e.status().is_client_error() && !e.is(clinic_auth_app::ErrorKind::Unauthorized) => {
            change_form(&state, &s, form.new_email, Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

/// "Cancel" on the waiting change. It only takes something away: no second factor.
async fn cancel_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    email_change::cancel(&state, &s, &client.0).await?;
    Ok(Redirect::to("/account?notice=email_change_cancelled").into_response())
}

// ----- The link: "Confirm new email" -----

#[derive(Template)]
#[template(path = "confirm_email.html")]
struct ConfirmPage<'a> {
    frame: Frame<'a>,
    /// Done: the email is changed.
    done: bool,
    new_email: String,
    expires: String,
    token: String,
    csrf: String,
    /// Where to go next: the account page when signed in, else the realm's sign-in.
    next: (&'static str, &'static str),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

/// Shows what the link would do, and its button; changes nothing.
async fn confirm_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let opened = email_change::open_link(&state, &q.token).await?;
    let (jar, csrf) = csrf::form_token(&state, jar, None);
    let page = ConfirmPage {
        frame: frame(&state, "Confirm new email"),
        done: false,
        new_email: opened.new_email.to_string(),
        expires: date_time(opened.expires_at),
        token: q.token,
        csrf,
        next: ("", ""),
    };
    Ok((jar, render_with(page.frame.status(), &page)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfirmForm {
    csrf: String,
    token: String,
}

async fn confirm_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    MaybeSignedIn(s): MaybeSignedIn,
    PageForm(form): PageForm<ConfirmForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let account = email_change::confirm(&state, &form.token, &client.0).await?;
    let next = match s {
        Some(s) if s.account.id == account.id => ("/account", "Go to your account"),
        _ => (pages_for(account.realm()).base, "Sign in with your new email"),
    };
    let page = ConfirmPage {
        frame: frame(&state, "Your sign-in email is changed"),
        done: true,
        new_email: account.email.to_string(),
        expires: String::new(),
        token: String::new(),
        csrf: String::new(),
        next,
    };
    Ok(render_with(page.frame.status(), &page))
}

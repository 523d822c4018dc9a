//! Proving a second factor again before changing 2FA or the password
//! (`/account/2fa/verify`): the account's own methods, "Send code", and the way back
//! to what asked for it.

use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::factors::{self, Proof};
use clinic_auth_app::{Within, codes, passkeys};
use clinic_auth_core::FactorKind;
use serde::Deserialize;

use super::views::{Shown, VerifyPage, recovery_code_page};
use super::{CodeForm, CsrfForm, Visit, frame, options_json};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::render_with;
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/2fa/verify", get(step_up_page).post(step_up_submit))
        .route("/account/2fa/resend", post(step_up_resend))
}

/// Changing 2FA that exists needs a second factor proved within the last minutes.
pub(super) async fn needs_step_up(state: &AppState, s: &SignedIn) -> Result<bool, AppError> {
    Ok(!factors::has_recent_proof(state, s.account.id, &s.token_hash).await?)
}

/// To the step-up page, coming back to `next` (one of `next_key`'s places).
fn step_up_redirect(next: &str) -> Response {
    Redirect::to(&format!("/account/2fa/verify?next={next}")).into_response()
}

/// For a page that changes 2FA: `Some` is the step-up to do first, when no second
/// factor was proved lately.
pub(super) async fn step_up_first(state: &AppState, s: &SignedIn, next: &str) -> Result<Option<Response>, PageError> {
    Ok(needs_step_up(state, s).await?.then(|| step_up_redirect(next)))
}

/// For a form that changes 2FA: its token must be the session's, then as
/// `step_up_first`.
pub(super) async fn verified_post(
    state: &AppState,
    jar: &CookieJar,
    s: &SignedIn,
    csrf_token: &str,
    next: &str,
) -> Result<Option<Response>, PageError> {
    csrf::verify(state, jar, Some(s), csrf_token)?;
    step_up_first(state, s, next).await
}

/// Where a step-up sends back to; only these fixed places, never a URL from outside.
fn next_path(next: &str) -> &'static str {
    match next {
        "setup" => "/account/2fa/setup",
        "off" => "/account/2fa/off",
        "recovery-code" => "/account/2fa/recovery-code",
        "trust-device" => "/account/trust-device",
        "password" => "/account/password",
        "email" => "/account/email",
        "admin" => "/admin/users",
        // An app asked for a second factor (`acr_values`): back to its sign-in.
        "app" => clinic_auth_app::oidc::paths::RESUME,
        _ => "/account",
    }
}

fn next_key(next: &str) -> &str {
    match next {
        "setup" | "off" | "recovery-code" | "trust-device" | "password" | "email" | "admin" | "app" => next,
        _ => "account",
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StepUpQuery {
    next: String,
    method: Option<String>,
}

impl StepUpQuery {
    fn method(&self, otherwise: FactorKind) -> FactorKind {
        self.method.as_deref().and_then(|m| m.parse().ok()).unwrap_or(otherwise)
    }
}

async fn step_up_page(
    Visit { state, jar, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<StepUpQuery>,
) -> Result<Response, PageError> {
    step_up_form(&state, jar, &s, &q.next, q.method.as_deref(), None).await
}

async fn step_up_resend(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Query(q): Query<StepUpQuery>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let method = q.method(FactorKind::Email);
    let within = Within::Session(&s.token_hash);
    match factors::ensure_code_sent(&state, &s.account, method, codes::Purpose::StepUp, within, true, &client.0).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/account/2fa/verify?next={}&method={}", next_key(&q.next), method.as_str()))
                .into_response())
        }
        Err(e) if !e.is_internal() => {
            step_up_form(&state, jar, &s, &q.next, Some(method.as_str()), Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

/// "Confirm it's you" with `method` (when the account has it; else its first), the
/// other enrolled method one link away.
async fn step_up_form(
    state: &AppState,
    jar: CookieJar,
    s: &SignedIn,
    next: &str,
    method: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let asked = method.and_then(|m| m.parse::<FactorKind>().ok());
    let factors::StepUpStep { method, other, sent } = factors::step_up_step(state, s, asked).await?;
    let next_key = next_key(next);
    let look = clinic_auth_app::branding::look_for_account(state, &s.account, None).await;
    let action = format!("/account/2fa/verify?method={}", method.as_str());
    let coded = matches!(method, FactorKind::Email | FactorKind::Sms);
    let mut error = error;
    let mut passkey_options = String::new();
    if method == FactorKind::Passkey {
        let bound = passkeys::Bound::StepUp(&s.token_hash);
        match passkeys::begin_authentication(state, &s.account, bound, None).await {
            Ok(o) => passkey_options = options_json(&o)?,
            Err(e) if !e.is_internal() => error = error.or(Some(e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    let (jar, csrf) = csrf::form_token(state, jar, Some(s));
    let page = VerifyPage {
        frame: frame(state, "Confirm it's you").error(error).brand(look),
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
    };
    Ok((jar, render_with(page.frame.status(), &page)).into_response())
}

async fn step_up_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Query(q): Query<StepUpQuery>,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let method = q.method(FactorKind::Authenticator);
    let answer = if method == FactorKind::Passkey {
        factors::StepUpAnswer::Passkey { credential: &form.credential }
    } else {
        factors::StepUpAnswer::Code { method, code: &form.code }
    };
    match factors::step_up(&state, &s.account, &s.token_hash, answer, &client.0).await {
        Ok(proof) => {
            let next = next_path(&form.next);
            match proof {
                Proof::RecoveryCode(fresh) => {
                    let look = clinic_auth_app::branding::look_for_account(&state, &s.account, None).await;
                    Ok(recovery_code_page(&state, &fresh, next, Shown::Replacement, look))
                }
                Proof::Authenticator | Proof::Code | Proof::Passkey => Ok(Redirect::to(next).into_response()),
            }
        }
        Err(e) if e.status().is_client_error() => {
            step_up_form(&state, jar, &s, &form.next, Some(method.as_str()), Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

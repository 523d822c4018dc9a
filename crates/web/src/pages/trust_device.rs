//! Passkeys: "Trust this device?" (after setup and from the account page), and
//! renaming and removing trusted devices. The sign-in and step-up passkey checks are
//! on the verify pages (`sign_in`, `step_up`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::passkeys;
use clinic_auth_core::passkey::PasskeyName;
use clinic_auth_store::{Account, ClientInfo};
use serde::Deserialize;

use super::step_up::{step_up_first, verified_post};
use super::{CsrfForm, Visit, frame, options_json};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::cookies;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/trust-device", get(trust_page).post(trust_submit))
        .route("/account/passkeys/{id}/rename", post(rename_submit))
        .route("/account/passkeys/{id}/remove", get(remove_page).post(remove_submit))
}

/// Whether to ask "Trust this device?": the server can make passkeys, the account
/// may have one, and this browser is not trusted already.
pub(super) async fn offer_trust(state: &AppState, account: &Account, jar: &CookieJar) -> Result<bool, AppError> {
    Ok(passkeys::should_offer_trust(state, account, &cookies::device_hints(state, jar)).await?)
}

#[derive(Template)]
#[template(path = "trust_device.html")]
struct TrustPage<'a> {
    frame: Frame<'a>,
    action: &'a str,
    options: String,
    name: String,
    skip: &'a str,
    csrf: String,
}

/// Where "Not now" goes: right after setup it confirms 2FA is on; from the account
/// page it just goes back.
fn skip_to(after_setup: bool) -> &'static str {
    if after_setup { "/account?notice=mfa_on" } else { "/account" }
}

/// The trust page as shown: the device name typed (else one from the user agent),
/// its error, and where "Not now" goes.
struct TrustView {
    name: Option<String>,
    error: Option<AppError>,
    skip: &'static str,
}

async fn trust_form(
    state: &AppState,
    s: &SignedIn,
    client: &ClientInfo,
    view: TrustView,
) -> Result<Response, PageError> {
    let TrustView { name, mut error, skip } = view;
    let options = match passkeys::begin_registration(state, &s.account, &s.token_hash).await {
        Ok(o) => options_json(&o)?,
        Err(e) if !e.is_internal() => {
            error = error.or(Some(e.into()));
            String::new()
        }
        Err(e) => return Err(e.into()),
    };
    let name = name.unwrap_or_else(|| PasskeyName::from_user_agent(Some(&client.user_agent)).as_str().to_owned());
    let page = TrustPage {
        frame: frame(state, "Trust this device?").error(error),
        action: "/account/trust-device",
        options,
        name,
        skip,
        csrf: s.csrf_token.clone(),
    };
    Ok(render_with(page.frame.status(), &page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TrustQuery {
    /// `setup`: offered right after the member set up 2FA.
    after: Option<String>,
}

async fn trust_page(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<TrustQuery>,
) -> Result<Response, PageError> {
    if let Some(first) = step_up_first(&state, &s, "trust-device").await? {
        return Ok(first);
    }
    let skip = skip_to(q.after.as_deref() == Some("setup"));
    trust_form(&state, &s, &client.0, TrustView { name: None, error: None, skip }).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TrustForm {
    csrf: String,
    credential: String,
    name: String,
}

async fn trust_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<TrustForm>,
) -> Result<Response, PageError> {
    if let Some(first) = verified_post(&state, &jar, &s, &form.csrf, "trust-device").await? {
        return Ok(first);
    }
    let name = Some(form.name.as_str()).filter(|n| !n.trim().is_empty());
    match passkeys::finish_registration(&state, &s.account, &s.token_hash, &form.credential, name, &client.0).await {
        Ok(added) => {
            let jar = cookies::remember_device(&state, jar, &added.device_hint);
            Ok((jar, Redirect::to("/account?notice=device_trusted")).into_response())
        }
        Err(e) if e.status().is_client_error() => {
            let view = TrustView { name: Some(form.name), error: Some(e.into()), skip: skip_to(false) };
            trust_form(&state, &s, &client.0, view).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RenameForm {
    csrf: String,
    name: String,
}

async fn rename_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Path(id): Path<String>,
    PageForm(form): PageForm<RenameForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    passkeys::rename(&state, &s.account, &id, &form.name, &client.0).await?;
    Ok(Redirect::to("/account?notice=passkey_renamed").into_response())
}

/// "Remove this passkey?": what removing it does, before anything is removed. The
/// account page links here; only the form on this page removes.
async fn remove_page(
    Visit { state, jar, session: PageSignedIn(s), .. }: Visit,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if let Some(first) = step_up_first(&state, &s, "account").await? {
        return Ok(first);
    }
    let hints = cookies::device_hints(&state, &jar);
    let passkey = passkeys::list(&state, &s.account, &hints).await?.into_iter().find(|p| p.id == id);
    let Some(passkey) = passkey else {
        return Err(PageError(AppError::from(clinic_auth_app::Error::not_found("The passkey"))));
    };
    let heading = format!("Remove the passkey \u{201c}{}\u{201d}?", passkey.name);
    let message = if passkey.this_device {
        "This device will no longer be trusted: signing in here will ask for your other two-factor method. You can \
         trust it again later from your account page."
    } else {
        "That device will no longer be trusted: signing in on it will ask for your other two-factor method. Remove \
         it if the device is lost, sold or no longer yours."
    };
    let action = format!("/account/passkeys/{}/remove", passkey.id);
    let page = super::account::ConfirmPage {
        frame: frame(&state, "Are you sure?"),
        heading: &heading,
        message,
        action: &action,
        button: "Remove passkey",
        csrf: s.csrf_token.clone(),
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn remove_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    if let Some(first) = verified_post(&state, &jar, &s, &form.csrf, "account").await? {
        return Ok(first);
    }
    passkeys::remove(&state, &s.account, &s.token_hash, &id, &client.0).await?;
    Ok(Redirect::to("/account?notice=passkey_removed").into_response())
}

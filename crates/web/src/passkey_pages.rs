//! Passkey pages: "Trust this device?" (after setup and from the account page), and
//! renaming and removing trusted devices. The sign-in and step-up passkey checks live
//! on the verify pages in `mfa_pages`; all of them use `service::passkeys`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_core::passkey::PasskeyName;
use clinic_auth_store::Account;
use serde::Deserialize;

use crate::error::Status;
use crate::error_page::{PageError, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::cookies;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::mfa_pages::{needs_step_up, options_json, step_up_redirect};
use crate::{AppError, AppState};
use clinic_auth_app::{factors, passkeys};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/passkey.js", get(script))
        .route("/account/trust-device", get(trust_page).post(trust_submit))
        .route("/account/passkeys/{id}/rename", post(rename_submit))
        .route("/account/passkeys/{id}/remove", post(remove_submit))
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../static/passkey.js"),
    )
        .into_response()
}

/// Whether to ask "Trust this device?": the server can make passkeys, the account
/// may have one, and this browser is not trusted already.
pub(crate) async fn offer_trust(state: &AppState, account: &Account, jar: &CookieJar) -> Result<bool, AppError> {
    if state.webauthn.is_none() {
        return Ok(false);
    }
    let m = factors::load(state, account).await?;
    let hints = cookies::device_hints(state, jar);
    Ok(m.may_trust_device(account) && !passkeys::is_trusted_device(&m.factors, &hints))
}

#[derive(Template)]
#[template(path = "trust_device.html")]
struct TrustPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    action: &'a str,
    options: String,
    name: String,
    skip: &'a str,
    csrf: String,
    notice: Option<&'a str>,
    error: Option<String>,
}

/// Where "Not now" goes: right after setup it confirms 2FA is on; from the account
/// page it just goes back.
fn skip_to(after_setup: bool) -> &'static str {
    if after_setup { "/account?notice=mfa_on" } else { "/account" }
}

async fn trust_render(
    state: &AppState,
    s: &SignedIn,
    client: &clinic_auth_store::ClientInfo,
    name: Option<String>,
    error: Option<AppError>,
    skip: &'static str,
) -> Result<Response, PageError> {
    let mut error = error;
    let options = match passkeys::begin_registration(state, &s.account, &s.token_hash).await {
        Ok(o) => options_json(&o)?,
        Err(e) if !e.is_internal() => {
            error = error.or(Some(e.into()));
            String::new()
        }
        Err(e) => return Err(e.into()),
    };
    let status = error.as_ref().map(|e| e.status()).unwrap_or(StatusCode::OK);
    let name = name.unwrap_or_else(|| PasskeyName::from_user_agent(Some(&client.user_agent)).as_str().to_owned());
    let page = TrustPage {
        title: "Trust this device?",
        platform_name: &state.config.platform_name,
        action: "/account/trust-device",
        options,
        name,
        skip,
        csrf: s.csrf_token.clone(),
        notice: None,
        error: error.map(|e| e.message),
    };
    Ok(render_with(status, &page))
}

#[derive(Deserialize)]
struct TrustQuery {
    /// `setup`: offered right after the member set up 2FA.
    #[serde(default)]
    after: Option<String>,
}

async fn trust_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    axum::extract::Query(q): axum::extract::Query<TrustQuery>,
) -> Result<Response, PageError> {
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("trust-device"));
    }
    let skip = skip_to(q.after.as_deref() == Some("setup"));
    trust_render(&state, &s, &client.0, None, None, skip).await
}

#[derive(Deserialize)]
struct TrustForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    name: String,
}

async fn trust_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(form): PageForm<TrustForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("trust-device"));
    }
    let name = Some(form.name.as_str()).filter(|n| !n.trim().is_empty());
    match passkeys::finish_registration(&state, &s.account, &s.token_hash, &form.credential, name, &client.0).await {
        Ok(added) => {
            let jar = cookies::remember_device(&state, jar, &added.device_hint);
            Ok((jar, Redirect::to("/account?notice=device_trusted")).into_response())
        }
        Err(e) if e.status().is_client_error() => {
            trust_render(&state, &s, &client.0, Some(form.name), Some(e.into()), skip_to(false)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct RenameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

async fn rename_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path(id): Path<String>,
    PageForm(form): PageForm<RenameForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    passkeys::rename(&state, &s.account, &id, &form.name, &client.0).await?;
    Ok(Redirect::to("/account?notice=passkey_renamed").into_response())
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn remove_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    if needs_step_up(&state, &s).await? {
        return Ok(step_up_redirect("account"));
    }
    passkeys::remove(&state, &s.account, &s.token_hash, &id, &client.0).await?;
    Ok(Redirect::to("/account?notice=passkey_removed").into_response())
}

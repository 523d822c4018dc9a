//! The OpenID Connect door: discovery, JWKS, authorize, token, userinfo, revocation,
//! introspection and end-session. Each handler extracts, calls one use case in
//! `clinic_auth_app::oidc`, and answers in the protocol's own shapes (OAuth error
//! JSON, redirects with `error=`), not the JSON API's.
//!
//! While a member signs in for an app, the authorization request's id waits in a
//! cookie; the sign-in, step-up and setup pages send the browser to `RESUME` when
//! they finish (`pending_app_sign_in`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::CookieJar;
use base64::Engine;
use clinic_auth_app::oidc::authorize::{self, Next, Refusal, RequestParams};
use clinic_auth_app::oidc::clients::Credentials;
use clinic_auth_app::oidc::logout::{self, EndSessionParams};
use clinic_auth_app::oidc::tokens::{self, TokenError, TokenForm};
use clinic_auth_app::oidc::{self, paths};
use serde::Deserialize;

use crate::error_page::PageError;
use crate::html::{Frame, render};
use crate::http::auth::MaybeSignedIn;
use crate::http::client::Client;
use crate::http::cookies::{self, Kind};
use crate::http::csrf;
use crate::{AppError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::DISCOVERY, get(discovery))
        .route(paths::JWKS, get(jwks))
        .route(paths::AUTHORIZE, get(authorize_get).post(authorize_post))
        .route(paths::RESUME, get(resume))
        .route(paths::TOKEN, post(token))
        .route(paths::USERINFO, get(userinfo).post(userinfo))
        .route(paths::REVOKE, post(revoke))
        .route(paths::INTROSPECT, post(introspect))
        .route(paths::END_SESSION, get(end_session_get).post(end_session_post))
}

/// Whether an app's sign-in waits for this browser: where the sign-in, step-up and
/// setup pages go when they finish, instead of the account page.
pub(crate) fn pending_app_sign_in(state: &AppState, jar: &CookieJar) -> bool {
    cookies::get(state, jar, Kind::AppRequest).is_some()
}

async fn discovery(State(state): State<AppState>) -> Response {
    let mut res = Json(oidc::discovery(&state)).into_response();
    res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    res
}

async fn jwks(State(state): State<AppState>) -> Result<Response, AppError> {
    let set = oidc::keys::jwks(&state).await?;
    let mut res = Json(set).into_response();
    res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(res)
}

// ----- authorize -----

async fn authorize_get(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    client: Client,
    session: MaybeSignedIn,
    Query(p): Query<RequestParams>,
) -> Response {
    authorize(state, jar, headers, client, session, p).await
}

async fn authorize_post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    client: Client,
    session: MaybeSignedIn,
    Form(p): Form<RequestParams>,
) -> Response {
    authorize(state, jar, headers, client, session, p).await
}

async fn authorize(
    state: AppState,
    jar: CookieJar,
    headers: HeaderMap,
    Client(client): Client,
    MaybeSignedIn(session): MaybeSignedIn,
    p: RequestParams,
) -> Response {
    match authorize::begin(&state, p, &client).await {
        Ok(id) => {
            let jar = cookies::set(&state, jar, Kind::AppRequest, id.expose().to_owned());
            next_step(&state, jar, &headers, &client, session.as_ref(), id.expose()).await
        }
        Err(refusal) => refused(&state, jar, &headers, refusal),
    }
}

async fn resume(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Client(client): Client,
    MaybeSignedIn(session): MaybeSignedIn,
) -> Response {
    let Some(id) = cookies::get(&state, &jar, Kind::AppRequest).map(str::to_owned) else {
        return PageError(
            clinic_auth_app::Error::new(
                clinic_auth_app::ErrorKind::InvalidRequest,
                "No app is waiting for this sign-in. Go back to the app and sign in again.",
            )
            .into(),
        )
        .into_response();
    };
    next_step(&state, jar, &headers, &client, session.as_ref(), &id).await
}

async fn next_step(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    client: &clinic_auth_store::ClientInfo,
    session: Option<&clinic_auth_app::SignedIn>,
    id: &str,
) -> Response {
    match authorize::resume(state, id, session, client).await {
        Ok(Next::Redirect(url)) => {
            let jar = cookies::remove(state, jar, Kind::AppRequest);
            (jar, to_app(state, headers, &url, "You're signed in")).into_response()
        }
        Ok(Next::SignIn { realm, login_hint }) => {
            let mut to = crate::pages::sign_in_path(realm).to_owned();
            if let Some(hint) = login_hint.filter(|h| clinic_auth_core::Email::parse(h).is_ok()) {
                to =
                    format!("{to}?email={}", url::form_urlencoded::byte_serialize(hint.as_bytes()).collect::<String>());
            }
            (jar, Redirect::to(&to)).into_response()
        }
        Ok(Next::StepUp { passkey_only: true }) => {
            (jar, Redirect::to("/account/2fa/verify?next=app&method=passkey")).into_response()
        }
        Ok(Next::StepUp { passkey_only: false }) => (jar, Redirect::to("/account/2fa/verify?next=app")).into_response(),
        Ok(Next::SetUp) => (jar, Redirect::to("/account/2fa/setup")).into_response(),
        Err(refusal) => refused(state, jar, headers, refusal),
    }
}

fn refused(state: &AppState, jar: CookieJar, headers: &HeaderMap, refusal: Refusal) -> Response {
    let jar = cookies::remove(state, jar, Kind::AppRequest);
    match refusal {
        Refusal::Redirect(url) => (jar, to_app(state, headers, &url, "Back to the app")).into_response(),
        Refusal::Page(e) | Refusal::Internal(e) => (jar, PageError(e.into())).into_response(),
    }
}

#[derive(Template)]
#[template(path = "app_handoff.html")]
struct HandoffPage<'a> {
    frame: Frame<'a>,
    heading: &'a str,
    message: &'a str,
    url: &'a str,
}

/// To the app. Straight there when the app sent the browser here; after one of our
/// own forms, through a page that moves on by itself, because our pages' CSP
/// (`form-action 'self'`) stops a form's redirects at another site.
fn to_app(state: &AppState, headers: &HeaderMap, url: &str, heading: &str) -> Response {
    let from_our_pages = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin");
    if !from_our_pages {
        return Redirect::to(url).into_response();
    }
    render(&HandoffPage {
        frame: Frame::new(&state.config.platform_name, "Back to the app"),
        heading,
        message: "Taking you back to the app…",
        url,
    })
}

// ----- token, userinfo, revocation, introspection -----

/// The client's credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded), if the header is there.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res =
        (status, Json(serde_json::json!({ "error": error, "error_description": description }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"clinic-auth\""));
    }
    res
}

fn token_error(e: TokenError) -> Response {
    match e {
        TokenError::OAuth { error: "invalid_client", description } => {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
        TokenError::OAuth { error, description } => oauth_error(StatusCode::BAD_REQUEST, error, description),
        TokenError::Internal(e) => AppError::from(e).into_response(),
    }
}

/// A form body, or an OAuth `invalid_request` for anything that is not one.
struct OAuthForm<T>(T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for OAuthForm<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(v)) => Ok(OAuthForm(v)),
            Err(_) => Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send the parameters as application/x-www-form-urlencoded",
            )),
        }
    }
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    OAuthForm(form): OAuthForm<TokenForm>,
) -> Response {
    match tokens::exchange(&state, form, basic_credentials(&headers), &client).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => token_error(e),
    }
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // RFC 6750 §3.1: no token gets a bare challenge; a bad one says `invalid_token`.
    let challenge = |error: Option<&'static str>| {
        let body = match error {
            Some(e) => serde_json::json!({ "error": e }),
            None => serde_json::json!({ "error": "unauthorized" }),
        };
        let mut res = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        let value = match error {
            Some(_) => HeaderValue::from_static("Bearer error=\"invalid_token\""),
            None => HeaderValue::from_static("Bearer"),
        };
        res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        res
    };
    let Some(token) = bearer else { return challenge(None) };
    match tokens::userinfo(&state, token).await {
        Ok(Some(claims)) => Json(claims).into_response(),
        Ok(None) => challenge(Some("invalid_token")),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenParam {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn credentials<'a>(basic: &'a Option<(String, String)>, form: &'a TokenParam) -> Option<Credentials<'a>> {
    match (basic, &form.client_secret) {
        (Some(_), Some(_)) => None,
        (Some((id, secret)), None) => Some(Credentials { client_id: Some(id), client_secret: Some(secret) }),
        (None, secret) => Some(Credentials { client_id: form.client_id.as_deref(), client_secret: secret.as_deref() }),
    }
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    OAuthForm(form): OAuthForm<TokenParam>,
) -> Response {
    let basic = basic_credentials(&headers);
    let Some(creds) = credentials(&basic, &form) else {
        return token_error(TokenError::OAuth { error: "invalid_client", description: "client authentication failed" });
    };
    match tokens::revoke(&state, creds, &form.token, &client).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => token_error(e),
    }
}

async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm<TokenParam>,
) -> Response {
    let basic = basic_credentials(&headers);
    let Some(creds) = credentials(&basic, &form) else {
        return token_error(TokenError::OAuth { error: "invalid_client", description: "client authentication failed" });
    };
    match tokens::introspect(&state, creds, &form.token).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => token_error(e),
    }
}

// ----- end session -----

#[derive(Template)]
#[template(path = "app_signout.html")]
struct SignOutPage<'a> {
    frame: Frame<'a>,
    app_name: Option<String>,
    csrf: String,
    client_id: String,
    post_logout_redirect_uri: String,
    state: String,
}

async fn end_session_get(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Client(client): Client,
    MaybeSignedIn(session): MaybeSignedIn,
    Query(p): Query<EndSessionParams>,
) -> Result<Response, PageError> {
    let checked = logout::check_end_session(&state, &p, session.as_ref().map(|s| s.account.id)).await?;
    match session {
        Some(s) if !checked.confirmed => {
            // No proof the request comes from an app this member used: ask first, so
            // that a link from anywhere cannot sign the member out.
            let app_name = match &checked.client_id {
                Some(id) => state.store.get_oidc_client(id).await?.map(|c| c.name),
                None => None,
            };
            let page = SignOutPage {
                frame: Frame::new(&state.config.platform_name, "Sign out?"),
                app_name,
                csrf: s.csrf_token.clone(),
                client_id: checked.client_id.unwrap_or_default(),
                post_logout_redirect_uri: p.post_logout_redirect_uri.unwrap_or_default(),
                state: p.state.unwrap_or_default(),
            };
            Ok((jar, render(&page)).into_response())
        }
        Some(s) => {
            logout::end_session(&state, &s, checked.client_id.as_deref(), &client).await?;
            Ok(signed_out(&state, jar, &headers, checked.redirect.as_deref()))
        }
        None => Ok(signed_out(&state, jar, &headers, checked.redirect.as_deref())),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignOutForm {
    csrf: String,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    id_token_hint: Option<String>,
}

async fn end_session_post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Client(client): Client,
    MaybeSignedIn(session): MaybeSignedIn,
    Form(form): Form<SignOutForm>,
) -> Result<Response, PageError> {
    let p = EndSessionParams {
        id_token_hint: form.id_token_hint,
        client_id: form.client_id.filter(|c| !c.is_empty()),
        post_logout_redirect_uri: form.post_logout_redirect_uri.filter(|u| !u.is_empty()),
        state: form.state.filter(|s| !s.is_empty()),
    };
    let checked = logout::check_end_session(&state, &p, session.as_ref().map(|s| s.account.id)).await?;
    if let Some(s) = session {
        // Our own confirmation form carries the session's CSRF token; an app's POST
        // must carry a valid id_token_hint instead.
        if !checked.confirmed {
            csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
        }
        logout::end_session(&state, &s, checked.client_id.as_deref(), &client).await?;
    }
    Ok(signed_out(&state, jar, &headers, checked.redirect.as_deref()))
}

fn signed_out(state: &AppState, jar: CookieJar, headers: &HeaderMap, redirect: Option<&str>) -> Response {
    let jar = cookies::remove(state, jar, Kind::Session);
    match redirect {
        Some(url) => (jar, to_app(state, headers, url, "You're signed out")).into_response(),
        None => (jar, Redirect::to("/login?notice=signed_out")).into_response(),
    }
}

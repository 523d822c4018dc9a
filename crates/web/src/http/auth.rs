//! Finding the signed-in account: from the session cookie (pages) or a bearer token
//! (API). Cookies never authenticate API calls, so the API needs no CSRF defence.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::cookies::{self, Kind};
use crate::{AppError, AppState};

pub use clinic_auth_app::SignedIn;

async fn load_session(state: &AppState, presented: &str) -> Result<Option<SignedIn>, AppError> {
    Ok(clinic_auth_app::sessions::load(state, presented).await?)
}

/// The session behind the cookie, if any (pages).
#[derive(Debug, Clone)]
pub struct MaybeSignedIn(pub Option<SignedIn>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        match cookies::get(state, &jar, Kind::Session) {
            Some(token) => Ok(MaybeSignedIn(load_session(state, token).await?)),
            None => Ok(MaybeSignedIn(None)),
        }
    }
}

/// The session behind `Authorization: Bearer …` (API); 401 without one.
#[derive(Debug, Clone)]
pub struct ApiSignedIn(pub SignedIn);

impl FromRequestParts<AppState> for ApiSignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(AppError::unauthorized)?;
        load_session(state, token.trim()).await?.map(ApiSignedIn).ok_or_else(AppError::unauthorized)
    }
}

/// The session of a page that needs one; without it the browser is sent to sign in.
#[derive(Debug, Clone)]
pub struct PageSignedIn(pub SignedIn);

impl FromRequestParts<AppState> for PageSignedIn {
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        match MaybeSignedIn::from_request_parts(parts, state).await {
            Ok(MaybeSignedIn(Some(s))) => Ok(PageSignedIn(s)),
            Ok(MaybeSignedIn(None)) => Err(axum::response::Redirect::to("/login").into_response()),
            Err(e) => Err(crate::error_page::PageError(e).into_response()),
        }
    }
}

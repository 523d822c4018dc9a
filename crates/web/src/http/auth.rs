//! Finding the signed-in account: from the session cookie (pages) or a bearer token
//! (API). Cookies never authenticate API calls, so the API needs no CSRF defence.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use clinic_auth_core::permission::Actor;
use clinic_auth_core::{AccountKind, SecretToken, TokenHash};
use clinic_auth_store::Account;

use super::cookies::{self, Kind};
use crate::{AppError, AppState};

/// A live session and its account.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Account,
    pub token_hash: TokenHash,
    pub csrf_token: String,
}

impl SignedIn {
    pub fn actor(&self) -> Actor {
        actor_of(&self.account)
    }
}

pub fn actor_of(a: &Account) -> Actor {
    match (a.kind, &a.org_id, a.role) {
        (AccountKind::PlatformAdmin, _, _) => Actor::PlatformAdmin,
        (AccountKind::Member, Some(org), Some(role)) => Actor::Member { org: org.clone(), role },
        (AccountKind::Patient, Some(org), _) => Actor::Patient { org: org.clone() },
        // A member row without organization or role cannot act on anything.
        _ => Actor::Patient { org: clinic_auth_core::OrgId::from_name("none") },
    }
}

/// Looks a presented token up; an expired or idle session is deleted and ignored.
pub async fn load_session(state: &AppState, presented: &str) -> Result<Option<SignedIn>, AppError> {
    let Some(token) = SecretToken::from_presented(presented) else {
        return Ok(None);
    };
    let hash = token.hash();
    let Some(record) = state.store.get_session(&hash).await? else {
        return Ok(None);
    };
    let now = state.now();
    if !state.config.session.is_live(record.created_at, record.last_seen_at, now) {
        state.store.delete_session(&hash, None).await?;
        return Ok(None);
    }
    let Some(account) = state.store.get_account(record.account_id).await? else {
        return Ok(None);
    };
    if account.status != clinic_auth_core::AccountStatus::Active {
        state.store.delete_session(&hash, None).await?;
        return Ok(None);
    }
    state.store.touch_session(&hash, now).await?;
    Ok(Some(SignedIn { account, token_hash: hash, csrf_token: record.csrf_token }))
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
            Err(e) => Err(crate::pages::PageError(e).into_response()),
        }
    }
}

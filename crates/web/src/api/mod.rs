//! The JSON API under `/api/v1`, for integrators and scripts. It calls the same
//! services as the pages. Authentication is `Authorization: Bearer <session_token>`;
//! cookies are never accepted here, so no request can be forged cross-site.
//!
//! One module per resource, each with its router and its request and response types;
//! `openapi` gathers them into the one document.

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use clinic_auth_app::{By, Error, ErrorKind, SignedIn};
use clinic_auth_store::ClientInfo;

use crate::http::auth::ApiSignedIn;
use crate::http::client::Client;
use crate::{AppError, AppState};

mod accounts;
mod audit;
mod branding;
mod email_change;
mod me_mfa;
mod me_sessions;
mod members;
mod openapi;
mod orgs;
mod passkeys;
mod password_links;
mod passwords;
mod platform;
mod second_factor;
mod session;
mod sign_in;

pub use openapi::openapi_json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(openapi::routes())
        .merge(sign_in::routes())
        .merge(session::routes())
        .merge(me_mfa::routes())
        .merge(me_sessions::routes())
        .merge(passkeys::routes())
        .merge(orgs::routes())
        .merge(branding::routes())
        .merge(members::routes())
        .merge(accounts::routes())
        .merge(password_links::routes())
        .merge(passwords::routes())
        .merge(email_change::routes())
        .merge(audit::routes())
        .merge(platform::routes())
}

/// The signed-in caller of an operation: the session of `Authorization: Bearer …`
/// (401 `unauthorized` without one), where the request came from, and the application.
struct Caller {
    state: AppState,
    session: SignedIn,
    client: ClientInfo,
}

impl Caller {
    /// Who is acting, for the use cases' permission checks and audit events.
    fn by(&self) -> By {
        By::signed_in(&self.session, self.client.clone())
    }

    /// The step-up gate (`factors::require_recent_proof`), with the API's own hint.
    async fn require_step_up(&self) -> Result<(), AppError> {
        clinic_auth_app::factors::require_recent_proof(&self.state, self.session.account.id, &self.session.token_hash)
            .await
            .map_err(step_up_hint)
    }

    /// The gates in front of setting up a factor (`factors::require_setup_allowed`).
    async fn require_setup_allowed(&self) -> Result<(), AppError> {
        clinic_auth_app::factors::require_setup_allowed(&self.state, &self.session).await.map_err(step_up_hint)
    }
}

/// A missing step-up, told the API way: where to prove the factor.
fn step_up_hint(e: clinic_auth_app::Error) -> AppError {
    if e.is(clinic_auth_app::ErrorKind::StepUpRequired) {
        e.with_message("Confirm it's you first: POST a current code to /api/v1/me/mfa/verify.").into()
    } else {
        e.into()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ApiSignedIn(session) = ApiSignedIn::from_request_parts(parts, state).await?;
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        Ok(Caller { state: state.clone(), session, client })
    }
}

/// An enum field of a request body, which arrives as a string: a value the API does not
/// know is answered with `kind`'s stable code (`invalid_role`, `method_unavailable`, …),
/// not with the `invalid_request` of a malformed body.
fn parse_enum<T: std::str::FromStr<Err = clinic_auth_core::account::ParseEnumError>>(
    s: &str,
    kind: ErrorKind,
) -> Result<T, Error> {
    s.parse::<T>().map_err(|e| Error::new(kind, format!("{}.", e)))
}

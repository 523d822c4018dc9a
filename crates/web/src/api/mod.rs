//! The JSON API under `/api/v1`, for integrators and scripts. It calls the same
//! services as the pages. Authentication is `Authorization: Bearer <session_token>`;
//! cookies are never accepted here, so no request can be forged cross-site.
//!
//! One module per resource, each with its router and its request and response types;
//! `openapi` gathers them into the one document.

use axum::Router;
use clinic_auth_app::{By, Error, ErrorKind};

use crate::AppState;
use crate::http::auth::ApiSignedIn;
use crate::http::client::Client;

mod accounts;
mod audit;
mod me_mfa;
mod members;
mod openapi;
mod orgs;
mod passkeys;
mod password_links;
mod platform;
mod session;
mod sign_in;

pub use openapi::openapi_json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(openapi::routes())
        .merge(sign_in::routes())
        .merge(session::routes())
        .merge(me_mfa::routes())
        .merge(passkeys::routes())
        .merge(orgs::routes())
        .merge(members::routes())
        .merge(accounts::routes())
        .merge(password_links::routes())
        .merge(audit::routes())
        .merge(platform::routes())
}

/// Who is acting: the bearer token's session, from where.
fn by(s: &ApiSignedIn, client: Client) -> By {
    By::signed_in(&s.0, client.0)
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

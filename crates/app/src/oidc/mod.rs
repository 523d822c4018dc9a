//! clinic-auth as an OpenID Connect provider: clinic apps (the EHR, scheduling,
//! billing, the patient portal) sign members in through the same sign-in pages, and
//! learn from the ID token what the sign-in proved.
//!
//! - `clients`: apps registered by the platform.
//! - `authorize`: the authorization endpoint, from the app's request through the
//!   sign-in (or the browser's existing session, or a step-up) to a code.
//! - `tokens`: the token endpoint, userinfo, revocation, introspection.
//! - `logout`: RP-initiated and back-channel logout.
//! - `keys`: the signing keys and the JWKS.
//!
//! The rules (what `acr`/`amr` a session earns, when it must sign in again or step
//! up, PKCE, URIs) are pure functions in `clinic_auth_core::oidc`.

pub mod authorize;
pub mod clients;
pub mod keys;
pub mod logout;
pub mod tokens;

use clinic_auth_core::oidc::{Acr, SUPPORTED_SCOPES};
use serde::Serialize;

use crate::App;

/// The issuer: the public URL without its trailing slash, exactly as in discovery.
pub fn issuer(state: &App) -> String {
    state.config.public_url.as_str().trim_end_matches('/').to_owned()
}

/// The endpoint paths (under the issuer).
pub mod paths {
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    pub const AUTHORIZE: &str = "/oauth2/authorize";
    pub const RESUME: &str = "/oauth2/authorize/resume";
    pub const TOKEN: &str = "/oauth2/token";
    pub const USERINFO: &str = "/oauth2/userinfo";
    pub const JWKS: &str = "/oauth2/jwks";
    pub const REVOKE: &str = "/oauth2/revoke";
    pub const INTROSPECT: &str = "/oauth2/introspect";
    pub const END_SESSION: &str = "/oauth2/logout";
}

/// The discovery document (OpenID Connect Discovery 1.0, with RFC 8414's fields).
#[derive(Debug, Serialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: [&'static str; 1],
    pub response_modes_supported: [&'static str; 1],
    pub grant_types_supported: [&'static str; 2],
    pub subject_types_supported: [&'static str; 1],
    pub id_token_signing_alg_values_supported: [&'static str; 2],
    pub token_endpoint_auth_methods_supported: [&'static str; 3],
    pub revocation_endpoint_auth_methods_supported: [&'static str; 3],
    pub introspection_endpoint_auth_methods_supported: [&'static str; 2],
    pub code_challenge_methods_supported: [&'static str; 1],
    pub acr_values_supported: Vec<&'static str>,
    pub prompt_values_supported: [&'static str; 4],
    pub claims_supported: Vec<&'static str>,
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub authorization_response_iss_parameter_supported: bool,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
}

pub fn discovery(state: &App) -> Discovery {
    let iss = issuer(state);
    let at = |p: &str| format!("{iss}{p}");
    Discovery {
        authorization_endpoint: at(paths::AUTHORIZE),
        token_endpoint: at(paths::TOKEN),
        userinfo_endpoint: at(paths::USERINFO),
        jwks_uri: at(paths::JWKS),
        end_session_endpoint: at(paths::END_SESSION),
        revocation_endpoint: at(paths::REVOKE),
        introspection_endpoint: at(paths::INTROSPECT),
        issuer: iss,
        scopes_supported: SUPPORTED_SCOPES.to_vec(),
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        grant_types_supported: ["authorization_code", "refresh_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256", "ES256"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "none"],
        revocation_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "none"],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported: ["S256"],
        acr_values_supported: Acr::ALL.iter().map(|a| a.as_str()).collect(),
        prompt_values_supported: ["none", "login", "consent", "select_account"],
        claims_supported: vec![
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "acr",
            "amr",
            "azp",
            "email",
            "email_verified",
            "org_id",
            "org_name",
            "role",
            "account_kind",
            "realm",
        ],
        claims_parameter_supported: false,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        authorization_response_iss_parameter_supported: true,
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
    }
}

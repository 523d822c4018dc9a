//! Our cookies. With `Secure` they take the `__Host-` prefix, which pins them to this
//! host and path `/`; on plain-HTTP localhost they keep a plain name.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::AppState;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The signed-in session's token.
    Session,
    /// The sign-in in progress.
    Flow,
    /// The anti-forgery token for forms shown before sign-in.
    Csrf,
    /// Device hints for the passkeys made in this browser. They only make the passkey
    /// the default method at sign-in; they prove nothing by themselves.
    Device,
    /// An app's authorization request waiting for this browser's sign-in.
    AppRequest,
}

pub fn name(state: &AppState, kind: Kind) -> &'static str {
    match (state.config.secure_cookies(), kind) {
        (true, Kind::Session) => "__Host-clinic_auth_session",
        (true, Kind::Flow) => "__Host-clinic_auth_flow",
        (true, Kind::Csrf) => "__Host-clinic_auth_csrf",
        (false, Kind::Session) => "clinic_auth_session",
        (false, Kind::Flow) => "clinic_auth_flow",
        (false, Kind::Csrf) => "clinic_auth_csrf",
        (true, Kind::Device) => "__Host-clinic_auth_device",
        (false, Kind::Device) => "clinic_auth_device",
        (true, Kind::AppRequest) => "__Host-clinic_auth_app_request",
        (false, Kind::AppRequest) => "clinic_auth_app_request",
    }
}

pub fn get<'a>(state: &AppState, jar: &'a CookieJar, kind: Kind) -> Option<&'a str> {
    jar.get(name(state, kind)).map(|c| c.value())
}

pub fn set(state: &AppState, jar: CookieJar, kind: Kind, value: String) -> CookieJar {
    let same_site = match kind {
        // Strict would drop the session on every link into the app from mail or
        // another site; forms are protected by CSRF tokens instead.
        // The app request is set when an app's link brings the browser here.
        Kind::Session | Kind::Flow | Kind::AppRequest => SameSite::Lax,
        Kind::Csrf | Kind::Device => SameSite::Strict,
    };
    let mut cookie = Cookie::build((name(state, kind), value))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(same_site)
        .build();
    if let Kind::Device = kind {
        // Outlives sessions: the browser stays trusted until the passkey is removed.
        cookie.set_max_age(time::Duration::days(400));
    }
    if let Kind::AppRequest = kind {
        cookie.set_max_age(time::Duration::seconds(clinic_auth_core::oidc::REQUEST_TTL_SECS));
    }
    jar.add(cookie)
}

/// The device hints this browser carries.
pub fn device_hints(state: &AppState, jar: &CookieJar) -> Vec<String> {
    get(state, jar, Kind::Device).map(clinic_auth_core::passkey::parse_device_hints).unwrap_or_default()
}

/// Adds a passkey's hint to this browser's list.
pub fn remember_device(state: &AppState, jar: CookieJar, hint: &str) -> CookieJar {
    let existing = device_hints(state, &jar);
    let value = clinic_auth_core::passkey::remember_device_hint(&existing, hint);
    set(state, jar, Kind::Device, value)
}

pub fn remove(state: &AppState, jar: CookieJar, kind: Kind) -> CookieJar {
    jar.remove(Cookie::build(name(state, kind)).path("/").secure(state.config.secure_cookies()))
}

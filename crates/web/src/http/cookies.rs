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
}

pub fn name(state: &AppState, kind: Kind) -> &'static str {
    match (state.config.secure_cookies(), kind) {
        (true, Kind::Session) => "__Host-clinic_auth_session",
        (true, Kind::Flow) => "__Host-clinic_auth_flow",
        (true, Kind::Csrf) => "__Host-clinic_auth_csrf",
        (false, Kind::Session) => "clinic_auth_session",
        (false, Kind::Flow) => "clinic_auth_flow",
        (false, Kind::Csrf) => "clinic_auth_csrf",
    }
}

pub fn get<'a>(state: &AppState, jar: &'a CookieJar, kind: Kind) -> Option<&'a str> {
    jar.get(name(state, kind)).map(|c| c.value())
}

pub fn set(state: &AppState, jar: CookieJar, kind: Kind, value: String) -> CookieJar {
    let same_site = match kind {
        // Strict would drop the session on every link into the app from mail or
        // another site; forms are protected by CSRF tokens instead.
        Kind::Session | Kind::Flow => SameSite::Lax,
        Kind::Csrf => SameSite::Strict,
    };
    let cookie = Cookie::build((name(state, kind), value))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(same_site)
        .build();
    jar.add(cookie)
}

pub fn remove(state: &AppState, jar: CookieJar, kind: Kind) -> CookieJar {
    jar.remove(Cookie::build(name(state, kind)).path("/").secure(state.config.secure_cookies()))
}

//! The HTML pages, one module per screen family. Handlers extract, call one use case
//! in `clinic_auth_app`, and render. The staff and patient sign-in pages are one set
//! of handlers, served at each realm's addresses ([`RealmPages`]).

mod account;
mod admin;
mod apps;
mod audit;
mod branding;
mod email_change;
mod links;
mod member;
mod passwords;
mod platform;
mod setup;
mod sign_in;
mod site;
mod step_up;
mod trust_device;
mod views;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum_extra::extract::CookieJar;
use clinic_auth_core::Realm;
use serde::Deserialize;

use crate::html::Frame;
use crate::http::auth::PageSignedIn;
use crate::http::client::Client;
use crate::{AppError, AppState};

/// Every page, for both realms.
pub fn routes() -> Router<AppState> {
    let realms = [STAFF, PATIENT].into_iter().fold(Router::new(), |router, p| {
        router.merge(sign_in::routes_for(p)).merge(setup::routes_for(p)).merge(passwords::routes_for(p))
    });
    realms
        .merge(site::routes())
        .merge(sign_in::routes())
        .merge(setup::routes())
        .merge(step_up::routes())
        .merge(account::routes())
        .merge(passwords::routes())
        .merge(email_change::routes())
        .merge(trust_device::routes())
        .merge(links::routes())
        .merge(admin::routes())
        .merge(branding::routes())
        .merge(member::routes())
        .merge(audit::routes())
        .merge(platform::routes())
        .merge(apps::routes())
}

/// Where one realm's sign-in pages live, and what they are called.
#[derive(Debug, Clone, Copy)]
struct RealmPages {
    realm: Realm,
    base: &'static str,
    password: &'static str,
    heading: &'static str,
    verify: &'static str,
    methods: &'static str,
    resend: &'static str,
    setup: &'static str,
    /// "Forgot your password?"
    forgot: &'static str,
}

const STAFF: RealmPages = RealmPages {
    realm: Realm::Staff,
    base: "/login",
    password: "/login/password",
    heading: "Sign in",
    verify: "/login/verify",
    methods: "/login/methods",
    resend: "/login/resend",
    setup: "/login/setup",
    forgot: "/login/forgot-password",
};
const PATIENT: RealmPages = RealmPages {
    realm: Realm::Patient,
    base: "/portal/login",
    password: "/portal/login/password",
    heading: "Patient portal sign-in",
    verify: "/portal/login/verify",
    methods: "/portal/login/methods",
    resend: "/portal/login/resend",
    setup: "/portal/login/setup",
    forgot: "/portal/login/forgot-password",
};

/// The first sign-in page of a realm.
pub(crate) fn sign_in_path(realm: Realm) -> &'static str {
    pages_for(realm).base
}

fn pages_for(realm: Realm) -> RealmPages {
    match realm {
        Realm::Staff => STAFF,
        Realm::Patient => PATIENT,
    }
}

/// A request from a signed-in browser: the application, the browser's cookies, where
/// it comes from, and its session. Without a session the browser is sent to sign in.
#[derive(FromRequestParts)]
#[from_request(state(AppState))]
struct Visit {
    #[from_request(via(State))]
    state: AppState,
    jar: CookieJar,
    client: Client,
    session: PageSignedIn,
}

/// Fixed texts for `?notice=…` on the sign-in and account pages; nothing from the
/// query string is echoed.
fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "signed_out" => Some("You have been signed out."),
        "password_set" => Some("Your password is set. Sign in to continue."),
        "flow_expired" => Some("Your sign-in took too long. Please start again."),
        "session_ended" => Some("Your session ended. Please sign in again."),
        "mfa_on" => Some("Two-factor authentication is on."),
        "mfa_off" => Some("Two-factor authentication is off."),
        "verified" => Some("Thanks — you can change your two-factor settings for the next 10 minutes."),
        "device_trusted" => Some("This device is trusted. Next time, sign in with its passkey."),
        "passkey_renamed" => Some("The device was renamed."),
        "passkey_removed" => Some("The passkey was removed. That device is no longer trusted."),
        "session_signed_out" => Some("That session was signed out."),
        "other_sessions_ended" => Some("You signed out of all other sessions. This one stays signed in."),
        "password_changed" => Some("Your password is changed. Your other sessions were signed out."),
        "email_change_sent" => Some(
            "We sent a link to your new address. Your sign-in email changes when you open it and confirm; until then, \
             sign in as before.",
        ),
        "email_change_cancelled" => Some("The email change is cancelled. Its link no longer works."),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
    /// The sign-in page's email, filled in from an app's `login_hint`.
    email: Option<String>,
    /// The clinic a sign-in page is for (`/login?org=ID`): its branding.
    org: Option<String>,
}

/// A form that carries nothing but its anti-forgery token.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// A code typed in, or a passkey's answer.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeForm {
    csrf: String,
    code: String,
    next: String,
    /// A passkey's answer (JSON), posted by passkey.js.
    credential: String,
}

/// A second-factor method picked from a list.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MethodForm {
    csrf: String,
    method: String,
}

/// A page's frame: its title, under this server's name.
fn frame<'a>(state: &'a AppState, title: &'a str) -> Frame<'a> {
    Frame::new(&state.config.platform_name, title)
}

/// WebAuthn options as the page's data attribute carries them.
fn options_json<T: serde::Serialize>(options: &T) -> Result<String, AppError> {
    serde_json::to_string(options).map_err(|e| AppError::internal(format!("passkey options: {e}")))
}

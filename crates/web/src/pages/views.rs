//! Pages that more than one family shows: the second-factor check (at sign-in and
//! as a step-up) and the recovery code.

use askama::Template;
use axum::response::Response;
use clinic_auth_core::RecoveryCode;

use super::frame;
use crate::AppState;
use crate::html::{Frame, render};

/// "Verify it's you" at sign-in, "Confirm it's you" before changing 2FA.
#[derive(Template)]
#[template(path = "verify.html")]
pub(super) struct VerifyPage<'a> {
    pub(super) frame: Frame<'a>,
    pub(super) heading: &'a str,
    pub(super) action: &'a str,
    pub(super) method: &'a str,
    pub(super) next: Option<&'a str>,
    pub(super) others_url: Option<String>,
    pub(super) sent_to: Option<String>,
    pub(super) resend_action: Option<String>,
    pub(super) resend_in: i64,
    /// WebAuthn request options (JSON) when the method is a passkey.
    pub(super) passkey_options: String,
    pub(super) csrf: String,
}

#[derive(Template)]
#[template(path = "recovery_code.html")]
struct RecoveryCodePage<'a> {
    frame: Frame<'a>,
    intro: &'a str,
    code: String,
    next: &'a str,
}

/// Why a recovery code is being shown.
#[derive(Clone, Copy)]
pub(super) enum Shown {
    /// Setup just finished (at sign-in or from the account page).
    FirstCode,
    /// The old code was just used or replaced.
    Replacement,
}

/// The recovery code, shown once, with the way on (`next`), in the look of the
/// member's clinic (`look`).
pub(super) fn recovery_code_page(
    state: &AppState,
    code: &RecoveryCode,
    next: &str,
    why: Shown,
    look: Option<clinic_auth_app::branding::Look>,
) -> Response {
    let intro = match why {
        Shown::FirstCode => "Two-factor authentication is set up. Here is your recovery code.",
        Shown::Replacement => {
            "Your previous recovery code has been used up or replaced and no longer works. Here is your new one."
        }
    };
    let frame = frame(state, "Save your recovery code").brand(look);
    render(&RecoveryCodePage { frame, intro, code: code.display(), next })
}

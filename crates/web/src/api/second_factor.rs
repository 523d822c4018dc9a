//! What setting up and answering a second factor exchanges, the same during a
//! sign-in's enrollment (`/api/v1/login/{flow_id}/enroll/…`) and in the account's own
//! 2FA (`/api/v1/me/mfa/…`): a code, a phone number, an authenticator's secret, where a
//! code went.

use clinic_auth_app::{codes, factors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct SubmitCode {
    /// A 6-digit code (spaces and dashes are ignored) or the recovery code
    pub(super) code: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuthenticatorSetupView {
    /// The otpauth:// URI (Google Key Uri Format) that the QR code holds. Secret.
    otpauth_uri: String,
    /// The key for typing into the app by hand, in groups of four. Secret.
    setup_key: String,
    /// The QR code of `otpauth_uri`, as SVG.
    qr_svg: String,
    issuer: String,
}

impl From<factors::AuthenticatorSetup> for AuthenticatorSetupView {
    fn from(s: factors::AuthenticatorSetup) -> Self {
        AuthenticatorSetupView { otpauth_uri: s.uri, setup_key: s.setup_key, qr_svg: s.qr_svg, issuer: s.issuer }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SentView {
    /// Where the code went (masked).
    sent_to: String,
    /// Seconds until a resend is possible.
    resend_in: i64,
}

impl From<codes::SentTo> for SentView {
    fn from(s: codes::SentTo) -> Self {
        SentView { sent_to: s.masked, resend_in: s.resend_in }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EnrollPhone {
    /// A US mobile number in any usual form, e.g. "(555) 123-4567"
    pub(super) phone: String,
}

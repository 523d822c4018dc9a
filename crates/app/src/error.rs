//! What went wrong, in the domain's words. Every use case answers with an `Error` whose
//! `kind` says what happened and whose `message` a person can act on. The surfaces
//! decide how to show it: the web crate's `error.rs` is the one table from a kind to an
//! HTTP status and a stable JSON code. Store and internal failures are logged in full
//! here and carry only a generic message.

use clinic_auth_store::StoreError;

/// What went wrong. Surfaces match on this, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    // The request itself.
    InvalidRequest,
    InvalidEmail,
    InvalidPhone,
    InvalidCode,
    InvalidName,
    InvalidRole,
    InvalidRealm,
    InvalidKind,
    InvalidStatus,
    InvalidOverride,
    InvalidPolicy,
    /// A display name or accent colour that cannot be used.
    InvalidBranding,
    /// An uploaded logo that is not a small PNG, JPEG or WebP image.
    InvalidLogo,
    LogoTooLarge,
    InvalidOrgId,
    InvalidNote,
    InvalidDate,
    InvalidFormat,
    InvalidPasskeyResponse,
    WeakPassword,
    PasswordMismatch,
    NothingToChange,
    IdentityNoteRequired,
    NotAMember,
    UsePlatformConsole,
    ExportTooLarge,
    // Who is asking.
    Unauthorized,
    Forbidden,
    NotOnYourself,
    OwnerProtected,
    PasswordNotAllowed,
    /// A second factor must be proved (again) before this change.
    StepUpRequired,
    MfaRequired,
    // Signing in.
    IncorrectCredentials,
    AccountDeactivated,
    /// The sign-in is over (timed out, or too many wrong answers): start again.
    FlowExpired,
    TooManyAttempts,
    // Second factors.
    MethodUnavailable,
    /// The member's organization has not turned two-factor authentication on.
    MfaNotAvailable,
    /// Two-factor authentication is off for this account.
    MfaOff,
    /// A policy change needs the organization's MFA to be on first.
    OrgMfaOff,
    IncorrectCode,
    CodeAlreadyUsed,
    CodeAttemptsExhausted,
    CodeExpired,
    SetupExpired,
    FactorLocked,
    ResendTooSoon,
    TooManyCodesSent,
    TooManyResends,
    /// A reminder to set up 2FA went to this member within the last day.
    ReminderTooSoon,
    /// The member has two-factor authentication set up, or it does not apply to them.
    ReminderNotNeeded,
    /// The email or text message could not be handed to the provider.
    DeliveryFailed,
    // Passkeys.
    PasskeysUnavailable,
    PasskeyNotStarted,
    PasskeyExpired,
    /// A passkey's answer to a sign-in or step-up did not verify.
    PasskeyRejected,
    /// A new passkey's registration did not verify.
    PasskeyRegistrationRejected,
    PasskeyCloneWarning,
    PasskeyAlreadyRegistered,
    PasskeyNotAllowed,
    TooManyPasskeys,
    // Links and records.
    LinkExpired,
    NotFound,
    Conflict,
    EmailTaken,
    AlreadyActive,
    /// The account is deactivated: reactivate it before acting on it.
    ReactivateFirst,
    /// The session asking cannot end itself from its list of sessions: sign out.
    CurrentSession,
    /// Something failed on our side; the detail is in the log.
    Internal,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// For people; may change between versions.
    pub message: String,
    /// Seconds until trying again can succeed.
    pub retry_after: Option<i64>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), retry_after: None }
    }

    pub fn not_found(what: &str) -> Error {
        Error::new(ErrorKind::NotFound, format!("{what} was not found."))
    }

    pub fn unauthorized() -> Error {
        Error::new(ErrorKind::Unauthorized, "Sign in first.")
    }

    pub fn forbidden() -> Error {
        Error::new(ErrorKind::Forbidden, "You are not allowed to do that.")
    }

    pub fn flow_expired() -> Error {
        Error::new(ErrorKind::FlowExpired, "Your sign-in took too long. Please start again.")
    }

    pub fn incorrect_credentials() -> Error {
        Error::new(ErrorKind::IncorrectCredentials, "Email or password is incorrect.")
    }

    pub fn invalid_email() -> Error {
        Error::new(ErrorKind::InvalidEmail, "Enter a valid email address, like name@clinic.org.")
    }

    pub fn too_many_attempts(retry_after: i64) -> Error {
        let wait = clinic_auth_core::throttle::describe_wait(retry_after);
        Error::new(
            ErrorKind::TooManyAttempts,
            format!("Too many failed attempts. For your security, try again in {wait}."),
        )
        .with_retry_after(retry_after)
    }

    /// Something went wrong on our side. The detail goes to the log, not the person.
    pub fn internal(detail: impl std::fmt::Display) -> Error {
        tracing::error!(detail = %detail, "internal error");
        Error::new(
            ErrorKind::Internal,
            "Something went wrong on our side. Please try again; if it keeps happening, contact support.",
        )
    }

    pub fn with_retry_after(mut self, secs: i64) -> Error {
        self.retry_after = Some(secs);
        self
    }

    /// The same error, told differently.
    pub fn with_message(mut self, message: impl Into<String>) -> Error {
        self.message = message.into();
        self
    }

    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// Our fault rather than the request's: worth a retry, never worth showing detail.
    pub fn is_internal(&self) -> bool {
        self.kind == ErrorKind::Internal
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                Error::new(ErrorKind::Conflict, format!("{} already exists.", capitalize(what)))
            }
            StoreError::MissingReference(what) => Error::not_found(&capitalize(what)),
            other => Error::internal(other),
        }
    }
}

pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

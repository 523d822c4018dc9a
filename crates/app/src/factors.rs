//! Second factors: what the policy asks of an account, setting up an authenticator
//! app, checking codes and recovery codes, and turning 2FA off. Shared by the sign-in
//! flow, the account pages and the API.

use clinic_auth_core::totp::{self, Issuer, TotpRejection};
use clinic_auth_core::{
    AccountId, AnswerError, FactorAnswer, FactorKind, MethodSet, OneTimeCode, Purpose, RecoveryCode, TokenHash,
    TotpCode, TotpSecret, UsPhone,
};
use clinic_auth_store::{Account, ClientInfo, NewFactor, PendingFactor};

use super::codes::{self, Checked, SentTo};
use super::{Within, audit_event, notices, on_own_account};
use crate::{App, Error, ErrorKind};
use clinic_auth_core::audit::Event;
use clinic_auth_notify::SecurityNotice;

pub use crate::attempts::factor_locked;
use crate::attempts::{count_failure, proved, reserve_attempt};
pub use crate::mfa_state::{MfaState, load, method_label};
use crate::mfa_state::{sealing_context, uuid_like};
/// How long a shown QR code stays good for confirming.
const PENDING_SECS: i64 = 15 * 60;

/// What an authenticator app needs: the otpauth URI as a QR code, and the key for
/// typing in by hand ("Trouble scanning?").
#[derive(Debug, Clone)]
pub struct AuthenticatorSetup {
    pub uri: String,
    pub setup_key: String,
    pub qr_svg: String,
    pub issuer: String,
}

fn qr_svg(uri: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| Error::internal(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// Starts (or, while the previous QR code is still good, resumes) setting up an
/// authenticator app, so that reloading the page does not void a code already scanned.
/// Only the sign-in or session that was shown a secret resumes it.
pub async fn begin_authenticator(
    state: &App,
    account: &Account,
    within: Within<'_>,
) -> Result<AuthenticatorSetup, Error> {
    let mfa = load(state, account).await?;
    let now = state.now();
    let context = sealing_context(account, FactorKind::Authenticator);
    let existing = state.store.get_pending_factor(account.id, FactorKind::Authenticator).await?;
    let resumable = |p: &PendingFactor| now.secs_until(p.expires_at) > 60 && p.bound_to == within.binding();
    let secret = match existing.filter(resumable) {
        Some(p) => TotpSecret::from_bytes(state.sealer.open(&p.secret, &context)?.to_vec())
            .map_err(|e| Error::internal(format!("pending secret: {e}")))?,
        None => {
            let secret = TotpSecret::generate();
            let sealed = state.sealer.seal(secret.as_bytes(), &context)?;
            let pending = PendingFactor {
                account_id: account.id,
                kind: FactorKind::Authenticator,
                secret: sealed,
                created_at: now,
                expires_at: now.plus_secs(PENDING_SECS),
                bound_to: within.binding().to_owned(),
            };
            state.store.put_pending_factor(&pending).await?;
            secret
        }
    };
    let issuer = Issuer::from_name(mfa.org.as_ref().map(|o| o.name.as_str()).unwrap_or(&state.config.platform_name));
    let uri = totp::otpauth_uri(&issuer, &account.email, &secret);
    Ok(AuthenticatorSetup {
        qr_svg: qr_svg(&uri)?,
        uri,
        setup_key: secret.grouped(),
        issuer: issuer.as_str().to_owned(),
    })
}

/// An answer refused for its shape, before any check.
fn refused_answer(e: AnswerError) -> Error {
    match e {
        AnswerError::Passkey => Error::new(ErrorKind::MethodUnavailable, e.to_string()),
        other => Error::new(ErrorKind::InvalidCode, other.to_string()),
    }
}

pub fn invalid_code() -> Error {
    Error::new(ErrorKind::InvalidCode, "Enter the 6-digit code from your authenticator app.")
}

fn wrong_code() -> Error {
    Error::new(
        ErrorKind::IncorrectCode,
        "That code didn't work. Check the code in your authenticator app and try again.",
    )
}

pub(crate) fn replayed_code() -> Error {
    Error::new(
        ErrorKind::CodeAlreadyUsed,
        "That code was already used. Wait for your authenticator app to show a new code.",
    )
}

/// Confirms an authenticator app with its first correct code. The first factor also
/// brings the account's recovery code, returned to be shown once.
pub async fn confirm_authenticator(
    state: &App,
    account: &Account,
    input: &str,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<Option<RecoveryCode>, Error> {
    let code = TotpCode::parse(input).map_err(|_| invalid_code())?;
    let now = state.now();
    let pending = state
        .store
        .get_pending_factor(account.id, FactorKind::Authenticator)
        .await?
        .filter(|p| now < p.expires_at && p.bound_to == within.binding())
        .ok_or_else(|| {
            Error::new(ErrorKind::SetupExpired, "This setup timed out. Scan the new QR code and try again.")
        })?;
    let secret = TotpSecret::from_bytes(
        state.sealer.open(&pending.secret, &sealing_context(account, FactorKind::Authenticator))?.to_vec(),
    )
    .map_err(|e| Error::internal(format!("pending secret: {e}")))?;
    reserve_attempt(state, account, FactorKind::Authenticator, client).await?;
    let step = match totp::verify(&secret, &code, now, None) {
        Ok(step) => step,
        Err(_) => {
            count_failure(state, account, FactorKind::Authenticator, "wrong_code", Purpose::Enroll, client).await?;
            return Err(wrong_code());
        }
    };
    let factor = NewFactor {
        id: uuid_like(),
        account_id: account.id,
        kind: FactorKind::Authenticator,
        label: "Authenticator app".to_owned(),
        secret: Some(pending.secret.clone()),
        last_used_step: Some(step),
        now,
        target: None,
    };
    enroll(state, account, factor, within, client).await
}

/// The one enroll path, for every kind of factor confirmed from a sign-in or a
/// session: the factor is stored with the account's first recovery code (when it has
/// none), audited as enrolled or replaced in the same transaction, the member's lockout
/// starts over and they are told. The recovery code is returned to be shown once.
async fn enroll(
    state: &App,
    account: &Account,
    factor: NewFactor,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<Option<RecoveryCode>, Error> {
    let mfa = load(state, account).await?;
    let replacing = mfa.factor(factor.kind).is_some();
    let recovery = (!mfa.has_recovery_code).then(RecoveryCode::generate);
    let enrolled =
        Event::FactorEnrolled { method: factor.kind, recovery_code_issued: recovery.is_some(), replaced: replacing };
    let mut event = on_own_account(audit_event(state, enrolled, client), account);
    event.via = within.via();
    state.store.enroll_factor(&factor, recovery.as_ref().map(|r| r.hash()).as_deref(), &event).await?;
    proved(state, account).await?;
    // Confirming a new factor from a session proves it there, like a step-up.
    if let Within::Session(session) = within {
        mark_proved(state, session, factor.kind).await?;
    }
    notices::send(state, account, SecurityNotice::FactorAdded { method: method_label(factor.kind).to_owned() }).await;
    Ok(recovery)
}

/// What proving a factor did.
#[derive(Debug)]
pub enum Proof {
    Authenticator,
    /// An emailed or texted code.
    Code,
    /// The recovery code was used up; this is its replacement, to be shown once.
    RecoveryCode(RecoveryCode),
    /// A passkey's signature.
    Passkey,
}

/// The answer to "confirm it's you" before a change to the account.
#[derive(Debug, Clone, Copy)]
pub enum StepUpAnswer<'a> {
    /// A typed code for `method` (authenticator, email, sms or recovery code).
    Code { method: FactorKind, code: &'a str },
    /// A passkey's answer (WebAuthn JSON) to the session's step-up options.
    Passkey { credential: &'a str },
}

/// Proves a second factor again within a session; for the next 10 minutes the
/// session may change 2FA settings and act on its own account. Pages and API share it.
pub async fn step_up(
    state: &App,
    account: &Account,
    session: &clinic_auth_core::TokenHash,
    answer: StepUpAnswer<'_>,
    client: &ClientInfo,
) -> Result<Proof, Error> {
    let (proof, kind) = match answer {
        StepUpAnswer::Code { method, code } => {
            (verify_factor(state, account, method, code, Within::Session(session), client).await?, method)
        }
        StepUpAnswer::Passkey { credential } => {
            let bound = super::passkeys::Bound::StepUp(session);
            super::passkeys::finish_authentication(state, account, bound, credential, Purpose::StepUp, client).await?;
            (Proof::Passkey, FactorKind::Passkey)
        }
    };
    mark_proved(state, session, kind).await?;
    Ok(proof)
}

/// Records in the session that `kind` was just proved: the step-up window starts
/// again, and apps are told the session now has a second factor (`amr`, `acr`).
async fn mark_proved(state: &App, session: &clinic_auth_core::TokenHash, kind: FactorKind) -> Result<(), Error> {
    let before = state.store.get_session(session).await?.map(|r| r.proved).unwrap_or_default();
    let proved = clinic_auth_core::oidc::Proved::parse(&before).with(clinic_auth_core::oidc::ProofMethod::Factor(kind));
    state.store.mark_session_verified(session, state.now(), &proved.to_stored()).await?;
    Ok(())
}

/// Checks a second factor for `account`. Wrong and replayed codes count against the
/// account's lockout; a malformed code does not (it cannot be a guess).
pub async fn verify_factor(
    state: &App,
    account: &Account,
    method: FactorKind,
    input: &str,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<Proof, Error> {
    let purpose = within.purpose();
    // A malformed answer is refused before anything is counted: it cannot be a guess.
    let answer = FactorAnswer::parse(method, input).map_err(refused_answer)?;
    if let FactorAnswer::Sent { channel, .. } = &answer {
        codes::ensure_pending(state, account, *channel, purpose, within).await?;
    }
    reserve_attempt(state, account, method, client).await?;
    let now = state.now();
    let proved_event = Event::SecondFactorProved { method, purpose, passkey_id: None };
    let event = on_own_account(audit_event(state, proved_event, client), account);
    let proof = match &answer {
        FactorAnswer::Authenticator(code) => {
            let factor = state
                .store
                .list_factors(account.id)
                .await?
                .into_iter()
                .find(|f| f.kind == FactorKind::Authenticator)
                .ok_or_else(|| {
                    Error::new(ErrorKind::MethodUnavailable, "No authenticator app is set up for this account.")
                })?;
            let secret = open_authenticator(state, account, &factor)?;
            match totp::verify(&secret, code, now, factor.last_used_step) {
                Ok(step) if state.store.use_totp_step(&factor.id, step, now, &event).await? => Proof::Authenticator,
                Ok(_) | Err(TotpRejection::Replayed) => {
                    count_failure(state, account, method, "replayed_code", purpose, client).await?;
                    return Err(replayed_code());
                }
                Err(TotpRejection::Wrong) => {
                    count_failure(state, account, method, "wrong_code", purpose, client).await?;
                    return Err(wrong_code());
                }
            }
        }
        FactorAnswer::Recovery(code) => {
            let stored = state.store.recovery_code_hash(account.id).await?;
            let fresh = RecoveryCode::generate();
            let event = on_own_account(audit_event(state, Event::RecoveryCodeUsed { purpose }, client), account);
            let accepted = match stored {
                Some(hash) if code.matches(&hash) => {
                    state.store.replace_recovery_code(account.id, Some(&hash), &fresh.hash(), now, &event).await?
                }
                _ => false,
            };
            if !accepted {
                count_failure(state, account, method, "wrong_code", purpose, client).await?;
                return Err(wrong_recovery_code());
            }
            notices::send(state, account, SecurityNotice::RecoveryCodeUsed).await;
            Proof::RecoveryCode(fresh)
        }
        FactorAnswer::Sent { channel, code } => {
            match codes::check(state, account, *channel, code, purpose, within, Some(&event)).await? {
                Checked::Accepted { .. } => Proof::Code,
                Checked::Refused { error, reason } => {
                    count_failure(state, account, method, reason, purpose, client).await?;
                    return Err(error);
                }
            }
        }
    };
    proved(state, account).await?;
    Ok(proof)
}

/// What an answer to a sign-in's second factor comes to, judged against what was
/// read with the sign-in; nothing is written until the caller's one transaction.
#[derive(Debug)]
pub(crate) enum Judged {
    /// An authenticator code of `step`, which must be later than any used before.
    TotpStep { factor_id: String, step: i64 },
    /// The recovery code (`expected`), to be swapped for `fresh`.
    Recovery { expected: String, fresh: RecoveryCode },
    /// A sent code, to be used up.
    Sent { channel: FactorKind, code_hash: String },
    /// Refused: `reason` for the trail, `error` for the person; a sent code's entry
    /// is counted on it too.
    Wrong { reason: &'static str, error: Error, sent_code: Option<(FactorKind, String)> },
}

/// Judges `answer` for `account` (its factors, recovery code and sent codes as read).
/// `Err` for what is not a guess and so not counted (no authenticator, no code sent).
pub(crate) async fn judge(
    state: &App,
    account: &Account,
    answer: &FactorAnswer,
    read: (&[clinic_auth_store::Factor], Option<&str>, &[clinic_auth_store::StoredCode]),
    within: Within<'_>,
) -> Result<Judged, Error> {
    let (factors, recovery_hash, sent) = read;
    Ok(match answer {
        FactorAnswer::Authenticator(code) => {
            let factor = factors.iter().find(|f| f.kind == FactorKind::Authenticator).ok_or_else(|| {
                Error::new(ErrorKind::MethodUnavailable, "No authenticator app is set up for this account.")
            })?;
            let secret = open_authenticator(state, account, factor)?;
            match totp::verify(&secret, code, state.now(), factor.last_used_step) {
                Ok(step) => Judged::TotpStep { factor_id: factor.id.clone(), step },
                Err(TotpRejection::Replayed) => {
                    Judged::Wrong { reason: "replayed_code", error: replayed_code(), sent_code: None }
                }
                Err(TotpRejection::Wrong) => {
                    Judged::Wrong { reason: "wrong_code", error: wrong_code(), sent_code: None }
                }
            }
        }
        FactorAnswer::Recovery(code) => match recovery_hash {
            Some(hash) if code.matches(hash) => {
                Judged::Recovery { expected: hash.to_owned(), fresh: RecoveryCode::generate() }
            }
            _ => Judged::Wrong { reason: "wrong_code", error: wrong_recovery_code(), sent_code: None },
        },
        FactorAnswer::Sent { channel, code } => {
            let stored = sent.iter().find(|c| c.channel == *channel);
            match codes::judge(state, account, *channel, code, within.purpose(), within, stored).await? {
                codes::CodeVerdict::Right { code_hash } => Judged::Sent { channel: *channel, code_hash },
                codes::CodeVerdict::Wrong { error, reason, code_hash } => {
                    Judged::Wrong { reason, error, sent_code: Some((*channel, code_hash)) }
                }
            }
        }
    })
}

pub(crate) fn wrong_recovery_code() -> Error {
    Error::new(ErrorKind::IncorrectCode, "That recovery code didn't work. Check it and try again.")
}

/// Parses a typed answer for `method`; a malformed one is refused before anything is
/// counted (it cannot be a guess).
pub(crate) fn parse_answer(method: FactorKind, input: &str) -> Result<FactorAnswer, Error> {
    FactorAnswer::parse(method, input).map_err(refused_answer)
}

/// Turns two-factor authentication off for an account whose policy allows it.
pub async fn turn_off(
    state: &App,
    account: &Account,
    session: &clinic_auth_core::TokenHash,
    client: &ClientInfo,
) -> Result<(), Error> {
    let mfa = load(state, account).await?;
    if !mfa.may_turn_off(account) {
        return Err(Error::new(
            ErrorKind::MfaRequired,
            "Your organization requires two-factor authentication, so it cannot be turned off.",
        ));
    }
    let removed = Event::FactorRemoved { method: None, reason: None, by_self: true, passkey_id: None };
    let mut event = on_own_account(audit_event(state, removed, client), account);
    event.via = Within::Session(session).via();
    state.store.remove_factors(account.id, None, &event).await?;
    notices::send(state, account, SecurityNotice::FactorRemoved { method: "all".to_owned() }).await;
    Ok(())
}

/// Replaces the recovery code with a new one, shown once.
pub async fn new_recovery_code(state: &App, account: &Account, client: &ClientInfo) -> Result<RecoveryCode, Error> {
    let mfa = load(state, account).await?;
    if mfa.factors.is_empty() {
        return Err(Error::new(ErrorKind::MfaOff, "Turn on two-factor authentication first."));
    }
    let fresh = RecoveryCode::generate();
    let event = on_own_account(audit_event(state, Event::RecoveryCodeReplaced, client), account);
    state.store.replace_recovery_code(account.id, None, &fresh.hash(), state.now(), &event).await?;
    notices::send(state, account, SecurityNotice::RecoveryCodeReplaced).await;
    Ok(fresh)
}

pub use clinic_auth_core::session::recently_verified;

/// Starts setting up an email or text-message factor: sends a code to the account's
/// email, or to the US mobile number given.
pub async fn begin_code_enrollment(
    state: &App,
    account: &Account,
    kind: FactorKind,
    phone: Option<&str>,
    allowed: MethodSet,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<SentTo, Error> {
    if !allowed.contains(kind) || !matches!(kind, FactorKind::Email | FactorKind::Sms) {
        return Err(Error::new(ErrorKind::MethodUnavailable, "Your organization does not allow that method."));
    }
    let target = match kind {
        FactorKind::Sms => {
            let phone = UsPhone::parse(phone.unwrap_or_default())
                .map_err(|e| Error::new(ErrorKind::InvalidPhone, e.to_string()))?;
            phone.e164().to_owned()
        }
        _ => account.email.to_string(),
    };
    codes::send(state, account, kind, &target, codes::Purpose::Enroll, within, client).await
}

/// Resends the setup code to where the last one went.
pub async fn resend_enrollment_code(
    state: &App,
    account: &Account,
    kind: FactorKind,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<SentTo, Error> {
    let previous = state
        .store
        .get_code(account.id, kind)
        .await?
        .filter(|c| c.purpose == Purpose::Enroll.as_str() && c.bound_to == within.binding());
    match previous {
        Some(c) => codes::send(state, account, kind, &c.target, codes::Purpose::Enroll, within, client).await,
        None if kind == FactorKind::Email => {
            codes::send(state, account, kind, account.email.as_str(), codes::Purpose::Enroll, within, client).await
        }
        None => Err(Error::new(ErrorKind::InvalidPhone, "Enter your mobile number first.")),
    }
}

/// Confirms an email or text-message factor with the code sent to it. The first
/// factor also brings the recovery code, returned to be shown once.
pub async fn confirm_code_enrollment(
    state: &App,
    account: &Account,
    kind: FactorKind,
    input: &str,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<Option<RecoveryCode>, Error> {
    let code = OneTimeCode::parse(input).map_err(|e| refused_answer(e.into()))?;
    codes::ensure_pending(state, account, kind, Purpose::Enroll, within).await?;
    reserve_attempt(state, account, kind, client).await?;
    let target = match codes::check(state, account, kind, &code, Purpose::Enroll, within, None).await? {
        Checked::Accepted { target } => target,
        Checked::Refused { error, reason } => {
            count_failure(state, account, kind, reason, Purpose::Enroll, client).await?;
            return Err(error);
        }
    };
    let label = format!("{} ({})", method_label(kind), codes::masked(kind, &target));
    let factor = NewFactor {
        id: uuid_like(),
        account_id: account.id,
        kind,
        label,
        secret: None,
        last_used_step: None,
        now: state.now(),
        target: Some(target),
    };
    enroll(state, account, factor, within, client).await
}

/// What "Confirm it's you" asks for: the method (the one asked for when it is enrolled,
/// otherwise the first enrolled), another to switch to, and the step-up code already
/// sent for it, if any. Showing this sends nothing.
#[derive(Debug, Clone)]
pub struct StepUpStep {
    pub method: FactorKind,
    pub other: Option<FactorKind>,
    pub sent: Option<SentTo>,
}

pub async fn step_up_step(
    state: &App,
    signed_in: &crate::SignedIn,
    asked: Option<FactorKind>,
) -> Result<StepUpStep, Error> {
    let enrolled = load(state, &signed_in.account).await?.enrolled();
    let method = asked
        .filter(|m| enrolled.contains(m))
        .or_else(|| enrolled.first().copied())
        .unwrap_or(FactorKind::Authenticator);
    let other = enrolled.iter().find(|k| **k != method).copied();
    let sent = match method {
        FactorKind::Email | FactorKind::Sms => {
            let within = Within::Session(&signed_in.token_hash);
            codes::live(state, &signed_in.account, method, Purpose::StepUp, within).await?
        }
        _ => None,
    };
    Ok(StepUpStep { method, other, sent })
}

/// The setup code in flight for this session (text message first, then email), if any.
pub async fn setup_code_in_flight(state: &App, account: &Account, within: Within<'_>) -> Result<Option<SentTo>, Error> {
    for kind in [FactorKind::Sms, FactorKind::Email] {
        if let Some(sent) = codes::live(state, account, kind, Purpose::Enroll, within).await? {
            return Ok(Some(sent));
        }
    }
    Ok(None)
}

/// Sends (or, when one is still live, reports) the sign-in or step-up code for an
/// email or text-message factor.
pub async fn ensure_code_sent(
    state: &App,
    account: &Account,
    kind: FactorKind,
    purpose: codes::Purpose,
    within: Within<'_>,
    resend: bool,
    client: &ClientInfo,
) -> Result<SentTo, Error> {
    if !resend && let Some(live) = codes::live(state, account, kind, purpose, within).await? {
        return Ok(live);
    }
    let target = load(state, account)
        .await?
        .code_target(account, kind)
        .ok_or_else(|| Error::new(ErrorKind::MethodUnavailable, "That method is not set up for this account."))?;
    codes::send(state, account, kind, &target, purpose, within, client).await
}

// ----- the gates in front of changes to an account's second factors -----

/// Whether `session` may change this account's second factors (or, for an admin,
/// act on their own account) now: yes when the account has nothing to prove (no
/// factor, no recovery code), or when a second factor or the recovery code was proved
/// in this session within the step-up window. The one step-up rule behind every door.
pub async fn has_recent_proof(state: &App, account: AccountId, session: &TokenHash) -> Result<bool, Error> {
    let has_factor = !state.store.list_factors(account).await?.is_empty()
        || state.store.recovery_code_hash(account).await?.is_some();
    let verified = state.store.get_session(session).await?.and_then(|r| r.verified_at);
    Ok(clinic_auth_core::permission::self_action_proven(has_factor, verified, state.now()))
}

/// `has_recent_proof`, as an answer: `StepUpRequired` when the proof is missing.
pub async fn require_recent_proof(state: &App, account: AccountId, session: &TokenHash) -> Result<(), Error> {
    if has_recent_proof(state, account, session).await? { Ok(()) } else { Err(step_up_required()) }
}

pub fn step_up_required() -> Error {
    Error::new(ErrorKind::StepUpRequired, "Confirm it's you with your second factor first.")
}

/// The gates in front of setting up a factor from a session, in order: setup is open
/// to this account (`require_setup_available`), and a factor it already has was
/// proved lately (`require_recent_proof`).
pub async fn require_setup_allowed(state: &App, signed_in: &crate::SignedIn) -> Result<(), Error> {
    require_setup_available(&load(state, &signed_in.account).await?, &signed_in.account)?;
    require_recent_proof(state, signed_in.account.id, &signed_in.token_hash).await
}

/// Sends the setup code for an email or text-message factor from a session, among the
/// methods the account may set up now.
pub async fn send_setup_code(
    state: &App,
    account: &Account,
    kind: FactorKind,
    phone: Option<&str>,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<SentTo, Error> {
    let allowed = load(state, account).await?.setup_methods(account);
    begin_code_enrollment(state, account, kind, phone, allowed, within, client).await
}

/// Setting up a second factor is open to an account that has one already, or whose
/// policy lets it opt in; a member of an organization that has not turned 2FA on is
/// told to ask their administrator.
pub fn require_setup_available(mfa: &MfaState, account: &Account) -> Result<(), Error> {
    if mfa.factors.is_empty() && !mfa.may_opt_in(account) {
        return Err(Error::new(
            ErrorKind::MfaNotAvailable,
            "Two-factor authentication is not available for your organization yet. Ask your administrator.",
        ));
    }
    Ok(())
}

/// An account's two-factor settings as its owner sees them.
#[derive(Debug, Clone)]
pub struct MfaStatus {
    pub mfa: MfaState,
    /// The account's policy requires a second factor (so it cannot be turned off).
    pub required: bool,
    pub may_opt_in: bool,
    pub may_turn_off: bool,
    /// A second factor was proved in this session within the step-up window.
    pub recently_verified: bool,
}

/// The signed-in account's two-factor settings, for the account page and `/me/mfa`.
pub async fn status(state: &App, signed_in: &crate::SignedIn) -> Result<MfaStatus, Error> {
    let account = &signed_in.account;
    let mfa = load(state, account).await?;
    let verified = state.store.get_session(&signed_in.token_hash).await?.and_then(|r| r.verified_at);
    let may_turn_off = mfa.may_turn_off(account);
    Ok(MfaStatus {
        required: !may_turn_off,
        may_opt_in: mfa.may_opt_in(account),
        may_turn_off,
        recently_verified: recently_verified(verified, state.now()),
        mfa,
    })
}

/// The secret of an account's authenticator app, unsealed.
fn open_authenticator(state: &App, account: &Account, factor: &clinic_auth_store::Factor) -> Result<TotpSecret, Error> {
    let sealed = factor.secret.as_ref().ok_or_else(|| Error::internal("authenticator without secret"))?;
    TotpSecret::from_bytes(state.sealer.open(sealed, &sealing_context(account, FactorKind::Authenticator))?.to_vec())
        .map_err(|e| Error::internal(format!("stored secret: {e}")))
}

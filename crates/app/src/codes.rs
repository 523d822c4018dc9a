//! Codes sent by email or text message: sending (with cooldown and send limits),
//! checking (expiry, attempts, single use) and what the member is told.

use clinic_auth_core::one_time_code::{self, CodeCheck, mask_email};
use clinic_auth_core::{CodeChallenge, FactorKind, OneTimeCode, UsPhone};
use clinic_auth_notify::{CodeMessage, CodePurpose, DeliveryError};
use clinic_auth_store::{Account, ClientInfo, StoredCode};

use super::{Within, about_account, audit_event};
use crate::{App, Error, ErrorKind};
use clinic_auth_core::audit::Event;

/// Where a code went, for "We sent a code to …", and when "Resend" works again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentTo {
    pub channel: FactorKind,
    pub masked: String,
    pub resend_in: i64,
}

pub use clinic_auth_core::Purpose;

pub fn masked(channel: FactorKind, target: &str) -> String {
    match channel {
        FactorKind::Sms => UsPhone::from_e164(target).map(|p| p.masked()).unwrap_or_else(|_| "your phone".to_owned()),
        _ => mask_email(target),
    }
}

/// What a code's MAC covers: a code matches only for the account, channel, purpose,
/// target and the sign-in or session (`bound_to`) it was sent for.
fn context(account: &Account, channel: FactorKind, purpose: Purpose, target: &str, bound_to: &str) -> String {
    format!("{}:{}:{}:{}:{}", account.id, channel, purpose.as_str(), target, bound_to)
}

fn send_keys(account: &Account, client: &ClientInfo) -> (String, String) {
    (format!("code-sends:{}", account.id), format!("code-sends-client:{}", client.ip))
}

/// The code in flight for this channel, if it was sent for `purpose` here (this
/// sign-in or session) and is still live.
pub async fn live(
    state: &App,
    account: &Account,
    channel: FactorKind,
    purpose: Purpose,
    within: Within<'_>,
) -> Result<Option<SentTo>, Error> {
    let now = state.now();
    Ok(state
        .store
        .get_code(account.id, channel)
        .await?
        .filter(|c| c.purpose == purpose.as_str() && c.bound_to == within.binding() && now < c.challenge.expires_at)
        .map(|c| SentTo {
            channel,
            masked: masked(channel, &c.target),
            resend_in: c.challenge.resend_wait(now).unwrap_or(0),
        }))
}

/// Sends a new code to `target` (an email address or E.164 number) for use here
/// (`within`), replacing any earlier one. Refused during the resend cooldown and past
/// the send limits.
pub async fn send(
    state: &App,
    account: &Account,
    channel: FactorKind,
    target: &str,
    purpose: Purpose,
    within: Within<'_>,
    client: &ClientInfo,
) -> Result<SentTo, Error> {
    let now = state.now();
    if let Some(previous) = state.store.get_code(account.id, channel).await?
        && let Some(wait) = previous.challenge.resend_wait(now)
    {
        {
            return Err(Error::new(
                ErrorKind::ResendTooSoon,
                format!("A code was just sent. You can ask for a new one in {wait} seconds."),
            )
            .with_retry_after(wait));
        }
    }
    let (acct_key, client_key) = send_keys(account, client);
    for key in [&acct_key, &client_key] {
        if let Some(wait) = state.store.get_throttle(key).await?.and_then(|t| t.locked_for(now)) {
            return Err(too_many_sends(wait));
        }
    }
    // Count this send; the one that goes over a limit is refused, not sent.
    let counted = [
        state.store.record_failure(&acct_key, one_time_code::SENDS_PER_ACCOUNT, now, None).await?,
        state.store.record_failure(&client_key, one_time_code::SENDS_PER_CLIENT, now, None).await?,
    ];
    if let Some(wait) = counted.iter().filter_map(|t| t.locked_for(now)).max() {
        return Err(too_many_sends(wait));
    }

    let code = OneTimeCode::generate();
    let stored = StoredCode {
        account_id: account.id,
        channel,
        purpose: purpose.as_str().to_owned(),
        target: target.to_owned(),
        code_hash: state
            .sealer
            .code_mac(code.expose(), &context(account, channel, purpose, target, within.binding()))?,
        challenge: CodeChallenge::sent(now),
        bound_to: within.binding().to_owned(),
    };
    let to = masked(channel, target);
    let event = about_account(audit_event(state, Event::CodeSent { channel, purpose, to: &to }, client), account);
    state.store.put_code(&stored, &event).await?;

    // A sign-in reached with a clinic's hint names that clinic to an account without one.
    let hint = match within {
        Within::SignIn(flow) => state.store.get_flow(flow).await?.and_then(|f| f.org_hint),
        Within::Session(_) => None,
    };
    let brand = crate::branding::message_brand(state, account, hint.as_ref()).await?;
    let message = CodeMessage {
        org_name: &brand.name,
        logo_url: brand.logo_url.as_deref(),
        code: code.expose(),
        valid_minutes: one_time_code::CODE_TTL_SECS / 60,
        purpose: if purpose == Purpose::Enroll { CodePurpose::Setup } else { CodePurpose::SignIn },
    };
    let delivered = match channel {
        FactorKind::Sms => state.senders.sms.send_code(target, &message).await,
        _ => state.senders.email.send_code(target, &message).await,
    };
    crate::ops::count_code_delivery(channel, &delivered);
    if let Err(e) = delivered {
        // The member can try again at once: the undelivered code is withdrawn.
        state.store.delete_code(account.id, channel).await?;
        let reason = match &e {
            DeliveryError::Temporary(r) | DeliveryError::Rejected(r) => r.clone(),
        };
        let failed = Event::CodeNotSent { channel, purpose, reason: &reason };
        state.store.append_audit(&about_account(audit_event(state, failed, client), account)).await?;
        tracing::warn!(account = %account.id, channel = channel.as_str(), %reason, "delivery failed");
        let what = if channel == FactorKind::Sms { "text message" } else { "email" };
        return Err(Error::new(
            ErrorKind::DeliveryFailed,
            format!("We couldn't send the {what} right now. Try again in a moment, or choose another method."),
        )
        .with_retry_after(5));
    }
    Ok(SentTo { channel, masked: masked(channel, target), resend_in: one_time_code::RESEND_COOLDOWN_SECS })
}

fn too_many_sends(wait: i64) -> Error {
    let wait_text = clinic_auth_core::throttle::describe_wait(wait);
    Error::new(
        ErrorKind::TooManyCodesSent,
        format!("Too many codes were sent. Try again in {wait_text}, or choose another method."),
    )
    .with_retry_after(wait)
}

/// Refuses at once when no live code was sent for `purpose` here: nothing to guess
/// against, so nothing is counted.
pub async fn ensure_pending(
    state: &App,
    account: &Account,
    channel: FactorKind,
    purpose: Purpose,
    within: Within<'_>,
) -> Result<(), Error> {
    match live(state, account, channel, purpose, within).await? {
        Some(_) => Ok(()),
        None => Err(expired()),
    }
}

fn expired() -> Error {
    Error::new(ErrorKind::CodeExpired, "That code has expired or was replaced by a newer one. Send a new code.")
}

/// What checking a code found, when the code was one sent here.
#[derive(Debug)]
pub enum Checked {
    /// The code matched and is used up; `target` is where it was sent (for enrolling
    /// that address or number).
    Accepted { target: String },
    /// The code did not match (or its entries ran out): `error` for the person, and
    /// `reason` for the audit trail. The member's attempt stays counted.
    Refused { error: Error, reason: &'static str },
}

/// What an entered code comes to, judged against the code read with the sign-in.
#[derive(Debug)]
pub(crate) enum CodeVerdict {
    /// It matches `code_hash`, which the answer's transaction uses up.
    Right { code_hash: String },
    /// It does not (or the code's entries ran out): counted on the code `code_hash`.
    Wrong { error: Error, reason: &'static str, code_hash: String },
}

/// Judges an entered code against `stored` (the account's code for `channel`, read
/// with the rest of the sign-in), without writing: the caller's one transaction
/// counts or uses it. `Err` when no live code was sent here (nothing to count: it
/// cannot be a guess); an expired code is deleted.
pub(crate) async fn judge(
    state: &App,
    account: &Account,
    channel: FactorKind,
    code: &OneTimeCode,
    purpose: Purpose,
    within: Within<'_>,
    stored: Option<&StoredCode>,
) -> Result<CodeVerdict, Error> {
    let now = state.now();
    let Some(stored) = stored.filter(|c| c.purpose == purpose.as_str() && c.bound_to == within.binding()) else {
        return Err(expired());
    };
    let mac =
        state.sealer.code_mac(code.expose(), &context(account, channel, purpose, &stored.target, &stored.bound_to))?;
    let matches = clinic_auth_core::token::secrets_equal(&mac, &stored.code_hash);
    let code_hash = stored.code_hash.clone();
    match stored.challenge.check(now, stored.challenge.attempts.saturating_add(1), matches) {
        CodeCheck::Accepted => Ok(CodeVerdict::Right { code_hash }),
        CodeCheck::Expired => {
            state.store.delete_code(account.id, channel).await?;
            Err(expired())
        }
        CodeCheck::TooManyAttempts => {
            Ok(CodeVerdict::Wrong { error: attempts_exhausted(), reason: "attempts_exhausted", code_hash })
        }
        CodeCheck::Wrong { attempts_left } => {
            Ok(CodeVerdict::Wrong { error: wrong_entry(attempts_left), reason: "wrong_code", code_hash })
        }
    }
}

fn attempts_exhausted() -> Error {
    Error::new(ErrorKind::CodeAttemptsExhausted, "Too many wrong entries for this code. Send a new code.")
}

fn wrong_entry(attempts_left: u32) -> Error {
    let tries = if attempts_left == 1 { "try" } else { "tries" };
    Error::new(
        ErrorKind::IncorrectCode,
        format!("That code didn't work. Check it and try again ({attempts_left} {tries} left)."),
    )
}

/// The code is not (or no longer) one sent here.
pub(crate) fn code_expired() -> Error {
    expired()
}

/// Checks an entered code. Wrong entries are counted on the code and on the member.
/// `used`: the audit event of a second factor proved, written with the code's use.
/// `Err` when no live code was sent here (nothing to count: it cannot be a guess).
pub async fn check(
    state: &App,
    account: &Account,
    channel: FactorKind,
    code: &OneTimeCode,
    purpose: Purpose,
    within: Within<'_>,
    used: Option<&clinic_auth_store::NewAuditEvent>,
) -> Result<Checked, Error> {
    let now = state.now();
    // A code sent for another sign-in or session (or another purpose) is not this
    // one's: "no code here", whatever was typed.
    let Some(stored) = state
        .store
        .get_code(account.id, channel)
        .await?
        .filter(|c| c.purpose == purpose.as_str() && c.bound_to == within.binding())
    else {
        return Err(expired());
    };
    let attempts = state.store.count_code_attempt(account.id, channel).await?.ok_or_else(expired)?;
    let mac =
        state.sealer.code_mac(code.expose(), &context(account, channel, purpose, &stored.target, &stored.bound_to))?;
    let matches = clinic_auth_core::token::secrets_equal(&mac, &stored.code_hash);
    match stored.challenge.check(now, attempts, matches) {
        CodeCheck::Accepted => {
            if state.store.consume_code(account.id, channel, &stored.code_hash, used.map(|e| (now, e))).await? {
                Ok(Checked::Accepted { target: stored.target })
            } else {
                Err(expired())
            }
        }
        CodeCheck::Expired => {
            state.store.delete_code(account.id, channel).await?;
            Err(expired())
        }
        CodeCheck::TooManyAttempts => {
            state.store.delete_code(account.id, channel).await?;
            Ok(Checked::Refused { error: attempts_exhausted(), reason: "attempts_exhausted" })
        }
        CodeCheck::Wrong { attempts_left } => {
            Ok(Checked::Refused { error: wrong_entry(attempts_left), reason: "wrong_code" })
        }
    }
}

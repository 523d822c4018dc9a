//! Counting answers to a second factor: a place is reserved before an answer is
//! checked, a refusal is audited and may lock the factor, a success starts the count
//! over. Shared by codes, authenticator apps, recovery codes and passkeys.

use clinic_auth_core::{FactorKind, Purpose, ThrottleRule};
use clinic_auth_notify::SecurityNotice;
use clinic_auth_store::{Account, ClientInfo};

use crate::mfa_state::method_label;
use clinic_auth_core::audit::Event;

use crate::{App, Error, ErrorKind, about_account, audit_event, notices};

pub(crate) fn throttle_key(account: &Account) -> String {
    format!("second-factor:{}", account.id)
}

pub fn factor_locked(method: FactorKind) -> Error {
    Error::new(
        ErrorKind::FactorLocked,
        format!(
            "{} is locked: a code was tried wrong too many times in a row, perhaps by someone else. \
             Choose Try another method and use your recovery code, or ask your clinic's administrator \
             (or support) to unlock it.",
            method_label(method)
        ),
    )
}

/// Takes a place for one answer before it is checked: counted against the member's
/// lockout and the factor's consecutive failures in single statements, so that
/// concurrent guesses are never checked past the limits. A success clears both
/// (`proved`). A refusal here is audited so that the audit log shows every attempt.
pub(crate) async fn reserve_attempt(
    state: &App,
    account: &Account,
    method: FactorKind,
    client: &ClientInfo,
) -> Result<(), Error> {
    let now = state.now();
    let refuse = |reason: &'static str| {
        let refused = Event::SecondFactorRefused { method, reason, purpose: None };
        about_account(audit_event(state, refused, client), account)
    };
    let cap = clinic_auth_core::throttle::MAX_CONSECUTIVE_FAILURES;
    let at_cap = |failures: Vec<(FactorKind, u32)>| failures.iter().any(|(k, n)| *k == method && *n >= cap);
    if at_cap(state.store.factor_failures(account.id).await?) {
        state.store.append_audit(&refuse("factor_locked")).await?;
        return Err(factor_locked(method));
    }
    let key = throttle_key(account);
    if state.store.reserve_attempt(&key, ThrottleRule::SECOND_FACTOR_PER_ACCOUNT, now).await?.is_none() {
        state.store.append_audit(&refuse("locked")).await?;
        let secs = state.store.get_throttle(&key).await?.and_then(|t| t.locked_for(now)).unwrap_or(1);
        return Err(Error::too_many_attempts(secs));
    }
    if state.store.reserve_factor_attempt(account.id, method, cap).await?.is_none() {
        state.store.append_audit(&refuse("factor_locked")).await?;
        return Err(factor_locked(method));
    }
    Ok(())
}

/// A factor was proved: the member's lockout and consecutive failures start over.
pub(crate) async fn proved(state: &App, account: &Account) -> Result<(), Error> {
    state.store.clear_throttle(&throttle_key(account)).await?;
    state.store.clear_factor_failures(account.id).await?;
    Ok(())
}

/// Records a refused answer (already counted by `reserve_attempt`). The answer that
/// reaches the consecutive-failure cap locks the factor, and the member is told.
pub(crate) async fn count_failure(
    state: &App,
    account: &Account,
    method: FactorKind,
    reason: &str,
    purpose: Purpose,
    client: &ClientInfo,
) -> Result<(), Error> {
    let refused = Event::SecondFactorRefused { method, reason, purpose: Some(purpose) };
    state.store.append_audit(&about_account(audit_event(state, refused, client), account)).await?;
    tracing::info!(account = %account.id, method = method.as_str(), reason, purpose = purpose.as_str(), "second factor refused");
    let cap = clinic_auth_core::throttle::MAX_CONSECUTIVE_FAILURES;
    let failures = state.store.factor_failures(account.id).await?;
    if failures.iter().any(|(k, n)| *k == method && *n >= cap) {
        let locked = Event::FactorLocked { method, consecutive_failures: cap };
        state.store.append_audit(&about_account(audit_event(state, locked, client), account)).await?;
        notices::send(state, account, SecurityNotice::FactorLocked { method: method_label(method).to_owned() }).await;
    }
    Ok(())
}

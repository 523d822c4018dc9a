//! Counting answers to a second factor: a place is reserved before an answer is
//! checked, a refusal is audited and may lock the factor, a success starts the count
//! over. Shared by codes, authenticator apps, recovery codes and passkeys.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use clinic_auth_core::{FactorKind, Purpose, ThrottleRule, UnixTime};
use clinic_auth_notify::SecurityNotice;
use clinic_auth_store::{Account, ClientInfo, NewAuditEvent};

use crate::mfa_state::method_label;
use clinic_auth_core::audit::Event;

use crate::{App, Error, ErrorKind, about_account, audit_event, notices};

/// The member's second-factor lockout is counted under this prefix and their id.
pub(crate) const LOCKOUT_PREFIX: &str = "second-factor:";

pub(crate) fn throttle_key(account: &Account) -> String {
    format!("{LOCKOUT_PREFIX}{}", account.id)
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
    let key = throttle_key(account);
    if at_cap(state.store.factor_failures(account.id).await?) {
        state.locked_refusals.note(state, &format!("factor:{key}:{method}"), None, || refuse("factor_locked")).await;
        return Err(factor_locked(method));
    }
    if state.store.reserve_attempt(&key, ThrottleRule::SECOND_FACTOR_PER_ACCOUNT, now).await?.is_none() {
        let until = state.store.get_throttle(&key).await?.map(|t| t.locked_until);
        state.locked_refusals.note(state, &key, until, || refuse("locked")).await;
        let secs = until.map(|u| now.secs_until(u)).filter(|s| *s > 0).unwrap_or(1);
        return Err(Error::too_many_attempts(secs));
    }
    if state.store.reserve_factor_attempt(account.id, method, cap).await?.is_none() {
        state.locked_refusals.note(state, &format!("factor:{key}:{method}"), None, || refuse("factor_locked")).await;
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

/// Refusals while a lock is in force, kept out of the database: an attacker hammering
/// a locked member or address must neither grow the audit trail nor load the writer
/// at will. The first refusal of a lock period is remembered with its audit event;
/// later ones only count. When the lock ends (or after `SUMMARY_SECS` for a lock
/// without an end, like a factor at its cap), one event records the period: the
/// first refusal's, with `refusals` (how many) and `last_at` added. Memory is
/// bounded: past `MAX_PENDING` locks, a new one is written at once.
#[derive(Debug, Default)]
pub struct LockedRefusals {
    pending: Mutex<HashMap<String, PendingRefusals>>,
    /// Sign-ins (by flow hash) already refused under a lock with an end: their next
    /// answers before that end are refused from here, without reading the store.
    /// That is the shape of an attack (one flow, answer after answer); a new sign-in
    /// needs the password again and is read as usual.
    locked_flows: Mutex<HashMap<String, LockedFlow>>,
}

#[derive(Debug)]
struct LockedFlow {
    key: String,
    until: UnixTime,
}

#[derive(Debug)]
struct PendingRefusals {
    event: NewAuditEvent,
    refusals: u64,
    last_at: UnixTime,
    /// When the period is written: the lock's end, or `SUMMARY_SECS` after it began.
    due: UnixTime,
}

/// A lock without an end of its own is summed up this often.
const SUMMARY_SECS: i64 = 300;
/// Locks counted in memory at once.
const MAX_PENDING: usize = 10_000;

impl LockedRefusals {
    /// Counts a refusal under the lock `key` (in force until `until`, if it ends);
    /// `event` makes the audit event of the period's first refusal.
    pub(crate) async fn note(
        &self,
        state: &App,
        key: &str,
        until: Option<UnixTime>,
        event: impl FnOnce() -> NewAuditEvent,
    ) {
        let now = state.now();
        let overflow = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let held = pending.len();
            match pending.get_mut(key) {
                Some(p) => {
                    p.refusals += 1;
                    p.last_at = now;
                    None
                }
                None if held < MAX_PENDING => {
                    let due = until.filter(|u| *u > now).unwrap_or(now.plus_secs(SUMMARY_SECS));
                    let p = PendingRefusals { event: event(), refusals: 1, last_at: now, due };
                    pending.insert(key.to_owned(), p);
                    None
                }
                None => Some(event()),
            }
        };
        if let Some(e) = overflow {
            write_summary(state, e, 1, now).await;
        }
    }

    /// Remembers that the sign-in `flow` was refused under the lock `key` until `until`.
    pub(crate) fn remember_flow(&self, flow: &str, key: &str, until: UnixTime) {
        let mut flows = self.locked_flows.lock().unwrap_or_else(PoisonError::into_inner);
        if flows.len() < MAX_PENDING || flows.contains_key(flow) {
            flows.insert(flow.to_owned(), LockedFlow { key: key.to_owned(), until });
        }
    }

    /// When the sign-in `flow` is known to be locked at `now`: counts the refusal
    /// with its lock period and returns the lock's end. `None`: ask the store.
    pub(crate) fn refuse_known_flow(&self, flow: &str, now: UnixTime) -> Option<UnixTime> {
        let (key, until) = {
            let flows = self.locked_flows.lock().unwrap_or_else(PoisonError::into_inner);
            let f = flows.get(flow).filter(|f| f.until > now)?;
            (f.key.clone(), f.until)
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted only into a period still open; otherwise the store decides.
        let p = pending.get_mut(&key)?;
        p.refusals += 1;
        p.last_at = now;
        Some(until)
    }

    /// An admin lifted the lock `key` (on this instance): its sign-ins are read again.
    pub(crate) fn forget_lock(&self, key: &str) {
        self.locked_flows.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, f| f.key != key);
    }

    /// Writes the periods that are over (every one with `all`, at shutdown).
    pub async fn flush(&self, state: &App, all: bool) {
        let now = state.now();
        self.locked_flows.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, f| !all && f.until > now);
        let due: Vec<PendingRefusals> = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let keys: Vec<String> =
                pending.iter().filter(|(_, p)| all || p.due <= now).map(|(k, _)| k.clone()).collect();
            keys.iter().filter_map(|k| pending.remove(k)).collect()
        };
        for p in due {
            write_summary(state, p.event, p.refusals, p.last_at).await;
        }
    }

    /// Refusals counted and not yet written.
    pub fn unwritten(&self) -> u64 {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).values().map(|p| p.refusals).sum()
    }
}

async fn write_summary(state: &App, mut event: NewAuditEvent, refusals: u64, last_at: UnixTime) {
    event.detail = clinic_auth_core::audit::with_refusals(&event.detail, refusals, last_at);
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::warn!(error = %e, refusals, "recording refusals while locked failed");
    }
}

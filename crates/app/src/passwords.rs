//! Self-service passwords: "Forgot your password?" (`request_reset`: a one-time reset
//! link, valid an hour, emailed to the address typed in) and "Change password"
//! (`change_password`, from a signed-in session).
//!
//! "Forgot your password?" answers the same, after the same store work, whether or
//! not an account uses the address: one count against the client, one read of the
//! account, one count against the address, one audited write (the link with its
//! event, or the refusal's event). The email goes out from a task of its own, so its
//! delivery time is not in the answer's. The link is the reset link administrators
//! send (`accounts::set_password_with_link` uses it): it works once, sets a password
//! under the policy, ends every session, and leaves the second factors alone.

use clinic_auth_core::audit::Event;
use clinic_auth_core::{AccountStatus, Email, Password, Realm, ThrottleRule, UnixTime};
use clinic_auth_notify::SecurityNotice;
use clinic_auth_store::{Account, ClientInfo};

use crate::accounts::{check_new_password, email_reset_link, store_reset_link};
use crate::sign_in::password_key;
use crate::{App, Error, ErrorKind, SignedIn, about_account, audit_event, factors, notices, on_own_account};

/// How long a self-service reset link works: an hour (`config.link_ttl_secs` when
/// that is shorter).
pub const SELF_SERVICE_RESET_SECS: i64 = 3600;

fn address_key(realm: Realm, email: &Email) -> String {
    format!("password-reset:{realm}:{email}")
}

fn client_key(client: &ClientInfo) -> String {
    format!("password-reset-client:{}", client.ip)
}

/// Counts one request against `key`; the wait, when that goes over the rule.
pub(crate) async fn over_limit(
    state: &App,
    key: &str,
    rule: ThrottleRule,
    now: UnixTime,
) -> Result<Option<i64>, Error> {
    Ok(match state.store.reserve_attempt(key, rule, now).await? {
        Some(t) => t.locked_for(now),
        None => Some(state.store.get_throttle(key).await?.and_then(|t| t.locked_for(now)).unwrap_or(1)),
    })
}

/// "Forgot your password?" for `email` in `realm`. `Ok` is the one answer for every
/// well-formed address, with an account or not, over the address's limit or not: an
/// active account with a password is emailed a reset link (valid
/// [`SELF_SERVICE_RESET_SECS`]), and nothing is sent otherwise. Refused only for a
/// malformed address (`InvalidEmail`) and a client over its limit (`TooManyAttempts`,
/// with the wait).
pub async fn request_reset(state: &App, realm: Realm, email: &str, client: &ClientInfo) -> Result<(), Error> {
    let email = Email::parse(email).map_err(|_| Error::invalid_email())?;
    let now = state.now();
    if let Some(wait) = over_limit(state, &client_key(client), ThrottleRule::PASSWORD_RESETS_PER_CLIENT, now).await? {
        return Err(Error::new(
            ErrorKind::TooManyAttempts,
            format!(
                "Too many password reset requests from your network. Try again in {}.",
                clinic_auth_core::throttle::describe_wait(wait)
            ),
        )
        .with_retry_after(wait));
    }
    let account = state.store.find_account(realm, &email).await?;
    let limited =
        over_limit(state, &address_key(realm, &email), ThrottleRule::PASSWORD_RESETS_PER_ADDRESS, now).await?.is_some();
    let refused = match &account {
        _ if limited => Some("address_limited"),
        None => Some("unknown_account"),
        Some(a) if a.status != AccountStatus::Active => Some("account_deactivated"),
        Some(a) if a.password_hash.is_none() => Some("no_password_set"),
        Some(_) => None,
    };
    match (refused, account) {
        (None, Some(account)) => {
            let requested = Event::PasswordResetRequested { refused: None, email: None };
            let event = about_account(audit_event(state, requested, client), &account);
            let ttl = SELF_SERVICE_RESET_SECS.min(state.config.link_ttl_secs);
            let (url, expires_at) = store_reset_link(state, &account, ttl, &event).await?;
            let app = state.clone();
            tokio::spawn(async move {
                if let Err(e) = email_reset_link(&app, &account, &url, expires_at).await {
                    tracing::warn!(account = %account.id, error = %e, "password reset email not sent");
                }
            });
        }
        (reason, account) => {
            // The address typed is kept only when no account uses it; otherwise the
            // event names the account.
            let typed = account.is_none().then_some(email.as_str());
            let requested = Event::PasswordResetRequested { refused: reason.or(Some("unknown_account")), email: typed };
            let event = audit_event(state, requested, client);
            let event = match &account {
                Some(a) => about_account(event, a),
                None => event,
            };
            state.store.append_audit(&event).await?;
        }
    }
    Ok(())
}

fn wrong_current_password() -> Error {
    Error::new(ErrorKind::IncorrectCredentials, "Your current password is not correct. Enter it again.")
}

/// "Change password" from a signed-in session: where the account has a second
/// factor, one proved in this session within the step-up window
/// (`factors::require_recent_proof`), then the current password (a wrong one counts
/// against the email's sign-in limit, like a wrong password at sign-in), then the new
/// one under the policy (with `confirm` when the form asks it twice). The new hash is
/// stored in one transaction with the audit event; the security stamp moves on, so
/// every other session of the account and its apps' grants end, while this session
/// stays. The holder is told by email.
pub async fn change_password(
    state: &App,
    signed_in: &SignedIn,
    current: Password,
    new: Password,
    confirm: Option<&str>,
    client: &ClientInfo,
) -> Result<(), Error> {
    let account = &signed_in.account;
    factors::require_recent_proof(state, account.id, &signed_in.token_hash).await?;
    let now = state.now();
    let key = password_key(account.realm(), &account.email);
    if let Some(locked_for) = state.store.get_throttle(&key).await?.and_then(|t| t.locked_for(now)) {
        state.store.append_audit(&refused(state, account, "locked", client)).await?;
        return Err(Error::too_many_attempts(locked_for));
    }
    let new = check_new_password(state, new, confirm, &account.email)?;
    if !state.hasher.verify(&current, account.password_hash.as_deref()).await?.matches {
        let event = refused(state, account, "wrong_password", client);
        state.store.record_failure(&key, ThrottleRule::PASSWORD_PER_ACCOUNT, now, Some(&event)).await?;
        return Err(wrong_current_password());
    }
    state.store.clear_throttle(&key).await?;
    if new.expose() == current.expose() {
        return Err(Error::new(ErrorKind::NothingToChange, "That is your current password. Choose a new one."));
    }
    let hash = state.hasher.hash(&new).await?;
    let event = on_own_account(audit_event(state, Event::PasswordChanged, client), account);
    if !state.store.change_password(account.id, &hash, &signed_in.token_hash, &event).await? {
        // The session ended (or the account was deactivated) meanwhile.
        return Err(Error::unauthorized());
    }
    notices::send(state, account, SecurityNotice::PasswordChangedWhileSignedIn).await;
    Ok(())
}

fn refused(state: &App, account: &Account, reason: &str, client: &ClientInfo) -> clinic_auth_store::NewAuditEvent {
    on_own_account(audit_event(state, Event::PasswordChangeRefused { reason }, client), account)
}

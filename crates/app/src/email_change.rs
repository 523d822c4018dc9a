//! "Change email" (the sign-in name), from a signed-in session: the holder asks with
//! their current password (and, where they have a second factor, one proved lately,
//! as for "Change password"); a one-time link goes to the new address and a notice to
//! the current one. Nothing about the account changes until the link is used, with or
//! without a session in that browser.
//!
//! The request answers the same whether or not another account of the realm uses the
//! new address: the change is stored and shown as waiting either way, and the current
//! address is told either way. Only the new address learns the difference: it gets
//! the link when it is free, and "this address already has an account" (no link)
//! when it is not. The emails go out from a task of their own, so the answer's timing
//! does not tell either.
//!
//! Using the link changes the email, in one transaction, only while the link is the
//! account's newest, unused and unexpired, the account is active with the email and
//! security stamp it had at the request (a password change or reset, an MFA reset …
//! in between kills it), and the address is still free in the realm. The security
//! stamp does not move: the sign-in name is not a credential, so sessions, sign-ins in
//! flight and apps' grants stay (see docs/design-notes.md). Unused password links are
//! voided: they went to the old address.

use clinic_auth_core::audit::Event;
use clinic_auth_core::email_change::{self, LinkState, RequestRefused};
use clinic_auth_core::{AccountStatus, Email, Password, SecretToken, ThrottleRule, UnixTime};
use clinic_auth_notify::{SecurityNotice, email_change_content, email_change_taken_content, mask_email};
use clinic_auth_store::{Account, ClientInfo, EmailChange, EmailChangeConfirmed, NewEmailChange};

use crate::passwords::over_limit;
use crate::sign_in::password_key;
use crate::{App, Error, ErrorKind, SignedIn, audit_event, factors, notices, on_own_account};

/// Where the link in the email points (`?token=…`); its page asks before it changes
/// anything (mail scanners open links).
pub const CONFIRM_PATH: &str = "/account/email/confirm";

/// A change of email waiting for its link, as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub new_email: Email,
    pub expires_at: UnixTime,
}

impl From<EmailChange> for Pending {
    fn from(c: EmailChange) -> Self {
        Pending { new_email: c.new_email, expires_at: c.expires_at }
    }
}

fn throttle_key(account: &Account) -> String {
    format!("email-change:{}", account.id)
}

fn refused(state: &App, account: &Account, reason: &str, client: &ClientInfo) -> clinic_auth_store::NewAuditEvent {
    on_own_account(audit_event(state, Event::EmailChangeRefused { reason }, client), account)
}

/// "Change email": checks, in order, the step-up (where the account has a second
/// factor), the sign-in lock of the current email, the new address (`InvalidEmail`,
/// `NothingToChange` for the current one), the current password (a wrong one counts
/// like a wrong password at sign-in), then the account's limit
/// (`ThrottleRule::EMAIL_CHANGES_PER_ACCOUNT`). Then stores the change, which
/// replaces any other, with its audit event, and sends the emails. The answer is the
/// same whether or not the address is taken.
pub async fn request_change(
    state: &App,
    signed_in: &SignedIn,
    new_email: &str,
    current: Password,
    client: &ClientInfo,
) -> Result<Pending, Error> {
    let account = &signed_in.account;
    factors::require_recent_proof(state, account.id, &signed_in.token_hash).await?;
    let now = state.now();
    let key = password_key(account.realm(), &account.email);
    if let Some(locked_for) = state.store.get_throttle(&key).await?.and_then(|t| t.locked_for(now)) {
        state.store.append_audit(&refused(state, account, "locked", client)).await?;
        return Err(Error::too_many_attempts(locked_for));
    }
    let new = Email::parse(new_email).map_err(|_| Error::invalid_email())?;
    if let Err(RequestRefused::SameAddress) = email_change::check_request(&account.email, &new) {
        return Err(Error::new(
            ErrorKind::NothingToChange,
            "That is your sign-in email already. Enter the new address.",
        ));
    }
    if !state.hasher.verify(&current, account.password_hash.as_deref()).await?.matches {
        let event = refused(state, account, "wrong_password", client);
        state.store.record_failure(&key, ThrottleRule::PASSWORD_PER_ACCOUNT, now, Some(&event)).await?;
        return Err(Error::new(
            ErrorKind::IncorrectCredentials,
            "Your current password is not correct. Enter it again.",
        ));
    }
    state.store.clear_throttle(&key).await?;
    if let Some(wait) = over_limit(state, &throttle_key(account), ThrottleRule::EMAIL_CHANGES_PER_ACCOUNT, now).await? {
        state.store.append_audit(&refused(state, account, "too_many_requests", client)).await?;
        return Err(Error::new(
            ErrorKind::TooManyAttempts,
            format!(
                "You asked to change your email too many times. Try again in {}.",
                clinic_auth_core::throttle::describe_wait(wait)
            ),
        )
        .with_retry_after(wait));
    }
    let taken = state.store.find_account(account.realm(), &new).await?.is_some();
    let token = SecretToken::generate();
    let change = NewEmailChange {
        token_hash: token.hash(),
        account_id: account.id,
        new_email: new.clone(),
        old_email: account.email.clone(),
        stamp: account.security_stamp,
        created_at: now,
        expires_at: email_change::link_expires_at(now, state.config.link_ttl_secs),
    };
    let requested = Event::EmailChangeRequested { new_email: new.as_str(), taken };
    state.store.insert_email_change(&change, &on_own_account(audit_event(state, requested, client), account)).await?;
    let url = state.config.link(&format!("{CONFIRM_PATH}?token={}", token.expose()));
    let (app, holder, expires_at) = (state.clone(), account.clone(), change.expires_at);
    tokio::spawn(async move {
        send_request_emails(&app, &holder, &new, taken, &url, expires_at).await;
    });
    Ok(Pending { new_email: change.new_email, expires_at: change.expires_at })
}

/// To the new address: the link, or (taken) the news that it has an account; to the
/// current address: the notice, with the new address masked.
async fn send_request_emails(state: &App, account: &Account, new: &Email, taken: bool, url: &str, expires: UnixTime) {
    let org_name = notices::org_name(state, account).await;
    let content = if taken {
        email_change_taken_content(&org_name)
    } else {
        email_change_content(&org_name, url, &crate::time::date_time(expires))
    };
    if let Err(e) = state.senders.email.send_email_change(new.as_str(), &content).await {
        tracing::warn!(account = %account.id, to = %mask_email(new.as_str()), error = %e, "email change link not delivered");
    }
    notices::send(state, account, SecurityNotice::EmailChangeRequested { new_email: mask_email(new.as_str()) }).await;
}

/// The account's change waiting for its link, while that link can still make it.
pub async fn pending(state: &App, account: &Account) -> Result<Option<Pending>, Error> {
    let change = state.store.pending_email_change(account.id, state.now()).await?;
    Ok(change.filter(|c| still_applies(c, account)).map(Pending::from))
}

/// "Cancel" on the waiting change: its link stops working. False when none waited.
pub async fn cancel(state: &App, signed_in: &SignedIn, client: &ClientInfo) -> Result<bool, Error> {
    let account = &signed_in.account;
    let event = on_own_account(audit_event(state, Event::EmailChangeCancelled, client), account);
    Ok(state.store.cancel_email_change(account.id, &event).await?)
}

/// The account is as it was when the change was asked for.
fn still_applies(change: &EmailChange, account: &Account) -> bool {
    account.status == AccountStatus::Active
        && account.email == change.old_email
        && account.security_stamp == change.stamp
}

fn unknown_link() -> Error {
    Error::new(
        ErrorKind::LinkExpired,
        "This link doesn't work. Open the whole link from the email, or ask for the change again on your account page.",
    )
}

fn used_link() -> Error {
    Error::new(ErrorKind::LinkExpired, "This link was already used: the sign-in email was changed with it.")
}

fn ended_link() -> Error {
    Error::new(
        ErrorKind::LinkExpired,
        "This link has expired, or a newer change was asked for, or the change was cancelled. Ask for the change \
         again on your account page.",
    )
}

fn account_changed() -> Error {
    Error::new(
        ErrorKind::LinkExpired,
        "This link no longer works: the account changed since it was sent (its password, its two-factor settings or \
         its email). Nothing was changed. Sign in and ask for the change again.",
    )
}

fn address_taken() -> Error {
    Error::new(ErrorKind::EmailTaken, "This address already has an account. Nothing was changed.")
}

/// A link opened: the change it would make, and the account's realm (where to sign
/// in afterwards).
#[derive(Debug, Clone)]
pub struct Opened {
    pub new_email: Email,
    pub expires_at: UnixTime,
    pub account: Account,
}

/// What a link would do, checked as far as reading can (the page behind the link
/// asks before it changes anything). A link that cannot work is a `LinkExpired`
/// (`EmailTaken` when the address has an account) with words for why.
pub async fn open_link(state: &App, token: &str) -> Result<Opened, Error> {
    let (_, change, account) = usable_link(state, token).await?;
    if !still_applies(&change, &account) {
        return Err(account_changed());
    }
    if state.store.find_account(account.realm(), &change.new_email).await?.is_some() {
        return Err(address_taken());
    }
    Ok(Opened { new_email: change.new_email, expires_at: change.expires_at, account })
}

/// The link's change and account, while the link is unused and unexpired.
async fn usable_link(state: &App, token: &str) -> Result<(SecretToken, EmailChange, Account), Error> {
    let token = SecretToken::from_presented(token.trim()).ok_or_else(unknown_link)?;
    let change = state.store.get_email_change(&token.hash()).await?.ok_or_else(unknown_link)?;
    match email_change::link_state(change.used_at, change.expires_at, state.now()) {
        LinkState::Usable => {}
        LinkState::Used => return Err(used_link()),
        LinkState::Ended => return Err(ended_link()),
    }
    let account = state.store.get_account(change.account_id).await?.ok_or_else(unknown_link)?;
    Ok((token, change, account))
}

/// "Confirm new email": makes the change of the link (see the module's words), then
/// tells the old address and the new one. The account as it is now.
pub async fn confirm(state: &App, token: &str, client: &ClientInfo) -> Result<Account, Error> {
    // Whether the account and the address still allow it is for the store to decide,
    // in the transaction that makes the change.
    let (token, change, account) = usable_link(state, token).await?;
    let account = &account;
    let (old, new) = (change.old_email.clone(), change.new_email.clone());
    let changed = Event::EmailChanged { old_email: old.as_str(), new_email: new.as_str() };
    let event = on_own_account(audit_event(state, changed, client), account);
    match state.store.confirm_email_change(&token.hash(), state.now(), &event).await? {
        EmailChangeConfirmed::Changed => {}
        // Another confirm of the same link won, or a newer request ended it, meanwhile.
        EmailChangeConfirmed::Unusable => {
            return Err(match state.store.get_email_change(&token.hash()).await? {
                Some(c) if c.used_at.is_some() => used_link(),
                _ => ended_link(),
            });
        }
        EmailChangeConfirmed::AccountChanged => {
            state.store.append_audit(&refused(state, account, "account_changed", client)).await?;
            return Err(account_changed());
        }
        EmailChangeConfirmed::AddressTaken => {
            state.store.append_audit(&refused(state, account, "address_taken", client)).await?;
            return Err(address_taken());
        }
    }
    let account = state.store.get_account(account.id).await?.ok_or_else(unknown_link)?;
    notices::send_to(state, &account, &old, SecurityNotice::EmailChanged { new_email: mask_email(new.as_str()) }).await;
    notices::send_to(state, &account, &new, SecurityNotice::EmailChangedToThis).await;
    Ok(account)
}

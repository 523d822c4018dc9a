//! Sessions: finding the live session behind a presented token, and who it acts as;
//! and "My sessions", where a signed-in account sees its live sessions and signs out
//! the others (one, or all at once).
//!
//! Ending one's *other* sessions asks for no second factor: it only takes access
//! away, never grants any. Whoever holds this session (even someone who should not)
//! gains nothing by it, and the member who finds a session they do not recognize
//! should be able to end it at once, from any device, without first finding their
//! phone. A signed-out member signs in again with their own credentials.

use clinic_auth_core::audit::Event;
use clinic_auth_core::oidc::Proved;
use clinic_auth_core::permission::Actor;
use clinic_auth_core::user_agent::device_name;
use clinic_auth_core::{AccountId, AccountKind, SecretToken, TokenHash, UnixTime};
use clinic_auth_store::{Account, ClientInfo, SessionSummary};

use crate::{App, Error, ErrorKind, audit_event, on_own_account};

/// A live session and its account.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Account,
    pub token_hash: TokenHash,
    pub csrf_token: String,
    /// The session's public id (the `sid` claim apps see).
    pub sid: String,
    /// When the session began: the password was proved then (`auth_time`).
    pub auth_time: UnixTime,
    /// Every method proved in this session.
    pub proved: Proved,
}

impl SignedIn {
    pub fn actor(&self) -> Actor {
        actor_of(&self.account)
    }
}

pub fn actor_of(a: &Account) -> Actor {
    match (a.kind, &a.org_id, a.role) {
        (AccountKind::PlatformAdmin, _, _) => Actor::PlatformAdmin,
        (AccountKind::Member, Some(org), Some(role)) => Actor::Member { org: org.clone(), role },
        (AccountKind::Patient, Some(org), _) => Actor::Patient { org: org.clone() },
        // A member row without organization or role cannot act on anything.
        _ => Actor::Patient { org: clinic_auth_core::OrgId::from_name("none") },
    }
}

/// Ends the session behind a presented token, if there is one (a browser signing in
/// again leaves nothing behind).
pub async fn end(state: &App, presented: &str) -> Result<(), Error> {
    if let Some(token) = SecretToken::from_presented(presented) {
        state.store.delete_session(&token.hash(), None).await?;
    }
    Ok(())
}

/// Looks a presented token up; an expired or idle session is deleted and ignored.
pub async fn load(state: &App, presented: &str) -> Result<Option<SignedIn>, Error> {
    let Some(token) = SecretToken::from_presented(presented) else {
        return Ok(None);
    };
    let hash = token.hash();
    let Some(record) = state.store.get_session(&hash).await? else {
        return Ok(None);
    };
    let now = state.now();
    if !state.config.session.is_live(record.created_at, record.last_seen_at, now) {
        state.store.delete_session(&hash, None).await?;
        return Ok(None);
    }
    let Some(account) = state.store.get_account(record.account_id).await? else {
        return Ok(None);
    };
    if account.status != clinic_auth_core::AccountStatus::Active {
        state.store.delete_session(&hash, None).await?;
        return Ok(None);
    }
    state.store.touch_session(&hash, now).await?;
    Ok(Some(SignedIn {
        account,
        token_hash: hash,
        csrf_token: record.csrf_token,
        sid: record.sid,
        auth_time: record.created_at,
        proved: Proved::parse(&record.proved),
    }))
}

/// What a session is called when its User-Agent names no device this server knows.
pub const UNKNOWN_DEVICE: &str = "Unknown device";

/// One of the account's live sessions, as its list shows it: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The session's public id: how the list names it, and what apps see as `sid`.
    pub sid: String,
    /// "Chrome on Windows", "Safari on iPhone", or [`UNKNOWN_DEVICE`].
    pub device: String,
    /// Where it was signed in from: the address and User-Agent as stored.
    pub client: ClientInfo,
    /// When it was signed in.
    pub created_at: UnixTime,
    /// When it was last used.
    pub last_seen_at: UnixTime,
    /// It is the session asking ("This device").
    pub current: bool,
}

/// The signed-in account's live sessions, newest first, the asking one marked.
/// Sessions past their idle or absolute timeout are not listed (they can no longer
/// be used, and the next purge deletes them).
pub async fn list_mine(state: &App, signed_in: &SignedIn) -> Result<Vec<SessionView>, Error> {
    let now = state.now();
    let sessions = state.store.list_sessions(signed_in.account.id).await?;
    Ok(sessions
        .into_iter()
        .filter(|s| state.config.session.is_live(s.created_at, s.last_seen_at, now))
        .map(|s| SessionView {
            device: device_name(&s.client.user_agent).unwrap_or_else(|| UNKNOWN_DEVICE.to_owned()),
            current: s.sid == signed_in.sid,
            sid: s.sid,
            client: s.client,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
        })
        .collect())
}

/// Signs out one of the account's other sessions, named by its public id, and tells
/// the apps it signed into. The asking session is signed out with "Sign out"
/// (`sign_in::sign_out`), not from the list (`CurrentSession`); a `sid` that is not
/// one of the account's sessions is `NotFound`, whoever's it is.
pub async fn end_other(state: &App, signed_in: &SignedIn, sid: &str, client: &ClientInfo) -> Result<(), Error> {
    if sid == signed_in.sid {
        return Err(Error::new(ErrorKind::CurrentSession, "This is the session you are using. To end it, sign out."));
    }
    let account = &signed_in.account;
    let event = on_own_account(audit_event(state, Event::SessionEnded { sid, by_self: true }, client), account);
    if !state.store.end_session_by_sid(account.id, sid, &event).await? {
        return Err(Error::not_found("The session"));
    }
    tell_apps(state, account.id, sid).await;
    Ok(())
}

/// "Sign out of all other sessions": ends every session of the account but the
/// asking one, and tells the apps each of them signed into. The account's security
/// stamp stays, so the asking session and the apps it signed into go on. The number
/// of sessions ended that were still live (as the list showed them).
pub async fn end_all_others(state: &App, signed_in: &SignedIn, client: &ClientInfo) -> Result<u64, Error> {
    let account = &signed_in.account;
    let event = Event::OtherSessionsEnded { kept_sid: &signed_in.sid };
    let event = on_own_account(audit_event(state, event, client), account);
    let ended = state.store.end_other_sessions(account.id, &signed_in.token_hash, &event).await?;
    for s in &ended {
        tell_apps(state, account.id, &s.sid).await;
    }
    let now = state.now();
    Ok(ended.iter().filter(|s| live(state, s, now)).count() as u64)
}

fn live(state: &App, s: &SessionSummary, now: UnixTime) -> bool {
    state.config.session.is_live(s.created_at, s.last_seen_at, now)
}

/// A session just ended: the apps it signed into are told (back-channel logout).
/// The session has ended whatever happens here, so a failure to queue is logged
/// rather than answered.
async fn tell_apps(state: &App, account: AccountId, sid: &str) {
    if let Err(e) = crate::oidc::logout::notify(state, account, Some(sid), None).await {
        tracing::warn!(error = %e, "back-channel logouts could not be queued");
    }
}

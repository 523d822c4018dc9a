//! Sessions: finding the live session behind a presented token, and who it acts as.

use clinic_auth_core::oidc::Proved;
use clinic_auth_core::permission::Actor;
use clinic_auth_core::{AccountKind, SecretToken, TokenHash, UnixTime};
use clinic_auth_store::Account;

use crate::{App, Error};

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

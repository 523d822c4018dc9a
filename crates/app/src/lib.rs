//! The use cases of clinic-auth, written once for every door: the sign-in pages, the
//! JSON API and the command line call these functions and only render what they
//! answer. Each takes already extracted input, applies the core's rules and writes
//! through the store; nothing here knows HTTP.
//!
//! Start with `sign_in`: it follows a sign-in from the email to the session.

pub mod access;
pub mod accounts;
pub mod admin;
mod attempts;
pub mod branding;
pub mod codes;
pub mod config;
pub mod crypto;
pub mod email_change;
mod error;
pub mod factors;
pub mod hashing;
pub mod mfa_state;
pub mod notices;
pub mod oidc;
pub mod ops;
pub mod passkeys;
pub mod passwords;
pub mod policy;
pub mod sessions;
pub mod sign_in;
pub mod time;

use std::sync::Arc;

use clinic_auth_core::{Clock, UnixTime};
use clinic_auth_store::Store;

pub use config::{CookieSecurity, WebConfig, default_public_url};
pub use crypto::{KeyringError, Sealer};
pub use error::{Error, ErrorKind, Result};
pub use hashing::PasswordHasher;
pub use sessions::SignedIn;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// Everything a use case can reach: the store, the clock, the settings, password
/// hashing, the keyring, delivery and the passkey relying party.
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: WebConfig,
    pub hasher: PasswordHasher,
    pub sealer: Sealer,
    pub senders: Senders,
    /// The passkey relying party; `None` when the configuration cannot have one (an
    /// IP address or plain HTTP other than localhost), and passkeys are not offered.
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Sends back-channel logout tokens to apps; `None` if its HTTP client could not
    /// be built (logouts then wait in the queue).
    pub logout_poster: Option<clinic_auth_notify::LogoutPoster>,
    /// One delivery run at a time in this process, so a logout is not sent twice by
    /// the background task and a run started right after queueing.
    pub logout_delivery: tokio::sync::Mutex<()>,
    /// Refusals while a lock is in force, written as one audit event per lock period.
    pub locked_refusals: attempts::LockedRefusals,
}

/// Where emailed and texted codes go.
#[derive(Debug, Clone)]
pub struct Senders {
    pub email: Arc<dyn clinic_auth_notify::EmailSender>,
    pub sms: Arc<dyn clinic_auth_notify::SmsSender>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: WebConfig,
        sealer: Sealer,
        senders: Senders,
    ) -> App {
        let hasher = PasswordHasher::new(config.hashing_concurrency);
        let webauthn = match passkeys::relying_party(&config) {
            Ok(w) => Some(w),
            Err(why) => {
                // `serve` says so once at start-up; admin commands need no passkeys
                // and stay quiet.
                tracing::debug!("passkeys are off: {why}");
                None
            }
        };
        let logout_poster = clinic_auth_notify::LogoutPoster::new()
            .inspect_err(|e| tracing::warn!(error = %e, "back-channel logout delivery is off"))
            .ok();
        App(Arc::new(Inner {
            store,
            clock,
            config,
            hasher,
            sealer,
            senders,
            webauthn,
            logout_poster,
            logout_delivery: Default::default(),
            locked_refusals: Default::default(),
        }))
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Whether the database answers, for health checks; the store's name when it does.
    pub async fn store_answers(&self) -> Result<&'static str, Error> {
        self.store.ping().await?;
        Ok(self.store.backend_name())
    }

    /// Writes the audit events of lock periods that are over (every one with `all`,
    /// at shutdown): refusals while locked are counted in memory meanwhile.
    pub async fn flush_locked_refusals(&self, all: bool) {
        self.locked_refusals.flush(self, all).await;
    }

    /// Deletes expired flows (reporting those abandoned at the second factor), idle
    /// sessions and stale links.
    pub async fn purge_expired(&self) -> Result<u64> {
        if let Err(e) = sign_in::report_abandoned(self).await {
            tracing::warn!(error = %e, "reporting abandoned sign-ins failed");
        }
        let now = self.now();
        let idle_cutoff = now.plus_secs(-self.config.session.idle_secs);
        Ok(self.store.purge_expired(now, idle_cutoff).await?)
    }
}

use clinic_auth_core::audit::Event;
use clinic_auth_core::permission::Actor;
use clinic_auth_core::{AccountId, Purpose, TokenHash};
use clinic_auth_store::{ClientInfo, NewAuditEvent, Via};

/// Who is asking, for permission checks and audit events.
#[derive(Debug, Clone)]
pub struct By {
    pub actor: Actor,
    pub account_id: Option<AccountId>,
    pub client: ClientInfo,
    /// The session acting, for the step-up check when an admin acts on themself.
    pub session: Option<TokenHash>,
}

impl By {
    /// The command line on the server.
    pub fn operator() -> By {
        By {
            actor: Actor::Operator,
            account_id: None,
            client: ClientInfo { ip: "local".into(), user_agent: "clinic-auth cli".into() },
            session: None,
        }
    }
}

impl By {
    /// A signed-in account acting from a page or the API.
    pub fn signed_in(s: &SignedIn, client: ClientInfo) -> By {
        By { actor: s.actor(), account_id: Some(s.account.id), client, session: Some(s.token_hash.clone()) }
    }
}

/// Where a second-factor step happens: inside a sign-in (its login flow) or a
/// signed-in session. An emailed or texted code is good only where it was asked for,
/// and a change to the account made here keeps this sign-in or session alive while
/// ending the others.
#[derive(Debug, Clone, Copy)]
pub enum Within<'a> {
    SignIn(&'a TokenHash),
    Session(&'a TokenHash),
}

impl Within<'_> {
    /// What a code sent here is bound to.
    pub fn binding(&self) -> &str {
        match self {
            Within::SignIn(h) | Within::Session(h) => h.as_str(),
        }
    }

    pub fn via(&self) -> Via {
        match self {
            Within::SignIn(h) => Via { flow: Some((*h).clone()), session: None },
            Within::Session(h) => Via { flow: None, session: Some((*h).clone()) },
        }
    }

    /// What checking a factor here is for.
    pub fn purpose(&self) -> Purpose {
        match self {
            Within::SignIn(_) => Purpose::SignIn,
            Within::Session(_) => Purpose::StepUp,
        }
    }
}

/// `event` as the store records it, at the current time; callers say whose
/// organization, who acted and on whom (`on_own_account` for a person acting on
/// themself).
pub fn audit_event(state: &App, event: Event<'_>, client: &ClientInfo) -> NewAuditEvent {
    NewAuditEvent {
        at: state.now(),
        kind: event.kind(),
        outcome: event.outcome(),
        org_id: None,
        actor_id: None,
        subject_id: None,
        client: client.clone(),
        detail: event.detail(),
        via: Via::default(),
    }
}

/// An event of `account` acting on its own account.
pub fn on_own_account(mut event: NewAuditEvent, account: &clinic_auth_store::Account) -> NewAuditEvent {
    event.org_id = account.org_id.clone();
    event.actor_id = Some(account.id);
    event.subject_id = Some(account.id);
    event
}

/// An event about `account` with no signed-in actor (a refused sign-in or answer).
pub fn about_account(mut event: NewAuditEvent, account: &clinic_auth_store::Account) -> NewAuditEvent {
    event.org_id = account.org_id.clone();
    event.subject_id = Some(account.id);
    event
}

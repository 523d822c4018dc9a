//! What the pages and the API both do, written once. Each function takes already
//! extracted input, applies the core's rules, and writes through the store.

pub mod accounts;
pub mod admin;
pub mod codes;
pub mod login;
pub mod mfa;
pub mod notices;
pub mod passkeys;
pub mod policy;
pub mod time;

use clinic_auth_core::permission::Actor;
use clinic_auth_core::{AccountId, TokenHash};
use clinic_auth_store::{ClientInfo, NewAuditEvent, Via};

use crate::AppState;

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
    pub fn signed_in(s: &crate::http::auth::SignedIn, client: ClientInfo) -> By {
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

    /// The audit word for checking a factor here.
    pub fn purpose(&self) -> &'static str {
        match self {
            Within::SignIn(_) => "sign_in",
            Within::Session(_) => "step_up",
        }
    }
}

/// An audit event at the current time; callers fill in org, actor, subject, detail.
pub fn audit_event(state: &AppState, kind: &'static str, outcome: &'static str, client: &ClientInfo) -> NewAuditEvent {
    NewAuditEvent {
        at: state.now(),
        kind,
        outcome,
        org_id: None,
        actor_id: None,
        subject_id: None,
        client: client.clone(),
        detail: "{}".to_owned(),
        via: Via::default(),
    }
}

/// A JSON object for an audit event's detail. Only ever pass non-secret values.
pub fn detail(pairs: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned()))).collect();
    serde_json::Value::Object(map).to_string()
}

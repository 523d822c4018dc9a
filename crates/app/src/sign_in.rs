//! Signing in, from the first page to the session. The sign-in pages (staff and
//! patient) and `/api/v1/login` are two doors into this one implementation; they keep
//! the flow's token (a cookie, or the `flow_id` in JSON) and render what it answers.
//!
//! A sign-in is a `LoginFlow` row, keyed by the hash of a token only the client has:
//!
//! 1. `start`: an email. Any well-formed email starts a flow, so this step tells
//!    nobody who has an account.
//! 2. `submit_password`: the password, checked after the same work whether or not the
//!    account exists (`clinic_auth_core::login_flow::after_password` decides what is
//!    next from the account's policy, `policy::requirement`). The flow now belongs to
//!    the account *as it is now* (its security stamp): any change to the account's
//!    password, factors or status ends it. Next is one of
//!    - a session at once (no second factor applies),
//!    - the second-factor step (`FlowStep::SecondFactor`), or
//!    - setup of a first factor (`FlowStep::Enroll`), when the policy requires one.
//! 3. Second factor: `resume` tells a surface what to show (`SignInStep`);
//!    `choose_method` is "Try another method"; `ensure_code_sent` sends an email or
//!    text code; `submit_code` checks an authenticator, emailed, texted or recovery
//!    code, and `begin_passkey`/`submit_passkey` a passkey. Every answer takes one of
//!    the flow's attempts before it is checked (`reserve_answer`), and one of the
//!    member's (`attempts::reserve_attempt`); too many wrong answers end the flow.
//! 4. Setup inside a sign-in: `choose_enrollment_method`, then `begin_enrollment` /
//!    `confirm_enrollment` (authenticator app) or `send_enrollment_code` /
//!    `confirm_code_enrollment` (email, text message).
//! 5. `grant_session`: the session row is written in one transaction with the end of
//!    the flow and the "signed in" audit event, and only while the account's security
//!    stamp is still the one the password was accepted for.
//!
//! After a proof, `after_proof` sends a member whose every factor is one their
//! organization no longer allows to set up an allowed one before the session
//! (`finish_setup` then removes the old factors and issues a new recovery code).

use clinic_auth_core::login_flow::{self, AfterPassword, AfterWrongCode, PasswordCheck, PasswordRejection};
use clinic_auth_core::oidc::{self, ProofMethod};
use clinic_auth_core::{
    Email, FactorKind, FlowStep, LoginFlow, MethodSet, Password, Purpose, Realm, RecoveryCode, Requirement,
    SecretToken, ThrottleRule, TokenHash, UnixTime,
};
use clinic_auth_store::{Account, ClientInfo, NewSession};

use super::codes::{self, SentTo};
use super::passkeys;
use super::{Within, audit_event, on_own_account};
use crate::factors::{self, AuthenticatorSetup, Proof};
use crate::{App, Error, ErrorKind};
use clinic_auth_core::audit::Event;
use clinic_auth_notify::SecurityNotice;

/// A started sign-in: the flow's token goes to the client (cookie or JSON).
#[derive(Debug)]
pub struct Started {
    pub flow_token: SecretToken,
    pub flow: LoginFlow,
}

/// A completed sign-in: the new session's token goes to the client, once.
#[derive(Debug)]
pub struct SignedInSession {
    pub token: SecretToken,
    pub csrf_token: String,
    pub account: Account,
    /// A recovery code to show once: the first one after setup, or the replacement
    /// for one just used.
    pub new_recovery_code: Option<RecoveryCode>,
    /// The sign-in used (and so replaced) the recovery code.
    pub used_recovery_code: bool,
    /// The sign-in used a one-time bypass that removed the member's factors, and the
    /// member may set 2FA up again now (it was not required, so it was not forced).
    pub suggest_setup: bool,
}

/// Where a sign-in stands after the password.
#[derive(Debug)]
pub enum PasswordOutcome {
    SignedIn(Box<SignedInSession>),
    /// A second factor is next, starting with `method`.
    SecondFactor {
        method: FactorKind,
        others: Vec<FactorKind>,
    },
    /// Setting up a second factor is next; no session before it completes, unless
    /// the member chooses "Remind me later" (`remind_later`) before `remind_until`.
    Enroll {
        allowed: MethodSet,
        remind_until: Option<UnixTime>,
    },
}

pub fn incorrect() -> Error {
    Error::new(ErrorKind::IncorrectCredentials, "Email or password is incorrect.")
}

pub fn flow_expired() -> Error {
    Error::new(ErrorKind::FlowExpired, "Your sign-in took too long. Please start again.")
}

/// Step one: an email. Any well-formed email starts a flow, whether or not an account
/// exists, so this step tells nobody who has an account.
///
/// `org_hint` is the clinic whose sign-in page this is (`/login?org=ID`): kept with
/// the flow for its branding, whether or not such a clinic exists.
pub async fn start(state: &App, realm: Realm, email: &str, org_hint: Option<&str>) -> Result<Started, Error> {
    let email = Email::parse(email)
        .map_err(|_| Error::new(ErrorKind::InvalidEmail, "Enter a valid email address, like name@clinic.org."))?;
    let flow_token = SecretToken::generate();
    let flow = LoginFlow::start(realm, email, state.now()).with_org_hint(crate::branding::parse_hint(org_hint));
    state.store.insert_flow(&flow_token.hash(), &flow).await?;
    Ok(Started { flow_token, flow })
}

/// The look of this sign-in's pages (its clinic's branding): the hint's until the
/// account is known, then the account's. `None` when the sign-in is over.
pub async fn look(state: &App, flow_token: &str) -> Option<crate::branding::Look> {
    let flow = current(state, flow_token).await.ok()?;
    let account = match flow.step.account_id() {
        Some(id) => state.store.get_account(id).await.ok().flatten(),
        None => None,
    };
    match account {
        Some(a) => crate::branding::look_for_account(state, &a, flow.org_hint.as_ref()).await,
        None => crate::branding::look_for_hint(state, flow.org_hint.as_ref()).await,
    }
}

/// The flow a client's token names, if it is still current.
pub async fn current(state: &App, flow_token: &str) -> Result<LoginFlow, Error> {
    let token = SecretToken::from_presented(flow_token).ok_or_else(flow_expired)?;
    match state.store.get_flow(&token.hash()).await? {
        Some(flow) if !flow.is_expired(state.now()) => Ok(flow),
        Some(_) => {
            state.store.delete_flow(&token.hash()).await?;
            Err(flow_expired())
        }
        None => Err(flow_expired()),
    }
}

fn account_key(flow: &LoginFlow) -> String {
    password_key(flow.realm, &flow.email)
}

/// The key of an email's wrong-password count (`ThrottleRule::PASSWORD_PER_ACCOUNT`),
/// shared by sign-in and "Change password".
pub(crate) fn password_key(realm: Realm, email: &Email) -> String {
    format!("password:{realm}:{email}")
}

fn client_key(client: &ClientInfo) -> String {
    format!("password-client:{}", client.ip)
}

/// Step two: the password. Unknown emails, accounts without a password yet and wrong
/// passwords get one answer after the same amount of work.
pub async fn submit_password(
    state: &App,
    flow_token: &str,
    password: Password,
    device_hints: &[String],
    client: &ClientInfo,
) -> Result<PasswordOutcome, Error> {
    let flow = current(state, flow_token).await?;
    if flow.step != FlowStep::Password {
        return Err(flow_expired());
    }
    let flow_hash = SecretToken::from_presented(flow_token).ok_or_else(flow_expired)?.hash();
    let now = state.now();
    let (acct_key, ip_key) = (account_key(&flow), client_key(client));
    for (key, which) in [(&acct_key, "account_locked"), (&ip_key, "client_locked")] {
        let lock = state.store.get_throttle(key).await?;
        if let Some(locked_for) = lock.and_then(|t| t.locked_for(now)) {
            // Refused without checking the password, but on the record: an admin
            // looking into a locked-out member sees the attempts, counted in one
            // event per lock period rather than written one by one.
            let account = state.store.find_account(flow.realm, &flow.email).await?;
            let refused = Event::SignInRefused { realm: flow.realm, reason: which, email: Some(flow.email.as_str()) };
            let until = lock.map(|t| t.locked_until);
            let event = || refusal(state, refused, account.as_ref(), client);
            state.locked_refusals.note(state, key, until, event).await;
            return Err(Error::too_many_attempts(locked_for));
        }
    }

    let account = state.store.find_account(flow.realm, &flow.email).await?;
    let stored_hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
    let verification = state.hasher.verify(&password, stored_hash).await?;
    let check = match (&account, verification.matches) {
        (Some(a), true) => PasswordCheck::Correct(a.status),
        (Some(_), false) => PasswordCheck::Wrong,
        (None, _) => PasswordCheck::NoSuchAccount,
    };

    let mfa_state = match &account {
        Some(a) if verification.matches => Some(factors::load(state, a).await?),
        _ => None,
    };
    let requirement = match (&account, &mfa_state) {
        (Some(a), Some(m)) => m.requirement_on_device(a, device_hints),
        _ => Requirement::NoSecondFactor,
    };

    let after = login_flow::after_password(check, &requirement);
    // From here on the flow is for this account as it is now: any change to its
    // security state ends the sign-in.
    let flow = LoginFlow {
        stamp: account.as_ref().map(|a| a.security_stamp).unwrap_or(0),
        client_ip: Some(client.ip.clone()),
        ..flow
    };
    if let (Requirement::Bypass { .. }, AfterPassword::SignIn | AfterPassword::Enroll { .. }, Some(account)) =
        (&requirement, &after, &account)
    {
        state.store.clear_throttle(&acct_key).await?;
        rehash_if_needed(state, account, &password, verification.needs_rehash).await?;
        return use_bypass(state, flow, &flow_hash, account.clone(), after, client).await;
    }
    match (after, account) {
        (AfterPassword::SignIn, Some(account)) => {
            state.store.clear_throttle(&acct_key).await?;
            rehash_if_needed(state, &account, &password, verification.needs_rehash).await?;
            let done = grant_session(state, &flow, &flow_hash, account, "password", false, client).await?;
            Ok(PasswordOutcome::SignedIn(Box::new(done)))
        }
        (AfterPassword::SecondFactor { method }, Some(account)) => {
            state.store.clear_throttle(&acct_key).await?;
            rehash_if_needed(state, &account, &password, verification.needs_rehash).await?;
            let others = match &mfa_state {
                Some(m) => m.available(&account).into_iter().filter(|k| *k != method).collect(),
                None => Vec::new(),
            };
            let next = LoginFlow { step: FlowStep::SecondFactor { account_id: account.id, method }, ..flow };
            if !state.store.update_flow(&flow_hash, &next).await? {
                return Err(flow_expired());
            }
            Ok(PasswordOutcome::SecondFactor { method, others })
        }
        (AfterPassword::Enroll { allowed, remind_until }, Some(account)) => {
            state.store.clear_throttle(&acct_key).await?;
            rehash_if_needed(state, &account, &password, verification.needs_rehash).await?;
            let next = LoginFlow {
                step: FlowStep::Enroll {
                    account_id: account.id,
                    allowed,
                    chosen: None,
                    replacing: false,
                    after_bypass: false,
                    remind_until,
                },
                ..flow
            };
            if !state.store.update_flow(&flow_hash, &next).await? {
                return Err(flow_expired());
            }
            Ok(PasswordOutcome::Enroll { allowed, remind_until })
        }
        (AfterPassword::Rejected(PasswordRejection::Deactivated), account) => {
            let refused = Event::SignInRefused { realm: flow.realm, reason: "account_deactivated", email: None };
            state.store.append_audit(&refusal(state, refused, account.as_ref(), client)).await?;
            Err(Error::new(
                ErrorKind::AccountDeactivated,
                "This account is deactivated. Contact your clinic's administrator.",
            ))
        }
        (_, account) => {
            let reason = match (check, &account) {
                (PasswordCheck::NoSuchAccount, _) => "unknown_account",
                (_, Some(a)) if a.password_hash.is_none() => "no_password_set",
                _ => "wrong_password",
            };
            let refused = Event::SignInRefused { realm: flow.realm, reason, email: Some(flow.email.as_str()) };
            let event = refusal(state, refused, account.as_ref(), client);
            state.store.record_failure(&acct_key, ThrottleRule::PASSWORD_PER_ACCOUNT, now, Some(&event)).await?;
            state.store.record_failure(&ip_key, ThrottleRule::PASSWORD_PER_CLIENT, now, None).await?;
            Err(incorrect())
        }
    }
}

/// A refused sign-in, on the record of the account the email belongs to, if any.
fn refusal(
    state: &App,
    refused: Event<'_>,
    account: Option<&Account>,
    client: &ClientInfo,
) -> clinic_auth_store::NewAuditEvent {
    let mut event = audit_event(state, refused, client);
    event.org_id = account.and_then(|a| a.org_id.clone());
    event.subject_id = account.map(|a| a.id);
    event
}

/// Signs out: the session row is deleted, so the token is dead everywhere at once, and
/// the apps this session signed into are told (back-channel logout).
pub async fn sign_out(state: &App, signed_in: &crate::sessions::SignedIn, client: &ClientInfo) -> Result<(), Error> {
    let event = on_own_account(audit_event(state, Event::SignedOut, client), &signed_in.account);
    state.store.delete_session(&signed_in.token_hash, Some(&event)).await?;
    crate::oidc::logout::notify(state, signed_in.account.id, Some(&signed_in.sid), None).await
}

async fn rehash_if_needed(state: &App, account: &Account, password: &Password, needed: bool) -> Result<(), Error> {
    if needed {
        let hash = state.hasher.rehash(password).await?;
        state.store.rehash_password(account.id, &hash, state.now()).await?;
    }
    Ok(())
}

/// Signs in with a one-time bypass: in one transaction the bypass is used up and the
/// member's factors cleared, so that they set up 2FA again ("log in once without 2FA
/// and be prompted to configure their authenticator app again"). When MFA applies,
/// setup comes next and the session only after it; otherwise the session starts now.
async fn use_bypass(
    state: &App,
    flow: LoginFlow,
    flow_hash: &TokenHash,
    account: Account,
    after: AfterPassword,
    client: &ClientInfo,
) -> Result<PasswordOutcome, Error> {
    let then_setup = matches!(after, AfterPassword::Enroll { .. });
    let mut used = on_own_account(audit_event(state, Event::BypassUsed { then_setup }, client), &account);
    used.via = Within::SignIn(flow_hash).via();
    let now = state.now();
    match after {
        AfterPassword::Enroll { allowed, .. } => {
            if !state.store.use_bypass(account.id, now, &used, None).await? {
                return Err(flow_expired());
            }
            super::notices::send(state, &account, SecurityNotice::FactorRemoved { method: "all".to_owned() }).await;
            let step = FlowStep::Enroll {
                account_id: account.id,
                allowed,
                chosen: None,
                replacing: false,
                after_bypass: true,
                // A bypass sign-in sets up again now, grace period or not.
                remind_until: None,
            };
            let next = LoginFlow { step, ..flow };
            if !state.store.update_flow(flow_hash, &next).await? {
                return Err(flow_expired());
            }
            Ok(PasswordOutcome::Enroll { allowed, remind_until: None })
        }
        _ => {
            let (token, csrf_token, session, signed_in) = new_session(state, &flow, &account, "bypass", false, client);
            if !state.store.use_bypass(account.id, now, &used, Some((&session, flow_hash, &signed_in))).await? {
                return Err(flow_expired());
            }
            super::notices::send(state, &account, SecurityNotice::FactorRemoved { method: "all".to_owned() }).await;
            // Seed 004: "…log in once without 2FA and will be prompted to configure their
            // authenticator app again". Where 2FA is not required, the prompt is an offer.
            let suggest_setup = factors::load(state, &account).await?.may_opt_in(&account);
            Ok(PasswordOutcome::SignedIn(Box::new(SignedInSession {
                token,
                csrf_token,
                account,
                new_recovery_code: None,
                used_recovery_code: false,
                suggest_setup,
            })))
        }
    }
}

/// A new session's token, CSRF token, row and "signed in" audit event.
fn new_session(
    state: &App,
    flow: &LoginFlow,
    account: &Account,
    method: &str,
    second_factor: bool,
    client: &ClientInfo,
) -> (SecretToken, String, NewSession, clinic_auth_store::NewAuditEvent) {
    let token = SecretToken::generate();
    let csrf_token = SecretToken::generate().expose().to_owned();
    let event = on_own_account(audit_event(state, Event::SignedIn { realm: flow.realm, method }, client), account);
    // What the sign-in proved, for apps: the password, and the factor when one was.
    let proved = match ProofMethod::parse(method) {
        Some(m @ ProofMethod::Factor(_)) if second_factor => oidc::Proved::password().with(m),
        _ => oidc::Proved::password(),
    };
    let session = NewSession {
        token_hash: token.hash(),
        account_id: account.id,
        csrf_token: csrf_token.clone(),
        now: state.now(),
        client: client.clone(),
        second_factor,
        sid: uuid::Uuid::new_v4().simple().to_string(),
        proved: proved.to_stored(),
        stamp: flow.stamp,
    };
    (token, csrf_token, session, event)
}

/// Ends a flow with a session. `second_factor` says whether one was proved.
async fn grant_session(
    state: &App,
    flow: &LoginFlow,
    flow_hash: &TokenHash,
    account: Account,
    method: &str,
    second_factor: bool,
    client: &ClientInfo,
) -> Result<SignedInSession, Error> {
    let (token, csrf_token, session, event) = new_session(state, flow, &account, method, second_factor, client);
    state.store.insert_session(&session, flow_hash, &event).await.map_err(|e| match e {
        clinic_auth_store::StoreError::MissingReference(_) => flow_expired(),
        other => other.into(),
    })?;
    Ok(SignedInSession {
        token,
        csrf_token,
        account,
        new_recovery_code: None,
        used_recovery_code: false,
        suggest_setup: false,
    })
}

/// A flow past its password step, with its account.
pub struct FlowAt {
    pub flow: LoginFlow,
    pub flow_hash: TokenHash,
    pub account: Account,
}

/// The flow and account behind a token, when the flow is past the password.
pub async fn past_password(state: &App, flow_token: &str) -> Result<FlowAt, Error> {
    let flow = current(state, flow_token).await?;
    with_account(state, flow_token, flow).await
}

/// A current flow with its account, re-checked: see `past_password`.
async fn with_account(state: &App, flow_token: &str, flow: LoginFlow) -> Result<FlowAt, Error> {
    let flow_hash = SecretToken::from_presented(flow_token).ok_or_else(flow_expired)?.hash();
    let id = flow.step.account_id().ok_or_else(flow_expired)?;
    let account = state.store.get_account(id).await?.ok_or_else(flow_expired)?;
    // Every step re-checks the account: deactivated, or its password, factors,
    // bypass or sessions changed since this sign-in's password was accepted.
    if account.status != clinic_auth_core::AccountStatus::Active || !flow.is_current_for(account.security_stamp) {
        state.store.delete_flow(&flow_hash).await?;
        return Err(flow_expired());
    }
    Ok(FlowAt { flow, flow_hash, account })
}

/// A flow at its setup step. Setting up inside a sign-in is only for an account
/// without any factor (one that has a factor proves it instead), or for a member who
/// just proved a factor their organization no longer allows and has no allowed one.
async fn enrolling(state: &App, flow_token: &str) -> Result<FlowAt, Error> {
    let at = past_password(state, flow_token).await?;
    let FlowStep::Enroll { replacing, .. } = at.flow.step else { return Err(flow_expired()) };
    let m = factors::load(state, &at.account).await?;
    let may_enroll = if replacing { m.must_replace(&at.account).is_some() } else { m.factors.is_empty() };
    if !may_enroll {
        state.store.delete_flow(&at.flow_hash).await?;
        return Err(flow_expired());
    }
    Ok(at)
}

/// After a second factor was proved: the session, or, when that factor (like all the
/// member's) is one the organization no longer allows, setup of an allowed one first.
async fn after_proof(state: &App, at: FlowAt, method: FactorKind, client: &ClientInfo) -> Result<Proved, Error> {
    if let Some(allowed) = factors::load(state, &at.account).await?.must_replace(&at.account) {
        let step = FlowStep::Enroll {
            account_id: at.account.id,
            allowed,
            chosen: None,
            replacing: true,
            after_bypass: false,
            remind_until: None,
        };
        if !state.store.update_flow(&at.flow_hash, &LoginFlow { step, ..at.flow }).await? {
            return Err(flow_expired());
        }
        return Ok(Proved::Enroll { allowed });
    }
    let done = grant_session(state, &at.flow, &at.flow_hash, at.account, method.as_str(), true, client).await?;
    Ok(Proved::SignedIn(Box::new(done)))
}

/// What a proved second factor leads to.
#[derive(Debug)]
pub enum Proved {
    SignedIn(Box<SignedInSession>),
    /// The factor was one the organization no longer allows: set up one of `allowed`
    /// now; the session follows, and the old factors are removed.
    Enroll {
        allowed: MethodSet,
    },
}

/// Setup inside a sign-in is done: when it replaced factors the organization no
/// longer allows, they are removed (audited, the member told) and a new recovery
/// code is issued, to be shown with the session.
async fn finish_setup(
    state: &App,
    at: FlowAt,
    method: FactorKind,
    recovery: Option<RecoveryCode>,
    client: &ClientInfo,
) -> Result<SignedInSession, Error> {
    let FlowStep::Enroll { replacing, .. } = at.flow.step else { return Err(flow_expired()) };
    let mut recovery = recovery;
    if replacing {
        let m = factors::load(state, &at.account).await?;
        for kind in m.outside_allowed(&at.account) {
            let removed = Event::FactorRemoved {
                method: Some(kind),
                reason: Some("method_not_allowed"),
                by_self: false,
                passkey_id: None,
            };
            let mut event = on_own_account(audit_event(state, removed, client), &at.account);
            event.via = Within::SignIn(&at.flow_hash).via();
            state.store.remove_factors(at.account.id, Some(kind), &event).await?;
            let method = factors::method_label(kind).to_owned();
            super::notices::send(state, &at.account, SecurityNotice::FactorRemoved { method }).await;
        }
        // The code that may have proved the old factor was replaced unseen: a new one, shown now.
        let fresh = RecoveryCode::generate();
        let event = on_own_account(audit_event(state, Event::RecoveryCodeReplaced, client), &at.account);
        state.store.replace_recovery_code(at.account.id, None, &fresh.hash(), state.now(), &event).await?;
        recovery = Some(fresh);
    }
    let mut done = grant_session(state, &at.flow, &at.flow_hash, at.account, method.as_str(), true, client).await?;
    done.new_recovery_code = recovery;
    Ok(done)
}

/// Where a sign-in stands, for the surface that shows it.
#[derive(Debug)]
pub enum SignInStep {
    /// The password comes next.
    Password,
    /// A second factor: `method` is asked for, `others` are behind "Try another
    /// method", and `sent` says where an email or text code went (none until "Send
    /// code", or the password, sent one).
    SecondFactor { method: FactorKind, others: Vec<FactorKind>, sent: Option<SentTo> },
    /// Setting up a first factor: one of `allowed`; `method` once chosen (or the only
    /// one allowed); `sent` says where a setup code went; `remind_until` while the
    /// member may still choose "Remind me later".
    Enroll {
        allowed: MethodSet,
        method: Option<FactorKind>,
        sent: Option<SentTo>,
        replacing: bool,
        remind_until: Option<UnixTime>,
    },
}

/// A sign-in picked up where it stands: the flow, its account and their MFA state are
/// each read once, and the answer holds everything a surface shows for this step.
#[derive(Debug)]
pub struct Resumed {
    pub realm: Realm,
    pub step: SignInStep,
}

/// Resumes the sign-in behind `flow_token`; `FlowExpired` when it is over.
pub async fn resume(state: &App, flow_token: &str) -> Result<Resumed, Error> {
    let flow = current(state, flow_token).await?;
    let realm = flow.realm;
    if flow.step == FlowStep::Password {
        return Ok(Resumed { realm, step: SignInStep::Password });
    }
    let at = with_account(state, flow_token, flow).await?;
    let step = match at.flow.step {
        FlowStep::SecondFactor { method, .. } => {
            let available = factors::load(state, &at.account).await?.available(&at.account);
            let others = available.into_iter().filter(|k| *k != method).collect();
            SignInStep::SecondFactor { method, others, sent: code_in_flight(state, &at).await? }
        }
        FlowStep::Enroll { allowed, replacing, remind_until, .. } => SignInStep::Enroll {
            allowed,
            method: enrollment_method(&at),
            sent: enrollment_code_sent(state, &at).await?,
            replacing,
            remind_until: remind_until.filter(|until| state.now() < *until),
        },
        FlowStep::Password => SignInStep::Password,
    };
    Ok(Resumed { realm, step })
}

/// The methods a second-factor step offers: the current one first, then "Try another
/// method".
/// "Try another method" in a browser: the other methods, and a passkey only where this
/// browser holds one of the account's passkeys (by its device hints).
pub async fn methods(
    state: &App,
    at: &FlowAt,
    device_hints: &[String],
) -> Result<(FactorKind, Vec<FactorKind>), Error> {
    let FlowStep::SecondFactor { method, .. } = at.flow.step else { return Err(flow_expired()) };
    let mfa = factors::load(state, &at.account).await?;
    let here = crate::mfa_state::is_trusted_device(&mfa.factors, device_hints);
    let others = mfa
        .available(&at.account)
        .into_iter()
        .filter(|k| *k != method && (*k != FactorKind::Passkey || here))
        .collect();
    Ok((method, others))
}

/// "Try another method": switches the flow to another enrolled factor.
pub async fn choose_method(state: &App, flow_token: &str, method: FactorKind) -> Result<(), Error> {
    let at = past_password(state, flow_token).await?;
    let FlowStep::SecondFactor { account_id, .. } = at.flow.step else { return Err(flow_expired()) };
    let available = factors::load(state, &at.account).await?.available(&at.account);
    if !available.contains(&method) {
        return Err(Error::new(ErrorKind::MethodUnavailable, "That method is not set up for this account."));
    }
    let next = LoginFlow { step: FlowStep::SecondFactor { account_id, method }, ..at.flow };
    if !state.store.update_flow(&at.flow_hash, &next).await? {
        return Err(flow_expired());
    }
    Ok(())
}

/// The second factor of a sign-in. Wrong codes count against the flow (it must start
/// over after a few) and against the account (lockout with backoff).
///
/// One read and one write: everything the answer is judged against is read in one
/// snapshot (`Store::load_answer`), the answer is judged in memory, and the verdict
/// is settled in one transaction that re-checks every limit (`accept_answer`,
/// `refuse_answer`). A refusal because a lock is in force writes nothing; it is
/// counted in memory (`LockedRefusals`).
pub async fn submit_code(state: &App, flow_token: &str, input: &str, client: &ClientInfo) -> Result<Proved, Error> {
    let flow_hash = SecretToken::from_presented(flow_token).ok_or_else(flow_expired)?.hash();
    let now = state.now();
    // A sign-in already refused under a lock that is still on: refused again at once.
    if let Some(until) = state.locked_refusals.refuse_known_flow(flow_hash.as_str(), now) {
        return Err(Error::too_many_attempts(now.secs_until(until).max(1)));
    }
    let cx = state.store.load_answer(&flow_hash, crate::attempts::LOCKOUT_PREFIX).await?.ok_or_else(flow_expired)?;
    if cx.flow.is_expired(now) {
        state.store.delete_flow(&flow_hash).await?;
        return Err(flow_expired());
    }
    let Some(account) = cx.account.clone().filter(|a| Some(a.id) == cx.flow.step.account_id()) else {
        return Err(flow_expired());
    };
    // The account changed since the password was accepted (deactivated, or its
    // password, factors, bypass or sessions): this sign-in is over.
    if account.status != clinic_auth_core::AccountStatus::Active || !cx.flow.is_current_for(account.security_stamp) {
        state.store.delete_flow(&flow_hash).await?;
        return Err(flow_expired());
    }
    let FlowStep::SecondFactor { method, .. } = cx.flow.step else { return Err(flow_expired()) };
    if method == FactorKind::Passkey {
        return Err(Error::new(ErrorKind::MethodUnavailable, "Use your passkey to continue."));
    }
    let answer = factors::parse_answer(method, input)?;
    let key = crate::attempts::throttle_key(&account);
    let limits = clinic_auth_store::AnswerLimits {
        flow: &flow_hash,
        account: account.id,
        stamp: cx.flow.stamp,
        method,
        now,
        max_flow_attempts: login_flow::MAX_CODE_ATTEMPTS_PER_FLOW,
        throttle_key: &key,
        throttle_rule: ThrottleRule::SECOND_FACTOR_PER_ACCOUNT,
        failure_cap: clinic_auth_core::throttle::MAX_CONSECUTIVE_FAILURES,
        clear_counts: cx.throttle.is_some() || !cx.factor_failures.is_empty(),
    };
    // Locks in force refuse without a check and without a write.
    if let Some(blocked) = blocked_at_read(&cx, method, now) {
        return Err(refuse_blocked(state, &account, &limits, blocked, client).await?);
    }
    if cx.flow_attempts >= login_flow::MAX_CODE_ATTEMPTS_PER_FLOW {
        state.store.delete_flow(&flow_hash).await?;
        password_known(state, &account, client).await?;
        return Err(Error::new(
            ErrorKind::FlowExpired,
            "Too many failed attempts. For your security, start signing in again.",
        ));
    }
    let within = Within::SignIn(&flow_hash);
    let read = (cx.factors.as_slice(), cx.recovery_code_hash.as_deref(), cx.codes.as_slice());
    let judged = factors::judge(state, &account, &answer, read, within).await?;
    let purpose = Purpose::SignIn;
    let (consume, proof) = match &judged {
        factors::Judged::TotpStep { factor_id, step } => {
            (clinic_auth_store::Consume::TotpStep { factor_id, step: *step }, Proof::Authenticator)
        }
        factors::Judged::Recovery { expected, fresh } => {
            (clinic_auth_store::Consume::RecoveryCode { expected, new_hash: "" }, Proof::RecoveryCode(fresh.clone()))
        }
        factors::Judged::Sent { channel, code_hash } => (
            clinic_auth_store::Consume::SentCode {
                channel: *channel,
                code_hash,
                max_attempts: clinic_auth_core::one_time_code::MAX_ATTEMPTS,
            },
            Proof::Code,
        ),
        factors::Judged::Wrong { reason, error, sent_code } => {
            let sent = sent_code.as_ref().map(|(c, h)| (*c, h.as_str(), clinic_auth_core::one_time_code::MAX_ATTEMPTS));
            return Err(refuse_answer(state, &account, &limits, method, reason, error.clone(), sent, client).await?);
        }
    };
    let fresh_hash = match &proof {
        Proof::RecoveryCode(fresh) => Some(fresh.hash()),
        _ => None,
    };
    let consume = match (consume, fresh_hash.as_deref()) {
        (clinic_auth_store::Consume::RecoveryCode { expected, .. }, Some(new_hash)) => {
            clinic_auth_store::Consume::RecoveryCode { expected, new_hash }
        }
        (c, _) => c,
    };
    // The proof's event: a recovery code's use is its own kind.
    let proved_event = match proof {
        Proof::RecoveryCode(_) => Event::RecoveryCodeUsed { purpose },
        _ => Event::SecondFactorProved { method, purpose, passkey_id: None },
    };
    let mut events = vec![on_own_account(audit_event(state, proved_event, client), &account)];
    let mfa = crate::mfa_state::MfaState::of(
        state,
        &account,
        cx.org.clone(),
        cx.factors.clone(),
        cx.recovery_code_hash.is_some(),
    );
    let must_replace = mfa.must_replace(&account);
    let next_step = must_replace.map(|allowed| FlowStep::Enroll {
        account_id: account.id,
        allowed,
        chosen: None,
        replacing: true,
        after_bypass: false,
        remind_until: None,
    });
    let new = match next_step {
        Some(_) => None,
        None => Some(new_session(state, &cx.flow, &account, method.as_str(), true, client)),
    };
    let then = match (&next_step, &new) {
        (Some(step), _) => clinic_auth_store::AfterAnswer::NextStep(step),
        (None, Some((_, _, session, signed_in))) => {
            events.push(signed_in.clone());
            clinic_auth_store::AfterAnswer::Session(session)
        }
        (None, None) => return Err(Error::internal("an answer with neither a session nor a next step")),
    };
    let accepted = clinic_auth_store::AcceptedAnswer { limits, consume, then, audit: &events };
    match state.store.accept_answer(&accepted).await? {
        Ok(()) => {}
        Err(clinic_auth_store::AnswerBlocked::AlreadyUsed) => {
            // Used meanwhile by a concurrent answer: a replayed authenticator code or
            // a spent recovery code is a wrong answer; a sent code is gone.
            let (reason, error) = match &judged {
                factors::Judged::TotpStep { .. } => ("replayed_code", factors::replayed_code()),
                factors::Judged::Recovery { .. } => ("wrong_code", factors::wrong_recovery_code()),
                _ => return Err(codes::code_expired()),
            };
            return Err(refuse_answer(state, &account, &limits, method, reason, error, None, client).await?);
        }
        Err(blocked) => return Err(refuse_blocked(state, &account, &limits, blocked, client).await?),
    }
    if matches!(proof, Proof::RecoveryCode(_)) {
        super::notices::send(state, &account, SecurityNotice::RecoveryCodeUsed).await;
    }
    if let Some(allowed) = must_replace {
        return Ok(Proved::Enroll { allowed });
    }
    let Some((token, csrf_token, _, _)) = new else { return Err(Error::internal("an answer without its session")) };
    let (new_recovery_code, used_recovery_code) = match proof {
        Proof::RecoveryCode(fresh) => (Some(fresh), true),
        _ => (None, false),
    };
    Ok(Proved::SignedIn(Box::new(SignedInSession {
        token,
        csrf_token,
        account,
        new_recovery_code,
        used_recovery_code,
        suggest_setup: false,
    })))
}

/// A lock in force when the answer was read: the member's lockout, or the factor at
/// its consecutive-failure cap.
fn blocked_at_read(
    cx: &clinic_auth_store::AnswerContext,
    method: FactorKind,
    now: UnixTime,
) -> Option<clinic_auth_store::AnswerBlocked> {
    if let Some(t) = cx.throttle.filter(|t| t.locked_for(now).is_some()) {
        return Some(clinic_auth_store::AnswerBlocked::Locked(t.locked_until));
    }
    let cap = clinic_auth_core::throttle::MAX_CONSECUTIVE_FAILURES;
    cx.factor_failures
        .iter()
        .any(|(k, n)| *k == method && *n >= cap)
        .then_some(clinic_auth_store::AnswerBlocked::FactorLocked)
}

/// The refusal for an answer that a lock (or the flow's end) stopped: nothing is
/// written for it but a count in memory.
async fn refuse_blocked(
    state: &App,
    account: &Account,
    limits: &clinic_auth_store::AnswerLimits<'_>,
    blocked: clinic_auth_store::AnswerBlocked,
    client: &ClientInfo,
) -> Result<Error, Error> {
    let method = limits.method;
    let refuse = |reason: &'static str| {
        let refused = Event::SecondFactorRefused { method, reason, purpose: None };
        crate::about_account(audit_event(state, refused, client), account)
    };
    Ok(match blocked {
        clinic_auth_store::AnswerBlocked::Locked(until) => {
            state.locked_refusals.note(state, limits.throttle_key, Some(until), || refuse("locked")).await;
            state.locked_refusals.remember_flow(limits.flow.as_str(), limits.throttle_key, until);
            let secs = limits.now.secs_until(until).max(1);
            Error::too_many_attempts(secs)
        }
        clinic_auth_store::AnswerBlocked::FactorLocked => {
            let key = format!("factor:{}:{method}", limits.throttle_key);
            state.locked_refusals.note(state, &key, None, || refuse("factor_locked")).await;
            factors::factor_locked(method)
        }
        clinic_auth_store::AnswerBlocked::FlowOver | clinic_auth_store::AnswerBlocked::AlreadyUsed => flow_expired(),
    })
}

/// A wrong answer, counted everywhere in one transaction; the member is told when it
/// locked the factor, and the sign-in ends at the flow's last answer.
#[allow(clippy::too_many_arguments)]
async fn refuse_answer(
    state: &App,
    account: &Account,
    limits: &clinic_auth_store::AnswerLimits<'_>,
    method: FactorKind,
    reason: &'static str,
    error: Error,
    sent_code: Option<(FactorKind, &str, u32)>,
    client: &ClientInfo,
) -> Result<Error, Error> {
    let purpose = Some(Purpose::SignIn);
    let refused = Event::SecondFactorRefused { method, reason, purpose };
    let event = crate::about_account(audit_event(state, refused, client), account);
    let cap = limits.failure_cap;
    let locked = Event::FactorLocked { method, consecutive_failures: cap };
    let locked_event = crate::about_account(audit_event(state, locked, client), account);
    let r = clinic_auth_store::RefusedAnswer { limits: *limits, sent_code, audit: &event, locked_audit: &locked_event };
    let counted = match state.store.refuse_answer(&r).await? {
        Ok(counted) => counted,
        Err(blocked) => return refuse_blocked(state, account, limits, blocked, client).await,
    };
    tracing::info!(account = %account.id, method = method.as_str(), reason, purpose = "sign_in", "second factor refused");
    if counted.factor_locked {
        let label = factors::method_label(method).to_owned();
        super::notices::send(state, account, SecurityNotice::FactorLocked { method: label }).await;
    }
    match login_flow::after_wrong_code(counted.flow_attempts) {
        AfterWrongCode::TryAgain { .. } => Ok(error),
        AfterWrongCode::StartOver => {
            password_known(state, account, client).await?;
            Ok(Error::new(ErrorKind::FlowExpired, "Too many wrong codes. For your security, start signing in again."))
        }
    }
}

/// Takes one of the flow's answers before it is checked (a single statement, so
/// concurrent answers cannot exceed the limit); the count including this one. A flow
/// with none left ends.
async fn reserve_answer(state: &App, at: &FlowAt, client: &ClientInfo) -> Result<u32, Error> {
    match state.store.reserve_flow_attempt(&at.flow_hash, login_flow::MAX_CODE_ATTEMPTS_PER_FLOW).await? {
        Some(n) => Ok(n),
        None => {
            state.store.delete_flow(&at.flow_hash).await?;
            password_known(state, &at.account, client).await?;
            Err(Error::new(
                ErrorKind::FlowExpired,
                "Too many failed attempts. For your security, start signing in again.",
            ))
        }
    }
}

/// A refused second factor (already counted against the flow): the refusal `e` while
/// attempts are left, then the end of the sign-in.
async fn wrong_answer(
    state: &App,
    at: FlowAt,
    attempts: u32,
    e: Error,
    too_many: &str,
    client: &ClientInfo,
) -> Result<Error, Error> {
    match login_flow::after_wrong_code(attempts) {
        AfterWrongCode::TryAgain { .. } => Ok(e),
        AfterWrongCode::StartOver => {
            state.store.delete_flow(&at.flow_hash).await?;
            password_known(state, &at.account, client).await?;
            Ok(Error::new(ErrorKind::FlowExpired, format!("{too_many} For your security, start signing in again.")))
        }
    }
}

/// A sign-in passed the password and then failed the second factor to the limit:
/// someone may know the password. The member is told once a day, with when and from
/// where, and what to do.
async fn password_known(state: &App, account: &Account, client: &ClientInfo) -> Result<(), Error> {
    if reserve_password_known_notice(state, account).await? {
        let when = crate::time::date_time(state.now());
        super::notices::send(state, account, SecurityNotice::PasswordKnown { when, from: client.ip.clone() }).await;
    }
    Ok(())
}

/// One "someone may know your password" notice per account and day, whichever way
/// the sign-in ended (refused to the limit, or abandoned).
async fn reserve_password_known_notice(state: &App, account: &Account) -> Result<bool, Error> {
    let key = format!("notice:password-known:{}", account.id);
    Ok(state.store.reserve_attempt(&key, ThrottleRule::PASSWORD_KNOWN_NOTICE, state.now()).await?.is_some())
}

/// Sign-ins that got past the password and then expired without a second factor:
/// each is on the audit trail, and the member hears of it (once a day, as for
/// refused ones) unless they signed in since it began, which is the likely story of
/// a member who started on one device and finished on another. Returns how many.
pub async fn report_abandoned(state: &App) -> Result<u64, Error> {
    let abandoned = state.store.take_abandoned_sign_ins(state.now()).await?;
    let mut n = 0;
    for a in abandoned {
        let Some(account) = state.store.get_account(a.account_id).await? else { continue };
        let client = ClientInfo { ip: a.client_ip.clone().unwrap_or_default(), ..ClientInfo::default() };
        let refused = Event::SignInRefused { realm: account.realm(), reason: "second_factor_abandoned", email: None };
        state.store.append_audit(&refusal(state, refused, Some(&account), &client)).await?;
        n += 1;
        if account.status != clinic_auth_core::AccountStatus::Active {
            continue;
        }
        let signed_in_since = state.store.list_sessions(account.id).await?.iter().any(|s| s.created_at >= a.started_at);
        if signed_in_since || !reserve_password_known_notice(state, &account).await? {
            continue;
        }
        let notice = SecurityNotice::SignInAbandoned {
            when: crate::time::date_time(a.started_at),
            from: a.client_ip.unwrap_or_else(|| "an unknown address".to_owned()),
        };
        super::notices::send(state, &account, notice).await;
    }
    Ok(n)
}

/// The passkey step of a sign-in: options for `navigator.credentials.get()`, good for
/// one answer and no longer than the flow. Switches the flow to the passkey method.
pub async fn begin_passkey(
    state: &App,
    flow_token: &str,
) -> Result<webauthn_rs::prelude::RequestChallengeResponse, Error> {
    let at = past_password(state, flow_token).await?;
    let FlowStep::SecondFactor { account_id, method } = at.flow.step else { return Err(flow_expired()) };
    if method != FactorKind::Passkey {
        let available = factors::load(state, &at.account).await?.available(&at.account);
        if !available.contains(&FactorKind::Passkey) {
            return Err(Error::new(ErrorKind::MethodUnavailable, "No passkey is set up for this account."));
        }
        let next =
            LoginFlow { step: FlowStep::SecondFactor { account_id, method: FactorKind::Passkey }, ..at.flow.clone() };
        if !state.store.update_flow(&at.flow_hash, &next).await? {
            return Err(flow_expired());
        }
    }
    passkeys::begin_authentication(state, &at.account, passkeys::Bound::SignIn(&at.flow_hash), Some(at.flow.expires_at))
        .await
}

/// Finishes a sign-in with the browser's passkey answer. A refused answer counts
/// against the flow like a wrong code.
pub async fn submit_passkey(
    state: &App,
    flow_token: &str,
    response: &str,
    client: &ClientInfo,
) -> Result<Proved, Error> {
    let at = past_password(state, flow_token).await?;
    match at.flow.step {
        FlowStep::SecondFactor { method: FactorKind::Passkey, .. } => {}
        FlowStep::SecondFactor { .. } => {
            return Err(Error::new(
                ErrorKind::PasskeyNotStarted,
                "Ask for the passkey options first (POST …/passkey/options), then answer them.",
            ));
        }
        _ => return Err(flow_expired()),
    }
    let attempts = reserve_answer(state, &at, client).await?;
    match passkeys::finish_authentication(
        state,
        &at.account,
        passkeys::Bound::SignIn(&at.flow_hash),
        response,
        Purpose::SignIn,
        client,
    )
    .await
    {
        Ok(()) => after_proof(state, at, FactorKind::Passkey, client).await,
        Err(e) if matches!(e.kind, ErrorKind::PasskeyRejected | ErrorKind::PasskeyCloneWarning) => {
            Err(wrong_answer(state, at, attempts, e, "Too many failed attempts.", client).await?)
        }
        Err(e) => Err(e),
    }
}

/// Setting up an authenticator app as part of sign-in.
pub async fn begin_enrollment(state: &App, flow_token: &str) -> Result<(FlowAt, AuthenticatorSetup), Error> {
    let at = enrolling(state, flow_token).await?;
    if enrollment_method(&at) != Some(FactorKind::Authenticator) {
        return Err(Error::new(ErrorKind::MethodUnavailable, "Choose the authenticator app first."));
    }
    let setup = factors::begin_authenticator(state, &at.account, Within::SignIn(&at.flow_hash)).await?;
    Ok((at, setup))
}

/// Confirms the authenticator app set up during sign-in; the session follows.
pub async fn confirm_enrollment(
    state: &App,
    flow_token: &str,
    input: &str,
    client: &ClientInfo,
) -> Result<SignedInSession, Error> {
    let at = enrolling(state, flow_token).await?;
    let recovery =
        factors::confirm_authenticator(state, &at.account, input, Within::SignIn(&at.flow_hash), client).await?;
    finish_setup(state, at, FactorKind::Authenticator, recovery, client).await
}

/// For an email or text-message step: the code is sent (once; again with `resend`).
/// `None` for methods that need no sending.
pub async fn ensure_code_sent(
    state: &App,
    flow_token: &str,
    resend: bool,
    client: &ClientInfo,
) -> Result<Option<SentTo>, Error> {
    let at = past_password(state, flow_token).await?;
    let FlowStep::SecondFactor { method, .. } = at.flow.step else { return Err(flow_expired()) };
    if !matches!(method, FactorKind::Email | FactorKind::Sms) {
        return Ok(None);
    }
    let within = Within::SignIn(&at.flow_hash);
    factors::ensure_code_sent(state, &at.account, method, codes::Purpose::SignIn, within, resend, client)
        .await
        .map(Some)
}

/// "Resend": a new code for the step the sign-in is at, the setup code while setting
/// up, the sign-in code otherwise. `MethodUnavailable` when the step needs no code.
pub async fn resend(state: &App, flow_token: &str, client: &ClientInfo) -> Result<SentTo, Error> {
    let flow = current(state, flow_token).await?;
    match flow.step {
        FlowStep::Enroll { .. } => send_enrollment_code(state, flow_token, None, true, client).await,
        _ => ensure_code_sent(state, flow_token, true, client)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::MethodUnavailable, "The current method needs no code to be sent.")),
    }
}

/// The email or text code of this sign-in's current step, if one is in flight.
pub async fn code_in_flight(state: &App, at: &FlowAt) -> Result<Option<SentTo>, Error> {
    match at.flow.step {
        FlowStep::SecondFactor { method: m @ (FactorKind::Email | FactorKind::Sms), .. } => {
            codes::live(state, &at.account, m, codes::Purpose::SignIn, Within::SignIn(&at.flow_hash)).await
        }
        _ => Ok(None),
    }
}

/// Setup during sign-in: the method being set up, once chosen (or the only one allowed).
pub fn enrollment_method(at: &FlowAt) -> Option<FactorKind> {
    match at.flow.step {
        FlowStep::Enroll { allowed, chosen, .. } => login_flow::enrollment_method(allowed, chosen),
        _ => None,
    }
}

/// "Select either Emails or Texts": records the member's choice.
pub async fn choose_enrollment_method(state: &App, flow_token: &str, method: FactorKind) -> Result<(), Error> {
    let at = past_password(state, flow_token).await?;
    let FlowStep::Enroll { account_id, allowed, replacing, after_bypass, remind_until, .. } = at.flow.step else {
        return Err(flow_expired());
    };
    if !allowed.first_factors().contains(method) {
        return Err(Error::new(ErrorKind::MethodUnavailable, "Choose one of the offered methods."));
    }
    let step = FlowStep::Enroll { account_id, allowed, chosen: Some(method), replacing, after_bypass, remind_until };
    let next = LoginFlow { step, ..at.flow };
    if !state.store.update_flow(&at.flow_hash, &next).await? {
        return Err(flow_expired());
    }
    Ok(())
}

/// Setup during sign-in, email or text: sends the confirmation code (to the account's
/// email, or to `phone`), or resends it.
pub async fn send_enrollment_code(
    state: &App,
    flow_token: &str,
    phone: Option<&str>,
    resend: bool,
    client: &ClientInfo,
) -> Result<SentTo, Error> {
    let at = enrolling(state, flow_token).await?;
    let FlowStep::Enroll { allowed, .. } = at.flow.step else { return Err(flow_expired()) };
    let method =
        enrollment_method(&at).ok_or_else(|| Error::new(ErrorKind::MethodUnavailable, "Choose a method first."))?;
    let within = Within::SignIn(&at.flow_hash);
    if resend {
        factors::resend_enrollment_code(state, &at.account, method, within, client).await
    } else {
        factors::begin_code_enrollment(state, &at.account, method, phone, allowed, within, client).await
    }
}

/// The setup code in flight during sign-in, if any.
pub async fn enrollment_code_sent(state: &App, at: &FlowAt) -> Result<Option<SentTo>, Error> {
    match enrollment_method(at) {
        Some(m @ (FactorKind::Email | FactorKind::Sms)) => {
            codes::live(state, &at.account, m, codes::Purpose::Enroll, Within::SignIn(&at.flow_hash)).await
        }
        _ => Ok(None),
    }
}

/// Confirms an email or text-message factor during sign-in; the session follows.
pub async fn confirm_code_enrollment(
    state: &App,
    flow_token: &str,
    input: &str,
    client: &ClientInfo,
) -> Result<SignedInSession, Error> {
    let at = enrolling(state, flow_token).await?;
    let method = match enrollment_method(&at) {
        Some(m @ (FactorKind::Email | FactorKind::Sms)) => m,
        _ => return Err(Error::new(ErrorKind::MethodUnavailable, "Choose email or text message first.")),
    };
    let within = Within::SignIn(&at.flow_hash);
    let recovery = factors::confirm_code_enrollment(state, &at.account, method, input, within, client).await?;
    finish_setup(state, at, method, recovery, client).await
}

/// "Remind me later": a member in their clinic's grace period for Mandatory 2FA
/// finishes signing in with the password alone and sets up two-factor authentication
/// another time. The grace period is checked again now, from the member's current
/// state (it may have ended, or the clinic's settings changed, since the password).
/// The session proves the password only, so an app that demands a second factor still
/// sends the member to set one up. Never after a bypass or to replace a method the
/// clinic no longer allows.
pub async fn remind_later(state: &App, flow_token: &str, client: &ClientInfo) -> Result<SignedInSession, Error> {
    let at = enrolling(state, flow_token).await?;
    let FlowStep::Enroll { replacing: false, after_bypass: false, .. } = at.flow.step else {
        return Err(setup_required());
    };
    let remind_until = factors::load(state, &at.account).await?.remind_until(&at.account);
    let Some(until) = remind_until else { return Err(setup_required()) };
    let days_left = clinic_auth_core::policy::days_left(state.now(), until);
    let account = at.account.clone();
    let done = grant_session(state, &at.flow, &at.flow_hash, at.account, "password", false, client).await?;
    let postponed = on_own_account(audit_event(state, Event::MfaSetupPostponed { days_left }, client), &account);
    state.store.append_audit(&postponed).await?;
    Ok(done)
}

fn setup_required() -> Error {
    Error::new(
        ErrorKind::MfaRequired,
        "Your clinic requires two-factor authentication, and the time to put it off is over: set it up to continue.",
    )
}

//! Passkeys on trusted devices: WebAuthn registration and authentication through
//! `webauthn-rs`, with the ceremony state in the store (any instance can finish what
//! another started) and bound to what started it: a login flow or a session.
//!
//! Shared by the sign-in pages, the account page and the JSON API.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clinic_auth_core::passkey::{self, CloneSign, CounterVerdict, PasskeyName, PresentedUse, StoredUse};
use clinic_auth_core::{FactorKind, Purpose, TokenHash, UnixTime};
use clinic_auth_store::{
    Account, Ceremony, ClientInfo, Factor, NewFactor, NewPasskey, PasskeyState, PasskeyUse, SealedSecret,
};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::{AuthenticatorSelectionCriteria, PublicKeyCredentialHints, ResidentKeyRequirement};

use super::notices;
use super::{about_account, audit_event, on_own_account};
use crate::attempts::{count_failure, proved, reserve_attempt};
use crate::mfa_state;
pub use crate::mfa_state::is_trusted_device;
use crate::{App, Error, ErrorKind, WebConfig};
use clinic_auth_core::audit::Event;
use clinic_auth_notify::SecurityNotice;

/// The relying party passkeys are made for: from `passkey_rp_id` / `passkey_origin`,
/// or the public URL's host and origin. `Err` says why passkeys are off.
pub fn relying_party(config: &WebConfig) -> Result<Webauthn, String> {
    let origin = match &config.passkey_origin {
        Some(o) => o.clone(),
        None => {
            let o = config.public_url.origin().ascii_serialization();
            Url::parse(&o).map_err(|e| format!("public_url has no origin: {e}"))?
        }
    };
    let rp_id = match &config.passkey_rp_id {
        Some(id) => id.clone(),
        None => match origin.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            _ => {
                return Err(format!(
                    "passkeys need a hostname, not an IP address ({origin}); set public_url to https://your.host \
                     (or http://localhost for development)"
                ));
            }
        },
    };
    let secure = origin.scheme() == "https" || matches!(origin.host_str(), Some("localhost"));
    if !secure {
        return Err(format!("passkeys need HTTPS (or http://localhost); the origin is {origin}"));
    }
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&config.platform_name).build())
        .map_err(|e| format!("relying-party id {rp_id:?} does not fit origin {origin}: {e}"))
}

fn unavailable() -> Error {
    Error::new(ErrorKind::PasskeysUnavailable, "Passkeys are not available on this server. Use another method.")
}

fn webauthn(state: &App) -> Result<&Webauthn, Error> {
    state.webauthn.as_ref().ok_or_else(unavailable)
}

fn expired() -> Error {
    Error::new(ErrorKind::PasskeyExpired, "That passkey request expired. Try again.")
}

fn rejected() -> Error {
    Error::new(ErrorKind::PasskeyRejected, "Your passkey could not be verified. Try again, or choose another method.")
}

fn malformed() -> Error {
    Error::new(ErrorKind::InvalidPasskeyResponse, "The passkey response could not be read. Try again.")
}

/// Where a ceremony belongs: the login flow or the session that started it.
#[derive(Debug, Clone, Copy)]
pub enum Bound<'a> {
    /// A sign-in's second-factor step.
    SignIn(&'a TokenHash),
    /// Adding a passkey from a signed-in session.
    Register(&'a TokenHash),
    /// Proving a second factor again for a change on the account page.
    StepUp(&'a TokenHash),
}

impl Bound<'_> {
    fn key(self) -> String {
        match self {
            Bound::SignIn(h) => format!("sign_in:{}", h.as_str()),
            Bound::Register(h) => format!("register:{}", h.as_str()),
            Bound::StepUp(h) => format!("step_up:{}", h.as_str()),
        }
    }
}

fn credential_id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn user_handle(account: &Account) -> Result<Uuid, Error> {
    Uuid::parse_str(&account.id.to_string()).map_err(|e| Error::internal(format!("account id: {e}")))
}

/// One of an account's passkeys, with its credential opened.
struct Opened {
    factor: Factor,
    state: PasskeyState,
    passkey: Passkey,
}

fn open_all(state: &App, account: &Account, factors: &[Factor]) -> Result<Vec<Opened>, Error> {
    let context = mfa_state::sealing_context(account, FactorKind::Passkey);
    factors
        .iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .map(|f| {
            let (Some(sealed), Some(ps)) = (&f.secret, &f.passkey) else {
                return Err(Error::internal("passkey row without its credential"));
            };
            let plain = state.sealer.open(sealed, &context)?;
            let passkey: Passkey =
                serde_json::from_slice(&plain).map_err(|e| Error::internal(format!("stored passkey: {e}")))?;
            Ok(Opened { factor: f.clone(), state: ps.clone(), passkey })
        })
        .collect()
}

async fn save_ceremony<T: serde::Serialize>(
    state: &App,
    account: &Account,
    bound: Bound<'_>,
    ceremony: &T,
    until: Option<UnixTime>,
) -> Result<(), Error> {
    let now = state.now();
    let mut expires_at = now.plus_secs(passkey::CEREMONY_SECS);
    if let Some(u) = until {
        expires_at = expires_at.min(u);
    }
    let text = serde_json::to_string(ceremony).map_err(|e| Error::internal(format!("ceremony state: {e}")))?;
    // Sealed like the credentials themselves: the state names the public keys an
    // answer is checked against, so a database write must not be able to add one.
    let sealed = state.sealer.seal(text.as_bytes(), &ceremony_context(&bound.key(), account))?;
    let state_text = format!(
        "{}.{}.{}",
        sealed.key_version,
        URL_SAFE_NO_PAD.encode(&sealed.nonce),
        URL_SAFE_NO_PAD.encode(&sealed.ciphertext)
    );
    let record = Ceremony { key: bound.key(), account_id: account.id, state: state_text, created_at: now, expires_at };
    state.store.put_ceremony(&record).await?;
    Ok(())
}

async fn take_ceremony<T: serde::de::DeserializeOwned>(
    state: &App,
    account: &Account,
    bound: Bound<'_>,
) -> Result<T, Error> {
    let ceremony = state.store.take_ceremony(&bound.key(), state.now()).await?.ok_or_else(expired)?;
    if ceremony.account_id != account.id {
        return Err(expired());
    }
    // A ceremony that does not open under its own key and account was not written by
    // us for this sign-in: treat it as gone.
    let mut parts = ceremony.state.splitn(3, '.');
    let sealed = match (parts.next(), parts.next(), parts.next()) {
        (Some(v), Some(n), Some(c)) => match (v.parse::<i64>(), URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(c)) {
            (Ok(key_version), Ok(nonce), Ok(ciphertext)) => SealedSecret { ciphertext, nonce, key_version },
            _ => return Err(expired()),
        },
        _ => return Err(expired()),
    };
    let plain = state.sealer.open(&sealed, &ceremony_context(&bound.key(), account)).map_err(|_| expired())?;
    serde_json::from_slice(&plain).map_err(|e| Error::internal(format!("ceremony state: {e}")))
}

fn ceremony_context(key: &str, account: &Account) -> String {
    format!("clinic-auth:webauthn-ceremony:{key}:{}", account.id)
}

/// Reads a credential response from a client, refusing oversized input before parsing.
fn parse_response<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, Error> {
    if json.len() > passkey::MAX_RESPONSE_BYTES {
        return Err(malformed());
    }
    serde_json::from_str(json).map_err(|_| malformed())
}

// ----- registration ("Trust this device?") -----

/// Starts adding a passkey for a signed-in account: the options for
/// `navigator.credentials.create()`. Platform authenticators are hinted, user
/// verification is required and a discoverable (resident) key is preferred.
fn not_allowed() -> Error {
    Error::new(
        ErrorKind::PasskeyNotAllowed,
        "Set up an authenticator app, email or text codes first; passkeys are added on top of them \
         where your organization allows them.",
    )
}

fn too_many() -> Error {
    Error::new(
        ErrorKind::TooManyPasskeys,
        "You have trusted the most devices allowed. Remove one you no longer use first.",
    )
}

pub async fn begin_registration(
    state: &App,
    account: &Account,
    session: &TokenHash,
) -> Result<CreationChallengeResponse, Error> {
    let webauthn = webauthn(state)?;
    let mfa_state = mfa_state::load(state, account).await?;
    if !mfa_state.may_trust_device(account) {
        return Err(not_allowed());
    }
    let existing = open_all(state, account, &mfa_state.factors)?;
    if existing.len() >= passkey::MAX_PASSKEYS_PER_ACCOUNT {
        return Err(too_many());
    }
    let exclude = existing.iter().map(|o| o.passkey.cred_id().clone()).collect::<Vec<_>>();
    let (mut options, registration) = webauthn
        .start_passkey_registration(
            user_handle(account)?,
            account.email.as_str(),
            account.email.as_str(),
            Some(exclude),
        )
        .map_err(|e| Error::internal(format!("starting passkey registration: {e}")))?;
    // "Platform authenticator preferred": WebAuthn has no preferred attachment, so the
    // client-device hint asks for this device's Touch ID / Face ID / Windows Hello,
    // while a security key still works where the browser offers one.
    options.public_key.authenticator_selection = Some(AuthenticatorSelectionCriteria {
        authenticator_attachment: None,
        resident_key: Some(ResidentKeyRequirement::Preferred),
        require_resident_key: false,
        user_verification: webauthn_rs_proto::UserVerificationPolicy::Required,
    });
    options.public_key.hints = Some(vec![PublicKeyCredentialHints::ClientDevice]);
    save_ceremony(state, account, Bound::Register(session), &registration, None).await?;
    Ok(options)
}

/// A passkey just registered; `device_hint` goes into the browser's device cookie.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub name: String,
    pub device_hint: String,
}

/// Finishes adding a passkey with the browser's response.
pub async fn finish_registration(
    state: &App,
    account: &Account,
    session: &TokenHash,
    response: &str,
    name: Option<&str>,
    client: &ClientInfo,
) -> Result<Registered, Error> {
    let webauthn = webauthn(state)?;
    let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => PasskeyName::parse(n).map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?,
        None => PasskeyName::from_user_agent(Some(&client.user_agent)),
    };
    let credential: RegisterPublicKeyCredential = parse_response(response)?;
    let registration: PasskeyRegistration = take_ceremony(state, account, Bound::Register(session)).await?;
    // The policy may have changed (or a factor been removed) since the options went out.
    if !mfa_state::load(state, account).await?.may_trust_device(account) {
        return Err(not_allowed());
    }
    let passkey = match webauthn.finish_passkey_registration(&credential, &registration) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            let refused = Event::PasskeyRefused { reason: registration_reason(&e) };
            state.store.append_audit(&on_own_account(audit_event(state, refused, client), account)).await?;
            return Err(Error::new(
                ErrorKind::PasskeyRegistrationRejected,
                "This device's passkey could not be verified. Try again.",
            ));
        }
    };
    let credential_id = credential_id_text(passkey.cred_id());
    let plain = serde_json::to_vec(&passkey).map_err(|e| Error::internal(format!("passkey: {e}")))?;
    let sealed = state.sealer.seal(&plain, &mfa_state::sealing_context(account, FactorKind::Passkey))?;
    let id = mfa_state::uuid_like();
    // What the authenticator reported at registration: the counter to start from and
    // the backup eligibility, which is fixed for the credential's life.
    let reported = webauthn_rs::prelude::Credential::from(passkey.clone());
    let record = NewPasskey {
        factor: NewFactor {
            id: id.clone(),
            account_id: account.id,
            kind: FactorKind::Passkey,
            label: name.as_str().to_owned(),
            secret: Some(sealed),
            last_used_step: None,
            now: state.now(),
            target: None,
        },
        state: PasskeyState {
            credential_id: credential_id.clone(),
            sign_count: reported.counter,
            backup_eligible: reported.backup_eligible,
            backup_state: reported.backup_state,
        },
    };
    let mut event = on_own_account(audit_event(state, Event::PasskeyAdded { passkey_id: &id }, client), account);
    event.via = super::Within::Session(session).via();
    let max = i64::try_from(passkey::MAX_PASSKEYS_PER_ACCOUNT).unwrap_or(i64::MAX);
    let inserted = state.store.insert_passkey(&record, &event, max).await.map_err(|e| match e {
        clinic_auth_store::StoreError::Conflict(_) => {
            Error::new(ErrorKind::PasskeyAlreadyRegistered, "This passkey is registered already.")
        }
        other => other.into(),
    })?;
    if !inserted {
        return Err(too_many());
    }
    let method = format!("A passkey (\"{}\")", name.as_str());
    notices::send(state, account, SecurityNotice::FactorAdded { method }).await;
    Ok(Registered { id, name: name.as_str().to_owned(), device_hint: passkey::device_hint(&credential_id) })
}

fn registration_reason(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::InvalidRPOrigin => "wrong_origin",
        WebauthnError::MismatchedChallenge => "wrong_challenge",
        WebauthnError::UserNotVerified => "user_not_verified",
        _ => "invalid_response",
    }
}

// ----- authentication -----

/// Starts a passkey check for `account`: the options for `navigator.credentials.get()`,
/// listing only this account's credentials. `until` caps the ceremony at the end of
/// the login flow it belongs to.
pub async fn begin_authentication(
    state: &App,
    account: &Account,
    bound: Bound<'_>,
    until: Option<UnixTime>,
) -> Result<RequestChallengeResponse, Error> {
    let webauthn = webauthn(state)?;
    let factors = state.store.list_factors(account.id).await?;
    let passkeys: Vec<Passkey> = open_all(state, account, &factors)?.into_iter().map(|o| o.passkey).collect();
    if passkeys.is_empty() {
        return Err(Error::new(ErrorKind::MethodUnavailable, "No passkey is set up for this account."));
    }
    let (options, authentication) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| Error::internal(format!("starting passkey authentication: {e}")))?;
    save_ceremony(state, account, bound, &authentication, until).await?;
    Ok(options)
}

/// Checks the browser's answer to [`begin_authentication`]. Failures count against
/// the account's second-factor lockout like wrong codes; a counter that fails to
/// advance on a device-bound credential is a clone warning, refused and audited.
pub async fn finish_authentication(
    state: &App,
    account: &Account,
    bound: Bound<'_>,
    response: &str,
    purpose: Purpose,
    client: &ClientInfo,
) -> Result<(), Error> {
    let webauthn = webauthn(state)?;
    let credential: PublicKeyCredential = parse_response(response)?;
    reserve_attempt(state, account, FactorKind::Passkey, client).await?;
    let authentication: PasskeyAuthentication = take_ceremony(state, account, bound).await?;
    let result = match webauthn.finish_passkey_authentication(&credential, &authentication) {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            let id = credential_id_text(&credential.raw_id);
            return Err(clone_warning(state, account, &id, CloneSign::CounterNotAdvanced, purpose, client).await?);
        }
        Err(e) => {
            tracing::info!(error = %e, "passkey assertion refused");
            count_failure(state, account, FactorKind::Passkey, assertion_reason(&e), purpose, client).await?;
            return Err(rejected());
        }
    };
    // The library matched the credential against this account's list; look the row up
    // again now, so the counter check runs on the latest stored value.
    let credential_id = credential_id_text(result.cred_id());
    let factors = state.store.list_factors(account.id).await?;
    let Some(mut found) =
        open_all(state, account, &factors)?.into_iter().find(|o| o.state.credential_id == credential_id)
    else {
        count_failure(state, account, FactorKind::Passkey, "unknown_credential", purpose, client).await?;
        return Err(rejected());
    };
    let stored = StoredUse { sign_count: found.state.sign_count, backup_eligible: found.state.backup_eligible };
    let presented = PresentedUse { counter: result.counter(), backup_eligible: result.backup_eligible() };
    let verdict = match passkey::judge_use(stored, presented) {
        Ok(v) => v,
        Err(sign) => return Err(clone_warning(state, account, &credential_id, sign, purpose, client).await?),
    };
    found.passkey.update_credential(&result);
    let plain = serde_json::to_vec(&found.passkey).map_err(|e| Error::internal(format!("passkey: {e}")))?;
    let sealed = state.sealer.seal(&plain, &mfa_state::sealing_context(account, FactorKind::Passkey))?;
    let proof =
        Event::SecondFactorProved { method: FactorKind::Passkey, purpose, passkey_id: Some(found.factor.id.as_str()) };
    let event = on_own_account(audit_event(state, proof, client), account);
    let used = PasskeyUse {
        account_id: account.id,
        factor_id: found.factor.id.clone(),
        sign_count: result.counter().max(found.state.sign_count),
        counter_must_advance: verdict == CounterVerdict::Advanced,
        backup_state: result.backup_state(),
        sealed,
        now: state.now(),
    };
    if !state.store.use_passkey(&used, &event).await? {
        let still_there = state.store.list_factors(account.id).await?.iter().any(|f| f.id == found.factor.id);
        if !still_there {
            // Removed meanwhile (from another tab or by an admin's reset).
            count_failure(state, account, FactorKind::Passkey, "unknown_credential", purpose, client).await?;
            return Err(rejected());
        }
        // Another sign-in advanced the counter to this value first: the same
        // assertion was presented twice, or the credential was copied.
        let sign = CloneSign::CounterNotAdvanced;
        return Err(clone_warning(state, account, &credential_id, sign, purpose, client).await?);
    }
    proved(state, account).await?;
    Ok(())
}

fn assertion_reason(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::InvalidRPOrigin => "wrong_origin",
        WebauthnError::MismatchedChallenge => "wrong_challenge",
        WebauthnError::UserNotVerified => "user_not_verified",
        WebauthnError::CredentialNotFound | WebauthnError::InvalidUserUniqueId => "unknown_credential",
        _ => "invalid_assertion",
    }
}

async fn clone_warning(
    state: &App,
    account: &Account,
    credential_id: &str,
    sign: CloneSign,
    purpose: Purpose,
    client: &ClientInfo,
) -> Result<Error, Error> {
    tracing::warn!(account = %account.id, reason = sign.as_str(), "passkey refused: possible cloned credential");
    let device_hint = passkey::device_hint(credential_id);
    let warning = Event::PasskeyCloneWarning { reason: sign.as_str(), purpose, device_hint: &device_hint };
    state.store.append_audit(&about_account(audit_event(state, warning, client), account)).await?;
    count_failure(state, account, FactorKind::Passkey, sign.as_str(), purpose, client).await?;
    Ok(Error::new(
        ErrorKind::PasskeyCloneWarning,
        "This passkey could not be trusted, so it was not accepted. Choose another method, and tell your \
         administrator.",
    ))
}

// ----- the account page's list -----

/// A passkey as its owner sees it: never the credential itself.
#[derive(Debug, Clone)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; absent until first used to sign in.
    pub last_used_at: Option<i64>,
    /// The credential is synced between devices by its provider.
    pub synced: bool,
    /// This browser is the device the passkey was made on (by its device hint).
    pub this_device: bool,
}

/// Whether to offer "Trust this device?" to `account` on a browser presenting
/// `device_hints`: passkeys work on this server, the account's methods allow them, and
/// this browser does not hold one of the account's passkeys already.
pub async fn should_offer_trust(state: &App, account: &Account, device_hints: &[String]) -> Result<bool, Error> {
    if state.webauthn.is_none() {
        return Ok(false);
    }
    let m = mfa_state::load(state, account).await?;
    Ok(m.may_trust_device(account) && !is_trusted_device(&m.factors, device_hints))
}

/// The account's passkeys, marking the one this browser holds (by its device hints).
pub async fn list(state: &App, account: &Account, device_hints: &[String]) -> Result<Vec<PasskeyView>, Error> {
    Ok(views(&state.store.list_factors(account.id).await?, device_hints))
}

pub fn views(factors: &[Factor], device_hints: &[String]) -> Vec<PasskeyView> {
    factors
        .iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .filter_map(|f| {
            let ps = f.passkey.as_ref()?;
            Some(PasskeyView {
                id: f.id.clone(),
                name: f.label.clone(),
                created_at: f.created_at.0,
                last_used_at: f.last_used_at.map(|t| t.0),
                synced: ps.backup_state,
                this_device: passkey::is_trusted_device(device_hints, &[ps.credential_id.as_str()]),
            })
        })
        .collect()
}

/// Whether a browser presenting `device_hints` holds one of the account's passkeys.
fn no_such_passkey() -> Error {
    Error::new(ErrorKind::NotFound, "There is no such passkey on your account.")
}

pub async fn rename(
    state: &App,
    account: &Account,
    id: &str,
    name: &str,
    client: &ClientInfo,
) -> Result<String, Error> {
    let name = PasskeyName::parse(name).map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
    let renamed = Event::PasskeyRenamed { passkey_id: id, name: name.as_str() };
    let event = on_own_account(audit_event(state, renamed, client), account);
    if !state.store.rename_passkey(account.id, id, name.as_str(), &event).await? {
        return Err(no_such_passkey());
    }
    Ok(name.as_str().to_owned())
}

/// Removes a passkey: the device it was on is no longer trusted.
pub async fn remove(
    state: &App,
    account: &Account,
    session: &TokenHash,
    id: &str,
    client: &ClientInfo,
) -> Result<(), Error> {
    let removed =
        Event::FactorRemoved { method: Some(FactorKind::Passkey), reason: None, by_self: true, passkey_id: Some(id) };
    let mut event = on_own_account(audit_event(state, removed, client), account);
    event.via = super::Within::Session(session).via();
    let name = state.store.list_factors(account.id).await?.into_iter().find(|f| f.id == id).map(|f| f.label);
    if !state.store.remove_passkey(account.id, id, &event).await? {
        return Err(no_such_passkey());
    }
    let method = match name {
        Some(n) => format!("A passkey (\"{n}\")"),
        None => "A passkey".to_owned(),
    };
    notices::send(state, account, SecurityNotice::FactorRemoved { method }).await;
    Ok(())
}

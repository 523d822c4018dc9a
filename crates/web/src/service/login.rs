//! The sign-in flow, shared by the sign-in pages and `/api/v1/login`.

use axum::http::StatusCode;
use clinic_auth_core::login_flow::{self, AfterPassword, PasswordCheck, PasswordRejection};
use clinic_auth_core::{Email, LoginFlow, Password, Realm, SecretToken, ThrottleRule};
use clinic_auth_store::{Account, ClientInfo, NewSession};

use super::{audit_event, detail};
use crate::{AppError, AppState};

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
}

pub fn incorrect() -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "incorrect_credentials", "Email or password is incorrect.")
}

pub fn flow_expired() -> AppError {
    AppError::new(StatusCode::GONE, "flow_expired", "Your sign-in took too long. Please start again.")
}

/// Step one: an email. Any well-formed email starts a flow, whether or not an account
/// exists, so this step tells nobody who has an account.
pub async fn start(state: &AppState, realm: Realm, email: &str) -> Result<Started, AppError> {
    let email = Email::parse(email)
        .map_err(|_| AppError::bad_request("invalid_email", "Enter a valid email address, like name@clinic.org."))?;
    let flow_token = SecretToken::generate();
    let flow = LoginFlow::start(realm, email, state.now());
    state.store.insert_flow(&flow_token.hash(), &flow).await?;
    Ok(Started { flow_token, flow })
}

/// The flow a client's token names, if it is still current.
pub async fn current(state: &AppState, flow_token: &str) -> Result<LoginFlow, AppError> {
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
    format!("password:{}:{}", flow.realm, flow.email)
}

fn client_key(client: &ClientInfo) -> String {
    format!("password-client:{}", client.ip)
}

/// Step two: the password. Unknown emails, accounts without a password yet and wrong
/// passwords get one answer after the same amount of work.
pub async fn submit_password(
    state: &AppState,
    flow_token: &str,
    password: Password,
    client: &ClientInfo,
) -> Result<SignedInSession, AppError> {
    let flow = current(state, flow_token).await?;
    let flow_hash = SecretToken::from_presented(flow_token).ok_or_else(flow_expired)?.hash();
    let now = state.now();
    let (acct_key, ip_key) = (account_key(&flow), client_key(client));
    for key in [&acct_key, &ip_key] {
        if let Some(locked_for) = state.store.get_throttle(key).await?.and_then(|t| t.locked_for(now)) {
            return Err(AppError::too_many_attempts(locked_for));
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

    let mut event = audit_event(state, "sign_in", "failure", client);
    event.org_id = account.as_ref().and_then(|a| a.org_id.clone());
    event.subject_id = account.as_ref().map(|a| a.id);
    match (login_flow::after_password(check), account) {
        (AfterPassword::SignIn, Some(account)) => {
            state.store.clear_throttle(&acct_key).await?;
            if verification.needs_rehash {
                let hash = state.hasher.rehash(&password).await?;
                state.store.rehash_password(account.id, &hash, now).await?;
            }
            let token = SecretToken::generate();
            let csrf_token = SecretToken::generate().expose().to_owned();
            event.outcome = "success";
            event.actor_id = Some(account.id);
            event.detail = detail(&[("realm", flow.realm.as_str()), ("method", "password")]);
            let session = NewSession {
                token_hash: token.hash(),
                account_id: account.id,
                csrf_token: csrf_token.clone(),
                now,
                client: client.clone(),
            };
            state.store.insert_session(&session, &flow_hash, &event).await.map_err(|e| match e {
                clinic_auth_store::StoreError::MissingReference(_) => flow_expired(),
                other => other.into(),
            })?;
            Ok(SignedInSession { token, csrf_token, account })
        }
        (AfterPassword::Rejected(PasswordRejection::Deactivated), _) => {
            event.detail = detail(&[("reason", "account_deactivated")]);
            state.store.append_audit(&event).await?;
            Err(AppError::new(
                StatusCode::FORBIDDEN,
                "account_deactivated",
                "This account is deactivated. Contact your clinic's administrator.",
            ))
        }
        (_, account) => {
            let reason = match (check, &account) {
                (PasswordCheck::NoSuchAccount, _) => "unknown_account",
                (_, Some(a)) if a.password_hash.is_none() => "no_password_set",
                _ => "wrong_password",
            };
            event.detail = detail(&[("reason", reason), ("email", flow.email.as_str())]);
            state.store.append_audit(&event).await?;
            state.store.record_failure(&acct_key, ThrottleRule::PASSWORD_PER_ACCOUNT, now).await?;
            state.store.record_failure(&ip_key, ThrottleRule::PASSWORD_PER_CLIENT, now).await?;
            Err(incorrect())
        }
    }
}

/// Signs out: the session row is deleted, so the token is dead everywhere at once.
pub async fn sign_out(
    state: &AppState,
    signed_in: &crate::http::auth::SignedIn,
    client: &ClientInfo,
) -> Result<(), AppError> {
    let mut event = audit_event(state, "sign_out", "success", client);
    event.org_id = signed_in.account.org_id.clone();
    event.actor_id = Some(signed_in.account.id);
    event.subject_id = Some(signed_in.account.id);
    state.store.delete_session(&signed_in.token_hash, Some(&event)).await?;
    Ok(())
}

//! The authorization endpoint: an app sends the member's browser here; the member is
//! signed in through the same sign-in pages as everyone (a new door, not a second
//! sign-in), proves more when the app asks for it, and goes back to the app with a
//! one-minute code.
//!
//! 1. `begin` checks the request. Until the client and its exact redirect URI are
//!    known, an error is shown on a page (never sent to an unchecked URI); after
//!    that, errors go back to the app (`Refusal::Redirect`). The checked request is
//!    stored under a random id.
//! 2. `resume` decides with the browser's session (`clinic_auth_core::oidc::answer`):
//!    issue a code; or sign in first (the request id waits in a cookie while the
//!    sign-in pages run, and they come back here); or prove a second factor (the
//!    step-up page), or set one up first when the member has none.

use clinic_auth_core::audit::Event;
use clinic_auth_core::oidc::{
    self, Acr, Answer, CodeChallenge, Demand, Prompt, REQUEST_TTL_SECS, RequestError, Scopes, SessionFacts,
};
use clinic_auth_core::{AccountKind, AccountStatus, FactorKind, Realm, SecretToken};
use clinic_auth_store::{Account, AuthorizationRequest, ClientInfo, OidcClient, OidcCode, OidcGrant};
use serde::{Deserialize, Serialize};

use crate::{App, Error, ErrorKind, SignedIn, about_account, audit_event, factors};

/// The query (or form) of an authorization request, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RequestParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub acr_values: Option<String>,
    pub login_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// A checked request, as it waits for its sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checked {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    acr_values: Option<String>,
    max_age: Option<i64>,
    prompt_none: bool,
    prompt_login: bool,
    login_hint: Option<String>,
}

/// Why a request was not answered with a code.
#[derive(Debug)]
pub enum Refusal {
    /// Shown to the member: the request cannot be trusted with a redirect.
    Page(Error),
    /// Sent back to the app at its checked redirect URI.
    Redirect(String),
    Internal(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal::Internal(e)
    }
}

impl From<clinic_auth_store::StoreError> for Refusal {
    fn from(e: clinic_auth_store::StoreError) -> Refusal {
        Refusal::Internal(e.into())
    }
}

/// What the browser does next.
#[derive(Debug)]
pub enum Next {
    /// Back to the app: a code, or an error it must hear.
    Redirect(String),
    /// Sign in at `realm`'s pages, then come back with the request id.
    SignIn { realm: Realm, login_hint: Option<String> },
    /// Prove a second factor on the step-up page (`passkey_only` for phishing-resistant).
    StepUp { passkey_only: bool },
    /// Set a second factor up first (the member has none), then come back.
    SetUp,
}

const MAX_PARAM: usize = 2048;

fn too_long(p: &RequestParams) -> bool {
    [
        &p.client_id,
        &p.redirect_uri,
        &p.scope,
        &p.state,
        &p.nonce,
        &p.code_challenge,
        &p.prompt,
        &p.acr_values,
        &p.login_hint,
        &p.max_age,
    ]
    .iter()
    .any(|v| v.as_deref().is_some_and(|v| v.len() > MAX_PARAM))
}

fn unusable(message: &str) -> Refusal {
    Refusal::Page(Error::new(ErrorKind::InvalidRequest, message))
}

/// `redirect_uri` with the OAuth error (and the state, and our issuer).
pub fn error_redirect(state: &App, redirect_uri: &str, err: &RequestError, st: Option<&str>) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", err.error).append_pair("error_description", err.description);
        if let Some(s) = st {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &super::issuer(state));
    }
    url.to_string()
}

/// Step 1: checks a request and stores it; the id for `resume`, which goes in a
/// cookie. Errors before the redirect URI is known go on a page.
pub async fn begin(state: &App, p: RequestParams, client: &ClientInfo) -> Result<SecretToken, Refusal> {
    if too_long(&p) {
        return Err(unusable("The sign-in request from the app is too long."));
    }
    let Some(client_id) = p.client_id.as_deref() else {
        return Err(unusable("The app's sign-in request has no client_id. Contact the app's vendor."));
    };
    let Some(registered) = state.store.get_oidc_client(client_id).await? else {
        refuse_audit(state, client_id, "unknown_client", client).await?;
        return Err(unusable("This app is not registered with this sign-in service. Contact your administrator."));
    };
    let Some(redirect_uri) = p.redirect_uri.as_deref() else {
        return Err(unusable("The app's sign-in request has no redirect_uri. Contact the app's vendor."));
    };
    if !registered.redirect_uris.iter().any(|u| u == redirect_uri) {
        refuse_audit(state, client_id, "unregistered_redirect_uri", client).await?;
        return Err(unusable(
            "The app asked to return to an address it has not registered, so the sign-in stops here. Contact your administrator.",
        ));
    }
    // From here on the app hears about what is wrong.
    let back = |e: RequestError| Refusal::Redirect(error_redirect(state, redirect_uri, &e, p.state.as_deref()));
    if p.request.is_some() {
        return Err(back(RequestError {
            error: "request_not_supported",
            description: "request objects are not supported",
        }));
    }
    if p.request_uri.is_some() {
        return Err(back(RequestError {
            error: "request_uri_not_supported",
            description: "request_uri is not supported",
        }));
    }
    if p.response_type.as_deref() != Some("code") {
        return Err(back(RequestError {
            error: "unsupported_response_type",
            description: "only the authorization code flow (response_type=code) is supported",
        }));
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(back(RequestError::invalid_request("only response_mode=query is supported")));
    }
    let scopes = Scopes::parse(p.scope.as_deref()).map_err(back)?;
    let challenge =
        CodeChallenge::parse(p.code_challenge.as_deref(), p.code_challenge_method.as_deref()).map_err(back)?;
    let prompt = Prompt::parse(p.prompt.as_deref()).map_err(back)?;
    let max_age = match p.max_age.as_deref() {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| back(RequestError::invalid_request("max_age must be a number of seconds")))?,
        ),
    };
    let checked = Checked {
        client_id: registered.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope: scopes.to_scope_string(),
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        code_challenge: challenge.as_str().to_owned(),
        acr_values: p.acr_values.clone(),
        max_age,
        prompt_none: prompt.none,
        prompt_login: prompt.login,
        login_hint: p.login_hint.clone(),
    };
    let id = SecretToken::generate();
    let now = state.now();
    let stored = AuthorizationRequest {
        client_id: registered.client_id,
        params: serde_json::to_string(&checked).map_err(|_| Error::internal("encoding a request failed"))?,
        created_at: now,
        expires_at: now.plus_secs(REQUEST_TTL_SECS),
    };
    state.store.put_authorization_request(&id.hash(), &stored).await?;
    Ok(id)
}

async fn refuse_audit(state: &App, client_id: &str, reason: &str, client: &ClientInfo) -> Result<(), Error> {
    let id: String = client_id.chars().take(64).collect();
    let event = audit_event(state, Event::AppRequestRefused { client_id: &id, reason }, client);
    Ok(state.store.append_audit(&event).await?)
}

fn expired() -> Refusal {
    unusable("This sign-in took too long or was already used. Go back to the app and sign in again.")
}

/// Whether the account may use this app at all: its realm, its organization for an
/// app bound to one, and active.
fn admits(c: &OidcClient, a: &Account) -> bool {
    let realm_ok = a.realm() == c.realm;
    let org_ok = match &c.org_id {
        None => true,
        Some(org) => a.org_id.as_ref() == Some(org) && a.kind != AccountKind::PlatformAdmin,
    };
    realm_ok && org_ok && a.status == AccountStatus::Active
}

/// Step 2: what answers the request now, given the browser's session (`None`: none).
pub async fn resume(
    state: &App,
    request_id: &str,
    session: Option<&SignedIn>,
    client: &ClientInfo,
) -> Result<Next, Refusal> {
    let id = SecretToken::from_presented(request_id).ok_or_else(expired)?.hash();
    let Some(stored) = state.store.get_authorization_request(&id).await? else { return Err(expired()) };
    let now = state.now();
    if stored.expires_at < now {
        state.store.delete_authorization_request(&id).await?;
        return Err(expired());
    }
    let req: Checked = serde_json::from_str(&stored.params).map_err(|_| expired())?;
    let Some(app) = state.store.get_oidc_client(&req.client_id).await? else { return Err(expired()) };
    let back = |error: &'static str, description: &'static str| {
        error_redirect(state, &req.redirect_uri, &RequestError { error, description }, req.state.as_deref())
    };
    let demand = Demand::new(
        req.acr_values.as_deref(),
        app.require_mfa,
        req.max_age,
        Prompt { none: req.prompt_none, login: req.prompt_login },
        stored.created_at,
    );
    // A session of the other realm (a patient at a staff app) is no session here.
    let session = session.filter(|s| s.account.realm() == app.realm);
    let facts = session.map(|s| SessionFacts { auth_time: s.auth_time, proved: s.proved.clone() });
    let answer = oidc::answer(facts.as_ref(), &demand, now);
    let Some(s) = session.filter(|_| answer != Answer::SignIn) else {
        if req.prompt_none {
            state.store.delete_authorization_request(&id).await?;
            return Ok(Next::Redirect(back("login_required", "the member is not signed in")));
        }
        return Ok(Next::SignIn { realm: app.realm, login_hint: req.login_hint });
    };
    if !admits(&app, &s.account) {
        state.store.delete_authorization_request(&id).await?;
        let refused = Event::AppRequestRefused { client_id: &app.client_id, reason: "account_not_admitted" };
        state.store.append_audit(&about_account(audit_event(state, refused, client), &s.account)).await?;
        return Ok(Next::Redirect(back("access_denied", "this account may not use this app")));
    }
    if let Answer::StepUp(acr) = answer {
        if req.prompt_none {
            state.store.delete_authorization_request(&id).await?;
            return Ok(Next::Redirect(back("interaction_required", "the app asked for a second factor")));
        }
        return Ok(step_up(state, &app, s, acr, client, &back).await?);
    }
    // The session answers the request: one grant, one code, one use of the request.
    state.store.delete_authorization_request(&id).await?;
    let code = SecretToken::generate();
    let grant = OidcGrant {
        id: uuid::Uuid::new_v4().simple().to_string(),
        client_id: app.client_id.clone(),
        account_id: s.account.id,
        sid: s.sid.clone(),
        stamp: s.account.security_stamp,
        scope: req.scope.clone(),
        nonce: req.nonce.clone(),
        auth_time: s.auth_time,
        proved: s.proved.to_stored(),
        created_at: now,
        revoked_at: None,
    };
    let stored_code = OidcCode {
        code_hash: code.hash(),
        grant_id: grant.id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        expires_at: now.plus_secs(oidc::CODE_TTL_SECS),
    };
    let signed_in = Event::AppSignedIn { client_id: &app.client_id, acr: s.proved.acr().as_str() };
    let event = crate::on_own_account(audit_event(state, signed_in, client), &s.account);
    state.store.insert_oidc_grant(&grant, &stored_code, &event).await?;
    let mut url = url::Url::parse(&req.redirect_uri).map_err(|_| expired())?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", code.expose());
        if let Some(st) = &req.state {
            q.append_pair("state", st);
        }
        q.append_pair("iss", &super::issuer(state));
    }
    Ok(Next::Redirect(url.to_string()))
}

/// The session is weaker than the app asked: prove a second factor, or set one up
/// when there is none and setup is open to the member; else the app hears why not.
async fn step_up(
    state: &App,
    app: &OidcClient,
    s: &SignedIn,
    acr: Acr,
    client: &ClientInfo,
    back: &(dyn Fn(&'static str, &'static str) -> String + Sync),
) -> Result<Next, Error> {
    let mfa = factors::load(state, &s.account).await?;
    let audit = |reason: Option<&'static str>| {
        let event = match reason {
            Some(reason) => Event::AppRequestRefused { client_id: &app.client_id, reason },
            None => Event::AppStepUp { client_id: &app.client_id, acr: acr.as_str() },
        };
        crate::on_own_account(audit_event(state, event, client), &s.account)
    };
    if acr == Acr::PhishingResistant {
        if mfa.factor(FactorKind::Passkey).is_some() {
            state.store.append_audit(&audit(None)).await?;
            return Ok(Next::StepUp { passkey_only: true });
        }
        state.store.append_audit(&audit(Some("passkey_required"))).await?;
        return Ok(Next::Redirect(back(
            "access_denied",
            "this app needs a passkey; add one on your clinic-auth account page, then try again",
        )));
    }
    if mfa.factors.is_empty() {
        if factors::require_setup_available(&mfa, &s.account).is_err() {
            state.store.append_audit(&audit(Some("second_factor_unavailable"))).await?;
            return Ok(Next::Redirect(back(
                "access_denied",
                "this app needs two-factor authentication, which your organization has not turned on; ask your administrator",
            )));
        }
        state.store.append_audit(&audit(None)).await?;
        return Ok(Next::SetUp);
    }
    state.store.append_audit(&audit(None)).await?;
    Ok(Next::StepUp { passkey_only: false })
}

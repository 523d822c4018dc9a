//! The token endpoint (codes and refresh tokens), userinfo, revocation (RFC 7009) and
//! introspection (RFC 7662).
//!
//! Access and refresh tokens are opaque random strings stored as SHA-256 hashes, not
//! JWTs: every use is checked against the store, so revocation, sign-out-everywhere,
//! deactivation, password and MFA resets take effect on the next call instead of at
//! expiry, and no token can be forged from a leaked signing key. Apps read claims from
//! the ID token and userinfo, or ask introspection.
//!
//! A grant belongs to the account *as it was* at the sign-in (its security stamp):
//! any later change to its password, factors or status, or a revocation of its
//! sessions, ends every token of every grant.

use clinic_auth_core::audit::Event;
use clinic_auth_core::oidc::{self, CodeChallenge, Proved, Scopes};
use clinic_auth_core::{AccountStatus, SecretToken};
use clinic_auth_store::{
    Account, ClientInfo, CodeTaken, NewOidcToken, OidcClient, OidcGrant, OidcTokenKind, RefreshTaken,
};
use serde::Serialize;

use super::clients::{self, Credentials};
use super::keys;
use crate::{App, Error, about_account, audit_event};

/// An OAuth error answer: `error` and a description; `invalid_client` is a 401.
#[derive(Debug)]
pub enum TokenError {
    OAuth { error: &'static str, description: &'static str },
    Internal(Error),
}

impl From<Error> for TokenError {
    fn from(e: Error) -> TokenError {
        TokenError::Internal(e)
    }
}

impl From<clinic_auth_store::StoreError> for TokenError {
    fn from(e: clinic_auth_store::StoreError) -> TokenError {
        TokenError::Internal(e.into())
    }
}

fn oauth(error: &'static str, description: &'static str) -> TokenError {
    TokenError::OAuth { error, description }
}

fn invalid_grant(description: &'static str) -> TokenError {
    oauth("invalid_grant", description)
}

fn invalid_client() -> TokenError {
    oauth("invalid_client", "client authentication failed")
}

/// The token endpoint's form.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

/// The token response (RFC 6749 §5.1 with `id_token`).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub id_token: String,
    pub scope: String,
}

/// The claims about the account that the ID token and userinfo share.
#[derive(Debug, Serialize, Default)]
pub struct AccountClaims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub account_kind: &'static str,
    pub realm: &'static str,
}

#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    iss: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    acr: &'static str,
    amr: Vec<&'static str>,
    azp: &'a str,
    #[serde(flatten)]
    account: AccountClaims,
}

/// What the account's claims say for these scopes. Emails are checked before an
/// account can sign in (invitations and resets go to the address), hence verified.
pub async fn account_claims(state: &App, account: &Account, scope: &str) -> Result<AccountClaims, Error> {
    let scopes = Scopes::parse(Some(scope)).unwrap_or(Scopes { email: false, profile: false, offline_access: false });
    let org = match &account.org_id {
        Some(id) => state.store.get_org(id).await?,
        None => None,
    };
    Ok(AccountClaims {
        sub: account.id.to_string(),
        email: scopes.email.then(|| account.email.as_str().to_owned()),
        email_verified: scopes.email.then_some(true),
        org_id: account.org_id.as_ref().map(|o| o.as_str().to_owned()),
        org_name: org.map(|o| o.name),
        role: account.role.map(|r| r.as_str().to_owned()),
        account_kind: account.kind.as_str(),
        realm: account.realm().as_str(),
    })
}

async fn id_token(
    state: &App,
    client: &OidcClient,
    grant: &OidcGrant,
    account: &Account,
    nonce: bool,
) -> Result<String, Error> {
    let now = state.now();
    let proved = Proved::parse(&grant.proved);
    let claims = IdTokenClaims {
        iss: super::issuer(state),
        aud: &client.client_id,
        exp: now.plus_secs(oidc::ID_TOKEN_TTL_SECS).0,
        iat: now.0,
        auth_time: grant.auth_time.0,
        nonce: if nonce { grant.nonce.as_deref() } else { None },
        sid: &grant.sid,
        acr: proved.acr().as_str(),
        amr: proved.amr(),
        azp: &client.client_id,
        account: account_claims(state, account, &grant.scope).await?,
    };
    let alg = keys::parse_alg(&client.id_token_alg).unwrap_or(keys::ALGORITHMS[0]);
    keys::sign(state, alg, Some("JWT"), &claims).await
}

/// The account behind a grant, while the grant still speaks for it: active, and no
/// change to its security since the sign-in.
async fn live_account(state: &App, grant: &OidcGrant) -> Result<Option<Account>, Error> {
    if grant.revoked_at.is_some() {
        return Ok(None);
    }
    let account = state.store.get_account(grant.account_id).await?;
    Ok(account.filter(|a| a.status == AccountStatus::Active && a.security_stamp == grant.stamp))
}

fn new_tokens(state: &App, with_refresh: bool) -> (SecretToken, Option<SecretToken>, Vec<NewOidcToken>) {
    let now = state.now();
    let access = SecretToken::generate();
    let refresh = with_refresh.then(SecretToken::generate);
    let mut rows = vec![NewOidcToken {
        token_hash: access.hash(),
        kind: OidcTokenKind::Access,
        expires_at: now.plus_secs(oidc::ACCESS_TOKEN_TTL_SECS),
    }];
    if let Some(r) = &refresh {
        rows.push(NewOidcToken {
            token_hash: r.hash(),
            kind: OidcTokenKind::Refresh,
            expires_at: now.plus_secs(oidc::REFRESH_TOKEN_TTL_SECS),
        });
    }
    (access, refresh, rows)
}

/// Ends a grant whose code or refresh token came back a second time.
async fn replayed(state: &App, grant: &OidcGrant, token: &'static str, client: &ClientInfo) -> Result<(), Error> {
    let mut event = audit_event(state, Event::AppTokenReplayed { client_id: &grant.client_id, token }, client);
    if let Some(account) = state.store.get_account(grant.account_id).await? {
        event = about_account(event, &account);
    }
    state.store.revoke_oidc_grant(&grant.id, state.now(), &event).await?;
    Ok(())
}

/// `POST /oauth2/token`.
pub async fn exchange(
    state: &App,
    form: TokenForm,
    basic: Option<(String, String)>,
    client: &ClientInfo,
) -> Result<TokenResponse, TokenError> {
    // Credentials in one place only (RFC 6749 §2.3): the header, or the form.
    let creds = match (&basic, form.client_secret.as_deref()) {
        (Some(_), Some(_)) => return Err(invalid_client()),
        (Some((id, secret)), None) => {
            if form.client_id.as_deref().is_some_and(|f| f != id) {
                return Err(invalid_client());
            }
            Credentials { client_id: Some(id), client_secret: Some(secret) }
        }
        (None, secret) => Credentials { client_id: form.client_id.as_deref(), client_secret: secret },
    };
    let answer = match clients::authenticate(state, creds).await? {
        None => Err(invalid_client()),
        Some(app) => match form.grant_type.as_deref() {
            Some("authorization_code") => code_grant(state, &app, &form, client).await,
            Some("refresh_token") => refresh_grant(state, &app, &form, client).await,
            Some(_) => Err(oauth("unsupported_grant_type", "only authorization_code and refresh_token are supported")),
            None => Err(oauth("invalid_request", "grant_type is required")),
        },
    };
    if let Err(TokenError::OAuth { error, .. }) = &answer {
        refused(state, creds.client_id, error, client).await?;
    }
    answer
}

/// A refused token request is audited with the client it named (cut to 64 characters:
/// it may not be a client at all) and the OAuth error; never the code or token.
async fn refused(state: &App, client_id: Option<&str>, reason: &str, client: &ClientInfo) -> Result<(), Error> {
    let id: String = client_id.unwrap_or_default().chars().take(64).collect();
    let event = audit_event(state, Event::AppRequestRefused { client_id: &id, reason }, client);
    Ok(state.store.append_audit(&event).await?)
}

async fn code_grant(
    state: &App,
    app: &OidcClient,
    form: &TokenForm,
    client: &ClientInfo,
) -> Result<TokenResponse, TokenError> {
    let code =
        form.code.as_deref().and_then(SecretToken::from_presented).ok_or_else(|| invalid_grant("unknown code"))?;
    let (code, grant) = match state.store.take_oidc_code(&code.hash(), state.now()).await? {
        CodeTaken::Fresh { code, grant } => (code, grant),
        CodeTaken::Reused { grant } => {
            // RFC 9700 §4.2.4: a code used twice ends what it issued.
            replayed(state, &grant, "authorization_code", client).await?;
            return Err(invalid_grant("the code was already used"));
        }
        CodeTaken::Unknown => return Err(invalid_grant("unknown code")),
    };
    if grant.client_id != app.client_id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if code.expires_at < state.now() {
        return Err(invalid_grant("the code has expired"));
    }
    if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request"));
    }
    let verifier =
        form.code_verifier.as_deref().ok_or_else(|| oauth("invalid_request", "code_verifier is required"))?;
    if !CodeChallenge::from_stored(code.code_challenge.clone()).matches(verifier) {
        return Err(invalid_grant("code_verifier does not match the code_challenge"));
    }
    let account = live_account(state, &grant).await?.ok_or_else(|| invalid_grant("the sign-in is no longer valid"))?;
    let offline = Scopes::parse(Some(&grant.scope)).is_ok_and(|s| s.offline_access);
    let (access, refresh, rows) = new_tokens(state, offline);
    let issued =
        Event::AppTokensIssued { client_id: &app.client_id, grant_type: "authorization_code", refresh_token: offline };
    let event = crate::on_own_account(audit_event(state, issued, client), &account);
    if !state.store.issue_oidc_tokens(&grant.id, &rows, &event).await? {
        return Err(invalid_grant("the sign-in is no longer valid"));
    }
    Ok(TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: "Bearer",
        expires_in: oidc::ACCESS_TOKEN_TTL_SECS,
        refresh_token: refresh.map(|r| r.expose().to_owned()),
        id_token: id_token(state, app, &grant, &account, true).await?,
        scope: grant.scope.clone(),
    })
}

async fn refresh_grant(
    state: &App,
    app: &OidcClient,
    form: &TokenForm,
    client: &ClientInfo,
) -> Result<TokenResponse, TokenError> {
    let presented = form
        .refresh_token
        .as_deref()
        .and_then(SecretToken::from_presented)
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    let hash = presented.hash();
    let Some(token) = state.store.get_oidc_token(&hash).await? else {
        return Err(invalid_grant("unknown refresh token"));
    };
    if token.kind != OidcTokenKind::Refresh || token.grant.client_id != app.client_id {
        return Err(invalid_grant("unknown refresh token"));
    }
    if token.used_at.is_some() {
        replayed(state, &token.grant, "refresh_token", client).await?;
        return Err(invalid_grant("the refresh token was already used"));
    }
    if token.expires_at < state.now() {
        return Err(invalid_grant("the refresh token has expired"));
    }
    let Some(account) = live_account(state, &token.grant).await? else {
        return Err(invalid_grant("the sign-in is no longer valid"));
    };
    let (access, refresh, rows) = new_tokens(state, true);
    let issued = Event::AppTokensIssued { client_id: &app.client_id, grant_type: "refresh_token", refresh_token: true };
    let event = crate::on_own_account(audit_event(state, issued, client), &account);
    let grant = match state.store.rotate_refresh_token(&hash, state.now(), &rows, &event).await? {
        RefreshTaken::Rotated { grant } => grant,
        RefreshTaken::Reused { grant } => {
            // Another presentation won the race, or the grant just ended.
            replayed(state, &grant, "refresh_token", client).await?;
            return Err(invalid_grant("the refresh token was already used"));
        }
        RefreshTaken::Unknown => return Err(invalid_grant("unknown refresh token")),
    };
    Ok(TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: "Bearer",
        expires_in: oidc::ACCESS_TOKEN_TTL_SECS,
        refresh_token: refresh.map(|r| r.expose().to_owned()),
        id_token: id_token(state, app, &grant, &account, false).await?,
        scope: grant.scope.clone(),
    })
}

/// A live access token's grant and account; `None` for anything else.
async fn live_access(state: &App, presented: &str) -> Result<Option<(OidcGrant, Account)>, Error> {
    let Some(token) = SecretToken::from_presented(presented) else { return Ok(None) };
    let Some(t) = state.store.get_oidc_token(&token.hash()).await? else { return Ok(None) };
    if t.kind != OidcTokenKind::Access || t.expires_at < state.now() {
        return Ok(None);
    }
    Ok(live_account(state, &t.grant).await?.map(|a| (t.grant, a)))
}

/// `GET /oauth2/userinfo`: the account's claims for a live access token.
pub async fn userinfo(state: &App, access_token: &str) -> Result<Option<AccountClaims>, Error> {
    match live_access(state, access_token).await? {
        Some((grant, account)) => Ok(Some(account_claims(state, &account, &grant.scope).await?)),
        None => Ok(None),
    }
}

/// The introspection answer (RFC 7662): `active: false` and nothing else, or the
/// token's facts.
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// A confidential client's credentials, or `invalid_client`.
async fn confidential(state: &App, creds: Credentials<'_>) -> Result<OidcClient, TokenError> {
    match clients::authenticate(state, creds).await? {
        Some(c) if c.secret_hash.is_some() => Ok(c),
        _ => Err(invalid_client()),
    }
}

/// `POST /oauth2/introspect`, for confidential clients, about their own tokens. A
/// JWT (an ID token, or anything signed by anyone) is never one of our tokens.
pub async fn introspect(state: &App, creds: Credentials<'_>, token: &str) -> Result<Introspection, TokenError> {
    let app = confidential(state, creds).await?;
    let Some(presented) = SecretToken::from_presented(token) else { return Ok(Introspection::default()) };
    let Some(t) = state.store.get_oidc_token(&presented.hash()).await? else { return Ok(Introspection::default()) };
    let live = t.grant.client_id == app.client_id
        && t.expires_at >= state.now()
        && t.used_at.is_none()
        && live_account(state, &t.grant).await?.is_some();
    if !live {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        scope: Some(t.grant.scope.clone()),
        client_id: Some(app.client_id.clone()),
        token_type: Some(match t.kind {
            OidcTokenKind::Access => "Bearer",
            OidcTokenKind::Refresh => "refresh_token",
        }),
        exp: Some(t.expires_at.0),
        sub: Some(t.grant.account_id.to_string()),
        aud: Some(app.client_id),
        iss: Some(super::issuer(state)),
        sid: Some(t.grant.sid.clone()),
        acr: Some(Proved::parse(&t.grant.proved).acr().as_str()),
        auth_time: Some(t.grant.auth_time.0),
    })
}

/// `POST /oauth2/revoke` (RFC 7009): a refresh token ends its grant; an access token
/// ends itself. Unknown tokens and other clients' tokens are answered the same (200).
pub async fn revoke(state: &App, creds: Credentials<'_>, token: &str, client: &ClientInfo) -> Result<(), TokenError> {
    let app = clients::authenticate(state, creds).await?.ok_or_else(invalid_client)?;
    let Some(presented) = SecretToken::from_presented(token) else { return Ok(()) };
    let hash = presented.hash();
    let Some(t) = state.store.get_oidc_token(&hash).await? else { return Ok(()) };
    if t.grant.client_id != app.client_id {
        return Ok(());
    }
    let what = match t.kind {
        OidcTokenKind::Access => "access_token",
        OidcTokenKind::Refresh => "refresh_token",
    };
    let mut event = audit_event(state, Event::AppTokenRevoked { client_id: &app.client_id, token: what }, client);
    if let Some(account) = state.store.get_account(t.grant.account_id).await? {
        event = about_account(event, &account);
    }
    match t.kind {
        OidcTokenKind::Refresh => {
            state.store.revoke_oidc_grant(&t.grant.id, state.now(), &event).await?;
        }
        OidcTokenKind::Access => {
            state.store.delete_oidc_token(&hash, &event).await?;
        }
    }
    Ok(())
}

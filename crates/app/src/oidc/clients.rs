//! Apps registered to sign members in: made by the platform (command line or the
//! platform console), each with exact redirect URIs; a confidential app gets a secret
//! shown once and stored as a SHA-256 hash (256 random bits need no slow hash).

use clinic_auth_core::audit::Event;
use clinic_auth_core::oidc::ClientUri;
use clinic_auth_core::permission::Actor;
use clinic_auth_core::{OrgId, Realm, SecretToken};
use clinic_auth_store::{OidcClient, StoreError};
use subtle::ConstantTimeEq;

use crate::{App, By, Error, ErrorKind, audit_event};

/// What the platform asks for when registering an app.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub confidential: bool,
    pub org_id: Option<String>,
    /// A patient-portal app: patients sign in (at the patient pages), not staff.
    pub patients: bool,
    pub require_mfa: bool,
}

/// A registered app; the secret is here once and never again.
#[derive(Debug)]
pub struct Registered {
    pub client: OidcClient,
    pub client_secret: Option<SecretToken>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidRequest, message)
}

fn uris(list: &[String], what: &str) -> Result<Vec<String>, Error> {
    list.iter()
        .map(|u| {
            ClientUri::parse(u.trim())
                .map(|u| u.as_str().to_owned())
                .map_err(|why| invalid(format!("{what} {u:?} {why}.")))
        })
        .collect()
}

/// Registers an app. Only a platform admin or the command line.
pub async fn register(state: &App, by: &By, new: NewClient) -> Result<Registered, Error> {
    if !matches!(by.actor, Actor::PlatformAdmin | Actor::Operator) {
        return Err(Error::forbidden());
    }
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::new(ErrorKind::InvalidName, "Give the app a name of up to 100 characters."));
    }
    let redirect_uris = uris(&new.redirect_uris, "Redirect URI")?;
    if redirect_uris.is_empty() {
        return Err(invalid("An app needs at least one redirect URI."));
    }
    if redirect_uris.len() > 10 || new.post_logout_redirect_uris.len() > 10 {
        return Err(invalid("An app may register at most 10 URIs of each kind."));
    }
    let post_logout_redirect_uris = uris(&new.post_logout_redirect_uris, "Post-logout redirect URI")?;
    let backchannel_logout_uri = match new.backchannel_logout_uri.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => uris(&[u.to_owned()], "Back-channel logout URI")?.into_iter().next(),
        None => None,
    };
    let org_id = match new.org_id.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        Some(o) => {
            let id = OrgId::parse(o)
                .map_err(|_| Error::new(ErrorKind::InvalidOrgId, format!("{o:?} is not an organization id.")))?;
            state.store.get_org(&id).await?.ok_or_else(|| Error::not_found("organization"))?;
            Some(id)
        }
        None => None,
    };
    let secret = new.confidential.then(SecretToken::generate);
    let client = OidcClient {
        client_id: uuid::Uuid::new_v4().simple().to_string(),
        name: name.to_owned(),
        secret_hash: secret.as_ref().map(|s| s.hash().as_str().to_owned()),
        org_id,
        realm: if new.patients { Realm::Patient } else { Realm::Staff },
        require_mfa: new.require_mfa,
        redirect_uris,
        post_logout_redirect_uris,
        backchannel_logout_uri,
        created_at: state.now(),
    };
    let mut event = audit_event(state, Event::AppRegistered { client_id: &client.client_id, name }, &by.client);
    event.actor_id = by.account_id;
    event.org_id = client.org_id.clone();
    state.store.insert_oidc_client(&client, &event).await.map_err(|e| match e {
        StoreError::MissingReference(_) => Error::not_found("organization"),
        other => other.into(),
    })?;
    Ok(Registered { client, client_secret: secret })
}

/// Every registered app, for the platform.
pub async fn list(state: &App, by: &By) -> Result<Vec<OidcClient>, Error> {
    if !matches!(by.actor, Actor::PlatformAdmin | Actor::Operator) {
        return Err(Error::forbidden());
    }
    Ok(state.store.list_oidc_clients().await?)
}

/// How a client proved itself at the token, revocation or introspection endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
}

/// The client behind `creds`: a confidential client must present its secret; a public
/// one presents none. `None` for anything else (`invalid_client`).
pub async fn authenticate(state: &App, creds: Credentials<'_>) -> Result<Option<OidcClient>, Error> {
    let Some(id) = creds.client_id.filter(|i| i.len() <= 64) else { return Ok(None) };
    let Some(client) = state.store.get_oidc_client(id).await? else { return Ok(None) };
    let ok = match (&client.secret_hash, creds.client_secret) {
        (Some(stored), Some(presented)) => {
            let presented = SecretToken::from_presented(presented).map(|t| t.hash());
            presented.is_some_and(|h| bool::from(h.as_str().as_bytes().ct_eq(stored.as_bytes())))
        }
        (None, None) => true,
        _ => false,
    };
    Ok(ok.then_some(client))
}

//! Signing out of apps: RP-initiated logout (an app sends the browser to
//! `end_session_endpoint`), and back-channel logout (OpenID Connect Back-Channel
//! Logout 1.0): when a member's sessions end — "Sign out everywhere", deactivation,
//! an MFA reset, or signing out through one app — every app that registered a
//! back-channel URI and signed that session in is sent a signed logout token.
//!
//! Deliveries are queued in the store and sent by a background task, so an admin's
//! action never waits on an app; a failed delivery is retried with growing pauses and
//! every attempt is audited.

use clinic_auth_core::AccountId;
use clinic_auth_core::audit::Event;
use clinic_auth_core::oidc::REFRESH_TOKEN_TTL_SECS;
use clinic_auth_store::{ClientInfo, LogoutDelivery, PendingLogout};
use serde::Serialize;

use super::keys;
use crate::{App, Error, ErrorKind, audit_event};

/// Pauses before each retry; after the last, delivery gives up.
const RETRY_AFTER_SECS: [i64; 5] = [10, 60, 300, 1800, 7200];

/// What an end-session request asks, once checked.
#[derive(Debug)]
pub struct EndSession {
    /// The app that asked, when known (from `id_token_hint` or `client_id`).
    pub client_id: Option<String>,
    /// Where to send the browser afterwards: a registered post-logout URI with the
    /// app's `state`, or `None` (our own "signed out" page).
    pub redirect: Option<String>,
    /// The request proved it comes from an app the member used (a valid
    /// `id_token_hint` for this account): no need to ask the member to confirm.
    pub confirmed: bool,
}

/// The end-session endpoint's parameters.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct EndSessionParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

fn bad(message: &str) -> Error {
    Error::new(ErrorKind::InvalidRequest, message)
}

/// Checks an end-session request: the post-logout URI must be registered by the app
/// the hint (or `client_id`) names; a hint must be an ID token we signed.
pub async fn check_end_session(
    state: &App,
    p: &EndSessionParams,
    signed_in_as: Option<AccountId>,
) -> Result<EndSession, Error> {
    let hint = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(h) if h.len() <= 8192 => Some(
            keys::verify_ours(state, h)
                .await?
                .ok_or_else(|| bad("The sign-out request carries a token this server did not issue."))?,
        ),
        Some(_) => return Err(bad("The sign-out request is too long.")),
        None => None,
    };
    let hint_aud = hint.as_ref().and_then(|c| c.get("aud")).and_then(|a| a.as_str()).map(str::to_owned);
    let hint_sub = hint.as_ref().and_then(|c| c.get("sub")).and_then(|a| a.as_str()).map(str::to_owned);
    if let (Some(a), Some(c)) = (&hint_aud, &p.client_id)
        && a != c
    {
        return Err(bad("The sign-out request names two different apps."));
    }
    let client_id = hint_aud.or_else(|| p.client_id.clone());
    let app = match &client_id {
        Some(id) => Some(state.store.get_oidc_client(id).await?.ok_or_else(|| bad("The app is not registered."))?),
        None => None,
    };
    let redirect = match p.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()) {
        Some(uri) => {
            let app = app.as_ref().ok_or_else(|| bad("The sign-out request does not say which app it is from."))?;
            if !app.post_logout_redirect_uris.iter().any(|u| u == uri) {
                return Err(bad("The app asked to return to an address it has not registered."));
            }
            let mut url = url::Url::parse(uri).map_err(|_| bad("The return address is not a URL."))?;
            if let Some(st) = &p.state {
                url.query_pairs_mut().append_pair("state", st);
            }
            Some(url.to_string())
        }
        None => None,
    };
    let confirmed = match (hint_sub, signed_in_as) {
        (Some(sub), Some(me)) => sub == me.to_string(),
        // Nobody is signed in here: nothing to end, nothing to confirm.
        (_, None) => true,
        (None, Some(_)) => false,
    };
    Ok(EndSession { client_id, redirect, confirmed })
}

/// Ends the browser's session for an app's sign-out request and tells the other apps
/// that session signed into.
pub async fn end_session(
    state: &App,
    session: &crate::SignedIn,
    client_id: Option<&str>,
    client: &ClientInfo,
) -> Result<(), Error> {
    let event = crate::on_own_account(audit_event(state, Event::AppSignedOut { client_id }, client), &session.account);
    state.store.delete_session(&session.token_hash, Some(&event)).await?;
    notify(state, session.account.id, Some(&session.sid), client_id).await
}

/// Queues a logout for every app with a back-channel URI that `account` (or only its
/// session `sid`) signed into lately, except `except` (the app that asked), and sends
/// them in the background.
pub async fn notify(state: &App, account: AccountId, sid: Option<&str>, except: Option<&str>) -> Result<(), Error> {
    let since = state.now().plus_secs(-REFRESH_TOKEN_TTL_SECS);
    let grants = state.store.list_oidc_grants(account, sid, since).await?;
    let mut pending: Vec<PendingLogout> = Vec::new();
    for g in grants {
        if Some(g.client_id.as_str()) == except || pending.iter().any(|p| p.client_id == g.client_id && p.sid == g.sid)
        {
            continue;
        }
        let Some(app) = state.store.get_oidc_client(&g.client_id).await? else { continue };
        if app.backchannel_logout_uri.is_none() {
            continue;
        }
        pending.push(PendingLogout {
            id: uuid::Uuid::new_v4().simple().to_string(),
            client_id: g.client_id,
            account_id: account,
            sid: g.sid,
            attempts: 0,
            created_at: state.now(),
        });
    }
    if pending.is_empty() {
        return Ok(());
    }
    state.store.enqueue_logouts(&pending).await?;
    let app = state.clone();
    tokio::spawn(async move {
        if let Err(e) = deliver_due(&app).await {
            tracing::warn!(error = %e, "back-channel logout delivery failed to run");
        }
    });
    Ok(())
}

#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sub: String,
    sid: &'a str,
    events: serde_json::Value,
}

/// Sends every logout that is due; the number delivered. Run by the server every few
/// seconds and right after a logout is queued.
pub async fn deliver_due(state: &App) -> Result<usize, Error> {
    let Some(poster) = state.logout_poster.as_ref() else { return Ok(0) };
    let _one_run = state.logout_delivery.lock().await;
    let due = state.store.due_logouts(state.now(), 50).await?;
    let mut delivered = 0;
    for p in due {
        // Another server instance may be sending the same one: one claim wins, and
        // the lease outlasts a delivery's timeout.
        if !state.store.claim_logout(&p.id, state.now(), state.now().plus_secs(60)).await? {
            continue;
        }
        let Some(app) = state.store.get_oidc_client(&p.client_id).await? else {
            state.store.finish_logout(&p.id, LogoutDelivery::GaveUp, state.now(), None).await?;
            continue;
        };
        let Some(uri) = app.backchannel_logout_uri.as_deref() else {
            state.store.finish_logout(&p.id, LogoutDelivery::GaveUp, state.now(), None).await?;
            continue;
        };
        let now = state.now();
        let claims = LogoutClaims {
            iss: super::issuer(state),
            aud: &app.client_id,
            iat: now.0,
            exp: now.plus_secs(120).0,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sub: p.account_id.to_string(),
            sid: &p.sid,
            events: serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} }),
        };
        let token = keys::sign(state, keys::ALGORITHMS[0], Some("logout+jwt"), &claims).await?;
        let attempts = p.attempts + 1;
        let (outcome, result) = match poster.post(uri, &token).await {
            Ok(()) => {
                tracing::info!(client_id = %app.client_id, attempts, "back-channel logout delivered");
                delivered += 1;
                (LogoutDelivery::Delivered, "delivered")
            }
            Err(why) => {
                tracing::info!(client_id = %app.client_id, attempts, reason = %why, "back-channel logout not delivered");
                match usize::try_from(p.attempts).ok().and_then(|i| RETRY_AFTER_SECS.get(i)) {
                    Some(pause) => (LogoutDelivery::RetryAt(now.plus_secs(*pause)), "retrying"),
                    None => (LogoutDelivery::GaveUp, "gave_up"),
                }
            }
        };
        let event = Event::BackchannelLogout { client_id: &app.client_id, result, attempts };
        let mut event = audit_event(state, event, &ClientInfo { ip: "local".into(), user_agent: "clinic-auth".into() });
        if let Some(account) = state.store.get_account(p.account_id).await? {
            event = crate::about_account(event, &account);
        }
        state.store.finish_logout(&p.id, outcome, now, Some(&event)).await?;
    }
    Ok(delivered)
}

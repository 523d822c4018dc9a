//! Back-channel logout from the server's side: which apps are told when a member's
//! sessions end, what they receive, and what happens when an app does not answer.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use clinic_auth_app::oidc::clients::{self, NewClient};
use clinic_auth_app::{By, admin};
use clinic_auth_core::{OrgKind, Role, SecretToken};
use clinic_auth_store::{OidcCode, OidcGrant};

use crate::both_stores;
use crate::harness::TestApp;

both_stores!(
    signing_a_member_out_everywhere_tells_each_app_they_used,
    every_way_sessions_end_tells_the_apps_those_sessions_signed_into,
    an_app_that_does_not_answer_is_retried_then_given_up,
    an_authorization_request_waits_thirty_minutes_and_a_refresh_token_thirty_days,
);

/// An app's back-channel endpoint on loopback: it records each logout token and
/// answers with `status`.
pub(crate) async fn listener(status: StatusCode) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/backchannel",
        post(move |body: String| {
            let record = record.clone();
            async move {
                let token = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                record.lock().unwrap().push(token);
                status
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

pub(crate) async fn register(app: &TestApp, name: &str, backchannel: Option<&str>) -> String {
    let new = NewClient {
        name: name.into(),
        redirect_uris: vec!["http://localhost:9/cb".into()],
        backchannel_logout_uri: backchannel.map(str::to_owned),
        confidential: true,
        ..Default::default()
    };
    clients::register(&app.state, &By::operator(), new).await.unwrap().client.client_id
}

/// A grant as a sign-in through `client_id` leaves it (the authorize step's write).
pub(crate) async fn signed_into(app: &TestApp, client_id: &str, account: &clinic_auth_store::Account, sid: &str) {
    use clinic_auth_core::Clock;
    let now = app.clock.now();
    let grant = OidcGrant {
        id: uuid::Uuid::new_v4().simple().to_string(),
        client_id: client_id.into(),
        account_id: account.id,
        sid: sid.into(),
        stamp: account.security_stamp,
        scope: "openid".into(),
        nonce: None,
        auth_time: now,
        proved: "password".into(),
        created_at: now,
        revoked_at: None,
    };
    let code = OidcCode {
        code_hash: SecretToken::generate().hash(),
        grant_id: grant.id.clone(),
        redirect_uri: "http://localhost:9/cb".into(),
        code_challenge: "x".repeat(43),
        expires_at: now.plus_secs(60),
    };
    let event = clinic_auth_app::audit_event(
        &app.state,
        clinic_auth_core::audit::Event::AppSignedIn { client_id, acr: "urn:clinic-auth:acr:password" },
        &Default::default(),
    );
    app.state.store.insert_oidc_grant(&grant, &code, &event).await.unwrap();
}

pub(crate) fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub(crate) async fn wait_for(seen: &Arc<Mutex<Vec<String>>>, n: usize) -> Vec<String> {
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().clone()
}

async fn signing_a_member_out_everywhere_tells_each_app_they_used(app: TestApp) {
    let org = app.org("Riverside", OrgKind::Clinic).await;
    let dr = app.member(&org, "dr@riverside.test", Role::Provider).await;
    let other = app.member(&org, "other@riverside.test", Role::Staff).await;
    let (ehr_url, ehr_seen) = listener(StatusCode::OK).await;
    let (billing_url, billing_seen) = listener(StatusCode::NO_CONTENT).await;
    let ehr = register(&app, "EHR", Some(&ehr_url)).await;
    let billing = register(&app, "Billing", Some(&billing_url)).await;
    let quiet = register(&app, "No back-channel", None).await;
    // Two sessions into the EHR, one into billing; the other member's sign-in too.
    signed_into(&app, &ehr, &dr, "sid-a").await;
    signed_into(&app, &ehr, &dr, "sid-b").await;
    signed_into(&app, &billing, &dr, "sid-a").await;
    signed_into(&app, &quiet, &dr, "sid-a").await;
    signed_into(&app, &billing, &other, "sid-other").await;

    admin::revoke_sessions(&app.state, &By::operator(), None, "dr@riverside.test").await.unwrap();

    let ehr_tokens = wait_for(&ehr_seen, 2).await;
    let billing_tokens = wait_for(&billing_seen, 1).await;
    assert_eq!(ehr_tokens.len(), 2, "one logout per session the app saw");
    assert_eq!(billing_tokens.len(), 1, "the other member's session is not ended");
    let mut sids: Vec<String> = ehr_tokens.iter().map(|t| claims(t)["sid"].as_str().unwrap().to_owned()).collect();
    sids.sort();
    assert_eq!(sids, ["sid-a", "sid-b"]);
    let c = claims(&billing_tokens[0]);
    assert_eq!(c["sub"], dr.id.to_string());
    assert_eq!(c["aud"], billing);
    assert_eq!(c["iss"], app.base);
    assert!(c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(c.get("nonce").is_none(), "a logout token never carries a nonce");
    // Signed with a key the JWKS publishes.
    let header: serde_json::Value = {
        use base64::Engine;
        let h = billing_tokens[0].split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    assert_eq!(header["typ"], "logout+jwt");
    let jwks: serde_json::Value = app.api().get(app.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"]));
    assert!(
        clinic_auth_app::oidc::keys::verify_ours(&app.state, &billing_tokens[0]).await.unwrap().is_some(),
        "the logout token verifies against the published key"
    );
    // Each delivery is audited.
    let delivered = app.audit_of(Some("backchannel_logout"), 50).await;
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert!(delivered.iter().all(|e| e.outcome == "success"));
}

async fn an_app_that_does_not_answer_is_retried_then_given_up(app: TestApp) {
    let org = app.org("Riverside", OrgKind::Clinic).await;
    let dr = app.member(&org, "dr@riverside.test", Role::Provider).await;
    let (url, seen) = listener(StatusCode::INTERNAL_SERVER_ERROR).await;
    let ehr = register(&app, "EHR", Some(&url)).await;
    signed_into(&app, &ehr, &dr, "sid-a").await;

    // The admin's action does not wait for the app, nor fail with it.
    admin::set_status(
        &app.state,
        &By::operator(),
        None,
        "dr@riverside.test",
        clinic_auth_core::AccountStatus::Deactivated,
    )
    .await
    .unwrap();
    wait_for(&seen, 1).await;
    // Nothing more is due until the pause has passed.
    assert_eq!(clinic_auth_app::oidc::logout::deliver_due(&app.state).await.unwrap(), 0);
    assert_eq!(seen.lock().unwrap().len(), 1);
    for (i, pause) in [10, 60, 300, 1800, 7200].into_iter().enumerate() {
        app.clock.advance(pause);
        assert_eq!(clinic_auth_app::oidc::logout::deliver_due(&app.state).await.unwrap(), 0);
        assert_eq!(seen.lock().unwrap().len(), i + 2, "attempt {} was made", i + 2);
    }
    // Six attempts, then it gives up: nothing is due however long one waits.
    app.clock.advance(30 * 24 * 3600);
    clinic_auth_app::oidc::logout::deliver_due(&app.state).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 6);
    let attempts = app.audit_of(Some("backchannel_logout"), 50).await;
    assert_eq!(attempts.len(), 6, "every attempt is audited");
    assert!(attempts.iter().all(|e| e.outcome == "failure"));
    assert!(attempts[0].detail.contains("gave_up"), "{}", attempts[0].detail);
    assert!(attempts[1].detail.contains("retrying"), "{}", attempts[1].detail);
}

/// The waiting authorization request and the refresh token end at their lifetimes.
async fn an_authorization_request_waits_thirty_minutes_and_a_refresh_token_thirty_days(app: TestApp) {
    use clinic_auth_app::oidc::tokens::{self, TokenError, TokenForm};
    use clinic_auth_core::Clock;
    use clinic_auth_core::oidc::{REFRESH_TOKEN_TTL_SECS, REQUEST_TTL_SECS};
    let org = app.org("Riverside", OrgKind::Clinic).await;
    let dr = app.member(&org, "dr@riverside.test", Role::Provider).await;
    let client_id = register(&app, "EHR", None).await;

    // A request the member takes too long to sign in for is gone.
    let b = app.browser();
    let query = format!(
        "client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A9%2Fcb&response_type=code&scope=openid\
         &code_challenge={}&code_challenge_method=S256",
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let res = b.get(app.url(&format!("/oauth2/authorize?{query}"))).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login");
    app.clock.advance(REQUEST_TTL_SECS - 1);
    let res = b.get(app.url("/oauth2/authorize/resume")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login", "still waiting just before its end");
    app.clock.advance(2);
    let res = b.get(app.url("/oauth2/authorize/resume")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("took too long"));

    // A refresh token is refused once its 30 days are over (a public app, no secret).
    let public = NewClient {
        name: "Portal".into(),
        redirect_uris: vec!["http://localhost:9/cb".into()],
        confidential: false,
        ..Default::default()
    };
    let public = clients::register(&app.state, &By::operator(), public).await.unwrap().client.client_id;
    let now = app.clock.now();
    let grant = OidcGrant {
        id: "g-refresh".into(),
        client_id: public.clone(),
        account_id: dr.id,
        sid: "sid-r".into(),
        stamp: dr.security_stamp,
        scope: "openid offline_access".into(),
        nonce: None,
        auth_time: now,
        proved: "password".into(),
        created_at: now,
        revoked_at: None,
    };
    let code = OidcCode {
        code_hash: SecretToken::generate().hash(),
        grant_id: grant.id.clone(),
        redirect_uri: "http://localhost:9/cb".into(),
        code_challenge: "x".repeat(43),
        expires_at: now.plus_secs(60),
    };
    let event = clinic_auth_app::audit_event(
        &app.state,
        clinic_auth_core::audit::Event::AppSignedIn { client_id: &public, acr: "urn:clinic-auth:acr:password" },
        &Default::default(),
    );
    app.state.store.insert_oidc_grant(&grant, &code, &event).await.unwrap();
    let refresh = SecretToken::generate();
    let rows = [clinic_auth_store::NewOidcToken {
        token_hash: refresh.hash(),
        kind: clinic_auth_store::OidcTokenKind::Refresh,
        expires_at: now.plus_secs(REFRESH_TOKEN_TTL_SECS),
    }];
    assert!(app.state.store.issue_oidc_tokens(&grant.id, &rows, &event).await.unwrap());
    app.clock.advance(REFRESH_TOKEN_TTL_SECS + 1);
    let form = TokenForm {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(refresh.expose().to_owned()),
        client_id: Some(public.clone()),
        ..Default::default()
    };
    let answer = tokens::exchange(&app.state, form, None, &Default::default()).await;
    assert!(
        matches!(
            answer,
            Err(TokenError::OAuth { error: "invalid_grant", description: "the refresh token has expired" })
        ),
        "{answer:?}"
    );
}

/// A password change ends the member's other sessions, a new factor set up elsewhere
/// ends all of them: whichever way a session ends, the apps it signed into hear of it (queued in
/// the same transaction), and an app of a session that goes on hears nothing.
async fn every_way_sessions_end_tells_the_apps_those_sessions_signed_into(app: TestApp) {
    let org = app.org("Riverside", OrgKind::Clinic).await;
    let dr = app.member(&org, "dr@riverside.test", Role::Provider).await;
    let (ehr_url, ehr_seen) = listener(StatusCode::OK).await;
    let ehr = register(&app, "EHR", Some(&ehr_url)).await;
    let sids =
        || async { app.state.store.list_sessions(dr.id).await.unwrap().into_iter().map(|s| s.sid).collect::<Vec<_>>() };
    let _laptop = app.token("staff", "dr@riverside.test").await;
    let sid_laptop = sids().await.pop().unwrap();
    let phone = app.token("staff", "dr@riverside.test").await;
    let sid_phone = sids().await.into_iter().find(|s| *s != sid_laptop).unwrap();
    signed_into(&app, &ehr, &dr, &sid_laptop).await;
    signed_into(&app, &ehr, &dr, &sid_phone).await;

    // "Change password" on the phone: the laptop's session ends, the phone's stays.
    let body = serde_json::json!({
        "current_password": crate::harness::PASSWORD,
        "new_password": "a brand new passphrase for dr",
    });
    let (s, v) = app.post_json("/api/v1/me/password", &phone, body).await;
    assert_eq!(s, 204, "{v}");
    clinic_auth_app::oidc::logout::deliver_due(&app.state).await.unwrap();
    let told = wait_for(&ehr_seen, 1).await;
    assert_eq!(told.len(), 1, "one app session ended");
    assert_eq!(claims(&told[0])["sid"], sid_laptop.as_str());

    // Setting up a second factor elsewhere ends the phone's session too.
    app.enroll_authenticator(&dr).await;
    clinic_auth_app::oidc::logout::deliver_due(&app.state).await.unwrap();
    let told = wait_for(&ehr_seen, 2).await;
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(claims(&told[1])["sid"], sid_phone.as_str());
}

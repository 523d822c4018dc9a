//! clinic-auth as an OpenID Connect provider, judged by a relying party that is not
//! ours: the `openidconnect` crate discovers the provider, builds the authorization
//! URLs, exchanges codes and refresh tokens, verifies ID tokens against the JWKS
//! (signature, `iss`, `aud`, `exp`, nonce) and calls userinfo. The member's browser is
//! a cookie-keeping reqwest client that goes through the real sign-in pages. What the
//! library would refuse to send (or does not do) is sent with plain reqwest.
//!
//! The library checks `exp` against the system clock, so each test first sets the
//! app's clock to the real time.

use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clinic_auth_app::By;
use clinic_auth_app::admin;
use clinic_auth_app::oidc::clients::{self, NewClient};
use clinic_auth_core::{AccountStatus, OrgKind, Role, UnixTime};
use clinic_auth_store::Org;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdTokenClaims, CoreProviderMetadata,
    CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AsyncHttpClient, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardErrorResponse, SubjectIdentifier,
    TokenResponse,
};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp, csrf_of};

both_stores!(
    oidc_the_library_discovers_the_provider_and_its_keys,
    oidc_code_flow_with_pkce_through_the_pages_proves_mfa,
    oidc_refresh_tokens_rotate_and_a_replay_ends_the_grant,
    oidc_authorize_refuses_what_it_cannot_trust,
    oidc_token_endpoint_refuses_bad_codes_verifiers_and_secrets,
    oidc_introspection_knows_only_our_live_tokens,
    oidc_apps_admit_only_their_accounts,
    oidc_admin_actions_end_app_tokens,
    oidc_rotated_keys_verify_old_and_new_id_tokens,
    oidc_a_sign_in_made_for_the_request_satisfies_max_age_and_prompt_login,
);

/// Where the test apps say they live; the browser never follows the redirect there.
const REDIRECT: &str = "https://ehr.riverside.test/auth/callback";
const RESUME: &str = "/oauth2/authorize/resume";

// ----- the relying party's HTTP client -----

/// The app's back end talking to the provider: reqwest 0.13, no redirects followed,
/// no cookies. openidconnect is built without its own reqwest.
struct RpHttp(reqwest::Client);

#[derive(Debug)]
struct RpHttpError(String);

impl std::fmt::Display for RpHttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RpHttpError {}

fn http_error(e: impl std::fmt::Display) -> RpHttpError {
    RpHttpError(e.to_string())
}

impl<'c> AsyncHttpClient<'c> for RpHttp {
    type Error = RpHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, RpHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let res = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(http_error)?;
            let mut out = openidconnect::http::Response::builder().status(res.status());
            for (name, value) in res.headers() {
                out = out.header(name, value);
            }
            let body = res.bytes().await.map_err(http_error)?.to_vec();
            out.body(body).map_err(http_error)
        })
    }
}

type TokenError = RequestTokenError<RpHttpError, StandardErrorResponse<CoreErrorResponseType>>;

/// A client built from discovery: the authorization endpoint is known; token and
/// userinfo endpoints are as discovery says.
type Rp = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

// ----- the test app and its registration -----

/// Sets the app's clock to the real time (the library checks `exp` against the system
/// clock) and makes the relying party's HTTP client.
///
/// The server purges expired rows once as it starts, with the harness's fixed clock
/// (2027): a pass that read that time deletes every token that expires before it. Set
/// back to the real time while that pass is still running, the clock would let it
/// delete what the test makes next (a fresh access token vanished so). So the clock
/// moves only once the pass is over: it deletes a long-expired request put here first.
async fn start(app: &TestApp) -> RpHttp {
    let marker = clinic_auth_core::SecretToken::generate().hash();
    let expired = clinic_auth_store::AuthorizationRequest {
        client_id: "start-up-purge-marker".into(),
        params: "{}".into(),
        created_at: UnixTime(0),
        expires_at: UnixTime(1),
    };
    app.state.store.put_authorization_request(&marker, &expired).await.unwrap();
    let waited = std::time::Instant::now();
    while app.state.store.get_authorization_request(&marker).await.unwrap().is_some() {
        if waited.elapsed() > std::time::Duration::from_millis(1500) {
            // The pass was over before the marker went in.
            app.state.store.delete_authorization_request(&marker).await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Its last statements (codes, tokens, logouts) come right after the requests'.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    app.clock.set(UnixTime(now as i64));
    clinic_auth_notify::install_default_crypto_provider();
    RpHttp(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap())
}

async fn discover(app: &TestApp, http: &RpHttp) -> CoreProviderMetadata {
    let issuer = IssuerUrl::new(app.base.clone()).unwrap();
    CoreProviderMetadata::discover_async(issuer, http).await.unwrap_or_else(|e| panic!("discovery failed: {e:?}"))
}

/// A registered app: its id, and its secret when confidential.
struct Registered {
    id: String,
    secret: Option<String>,
}

#[derive(Default)]
struct Registration<'a> {
    confidential: bool,
    org: Option<&'a Org>,
    patients: bool,
}

async fn register(app: &TestApp, name: &str, r: Registration<'_>) -> Registered {
    let new = NewClient {
        name: name.into(),
        redirect_uris: vec![REDIRECT.into()],
        confidential: r.confidential,
        org_id: r.org.map(|o| o.id.as_str().to_owned()),
        patients: r.patients,
        ..Default::default()
    };
    let done = clients::register(&app.state, &By::operator(), new).await.unwrap();
    assert_eq!(done.client_secret.is_some(), r.confidential);
    Registered { id: done.client.client_id, secret: done.client_secret.map(|s| s.expose().to_owned()) }
}

fn rp(meta: &CoreProviderMetadata, client: &Registered) -> Rp {
    rp_with_secret(meta, &client.id, client.secret.as_deref())
}

fn rp_with_secret(meta: &CoreProviderMetadata, client_id: &str, secret: Option<&str>) -> Rp {
    CoreClient::from_provider_metadata(
        meta.clone(),
        ClientId::new(client_id.to_owned()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

// ----- the app's side of a sign-in -----

/// An authorization request the app sent the browser with, and what it keeps.
struct Pending {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn authorization(rp: &Rp, scopes: &[&str]) -> Pending {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_owned()));
    }
    let (url, state, nonce) = req.url();
    Pending { url: url.to_string(), state, nonce, verifier }
}

/// The query of a redirect back to the app; panics when it is not one.
fn callback(location: &str) -> std::collections::HashMap<String, String> {
    assert!(location.starts_with(REDIRECT), "expected a redirect to the app, got {location:?}");
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The code of a successful callback, after checking `state` and `iss` as an app must.
fn code_of(app: &TestApp, location: &str, pending: &Pending) -> AuthorizationCode {
    let q = callback(location);
    assert_eq!(q.get("error"), None, "the app was sent an error: {q:?}");
    assert_eq!(q.get("state"), Some(pending.state.secret()), "state comes back unchanged");
    assert_eq!(q.get("iss"), Some(&app.base), "iss names the provider (RFC 9207)");
    AuthorizationCode::new(q.get("code").expect("a code").clone())
}

async fn exchange(
    rp: &Rp,
    http: &RpHttp,
    code: AuthorizationCode,
    verifier: PkceCodeVerifier,
) -> Result<CoreTokenResponse, TokenError> {
    rp.exchange_code(code).unwrap().set_pkce_verifier(verifier).request_async(http).await
}

async fn refresh(rp: &Rp, http: &RpHttp, token: &RefreshToken) -> Result<CoreTokenResponse, TokenError> {
    rp.exchange_refresh_token(token).unwrap().request_async(http).await
}

/// The OAuth error code of a refused token request.
fn oauth_error<T: std::fmt::Debug>(r: Result<T, TokenError>) -> String {
    match r {
        Err(RequestTokenError::ServerResponse(e)) => e.error().as_ref().to_owned(),
        other => panic!("expected an OAuth error answer, got {other:?}"),
    }
}

/// The ID token's claims, as the library verifies them (signature against the
/// JWKS, `iss`, `aud`, `exp`, and the nonce).
fn verified(rp: &Rp, tokens: &CoreTokenResponse, nonce: &Nonce) -> CoreIdTokenClaims {
    let id_token = tokens.id_token().expect("an ID token");
    id_token
        .claims(&rp.id_token_verifier(), nonce)
        .unwrap_or_else(|e| panic!("the ID token does not verify: {e:?}"))
        .clone()
}

/// An ID token from a refresh carries no nonce (OpenID Connect Core §12.2).
fn verified_without_nonce(rp: &Rp, tokens: &CoreTokenResponse) -> CoreIdTokenClaims {
    let id_token = tokens.id_token().expect("an ID token");
    let no_nonce =
        |n: Option<&Nonce>| if n.is_none() { Ok(()) } else { Err("a refreshed ID token has a nonce".into()) };
    id_token
        .claims(&rp.id_token_verifier(), no_nonce)
        .unwrap_or_else(|e| panic!("the ID token does not verify: {e:?}"))
        .clone()
}

/// One part of a JWT, decoded (for claims the library does not type).
fn jwt_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn id_token_of(tokens: &CoreTokenResponse) -> String {
    tokens.id_token().expect("an ID token").to_string()
}

// ----- the browser -----

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn page(b: &reqwest::Client, url: &str) -> (u16, String) {
    let res = b.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The browser follows the app's authorization URL: signs in at the pages it is sent
/// to (when it has no session) and comes back through `resume`. The redirect to the
/// app.
async fn authorize_in_browser(app: &TestApp, b: &reqwest::Client, pending: &Pending, email: &str) -> String {
    let res = b.get(&pending.url).send().await.unwrap();
    assert_eq!(res.status(), 303, "authorize redirects");
    let to = location(&res);
    if to.starts_with(REDIRECT) {
        return to;
    }
    assert!(to == "/login" || to == "/portal/login", "no session: to the sign-in pages, got {to:?}");
    let res = app.sign_in_with_pages(b, &to, email).await;
    assert_eq!(location(&res), RESUME, "{email}: the sign-in goes back to the app's request");
    let res = b.get(app.url(RESUME)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    location(&res)
}

/// A full sign-in for the app: the redirect's code exchanged for tokens.
async fn sign_in_for(
    app: &TestApp,
    b: &reqwest::Client,
    rp: &Rp,
    http: &RpHttp,
    scopes: &[&str],
    email: &str,
) -> (Pending, CoreTokenResponse) {
    let pending = authorization(rp, scopes);
    let to = authorize_in_browser(app, b, &pending, email).await;
    let code = code_of(app, &to, &pending);
    let tokens = exchange(rp, http, code, PkceCodeVerifier::new(pending.verifier.secret().clone()))
        .await
        .unwrap_or_else(|e| panic!("code exchange failed: {e:?}"));
    (pending, tokens)
}

async fn userinfo_status(app: &TestApp, access_token: &str) -> u16 {
    app.api().get(app.url("/oauth2/userinfo")).bearer_auth(access_token).send().await.unwrap().status().as_u16()
}

async fn introspect(app: &TestApp, client: &Registered, token: &str) -> (u16, Value) {
    let res = app
        .api()
        .post(app.url("/oauth2/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn clinic(app: &TestApp) -> Org {
    app.org("Riverside Clinic", OrgKind::Clinic).await
}

// ----- 1. discovery and keys -----

async fn oidc_the_library_discovers_the_provider_and_its_keys(app: TestApp) {
    let http = start(&app).await;
    let meta = discover(&app, &http).await;
    assert_eq!(meta.issuer().as_str(), app.base, "the issuer is the public URL without a trailing slash");
    assert_eq!(meta.authorization_endpoint().as_str(), app.url("/oauth2/authorize"));
    assert_eq!(meta.token_endpoint().map(|u| u.as_str().to_owned()), Some(app.url("/oauth2/token")));
    assert_eq!(meta.userinfo_endpoint().map(|u| u.as_str().to_owned()), Some(app.url("/oauth2/userinfo")));
    assert_eq!(meta.jwks_uri().as_str(), app.url("/oauth2/jwks"));
    let algs: Vec<String> = meta
        .id_token_signing_alg_values_supported()
        .iter()
        .map(|a| serde_json::to_value(a).unwrap().to_string())
        .collect();
    assert!(algs.contains(&"\"RS256\"".to_owned()), "RS256, the spec's default: {algs:?}");
    // What the library does not type, from the document itself.
    let doc: Value =
        app.api().get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]), "PKCE: S256 only");
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    // The library fetched the JWKS from jwks_uri: two keys, each with a kid.
    let keys = meta.jwks().keys();
    assert_eq!(keys.len(), 2, "one key per algorithm");
    assert!(keys.iter().all(|k| openidconnect::JsonWebKey::key_id(k).is_some()), "every key has a kid");

    // The JWKS as published: an RS256 and an ES256 signing key, public parts only.
    let jwks: Value = app.api().get(app.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys");
    let of = |alg: &str| keys.iter().find(|k| k["alg"] == alg).unwrap_or_else(|| panic!("a {alg} key in {jwks}"));
    let rsa = of("RS256");
    assert_eq!(rsa["kty"], "RSA");
    assert!(rsa["n"].is_string() && rsa["e"].is_string());
    let ec = of("ES256");
    assert_eq!(ec["kty"], "EC");
    assert_eq!(ec["crv"], "P-256");
    assert!(ec["x"].is_string() && ec["y"].is_string());
    for k in [rsa, ec] {
        assert!(k["kid"].as_str().is_some_and(|kid| !kid.is_empty()), "a kid: {k}");
        assert_eq!(k["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "no private part {private} in {k}");
        }
    }
    assert_ne!(rsa["kid"], ec["kid"]);
}

// ----- 2. the code flow with PKCE, through the pages -----

async fn oidc_code_flow_with_pkce_through_the_pages_proves_mfa(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    let member = app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    app.enroll_authenticator(&member).await;
    let ehr = register(&app, "Riverside EHR", Registration::default()).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &ehr);
    let b = app.browser();

    let pending = authorization(&rp, &["email"]);
    let res = b.get(&pending.url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login", "no session: the sign-in pages");
    assert!(
        res.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("clinic_auth_app_request=")),
        "the request waits in a cookie"
    );
    let res = app.sign_in_with_pages(&b, "/login", "dr.lee@riverside.test").await;
    assert_eq!(location(&res), RESUME, "the second factor done, back to the app's request");
    let res = b.get(app.url(RESUME)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let code = code_of(&app, &location(&res), &pending);
    let tokens = exchange(&rp, &http, code, pending.verifier).await.unwrap_or_else(|e| panic!("exchange: {e:?}"));
    assert!(tokens.refresh_token().is_none(), "no refresh token without offline_access");
    assert_eq!(tokens.token_type().as_ref(), "bearer");

    let claims = verified(&rp, &tokens, &pending.nonce);
    assert_eq!(claims.issuer().as_str(), app.base);
    assert_eq!(claims.audiences().iter().map(|a| a.as_str()).collect::<Vec<_>>(), [ehr.id.as_str()]);
    assert_eq!(claims.subject().as_str(), member.id.to_string(), "sub is the account id");
    assert_ne!(claims.subject().as_str(), "dr.lee@riverside.test", "never the email");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("dr.lee@riverside.test"), "email with the email scope");
    assert_eq!(claims.email_verified(), Some(true));
    let amr: Vec<&str> = claims.auth_method_refs().expect("amr").iter().map(|a| a.as_str()).collect();
    for m in ["pwd", "otp", "mfa"] {
        assert!(amr.contains(&m), "amr has {m}: {amr:?}");
    }
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("urn:clinic-auth:acr:mfa"));
    let auth_time = claims.auth_time().expect("auth_time").timestamp();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((auth_time - now).abs() < 300, "auth_time is the sign-in: {auth_time} vs {now}");
    // The clinic context, which the library does not type.
    let jwt = id_token_of(&tokens);
    let header = jwt_part(&jwt, 0);
    assert_eq!(header["alg"], "RS256");
    let payload = jwt_part(&jwt, 1);
    assert_eq!(payload["org_id"], org.id.as_str());
    assert_eq!(payload["org_name"], "Riverside Clinic");
    assert_eq!(payload["role"], "provider");
    assert_eq!(payload["realm"], "staff");
    assert_eq!(payload["azp"], ehr.id.as_str());
    assert!(payload["sid"].as_str().is_some_and(|s| !s.is_empty()), "a session id: {payload}");

    // Userinfo, through the library: the same subject (which it checks).
    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(SubjectIdentifier::new(member.id.to_string())))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}"));
    assert_eq!(info.subject().as_str(), member.id.to_string());
    assert_eq!(info.email().map(|e| e.as_str()), Some("dr.lee@riverside.test"));

    // A second app in the same browser: single sign-on, straight back with a code, and
    // the token still says what the sign-in proved.
    let other = register(&app, "Riverside Scheduling", Registration::default()).await;
    let rp2 = rp_with_secret(&meta, &other.id, None);
    let (p2, t2) = sign_in_for(&app, &b, &rp2, &http, &[], "dr.lee@riverside.test").await;
    let c2 = verified(&rp2, &t2, &p2.nonce);
    assert_eq!(c2.subject(), claims.subject(), "sub is the same for every app");
    assert_eq!(c2.auth_context_ref().map(|a| a.as_str()), Some("urn:clinic-auth:acr:mfa"));
    assert!(c2.email().is_none(), "no email without the email scope");
    // An ID token made for one app does not verify for the other.
    let stolen = tokens.id_token().unwrap();
    assert!(stolen.claims(&rp2.id_token_verifier(), &pending.nonce).is_err(), "aud is checked");
}

// ----- 3. refresh tokens -----

async fn oidc_refresh_tokens_rotate_and_a_replay_ends_the_grant(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    let member = app.member(&org, "nurse@riverside.test", Role::Staff).await;
    let billing = register(&app, "Riverside Billing", Registration { confidential: true, ..Default::default() }).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &billing);
    let b = app.browser();
    let (pending, first) = sign_in_for(&app, &b, &rp, &http, &["offline_access"], "nurse@riverside.test").await;
    let claims = verified(&rp, &first, &pending.nonce);
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("urn:clinic-auth:acr:password"));
    assert_eq!(
        claims.auth_method_refs().unwrap().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["pwd"],
        "a password alone"
    );
    let r1 = first.refresh_token().expect("a refresh token with offline_access").clone();
    let a1 = first.access_token().secret().clone();
    assert_eq!(userinfo_status(&app, &a1).await, 200);

    // A refresh gives new tokens and a new refresh token.
    let second = refresh(&rp, &http, &r1).await.unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let r2 = second.refresh_token().expect("a new refresh token").clone();
    let a2 = second.access_token().secret().clone();
    assert_ne!(r2.secret(), r1.secret(), "the refresh token is rotated");
    assert_ne!(a2, a1);
    let refreshed = verified_without_nonce(&rp, &second);
    assert_eq!(refreshed.subject().as_str(), member.id.to_string());
    assert_eq!(refreshed.auth_time(), claims.auth_time(), "auth_time stays the sign-in's");
    assert_eq!(userinfo_status(&app, &a2).await, 200);
    let (_, i) = introspect(&app, &billing, r1.secret()).await;
    assert_eq!(i, json!({"active": false}), "a used refresh token is not active");
    let (_, i) = introspect(&app, &billing, r2.secret()).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["token_type"], "refresh_token");

    // The old refresh token again: refused, and the whole grant ends with it.
    assert_eq!(oauth_error(refresh(&rp, &http, &r1).await), "invalid_grant", "a used refresh token");
    assert_eq!(oauth_error(refresh(&rp, &http, &r2).await), "invalid_grant", "the newest one died with the grant");
    assert_eq!(userinfo_status(&app, &a2).await, 401, "the grant's access tokens end");
    assert_eq!(userinfo_status(&app, &a1).await, 401);
    let (_, i) = introspect(&app, &billing, r2.secret()).await;
    assert_eq!(i, json!({"active": false}));
    assert!(app.audit_kinds().await.iter().any(|(k, _)| k == "app_token_replayed"), "the replay is audited");

    // The browser's session still answers: a new grant, which the app ends by revoking
    // its refresh token (RFC 7009), access token included.
    let (_, third) = sign_in_for(&app, &b, &rp, &http, &["offline_access"], "nurse@riverside.test").await;
    let r3 = third.refresh_token().expect("a refresh token").clone();
    let a3 = third.access_token().secret().clone();
    assert_eq!(userinfo_status(&app, &a3).await, 200);
    let res = app
        .api()
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&billing.id, billing.secret.as_deref())
        .form(&[("token", r3.secret().as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(oauth_error(refresh(&rp, &http, &r3).await), "invalid_grant", "a revoked refresh token");
    assert_eq!(userinfo_status(&app, &a3).await, 401, "revoking the refresh token ends the grant");
}

// ----- 4. refusals -----

async fn oidc_authorize_refuses_what_it_cannot_trust(app: TestApp) {
    let http = start(&app).await;
    let ehr = register(&app, "Riverside EHR", Registration::default()).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &ehr);
    let b = app.browser();

    // An unregistered redirect URI, or a registered one with something added: a page,
    // never a redirect to it.
    for evil in ["https://evil.test/steal", "https://ehr.riverside.test/auth/callback?next=https://evil.test"] {
        let mut pending = authorization(&rp, &[]);
        let mut url = url::Url::parse(&pending.url).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "redirect_uri" { evil.to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        pending.url = url.to_string();
        let res = b.get(&pending.url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{evil}: an error page");
        assert!(res.headers().get("location").is_none(), "{evil}: no redirect");
        let html = res.text().await.unwrap();
        assert!(html.contains("has not registered"), "{html}");
    }
    // An unknown client.
    let stranger = rp_with_secret(&meta, "0123456789abcdef0123456789abcdef", None);
    let res = b.get(&authorization(&stranger, &[]).url).send().await.unwrap();
    assert_eq!(res.status(), 400, "an unknown client: an error page");
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("not registered"));

    // From here the redirect URI is the app's: it hears what is wrong.
    // No PKCE (the library sends none unless asked).
    let (url, state, _) =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).url();
    let res = b.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let q = callback(&location(&res));
    assert_eq!(q.get("error").map(String::as_str), Some("invalid_request"), "PKCE is required: {q:?}");
    assert_eq!(q.get("state"), Some(state.secret()));
    assert_eq!(q.get("iss"), Some(&app.base));
    assert!(!q.contains_key("code"));
    // PKCE with the plain method.
    let mut url = url::Url::parse(&authorization(&rp, &[]).url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = match k.as_ref() {
                "code_challenge_method" => "plain".to_owned(),
                "code_challenge" => "a".repeat(43),
                _ => v.into_owned(),
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let res = b.get(url.as_str()).send().await.unwrap();
    let q = callback(&location(&res));
    assert_eq!(q.get("error").map(String::as_str), Some("invalid_request"), "S256 only: {q:?}");

    // prompt=none without a session.
    let (challenge, _verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, _) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .add_prompt(CoreAuthPrompt::None)
        .url();
    let res = app.browser().get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let q = callback(&location(&res));
    assert_eq!(q.get("error").map(String::as_str), Some("login_required"), "{q:?}");
    assert_eq!(q.get("state"), Some(state.secret()));
    assert!(!q.contains_key("code"));
}

async fn oidc_token_endpoint_refuses_bad_codes_verifiers_and_secrets(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let ehr = register(&app, "Riverside EHR", Registration { confidential: true, ..Default::default() }).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &ehr);
    let b = app.browser();
    // The first sign-in; after it the browser's session answers at once.
    let (_, first) = sign_in_for(&app, &b, &rp, &http, &[], "dr.lee@riverside.test").await;
    assert_eq!(userinfo_status(&app, first.access_token().secret()).await, 200);
    let fresh_code = |pending: &Pending| {
        let b = b.clone();
        let url = pending.url.clone();
        async move {
            let res = b.get(&url).send().await.unwrap();
            location(&res)
        }
    };

    // A code_verifier that is not the challenge's.
    let pending = authorization(&rp, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    let (_, wrong) = PkceCodeChallenge::new_random_sha256();
    assert_eq!(oauth_error(exchange(&rp, &http, code, wrong).await), "invalid_grant", "a wrong code_verifier");

    // A code used twice: refused, and the tokens it gave end.
    let pending = authorization(&rp, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    let again = AuthorizationCode::new(code.secret().clone());
    let verifier = pending.verifier.secret().clone();
    let tokens = exchange(&rp, &http, code, PkceCodeVerifier::new(verifier.clone())).await.unwrap();
    let access = tokens.access_token().secret().clone();
    assert_eq!(userinfo_status(&app, &access).await, 200);
    assert_eq!(
        oauth_error(exchange(&rp, &http, again, PkceCodeVerifier::new(verifier)).await),
        "invalid_grant",
        "a code works once"
    );
    assert_eq!(userinfo_status(&app, &access).await, 401, "a replayed code ends what it issued");
    assert_eq!(userinfo_status(&app, first.access_token().secret()).await, 200, "other grants live on");

    // A code presented by another app than the one it was issued to.
    let other = register(&app, "Riverside Billing", Registration { confidential: true, ..Default::default() }).await;
    let other_rp = rp_with_secret(&meta, &other.id, other.secret.as_deref());
    let pending = authorization(&rp, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    assert_eq!(
        oauth_error(exchange(&other_rp, &http, code, pending.verifier).await),
        "invalid_grant",
        "another app's code"
    );

    // A code after its minute.
    let pending = authorization(&rp, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    app.clock.advance(61);
    assert_eq!(oauth_error(exchange(&rp, &http, code, pending.verifier).await), "invalid_grant", "an expired code");

    // A wrong client secret: 401 invalid_client, through the library and by hand.
    let pending = authorization(&rp, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    let impostor = rp_with_secret(&meta, &ehr.id, Some("not-the-secret-not-the-secret-not-the-secre"));
    let answer = exchange(&impostor, &http, AuthorizationCode::new(code.secret().clone()), pending.verifier).await;
    assert_eq!(oauth_error(answer), "invalid_client");
    let res = app
        .api()
        .post(app.url("/oauth2/token"))
        .basic_auth(&ehr.id, Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.secret().as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "x".repeat(43).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("www-authenticate").is_some(), "a 401 says how to authenticate");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // A confidential client without its secret.
    let secretless = rp_with_secret(&meta, &ehr.id, None);
    let pending = authorization(&secretless, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    assert_eq!(oauth_error(exchange(&secretless, &http, code, pending.verifier).await), "invalid_client");
    // The right secret in the form (client_secret_post, which discovery offers) works.
    let posting = rp_with_secret(&meta, &ehr.id, ehr.secret.as_deref()).set_auth_type(AuthType::RequestBody);
    let pending = authorization(&posting, &[]);
    let code = code_of(&app, &fresh_code(&pending).await, &pending);
    let tokens = exchange(&posting, &http, code, pending.verifier).await.unwrap_or_else(|e| panic!("{e:?}"));
    verified(&posting, &tokens, &pending.nonce);
}

/// An unsigned JWT (`alg: none`) with the claims of a real token.
fn alg_none_jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

/// A JWT signed ES256 by a P-256 key that is not the provider's, under `kid`.
fn foreign_jwt(kid: &str, claims: &Value) -> String {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes())).unwrap()
}

async fn oidc_introspection_knows_only_our_live_tokens(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    let member = app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let ehr = register(&app, "Riverside EHR", Registration { confidential: true, ..Default::default() }).await;
    let billing = register(&app, "Riverside Billing", Registration { confidential: true, ..Default::default() }).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &ehr);
    let (_, tokens) = sign_in_for(&app, &app.browser(), &rp, &http, &["email"], "dr.lee@riverside.test").await;
    let access = tokens.access_token().secret().clone();

    // A live access token, asked about by the app it was issued to.
    let (status, i) = introspect(&app, &ehr, &access).await;
    assert_eq!(status, 200);
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], member.id.to_string());
    assert_eq!(i["client_id"], ehr.id.as_str());
    assert_eq!(i["iss"], app.base.as_str());
    assert_eq!(i["token_type"], "Bearer");
    assert!(i["scope"].as_str().is_some_and(|s| s.split(' ').any(|v| v == "openid")), "{i}");
    assert!(i["exp"].as_i64().is_some_and(|exp| exp > app_now(&app)), "{i}");
    // Another app learns nothing about it.
    let (_, i) = introspect(&app, &billing, &access).await;
    assert_eq!(i, json!({"active": false}), "another client's token");
    // Without client authentication: refused.
    let res = app.api().post(app.url("/oauth2/introspect")).form(&[("token", access.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let wrong = Registered { id: ehr.id.clone(), secret: Some("wrong".into()) };
    assert_eq!(introspect(&app, &wrong, &access).await.0, 401);
    // client_secret_post works as well as Basic.
    let res = app
        .api()
        .post(app.url("/oauth2/introspect"))
        .form(&[("token", access.as_str()), ("client_id", &ehr.id), ("client_secret", ehr.secret.as_deref().unwrap())])
        .send()
        .await
        .unwrap();
    let i: Value = res.json().await.unwrap();
    assert_eq!(i["active"], true, "{i}");

    // JWTs are never our tokens: an unsigned one, one signed by a stranger under our
    // kid and under an unknown kid, and even our own ID token.
    let id_token = id_token_of(&tokens);
    let claims = jwt_part(&id_token, 1);
    let kid = jwt_part(&id_token, 0)["kid"].as_str().unwrap().to_owned();
    let es_kid = {
        let jwks: Value = app.api().get(app.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().find(|k| k["alg"] == "ES256").unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let forged = [
        ("alg none", alg_none_jwt(&claims)),
        ("foreign key, our ES256 kid", foreign_jwt(&es_kid, &claims)),
        ("foreign key, our RS256 kid", foreign_jwt(&kid, &claims)),
        ("foreign key, unknown kid", foreign_jwt("not-a-kid-of-ours", &claims)),
        ("our own ID token", id_token.clone()),
    ];
    for (what, jwt) in forged {
        let (status, i) = introspect(&app, &ehr, &jwt).await;
        assert_eq!(status, 200, "{what}");
        assert_eq!(i, json!({"active": false}), "{what}");
    }
    // Nor does userinfo take them.
    assert_eq!(userinfo_status(&app, &alg_none_jwt(&claims)).await, 401);
    assert_eq!(userinfo_status(&app, &foreign_jwt(&es_kid, &claims)).await, 401);

    // Revoked by the app: no longer active.
    let res = app
        .api()
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&ehr.id, ehr.secret.as_deref())
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&app, &ehr, &access).await.1, json!({"active": false}));
    assert_eq!(userinfo_status(&app, &access).await, 401);
}

fn app_now(app: &TestApp) -> i64 {
    use clinic_auth_core::Clock;
    app.clock.now().0
}

async fn oidc_apps_admit_only_their_accounts(app: TestApp) {
    let http = start(&app).await;
    let riverside = clinic(&app).await;
    let hillside = app.org("Hillside Clinic", OrgKind::Clinic).await;
    app.member(&riverside, "dr.lee@riverside.test", Role::Provider).await;
    app.member(&hillside, "dr.kim@hillside.test", Role::Provider).await;
    app.patient(&riverside, "pat@example.test").await;
    let ehr = register(&app, "Riverside EHR", Registration { org: Some(&riverside), ..Default::default() }).await;
    let portal = register(&app, "Riverside Portal", Registration { patients: true, ..Default::default() }).await;
    let meta = discover(&app, &http).await;
    let ehr_rp = rp(&meta, &ehr);
    let portal_rp = rp(&meta, &portal);

    // Riverside's own member: admitted.
    let (p, t) = sign_in_for(&app, &app.browser(), &ehr_rp, &http, &[], "dr.lee@riverside.test").await;
    assert_eq!(jwt_part(&id_token_of(&t), 1)["org_id"], riverside.id.as_str());
    verified(&ehr_rp, &t, &p.nonce);

    // A member of another organization signs in, and the app is told access_denied.
    let b = app.browser();
    let pending = authorization(&ehr_rp, &[]);
    let to = authorize_in_browser(&app, &b, &pending, "dr.kim@hillside.test").await;
    let q = callback(&to);
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "another organization's member: {q:?}");
    assert_eq!(q.get("state"), Some(pending.state.secret()));
    assert!(!q.contains_key("code"));
    // Signed in already, the same answer at once.
    let pending = authorization(&ehr_rp, &[]);
    let res = b.get(&pending.url).send().await.unwrap();
    let q = callback(&location(&res));
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "{q:?}");

    // A patient, signed in at the portal, gets no code from a staff app: the staff
    // app's request goes to the staff sign-in, which does not take patients.
    let b = app.browser();
    let res = app.sign_in_with_pages(&b, "/portal/login", "pat@example.test").await;
    assert_eq!(location(&res), "/account", "the patient is signed in");
    let pending = authorization(&ehr_rp, &[]);
    let res = b.get(&pending.url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(
        !to.starts_with(REDIRECT) || callback(&to).get("error").is_some_and(|e| e == "access_denied"),
        "a patient's session answers no staff app: {to}"
    );
    if !to.starts_with(REDIRECT) {
        assert_eq!(to, "/login");
        let (_, html) = page(&b, &app.url("/login")).await;
        b.post(app.url("/login"))
            .form(&[("csrf", csrf_of(&html).as_str()), ("email", "pat@example.test")])
            .send()
            .await
            .unwrap();
        let (_, html) = page(&b, &app.url("/login/password")).await;
        let res = b
            .post(app.url("/login/password"))
            .form(&[("csrf", csrf_of(&html).as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "patients cannot sign in on the staff pages");
        let res = b.get(app.url(RESUME)).send().await.unwrap();
        let to = location(&res);
        assert!(!to.starts_with(REDIRECT) || !callback(&to).contains_key("code"), "still no code: {to}");
    }
    // With prompt=none the staff app hears at once that no staff member is signed in.
    let b2 = app.browser();
    app.sign_in_with_pages(&b2, "/portal/login", "pat@example.test").await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = ehr_rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .add_prompt(CoreAuthPrompt::None)
        .url();
    let res = b2.get(url.as_str()).send().await.unwrap();
    let q = callback(&location(&res));
    assert!(!q.contains_key("code"), "{q:?}");
    assert!(matches!(q.get("error").map(String::as_str), Some("login_required" | "access_denied")), "{q:?}");

    // The patient portal's app takes the patient (at the patient pages), not staff.
    let (p, t) = sign_in_for(&app, &app.browser(), &portal_rp, &http, &[], "pat@example.test").await;
    let claims = verified(&portal_rp, &t, &p.nonce);
    assert_eq!(jwt_part(&id_token_of(&t), 1)["realm"], "patient");
    assert_eq!(jwt_part(&id_token_of(&t), 1)["account_kind"], "patient");
    assert!(!claims.subject().as_str().is_empty());
    let b = app.browser();
    let res = app.sign_in_with_pages(&b, "/login", "dr.lee@riverside.test").await;
    assert_eq!(location(&res), "/account");
    let res = b.get(&authorization(&portal_rp, &[]).url).send().await.unwrap();
    let to = location(&res);
    assert!(!to.starts_with(REDIRECT) || !callback(&to).contains_key("code"), "staff get no portal code: {to}");
}

// ----- 5. admin actions end the apps' tokens -----

/// A confidential app's tokens for `email` (with a refresh token), checked alive.
async fn offline_tokens(app: &TestApp, rp: &Rp, http: &RpHttp, email: &str) -> (RefreshToken, AccessToken) {
    let (_, tokens) = sign_in_for(app, &app.browser(), rp, http, &["offline_access"], email).await;
    let access = tokens.access_token().clone();
    assert_eq!(userinfo_status(app, access.secret()).await, 200, "{email}: a live access token");
    (tokens.refresh_token().expect("a refresh token").clone(), access)
}

async fn oidc_admin_actions_end_app_tokens(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    app.member(&org, "everywhere@riverside.test", Role::Staff).await;
    app.member(&org, "leaver@riverside.test", Role::Staff).await;
    let reset = app.member(&org, "lost-phone@riverside.test", Role::Staff).await;
    app.enroll_authenticator(&reset).await;
    let ehr = register(&app, "Riverside EHR", Registration { confidential: true, ..Default::default() }).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &ehr);
    let op = By::operator();
    for (what, email) in [
        ("sign out everywhere", "everywhere@riverside.test"),
        ("deactivation", "leaver@riverside.test"),
        ("MFA reset", "lost-phone@riverside.test"),
    ] {
        let (refresh_token, access) = offline_tokens(&app, &rp, &http, email).await;
        let (_, introspected) = introspect(&app, &ehr, refresh_token.secret()).await;
        assert_eq!(introspected["active"], true, "{what}: the refresh token is live before");
        match what {
            "sign out everywhere" => {
                admin::revoke_sessions(&app.state, &op, None, email).await.unwrap();
            }
            "deactivation" => {
                admin::set_status(&app.state, &op, None, email, AccountStatus::Deactivated).await.unwrap();
            }
            _ => {
                admin::reset_mfa(&app.state, &op, None, email, Some("Verified by video call with photo ID"))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(userinfo_status(&app, access.secret()).await, 401, "{what}: the access token ends");
        assert_eq!(
            oauth_error(refresh(&rp, &http, &refresh_token).await),
            "invalid_grant",
            "{what}: so does the refresh token"
        );
        let (_, introspected) = introspect(&app, &ehr, access.secret()).await;
        assert_eq!(introspected, json!({"active": false}), "{what}");
    }
    // Reactivating the member does not bring the old grant back.
    let (refresh_token, access) = offline_tokens(&app, &rp, &http, "everywhere@riverside.test").await;
    admin::set_status(&app.state, &op, None, "everywhere@riverside.test", AccountStatus::Deactivated).await.unwrap();
    admin::set_status(&app.state, &op, None, "everywhere@riverside.test", AccountStatus::Active).await.unwrap();
    assert_eq!(oauth_error(refresh(&rp, &http, &refresh_token).await), "invalid_grant", "reactivation revives nothing");
    assert_eq!(userinfo_status(&app, access.secret()).await, 401);
}

// ----- 6. key rotation -----

async fn oidc_rotated_keys_verify_old_and_new_id_tokens(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let ehr = register(&app, "Riverside EHR", Registration::default()).await;
    let meta = discover(&app, &http).await;
    let rp_before = rp(&meta, &ehr);
    let b = app.browser();
    let (p1, t1) = sign_in_for(&app, &b, &rp_before, &http, &[], "dr.lee@riverside.test").await;
    verified(&rp_before, &t1, &p1.nonce);
    let old_kid = jwt_part(&id_token_of(&t1), 0)["kid"].as_str().unwrap().to_owned();
    let old_kids: Vec<String> =
        meta.jwks().keys().iter().map(|k| openidconnect::JsonWebKey::key_id(k).unwrap().to_string()).collect();
    assert!(old_kids.contains(&old_kid));

    let new_kids = clinic_auth_app::oidc::keys::rotate(&app.state, &By::operator()).await.unwrap();
    assert_eq!(new_kids.len(), 2);
    // The app fetches the JWKS again: old and new keys.
    let meta = discover(&app, &http).await;
    let kids: Vec<String> =
        meta.jwks().keys().iter().map(|k| openidconnect::JsonWebKey::key_id(k).unwrap().to_string()).collect();
    assert_eq!(kids.len(), 4, "two retired keys stay published beside two new ones: {kids:?}");
    for k in old_kids.iter().chain(&new_kids) {
        assert!(kids.contains(k), "{k} is published: {kids:?}");
    }
    let rp_after = rp(&meta, &ehr);
    // The ID token signed before still verifies with the new JWKS.
    let old = t1.id_token().unwrap();
    old.claims(&rp_after.id_token_verifier(), &p1.nonce)
        .unwrap_or_else(|e| panic!("a token signed before the rotation no longer verifies: {e:?}"));
    // New ID tokens (single sign-on: the browser's session) carry the new RS256 kid.
    let (p2, t2) = sign_in_for(&app, &b, &rp_after, &http, &[], "dr.lee@riverside.test").await;
    verified(&rp_after, &t2, &p2.nonce);
    let kid = jwt_part(&id_token_of(&t2), 0)["kid"].as_str().unwrap().to_owned();
    assert_ne!(kid, old_kid, "a retired key signs no more");
    assert_eq!(Some(&kid), new_kids.first(), "the new RS256 key signs");
    // An app that still holds the old JWKS cannot verify it until it fetches again.
    assert!(t2.id_token().unwrap().claims(&rp_before.id_token_verifier(), &p2.nonce).is_err());
}

// ----- max_age and prompt=login -----

/// `max_age=0` is `prompt=login` (OpenID Connect Core §3.1.2.1): the member signs in
/// again, and that sign-in, made for this very request, answers it, even when the
/// browser's trip back to `resume` crosses a second.
async fn oidc_a_sign_in_made_for_the_request_satisfies_max_age_and_prompt_login(app: TestApp) {
    let http = start(&app).await;
    let org = clinic(&app).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let ehr = register(&app, "Riverside EHR", Registration::default()).await;
    let meta = discover(&app, &http).await;
    let rp = rp(&meta, &ehr);
    let b = app.browser();
    let (p1, t1) = sign_in_for(&app, &b, &rp, &http, &[], "dr.lee@riverside.test").await;
    let first_auth = verified(&rp, &t1, &p1.nonce).auth_time().expect("auth_time");
    app.clock.advance(120);
    for (what, fresh) in [("prompt=login", None), ("max_age=0", Some(std::time::Duration::ZERO))] {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = rp
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        req = match fresh {
            Some(age) => req.set_max_age(age),
            None => req.add_prompt(CoreAuthPrompt::Login),
        };
        let (url, state, nonce) = req.url();
        let pending = Pending { url: url.to_string(), state, nonce, verifier };
        let res = b.get(&pending.url).send().await.unwrap();
        assert_eq!(location(&res), "/login", "{what}: the member signs in again despite the session");
        let res = app.sign_in_with_pages(&b, "/login", "dr.lee@riverside.test").await;
        assert_eq!(location(&res), RESUME);
        // The browser follows the redirect a moment later.
        app.clock.advance(1);
        let res = b.get(app.url(RESUME)).send().await.unwrap();
        let to = location(&res);
        assert!(to.starts_with(REDIRECT), "{what}: the sign-in just made answers the request, got {to:?}");
        let code = code_of(&app, &to, &pending);
        let tokens = exchange(&rp, &http, code, pending.verifier).await.unwrap();
        let auth_time = verified(&rp, &tokens, &pending.nonce).auth_time().expect("auth_time");
        assert!(auth_time > first_auth, "{what}: auth_time is the new sign-in");
        app.clock.advance(120);
    }
}

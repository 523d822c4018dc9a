//! The JSON API under `/api/v1`, for integrators and scripts. It calls the same
//! services as the pages. Authentication is `Authorization: Bearer <session_token>`;
//! cookies are never accepted here, so no request can be forged cross-site.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic_auth_core::{AccountKind, OrgKind, Password, Realm, Role};
use clinic_auth_store::{Account, LinkPurpose, Org};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ErrorBody, ErrorDetail};
use crate::http::auth::ApiSignedIn;
use crate::http::client::Client;
use crate::http::extract::ApiJson;
use crate::service::{By, accounts, login};
use crate::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(start_login))
        .route("/api/v1/login/{flow_id}/password", post(submit_password))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/orgs", post(create_org))
        .route("/api/v1/orgs/{org_id}", get(get_org))
        .route("/api/v1/orgs/{org_id}/members", post(add_member))
        .route("/api/v1/orgs/{org_id}/patients", post(add_patient))
        .route("/api/v1/platform-admins", post(add_platform_admin))
        .route("/api/v1/accounts/{account_id}/password-reset", post(password_reset))
        .route("/api/v1/password-links/{token}", post(use_password_link))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clinic-auth API",
        description = "Sign-in and account administration for clinic-auth. Errors are `{\"error\": {\"code\", \"message\"}}` with a stable `code`.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(start_login, submit_password, logout, me, create_org, get_org, add_member, add_patient, add_platform_admin, password_reset, use_password_link),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "sign-in", description = "The sign-in flow"), (name = "admin", description = "Organizations and accounts"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, as served and as checked into `docs/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

// ----- views -----

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// UUID
    id: String,
    /// `member`, `patient` or `platform_admin`
    kind: &'static str,
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    /// `owner`, `admin`, `provider` or `staff` (members only)
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `active` or `deactivated`
    status: &'static str,
    /// Whether a password is set (false until an invitation is accepted)
    password_set: bool,
    /// Unix seconds
    created_at: i64,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            id: a.id.to_string(),
            kind: a.kind.as_str(),
            email: a.email.to_string(),
            org_id: a.org_id.as_ref().map(|o| o.to_string()),
            role: a.role.map(Role::as_str),
            status: a.status.as_str(),
            password_set: a.password_hash.is_some(),
            created_at: a.created_at.0,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrgView {
    id: String,
    name: String,
    /// `clinic` or `solo`
    kind: &'static str,
    created_at: i64,
}

impl From<&Org> for OrgView {
    fn from(o: &Org) -> Self {
        OrgView { id: o.id.to_string(), name: o.name.clone(), kind: o.kind.as_str(), created_at: o.created_at.0 }
    }
}

fn by(s: &ApiSignedIn, client: Client) -> By {
    By { actor: s.0.actor(), account_id: Some(s.0.account.id), client: client.0 }
}

fn parse_enum<T: std::str::FromStr<Err = clinic_auth_core::account::ParseEnumError>>(
    s: &str,
    code: &'static str,
) -> Result<T, AppError> {
    s.parse::<T>().map_err(|e| AppError::bad_request(code, format!("{}.", e)))
}

// ----- sign-in -----

#[derive(Deserialize, ToSchema)]
pub struct StartLogin {
    /// `staff` (default) or `patient`
    #[serde(default)]
    realm: Option<String>,
    email: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginStarted {
    /// Secret: pass it back in the next step's path. Valid 15 minutes.
    flow_id: String,
    /// The next step: `password`
    next: &'static str,
    expires_at: i64,
}

/// Start signing in with an email. Any well-formed email gets a flow.
#[utoipa::path(post, path = "/api/v1/login", tag = "sign-in", request_body = StartLogin,
    responses((status = 201, body = LoginStarted), (status = 400, description = "`invalid_email`", body = ErrorBody)))]
async fn start_login(State(state): State<AppState>, ApiJson(body): ApiJson<StartLogin>) -> Result<Response, AppError> {
    let realm = match body.realm.as_deref() {
        None => Realm::Staff,
        Some(r) => parse_enum::<Realm>(r, "invalid_realm")?,
    };
    let started = login::start(&state, realm, &body.email).await?;
    let view = LoginStarted {
        flow_id: started.flow_token.expose().to_owned(),
        next: started.flow.step.name(),
        expires_at: started.flow.expires_at.0,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct SubmitPassword {
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedInView {
    /// Secret: send as `Authorization: Bearer <session_token>`.
    session_token: String,
    token_type: &'static str,
    /// `done`: the session is granted.
    next: &'static str,
    account: AccountView,
}

/// Submit the password for a flow.
#[utoipa::path(post, path = "/api/v1/login/{flow_id}/password", tag = "sign-in", request_body = SubmitPassword,
    params(("flow_id" = String, Path, description = "From the previous step")),
    responses((status = 200, body = SignedInView),
        (status = 401, description = "`incorrect_credentials` (unknown email and wrong password alike)", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 410, description = "`flow_expired`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = ErrorBody)))]
async fn submit_password(
    State(state): State<AppState>,
    client: Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<SubmitPassword>,
) -> Result<Json<SignedInView>, AppError> {
    let done = login::submit_password(&state, &flow_id, Password::new(body.password), &client.0).await?;
    Ok(Json(SignedInView {
        session_token: done.token.expose().to_owned(),
        token_type: "Bearer",
        next: "done",
        account: AccountView::from(&done.account),
    }))
}

/// End the session of the bearer token.
#[utoipa::path(post, path = "/api/v1/logout", tag = "sign-in", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, client: Client, s: ApiSignedIn) -> Result<StatusCode, AppError> {
    login::sign_out(&state, &s.0, &client.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "sign-in", security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
async fn me(s: ApiSignedIn) -> Json<AccountView> {
    Json(AccountView::from(&s.0.account))
}

// ----- administration -----

#[derive(Deserialize, ToSchema)]
pub struct CreateOrg {
    name: String,
    /// `clinic` or `solo`
    kind: String,
    /// Optional id (3–63 lowercase letters, digits, hyphens); derived from the name otherwise.
    #[serde(default)]
    id: Option<String>,
}

/// Create an organization (platform admins).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "admin", request_body = CreateOrg, security(("bearer" = [])),
    responses((status = 201, body = OrgView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_org(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<Response, AppError> {
    let kind = parse_enum::<OrgKind>(&body.kind, "invalid_kind")?;
    let org = accounts::create_org(&state, &by(&s, client), &body.name, kind, body.id.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(OrgView::from(&org))).into_response())
}

/// An organization (platform admins, or its own accounts).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path)), responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)))]
async fn get_org(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
) -> Result<Json<OrgView>, AppError> {
    let org = accounts::get_org(&state, &by(&s, client), &org_id).await?;
    Ok(Json(OrgView::from(&org)))
}

#[derive(Deserialize, ToSchema)]
pub struct AddAccount {
    email: String,
    /// Members only: `owner`, `admin`, `provider` or `staff`
    #[serde(default)]
    role: Option<String>,
    /// Optional initial password; without it the answer carries an invitation link.
    #[serde(default)]
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountAdded {
    account: AccountView,
    /// Secret link for the new account's holder to set a password (when none was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    invitation_url: Option<String>,
}

async fn add(
    state: &AppState,
    by: &By,
    kind: AccountKind,
    org: Option<&str>,
    body: AddAccount,
) -> Result<Response, AppError> {
    let role = match (kind, body.role.as_deref()) {
        (AccountKind::Member, Some(r)) => Some(parse_enum::<Role>(r, "invalid_role")?),
        _ => None,
    };
    let added =
        accounts::add_account(state, by, kind, org, &body.email, role, body.password.map(Password::new)).await?;
    let view = AccountAdded { account: AccountView::from(&added.account), invitation_url: added.invitation_url };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Add a member to an organization (platform admins; the organization's owners and admins).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 201, body = AccountAdded), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`email_taken`", body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&state, &by(&s, client), AccountKind::Member, Some(&org_id), body).await
}

/// Add a patient-portal account to an organization.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/patients", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 201, body = AccountAdded), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_patient(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&state, &by(&s, client), AccountKind::Patient, Some(&org_id), body).await
}

/// Add a platform admin (platform admins).
#[utoipa::path(post, path = "/api/v1/platform-admins", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    responses((status = 201, body = AccountAdded), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_platform_admin(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&state, &by(&s, client), AccountKind::PlatformAdmin, None, body).await
}

#[derive(Serialize, ToSchema)]
pub struct ResetLink {
    /// Secret link, valid up to 24 hours, to hand to the account's holder.
    reset_url: String,
}

/// Issue a password-reset link for an account.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/password-reset", tag = "admin", security(("bearer" = [])),
    params(("account_id" = String, Path)),
    responses((status = 201, body = ResetLink), (status = 404, description = "Unknown, or not yours to manage", body = ErrorBody)))]
async fn password_reset(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(account_id): Path<String>,
) -> Result<Response, AppError> {
    let url = accounts::password_reset_link(&state, &by(&s, client), &account_id).await?;
    Ok((StatusCode::CREATED, Json(ResetLink { reset_url: url })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct UseLink {
    /// Only for the first-admin setup link.
    #[serde(default)]
    email: Option<String>,
    password: String,
}

/// Set a password with an invitation, reset or setup link's token (the last path
/// segment of the link).
#[utoipa::path(post, path = "/api/v1/password-links/{token}", tag = "sign-in", request_body = UseLink,
    params(("token" = String, Path)),
    responses((status = 200, body = AccountView),
        (status = 400, description = "`weak_password`, `invalid_email`", body = ErrorBody),
        (status = 410, description = "`link_expired`", body = ErrorBody)))]
async fn use_password_link(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<UseLink>,
) -> Result<Json<AccountView>, AppError> {
    let purpose = accounts::link_purpose(&state, &token).await?;
    let confirm = body.password.clone();
    let password = Password::new(body.password);
    let account = match purpose {
        LinkPurpose::Setup => {
            let email = body.email.unwrap_or_default();
            accounts::create_first_admin(&state, &token, &email, password, &confirm, &client.0).await?
        }
        p => accounts::set_password_with_link(&state, &token, p, password, &confirm, &client.0).await?,
    };
    Ok(Json(AccountView::from(&account)))
}

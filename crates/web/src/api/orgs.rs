//! Organizations, `/api/v1/orgs` and `/api/v1/orgs/{org_id}`: creating one, reading
//! one, and its MFA policy. Its members are in `members`, its trail in `audit`.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clinic_auth_app::{Error, ErrorKind, accounts, policy};
use clinic_auth_core::policy::GraceDays;
use clinic_auth_core::{MethodSet, MfaMode, OrgKind};
use clinic_auth_store::Org;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, parse_enum};
use crate::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs", post(create_org))
        .route("/api/v1/orgs/{org_id}", get(get_org))
        .route("/api/v1/orgs/{org_id}/mfa", put(set_org_mfa))
}

#[derive(Serialize, ToSchema)]
pub struct OrgView {
    id: String,
    name: String,
    /// `clinic` or `solo`
    kind: &'static str,
    created_at: i64,
    mfa: OrgMfaView,
}

#[derive(Serialize, ToSchema)]
pub struct OrgMfaView {
    /// Turned on by platform support.
    enabled: bool,
    /// `off`, `optional` or `required` (Mandatory 2FA)
    mode: &'static str,
    /// Methods members may set up: `authenticator`, `email`, `sms`, `passkey`
    methods: Vec<&'static str>,
    /// Days (0–30) members may postpone setting up 2FA ("Remind me later") after
    /// Mandatory 2FA comes into force, or after they join if that is later. 0: setup is
    /// forced at once.
    grace_days: u8,
    /// Read-only: when Mandatory 2FA came into force (Unix seconds); absent while it is
    /// not in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    required_since: Option<i64>,
}

impl From<&Org> for OrgView {
    fn from(o: &Org) -> Self {
        OrgView {
            id: o.id.to_string(),
            name: o.name.clone(),
            kind: o.kind.as_str(),
            created_at: o.created_at.0,
            mfa: OrgMfaView {
                enabled: o.mfa.enabled,
                mode: o.mfa.mode.as_str(),
                methods: o.mfa.methods.iter().map(|k| k.as_str()).collect(),
                grace_days: o.mfa.grace_days.get(),
                required_since: o.mfa.required_since.map(|t| t.0),
            },
        }
    }
}

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
async fn create_org(c: Caller, ApiJson(body): ApiJson<CreateOrg>) -> Result<Response, AppError> {
    let kind = parse_enum::<OrgKind>(&body.kind, ErrorKind::InvalidKind)?;
    let org = accounts::create_org(&c.state, &c.by(), &body.name, kind, body.id.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(OrgView::from(&org))).into_response())
}

/// An organization (platform admins, or its own accounts).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path)), responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)))]
async fn get_org(c: Caller, Path(org_id): Path<String>) -> Result<Json<OrgView>, AppError> {
    let org = accounts::get_org(&c.state, &c.by(), &org_id).await?;
    Ok(Json(OrgView::from(&org)))
}

#[derive(Deserialize, ToSchema)]
pub struct OrgMfaChangeBody {
    /// Platform admins only: turn MFA on or off for the organization.
    #[serde(default)]
    enabled: Option<bool>,
    /// `off`, `optional` or `required` (clinic organizations only)
    #[serde(default)]
    mode: Option<String>,
    /// Allowed methods, e.g. `["authenticator"]`
    #[serde(default)]
    methods: Option<Vec<String>>,
    /// Grace period for Mandatory 2FA, in whole days from 0 to 30.
    #[serde(default)]
    grace_days: Option<i64>,
}

/// Change an organization's MFA settings.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/mfa", tag = "admin", request_body = OrgMfaChangeBody, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 200, body = OrgView), (status = 400, description = "`invalid_policy` (also a grace period outside 0–30 days)", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`mfa_not_enabled`", body = ErrorBody)))]
async fn set_org_mfa(
    c: Caller,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<OrgMfaChangeBody>,
) -> Result<Json<OrgView>, AppError> {
    let change = policy::OrgMfaChange {
        enabled: body.enabled,
        mode: body.mode.as_deref().map(|m| parse_enum::<MfaMode>(m, ErrorKind::InvalidPolicy)).transpose()?,
        methods: body
            .methods
            .map(|m| MethodSet::parse(&m.join(",")).map_err(|e| Error::new(ErrorKind::InvalidPolicy, e.to_string())))
            .transpose()?,
        grace_days: body
            .grace_days
            .map(|d| GraceDays::new(d).map_err(|e| Error::new(ErrorKind::InvalidPolicy, e.to_string())))
            .transpose()?,
    };
    let org = policy::set_org_mfa(&c.state, &c.by(), &org_id, change).await?;
    Ok(Json(OrgView::from(&org)))
}

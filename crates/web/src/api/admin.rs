//! The administration API: a clinic's Users (2FA status, override, one-time bypass,
//! MFA reset, sessions, status, role), the audit trail with CSV export, and the
//! platform support console's look-ups.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clinic_auth_core::{AccountStatus, Role};
use clinic_auth_store::AuditEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{AccountView, FactorView, InvitationResent, by, parse_enum};
use crate::error::ErrorBody;
use crate::http::auth::ApiSignedIn;
use crate::http::client::Client;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::{AppError, AppState};
use clinic_auth_app::admin::{self, AuditQuery, MemberStatus};
use clinic_auth_app::{Error, ErrorKind};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org_id}/members", get(list_members))
        .route("/api/v1/orgs/{org_id}/members/{member}", get(member_status))
        .route("/api/v1/orgs/{org_id}/members/{member}/bypass", post(grant_bypass))
        .route("/api/v1/orgs/{org_id}/members/{member}/mfa-reset", post(reset_mfa))
        .route("/api/v1/orgs/{org_id}/members/{member}/sessions/revoke", post(revoke_sessions))
        .route("/api/v1/orgs/{org_id}/members/{member}/invitation", post(resend_member_invitation))
        .route("/api/v1/orgs/{org_id}/members/{member}/status", put(set_status))
        .route("/api/v1/orgs/{org_id}/members/{member}/role", put(set_role))
        .route("/api/v1/orgs/{org_id}/audit", get(org_audit))
        .route("/api/v1/audit", get(all_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/platform/accounts/{account}", get(platform_status))
        .route("/api/v1/platform/accounts/{account}/mfa-reset", post(platform_reset))
        .route("/api/v1/platform/accounts/{account}/bypass", post(platform_bypass))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_members, member_status, grant_bypass, reset_mfa, revoke_sessions, resend_member_invitation, set_status,
        set_role, org_audit, all_audit, verify_audit, platform_status, platform_reset, platform_bypass
    ),
    tags((name = "platform", description = "Platform support: look-ups and recovery across organizations"))
)]
pub(super) struct AdminDoc;

#[derive(Serialize, ToSchema)]
pub struct MemberStatusView {
    account: AccountView,
    /// Enrolled factors (never their secrets): kind, label, enrolled and last used.
    factors: Vec<FactorView>,
    recovery_code_set: bool,
    /// A one-time bypass is waiting and unexpired.
    bypass_pending: bool,
    /// When the waiting bypass expires (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    bypass_expires_at: Option<i64>,
    /// The member must have a second factor under the current policy.
    mfa_required: bool,
    active_sessions: i64,
    /// Factor kinds the member still has that the organization no longer allows
    /// (they move to an allowed method at their next sign-in).
    outside_allowed_methods: Vec<&'static str>,
}

impl From<&MemberStatus> for MemberStatusView {
    fn from(m: &MemberStatus) -> Self {
        MemberStatusView {
            account: AccountView::from(&m.account),
            factors: m
                .factors
                .iter()
                .map(|f| FactorView {
                    kind: f.kind.as_str(),
                    label: f.label.clone(),
                    created_at: f.created_at.0,
                    last_used_at: f.last_used_at.map(|t| t.0),
                })
                .collect(),
            recovery_code_set: m.has_recovery_code,
            bypass_pending: m.bypass_valid,
            bypass_expires_at: m.account.bypass.filter(|_| m.bypass_valid).map(|b| b.expires_at.0),
            mfa_required: m.mfa_required,
            active_sessions: m.sessions,
            outside_allowed_methods: m.outside_allowed.iter().map(|k| k.as_str()).collect(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub struct MemberSearch {
    /// Part of an email or a role.
    #[serde(default)]
    q: Option<String>,
}

/// The organization's members with role, 2FA status and override (owners, admins, support).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), MemberSearch),
    responses((status = 200, body = [MemberStatusView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiQuery(q): ApiQuery<MemberSearch>,
) -> Result<Json<Vec<MemberStatusView>>, AppError> {
    let list = admin::list_members(&state, &by(&s, client), &org_id, q.q.as_deref()).await?;
    Ok(Json(list.iter().map(MemberStatusView::from).collect()))
}

/// One member's role, 2FA status and override (by member id or email).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members/{member}", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 200, body = MemberStatusView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn member_status(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
) -> Result<Json<MemberStatusView>, AppError> {
    let m = admin::member_status(&state, &by(&s, client), Some(&org_id), &member).await?;
    Ok(Json(MemberStatusView::from(&m)))
}

#[derive(Serialize, ToSchema)]
pub struct BypassView {
    /// The member may sign in once without 2FA until then (Unix seconds); that
    /// sign-in clears their factors and sends them to setup.
    expires_at: i64,
}

/// "Disable two-factor authentication": a one-time, expiring bypass.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/bypass", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 201, body = BypassView),
        (status = 403, description = "`forbidden`, `owner_protected`, `step_up_required`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn grant_bypass(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let b = admin::grant_bypass(&state, &by(&s, client), Some(&org_id), &member).await?;
    Ok((StatusCode::CREATED, Json(BypassView { expires_at: b.expires_at.0 })).into_response())
}

/// "Resend invitation": email the member a fresh invitation link, for a member who has
/// no password yet.
///
/// Owners and admins (admins not for an owner) and platform support. The link is valid
/// `invitation_valid_days`, goes to the member's own address and is never in the
/// answer; the member's older unused invitation links stop working. At most 5 resends
/// per member in an hour.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/invitation", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 202, body = InvitationResent),
        (status = 403, description = "`forbidden`, `owner_protected`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_active` (the member has a password), `account_deactivated`", body = ErrorBody),
        (status = 429, description = "`too_many_resends`: 5 within the hour already; see `Retry-After`", body = ErrorBody)))]
async fn resend_member_invitation(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let emailed = admin::resend_invitation(&state, &by(&s, client), Some(&org_id), &member).await?;
    Ok((StatusCode::ACCEPTED, Json(InvitationResent { invitation_emailed: emailed })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct ResetBody {
    /// How the member's identity was verified. Required for platform support.
    #[serde(default)]
    identity_verified: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResetView {
    /// Factors removed (passkeys included); the recovery code is removed too.
    removed_factors: u64,
}

/// Reset MFA: remove every factor of the member.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/mfa-reset", tag = "admin", request_body = ResetBody, security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 200, body = ResetView), (status = 400, description = "`identity_note_required`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_mfa(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<ResetView>, AppError> {
    let removed =
        admin::reset_mfa(&state, &by(&s, client), Some(&org_id), &member, body.identity_verified.as_deref()).await?;
    Ok(Json(ResetView { removed_factors: removed }))
}

#[derive(Serialize, ToSchema)]
pub struct RevokedView {
    revoked_sessions: u64,
}

/// End every session of the member.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/sessions/revoke", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 200, body = RevokedView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_sessions(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
) -> Result<Json<RevokedView>, AppError> {
    let n = admin::revoke_sessions(&state, &by(&s, client), Some(&org_id), &member).await?;
    Ok(Json(RevokedView { revoked_sessions: n }))
}

#[derive(Deserialize, ToSchema)]
pub struct StatusBody {
    /// `active` or `deactivated`
    status: String,
}

/// Deactivate (ends every session) or reactivate a member.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{member}/status", tag = "admin", request_body = StatusBody, security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_status(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<AccountView>, AppError> {
    let status = parse_enum::<AccountStatus>(&body.status, ErrorKind::InvalidStatus)?;
    let a = admin::set_status(&state, &by(&s, client), Some(&org_id), &member, status).await?;
    Ok(Json(AccountView::from(&a)))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleBody {
    /// `owner`, `admin`, `provider` or `staff`
    role: String,
}

/// Change a member's role (only owners make owners).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{member}/role", tag = "admin", request_body = RoleBody, security(("bearer" = [])),
    params(("org_id" = String, Path), ("member" = String, Path, description = "Member id or email")),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_role(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path((org_id, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<AccountView>, AppError> {
    let role = parse_enum::<Role>(&body.role, ErrorKind::InvalidRole)?;
    let a = admin::change_role(&state, &by(&s, client), Some(&org_id), &member, role).await?;
    Ok(Json(AccountView::from(&a)))
}

#[derive(Deserialize, IntoParams)]
pub struct AuditParams {
    /// Events where this member (id or email) acted or was acted on.
    #[serde(default)]
    member: Option<String>,
    /// Event type, e.g. `sign_in`, `bypass_granted`, `mfa_reset`.
    #[serde(default)]
    kind: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    to: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
    /// At most this many events (default 200, at most 1000); ignored for CSV, which
    /// holds every matching event.
    #[serde(default)]
    limit: Option<i64>,
    /// Only events older than this id. The `Link: <…>; rel="next"` header of a page
    /// gives the next page's address.
    #[serde(default)]
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    id: i64,
    /// Unix seconds
    at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    kind: String,
    /// `success` or `failure`
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_id: Option<String>,
    /// Who acted, as this reader may see them: an email address, or in a clinic's
    /// trail `Platform support` for a platform admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_id: Option<String>,
    /// Whom the event is about, shown the same way as `actor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    client_ip: String,
    user_agent: String,
    /// Non-secret details, e.g. `{"reason": "wrong_password"}`.
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    /// Place in the organization's hash chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
}

impl AuditEventView {
    fn new(e: AuditEvent, names: &std::collections::HashMap<String, String>) -> Self {
        let name = |id: &Option<String>| id.as_ref().and_then(|i| names.get(i)).cloned();
        AuditEventView {
            actor: name(&e.actor_id),
            subject: name(&e.subject_id),
            id: e.id,
            at: e.at.0,
            org_id: e.org_id,
            kind: e.kind,
            outcome: e.outcome,
            actor_id: e.actor_id,
            subject_id: e.subject_id,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            seq: e.seq,
            hash: e.hash,
        }
    }
}

async fn audit(
    state: &AppState,
    s: &ApiSignedIn,
    client: Client,
    org: Option<&str>,
    p: AuditParams,
) -> Result<Response, AppError> {
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::new(ErrorKind::InvalidFormat, "Use format=json or format=csv.").into()),
    };
    let q = AuditQuery { member: p.member, kind: p.kind, from: p.from, to: p.to, limit: p.limit, before: p.before };
    if csv {
        let max = state.config.audit_export_max_events;
        let events = admin::audit_export(state, &by(s, client), org, &q, Some(max)).await?;
        let names = admin::names(state, &s.0.actor(), &events).await?;
        let file = format!("attachment; filename=\"audit-{}.csv\"", org.unwrap_or("all"));
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, file)],
            admin::csv(&events, &names),
        )
            .into_response());
    }
    let page = admin::audit_events(state, &by(s, client), org, &q).await?;
    let names = admin::names(state, &s.0.actor(), &page.events).await?;
    let mut res =
        Json(page.events.into_iter().map(|e| AuditEventView::new(e, &names)).collect::<Vec<_>>()).into_response();
    if let Some(older) = page.older {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("member", &q.member), ("kind", &q.kind), ("from", &q.from), ("to", &q.to)] {
            if let Some(v) = v {
                next.append_pair(k, v);
            }
        }
        if let Some(l) = q.limit {
            next.append_pair("limit", &l.to_string());
        }
        next.append_pair("before", &older.to_string());
        let path = match org {
            Some(o) => format!("/api/v1/orgs/{o}/audit"),
            None => "/api/v1/audit".to_owned(),
        };
        if let Ok(v) = header::HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", next.finish())) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}

/// An organization's audit events, newest first; `format=csv` exports them (oldest first).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), AuditParams),
    responses((status = 200, description = "JSON, or text/csv with format=csv",
            content(([AuditEventView] = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`invalid_date`, `invalid_format`", body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn org_audit(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(org_id): Path<String>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, AppError> {
    audit(&state, &s, client, Some(&org_id), p).await
}

/// Every organization's audit events (platform admins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "platform", security(("bearer" = [])),
    params(AuditParams),
    responses((status = 200, description = "JSON, or text/csv with format=csv",
            content(([AuditEventView] = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`invalid_date`, `invalid_format`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn all_audit(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, AppError> {
    audit(&state, &s, client, None, p).await
}

#[derive(Serialize, ToSchema)]
pub struct VerifyView {
    /// True when no chain was edited, shortened or reordered.
    intact: bool,
    chains: usize,
    events: i64,
    /// The first break of each broken chain.
    breaks: Vec<String>,
}

/// Check every audit hash chain (platform admins).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "platform", security(("bearer" = [])),
    responses((status = 200, body = VerifyView), (status = 403, body = ErrorBody)))]
async fn verify_audit(State(state): State<AppState>, s: ApiSignedIn) -> Result<Json<VerifyView>, AppError> {
    if !s.0.actor().may_administer_platform() {
        return Err(AppError::forbidden());
    }
    let r = state.store.verify_audit(&Default::default()).await?;
    Ok(Json(VerifyView {
        intact: r.breaks.is_empty(),
        chains: r.chains,
        events: r.events,
        breaks: r.breaks.iter().map(ToString::to_string).collect(),
    }))
}

/// Platform support: any account's factor status (by id or email), without secrets.
#[utoipa::path(get, path = "/api/v1/platform/accounts/{account}", tag = "platform", security(("bearer" = [])),
    params(("account" = String, Path, description = "Account id or email")),
    responses((status = 200, body = MemberStatusView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn platform_status(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(account): Path<String>,
) -> Result<Json<MemberStatusView>, AppError> {
    let m = admin::member_status(&state, &by(&s, client), None, &account).await?;
    Ok(Json(MemberStatusView::from(&m)))
}

/// Platform support: reset the MFA of someone who lost every factor, recording how
/// their identity was verified.
#[utoipa::path(post, path = "/api/v1/platform/accounts/{account}/mfa-reset", tag = "platform", request_body = ResetBody, security(("bearer" = [])),
    params(("account" = String, Path, description = "Account id or email")),
    responses((status = 200, body = ResetView), (status = 400, description = "`identity_note_required`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn platform_reset(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(account): Path<String>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<ResetView>, AppError> {
    let removed = admin::reset_mfa(&state, &by(&s, client), None, &account, body.identity_verified.as_deref()).await?;
    Ok(Json(ResetView { removed_factors: removed }))
}

/// Platform support: grant a member a one-time bypass.
#[utoipa::path(post, path = "/api/v1/platform/accounts/{account}/bypass", tag = "platform", security(("bearer" = [])),
    params(("account" = String, Path, description = "Account id or email")),
    responses((status = 201, body = BypassView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn platform_bypass(
    State(state): State<AppState>,
    client: Client,
    s: ApiSignedIn,
    Path(account): Path<String>,
) -> Result<Response, AppError> {
    let b = admin::grant_bypass(&state, &by(&s, client), None, &account).await?;
    Ok((StatusCode::CREATED, Json(BypassView { expires_at: b.expires_at.0 })).into_response())
}

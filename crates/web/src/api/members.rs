//! An organization's people, `/api/v1/orgs/{org_id}/members…` and `…/patients`:
//! listing and adding them, their 2FA status and override, the one-time bypass, MFA
//! reset, sessions, invitation, status and role.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clinic_auth_app::admin::{self, MemberStatus};
use clinic_auth_app::{ErrorKind, policy};
use clinic_auth_core::{AccountKind, AccountStatus, MemberOverride, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::{AccountAdded, AccountView, AddAccount, InvitationResent, add};
use super::me_mfa::FactorView;
use super::{Caller, parse_enum};
use crate::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org_id}/members", get(list_members).post(add_member))
        .route("/api/v1/orgs/{org_id}/patients", post(add_patient))
        .route("/api/v1/orgs/{org_id}/members/{member}", get(member_status))
        .route("/api/v1/orgs/{org_id}/members/{member}/mfa", put(set_member_mfa))
        .route("/api/v1/orgs/{org_id}/members/{member}/bypass", post(grant_bypass))
        .route("/api/v1/orgs/{org_id}/members/{member}/unlock", post(unlock))
        .route("/api/v1/orgs/{org_id}/members/{member}/mfa-reminder", post(mfa_reminder))
        .route("/api/v1/orgs/{org_id}/mfa-reminders", post(mfa_reminders))
        .route("/api/v1/orgs/{org_id}/members/{member}/mfa-reset", post(reset_mfa))
        .route("/api/v1/orgs/{org_id}/members/{member}/sessions/revoke", post(revoke_sessions))
        .route("/api/v1/orgs/{org_id}/members/{member}/invitation", post(resend_member_invitation))
        .route("/api/v1/orgs/{org_id}/members/{member}/status", put(set_status))
        .route("/api/v1/orgs/{org_id}/members/{member}/role", put(set_role))
}

/// One member of an organization, as the path names them.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    org_id: String,
    /// Member id or email
    member: String,
}

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
    /// Two-factor authentication applies to the member and nothing is set up yet.
    mfa_not_set_up: bool,
    /// While the member is in the clinic's grace period for Mandatory 2FA: when it
    /// ends (Unix seconds); setup is forced after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_setup_due: Option<i64>,
}

impl From<&MemberStatus> for MemberStatusView {
    fn from(m: &MemberStatus) -> Self {
        MemberStatusView {
            account: AccountView::from(&m.account),
            factors: m.factors.iter().map(FactorView::from).collect(),
            recovery_code_set: m.has_recovery_code,
            bypass_pending: m.bypass_valid,
            bypass_expires_at: m.account.bypass.filter(|_| m.bypass_valid).map(|b| b.expires_at.0),
            mfa_required: m.mfa_required,
            active_sessions: m.sessions,
            outside_allowed_methods: m.outside_allowed.iter().map(|k| k.as_str()).collect(),
            mfa_not_set_up: m.not_set_up(),
            mfa_setup_due: m.remind_until.map(|t| t.0),
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
    c: Caller,
    Path(org_id): Path<String>,
    ApiQuery(q): ApiQuery<MemberSearch>,
) -> Result<Json<Vec<MemberStatusView>>, AppError> {
    let list = admin::list_members(&c.state, &c.by(), &org_id, q.q.as_deref()).await?;
    Ok(Json(list.iter().map(MemberStatusView::from).collect()))
}

/// One member's role, 2FA status and override (by member id or email).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members/{member}", tag = "admin", security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, body = MemberStatusView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn member_status(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
) -> Result<Json<MemberStatusView>, AppError> {
    let m = admin::member_status(&c.state, &c.by(), Some(&org_id), &member).await?;
    Ok(Json(MemberStatusView::from(&m)))
}

/// Add a member to an organization (platform admins; the organization's owners and admins).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 201, body = AccountAdded), (status = 400, body = ErrorBody), (status = 403, description = "`forbidden`, `password_not_allowed`", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`email_taken`", body = ErrorBody)))]
async fn add_member(
    c: Caller,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&c.state, &c.by(), AccountKind::Member, Some(&org_id), body).await
}

/// Add a patient-portal account to an organization.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/patients", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 201, body = AccountAdded), (status = 400, body = ErrorBody),
        (status = 403, description = "`forbidden`, `password_not_allowed`", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_patient(
    c: Caller,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<AddAccount>,
) -> Result<Response, AppError> {
    add(&c.state, &c.by(), AccountKind::Patient, Some(&org_id), body).await
}

#[derive(Serialize, ToSchema)]
pub struct BypassView {
    /// The member may sign in once without 2FA until then (Unix seconds); that
    /// sign-in clears their factors and sends them to setup.
    pub(super) expires_at: i64,
}

/// "Disable two-factor authentication": a one-time, expiring bypass.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/bypass", tag = "admin", security(("bearer" = [])),
    params(MemberPath),
    responses((status = 201, body = BypassView),
        (status = 403, description = "`forbidden`, `owner_protected`, `step_up_required`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn grant_bypass(c: Caller, Path(MemberPath { org_id, member }): Path<MemberPath>) -> Result<Response, AppError> {
    let b = admin::grant_bypass(&c.state, &c.by(), Some(&org_id), &member).await?;
    Ok((StatusCode::CREATED, Json(BypassView { expires_at: b.expires_at.0 })).into_response())
}

/// "Unlock": lift the locks that wrong second-factor codes put on the member (a
/// factor at its consecutive-failure cap, the lockout with backoff). Audited.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/unlock", tag = "admin", security(("bearer" = [])),
    params(MemberPath),
    responses((status = 204, description = "Unlocked"),
        (status = 403, description = "`forbidden`, `step_up_required`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn unlock(c: Caller, Path(MemberPath { org_id, member }): Path<MemberPath>) -> Result<Response, AppError> {
    admin::unlock(&c.state, &c.by(), Some(&org_id), &member).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// "Send reminder": email a member who has not set up two-factor authentication
/// (though it applies to them) that the clinic requires it, by when, and that setup
/// happens at their next sign-in. One reminder per member a day. Audited as
/// `mfa_reminder_sent`.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/mfa-reminder", tag = "admin", security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, description = "Sent; the member's status", body = MemberStatusView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`reminder_not_needed`: set up already, not required, or cannot sign in yet", body = ErrorBody),
        (status = 429, description = "`reminder_too_soon`: one went out in the last 24 hours (with Retry-After)", body = ErrorBody),
        (status = 503, description = "`delivery_failed`", body = ErrorBody)))]
async fn mfa_reminder(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
) -> Result<Json<MemberStatusView>, AppError> {
    let m = admin::send_mfa_reminder(&c.state, &c.by(), Some(&org_id), &member).await?;
    Ok(Json(MemberStatusView::from(&m)))
}

#[derive(Serialize, ToSchema)]
pub struct RemindersView {
    /// Emails of the members reminded now.
    sent: Vec<String>,
    /// Reminded within the last 24 hours: skipped.
    skipped_sent_recently: Vec<String>,
    /// The reminder could not be delivered.
    not_delivered: Vec<String>,
}

/// "Remind everyone not set up": a reminder to every member who has not set up
/// two-factor authentication though it applies to them; members reminded in the last
/// 24 hours are skipped and listed.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/mfa-reminders", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 200, body = RemindersView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mfa_reminders(c: Caller, Path(org_id): Path<String>) -> Result<Json<RemindersView>, AppError> {
    let r = admin::remind_everyone_not_set_up(&c.state, &c.by(), &org_id).await?;
    let emails = |list: &[clinic_auth_store::Account]| list.iter().map(|a| a.email.to_string()).collect();
    Ok(Json(RemindersView {
        sent: emails(&r.sent),
        skipped_sent_recently: emails(&r.sent_recently),
        not_delivered: emails(&r.not_delivered),
    }))
}

/// "Resend invitation": email the member a fresh invitation link, for a member who has
/// no password yet.
///
/// Owners and admins (admins not for an owner) and platform support. The link is valid
/// `invitation_valid_days`, goes to the member's own address and is never in the
/// answer; the member's older unused invitation links stop working. At most 5 resends
/// per member in an hour.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/invitation", tag = "admin", security(("bearer" = [])),
    params(MemberPath),
    responses((status = 202, body = InvitationResent),
        (status = 403, description = "`forbidden`, `owner_protected`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_active` (the member has a password), `account_deactivated`", body = ErrorBody),
        (status = 429, description = "`too_many_resends`: 5 within the hour already; see `Retry-After`", body = ErrorBody)))]
async fn resend_member_invitation(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
) -> Result<Response, AppError> {
    let emailed = admin::resend_invitation(&c.state, &c.by(), Some(&org_id), &member).await?;
    Ok((StatusCode::ACCEPTED, Json(InvitationResent { invitation_emailed: emailed })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct ResetBody {
    /// How the member's identity was verified. Required for platform support.
    #[serde(default)]
    pub(super) identity_verified: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResetView {
    /// Factors removed (passkeys included); the recovery code is removed too.
    pub(super) removed_factors: u64,
}

/// Reset MFA: remove every factor of the member.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/mfa-reset", tag = "admin", request_body = ResetBody, security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, body = ResetView), (status = 400, description = "`identity_note_required`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_mfa(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<ResetView>, AppError> {
    let removed =
        admin::reset_mfa(&c.state, &c.by(), Some(&org_id), &member, body.identity_verified.as_deref()).await?;
    Ok(Json(ResetView { removed_factors: removed }))
}

#[derive(Serialize, ToSchema)]
pub struct RevokedView {
    revoked_sessions: u64,
}

/// End every session of the member.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{member}/sessions/revoke", tag = "admin", security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, body = RevokedView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_sessions(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
) -> Result<Json<RevokedView>, AppError> {
    let n = admin::revoke_sessions(&c.state, &c.by(), Some(&org_id), &member).await?;
    Ok(Json(RevokedView { revoked_sessions: n }))
}

#[derive(Deserialize, ToSchema)]
pub struct StatusBody {
    /// `active` or `deactivated`
    status: String,
}

/// Deactivate (ends every session) or reactivate a member.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{member}/status", tag = "admin", request_body = StatusBody, security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_status(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<AccountView>, AppError> {
    let status = parse_enum::<AccountStatus>(&body.status, ErrorKind::InvalidStatus)?;
    let a = admin::set_status(&c.state, &c.by(), Some(&org_id), &member, status).await?;
    Ok(Json(AccountView::from(&a)))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleBody {
    /// `owner`, `admin`, `provider` or `staff`
    role: String,
}

/// Change a member's role (only owners make owners).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{member}/role", tag = "admin", request_body = RoleBody, security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_role(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<AccountView>, AppError> {
    let role = parse_enum::<Role>(&body.role, ErrorKind::InvalidRole)?;
    let a = admin::change_role(&c.state, &c.by(), Some(&org_id), &member, role).await?;
    Ok(Json(AccountView::from(&a)))
}

#[derive(Deserialize, ToSchema)]
pub struct MemberMfaBody {
    /// `clinic_default`, `required` or `not_required`
    #[serde(rename = "override")]
    value: String,
}

/// Set a member's two-factor setting (by member id or email).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{member}/mfa", tag = "admin", request_body = MemberMfaBody, security(("bearer" = [])),
    params(MemberPath),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_member_mfa(
    c: Caller,
    Path(MemberPath { org_id, member }): Path<MemberPath>,
    ApiJson(body): ApiJson<MemberMfaBody>,
) -> Result<Json<AccountView>, AppError> {
    let value = parse_enum::<MemberOverride>(&body.value, ErrorKind::InvalidOverride)?;
    let account = policy::set_member_override(&c.state, &c.by(), &org_id, &member, value).await?;
    Ok(Json(AccountView::from(&account)))
}

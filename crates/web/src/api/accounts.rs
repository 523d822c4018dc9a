//! Accounts by id, `/api/v1/accounts/{account_id}…` (password reset, invitation), and
//! adding platform admins; `AccountView`, how every operation shows an account.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clinic_auth_app::{By, ErrorKind, accounts};
use clinic_auth_core::{AccountKind, Password, Role};
use clinic_auth_store::Account;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, parse_enum};
use crate::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/platform-admins", post(add_platform_admin))
        .route("/api/v1/accounts/{account_id}/password-reset", post(password_reset))
        .route("/api/v1/accounts/{account_id}/invitation", post(resend_account_invitation))
}

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
    /// Two-factor setting: `clinic_default`, `required` or `not_required`
    mfa_override: &'static str,
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
            mfa_override: a.mfa_override.as_str(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct AddAccount {
    email: String,
    /// Members only: `owner`, `admin`, `provider` or `staff`
    #[serde(default)]
    role: Option<String>,
    /// Refused (`403 password_not_allowed`): nobody chooses another person's password.
    /// The new account's holder chooses it through the invitation.
    #[serde(default)]
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountAdded {
    account: AccountView,
    /// The invitation (a link to choose a password, valid `invitation_valid_days`) was
    /// emailed to the new account's own address. The link itself is never in the
    /// answer: whoever holds it chooses the account's password. `false`: it could not
    /// be delivered; fix the email settings, then resend it
    /// (`POST /api/v1/orgs/{org_id}/members/{member}/invitation`).
    invitation_emailed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationResent {
    /// The new invitation went by email to the account's own address (`false`: it
    /// could not be delivered). Older unused invitation links no longer work. The link
    /// itself is never in the answer.
    pub(crate) invitation_emailed: bool,
}

pub(super) async fn add(
    state: &AppState,
    by: &By,
    kind: AccountKind,
    org: Option<&str>,
    body: AddAccount,
) -> Result<Response, AppError> {
    let role = match (kind, body.role.as_deref()) {
        (AccountKind::Member, Some(r)) => Some(parse_enum::<Role>(r, ErrorKind::InvalidRole)?),
        _ => None,
    };
    let added =
        accounts::add_account(state, by, kind, org, &body.email, role, body.password.map(Password::new)).await?;
    let view =
        AccountAdded { account: AccountView::from(&added.account), invitation_emailed: added.invitation_emailed };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Add a platform admin (platform admins).
#[utoipa::path(post, path = "/api/v1/platform-admins", tag = "admin", request_body = AddAccount, security(("bearer" = [])),
    responses((status = 201, body = AccountAdded), (status = 400, description = "`invalid_email`", body = ErrorBody),
        (status = 403, description = "`forbidden`, `password_not_allowed`", body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_platform_admin(c: Caller, ApiJson(body): ApiJson<AddAccount>) -> Result<Response, AppError> {
    add(&c.state, &c.by(), AccountKind::PlatformAdmin, None, body).await
}

#[derive(Serialize, ToSchema)]
pub struct ResetEmailed {
    /// The reset link went by email to the account's own address (`false`: it could
    /// not be delivered; ask again later). The link itself is never in the answer.
    reset_emailed: bool,
}

/// Email a password-reset link to the account's own address.
///
/// Platform support for clinic members and patients (not for another platform admin);
/// a clinic's owners and admins for their members (admins not for an owner) and their
/// patients. The caller never sees the link, and nobody chooses a password for someone
/// else; only the server's shell (`clinic-auth password-reset`) prints a link. The link
/// is valid up to 24 hours and ends every session of the account when used; the
/// account's holder is told by email when the password changes.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/password-reset", tag = "admin", security(("bearer" = [])),
    params(("account_id" = String, Path)),
    responses((status = 202, body = ResetEmailed),
        (status = 403, description = "`forbidden`, `owner_protected`, `step_up_required` (your own account)", body = ErrorBody),
        (status = 404, description = "Unknown, or not yours to manage", body = ErrorBody)))]
async fn password_reset(c: Caller, Path(account_id): Path<String>) -> Result<Response, AppError> {
    let emailed = accounts::send_password_reset(&c.state, &c.by(), &account_id).await?;
    Ok((StatusCode::ACCEPTED, Json(ResetEmailed { reset_emailed: emailed })).into_response())
}

/// "Resend invitation": email a fresh invitation link to an account that has no
/// password yet (any kind of account, by id).
///
/// Whoever may invite that kind of account may resend it: platform support for anyone,
/// a clinic's owners and admins for their members (admins not for an owner) and their
/// patients. The new link is valid `invitation_valid_days` and goes to the account's own
/// address; the account's older unused invitation links stop working; the caller never
/// sees the link. At most 5 resends per account in an hour (`429 too_many_resends`,
/// with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/invitation", tag = "admin", security(("bearer" = [])),
    params(("account_id" = String, Path)),
    responses((status = 202, body = InvitationResent),
        (status = 403, description = "`forbidden`, `owner_protected`", body = ErrorBody),
        (status = 404, description = "Unknown, or not yours to manage", body = ErrorBody),
        (status = 409, description = "`already_active` (the account has a password), `account_deactivated`", body = ErrorBody),
        (status = 429, description = "`too_many_resends`: 5 within the hour already; see `Retry-After`", body = ErrorBody)))]
async fn resend_account_invitation(c: Caller, Path(account_id): Path<String>) -> Result<Response, AppError> {
    let emailed = accounts::resend_invitation_to(&c.state, &c.by(), &account_id).await?;
    Ok((StatusCode::ACCEPTED, Json(InvitationResent { invitation_emailed: emailed })).into_response())
}

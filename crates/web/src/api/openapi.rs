//! The OpenAPI document of every operation, as served at `/api/v1/openapi.json` and as
//! checked into `docs/openapi.json`.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;

use super::{
    accounts, audit, branding, email_change, me_mfa, me_sessions, members, orgs, passkeys, password_links, passwords,
    platform, session, sign_in,
};
use crate::AppState;
use crate::error::{ErrorBody, ErrorDetail};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clinic-auth API",
        description = "Sign-in and account administration for clinic-auth. Errors are `{\"error\": {\"code\", \"message\"}}` with a stable `code`.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(
        sign_in::start_login, sign_in::submit_password, sign_in::login_progress, sign_in::login_method,
        sign_in::login_code, sign_in::login_resend, sign_in::login_enroll, sign_in::login_enroll_confirm,
        sign_in::login_enroll_email, sign_in::login_enroll_sms, sign_in::login_enroll_code_confirm,
        sign_in::login_passkey_options, sign_in::login_passkey, sign_in::login_remind_later,
        session::logout, session::me,
        me_mfa::my_mfa, me_mfa::my_mfa_off, me_mfa::my_mfa_verify, me_mfa::my_verify_passkey_options,
        me_mfa::my_verify_passkey, me_mfa::my_authenticator, me_mfa::my_authenticator_confirm, me_mfa::my_email,
        me_mfa::my_sms, me_mfa::my_code_confirm, me_mfa::my_recovery_code,
        passkeys::my_passkeys, passkeys::my_passkey_options, passkeys::my_passkey_add, passkeys::my_passkey_rename,
        passkeys::my_passkey_remove,
        me_sessions::my_sessions, me_sessions::my_session_end, me_sessions::my_sessions_revoke_others,
        orgs::create_org, orgs::get_org, orgs::set_org_mfa,
        branding::get_branding, branding::set_branding, branding::set_logo, branding::remove_logo,
        members::list_members, members::add_member, members::add_patient, members::member_status,
        members::set_member_mfa, members::grant_bypass, members::unlock, members::mfa_reminder, members::mfa_reminders,
        members::reset_mfa, members::revoke_sessions,
        members::resend_member_invitation, members::set_status, members::set_role,
        accounts::add_platform_admin, accounts::password_reset, accounts::resend_account_invitation,
        password_links::use_password_link, passwords::request_password_reset, passwords::change_my_password,
        email_change::change_my_email, email_change::cancel_my_email_change, email_change::confirm_email_change,
        audit::org_audit, audit::all_audit, audit::verify_audit,
        platform::platform_status, platform::platform_reset, platform::platform_bypass
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &ExtractorResponses),
    tags(
        (name = "sign-in", description = "The sign-in flow"),
        (name = "two-factor", description = "The signed-in account's second factors"),
        (name = "sessions", description = "The signed-in account's sessions: list them, sign out the others"),
        (name = "admin", description = "Organizations, accounts and policy"),
        (name = "platform", description = "Platform support: look-ups and recovery across organizations")
    )
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

/// The answers of the extractors every operation shares, documented once here rather
/// than on each path (where an operation documents the status itself, its own entry
/// stays): 401 `unauthorized` from `ApiSignedIn` on operations that take a bearer token,
/// and 400 `invalid_request`, 413 `payload_too_large` and 415 `unsupported_media_type`
/// from `ApiJson` on operations that take a JSON body.
struct ExtractorResponses;

impl utoipa::Modify for ExtractorResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let mut shared = Vec::new();
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    shared.push(("401", "`unauthorized`: no bearer token, or its session ended"));
                }
                // Only a JSON body goes through `ApiJson` (a logo is the image itself).
                let json_body = |b: &utoipa::openapi::RefOr<utoipa::openapi::request_body::RequestBody>| match b {
                    utoipa::openapi::RefOr::T(body) => body.content.contains_key("application/json"),
                    utoipa::openapi::RefOr::Ref(_) => true,
                };
                if op.request_body.as_ref().is_some_and(json_body) {
                    shared.push(("400", "`invalid_request`: the body is not JSON of the documented shape"));
                    shared.push(("413", "`payload_too_large`: the body is over 16 KiB"));
                    shared
                        .push(("415", "`unsupported_media_type`: send the body with `Content-Type: application/json`"));
                }
                for (status, description) in shared {
                    op.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

/// The OpenAPI document, as served and as checked into `docs/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

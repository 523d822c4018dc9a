//! One member's page and its actions (2FA setting, bypass, reset, invitation,
//! sign-out everywhere, status, role), in the clinic console (`/admin/users/{id}`)
//! and the platform console (`/platform/accounts/{id}`) alike.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clinic_auth_app::admin;
use clinic_auth_app::{By, Error, ErrorKind, policy, time};
use clinic_auth_core::permission::MemberAction;
use clinic_auth_core::{AccountStatus, MemberOverride, OrgId, Role};
use serde::Deserialize;

use super::admin::{by, notice_text, override_label, scope, two_factor_summary};
use super::platform::support_only;
use super::{NoticeQuery, Visit, frame};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

/// The console a member's page is reached from.
#[derive(Debug, Clone, Copy)]
enum Console {
    /// `/admin/users/{id}`: a clinic's owners and admins, and platform support.
    Clinic,
    /// `/platform/accounts/{id}`: platform support only.
    Platform,
}

impl Console {
    /// The console of whoever acts with this scope: platform support (no organization)
    /// works from the platform console, a clinic's admins from their clinic's.
    fn of(org: Option<&OrgId>) -> Console {
        if org.is_some() { Console::Clinic } else { Console::Platform }
    }

    fn path(self) -> &'static str {
        match self {
            Console::Clinic => "/admin/users",
            Console::Platform => "/platform/accounts",
        }
    }

    /// Refuses whoever this console is not for (the clinic console's own check is `scope`).
    fn admit(self, s: &SignedIn) -> Result<(), PageError> {
        match self {
            Console::Clinic => Ok(()),
            Console::Platform => support_only(s),
        }
    }
}

/// A member's page in both consoles; each handler gets its console first.
pub(super) fn routes() -> Router<AppState> {
    [Console::Clinic, Console::Platform].into_iter().fold(Router::new(), |router, c| {
        router
            .route(&format!("{}/{{id}}", c.path()), get(move |v, id, q| member_page(c, v, id, q)))
            .route(&format!("{}/{{id}}/{{action}}", c.path()), post(move |v, path, f| member_submit(c, v, path, f)))
    })
}

#[derive(Template)]
#[template(path = "admin_member.html")]
struct MemberPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    csrf: String,
    base: String,
    email: String,
    /// For platform support, who sees every organization's members: the member's.
    org_name: Option<String>,
    role: &'static str,
    status: &'static str,
    active: bool,
    /// No password yet: the invitation can be resent.
    invited: bool,
    two_factor: String,
    factors: Vec<String>,
    bypass: String,
    sessions: i64,
    /// What wrong codes locked, in words; `None` when nothing is locked.
    locked: Option<String>,
    bypass_hours: i64,
    overrides: Vec<(&'static str, &'static str, bool)>,
    roles: Vec<(&'static str, bool)>,
}

fn factors_label(kind: clinic_auth_core::FactorKind) -> &'static str {
    clinic_auth_app::factors::method_label(kind)
}

fn factor_line(f: &clinic_auth_store::Factor) -> String {
    let used = f.last_used_at.map(time::date_time).unwrap_or_else(|| "never".to_owned());
    format!("{} — enrolled {}, last used {used}", f.label, time::date_time(f.created_at))
}

/// The member's page, with a notice or an error.
async fn member_form(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    id: &str,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let org = scope(s)?;
    let who = by(s, client);
    let m = admin::member_status(state, &who, org.as_ref().map(OrgId::as_str), id).await?;
    let mut factors: Vec<String> = m.factors.iter().map(factor_line).collect();
    if m.has_recovery_code {
        factors.push("Recovery code — saved".to_owned());
    }
    let bypass = match m.account.bypass.filter(|_| m.bypass_valid) {
        Some(b) => format!("granted, usable once until {}", time::date_time(b.expires_at)),
        None => "none".to_owned(),
    };
    let org_name = match (&org, &m.account.org_id) {
        (None, Some(id)) => Some(match state.store.get_org(id).await? {
            Some(o) => format!("{} ({id})", o.name),
            None => id.to_string(),
        }),
        _ => None,
    };
    let locks = admin::locks(state, &who, org.as_ref().map(OrgId::as_str), id).await?;
    let locked = locks.any().then(|| {
        let mut parts: Vec<String> =
            locks.factors.iter().map(|k| format!("{} (too many wrong codes in a row)", factors_label(*k))).collect();
        if let Some(until) = locks.until {
            parts.push(format!("every second factor until {} (wrong codes)", time::date_time(until)));
        }
        parts.join("; ")
    });
    let page = MemberPage {
        locked,
        org_name,
        frame: frame(state, "Member").notice(notice).error(error),
        platform: org.is_none(),
        csrf: s.csrf_token.clone(),
        base: format!("{}/{}", Console::of(org.as_ref()).path(), m.account.id),
        email: m.account.email.to_string(),
        role: m.account.role.map(Role::as_str).unwrap_or(m.account.kind.as_str()),
        status: m.account.status.as_str(),
        active: m.account.status == AccountStatus::Active,
        invited: m.account.password_hash.is_none(),
        two_factor: two_factor_summary(&m),
        factors,
        bypass,
        sessions: m.sessions,
        bypass_hours: state.config.bypass_ttl_secs / 3600,
        overrides: MemberOverride::ALL
            .iter()
            .map(|o| (o.as_str(), override_label(*o), *o == m.account.mfa_override))
            .collect(),
        roles: Role::ALL.iter().map(|r| (r.as_str(), Some(*r) == m.account.role)).collect(),
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn member_page(
    console: Console,
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    console.admit(&s)?;
    member_form(&state, &s, client, &id, notice_text(q.notice.as_deref()), None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemberForm {
    csrf: String,
    #[serde(rename = "override")]
    value: String,
    disable: Option<String>,
    note: Option<String>,
    status: String,
    role: String,
    /// "yes" once the admin confirmed a destructive action on its page.
    confirmed: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct ConfirmPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    heading: String,
    message: String,
    action: String,
    csrf: String,
    fields: Vec<(&'static str, String)>,
    button: &'static str,
    cancel: String,
}

/// For an action that cannot be undone by a click (Reset MFA, Sign out everywhere,
/// Deactivate): "Are you sure?", what will happen, and the same form to send again.
/// `None` for other actions and once confirmed.
fn confirmation(action: &str, f: &MemberForm, email: &str) -> Option<(String, String, &'static str)> {
    match action {
        "reset" => Some((
            format!("Reset MFA for {email}?"),
            "This removes every second factor (authenticator app, email, text message, passkeys) and the \
             recovery code, and signs them out everywhere, clinic apps included. They set up two-factor \
             authentication again at their next sign-in."
                .to_owned(),
            "Reset MFA",
        )),
        "revoke" => Some((
            format!("Sign {email} out everywhere?"),
            "Every session of theirs ends at once, on every device, and the clinic apps that use this \
             sign-in are told to sign them out. They can sign in again."
                .to_owned(),
            "Sign out everywhere",
        )),
        "status" if f.status == AccountStatus::Deactivated.as_str() => Some((
            format!("Deactivate {email}?"),
            "They are signed out everywhere, clinic apps included, and cannot sign in until an admin \
             reactivates them. Nothing is deleted."
                .to_owned(),
            "Deactivate",
        )),
        _ => None,
    }
}

/// The member an action is on, and who acts.
struct Target<'a> {
    by: &'a By,
    /// The acting admin's organization; `None` for platform support.
    org: Option<&'a str>,
    id: &'a str,
}

/// Does `action`; the notice key to come back with.
async fn act(state: &AppState, t: Target<'_>, action: &str, f: &MemberForm) -> Result<&'static str, Error> {
    let Target { by, org, id } = t;
    match action {
        "mfa" => {
            let value =
                f.value.parse::<MemberOverride>().map_err(|e| Error::new(ErrorKind::InvalidOverride, e.to_string()))?;
            match org {
                Some(o) => policy::set_member_override(state, by, o, id, value).await?,
                None => {
                    let a = admin::member_status(state, by, None, id).await?.account;
                    let o = a
                        .org_id
                        .ok_or_else(|| Error::new(ErrorKind::NotAMember, "Only clinic staff have this setting."))?;
                    policy::set_member_override(state, by, o.as_str(), id, value).await?
                }
            };
            Ok("override")
        }
        "bypass" => {
            if f.disable.is_none() {
                return Err(Error::new(ErrorKind::InvalidRequest, "Tick \"Disable two-factor authentication\" first."));
            }
            admin::grant_bypass(state, by, org, id).await?;
            Ok("bypass")
        }
        "reset" => {
            admin::reset_mfa(state, by, org, id, f.note.as_deref()).await?;
            Ok("reset")
        }
        "invitation" => {
            let emailed = admin::resend_invitation(state, by, org, id).await?;
            Ok(if emailed { "invitation_sent" } else { "invitation_not_sent" })
        }
        "revoke" => {
            admin::revoke_sessions(state, by, org, id).await?;
            Ok("revoked")
        }
        "unlock" => {
            admin::unlock(state, by, org, id).await?;
            Ok("unlocked")
        }
        "status" => {
            let status =
                f.status.parse::<AccountStatus>().map_err(|e| Error::new(ErrorKind::InvalidStatus, e.to_string()))?;
            admin::set_status(state, by, org, id, status).await?;
            Ok("status")
        }
        "role" => {
            let role = f.role.parse::<Role>().map_err(|e| Error::new(ErrorKind::InvalidRole, e.to_string()))?;
            admin::change_role(state, by, org, id, role).await?;
            Ok("role")
        }
        _ => Err(Error::not_found("The page")),
    }
}

async fn member_submit(
    console: Console,
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Path((id, action)): Path<(String, String)>,
    PageForm(f): PageForm<MemberForm>,
) -> Result<Response, PageError> {
    console.admit(&s)?;
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org = scope(&s)?;
    let base = Console::of(org.as_ref()).path();
    let by = by(&s, client.clone());
    let asked = match ask_first(&state, &by, org.as_ref().map(OrgId::as_str), &id, &action, &f).await {
        Ok(asked) => asked,
        Err(e) => return refused(&state, &s, client, &id, e).await,
    };
    if let Some((heading, message, button)) = asked {
        let mut fields = vec![("status", f.status.clone())];
        if let Some(note) = &f.note {
            fields.push(("note", note.clone()));
        }
        let page = ConfirmPage {
            frame: frame(&state, "Are you sure?"),
            platform: org.is_none(),
            heading,
            message,
            action: format!("{base}/{id}/{action}"),
            csrf: s.csrf_token.clone(),
            fields,
            button,
            cancel: format!("{base}/{id}"),
        };
        return Ok(render_with(page.frame.status(), &page));
    }
    let target = Target { by: &by, org: org.as_ref().map(OrgId::as_str), id: &id };
    match act(&state, target, &action, &f).await {
        Ok(notice) => Ok(Redirect::to(&format!("{base}/{id}?notice={notice}")).into_response()),
        Err(e) => refused(&state, &s, client, &id, e).await,
    }
}

/// An action that was not done: the step-up first, or the member's page with why.
async fn refused(state: &AppState, s: &SignedIn, client: Client, id: &str, e: Error) -> Result<Response, PageError> {
    match e {
        // An admin acting on themself proves their second factor first, then comes back.
        e if e.is(ErrorKind::StepUpRequired) => Ok(Redirect::to("/account/2fa/verify?next=admin").into_response()),
        e if e.status().is_client_error() && !e.is(ErrorKind::NotFound) => {
            member_form(state, s, client, id, None, Some(e.into())).await
        }
        e => Err(e.into()),
    }
}

/// Whether to ask "Are you sure?" first: for a destructive action not yet confirmed,
/// once the admin may do it (a refusal comes before the question).
async fn ask_first(
    state: &AppState,
    by: &By,
    org: Option<&str>,
    id: &str,
    action: &str,
    f: &MemberForm,
) -> Result<Option<(String, String, &'static str)>, Error> {
    let member_action = match action {
        "reset" => MemberAction::ResetMfa,
        "revoke" => MemberAction::RevokeSessions,
        "status" if f.status == AccountStatus::Deactivated.as_str() => MemberAction::Deactivate,
        _ => return Ok(None),
    };
    if f.confirmed.as_deref() == Some("yes") {
        return Ok(None);
    }
    let account = clinic_auth_app::access::authorize(state, by, org, id, member_action).await?;
    if member_action == MemberAction::ResetMfa {
        admin::check_identity_note(by, f.note.as_deref())?;
    }
    Ok(confirmation(action, f, account.email.as_str()))
}

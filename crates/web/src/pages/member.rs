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
    role: &'static str,
    status: &'static str,
    active: bool,
    /// No password yet: the invitation can be resent.
    invited: bool,
    two_factor: String,
    factors: Vec<String>,
    bypass: String,
    sessions: i64,
    bypass_hours: i64,
    overrides: Vec<(&'static str, &'static str, bool)>,
    roles: Vec<(&'static str, bool)>,
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
    let m = admin::member_status(state, &by(s, client), org.as_ref().map(OrgId::as_str), id).await?;
    let mut factors: Vec<String> = m.factors.iter().map(factor_line).collect();
    if m.has_recovery_code {
        factors.push("Recovery code — saved".to_owned());
    }
    let bypass = match m.account.bypass.filter(|_| m.bypass_valid) {
        Some(b) => format!("granted, usable once until {}", time::date_time(b.expires_at)),
        None => "none".to_owned(),
    };
    let page = MemberPage {
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
    let target = Target { by: &by, org: org.as_ref().map(OrgId::as_str), id: &id };
    match act(&state, target, &action, &f).await {
        Ok(notice) => Ok(Redirect::to(&format!("{base}/{id}?notice={notice}")).into_response()),
        // An admin acting on themself proves their second factor first, then comes back.
        Err(e) if e.is(ErrorKind::StepUpRequired) => Ok(Redirect::to("/account/2fa/verify?next=admin").into_response()),
        Err(e) if e.status().is_client_error() && !e.is(ErrorKind::NotFound) => {
            member_form(&state, &s, client, &id, None, Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

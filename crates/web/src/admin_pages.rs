//! The clinic admin's pages (Clinic Settings → Edit Clinic, Users, a member's page,
//! the audit log with CSV export) and platform support's console. Handlers extract,
//! call `service::admin` / `service::policy`, and render; the rules live in core.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_core::{AccountKind, AccountStatus, FactorKind, MemberOverride, MethodSet, MfaMode, OrgId, Role};
use serde::Deserialize;

use crate::error::Status;
use crate::error_page::{PageError, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};
use clinic_auth_app::admin::{self, AuditQuery, MemberStatus};
use clinic_auth_app::{By, accounts, factors, policy, time};
use clinic_auth_app::{Error, ErrorKind};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(settings_page))
        .route("/admin/edit", get(edit_page).post(edit_submit))
        .route("/admin/users", get(users_page))
        .route("/admin/users/invite", post(invite_submit))
        .route("/admin/users/{id}", get(member_page))
        .route("/admin/users/{id}/{action}", post(member_submit))
        .route("/admin/audit", get(audit_page))
        .route("/admin/audit.csv", get(audit_csv))
        .route("/platform", get(platform_page))
        .route("/platform/orgs/{org}/enable-mfa", post(enable_mfa_submit))
        .route("/platform/lookup", get(lookup))
        .route("/platform/accounts/{id}", get(platform_account_page))
        .route("/platform/accounts/{id}/{action}", post(platform_account_submit))
}

/// Who may use these pages: a clinic's owners and admins (their organization), or
/// platform admins (`None`).
fn scope(s: &SignedIn) -> Result<Option<OrgId>, PageError> {
    let actor = s.actor();
    if actor.is_platform_support() {
        return Ok(None);
    }
    actor.administered_org().cloned().map(Some).ok_or_else(|| PageError(AppError::forbidden()))
}

fn clinic_scope(s: &SignedIn) -> Result<OrgId, PageError> {
    scope(s)?.ok_or_else(|| {
        PageError(Error::new(ErrorKind::UsePlatformConsole, "Platform admins work from the platform console.").into())
    })
}

fn by(s: &SignedIn, client: Client) -> By {
    By::signed_in(s, client.0)
}

fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "saved" => Some("Saved."),
        "override" => Some("The two-factor setting is saved."),
        "bypass" => {
            Some("Two-factor authentication is disabled for one sign-in. The member will set it up again right after.")
        }
        "reset" => Some("MFA was reset: every factor of the member was removed."),
        "revoked" => Some("The member was signed out everywhere."),
        "status" => Some("The member's status is changed."),
        "role" => Some("The member's role is changed."),
        "invitation_sent" => {
            Some("We emailed a new invitation to the member. Their older invitation links no longer work.")
        }
        "invitation_not_sent" => Some(
            "The new invitation email could not be sent (their older invitation links no longer work). Check the \
             email settings, then use Resend invitation again.",
        ),
        "mfa_enabled" => Some("MFA is enabled for the organization; its admins can now choose Mandatory 2FA."),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

// ----- Clinic Settings -----

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct SettingsPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    platform: bool,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    org_name: String,
    org_id: String,
    enabled: bool,
    mode: &'static str,
    mode_label: &'static str,
    methods: String,
    summary: Vec<String>,
    editing: bool,
    method_choices: Vec<(&'static str, &'static str, bool)>,
}

async fn settings_render(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    editing: bool,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let org_id = clinic_scope(s)?;
    let org = accounts::get_org(state, &by(s, client), org_id.as_str()).await?;
    let mode_label = match org.mfa.mode {
        MfaMode::Off => "Off",
        MfaMode::Optional => "Optional",
        MfaMode::Required => "Mandatory 2FA",
    };
    let method_choices = [FactorKind::Authenticator, FactorKind::Email, FactorKind::Sms]
        .into_iter()
        .map(|k| (k.as_str(), factors::method_label(k), org.mfa.methods.contains(k)))
        .collect();
    let status = error.as_ref().map(|e| e.status()).unwrap_or(axum::http::StatusCode::OK);
    let page = SettingsPage {
        title: "Clinic Settings",
        platform_name: &state.config.platform_name,
        platform: false,
        notice,
        error: error.map(|e| e.message),
        csrf: s.csrf_token.clone(),
        org_name: org.name.clone(),
        org_id: org.id.to_string(),
        enabled: org.mfa.enabled,
        mode: org.mfa.mode.as_str(),
        mode_label,
        methods: org.mfa.methods.iter().map(factors::method_label).collect::<Vec<_>>().join(", "),
        summary: clinic_auth_core::policy::describe_for_members(org.kind, &org.mfa),
        editing,
        method_choices,
    };
    Ok(render_with(status, &page))
}

async fn settings_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    if scope(&s)?.is_none() {
        return Ok(Redirect::to("/platform").into_response());
    }
    settings_render(&state, &s, client, false, notice_text(q.notice.as_deref()), None).await
}

async fn edit_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
) -> Result<Response, PageError> {
    settings_render(&state, &s, client, true, None, None).await
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    method_authenticator: Option<String>,
    #[serde(default)]
    method_email: Option<String>,
    #[serde(default)]
    method_sms: Option<String>,
}

async fn edit_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(f): PageForm<EditForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org_id = clinic_scope(&s)?;
    let result = async {
        let mode = f
            .mode
            .parse::<MfaMode>()
            .map_err(|_| Error::new(ErrorKind::InvalidPolicy, "Choose Off, Optional or Mandatory 2FA."))?;
        let mut names = Vec::new();
        for (on, name) in
            [(&f.method_authenticator, "authenticator"), (&f.method_email, "email"), (&f.method_sms, "sms")]
        {
            if on.is_some() {
                names.push(name);
            }
        }
        let methods =
            MethodSet::parse(&names.join(",")).map_err(|e| Error::new(ErrorKind::InvalidPolicy, e.to_string()))?;
        let change = policy::OrgMfaChange { enabled: None, mode: Some(mode), methods: Some(methods) };
        policy::set_org_mfa(&state, &by(&s, client.clone()), org_id.as_str(), change).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to("/admin?notice=saved").into_response()),
        Err(e) if e.status().is_client_error() => settings_render(&state, &s, client, true, None, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

// ----- Users -----

struct MemberRow {
    id: String,
    email: String,
    role: &'static str,
    status: &'static str,
    two_factor: String,
    setting: &'static str,
}

fn override_label(o: MemberOverride) -> &'static str {
    match o {
        MemberOverride::ClinicDefault => "Clinic default",
        MemberOverride::Required => "Required",
        MemberOverride::NotRequired => "Not required",
    }
}

fn factor_line(f: &clinic_auth_store::Factor) -> String {
    let used = f.last_used_at.map(time::date_time).unwrap_or_else(|| "never".to_owned());
    format!("{} — enrolled {}, last used {used}", f.label, time::date_time(f.created_at))
}

fn two_factor_summary(m: &MemberStatus) -> String {
    if m.factors.is_empty() {
        return if m.mfa_required { "Off — will set up at next sign-in".to_owned() } else { "Off".to_owned() };
    }
    let kinds: Vec<&str> = m.factors.iter().map(|f| factors::method_label(f.kind)).collect();
    let mut summary = format!("On: {}", kinds.join(", "));
    if !m.outside_allowed.is_empty() {
        let old: Vec<&str> = m.outside_allowed.iter().map(|k| factors::method_label(*k)).collect();
        summary.push_str(&format!(
            " — still uses {}, which the clinic no longer allows (moves to an allowed method at next sign-in)",
            old.join(", ")
        ));
    }
    summary
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    platform: bool,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    query: String,
    members: Vec<MemberRow>,
    invitation: Option<Invited>,
    may_make_owner: bool,
}

#[derive(Deserialize, Default)]
struct UsersQuery {
    q: Option<String>,
    notice: Option<String>,
}

/// A member just invited, and whether the invitation went out by email. Never the
/// link: whoever holds it chooses the member's password.
struct Invited {
    email: String,
    emailed: bool,
}

async fn users_render(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    query: String,
    invitation: Option<Invited>,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let org_id = clinic_scope(s)?;
    let list = admin::list_members(state, &by(s, client), org_id.as_str(), Some(&query)).await?;
    let members = list
        .iter()
        .map(|m| MemberRow {
            id: m.account.id.to_string(),
            email: m.account.email.to_string(),
            role: m.account.role.map(Role::as_str).unwrap_or(""),
            status: m.account.status.as_str(),
            two_factor: two_factor_summary(m),
            setting: override_label(m.account.mfa_override),
        })
        .collect();
    let status = error.as_ref().map(|e| e.status()).unwrap_or(axum::http::StatusCode::OK);
    let page = UsersPage {
        title: "Users",
        platform_name: &state.config.platform_name,
        platform: false,
        notice,
        error: error.map(|e| e.message),
        csrf: s.csrf_token.clone(),
        query,
        members,
        invitation,
        may_make_owner: s.account.role == Some(Role::Owner),
    };
    Ok(render_with(status, &page))
}

async fn users_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<UsersQuery>,
) -> Result<Response, PageError> {
    users_render(&state, &s, client, q.q.unwrap_or_default(), None, notice_text(q.notice.as_deref()), None).await
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn invite_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    PageForm(f): PageForm<InviteForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org_id = clinic_scope(&s)?;
    let result = match f.role.parse::<Role>() {
        Ok(role) => {
            accounts::add_account(
                &state,
                &by(&s, client.clone()),
                AccountKind::Member,
                Some(org_id.as_str()),
                &f.email,
                Some(role),
                None,
            )
            .await
        }
        Err(_) => Err(Error::new(ErrorKind::InvalidRole, "Choose a role: owner, admin, provider or staff.")),
    };
    match result {
        Ok(added) => {
            let invited = added
                .account
                .password_hash
                .is_none()
                .then(|| Invited { email: added.account.email.to_string(), emailed: added.invitation_emailed });
            users_render(&state, &s, client, String::new(), invited, None, None).await
        }
        Err(e) if e.status().is_client_error() => {
            users_render(&state, &s, client, String::new(), None, None, Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

// ----- one member -----

#[derive(Template)]
#[template(path = "admin_member.html")]
struct MemberPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    platform: bool,
    notice: Option<&'a str>,
    error: Option<String>,
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

async fn member_render(
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
    let platform = org.is_none();
    let status = error.as_ref().map(|e| e.status()).unwrap_or(axum::http::StatusCode::OK);
    let page = MemberPage {
        title: "Member",
        platform_name: &state.config.platform_name,
        platform,
        notice,
        error: error.map(|e| e.message),
        csrf: s.csrf_token.clone(),
        base: if platform {
            format!("/platform/accounts/{}", m.account.id)
        } else {
            format!("/admin/users/{}", m.account.id)
        },
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
    Ok(render_with(status, &page))
}

async fn member_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    member_render(&state, &s, client, &id, notice_text(q.notice.as_deref()), None).await
}

#[derive(Deserialize)]
struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "override")]
    value: String,
    #[serde(default)]
    disable: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    role: String,
}

async fn act(
    state: &AppState,
    by: &By,
    org: Option<&str>,
    id: &str,
    action: &str,
    f: &MemberForm,
) -> Result<&'static str, clinic_auth_app::Error> {
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
        _ => Err(clinic_auth_app::Error::not_found("The page")),
    }
}

async fn member_action(
    state: AppState,
    jar: CookieJar,
    client: Client,
    s: SignedIn,
    id: String,
    action: String,
    f: MemberForm,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org = scope(&s)?;
    let base = if org.is_some() { "/admin/users" } else { "/platform/accounts" };
    match act(&state, &by(&s, client.clone()), org.as_ref().map(OrgId::as_str), &id, &action, &f).await {
        Ok(notice) => Ok(Redirect::to(&format!("{base}/{id}?notice={notice}")).into_response()),
        // An admin acting on themself proves their second factor first, then comes back.
        Err(e) if e.is(ErrorKind::StepUpRequired) => Ok(Redirect::to("/account/2fa/verify?next=admin").into_response()),
        Err(e) if e.status().is_client_error() && e.status() != axum::http::StatusCode::NOT_FOUND => {
            member_render(&state, &s, client, &id, None, Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn member_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path((id, action)): Path<(String, String)>,
    PageForm(f): PageForm<MemberForm>,
) -> Result<Response, PageError> {
    member_action(state, jar, client, s, id, action, f).await
}

// ----- the audit log -----

struct EventRow {
    time: String,
    org: String,
    kind: String,
    outcome: String,
    actor: String,
    subject: String,
    client: String,
    user_agent: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    platform: bool,
    notice: Option<&'a str>,
    error: Option<String>,
    member: String,
    kind: String,
    from: String,
    to: String,
    query: String,
    events: Vec<EventRow>,
    /// The address of the next, older page; `None` on the last.
    older: Option<String>,
    /// This page continues an earlier one.
    paged: bool,
}

#[derive(Deserialize, Default)]
struct AuditForm {
    #[serde(default)]
    member: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Only events older than this id (the "Older events" link).
    #[serde(default)]
    before: Option<i64>,
}

impl AuditForm {
    fn query(&self) -> AuditQuery {
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
        AuditQuery {
            member: some(&self.member),
            kind: some(&self.kind),
            from: some(&self.from),
            to: some(&self.to),
            limit: None,
            before: self.before,
        }
    }

    fn encoded(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("member", &self.member)
            .append_pair("kind", &self.kind)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .finish()
    }
}

async fn audit_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(f): Query<AuditForm>,
) -> Result<Response, PageError> {
    let org = scope(&s)?;
    let (events, older, error) =
        match admin::audit_events(&state, &by(&s, client), org.as_ref().map(OrgId::as_str), &f.query()).await {
            Ok(page) => (page.events, page.older, None),
            Err(e) if e.status().is_client_error() => (Vec::new(), None, Some(e)),
            Err(e) => return Err(e.into()),
        };
    let names = admin::names(&state, &s.actor(), &events).await?;
    let name = |id: &Option<String>| {
        id.as_ref().map(|i| names.get(i).cloned().unwrap_or_else(|| i.clone())).unwrap_or_default()
    };
    let rows = events
        .iter()
        .map(|e| EventRow {
            time: time::date_time(e.at),
            org: e.org_id.clone().unwrap_or_else(|| "(platform)".to_owned()),
            kind: e.kind.clone(),
            outcome: e.outcome.clone(),
            actor: name(&e.actor_id),
            subject: name(&e.subject_id),
            client: e.client_ip.clone(),
            user_agent: e.user_agent.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    let status = error.as_ref().map(|e| e.status()).unwrap_or(axum::http::StatusCode::OK);
    let page = AuditPage {
        title: "Audit log",
        platform_name: &state.config.platform_name,
        platform: org.is_none(),
        notice: None,
        error: error.map(|e| e.message),
        query: f.encoded(),
        older: older.map(|id| format!("/admin/audit?{}&before={id}", f.encoded())),
        paged: f.before.is_some(),
        member: f.member,
        kind: f.kind,
        from: f.from,
        to: f.to,
        events: rows,
    };
    Ok(render_with(status, &page))
}

async fn audit_csv(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(f): Query<AuditForm>,
) -> Result<Response, PageError> {
    let org = scope(&s)?;
    let mut q = f.query();
    q.before = None;
    let max = Some(state.config.audit_export_max_events);
    let events = admin::audit_export(&state, &by(&s, client), org.as_ref().map(OrgId::as_str), &q, max).await?;
    let names = admin::names(&state, &s.actor(), &events).await?;
    let file = format!("attachment; filename=\"audit-{}.csv\"", org.as_ref().map(OrgId::as_str).unwrap_or("all"));
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, file)],
        admin::csv(&events, &names),
    )
        .into_response())
}

// ----- the platform console -----

struct OrgRow {
    id: String,
    name: String,
    kind: &'static str,
    mfa: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "platform.html")]
struct PlatformPage<'a> {
    title: &'a str,
    platform_name: &'a str,
    platform: bool,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    orgs: Vec<OrgRow>,
}

fn support_only(s: &SignedIn) -> Result<(), PageError> {
    if s.actor().is_platform_support() { Ok(()) } else { Err(PageError(AppError::forbidden())) }
}

async fn platform_render(
    state: &AppState,
    s: &SignedIn,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    support_only(s)?;
    let orgs = state
        .store
        .list_orgs()
        .await?
        .into_iter()
        .map(|o| OrgRow {
            id: o.id.to_string(),
            name: o.name,
            kind: o.kind.as_str(),
            mfa: if o.mfa.enabled { format!("enabled, mode {}", o.mfa.mode) } else { "not enabled".to_owned() },
            enabled: o.mfa.enabled,
        })
        .collect();
    let status = error.as_ref().map(|e| e.status()).unwrap_or(axum::http::StatusCode::OK);
    let page = PlatformPage {
        title: "Platform console",
        platform_name: &state.config.platform_name,
        platform: true,
        notice,
        error: error.map(|e| e.message),
        csrf: s.csrf_token.clone(),
        orgs,
    };
    Ok(render_with(status, &page))
}

async fn platform_page(
    State(state): State<AppState>,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    platform_render(&state, &s, notice_text(q.notice.as_deref()), None).await
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn enable_mfa_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path(org): Path<String>,
    PageForm(f): PageForm<CsrfOnly>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    support_only(&s)?;
    let change = policy::OrgMfaChange { enabled: Some(true), mode: None, methods: None };
    policy::set_org_mfa(&state, &by(&s, client), &org, change).await?;
    Ok(Redirect::to("/platform?notice=mfa_enabled").into_response())
}

#[derive(Deserialize)]
struct LookupQuery {
    #[serde(default)]
    email: String,
}

async fn lookup(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Query(q): Query<LookupQuery>,
) -> Result<Response, PageError> {
    support_only(&s)?;
    match admin::member_status(&state, &by(&s, client), None, &q.email).await {
        Ok(m) => Ok(Redirect::to(&format!("/platform/accounts/{}", m.account.id)).into_response()),
        Err(e) if e.status().is_client_error() => platform_render(&state, &s, None, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

async fn platform_account_page(
    State(state): State<AppState>,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    support_only(&s)?;
    member_render(&state, &s, client, &id, notice_text(q.notice.as_deref()), None).await
}

async fn platform_account_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    PageSignedIn(s): PageSignedIn,
    Path((id, action)): Path<(String, String)>,
    PageForm(f): PageForm<MemberForm>,
) -> Result<Response, PageError> {
    support_only(&s)?;
    member_action(state, jar, client, s, id, action, f).await
}

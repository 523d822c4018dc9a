//! The clinic console: Clinic Settings (and Edit Clinic), and the Users list with its
//! invitations. Who may use the consoles (`scope`) and their notices are here too; a
//! member's own page is in `member`, the audit log in `audit`.

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clinic_auth_app::admin::{self, MemberStatus};
use clinic_auth_app::{By, Error, ErrorKind, accounts, factors, policy, time};
use clinic_auth_core::policy::GraceDays;
use clinic_auth_core::{AccountKind, FactorKind, MemberOverride, MethodSet, MfaMode, OrgId, Role};
use serde::Deserialize;

use super::{NoticeQuery, Visit, frame};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(settings_page))
        .route("/admin/edit", get(edit_page).post(edit_submit))
        .route("/admin/users", get(users_page))
        .route("/admin/users/invite", post(invite_submit))
        .route("/admin/users/remind", post(remind_submit))
        .route("/admin/users/remind-all", post(remind_all_submit))
}

/// Who may use these pages: a clinic's owners and admins (their organization), or
/// platform admins (`None`).
pub(super) fn scope(s: &SignedIn) -> Result<Option<OrgId>, PageError> {
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

pub(super) fn by(s: &SignedIn, client: Client) -> By {
    By::signed_in(s, client.0)
}

/// Fixed texts for `?notice=…` on the console pages.
pub(super) fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "saved" => Some("Saved."),
        "branding_saved" => Some("The branding is saved. Sign-in pages, emails and texts now use it."),
        "logo_saved" => Some("The logo is saved."),
        "logo_removed" => Some("The logo was removed."),
        "override" => Some("The two-factor setting is saved."),
        "bypass" => {
            Some("Two-factor authentication is disabled for one sign-in. The member will set it up again right after.")
        }
        "reset" => Some("MFA was reset: every factor of the member was removed, and they were signed out everywhere."),
        "revoked" => Some("The member was signed out everywhere, clinic apps included."),
        "unlocked" => Some("The member's second factor is unlocked. They can sign in with it again."),
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
        "reminder_sent" => Some("We emailed the member a reminder to set up two-factor authentication."),
        _ => None,
    }
}

pub(super) fn override_label(o: MemberOverride) -> &'static str {
    match o {
        MemberOverride::ClinicDefault => "Clinic default",
        MemberOverride::Required => "Required",
        MemberOverride::NotRequired => "Not required",
    }
}

/// "On: …", "Not set up …" (where two-factor authentication applies) or "Off", with
/// the methods the clinic no longer allows.
pub(super) fn two_factor_summary(m: &MemberStatus) -> String {
    if m.factors.is_empty() {
        return match (m.mfa_required, m.remind_until) {
            (true, Some(until)) => format!(
                "Not set up — {} left (may choose Remind me later until {})",
                clinic_auth_core::policy::describe_days_left(m.now, until),
                time::date_time(until)
            ),
            (true, None) => "Not set up — will set up at next sign-in".to_owned(),
            (false, _) => "Off".to_owned(),
        };
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

// ----- Clinic Settings -----

/// The one name of each mode, in Clinic Settings and the platform console alike.
pub(super) fn mode_label(mode: MfaMode) -> &'static str {
    match mode {
        MfaMode::Off => "Off",
        MfaMode::Optional => "Optional",
        MfaMode::Required => "Mandatory 2FA",
    }
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct SettingsPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    csrf: String,
    org_name: String,
    org_id: String,
    enabled: bool,
    mode: &'static str,
    mode_label: &'static str,
    methods: String,
    summary: Vec<String>,
    /// The grace period in words, for the read-only page.
    grace: String,
    /// The grace period field's value: as saved, or as typed when refused.
    grace_days: String,
    editing: bool,
    method_choices: Vec<(&'static str, &'static str, bool)>,
    /// The methods the form has a box for (sent back, so that saving changes only those).
    methods_shown: String,
}

/// The boxes Edit Clinic shows, with their labels. A passkey is a trusted device, not
/// "this device", on a page about the whole clinic.
const METHOD_BOXES: [(FactorKind, &str); 4] = [
    (FactorKind::Authenticator, "Authenticator app"),
    (FactorKind::Email, "Email"),
    (FactorKind::Sms, "Text message"),
    (FactorKind::Passkey, "Trusted devices (passkeys)"),
];

/// What a form posted before the passkey box existed had boxes for.
const LEGACY_BOXES: &str = "authenticator,email,sms";

/// Clinic Settings as shown: read-only or the edit form, with a notice or an error.
struct SettingsView<'a> {
    editing: bool,
    notice: Option<&'a str>,
    error: Option<AppError>,
    /// The grace period as typed, shown again with its error.
    grace_typed: Option<String>,
}

/// The grace period on Clinic Settings: how long, and since when it counts.
fn grace_words(mfa: &clinic_auth_core::OrgMfa) -> String {
    let days = match mfa.grace_days.get() {
        0 => return "None — members without a second factor set one up at their next sign-in".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    };
    match mfa.required_since {
        Some(since) if mfa.mandatory_in_force() => {
            format!("{days} (counted from {} or from when a member joins, if later)", time::date_time(since))
        }
        _ => format!("{days} (applies while Mandatory 2FA is on)"),
    }
}

async fn settings_form(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    view: SettingsView<'_>,
) -> Result<Response, PageError> {
    let org_id = clinic_scope(s)?;
    let org = accounts::get_org(state, &by(s, client), org_id.as_str()).await?;
    let mode_label = mode_label(org.mfa.mode);
    let method_choices =
        METHOD_BOXES.into_iter().map(|(k, label)| (k.as_str(), label, org.mfa.methods.contains(k))).collect();
    let methods_shown = METHOD_BOXES.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",");
    let look = clinic_auth_app::branding::look_for_account(state, &s.account, None).await;
    let page = SettingsPage {
        frame: frame(state, "Clinic Settings").notice(view.notice).error(view.error).brand(look),
        platform: false,
        csrf: s.csrf_token.clone(),
        org_name: org.name.clone(),
        org_id: org.id.to_string(),
        enabled: org.mfa.enabled,
        mode: org.mfa.mode.as_str(),
        mode_label,
        methods: METHOD_BOXES
            .iter()
            .filter(|(k, _)| org.mfa.methods.contains(*k))
            .map(|(_, label)| *label)
            .collect::<Vec<_>>()
            .join(", "),
        summary: clinic_auth_core::policy::describe_for_members(org.kind, &org.mfa),
        grace: grace_words(&org.mfa),
        grace_days: view.grace_typed.unwrap_or_else(|| org.mfa.grace_days.to_string()),
        editing: view.editing,
        method_choices,
        methods_shown,
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn settings_page(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    if scope(&s)?.is_none() {
        return Ok(Redirect::to("/platform").into_response());
    }
    let view =
        SettingsView { editing: false, notice: notice_text(q.notice.as_deref()), error: None, grace_typed: None };
    settings_form(&state, &s, client, view).await
}

async fn edit_page(Visit { state, client, session: PageSignedIn(s), .. }: Visit) -> Result<Response, PageError> {
    settings_form(&state, &s, client, SettingsView { editing: true, notice: None, error: None, grace_typed: None })
        .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EditForm {
    csrf: String,
    mode: String,
    method_authenticator: Option<String>,
    method_email: Option<String>,
    method_sms: Option<String>,
    method_passkey: Option<String>,
    /// The boxes the form showed; absent from a form older than the passkey box.
    methods_shown: Option<String>,
    /// "Grace period (days)"; absent from a form older than the field (kept as it is).
    grace_days: Option<String>,
}

impl EditForm {
    /// What the form asks to save.
    fn settings(&self) -> Result<policy::ClinicSettingsForm, Error> {
        let invalid = |e: clinic_auth_core::policy::MethodSetError| Error::new(ErrorKind::InvalidPolicy, e.to_string());
        let mode = self
            .mode
            .parse::<MfaMode>()
            .map_err(|_| Error::new(ErrorKind::InvalidPolicy, "Choose Off, Optional or Mandatory 2FA."))?;
        let shown = MethodSet::parse(self.methods_shown.as_deref().unwrap_or(LEGACY_BOXES)).map_err(invalid)?;
        let ticked = [
            (&self.method_authenticator, "authenticator"),
            (&self.method_email, "email"),
            (&self.method_sms, "sms"),
            (&self.method_passkey, "passkey"),
        ];
        let names: Vec<&str> = ticked.iter().filter(|(on, _)| on.is_some()).map(|(_, name)| *name).collect();
        let chosen = MethodSet::parse(&names.join(",")).map_err(invalid)?;
        let grace_days = self
            .grace_days
            .as_deref()
            .map(GraceDays::parse)
            .transpose()
            .map_err(|e| Error::new(ErrorKind::InvalidPolicy, format!("Grace period: {e}")))?;
        Ok(policy::ClinicSettingsForm { mode, shown, chosen, grace_days })
    }
}

async fn edit_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<EditForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org_id = clinic_scope(&s)?;
    let result = match f.settings() {
        Ok(form) => policy::save_clinic_settings(&state, &by(&s, client.clone()), org_id.as_str(), form).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(Redirect::to("/admin?notice=saved").into_response()),
        Err(e) if e.status().is_client_error() => {
            let grace_typed = f.grace_days.clone();
            let view = SettingsView { editing: true, notice: None, error: Some(e.into()), grace_typed };
            settings_form(&state, &s, client, view).await
        }
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
    /// "Send reminder" is offered: two-factor authentication is not set up though it
    /// applies, and the member can sign in.
    may_remind: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    csrf: String,
    query: String,
    members: Vec<MemberRow>,
    invitation: Option<Invited>,
    may_make_owner: bool,
    /// How many members (in the list) have not set up two-factor authentication
    /// though it applies to them, and how many of them can be reminded.
    not_set_up: usize,
    remindable: usize,
    /// What "Remind everyone not set up" did.
    reminders: Option<RemindersDone>,
}

/// The outcome of "Remind everyone not set up", by email address.
struct RemindersDone {
    sent: Vec<String>,
    sent_recently: Vec<String>,
    not_delivered: Vec<String>,
}

#[derive(Deserialize, Default)]
struct UsersQuery {
    q: Option<String>,
    notice: Option<String>,
    /// `not_set_up`: only members who have not set up two-factor authentication.
    show: Option<String>,
}

/// A member just invited, and whether the invitation went out by email. Never the
/// link: whoever holds it chooses the member's password.
struct Invited {
    email: String,
    emailed: bool,
}

/// The Users page as shown: the search, a member just invited, a notice or an error.
#[derive(Default)]
struct UsersView<'a> {
    query: String,
    invitation: Option<Invited>,
    notice: Option<&'a str>,
    error: Option<AppError>,
    only_not_set_up: bool,
    reminders: Option<RemindersDone>,
}

async fn users_form(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    view: UsersView<'_>,
) -> Result<Response, PageError> {
    let org_id = clinic_scope(s)?;
    let list = admin::list_members(state, &by(s, client), org_id.as_str(), Some(&view.query)).await?;
    let not_set_up = list.iter().filter(|m| m.not_set_up()).count();
    let remindable = list.iter().filter(|m| m.may_be_reminded()).count();
    let members = list
        .iter()
        .filter(|m| !view.only_not_set_up || m.not_set_up())
        .map(|m| MemberRow {
            id: m.account.id.to_string(),
            email: m.account.email.to_string(),
            role: m.account.role.map(Role::as_str).unwrap_or(""),
            status: m.account.status.as_str(),
            two_factor: two_factor_summary(m),
            setting: override_label(m.account.mfa_override),
            may_remind: m.may_be_reminded(),
        })
        .collect();
    let look = clinic_auth_app::branding::look_for_account(state, &s.account, None).await;
    let page = UsersPage {
        frame: frame(state, "Users").notice(view.notice).error(view.error).brand(look),
        platform: false,
        csrf: s.csrf_token.clone(),
        query: view.query,
        members,
        invitation: view.invitation,
        may_make_owner: s.account.role == Some(Role::Owner),
        not_set_up,
        remindable,
        reminders: view.reminders,
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn users_page(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<UsersQuery>,
) -> Result<Response, PageError> {
    let view = UsersView {
        query: q.q.unwrap_or_default(),
        notice: notice_text(q.notice.as_deref()),
        only_not_set_up: q.show.as_deref() == Some("not_set_up"),
        ..UsersView::default()
    };
    users_form(&state, &s, client, view).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemindForm {
    csrf: String,
    /// The member's id.
    member: String,
}

/// "Send reminder" on the Users list: one member; back to the list with a notice, or
/// the list with why not (say, one went out today).
async fn remind_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<RemindForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org_id = clinic_scope(&s)?;
    match admin::send_mfa_reminder(&state, &by(&s, client.clone()), Some(org_id.as_str()), &f.member).await {
        Ok(_) => Ok(Redirect::to("/admin/users?notice=reminder_sent").into_response()),
        Err(e) if e.status().is_client_error() || e.is(ErrorKind::DeliveryFailed) => {
            users_form(&state, &s, client, UsersView { error: Some(e.into()), ..UsersView::default() }).await
        }
        Err(e) => Err(e.into()),
    }
}

/// "Remind everyone not set up": the list again, saying who was emailed and who was
/// skipped.
async fn remind_all_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<RemindForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org_id = clinic_scope(&s)?;
    let r = admin::remind_everyone_not_set_up(&state, &by(&s, client.clone()), org_id.as_str()).await?;
    let emails = |list: &[clinic_auth_store::Account]| list.iter().map(|a| a.email.to_string()).collect();
    let reminders = RemindersDone {
        sent: emails(&r.sent),
        sent_recently: emails(&r.sent_recently),
        not_delivered: emails(&r.not_delivered),
    };
    users_form(&state, &s, client, UsersView { reminders: Some(reminders), ..UsersView::default() }).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

async fn invite_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<InviteForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let org_id = clinic_scope(&s)?;
    let result = match f.role.parse::<Role>() {
        Ok(role) => {
            let by = by(&s, client.clone());
            let (kind, org) = (AccountKind::Member, Some(org_id.as_str()));
            accounts::add_account(&state, &by, kind, org, &f.email, Some(role), None).await
        }
        Err(_) => Err(Error::new(ErrorKind::InvalidRole, "Choose a role: owner, admin, provider or staff.")),
    };
    match result {
        Ok(added) => {
            let invitation = added
                .account
                .password_hash
                .is_none()
                .then(|| Invited { email: added.account.email.to_string(), emailed: added.invitation_emailed });
            users_form(&state, &s, client, UsersView { invitation, ..UsersView::default() }).await
        }
        Err(e) if e.status().is_client_error() => {
            users_form(&state, &s, client, UsersView { error: Some(e.into()), ..UsersView::default() }).await
        }
        Err(e) => Err(e.into()),
    }
}

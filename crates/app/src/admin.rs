//! What clinic admins (owners and admins) and platform support do to members: the
//! Users list, per-member 2FA status, the one-time bypass, MFA reset, revoking
//! sessions, deactivation and roles; and the audit trail with its CSV export. The
//! permission rules are `clinic_auth_core::permission`; this module applies them.

use clinic_auth_core::permission::{Actor, IdentityNoteError, MemberAction, PLATFORM_SUPPORT_NAME, ShownAs};
use clinic_auth_core::{AccountId, AccountStatus, Role, UnixTime};
use clinic_auth_notify::SecurityNotice;
use clinic_auth_store::{Account, AuditEvent, AuditFilter, Bypass, Factor};

use super::{By, access, accounts, audit_event, factors, notices, time};
use crate::{App, Error, ErrorKind};
use clinic_auth_core::audit::Event;

/// A member as the Users page and the platform console show them: no secrets.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    pub account: Account,
    pub factors: Vec<Factor>,
    pub has_recovery_code: bool,
    /// A one-time bypass is waiting and unexpired.
    pub bypass_valid: bool,
    /// The member must have a second factor under the current policy.
    pub mfa_required: bool,
    pub sessions: i64,
    /// Factors the member still has that the organization no longer allows; they
    /// move to an allowed method at their next sign-in.
    pub outside_allowed: Vec<clinic_auth_core::FactorKind>,
    /// While the member is in their clinic's grace period (no factor yet, "Remind me
    /// later" still possible): when it ends.
    pub remind_until: Option<UnixTime>,
    /// When the status was read.
    pub now: UnixTime,
}

impl MemberStatus {
    /// Two-factor authentication applies to the member and nothing is set up: they
    /// set it up at their next sign-in (or in their grace period, may put it off).
    pub fn not_set_up(&self) -> bool {
        self.mfa_required && self.factors.is_empty()
    }

    /// Whether "Send reminder" is offered: not set up, and able to sign in (active,
    /// invitation accepted).
    pub fn may_be_reminded(&self) -> bool {
        self.not_set_up() && self.account.status == AccountStatus::Active && self.account.password_hash.is_some()
    }
}

async fn status_of(state: &App, account: Account) -> Result<MemberStatus, Error> {
    let m = factors::load(state, &account).await?;
    let sessions = state.store.count_sessions(account.id).await?;
    Ok(status_from(account, m, sessions))
}

fn status_from(account: Account, m: factors::MfaState, sessions: i64) -> MemberStatus {
    let mfa_required = !m.may_turn_off(&account);
    let outside_allowed = m.outside_allowed(&account);
    let remind_until = m.remind_until(&account);
    MemberStatus {
        outside_allowed,
        remind_until,
        now: m.now,
        factors: m.factors,
        has_recovery_code: m.has_recovery_code,
        bypass_valid: m.bypass_valid,
        mfa_required,
        sessions,
        account,
    }
}

/// One member's 2FA status (which factors, enrolled when, last used), without secrets.
pub async fn member_status(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<MemberStatus, Error> {
    let account = access::authorize(state, by, org, who, MemberAction::ViewStatus).await?;
    status_of(state, account).await
}

/// The Users list: an organization's members, optionally only those whose email or
/// role contains `query`.
pub async fn list_members(state: &App, by: &By, org: &str, query: Option<&str>) -> Result<Vec<MemberStatus>, Error> {
    let org = access::get_org(state, by, org).await?;
    if !by.actor.may_set_org_policy(&org.id) {
        return Err(Error::forbidden());
    }
    let q = query.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    // Four queries for the whole list, however many members.
    let all = state.store.org_member_security(&org.id).await?;
    let mut out = Vec::new();
    for a in state.store.list_members(&org.id).await? {
        let role = a.role.map(Role::as_str).unwrap_or("");
        if q.as_deref().is_some_and(|q| !a.email.as_str().contains(q) && !role.contains(q)) {
            continue;
        }
        let factors = all.factors.iter().filter(|f| f.account_id == a.id).cloned().collect();
        let has_recovery_code = all.with_recovery_code.contains(&a.id);
        let sessions = all.sessions.iter().find(|(id, _)| *id == a.id).map_or(0, |(_, n)| *n);
        let m = factors::MfaState::of(state, &a, Some(org.clone()), factors, has_recovery_code);
        out.push(status_from(a, m, sessions));
    }
    Ok(out)
}

fn event_for(state: &App, by: &By, kind: Event<'_>, target: &Account) -> clinic_auth_store::NewAuditEvent {
    let mut event = audit_event(state, kind, &by.client);
    event.org_id = target.org_id.clone();
    event.actor_id = by.account_id;
    event.subject_id = Some(target.id);
    // Acting on oneself: the session that made the change survives it.
    if by.account_id == Some(target.id) {
        event.via.session = by.session.clone();
    }
    event
}

/// "Disable two-factor authentication": the member may sign in once without a
/// second factor until the bypass expires; that sign-in clears their factors and
/// sends them to setup. Granting removes nothing by itself.
pub async fn grant_bypass(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<Bypass, Error> {
    let account = access::authorize(state, by, org, who, MemberAction::GrantBypass).await?;
    let now = state.now();
    let bypass =
        Bypass { granted_at: now, expires_at: now.plus_secs(state.config.bypass_ttl_secs), granted_by: by.account_id };
    let expires = time::rfc3339(bypass.expires_at);
    let event = event_for(state, by, Event::BypassGranted { expires_at: &expires }, &account);
    if !state.store.grant_bypass(account.id, &bypass, &event).await? {
        return Err(Error::not_found("The member"));
    }
    notices::send(state, &account, SecurityNotice::BypassGranted { expires: time::date_time(bypass.expires_at) }).await;
    Ok(bypass)
}

/// Platform support records how they verified the member's identity before a reset;
/// pages check it before asking "Are you sure?".
pub fn check_identity_note(by: &By, identity_note: Option<&str>) -> Result<(), Error> {
    by.actor.identity_note_for_reset(identity_note).map(|_| ()).map_err(|e| match e {
        IdentityNoteError::Missing => Error::new(ErrorKind::IdentityNoteRequired, e.to_string()),
        IdentityNoteError::Invalid => Error::new(ErrorKind::InvalidNote, e.to_string()),
    })
}

/// Reset MFA: removes every factor (passkeys included) and the recovery code.
/// Platform support must record how they verified the member's identity.
pub async fn reset_mfa(
    state: &App,
    by: &By,
    org: Option<&str>,
    who: &str,
    identity_note: Option<&str>,
) -> Result<u64, Error> {
    check_identity_note(by, identity_note)?;
    let note = by.actor.identity_note_for_reset(identity_note).ok().flatten();
    let account = access::authorize(state, by, org, who, MemberAction::ResetMfa).await?;
    let event =
        event_for(state, by, Event::MfaReset { identity_verified: note.as_ref().map(|n| n.as_str()) }, &account);
    let removed = state.store.remove_factors(account.id, None, &event).await?;
    notices::send(state, &account, SecurityNotice::MfaReset).await;
    tell_apps(state, &account).await;
    Ok(removed)
}

/// "Resend invitation" to a member of `org` (by id or email), or for platform support
/// without an organization to any account: see [`accounts::resend_invitation`].
pub async fn resend_invitation(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<bool, Error> {
    let account = access::find_target(state, by, org, who).await?;
    accounts::resend_invitation(state, by, &account).await
}

/// Unlock: lifts the locks wrong second-factor codes put on the member (a factor at
/// its consecutive-failure cap, the lockout with backoff), audited with them.
pub async fn unlock(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<(), Error> {
    let account = access::authorize(state, by, org, who, MemberAction::Unlock).await?;
    let event = event_for(state, by, Event::SecondFactorUnlocked, &account);
    let key = crate::attempts::throttle_key(&account);
    state.store.unlock_second_factor(account.id, &key, &event).await?;
    state.locked_refusals.forget_lock(&key);
    Ok(())
}

/// What wrong codes have locked for a member: factors at their consecutive-failure
/// cap, and the lockout's end when it is on.
#[derive(Debug, Clone, Default)]
pub struct Locks {
    pub factors: Vec<clinic_auth_core::FactorKind>,
    pub until: Option<clinic_auth_core::UnixTime>,
}

impl Locks {
    pub fn any(&self) -> bool {
        !self.factors.is_empty() || self.until.is_some()
    }
}

/// The member's locks, for their page (authorized as viewing them).
pub async fn locks(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<Locks, Error> {
    let account = access::authorize(state, by, org, who, MemberAction::ViewStatus).await?;
    let cap = clinic_auth_core::throttle::MAX_CONSECUTIVE_FAILURES;
    let factors = state.store.factor_failures(account.id).await?.into_iter().filter(|(_, n)| *n >= cap).map(|(k, _)| k);
    let now = state.now();
    let until = state
        .store
        .get_throttle(&crate::attempts::throttle_key(&account))
        .await?
        .and_then(|t| t.locked_for(now))
        .map(|secs| now.plus_secs(secs));
    Ok(Locks { factors: factors.collect(), until })
}

/// Ends every session of the member.
pub async fn revoke_sessions(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<u64, Error> {
    let account = access::authorize(state, by, org, who, MemberAction::RevokeSessions).await?;
    let event = event_for(state, by, Event::SessionsRevoked, &account);
    let ended = state.store.revoke_sessions(account.id, &event).await?;
    tell_apps(state, &account).await;
    Ok(ended)
}

/// The member's sessions just ended: the apps they signed into are told (back-channel
/// logout). Queuing never fails the admin's action; it is logged instead.
async fn tell_apps(state: &App, account: &Account) {
    if let Err(e) = crate::oidc::logout::notify(state, account.id, None, None).await {
        tracing::warn!(error = %e, "back-channel logouts could not be queued");
    }
}

/// Deactivates (ending every session) or reactivates a member.
pub async fn set_status(
    state: &App,
    by: &By,
    org: Option<&str>,
    who: &str,
    status: AccountStatus,
) -> Result<Account, Error> {
    let action = if status == AccountStatus::Active { MemberAction::Reactivate } else { MemberAction::Deactivate };
    let account = access::authorize(state, by, org, who, action).await?;
    let kind = if status == AccountStatus::Active { Event::AccountReactivated } else { Event::AccountDeactivated };
    let event = event_for(state, by, kind, &account);
    if !state.store.set_account_status(account.id, status, &event).await? {
        return Err(Error::not_found("The member"));
    }
    if status == AccountStatus::Deactivated {
        tell_apps(state, &account).await;
    }
    Ok(Account { status, ..account })
}

/// Changes a member's role.
pub async fn change_role(state: &App, by: &By, org: Option<&str>, who: &str, role: Role) -> Result<Account, Error> {
    let account = access::authorize(state, by, org, who, MemberAction::ChangeRole(role)).await?;
    let event = event_for(state, by, Event::RoleChanged { from: account.role, to: role }, &account);
    if !state.store.set_role(account.id, role, &event).await? {
        return Err(Error::not_found("The member"));
    }
    Ok(Account { role: Some(role), ..account })
}

// ----- the audit trail -----

/// Filters people type: a member (email or id), an event type, a date range.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub member: Option<String>,
    pub kind: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    pub from: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    pub to: Option<String>,
    pub limit: Option<i64>,
    /// Only events older than this id: the next page.
    pub before: Option<i64>,
}

fn bad_date() -> Error {
    Error::new(ErrorKind::InvalidDate, "Give dates as YYYY-MM-DD, for example 2027-01-15.")
}

/// A page of the audit trail, newest first, and where the next (older) one starts.
#[derive(Debug, Clone)]
pub struct AuditSlice {
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next page; `None` when this was the last.
    pub older: Option<i64>,
}

/// The store filter for `q`, once `by` may read that part of the trail.
async fn audit_filter(state: &App, by: &By, org: Option<&str>, q: &AuditQuery) -> Result<AuditFilter, Error> {
    let org_id = match org {
        Some(o) => Some(access::get_org(state, by, o).await?.id),
        None => None,
    };
    if !by.actor.may_view_audit(org_id.as_ref()) {
        return Err(Error::forbidden());
    }
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let member = match nonempty(&q.member) {
        Some(who) => Some(match (&org_id, AccountId::parse(&who)) {
            (_, Ok(id)) => id,
            (Some(o), Err(_)) => access::find_member(state, by, o.as_str(), &who).await?.id,
            (None, Err(_)) => access::find_target(state, by, None, &who).await?.id,
        }),
        None => None,
    };
    let since = nonempty(&q.from).map(|d| time::parse_day(&d).ok_or_else(bad_date)).transpose()?;
    let until =
        nonempty(&q.to).map(|d| time::parse_day(&d).map(|t| t.plus_secs(86_400)).ok_or_else(bad_date)).transpose()?;
    Ok(AuditFilter {
        org_id,
        subject_id: None,
        kind: nonempty(&q.kind),
        member,
        since,
        until,
        before_id: q.before,
        after_id: None,
        limit: q.limit.unwrap_or(AUDIT_PAGE).clamp(1, AUDIT_PAGE_MAX),
    })
}

/// Events one page shows unless asked otherwise, and the most one page holds.
pub const AUDIT_PAGE: i64 = 200;
pub const AUDIT_PAGE_MAX: i64 = 1000;

/// One page of the audit trail (an organization's, or with `org = None` every one,
/// for platform support), newest first.
pub async fn audit_events(state: &App, by: &By, org: Option<&str>, q: &AuditQuery) -> Result<AuditSlice, Error> {
    let mut filter = audit_filter(state, by, org, q).await?;
    let wanted = filter.limit;
    filter.limit = wanted + 1;
    let mut events = state.store.list_audit(&filter).await?;
    let more = events.len() as i64 > wanted;
    events.truncate(usize::try_from(wanted).unwrap_or(0));
    let older = if more { events.last().map(|e| e.id) } else { None };
    Ok(AuditSlice { events, older })
}

/// Every event that matches `q`, oldest first; more than `max` is refused
/// (`export_too_large`) rather than cut short. For a web download, whose size the
/// cap bounds; the command line walks any length with [`AuditExport`].
pub async fn audit_export(
    state: &App,
    by: &By,
    org: Option<&str>,
    q: &AuditQuery,
    max: Option<usize>,
) -> Result<Vec<AuditEvent>, Error> {
    let mut walk = AuditExport::start(state, by, org, q).await?;
    let mut all = Vec::new();
    while let Some(page) = walk.next_page().await? {
        all.extend(page);
        if let Some(max) = max
            && all.len() > max
        {
            return Err(Error::new(
                ErrorKind::ExportTooLarge,
                format!(
                    "This export would hold more than {max} events. Choose a shorter date range or a member, or \
                     export with the command line (clinic-auth audit export)."
                ),
            ));
        }
    }
    Ok(all)
}

/// An export's walk of the trail, oldest first, a page at a time. It holds one page
/// and the names met so far (bounded by the accounts, not the events), so an export
/// of any length runs in the same memory.
pub struct AuditExport<'a> {
    state: &'a App,
    reader: Actor,
    filter: AuditFilter,
    names: NameBook,
    done: bool,
}

impl<'a> AuditExport<'a> {
    pub async fn start(state: &'a App, by: &By, org: Option<&str>, q: &AuditQuery) -> Result<Self, Error> {
        let mut filter = audit_filter(state, by, org, q).await?;
        filter.limit = AUDIT_PAGE_MAX;
        filter.before_id = None;
        filter.after_id = Some(0);
        Ok(AuditExport { state, reader: by.actor.clone(), filter, names: NameBook::default(), done: false })
    }

    /// The next page (oldest first), its accounts' names learnt; `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<AuditEvent>>, Error> {
        if self.done {
            return Ok(None);
        }
        let page = self.state.store.list_audit(&self.filter).await?;
        self.done = (page.len() as i64) < AUDIT_PAGE_MAX;
        let Some(last) = page.last() else { return Ok(None) };
        self.filter.after_id = Some(last.id);
        self.names.learn(self.state, &self.reader, &page).await?;
        Ok(Some(page))
    }

    /// How the events read so far name their accounts (see [`names`]).
    pub fn names(&self) -> &std::collections::HashMap<String, String> {
        &self.names.shown
    }
}

/// How the accounts events name appear to `reader` (by id): their email address, or
/// for a clinic's readers "Platform support" in place of a platform admin's address
/// (`Actor::sees_in_audit`). Accounts the reader may not know are left out (shown by id).
pub async fn names(
    state: &App,
    reader: &Actor,
    events: &[AuditEvent],
) -> Result<std::collections::HashMap<String, String>, Error> {
    let mut book = NameBook::default();
    book.learn(state, reader, events).await?;
    Ok(book.shown)
}

/// Accounts whose names an export keeps between pages, at most.
const NAMES_KEPT: usize = 10_000;

/// Names learnt page after page, each account read once while kept: what it holds
/// is bounded (`NAMES_KEPT`), whatever the events or the size of their clinics.
#[derive(Default)]
struct NameBook {
    shown: std::collections::HashMap<String, String>,
    /// Accounts already looked at (shown or not).
    known: std::collections::HashSet<String>,
}

impl NameBook {
    async fn learn(&mut self, state: &App, reader: &Actor, events: &[AuditEvent]) -> Result<(), Error> {
        // A trail that names a million accounts must not be held in memory: past a
        // bound, forget and read again the few the next page names.
        if self.known.len() > NAMES_KEPT {
            self.known.clear();
            self.shown.clear();
        }
        let mut ids: Vec<&String> = events.iter().flat_map(|e| e.actor_id.iter().chain(e.subject_id.iter())).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if !self.known.insert(id.clone()) {
                continue;
            }
            if let Ok(aid) = AccountId::parse(id)
                && let Some(a) = state.store.get_account(aid).await?
            {
                self.consider(reader, a);
            }
        }
        Ok(())
    }

    fn consider(&mut self, reader: &Actor, a: Account) {
        let name = match reader.sees_in_audit(a.kind, a.org_id.as_ref()) {
            ShownAs::Address => a.email.to_string(),
            ShownAs::PlatformSupport => PLATFORM_SUPPORT_NAME.to_owned(),
            ShownAs::IdOnly => return,
        };
        self.shown.insert(a.id.to_string(), name);
    }
}

/// A spreadsheet cell: quoted, and text a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@`, tab, CR) prefixed with `'`.
fn cell(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// The first line of an audit CSV.
pub const CSV_HEADER: &str = "id,time,organization,event,outcome,actor,actor_id,subject,subject_id,client_address,user_agent,detail,chain_seq,hash\r\n";

/// The events as CSV, in the order given (an export's: oldest first).
pub fn csv(events: &[AuditEvent], names: &std::collections::HashMap<String, String>) -> String {
    let mut out = String::from(CSV_HEADER);
    csv_rows(events, names, &mut out);
    out
}

/// The events' CSV lines, in the order given, added to `out`.
pub fn csv_rows(events: &[AuditEvent], names: &std::collections::HashMap<String, String>, out: &mut String) {
    let name = |id: &Option<String>| id.as_ref().and_then(|i| names.get(i)).cloned().unwrap_or_default();
    for e in events {
        let row = [
            e.id.to_string(),
            time::rfc3339(UnixTime(e.at.0)),
            e.org_id.clone().unwrap_or_default(),
            e.kind.clone(),
            e.outcome.clone(),
            name(&e.actor_id),
            e.actor_id.clone().unwrap_or_default(),
            name(&e.subject_id),
            e.subject_id.clone().unwrap_or_default(),
            e.client_ip.clone(),
            e.user_agent.clone(),
            e.detail.clone(),
            e.seq.map(|s| s.to_string()).unwrap_or_default(),
            e.hash.clone().unwrap_or_default(),
        ];
        out.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
}

/// Every organization, for the platform console (platform support only).
pub async fn list_orgs(state: &App, by: &By) -> Result<Vec<clinic_auth_store::Org>, Error> {
    if !by.actor.may_administer_platform() {
        return Err(Error::forbidden());
    }
    Ok(state.store.list_orgs().await?)
}

/// Checks every audit hash chain (platform support only).
pub async fn verify_audit(state: &App, by: &By) -> Result<clinic_auth_store::AuditVerification, Error> {
    if !by.actor.may_administer_platform() {
        return Err(Error::forbidden());
    }
    Ok(state.store.verify_audit(&Default::default()).await?)
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("sign_in"), "\"sign_in\"");
    }
}

/// Reminders to set up two-factor authentication: one member's, or everyone's.
/// Where a reminder sent today is skipped, or one could not be delivered.
#[derive(Debug, Clone, Default)]
pub struct Reminders {
    /// The members emailed.
    pub sent: Vec<Account>,
    /// Members a reminder went to within the last day: not emailed again.
    pub sent_recently: Vec<Account>,
    /// Members whose reminder could not be delivered.
    pub not_delivered: Vec<Account>,
}

/// "Send reminder": emails one member who has not set up two-factor authentication
/// (though it applies to them) that their clinic requires it, by when, and that setup
/// happens at their next sign-in. One a day per member
/// (`ThrottleRule::MFA_REMINDERS_PER_MEMBER`); audited `mfa_reminder_sent`.
pub async fn send_mfa_reminder(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<MemberStatus, Error> {
    let account = access::authorize(state, by, org, who, MemberAction::SendMfaReminder).await?;
    let status = status_of(state, account).await?;
    if !status.may_be_reminded() {
        return Err(Error::new(
            ErrorKind::ReminderNotNeeded,
            "This member needs no reminder: two-factor authentication is set up, does not apply to them, or they cannot sign in yet.",
        ));
    }
    let m = factors::load(state, &status.account).await?;
    match remind(state, by, &status.account, &m).await? {
        Reminded::Sent => Ok(status),
        Reminded::TooSoon(secs) => Err(Error::new(
            ErrorKind::ReminderTooSoon,
            "A reminder already went to this member in the last 24 hours. Try again tomorrow.",
        )
        .with_retry_after(secs)),
        Reminded::NotDelivered => Err(Error::new(
            ErrorKind::DeliveryFailed,
            "The reminder could not be sent. Check the email settings, then try again.",
        )),
    }
}

/// "Remind everyone not set up": a reminder to every member of `org` who may be
/// reminded (see [`send_mfa_reminder`]); those reminded within the last day are
/// skipped and listed.
pub async fn remind_everyone_not_set_up(state: &App, by: &By, org: &str) -> Result<Reminders, Error> {
    let members = list_members(state, by, org, None).await?;
    let mut out = Reminders::default();
    for status in members.into_iter().filter(MemberStatus::may_be_reminded) {
        let account =
            access::authorize(state, by, Some(org), &status.account.id.to_string(), MemberAction::SendMfaReminder)
                .await?;
        let m = factors::load(state, &account).await?;
        match remind(state, by, &account, &m).await? {
            Reminded::Sent => out.sent.push(account),
            Reminded::TooSoon(_) => out.sent_recently.push(account),
            Reminded::NotDelivered => out.not_delivered.push(account),
        }
    }
    Ok(out)
}

enum Reminded {
    Sent,
    /// Seconds until this member may be reminded again.
    TooSoon(i64),
    NotDelivered,
}

/// Sends one reminder, within the daily limit, and records it.
async fn remind(state: &App, by: &By, account: &Account, m: &factors::MfaState) -> Result<Reminded, Error> {
    let key = format!("mfa-reminder:{}", account.id);
    let now = state.now();
    let rule = clinic_auth_core::ThrottleRule::MFA_REMINDERS_PER_MEMBER;
    if state.store.reserve_attempt(&key, rule, now).await?.is_none() {
        let left = state.store.get_throttle(&key).await?.and_then(|t| t.locked_for(now)).unwrap_or(rule.base_lock_secs);
        return Ok(Reminded::TooSoon(left));
    }
    let deadline = m.remind_until(account);
    let due = deadline.map(|d| clinic_auth_notify::SetupDue {
        date: time::date_time(d),
        left: clinic_auth_core::policy::describe_days_left(now, d),
    });
    let org_name = m.org.as_ref().map_or_else(|| state.config.platform_name.clone(), |o| o.name.clone());
    let sign_in = state.config.public_url.join("/login").map(|u| u.to_string()).unwrap_or_default();
    let content = clinic_auth_notify::mfa_reminder_content(&org_name, due.as_ref(), &sign_in);
    if let Err(e) = state.senders.email.send_notice(account.email.as_str(), &content).await {
        tracing::warn!(account = %account.id, error = %e, "2FA setup reminder not delivered");
        // Not sent: the admin may try again at once.
        state.store.clear_throttle(&key).await?;
        return Ok(Reminded::NotDelivered);
    }
    let deadline_text = deadline.map(time::rfc3339);
    let event = event_for(state, by, Event::MfaReminderSent { deadline: deadline_text.as_deref() }, account);
    state.store.append_audit(&event).await?;
    Ok(Reminded::Sent)
}

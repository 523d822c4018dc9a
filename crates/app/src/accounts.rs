//! Organizations and accounts: creating them, invitation / reset / setup links, and
//! setting a password through a link.

use clinic_auth_core::permission::Target;
use clinic_auth_core::{
    AccountId, AccountKind, Email, NewPassword, OrgId, OrgKind, Password, Realm, Role, SecretToken,
};
use clinic_auth_store::{Account, ClientInfo, LinkPurpose, NewAccount, NewPasswordLink, Org, PasswordLink, StoreError};

use super::{By, access, audit_event, on_own_account};
use crate::{App, Error, ErrorKind};
use clinic_auth_core::audit::Event;

/// An organization visible to `by` (see `access::get_org`).
pub use crate::access::get_org;

/// A new account. Without a password it was invited: the link its holder sets a
/// password with went to its own address by email.
#[derive(Debug)]
pub struct Added {
    pub account: Account,
    /// The invitation link, for the operator at the server's shell alone
    /// (`Actor::may_see_invitation_link`); `None` for everyone else, who could
    /// otherwise choose the new account's password before its holder does.
    pub invitation_url: Option<String>,
    /// The invitation went out by email to the new account's address.
    pub invitation_emailed: bool,
}

fn invalid_email() -> Error {
    Error::invalid_email()
}

fn password_error(e: clinic_auth_core::password::PasswordError) -> Error {
    let kind = match e {
        clinic_auth_core::password::PasswordError::Mismatch => ErrorKind::PasswordMismatch,
        _ => ErrorKind::WeakPassword,
    };
    Error::new(kind, e.to_string())
}

/// Checks a chosen password against the policy and this account's context words.
pub fn check_new_password(
    state: &App,
    password: Password,
    confirm: Option<&str>,
    email: &Email,
) -> Result<NewPassword, Error> {
    let context = [email.as_str(), state.config.platform_name.as_str(), "clinic-auth"];
    NewPassword::parse(password, confirm, state.config.password_policy, &context).map_err(password_error)
}

fn link_path(purpose: LinkPurpose, token: &SecretToken) -> String {
    let prefix = match purpose {
        LinkPurpose::Setup => "setup",
        LinkPurpose::Invitation => "invite",
        LinkPurpose::PasswordReset => "reset",
    };
    format!("/{prefix}/{}", token.expose())
}

fn new_link(state: &App, purpose: LinkPurpose, account: Option<AccountId>, ttl: i64) -> (SecretToken, NewPasswordLink) {
    let token = SecretToken::generate();
    let now = state.now();
    let link = NewPasswordLink {
        token_hash: token.hash(),
        purpose,
        account_id: account,
        created_at: now,
        expires_at: now.plus_secs(ttl),
    };
    (token, link)
}

/// Creates an organization. Without an explicit id one is derived from the name.
pub async fn create_org(state: &App, by: &By, name: &str, kind: OrgKind, id: Option<&str>) -> Result<Org, Error> {
    if !by.actor.may_administer_platform() {
        return Err(Error::forbidden());
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::new(ErrorKind::InvalidName, "Give the organization a name of 1 to 200 characters."));
    }
    let explicit = id
        .map(|i| {
            OrgId::parse(i).map_err(|e| Error::new(ErrorKind::InvalidOrgId, format!("{}.", capitalize(&e.to_string()))))
        })
        .transpose()?;
    let base = explicit.clone().unwrap_or_else(|| OrgId::from_name(name));
    for attempt in 0..50u32 {
        let candidate = if attempt == 0 { base.clone() } else { base.with_suffix(attempt + 1) };
        let org = Org { id: candidate, name: name.to_owned(), kind, created_at: state.now(), mfa: Default::default() };
        let mut event = audit_event(state, Event::OrganizationCreated { name, kind }, &by.client);
        event.org_id = Some(org.id.clone());
        event.actor_id = by.account_id;
        match state.store.insert_org(&org, &event).await {
            Ok(()) => return Ok(org),
            Err(StoreError::Conflict(_)) if explicit.is_none() => continue,
            Err(StoreError::Conflict(_)) => {
                return Err(Error::new(ErrorKind::Conflict, "An organization with this id already exists."));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::new(ErrorKind::Conflict, "Choose an organization id; the name is taken many times over."))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Adds a member (with a role) or a patient to an organization, or a platform admin
/// (no organization). Without a password, an invitation link is emailed to the new
/// account; only the operator also gets it in the result.
pub async fn add_account(
    state: &App,
    by: &By,
    kind: AccountKind,
    org: Option<&str>,
    email: &str,
    role: Option<Role>,
    password: Option<Password>,
) -> Result<Added, Error> {
    let email = Email::parse(email).map_err(|_| invalid_email())?;
    let org = match (kind, org) {
        (AccountKind::PlatformAdmin, _) => None,
        (_, Some(o)) => Some(get_org(state, by, o).await?),
        (_, None) => {
            return Err(Error::new(ErrorKind::InvalidRequest, "Name the organization."));
        }
    };
    let allowed = match (kind, &org, role) {
        (AccountKind::PlatformAdmin, _, _) => by.actor.may_administer_platform(),
        (AccountKind::Member, Some(o), Some(r)) => by.actor.may_add_member(&o.id, r),
        (AccountKind::Member, _, None) => {
            return Err(Error::new(ErrorKind::InvalidRole, "Choose a role: owner, admin, provider or staff."));
        }
        (AccountKind::Patient, Some(o), _) => by.actor.may_add_patient(&o.id),
        _ => false,
    };
    if !allowed {
        return Err(Error::forbidden());
    }
    if password.is_some() && !by.actor.may_handle_password_for_others() {
        return Err(Error::new(
            ErrorKind::PasswordNotAllowed,
            "You cannot choose another person's password: leave it out, and they choose it through the invitation.",
        ));
    }
    let password_hash = match password {
        Some(p) => Some(state.hasher.hash(&check_new_password(state, p, None, &email)?).await?),
        None => None,
    };
    let account = NewAccount {
        id: AccountId::new_random(),
        kind,
        email: email.clone(),
        org_id: org.as_ref().map(|o| o.id.clone()),
        role: if kind == AccountKind::Member { role } else { None },
        password_hash: password_hash.clone(),
        now: state.now(),
    };
    let invitation = password_hash
        .is_none()
        .then(|| new_link(state, LinkPurpose::Invitation, Some(account.id), state.config.link_ttl_secs));
    let created = Event::AccountCreated { kind, email: email.as_str(), role, invited: invitation.is_some() };
    let mut event = audit_event(state, created, &by.client);
    event.org_id = account.org_id.clone();
    event.actor_id = by.account_id;
    event.subject_id = Some(account.id);
    state.store.insert_account(&account, invitation.as_ref().map(|(_, l)| l), &event).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::new(ErrorKind::EmailTaken, "An account with this email already exists."),
        other => other.into(),
    })?;
    let stored =
        state.store.get_account(account.id).await?.ok_or_else(|| Error::internal("account vanished after insert"))?;
    let link = invitation.map(|(t, l)| (state.config.link(&link_path(LinkPurpose::Invitation, &t)), l.expires_at));
    let invitation_emailed = match &link {
        Some((url, expires_at)) => send_invitation(state, &stored, org.as_ref(), url, *expires_at).await,
        None => false,
    };
    let invitation_url = link.map(|(url, _)| url).filter(|_| by.actor.may_see_invitation_link());
    Ok(Added { account: stored, invitation_url, invitation_emailed })
}

/// Emails an invitation link to the account's own address. The account exists either
/// way: a failed delivery is logged (masked address), and an admin sends a new one
/// with [`resend_invitation`] once email works (the operator also has the link).
async fn send_invitation(
    state: &App,
    account: &Account,
    org: Option<&Org>,
    url: &str,
    expires_at: clinic_auth_core::UnixTime,
) -> bool {
    let brand = match org {
        Some(_) => crate::branding::message_brand_or_platform(state, account, None).await,
        None => crate::branding::MessageBrand { name: state.config.platform_name.clone(), logo_url: None },
    };
    let expires = super::time::date_time(expires_at);
    let content = clinic_auth_notify::invitation_content(&brand.name, url, &expires)
        .with_logo(brand.logo_url.as_deref(), &brand.name);
    match state.senders.email.send_invitation(account.email.as_str(), &content).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(account = %account.id, error = %e, "invitation not delivered");
            false
        }
    }
}

fn throttle_key_resend(account: &Account) -> String {
    format!("invitation-resend:{}", account.id)
}

/// "Resend invitation" for an account that has no password yet: a fresh invitation
/// link (valid `invitation_valid_days`) replaces the account's unused ones and goes
/// by email to the account's own address; whoever asked never sees it. Allowed to
/// whoever may invite that kind of account (`Actor::may_resend_invitation`), at most
/// five times an hour per account. Returns whether the email went out.
pub async fn resend_invitation(state: &App, by: &By, account: &Account) -> Result<bool, Error> {
    let target = Target { kind: account.kind, org: account.org_id.as_ref(), role: account.role };
    access::enforce(state, by, by.actor.may_resend_invitation(&target)).await?;
    let already_active = || {
        Error::new(
            ErrorKind::AlreadyActive,
            "This account already has a password, so there is no invitation to resend. If they forgot it, send \
             them a password reset.",
        )
    };
    if account.password_hash.is_some() {
        return Err(already_active());
    }
    if account.status != clinic_auth_core::AccountStatus::Active {
        return Err(Error::new(
            ErrorKind::ReactivateFirst,
            "This account is deactivated. Reactivate it first, then resend the invitation.",
        ));
    }
    let now = state.now();
    let key = throttle_key_resend(account);
    let rule = clinic_auth_core::ThrottleRule::INVITATION_RESENDS_PER_ACCOUNT;
    let wait = match state.store.reserve_attempt(&key, rule, now).await? {
        Some(t) => t.locked_for(now),
        None => Some(state.store.get_throttle(&key).await?.and_then(|t| t.locked_for(now)).unwrap_or(1)),
    };
    if let Some(wait) = wait {
        return Err(Error::new(
            ErrorKind::TooManyResends,
            format!(
                "This invitation was resent {} times within an hour. Try again in {}.",
                rule.free_failures,
                clinic_auth_core::throttle::describe_wait(wait)
            ),
        )
        .with_retry_after(wait));
    }
    let (token, link) = new_link(state, LinkPurpose::Invitation, Some(account.id), state.config.link_ttl_secs);
    let mut event = audit_event(state, Event::InvitationResent, &by.client);
    event.org_id = account.org_id.clone();
    event.actor_id = by.account_id;
    event.subject_id = Some(account.id);
    if !state.store.reissue_invitation(&link, &event).await? {
        return Err(already_active());
    }
    let org = match &account.org_id {
        Some(o) => state.store.get_org(o).await?,
        None => None,
    };
    let url = state.config.link(&link_path(LinkPurpose::Invitation, &token));
    Ok(send_invitation(state, account, org.as_ref(), &url, link.expires_at).await)
}

/// [`resend_invitation`] for an account named by id (`POST /api/v1/accounts/{id}/invitation`).
pub async fn resend_invitation_to(state: &App, by: &By, account_id: &str) -> Result<bool, Error> {
    let id = AccountId::parse(account_id).map_err(|_| Error::not_found("The account"))?;
    let account = state.store.get_account(id).await?.ok_or_else(|| Error::not_found("The account"))?;
    resend_invitation(state, by, &account).await
}

/// Longest a password-reset link stays valid.
const RESET_LINK_MAX_SECS: i64 = 24 * 3600;

/// A new password-reset link for `account`, stored with its audit event (`delivery`
/// says where the link went; the event never holds the link).
async fn issue_reset_link(
    state: &App,
    by: &By,
    account: &Account,
    delivery: &str,
) -> Result<(String, clinic_auth_core::UnixTime), Error> {
    let ttl = state.config.link_ttl_secs.min(RESET_LINK_MAX_SECS);
    let by_operator = matches!(by.actor, clinic_auth_core::permission::Actor::Operator);
    let mut event = audit_event(state, Event::PasswordResetLinkIssued { by_operator, delivery }, &by.client);
    event.org_id = account.org_id.clone();
    event.actor_id = by.account_id;
    event.subject_id = Some(account.id);
    store_reset_link(state, account, ttl, &event).await
}

/// Stores a new password-reset link for `account`, valid `ttl_secs`, in one
/// transaction with `event` (which never holds the link); the link's address (under
/// `public_url`) and when it expires.
pub(crate) async fn store_reset_link(
    state: &App,
    account: &Account,
    ttl_secs: i64,
    event: &clinic_auth_store::NewAuditEvent,
) -> Result<(String, clinic_auth_core::UnixTime), Error> {
    let (token, link) = new_link(state, LinkPurpose::PasswordReset, Some(account.id), ttl_secs);
    state.store.insert_password_link(&link, event).await?;
    Ok((state.config.link(&link_path(LinkPurpose::PasswordReset, &token)), link.expires_at))
}

/// Emails a reset link to the account's own address: the link and a plain
/// explanation, nothing else. Whether it went out; a failed delivery is logged
/// (masked address) and the unused link simply expires.
pub(crate) async fn email_reset_link(
    state: &App,
    account: &Account,
    url: &str,
    expires_at: clinic_auth_core::UnixTime,
) -> Result<bool, Error> {
    let brand = crate::branding::message_brand(state, account, None).await?;
    let content = clinic_auth_notify::password_reset_content(&brand.name, url, &super::time::date_time(expires_at))
        .with_logo(brand.logo_url.as_deref(), &brand.name);
    match state.senders.email.send_password_reset(account.email.as_str(), &content).await {
        Ok(_) => Ok(true),
        Err(e) => {
            tracing::warn!(account = %account.id, error = %e, "password reset email not delivered");
            Ok(false)
        }
    }
}

/// The server's shell only (`clinic-auth password-reset`): a password-reset link for
/// any account, printed for the operator who holds the machine to pass on. Nobody
/// else ever sees a reset link; they use [`send_password_reset`].
pub async fn password_reset_link(state: &App, by: &By, account_id: &str) -> Result<String, Error> {
    if !by.actor.may_handle_password_for_others() {
        return Err(Error::forbidden());
    }
    let id = AccountId::parse(account_id).map_err(|_| Error::not_found("The account"))?;
    let account = state.store.get_account(id).await?.ok_or_else(|| Error::not_found("The account"))?;
    Ok(issue_reset_link(state, by, &account, "shown_to_operator").await?.0)
}

/// Emails a password-reset link to the account's own address (support, or the
/// clinic's owners and admins for their members and patients; see
/// `Actor::may_send_password_reset`). Whoever asked never sees the link. Returns
/// whether the email went out; a failed delivery is logged (masked address) and the
/// unused link simply expires.
pub async fn send_password_reset(state: &App, by: &By, account_id: &str) -> Result<bool, Error> {
    let id = AccountId::parse(account_id).map_err(|_| Error::not_found("The account"))?;
    let account = state.store.get_account(id).await?.ok_or_else(|| Error::not_found("The account"))?;
    let target = Target { kind: account.kind, org: account.org_id.as_ref(), role: account.role };
    let is_self = by.account_id == Some(account.id);
    access::enforce(state, by, by.actor.may_send_password_reset(&target, is_self)).await?;
    let (url, expires_at) = issue_reset_link(state, by, &account, "email").await?;
    email_reset_link(state, &account, &url, expires_at).await
}

/// Finds an account by email for the command line: staff realm first, then patients.
pub async fn find_by_email(state: &App, email: &str) -> Result<Account, Error> {
    let email = Email::parse(email).map_err(|_| invalid_email())?;
    for realm in [Realm::Staff, Realm::Patient] {
        if let Some(a) = state.store.find_account(realm, &email).await? {
            return Ok(a);
        }
    }
    Err(Error::not_found("The account"))
}

/// When no platform admin exists, a fresh one-time link to create the first one.
pub async fn ensure_setup_link(state: &App) -> Result<Option<String>, Error> {
    if state.store.count_platform_admins().await? > 0 {
        return Ok(None);
    }
    let (token, link) = new_link(state, LinkPurpose::Setup, None, 24 * 3600);
    state.store.replace_setup_link(&link, state.now()).await?;
    Ok(Some(state.config.link(&link_path(LinkPurpose::Setup, &token))))
}

/// A link someone opened, with what the page needs to greet them.
#[derive(Debug)]
pub struct OpenedLink {
    pub purpose: LinkPurpose,
    pub account: Option<Account>,
    pub org: Option<Org>,
}

pub fn link_unusable() -> Error {
    Error::new(
        ErrorKind::LinkExpired,
        "This link has already been used or has expired. Ask your administrator for a new one.",
    )
}

async fn usable_link(state: &App, token: &str, purpose: LinkPurpose) -> Result<(SecretToken, PasswordLink), Error> {
    let token = SecretToken::from_presented(token).ok_or_else(link_unusable)?;
    match state.store.get_password_link(&token.hash()).await? {
        Some(link) if link.purpose == purpose && link.is_usable(state.now()) => Ok((token, link)),
        _ => Err(link_unusable()),
    }
}

pub async fn open_link(state: &App, token: &str, purpose: LinkPurpose) -> Result<OpenedLink, Error> {
    let (_, link) = usable_link(state, token, purpose).await?;
    let account = match link.account_id {
        Some(id) => Some(state.store.get_account(id).await?.ok_or_else(link_unusable)?),
        None => None,
    };
    let org = match account.as_ref().and_then(|a| a.org_id.as_ref()) {
        Some(o) => state.store.get_org(o).await?,
        None => None,
    };
    Ok(OpenedLink { purpose: link.purpose, account, org })
}

/// Sets a password through an invitation or reset link. Returns the account, whose
/// realm decides which sign-in page comes next.
pub async fn set_password_with_link(
    state: &App,
    token: &str,
    purpose: LinkPurpose,
    password: Password,
    confirm: &str,
    client: &clinic_auth_store::ClientInfo,
) -> Result<Account, Error> {
    let (token, link) = usable_link(state, token, purpose).await?;
    let account_id = link.account_id.ok_or_else(link_unusable)?;
    let account = state.store.get_account(account_id).await?.ok_or_else(link_unusable)?;
    let new = check_new_password(state, password, Some(confirm), &account.email)?;
    let hash = state.hasher.hash(&new).await?;
    let kind = if purpose == LinkPurpose::Invitation { Event::InvitationAccepted } else { Event::PasswordReset };
    let event = on_own_account(audit_event(state, kind, client), &account);
    if !state.store.set_password_with_link(&token.hash(), account.id, &hash, state.now(), &event).await? {
        return Err(link_unusable());
    }
    // A first password (an invitation) changes nothing the person had; a reset does.
    if purpose == LinkPurpose::PasswordReset {
        super::notices::send(state, &account, clinic_auth_notify::SecurityNotice::PasswordChanged).await;
    }
    state.store.get_account(account.id).await?.ok_or_else(link_unusable)
}

/// Creates the first platform admin through the setup link.
pub async fn create_first_admin(
    state: &App,
    token: &str,
    email: &str,
    password: Password,
    confirm: &str,
    client: &clinic_auth_store::ClientInfo,
) -> Result<Account, Error> {
    let (token, _) = usable_link(state, token, LinkPurpose::Setup).await?;
    let email = Email::parse(email).map_err(|_| invalid_email())?;
    let new = check_new_password(state, password, Some(confirm), &email)?;
    let hash = state.hasher.hash(&new).await?;
    let account = NewAccount {
        id: AccountId::new_random(),
        kind: AccountKind::PlatformAdmin,
        email: email.clone(),
        org_id: None,
        role: None,
        password_hash: Some(hash),
        now: state.now(),
    };
    let mut event = audit_event(state, Event::FirstAdminCreated { email: email.as_str() }, client);
    event.actor_id = Some(account.id);
    event.subject_id = Some(account.id);
    let created = state
        .store
        .create_admin_with_setup_link(&token.hash(), &account, state.now(), &event)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Error::new(ErrorKind::EmailTaken, "An account with this email already exists."),
            other => other.into(),
        })?;
    if !created {
        return Err(link_unusable());
    }
    state.store.get_account(account.id).await?.ok_or_else(|| Error::internal("admin vanished after insert"))
}

/// What a presented link is for, if it is still usable.
pub async fn link_purpose(state: &App, token: &str) -> Result<LinkPurpose, Error> {
    let token = SecretToken::from_presented(token).ok_or_else(link_unusable)?;
    match state.store.get_password_link(&token.hash()).await? {
        Some(link) if link.is_usable(state.now()) => Ok(link.purpose),
        _ => Err(link_unusable()),
    }
}

/// Uses an emailed link to choose a password: the first-start setup link creates the
/// first platform admin (with `email`); an invitation or reset link sets the
/// password of the account it was sent for.
pub async fn use_password_link(
    state: &App,
    token: &str,
    email: Option<&str>,
    password: Password,
    confirm: &str,
    client: &ClientInfo,
) -> Result<Account, Error> {
    match link_purpose(state, token).await? {
        LinkPurpose::Setup => {
            create_first_admin(state, token, email.unwrap_or_default(), password, confirm, client).await
        }
        purpose => set_password_with_link(state, token, purpose, password, confirm, client).await,
    }
}

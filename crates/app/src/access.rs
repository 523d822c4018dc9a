//! Who may see and act on what: an organization visible to the actor, the member an
//! action is aimed at, and carrying out the core's permission verdicts (with the
//! step-up check for an admin acting on their own account). Every admin use case
//! starts here.

use clinic_auth_core::permission::{Denial, MemberAction, Target, Verdict};
use clinic_auth_core::{AccountId, AccountKind, Email, OrgId, Realm};
use clinic_auth_store::{Account, Org};

use crate::{App, By, Error, ErrorKind, factors};

/// The organization `id`, when `by` may see it; the same "not found" otherwise.
pub async fn get_org(state: &App, by: &By, id: &str) -> Result<Org, Error> {
    let id = OrgId::parse(id).map_err(|_| Error::not_found("The organization"))?;
    if !by.actor.may_view_org(&id) {
        // Same answer as for a missing organization: ids of others are not disclosed.
        return Err(Error::not_found("The organization"));
    }
    state.store.get_org(&id).await?.ok_or_else(|| Error::not_found("The organization"))
}

/// Finds a member of `org_id` by id or email, for someone allowed to see that organization.
pub async fn find_member(state: &App, by: &By, org_id: &str, who: &str) -> Result<Account, Error> {
    let org = get_org(state, by, org_id).await?;
    let account = match AccountId::parse(who) {
        Ok(id) => state.store.get_account(id).await?,
        Err(_) => match Email::parse(who) {
            Ok(email) => state.store.find_account(Realm::Staff, &email).await?,
            Err(_) => None,
        },
    };
    account
        .filter(|a| a.kind == AccountKind::Member && a.org_id.as_ref() == Some(&org.id))
        .ok_or_else(|| Error::not_found("The member"))
}

/// Whether `by` proved a second factor within the step-up window (or has none to prove).
async fn stepped_up(state: &App, by: &By) -> Result<bool, Error> {
    let (Some(id), Some(session)) = (by.account_id, by.session.as_ref()) else { return Ok(false) };
    factors::has_recent_proof(state, id, session).await
}

/// Finds the account an action is aimed at: a member of `org` (by id or email), or,
/// for platform support without an organization, any account by id or email.
pub async fn find_target(state: &App, by: &By, org: Option<&str>, who: &str) -> Result<Account, Error> {
    match org {
        Some(o) => find_member(state, by, o, who).await,
        None if by.actor.is_platform_support() => {
            let found = match AccountId::parse(who) {
                Ok(id) => state.store.get_account(id).await?,
                Err(_) => match Email::parse(who) {
                    Ok(email) => match state.store.find_account(Realm::Staff, &email).await? {
                        Some(a) => Some(a),
                        None => state.store.find_account(Realm::Patient, &email).await?,
                    },
                    Err(_) => None,
                },
            };
            found.ok_or_else(|| Error::not_found("The account"))
        }
        None => Err(Error::forbidden()),
    }
}

/// The target of `action`, once the rules allow `by` to do it.
pub async fn authorize(
    state: &App,
    by: &By,
    org: Option<&str>,
    who: &str,
    action: MemberAction,
) -> Result<Account, Error> {
    let account = find_target(state, by, org, who).await?;
    let target = Target { kind: account.kind, org: account.org_id.as_ref(), role: account.role };
    let is_self = by.account_id == Some(account.id);
    enforce(state, by, by.actor.may_act_on_member(&target, is_self, action)).await?;
    Ok(account)
}

/// Carries out the core's verdict: `Ok` when allowed (after the step-up check for a
/// self-action), otherwise the answer for the person.
pub async fn enforce(state: &App, by: &By, verdict: Verdict) -> Result<(), Error> {
    match verdict {
        Verdict::Allowed => Ok(()),
        Verdict::NeedsStepUp if stepped_up(state, by).await? => Ok(()),
        Verdict::NeedsStepUp => Err(factors::step_up_required()
            .with_message("This changes your own account: confirm it's you with your second factor first.")),
        Verdict::Denied(Denial::NotVisible) => Err(Error::not_found("The member")),
        Verdict::Denied(Denial::Role) => Err(Error::forbidden()),
        Verdict::Denied(Denial::NotOnYourself) => Err(Error::new(
            ErrorKind::NotOnYourself,
            "You cannot do this to your own account; ask another owner or platform support.",
        )),
        Verdict::Denied(Denial::OwnerProtected) => Err(Error::new(
            ErrorKind::OwnerProtected,
            "Only an owner or platform support can do this to the clinic's owner.",
        )),
        Verdict::Denied(Denial::OwnersAppointOwners) => {
            Err(Error::new(ErrorKind::Forbidden, "Only an owner or platform support can make someone an owner."))
        }
        Verdict::Denied(Denial::NotAMember) => {
            Err(Error::new(ErrorKind::NotAMember, "This is only for clinic staff members."))
        }
    }
}

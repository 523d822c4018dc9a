//! Branding per clinic: an organization's owners and admins (or platform support) set
//! its display name, accent colour and logo; its sign-in pages, console and every
//! email and text then show them instead of the platform's.
//!
//! Which look a page gets:
//! - a sign-in reached with a clinic's hint (`/login?org=ID`) carries the hint in its
//!   flow (`LoginFlow::org_hint`), so every later page of that sign-in shows the
//!   clinic without trusting a query string again (`sign_in::look`);
//! - once the password is accepted and the account is known, an account with an
//!   organization gets its own organization's look, whatever the hint said;
//! - a hint for an unknown organization, a malformed one, or one for a clinic that
//!   set no branding gives the platform's look: nothing tells them apart.
//!
//! Messages ([`message_brand`]) name the account's organization (display name, else
//! its name), or for an account without one the clinic the sign-in was reached for,
//! else the platform.

use clinic_auth_core::OrgId;
use clinic_auth_core::audit::Event;
use clinic_auth_core::branding::{AccentColor, BrandingChange, DisplayName, LogoError, LogoImage};
use clinic_auth_store::{Account, Org, OrgBranding, OrgLogo};
use sha2::{Digest, Sha256};

use super::{By, audit_event};
use crate::{App, Error, ErrorKind};

/// An organization with its branding, for the console and the API.
#[derive(Debug, Clone)]
pub struct Branded {
    pub org: Org,
    pub branding: OrgBranding,
}

impl Branded {
    /// The look its pages get when the branding is in effect.
    pub fn look(&self) -> Look {
        Look::of(&self.org, &self.branding)
    }
}

/// How a clinic's pages look: its name, and where its logo and theme are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub org_id: OrgId,
    /// The display name, or the organization's name.
    pub name: String,
    /// `#rrggbb`, when the clinic chose one.
    pub accent: Option<String>,
    /// The logo's hash, when there is a logo: it versions the logo's URL.
    logo_sha256: Option<String>,
}

impl Look {
    fn of(org: &Org, b: &OrgBranding) -> Look {
        Look {
            org_id: org.id.clone(),
            name: b.display_name.clone().unwrap_or_else(|| org.name.clone()),
            accent: b.accent_color.clone(),
            logo_sha256: b.logo.as_ref().map(|l| l.sha256.clone()),
        }
    }

    /// `/branding/ORG/logo?v=…`: a new logo is a new address, so caches never show
    /// the old one for long.
    pub fn logo_path(&self) -> Option<String> {
        let v = self.logo_sha256.as_deref()?;
        Some(format!("/branding/{}/logo?v={}", self.org_id, v.get(..16).unwrap_or(v)))
    }

    /// `/branding/ORG/theme.css?v=rrggbb`, when the clinic has an accent colour.
    pub fn theme_path(&self) -> Option<String> {
        let accent = self.accent.as_deref()?;
        Some(format!("/branding/{}/theme.css?v={}", self.org_id, accent.trim_start_matches('#')))
    }
}

/// What a message says it comes from: the clinic's name, and its logo's public URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBrand {
    pub name: String,
    pub logo_url: Option<String>,
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidBranding, e.to_string())
}

fn invalid_logo(e: LogoError) -> Error {
    match e {
        LogoError::TooLarge => Error::new(ErrorKind::LogoTooLarge, e.to_string()),
        e => Error::new(ErrorKind::InvalidLogo, e.to_string()),
    }
}

/// The organization `org_id` and its branding, for whoever may see the organization.
pub async fn get(state: &App, by: &By, org_id: &str) -> Result<Branded, Error> {
    // As `access::get_org` (which this module sits below): one "not found" for an
    // organization that does not exist and one the actor may not see.
    let id = OrgId::parse(org_id).map_err(|_| Error::not_found("The organization"))?;
    if !by.actor.may_view_org(&id) {
        return Err(Error::not_found("The organization"));
    }
    let org = state.store.get_org(&id).await?.ok_or_else(|| Error::not_found("The organization"))?;
    let branding = state.store.get_org_branding(&org.id).await?.ok_or_else(|| Error::not_found("The organization"))?;
    Ok(Branded { org, branding })
}

/// The organization, when `by` may change its branding: its owners and admins, and
/// platform support.
async fn editable(state: &App, by: &By, org_id: &str) -> Result<Branded, Error> {
    let branded = get(state, by, org_id).await?;
    if !by.actor.may_set_org_policy(&branded.org.id) {
        return Err(Error::forbidden());
    }
    Ok(branded)
}

fn changed_event(state: &App, by: &By, org: &Org, change: BrandingChange) -> clinic_auth_store::NewAuditEvent {
    let parts = change.parts();
    let mut event = audit_event(state, Event::OrgBrandingChanged { changed: &parts }, &by.client);
    event.org_id = Some(org.id.clone());
    event.actor_id = by.account_id;
    event
}

/// Sets the display name and accent colour as typed: empty clears a part (the
/// organization's name, the platform's colour). Saving what is in force writes nothing.
pub async fn save(
    state: &App,
    by: &By,
    org_id: &str,
    display_name: &str,
    accent_color: &str,
) -> Result<Branded, Error> {
    let name = match display_name.trim() {
        "" => None,
        typed => Some(DisplayName::parse(typed).map_err(invalid)?.as_str().to_owned()),
    };
    let accent = match accent_color.trim() {
        "" => None,
        typed => Some(AccentColor::parse(typed).map_err(invalid)?.hex()),
    };
    let Branded { org, branding } = editable(state, by, org_id).await?;
    let change = BrandingChange {
        display_name: name != branding.display_name,
        accent_color: accent != branding.accent_color,
        logo: false,
    };
    if change.is_empty() {
        return Ok(Branded { org, branding });
    }
    let event = changed_event(state, by, &org, change);
    if !state.store.set_org_branding(&org.id, name.as_deref(), accent.as_deref(), &event).await? {
        return Err(Error::not_found("The organization"));
    }
    Ok(Branded { org, branding: OrgBranding { display_name: name, accent_color: accent, ..branding } })
}

/// Saves an uploaded logo (replacing the old one) once `LogoImage::parse` accepts
/// it. `declared` is the type the upload named.
pub async fn set_logo(
    state: &App,
    by: &By,
    org_id: &str,
    bytes: Vec<u8>,
    declared: Option<&str>,
) -> Result<Branded, Error> {
    let Branded { org, .. } = editable(state, by, org_id).await?;
    let image = LogoImage::parse(bytes, declared).map_err(invalid_logo)?;
    let content_type = image.content_type().to_owned();
    let bytes = image.into_bytes();
    let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let logo = OrgLogo { content_type, bytes, sha256, updated_at: state.now() };
    let event = changed_event(state, by, &org, BrandingChange { logo: true, ..Default::default() });
    if !state.store.put_org_logo(&org.id, &logo, &event).await? {
        return Err(Error::not_found("The organization"));
    }
    get(state, by, org_id).await
}

/// Removes the logo; whether there was one (nothing is written when there was not).
pub async fn remove_logo(state: &App, by: &By, org_id: &str) -> Result<bool, Error> {
    let Branded { org, branding } = editable(state, by, org_id).await?;
    if branding.logo.is_none() {
        return Ok(false);
    }
    let event = changed_event(state, by, &org, BrandingChange { logo: true, ..Default::default() });
    Ok(state.store.delete_org_logo(&org.id, &event).await?)
}

/// The logo anyone may fetch (it shows on public sign-in pages); `None` for an
/// unknown or malformed id, or an organization without a logo.
pub async fn public_logo(state: &App, org_id: &str) -> Result<Option<OrgLogo>, Error> {
    let Ok(id) = OrgId::parse(org_id) else { return Ok(None) };
    Ok(state.store.get_org_logo(&id).await?)
}

/// The accent colour anyone may fetch, for `/branding/ORG/theme.css`.
pub async fn public_accent(state: &App, org_id: &str) -> Result<Option<AccentColor>, Error> {
    let Ok(id) = OrgId::parse(org_id) else { return Ok(None) };
    let stored = state.store.get_org_branding(&id).await?.and_then(|b| b.accent_color);
    // Parsed again: only a colour that passes today's rules reaches a stylesheet.
    Ok(stored.and_then(|c| AccentColor::parse(&c).ok()))
}

/// The look of `org` when it set any branding; `None` (the platform's look) otherwise.
pub async fn look_for_org(state: &App, org: &OrgId) -> Result<Option<Look>, Error> {
    let Some(branding) = state.store.get_org_branding(org).await?.filter(OrgBranding::is_set) else {
        return Ok(None);
    };
    let Some(found) = state.store.get_org(org).await? else { return Ok(None) };
    Ok(Some(Look::of(&found, &branding)))
}

/// The look a hint (`?org=ID`) asks for: `None` for anything that is not a branded
/// organization, malformed or unknown alike, and on a store failure (logged): a
/// sign-in page never fails for its looks.
pub async fn look_for_hint(state: &App, hint: Option<&OrgId>) -> Option<Look> {
    let org = hint?;
    match look_for_org(state, org).await {
        Ok(look) => look,
        Err(e) => {
            tracing::warn!(error = %e, "branding not read");
            None
        }
    }
}

/// A hint as it came in a query string or form: kept only when it is an id.
pub fn parse_hint(hint: Option<&str>) -> Option<OrgId> {
    hint.and_then(|h| OrgId::parse(h.trim()).ok())
}

/// The look of an account's pages: its organization's, or, for an account without
/// one, the look the sign-in was reached with.
pub async fn look_for_account(state: &App, account: &Account, hint: Option<&OrgId>) -> Option<Look> {
    look_for_hint(state, account.org_id.as_ref().or(hint)).await
}

/// The look of a page that sets up or checks a factor of `account`, in a sign-in
/// (whose hint counts for an account without an organization) or a session.
pub async fn look_for_place(state: &App, account: &Account, within: crate::Within<'_>) -> Option<Look> {
    let hint = match within {
        crate::Within::SignIn(flow) => state.store.get_flow(flow).await.ok().flatten().and_then(|f| f.org_hint),
        crate::Within::Session(_) => None,
    };
    look_for_account(state, account, hint.as_ref()).await
}

/// Who a message to `account` comes from: its organization's display name (else its
/// name), or for an account without one the hinted clinic's, else the platform; and
/// the clinic's logo when it has one.
pub async fn message_brand(state: &App, account: &Account, hint: Option<&OrgId>) -> Result<MessageBrand, Error> {
    let org_id = account.org_id.as_ref().or(hint);
    let platform = MessageBrand { name: state.config.platform_name.clone(), logo_url: None };
    let Some(org_id) = org_id else { return Ok(platform) };
    let Some(org) = state.store.get_org(org_id).await? else { return Ok(platform) };
    let branding = state.store.get_org_branding(org_id).await?.unwrap_or_default();
    // A hint brings a clinic's name only when that clinic set its branding.
    if account.org_id.is_none() && !branding.is_set() {
        return Ok(platform);
    }
    let look = Look::of(&org, &branding);
    Ok(MessageBrand { logo_url: look.logo_path().map(|p| state.config.link(&p)), name: look.name })
}

/// [`message_brand`], for a message that must go out anyway: a store failure gives
/// the platform's name (logged).
pub async fn message_brand_or_platform(state: &App, account: &Account, hint: Option<&OrgId>) -> MessageBrand {
    match message_brand(state, account, hint).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "branding for a message not read");
            MessageBrand { name: state.config.platform_name.clone(), logo_url: None }
        }
    }
}

//! Branding: the console page where a clinic's owners and admins (or platform
//! support, with `?org=ID`) set the display name, accent colour and logo, and the
//! public addresses that serve the logo and the accent's stylesheet.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clinic_auth_app::branding::{self, Branded};
use clinic_auth_app::{Error, ErrorKind};
use clinic_auth_core::branding::{LOGO_MAX_BYTES, theme_css};
use serde::Deserialize;

use super::admin::{by, notice_text, scope};
use super::{Visit, frame};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::{PageForm, read_capped};
use crate::{AppError, AppState};

/// Room for the form's other fields and the multipart framing around a logo.
const LOGO_FORM_MAX_BYTES: usize = LOGO_MAX_BYTES + 16 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/branding", get(branding_page).post(save_submit))
        .route("/admin/branding/logo", post(logo_submit).layer(DefaultBodyLimit::max(LOGO_FORM_MAX_BYTES)))
        .route("/admin/branding/logo/remove", post(remove_submit))
        .route("/branding/{org}/logo", get(logo))
        .route("/branding/{org}/theme.css", get(theme))
}

// ----- the console page -----

#[derive(Template)]
#[template(path = "admin_branding.html")]
struct BrandingPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    csrf: String,
    org_id: String,
    org_name: String,
    display_name: String,
    accent: String,
    /// The colour picker's value: the accent, or the platform's.
    picker: String,
    shown_name: String,
    logo: Option<String>,
    sign_in_link: String,
    portal_link: String,
}

/// The platform's accent (style.css), for the colour picker when none is set.
const PLATFORM_ACCENT: &str = "#1f5fbf";

#[derive(Deserialize, Default)]
struct BrandingQuery {
    org: Option<String>,
    notice: Option<String>,
}

/// The organization a request is about: a clinic admin's own (or the one named, which
/// the use case refuses unless it is theirs), or for platform support the one named.
fn target_org(s: &SignedIn, named: &str) -> Result<Option<String>, PageError> {
    let named = named.trim();
    Ok(match scope(s)? {
        Some(own) if named.is_empty() => Some(own.to_string()),
        _ if named.is_empty() => None,
        _ => Some(named.to_owned()),
    })
}

/// The page, showing `view` (a notice, or an error with the status it carries).
async fn branding_form(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    org_id: &str,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    let Branded { org, branding: stored } = branding::get(state, &by(s, client), org_id).await?;
    let platform = s.actor().is_platform_support();
    let look = Branded { org: org.clone(), branding: stored.clone() }.look();
    let accent = stored.accent_color.clone().unwrap_or_default();
    let page = BrandingPage {
        frame: frame(state, "Branding").notice(notice).error(error).brand(stored.is_set().then(|| look.clone())),
        platform,
        csrf: s.csrf_token.clone(),
        org_id: org.id.to_string(),
        org_name: org.name.clone(),
        display_name: stored.display_name.clone().unwrap_or_default(),
        picker: if accent.is_empty() { PLATFORM_ACCENT.to_owned() } else { accent.clone() },
        accent,
        shown_name: look.name.clone(),
        logo: look.logo_path(),
        sign_in_link: state.config.link(&format!("/login?org={}", org.id)),
        portal_link: state.config.link(&format!("/portal/login?org={}", org.id)),
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn branding_page(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<BrandingQuery>,
) -> Result<Response, PageError> {
    let Some(org_id) = target_org(&s, q.org.as_deref().unwrap_or_default())? else {
        return Ok(Redirect::to("/platform").into_response());
    };
    branding_form(&state, &s, client, &org_id, notice_text(q.notice.as_deref()), None).await
}

/// Where a saved change goes: back to the page, with a notice.
fn saved(s: &SignedIn, org_id: &str, notice: &str) -> Response {
    let org = if s.actor().is_platform_support() { format!("org={org_id}&") } else { String::new() };
    Redirect::to(&format!("/admin/branding?{org}notice={notice}")).into_response()
}

/// The answer to a refused change: the page again with the error, or the error page
/// when the organization itself is out of reach.
async fn refused(
    state: &AppState,
    s: &SignedIn,
    client: Client,
    org_id: &str,
    e: Error,
) -> Result<Response, PageError> {
    if e.status().is_client_error() && !e.is(ErrorKind::NotFound) && !e.is(ErrorKind::Forbidden) {
        branding_form(state, s, client, org_id, None, Some(e.into())).await
    } else {
        Err(e.into())
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SaveForm {
    csrf: String,
    org: String,
    display_name: String,
    /// The colour as typed (`#rrggbb`); empty for the platform's.
    accent_color: String,
    /// The colour picker's value.
    accent_picker: String,
    /// The accent when the page was shown: tells which of the two fields changed.
    accent_shown: String,
}

impl SaveForm {
    /// The colour asked for: what was typed when the text changed, else the picker's
    /// choice when it moved, else what was shown.
    fn accent(&self) -> &str {
        let (typed, picked, shown) = (self.accent_color.trim(), self.accent_picker.trim(), self.accent_shown.trim());
        let picker_was = if shown.is_empty() { PLATFORM_ACCENT } else { shown };
        if !typed.eq_ignore_ascii_case(shown) {
            typed
        } else if !picked.is_empty() && !picked.eq_ignore_ascii_case(picker_was) {
            picked
        } else {
            shown
        }
    }
}

async fn save_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<SaveForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let Some(org_id) = target_org(&s, &f.org)? else { return Ok(Redirect::to("/platform").into_response()) };
    match branding::save(&state, &by(&s, client.clone()), &org_id, &f.display_name, f.accent()).await {
        Ok(_) => Ok(saved(&s, &org_id, "branding_saved")),
        Err(e) => refused(&state, &s, client, &org_id, e).await,
    }
}

/// The fields of the logo form: its token, the organization, and the file.
#[derive(Default)]
struct LogoForm {
    csrf: String,
    org: String,
    file: Option<(Vec<u8>, Option<String>)>,
}

fn unreadable_form() -> Error {
    Error::new(ErrorKind::InvalidRequest, "The upload could not be read. Go back, reload the page and try again.")
}

fn too_large() -> Error {
    Error::new(ErrorKind::LogoTooLarge, clinic_auth_core::branding::LogoError::TooLarge.to_string())
}

/// Reads the `multipart/form-data` upload: at most `LOGO_FORM_MAX_BYTES`, read to
/// its end either way so that the browser sees the answer.
async fn read_logo_form(req: Request) -> Result<LogoForm, Error> {
    let (parts, body) = req.into_parts();
    let bytes = read_capped(body, LOGO_FORM_MAX_BYTES).await.map_err(|_| too_large())?;
    let req = Request::from_parts(parts, Body::from(bytes));
    let mut multipart = axum::extract::Multipart::from_request(req, &()).await.map_err(|_| unreadable_form())?;
    let mut form = LogoForm::default();
    while let Some(field) = multipart.next_field().await.map_err(|_| unreadable_form())? {
        let name = field.name().unwrap_or_default().to_owned();
        let declared = field.content_type().map(str::to_owned);
        let has_file = field.file_name().is_some_and(|n| !n.is_empty());
        let data = field.bytes().await.map_err(|_| unreadable_form())?;
        match name.as_str() {
            "csrf" => form.csrf = String::from_utf8_lossy(&data).into_owned(),
            "org" => form.org = String::from_utf8_lossy(&data).into_owned(),
            "logo" if has_file || !data.is_empty() => form.file = Some((data.to_vec(), declared)),
            _ => {}
        }
    }
    Ok(form)
}

async fn logo_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    req: Request,
) -> Result<Response, PageError> {
    let form = match read_logo_form(req).await {
        Ok(f) => f,
        // Too large to read: the token cannot be checked, so nothing is changed and
        // the page is shown again (for the admin's own organization) with the reason.
        Err(e) => {
            let Some(org_id) = target_org(&s, "")? else { return Err(e.into()) };
            return refused(&state, &s, client, &org_id, e).await;
        }
    };
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    let Some(org_id) = target_org(&s, &form.org)? else { return Ok(Redirect::to("/platform").into_response()) };
    let Some((bytes, declared)) = form.file else {
        let e = Error::new(ErrorKind::InvalidLogo, clinic_auth_core::branding::LogoError::Empty.to_string());
        return refused(&state, &s, client, &org_id, e).await;
    };
    match branding::set_logo(&state, &by(&s, client.clone()), &org_id, bytes, declared.as_deref()).await {
        Ok(_) => Ok(saved(&s, &org_id, "logo_saved")),
        Err(e) => refused(&state, &s, client, &org_id, e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemoveForm {
    csrf: String,
    org: String,
}

async fn remove_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<RemoveForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    let Some(org_id) = target_org(&s, &f.org)? else { return Ok(Redirect::to("/platform").into_response()) };
    match branding::remove_logo(&state, &by(&s, client.clone()), &org_id).await {
        Ok(_) => Ok(saved(&s, &org_id, "logo_removed")),
        Err(e) => refused(&state, &s, client, &org_id, e).await,
    }
}

// ----- the public addresses -----

/// Logos and themes may be cached for five minutes; their URLs carry a version.
const PUBLIC_CACHE: &str = "public, max-age=300";

/// `GET /branding/{org}/logo`: the stored image with its own type, never sniffed,
/// never run (`default-src 'none'`), with an ETag; 404 when there is none.
async fn logo(
    State(state): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Some(logo) = branding::public_logo(&state, &org).await? else {
        return Err(PageError(AppError::not_found("This logo")));
    };
    let etag = format!("\"{}\"", logo.sha256);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"));
    let etag = HeaderValue::from_str(&etag).map_err(|e| PageError(AppError::internal(format!("logo etag: {e}"))))?;
    let content_type = HeaderValue::from_str(&logo.content_type)
        .map_err(|e| PageError(AppError::internal(format!("logo content type: {e}"))))?;
    let mut res = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { logo.bytes.into_response() };
    let h = res.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, content_type);
    }
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(PUBLIC_CACHE));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"logo\""));
    Ok(res)
}

/// `GET /branding/{org}/theme.css`: the accent as the one custom property the base
/// stylesheet uses; 404 when the clinic has no accent.
async fn theme(State(state): State<AppState>, Path(org): Path<String>) -> Result<Response, PageError> {
    let Some(accent) = branding::public_accent(&state, &org).await? else {
        return Err(PageError(AppError::not_found("This stylesheet")));
    };
    Ok(([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, PUBLIC_CACHE)], theme_css(&accent))
        .into_response())
}

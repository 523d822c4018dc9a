//! An organization's branding, `/api/v1/orgs/{org_id}/branding`: its display name and
//! accent colour, and its logo (`…/branding/logo`, the image itself as the body).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use clinic_auth_app::branding::{self, Branded};
use clinic_auth_app::{Error, ErrorKind};
use clinic_auth_core::branding::{LOGO_MAX_BYTES, LogoError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Caller;
use crate::error::ErrorBody;
use crate::http::extract::{ApiJson, read_capped};
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org_id}/branding", get(get_branding).put(set_branding))
        .route("/api/v1/orgs/{org_id}/branding/logo", put(set_logo).delete(remove_logo))
}

#[derive(Serialize, ToSchema)]
pub struct BrandingView {
    org_id: String,
    /// The display name, or `null` (pages and messages show the organization's name).
    display_name: Option<String>,
    /// `#rrggbb`, or `null` (the platform's colour).
    accent_color: Option<String>,
    /// The name pages and messages show: the display name, else the organization's name.
    shown_name: String,
    /// The logo's public address (`/branding/ORG/logo?v=…`), or `null` when there is none.
    logo_url: Option<String>,
    /// `image/png`, `image/jpeg` or `image/webp`, when there is a logo.
    logo_content_type: Option<String>,
}

impl BrandingView {
    fn new(b: &Branded, state: &AppState) -> BrandingView {
        let look = b.look();
        BrandingView {
            org_id: b.org.id.to_string(),
            display_name: b.branding.display_name.clone(),
            accent_color: b.branding.accent_color.clone(),
            shown_name: look.name.clone(),
            logo_url: look.logo_path().map(|p| state.config.link(&p)),
            logo_content_type: b.branding.logo.as_ref().map(|l| l.content_type.clone()),
        }
    }
}

/// An organization's branding (its accounts and platform admins).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/branding", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path)), responses((status = 200, body = BrandingView), (status = 404, body = ErrorBody)))]
async fn get_branding(c: Caller, Path(org_id): Path<String>) -> Result<Json<BrandingView>, AppError> {
    let b = branding::get(&c.state, &c.by(), &org_id).await?;
    Ok(Json(BrandingView::new(&b, &c.state)))
}

#[derive(Deserialize, ToSchema)]
pub struct BrandingChange {
    /// 1–80 characters; `null` or `""` to use the organization's name.
    #[serde(default)]
    display_name: Option<String>,
    /// `#rrggbb` with a contrast of at least 4.5:1 against white text; `null` or `""`
    /// for the platform's colour.
    #[serde(default)]
    accent_color: Option<String>,
}

/// Set the display name and accent colour (the organization's owners and admins,
/// platform admins). Both are set as sent: a missing one is cleared.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/branding", tag = "admin", request_body = BrandingChange,
    security(("bearer" = [])), params(("org_id" = String, Path)),
    responses((status = 200, body = BrandingView),
        (status = 400, description = "`invalid_branding`: a name or colour that cannot be used (a colour too light for white text says so)", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_branding(
    c: Caller,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<BrandingChange>,
) -> Result<Json<BrandingView>, AppError> {
    let name = body.display_name.unwrap_or_default();
    let accent = body.accent_color.unwrap_or_default();
    let b = branding::save(&c.state, &c.by(), &org_id, &name, &accent).await?;
    Ok(Json(BrandingView::new(&b, &c.state)))
}

/// The logo file itself, as the request body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct LogoFile(#[allow(dead_code)] Vec<u8>);

/// Upload the logo: the image itself as the body, with `Content-Type: image/png`,
/// `image/jpeg` or `image/webp`. At most 256 KiB and 1024×1024 pixels; never SVG.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/branding/logo", tag = "admin",
    request_body(description = "The image: PNG, JPEG or WebP, with its own `Content-Type`",
        content((LogoFile = "image/png"), (LogoFile = "image/jpeg"), (LogoFile = "image/webp"))),
    security(("bearer" = [])), params(("org_id" = String, Path)),
    responses((status = 200, body = BrandingView),
        (status = 400, description = "`invalid_logo`: not a PNG, JPEG or WebP image, SVG, a type that does not match the content, or more than 1024×1024 pixels", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "`logo_too_large`: more than 256 KiB", body = ErrorBody)))]
async fn set_logo(
    c: Caller,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BrandingView>, AppError> {
    let bytes = read_capped(body, LOGO_MAX_BYTES)
        .await
        .map_err(|_| Error::new(ErrorKind::LogoTooLarge, LogoError::TooLarge.to_string()))?;
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let b = branding::set_logo(&c.state, &c.by(), &org_id, bytes, declared).await?;
    Ok(Json(BrandingView::new(&b, &c.state)))
}

/// Remove the logo (204 whether or not there was one).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/branding/logo", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses((status = 204, description = "No logo now"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_logo(c: Caller, Path(org_id): Path<String>) -> Result<Response, AppError> {
    branding::remove_logo(&c.state, &c.by(), &org_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

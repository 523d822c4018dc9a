//! Body extractors whose rejections speak our error format: JSON for the API, an HTML
//! page for forms. An oversized body is a 413 with code `payload_too_large`.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error_page::PageError;
use crate::{AppError, AppState};
use clinic_auth_app::{Error, ErrorKind};

fn too_large() -> AppError {
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "The request is too large.")
}

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON with Content-Type: application/json.",
            )),
            Err(r) => {
                Err(Error::new(ErrorKind::InvalidRequest, format!("The request body is not valid: {}", r.body_text()))
                    .into())
            }
        }
    }
}

pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(PageForm(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(PageError(too_large())),
            Err(FormRejection::InvalidFormContentType(_)) | Err(_) => Err(PageError(
                Error::new(
                    ErrorKind::InvalidRequest,
                    "The form could not be read. Go back, reload the page and try again.",
                )
                .into(),
            )),
        }
    }
}

/// Query parameters for the API: a bad one (`?limit=abc`) is a JSON 400, not text.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("The query parameters are not valid: {}", r.body_text()),
            )
            .into()),
        }
    }
}

/// An upload's body, read to `max` bytes. A larger body is read on (and dropped) up
/// to `DRAIN_MAX` so that the browser, still sending, gets the answer that says
/// why instead of a broken connection; past that the connection is given up.
pub async fn read_capped(body: axum::body::Body, max: usize) -> Result<Vec<u8>, BodyTooLarge> {
    use futures_util::StreamExt;
    /// How much of a too-large upload is read (and dropped) before giving up.
    const DRAIN_MAX: usize = 16 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return Err(BodyTooLarge) };
        total = total.saturating_add(chunk.len());
        if total > DRAIN_MAX {
            return Err(BodyTooLarge);
        }
        if total <= max {
            kept.extend_from_slice(&chunk);
        }
    }
    if total > max { Err(BodyTooLarge) } else { Ok(kept) }
}

/// A body over its limit (or broken off by the client).
#[derive(Debug, Clone, Copy)]
pub struct BodyTooLarge;

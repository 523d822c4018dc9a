//! An error shown to a browser as a page rather than JSON. The HTTP layers answer forms
//! and page addresses with it, so it knows nothing of the pages themselves.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppError;
use crate::error::Status;
use crate::html::{Frame, render_with};

/// An error shown as a page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<clinic_auth_app::Error> for PageError {
    fn from(e: clinic_auth_app::Error) -> Self {
        PageError(e.into())
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl From<clinic_auth_store::StoreError> for PageError {
    fn from(e: clinic_auth_store::StoreError) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    frame: Frame<'a>,
    heading: &'a str,
    message: &'a str,
    link_href: &'a str,
    link_text: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let heading = match e.status() {
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::GONE => "Link no longer valid",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            s if s.is_server_error() => "Something went wrong",
            _ => "Something is not right",
        };
        let page = MessagePage {
            frame: Frame::new("clinic-auth", heading),
            heading,
            message: &e.message,
            link_href: "/login",
            link_text: "Go to the sign-in page",
        };
        let mut r = render_with(e.status(), &page);
        if let Some(secs) = e.retry_after
            && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

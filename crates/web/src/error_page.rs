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
    /// The request's id, to quote to support.
    reference: Option<String>,
}

/// The way back an error page offers: the sign-in page, unless the HTTP layer knows
/// the page was in a console (`for_console`).
const SIGN_IN: (&str, &str) = ("/login", "Go to the sign-in page");

/// Marks a response as an error page, so the HTTP layer can offer a better way back.
#[derive(Debug, Clone)]
pub struct ShownError(pub AppError);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut r = render_error(&self.0, SIGN_IN);
        r.extensions_mut().insert(ShownError(self.0));
        r
    }
}

/// An error page that was for a page of the clinic or platform console: the way back
/// is to that console, not to signing in. `None` for any other page.
/// A page that is not there goes back to the console's list; anything else (not
/// allowed, say) to the account page.
pub fn for_console(path: &str, shown: &ShownError) -> Option<Response> {
    let not_found = shown.0.status() == StatusCode::NOT_FOUND;
    let back = match (path.starts_with("/admin"), path.starts_with("/platform")) {
        (true, _) if not_found => ("/admin/users", "Back to Users"),
        (_, true) if not_found => ("/platform", "Back to the platform console"),
        (true, _) | (_, true) => ("/account", "Back to your account"),
        _ => return None,
    };
    Some(render_error(&shown.0, back))
}

fn render_error(e: &AppError, (link_href, link_text): (&str, &str)) -> Response {
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
        link_href,
        link_text,
        reference: crate::http::request_id::current(),
    };
    let mut r = render_with(e.status(), &page);
    if let Some(secs) = e.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

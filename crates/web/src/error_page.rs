//! An error shown to a browser as a page rather than JSON, and the one way a template
//! becomes a response. The HTTP layers answer forms and page addresses with it, so it
//! knows nothing of the pages themselves.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::AppError;
use crate::error::Status;

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
    title: &'a str,
    platform_name: &'a str,
    heading: &'a str,
    message: &'a str,
    link_href: &'a str,
    link_text: &'a str,
}

/// A template as a `200` page; a template that fails to render is a plain `500`.
pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            let err = AppError::internal(format!("template: {e}"));
            (err.status, Html("<!doctype html><title>Error</title><h1>Something went wrong</h1>".to_owned()))
                .into_response()
        }
    }
}

/// A template with another status (a form shown again with its error).
pub(crate) fn render_with(status: StatusCode, t: &impl Template) -> Response {
    let mut r = render(t);
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
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
            title: heading,
            platform_name: "clinic-auth",
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

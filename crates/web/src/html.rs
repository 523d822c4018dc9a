//! How a page becomes a response: the frame every page has around its content, and
//! rendering a template (with the status of the error it shows).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::AppError;

/// What every page shows around its content (`base.html`, `_alerts.html`): its title,
/// the platform's name, and a notice or an error at the top. A page showing an error
/// is sent with the error's status.
pub(crate) struct Frame<'a> {
    pub(crate) title: &'a str,
    pub(crate) platform_name: &'a str,
    pub(crate) notice: Option<&'a str>,
    pub(crate) error: Option<String>,
    /// The clinic's look, when its branding is in effect on this page.
    pub(crate) brand: Option<BrandView>,
    status: StatusCode,
}

/// A clinic's name, logo and theme as the page frame shows them.
pub(crate) struct BrandView {
    pub(crate) name: String,
    pub(crate) logo: Option<String>,
    pub(crate) theme: Option<String>,
}

impl<'a> Frame<'a> {
    pub(crate) fn new(platform_name: &'a str, title: &'a str) -> Frame<'a> {
        Frame { title, platform_name, notice: None, error: None, brand: None, status: StatusCode::OK }
    }

    pub(crate) fn notice(self, notice: Option<&'a str>) -> Frame<'a> {
        Frame { notice, ..self }
    }

    pub(crate) fn error(self, error: Option<AppError>) -> Frame<'a> {
        match error {
            Some(e) => Frame { status: e.status, error: Some(e.message), ..self },
            None => self,
        }
    }

    /// Shows the clinic's name, logo and accent instead of the platform's.
    pub(crate) fn brand(self, look: Option<clinic_auth_app::branding::Look>) -> Frame<'a> {
        let brand = look.map(|l| BrandView { logo: l.logo_path(), theme: l.theme_path(), name: l.name });
        Frame { brand, ..self }
    }

    /// The name the page goes by: the clinic's when branded, else the platform's.
    pub(crate) fn site_name(&self) -> &str {
        self.brand.as_ref().map(|b| b.name.as_str()).unwrap_or(self.platform_name)
    }

    /// The status the page is sent with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
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

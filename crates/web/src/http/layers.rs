//! Layers around every route: security headers, a body-size limit, a clean answer
//! for every error status (never an empty or plain-text body), and no panics leaking.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error_page::PageError;
use crate::{AppError, AppState};

/// Largest request body accepted: forms and JSON here are small.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

// `object-src 'none'` repeats what `default-src 'none'` implies, so that the policy
// says it explicitly (ASVS 3.4.3) and keeps saying it if `default-src` is ever loosened.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   object-src 'none'";

pub fn layers(routes: Router<AppState>, state: AppState) -> Router {
    let mut router = routes
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            AppError::internal("a request handler panicked").into_response()
        }))
        .layer(middleware::from_fn(super::metrics::time_requests))
        .layer(middleware::from_fn_with_state(state.clone(), super::request_id::assign));
    let headers: [(&str, &str); 6] = [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ];
    for (name, value) in headers {
        let (name, value) = (HeaderName::from_static(name), HeaderValue::from_static(value));
        router = if name == header::CONTENT_SECURITY_POLICY {
            // A response may carry a stricter policy of its own (a logo: `default-src 'none'`).
            router.layer(SetResponseHeaderLayer::if_not_present(name, value))
        } else {
            router.layer(SetResponseHeaderLayer::overriding(name, value))
        };
    }
    if state.config.secure_cookies() {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            // A year, for this host and every subdomain (ASVS 3.4.1 at level 2).
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    router.with_state(state)
}

fn wants_json(path: &str) -> bool {
    path.starts_with("/api/")
}

async fn not_found(req: Request) -> Response {
    let err = AppError::not_found("This page");
    if wants_json(req.uri().path()) { err.into_response() } else { PageError(err).into_response() }
}

/// Refuses cross-site form posts, marks responses uncacheable, turns any error
/// response without a proper body (405, 413 from a layer…) into our format, and notices
/// a proxy's `X-Forwarded-For` that the configuration ignores.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state.forwarded_for_seen.observe(state.config.trust_forwarded_for, req.headers());
    let path = req.uri().path().to_owned();
    let json = wants_json(&path);
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // The OpenID Connect endpoints take posts from apps on other sites by design; the
    // token endpoints authenticate the app, and the sign-out form has its own token.
    let protocol = path.starts_with("/oauth2/");
    if unsafe_method
        && !json
        && !protocol
        && let Err(e) = super::csrf::check_origin(req.headers())
    {
        return PageError(e).into_response();
    }
    let mut res = next.run(req).await;
    // An error page in a console offers the way back to it.
    if let Some(shown) = res.extensions().get::<crate::error_page::ShownError>()
        && let Some(mut page) = crate::error_page::for_console(&path, shown)
    {
        for (k, v) in res.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                page.headers_mut().insert(k.clone(), v.clone());
            }
        }
        res = page;
    }
    // Logos and themes say their own caching (public, versioned URLs).
    if !path.starts_with("/static/") && !path.starts_with("/branding/") {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let status = res.status();
    let has_body_type = res.headers().contains_key(header::CONTENT_TYPE);
    if (status.is_client_error() || status.is_server_error()) && !has_body_type {
        let err = match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                AppError::new(status, "method_not_allowed", "This address does not accept that method.")
            }
            StatusCode::PAYLOAD_TOO_LARGE => AppError::new(status, "payload_too_large", "The request is too large."),
            StatusCode::NOT_FOUND => AppError::not_found("This page"),
            s if s.is_server_error() => AppError::internal(format!("unbodied {s} response")),
            s => AppError::new(s, "invalid_request", "The request could not be handled."),
        };
        let mut fixed = if json { err.into_response() } else { PageError(err).into_response() };
        for (k, v) in res.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                fixed.headers_mut().insert(k.clone(), v.clone());
            }
        }
        return fixed;
    }
    res
}

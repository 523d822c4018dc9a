//! Cross-site request forgery defences for HTML forms: the browser's own
//! `Sec-Fetch-Site`/`Origin` headers must say the request came from this site, and the
//! form must carry the token of the session (signed in) or of the CSRF cookie (before
//! sign-in).

use axum::http::{HeaderMap, StatusCode, header};
use axum_extra::extract::CookieJar;
use clinic_auth_core::SecretToken;
use clinic_auth_core::token::secrets_equal;

use super::auth::SignedIn;
use super::cookies::{self, Kind};
use crate::{AppError, AppState};

fn forbidden() -> AppError {
    AppError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "This form expired or came from another site. Go back, reload the page and try again.",
    )
}

/// Refuses state-changing requests that a browser says came from another site.
pub fn check_origin(headers: &HeaderMap) -> Result<(), AppError> {
    // Browsers that send Fetch Metadata say where the request came from; trust it.
    // (With `Referrer-Policy: no-referrer` Chromium sends `Origin: null` even for
    // same-origin form posts, so Origin alone cannot decide.)
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return if matches!(site, "same-origin" | "none") { Ok(()) } else { Err(forbidden()) };
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin == "null" || host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err(forbidden());
        }
    }
    Ok(())
}

/// The token a form must carry, creating the pre-sign-in cookie when needed.
pub fn form_token(state: &AppState, jar: CookieJar, session: Option<&SignedIn>) -> (CookieJar, String) {
    if let Some(s) = session {
        return (jar, s.csrf_token.clone());
    }
    if let Some(existing) = cookies::get(state, &jar, Kind::Csrf).filter(|v| SecretToken::from_presented(v).is_some()) {
        let v = existing.to_owned();
        return (jar, v);
    }
    let fresh = SecretToken::generate().expose().to_owned();
    (cookies::set(state, jar, Kind::Csrf, fresh.clone()), fresh)
}

/// Checks a submitted form's token.
pub fn verify(state: &AppState, jar: &CookieJar, session: Option<&SignedIn>, presented: &str) -> Result<(), AppError> {
    let expected = match session {
        Some(s) => Some(s.csrf_token.as_str()),
        None => cookies::get(state, jar, Kind::Csrf),
    };
    match expected {
        Some(e) if !presented.is_empty() && secrets_equal(e, presented) => Ok(()),
        _ => Err(forbidden()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_requests_pass() {
        assert!(check_origin(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(
            check_origin(&headers(&[
                ("host", "a.test"),
                ("origin", "https://a.test"),
                ("sec-fetch-site", "same-origin")
            ]))
            .is_ok()
        );
    }

    #[test]
    fn cross_site_requests_fail() {
        for h in [
            headers(&[("host", "a.test"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "a.test"), ("sec-fetch-site", "same-site")]),
            headers(&[("host", "a.test"), ("origin", "https://evil.test")]),
            headers(&[("host", "a.test"), ("origin", "null")]),
            headers(&[("host", "a.test"), ("origin", "null"), ("sec-fetch-site", "cross-site")]),
        ] {
            assert_eq!(check_origin(&h).err().map(|e| e.code), Some("csrf_failed"));
        }
    }
}

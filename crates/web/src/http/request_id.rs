//! Every request gets an id: taken from `X-Request-Id` when a trusted proxy sent a
//! sane one (`trust_forwarded_for`; at most 64 of `A-Z a-z 0-9 - _ .`), otherwise a
//! new random one. It is echoed in the `X-Request-Id` response header, carried by a
//! `request` span so that every log line of the request names it, and shown in JSON
//! errors (`error.request_id`) and on error pages ("Reference: …"), so that a clinic
//! can quote it to whoever reads the logs.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::AppState;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if any (none outside a request).
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An incoming id worth keeping: short, and only characters safe in a header, a log
/// line and a page.
pub fn sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn assign(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let proxied = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| state.config.trust_forwarded_for && sane(id))
        .map(str::to_owned);
    let id = proxied.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = REQUEST_ID.scope(id.clone(), next.run(req).instrument(span)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn only_short_plain_ids_are_taken_from_a_proxy() {
        for ok in ["abc", "0b5c-4f1e_9.a", &"a".repeat(64), "f47ac10b-58cc-4372-a567-0e02b2c3d479"] {
            assert!(sane(ok), "{ok}");
        }
        for bad in ["", &"a".repeat(65), "a b", "a\nb", "<script>", "id;drop", "ä"] {
            assert!(!sane(bad), "{bad:?}");
        }
    }
}

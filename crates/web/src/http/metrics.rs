//! Prometheus metrics: one recorder per process (the `metrics` facade, rendered in the
//! text exposition format), a layer timing every request by its route template (never
//! the raw path, which can hold a token), and the build's version. The application
//! and the store add their own counters (`clinic_auth_core::audit::tally`,
//! `clinic_auth_app::ops`, `clinic_auth_app::hashing`).

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request latency by `method`, `route` (the template, e.g. `/admin/users/{id}`, or
/// `unmatched`) and `status` (a histogram, seconds).
pub const REQUEST_SECONDS: &str = "clinic_auth_http_request_duration_seconds";
/// Always 1, with the running version as a label.
pub const BUILD_INFO: &str = "clinic_auth_build_info";

/// Seconds: from a fast page (1 ms) to a sign-in queued behind many hashes (10 s).
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. `None` if another recorder was
/// installed first (then nothing here is recorded).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .ok()?
                .install_recorder()
                .inspect_err(|e| tracing::warn!(error = %e, "metrics are off"))
                .ok()?;
            describe();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(recorder)
        })
        .as_ref()
}

fn describe() {
    use clinic_auth_app::{hashing, ops};
    use clinic_auth_core::audit::tally;
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(tally::SIGN_INS, "Sign-ins by realm and outcome (success or the refusal's reason).");
    describe_counter!(
        tally::SECOND_FACTOR_CHECKS,
        "Second-factor answers by method and outcome (accepted, wrong, replayed, locked, expired, other)."
    );
    describe_counter!(
        tally::LOCKOUTS,
        "Attempts refused by a lock (account, client, second_factor) and factors locked (factor)."
    );
    describe_counter!(tally::BYPASSES, "One-time 2FA bypasses granted and used.");
    describe_counter!(tally::RESETS, "MFA resets, password resets and unlocks.");
    describe_counter!(ops::CODES_SENT, "Codes handed to the email or SMS provider, by channel and outcome.");
    describe_gauge!(ops::SESSIONS_ACTIVE, "Live sessions (read from the database at each scrape).");
    describe_gauge!(ops::DB_POOL_CONNECTIONS, "Database pool connections in use and idle.");
    describe_gauge!(ops::DB_POOL_MAX, "The most connections the database pool opens.");
    describe_gauge!(hashing::QUEUE_DEPTH, "Password hashes waiting for a hashing thread.");
    describe_histogram!(hashing::QUEUE_WAIT_SECONDS, Unit::Seconds, "How long each password hash waited for a thread.");
    describe_histogram!(
        clinic_auth_store::AUDIT_APPEND_SECONDS,
        Unit::Seconds,
        "Time to append one audit event to its hash chain."
    );
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "HTTP request latency by method, route template and status.");
    describe_gauge!(BUILD_INFO, "The running version of clinic-auth.");
}

/// Times each request under its route's template.
pub async fn time_requests(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = method_label(req.method());
    let res = next.run(req).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16().to_string();
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    tracing::debug!(method, route = %route, status = %status, elapsed_ms = elapsed.as_millis() as u64, "request finished");
    metrics::histogram!(REQUEST_SECONDS, "method" => method, "route" => route, "status" => status)
        .record(elapsed.as_secs_f64());
    res
}

/// The standard methods by name; anything else (a client's invention) is `other`.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *m {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Every metric this server exports (the docs may name no other).
#[cfg(test)]
const NAMES: &[&str] = &[
    clinic_auth_core::audit::tally::SIGN_INS,
    clinic_auth_core::audit::tally::SECOND_FACTOR_CHECKS,
    clinic_auth_core::audit::tally::LOCKOUTS,
    clinic_auth_core::audit::tally::BYPASSES,
    clinic_auth_core::audit::tally::RESETS,
    clinic_auth_app::ops::CODES_SENT,
    clinic_auth_app::ops::SESSIONS_ACTIVE,
    clinic_auth_app::ops::DB_POOL_CONNECTIONS,
    clinic_auth_app::ops::DB_POOL_MAX,
    clinic_auth_app::hashing::QUEUE_DEPTH,
    clinic_auth_app::hashing::QUEUE_WAIT_SECONDS,
    clinic_auth_store::AUDIT_APPEND_SECONDS,
    REQUEST_SECONDS,
    BUILD_INFO,
];

#[cfg(test)]
mod tests {
    use super::NAMES;

    /// The metric names a text mentions (a histogram's `_bucket`, `_sum` and `_count`
    /// series under their histogram's name).
    fn mentioned(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (i, _) in text.match_indices("clinic_auth_") {
            let name: String =
                text[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|base| NAMES.contains(base)))
                .map(str::to_owned)
                .unwrap_or(name);
            // The crates' names (in log filters) are not metrics.
            let crates =
                ["clinic_auth_web", "clinic_auth_app", "clinic_auth_core", "clinic_auth_store", "clinic_auth_notify"];
            if !crates.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
    }

    #[test]
    fn the_dashboard_the_alerts_and_the_readme_name_only_exported_metrics() {
        for (file, text) in [
            ("docs/grafana-dashboard.json", include_str!("../../../../docs/grafana-dashboard.json")),
            ("docs/alerts.yml", include_str!("../../../../docs/alerts.yml")),
            ("README.md", include_str!("../../../../README.md")),
        ] {
            let names = mentioned(text);
            assert!(!names.is_empty(), "{file} names metrics");
            for name in names {
                assert!(NAMES.contains(&name.as_str()), "{file} names {name}, which clinic-auth does not export");
            }
        }
        // The three alerts are about delivery, lockouts and hashing.
        let alerts = mentioned(include_str!("../../../../docs/alerts.yml"));
        for needed in
            ["clinic_auth_codes_sent_total", "clinic_auth_lockouts_total", "clinic_auth_password_hash_queue_depth"]
        {
            assert!(alerts.iter().any(|n| n == needed), "alerts.yml uses {needed}");
        }
    }
}

//! What the operator's tools ask of the application: whether this instance is ready
//! for traffic (`/readyz`), the gauges read when Prometheus scrapes, and the counts of
//! codes handed to the email and text providers.

use clinic_auth_core::FactorKind;
use clinic_auth_notify::{Delivered, DeliveryError};

use crate::App;

/// Codes handed to a provider, by `channel` (`email`, `sms`) and `outcome`
/// (`delivered`, `failed`: the provider could not be reached, `rejected`: it refused).
pub const CODES_SENT: &str = "clinic_auth_codes_sent_total";
/// Sessions neither idle past the timeout nor past their absolute lifetime (a gauge).
pub const SESSIONS_ACTIVE: &str = "clinic_auth_sessions_active";
/// The database pool's connections, by `state`: `in_use` or `idle` (a gauge).
pub const DB_POOL_CONNECTIONS: &str = "clinic_auth_db_pool_connections";
/// The most connections the pool opens (a gauge).
pub const DB_POOL_MAX: &str = "clinic_auth_db_pool_max_connections";

pub(crate) fn count_code_delivery(channel: FactorKind, delivered: &Result<Delivered, DeliveryError>) {
    let outcome = match delivered {
        Ok(_) => "delivered",
        Err(DeliveryError::Temporary(_)) => "failed",
        Err(DeliveryError::Rejected(_)) => "rejected",
    };
    let channel = if channel == FactorKind::Sms { "sms" } else { "email" };
    metrics::counter!(CODES_SENT, "channel" => channel, "outcome" => outcome).increment(1);
}

/// Sets the gauges that are read from the database when Prometheus scrapes: live
/// sessions and the connection pool. A failed read leaves a gauge as it was.
pub async fn refresh_gauges(state: &App) {
    let now = state.now();
    let idle_cutoff = now.plus_secs(-state.config.session.idle_secs);
    let absolute_cutoff = now.plus_secs(-state.config.session.absolute_secs);
    match state.store.count_live_sessions(idle_cutoff, absolute_cutoff).await {
        Ok(n) => metrics::gauge!(SESSIONS_ACTIVE).set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: counting sessions failed"),
    }
    if let Ok(pool) = state.store.pool_usage().await {
        let in_use = pool.open.saturating_sub(pool.idle);
        metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
        metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!(DB_POOL_MAX).set(f64::from(pool.max));
    }
}

/// One readiness check: its name and, when it failed, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub problem: Option<String>,
}

/// Whether this instance can serve sign-ins: the database answers, every migration of
/// this build is applied, and the keyring opens what the database sealed.
pub async fn readiness(state: &App) -> Vec<Check> {
    let mut checks = Vec::new();
    let database = state.store.ping().await.err().map(|e| {
        tracing::warn!(error = %e, "readiness: database unreachable");
        "the database does not answer".to_owned()
    });
    let reachable = database.is_none();
    checks.push(Check { name: "database", problem: database });
    let migrations = if !reachable {
        Some("not checked: the database does not answer".to_owned())
    } else {
        match state.store.pending_migrations().await {
            Ok(p) if p.is_empty() => None,
            Ok(p) => Some(format!(
                "{} migration(s) not applied ({}): run `clinic-auth migrate`",
                p.len(),
                p.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            )),
            Err(e) => Some(format!("could not read the applied migrations: {e}")),
        }
    };
    checks.push(Check { name: "migrations", problem: migrations });
    let keyring = if !reachable {
        Some("not checked: the database does not answer".to_owned())
    } else {
        match crate::oidc::keys::keyring_opens_a_sealed_key(state).await {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "readiness: keyring");
                Some("the encryption keyring cannot open the secrets sealed in the database".to_owned())
            }
        }
    };
    checks.push(Check { name: "keyring", problem: keyring });
    checks
}

//! The clinic-auth HTTP application: HTML pages and the JSON API over one set of
//! services. Handlers extract, call a service, and render; the rules live in
//! `clinic-auth-core`, the state in `clinic-auth-store`.

mod admin_pages;
mod api;
mod config;
mod crypto;
mod error;
mod hashing;
mod http;
mod mfa_pages;
mod pages;
mod passkey_pages;
pub mod service;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use clinic_auth_core::{Clock, UnixTime};
use clinic_auth_store::Store;

pub use api::openapi_json;
pub use config::{CookieSecurity, WebConfig, default_public_url};
pub use crypto::{KeyringError, Sealer};
pub use error::AppError;
pub use hashing::PasswordHasher;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: WebConfig,
    pub hasher: PasswordHasher,
    pub sealer: Sealer,
    pub senders: Senders,
    /// The passkey relying party; `None` when the configuration cannot have one (an
    /// IP address or plain HTTP other than localhost), and passkeys are not offered.
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Whether a request carried `X-Forwarded-For` that `trust_forwarded_for` ignores.
    pub(crate) forwarded_for_seen: http::client::ForwardedForSeen,
}

/// Where emailed and texted codes go.
#[derive(Debug, Clone)]
pub struct Senders {
    pub email: Arc<dyn clinic_auth_notify::EmailSender>,
    pub sms: Arc<dyn clinic_auth_notify::SmsSender>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: WebConfig,
        sealer: Sealer,
        senders: Senders,
    ) -> AppState {
        let hasher = PasswordHasher::new(config.hashing_concurrency);
        let webauthn = match service::passkeys::relying_party(&config) {
            Ok(w) => Some(w),
            Err(why) => {
                // `serve` says so once at start-up (start_up_note); admin commands
                // need no passkeys and stay quiet.
                tracing::debug!("passkeys are off: {why}");
                None
            }
        };
        let forwarded_for_seen = Default::default();
        AppState(Arc::new(Inner { store, clock, config, hasher, sealer, senders, webauthn, forwarded_for_seen }))
    }

    /// Things an operator should fix, for `/healthz`: none on a well-set-up server.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.forwarded_for_seen.seen() {
            warnings.push(http::client::UNTRUSTED_FORWARDED_FOR);
        }
        warnings
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }
}

/// The whole application: pages, API, health and static assets, with the security
/// layers around them.
pub fn router(state: AppState) -> Router {
    http::layers(
        pages::routes()
            .merge(mfa_pages::routes())
            .merge(passkey_pages::routes())
            .merge(admin_pages::routes())
            .merge(api::routes()),
        state,
    )
}

/// What `serve` tells whoever started it: one sentence on where to open a browser and
/// whether passkeys ("Trust this device") work there, and why not when they are off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartUpNote {
    pub open: String,
    pub passkeys_off: Option<String>,
}

pub fn start_up_note(config: &WebConfig) -> StartUpNote {
    let url = &config.public_url;
    match service::passkeys::relying_party(config) {
        Ok(_) => {
            let place = match &config.passkey_origin {
                Some(o) if o.origin() != url.origin() => format!("on {}", o.origin().ascii_serialization()),
                _ => "there".to_owned(),
            };
            StartUpNote {
                open: format!("Open {url} in a browser; passkeys (\"Trust this device\") work {place}."),
                passkeys_off: None,
            }
        }
        Err(why) => StartUpNote {
            open: format!("Open {url} in a browser; passkeys (\"Trust this device\") are off: {why}."),
            passkeys_off: Some(why),
        },
    }
}

/// Serves the application until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let purge = tokio::spawn(purge_loop(state.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    purge.abort();
    result
}

/// Expired flows, idle sessions and stale links are deleted every few minutes.
async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        tick.tick().await;
        let now = state.now();
        let idle_cutoff = now.plus_secs(-state.config.session.idle_secs);
        if let Err(e) = state.store.purge_expired(now, idle_cutoff).await {
            tracing::warn!(error = %e, "purging expired state failed");
        }
    }
}

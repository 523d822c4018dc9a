//! The clinic-auth HTTP doors: HTML pages and the JSON API over the one application
//! layer (`clinic-auth-app`). Handlers extract, call one use case, and render; the
//! rules live in `clinic-auth-core`, the state in `clinic-auth-store`.

mod api;
mod error;
mod error_page;
mod html;
mod http;
mod oidc;
mod ops;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use clinic_auth_app::{App, passkeys};

pub use api::openapi_json;
pub use clinic_auth_app::{CookieSecurity, WebConfig, default_public_url};
pub use error::{AppError, error_code};
pub use ops::{metrics_router, serve_metrics};

/// What every handler can reach: the application, and what the HTTP layers noticed.
#[derive(Debug, Clone)]
pub struct AppState {
    pub app: App,
    /// Whether a request carried `X-Forwarded-For` that `trust_forwarded_for` ignores.
    pub(crate) forwarded_for_seen: Arc<http::client::ForwardedForSeen>,
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl AppState {
    pub fn new(app: App) -> AppState {
        AppState { app, forwarded_for_seen: Default::default() }
    }

    /// Things an operator should fix, for `/healthz`: none on a well-set-up server.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.forwarded_for_seen.seen() {
            warnings.push(http::client::UNTRUSTED_FORWARDED_FOR);
        }
        warnings
    }
}

/// The whole application: pages, API, health and static assets, with the security
/// layers around them.
pub fn router(state: AppState) -> Router {
    http::layers(pages::routes().merge(api::routes()).merge(oidc::routes()).merge(ops::routes()), state)
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
    match passkeys::relying_party(config) {
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

/// How long requests in flight may take to finish once shutdown begins; then the
/// server stops anyway.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves the application until `shutdown` resolves: from then on no connection is
/// accepted, requests in flight finish, and after `SHUTDOWN_GRACE` the server stops
/// whatever is left.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    http::metrics::handle();
    let purge = tokio::spawn(purge_loop(state.clone()));
    let logouts = tokio::spawn(logout_loop(state.clone()));
    let refusals = tokio::spawn(locked_refusals_loop(state.clone()));
    let flush_state = state.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (began, shutting_down) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = began.send(());
    };
    let deadline = async move {
        match shutting_down.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = axum::serve(listener, app).with_graceful_shutdown(signal) => r,
        () = deadline => {
            tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "requests still in flight after the grace period; stopping");
            Ok(())
        }
    };
    purge.abort();
    logouts.abort();
    refusals.abort();
    // Refusals counted while locked reach the trail before the process ends.
    flush_state.flush_locked_refusals(true).await;
    result
}

/// Lock periods that are over are written to the audit trail, one event each.
async fn locked_refusals_loop(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        tick.tick().await;
        state.flush_locked_refusals(false).await;
    }
}

/// Back-channel logouts waiting for a retry (or queued by another instance) are sent
/// every few seconds.
async fn logout_loop(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(e) = clinic_auth_app::oidc::logout::deliver_due(&state).await {
            tracing::warn!(error = %e, "delivering back-channel logouts failed");
        }
    }
}

/// Expired flows, idle sessions and stale links are deleted every few minutes.
async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    // The first tick is at once; the first purge waits a full period.
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = state.purge_expired().await {
            tracing::warn!(error = %e, "purging expired state failed");
        }
    }
}

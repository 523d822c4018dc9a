//! The signed-in account's sessions ("My sessions"), `/api/v1/me/sessions…`: list
//! them, sign out one of the others, or all the others. Sessions are named by their
//! public id (`sid`), never by a token. No second factor is asked: ending one's other
//! sessions only takes access away (see `clinic_auth_app::sessions`).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clinic_auth_app::sessions;
use serde::Serialize;
use utoipa::ToSchema;

use super::Caller;
use crate::error::ErrorBody;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/sessions", get(my_sessions))
        .route("/api/v1/me/sessions/revoke-others", post(my_sessions_revoke_others))
        .route("/api/v1/me/sessions/{sid}", delete(my_session_end))
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Live sessions, newest first.
    sessions: Vec<SessionView>,
}

/// One of the account's live sessions: never its token.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The session's public id (the `sid` claim apps see).
    sid: String,
    /// A short name from the User-Agent ("Chrome on Windows"), or "Unknown device".
    device: String,
    /// The address it was signed in from, as the server saw it.
    client_ip: String,
    /// The User-Agent it was signed in with.
    user_agent: String,
    /// When it was signed in (Unix seconds).
    created_at: i64,
    /// When it was last used (Unix seconds).
    last_seen_at: i64,
    /// It is the session of this request's bearer token.
    current: bool,
}

impl From<sessions::SessionView> for SessionView {
    fn from(v: sessions::SessionView) -> Self {
        let sessions::SessionView { sid, device, client, created_at, last_seen_at, current } = v;
        SessionView {
            sid,
            device,
            client_ip: client.ip,
            user_agent: client.user_agent,
            created_at: created_at.0,
            last_seen_at: last_seen_at.0,
            current,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OthersEnded {
    /// How many other live sessions were signed out.
    ended_sessions: u64,
}

/// The account's live sessions, newest first; `current` marks the caller's.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = SessionList)))]
async fn my_sessions(c: Caller) -> Result<Json<SessionList>, AppError> {
    let list = sessions::list_mine(&c.state, &c.session).await?;
    Ok(Json(SessionList { sessions: list.into_iter().map(SessionView::from).collect() }))
}

/// Sign out one of the account's other sessions; the apps it signed into are told.
/// The caller's own session ends with `POST /api/v1/logout` instead.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{sid}", tag = "sessions",
    params(("sid" = String, Path, description = "The session's public id")), security(("bearer" = [])),
    responses((status = 204, description = "Signed out"),
        (status = 404, description = "`not_found`: not one of your sessions", body = ErrorBody),
        (status = 409, description = "`current_session`: the caller's own session; use `/api/v1/logout`", body = ErrorBody)))]
async fn my_session_end(c: Caller, Path(sid): Path<String>) -> Result<StatusCode, AppError> {
    sessions::end_other(&c.state, &c.session, &sid, &c.client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out every session of the account but the caller's; the apps they signed
/// into are told. The caller's session, and the apps it signed into, stay.
#[utoipa::path(post, path = "/api/v1/me/sessions/revoke-others", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = OthersEnded)))]
async fn my_sessions_revoke_others(c: Caller) -> Result<Json<OthersEnded>, AppError> {
    let n = sessions::end_all_others(&c.state, &c.session, &c.client).await?;
    Ok(Json(OthersEnded { ended_sessions: n }))
}

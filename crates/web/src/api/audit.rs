//! The audit trail: an organization's (`/api/v1/orgs/{org_id}/audit`) and everyone's
//! (`/api/v1/audit`), as JSON pages or a CSV export, and the hash-chain check.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clinic_auth_app::admin::{self, AuditQuery};
use clinic_auth_app::{Error, ErrorKind};
use clinic_auth_store::AuditEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use crate::error::ErrorBody;
use crate::http::extract::ApiQuery;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org_id}/audit", get(org_audit))
        .route("/api/v1/audit", get(all_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
}

#[derive(Deserialize, IntoParams)]
pub struct AuditParams {
    /// Events where this member (id or email) acted or was acted on.
    #[serde(default)]
    member: Option<String>,
    /// Event type, e.g. `sign_in`, `bypass_granted`, `mfa_reset`.
    #[serde(default)]
    kind: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    to: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
    /// At most this many events (default 200, at most 1000); ignored for CSV, which
    /// holds every matching event.
    #[serde(default)]
    limit: Option<i64>,
    /// Only events older than this id. The `Link: <…>; rel="next"` header of a page
    /// gives the next page's address.
    #[serde(default)]
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    id: i64,
    /// Unix seconds
    at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    kind: String,
    /// `success` or `failure`
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_id: Option<String>,
    /// Who acted, as this reader may see them: an email address, or in a clinic's
    /// trail `Platform support` for a platform admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_id: Option<String>,
    /// Whom the event is about, shown the same way as `actor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    client_ip: String,
    user_agent: String,
    /// Non-secret details, e.g. `{"reason": "wrong_password"}`.
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    /// Place in the organization's hash chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
}

impl AuditEventView {
    fn new(e: AuditEvent, names: &std::collections::HashMap<String, String>) -> Self {
        let name = |id: &Option<String>| id.as_ref().and_then(|i| names.get(i)).cloned();
        AuditEventView {
            actor: name(&e.actor_id),
            subject: name(&e.subject_id),
            id: e.id,
            at: e.at.0,
            org_id: e.org_id,
            kind: e.kind,
            outcome: e.outcome,
            actor_id: e.actor_id,
            subject_id: e.subject_id,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            seq: e.seq,
            hash: e.hash,
        }
    }
}

async fn audit(c: &Caller, org: Option<&str>, p: AuditParams) -> Result<Response, AppError> {
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::new(ErrorKind::InvalidFormat, "Use format=json or format=csv.").into()),
    };
    let q = AuditQuery { member: p.member, kind: p.kind, from: p.from, to: p.to, limit: p.limit, before: p.before };
    if csv {
        let max = c.state.config.audit_export_max_events;
        let events = admin::audit_export(&c.state, &c.by(), org, &q, Some(max)).await?;
        let names = admin::names(&c.state, &c.session.actor(), &events).await?;
        let file = format!("attachment; filename=\"audit-{}.csv\"", org.unwrap_or("all"));
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, file)],
            admin::csv(&events, &names),
        )
            .into_response());
    }
    let page = admin::audit_events(&c.state, &c.by(), org, &q).await?;
    let names = admin::names(&c.state, &c.session.actor(), &page.events).await?;
    let mut res =
        Json(page.events.into_iter().map(|e| AuditEventView::new(e, &names)).collect::<Vec<_>>()).into_response();
    if let Some(older) = page.older {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("member", &q.member), ("kind", &q.kind), ("from", &q.from), ("to", &q.to)] {
            if let Some(v) = v {
                next.append_pair(k, v);
            }
        }
        if let Some(l) = q.limit {
            next.append_pair("limit", &l.to_string());
        }
        next.append_pair("before", &older.to_string());
        let path = match org {
            Some(o) => format!("/api/v1/orgs/{o}/audit"),
            None => "/api/v1/audit".to_owned(),
        };
        if let Ok(v) = header::HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", next.finish())) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}

/// An organization's audit events, newest first; `format=csv` exports them (oldest first).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit", tag = "admin", security(("bearer" = [])),
    params(("org_id" = String, Path), AuditParams),
    responses((status = 200, description = "JSON, or text/csv with format=csv",
            content(([AuditEventView] = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`invalid_date`, `invalid_format`", body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn org_audit(
    c: Caller,
    Path(org_id): Path<String>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, AppError> {
    audit(&c, Some(&org_id), p).await
}

/// Every organization's audit events (platform admins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "platform", security(("bearer" = [])),
    params(AuditParams),
    responses((status = 200, description = "JSON, or text/csv with format=csv",
            content(([AuditEventView] = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`invalid_date`, `invalid_format`", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn all_audit(c: Caller, ApiQuery(p): ApiQuery<AuditParams>) -> Result<Response, AppError> {
    audit(&c, None, p).await
}

#[derive(Serialize, ToSchema)]
pub struct VerifyView {
    /// True when no chain was edited, shortened or reordered.
    intact: bool,
    chains: usize,
    events: i64,
    /// The first break of each broken chain.
    breaks: Vec<String>,
}

/// Check every audit hash chain (platform admins).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "platform", security(("bearer" = [])),
    responses((status = 200, body = VerifyView), (status = 403, body = ErrorBody)))]
async fn verify_audit(c: Caller) -> Result<Json<VerifyView>, AppError> {
    let r = admin::verify_audit(&c.state, &c.by()).await?;
    Ok(Json(VerifyView {
        intact: r.breaks.is_empty(),
        chains: r.chains,
        events: r.events,
        breaks: r.breaks.iter().map(ToString::to_string).collect(),
    }))
}

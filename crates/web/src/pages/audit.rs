//! The audit log, for a clinic's admins (their clinic) and platform support (every
//! organization): filtered pages of events, and the CSV export.

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clinic_auth_app::admin::{self, AuditQuery};
use clinic_auth_app::time;
use clinic_auth_core::OrgId;
use clinic_auth_core::audit::words;
use serde::Deserialize;

use super::Visit;
use super::admin::{by, scope};
use super::frame;
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::PageSignedIn;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit_page)).route("/admin/audit.csv", get(audit_csv))
}

struct EventRow {
    time: String,
    org: String,
    kind: String,
    outcome: String,
    actor: String,
    subject: String,
    client: String,
    user_agent: String,
    /// Labelled parts, one per line.
    detail: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    member: String,
    /// The filter's choices: (code, words, selected).
    kinds: Vec<(&'static str, &'static str, bool)>,
    from: String,
    to: String,
    query: String,
    events: Vec<EventRow>,
    /// The address of the next, older page; `None` on the last.
    older: Option<String>,
    /// This page continues an earlier one.
    paged: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditForm {
    member: String,
    kind: String,
    from: String,
    to: String,
    /// Only events older than this id (the "Older events" link).
    before: Option<i64>,
}

impl AuditForm {
    fn query(&self) -> AuditQuery {
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
        AuditQuery {
            member: some(&self.member),
            kind: some(&self.kind),
            from: some(&self.from),
            to: some(&self.to),
            limit: None,
            before: self.before,
        }
    }

    fn encoded(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("member", &self.member)
            .append_pair("kind", &self.kind)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .finish()
    }
}

async fn audit_page(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(f): Query<AuditForm>,
) -> Result<Response, PageError> {
    let org = scope(&s)?;
    let (events, older, error) =
        match admin::audit_events(&state, &by(&s, client), org.as_ref().map(OrgId::as_str), &f.query()).await {
            Ok(page) => (page.events, page.older, None),
            Err(e) if e.status().is_client_error() => (Vec::new(), None, Some(e)),
            Err(e) => return Err(e.into()),
        };
    let names = admin::names(&state, &s.actor(), &events).await?;
    let name = |id: &Option<String>| {
        id.as_ref().map(|i| names.get(i).cloned().unwrap_or_else(|| i.clone())).unwrap_or_default()
    };
    let rows = events
        .iter()
        .map(|e| EventRow {
            time: time::date_time(e.at),
            org: e.org_id.clone().unwrap_or_else(|| "(platform)".to_owned()),
            kind: words::kind_label(&e.kind, &e.outcome),
            outcome: if e.outcome == "failure" { "Refused" } else { "Done" }.to_owned(),
            actor: name(&e.actor_id),
            subject: name(&e.subject_id),
            client: e.client_ip.clone(),
            user_agent: e.user_agent.clone(),
            detail: words::detail_parts(&e.detail),
        })
        .collect();
    let error = error.map(AppError::from);
    let look = clinic_auth_app::branding::look_for_account(&state, &s.account, None).await;
    let page = AuditPage {
        frame: frame(&state, "Audit log").error(error).brand(look),
        platform: org.is_none(),
        query: f.encoded(),
        older: older.map(|id| format!("/admin/audit?{}&before={id}", f.encoded())),
        paged: f.before.is_some(),
        member: f.member,
        kinds: words::KINDS.iter().map(|(code, label, _)| (*code, *label, *code == f.kind)).collect(),
        from: f.from,
        to: f.to,
        events: rows,
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn audit_csv(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(f): Query<AuditForm>,
) -> Result<Response, PageError> {
    let org = scope(&s)?;
    let mut q = f.query();
    q.before = None;
    let max = Some(state.config.audit_export_max_events);
    let events = admin::audit_export(&state, &by(&s, client), org.as_ref().map(OrgId::as_str), &q, max).await?;
    let names = admin::names(&state, &s.actor(), &events).await?;
    let file = format!("attachment; filename=\"audit-{}.csv\"", org.as_ref().map(OrgId::as_str).unwrap_or("all"));
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, file)],
        admin::csv(&events, &names),
    )
        .into_response())
}

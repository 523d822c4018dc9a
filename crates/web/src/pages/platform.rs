//! The platform console, for platform support: every organization (turning MFA on
//! for one), and finding an account by email. An account's page is in `member`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clinic_auth_app::{admin, policy};
use serde::Deserialize;

use super::admin::{by, mode_label, notice_text};
use super::{CsrfForm, NoticeQuery, Visit, frame};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::{PageSignedIn, SignedIn};
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/platform", get(platform_page))
        .route("/platform/orgs/{org}/enable-mfa", post(enable_mfa_submit))
        .route("/platform/lookup", get(lookup))
}

/// Refuses everyone but platform support.
pub(super) fn support_only(s: &SignedIn) -> Result<(), PageError> {
    if s.actor().is_platform_support() { Ok(()) } else { Err(PageError(AppError::forbidden())) }
}

struct OrgRow {
    id: String,
    name: String,
    kind: &'static str,
    mfa: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "platform.html")]
struct PlatformPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    csrf: String,
    orgs: Vec<OrgRow>,
}

async fn platform_form(
    state: &AppState,
    s: &SignedIn,
    notice: Option<&str>,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    support_only(s)?;
    let orgs = admin::list_orgs(state, &clinic_auth_app::By::signed_in(s, Default::default()))
        .await?
        .into_iter()
        .map(|o| OrgRow {
            id: o.id.to_string(),
            name: o.name,
            kind: o.kind.as_str(),
            mfa: if o.mfa.enabled { format!("Enabled: {}", mode_label(o.mfa.mode)) } else { "Not enabled".to_owned() },
            enabled: o.mfa.enabled,
        })
        .collect();
    let page = PlatformPage {
        frame: frame(state, "Platform console").notice(notice).error(error),
        platform: true,
        csrf: s.csrf_token.clone(),
        orgs,
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn platform_page(
    Visit { state, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    platform_form(&state, &s, notice_text(q.notice.as_deref()), None).await
}

async fn enable_mfa_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Path(org): Path<String>,
    PageForm(f): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    support_only(&s)?;
    let change = policy::OrgMfaChange { enabled: Some(true), mode: None, methods: None, grace_days: None };
    policy::set_org_mfa(&state, &by(&s, client), &org, change).await?;
    Ok(Redirect::to("/platform?notice=mfa_enabled").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LookupQuery {
    email: String,
}

async fn lookup(
    Visit { state, client, session: PageSignedIn(s), .. }: Visit,
    Query(q): Query<LookupQuery>,
) -> Result<Response, PageError> {
    support_only(&s)?;
    match admin::member_status(&state, &by(&s, client), None, &q.email).await {
        Ok(m) => Ok(Redirect::to(&format!("/platform/accounts/{}", m.account.id)).into_response()),
        Err(e) if e.status().is_client_error() => platform_form(&state, &s, None, Some(e.into())).await,
        Err(e) => Err(e.into()),
    }
}

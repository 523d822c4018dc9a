//! The account page, with its list of sessions ("My sessions": sign out one other
//! session, or all of them), and its 2FA actions that need only a confirmation:
//! turning 2FA off and getting a new recovery code (both behind a fresh second
//! factor).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use clinic_auth_app::time::date_time;
use clinic_auth_app::{factors, sessions};
use clinic_auth_core::{AccountKind, FactorKind, Requirement, UnixTime};

use super::step_up::{step_up_first, verified_post};
use super::views::{Shown, recovery_code_page};
use super::{CsrfForm, NoticeQuery, Visit, frame, notice_text};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render, render_with};
use crate::http::auth::{MaybeSignedIn, PageSignedIn, SignedIn};
use crate::http::cookies;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

/// The account page, and each confirmation page at its address; each of their
/// handlers gets its confirmation first.
pub(super) fn routes() -> Router<AppState> {
    let confirms = CONFIRMS.into_iter().fold(Router::new(), |router, c| {
        router.route(c.action, get(move |v| confirm_page(c, v)).post(move |v, f| confirm_submit(c, v, f)))
    });
    confirms
        .route("/account", get(account_page))
        .route("/account/sessions/{sid}/sign-out", post(sign_out_session))
        .route("/account/sessions/sign-out-others", post(sign_out_other_sessions))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    frame: Frame<'a>,
    email: String,
    kind_label: &'a str,
    org_name: Option<String>,
    role: Option<&'a str>,
    csrf: String,
    factors: Vec<(&'static str, String, Option<String>)>,
    has_recovery_code: bool,
    may_opt_in: bool,
    may_turn_off: bool,
    required: bool,
    passkeys: Vec<PasskeyRow>,
    may_trust_device: bool,
    this_device_trusted: bool,
    /// "Clinic Settings" for owners and admins, "Platform console" for support.
    admin_link: Option<(&'static str, &'static str)>,
    /// The account's live sessions, newest first.
    sessions: Vec<SessionRow>,
    /// A change of email waiting for its link: the new address and when the link expires.
    pending_email: Option<(String, String)>,
}

struct SessionRow {
    sid: String,
    device: String,
    ip: String,
    signed_in: String,
    last_active: String,
    this_device: bool,
}

struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: Option<String>,
    synced: bool,
    this_device: bool,
}

async fn account_page(
    State(state): State<AppState>,
    jar: CookieJar,
    MaybeSignedIn(s): MaybeSignedIn,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let Some(s) = s else {
        return Ok(Redirect::to("/login").into_response());
    };
    let a = &s.account;
    let mfa = factors::load(&state, a).await?;
    let hints = cookies::device_hints(&state, &jar);
    let passkeys: Vec<PasskeyRow> = clinic_auth_app::passkeys::views(&mfa.factors, &hints)
        .into_iter()
        .map(|v| PasskeyRow {
            id: v.id,
            name: v.name,
            created: date_time(UnixTime(v.created_at)),
            last_used: v.last_used_at.map(|t| date_time(UnixTime(t))),
            synced: v.synced,
            this_device: v.this_device,
        })
        .collect();
    let this_device_trusted = passkeys.iter().any(|p| p.this_device);
    let sessions = sessions::list_mine(&state, &s)
        .await?
        .into_iter()
        .map(|v| SessionRow {
            sid: v.sid,
            device: v.device,
            ip: v.client.ip,
            signed_in: date_time(v.created_at),
            last_active: date_time(v.last_seen_at),
            this_device: v.current,
        })
        .collect();
    let factors = mfa
        .factors
        .iter()
        .filter(|f| f.kind != FactorKind::Passkey)
        .map(|f| (factors::method_label(f.kind), date_time(f.created_at), f.last_used_at.map(date_time)))
        .collect();
    let required = matches!(mfa.requirement(a), Requirement::Enroll { .. });
    let org_name = mfa.org.as_ref().map(|o| o.name.clone());
    let kind_label = match a.kind {
        AccountKind::PlatformAdmin => "Platform admin",
        AccountKind::Member => "Clinic staff",
        AccountKind::Patient => "Patient portal",
    };
    let look = clinic_auth_app::branding::look_for_account(&state, a, None).await;
    let page = AccountPage {
        frame: frame(&state, "Your account").notice(notice_text(q.notice.as_deref())).brand(look),
        email: a.email.to_string(),
        kind_label,
        org_name,
        role: a.role.map(|r| r.as_str()),
        csrf: s.csrf_token.clone(),
        factors,
        has_recovery_code: mfa.has_recovery_code,
        may_opt_in: mfa.may_opt_in(a),
        may_turn_off: mfa.may_turn_off(a),
        required,
        may_trust_device: state.webauthn.is_some() && mfa.may_trust_device(a),
        passkeys,
        this_device_trusted,
        admin_link: match (a.kind, a.role) {
            (AccountKind::PlatformAdmin, _) => Some(("/platform", "Platform console")),
            (AccountKind::Member, Some(r)) if r.manages_members() => Some(("/admin", "Clinic Settings")),
            _ => None,
        },
        sessions,
        pending_email: clinic_auth_app::email_change::pending(&state, a)
            .await?
            .map(|p| (p.new_email.to_string(), date_time(p.expires_at))),
    };
    Ok(render(&page))
}

// ----- My sessions -----

/// "Sign out" on one of the other sessions in the list. No second factor is asked:
/// it only takes access away (see `clinic_auth_app::sessions`).
async fn sign_out_session(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    Path(sid): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    sessions::end_other(&state, &s, &sid, &client.0).await?;
    Ok(Redirect::to("/account?notice=session_signed_out").into_response())
}

/// "Sign out of all other sessions": this one stays.
async fn sign_out_other_sessions(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &form.csrf)?;
    sessions::end_all_others(&state, &s, &client.0).await?;
    Ok(Redirect::to("/account?notice=other_sessions_ended").into_response())
}

// ----- 2FA actions behind a confirmation -----

#[derive(Template)]
#[template(path = "confirm_action.html")]
pub(super) struct ConfirmPage<'a> {
    pub(super) frame: Frame<'a>,
    pub(super) heading: &'a str,
    pub(super) message: &'a str,
    pub(super) action: &'a str,
    pub(super) button: &'a str,
    pub(super) csrf: String,
}

/// What a confirmed action does.
#[derive(Clone, Copy)]
enum Act {
    TurnOff,
    NewRecoveryCode,
}

/// One "Are you sure?" page: its words, its address, and what confirming does; `next`
/// is where its step-up comes back to.
#[derive(Clone, Copy)]
struct Confirm {
    act: Act,
    heading: &'static str,
    message: &'static str,
    action: &'static str,
    button: &'static str,
    next: &'static str,
}

const CONFIRMS: [Confirm; 2] = [
    Confirm {
        act: Act::TurnOff,
        heading: "Turn off two-factor authentication?",
        message: "Signing in will need only your password. You can turn two-factor authentication on again at any \
                  time.",
        action: "/account/2fa/off",
        button: "Turn off 2FA",
        next: "off",
    },
    Confirm {
        act: Act::NewRecoveryCode,
        heading: "Get a new recovery code?",
        message: "Your current recovery code will stop working, and a new one will be shown once.",
        action: "/account/2fa/recovery-code",
        button: "Get a new recovery code",
        next: "recovery-code",
    },
];

fn confirm_form(state: &AppState, s: &SignedIn, c: Confirm, error: Option<AppError>) -> Response {
    let page = ConfirmPage {
        frame: frame(state, c.heading).error(error),
        heading: c.heading,
        message: c.message,
        action: c.action,
        button: c.button,
        csrf: s.csrf_token.clone(),
    };
    render_with(page.frame.status(), &page)
}

/// The confirmation page, once a second factor was proved lately.
async fn confirm_page(c: Confirm, Visit { state, session: PageSignedIn(s), .. }: Visit) -> Result<Response, PageError> {
    if let Some(first) = step_up_first(&state, &s, c.next).await? {
        return Ok(first);
    }
    Ok(confirm_form(&state, &s, c, None))
}

async fn confirm_submit(
    c: Confirm,
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    if let Some(first) = verified_post(&state, &jar, &s, &form.csrf, c.next).await? {
        return Ok(first);
    }
    match c.act {
        Act::TurnOff => match factors::turn_off(&state, &s.account, &s.token_hash, &client.0).await {
            Ok(()) => Ok(Redirect::to("/account?notice=mfa_off").into_response()),
            Err(e) if e.status().is_client_error() => Ok(confirm_form(&state, &s, c, Some(e.into()))),
            Err(e) => Err(e.into()),
        },
        Act::NewRecoveryCode => {
            let code = factors::new_recovery_code(&state, &s.account, &client.0).await?;
            let look = clinic_auth_app::branding::look_for_account(&state, &s.account, None).await;
            Ok(recovery_code_page(&state, &code, "/account", Shown::Replacement, look))
        }
    }
}

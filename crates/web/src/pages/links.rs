//! The pages behind emailed and printed links that set a password: creating the first
//! platform admin (`/setup/…`), accepting an invitation (`/invite/…`) and resetting a
//! password (`/reset/…`). One set of handlers serves the three kinds of link.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use clinic_auth_app::{ErrorKind, accounts};
use clinic_auth_core::Password;
use clinic_auth_store::LinkPurpose;
use serde::Deserialize;

use super::{frame, pages_for};
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::client::Client;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

/// One kind of link: what it is for, where it lives (`/{prefix}/{token}`) and what
/// its page says.
#[derive(Clone, Copy)]
struct Link {
    purpose: LinkPurpose,
    prefix: &'static str,
    heading: &'static str,
    intro: &'static str,
    button: &'static str,
}

const LINKS: [Link; 3] = [
    Link {
        purpose: LinkPurpose::Setup,
        prefix: "setup",
        heading: "Create the first platform admin",
        intro: "This server has no administrator yet. Create the platform admin account that sets up clinics and \
                their staff.",
        button: "Create account",
    },
    Link {
        purpose: LinkPurpose::Invitation,
        prefix: "invite",
        heading: "Set your password",
        intro: "You have been invited. Choose a password to finish setting up your account.",
        button: "Set password",
    },
    Link {
        purpose: LinkPurpose::PasswordReset,
        prefix: "reset",
        heading: "Choose a new password",
        intro: "Choose a new password for your account. Signing in elsewhere will end.",
        button: "Set password",
    },
];

/// Every kind of link at its own address; each handler gets the kind first.
pub(super) fn routes() -> Router<AppState> {
    LINKS.into_iter().fold(Router::new(), |router, l| {
        router.route(
            &format!("/{}/{{token}}", l.prefix),
            get(move |s, jar, t| link_page(l, s, jar, t)).post(move |s, jar, c, t, f| link_submit(l, s, jar, c, t, f)),
        )
    })
}

#[derive(Template)]
#[template(path = "set_password.html")]
struct SetPasswordPage<'a> {
    frame: Frame<'a>,
    heading: &'a str,
    intro: &'a str,
    button: &'a str,
    action: String,
    ask_email: bool,
    email: String,
    org_name: Option<String>,
    min_length: usize,
    csrf: String,
}

/// The link's form; shown again with the email typed (first admin) and an error.
async fn link_form(
    state: &AppState,
    jar: CookieJar,
    l: Link,
    token: &str,
    again: Option<(String, AppError)>,
) -> Result<Response, PageError> {
    let opened = accounts::open_link(state, token, l.purpose).await?;
    let (jar, csrf) = csrf::form_token(state, jar, None);
    let (entered_email, error) = match again {
        Some((email, error)) => (Some(email).filter(|e| !e.is_empty()), Some(error)),
        None => (None, None),
    };
    let page = SetPasswordPage {
        frame: frame(state, l.heading).error(error),
        heading: l.heading,
        intro: l.intro,
        button: l.button,
        action: format!("/{}/{token}", l.prefix),
        ask_email: l.purpose == LinkPurpose::Setup,
        email: entered_email.or_else(|| opened.account.as_ref().map(|a| a.email.to_string())).unwrap_or_default(),
        org_name: opened.org.map(|o| o.name),
        min_length: state.config.password_policy.min_length,
        csrf,
    };
    Ok((jar, render_with(page.frame.status(), &page)).into_response())
}

async fn link_page(
    l: Link,
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    link_form(&state, jar, l, &token, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SetPasswordForm {
    csrf: String,
    email: String,
    new_password: String,
    confirm_password: String,
}

async fn link_submit(
    l: Link,
    State(state): State<AppState>,
    jar: CookieJar,
    client: Client,
    Path(token): Path<String>,
    PageForm(form): PageForm<SetPasswordForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, None, &form.csrf)?;
    let password = Password::new(form.new_password);
    let confirm = &form.confirm_password;
    let result = match l.purpose {
        LinkPurpose::Setup => {
            accounts::create_first_admin(&state, &token, &form.email, password, confirm, &client.0).await
        }
        purpose => accounts::set_password_with_link(&state, &token, purpose, password, confirm, &client.0).await,
    };
    match result {
        Ok(account) => {
            let base = pages_for(account.realm()).base;
            Ok(Redirect::to(&format!("{base}?notice=password_set")).into_response())
        }
        Err(e) if !e.is_internal() && !e.is(ErrorKind::LinkExpired) => {
            link_form(&state, jar, l, &token, Some((form.email, e.into()))).await
        }
        Err(e) => Err(e.into()),
    }
}

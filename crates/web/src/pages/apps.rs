//! The platform console's clinic apps: the apps registered to sign members in with
//! OpenID Connect, and registering one (its secret is shown once, on the answer).

use askama::Template;
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use clinic_auth_app::oidc::{self, clients};
use serde::Deserialize;

use super::admin::by;
use super::platform::support_only;
use super::{Visit, frame};
use crate::error::Status;
use crate::error_page::PageError;
use crate::html::{Frame, render_with};
use crate::http::auth::PageSignedIn;
use crate::http::auth::SignedIn;
use crate::http::csrf;
use crate::http::extract::PageForm;
use crate::{AppError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/platform/apps", get(apps_page).post(register_submit))
}

struct AppRow {
    name: String,
    client_id: String,
    kind: &'static str,
    who: String,
    mfa: &'static str,
    redirect_uris: String,
}

struct Created {
    name: String,
    client_id: String,
    secret: Option<String>,
}

/// The registration form, as sent; shown again as typed when it has an error.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RegisterForm {
    csrf: String,
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: String,
    kind: String,
    org: String,
    patients: Option<String>,
    require_mfa: Option<String>,
}

#[derive(Template)]
#[template(path = "platform_apps.html")]
struct AppsPage<'a> {
    frame: Frame<'a>,
    platform: bool,
    csrf: String,
    discovery_url: String,
    apps: Vec<AppRow>,
    orgs: Vec<(String, String)>,
    created: Option<Created>,
    form: RegisterForm,
}

async fn render_page(
    state: &AppState,
    s: &SignedIn,
    created: Option<Created>,
    form: RegisterForm,
    error: Option<AppError>,
) -> Result<Response, PageError> {
    support_only(s)?;
    let who = clinic_auth_app::By::signed_in(s, Default::default());
    let orgs = clinic_auth_app::admin::list_orgs(state, &who).await?;
    let org_name = |id: &str| orgs.iter().find(|o| o.id.as_str() == id).map(|o| o.name.clone()).unwrap_or_default();
    let apps = clients::list(state, &who)
        .await?
        .into_iter()
        .map(|c| {
            let people = if c.realm == clinic_auth_core::Realm::Patient { "Patients" } else { "Staff" };
            AppRow {
                who: match &c.org_id {
                    Some(id) => format!("{people} of {}", org_name(id.as_str())),
                    None => format!("{people} of any organization"),
                },
                kind: if c.secret_hash.is_some() { "Server-side (secret)" } else { "Public (PKCE)" },
                mfa: if c.require_mfa { "Always required" } else { "Clinic policy" },
                redirect_uris: c.redirect_uris.join(" "),
                name: c.name,
                client_id: c.client_id,
            }
        })
        .collect();
    let page = AppsPage {
        frame: frame(state, "Clinic apps").error(error),
        platform: true,
        csrf: s.csrf_token.clone(),
        discovery_url: format!("{}{}", oidc::issuer(state), oidc::paths::DISCOVERY),
        apps,
        orgs: orgs.into_iter().map(|o| (o.id.to_string(), o.name)).collect(),
        created,
        form,
    };
    Ok(render_with(page.frame.status(), &page))
}

async fn apps_page(Visit { state, session: PageSignedIn(s), .. }: Visit) -> Result<Response, PageError> {
    render_page(&state, &s, None, RegisterForm::default(), None).await
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

async fn register_submit(
    Visit { state, jar, client, session: PageSignedIn(s) }: Visit,
    PageForm(f): PageForm<RegisterForm>,
) -> Result<Response, PageError> {
    csrf::verify(&state, &jar, Some(&s), &f.csrf)?;
    support_only(&s)?;
    let new = clients::NewClient {
        name: f.name.clone(),
        redirect_uris: lines(&f.redirect_uris),
        post_logout_redirect_uris: lines(&f.post_logout_redirect_uris),
        backchannel_logout_uri: Some(f.backchannel_logout_uri.clone()),
        confidential: f.kind != "public",
        org_id: Some(f.org.clone()),
        patients: f.patients.is_some(),
        require_mfa: f.require_mfa.is_some(),
        id_token_alg: None,
    };
    match clients::register(&state, &by(&s, client), new).await {
        Ok(r) => {
            let created = Created {
                name: r.client.name,
                client_id: r.client.client_id,
                secret: r.client_secret.map(|t| t.expose().to_owned()),
            };
            render_page(&state, &s, Some(created), RegisterForm::default(), None).await
        }
        Err(e) if e.status().is_client_error() => {
            render_page(&state, &s, None, RegisterForm { csrf: String::new(), ..f }, Some(e.into())).await
        }
        Err(e) => Err(e.into()),
    }
}

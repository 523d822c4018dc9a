//! A stand-in for Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokio::task::JoinHandle;

use super::{find_six_digit_code, poll_until};

/// One request to the Messages endpoint, whatever the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioRequest {
    /// The account SID in the URL path.
    pub account_sid: String,
    /// Whether basic auth matched the account SID and auth token, or an added API key.
    pub auth_ok: bool,
    /// The basic-auth user name (account SID or API key SID), if any.
    pub auth_user: Option<String>,
    /// The form fields in order.
    pub form: Vec<(String, String)>,
    /// The HTTP status the fake answered.
    pub status: u16,
}

impl TwilioRequest {
    /// The first form field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> Option<&str> {
        self.field("Body")
    }

    pub fn to(&self) -> Option<&str> {
        self.field("To")
    }

    /// The six-digit code in `Body`.
    pub fn find_code(&self) -> Option<String> {
        find_six_digit_code(self.body()?)
    }
}

struct Inner {
    account_sid: String,
    auth_token: String,
    api_keys: Vec<(String, String)>,
    requests: Vec<TwilioRequest>,
    failing: Option<u16>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Twilio's Messages API on 127.0.0.1 for tests: checks basic auth and the form the way Twilio
/// does, records every request, and answers 201 with a message SID.
pub struct TwilioFake {
    base_url: String,
    state: Shared,
    task: JoinHandle<()>,
}

impl Drop for TwilioFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for TwilioFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioFake").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl TwilioFake {
    /// Starts the fake for one account, accepting `account_sid:auth_token` as basic auth.
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound (a broken test machine).
    #[allow(clippy::expect_used)]
    pub async fn start(account_sid: &str, auth_token: &str) -> TwilioFake {
        let state = Arc::new(Mutex::new(Inner {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            api_keys: Vec::new(),
            requests: Vec::new(),
            failing: None,
        }));
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0 for TwilioFake");
        let addr = listener.local_addr().expect("TwilioFake listener address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TwilioFake { base_url: format!("http://{addr}"), state, task }
    }

    /// Also accept this API key (`sid:secret`) as basic auth.
    pub fn add_api_key(&self, sid: &str, secret: &str) {
        lock(&self.state).api_keys.push((sid.to_owned(), secret.to_owned()));
    }

    /// `http://127.0.0.1:PORT`, for [`crate::TwilioConfig::base_url`].
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<TwilioRequest> {
        lock(&self.state).requests.clone()
    }

    /// Waits until at least `n` requests have arrived or `timeout` has passed, and returns all
    /// requests received by then (check the length).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<TwilioRequest> {
        poll_until(n, timeout, || self.requests()).await
    }

    /// `Some(status)` makes every authenticated request fail with that HTTP status and a Twilio
    /// error body (400 → 21211 invalid 'To' number, 401 → 20003, 429 → 20429, 5xx → 20500);
    /// `None` succeeds again.
    pub fn set_failing(&self, status: Option<u16>) {
        lock(&self.state).failing = status;
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn create_message(
    State(state): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let credentials = basic_auth(&headers);
    let mut inner = lock(&state);
    let auth_ok = match &credentials {
        Some((user, password)) => {
            (*user == inner.account_sid && *password == inner.auth_token)
                || inner.api_keys.iter().any(|(k, s)| k == user && s == password)
        }
        None => false,
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let to = field("To");

    let response = if !auth_ok {
        twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    } else if sid != inner.account_sid {
        twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found")
    } else if let Some(status) = inner.failing {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match status.as_u16() {
            400 => twilio_error(
                status,
                21211,
                &format!("The 'To' number {} is not a valid phone number.", to.as_deref().unwrap_or("")),
            ),
            401 => twilio_error(status, 20003, "Authenticate"),
            429 => twilio_error(status, 20429, "Too Many Requests"),
            s if s >= 500 => twilio_error(status, 20500, "Internal Server Error"),
            _ => twilio_error(status, 21000 + u32::from(status.as_u16()), "Fake failure"),
        }
    } else if to.as_deref().is_none_or(str::is_empty) {
        twilio_error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required.")
    } else if field("Body").as_deref().is_none_or(str::is_empty) {
        twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.")
    } else if field("From").is_none() && field("MessagingServiceSid").is_none() {
        twilio_error(StatusCode::BAD_REQUEST, 21603, "A 'From' phone number is required.")
    } else {
        let message_sid = format!("SM{:032x}", rand::random::<u128>());
        let body = json!({
            "sid": message_sid,
            "account_sid": inner.account_sid,
            "status": "queued",
            "to": to,
            "from": field("From"),
            "messaging_service_sid": field("MessagingServiceSid"),
            "body": field("Body"),
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"),
        });
        (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    };

    inner.requests.push(TwilioRequest {
        account_sid: sid,
        auth_ok,
        auth_user: credentials.map(|(user, _)| user),
        form,
        status: response.status().as_u16(),
    });
    response
}

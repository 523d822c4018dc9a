//! Crash safety: `clinic-auth serve` is killed with SIGKILL in the middle of concurrent
//! sign-ins, authenticator enrollments, recovery-code rotations and admin changes, and
//! restarted on the same database. Everything whose success reached a client is still
//! there with its audit event, the audit chains verify, and no half-written state keeps
//! anyone from signing in.
//!
//! What was in flight at the kill may or may not have happened; the test asserts only
//! about operations whose success response arrived, and about the invariants.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::{ServerProcess, run_cli};
use crate::harness::{Backend, PASSWORD, TestDb};
use crate::otp;

const ORG: &str = "crash-clinic";
const OWNER: &str = "owner@crash.test";
/// `e{i}@crash.test`: no factor yet; each enrolls an authenticator once during the load.
const ENROLLEES: usize = 8;
/// `r{i}@crash.test`: authenticator and recovery code; sign in with the recovery code
/// over and over, each time getting the next one.
const ROTATORS: usize = 3;
/// `s{i}@crash.test`: exempt from 2FA; sign in with their password over and over while
/// the owner revokes their sessions.
const SIGNERS: usize = 2;
/// The owner flips this member's two-factor setting.
const OVERRIDDEN: &str = "o1@crash.test";
/// Enrolled; the owner grants it a one-time bypass during the load.
const BYPASSED: &str = "b1@crash.test";

/// Kill once this many operations succeeded, of which this many enrollments.
const KILL_AFTER_SUCCESSES: usize = 30;
const KILL_AFTER_ENROLLMENTS: usize = 4;
/// Kill at the latest this long after the load started.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
/// Bounds on every load loop (the kill comes long before them).
const MAX_ROUNDS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_work_survives_sigkill_sqlite() {
    committed_work_survives_sigkill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_work_survives_sigkill_postgres() {
    committed_work_survives_sigkill(Backend::Postgres).await;
}

fn enrollee(i: usize) -> String {
    format!("e{i}@crash.test")
}
fn rotator(i: usize) -> String {
    format!("r{i}@crash.test")
}
fn signer(i: usize) -> String {
    format!("s{i}@crash.test")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// The code an authenticator app shows now. Codes are accepted once per step.
fn code_now(uri: &str) -> String {
    otp::code(uri, unix_now())
}

/// The code of the next 30-second step (accepted as one step of clock drift): newer
/// than any step used before the restart, so a replay guard cannot refuse it.
fn code_next(uri: &str) -> String {
    otp::code(uri, unix_now() + 30)
}

/// No response arrived: the server died with the request sent (or before it could be).
/// Whether it took effect is unknown.
#[derive(Debug)]
struct Lost;

/// A JSON API client that counts its requests in flight.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    in_flight: Arc<AtomicUsize>,
}

impl Api {
    fn new(base: &str) -> Api {
        clinic_auth_notify::install_default_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Api { http, base: base.to_owned(), in_flight: Arc::new(AtomicUsize::new(0)) }
    }

    /// Sends a request; the status and JSON body, or `Lost` when the whole response
    /// did not arrive.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), Lost> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = async {
            let res = req.send().await.map_err(|_| Lost)?;
            let status = res.status().as_u16();
            let bytes = res.bytes().await.map_err(|_| Lost)?;
            Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
        }
        .await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value), Lost> {
        self.call(reqwest::Method::POST, path, None, Some(body)).await
    }

    async fn post_as(&self, token: &str, path: &str, body: Value) -> Result<(u16, Value), Lost> {
        self.call(reqwest::Method::POST, path, Some(token), Some(body)).await
    }

    async fn put_as(&self, token: &str, path: &str, body: Value) -> Result<(u16, Value), Lost> {
        self.call(reqwest::Method::PUT, path, Some(token), Some(body)).await
    }

    async fn get_as(&self, token: &str, path: &str) -> Result<(u16, Value), Lost> {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    /// Email and password; returns (flow id, progress). The password is right, so
    /// anything but 200 is a failure of the server.
    async fn password_step(&self, email: &str) -> Result<(String, Value), Lost> {
        let (s, started) = self.post("/api/v1/login", json!({"realm": "staff", "email": email})).await?;
        assert_eq!(s, 201, "start sign-in of {email}: {started}");
        let flow = started["flow_id"].as_str().expect("flow id").to_owned();
        let (s, progress) = self.post(&format!("/api/v1/login/{flow}/password"), json!({"password": PASSWORD})).await?;
        assert_eq!(s, 200, "password of {email}: {progress}");
        Ok((flow, progress))
    }
}

/// Sets up an authenticator during sign-in, step by step, recording what the client
/// learnt: the otpauth URI once shown, that the confirmation was sent, and the
/// recovery code once the confirmation's answer arrived.
#[derive(Debug, Default, Clone)]
struct Enrollment {
    uri: Option<String>,
    confirm_sent: bool,
    /// Success observed: the recovery code shown.
    recovery_code: Option<String>,
    token: Option<String>,
}

async fn enroll(api: &Api, email: &str, record: &Mutex<Enrollment>) -> Result<(), Lost> {
    let (flow, progress) = api.password_step(email).await?;
    assert_eq!(progress["next"], "enroll", "{email}: {progress}");
    finish_enrollment(api, email, &flow, record).await
}

/// The enrollment steps of a sign-in that is at `next: enroll`.
async fn finish_enrollment(api: &Api, email: &str, flow: &str, record: &Mutex<Enrollment>) -> Result<(), Lost> {
    let (s, setup) = api.post(&format!("/api/v1/login/{flow}/enroll/authenticator"), json!({})).await?;
    assert_eq!(s, 200, "{email}: {setup}");
    let uri = setup["otpauth_uri"].as_str().expect("otpauth uri").to_owned();
    {
        let mut r = record.lock().expect("lock");
        r.uri = Some(uri.clone());
        r.confirm_sent = true;
    }
    let path = format!("/api/v1/login/{flow}/enroll/authenticator/confirm");
    let (s, done) = api.post(&path, json!({"code": code_now(&uri)})).await?;
    assert_eq!(s, 200, "{email}: {done}");
    let mut r = record.lock().expect("lock");
    r.recovery_code = Some(done["recovery_code"].as_str().expect("recovery code").to_owned());
    r.token = Some(done["session_token"].as_str().expect("session").to_owned());
    Ok(())
}

/// A member's recovery codes: `codes[0]` from enrollment, `codes[k]` given by the k-th
/// sign-in with `codes[k - 1]`.
#[derive(Debug, Default, Clone)]
struct Rotations {
    codes: Vec<String>,
    /// A code submitted whose answer never arrived: it may have been used up.
    unanswered: Option<String>,
}

/// Signs in with the recovery code and takes the next one, until the server is gone.
async fn rotate(api: &Api, email: &str, record: &Mutex<Rotations>, successes: &AtomicUsize) {
    for _ in 0..MAX_ROUNDS {
        let Ok((flow, progress)) = api.password_step(email).await else { return };
        assert_eq!(progress["next"], "second_factor", "{email}: {progress}");
        let Ok((s, v)) = api.post(&format!("/api/v1/login/{flow}/method"), json!({"method": "recovery_code"})).await
        else {
            return;
        };
        assert_eq!(s, 200, "{email}: {v}");
        let code = {
            let mut r = record.lock().expect("lock");
            let code = r.codes.last().expect("a code").clone();
            r.unanswered = Some(code.clone());
            code
        };
        let Ok((s, done)) = api.post(&format!("/api/v1/login/{flow}/code"), json!({"code": code})).await else {
            return;
        };
        assert_eq!(s, 200, "{email}: recovery code refused: {done}");
        let next = done["recovery_code"].as_str().expect("a new recovery code").to_owned();
        let mut r = record.lock().expect("lock");
        r.unanswered = None;
        r.codes.push(next);
        successes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A password-only sign-in whose session the client received.
#[derive(Debug, Clone)]
struct Session {
    email: String,
    sent: Instant,
    received: Instant,
    token: String,
}

async fn sign_in_repeatedly(api: &Api, email: &str, log: &Mutex<Vec<Session>>, successes: &AtomicUsize) {
    for _ in 0..MAX_ROUNDS {
        let sent = Instant::now();
        let Ok((s, started)) = api.post("/api/v1/login", json!({"realm": "staff", "email": email})).await else {
            return;
        };
        assert_eq!(s, 201, "start sign-in of {email}: {started}");
        let flow = started["flow_id"].as_str().expect("flow id").to_owned();
        let Ok((s, done)) = api.post(&format!("/api/v1/login/{flow}/password"), json!({"password": PASSWORD})).await
        else {
            return;
        };
        // The owner revoking this member's sessions while the sign-in is in flight
        // ends it too (the account's security stamp moved on): start again.
        if s == 410 && done["error"]["code"] == "flow_expired" {
            continue;
        }
        assert_eq!(s, 200, "password of {email}: {done}");
        let received = Instant::now();
        assert_eq!(done["next"], "done", "{email} is exempt from 2FA: {done}");
        let token = done["session_token"].as_str().expect("session").to_owned();
        log.lock().expect("lock").push(Session { email: email.to_owned(), sent, received, token });
        successes.fetch_add(1, Ordering::SeqCst);
    }
}

/// An admin change as the owner sent it; `received` once its success arrived.
#[derive(Debug, Clone)]
struct Change {
    what: ChangeKind,
    sent: Instant,
    received: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq)]
enum ChangeKind {
    Override(&'static str),
    Revoke(String),
    OrgMethods(Vec<&'static str>),
    Bypass,
}

/// The owner's changes, one after another: `OVERRIDDEN`'s two-factor setting, the
/// signers' sessions, the clinic's allowed methods, and once `BYPASSED`'s bypass.
async fn administer(api: &Api, owner: &str, log: &Mutex<Vec<Change>>, successes: &AtomicUsize) {
    const OVERRIDES: [&str; 3] = ["not_required", "required", "clinic_default"];
    for round in 0..MAX_ROUNDS {
        let mut changes = vec![
            ChangeKind::Override(OVERRIDES[round % 3]),
            ChangeKind::Revoke(signer(round % SIGNERS)),
            ChangeKind::OrgMethods(if round % 2 == 0 {
                vec!["authenticator"]
            } else {
                vec!["authenticator", "passkey"]
            }),
        ];
        if round == 2 {
            changes.push(ChangeKind::Bypass);
        }
        for what in changes {
            let index = {
                let mut l = log.lock().expect("lock");
                l.push(Change { what: what.clone(), sent: Instant::now(), received: None });
                l.len() - 1
            };
            let member = |m: &str| format!("/api/v1/orgs/{ORG}/members/{m}");
            let answer = match &what {
                ChangeKind::Override(v) => {
                    api.put_as(owner, &format!("{}/mfa", member(OVERRIDDEN)), json!({"override": v})).await
                }
                ChangeKind::Revoke(who) => {
                    api.post_as(owner, &format!("{}/sessions/revoke", member(who)), json!({})).await
                }
                ChangeKind::OrgMethods(m) => {
                    api.put_as(owner, &format!("/api/v1/orgs/{ORG}/mfa"), json!({"methods": m})).await
                }
                ChangeKind::Bypass => api.post_as(owner, &format!("{}/bypass", member(BYPASSED)), json!({})).await,
            };
            let Ok((s, v)) = answer else { return };
            assert!(s == 200 || s == 201, "{what:?}: {s} {v}");
            log.lock().expect("lock")[index].received = Some(Instant::now());
            successes.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the clinic (Mandatory 2FA) and its members with the command line.
fn seed(database_url: &str) {
    let cli = |args: &[&str], stdin: Option<&str>| {
        let (ok, out, err) = run_cli(database_url, args, stdin);
        assert!(ok, "clinic-auth {args:?}: {out} {err}");
    };
    cli(&["org", "create", "--name", "Crash Clinic", "--kind", "clinic", "--id", ORG], None);
    cli(&["org", "mfa", "--org", ORG, "--enable", "--mode", "required"], None);
    let mut members =
        vec![(OWNER.to_owned(), "owner"), (OVERRIDDEN.to_owned(), "staff"), (BYPASSED.to_owned(), "staff")];
    members.extend((0..ENROLLEES).map(|i| (enrollee(i), "staff")));
    members.extend((0..ROTATORS).map(|i| (rotator(i), "provider")));
    members.extend((0..SIGNERS).map(|i| (signer(i), "staff")));
    // A few at a time: each run hashes a password.
    for pair in members.chunks(4) {
        std::thread::scope(|s| {
            for (email, role) in pair {
                s.spawn(|| {
                    cli(
                        &["member", "add", "--org", ORG, "--email", email, "--role", role, "--password-stdin"],
                        Some(PASSWORD),
                    )
                });
            }
        });
    }
    for i in 0..SIGNERS {
        cli(&["member", "mfa", "--org", ORG, "--email", &signer(i), "--override", "not_required"], None);
    }
}

/// Every event of the clinic's audit trail, read page by page as the owner.
async fn audit_trail(api: &Api, owner: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut path = format!("/api/v1/orgs/{ORG}/audit?limit=1000");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let (s, page) = api.get_as(owner, &path).await.expect("audit");
        assert_eq!(s, 200, "{page}");
        let page = page.as_array().expect("events").clone();
        if page.is_empty() {
            return events;
        }
        before = page.iter().filter_map(|e| e["id"].as_i64()).min();
        events.extend(page);
    }
}

async fn committed_work_survives_sigkill(backend: Backend) {
    let Some((_db, url)) = TestDb::create(backend).await else { return };
    let started = Instant::now();
    seed(&url);
    let server = ServerProcess::start(&url);
    let api = Api::new(&server.base);
    eprintln!("{backend:?}: seeded in {:?}", started.elapsed());

    // Before the load: the owner, the rotators and BYPASSED set up an authenticator.
    let mut before_load = vec![OWNER.to_owned(), BYPASSED.to_owned()];
    before_load.extend((0..ROTATORS).map(rotator));
    let mut setup: HashMap<String, Enrollment> = HashMap::new();
    for email in before_load {
        let record = Mutex::new(Enrollment::default());
        enroll(&api, &email, &record).await.expect("server up");
        setup.insert(email, record.into_inner().expect("lock"));
    }
    let owner_token = setup[OWNER].token.clone().expect("owner session");

    // The load: every task runs until the server is gone.
    let successes = Arc::new(AtomicUsize::new(0));
    let enrolled = Arc::new(AtomicUsize::new(0));
    let enrollments: Vec<Arc<Mutex<Enrollment>>> = (0..ENROLLEES).map(|_| Default::default()).collect();
    let rotations: Vec<Arc<Mutex<Rotations>>> = (0..ROTATORS)
        .map(|i| {
            let first = setup[&rotator(i)].recovery_code.clone().expect("recovery code");
            Arc::new(Mutex::new(Rotations { codes: vec![first], unanswered: None }))
        })
        .collect();
    let sessions: Arc<Mutex<Vec<Session>>> = Default::default();
    let changes: Arc<Mutex<Vec<Change>>> = Default::default();
    let mut tasks = Vec::new();
    for (i, record) in enrollments.iter().enumerate() {
        let (api, record, successes, enrolled) = (api.clone(), record.clone(), successes.clone(), enrolled.clone());
        tasks.push(tokio::spawn(async move {
            // Spread out, so that some finish before the kill and some are cut short.
            tokio::time::sleep(Duration::from_millis(200 * i as u64)).await;
            if enroll(&api, &enrollee(i), &record).await.is_ok() {
                successes.fetch_add(1, Ordering::SeqCst);
                enrolled.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for (i, record) in rotations.iter().enumerate() {
        let (api, record, successes) = (api.clone(), record.clone(), successes.clone());
        tasks.push(tokio::spawn(async move { rotate(&api, &rotator(i), &record, &successes).await }));
    }
    for i in 0..SIGNERS {
        let (api, log, successes) = (api.clone(), sessions.clone(), successes.clone());
        tasks.push(tokio::spawn(async move { sign_in_repeatedly(&api, &signer(i), &log, &successes).await }));
    }
    {
        let (api, log, successes, owner) = (api.clone(), changes.clone(), successes.clone(), owner_token.clone());
        tasks.push(tokio::spawn(async move { administer(&api, &owner, &log, &successes).await }));
    }

    // SIGKILL after some successes, while requests are in flight.
    let load_started = Instant::now();
    while load_started.elapsed() < KILL_DEADLINE
        && (successes.load(Ordering::SeqCst) < KILL_AFTER_SUCCESSES
            || enrolled.load(Ordering::SeqCst) < KILL_AFTER_ENROLLMENTS)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let patience = Instant::now();
    while api.in_flight.load(Ordering::SeqCst) < 3 && patience.elapsed() < Duration::from_secs(1) {
        tokio::task::yield_now().await;
    }
    let in_flight_at_kill = api.in_flight.load(Ordering::SeqCst);
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    let load_time = load_started.elapsed();
    for t in tasks {
        t.await.expect("a load task failed before the kill");
    }
    drop(server);
    eprintln!(
        "{backend:?}: killed after {load_time:?} of load, {} successes, {in_flight_at_kill} requests in flight",
        successes.load(Ordering::SeqCst)
    );

    let server = ServerProcess::start(&url);
    let api = Api::new(&server.base);
    let api = &api;
    let restarted = Instant::now();

    let enrollments: Vec<Enrollment> = enrollments.iter().map(|e| e.lock().expect("lock").clone()).collect();
    let rotations: Vec<Rotations> = rotations.iter().map(|r| r.lock().expect("lock").clone()).collect();
    let sessions = sessions.lock().expect("lock").clone();
    let changes = changes.lock().expect("lock").clone();
    eprintln!(
        "{backend:?}: seen before the kill: {} enrollments ({} unanswered), rotations {:?} ({} unanswered), \
         {} sign-ins, {} admin changes ({} unanswered)",
        enrollments.iter().filter(|e| e.recovery_code.is_some()).count(),
        enrollments.iter().filter(|e| e.confirm_sent && e.recovery_code.is_none()).count(),
        rotations.iter().map(|r| r.codes.len() - 1).collect::<Vec<_>>(),
        rotations.iter().filter(|r| r.unanswered.is_some()).count(),
        sessions.len(),
        changes.iter().filter(|c| c.received.is_some()).count(),
        changes.iter().filter(|c| c.received.is_none()).count(),
    );

    // The state right after the restart, before anyone signs in again: the members as
    // the owner sees them (with the session from before the crash) and the audit trail.
    let (s, members) = api.get_as(&owner_token, &format!("/api/v1/orgs/{ORG}/members")).await.expect("members");
    assert_eq!(s, 200, "the owner's session from before the crash: {members}");
    let members: HashMap<String, Value> = members
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["account"]["email"].as_str().expect("email").to_owned(), m.clone()))
        .collect();
    let (s, org) = api.get_as(&owner_token, &format!("/api/v1/orgs/{ORG}")).await.expect("org");
    assert_eq!(s, 200, "{org}");
    let trail = audit_trail(api, &owner_token).await;
    let id_of = |email: &str| members[email]["account"]["id"].as_str().expect("id").to_owned();
    // Successful events of `kind` about `subject`, with `detail[k] == v`.
    let audited = |kind: &str, subject: Option<&str>, detail: Option<(&str, &str)>| {
        let subject = subject.map(id_of);
        trail
            .iter()
            .filter(|e| e["kind"] == kind && e["outcome"] == "success")
            .filter(|e| subject.as_ref().is_none_or(|s| e["subject_id"].as_str() == Some(s)))
            .filter(|e| detail.is_none_or(|(k, v)| e["detail"][k].as_str() == Some(v)))
            .count()
    };
    let seen = |what: &ChangeKind| changes.iter().filter(|c| c.received.is_some() && c.what == *what).count();
    let lost = |what: &ChangeKind| changes.iter().filter(|c| c.received.is_none() && c.what == *what).count();
    // Of one kind of change: the last one seen (or `before`), and one lost after it.
    let last_and_lost = |f: &dyn Fn(&ChangeKind) -> bool, before: ChangeKind| {
        let mine: Vec<&Change> = changes.iter().filter(|c| f(&c.what)).collect();
        let last_seen = mine.iter().rev().find(|c| c.received.is_some()).map_or(before, |c| c.what.clone());
        let lost = mine.last().filter(|c| c.received.is_none()).map(|c| c.what.clone());
        (last_seen, lost)
    };

    // Admin changes: the last one seen is in effect, unless one in flight at the kill
    // was committed after it; and the audit trail holds exactly the committed ones.
    let overridden = &members[OVERRIDDEN];
    let now_override = ChangeKind::Override(match overridden["account"]["mfa_override"].as_str() {
        Some("not_required") => "not_required",
        Some("required") => "required",
        Some("clinic_default") => "clinic_default",
        other => panic!("{OVERRIDDEN}: override {other:?}"),
    });
    let (seen_override, lost_override) =
        last_and_lost(&|w| matches!(w, ChangeKind::Override(_)), ChangeKind::Override("clinic_default"));
    let lost_override_committed = lost_override.as_ref().is_some_and(|l| *l == now_override && *l != seen_override);
    assert!(
        now_override == seen_override || lost_override_committed,
        "{OVERRIDDEN}: the owner last set {seen_override:?} (lost: {lost_override:?}), now {now_override:?}"
    );
    for v in ["not_required", "required", "clinic_default"] {
        let what = ChangeKind::Override(v);
        let committed = seen(&what) + usize::from(lost_override_committed && now_override == what);
        assert_eq!(
            audited("member_mfa_override_changed", Some(OVERRIDDEN), Some(("to", v))),
            committed,
            "one audit event per committed change of {OVERRIDDEN} to {v}"
        );
    }

    assert_eq!((org["mfa"]["enabled"].as_bool(), org["mfa"]["mode"].as_str()), (Some(true), Some("required")));
    let now_methods = ChangeKind::OrgMethods(
        org["mfa"]["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .map(|m| match m.as_str() {
                Some("authenticator") => "authenticator",
                Some("passkey") => "passkey",
                other => panic!("method {other:?}"),
            })
            .collect(),
    );
    let (seen_methods, lost_methods) = last_and_lost(
        &|w| matches!(w, ChangeKind::OrgMethods(_)),
        ChangeKind::OrgMethods(vec!["authenticator", "passkey"]),
    );
    let lost_methods_committed = lost_methods.as_ref().is_some_and(|l| *l == now_methods && *l != seen_methods);
    assert!(
        now_methods == seen_methods || lost_methods_committed,
        "org methods: the owner last set {seen_methods:?} (lost: {lost_methods:?}), now {now_methods:?}"
    );
    let methods_changes =
        changes.iter().filter(|c| c.received.is_some() && matches!(c.what, ChangeKind::OrgMethods(_)));
    assert_eq!(
        audited("org_mfa_changed", None, None),
        1 + methods_changes.count() + usize::from(lost_methods_committed),
        "one audit event per committed MFA change of the clinic (the first by the command line)"
    );

    let bypass_pending = members[BYPASSED]["bypass_pending"] == true;
    if seen(&ChangeKind::Bypass) == 1 {
        assert!(bypass_pending, "a granted bypass was lost: {}", members[BYPASSED]);
    } else if lost(&ChangeKind::Bypass) == 0 {
        assert!(!bypass_pending, "a bypass nobody granted: {}", members[BYPASSED]);
    }
    assert_eq!(audited("bypass_granted", Some(BYPASSED), None), usize::from(bypass_pending), "the bypass audited");

    for i in 0..SIGNERS {
        let what = ChangeKind::Revoke(signer(i));
        let n = audited("sessions_revoked", Some(&signer(i)), None);
        assert!(
            (seen(&what)..=seen(&what) + lost(&what)).contains(&n),
            "{}: {n} revocations audited, {} seen, {} lost",
            signer(i),
            seen(&what),
            lost(&what)
        );
    }

    // Sessions: one revoked after the client got it stays revoked; one begun after every
    // revocation of its member had ended lives on. Each sign-in seen is audited.
    for session in &sessions {
        let revokes = || changes.iter().filter(|c| c.what == ChangeKind::Revoke(session.email.clone()));
        let revoked_later = revokes().any(|c| c.received.is_some() && c.sent > session.received);
        let untouched = revokes().all(|c| c.received.is_some_and(|r| r < session.sent));
        let (s, _) = api.get_as(&session.token, "/api/v1/me").await.expect("me");
        if revoked_later {
            assert_eq!(s, 401, "{}: a session revoked before the crash came back", session.email);
        } else if untouched {
            assert_eq!(s, 200, "{}: a session granted before the crash was lost", session.email);
        }
    }
    for i in 0..SIGNERS {
        let n = sessions.iter().filter(|s| s.email == signer(i)).count();
        let audited = audited("sign_in", Some(&signer(i)), Some(("method", "password")));
        assert!(
            (n..=n + 1).contains(&audited),
            "{}: {n} sign-ins seen (and one lost at most), {audited} audited",
            signer(i)
        );
    }

    // Everyone signs in: with the factor they are known to have, or by setting one up.
    // Whoever's enrollment answer was lost may have the factor or not; their phone has
    // the secret either way.
    let sign_in_totp = |email: String, uri: String| async move {
        let (flow, progress) = api.password_step(&email).await.expect("server up");
        assert_eq!(
            (progress["next"].as_str(), progress["method"].as_str()),
            (Some("second_factor"), Some("authenticator")),
            "{email}: {progress}"
        );
        let path = format!("/api/v1/login/{flow}/code");
        let (s, done) = api.post(&path, json!({"code": code_next(&uri)})).await.expect("server up");
        assert_eq!(s, 200, "{email}: a fresh authenticator code after the restart: {done}");
    };
    let enroll_now = |email: String, flow: String| async move {
        let record = Mutex::new(Enrollment::default());
        finish_enrollment(api, &email, &flow, &record).await.expect("server up");
    };
    let recovery_step = |email: String| async move {
        let (flow, progress) = api.password_step(&email).await.expect("server up");
        assert_eq!(progress["next"], "second_factor", "{email}: {progress}");
        let path = format!("/api/v1/login/{flow}/method");
        let (s, v) = api.post(&path, json!({"method": "recovery_code"})).await.expect("server up");
        assert_eq!(s, 200, "{email}: {v}");
        format!("/api/v1/login/{flow}/code")
    };

    for (i, e) in enrollments.iter().enumerate() {
        let email = enrollee(i);
        let has_factor = if let Some(recovery) = &e.recovery_code {
            let st = &members[&email];
            assert_eq!(st["factors"][0]["kind"], "authenticator", "{email}: enrolled, then lost it: {st}");
            assert_eq!(st["recovery_code_set"], true, "{email}: {st}");
            let (s, _) = api.get_as(e.token.as_deref().expect("token"), "/api/v1/me").await.expect("up");
            assert_eq!(s, 200, "{email}: the session of the enrollment was lost");
            sign_in_totp(email.clone(), e.uri.clone().expect("uri")).await;
            let path = recovery_step(email.clone()).await;
            let (s, done) = api.post(&path, json!({"code": recovery})).await.expect("up");
            assert_eq!(s, 200, "{email}: the recovery code shown at enrollment: {done}");
            true
        } else {
            let (flow, progress) = api.password_step(&email).await.expect("server up");
            match progress["next"].as_str() {
                Some("enroll") => {
                    assert_eq!(members[&email]["factors"], json!([]), "{email}: half enrolled");
                    enroll_now(email.clone(), flow).await;
                    false
                }
                Some("second_factor") if e.confirm_sent => {
                    sign_in_totp(email.clone(), e.uri.clone().expect("uri")).await;
                    true
                }
                _ => panic!("{email}: enrollment not seen to succeed, yet {progress}"),
            }
        };
        assert_eq!(
            audited("factor_enrolled", Some(&email), None),
            usize::from(has_factor),
            "{email}: enrollment audited exactly when it happened"
        );
    }

    for (i, r) in rotations.iter().enumerate() {
        let email = rotator(i);
        let path = recovery_step(email.clone()).await;
        if let [.., used, _] = r.codes.as_slice() {
            let (s, e) = api.post(&path, json!({"code": used})).await.expect("up");
            assert_eq!((s, e["error"]["code"].as_str()), (401, Some("incorrect_code")), "{email}: a used code works");
        }
        let latest = r.codes.last().expect("a code");
        let (s, done) = api.post(&path, json!({"code": latest})).await.expect("up");
        let latest_used_at_crash = if r.unanswered.as_ref() == Some(latest) {
            s == 401
        } else {
            assert_eq!(s, 200, "{email}: the newest recovery code the member was shown: {done}");
            false
        };
        assert_eq!(
            audited("recovery_code_used", Some(&email), None),
            r.codes.len() - 1 + usize::from(latest_used_at_crash),
            "{email}: each use of a recovery code audited"
        );
        sign_in_totp(email.clone(), setup[&email].uri.clone().expect("uri")).await;
    }

    for i in 0..SIGNERS {
        let (_, done) = api.password_step(&signer(i)).await.expect("server up");
        assert_eq!(done["next"], "done", "{}: {done}", signer(i));
    }
    let (flow, progress) = api.password_step(OVERRIDDEN).await.expect("server up");
    match (progress["next"].as_str(), &now_override) {
        (Some("done"), ChangeKind::Override("not_required")) => {}
        (Some("enroll"), ChangeKind::Override("required" | "clinic_default")) => {
            enroll_now(OVERRIDDEN.to_owned(), flow).await
        }
        _ => panic!("{OVERRIDDEN} with {now_override:?}: {progress}"),
    }
    let (flow, progress) = api.password_step(BYPASSED).await.expect("server up");
    match progress["next"].as_str() {
        Some("enroll") if bypass_pending => enroll_now(BYPASSED.to_owned(), flow).await,
        Some("second_factor") if !bypass_pending => {
            sign_in_totp(BYPASSED.to_owned(), setup[BYPASSED].uri.clone().expect("uri")).await
        }
        _ => panic!("{BYPASSED} (bypass pending: {bypass_pending}): {progress}"),
    }
    sign_in_totp(OWNER.to_owned(), setup[OWNER].uri.clone().expect("uri")).await;
    eprintln!("{backend:?}: checked in {:?} after the restart", restarted.elapsed());

    // The audit trail of everything, the crash included, verifies.
    let (ok, out, err) = run_cli(&url, &["audit", "verify"], None);
    assert!(ok, "clinic-auth audit verify after the crash: {out} {err}");
    eprintln!("{backend:?}: {:?} in all", started.elapsed());
}

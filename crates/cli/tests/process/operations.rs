//! Operations with the real binary: `/metrics` on a listener of its own, request ids in
//! the log, a backup taken under sign-in load and restored, `restore`'s refusals,
//! `check-config`'s every error, quiet admin commands, and a graceful SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::SERVER_KEY;
use crate::harness::PASSWORD;

const BIN: &str = env!("CARGO_BIN_EXE_clinic-auth");
/// Another valid keyring: not the one the servers sealed with.
const OTHER_KEY: &str = "1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// A `clinic-auth` command in data directory `dir` with `env`; (success, stdout, stderr).
fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(dir);
    for var in ["CLINIC_AUTH_DATABASE_URL", "CLINIC_AUTH_LOG_LEVEL", "CLINIC_AUTH_ENCRYPTION_KEY", "CLINIC_AUTH_CONFIG"]
    {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        let mut input = input;
        input.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `serve` child process in `dir`: its base URL and, if it printed one, its metrics URL.
struct Server {
    child: Child,
    base: String,
    metrics: Option<String>,
}

impl Server {
    fn start(dir: &Path, env: &[(&str, &str)], stderr: Stdio) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir);
        cmd.env_remove("CLINIC_AUTH_DATABASE_URL").env("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY);
        cmd.env("CLINIC_AUTH_LOG_LEVEL", "warn").env("CLINIC_AUTH_METRICS_LISTEN", "off");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (mut base, mut metrics) = (None, None);
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("Prometheus metrics at ") {
                metrics = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("clinic-auth is listening on ") {
                base = Some(rest.split_whitespace().next().unwrap().to_owned());
                break;
            }
        }
        Server { child, base: base.expect("server printed its address"), metrics }
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; its success.
    fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    clinic_auth_notify::install_default_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// An organization and `n` members `m{i}@ops.test` with the harness's password and no 2FA.
fn seed(dir: &Path, n: usize) {
    let env = [("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)];
    let (ok, out, err) = cli(dir, &["org", "create", "--name", "Ops Clinic", "--kind", "clinic"], &env, None);
    assert!(ok, "{out} {err}");
    for i in 0..n {
        let email = format!("m{i}@ops.test");
        let args = ["member", "add", "--org", "ops-clinic", "--email", &email, "--role", "staff", "--password-stdin"];
        let (ok, out, err) = cli(dir, &args, &env, Some(PASSWORD));
        assert!(ok, "{out} {err}");
    }
}

async fn sign_in(http: &reqwest::Client, base: &str, email: &str) -> Option<String> {
    let started: Value = http
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"realm": "staff", "email": email}))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let flow = started["flow_id"].as_str()?.to_owned();
    let res = http
        .post(format!("{base}/api/v1/login/{flow}/password"))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .ok()?;
    if res.status() != 200 {
        return None;
    }
    let done: Value = res.json().await.ok()?;
    done["session_token"].as_str().map(str::to_owned)
}

async fn session_valid(http: &reqwest::Client, base: &str, token: &str) -> bool {
    http.get(format!("{base}/api/v1/me")).bearer_auth(token).send().await.unwrap().status() == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("CLINIC_AUTH_METRICS_LISTEN", "127.0.0.1:0")], Stdio::inherit());
    let metrics = server.metrics.clone().expect("serve printed where the metrics are");
    assert!(metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"), "{metrics}");
    assert_ne!(metrics, format!("{}/metrics", server.base));
    let http = http();
    let text = http.get(&metrics).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("clinic_auth_build_info{version=\""), "{text}");
    assert!(text.contains("clinic_auth_sessions_active"), "{text}");
    assert_eq!(http.get(format!("{}/metrics", server.base)).send().await.unwrap().status(), 404);
    let off = Server::start(dir.path(), &[], Stdio::inherit());
    assert_eq!(off.metrics, None, "metrics_listen = off: no listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_id_is_in_its_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let env = [
        ("CLINIC_AUTH_LOG_FORMAT", "json"),
        ("CLINIC_AUTH_LOG_LEVEL", "info,clinic_auth_web=debug"),
        ("CLINIC_AUTH_TRUST_FORWARDED_FOR", "true"),
    ];
    let mut server = Server::start(dir.path(), &env, Stdio::from(file));
    let http = http();
    let res = http
        .get(format!("{}/no/such/page", server.base))
        .header("x-request-id", "ops-quote-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["x-request-id"], "ops-quote-4711");
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(true));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("request finished") && l.contains("unmatched"))
        .unwrap_or_else(|| panic!("no log line for the request:\n{text}"));
    let parsed: Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["span"]["request_id"], "ops-quote-4711", "{line}");
    assert_eq!(parsed["fields"]["status"], "404", "{line}");
    assert!(!line.contains("/no/such/page"), "the log names the route template, not the path: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_sign_in_load_restores_every_acknowledged_change() {
    const SIGNERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    seed(&d, SIGNERS);
    let mut server = Server::start(&d, &[], Stdio::inherit());
    let http = http();
    // The signing keys, sealed under the key, for restore to open.
    assert_eq!(http.get(format!("{}/oauth2/jwks", server.base)).send().await.unwrap().status(), 200);

    // Sign-ins, each session noted with the moment its success arrived.
    let acknowledged: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..SIGNERS {
        let (http, base, ack, stop) = (http.clone(), server.base.clone(), acknowledged.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..400 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(token) = sign_in(&http, &base, &format!("m{i}@ops.test")).await {
                    ack.lock().unwrap().push((Instant::now(), token));
                }
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backup_file = d.join("backup.db");
    let began = Instant::now();
    let (ok, out, err) = {
        let (d, file) = (d.clone(), backup_file.clone());
        tokio::task::spawn_blocking(move || {
            cli(&d, &["backup", "--to", file.to_str().unwrap()], &[("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)], None)
        })
        .await
        .unwrap()
    };
    let ended = Instant::now();
    assert!(ok, "backup: {out} {err}");
    assert!(out.contains("Backed up the database to") && out.contains("The encryption key is not in it"), "{out}");
    // More sign-ins after the backup, which the restore must take away.
    let after = acknowledged.lock().unwrap().len();
    while acknowledged.lock().unwrap().len() < after + 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let sessions = acknowledged.lock().unwrap().clone();
    let before: Vec<&String> = sessions.iter().filter(|(at, _)| *at < began).map(|(_, t)| t).collect();
    let later: Vec<&String> = sessions.iter().filter(|(at, _)| *at > ended).map(|(_, t)| t).collect();
    assert!(before.len() >= 6 && !later.is_empty(), "{} before, {} after", before.len(), later.len());

    // Restore refuses while the server runs, and changes nothing.
    let env = [("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)];
    let from = backup_file.to_str().unwrap();
    let (ok, out, err) = cli(&d, &["restore", "--from", from], &env, None);
    assert!(!ok, "{out}");
    assert!(err.contains("clinic-auth serve is running on"), "{err}");
    assert!(session_valid(&http, &server.base, later[0]).await, "the refused restore changed nothing");

    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(25)), Some(true));
    drop(server);
    let (ok, out, err) = cli(&d, &["restore", "--from", from], &env, None);
    assert!(ok, "restore: {out} {err}");
    assert!(out.contains("Audit trail intact"), "{out}");
    assert!(out.contains("The encryption key opens signing key"), "{out}");
    assert!(d.join("clinic-auth.db.before-restore").exists(), "the replaced database is kept");
    let (ok, out, err) = cli(&d, &["audit", "verify"], &env, None);
    assert!(ok, "audit verify after restore: {out} {err}");

    let server = Server::start(&d, &[], Stdio::inherit());
    for token in &before {
        assert!(session_valid(&http, &server.base, token).await, "a sign-in acknowledged before the backup is there");
    }
    for token in &later {
        assert!(!session_valid(&http, &server.base, token).await, "a sign-in after the backup is not");
    }
}

#[test]
fn restore_refuses_a_backup_the_key_does_not_open_and_leaves_the_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, 1);
    // Seal the signing keys with a server run.
    {
        let server = Server::start(d, &[], Stdio::inherit());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            assert_eq!(http().get(format!("{}/oauth2/jwks", server.base)).send().await.unwrap().status(), 200);
        });
    }
    let backup = d.join("b.db");
    let env = [("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)];
    let (ok, out, err) = cli(d, &["backup", "--to", backup.to_str().unwrap()], &env, None);
    assert!(ok, "{out} {err}");
    let (ok, _, err) = cli(d, &["backup", "--to", backup.to_str().unwrap()], &env, None);
    assert!(!ok && err.contains("already exists"), "a backup never overwrites: {err}");
    let before = std::fs::read(d.join("clinic-auth.db")).unwrap();
    let (ok, out, err) =
        cli(d, &["restore", "--from", backup.to_str().unwrap()], &[("CLINIC_AUTH_ENCRYPTION_KEY", OTHER_KEY)], None);
    assert!(!ok, "{out}");
    assert!(err.contains("does not open the secrets sealed in the backup"), "{err}");
    assert!(err.contains("the database is unchanged"), "{err}");
    assert_eq!(std::fs::read(d.join("clinic-auth.db")).unwrap(), before);
    // Not a backup at all.
    std::fs::write(d.join("junk.db"), "not a database").unwrap();
    let (ok, _, err) = cli(d, &["restore", "--from", d.join("junk.db").to_str().unwrap()], &env, None);
    assert!(!ok && err.contains("is not a clinic-auth backup"), "{err}");
    // PostgreSQL: pg_dump.
    let (ok, _, err) =
        cli(d, &["backup", "--to", "x.db", "--database-url", "postgres://nobody@127.0.0.1:1/none"], &env, None);
    assert!(!ok && err.contains("pg_dump"), "{err}");
}

/// A tampered trail in the backup is refused at restore, naming the break.
#[test]
fn restore_refuses_a_backup_whose_audit_trail_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, 2);
    let backup = d.join("b.db");
    let env = [("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)];
    let (ok, out, err) = cli(d, &["backup", "--to", backup.to_str().unwrap()], &env, None);
    assert!(ok, "{out} {err}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", backup.display())).await.unwrap();
        sqlx::query("UPDATE audit_events SET detail = '{\"kind\":\"solo\"}' WHERE kind = 'organization_created'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let (ok, out, err) = cli(d, &["restore", "--from", backup.to_str().unwrap()], &env, None);
    assert!(!ok, "{out}");
    assert!(err.contains("audit trail failed verification"), "{err}");
}

#[test]
fn admin_commands_print_their_result_and_no_log_lines_unless_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out, err) = cli(d, &["org", "create", "--name", "Quiet Clinic", "--kind", "clinic"], &[], None);
    assert!(ok, "{err}");
    assert_eq!(out, "Created clinic organization \"Quiet Clinic\" with id quiet-clinic\n");
    // (A warning could appear on a very slow machine: sqlx's slow statements.)
    assert!(!err.contains("INFO") && !err.contains("DEBUG"), "no log lines by default: {err}");
    let (ok, out, err) = cli(d, &["org", "create", "--name", "Loud Clinic", "--kind", "clinic", "-v"], &[], None);
    assert!(ok, "{err}");
    assert_eq!(out, "Created clinic organization \"Loud Clinic\" with id loud-clinic\n");
    assert!(err.contains("INFO"), "-v shows the log: {err}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], Stdio::inherit());
    let addr = server.base.trim_start_matches("http://").to_owned();
    // A request in flight: its headers and half its body sent, the rest held back.
    let body = br#"{"realm":"staff","email":"someone@ops.test"}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /api/v1/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, rest) = body.split_at(10);
    conn.write_all(first).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    server.terminate();
    // New connections are refused once shutdown began.
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(&addr).is_err()
    });
    assert!(refused, "new connections are refused after SIGTERM");
    assert!(server.child.try_wait().unwrap().is_none(), "still running while a request is in flight");
    conn.write_all(rest).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "the request in flight completes: {answer}");
    assert!(answer.contains("flow_id"), "{answer}");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(true), "exits cleanly soon after");
    assert!(signalled.elapsed() < Duration::from_secs(15));
}

// ---- check-config: every problem in one go, each with its fix ----

fn check_config(dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let (ok, out, err) = cli(dir, &["check-config"], env, None);
    assert!(!err.contains("INFO"), "check-config prints its report, not log lines: {err}");
    (ok, out)
}

/// Asserts that the report has an error line starting with `error` and a fix for it.
fn has_error(out: &str, error: &str) {
    let mut lines = out.lines();
    let found = lines.by_ref().any(|l| l.starts_with(&format!("error: {error}")));
    assert!(found, "no `error: {error}…` in:\n{out}");
    assert!(lines.next().is_some_and(|l| l.starts_with("  fix: ")), "a fix follows the error:\n{out}");
}

#[test]
fn check_config_passes_a_complete_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = cli(dir.path(), &["migrate"], &[("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)], None);
    assert!(ok, "{out} {err}");
    let (ok, out) = check_config(dir.path(), &[("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)]);
    assert!(ok, "{out}");
    assert_eq!(out, "The configuration is complete: no problems found.\n");
}

#[test]
fn check_config_reports_an_unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check_config(
        dir.path(),
        &[
            ("CLINIC_AUTH_DATABASE_URL", "postgres://clinic:secret@127.0.0.1:1/clinic"),
            ("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY),
        ],
    );
    assert!(!ok);
    has_error(&out, "cannot reach the database postgres://clinic:redacted@127.0.0.1:1/clinic");
    assert!(!out.contains("secret"), "the password is not printed");
}

#[test]
fn check_config_reports_a_missing_key_with_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check_config(dir.path(), &[("CLINIC_AUTH_DATABASE_URL", "postgres://clinic@127.0.0.1:1/clinic")]);
    assert!(!ok);
    has_error(&out, "no encryption key is set, and PostgreSQL needs one");
}

#[test]
fn check_config_reports_a_database_whose_key_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli(dir.path(), &["migrate"], &[], None);
    assert!(ok, "{err}");
    std::fs::remove_file(dir.path().join("encryption.key")).unwrap();
    let (ok, out) = check_config(dir.path(), &[]);
    assert!(!ok);
    has_error(&out, "the database exists but its encryption key");
    assert!(!dir.path().join("encryption.key").exists(), "check-config generates no key");
}

#[test]
fn check_config_reports_a_key_that_does_not_open_the_database() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 0);
    let server = Server::start(dir.path(), &[], Stdio::inherit());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(http().get(format!("{}/oauth2/jwks", server.base)).send().await.unwrap().status(), 200);
    });
    drop(server);
    let (ok, out) = check_config(dir.path(), &[("CLINIC_AUTH_ENCRYPTION_KEY", OTHER_KEY)]);
    assert!(!ok);
    has_error(&out, "the encryption key does not open the secrets sealed in the database");
}

#[test]
fn check_config_reports_incomplete_smtp_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) =
        check_config(dir.path(), &[("CLINIC_AUTH_EMAIL_TRANSPORT", "smtp"), ("CLINIC_AUTH_SMTP_USERNAME", "clinic")]);
    assert!(!ok);
    has_error(&out, "email_transport = smtp but smtp_host is not set");
    has_error(&out, "only one of smtp_username and smtp_password is set");
}

#[test]
fn check_config_reports_plain_text_smtp_to_a_remote_host() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CLINIC_AUTH_EMAIL_TRANSPORT", "smtp"),
        ("CLINIC_AUTH_SMTP_HOST", "smtp.example.org"),
        ("CLINIC_AUTH_SMTP_TLS", "none"),
    ];
    let (ok, out) = check_config(dir.path(), &env);
    assert!(!ok);
    has_error(&out, "smtp_tls = none sends codes and the SMTP password in plain text to smtp.example.org");
    // To a relay on this machine it is fine.
    let local = [
        ("CLINIC_AUTH_EMAIL_TRANSPORT", "smtp"),
        ("CLINIC_AUTH_SMTP_HOST", "127.0.0.1"),
        ("CLINIC_AUTH_SMTP_TLS", "none"),
    ];
    let (ok, out) = check_config(dir.path(), &local);
    assert!(ok, "{out}");
}

#[test]
fn check_config_reports_incomplete_twilio_settings() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CLINIC_AUTH_SMS_TRANSPORT", "twilio"), ("CLINIC_AUTH_TWILIO_BASE_URL", "http://gateway.example.org")];
    let (ok, out) = check_config(dir.path(), &env);
    assert!(!ok);
    has_error(&out, "sms_transport = twilio but twilio_account_sid is not set");
    has_error(&out, "sms_transport = twilio but neither twilio_auth_token");
    has_error(&out, "sms_transport = twilio but neither twilio_from");
    has_error(&out, "twilio_base_url http://gateway.example.org is plain HTTP to a remote host");
}

#[test]
fn check_config_reports_secure_cookies_on_a_plain_http_public_url_and_passkeys_off() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check_config(dir.path(), &[("CLINIC_AUTH_PUBLIC_URL", "http://192.0.2.10:8080")]);
    assert!(!ok);
    has_error(&out, "public_url http://192.0.2.10:8080/ is plain HTTP, but cookies are Secure");
    assert!(out.contains("warning: passkeys (\"Trust this device\") are off"), "{out}");
    // An https IP address: passkeys off is a warning only.
    let (ok, out) = check_config(dir.path(), &[("CLINIC_AUTH_PUBLIC_URL", "https://192.0.2.10")]);
    assert!(ok, "{out}");
    assert!(out.contains("warning: passkeys (\"Trust this device\") are off"), "{out}");
    let env = [("CLINIC_AUTH_PUBLIC_URL", "https://auth.clinic.example"), ("CLINIC_AUTH_COOKIE_SECURITY", "insecure")];
    let (ok, out) = check_config(dir.path(), &env);
    assert!(ok, "{out}");
    assert!(out.contains("warning: cookie_security = insecure on an https:// public_url"), "{out}");
}

#[test]
fn check_config_reports_every_bad_value_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CLINIC_AUTH_PASSWORD_MIN_LENGTH", "5"),
        ("CLINIC_AUTH_LOG_FORMAT", "xml"),
        ("CLINIC_AUTH_METRICS_LISTEN", "everywhere"),
        ("CLINIC_AUTH_EMAIL_TRANSPORT", "smtp"),
    ];
    let (ok, out) = check_config(dir.path(), &env);
    assert!(!ok);
    has_error(&out, "password_min_length must be between 8 and 64");
    has_error(&out, "log_format must be text or json");
    has_error(&out, "metrics_listen must be an address and port");
    has_error(&out, "email_transport = smtp but smtp_host is not set");
    assert!(out.contains("\n4 error(s), "), "{out}");
    // Every other command stops at the first.
    let (ok, _, err) = cli(dir.path(), &["org", "list"], &env, None);
    assert!(!ok && err.contains("log_format must be text or json"), "{err}");
    // JSON for scripts.
    let (ok, out, _) = cli(dir.path(), &["check-config", "--json"], &env, None);
    assert!(!ok);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 4, "{v}");
}

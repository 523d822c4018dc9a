//! The `clinic-auth` command line, run as operators and scripts run it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_clinic-auth");

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("CLINIC_AUTH_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = run(dir, &all, stdin);
    (ok, serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("not JSON: {out:?} {err}")))
}

#[test]
fn help_documents_every_command() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "org", "member", "patient", "platform-admin", "password-reset"] {
        assert!(help.contains(cmd), "--help lists {cmd}");
    }
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--listen", "--data-dir", "--database-url", "--config", "CLINIC_AUTH_LISTEN", "CLINIC_AUTH_DATA_DIR"] {
        assert!(help.contains(flag), "serve --help documents {flag}");
    }
}

#[test]
fn operators_create_organizations_members_and_admins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, v) = json(d, &["migrate"], None);
    assert!(ok && v["migrated"] == true);
    let (ok, org) = json(d, &["org", "create", "--name", "Riverside Clinic", "--kind", "clinic"], None);
    assert!(ok, "{org}");
    assert_eq!(org["id"], "riverside-clinic");
    assert_eq!(org["kind"], "clinic");
    let (ok, m) = json(
        d,
        &["member", "add", "--org", "riverside-clinic", "--email", "dr.lee@riverside.test", "--role", "provider"],
        None,
    );
    assert!(ok, "{m}");
    assert_eq!(m["role"], "provider");
    assert!(m["invitation_url"].as_str().unwrap().starts_with("http://localhost:8080/invite/"), "{m}");
    let (ok, m) = json(
        d,
        &[
            "member",
            "add",
            "--org",
            "riverside-clinic",
            "--email",
            "nurse@riverside.test",
            "--role",
            "staff",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    assert!(ok, "{m}");
    assert!(m.get("invitation_url").is_none(), "a given password needs no invitation");
    let (ok, e) = json(
        d,
        &[
            "member",
            "add",
            "--org",
            "riverside-clinic",
            "--email",
            "weak@riverside.test",
            "--role",
            "staff",
            "--password-stdin",
        ],
        Some("password\n"),
    );
    assert!(!ok);
    assert_eq!(e["error"]["code"], "weak_password");
    let (ok, e) = json(d, &["member", "add", "--org", "nowhere", "--email", "a@b.co", "--role", "staff"], None);
    assert!(!ok);
    assert_eq!(e["error"]["code"], "not_found");
    let (ok, p) = json(d, &["patient", "add", "--org", "riverside-clinic", "--email", "pat@example.test"], None);
    assert!(ok && p["kind"] == "patient" && p["invitation_url"].is_string(), "{p}");
    let (ok, a) = json(d, &["platform-admin", "create", "--email", "support@platform.test"], None);
    assert!(ok && a["kind"] == "platform_admin", "{a}");
    let (ok, r) = json(d, &["password-reset", "--email", "nurse@riverside.test"], None);
    assert!(ok && r["reset_url"].as_str().unwrap().contains("/reset/"), "{r}");
    // Two-factor policy from the command line.
    let (ok, e) = json(d, &["org", "mfa", "--org", "riverside-clinic", "--mode", "required"], None);
    assert!(!ok && e["error"]["code"] == "mfa_not_enabled", "{e}");
    let (ok, m) = json(
        d,
        &[
            "org",
            "mfa",
            "--org",
            "riverside-clinic",
            "--enable",
            "--mode",
            "required",
            "--methods",
            "authenticator,sms",
        ],
        None,
    );
    assert!(ok, "{m}");
    assert_eq!(
        m["mfa"],
        serde_json::json!({"enabled": true, "mode": "required", "methods": ["authenticator", "sms"], "grace_days": 0})
    );
    let (ok, m) = json(d, &["org", "mfa", "--org", "riverside-clinic", "--grace-days", "7"], None);
    assert!(ok && m["mfa"]["grace_days"] == 7, "{m}");
    let (ok, e) = json(d, &["org", "mfa", "--org", "riverside-clinic", "--grace-days", "31"], None);
    assert!(!ok, "{e}");
    let (ok, e) = json(d, &["org", "mfa", "--org", "riverside-clinic", "--methods", "fax"], None);
    assert!(!ok, "{e}");
    let (ok, m) = json(
        d,
        &[
            "member",
            "mfa",
            "--org",
            "riverside-clinic",
            "--email",
            "nurse@riverside.test",
            "--override",
            "not_required",
        ],
        None,
    );
    assert!(ok && m["mfa_override"] == "not_required", "{m}");
    let (ok, e) = json(
        d,
        &["member", "mfa", "--org", "riverside-clinic", "--email", "ghost@riverside.test", "--override", "required"],
        None,
    );
    assert!(!ok && e["error"]["code"] == "not_found", "{e}");
    let (ok, list) = json(d, &["org", "list"], None);
    assert!(ok && list.as_array().unwrap().len() == 1);
    // Text output is for people.
    let (ok, out, _) = run(d, &["org", "create", "--name", "Dr. Ng", "--kind", "solo"], None);
    assert!(ok && out.contains("with id dr-ng"), "{out}");
    let (ok, _, err) = run(d, &["org", "create", "--name", "X", "--kind", "hospital"], None);
    assert!(!ok && err.contains("hospital"));
}

#[test]
fn bad_configuration_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("clinic-auth.toml");
    std::fs::write(&cfg, "cookie_security = \"sometimes\"\n").unwrap();
    let (ok, _, err) = run(dir.path(), &["--config", cfg.to_str().unwrap(), "migrate"], None);
    assert!(!ok);
    assert!(err.contains("cookie_security"), "{err}");
    let (ok, _, err) = run(dir.path(), &["--config", "/nonexistent.toml", "migrate"], None);
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, _, err) = run(dir.path(), &["--database-url", "mysql://x", "migrate"], None);
    assert!(!ok && err.contains("unsupported database URL"), "{err}");
}

#[test]
fn codes_go_to_the_outbox_by_default_and_the_log_names_no_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(d, &["org", "create", "--name", "Riverside Clinic", "--kind", "clinic"], None);
    json(d, &["org", "mfa", "--org", "riverside-clinic", "--enable", "--mode", "required", "--methods", "email"], None);
    json(
        d,
        &[
            "member",
            "add",
            "--org",
            "riverside-clinic",
            "--email",
            "dr.lee@riverside.test",
            "--role",
            "provider",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(d)
        .env("CLINIC_AUTH_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut base = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("clinic-auth is listening on ") {
            base = Some(rest.split_whitespace().next().unwrap().to_owned());
            break;
        }
    }
    let base = base.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        clinic_auth_notify::install_default_crypto_provider();
        let http = reqwest::Client::new();
        let v: Value = http
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({"email": "dr.lee@riverside.test"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let flow = v["flow_id"].as_str().unwrap().to_owned();
        http.post(format!("{base}/api/v1/login/{flow}/password"))
            .json(&serde_json::json!({"password": "correct horse battery staple"}))
            .send()
            .await
            .unwrap();
        let r = http.post(format!("{base}/api/v1/login/{flow}/enroll/email")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    });
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let outbox = d.join("outbox").join("email");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one message in {}", outbox.display());
    let message = std::fs::read_to_string(&files[0]).unwrap();
    let captured = clinic_auth_notify::testkit::CapturedEmail {
        from: String::new(),
        to: vec![],
        data: message,
        auth_username: None,
    };
    let code = captured.find_code().expect("code in the outbox message's text part");
    assert!(captured.subject().unwrap().contains("Riverside Clinic"));
    assert!(log.contains("outbox"), "the log says where codes go: {log}");
    assert!(!log.contains(&code), "the log never holds the code");
}

#[test]
fn data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, _, err) = run(&data, &["migrate"], None);
    assert!(ok, "{err}");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(data.join("clinic-auth.db").exists());
}

#[test]
fn support_commands_and_audit_verify_catch_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _) = json(d, &["org", "create", "--name", "Riverside Clinic", "--kind", "clinic"], None);
    assert!(ok);
    let (ok, v) = json(d, &["org", "mfa", "--org", "riverside-clinic", "--enable", "--mode", "required"], None);
    assert!(ok, "{v}");
    let add = ["member", "add", "--org", "riverside-clinic", "--email", "dr.lee@riverside.test", "--role", "provider"];
    assert!(json(d, &add, None).0);

    let (ok, st) = json(d, &["member", "status", "--email", "dr.lee@riverside.test"], None);
    assert!(ok, "{st}");
    assert_eq!((st["factors"].as_array().map(Vec::len), st["mfa_required"].as_bool()), (Some(0), Some(true)));
    let (ok, b) = json(d, &["member", "bypass", "--email", "dr.lee@riverside.test"], None);
    assert!(ok && b["expires_at"].is_i64(), "{b}");
    let (_, st) = json(d, &["member", "status", "--email", "dr.lee@riverside.test"], None);
    assert_eq!(st["bypass_pending"], true);
    let (ok, r) = json(
        d,
        &["member", "reset-mfa", "--email", "dr.lee@riverside.test", "--verified-by", "video call with badge"],
        None,
    );
    assert!(ok && r["removed_factors"] == 0, "{r}");
    let (ok, e) = json(d, &["member", "reset-mfa", "--email", "nobody@riverside.test", "--verified-by", "x"], None);
    assert!(!ok && e["error"]["code"] == "not_found", "{e}");

    let (ok, out, _) = run(d, &["audit", "export", "--org", "riverside-clinic"], None);
    assert!(ok);
    assert!(out.starts_with("id,time,organization,event,outcome"), "{out}");
    assert!(out.contains("\"bypass_granted\"") && out.contains("video call with badge"), "{out}");
    let kinds: Vec<&str> = out.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().trim_matches('"')).collect();
    let (granted, reset) =
        (kinds.iter().position(|k| *k == "bypass_granted"), kinds.iter().position(|k| *k == "mfa_reset"));
    assert!(granted.is_some() && granted < reset, "oldest first: {kinds:?}");
    // The JSON export is one array, the same events in the same order.
    let (ok, v) = json(d, &["audit", "export", "--org", "riverside-clinic"], None);
    let listed: Vec<&str> = v.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(ok && listed == kinds, "{v}");
    let (ok, v) = json(d, &["audit", "verify"], None);
    assert!(ok && v["intact"] == true, "{v}");

    // Someone with the database file rewrites history: verify says so and fails.
    let db = d.join("clinic-auth.db");
    assert!(db.exists(), "the SQLite file lives in the data directory");
    let url = format!("sqlite:{}", db.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE audit_events SET detail = '{}' WHERE kind = 'mfa_reset'").execute(&pool).await.unwrap();
        pool.close().await;
    });
    let (ok, v) = json(d, &["audit", "verify"], None);
    assert!(!ok, "a tampered trail exits non-zero: {v}");
    assert_eq!(v["error"]["code"], "error");
    assert!(v["error"]["message"].as_str().unwrap().contains("was changed after it was written"), "{v}");
    let (ok, _, err) = run(d, &["audit", "verify"], None);
    assert!(!ok);
    assert!(err.contains("failed verification"), "{err}");
}

#[test]
fn a_rekey_request_and_migrate_do_not_launder_a_tampered_trail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(json(d, &["org", "create", "--name", "Riverside Clinic", "--kind", "clinic"], None).0);
    for email in ["a@riverside.test", "b@riverside.test", "c@riverside.test"] {
        let add = ["member", "add", "--org", "riverside-clinic", "--email", email, "--role", "staff"];
        assert!(json(d, &add, None).0);
    }
    assert!(json(d, &["audit", "verify"], None).0);
    sqlite(d, "UPDATE audit_events SET outcome = 'failure' WHERE chain = 'riverside-clinic' AND seq = 2");
    sqlite(d, "DELETE FROM audit_events WHERE chain = 'riverside-clinic' AND seq = 3");
    let (ok, v) = json(d, &["audit", "verify"], None);
    assert!(!ok, "{v}");
    sqlite(d, "INSERT INTO audit_rekey_pending (id) VALUES (1)");
    let (ok, v) = json(d, &["migrate"], None);
    assert!(ok, "{v}");
    let (ok, v) = json(d, &["audit", "verify"], None);
    assert!(!ok, "the edit and the deletion are still reported: {v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("#2) was changed") && message.contains("audit_rekey_pending"), "{message}");
}

/// Reads one value from the SQLite file the command line uses.
fn sqlite(d: &std::path::Path, sql: &'static str) -> Vec<(i64, String)> {
    let url = format!("sqlite:{}", d.join("clinic-auth.db").display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Row;
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.iter()
            .map(|r| (r.try_get::<i64, _>(0).unwrap_or(0), r.try_get::<String, _>(1).unwrap_or_default()))
            .collect()
    })
}

#[test]
fn audit_checkpoint_catches_newest_events_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(json(d, &["org", "create", "--name", "Riverside Clinic", "--kind", "clinic"], None).0);
    let cp = d.join("audit-checkpoint.json");
    let cp_arg = cp.to_str().unwrap();
    let (ok, v) = json(d, &["audit", "verify", "--checkpoint", cp_arg], None);
    assert!(ok, "{v}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert_eq!(saved["riverside-clinic"]["seq"], 1, "{saved}");

    // Two more events; the next run checks the old checkpoint and moves it on.
    let add = ["member", "add", "--org", "riverside-clinic", "--email", "a@riverside.test", "--role", "staff"];
    assert!(json(d, &add, None).0);
    let add = ["member", "add", "--org", "riverside-clinic", "--email", "b@riverside.test", "--role", "staff"];
    assert!(json(d, &add, None).0);
    assert!(json(d, &["audit", "verify", "--checkpoint", cp_arg], None).0);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert_eq!(saved["riverside-clinic"]["seq"], 3, "{saved}");

    // The newest event deleted and the head set back to the one before: only the
    // checkpoint notices.
    let rows = sqlite(d, "SELECT seq, hash FROM audit_events WHERE chain = 'riverside-clinic' ORDER BY seq DESC");
    let (seq, hash) = rows[1].clone();
    let url = format!("sqlite:{}", d.join("clinic-auth.db").display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM audit_events WHERE chain = 'riverside-clinic' AND seq = 3")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_chain_heads SET seq = ?1, hash = ?2 WHERE chain = 'riverside-clinic'")
            .bind(seq)
            .bind(&hash)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    assert!(json(d, &["audit", "verify"], None).0, "without a checkpoint a clean cut looks intact");
    let (ok, v) = json(d, &["audit", "verify", "--checkpoint", cp_arg], None);
    assert!(!ok, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("events were cut off"), "{v}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert_eq!(saved["riverside-clinic"]["seq"], 3, "a failed run leaves the checkpoint alone");
}

#[test]
fn operators_register_clinic_apps_and_rotate_signing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _) = json(d, &["org", "create", "--name", "Riverside", "--kind", "clinic"], None);
    assert!(ok);
    let (ok, v) = json(
        d,
        &[
            "oidc",
            "client",
            "create",
            "--name",
            "Riverside EHR",
            "--redirect-uri",
            "https://ehr.riverside.example/cb",
            "--redirect-uri",
            "http://127.0.0.1:8081/cb",
            "--backchannel-logout-uri",
            "https://ehr.riverside.example/logout",
            "--confidential",
            "--org",
            "riverside",
            "--require-mfa",
        ],
        None,
    );
    assert!(ok, "{v}");
    let client_id = v["client_id"].as_str().unwrap().to_owned();
    assert_eq!(v["client_secret"].as_str().unwrap().len(), 43);
    assert_eq!(v["org_id"], "riverside");
    assert_eq!(v["require_mfa"], true);
    assert_eq!(v["redirect_uris"].as_array().unwrap().len(), 2);

    let (ok, v) = json(
        d,
        &[
            "oidc",
            "client",
            "create",
            "--name",
            "Portal",
            "--redirect-uri",
            "https://portal.example/cb",
            "--public",
            "--patients",
        ],
        None,
    );
    assert!(ok, "{v}");
    assert!(v.get("client_secret").is_none(), "a public app has no secret: {v}");
    assert_eq!(v["realm"], "patient");

    // Plain http is for loopback only; an unknown organization is refused.
    let (ok, out, err) = run(
        d,
        &["oidc", "client", "create", "--name", "Bad", "--redirect-uri", "http://ehr.example/cb", "--public"],
        None,
    );
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("https://"), "{err}");
    let (ok, _, err) = run(
        d,
        &[
            "oidc",
            "client",
            "create",
            "--name",
            "Bad",
            "--redirect-uri",
            "https://ehr.example/cb",
            "--public",
            "--org",
            "nowhere",
        ],
        None,
    );
    assert!(!ok && err.to_lowercase().contains("organization"), "{err}");
    // One of --public and --confidential is required.
    let (ok, _, _) =
        run(d, &["oidc", "client", "create", "--name", "X", "--redirect-uri", "https://x.example/cb"], None);
    assert!(!ok);

    let (ok, v) = json(d, &["oidc", "client", "list"], None);
    assert!(ok);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|c| c["client_id"] == client_id.as_str()));
    assert!(list.iter().all(|c| c.get("client_secret").is_none()), "the secret is never listed");

    let (ok, first) = json(d, &["oidc", "keys", "rotate"], None);
    assert!(ok);
    let (ok, second) = json(d, &["oidc", "keys", "rotate"], None);
    assert!(ok);
    assert_eq!(first["kids"].as_array().unwrap().len(), 2, "an RS256 and an ES256 key");
    assert_ne!(first["kids"], second["kids"]);
}

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
    assert!(m["invitation_url"].as_str().unwrap().starts_with("http://127.0.0.1:8080/invite/"));
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

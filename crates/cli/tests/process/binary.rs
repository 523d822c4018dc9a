//! The real `clinic-auth` binary as a child process: `serve` on a random loopback port,
//! or one command, on a database from the shared harness. Only this package's tests get
//! the binary's path (`CARGO_BIN_EXE_clinic-auth`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

/// The encryption keyring of every `clinic-auth` process a test starts: all instances
/// (and CLI runs) on one database must share it, across restarts too.
pub const SERVER_KEY: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A real `clinic-auth serve` child process on `127.0.0.1:0`; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    /// The data directory (outboxes for codes and notices), apart from the database.
    _data: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the binary on `database_url` and waits until it prints its address.
    pub fn start(database_url: &str) -> ServerProcess {
        let data = tempfile::tempdir().expect("data dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_clinic-auth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url])
            .arg("--data-dir")
            .arg(data.path())
            .env("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)
            .env("CLINIC_AUTH_LOG_LEVEL", "warn")
            // Tests run side by side: none takes the default metrics port.
            .env("CLINIC_AUTH_METRICS_LISTEN", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start clinic-auth serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut base = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read server output");
            if let Some(rest) = line.strip_prefix("clinic-auth is listening on ") {
                base = Some(rest.split_whitespace().next().expect("address").to_owned());
                break;
            }
        }
        ServerProcess { child, base: base.expect("server printed its address"), _data: data }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `clinic-auth` command (not `serve`) on `database_url` with the servers' key;
/// returns (exit status success, stdout, stderr).
pub fn run_cli(database_url: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let data = tempfile::tempdir().expect("data dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clinic-auth"))
        .args(args)
        .args(["--database-url", database_url])
        .arg("--data-dir")
        .arg(data.path())
        .env("CLINIC_AUTH_ENCRYPTION_KEY", SERVER_KEY)
        .env("CLINIC_AUTH_LOG_LEVEL", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run clinic-auth");
    let input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        let mut input = input;
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("clinic-auth output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

//! The `clinic-auth` binary run as a child process: its command line, a server killed
//! mid-load and restarted, and two servers on one database. Cargo gives the binary's
//! path (`CARGO_BIN_EXE_clinic-auth`) only to this package's tests, so these stay here;
//! the HTTP suite is `crates/web/tests/http`, whose harness they share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

// The HTTP suite's harness, included rather than copied. This suite uses only part of
// it (TestDb, Backend, PASSWORD, and TestApp to set up and inspect a database); the
// rest (csrf_of, most of TestApp's request helpers) is used by the HTTP suite only, so
// dead code is allowed here rather than in the shared file.
#[allow(dead_code)]
#[path = "../../../web/tests/http/harness.rs"]
mod harness;
// The HTTP suite's independent TOTP, which the harness and these tests use.
#[path = "../../../web/tests/http/otp.rs"]
mod otp;

mod binary;

mod cli;
mod crash;
mod multi_process;
mod operations;

//! The integration suite: the real application over HTTP, on SQLite and PostgreSQL.
//!
//! The tests that run the `clinic-auth` binary as a child process are in
//! `crates/cli/tests/process`, which shares `harness.rs` and `otp.rs` with this suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

mod admin;
mod admin_pages;
mod administration;
mod asvs;
mod asvs_checks;
mod bad_input;
mod branding;
mod codes;
mod email_change;
mod grace;
mod health;
mod invitations;
mod mfa;
mod my_sessions;
mod oidc;
mod oidc_logout;
mod openapi;
mod operations;
mod otp;
mod pages;
mod passkeys;
mod passwords;
mod resets;
mod security;
mod sessions;
mod sign_in;
mod throttling;

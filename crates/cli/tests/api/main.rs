//! The integration suite: the real application over HTTP, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

mod admin;
mod admin_pages;
mod administration;
mod asvs;
mod asvs_checks;
mod bad_input;
mod cli;
mod codes;
mod crash;
mod health;
mod invitations;
mod mfa;
mod multi_process;
mod openapi;
mod otp;
mod pages;
mod passkeys;
mod resets;
mod security;
mod sessions;
mod sign_in;
mod throttling;

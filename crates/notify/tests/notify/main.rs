//! Integration tests: the real senders against the testkit's fake SMTP server and Twilio API, and
//! the outboxes against a temporary directory. One test binary (see CONVENTIONS.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod logs;
mod outbox;
mod smtp;
mod twilio;

use clinic_auth_notify::{CodeMessage, CodePurpose};

pub const CODE: &str = "123456";

pub fn msg(org_name: &str) -> CodeMessage<'_> {
    CodeMessage { org_name, code: CODE, valid_minutes: 10, purpose: CodePurpose::SignIn, logo_url: None }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

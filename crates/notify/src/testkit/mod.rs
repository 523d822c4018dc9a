//! Fake providers for tests: a real SMTP server ([`SmtpCapture`]) and a Twilio Messages API
//! ([`TwilioFake`]), both on 127.0.0.1 with a random port, recording what they receive.
//!
//! ```ignore
//! let smtp = SmtpCapture::start().await;
//! let email = SmtpSender::new(SmtpConfig { host: "127.0.0.1".into(), port: smtp.addr().port(),
//!     tls: SmtpTls::None, /* … */ })?;
//! // … the app sends a code …
//! let code = smtp.wait_for(1, Duration::from_secs(5)).await[0].find_code().unwrap();
//! ```
//!
//! Both servers stop when dropped.

mod mime;
mod smtp_capture;
mod twilio_fake;

pub use smtp_capture::{CapturedEmail, SmtpCapture};
pub use twilio_fake::{TwilioFake, TwilioRequest};

/// The first run of exactly six ASCII digits in `text`.
pub fn find_six_digit_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut start = None;
    for (i, b) in bytes.iter().enumerate().chain(std::iter::once((bytes.len(), &b' '))) {
        match (b.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s == 6 {
                    return text.get(s..i).map(str::to_owned);
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

/// Polls `read` until it holds at least `n` items or `timeout` passes; returns what it last read.
async fn poll_until<T>(n: usize, timeout: std::time::Duration, read: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let items = read();
        if items.len() >= n || tokio::time::Instant::now() >= deadline {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_six_digits() {
        assert_eq!(find_six_digit_code("code is 123456."), Some("123456".to_owned()));
        assert_eq!(find_six_digit_code("1234567 then 654321"), Some("654321".to_owned()));
        assert_eq!(find_six_digit_code("ends 000111"), Some("000111".to_owned()));
        assert_eq!(find_six_digit_code("12345 no"), None);
    }
}

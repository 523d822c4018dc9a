//! A small SMTP server (RFC 5321 without TLS) that keeps every message it is given.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::mime::Entity;
use super::{find_six_digit_code, poll_until};

/// Longest message kept; anything longer is refused with 552.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Longest command line.
const MAX_LINE_BYTES: u64 = 4096;

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedEmail {
    /// The `MAIL FROM` address, without angle brackets.
    pub from: String,
    /// The `RCPT TO` addresses, without angle brackets.
    pub to: Vec<String>,
    /// The raw message after dot-unstuffing, CRLF line ends, without the final `.` line.
    pub data: String,
    /// The user name the client authenticated as (AUTH PLAIN or LOGIN), if it did.
    pub auth_username: Option<String>,
}

impl CapturedEmail {
    /// A header of the message (any case), unfolded and with RFC 2047 encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        Entity::parse(&self.data).header(name)
    }

    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The first `text/plain` part, transfer encoding undone, line ends `\n`.
    pub fn text_body(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The first `text/html` part, transfer encoding undone, line ends `\n`.
    pub fn html_body(&self) -> Option<String> {
        self.part("text/html")
    }

    /// The content types of the message's leaf parts, e.g. `["text/plain", "text/html"]`.
    pub fn part_types(&self) -> Vec<String> {
        Entity::parse(&self.data).leaves().into_iter().map(|(t, _)| t).collect()
    }

    /// The six-digit code in the plain-text part.
    pub fn find_code(&self) -> Option<String> {
        find_six_digit_code(&self.text_body()?)
    }

    fn part(&self, mime_type: &str) -> Option<String> {
        Entity::parse(&self.data).leaves().into_iter().find(|(t, _)| t == mime_type).map(|(_, body)| body)
    }
}

#[derive(Default)]
struct State {
    messages: Vec<CapturedEmail>,
    failing: Option<u16>,
    connections: usize,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An SMTP server on 127.0.0.1 for tests. Advertises `8BITMIME`, `SMTPUTF8` and `AUTH PLAIN LOGIN`
/// (any credentials pass; the user name is recorded), never `STARTTLS`, so use [`crate::SmtpTls::None`].
pub struct SmtpCapture {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl Drop for SmtpCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for SmtpCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpCapture").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl SmtpCapture {
    /// Starts the server on a random port of 127.0.0.1.
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound (a broken test machine).
    #[allow(clippy::expect_used)]
    pub async fn start() -> SmtpCapture {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0 for SmtpCapture");
        let addr = listener.local_addr().expect("SmtpCapture listener address");
        let state = Shared::default();
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                lock(&accept_state).connections += 1;
                tokio::spawn(session(stream, accept_state.clone()));
            }
        });
        SmtpCapture { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<CapturedEmail> {
        lock(&self.state).messages.clone()
    }

    /// Waits until at least `n` messages have arrived or `timeout` has passed, and returns all
    /// messages received by then (check the length).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedEmail> {
        poll_until(n, timeout, || self.messages()).await
    }

    /// `Some(code)` makes the server answer `RCPT TO` with that reply code (e.g. 550 for a refused
    /// mailbox, 451 for a temporary failure); `None` accepts again.
    pub fn set_failing(&self, code: Option<u16>) {
        lock(&self.state).failing = code;
    }

    /// How many connections the server has accepted.
    pub fn connections(&self) -> usize {
        lock(&self.state).connections
    }
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

async fn session(stream: TcpStream, state: Shared) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut auth_username: Option<String> = None;
    let mut tx = Transaction::default();

    macro_rules! reply {
        ($($arg:tt)*) => {
            if write.write_all(format!($($arg)*).as_bytes()).await.is_err() {
                return;
            }
        };
    }

    reply!("220 smtp-capture.test ESMTP SmtpCapture\r\n");
    loop {
        let Some(line) = read_line(&mut reader).await else { return };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => reply!(
                "250-smtp-capture.test greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n\
                 250 SIZE {MAX_MESSAGE_BYTES}\r\n"
            ),
            "HELO" => reply!("250 smtp-capture.test\r\n"),
            "AUTH" => {
                let mut words = arg.split_whitespace();
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_owned);
                let user = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(r) => Some(r),
                            None => {
                                reply!("334 \r\n");
                                read_line(&mut reader).await
                            }
                        };
                        let Some(response) = response else { return };
                        let decoded = STANDARD.decode(response.trim()).unwrap_or_default();
                        // authzid NUL authcid NUL password
                        decoded.split(|b| *b == 0).nth(1).map(|u| String::from_utf8_lossy(u).into_owned())
                    }
                    "LOGIN" => {
                        let user = match initial {
                            Some(r) => Some(r),
                            None => {
                                reply!("334 VXNlcm5hbWU6\r\n");
                                read_line(&mut reader).await
                            }
                        };
                        let Some(user) = user else { return };
                        reply!("334 UGFzc3dvcmQ6\r\n");
                        if read_line(&mut reader).await.is_none() {
                            return;
                        }
                        STANDARD.decode(user.trim()).ok().map(|u| String::from_utf8_lossy(&u).into_owned())
                    }
                    _ => {
                        reply!("504 5.5.4 Unrecognized authentication type\r\n");
                        continue;
                    }
                };
                match user {
                    Some(user) => {
                        auth_username = Some(user);
                        reply!("235 2.7.0 Authentication successful\r\n");
                    }
                    None => reply!("501 5.5.2 Cannot decode response\r\n"),
                }
            }
            "MAIL" => match address_after(&arg, "FROM:") {
                Some(from) => {
                    tx = Transaction { from: Some(from), to: Vec::new() };
                    reply!("250 2.1.0 Ok\r\n");
                }
                None => reply!("501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            },
            "RCPT" => {
                if tx.from.is_none() {
                    reply!("503 5.5.1 Error: need MAIL command\r\n");
                    continue;
                }
                let failing = lock(&state).failing;
                match (address_after(&arg, "TO:"), failing) {
                    (None, _) => reply!("501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
                    (Some(to), Some(code)) => {
                        // Like real servers, quote the address: senders must not pass this on.
                        let class = if code >= 500 { 5 } else { 4 };
                        reply!("{code} {class}.1.1 <{to}>: Recipient address rejected by SmtpCapture\r\n");
                    }
                    (Some(to), None) => {
                        tx.to.push(to);
                        reply!("250 2.1.5 Ok\r\n");
                    }
                }
            }
            "DATA" => {
                if tx.to.is_empty() {
                    reply!("503 5.5.1 Error: need RCPT command\r\n");
                    continue;
                }
                reply!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let Some(data) = read_data(&mut reader).await else { return };
                let Some(data) = data else {
                    tx = Transaction::default();
                    reply!("552 5.3.4 Message too big\r\n");
                    continue;
                };
                let id = format!("{:010X}", rand::random::<u64>() & 0xFF_FFFF_FFFF);
                let email = CapturedEmail {
                    from: tx.from.take().unwrap_or_default(),
                    to: std::mem::take(&mut tx.to),
                    data,
                    auth_username: auth_username.clone(),
                };
                lock(&state).messages.push(email);
                reply!("250 2.0.0 Ok: queued as {id}\r\n");
            }
            "RSET" => {
                tx = Transaction::default();
                reply!("250 2.0.0 Ok\r\n");
            }
            "NOOP" => reply!("250 2.0.0 Ok\r\n"),
            "VRFY" => reply!("252 2.0.0 Cannot VRFY user\r\n"),
            "QUIT" => {
                reply!("221 2.0.0 Bye\r\n");
                let _ = write.shutdown().await;
                return;
            }
            "STARTTLS" => reply!("454 4.7.0 TLS not available\r\n"),
            _ => reply!("502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b` (also without brackets, and `<>` for the null sender).
fn address_after(arg: &str, keyword: &str) -> Option<String> {
    let rest = arg.get(..keyword.len()).filter(|k| k.eq_ignore_ascii_case(keyword)).and(arg.get(keyword.len()..))?;
    let rest = rest.trim_start();
    let address = match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>')?.0,
        None => rest.split_whitespace().next()?,
    };
    Some(address.to_owned())
}

/// One command line without its CRLF; `None` at end of stream or on an over-long line.
async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<String> {
    let mut buf = Vec::new();
    let n = (&mut *reader).take(MAX_LINE_BYTES).read_until(b'\n', &mut buf).await.ok()?;
    if n == 0 || buf.last() != Some(&b'\n') {
        return None;
    }
    let line = String::from_utf8_lossy(&buf);
    Some(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The DATA section up to `CRLF.CRLF`, dot-unstuffed, with CRLF line ends. `None` when the
/// connection ends first; `Some(None)` when it is too big (it is read to the end and dropped).
async fn read_data<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Option<String>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let unstuffed = match line.strip_prefix(b".") {
            Some(rest) => rest,
            None => line.as_slice(),
        };
        if data.len() + unstuffed.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        }
        if !too_big {
            data.extend_from_slice(unstuffed);
        }
    }
    if too_big {
        return Some(None);
    }
    Some(Some(String::from_utf8_lossy(&data).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_addresses() {
        assert_eq!(address_after("FROM:<a@b.test> BODY=8BITMIME", "FROM:"), Some("a@b.test".to_owned()));
        assert_eq!(address_after("from: <a@b.test>", "FROM:"), Some("a@b.test".to_owned()));
        assert_eq!(address_after("TO:a@b.test", "TO:"), Some("a@b.test".to_owned()));
        assert_eq!(address_after("FROM:<>", "FROM:"), Some(String::new()));
        assert_eq!(address_after("XX:<a@b.test>", "TO:"), None);
    }

    #[tokio::test]
    async fn speaks_smtp_with_dot_stuffing_and_several_messages() {
        let capture = SmtpCapture::start().await;
        let stream = TcpStream::connect(capture.addr()).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut expect = async |prefix: &str| {
            loop {
                let line = read_line(&mut reader).await.unwrap();
                if line.as_bytes().get(3) != Some(&b'-') {
                    assert!(line.starts_with(prefix), "expected {prefix}, got {line}");
                    break;
                }
            }
        };
        expect("220").await;
        for (cmd, answer) in [
            ("EHLO me\r\n", "250"),
            ("AUTH PLAIN AHVzZXIAcGFzcw==\r\n", "235"),
            ("NOOP\r\n", "250"),
            ("RCPT TO:<x@y.test>\r\n", "503"),
            ("MAIL FROM:<a@b.test>\r\n", "250"),
            ("RSET\r\n", "250"),
            ("MAIL FROM:<a@b.test>\r\n", "250"),
            ("RCPT TO:<x@y.test>\r\n", "250"),
            ("RCPT TO:<z@y.test>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: hi\r\n\r\n..leading dot\r\n.\r\n", "250"),
            ("MAIL FROM:<c@b.test>\r\n", "250"),
            ("RCPT TO:<x@y.test>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: two\r\n\r\nbody\r\n.\r\n", "250"),
            ("QUIT\r\n", "221"),
        ] {
            write.write_all(cmd.as_bytes()).await.unwrap();
            expect(answer).await;
        }
        let messages = capture.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].to, vec!["x@y.test".to_owned(), "z@y.test".to_owned()]);
        assert_eq!(messages[0].data, "Subject: hi\r\n\r\n.leading dot\r\n");
        assert_eq!(messages[0].auth_username.as_deref(), Some("user"));
        assert_eq!(messages[1].from, "c@b.test");
        assert_eq!(messages[1].subject().as_deref(), Some("two"));
    }
}

use std::sync::Arc;
use std::time::Duration;

use clinic_auth_notify::testkit::SmtpCapture;
use clinic_auth_notify::{
    CodeMessage, CodePurpose, DeliveryError, EmailSender, SmtpConfig, SmtpSender, SmtpTls, sms_text,
};

use crate::{CODE, closed_port, logs, msg};

const WAIT: Duration = Duration::from_secs(5);
const TO: &str = "dana@riverside.test";

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Clinic Auth <no-reply@example.org>".to_owned(),
        code_in_subject: false,
        timeout_secs: 5,
    }
}

fn assert_no_secrets(e: &DeliveryError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(CODE), "{text}");
    assert!(!text.contains(TO), "{text}");
}

#[tokio::test]
async fn sign_in_code_arrives_with_sender_recipient_and_both_parts() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();

    let delivered = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();

    let mail = capture.wait_for(1, WAIT).await.pop().unwrap();
    assert_eq!(mail.from, "no-reply@example.org");
    assert_eq!(mail.to, vec![TO.to_owned()]);
    assert_eq!(mail.header("From").as_deref(), Some("\"Clinic Auth\" <no-reply@example.org>"));
    assert_eq!(mail.header("To").as_deref(), Some(TO));
    assert_eq!(mail.subject().as_deref(), Some("Your Riverside Clinic verification code"));
    assert!(!mail.subject().unwrap().contains(CODE));
    assert!(mail.header("Message-ID").is_some());
    assert!(mail.header("Date").is_some());
    assert_eq!(mail.part_types(), vec!["text/plain".to_owned(), "text/html".to_owned()]);
    assert_eq!(mail.find_code().as_deref(), Some(CODE));
    let text = mail.text_body().unwrap();
    assert!(text.contains("Your Authentication Code expires 10 minutes after it is sent."), "{text}");
    assert!(text.contains("clinic's administrator"), "{text}");
    assert!(mail.html_body().unwrap().contains(CODE));
    assert_eq!(mail.auth_username, None);
    // The capture answers "250 2.0.0 Ok: queued as <10 hex digits>".
    let id = delivered.provider_id.unwrap();
    assert_eq!(id.len(), 10, "{id}");
}

#[tokio::test]
async fn code_is_in_the_subject_only_when_configured() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(SmtpConfig { code_in_subject: true, ..config(capture.addr().port()) }).unwrap();

    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();

    let mail = capture.wait_for(1, WAIT).await.pop().unwrap();
    assert_eq!(mail.subject().as_deref(), Some("123456 is your Riverside Clinic verification code"));
}

#[tokio::test]
async fn credentials_are_used_when_configured() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(SmtpConfig {
        username: Some("mailer@example.org".to_owned()),
        password: Some("s3cret".to_owned()),
        ..config(capture.addr().port())
    })
    .unwrap();
    assert!(sender.describe().contains("authenticated"));

    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();

    let mail = capture.wait_for(1, WAIT).await.pop().unwrap();
    assert_eq!(mail.auth_username.as_deref(), Some("mailer@example.org"));
}

#[tokio::test]
async fn html_part_escapes_the_org_name() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();

    sender.send_code(TO, &msg("Smith & <Jones> Care")).await.unwrap();

    let mail = capture.wait_for(1, WAIT).await.pop().unwrap();
    let html = mail.html_body().unwrap();
    assert!(html.contains("Smith &amp; &lt;Jones&gt; Care"), "{html}");
    assert!(!html.contains("<Jones>"), "{html}");
    assert!(mail.text_body().unwrap().contains("Smith & <Jones> Care"));
    assert_eq!(mail.subject().as_deref(), Some("Your Smith & <Jones> Care verification code"));
}

#[tokio::test]
async fn non_ascii_org_name_survives_the_transfer_encodings() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();
    let org = "Clínica São José – Pediatría";

    sender.send_code(TO, &msg(org)).await.unwrap();

    let mail = capture.wait_for(1, WAIT).await.pop().unwrap();
    assert!(mail.data.is_ascii(), "lettre should encode the body, not send 8-bit");
    assert_eq!(mail.subject().unwrap(), format!("Your {org} verification code"));
    assert!(mail.text_body().unwrap().contains(org));
    assert!(mail.html_body().unwrap().contains(org));
    assert_eq!(mail.find_code().as_deref(), Some(CODE));
}

#[tokio::test]
async fn setup_code_asks_to_confirm_the_address() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();
    let setup = CodeMessage { purpose: CodePurpose::Setup, ..msg("Riverside Clinic") };

    sender.send_code(TO, &setup).await.unwrap();

    let text = capture.wait_for(1, WAIT).await.pop().unwrap().text_body().unwrap();
    assert!(text.contains("confirm this email address"), "{text}");
}

#[tokio::test]
async fn several_messages_each_get_their_own_connection() {
    let capture = SmtpCapture::start().await;
    let sender: Arc<dyn EmailSender> = Arc::new(SmtpSender::new(config(capture.addr().port())).unwrap());

    for to in ["a@riverside.test", "b@riverside.test", "c@riverside.test"] {
        sender.send_code(to, &msg("Riverside Clinic")).await.unwrap();
    }

    let mails = capture.wait_for(3, WAIT).await;
    let recipients: Vec<_> = mails.iter().map(|m| m.to.join(",")).collect();
    assert_eq!(recipients, ["a@riverside.test", "b@riverside.test", "c@riverside.test"]);
    assert_eq!(capture.connections(), 3);
}

#[tokio::test]
async fn closed_port_is_temporary() {
    let sender = SmtpSender::new(config(closed_port())).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Temporary(_)), "{err:?}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn refused_mailbox_is_rejected_without_quoting_the_address() {
    let capture = SmtpCapture::start().await;
    capture.set_failing(Some(550));
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(&err, DeliveryError::Rejected(reason) if reason.contains("550")), "{err:?}");
    assert_no_secrets(&err);
    assert!(capture.messages().is_empty());
}

#[tokio::test]
async fn deferred_mailbox_is_temporary() {
    let capture = SmtpCapture::start().await;
    capture.set_failing(Some(451));
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(&err, DeliveryError::Temporary(reason) if reason.contains("451")), "{err:?}");
    assert_no_secrets(&err);

    capture.set_failing(None);
    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();
    assert_eq!(capture.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn invalid_address_is_rejected_before_connecting() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();

    let err = sender.send_code("dana at riverside", &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().contains("dana"));
    assert_eq!(capture.connections(), 0);
}

#[tokio::test]
async fn logs_name_the_masked_recipient_and_never_the_code() {
    let capture = SmtpCapture::start().await;
    let sender = SmtpSender::new(config(capture.addr().port())).unwrap();
    let (logs, _guard) = logs::capture();

    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();
    capture.set_failing(Some(550));
    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    let text = logs.text();
    assert!(text.contains("d•••@riverside.test"), "{text}");
    assert!(text.contains("smtp"), "{text}");
    assert!(!text.contains(CODE), "{text}");
    assert!(!text.contains(TO), "{text}");
    assert!(!text.contains(&sms_text(&msg("Riverside Clinic"))), "{text}");
}

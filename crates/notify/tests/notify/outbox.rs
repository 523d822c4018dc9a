use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use clinic_auth_notify::testkit::CapturedEmail;
use clinic_auth_notify::{EmailSender, OutboxEmail, OutboxSms, SmsSender, sms_text};

use crate::{CODE, msg};

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn email_outbox_writes_a_private_eml_file_that_parses_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("outbox").join("email");
    let outbox = OutboxEmail::new(dir.clone(), "Clinic Auth <no-reply@localhost>".to_owned());
    assert_eq!(outbox.describe(), format!("outbox {}", dir.display()));

    let delivered = outbox.send_code("dana@riverside.test", &msg("Riverside Clinic")).await.unwrap();

    assert_eq!(mode(&dir), 0o700);
    let files = files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert_eq!(file.extension().unwrap(), "eml");
    assert_eq!(delivered.provider_id.as_deref(), file.file_name().unwrap().to_str());
    assert_eq!(mode(file), 0o600);

    let data = std::fs::read_to_string(file).unwrap();
    assert!(data.contains("\r\n"), "RFC 5322 line ends");
    let mail = CapturedEmail { from: String::new(), to: Vec::new(), data, auth_username: None };
    assert_eq!(mail.header("To").as_deref(), Some("dana@riverside.test"));
    assert!(mail.header("From").unwrap().contains("no-reply@localhost"));
    assert_eq!(mail.subject().as_deref(), Some("Your Riverside Clinic verification code"));
    assert_eq!(mail.find_code().as_deref(), Some(CODE));
    assert!(mail.html_body().unwrap().contains(CODE));
}

#[tokio::test]
async fn sms_outbox_writes_a_private_json_file_that_parses_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sms");
    let outbox = OutboxSms::new(dir.clone());

    let delivered = outbox.send_code("+15551234567", &msg("Riverside Clinic")).await.unwrap();

    assert_eq!(mode(&dir), 0o700);
    let files = files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert_eq!(file.extension().unwrap(), "json");
    assert_eq!(delivered.provider_id.as_deref(), file.file_name().unwrap().to_str());
    assert_eq!(mode(file), 0o600);

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(json["to"], "+15551234567");
    assert_eq!(json["body"], sms_text(&msg("Riverside Clinic")));
    let created_at = json["created_at"].as_str().unwrap();
    assert!(created_at.len() == 20 && created_at.ends_with('Z') && created_at.starts_with("20"), "{created_at}");
}

#[tokio::test]
async fn each_message_gets_its_own_file() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = OutboxSms::new(tmp.path().to_owned());
    let email = OutboxEmail::new(tmp.path().to_owned(), "no-reply@localhost".to_owned());

    for _ in 0..3 {
        outbox.send_code("+15551234567", &msg("Riverside Clinic")).await.unwrap();
        email.send_code("dana@riverside.test", &msg("Riverside Clinic")).await.unwrap();
    }

    let names: Vec<String> =
        files(tmp.path()).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "no temporary files left: {names:?}");
}

#[tokio::test]
async fn email_outbox_with_a_bad_from_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = OutboxEmail::new(tmp.path().to_owned(), "not a mailbox".to_owned());

    let err = outbox.send_code("dana@riverside.test", &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(err, clinic_auth_notify::DeliveryError::Rejected(_)));
    assert!(files(tmp.path()).is_empty());
}

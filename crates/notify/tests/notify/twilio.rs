use std::sync::Arc;
use std::time::Duration;

use clinic_auth_notify::testkit::TwilioFake;
use clinic_auth_notify::{DeliveryError, SmsSender, TwilioAuth, TwilioConfig, TwilioFrom, TwilioSender, sms_text};

use crate::{CODE, closed_port, logs, msg};

const WAIT: Duration = Duration::from_secs(5);
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "auth-token-0123";
const API_KEY: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "api-key-secret";
const SERVICE: &str = "MG00112233445566778899aabbccddeeff";
const FROM: &str = "+15550001111";
const TO: &str = "+15551234567";

fn config(base_url: String) -> TwilioConfig {
    TwilioConfig {
        base_url,
        account_sid: ACCOUNT.to_owned(),
        auth: TwilioAuth::AuthToken(TOKEN.to_owned()),
        from: TwilioFrom::Number(FROM.to_owned()),
        timeout_secs: 5,
    }
}

fn assert_no_secrets(e: &DeliveryError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(CODE), "{text}");
    assert!(!text.contains(TO), "{text}");
    assert!(!text.contains("5551234567"), "{text}");
}

#[tokio::test]
async fn auth_token_and_number_send_the_expected_form() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    let sender: Arc<dyn SmsSender> = Arc::new(TwilioSender::new(config(fake.base_url())).unwrap());

    let delivered = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();

    let request = fake.wait_for(1, WAIT).await.pop().unwrap();
    assert!(request.auth_ok);
    assert_eq!(request.auth_user.as_deref(), Some(ACCOUNT));
    assert_eq!(request.account_sid, ACCOUNT);
    assert_eq!(request.status, 201);
    assert_eq!(request.to(), Some(TO));
    assert_eq!(request.field("From"), Some(FROM));
    assert_eq!(request.field("MessagingServiceSid"), None);
    assert_eq!(request.body(), Some(sms_text(&msg("Riverside Clinic")).as_str()));
    assert_eq!(
        request.body(),
        Some("Riverside Clinic: your verification code is 123456. It expires in 10 minutes. Don't share it.")
    );
    assert_eq!(request.find_code().as_deref(), Some(CODE));
    let sid = delivered.provider_id.unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
}

#[tokio::test]
async fn api_key_and_messaging_service_send_the_expected_form() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    fake.add_api_key(API_KEY, API_SECRET);
    let sender = TwilioSender::new(TwilioConfig {
        auth: TwilioAuth::ApiKey { sid: API_KEY.to_owned(), secret: API_SECRET.to_owned() },
        from: TwilioFrom::MessagingService(SERVICE.to_owned()),
        ..config(fake.base_url())
    })
    .unwrap();
    assert!(sender.describe().contains("API key"));
    assert!(sender.describe().contains(SERVICE));

    let delivered = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();

    let request = fake.wait_for(1, WAIT).await.pop().unwrap();
    assert!(request.auth_ok);
    assert_eq!(request.auth_user.as_deref(), Some(API_KEY));
    assert_eq!(request.field("MessagingServiceSid"), Some(SERVICE));
    assert_eq!(request.field("From"), None);
    assert_eq!(request.find_code().as_deref(), Some(CODE));
    assert!(delivered.provider_id.is_some());
}

#[tokio::test]
async fn wrong_auth_token_is_rejected() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    let sender = TwilioSender::new(TwilioConfig {
        auth: TwilioAuth::AuthToken("wrong-token".to_owned()),
        ..config(fake.base_url())
    })
    .unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(
        matches!(&err, DeliveryError::Rejected(reason) if reason.contains("401") && reason.contains("20003")),
        "{err:?}"
    );
    assert_no_secrets(&err);
    assert!(!fake.requests()[0].auth_ok);
}

#[tokio::test]
async fn server_error_is_temporary() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    fake.set_failing(Some(500));
    let sender = TwilioSender::new(config(fake.base_url())).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(&err, DeliveryError::Temporary(reason) if reason.contains("500")), "{err:?}");
    assert_no_secrets(&err);

    fake.set_failing(None);
    assert!(sender.send_code(TO, &msg("Riverside Clinic")).await.is_ok());
}

#[tokio::test]
async fn rate_limit_is_temporary() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    fake.set_failing(Some(429));
    let sender = TwilioSender::new(config(fake.base_url())).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(&err, DeliveryError::Temporary(reason) if reason.contains("429")), "{err:?}");
}

#[tokio::test]
async fn invalid_number_is_rejected_without_echoing_it() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    fake.set_failing(Some(400));
    let sender = TwilioSender::new(config(fake.base_url())).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    // The fake's message quotes the number, like Twilio's does.
    assert!(
        matches!(&err, DeliveryError::Rejected(reason) if reason.contains("400") && reason.contains("21211")),
        "{err:?}"
    );
    assert_no_secrets(&err);
}

#[tokio::test]
async fn unreachable_base_url_is_temporary() {
    let sender = TwilioSender::new(config(format!("http://127.0.0.1:{}", closed_port()))).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Temporary(_)), "{err:?}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn silent_server_times_out_as_temporary() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let sender =
        TwilioSender::new(TwilioConfig { timeout_secs: 1, ..config(format!("http://127.0.0.1:{port}")) }).unwrap();

    let err = sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(&err, DeliveryError::Temporary(reason) if reason.contains("in time")), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn number_that_is_not_e164_is_rejected_before_sending() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    let sender = TwilioSender::new(config(fake.base_url())).unwrap();

    let err = sender.send_code("555-123-4567", &msg("Riverside Clinic")).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().contains("555"));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn fake_checks_the_form_like_twilio() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    // With this crate linked, reqwest's default client wants a process-default rustls provider,
    // as it will in the binary.
    let _ = clinic_auth_notify::install_default_crypto_provider();
    let client = reqwest::Client::new();
    let url = format!("{}/2010-04-01/Accounts/{ACCOUNT}/Messages.json", fake.base_url());

    let missing_from =
        client.post(&url).basic_auth(ACCOUNT, Some(TOKEN)).form(&[("To", TO), ("Body", "hi")]).send().await.unwrap();
    assert_eq!(missing_from.status(), 400);
    let json: serde_json::Value = missing_from.json().await.unwrap();
    assert_eq!(json["code"], 21603);

    let missing_to = client
        .post(&url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&[("Body", "hi"), ("From", FROM)])
        .send()
        .await
        .unwrap();
    assert_eq!(missing_to.status(), 400);

    let no_auth = client.post(&url).form(&[("To", TO), ("Body", "hi"), ("From", FROM)]).send().await.unwrap();
    assert_eq!(no_auth.status(), 401);
    let json: serde_json::Value = no_auth.json().await.unwrap();
    assert_eq!(json["code"], 20003);

    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn logs_name_the_masked_number_and_never_the_code() {
    let fake = TwilioFake::start(ACCOUNT, TOKEN).await;
    let sender = TwilioSender::new(config(fake.base_url())).unwrap();
    let (logs, _guard) = logs::capture();

    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap();
    fake.set_failing(Some(400));
    sender.send_code(TO, &msg("Riverside Clinic")).await.unwrap_err();

    let text = logs.text();
    assert!(text.contains("+1••••••4567"), "{text}");
    assert!(text.contains("twilio"), "{text}");
    assert!(!text.contains(CODE), "{text}");
    assert!(!text.contains(TO), "{text}");
}

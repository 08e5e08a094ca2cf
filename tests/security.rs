//! The secure Kafka runtime, tested against the running broker: SCRAM-SHA-512 over TLS,
//! nothing else, and each principal limited by ACLs.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use ledger::kafka::topics::{COMMANDS, EVENTS};
use ledger::kafka::{KafkaSettings, Role, Security};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use support::stack;

const T: Duration = Duration::from_secs(15);

fn metadata(settings: &KafkaSettings) -> Result<usize, KafkaError> {
    metadata_with_errors(settings).0
}

/// Remembers what librdkafka reports through the error callback (authentication failures
/// arrive there, not in the metadata call's result).
#[derive(Default)]
struct Recorder {
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors
            .lock()
            .unwrap()
            .push(format!("{error}: {reason}"));
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.errors
            .lock()
            .unwrap()
            .push(format!("log {fac}: {message}"));
    }
}

impl ConsumerContext for Recorder {}

fn metadata_with_errors(settings: &KafkaSettings) -> (Result<usize, KafkaError>, Vec<String>) {
    let consumer: BaseConsumer<Recorder> = settings
        .reader()
        .create_with_context(Recorder::default())
        .expect("client");
    let result = consumer.fetch_metadata(None, T).map(|m| m.brokers().len());
    // Error events are served by poll.
    for _ in 0..10 {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
            consumer
                .context()
                .errors
                .lock()
                .unwrap()
                .push(e.to_string());
        }
    }
    let errors = consumer.context().errors.lock().unwrap().clone();
    (result, errors)
}

#[test]
fn the_right_password_over_sasl_ssl_is_accepted() {
    // The control for the refusals below: same code path, right credentials.
    for role in [
        Role::Admin,
        Role::Ledger,
        Role::Projector,
        Role::Gateway,
        Role::Cli,
    ] {
        let brokers = metadata(&stack().kafka(role)).unwrap_or_else(|e| panic!("{role:?}: {e}"));
        assert_eq!(brokers, 1);
    }
}

#[test]
fn a_wrong_password_is_refused() {
    let (result, errors) =
        metadata_with_errors(&stack().kafka_with_password(Role::Cli, "not-the-password"));
    assert!(result.is_err(), "a wrong password must not get metadata");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Authentication failed") || e.contains("invalid credentials")),
        "the broker must refuse the SCRAM authentication; errors seen: {errors:?}"
    );
}

#[test]
fn a_plaintext_client_cannot_talk_to_the_sasl_ssl_listener() {
    let mut s = stack().kafka(Role::Cli);
    s.security = Security::InsecurePlaintext;
    let (result, errors) = metadata_with_errors(&s);
    assert!(
        result.is_err(),
        "plaintext must not get metadata from the TLS listener"
    );
    // The TLS listener drops a plaintext handshake: the client never gets a usable connection.
    assert!(
        errors
            .iter()
            .any(|e| e.contains("AllBrokersDown") || e.contains("Disconnected")),
        "the broker must drop the plaintext connection; errors seen: {errors:?}"
    );
}

#[test]
fn a_client_that_does_not_trust_the_brokers_certificate_is_refused() {
    // A CA of our own that never signed the broker's certificate.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("foreign-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not-payledger",
        ])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut s = stack().kafka(Role::Cli);
    if let Security::SaslSsl { ca_location, .. } = &mut s.security {
        *ca_location = ca;
    }
    assert!(
        metadata(&s).is_err(),
        "TLS must verify the broker against the configured CA"
    );
}

/// Only the ledger may write `payments.events`: anyone else is refused by the broker.
async fn assert_cannot_write_events(role: Role) {
    let producer: FutureProducer = stack().kafka(role).producer().create().unwrap();
    let record = FutureRecord::to(EVENTS)
        .key("forged")
        .payload("forged event");
    let (err, _) = producer
        .send(record, Duration::from_secs(30))
        .await
        .expect_err("the ACL must refuse");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{role:?}: {err}"
    );
}

#[tokio::test]
async fn the_projector_cannot_write_to_the_events_topic() {
    assert_cannot_write_events(Role::Projector).await;
}

#[tokio::test]
async fn upstream_cli_cannot_write_events_and_the_ledger_cannot_create_topics() {
    assert_cannot_write_events(Role::Cli).await;
    assert_cannot_write_events(Role::Gateway).await;

    let admin: AdminClient<DefaultClientContext> =
        stack().kafka(Role::Ledger).base().create().unwrap();
    let topic = NewTopic::new("payledger.not-allowed", 1, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    match &results[0] {
        Err((_, code)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
            ),
            "{code:?}"
        ),
        Ok(name) => panic!("the ledger principal created topic {name}"),
    }
}

#[test]
fn the_projector_cannot_see_commands_but_the_cli_can() {
    let topic_error = |role| {
        let consumer: BaseConsumer = stack().kafka(role).reader().create().unwrap();
        let metadata = consumer.fetch_metadata(Some(COMMANDS), T).unwrap();
        metadata.topics()[0].error()
    };
    assert_eq!(topic_error(Role::Cli), None);
    assert_eq!(
        topic_error(Role::Projector),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );
}

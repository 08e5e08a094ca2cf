//! The secure Kafka runtime, tested against the running broker: SCRAM-SHA-512 over TLS,
//! nothing else, and each principal limited by ACLs.

mod support;

use std::time::Duration;

use ledger::kafka::topics::{COMMANDS, EVENTS};
use ledger::kafka::{KafkaSettings, Role, Security};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use support::stack;

const T: Duration = Duration::from_secs(15);

fn metadata(settings: &KafkaSettings) -> Result<usize, KafkaError> {
    let consumer: BaseConsumer = settings.reader().create()?;
    consumer.fetch_metadata(None, T).map(|m| m.brokers().len())
}

#[test]
fn the_right_password_over_sasl_ssl_is_accepted() {
    // The control for the refusals below: same code path, right credentials.
    for role in [Role::Admin, Role::Ledger, Role::Projector, Role::Gateway, Role::Cli] {
        let brokers = metadata(&stack().kafka(role)).unwrap_or_else(|e| panic!("{role:?}: {e}"));
        assert_eq!(brokers, 1);
    }
}

#[test]
fn a_wrong_password_is_refused() {
    let err = metadata(&stack().kafka_with_password(Role::Cli, "not-the-password")).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::Authentication) | Some(RDKafkaErrorCode::OperationTimedOut) | Some(RDKafkaErrorCode::AllBrokersDown)),
        "unexpected error: {text}"
    );
}

#[test]
fn a_plaintext_client_cannot_talk_to_the_sasl_ssl_listener() {
    let mut s = stack().kafka(Role::Cli);
    s.security = Security::InsecurePlaintext;
    assert!(metadata(&s).is_err(), "plaintext must not get metadata from the TLS listener");
}

#[test]
fn a_client_that_does_not_trust_the_brokers_certificate_is_refused() {
    // A CA of our own that never signed the broker's certificate.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("foreign-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not-payledger"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let mut s = stack().kafka(Role::Cli);
    if let Security::SaslSsl { ca_location, .. } = &mut s.security {
        *ca_location = ca;
    }
    assert!(metadata(&s).is_err(), "TLS must verify the broker against the configured CA");
}

#[tokio::test]
async fn the_projector_cannot_write_to_the_events_topic() {
    let producer: FutureProducer = stack().kafka(Role::Projector).producer().create().unwrap();
    let record = FutureRecord::to(EVENTS).key("forged").payload("forged event");
    let (err, _) = producer.send(record, Duration::from_secs(30)).await.expect_err("the ACL must refuse");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{err}"
    );
}

#[tokio::test]
async fn upstream_cli_cannot_write_events_and_the_ledger_cannot_create_topics() {
    let producer: FutureProducer = stack().kafka(Role::Cli).producer().create().unwrap();
    let record = FutureRecord::to(EVENTS).key("forged").payload("forged event");
    let (err, _) = producer.send(record, Duration::from_secs(30)).await.expect_err("the ACL must refuse");
    assert_eq!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::TopicAuthorizationFailed), "{err}");

    let admin: AdminClient<DefaultClientContext> = stack().kafka(Role::Ledger).base().create().unwrap();
    let topic = NewTopic::new("payledger.not-allowed", 1, TopicReplication::Fixed(1));
    let results = admin.create_topics([&topic], &AdminOptions::new()).await.unwrap();
    match &results[0] {
        Err((_, code)) => assert!(
            matches!(code, RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed),
            "{code:?}"
        ),
        Ok(name) => panic!("the ledger principal created topic {name}"),
    }
}

#[test]
fn the_projector_cannot_read_commands() {
    let consumer: BaseConsumer = stack().kafka(Role::Projector).reader().create().unwrap();
    let err = consumer.fetch_watermarks(COMMANDS, 0, T).expect_err("the ACL must refuse");
    assert!(
        matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::TopicAuthorizationFailed) | Some(RDKafkaErrorCode::UnknownTopicOrPartition)),
        "{err}"
    );
}

//! docker-compose.yml describes the same stack; every Kafka client in it uses SASL_SSL.

use std::collections::BTreeMap;

use serde_yaml::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("docker-compose.yml"))
        .expect("valid YAML")
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                };
                (k.as_str().unwrap().to_owned(), v)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| {
                i.as_str()?
                    .split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[test]
fn the_stack_has_every_part() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    for name in [
        "kafka",
        "schema-registry",
        "postgres",
        "dynamodb",
        "ledger",
        "projector",
    ] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    // Where the compose plugin exists, it must accept the file too (`config` needs no engine).
    // Where it does not (as here: no Docker engine, no plugin), the structure above is the check.
    let has_plugin = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_plugin {
        let o = std::process::Command::new("docker")
            .args([
                "compose",
                "-f",
                concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"),
                "config",
                "--quiet",
            ])
            .env("PAYLEDGER_KAFKA_PASSWORD_ADMIN", "x")
            .output()
            .expect("docker compose");
        assert!(
            o.status.success(),
            "docker compose config: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn every_kafka_client_uses_sasl_ssl_with_scram() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    let mut clients = 0;
    for (name, service) in services {
        let env = environment(service);
        if env.contains_key("PAYLEDGER_KAFKA_BOOTSTRAP") {
            clients += 1;
            assert_eq!(
                env.get("PAYLEDGER_KAFKA_SECURITY").map(String::as_str),
                Some("sasl_ssl"),
                "{name:?}"
            );
            assert!(
                env.contains_key("PAYLEDGER_KAFKA_CA"),
                "{name:?} must verify the brokers"
            );
            assert!(
                env.keys()
                    .any(|k| k.starts_with("PAYLEDGER_KAFKA_PASSWORD_")),
                "{name:?} needs its own principal"
            );
        }
    }
    assert!(
        clients >= 3,
        "ledger, projector and the CLI/demo are Kafka clients; found {clients}"
    );

    let broker = environment(&c["services"]["kafka"]);
    let protocols: BTreeMap<&str, &str> = broker["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .collect();
    for listener in broker["KAFKA_LISTENERS"].split(',') {
        let (name, address) = listener.split_once("://").unwrap();
        let protocol = protocols
            .get(name)
            .unwrap_or_else(|| panic!("listener {name} has no protocol"));
        if name == broker["KAFKA_CONTROLLER_LISTENER_NAMES"] {
            assert_eq!(
                *protocol, "SASL_PLAINTEXT",
                "the controller listener authenticates"
            );
            assert!(
                address.starts_with("127.0.0.1:"),
                "the controller listener stays on loopback"
            );
        } else {
            assert_eq!(
                *protocol, "SASL_SSL",
                "client listener {listener} must be SASL_SSL"
            );
        }
    }
    assert_eq!(broker["KAFKA_SASL_ENABLED_MECHANISMS"], "SCRAM-SHA-512");
    assert_eq!(
        broker["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"],
        "SCRAM-SHA-512"
    );
    assert_eq!(broker["KAFKA_INTER_BROKER_LISTENER_NAME"], "SASL_SSL");
    assert_eq!(broker["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"], "false");
    assert!(broker["KAFKA_AUTHORIZER_CLASS_NAME"].ends_with("StandardAuthorizer"));
}

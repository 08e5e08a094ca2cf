//! One configuration type for every Kafka client payledger builds.

use std::path::PathBuf;

use rdkafka::ClientConfig;
use thiserror::Error;

use super::Secret;

/// The value of `PAYLEDGER_KAFKA_SECURITY` that allows plaintext. Deliberately long: nobody
/// types it by accident, and every client built with it logs a warning.
pub const INSECURE_PLAINTEXT: &str = "plaintext-insecure-dev-only";

/// Which principal a client authenticates as. Each service has its own, and broker ACLs give
/// each only what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Ledger,
    Projector,
    Gateway,
    Cli,
}

impl Role {
    pub fn env_suffix(&self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Ledger => "LEDGER",
            Role::Projector => "PROJECTOR",
            Role::Gateway => "GATEWAY",
            Role::Cli => "CLI",
        }
    }
}

/// How the client talks to the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// `SASL_SSL` with `SCRAM-SHA-512`, verifying the brokers against `ca_location`
    /// (hostname verification on). The only mode for anything but a laptop.
    SaslSsl {
        username: String,
        password: Secret,
        ca_location: PathBuf,
    },
    /// No TLS, no authentication. Only behind [`INSECURE_PLAINTEXT`].
    InsecurePlaintext,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(String),
    #[error(
        "PAYLEDGER_KAFKA_SECURITY={0:?} is not supported: use sasl_ssl (or {INSECURE_PLAINTEXT} for local development)"
    )]
    UnknownSecurity(String),
    #[error("CA file {0} does not exist")]
    CaMissing(PathBuf),
}

/// Connection settings for one principal. `Debug` output never contains the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub bootstrap: String,
    pub security: Security,
    pub client_id: String,
}

impl KafkaSettings {
    /// Reads `PAYLEDGER_KAFKA_BOOTSTRAP`, `PAYLEDGER_KAFKA_SECURITY` (`sasl_ssl`, the default),
    /// `PAYLEDGER_KAFKA_CA`, `PAYLEDGER_KAFKA_USER_<ROLE>` and `PAYLEDGER_KAFKA_PASSWORD_<ROLE>`.
    pub fn from_env(role: Role) -> Result<Self, ConfigError> {
        Self::from_lookup(role, |k| std::env::var(k).ok())
    }

    /// Like [`KafkaSettings::from_env`] with any source of variables.
    pub fn from_lookup(
        role: Role,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let need = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Missing(k.to_owned()))
        };
        let bootstrap = need("PAYLEDGER_KAFKA_BOOTSTRAP")?;
        let mode = get("PAYLEDGER_KAFKA_SECURITY").unwrap_or_else(|| "sasl_ssl".to_owned());
        let security = match mode.as_str() {
            "sasl_ssl" => {
                let ca_location = PathBuf::from(need("PAYLEDGER_KAFKA_CA")?);
                if !ca_location.exists() {
                    return Err(ConfigError::CaMissing(ca_location));
                }
                Security::SaslSsl {
                    username: need(&format!("PAYLEDGER_KAFKA_USER_{}", role.env_suffix()))?,
                    password: Secret::new(need(&format!(
                        "PAYLEDGER_KAFKA_PASSWORD_{}",
                        role.env_suffix()
                    ))?),
                    ca_location,
                }
            }
            INSECURE_PLAINTEXT => Security::InsecurePlaintext,
            other => return Err(ConfigError::UnknownSecurity(other.to_owned())),
        };
        Ok(KafkaSettings {
            bootstrap,
            security,
            client_id: format!("payledger-{}", role.env_suffix().to_ascii_lowercase()),
        })
    }

    /// The same brokers and CA, another principal (used by tests and the admin commands).
    pub fn with_credentials(&self, username: &str, password: Secret) -> Self {
        let mut out = self.clone();
        if let Security::SaslSsl {
            username: u,
            password: p,
            ..
        } = &mut out.security
        {
            *u = username.to_owned();
            *p = password;
        }
        out
    }

    /// Settings every client shares: brokers, security, client id.
    pub fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", &self.client_id)
            // Surface authentication and authorization failures fast instead of retrying
            // quietly for minutes.
            .set("socket.connection.setup.timeout.ms", "10000");
        match &self.security {
            Security::SaslSsl {
                username,
                password,
                ca_location,
            } => {
                c.set("security.protocol", "SASL_SSL")
                    .set("sasl.mechanisms", "SCRAM-SHA-512")
                    .set("sasl.username", username)
                    .set("sasl.password", password.expose())
                    .set("ssl.ca.location", ca_location.to_string_lossy())
                    .set("ssl.endpoint.identification.algorithm", "https");
            }
            Security::InsecurePlaintext => {
                tracing::warn!(
                    client_id = %self.client_id,
                    bootstrap = %self.bootstrap,
                    "KAFKA CLIENT WITHOUT TLS OR AUTHENTICATION: {INSECURE_PLAINTEXT} is for local development only"
                );
                c.set("security.protocol", "PLAINTEXT");
            }
        }
        c
    }

    /// An idempotent, `acks=all` producer. Keys are partitioned with murmur2, the Java
    /// client's partitioner, so non-Rust producers put a merchant on the same partition.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000");
        c
    }

    /// A transactional producer. `transactional_id` must be stable for one logical instance
    /// across restarts: that is what fences its zombies.
    pub fn transactional_producer(&self, transactional_id: &str) -> ClientConfig {
        let mut c = self.producer();
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        c.set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", "60000")
            .set("message.timeout.ms", "55000");
        c
    }

    /// A group consumer that sees only committed data and commits nothing on its own.
    pub fn consumer(&self, group_id: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "120000");
        c
    }

    /// A consumer for explicitly assigned partitions (projectors, tools): no group
    /// membership, committed data only, offsets kept by the caller.
    pub fn reader(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", format!("{}-reader", self.client_id))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        c
    }

    /// A [`reader`](Self::reader) that reports reaching the end of each partition
    /// (`KafkaError::PartitionEOF`): for reads that stop at the end (restores, tools).
    pub fn reader_to_end(&self) -> ClientConfig {
        let mut c = self.reader();
        c.set("enable.partition.eof", "true");
        c
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn ca() -> String {
        // Any file that exists will do for the presence check.
        env!("CARGO_MANIFEST_DIR").to_owned() + "/Cargo.toml"
    }

    #[test]
    fn sasl_ssl_is_the_default_and_needs_role_credentials() {
        let ca = ca();
        let get = env(&[
            ("PAYLEDGER_KAFKA_BOOTSTRAP", "localhost:19093"),
            ("PAYLEDGER_KAFKA_CA", &ca),
            ("PAYLEDGER_KAFKA_USER_LEDGER", "ledger"),
            ("PAYLEDGER_KAFKA_PASSWORD_LEDGER", "s3cret-value"),
        ]);
        let s = KafkaSettings::from_lookup(Role::Ledger, &get).unwrap();
        let c = s.consumer("g");
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("ledger"));
        assert_eq!(
            c.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        let p = s.transactional_producer("t");
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(
            KafkaSettings::from_lookup(Role::Projector, &get),
            Err(ConfigError::Missing(
                "PAYLEDGER_KAFKA_USER_PROJECTOR".into()
            ))
        );
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let ca = ca();
        let get = env(&[
            ("PAYLEDGER_KAFKA_BOOTSTRAP", "localhost:19093"),
            ("PAYLEDGER_KAFKA_CA", &ca),
            ("PAYLEDGER_KAFKA_USER_CLI", "cli"),
            ("PAYLEDGER_KAFKA_PASSWORD_CLI", "hunter2-very-secret"),
        ]);
        let s = KafkaSettings::from_lookup(Role::Cli, &get).unwrap();
        let shown = format!("{s:?} {:?}", s.security);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn plaintext_needs_the_explicit_switch() {
        let get = env(&[
            ("PAYLEDGER_KAFKA_BOOTSTRAP", "localhost:9092"),
            ("PAYLEDGER_KAFKA_SECURITY", "plaintext"),
        ]);
        assert_eq!(
            KafkaSettings::from_lookup(Role::Cli, &get),
            Err(ConfigError::UnknownSecurity("plaintext".into()))
        );
        let get = env(&[
            ("PAYLEDGER_KAFKA_BOOTSTRAP", "localhost:9092"),
            ("PAYLEDGER_KAFKA_SECURITY", INSECURE_PLAINTEXT),
        ]);
        let s = KafkaSettings::from_lookup(Role::Cli, &get).unwrap();
        assert_eq!(s.base().get("security.protocol"), Some("PLAINTEXT"));
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let get = env(&[
            ("PAYLEDGER_KAFKA_BOOTSTRAP", "localhost:19093"),
            ("PAYLEDGER_KAFKA_CA", "/nonexistent/ca.pem"),
            ("PAYLEDGER_KAFKA_USER_CLI", "cli"),
            ("PAYLEDGER_KAFKA_PASSWORD_CLI", "x"),
        ]);
        assert_eq!(
            KafkaSettings::from_lookup(Role::Cli, &get),
            Err(ConfigError::CaMissing("/nonexistent/ca.pem".into()))
        );
    }
}

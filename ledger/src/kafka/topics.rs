//! Every topic payledger uses, declared once, and `payledger topics apply` to make the
//! cluster match.

use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use thiserror::Error;

use super::KafkaSettings;

pub const COMMANDS: &str = "payments.commands";
pub const EVENTS: &str = "payments.events";
pub const SNAPSHOTS: &str = "payments.snapshots";
pub const GATEWAY_RESULTS: &str = "gateway.results";
pub const DLQ: &str = "payments.dlq";

/// Partitions of every merchant-keyed topic. They must all be equal: partition N of the
/// commands, gateway results, events and snapshots topics holds the same merchants, and one
/// ledger instance owns all four partitions N. Never change it on a live cluster (it remaps
/// merchants); `apply` refuses to.
pub const MERCHANT_PARTITIONS: i32 = 6;

/// One topic as payledger wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    /// Topic configs beyond replication (which depends on the cluster, see [`Replication`]).
    pub config: &'static [(&'static str, &'static str)],
    pub purpose: &'static str,
}

const FOREVER: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("retention.ms", "-1"),
    ("retention.bytes", "-1"),
];

/// The declarative list.
pub const TOPICS: [TopicSpec; 5] = [
    TopicSpec {
        name: COMMANDS,
        partitions: MERCHANT_PARTITIONS,
        config: &[("cleanup.policy", "delete"), ("retention.ms", "604800000")],
        purpose: "commands from upstream services, keyed by merchant_id (kept 7 days)",
    },
    TopicSpec {
        name: EVENTS,
        partitions: MERCHANT_PARTITIONS,
        config: FOREVER,
        purpose: "the ledger's immutable events, keyed by merchant_id; the source of truth, kept forever",
    },
    TopicSpec {
        name: GATEWAY_RESULTS,
        partitions: MERCHANT_PARTITIONS,
        config: &[("cleanup.policy", "delete"), ("retention.ms", "2592000000")],
        purpose: "processor outcomes from gateway workers and webhooks, keyed by merchant_id (30 days)",
    },
    TopicSpec {
        name: SNAPSHOTS,
        partitions: MERCHANT_PARTITIONS,
        config: &[
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "3600000"),
            // The active segment is never compacted: roll hourly so old snapshots go.
            ("segment.ms", "3600000"),
        ],
        purpose: "compacted ledger state snapshots per partition, to bound restore time",
    },
    TopicSpec {
        name: DLQ,
        partitions: 3,
        config: FOREVER,
        purpose: "dead letters: records that could not be decoded or applied, with why and where from",
    },
];

/// Replication settings derived from the cluster: three copies and `min.insync.replicas=2`
/// where there are three brokers (MSK), fewer on a smaller cluster (the local single node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub factor: i32,
    pub min_insync: i32,
}

impl Replication {
    pub fn for_brokers(brokers: usize) -> Self {
        let factor = i32::try_from(brokers.clamp(1, 3)).expect("at most 3");
        Replication {
            factor,
            min_insync: if factor >= 3 { 2 } else { 1 },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created { name: &'static str },
    Updated { name: &'static str },
}

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("Kafka admin call failed: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {name}: {detail}")]
    Refused { name: String, detail: String },
    #[error(
        "topic {name} has {actual} partitions, the declaration says {declared}; changing it would remap merchants, so apply refuses"
    )]
    PartitionMismatch {
        name: &'static str,
        declared: i32,
        actual: i32,
    },
    #[error("topic {0} does not exist: run `payledger topics apply`")]
    Missing(&'static str),
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates missing topics and sets the declared configs on existing ones. Idempotent. Needs
/// an admin principal.
pub async fn apply(settings: &KafkaSettings) -> Result<Vec<TopicOutcome>, TopicError> {
    let admin: AdminClient<DefaultClientContext> = settings.base().create()?;
    let metadata = admin.inner().fetch_metadata(None, ADMIN_TIMEOUT)?;
    let replication = Replication::for_brokers(metadata.brokers().len());
    let min_insync = replication.min_insync.to_string();
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let mut outcomes = Vec::new();
    for spec in TOPICS {
        let existing = partition_count(&metadata, spec.name);
        match existing {
            None => {
                let mut topic = NewTopic::new(
                    spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(replication.factor),
                )
                .set("min.insync.replicas", &min_insync);
                for (k, v) in spec.config {
                    topic = topic.set(k, v);
                }
                for result in admin.create_topics([&topic], &opts).await? {
                    match result {
                        Ok(_) => outcomes.push(TopicOutcome::Created { name: spec.name }),
                        Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                            // Another apply won the race; the config pass below is still due.
                            tracing::info!(topic = %name, "topic appeared concurrently");
                        }
                        Err((name, code)) => {
                            return Err(TopicError::Refused {
                                name,
                                detail: code.to_string(),
                            });
                        }
                    }
                }
            }
            Some(actual) if actual != spec.partitions => {
                return Err(TopicError::PartitionMismatch {
                    name: spec.name,
                    declared: spec.partitions,
                    actual,
                });
            }
            Some(_) => {
                let mut alter = AlterConfig::new(ResourceSpecifier::Topic(spec.name))
                    .set("min.insync.replicas", &min_insync);
                for (k, v) in spec.config {
                    alter = alter.set(k, v);
                }
                for result in admin.alter_configs([&alter], &opts).await? {
                    if let Err((_, code)) = result {
                        return Err(TopicError::Refused {
                            name: spec.name.to_owned(),
                            detail: code.to_string(),
                        });
                    }
                }
                outcomes.push(TopicOutcome::Updated { name: spec.name });
            }
        }
    }
    Ok(outcomes)
}

/// The partition count of `topic` in `metadata`, if the topic exists.
pub fn partition_count(metadata: &Metadata, topic: &str) -> Option<i32> {
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
}

/// Checks that `topics` exist with [`MERCHANT_PARTITIONS`] partitions each: the ledger's
/// per-partition state is only right if they are co-partitioned.
pub fn check_copartitioned(metadata: &Metadata, topics: &[&'static str]) -> Result<(), TopicError> {
    for &name in topics {
        match partition_count(metadata, name) {
            None => return Err(TopicError::Missing(name)),
            Some(n) if n != MERCHANT_PARTITIONS => {
                return Err(TopicError::PartitionMismatch {
                    name,
                    declared: MERCHANT_PARTITIONS,
                    actual: n,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_keyed_topics_are_copartitioned_and_events_kept_forever() {
        for name in [COMMANDS, EVENTS, GATEWAY_RESULTS, SNAPSHOTS] {
            let spec = TOPICS.iter().find(|t| t.name == name).unwrap();
            assert_eq!(spec.partitions, MERCHANT_PARTITIONS, "{name}");
        }
        let events = TOPICS.iter().find(|t| t.name == EVENTS).unwrap();
        assert!(events.config.contains(&("retention.ms", "-1")));
        let snapshots = TOPICS.iter().find(|t| t.name == SNAPSHOTS).unwrap();
        assert!(snapshots.config.contains(&("cleanup.policy", "compact")));
    }

    #[test]
    fn replication_follows_the_cluster_size() {
        assert_eq!(
            Replication::for_brokers(1),
            Replication {
                factor: 1,
                min_insync: 1
            }
        );
        assert_eq!(
            Replication::for_brokers(3),
            Replication {
                factor: 3,
                min_insync: 2
            }
        );
        assert_eq!(
            Replication::for_brokers(9),
            Replication {
                factor: 3,
                min_insync: 2
            }
        );
    }
}

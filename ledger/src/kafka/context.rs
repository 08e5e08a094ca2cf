//! A client context for readers that stop at the end of partitions (restores, snapshots,
//! tools). It logs through `tracing`, and keeps two kinds of noise out of the error log:
//! reaching the end of a partition (readers ask for exactly that event) and the group
//! coordinator's connection (readers assign partitions and commit nothing, so the coordinator
//! connection librdkafka opens for their `group.id` serves nothing, and dropping the reader
//! mid-handshake otherwise logs an authentication "failure").

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, Default, Clone, Copy)]
pub struct ReaderContext;

fn about_coordinator(reason: &str) -> bool {
    reason.contains("GroupCoordinator")
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            _ if about_coordinator(message) => tracing::debug!(fac, message, "librdkafka"),
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(fac, message, "librdkafka"),
            RDKafkaLogLevel::Warning => tracing::warn!(fac, message, "librdkafka"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(fac, message, "librdkafka")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(fac, message, "librdkafka"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(reason, "end of partition")
            }
            _ if about_coordinator(reason) => {
                tracing::debug!(error = %error, reason, "group coordinator (unused by readers)")
            }
            other => tracing::error!(error = %other, reason, "Kafka client error"),
        }
    }
}

impl ConsumerContext for ReaderContext {}

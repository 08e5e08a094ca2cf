//! A client context that logs through `tracing` and does not report reaching the end of a
//! partition as an error: readers that stop at the end ask for exactly that event.

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, Default, Clone, Copy)]
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(reason, "end of partition")
            }
            other => tracing::error!(error = %other, reason, "Kafka client error"),
        }
    }
}

impl ConsumerContext for ReaderContext {}

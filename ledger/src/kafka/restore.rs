//! Rebuilding a partition's state from `payments.events`, the only source of truth.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::{DecodeError, PaymentEvent};
use thiserror::Error;

use super::KafkaSettings;
use super::topics::EVENTS;
use crate::evolve::{EvolveError, evolve};
use crate::state::PartitionState;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("event at {EVENTS}/{partition}@{offset} does not decode: {source}")]
    Decode {
        partition: i32,
        offset: i64,
        #[source]
        source: DecodeError,
    },
    #[error("event at {EVENTS}/{partition}@{offset} does not apply: {source}")]
    Evolve {
        partition: i32,
        offset: i64,
        #[source]
        source: EvolveError,
    },
    #[error("restore of {EVENTS}/{partition} did not reach the end within {0:?}", .timeout)]
    Timeout { partition: i32, timeout: Duration },
}

/// How long a restore may take before the ledger gives up (and its supervisor restarts it).
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads every committed event of one partition, from the start, and folds it into a state.
/// `decode` turns a record's bytes into an event (it is the codec, behind whatever runtime
/// the caller uses). An event that does not decode or apply stops the restore: the events
/// topic is written only by the ledger, so such an event is a bug to look at, not to skip.
pub fn restore_partition(
    settings: &KafkaSettings,
    partition: i32,
    decode: impl Fn(Option<&[u8]>) -> Result<PaymentEvent, DecodeError>,
) -> Result<(PartitionState, u64), RestoreError> {
    let consumer: BaseConsumer = settings.reader_to_end().create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(EVENTS, partition, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let (low, high) = consumer.fetch_watermarks(EVENTS, partition, Duration::from_secs(30))?;
    let mut state = PartitionState::default();
    let mut applied = 0u64;
    if high <= low {
        return Ok((state, applied));
    }
    let started = Instant::now();
    loop {
        if started.elapsed() > RESTORE_TIMEOUT {
            return Err(RestoreError::Timeout {
                partition,
                timeout: RESTORE_TIMEOUT,
            });
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                let offset = message.offset();
                let event = decode(message.payload()).map_err(|source| RestoreError::Decode {
                    partition,
                    offset,
                    source,
                })?;
                let merchant = state.merchant_mut(&event.merchant_id);
                evolve(merchant, &event).map_err(|source| RestoreError::Evolve {
                    partition,
                    offset,
                    source,
                })?;
                applied += 1;
            }
        }
    }
    Ok((state, applied))
}

//! Rebuilding a partition's state from `payments.events`, the only source of truth.

use std::collections::{HashMap, HashSet};
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

/// Reads every committed event of `partitions`, from the start, in one pass with one client,
/// and folds them into one state per partition. `decode` turns a record's bytes into an event
/// (it is the codec, behind whatever runtime the caller uses). An event that does not decode
/// or apply stops the restore: the events topic is written only by the ledger, so such an
/// event is a bug to look at, not to skip.
pub fn restore_partitions(
    settings: &KafkaSettings,
    partitions: &[i32],
    decode: impl Fn(Option<&[u8]>) -> Result<PaymentEvent, DecodeError>,
) -> Result<HashMap<i32, Restored>, RestoreError> {
    let mut config = settings.reader_to_end();
    // Reaching the end of a partition should not cost a full fetch wait.
    config.set("fetch.wait.max.ms", "10");
    let consumer: BaseConsumer = config.create()?;
    let mut out: HashMap<i32, Restored> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &partition in partitions {
        out.insert(partition, Restored::default());
        let (low, high) = consumer.fetch_watermarks(EVENTS, partition, Duration::from_secs(30))?;
        if high > low {
            tpl.add_partition_offset(EVENTS, partition, Offset::Beginning)?;
        }
    }
    let mut open: HashSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    if open.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    while !open.is_empty() {
        if started.elapsed() > RESTORE_TIMEOUT {
            return Err(RestoreError::Timeout {
                partition: *open.iter().next().expect("not empty"),
                timeout: RESTORE_TIMEOUT,
            });
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                let event = decode(message.payload()).map_err(|source| RestoreError::Decode {
                    partition,
                    offset,
                    source,
                })?;
                let restored = out.get_mut(&partition).expect("assigned above");
                let merchant = restored.state.merchant_mut(&event.merchant_id);
                evolve(merchant, &event).map_err(|source| RestoreError::Evolve {
                    partition,
                    offset,
                    source,
                })?;
                restored.events += 1;
            }
        }
    }
    Ok(out)
}

/// One partition's restored state.
#[derive(Debug, Default)]
pub struct Restored {
    pub state: PartitionState,
    /// How many events were applied.
    pub events: u64,
}

//! Rebuilding a partition's state from `payments.events`, the only source of truth.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::{DecodeError, PaymentEvent};
use thiserror::Error;

use tracing::warn;

use super::KafkaSettings;
use super::context::ReaderContext;
use super::snapshots::{self, LoadError, Manifest};
use super::topics::EVENTS;
use crate::evolve::{EvolveError, evolve};
use crate::snapshot;
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
    #[error(
        "{EVENTS}/{partition}: a transaction left open before the end of the partition did not end within {waited:?}"
    )]
    OpenTransaction { partition: i32, waited: Duration },
}

/// How long a restore may take before the ledger gives up (and its supervisor restarts it).
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a restore starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The newest usable snapshot of each partition, then the events after it.
    Snapshot,
    /// Every event from the beginning (an audit, or a snapshot that did not line up).
    Beginning,
}

/// Reads every committed event of `partitions` (after the newest snapshot, if asked), in one
/// pass with one client, and folds them into one state per partition. `decode` turns a
/// record's bytes into an event (it is the codec, behind whatever runtime the caller uses).
/// An event that does not decode or apply stops the restore: the events topic is written
/// only by the ledger, so such an event is a bug to look at, not to skip. The one exception:
/// when the first events after a snapshot do not apply to it, the snapshot is distrusted and
/// that partition is rebuilt from the beginning.
pub fn restore_partitions(
    settings: &KafkaSettings,
    partitions: &[i32],
    from: StartFrom,
    decode: impl Fn(Option<&[u8]>) -> Result<PaymentEvent, DecodeError>,
) -> Result<HashMap<i32, Restored>, RestoreError> {
    let mut out: HashMap<i32, Restored> = partitions
        .iter()
        .map(|&p| (p, Restored::default()))
        .collect();
    let mut config = settings.reader_to_end();
    // Reaching the end of a partition should not cost a full fetch wait.
    config.set("fetch.wait.max.ms", "10");
    // One client reads the snapshots, then the events.
    let consumer: BaseConsumer<ReaderContext> = config.create_with_context(ReaderContext)?;
    if from == StartFrom::Snapshot {
        match snapshots::load_latest(&consumer, partitions, RESTORE_TIMEOUT) {
            Ok(found) => {
                for (partition, latest) in found {
                    let r = out.get_mut(&partition).expect("asked for");
                    let decoded = latest.and_then(|(manifest, bytes)| {
                        snapshot::decode(&bytes)
                            .map(|state| (manifest.clone(), state))
                            .map_err(|e| {
                                format!("snapshot {} does not decode: {e}", manifest.snapshot_id)
                            })
                    });
                    match decoded {
                        Ok((manifest, state)) => {
                            r.state = state;
                            r.next_offset = manifest.events_offset;
                            r.snapshot = Some(manifest);
                        }
                        Err(reason) => r.snapshot_unused = Some(reason),
                    }
                }
            }
            Err(LoadError::Kafka(e)) => return Err(e.into()),
            Err(LoadError::Unusable(reason)) => {
                for r in out.values_mut() {
                    r.snapshot_unused = Some(format!("snapshots unusable: {reason}"));
                }
            }
        }
        for (partition, r) in &out {
            if let Some(reason) = &r.snapshot_unused {
                warn!(partition, %reason, "snapshot not used; rebuilding from all events");
            }
        }
    }

    // Asks for high watermarks only: it sees the end of the log, open transactions included.
    let uncommitted: BaseConsumer<ReaderContext> = settings
        .reader()
        .set("isolation.level", "read_uncommitted")
        .create_with_context(ReaderContext)?;
    let mut tpl = TopicPartitionList::new();
    let mut starts: HashMap<i32, i64> = HashMap::new();
    for &partition in partitions {
        let (low, _) = consumer.fetch_watermarks(EVENTS, partition, Duration::from_secs(30))?;
        // Every partition is read, even one that looks empty: its end may be held back by an
        // open transaction (see `caught_up`).
        let start = out[&partition].next_offset.max(low);
        tpl.add_partition_offset(EVENTS, partition, Offset::Offset(start))?;
        starts.insert(partition, start);
    }
    let mut open: HashSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    let mut distrusted: Vec<(i32, String)> = Vec::new();
    if !open.is_empty() {
        consumer.assign(&tpl)?;
    }
    let started = Instant::now();
    let mut waiting: HashMap<i32, Instant> = HashMap::new();
    let mut warned: Vec<i32> = Vec::new();
    while !open.is_empty() {
        if started.elapsed() > RESTORE_TIMEOUT {
            return Err(RestoreError::Timeout {
                partition: *open.iter().next().expect("not empty"),
                timeout: RESTORE_TIMEOUT,
            });
        }
        // A partition whose end has been reached is done only once nothing is pending beyond
        // it: see `caught_up`.
        for p in waiting.keys().copied().collect::<Vec<_>>() {
            if caught_up(&consumer, &uncommitted, p, starts[&p])? {
                waiting.remove(&p);
                open.remove(&p);
            } else if waiting[&p].elapsed() > OPEN_TRANSACTION_WAIT {
                return Err(RestoreError::OpenTransaction {
                    partition: p,
                    waited: OPEN_TRANSACTION_WAIT,
                });
            }
        }
        if open.is_empty() {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(since) = waiting.get(&p) {
                    if since.elapsed() > Duration::from_secs(1) && !warned.contains(&p) {
                        warn!(
                            partition = p,
                            "an open transaction holds back {EVENTS}: waiting for it to end before deciding on this partition"
                        );
                        warned.push(p);
                    }
                } else {
                    waiting.insert(p, Instant::now());
                }
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                if distrusted.iter().any(|(p, _)| *p == partition) {
                    continue;
                }
                let event = decode(message.payload()).map_err(|source| RestoreError::Decode {
                    partition,
                    offset,
                    source,
                })?;
                let restored = out.get_mut(&partition).expect("assigned above");
                let merchant = restored.state.merchant_mut(&event.merchant_id);
                if let Err(source) = evolve(merchant, &event) {
                    if let Some(manifest) = &restored.snapshot {
                        let reason = format!(
                            "the events after snapshot {} (offset {}) do not apply to it: {source}",
                            manifest.snapshot_id, manifest.events_offset
                        );
                        warn!(partition, offset, %reason, "snapshot not used; rebuilding from all events");
                        distrusted.push((partition, reason));
                        continue;
                    }
                    return Err(RestoreError::Evolve {
                        partition,
                        offset,
                        source,
                    });
                }
                restored.events += 1;
                restored.next_offset = offset + 1;
            }
        }
    }
    if !distrusted.is_empty() {
        let partitions: Vec<i32> = distrusted.iter().map(|(p, _)| *p).collect();
        let mut rebuilt = restore_partitions(settings, &partitions, StartFrom::Beginning, decode)?;
        for (partition, reason) in distrusted {
            if let Some(r) = rebuilt.get_mut(&partition) {
                r.snapshot_unused = Some(reason);
            }
        }
        out.extend(rebuilt);
    }
    Ok(out)
}

/// How long a restore waits for a transaction that holds back the end of a partition: a
/// little more than the producers' `transaction.timeout.ms` (60 s), after which the broker
/// aborts a transaction its producer abandoned.
pub const OPEN_TRANSACTION_WAIT: Duration = Duration::from_secs(90);

/// Has the reader seen everything of `partition` that is or may become committed?
///
/// A `read_committed` reader's end of partition is the last stable offset: it stops before
/// the first transaction still open. Records written after that — even committed ones — stay
/// out of sight until that transaction ends: one left open by a ledger that died (aborted by
/// the broker after its timeout), or one whose commit markers are still being written. A
/// state restored up to there would miss committed events, and deciding on it would write
/// events twice. So the restore is complete only when the reader's position has reached the
/// high watermark, as a `read_uncommitted` client sees it.
fn caught_up(
    consumer: &BaseConsumer<ReaderContext>,
    uncommitted: &BaseConsumer<ReaderContext>,
    partition: i32,
    start: i64,
) -> Result<bool, RestoreError> {
    let (_, high_watermark) =
        uncommitted.fetch_watermarks(EVENTS, partition, Duration::from_secs(30))?;
    // Nothing consumed yet: the position is where the read started.
    let position = match consumer
        .position()?
        .find_partition(EVENTS, partition)
        .map(|e| e.offset())
    {
        Some(Offset::Offset(o)) => o,
        _ => start,
    };
    Ok(position >= high_watermark)
}

/// One partition's restored state.
#[derive(Debug, Default)]
pub struct Restored {
    pub state: PartitionState,
    /// How many events were applied (after the snapshot, if one was used).
    pub events: u64,
    /// The events offset after the last event applied: where the next event will be.
    pub next_offset: i64,
    /// The snapshot the restore started from.
    pub snapshot: Option<Manifest>,
    /// Why the partition's newest snapshot was not used, when it had one that was not.
    pub snapshot_unused: Option<String>,
}

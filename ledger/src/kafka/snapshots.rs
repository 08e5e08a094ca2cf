//! Snapshots on `payments.snapshots` (compacted): how they are laid out in records.
//!
//! Partition N of the snapshots topic holds the snapshots of partition N of the events topic.
//! One snapshot is several records written in the ledger's transaction, so it is visible
//! all at once or not at all:
//! - chunks, key `ledger/p<N>/chunk/<i>`, each up to [`CHUNK_BYTES`] of the encoded state,
//!   with header `payledger.snapshot-id`;
//! - then a manifest, key `ledger/p<N>`, JSON: snapshot id, the events offset it covers up
//!   to, the chunk count and the SHA-256 of the whole.
//!
//! Compaction keeps the newest record per key. A newer snapshot with fewer chunks leaves
//! older chunks behind; the manifest's id and count tell them apart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::context::ReaderContext;
use super::headers;
use super::topics::SNAPSHOTS;
use crate::fingerprint::hex;

/// The largest chunk: well under the broker's default 1 MiB record limit.
pub const CHUNK_BYTES: usize = 512 * 1024;

const SNAPSHOT_ID_HEADER: &str = "payledger.snapshot-id";

/// What the manifest record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub snapshot_id: Uuid,
    pub partition: i32,
    /// The snapshot is the state after every event before this offset of `payments.events`.
    pub events_offset: i64,
    pub chunks: u32,
    pub bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// One record to produce.
pub struct SnapshotRecord {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: OwnedHeaders,
}

pub fn manifest_key(partition: i32) -> String {
    format!("ledger/p{partition}")
}

fn chunk_key(partition: i32, index: usize) -> String {
    format!("ledger/p{partition}/chunk/{index}")
}

/// The records of one snapshot of `partition`, chunks first, manifest last.
pub fn records(
    partition: i32,
    events_offset: i64,
    encoded: &[u8],
    now: DateTime<Utc>,
) -> (Manifest, Vec<SnapshotRecord>) {
    let snapshot_id = Uuid::now_v7();
    let mut out = Vec::new();
    for (i, chunk) in encoded.chunks(CHUNK_BYTES).enumerate() {
        out.push(SnapshotRecord {
            key: chunk_key(partition, i),
            payload: chunk.to_vec(),
            headers: headers::with(
                OwnedHeaders::new(),
                SNAPSHOT_ID_HEADER,
                &snapshot_id.to_string(),
            ),
        });
    }
    let manifest = Manifest {
        snapshot_id,
        partition,
        events_offset,
        chunks: u32::try_from(out.len()).expect("fewer than 4 billion chunks"),
        bytes: encoded.len() as u64,
        sha256: hex(&Sha256::digest(encoded)),
        created_at: now,
    };
    out.push(SnapshotRecord {
        key: manifest_key(partition),
        payload: serde_json::to_vec(&manifest).expect("a manifest always serializes"),
        headers: OwnedHeaders::new(),
    });
    (manifest, out)
}

/// Why the newest snapshot of a partition could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{SNAPSHOTS}: {0}")]
    Unusable(String),
}

/// Records read from the end of a partition first: enough for a snapshot of a few chunks.
const FIRST_WINDOW: i64 = 64;

/// The newest snapshot of a partition, or why it cannot be used.
pub type Latest = Result<(Manifest, Vec<u8>), String>;

/// Reads the newest complete snapshot of each partition: manifest and encoded state, or why
/// it cannot be used. Partitions without any snapshot are absent from the result.
///
/// The newest snapshot is at the end of its partition (chunks, manifest, commit marker: one
/// transaction, one writer per partition), so the read starts a few records before the end
/// and reaches further back only when the snapshot began earlier. Restores therefore read
/// one snapshot, however many older ones compaction has not removed yet.
///
/// `consumer` is a reader that reports the end of partitions (`reader_to_end`); this
/// reassigns it, so a restore can go on to read the events with the same client.
pub fn load_latest(
    consumer: &BaseConsumer<ReaderContext>,
    partitions: &[i32],
    timeout: Duration,
) -> Result<HashMap<i32, Latest>, LoadError> {
    let started = Instant::now();
    let mut pending = Vec::new();
    for &p in partitions {
        let (low, high) = consumer.fetch_watermarks(SNAPSHOTS, p, Duration::from_secs(30))?;
        if high > low {
            pending.push((p, low, high));
        }
    }
    let mut out = HashMap::new();
    let mut window = FIRST_WINDOW;
    while !pending.is_empty() {
        let starts: Vec<(i32, i64)> = pending
            .iter()
            .map(|&(p, low, high)| (p, (high - window).max(low)))
            .collect();
        let latest = read_from(consumer, &starts, timeout.saturating_sub(started.elapsed()))?;
        let mut again = Vec::new();
        for (p, low, high) in pending {
            let whole_partition = high - window <= low;
            let empty = KeyedRecords::new();
            match assemble(p, latest.get(&p).unwrap_or(&empty)) {
                Ok(Some(found)) => {
                    out.insert(p, Ok(found));
                }
                // The newest snapshot may begin before the window: look further back.
                Ok(None) | Err(_) if !whole_partition => again.push((p, low, high)),
                Ok(None) => {}
                Err(reason) => {
                    out.insert(p, Err(reason));
                }
            }
        }
        pending = again;
        window = window.saturating_mul(16);
    }
    Ok(out)
}

/// Reads each partition from its start offset to its end: the newest record per key.
fn read_from(
    consumer: &BaseConsumer<ReaderContext>,
    starts: &[(i32, i64)],
    timeout: Duration,
) -> Result<HashMap<i32, KeyedRecords>, LoadError> {
    let mut tpl = TopicPartitionList::new();
    for &(p, start) in starts {
        tpl.add_partition_offset(SNAPSHOTS, p, Offset::Offset(start))?;
    }
    consumer.assign(&tpl)?;
    let mut open: std::collections::HashSet<i32> = starts.iter().map(|&(p, _)| p).collect();
    let mut latest: HashMap<i32, KeyedRecords> = HashMap::new();
    let started = Instant::now();
    while !open.is_empty() {
        if started.elapsed() > timeout {
            return Err(LoadError::Unusable(format!(
                "reading snapshots took longer than {timeout:?}"
            )));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let id = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == SNAPSHOT_ID_HEADER)
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .map(str::to_owned)
                });
                latest.entry(m.partition()).or_default().insert(
                    key.to_owned(),
                    (id, m.payload().unwrap_or_default().to_vec()),
                );
            }
        }
    }
    Ok(latest)
}

/// Key → (snapshot id header, payload) of the newest record per key.
type KeyedRecords = HashMap<String, (Option<String>, Vec<u8>)>;

fn assemble(partition: i32, records: &KeyedRecords) -> Result<Option<(Manifest, Vec<u8>)>, String> {
    let Some((_, manifest)) = records.get(&manifest_key(partition)) else {
        return Ok(None);
    };
    let manifest: Manifest =
        serde_json::from_slice(manifest).map_err(|e| format!("manifest does not parse: {e}"))?;
    let id = manifest.snapshot_id.to_string();
    let mut encoded = Vec::with_capacity(usize::try_from(manifest.bytes).unwrap_or(0));
    for i in 0..manifest.chunks as usize {
        match records.get(&chunk_key(partition, i)) {
            Some((Some(chunk_id), bytes)) if *chunk_id == id => encoded.extend_from_slice(bytes),
            _ => return Err(format!("chunk {i} of snapshot {id} is missing")),
        }
    }
    if hex(&Sha256::digest(&encoded)) != manifest.sha256 {
        return Err(format!("snapshot {id} does not match its checksum"));
    }
    Ok(Some((manifest, encoded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_and_stale_or_corrupt_chunks_are_refused() {
        let encoded: Vec<u8> = (0..(CHUNK_BYTES * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let (manifest, recs) = records(3, 42, &encoded, Utc::now());
        assert_eq!(manifest.chunks, 3);
        let id = |r: &SnapshotRecord| {
            r.headers
                .iter()
                .find(|h| h.key == SNAPSHOT_ID_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        let mut by_key: KeyedRecords = recs
            .iter()
            .map(|r| (r.key.clone(), (id(r), r.payload.clone())))
            .collect();
        let (m, bytes) = assemble(3, &by_key).unwrap().unwrap();
        assert_eq!((m.events_offset, bytes), (42, encoded.clone()));

        // A chunk left over from another snapshot is not silently used.
        by_key.get_mut("ledger/p3/chunk/1").unwrap().0 = Some(Uuid::nil().to_string());
        assert!(assemble(3, &by_key).is_err());
        // Nor is a corrupted one.
        let (_, recs) = records(3, 42, &encoded, Utc::now());
        let mut by_key: KeyedRecords = recs
            .iter()
            .map(|r| (r.key.clone(), (id(r), r.payload.clone())))
            .collect();
        by_key.get_mut("ledger/p3/chunk/2").unwrap().1[0] ^= 1;
        assert!(assemble(3, &by_key).is_err());
        assert_eq!(assemble(4, &by_key).unwrap(), None);
    }
}

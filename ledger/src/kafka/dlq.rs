//! Dead letters: a record that cannot be decoded or applied goes to `payments.dlq`, verbatim,
//! with headers that say why, where it came from and when. Nothing is dropped silently.

use chrono::{DateTime, Utc};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};

pub const REASON: &str = "dlq.reason";
pub const DETAIL: &str = "dlq.detail";
pub const SOURCE_TOPIC: &str = "dlq.source.topic";
pub const SOURCE_PARTITION: &str = "dlq.source.partition";
pub const SOURCE_OFFSET: &str = "dlq.source.offset";
pub const FAILED_AT: &str = "dlq.failed-at";
pub const SERVICE: &str = "dlq.service";

/// The most detail text kept in a header; the reason code is the part to match on.
const MAX_DETAIL: usize = 1024;

/// A record on its way to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason_code: String,
    pub detail: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The original record's headers, kept so a redrive restores the record exactly.
    pub original_headers: Vec<(String, Option<Vec<u8>>)>,
}

impl DeadLetter {
    pub fn from_message(message: &BorrowedMessage<'_>, reason_code: &str, detail: &str) -> Self {
        let original_headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let mut detail: String = detail.chars().take(MAX_DETAIL).collect();
        if detail.is_empty() {
            detail.push('-');
        }
        DeadLetter {
            reason_code: reason_code.to_owned(),
            detail,
            source_topic: message.topic().to_owned(),
            source_partition: message.partition(),
            source_offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            original_headers,
        }
    }

    /// The headers of the dead-letter record: the original ones, then payledger's.
    pub fn headers(&self, service: &str, failed_at: DateTime<Utc>) -> OwnedHeaders {
        let mut out = OwnedHeaders::new_with_capacity(self.original_headers.len() + 7);
        for (key, value) in &self.original_headers {
            out = out.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        let at = failed_at.to_rfc3339();
        for (key, value) in [
            (REASON, self.reason_code.as_str()),
            (DETAIL, self.detail.as_str()),
            (SOURCE_TOPIC, self.source_topic.as_str()),
            (SOURCE_PARTITION, partition.as_str()),
            (SOURCE_OFFSET, offset.as_str()),
            (FAILED_AT, at.as_str()),
            (SERVICE, service),
        ] {
            out = out.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        out
    }
}

/// What a dead-letter record says about itself (read side, for tools and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    pub reason_code: String,
    pub detail: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub failed_at: String,
    pub service: String,
}

impl DeadLetterInfo {
    /// Reads payledger's headers from a dead-letter record; `None` if any is missing.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Option<Self> {
        let get = |name: &str| super::headers::get(message, name).map(str::to_owned);
        Some(DeadLetterInfo {
            reason_code: get(REASON)?,
            detail: get(DETAIL)?,
            source_topic: get(SOURCE_TOPIC)?,
            source_partition: get(SOURCE_PARTITION)?.parse().ok()?,
            source_offset: get(SOURCE_OFFSET)?.parse().ok()?,
            failed_at: get(FAILED_AT)?,
            service: get(SERVICE)?,
        })
    }
}

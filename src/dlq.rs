//! `payledger dlq list` and `payledger dlq redrive`.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use ledger::kafka::dlq::DeadLetterInfo;
use ledger::kafka::topics::{COMMANDS, DLQ};
use ledger::kafka::{Role, headers};
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::RegistryCodec;

use crate::commands::{kafka, var};
use crate::inspect::reader;

/// Header on a redriven record: which dead letter it came from (`payments.dlq/<p>@<offset>`).
pub const REDRIVEN_FROM: &str = "dlq.redriven-from";

/// Calls `f` for every dead letter, from the start of the DLQ to its end.
async fn scan(mut f: impl AsyncFnMut(&BorrowedMessage<'_>) -> Result<()>) -> Result<()> {
    let (consumer, partitions) = reader(DLQ)?;
    let mut ended = HashSet::new();
    while ended.len() < partitions {
        match consumer.recv().await {
            Err(KafkaError::PartitionEOF(p)) => {
                ended.insert(p);
            }
            Err(e) => return Err(e.into()),
            Ok(m) => f(&m).await?,
        }
    }
    Ok(())
}

pub async fn list() -> Result<()> {
    scan(async |m| {
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let json = match DeadLetterInfo::from_message(m) {
            Some(i) => serde_json::json!({
                "dlq_partition": m.partition(), "dlq_offset": m.offset(),
                "reason": i.reason_code, "detail": i.detail, "source_topic": i.source_topic,
                "source_partition": i.source_partition, "source_offset": i.source_offset,
                "failed_at": i.failed_at, "service": i.service, "key": key,
                "payload_bytes": m.payload().map_or(0, <[u8]>::len),
                "redriven_from": headers::get(m, REDRIVEN_FROM),
            }),
            None => serde_json::json!({ "malformed_dead_letter_offset": m.offset(), "key": key }),
        };
        println!("{json}");
        Ok(())
    })
    .await
}

/// Puts dead letters from `payments.commands` back on it, verbatim (the original key, payload
/// and headers; payledger's `dlq.*` headers replaced by `dlq.redriven-from`). Safe to repeat:
/// a command already decided is a duplicate to the ledger, and a record that is still bad
/// goes back to the DLQ. `rekey` keys each record by its command's `merchant_id` (for
/// `key_mismatch` letters).
pub async fn redrive(reason: Option<String>, rekey: bool, dry_run: bool) -> Result<()> {
    let producer: FutureProducer = kafka(Role::Cli)?.producer().create()?;
    let codec = if rekey {
        Some(RegistryCodec::new(&var("PAYLEDGER_SCHEMA_REGISTRY_URL")?)?)
    } else {
        None
    };
    let (mut sent, mut skipped) = (0u64, 0u64);
    scan(async |m| {
        let Some(info) = DeadLetterInfo::from_message(m) else {
            skipped += 1;
            return Ok(());
        };
        if info.source_topic != COMMANDS || reason.as_deref().is_some_and(|r| r != info.reason_code)
        {
            skipped += 1;
            return Ok(());
        }
        let mut key = m.key().map(<[u8]>::to_vec);
        if let Some(codec) = &codec {
            match codec.decode_command(m.payload()).await {
                Ok(cmd) => key = Some(cmd.merchant_id.into_bytes()),
                Err(e) => {
                    eprintln!(
                        "{}@{}: not rekeyed, the payload is not a command ({e})",
                        m.partition(),
                        m.offset()
                    );
                    skipped += 1;
                    return Ok(());
                }
            }
        }
        let origin = format!("{DLQ}/{}@{}", m.partition(), m.offset());
        let mut hdrs = OwnedHeaders::new();
        if let Some(original) = m.headers() {
            for h in original.iter().filter(|h| !h.key.starts_with("dlq.")) {
                hdrs = hdrs.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        hdrs = headers::with(hdrs, REDRIVEN_FROM, &origin);
        println!(
            "{} {origin} ({}, from {}/{}@{})",
            if dry_run { "would redrive" } else { "redrive" },
            info.reason_code,
            info.source_topic,
            info.source_partition,
            info.source_offset
        );
        if !dry_run {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(COMMANDS).headers(hdrs);
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            if let Some(p) = m.payload() {
                record = record.payload(p);
            }
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .with_context(|| format!("redriving {origin}"))?;
        }
        sent += 1;
        Ok(())
    })
    .await?;
    println!(
        "{} {sent}, skipped {skipped}",
        if dry_run { "would redrive" } else { "redriven" }
    );
    Ok(())
}

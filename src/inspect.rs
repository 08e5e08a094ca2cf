//! Reading topics for people: `payledger events` and `payledger dlq list`.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use ledger::kafka::context::ReaderContext;
use ledger::kafka::topics::{EVENTS, partition_count};
use ledger::kafka::{Role, headers};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::{EventBody, PaymentEvent, RegistryCodec};

use crate::commands::{kafka, var};

pub(crate) fn reader(topic: &str) -> Result<(StreamConsumer<ReaderContext>, usize)> {
    let consumer: StreamConsumer<ReaderContext> = kafka(Role::Cli)?
        .reader_to_end()
        .create_with_context(ReaderContext)?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let n =
        partition_count(&metadata, topic).with_context(|| format!("topic {topic} not found"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok((consumer, n as usize))
}

pub fn event_json(e: &PaymentEvent) -> serde_json::Value {
    let body = match &e.body {
        EventBody::PaymentAuthorizationRequested(b) => serde_json::json!({
            "payment_id": b.payment_id, "amount": b.amount.amount, "currency": b.amount.currency,
            "processor": b.processor, "payment_token": b.payment_token,
        }),
        EventBody::CommandRejected(b) => serde_json::json!({
            "reason_code": b.reason_code, "detail": b.detail,
        }),
    };
    serde_json::json!({
        "type": e.kind(), "event_id": e.event_id, "merchant_id": e.merchant_id,
        "merchant_sequence": e.merchant_sequence, "payment_id": e.payment_id,
        "command_id": e.command_id, "idempotency_key": e.idempotency_key,
        "occurred_at": e.occurred_at.to_rfc3339(), "body": body,
    })
}

pub async fn events(merchant: Option<String>, follow: bool) -> Result<()> {
    let codec = RegistryCodec::new(&var("PAYLEDGER_SCHEMA_REGISTRY_URL")?)?;
    let (consumer, partitions) = reader(EVENTS)?;
    let mut ended = HashSet::new();
    loop {
        match consumer.recv().await {
            Err(KafkaError::PartitionEOF(p)) => {
                ended.insert(p);
                if !follow && ended.len() == partitions {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
            Ok(m) => {
                let event = codec.decode_event(m.payload()).await?;
                if merchant.as_deref().is_none_or(|id| id == event.merchant_id) {
                    let mut json = event_json(&event);
                    json["partition"] = m.partition().into();
                    json["offset"] = m.offset().into();
                    if let Some(tp) = headers::get(&m, headers::TRACEPARENT) {
                        json["traceparent"] = tp.into();
                    }
                    println!("{json}");
                }
            }
        }
    }
}

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

fn money(m: &schemas::WireMoney) -> serde_json::Value {
    serde_json::json!({"amount": m.amount, "currency": m.currency})
}

fn postings(ps: &[schemas::Posting]) -> serde_json::Value {
    ps.iter()
        .map(|p| {
            serde_json::json!({
                "debit": p.debit_account, "credit": p.credit_account,
                "amount": p.amount.amount, "currency": p.amount.currency,
                "phase": format!("{:?}", p.phase),
            })
        })
        .collect()
}

pub fn event_json(e: &PaymentEvent) -> serde_json::Value {
    use serde_json::json;
    let body = match &e.body {
        EventBody::PaymentAuthorizationRequested(b) => json!({
            "payment_id": b.payment_id, "amount": money(&b.amount),
            "processor": b.processor, "payment_token": b.payment_token,
        }),
        EventBody::CommandRejected(b) => json!({
            "reason_code": b.reason_code, "detail": b.detail,
        }),
        EventBody::PaymentAuthorized(b) => json!({
            "payment_id": b.payment_id, "amount": money(&b.amount),
            "processor_reference": b.processor_reference,
            "expires_at": b.expires_at.to_rfc3339(), "postings": postings(&b.postings),
        }),
        EventBody::PaymentDeclined(b) => json!({
            "payment_id": b.payment_id, "decline_code": b.decline_code, "detail": b.detail,
        }),
        EventBody::PaymentAuthorizationFailed(b) => json!({
            "payment_id": b.payment_id, "error_code": b.error_code, "detail": b.detail,
        }),
        EventBody::PaymentAuthorizationUnknown(b) => json!({
            "payment_id": b.payment_id, "detail": b.detail,
        }),
        EventBody::PaymentCaptured(b) => json!({
            "payment_id": b.payment_id, "amount": money(&b.amount), "postings": postings(&b.postings),
        }),
        EventBody::PaymentVoided(b) => json!({
            "payment_id": b.payment_id, "released": money(&b.released),
            "reason": format!("{:?}", b.reason), "postings": postings(&b.postings),
        }),
        EventBody::PaymentRefunded(b) => json!({
            "payment_id": b.payment_id, "amount": money(&b.amount), "postings": postings(&b.postings),
        }),
        EventBody::PaymentSettled(b) => json!({
            "payment_id": b.payment_id, "settlement_id": b.settlement_id,
            "amount": money(&b.amount), "fee": money(&b.fee), "bank_account": b.bank_account,
            "postings": postings(&b.postings),
        }),
        EventBody::DisputeOpened(b) => json!({
            "payment_id": b.payment_id, "dispute_id": b.dispute_id, "amount": money(&b.amount),
            "reason": b.reason, "postings": postings(&b.postings),
        }),
        EventBody::DisputeClosed(b) => json!({
            "payment_id": b.payment_id, "dispute_id": b.dispute_id,
            "outcome": format!("{:?}", b.outcome), "amount": money(&b.amount),
            "postings": postings(&b.postings),
        }),
        EventBody::PayoutSent(b) => json!({
            "payout_id": b.payout_id, "amount": money(&b.amount), "bank_account": b.bank_account,
            "postings": postings(&b.postings),
        }),
    };
    json!({
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

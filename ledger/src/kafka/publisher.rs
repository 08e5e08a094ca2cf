//! Publishing commands, as an upstream service written in Rust would.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::codec::EncodeError;
use schemas::{GatewayResult, PaymentCommand, RegistryCodec};
use thiserror::Error;

use super::topics::{COMMANDS, GATEWAY_RESULTS};
use super::{KafkaSettings, headers};

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// Where a published record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub partition: i32,
    pub offset: i64,
}

/// Sends commands to `payments.commands` (or, with the gateway principal, processor results to
/// `gateway.results`), keyed by `merchant_id`, with an idempotent `acks=all` producer.
pub struct CommandPublisher {
    producer: FutureProducer,
    codec: std::sync::Arc<RegistryCodec>,
}

impl CommandPublisher {
    pub fn new(
        settings: &KafkaSettings,
        codec: std::sync::Arc<RegistryCodec>,
    ) -> Result<Self, KafkaError> {
        Ok(CommandPublisher {
            producer: settings.producer().create()?,
            codec,
        })
    }

    /// Encodes and sends one command; `traceparent` is a W3C trace context to propagate.
    pub async fn publish(
        &self,
        command: &PaymentCommand,
        traceparent: Option<&str>,
    ) -> Result<Published, PublishError> {
        let bytes = self.codec.encode_command(command).await?;
        let mut hdrs = OwnedHeaders::new();
        if let Some(tp) = traceparent {
            hdrs = headers::with(hdrs, headers::TRACEPARENT, tp);
        }
        self.send_to(COMMANDS, command.merchant_id.as_bytes(), &bytes, hdrs)
            .await
    }

    /// Encodes and sends one gateway result to `gateway.results`, as a gateway worker or the
    /// webhook receiver does. Needs a principal allowed to write there (the gateway's).
    pub async fn publish_result(&self, result: &GatewayResult) -> Result<Published, PublishError> {
        let bytes = self.codec.encode_result(result).await?;
        self.send_to(
            GATEWAY_RESULTS,
            result.merchant_id.as_bytes(),
            &bytes,
            OwnedHeaders::new(),
        )
        .await
    }

    /// Sends bytes as they are to `payments.commands` (tools and tests that need a malformed
    /// record).
    pub async fn send_raw(
        &self,
        key: &[u8],
        payload: &[u8],
        hdrs: OwnedHeaders,
    ) -> Result<Published, PublishError> {
        self.send_to(COMMANDS, key, payload, hdrs).await
    }

    /// Sends bytes as they are to `topic`.
    pub async fn send_to(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        hdrs: OwnedHeaders,
    ) -> Result<Published, PublishError> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(hdrs);
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        Ok(Published {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

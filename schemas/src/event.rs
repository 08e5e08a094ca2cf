//! Events: the immutable facts the ledger writes (`payments.events`).

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::WireMoney;
use crate::avro_value::{self as av, Fields};
use crate::codec::DecodeError;

/// The envelope every event travels in. Mirrors `io.payledger.events.PaymentEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    pub event_id: Uuid,
    pub merchant_id: String,
    /// 1, 2, 3 … per merchant, in the order the ledger wrote them.
    pub merchant_sequence: i64,
    pub payment_id: Option<Uuid>,
    pub command_id: Uuid,
    pub idempotency_key: String,
    /// Hex SHA-256 of the causing command's content (see the ledger's `fingerprint`).
    pub command_fingerprint: String,
    pub occurred_at: DateTime<Utc>,
    pub body: EventBody,
}

/// One variant per branch of the `body` union, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    PaymentAuthorizationRequested(PaymentAuthorizationRequested),
    CommandRejected(CommandRejected),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAuthorizationRequested {
    pub payment_id: Uuid,
    pub amount: WireMoney,
    pub processor: String,
    pub payment_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRejected {
    /// Stable, machine-readable (`invalid_amount`, `duplicate_payment`, …).
    pub reason_code: String,
    /// For people; never holds secrets or card data.
    pub detail: String,
}

impl PaymentEvent {
    /// The Avro value of this event, in the shape of the newest `payments.events-value`.
    pub fn to_value(&self) -> Value {
        let body = match &self.body {
            EventBody::PaymentAuthorizationRequested(e) => Value::Union(
                0,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("amount", av::money(&e.amount)),
                    ("processor", av::string(&e.processor)),
                    ("payment_token", av::string(&e.payment_token)),
                ])),
            ),
            EventBody::CommandRejected(e) => Value::Union(
                1,
                Box::new(av::record(vec![
                    ("reason_code", av::string(&e.reason_code)),
                    ("detail", av::string(&e.detail)),
                ])),
            ),
        };
        let payment_id = self.payment_id.map(|id| id.to_string());
        av::record(vec![
            ("event_id", av::string(&self.event_id.to_string())),
            ("merchant_id", av::string(&self.merchant_id)),
            ("merchant_sequence", Value::Long(self.merchant_sequence)),
            ("payment_id", av::opt_string(payment_id.as_deref())),
            ("command_id", av::string(&self.command_id.to_string())),
            ("idempotency_key", av::string(&self.idempotency_key)),
            ("command_fingerprint", av::string(&self.command_fingerprint)),
            ("occurred_at", av::timestamp(&self.occurred_at)),
            ("body", body),
        ])
    }

    /// Reads a value already resolved to the newest `payments.events-value` schema.
    pub fn from_value(value: &Value) -> Result<Self, DecodeError> {
        let f = Fields::of("PaymentEvent", value)?;
        let (branch, body) = f.union("body")?;
        let body = match branch {
            0 => {
                let b = Fields::of("PaymentAuthorizationRequested", body)?;
                EventBody::PaymentAuthorizationRequested(PaymentAuthorizationRequested {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                    processor: b.string("processor")?,
                    payment_token: b.string("payment_token")?,
                })
            }
            1 => {
                let b = Fields::of("CommandRejected", body)?;
                EventBody::CommandRejected(CommandRejected {
                    reason_code: b.string("reason_code")?,
                    detail: b.string("detail")?,
                })
            }
            other => return Err(DecodeError::unknown_branch(f.record_name(), other)),
        };
        Ok(PaymentEvent {
            event_id: f.uuid("event_id")?,
            merchant_id: f.string("merchant_id")?,
            merchant_sequence: f.long("merchant_sequence")?,
            payment_id: f.opt_uuid("payment_id")?,
            command_id: f.uuid("command_id")?,
            idempotency_key: f.string("idempotency_key")?,
            command_fingerprint: f.string("command_fingerprint")?,
            occurred_at: f.timestamp("occurred_at")?,
            body,
        })
    }

    /// The event's name as it appears in logs, headers and read models.
    pub fn kind(&self) -> &'static str {
        match self.body {
            EventBody::PaymentAuthorizationRequested(_) => "PaymentAuthorizationRequested",
            EventBody::CommandRejected(_) => "CommandRejected",
        }
    }
}

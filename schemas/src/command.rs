//! Commands: what upstream services ask of the ledger (`payments.commands`).

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::WireMoney;
use crate::avro_value::{self as av, Fields};
use crate::codec::DecodeError;

/// The envelope every command travels in. Mirrors `io.payledger.commands.PaymentCommand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCommand {
    pub command_id: Uuid,
    pub idempotency_key: String,
    pub merchant_id: String,
    pub issued_at: DateTime<Utc>,
    pub body: CommandBody,
}

/// The command itself: one variant per branch of the `body` union, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    AuthorizePayment(AuthorizePayment),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizePayment {
    pub payment_id: Uuid,
    pub amount: WireMoney,
    pub processor: String,
    /// A processor or PCI Proxy token; card numbers never enter payledger.
    pub payment_token: String,
}

impl PaymentCommand {
    /// The Avro value of this command, in the shape of the newest `payments.commands-value`.
    pub fn to_value(&self) -> Value {
        let body = match &self.body {
            CommandBody::AuthorizePayment(a) => Value::Union(
                0,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&a.payment_id.to_string())),
                    ("amount", av::money(&a.amount)),
                    ("processor", av::string(&a.processor)),
                    ("payment_token", av::string(&a.payment_token)),
                ])),
            ),
        };
        av::record(vec![
            ("command_id", av::string(&self.command_id.to_string())),
            ("idempotency_key", av::string(&self.idempotency_key)),
            ("merchant_id", av::string(&self.merchant_id)),
            ("issued_at", av::timestamp(&self.issued_at)),
            ("body", body),
        ])
    }

    /// Reads a value already resolved to the newest `payments.commands-value` schema.
    pub fn from_value(value: &Value) -> Result<Self, DecodeError> {
        let f = Fields::of("PaymentCommand", value)?;
        let (branch, body) = f.union("body")?;
        let body = match branch {
            0 => {
                let b = Fields::of("AuthorizePayment", body)?;
                CommandBody::AuthorizePayment(AuthorizePayment {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                    processor: b.string("processor")?,
                    payment_token: b.string("payment_token")?,
                })
            }
            other => return Err(DecodeError::unknown_branch(f.record_name(), other)),
        };
        Ok(PaymentCommand {
            command_id: f.uuid("command_id")?,
            idempotency_key: f.string("idempotency_key")?,
            merchant_id: f.string("merchant_id")?,
            issued_at: f.timestamp("issued_at")?,
            body,
        })
    }

    /// The command's name as it appears in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self.body {
            CommandBody::AuthorizePayment(_) => "AuthorizePayment",
        }
    }
}

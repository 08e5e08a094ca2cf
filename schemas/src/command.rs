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
    CapturePayment(CapturePayment),
    VoidPayment(VoidPayment),
    RefundPayment(RefundPayment),
    RequestPayout(RequestPayout),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizePayment {
    pub payment_id: Uuid,
    pub amount: WireMoney,
    pub processor: String,
    /// A processor or PCI Proxy token; card numbers never enter payledger.
    pub payment_token: String,
}

/// Capture part or all of what an authorization still holds. May be repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePayment {
    pub payment_id: Uuid,
    pub amount: WireMoney,
}

/// Release what is left of an authorization's hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidPayment {
    pub payment_id: Uuid,
}

/// Return part or all of what was captured. May be repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPayment {
    pub payment_id: Uuid,
    pub amount: WireMoney,
}

/// Pay the merchant out of its payable balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPayout {
    pub payout_id: Uuid,
    pub amount: WireMoney,
    /// The platform cash account the money leaves from (`cash:<bank_account>`).
    pub bank_account: String,
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
            CommandBody::CapturePayment(c) => Value::Union(
                1,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&c.payment_id.to_string())),
                    ("amount", av::money(&c.amount)),
                ])),
            ),
            CommandBody::VoidPayment(v) => Value::Union(
                2,
                Box::new(av::record(vec![(
                    "payment_id",
                    av::string(&v.payment_id.to_string()),
                )])),
            ),
            CommandBody::RefundPayment(r) => Value::Union(
                3,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&r.payment_id.to_string())),
                    ("amount", av::money(&r.amount)),
                ])),
            ),
            CommandBody::RequestPayout(p) => Value::Union(
                4,
                Box::new(av::record(vec![
                    ("payout_id", av::string(&p.payout_id.to_string())),
                    ("amount", av::money(&p.amount)),
                    ("bank_account", av::string(&p.bank_account)),
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
            1 => {
                let b = Fields::of("CapturePayment", body)?;
                CommandBody::CapturePayment(CapturePayment {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                })
            }
            2 => {
                let b = Fields::of("VoidPayment", body)?;
                CommandBody::VoidPayment(VoidPayment {
                    payment_id: b.uuid("payment_id")?,
                })
            }
            3 => {
                let b = Fields::of("RefundPayment", body)?;
                CommandBody::RefundPayment(RefundPayment {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                })
            }
            4 => {
                let b = Fields::of("RequestPayout", body)?;
                CommandBody::RequestPayout(RequestPayout {
                    payout_id: b.uuid("payout_id")?,
                    amount: b.money("amount")?,
                    bank_account: b.string("bank_account")?,
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
            CommandBody::CapturePayment(_) => "CapturePayment",
            CommandBody::VoidPayment(_) => "VoidPayment",
            CommandBody::RefundPayment(_) => "RefundPayment",
            CommandBody::RequestPayout(_) => "RequestPayout",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;

    use super::*;
    use crate::Subject;
    use crate::avro_value::testing::through_bytes;

    fn money(amount: &str, currency: &str) -> WireMoney {
        WireMoney {
            amount: amount.into(),
            currency: currency.into(),
        }
    }

    fn command(body: CommandBody) -> PaymentCommand {
        PaymentCommand {
            command_id: Uuid::from_u128(1),
            idempotency_key: "idem-1".into(),
            merchant_id: "m-1".into(),
            issued_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            body,
        }
    }

    fn authorize() -> PaymentCommand {
        command(CommandBody::AuthorizePayment(AuthorizePayment {
            payment_id: Uuid::from_u128(2),
            amount: money("10.50", "GBP"),
            processor: "stripe".into(),
            payment_token: "tok_visa".into(),
        }))
    }

    /// One command per variant.
    fn commands() -> Vec<PaymentCommand> {
        let all = vec![
            authorize(),
            command(CommandBody::CapturePayment(CapturePayment {
                payment_id: Uuid::from_u128(2),
                amount: money("4.25", "GBP"),
            })),
            command(CommandBody::VoidPayment(VoidPayment {
                payment_id: Uuid::from_u128(2),
            })),
            command(CommandBody::RefundPayment(RefundPayment {
                payment_id: Uuid::from_u128(2),
                amount: money("1000", "JPY"),
            })),
            command(CommandBody::RequestPayout(RequestPayout {
                payout_id: Uuid::from_u128(9),
                amount: money("250.00", "EUR"),
                bank_account: "barclays-gbp".into(),
            })),
        ];
        let kinds: HashSet<_> = all.iter().map(PaymentCommand::kind).collect();
        assert_eq!(kinds.len(), 5, "one sample per CommandBody variant");
        all
    }

    #[test]
    fn every_command_variant_round_trips_through_value() {
        for c in commands() {
            assert_eq!(PaymentCommand::from_value(&c.to_value()).unwrap(), c);
        }
    }

    #[test]
    fn every_command_variant_round_trips_through_avro_bytes() {
        let schema = Subject::COMMANDS.latest().unwrap();
        for c in commands() {
            let read = through_bytes(&schema, &c.to_value(), None);
            assert_eq!(
                PaymentCommand::from_value(&read).unwrap(),
                c,
                "{}",
                c.kind()
            );
        }
    }

    #[test]
    fn a_v1_command_reads_as_v2() {
        let versions = Subject::COMMANDS.parsed_versions().unwrap();
        let (v1, latest) = (&versions[0], versions.last().unwrap());
        let read = through_bytes(v1, &authorize().to_value(), Some(latest));
        assert_eq!(PaymentCommand::from_value(&read).unwrap(), authorize());
    }

    #[test]
    fn an_unknown_body_branch_is_reported() {
        let Value::Record(mut fields) = authorize().to_value() else {
            unreachable!()
        };
        for (name, v) in &mut fields {
            if name == "body" {
                *v = Value::Union(5, Box::new(Value::Null));
            }
        }
        let err = PaymentCommand::from_value(&Value::Record(fields)).unwrap_err();
        assert!(
            matches!(err, DecodeError::UnknownBranch { branch: 5, .. }),
            "{err}"
        );
    }
}

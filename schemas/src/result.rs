//! Gateway results: what a processor said, reported by gateway workers and the webhook
//! receiver on `gateway.results`. The ledger turns them into payment events.

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::WireMoney;
use crate::avro_value::{self as av, Fields};
use crate::codec::DecodeError;
use crate::event::DisputeOutcome;

/// The envelope. Mirrors `io.payledger.gateway.GatewayResult`. Keyed by `merchant_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResult {
    /// Chosen by the reporter; the ledger treats a second result with the same id as a retry.
    pub result_id: Uuid,
    pub merchant_id: String,
    pub payment_id: Uuid,
    pub processor: String,
    pub occurred_at: DateTime<Utc>,
    pub body: ResultBody,
}

/// One variant per branch of the `body` union, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultBody {
    Authorization(AuthorizationResult),
    Settlement(SettlementReport),
    DisputeOpened(DisputeNotice),
    DisputeClosed(DisputeDecision),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationOutcome {
    Approved,
    Declined,
    Failed,
    Unknown,
}

/// How the reporter learned the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultSource {
    /// The processor's answer to the authorization call.
    Response,
    /// A status inquiry, e.g. after a timeout left the outcome unknown.
    StatusInquiry,
    /// A signed callback from the processor.
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResult {
    pub outcome: AuthorizationOutcome,
    pub source: ResultSource,
    pub processor_reference: Option<String>,
    /// Decline or error code from the processor.
    pub code: Option<String>,
    pub detail: String,
    /// When the processor drops the hold; `None`: the ledger's default validity applies.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementReport {
    pub settlement_id: String,
    /// Gross amount settled for the payment.
    pub amount: WireMoney,
    /// The processor's fee, withheld from `amount`.
    pub fee: WireMoney,
    pub bank_account: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeNotice {
    pub dispute_id: String,
    pub amount: WireMoney,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeDecision {
    pub dispute_id: String,
    pub outcome: DisputeOutcome,
}

impl GatewayResult {
    /// The Avro value of this result, in the shape of the newest `gateway.results-value`.
    pub fn to_value(&self) -> Value {
        let body = match &self.body {
            ResultBody::Authorization(r) => Value::Union(
                0,
                Box::new(av::record(vec![
                    ("outcome", r.outcome.to_value()),
                    ("source", r.source.to_value()),
                    (
                        "processor_reference",
                        av::opt_string(r.processor_reference.as_deref()),
                    ),
                    ("code", av::opt_string(r.code.as_deref())),
                    ("detail", av::string(&r.detail)),
                    ("expires_at", av::opt_timestamp(r.expires_at.as_ref())),
                ])),
            ),
            ResultBody::Settlement(r) => Value::Union(
                1,
                Box::new(av::record(vec![
                    ("settlement_id", av::string(&r.settlement_id)),
                    ("amount", av::money(&r.amount)),
                    ("fee", av::money(&r.fee)),
                    ("bank_account", av::string(&r.bank_account)),
                ])),
            ),
            ResultBody::DisputeOpened(r) => Value::Union(
                2,
                Box::new(av::record(vec![
                    ("dispute_id", av::string(&r.dispute_id)),
                    ("amount", av::money(&r.amount)),
                    ("reason", av::string(&r.reason)),
                ])),
            ),
            ResultBody::DisputeClosed(r) => Value::Union(
                3,
                Box::new(av::record(vec![
                    ("dispute_id", av::string(&r.dispute_id)),
                    ("outcome", r.outcome.to_value()),
                ])),
            ),
        };
        av::record(vec![
            ("result_id", av::string(&self.result_id.to_string())),
            ("merchant_id", av::string(&self.merchant_id)),
            ("payment_id", av::string(&self.payment_id.to_string())),
            ("processor", av::string(&self.processor)),
            ("occurred_at", av::timestamp(&self.occurred_at)),
            ("body", body),
        ])
    }

    /// Reads a value already resolved to the newest `gateway.results-value` schema.
    pub fn from_value(value: &Value) -> Result<Self, DecodeError> {
        let f = Fields::of("GatewayResult", value)?;
        let (branch, body) = f.union("body")?;
        let body = match branch {
            0 => {
                let b = Fields::of("AuthorizationResult", body)?;
                ResultBody::Authorization(AuthorizationResult {
                    outcome: b.enum_symbol("outcome", AuthorizationOutcome::from_symbol)?,
                    source: b.enum_symbol("source", ResultSource::from_symbol)?,
                    processor_reference: b.opt_string("processor_reference")?,
                    code: b.opt_string("code")?,
                    detail: b.string("detail")?,
                    expires_at: b.opt_timestamp("expires_at")?,
                })
            }
            1 => {
                let b = Fields::of("SettlementReport", body)?;
                ResultBody::Settlement(SettlementReport {
                    settlement_id: b.string("settlement_id")?,
                    amount: b.money("amount")?,
                    fee: b.money("fee")?,
                    bank_account: b.string("bank_account")?,
                })
            }
            2 => {
                let b = Fields::of("DisputeNotice", body)?;
                ResultBody::DisputeOpened(DisputeNotice {
                    dispute_id: b.string("dispute_id")?,
                    amount: b.money("amount")?,
                    reason: b.string("reason")?,
                })
            }
            3 => {
                let b = Fields::of("DisputeDecision", body)?;
                ResultBody::DisputeClosed(DisputeDecision {
                    dispute_id: b.string("dispute_id")?,
                    outcome: b.enum_symbol("outcome", DisputeOutcome::from_symbol)?,
                })
            }
            other => return Err(DecodeError::unknown_branch(f.record_name(), other)),
        };
        Ok(GatewayResult {
            result_id: f.uuid("result_id")?,
            merchant_id: f.string("merchant_id")?,
            payment_id: f.uuid("payment_id")?,
            processor: f.string("processor")?,
            occurred_at: f.timestamp("occurred_at")?,
            body,
        })
    }

    /// The result's name as it appears in logs.
    pub fn kind(&self) -> &'static str {
        match self.body {
            ResultBody::Authorization(_) => "AuthorizationResult",
            ResultBody::Settlement(_) => "SettlementReport",
            ResultBody::DisputeOpened(_) => "DisputeNotice",
            ResultBody::DisputeClosed(_) => "DisputeDecision",
        }
    }
}

// Avro enums: the index is the symbol's position in the schema's `symbols`.

impl AuthorizationOutcome {
    fn to_value(self) -> Value {
        match self {
            AuthorizationOutcome::Approved => av::enum_symbol(0, "APPROVED"),
            AuthorizationOutcome::Declined => av::enum_symbol(1, "DECLINED"),
            AuthorizationOutcome::Failed => av::enum_symbol(2, "FAILED"),
            AuthorizationOutcome::Unknown => av::enum_symbol(3, "UNKNOWN"),
        }
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        match symbol {
            "APPROVED" => Some(AuthorizationOutcome::Approved),
            "DECLINED" => Some(AuthorizationOutcome::Declined),
            "FAILED" => Some(AuthorizationOutcome::Failed),
            "UNKNOWN" => Some(AuthorizationOutcome::Unknown),
            _ => None,
        }
    }
}

impl ResultSource {
    fn to_value(self) -> Value {
        match self {
            ResultSource::Response => av::enum_symbol(0, "RESPONSE"),
            ResultSource::StatusInquiry => av::enum_symbol(1, "STATUS_INQUIRY"),
            ResultSource::Webhook => av::enum_symbol(2, "WEBHOOK"),
        }
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        match symbol {
            "RESPONSE" => Some(ResultSource::Response),
            "STATUS_INQUIRY" => Some(ResultSource::StatusInquiry),
            "WEBHOOK" => Some(ResultSource::Webhook),
            _ => None,
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

    fn result(body: ResultBody) -> GatewayResult {
        GatewayResult {
            result_id: Uuid::from_u128(11),
            merchant_id: "m-1".into(),
            payment_id: Uuid::from_u128(2),
            processor: "stripe".into(),
            occurred_at: Utc.timestamp_millis_opt(1_700_000_000_789).unwrap(),
            body,
        }
    }

    fn approved() -> GatewayResult {
        result(ResultBody::Authorization(AuthorizationResult {
            outcome: AuthorizationOutcome::Approved,
            source: ResultSource::Response,
            processor_reference: Some("ch_123".into()),
            code: None,
            detail: "approved".into(),
            expires_at: Some(Utc.timestamp_millis_opt(1_700_600_000_000).unwrap()),
        }))
    }

    /// At least one result per variant, every enum symbol, options both `None` and `Some`.
    fn results() -> Vec<GatewayResult> {
        let authorization = |outcome, source, reference: Option<&str>, code: Option<&str>| {
            result(ResultBody::Authorization(AuthorizationResult {
                outcome,
                source,
                processor_reference: reference.map(str::to_owned),
                code: code.map(str::to_owned),
                detail: "from the processor".into(),
                expires_at: None,
            }))
        };
        let all = vec![
            approved(),
            authorization(
                AuthorizationOutcome::Declined,
                ResultSource::Webhook,
                Some("ch_124"),
                Some("insufficient_funds"),
            ),
            authorization(
                AuthorizationOutcome::Failed,
                ResultSource::Response,
                None,
                Some("invalid_token"),
            ),
            authorization(
                AuthorizationOutcome::Unknown,
                ResultSource::StatusInquiry,
                None,
                None,
            ),
            result(ResultBody::Settlement(SettlementReport {
                settlement_id: "po_1".into(),
                amount: money("4.00", "GBP"),
                fee: money("0.20", "GBP"),
                bank_account: "barclays-gbp".into(),
            })),
            result(ResultBody::DisputeOpened(DisputeNotice {
                dispute_id: "dp_1".into(),
                amount: money("4.00", "GBP"),
                reason: "fraudulent".into(),
            })),
            result(ResultBody::DisputeClosed(DisputeDecision {
                dispute_id: "dp_1".into(),
                outcome: DisputeOutcome::Won,
            })),
            result(ResultBody::DisputeClosed(DisputeDecision {
                dispute_id: "dp_2".into(),
                outcome: DisputeOutcome::Lost,
            })),
        ];
        let kinds: HashSet<_> = all.iter().map(GatewayResult::kind).collect();
        assert_eq!(kinds.len(), 4, "one sample per ResultBody variant");
        all
    }

    #[test]
    fn every_result_variant_round_trips_through_value() {
        for r in results() {
            assert_eq!(GatewayResult::from_value(&r.to_value()).unwrap(), r);
        }
    }

    #[test]
    fn every_result_variant_round_trips_through_avro_bytes() {
        let schema = Subject::GATEWAY_RESULTS.latest().unwrap();
        for r in results() {
            let read = through_bytes(&schema, &r.to_value(), None);
            assert_eq!(GatewayResult::from_value(&read).unwrap(), r, "{}", r.kind());
        }
    }

    #[test]
    fn expires_at_also_reads_from_a_plain_long() {
        let mut value = approved().to_value();
        let Value::Record(fields) = &mut value else {
            unreachable!()
        };
        let Some((_, Value::Union(_, body))) = fields.iter_mut().find(|(n, _)| n == "body") else {
            unreachable!()
        };
        let Value::Record(body) = body.as_mut() else {
            unreachable!()
        };
        for (name, v) in body.iter_mut() {
            if name == "expires_at" {
                *v = Value::Union(1, Box::new(Value::Long(1_700_600_000_000)));
            }
        }
        assert_eq!(GatewayResult::from_value(&value).unwrap(), approved());
    }
}

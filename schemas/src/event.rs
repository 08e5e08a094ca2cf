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
    PaymentAuthorized(PaymentAuthorized),
    PaymentDeclined(PaymentDeclined),
    PaymentAuthorizationFailed(PaymentAuthorizationFailed),
    PaymentAuthorizationUnknown(PaymentAuthorizationUnknown),
    PaymentCaptured(PaymentCaptured),
    PaymentVoided(PaymentVoided),
    PaymentRefunded(PaymentRefunded),
    PaymentSettled(PaymentSettled),
    DisputeOpened(DisputeOpened),
    DisputeClosed(DisputeClosed),
    PayoutSent(PayoutSent),
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

/// One double-entry transfer: `amount` moves from `credit_account` to `debit_account`.
/// Mirrors `io.payledger.events.Posting`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub debit_account: String,
    pub credit_account: String,
    pub amount: WireMoney,
    pub phase: PostingPhase,
}

/// TigerBeetle's two-phase transfer kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostingPhase {
    /// Opens (part of) a hold: pending debits and credits grow.
    Pending,
    /// Moves part of a hold to posted.
    PostPending,
    /// Releases part of a hold.
    VoidPending,
    /// A single-phase transfer: posted debits and credits grow.
    Posted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAuthorized {
    pub payment_id: Uuid,
    pub amount: WireMoney,
    pub processor_reference: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDeclined {
    pub payment_id: Uuid,
    pub decline_code: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAuthorizationFailed {
    pub payment_id: Uuid,
    pub error_code: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAuthorizationUnknown {
    pub payment_id: Uuid,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCaptured {
    pub payment_id: Uuid,
    pub amount: WireMoney,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoidReason {
    Requested,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentVoided {
    pub payment_id: Uuid,
    pub released: WireMoney,
    pub reason: VoidReason,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRefunded {
    pub payment_id: Uuid,
    pub amount: WireMoney,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettled {
    pub payment_id: Uuid,
    pub settlement_id: String,
    pub amount: WireMoney,
    pub fee: WireMoney,
    pub bank_account: String,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeOpened {
    pub payment_id: Uuid,
    pub dispute_id: String,
    pub amount: WireMoney,
    pub reason: String,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeOutcome {
    Won,
    Lost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeClosed {
    pub payment_id: Uuid,
    pub dispute_id: String,
    pub outcome: DisputeOutcome,
    pub amount: WireMoney,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutSent {
    pub payout_id: Uuid,
    pub amount: WireMoney,
    pub bank_account: String,
    pub postings: Vec<Posting>,
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
            EventBody::PaymentAuthorized(e) => Value::Union(
                2,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("amount", av::money(&e.amount)),
                    (
                        "processor_reference",
                        av::opt_string(e.processor_reference.as_deref()),
                    ),
                    ("expires_at", av::timestamp(&e.expires_at)),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::PaymentDeclined(e) => Value::Union(
                3,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("decline_code", av::string(&e.decline_code)),
                    ("detail", av::string(&e.detail)),
                ])),
            ),
            EventBody::PaymentAuthorizationFailed(e) => Value::Union(
                4,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("error_code", av::string(&e.error_code)),
                    ("detail", av::string(&e.detail)),
                ])),
            ),
            EventBody::PaymentAuthorizationUnknown(e) => Value::Union(
                5,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("detail", av::string(&e.detail)),
                ])),
            ),
            EventBody::PaymentCaptured(e) => Value::Union(
                6,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("amount", av::money(&e.amount)),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::PaymentVoided(e) => Value::Union(
                7,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("released", av::money(&e.released)),
                    ("reason", e.reason.to_value()),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::PaymentRefunded(e) => Value::Union(
                8,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("amount", av::money(&e.amount)),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::PaymentSettled(e) => Value::Union(
                9,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("settlement_id", av::string(&e.settlement_id)),
                    ("amount", av::money(&e.amount)),
                    ("fee", av::money(&e.fee)),
                    ("bank_account", av::string(&e.bank_account)),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::DisputeOpened(e) => Value::Union(
                10,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("dispute_id", av::string(&e.dispute_id)),
                    ("amount", av::money(&e.amount)),
                    ("reason", av::string(&e.reason)),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::DisputeClosed(e) => Value::Union(
                11,
                Box::new(av::record(vec![
                    ("payment_id", av::string(&e.payment_id.to_string())),
                    ("dispute_id", av::string(&e.dispute_id)),
                    ("outcome", e.outcome.to_value()),
                    ("amount", av::money(&e.amount)),
                    ("postings", postings_value(&e.postings)),
                ])),
            ),
            EventBody::PayoutSent(e) => Value::Union(
                12,
                Box::new(av::record(vec![
                    ("payout_id", av::string(&e.payout_id.to_string())),
                    ("amount", av::money(&e.amount)),
                    ("bank_account", av::string(&e.bank_account)),
                    ("postings", postings_value(&e.postings)),
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
            2 => {
                let b = Fields::of("PaymentAuthorized", body)?;
                EventBody::PaymentAuthorized(PaymentAuthorized {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                    processor_reference: b.opt_string("processor_reference")?,
                    expires_at: b.timestamp("expires_at")?,
                    postings: postings(&b, "postings")?,
                })
            }
            3 => {
                let b = Fields::of("PaymentDeclined", body)?;
                EventBody::PaymentDeclined(PaymentDeclined {
                    payment_id: b.uuid("payment_id")?,
                    decline_code: b.string("decline_code")?,
                    detail: b.string("detail")?,
                })
            }
            4 => {
                let b = Fields::of("PaymentAuthorizationFailed", body)?;
                EventBody::PaymentAuthorizationFailed(PaymentAuthorizationFailed {
                    payment_id: b.uuid("payment_id")?,
                    error_code: b.string("error_code")?,
                    detail: b.string("detail")?,
                })
            }
            5 => {
                let b = Fields::of("PaymentAuthorizationUnknown", body)?;
                EventBody::PaymentAuthorizationUnknown(PaymentAuthorizationUnknown {
                    payment_id: b.uuid("payment_id")?,
                    detail: b.string("detail")?,
                })
            }
            6 => {
                let b = Fields::of("PaymentCaptured", body)?;
                EventBody::PaymentCaptured(PaymentCaptured {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                    postings: postings(&b, "postings")?,
                })
            }
            7 => {
                let b = Fields::of("PaymentVoided", body)?;
                EventBody::PaymentVoided(PaymentVoided {
                    payment_id: b.uuid("payment_id")?,
                    released: b.money("released")?,
                    reason: b.enum_symbol("reason", VoidReason::from_symbol)?,
                    postings: postings(&b, "postings")?,
                })
            }
            8 => {
                let b = Fields::of("PaymentRefunded", body)?;
                EventBody::PaymentRefunded(PaymentRefunded {
                    payment_id: b.uuid("payment_id")?,
                    amount: b.money("amount")?,
                    postings: postings(&b, "postings")?,
                })
            }
            9 => {
                let b = Fields::of("PaymentSettled", body)?;
                EventBody::PaymentSettled(PaymentSettled {
                    payment_id: b.uuid("payment_id")?,
                    settlement_id: b.string("settlement_id")?,
                    amount: b.money("amount")?,
                    fee: b.money("fee")?,
                    bank_account: b.string("bank_account")?,
                    postings: postings(&b, "postings")?,
                })
            }
            10 => {
                let b = Fields::of("DisputeOpened", body)?;
                EventBody::DisputeOpened(DisputeOpened {
                    payment_id: b.uuid("payment_id")?,
                    dispute_id: b.string("dispute_id")?,
                    amount: b.money("amount")?,
                    reason: b.string("reason")?,
                    postings: postings(&b, "postings")?,
                })
            }
            11 => {
                let b = Fields::of("DisputeClosed", body)?;
                EventBody::DisputeClosed(DisputeClosed {
                    payment_id: b.uuid("payment_id")?,
                    dispute_id: b.string("dispute_id")?,
                    outcome: b.enum_symbol("outcome", DisputeOutcome::from_symbol)?,
                    amount: b.money("amount")?,
                    postings: postings(&b, "postings")?,
                })
            }
            12 => {
                let b = Fields::of("PayoutSent", body)?;
                EventBody::PayoutSent(PayoutSent {
                    payout_id: b.uuid("payout_id")?,
                    amount: b.money("amount")?,
                    bank_account: b.string("bank_account")?,
                    postings: postings(&b, "postings")?,
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
            EventBody::PaymentAuthorized(_) => "PaymentAuthorized",
            EventBody::PaymentDeclined(_) => "PaymentDeclined",
            EventBody::PaymentAuthorizationFailed(_) => "PaymentAuthorizationFailed",
            EventBody::PaymentAuthorizationUnknown(_) => "PaymentAuthorizationUnknown",
            EventBody::PaymentCaptured(_) => "PaymentCaptured",
            EventBody::PaymentVoided(_) => "PaymentVoided",
            EventBody::PaymentRefunded(_) => "PaymentRefunded",
            EventBody::PaymentSettled(_) => "PaymentSettled",
            EventBody::DisputeOpened(_) => "DisputeOpened",
            EventBody::DisputeClosed(_) => "DisputeClosed",
            EventBody::PayoutSent(_) => "PayoutSent",
        }
    }
}

/// `postings`: an array of `io.payledger.events.Posting`.
fn postings_value(postings: &[Posting]) -> Value {
    av::array(
        postings
            .iter()
            .map(|p| {
                av::record(vec![
                    ("debit_account", av::string(&p.debit_account)),
                    ("credit_account", av::string(&p.credit_account)),
                    ("amount", av::money(&p.amount)),
                    ("phase", p.phase.to_value()),
                ])
            })
            .collect(),
    )
}

fn postings(f: &Fields<'_>, name: &'static str) -> Result<Vec<Posting>, DecodeError> {
    f.array(name)?
        .iter()
        .map(|item| {
            let p = Fields::of("Posting", item)?;
            Ok(Posting {
                debit_account: p.string("debit_account")?,
                credit_account: p.string("credit_account")?,
                amount: p.money("amount")?,
                phase: p.enum_symbol("phase", PostingPhase::from_symbol)?,
            })
        })
        .collect()
}

// Avro enums: the index is the symbol's position in the schema's `symbols`.

impl PostingPhase {
    fn to_value(self) -> Value {
        match self {
            PostingPhase::Pending => av::enum_symbol(0, "PENDING"),
            PostingPhase::PostPending => av::enum_symbol(1, "POST_PENDING"),
            PostingPhase::VoidPending => av::enum_symbol(2, "VOID_PENDING"),
            PostingPhase::Posted => av::enum_symbol(3, "POSTED"),
        }
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        match symbol {
            "PENDING" => Some(PostingPhase::Pending),
            "POST_PENDING" => Some(PostingPhase::PostPending),
            "VOID_PENDING" => Some(PostingPhase::VoidPending),
            "POSTED" => Some(PostingPhase::Posted),
            _ => None,
        }
    }
}

impl VoidReason {
    fn to_value(self) -> Value {
        match self {
            VoidReason::Requested => av::enum_symbol(0, "REQUESTED"),
            VoidReason::Expired => av::enum_symbol(1, "EXPIRED"),
        }
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        match symbol {
            "REQUESTED" => Some(VoidReason::Requested),
            "EXPIRED" => Some(VoidReason::Expired),
            _ => None,
        }
    }
}

/// Same symbols in `payments.events-value` and `gateway.results-value`.
impl DisputeOutcome {
    pub(crate) fn to_value(self) -> Value {
        match self {
            DisputeOutcome::Won => av::enum_symbol(0, "WON"),
            DisputeOutcome::Lost => av::enum_symbol(1, "LOST"),
        }
    }

    pub(crate) fn from_symbol(symbol: &str) -> Option<Self> {
        match symbol {
            "WON" => Some(DisputeOutcome::Won),
            "LOST" => Some(DisputeOutcome::Lost),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    fn posting(debit: &str, credit: &str, amount: &str, phase: PostingPhase) -> Posting {
        Posting {
            debit_account: debit.into(),
            credit_account: credit.into(),
            amount: money(amount, "GBP"),
            phase,
        }
    }

    fn event(payment_id: Option<Uuid>, body: EventBody) -> PaymentEvent {
        PaymentEvent {
            event_id: Uuid::from_u128(3),
            merchant_id: "m-1".into(),
            merchant_sequence: 7,
            payment_id,
            command_id: Uuid::from_u128(1),
            idempotency_key: "idem-1".into(),
            command_fingerprint: "ab".repeat(32),
            occurred_at: Utc.timestamp_millis_opt(1_700_000_000_456).unwrap(),
            body,
        }
    }

    /// The bodies v1 already had.
    fn v1_events() -> Vec<PaymentEvent> {
        vec![
            event(
                Some(Uuid::from_u128(2)),
                EventBody::PaymentAuthorizationRequested(PaymentAuthorizationRequested {
                    payment_id: Uuid::from_u128(2),
                    amount: money("1000", "JPY"),
                    processor: "square".into(),
                    payment_token: "cnon:card-nonce-ok".into(),
                }),
            ),
            event(
                None,
                EventBody::CommandRejected(CommandRejected {
                    reason_code: "invalid_amount".into(),
                    detail: "GBP allows 2 decimals".into(),
                }),
            ),
        ]
    }

    /// At least one event per variant, both `processor_reference`s, every enum symbol and
    /// every posting phase.
    pub(crate) fn events() -> Vec<PaymentEvent> {
        let pid = Uuid::from_u128(2);
        let payable = "merchant:m-1:payable";
        let clearing = "processor:stripe:clearing";
        let p = Some(pid);
        let authorized = |reference: Option<&str>| PaymentAuthorized {
            payment_id: pid,
            amount: money("10.50", "GBP"),
            processor_reference: reference.map(str::to_owned),
            expires_at: Utc.timestamp_millis_opt(1_700_600_000_000).unwrap(),
            postings: vec![posting(clearing, payable, "10.50", PostingPhase::Pending)],
        };
        let mut all = v1_events();
        all.extend([
            event(p, EventBody::PaymentAuthorized(authorized(Some("ch_123")))),
            event(p, EventBody::PaymentAuthorized(authorized(None))),
            event(
                p,
                EventBody::PaymentDeclined(PaymentDeclined {
                    payment_id: pid,
                    decline_code: "insufficient_funds".into(),
                    detail: "card declined".into(),
                }),
            ),
            event(
                p,
                EventBody::PaymentAuthorizationFailed(PaymentAuthorizationFailed {
                    payment_id: pid,
                    error_code: "invalid_token".into(),
                    detail: "token expired".into(),
                }),
            ),
            event(
                p,
                EventBody::PaymentAuthorizationUnknown(PaymentAuthorizationUnknown {
                    payment_id: pid,
                    detail: "timeout after 30s".into(),
                }),
            ),
            event(
                p,
                EventBody::PaymentCaptured(PaymentCaptured {
                    payment_id: pid,
                    amount: money("4.00", "GBP"),
                    postings: vec![
                        posting(clearing, payable, "4.00", PostingPhase::PostPending),
                        posting(clearing, payable, "6.50", PostingPhase::VoidPending),
                    ],
                }),
            ),
            event(
                p,
                EventBody::PaymentVoided(PaymentVoided {
                    payment_id: pid,
                    released: money("6.50", "GBP"),
                    reason: VoidReason::Requested,
                    postings: vec![posting(
                        clearing,
                        payable,
                        "6.50",
                        PostingPhase::VoidPending,
                    )],
                }),
            ),
            event(
                p,
                EventBody::PaymentVoided(PaymentVoided {
                    payment_id: pid,
                    released: money("10.50", "GBP"),
                    reason: VoidReason::Expired,
                    postings: vec![],
                }),
            ),
            event(
                p,
                EventBody::PaymentRefunded(PaymentRefunded {
                    payment_id: pid,
                    amount: money("1.00", "GBP"),
                    postings: vec![posting(payable, clearing, "1.00", PostingPhase::Posted)],
                }),
            ),
            event(
                p,
                EventBody::PaymentSettled(PaymentSettled {
                    payment_id: pid,
                    settlement_id: "po_1".into(),
                    amount: money("4.00", "GBP"),
                    fee: money("0.20", "GBP"),
                    bank_account: "barclays-gbp".into(),
                    postings: vec![
                        posting("cash:barclays-gbp", clearing, "3.80", PostingPhase::Posted),
                        posting("platform:fees", clearing, "0.20", PostingPhase::Posted),
                    ],
                }),
            ),
            event(
                p,
                EventBody::DisputeOpened(DisputeOpened {
                    payment_id: pid,
                    dispute_id: "dp_1".into(),
                    amount: money("4.00", "GBP"),
                    reason: "fraudulent".into(),
                    postings: vec![posting(
                        "merchant:m-1:disputes",
                        payable,
                        "4.00",
                        PostingPhase::Pending,
                    )],
                }),
            ),
            event(
                p,
                EventBody::DisputeClosed(DisputeClosed {
                    payment_id: pid,
                    dispute_id: "dp_1".into(),
                    outcome: DisputeOutcome::Won,
                    amount: money("4.00", "GBP"),
                    postings: vec![posting(
                        "merchant:m-1:disputes",
                        payable,
                        "4.00",
                        PostingPhase::VoidPending,
                    )],
                }),
            ),
            event(
                p,
                EventBody::DisputeClosed(DisputeClosed {
                    payment_id: pid,
                    dispute_id: "dp_2".into(),
                    outcome: DisputeOutcome::Lost,
                    amount: money("4.00", "GBP"),
                    postings: vec![posting(
                        "merchant:m-1:disputes",
                        payable,
                        "4.00",
                        PostingPhase::PostPending,
                    )],
                }),
            ),
            event(
                None,
                EventBody::PayoutSent(PayoutSent {
                    payout_id: Uuid::from_u128(9),
                    amount: money("3.00", "GBP"),
                    bank_account: "barclays-gbp".into(),
                    postings: vec![posting(
                        payable,
                        "cash:barclays-gbp",
                        "3.00",
                        PostingPhase::Posted,
                    )],
                }),
            ),
        ]);
        let kinds: HashSet<_> = all.iter().map(PaymentEvent::kind).collect();
        assert_eq!(kinds.len(), 13, "one sample per EventBody variant");
        all
    }

    fn postings_of(e: &PaymentEvent) -> &[Posting] {
        match &e.body {
            EventBody::PaymentAuthorized(b) => &b.postings,
            EventBody::PaymentCaptured(b) => &b.postings,
            EventBody::PaymentVoided(b) => &b.postings,
            EventBody::PaymentRefunded(b) => &b.postings,
            EventBody::PaymentSettled(b) => &b.postings,
            EventBody::DisputeOpened(b) => &b.postings,
            EventBody::DisputeClosed(b) => &b.postings,
            EventBody::PayoutSent(b) => &b.postings,
            _ => &[],
        }
    }

    #[test]
    fn the_samples_cover_every_posting_phase() {
        let phases: HashSet<_> = events()
            .iter()
            .flat_map(|e| postings_of(e).iter().map(|p| p.phase))
            .collect();
        assert_eq!(phases.len(), 4);
    }

    #[test]
    fn every_event_variant_round_trips_through_value() {
        for e in events() {
            assert_eq!(PaymentEvent::from_value(&e.to_value()).unwrap(), e);
        }
    }

    #[test]
    fn every_event_variant_round_trips_through_avro_bytes() {
        let schema = Subject::EVENTS.latest().unwrap();
        for e in events() {
            let read = through_bytes(&schema, &e.to_value(), None);
            assert_eq!(PaymentEvent::from_value(&read).unwrap(), e, "{}", e.kind());
        }
    }

    #[test]
    fn v1_events_read_as_v2() {
        let versions = Subject::EVENTS.parsed_versions().unwrap();
        let (v1, latest) = (&versions[0], versions.last().unwrap());
        for e in v1_events() {
            let read = through_bytes(v1, &e.to_value(), Some(latest));
            assert_eq!(PaymentEvent::from_value(&read).unwrap(), e, "{}", e.kind());
        }
    }

    #[test]
    fn an_unknown_enum_symbol_is_a_shape_error() {
        let captured = events()
            .into_iter()
            .find(|e| e.kind() == "PaymentCaptured")
            .unwrap();
        let mut value = captured.to_value();
        // PaymentEvent.body -> PaymentCaptured.postings[0].phase
        let Value::Record(fields) = &mut value else {
            unreachable!()
        };
        let Some((_, Value::Union(_, body))) = fields.iter_mut().find(|(n, _)| n == "body") else {
            unreachable!()
        };
        let Value::Record(body) = body.as_mut() else {
            unreachable!()
        };
        let Some((_, Value::Array(postings))) = body.iter_mut().find(|(n, _)| n == "postings")
        else {
            unreachable!()
        };
        let Value::Record(posting) = &mut postings[0] else {
            unreachable!()
        };
        for (name, v) in posting.iter_mut() {
            if name == "phase" {
                *v = Value::Enum(0, "HALF_POSTED".into());
            }
        }
        let err = PaymentEvent::from_value(&value).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Shape {
                    record: "Posting",
                    field: "phase",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("HALF_POSTED"), "{err}");
    }
}

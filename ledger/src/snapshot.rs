//! Snapshots of a partition's state: a shortcut for restores, never a source of truth.
//!
//! A snapshot is the state after every event of its partition up to (not including)
//! `events_offset`. Restoring from it and replaying the events from that offset on must give
//! exactly the state a full replay gives; the restore falls back to a full replay whenever a
//! snapshot cannot be read or does not line up with the events that follow it.
//!
//! The encoding is a private, versioned JSON document ([`FORMAT`]); an unknown version is
//! ignored (full replay), so changing the format needs no migration.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::account::Account;
use crate::balance::{Balance, Balances};
use crate::money::Currency;
use crate::processor::Processor;
use crate::state::{
    AuthorizationStatus, Dispute, DisputeStatus, MerchantState, PartitionState, Payment,
};

/// The snapshot encoding this build writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot format {0} is not {FORMAT}")]
    Format(u32),
    #[error("snapshot does not parse: {0}")]
    Json(#[from] serde_json::Error),
    #[error("snapshot holds an invalid value: {0}")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct Doc {
    format: u32,
    merchants: Vec<MerchantDoc>,
}

#[derive(Serialize, Deserialize)]
struct MerchantDoc {
    id: String,
    sequence: i64,
    payments: Vec<PaymentDoc>,
    payouts: Vec<Uuid>,
    idempotency: Vec<(String, String)>,
    balances: Vec<BalanceDoc>,
}

#[derive(Serialize, Deserialize)]
struct PaymentDoc {
    id: Uuid,
    processor: String,
    currency: String,
    amount: Decimal,
    authorization: String,
    held: Decimal,
    captured: Decimal,
    released: Decimal,
    refunded: Decimal,
    settled: Decimal,
    expires_at: Option<DateTime<Utc>>,
    settlements: Vec<String>,
    disputes: Vec<(String, Decimal, String)>,
}

#[derive(Serialize, Deserialize)]
struct BalanceDoc {
    /// The account name with the merchant filled in, as in postings.
    account: String,
    currency: String,
    debits_pending: Decimal,
    debits_posted: Decimal,
    credits_pending: Decimal,
    credits_posted: Decimal,
}

/// Encodes a partition's state.
pub fn encode(state: &PartitionState) -> Vec<u8> {
    let mut merchants: Vec<MerchantDoc> = state
        .merchants
        .iter()
        .map(|(id, m)| MerchantDoc {
            id: id.clone(),
            sequence: m.sequence,
            payments: m.payments.values().map(payment_doc).collect(),
            payouts: m.payouts.iter().copied().collect(),
            idempotency: m
                .idempotency
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            balances: m
                .balances
                .iter()
                .map(|((account, currency), b)| BalanceDoc {
                    account: account.name(id),
                    currency: currency.code().to_owned(),
                    debits_pending: b.debits_pending,
                    debits_posted: b.debits_posted,
                    credits_pending: b.credits_pending,
                    credits_posted: b.credits_posted,
                })
                .collect(),
        })
        .collect();
    merchants.sort_by(|a, b| a.id.cmp(&b.id));
    serde_json::to_vec(&Doc {
        format: FORMAT,
        merchants,
    })
    .expect("a snapshot document always serializes")
}

/// Decodes a partition's state.
pub fn decode(bytes: &[u8]) -> Result<PartitionState, SnapshotError> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_slice(bytes)?;
    if version.format != FORMAT {
        return Err(SnapshotError::Format(version.format));
    }
    let doc: Doc = serde_json::from_slice(bytes)?;
    let mut state = PartitionState::default();
    for m in doc.merchants {
        let mut balances = HashMap::new();
        for b in m.balances {
            let account = Account::parse(&b.account, &m.id)
                .map_err(|e| SnapshotError::Invalid(e.to_string()))?;
            balances.insert(
                (account, currency(&b.currency)?),
                Balance {
                    debits_pending: b.debits_pending,
                    debits_posted: b.debits_posted,
                    credits_pending: b.credits_pending,
                    credits_posted: b.credits_posted,
                },
            );
        }
        let payments = m
            .payments
            .into_iter()
            .map(|p| payment(p).map(|p| (p.id, p)))
            .collect::<Result<HashMap<_, _>, _>>()?;
        state.merchants.insert(
            m.id,
            MerchantState {
                sequence: m.sequence,
                payments,
                payouts: m.payouts.into_iter().collect::<HashSet<_>>(),
                idempotency: m.idempotency.into_iter().collect(),
                balances: Balances::from_map(balances),
            },
        );
    }
    Ok(state)
}

fn payment_doc(p: &Payment) -> PaymentDoc {
    PaymentDoc {
        id: p.id,
        processor: p.processor.as_str().to_owned(),
        currency: p.currency.code().to_owned(),
        amount: p.amount,
        authorization: format!("{:?}", p.authorization),
        held: p.held,
        captured: p.captured,
        released: p.released,
        refunded: p.refunded,
        settled: p.settled,
        expires_at: p.expires_at,
        settlements: p.settlements.clone(),
        disputes: p
            .disputes
            .iter()
            .map(|d| (d.id.clone(), d.amount, format!("{:?}", d.status)))
            .collect(),
    }
}

fn payment(p: PaymentDoc) -> Result<Payment, SnapshotError> {
    let invalid = |what: &str, value: &str| SnapshotError::Invalid(format!("{what} {value:?}"));
    let authorization = match p.authorization.as_str() {
        "Requested" => AuthorizationStatus::Requested,
        "Unknown" => AuthorizationStatus::Unknown,
        "Declined" => AuthorizationStatus::Declined,
        "Failed" => AuthorizationStatus::Failed,
        "Approved" => AuthorizationStatus::Approved,
        other => return Err(invalid("authorization", other)),
    };
    let disputes = p
        .disputes
        .into_iter()
        .map(|(id, amount, status)| {
            let status = match status.as_str() {
                "Open" => DisputeStatus::Open,
                "Won" => DisputeStatus::Won,
                "Lost" => DisputeStatus::Lost,
                other => return Err(invalid("dispute status", other)),
            };
            Ok(Dispute { id, amount, status })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Payment {
        id: p.id,
        processor: Processor::parse(&p.processor)
            .ok_or_else(|| invalid("processor", &p.processor))?,
        currency: currency(&p.currency)?,
        amount: p.amount,
        authorization,
        held: p.held,
        captured: p.captured,
        released: p.released,
        refunded: p.refunded,
        settled: p.settled,
        expires_at: p.expires_at,
        settlements: p.settlements,
        disputes,
    })
}

fn currency(code: &str) -> Result<Currency, SnapshotError> {
    Currency::from_code(code).ok_or_else(|| SnapshotError::Invalid(format!("currency {code:?}")))
}

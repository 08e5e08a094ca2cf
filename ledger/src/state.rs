//! What the ledger knows about one merchant: enough to decide the next command.
//!
//! State lives in memory per assigned partition and is rebuilt from `payments.events` (the
//! only source of truth; a snapshot is a shortcut to the same state) whenever the ledger is
//! given a partition.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::balance::Balances;
use crate::money::Currency;
use crate::processor::Processor;

/// The most idempotency keys one merchant may hold in memory. A limit, not a hope: the
/// ledger refuses commands (`merchant_state_full`) rather than grow without bound.
pub const MAX_IDEMPOTENCY_KEYS_PER_MERCHANT: usize = 1_000_000;

/// The most disputes one payment may have.
pub const MAX_DISPUTES_PER_PAYMENT: usize = 16;

/// Where a payment's authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizationStatus {
    /// Accepted by the ledger; the gateway has been asked for an authorization.
    Requested,
    /// The processor's answer is unknown (a timeout); only a status result resolves it.
    Unknown,
    Declined,
    Failed,
    /// Approved: a hold was placed. Captures, voids, refunds and the rest follow.
    Approved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub id: String,
    pub amount: Decimal,
    pub status: DisputeStatus,
}

/// One payment. Amounts are in `currency`, exact, never negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub processor: Processor,
    pub currency: Currency,
    /// The amount asked for (and, once approved, authorized).
    pub amount: Decimal,
    pub authorization: AuthorizationStatus,
    /// What the hold still holds: authorized − captured − released.
    pub held: Decimal,
    pub captured: Decimal,
    /// Released by a void or by expiry.
    pub released: Decimal,
    pub refunded: Decimal,
    pub settled: Decimal,
    pub expires_at: Option<DateTime<Utc>>,
    /// Settlement ids applied to this payment.
    pub settlements: Vec<String>,
    pub disputes: Vec<Dispute>,
}

impl Payment {
    /// Captured money that is neither refunded nor taken back by an open or lost dispute:
    /// the most a new refund or dispute may be.
    pub fn refundable(&self) -> Decimal {
        let disputed: Decimal = self
            .disputes
            .iter()
            .filter(|d| d.status != DisputeStatus::Won)
            .map(|d| d.amount)
            .sum();
        self.captured - self.refunded - disputed
    }

    /// Captured money the processor has not settled (nor returned as a refund) yet.
    pub fn unsettled(&self) -> Decimal {
        self.captured - self.refunded - self.settled
    }

    /// A one-word summary for people and read models.
    pub fn status_label(&self) -> &'static str {
        match self.authorization {
            AuthorizationStatus::Requested => "authorization_requested",
            AuthorizationStatus::Unknown => "authorization_unknown",
            AuthorizationStatus::Declined => "declined",
            AuthorizationStatus::Failed => "failed",
            AuthorizationStatus::Approved => {
                if self
                    .disputes
                    .iter()
                    .any(|d| d.status == DisputeStatus::Open)
                {
                    "disputed"
                } else if self.captured.is_zero() {
                    if self.held.is_zero() {
                        "voided"
                    } else {
                        "authorized"
                    }
                } else if self.refunded == self.captured {
                    "refunded"
                } else if self.settled > Decimal::ZERO {
                    "settled"
                } else {
                    "captured"
                }
            }
        }
    }
}

/// One merchant's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchantState {
    /// The `merchant_sequence` of the last event applied (0: none yet).
    pub sequence: i64,
    pub payments: HashMap<Uuid, Payment>,
    pub payouts: HashSet<Uuid>,
    /// Idempotency key → fingerprint of the command that first used it.
    pub idempotency: HashMap<String, String>,
    /// Every account balance this merchant's events moved.
    pub balances: Balances,
}

/// The state of every merchant on one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    pub merchants: HashMap<String, MerchantState>,
}

impl PartitionState {
    pub fn merchant(&self, merchant_id: &str) -> Option<&MerchantState> {
        self.merchants.get(merchant_id)
    }

    pub fn merchant_mut(&mut self, merchant_id: &str) -> &mut MerchantState {
        self.merchants.entry(merchant_id.to_owned()).or_default()
    }
}

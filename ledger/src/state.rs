//! What the ledger knows about one merchant: enough to decide the next command.
//!
//! State lives in memory per assigned partition and is rebuilt from `payments.events` (the
//! only source of truth) whenever the ledger is given a partition.

use std::collections::HashMap;

use uuid::Uuid;

use crate::money::Money;

/// The most idempotency keys one merchant may hold in memory. A limit, not a hope: the
/// ledger refuses commands (`merchant_state_full`) rather than grow without bound. Issue #3's
/// snapshot work replaces this with a time-bounded window.
pub const MAX_IDEMPOTENCY_KEYS_PER_MERCHANT: usize = 1_000_000;

/// Where a payment stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Accepted by the ledger; the gateway has been asked for an authorization.
    AuthorizationRequested,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::AuthorizationRequested => "authorization_requested",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub status: PaymentStatus,
    pub amount: Money,
    pub processor: String,
}

/// One merchant's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchantState {
    /// The `merchant_sequence` of the last event applied (0: none yet).
    pub sequence: i64,
    pub payments: HashMap<Uuid, Payment>,
    /// Idempotency key → fingerprint of the command that first used it.
    pub idempotency: HashMap<String, String>,
}

/// The state of every merchant on one partition.
#[derive(Debug, Clone, Default)]
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

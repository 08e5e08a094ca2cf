//! Why the ledger refused a command. Codes are stable: senders and analysts match on them.

use std::fmt;

use crate::money::MoneyError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    InvalidMerchantId,
    InvalidIdempotencyKey,
    /// The key was used before for a command with different content.
    IdempotencyKeyReused,
    InvalidMoney(MoneyError),
    UnknownProcessor(String),
    InvalidPaymentToken,
    /// The token looks like a card number. Card numbers never enter payledger.
    CardNumberRejected,
    DuplicatePayment,
    MerchantStateFull,
}

impl Rejection {
    /// The stable, machine-readable code carried by `CommandRejected.reason_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidMerchantId => "invalid_merchant_id",
            Rejection::InvalidIdempotencyKey => "invalid_idempotency_key",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::InvalidMoney(e) => e.reason_code(),
            Rejection::UnknownProcessor(_) => "unknown_processor",
            Rejection::InvalidPaymentToken => "invalid_payment_token",
            Rejection::CardNumberRejected => "card_number_rejected",
            Rejection::DuplicatePayment => "duplicate_payment",
            Rejection::MerchantStateFull => "merchant_state_full",
        }
    }

    /// Does a rejection with this code bind the command's idempotency key to its outcome?
    /// Not when the key already meant something else, was itself invalid, or there was no
    /// room to remember it.
    pub fn binds_key(code: &str) -> bool {
        !matches!(
            code,
            "idempotency_key_reused" | "invalid_idempotency_key" | "merchant_state_full"
        )
    }
}

/// Human detail. Never echoes the token or any other secret from the command.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::InvalidMerchantId => {
                f.write_str("merchant_id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
            }
            Rejection::InvalidIdempotencyKey => {
                f.write_str("idempotency_key must be 1-255 printable ASCII characters")
            }
            Rejection::IdempotencyKeyReused => f.write_str(
                "this idempotency key was already used for a command with different content",
            ),
            Rejection::InvalidMoney(e) => write!(f, "{e}"),
            Rejection::UnknownProcessor(p) => {
                let shown: String = p.chars().take(32).collect();
                write!(
                    f,
                    "processor {shown:?} is not one of {}",
                    crate::PROCESSORS.join(", ")
                )
            }
            Rejection::InvalidPaymentToken => {
                f.write_str("payment_token must be 1-256 printable ASCII characters")
            }
            Rejection::CardNumberRejected => f.write_str(
                "payment_token looks like a card number; send a processor or PCI Proxy token",
            ),
            Rejection::DuplicatePayment => f.write_str("a payment with this payment_id exists"),
            Rejection::MerchantStateFull => {
                f.write_str("the merchant holds the maximum number of idempotency keys")
            }
        }
    }
}

//! Why the ledger refused a command or a gateway result. Codes are stable: senders and
//! analysts match on them.

use std::fmt;

use rust_decimal::Decimal;

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
    PaymentNotFound,
    /// The payment's authorization is not approved (its status is given).
    PaymentNotAuthorized(&'static str),
    CurrencyMismatch {
        expected: &'static str,
    },
    CaptureExceedsHold {
        held: Decimal,
    },
    AuthorizationExpired,
    NothingToVoid,
    RefundExceedsCaptured {
        refundable: Decimal,
    },
    InsufficientMerchantBalance {
        available: Decimal,
    },
    InvalidBankAccount,
    DuplicatePayout,
    ProcessorMismatch,
    /// A processor result contradicts the outcome already recorded.
    ConflictingResult {
        recorded: &'static str,
    },
    SettlementExceedsCaptured {
        unsettled: Decimal,
    },
    DuplicateSettlement,
    FeeExceedsAmount,
    DisputeExceedsCaptured {
        disputable: Decimal,
    },
    DuplicateDispute,
    TooManyDisputes,
    DisputeNotOpen,
    /// An identifier or code field is empty, too long or not printable ASCII.
    InvalidReference(&'static str),
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
            Rejection::PaymentNotFound => "payment_not_found",
            Rejection::PaymentNotAuthorized(_) => "payment_not_authorized",
            Rejection::CurrencyMismatch { .. } => "currency_mismatch",
            Rejection::CaptureExceedsHold { .. } => "capture_exceeds_authorization",
            Rejection::AuthorizationExpired => "authorization_expired",
            Rejection::NothingToVoid => "nothing_to_void",
            Rejection::RefundExceedsCaptured { .. } => "refund_exceeds_captured",
            Rejection::InsufficientMerchantBalance { .. } => "insufficient_merchant_balance",
            Rejection::InvalidBankAccount => "invalid_bank_account",
            Rejection::DuplicatePayout => "duplicate_payout",
            Rejection::ProcessorMismatch => "processor_mismatch",
            Rejection::ConflictingResult { .. } => "conflicting_result",
            Rejection::SettlementExceedsCaptured { .. } => "settlement_exceeds_captured",
            Rejection::DuplicateSettlement => "duplicate_settlement",
            Rejection::FeeExceedsAmount => "fee_exceeds_amount",
            Rejection::DisputeExceedsCaptured { .. } => "dispute_exceeds_captured",
            Rejection::DuplicateDispute => "duplicate_dispute",
            Rejection::TooManyDisputes => "too_many_disputes",
            Rejection::DisputeNotOpen => "dispute_not_open",
            Rejection::InvalidReference(_) => "invalid_reference",
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
                f.write_str("idempotency_key must be 1-255 printable ASCII characters, not starting with gateway-result: or expiry:")
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
            Rejection::PaymentNotFound => f.write_str("no payment with this payment_id"),
            Rejection::PaymentNotAuthorized(status) => {
                write!(f, "the payment is {status}, not authorized")
            }
            Rejection::CurrencyMismatch { expected } => {
                write!(f, "the payment is in {expected}")
            }
            Rejection::CaptureExceedsHold { held } => {
                write!(f, "the authorization holds only {held}")
            }
            Rejection::AuthorizationExpired => f.write_str("the authorization has expired"),
            Rejection::NothingToVoid => f.write_str("the authorization holds nothing to release"),
            Rejection::RefundExceedsCaptured { refundable } => {
                write!(f, "at most {refundable} can still be refunded")
            }
            Rejection::InsufficientMerchantBalance { available } => {
                write!(f, "the merchant's available payable balance is {available}")
            }
            Rejection::InvalidBankAccount => {
                f.write_str("bank_account must be 1-64 characters of a-z 0-9 - _")
            }
            Rejection::DuplicatePayout => f.write_str("a payout with this payout_id exists"),
            Rejection::ProcessorMismatch => {
                f.write_str("the result names another processor than the payment's")
            }
            Rejection::ConflictingResult { recorded } => write!(
                f,
                "the payment is already {recorded}; the processor's contradicting result needs reconciliation"
            ),
            Rejection::SettlementExceedsCaptured { unsettled } => {
                write!(f, "only {unsettled} is captured and unsettled")
            }
            Rejection::DuplicateSettlement => {
                f.write_str("this settlement_id was already applied to the payment")
            }
            Rejection::FeeExceedsAmount => f.write_str("the fee exceeds the settled amount"),
            Rejection::DisputeExceedsCaptured { disputable } => {
                write!(f, "at most {disputable} of the payment can be disputed")
            }
            Rejection::DuplicateDispute => f.write_str("a dispute with this dispute_id exists"),
            Rejection::TooManyDisputes => {
                f.write_str("the payment has the maximum number of disputes")
            }
            Rejection::DisputeNotOpen => f.write_str("no open dispute with this dispute_id"),
            Rejection::InvalidReference(field) => {
                write!(f, "{field} must be 1-128 printable ASCII characters")
            }
        }
    }
}

//! `evolve`: apply one event to a merchant's state. Pure. The ledger applies the events it
//! writes, and a restarting ledger applies the events it reads back: both must agree.

use schemas::{EventBody, PaymentEvent};
use thiserror::Error;

use crate::money::Money;
use crate::rejection::Rejection;
use crate::state::{MerchantState, Payment, PaymentStatus};

/// An event that cannot follow the state: the topic or the code is broken. The ledger stops
/// rather than decide on a state it cannot trust.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvolveError {
    #[error("merchant {merchant_id}: event sequence {found} does not follow {expected_after}")]
    SequenceGap {
        merchant_id: String,
        expected_after: i64,
        found: i64,
    },
    #[error("event {event_id}: {detail}")]
    Invalid { event_id: String, detail: String },
}

/// Applies `event` to `state`.
pub fn evolve(state: &mut MerchantState, event: &PaymentEvent) -> Result<(), EvolveError> {
    if event.merchant_sequence != state.sequence + 1 {
        return Err(EvolveError::SequenceGap {
            merchant_id: event.merchant_id.clone(),
            expected_after: state.sequence,
            found: event.merchant_sequence,
        });
    }
    match &event.body {
        EventBody::PaymentAuthorizationRequested(e) => {
            let amount = Money::parse(&e.amount.amount, &e.amount.currency).map_err(|err| {
                EvolveError::Invalid {
                    event_id: event.event_id.to_string(),
                    detail: format!("amount: {err}"),
                }
            })?;
            state.payments.insert(
                e.payment_id,
                Payment {
                    id: e.payment_id,
                    status: PaymentStatus::AuthorizationRequested,
                    amount,
                    processor: e.processor.clone(),
                },
            );
            record_key(state, event);
        }
        EventBody::CommandRejected(r) => {
            // A rejection is the outcome its key now stands for, except where the key itself
            // could not be bound (see `Rejection::binds_key`).
            if Rejection::binds_key(&r.reason_code) {
                record_key(state, event);
            }
        }
    }
    state.sequence = event.merchant_sequence;
    Ok(())
}

fn record_key(state: &mut MerchantState, event: &PaymentEvent) {
    state
        .idempotency
        .entry(event.idempotency_key.clone())
        .or_insert_with(|| event.command_fingerprint.clone());
}

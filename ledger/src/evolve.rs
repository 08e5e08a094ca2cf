//! `evolve`: apply one event to a merchant's state. Pure. The ledger applies the events it
//! writes, and a restarting ledger applies the events it reads back: both must agree.
//!
//! `evolve` trusts nothing: it re-parses every amount, re-checks every posting against the
//! balances, and refuses an event that would make any amount negative. An event that does
//! not apply means the topic or the code is broken, and the ledger stops rather than decide
//! on a state it cannot trust.

use rust_decimal::Decimal;
use schemas::{DisputeOutcome, EventBody, PaymentEvent, Posting, WireMoney};
use thiserror::Error;
use uuid::Uuid;

use crate::balance::{PostingError, Transfer};
use crate::money::{Currency, Money};
use crate::processor::Processor;
use crate::rejection::Rejection;
use crate::state::{AuthorizationStatus, Dispute, DisputeStatus, MerchantState, Payment};

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
    #[error("event {event_id}: postings: {source}")]
    Postings {
        event_id: String,
        #[source]
        source: Box<PostingError>,
    },
}

/// Applies `event` to `state`. On an error, the state may be partly changed and must be
/// thrown away (the ledger stops).
pub fn evolve(state: &mut MerchantState, event: &PaymentEvent) -> Result<(), EvolveError> {
    if event.merchant_sequence != state.sequence + 1 {
        return Err(EvolveError::SequenceGap {
            merchant_id: event.merchant_id.clone(),
            expected_after: state.sequence,
            found: event.merchant_sequence,
        });
    }
    let invalid = |detail: String| EvolveError::Invalid {
        event_id: event.event_id.to_string(),
        detail,
    };
    match &event.body {
        EventBody::PaymentAuthorizationRequested(e) => {
            let amount = money(&e.amount, None).map_err(invalid)?;
            let processor = Processor::parse(&e.processor)
                .ok_or_else(|| invalid(format!("unknown processor {:?}", e.processor)))?;
            if state.payments.contains_key(&e.payment_id) {
                return Err(invalid("payment exists".to_owned()));
            }
            state.payments.insert(
                e.payment_id,
                Payment {
                    id: e.payment_id,
                    processor,
                    currency: amount.currency(),
                    amount: amount.amount(),
                    authorization: AuthorizationStatus::Requested,
                    held: Decimal::ZERO,
                    captured: Decimal::ZERO,
                    released: Decimal::ZERO,
                    refunded: Decimal::ZERO,
                    settled: Decimal::ZERO,
                    expires_at: None,
                    settlements: Vec::new(),
                    disputes: Vec::new(),
                },
            );
        }
        EventBody::CommandRejected(r) => {
            // A rejection is the outcome its key now stands for, except where the key itself
            // could not be bound (see `Rejection::binds_key`).
            if Rejection::binds_key(&r.reason_code) {
                record_key(state, event);
            }
            state.sequence = event.merchant_sequence;
            return Ok(());
        }
        EventBody::PaymentAuthorized(e) => {
            let p = payment(state, e.payment_id, event)?;
            let amount = money(&e.amount, Some(p.currency)).map_err(invalid)?;
            if !matches!(
                p.authorization,
                AuthorizationStatus::Requested | AuthorizationStatus::Unknown
            ) || amount.amount() != p.amount
            {
                return Err(invalid("authorization does not follow the request".into()));
            }
            post(state, event, &e.postings)?;
            let p = payment_mut(state, e.payment_id);
            p.authorization = AuthorizationStatus::Approved;
            p.held = amount.amount();
            p.expires_at = Some(e.expires_at);
        }
        EventBody::PaymentDeclined(e) => {
            decided(state, e.payment_id, event, AuthorizationStatus::Declined)?
        }
        EventBody::PaymentAuthorizationFailed(e) => {
            decided(state, e.payment_id, event, AuthorizationStatus::Failed)?
        }
        EventBody::PaymentAuthorizationUnknown(e) => {
            decided(state, e.payment_id, event, AuthorizationStatus::Unknown)?
        }
        EventBody::PaymentCaptured(e) => {
            let p = approved(state, e.payment_id, event)?;
            let amount = money(&e.amount, Some(p.currency))
                .map_err(invalid)?
                .amount();
            let held =
                less(p.held, amount).ok_or_else(|| invalid("captures more than held".into()))?;
            post(state, event, &e.postings)?;
            let p = payment_mut(state, e.payment_id);
            p.held = held;
            p.captured += amount;
        }
        EventBody::PaymentVoided(e) => {
            let p = approved(state, e.payment_id, event)?;
            let amount = money(&e.released, Some(p.currency))
                .map_err(invalid)?
                .amount();
            let held =
                less(p.held, amount).ok_or_else(|| invalid("releases more than held".into()))?;
            post(state, event, &e.postings)?;
            let p = payment_mut(state, e.payment_id);
            p.held = held;
            p.released += amount;
        }
        EventBody::PaymentRefunded(e) => {
            let p = approved(state, e.payment_id, event)?;
            let amount = money(&e.amount, Some(p.currency))
                .map_err(invalid)?
                .amount();
            less(p.refundable(), amount)
                .ok_or_else(|| invalid("refunds more than captured".into()))?;
            post(state, event, &e.postings)?;
            payment_mut(state, e.payment_id).refunded += amount;
        }
        EventBody::PaymentSettled(e) => {
            let p = approved(state, e.payment_id, event)?;
            let amount = money(&e.amount, Some(p.currency))
                .map_err(invalid)?
                .amount();
            less(p.unsettled(), amount)
                .ok_or_else(|| invalid("settles more than captured".into()))?;
            post(state, event, &e.postings)?;
            let p = payment_mut(state, e.payment_id);
            p.settled += amount;
            p.settlements.push(e.settlement_id.clone());
        }
        EventBody::DisputeOpened(e) => {
            let p = approved(state, e.payment_id, event)?;
            let amount = money(&e.amount, Some(p.currency))
                .map_err(invalid)?
                .amount();
            less(p.refundable(), amount)
                .ok_or_else(|| invalid("disputes more than captured".into()))?;
            post(state, event, &e.postings)?;
            payment_mut(state, e.payment_id).disputes.push(Dispute {
                id: e.dispute_id.clone(),
                amount,
                status: DisputeStatus::Open,
            });
        }
        EventBody::DisputeClosed(e) => {
            let p = approved(state, e.payment_id, event)?;
            let open = p
                .disputes
                .iter()
                .position(|d| d.id == e.dispute_id && d.status == DisputeStatus::Open)
                .ok_or_else(|| invalid(format!("no open dispute {}", e.dispute_id)))?;
            post(state, event, &e.postings)?;
            payment_mut(state, e.payment_id).disputes[open].status = match e.outcome {
                DisputeOutcome::Won => DisputeStatus::Won,
                DisputeOutcome::Lost => DisputeStatus::Lost,
            };
        }
        EventBody::PayoutSent(e) => {
            if !state.payouts.insert(e.payout_id) {
                return Err(invalid(format!("payout {} exists", e.payout_id)));
            }
            post(state, event, &e.postings)?;
        }
    }
    record_key(state, event);
    state.sequence = event.merchant_sequence;
    Ok(())
}

/// Applies an event's postings to the merchant's balances, all or nothing.
fn post(
    state: &mut MerchantState,
    event: &PaymentEvent,
    postings: &[Posting],
) -> Result<(), EvolveError> {
    let wrap = |source| EvolveError::Postings {
        event_id: event.event_id.to_string(),
        source: Box::new(source),
    };
    let transfers = postings
        .iter()
        .map(|p| Transfer::from_posting(p, &event.merchant_id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    state.balances.apply(&transfers).map_err(wrap)
}

/// An authorization outcome without money: declined, failed or unknown.
fn decided(
    state: &mut MerchantState,
    payment_id: Uuid,
    event: &PaymentEvent,
    outcome: AuthorizationStatus,
) -> Result<(), EvolveError> {
    let p = payment(state, payment_id, event)?;
    let from_ok = match outcome {
        AuthorizationStatus::Unknown => p.authorization == AuthorizationStatus::Requested,
        _ => matches!(
            p.authorization,
            AuthorizationStatus::Requested | AuthorizationStatus::Unknown
        ),
    };
    if !from_ok {
        return Err(EvolveError::Invalid {
            event_id: event.event_id.to_string(),
            detail: format!("{:?} cannot follow {:?}", outcome, p.authorization),
        });
    }
    payment_mut(state, payment_id).authorization = outcome;
    Ok(())
}

fn payment<'s>(
    state: &'s MerchantState,
    payment_id: Uuid,
    event: &PaymentEvent,
) -> Result<&'s Payment, EvolveError> {
    state
        .payments
        .get(&payment_id)
        .ok_or_else(|| EvolveError::Invalid {
            event_id: event.event_id.to_string(),
            detail: format!("unknown payment {payment_id}"),
        })
}

fn approved<'s>(
    state: &'s MerchantState,
    payment_id: Uuid,
    event: &PaymentEvent,
) -> Result<&'s Payment, EvolveError> {
    let p = payment(state, payment_id, event)?;
    if p.authorization != AuthorizationStatus::Approved {
        return Err(EvolveError::Invalid {
            event_id: event.event_id.to_string(),
            detail: format!("payment {payment_id} is not approved"),
        });
    }
    Ok(p)
}

fn payment_mut(state: &mut MerchantState, payment_id: Uuid) -> &mut Payment {
    state
        .payments
        .get_mut(&payment_id)
        .expect("looked up before")
}

/// Parses an event amount, in `currency` when given.
fn money(wire: &WireMoney, currency: Option<Currency>) -> Result<Money, String> {
    let m = Money::parse(&wire.amount, &wire.currency).map_err(|e| format!("amount: {e}"))?;
    match currency {
        Some(c) if c != m.currency() => Err(format!("amount in {}, payment in {c}", m.currency())),
        _ => Ok(m),
    }
}

/// `a - b`, or `None` if that is negative.
fn less(a: Decimal, b: Decimal) -> Option<Decimal> {
    (a >= b).then(|| a - b)
}

fn record_key(state: &mut MerchantState, event: &PaymentEvent) {
    state
        .idempotency
        .entry(event.idempotency_key.clone())
        .or_insert_with(|| event.command_fingerprint.clone());
}

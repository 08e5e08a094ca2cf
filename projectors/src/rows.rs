//! Events → rows, as column vectors ready for `UNNEST`. Pure.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::{EventBody, PaymentEvent};
use uuid::Uuid;

/// `payments` rows, one column per vector.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PaymentRows {
    pub payment_id: Vec<Uuid>,
    pub merchant_id: Vec<String>,
    pub status: Vec<String>,
    pub amount: Vec<Decimal>,
    pub currency: Vec<String>,
    pub processor: Vec<String>,
    pub idempotency_key: Vec<String>,
    pub at: Vec<DateTime<Utc>>,
    pub event_id: Vec<Uuid>,
    pub sequence: Vec<i64>,
}

/// `command_rejections` rows.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RejectionRows {
    pub event_id: Vec<Uuid>,
    pub command_id: Vec<Uuid>,
    pub merchant_id: Vec<String>,
    pub idempotency_key: Vec<String>,
    pub payment_id: Vec<Option<Uuid>>,
    pub reason_code: Vec<String>,
    pub detail: Vec<String>,
    pub occurred_at: Vec<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
#[error("event {event_id}: amount {amount:?} is not a decimal")]
pub struct RowError {
    pub event_id: Uuid,
    pub amount: String,
}

/// Splits events into rows. A payment touched twice in one batch keeps its latest event, so
/// one `INSERT … ON CONFLICT` never meets the same key twice.
pub(crate) fn to_rows(events: &[PaymentEvent]) -> Result<(PaymentRows, RejectionRows), RowError> {
    let mut latest: HashMap<Uuid, usize> = HashMap::new();
    let mut payments = PaymentRows::default();
    let mut rejections = RejectionRows::default();
    for event in events {
        match &event.body {
            EventBody::PaymentAuthorizationRequested(e) => {
                let amount: Decimal = e.amount.amount.parse().map_err(|_| RowError {
                    event_id: event.event_id,
                    amount: e.amount.amount.clone(),
                })?;
                let row = (
                    e.payment_id,
                    event.merchant_id.clone(),
                    "authorization_requested".to_owned(),
                    amount,
                    e.amount.currency.clone(),
                    e.processor.clone(),
                    event.idempotency_key.clone(),
                    event.occurred_at,
                    event.event_id,
                    event.merchant_sequence,
                );
                match latest.get(&e.payment_id) {
                    Some(&i) => payments.set(i, row),
                    None => {
                        latest.insert(e.payment_id, payments.payment_id.len());
                        payments.push(row);
                    }
                }
            }
            EventBody::CommandRejected(r) => {
                rejections.event_id.push(event.event_id);
                rejections.command_id.push(event.command_id);
                rejections.merchant_id.push(event.merchant_id.clone());
                rejections
                    .idempotency_key
                    .push(event.idempotency_key.clone());
                rejections.payment_id.push(event.payment_id);
                rejections.reason_code.push(r.reason_code.clone());
                rejections.detail.push(r.detail.clone());
                rejections.occurred_at.push(event.occurred_at);
            }
        }
    }
    Ok((payments, rejections))
}

type PaymentRow = (
    Uuid,
    String,
    String,
    Decimal,
    String,
    String,
    String,
    DateTime<Utc>,
    Uuid,
    i64,
);

impl PaymentRows {
    fn push(&mut self, r: PaymentRow) {
        self.payment_id.push(r.0);
        self.merchant_id.push(r.1);
        self.status.push(r.2);
        self.amount.push(r.3);
        self.currency.push(r.4);
        self.processor.push(r.5);
        self.idempotency_key.push(r.6);
        self.at.push(r.7);
        self.event_id.push(r.8);
        self.sequence.push(r.9);
    }

    fn set(&mut self, i: usize, r: PaymentRow) {
        self.status[i] = r.2;
        self.amount[i] = r.3;
        self.currency[i] = r.4;
        self.processor[i] = r.5;
        self.at[i] = r.7;
        self.event_id[i] = r.8;
        self.sequence[i] = r.9;
    }
}

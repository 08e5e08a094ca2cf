//! Events → rows, as column vectors ready for `UNNEST`. Pure.
//!
//! * `payments`: one [`PaymentChange`] per payment touched by the batch: that payment's events
//!   folded in `merchant_sequence` order into what to set (the latest authorization outcome,
//!   reference, expiry, codes) and what to add (captured, released, refunded, settled, fee,
//!   disputed amounts). Amounts are deltas so that a change applies the same way to a row
//!   written by an earlier batch (an `UPDATE … SET x = x + delta`) as to a row created in this
//!   batch (an `INSERT` of the folded state).
//! * `ledger_entries`: one row per posting, every money-moving event.
//! * `command_rejections`: one row per `CommandRejected`.
//!
//! `status` is not computed here: it is a generated column of `payments` (see
//! `migrations/0002_ledger.sql`), so it always agrees with the amounts it is derived from.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::{DisputeOutcome, EventBody, PaymentEvent, Posting, PostingPhase, WireMoney};
use uuid::Uuid;

/// Where a payment's authorization stands: `payments.authorization_status`.
pub(crate) mod authorization {
    pub const REQUESTED: &str = "requested";
    pub const UNKNOWN: &str = "unknown";
    pub const DECLINED: &str = "declined";
    pub const FAILED: &str = "failed";
    pub const APPROVED: &str = "approved";
}

/// What a batch does to one payment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PaymentChange {
    pub payment_id: Uuid,
    pub merchant_id: String,
    /// The first and last `merchant_sequence` folded in. The row is changed only if it has
    /// seen none of them (`last_merchant_sequence < first_sequence`).
    pub first_sequence: i64,
    pub last_sequence: i64,
    pub last_event_id: Uuid,
    pub updated_at: DateTime<Utc>,
    /// Set when the batch holds the payment's `PaymentAuthorizationRequested`: the row is new.
    pub created: Option<Creation>,
    // Replaced when `Some` (the latest event that says wins).
    pub authorization: Option<&'static str>,
    pub authorized_amount: Option<Decimal>,
    pub processor_reference: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub decline_code: Option<String>,
    pub error_code: Option<String>,
    // Added to the row.
    pub captured: Decimal,
    pub released: Decimal,
    pub refunded: Decimal,
    pub settled: Decimal,
    pub fee: Decimal,
    /// Opened disputes add, won ones subtract: the open and lost disputes' total.
    pub disputed: Decimal,
    pub open_disputes: i32,
}

/// The columns only a new payment row has.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Creation {
    pub amount: Decimal,
    pub currency: String,
    pub processor: String,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
}

impl PaymentChange {
    fn new(payment_id: Uuid, event: &PaymentEvent) -> Self {
        PaymentChange {
            payment_id,
            merchant_id: event.merchant_id.clone(),
            first_sequence: event.merchant_sequence,
            last_sequence: event.merchant_sequence,
            last_event_id: event.event_id,
            updated_at: event.occurred_at,
            created: None,
            authorization: None,
            authorized_amount: None,
            processor_reference: None,
            expires_at: None,
            decline_code: None,
            error_code: None,
            captured: Decimal::ZERO,
            released: Decimal::ZERO,
            refunded: Decimal::ZERO,
            settled: Decimal::ZERO,
            fee: Decimal::ZERO,
            disputed: Decimal::ZERO,
            open_disputes: 0,
        }
    }
}

/// [`PaymentChange`]s as columns.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PaymentColumns {
    pub payment_id: Vec<Uuid>,
    pub merchant_id: Vec<String>,
    pub first_sequence: Vec<i64>,
    pub last_sequence: Vec<i64>,
    pub last_event_id: Vec<Uuid>,
    pub updated_at: Vec<DateTime<Utc>>,
    pub created: Vec<bool>,
    pub amount: Vec<Option<Decimal>>,
    pub currency: Vec<Option<String>>,
    pub processor: Vec<Option<String>>,
    pub idempotency_key: Vec<Option<String>>,
    pub created_at: Vec<Option<DateTime<Utc>>>,
    pub authorization: Vec<Option<String>>,
    pub authorized_amount: Vec<Option<Decimal>>,
    pub processor_reference: Vec<Option<String>>,
    pub expires_at: Vec<Option<DateTime<Utc>>>,
    pub decline_code: Vec<Option<String>>,
    pub error_code: Vec<Option<String>>,
    pub captured: Vec<Decimal>,
    pub released: Vec<Decimal>,
    pub refunded: Vec<Decimal>,
    pub settled: Vec<Decimal>,
    pub fee: Vec<Decimal>,
    pub disputed: Vec<Decimal>,
    pub open_disputes: Vec<i32>,
}

impl PaymentColumns {
    pub fn of(changes: &[PaymentChange]) -> Self {
        let mut c = PaymentColumns::default();
        for p in changes {
            let created = p.created.as_ref();
            c.payment_id.push(p.payment_id);
            c.merchant_id.push(p.merchant_id.clone());
            c.first_sequence.push(p.first_sequence);
            c.last_sequence.push(p.last_sequence);
            c.last_event_id.push(p.last_event_id);
            c.updated_at.push(p.updated_at);
            c.created.push(created.is_some());
            c.amount.push(created.map(|x| x.amount));
            c.currency.push(created.map(|x| x.currency.clone()));
            c.processor.push(created.map(|x| x.processor.clone()));
            c.idempotency_key
                .push(created.map(|x| x.idempotency_key.clone()));
            c.created_at.push(created.map(|x| x.created_at));
            c.authorization.push(p.authorization.map(str::to_owned));
            c.authorized_amount.push(p.authorized_amount);
            c.processor_reference.push(p.processor_reference.clone());
            c.expires_at.push(p.expires_at);
            c.decline_code.push(p.decline_code.clone());
            c.error_code.push(p.error_code.clone());
            c.captured.push(p.captured);
            c.released.push(p.released);
            c.refunded.push(p.refunded);
            c.settled.push(p.settled);
            c.fee.push(p.fee);
            c.disputed.push(p.disputed);
            c.open_disputes.push(p.open_disputes);
        }
        c
    }
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

/// `ledger_entries` rows: one per posting.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct EntryRows {
    pub event_id: Vec<Uuid>,
    pub posting_index: Vec<i32>,
    pub merchant_id: Vec<String>,
    pub payment_id: Vec<Option<Uuid>>,
    pub event_type: Vec<String>,
    pub debit_account: Vec<String>,
    pub credit_account: Vec<String>,
    pub amount: Vec<Decimal>,
    pub currency: Vec<String>,
    pub phase: Vec<String>,
    pub occurred_at: Vec<DateTime<Utc>>,
    pub merchant_sequence: Vec<i64>,
}

/// Everything one batch writes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rows {
    /// In order of each payment's first event in the batch.
    pub payments: Vec<PaymentChange>,
    pub rejections: RejectionRows,
    pub entries: EntryRows,
}

#[derive(Debug, thiserror::Error)]
#[error("event {event_id}: amount {amount:?} is not a decimal")]
pub struct RowError {
    pub event_id: Uuid,
    pub amount: String,
}

/// `ledger_entries.phase`.
pub(crate) fn phase_name(phase: PostingPhase) -> &'static str {
    match phase {
        PostingPhase::Pending => "pending",
        PostingPhase::PostPending => "post_pending",
        PostingPhase::VoidPending => "void_pending",
        PostingPhase::Posted => "posted",
    }
}

/// The payment a body is about (`None`: `CommandRejected`, `PayoutSent`).
pub(crate) fn body_payment_id(body: &EventBody) -> Option<Uuid> {
    match body {
        EventBody::PaymentAuthorizationRequested(e) => Some(e.payment_id),
        EventBody::PaymentAuthorized(e) => Some(e.payment_id),
        EventBody::PaymentDeclined(e) => Some(e.payment_id),
        EventBody::PaymentAuthorizationFailed(e) => Some(e.payment_id),
        EventBody::PaymentAuthorizationUnknown(e) => Some(e.payment_id),
        EventBody::PaymentCaptured(e) => Some(e.payment_id),
        EventBody::PaymentVoided(e) => Some(e.payment_id),
        EventBody::PaymentRefunded(e) => Some(e.payment_id),
        EventBody::PaymentSettled(e) => Some(e.payment_id),
        EventBody::DisputeOpened(e) => Some(e.payment_id),
        EventBody::DisputeClosed(e) => Some(e.payment_id),
        EventBody::CommandRejected(_) | EventBody::PayoutSent(_) => None,
    }
}

fn postings(body: &EventBody) -> &[Posting] {
    match body {
        EventBody::PaymentAuthorized(e) => &e.postings,
        EventBody::PaymentCaptured(e) => &e.postings,
        EventBody::PaymentVoided(e) => &e.postings,
        EventBody::PaymentRefunded(e) => &e.postings,
        EventBody::PaymentSettled(e) => &e.postings,
        EventBody::DisputeOpened(e) => &e.postings,
        EventBody::DisputeClosed(e) => &e.postings,
        EventBody::PayoutSent(e) => &e.postings,
        EventBody::PaymentAuthorizationRequested(_)
        | EventBody::CommandRejected(_)
        | EventBody::PaymentDeclined(_)
        | EventBody::PaymentAuthorizationFailed(_)
        | EventBody::PaymentAuthorizationUnknown(_) => &[],
    }
}

fn decimal(event: &PaymentEvent, money: &WireMoney) -> Result<Decimal, RowError> {
    Decimal::from_str_exact(&money.amount).map_err(|_| RowError {
        event_id: event.event_id,
        amount: money.amount.clone(),
    })
}

/// Splits events into rows.
///
/// `seen` holds, for payments that already have a row, the row's `last_merchant_sequence`:
/// a payment event at or below it was applied before (a replay or a duplicate record) and
/// is left out of the payment's change. Within the batch, a payment's events are folded in
/// `merchant_sequence` order, each sequence once. Ledger entries and rejections are keyed by
/// `event_id` (inserted `ON CONFLICT DO NOTHING`), so each event yields them once here.
pub(crate) fn to_rows(
    events: &[PaymentEvent],
    seen: &HashMap<Uuid, i64>,
) -> Result<Rows, RowError> {
    let mut order: Vec<&PaymentEvent> = events.iter().collect();
    // Stable: a merchant's events keep their relative order whatever the batch's.
    order.sort_by(|a, b| {
        (&a.merchant_id, a.merchant_sequence).cmp(&(&b.merchant_id, b.merchant_sequence))
    });

    let mut rows = Rows::default();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    let mut emitted: HashSet<Uuid> = HashSet::new();
    for event in order {
        if emitted.insert(event.event_id) {
            entries(&mut rows.entries, event)?;
            if let EventBody::CommandRejected(r) = &event.body {
                let j = &mut rows.rejections;
                j.event_id.push(event.event_id);
                j.command_id.push(event.command_id);
                j.merchant_id.push(event.merchant_id.clone());
                j.idempotency_key.push(event.idempotency_key.clone());
                j.payment_id.push(event.payment_id);
                j.reason_code.push(r.reason_code.clone());
                j.detail.push(r.detail.clone());
                j.occurred_at.push(event.occurred_at);
            }
        }

        let Some(payment_id) = body_payment_id(&event.body) else {
            continue;
        };
        if seen
            .get(&payment_id)
            .is_some_and(|&last| event.merchant_sequence <= last)
        {
            continue;
        }
        let change = match index.get(&payment_id) {
            Some(&i) => {
                let change = &mut rows.payments[i];
                if event.merchant_sequence <= change.last_sequence {
                    continue; // the same event twice in one batch
                }
                change
            }
            None => {
                index.insert(payment_id, rows.payments.len());
                rows.payments.push(PaymentChange::new(payment_id, event));
                rows.payments.last_mut().expect("just pushed")
            }
        };
        fold(change, event)?;
    }
    Ok(rows)
}

/// Applies one event (newer than all folded so far) to its payment's change.
fn fold(c: &mut PaymentChange, event: &PaymentEvent) -> Result<(), RowError> {
    c.last_sequence = event.merchant_sequence;
    c.last_event_id = event.event_id;
    c.updated_at = event.occurred_at;
    match &event.body {
        EventBody::PaymentAuthorizationRequested(e) => {
            c.created = Some(Creation {
                amount: decimal(event, &e.amount)?,
                currency: e.amount.currency.clone(),
                processor: e.processor.clone(),
                idempotency_key: event.idempotency_key.clone(),
                created_at: event.occurred_at,
            });
            c.authorization = Some(authorization::REQUESTED);
        }
        EventBody::PaymentAuthorized(e) => {
            c.authorization = Some(authorization::APPROVED);
            c.authorized_amount = Some(decimal(event, &e.amount)?);
            c.processor_reference = e.processor_reference.clone();
            c.expires_at = Some(e.expires_at);
        }
        EventBody::PaymentDeclined(e) => {
            c.authorization = Some(authorization::DECLINED);
            c.decline_code = Some(e.decline_code.clone());
        }
        EventBody::PaymentAuthorizationFailed(e) => {
            c.authorization = Some(authorization::FAILED);
            c.error_code = Some(e.error_code.clone());
        }
        EventBody::PaymentAuthorizationUnknown(_) => {
            c.authorization = Some(authorization::UNKNOWN);
        }
        EventBody::PaymentCaptured(e) => c.captured += decimal(event, &e.amount)?,
        EventBody::PaymentVoided(e) => c.released += decimal(event, &e.released)?,
        EventBody::PaymentRefunded(e) => c.refunded += decimal(event, &e.amount)?,
        EventBody::PaymentSettled(e) => {
            c.settled += decimal(event, &e.amount)?;
            c.fee += decimal(event, &e.fee)?;
        }
        EventBody::DisputeOpened(e) => {
            c.disputed += decimal(event, &e.amount)?;
            c.open_disputes += 1;
        }
        EventBody::DisputeClosed(e) => {
            // Lost: the amount stays disputed for good. Won: it is the merchant's again.
            if e.outcome == DisputeOutcome::Won {
                c.disputed -= decimal(event, &e.amount)?;
            }
            c.open_disputes -= 1;
        }
        EventBody::CommandRejected(_) | EventBody::PayoutSent(_) => {
            unreachable!("not about a payment")
        }
    }
    Ok(())
}

fn entries(rows: &mut EntryRows, event: &PaymentEvent) -> Result<(), RowError> {
    let payment_id = body_payment_id(&event.body);
    for (i, p) in postings(&event.body).iter().enumerate() {
        rows.event_id.push(event.event_id);
        rows.posting_index
            .push(i32::try_from(i).expect("fewer than 2^31 postings"));
        rows.merchant_id.push(event.merchant_id.clone());
        rows.payment_id.push(payment_id);
        rows.event_type.push(event.kind().to_owned());
        rows.debit_account.push(p.debit_account.clone());
        rows.credit_account.push(p.credit_account.clone());
        rows.amount.push(decimal(event, &p.amount)?);
        rows.currency.push(p.amount.currency.clone());
        rows.phase.push(phase_name(p.phase).to_owned());
        rows.occurred_at.push(event.occurred_at);
        rows.merchant_sequence.push(event.merchant_sequence);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use schemas::{
        CommandRejected, DisputeClosed, DisputeOpened, PaymentAuthorizationFailed,
        PaymentAuthorizationRequested, PaymentAuthorizationUnknown, PaymentAuthorized,
        PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentSettled, PaymentVoided,
        PayoutSent, VoidReason,
    };

    use super::*;

    const PAYABLE: &str = "merchant:m-1:payable";
    const DISPUTES: &str = "merchant:m-1:disputes";
    const CLEARING: &str = "processor:stripe:clearing";

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn money(amount: &str, currency: &str) -> WireMoney {
        WireMoney {
            amount: amount.into(),
            currency: currency.into(),
        }
    }

    fn posting(debit: &str, credit: &str, m: &WireMoney, phase: PostingPhase) -> Posting {
        Posting {
            debit_account: debit.into(),
            credit_account: credit.into(),
            amount: m.clone(),
            phase,
        }
    }

    fn at(seq: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seq, 0).unwrap()
    }

    fn event(seq: i64, body: EventBody) -> PaymentEvent {
        PaymentEvent {
            event_id: Uuid::from_u128(1000 + seq as u128),
            merchant_id: "m-1".into(),
            merchant_sequence: seq,
            payment_id: body_payment_id(&body),
            command_id: Uuid::from_u128(2000 + seq as u128),
            idempotency_key: format!("key-{seq}"),
            command_fingerprint: "ab".repeat(32),
            occurred_at: at(seq),
            body,
        }
    }

    fn requested(seq: i64, pid: Uuid, m: &WireMoney) -> PaymentEvent {
        event(
            seq,
            EventBody::PaymentAuthorizationRequested(PaymentAuthorizationRequested {
                payment_id: pid,
                amount: m.clone(),
                processor: "stripe".into(),
                payment_token: "tok".into(),
            }),
        )
    }

    fn authorized(seq: i64, pid: Uuid, m: &WireMoney) -> PaymentEvent {
        event(
            seq,
            EventBody::PaymentAuthorized(PaymentAuthorized {
                payment_id: pid,
                amount: m.clone(),
                processor_reference: Some("ch_1".into()),
                expires_at: at(10_000),
                postings: vec![posting(CLEARING, PAYABLE, m, PostingPhase::Pending)],
            }),
        )
    }

    fn captured(seq: i64, pid: Uuid, m: &WireMoney) -> PaymentEvent {
        event(
            seq,
            EventBody::PaymentCaptured(PaymentCaptured {
                payment_id: pid,
                amount: m.clone(),
                postings: vec![posting(CLEARING, PAYABLE, m, PostingPhase::PostPending)],
            }),
        )
    }

    fn rows(events: &[PaymentEvent]) -> Rows {
        to_rows(events, &HashMap::new()).unwrap()
    }

    #[test]
    fn a_new_payment_folds_its_whole_life_in_one_batch() {
        let pid = Uuid::from_u128(7);
        let gbp = |a: &str| money(a, "GBP");
        let events = vec![
            requested(1, pid, &gbp("100.00")),
            authorized(2, pid, &gbp("100.00")),
            captured(3, pid, &gbp("30.25")),
            captured(4, pid, &gbp("69.75")),
            event(
                5,
                EventBody::PaymentRefunded(PaymentRefunded {
                    payment_id: pid,
                    amount: gbp("10.00"),
                    postings: vec![posting(
                        PAYABLE,
                        CLEARING,
                        &gbp("10.00"),
                        PostingPhase::Posted,
                    )],
                }),
            ),
            event(
                6,
                EventBody::PaymentSettled(PaymentSettled {
                    payment_id: pid,
                    settlement_id: "st-1".into(),
                    amount: gbp("90.00"),
                    fee: gbp("2.50"),
                    bank_account: "barclays-gbp".into(),
                    postings: vec![
                        posting(
                            "cash:barclays-gbp",
                            CLEARING,
                            &gbp("87.50"),
                            PostingPhase::Posted,
                        ),
                        posting(
                            "platform:fees",
                            CLEARING,
                            &gbp("2.50"),
                            PostingPhase::Posted,
                        ),
                    ],
                }),
            ),
            event(
                7,
                EventBody::DisputeOpened(DisputeOpened {
                    payment_id: pid,
                    dispute_id: "dp-1".into(),
                    amount: gbp("20.00"),
                    reason: "fraud".into(),
                    postings: vec![posting(
                        DISPUTES,
                        CLEARING,
                        &gbp("20.00"),
                        PostingPhase::Pending,
                    )],
                }),
            ),
            event(
                8,
                EventBody::DisputeOpened(DisputeOpened {
                    payment_id: pid,
                    dispute_id: "dp-2".into(),
                    amount: gbp("5.00"),
                    reason: "fraud".into(),
                    postings: vec![posting(
                        DISPUTES,
                        CLEARING,
                        &gbp("5.00"),
                        PostingPhase::Pending,
                    )],
                }),
            ),
            event(
                9,
                EventBody::DisputeClosed(DisputeClosed {
                    payment_id: pid,
                    dispute_id: "dp-1".into(),
                    outcome: DisputeOutcome::Lost,
                    amount: gbp("20.00"),
                    postings: vec![posting(
                        DISPUTES,
                        CLEARING,
                        &gbp("20.00"),
                        PostingPhase::PostPending,
                    )],
                }),
            ),
            event(
                10,
                EventBody::DisputeClosed(DisputeClosed {
                    payment_id: pid,
                    dispute_id: "dp-2".into(),
                    outcome: DisputeOutcome::Won,
                    amount: gbp("5.00"),
                    postings: vec![posting(
                        DISPUTES,
                        CLEARING,
                        &gbp("5.00"),
                        PostingPhase::VoidPending,
                    )],
                }),
            ),
        ];
        let r = rows(&events);
        assert_eq!(r.payments.len(), 1);
        let p = &r.payments[0];
        assert_eq!(
            p.created,
            Some(Creation {
                amount: dec("100.00"),
                currency: "GBP".into(),
                processor: "stripe".into(),
                idempotency_key: "key-1".into(),
                created_at: at(1),
            })
        );
        assert_eq!(p.authorization, Some(authorization::APPROVED));
        assert_eq!(p.authorized_amount, Some(dec("100.00")));
        assert_eq!(p.processor_reference.as_deref(), Some("ch_1"));
        assert_eq!(p.expires_at, Some(at(10_000)));
        // 30.25 + 69.75, to the cent and with the cents.
        assert_eq!(p.captured.to_string(), "100.00");
        assert_eq!(p.refunded.to_string(), "10.00");
        assert_eq!(p.settled.to_string(), "90.00");
        assert_eq!(p.fee.to_string(), "2.50");
        // dp-1 lost (stays), dp-2 won (gone).
        assert_eq!(p.disputed.to_string(), "20.00");
        assert_eq!(p.open_disputes, 0);
        assert_eq!(p.released, Decimal::ZERO);
        assert_eq!((p.first_sequence, p.last_sequence), (1, 10));
        assert_eq!(p.last_event_id, Uuid::from_u128(1010));
        assert_eq!(p.updated_at, at(10));

        // One entry per posting; the settlement's two postings are indexes 0 and 1.
        let e = &r.entries;
        assert_eq!(e.event_id.len(), 10);
        let settled: Vec<(i32, &str, String)> = (0..e.event_id.len())
            .filter(|&i| e.event_type[i] == "PaymentSettled")
            .map(|i| {
                (
                    e.posting_index[i],
                    e.debit_account[i].as_str(),
                    e.amount[i].to_string(),
                )
            })
            .collect();
        assert_eq!(
            settled,
            vec![
                (0, "cash:barclays-gbp", "87.50".to_owned()),
                (1, "platform:fees", "2.50".to_owned())
            ]
        );
        assert!(e.payment_id.iter().all(|p| *p == Some(pid)));
        assert_eq!(
            e.phase,
            [
                "pending",
                "post_pending",
                "post_pending",
                "posted",
                "posted",
                "posted",
                "pending",
                "pending",
                "post_pending",
                "void_pending"
            ]
        );
        assert_eq!(e.merchant_sequence, [2, 3, 4, 5, 6, 6, 7, 8, 9, 10]);
        assert!(r.rejections.event_id.is_empty());
    }

    #[test]
    fn amounts_stay_exact_in_every_currency() {
        let (jpy, bhd) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let events = vec![
            requested(1, jpy, &money("1500", "JPY")),
            requested(2, bhd, &money("12.345", "BHD")),
            authorized(3, jpy, &money("1500", "JPY")),
            authorized(4, bhd, &money("12.345", "BHD")),
            captured(5, bhd, &money("12.345", "BHD")),
            event(
                6,
                EventBody::PaymentVoided(PaymentVoided {
                    payment_id: jpy,
                    released: money("1500", "JPY"),
                    reason: VoidReason::Expired,
                    postings: vec![posting(
                        CLEARING,
                        PAYABLE,
                        &money("1500", "JPY"),
                        PostingPhase::VoidPending,
                    )],
                }),
            ),
        ];
        let r = rows(&events);
        let [j, b] = &r.payments[..] else {
            panic!("{:?}", r.payments)
        };
        assert_eq!(j.created.as_ref().unwrap().amount.to_string(), "1500");
        assert_eq!(j.released.to_string(), "1500");
        assert_eq!(j.captured, Decimal::ZERO);
        assert_eq!(b.created.as_ref().unwrap().amount.to_string(), "12.345");
        assert_eq!(b.captured.to_string(), "12.345");
        let amounts: Vec<(String, String)> = (0..r.entries.amount.len())
            .map(|i| {
                (
                    r.entries.amount[i].to_string(),
                    r.entries.currency[i].clone(),
                )
            })
            .collect();
        assert_eq!(
            amounts,
            [
                ("1500".to_owned(), "JPY".to_owned()),
                ("12.345".to_owned(), "BHD".to_owned()),
                ("12.345".to_owned(), "BHD".to_owned()),
                ("1500".to_owned(), "JPY".to_owned()),
            ]
        );
    }

    #[test]
    fn events_fold_in_sequence_order_whatever_the_batch_order() {
        let pid = Uuid::from_u128(3);
        let gbp = money("10.00", "GBP");
        let unknown = event(
            2,
            EventBody::PaymentAuthorizationUnknown(PaymentAuthorizationUnknown {
                payment_id: pid,
                detail: "timeout".into(),
            }),
        );
        let declined = event(
            3,
            EventBody::PaymentDeclined(PaymentDeclined {
                payment_id: pid,
                decline_code: "insufficient_funds".into(),
                detail: "no".into(),
            }),
        );
        let in_order = rows(&[requested(1, pid, &gbp), unknown.clone(), declined.clone()]);
        let shuffled = rows(&[declined, requested(1, pid, &gbp), unknown]);
        assert_eq!(in_order, shuffled);
        let p = &in_order.payments[0];
        assert_eq!(p.authorization, Some(authorization::DECLINED));
        assert_eq!(p.decline_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(p.last_event_id, Uuid::from_u128(1003));
        assert_eq!((p.first_sequence, p.last_sequence), (1, 3));
    }

    #[test]
    fn an_earlier_batchs_payment_gets_deltas_and_no_creation() {
        let pid = Uuid::from_u128(4);
        let seen = HashMap::from([(pid, 2)]);
        let events = [
            captured(5, pid, &money("30.25", "GBP")),
            captured(6, pid, &money("69.75", "GBP")),
        ];
        let r = to_rows(&events, &seen).unwrap();
        let p = &r.payments[0];
        assert_eq!(p.created, None);
        assert_eq!(p.authorization, None);
        assert_eq!(p.captured.to_string(), "100.00");
        assert_eq!((p.first_sequence, p.last_sequence), (5, 6));
    }

    #[test]
    fn replays_and_duplicates_are_left_out_of_payments_but_entries_stay_once() {
        let pid = Uuid::from_u128(5);
        let c1 = captured(3, pid, &money("30.25", "GBP"));
        let c2 = captured(4, pid, &money("69.75", "GBP"));
        let c3 = captured(5, pid, &money("1.00", "GBP"));
        // The row has seen up to 3; 4 arrives twice (a duplicate record).
        let seen = HashMap::from([(pid, 3)]);
        let r = to_rows(&[c1, c2.clone(), c2, c3], &seen).unwrap();
        let p = &r.payments[0];
        assert_eq!(p.captured.to_string(), "70.75");
        assert_eq!((p.first_sequence, p.last_sequence), (4, 5));
        // Entries are keyed by event: one per distinct event; the database ignores those it
        // has.
        assert_eq!(r.entries.merchant_sequence, [3, 4, 5]);

        // Everything seen: nothing to change.
        let seen = HashMap::from([(pid, 9)]);
        let r = to_rows(&[captured(4, pid, &money("1.00", "GBP"))], &seen).unwrap();
        assert!(r.payments.is_empty());
        assert_eq!(r.entries.event_id.len(), 1);
    }

    #[test]
    fn rejections_failures_and_payouts() {
        let pid = Uuid::from_u128(6);
        let payout = Uuid::from_u128(60);
        let events = vec![
            requested(1, pid, &money("5.00", "GBP")),
            event(
                2,
                EventBody::PaymentAuthorizationFailed(PaymentAuthorizationFailed {
                    payment_id: pid,
                    error_code: "invalid_token".into(),
                    detail: "expired".into(),
                }),
            ),
            event(
                3,
                EventBody::CommandRejected(CommandRejected {
                    reason_code: "payment_not_found".into(),
                    detail: "no such payment".into(),
                }),
            ),
            event(
                4,
                EventBody::PayoutSent(PayoutSent {
                    payout_id: payout,
                    amount: money("50.00", "GBP"),
                    bank_account: "barclays-gbp".into(),
                    postings: vec![posting(
                        PAYABLE,
                        "cash:barclays-gbp",
                        &money("50.00", "GBP"),
                        PostingPhase::Posted,
                    )],
                }),
            ),
        ];
        let r = rows(&events);
        assert_eq!(r.payments.len(), 1);
        assert_eq!(r.payments[0].authorization, Some(authorization::FAILED));
        assert_eq!(r.payments[0].error_code.as_deref(), Some("invalid_token"));
        assert_eq!(r.payments[0].last_sequence, 2);
        assert_eq!(r.rejections.reason_code, ["payment_not_found"]);
        assert_eq!(r.rejections.event_id, [Uuid::from_u128(1003)]);
        assert_eq!(r.entries.event_type, ["PayoutSent"]);
        assert_eq!(r.entries.payment_id, [None]);
        assert_eq!(r.entries.posting_index, [0]);
        assert_eq!(r.entries.amount[0].to_string(), "50.00");
    }

    #[test]
    fn columns_line_up() {
        let (a, b) = (Uuid::from_u128(8), Uuid::from_u128(9));
        let r = to_rows(
            &[
                requested(1, a, &money("1.00", "GBP")),
                captured(2, b, &money("2.00", "GBP")),
            ],
            &HashMap::from([(b, 1)]),
        )
        .unwrap();
        let c = PaymentColumns::of(&r.payments);
        assert_eq!(c.payment_id, [a, b]);
        assert_eq!(c.created, [true, false]);
        assert_eq!(c.amount, [Some(dec("1.00")), None]);
        assert_eq!(c.authorization, [Some("requested".to_owned()), None]);
        assert_eq!(c.captured, [Decimal::ZERO, dec("2.00")]);
        assert_eq!(c.open_disputes.len(), 2);
    }

    #[test]
    fn a_bad_amount_names_its_event() {
        let err = to_rows(
            &[requested(1, Uuid::from_u128(1), &money("1e3", "GBP"))],
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(err.event_id, Uuid::from_u128(1001));
        assert_eq!(err.amount, "1e3");
    }
}

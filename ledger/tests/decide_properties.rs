//! Property tests of the pure core over random sequences of commands, gateway results and
//! expiry runs for two merchants sharing a handful of payment ids, in GBP (2 decimals), JPY (0)
//! and BHD (3).
//!
//! Each input is decided, and what it emits is evolved into the merchant's state, as the
//! service does. Alongside runs a model written from the spec alone: it folds the emitted
//! events into its own payments, idempotency keys and balances, and predicts every decision
//! (accept with exactly which event and postings, no change, duplicate, or reject with one of
//! the reasons the spec allows). After every step:
//!
//! 1. every event's postings balance per currency and phase, and so do the books;
//! 2. no figure is negative and the merchant payable is never debited beyond its posted credits;
//! 3. per payment: captured + released + held == amount once approved, refunded <= captured,
//!    settled <= captured, refunds and disputes never exceed what was captured;
//! 4. replaying the merchant's events (picked out of the interleaved log) through `evolve`
//!    from an empty state gives exactly the live state;
//! 5. at most one event per input, `merchant_sequence` runs 1..n per merchant, duplicates and
//!    results that change nothing write nothing;
//! 6. the balances in the state equal the model's independent fold of all emitted postings,
//!    and the payments in the state equal the model's.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Books, Input, assert_event_balances, binds_key, dec, posting, wire};
use ledger::decide::{Decision, decide, decide_result, expire, result_key};
use ledger::evolve::evolve;
use ledger::state::{AuthorizationStatus, DisputeStatus, MerchantState};
use proptest::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};
use schemas::{
    AuthorizationOutcome, AuthorizationResult, AuthorizePayment, CapturePayment, CommandBody,
    DisputeClosed, DisputeDecision, DisputeNotice, DisputeOpened, DisputeOutcome, EventBody,
    GatewayResult, PaymentAuthorizationRequested, PaymentAuthorized, PaymentCaptured,
    PaymentCommand, PaymentEvent, PaymentRefunded, PaymentSettled, PaymentVoided, PayoutSent,
    PostingPhase, RefundPayment, RequestPayout, ResultBody, ResultSource, SettlementReport,
    VoidPayment, VoidReason, WireMoney,
};
use uuid::Uuid;

const MERCHANTS: [&str; 2] = ["merchant-a", "merchant-b"];
const CURRENCIES: [(&str, u32); 3] = [("GBP", 2), ("JPY", 0), ("BHD", 3)];
/// The last one is not a processor payledger knows.
const PROCESSORS: [&str; 4] = ["stripe", "square", "asiapay", "paypal"];
/// The last one is not a valid bank account id.
const BANKS: [&str; 3] = ["bank-1", "bank-2", "Bad Bank"];
const PAYMENT_IDS: u8 = 6;

fn payment_id(p: u8) -> Uuid {
    Uuid::from_u128(0xAA00 + u128::from(p))
}

fn payout_id(p: u8) -> Uuid {
    Uuid::from_u128(0xBB00 + u128::from(p))
}

/// A time at the precision events carry (Avro `timestamp-millis`). The ledger keeps its
/// times so, or a state replayed from the topic would differ from the live one.
fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn start() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_764_770_000_000).unwrap()
}

// ---- the inputs --------------------------------------------------------------------------------

/// An amount relative to the limit the spec sets for the operation (what is held, refundable,
/// unsettled, available...), so that boundaries are hit often.
#[derive(Debug, Clone, Copy)]
enum Amt {
    /// k/8 of the limit, rounded down to the minor unit (at least one minor unit).
    Frac(u8),
    /// Exactly the limit.
    Exact,
    /// A few minor units under the limit (at least one minor unit).
    AllBut(u8),
    /// One minor unit over the limit.
    Over,
    /// One decimal more than the currency has.
    TooPrecise,
    Zero,
    /// A fixed number of minor units.
    Minor(u32),
    /// One major unit of another currency.
    OtherCurrency,
}

fn amt() -> impl Strategy<Value = Amt> {
    prop_oneof![
        6 => (1u8..=8).prop_map(Amt::Frac),
        3 => Just(Amt::Exact),
        1 => (1u8..4).prop_map(Amt::AllBut),
        2 => Just(Amt::Over),
        1 => Just(Amt::TooPrecise),
        1 => Just(Amt::Zero),
        1 => (1u32..200_000).prop_map(Amt::Minor),
        1 => Just(Amt::OtherCurrency),
    ]
}

/// Which payment an operation is about.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// One of the merchant's approved payments (any payment if none is).
    Approved,
    /// An approved one with captured money not refunded or disputed (else as `Approved`).
    Captured,
    /// One awaiting or of unknown outcome (any payment if none is).
    Open,
    /// One with an open dispute (any payment if none has).
    Disputed,
    /// Any of the merchant's payments.
    Any,
    /// A payment id, whether or not the merchant has such a payment.
    Raw,
}

#[derive(Debug, Clone, Copy)]
struct Target {
    aim: Aim,
    pick: u8,
}

fn target(preferred: Aim) -> impl Strategy<Value = Target> {
    (
        prop_oneof![8 => Just(preferred), 1 => Just(Aim::Any), 1 => Just(Aim::Raw)],
        any::<u8>(),
    )
        .prop_map(|(aim, pick)| Target { aim, pick })
}

#[derive(Debug, Clone)]
enum Op {
    Authorize {
        m: usize,
        p: u8,
        cur: usize,
        minor: u32,
        /// 0: valid; 1: too precise; 2: zero; 3: unsupported currency; 4: a card number.
        flaw: u8,
        processor: usize,
    },
    /// An authorization and its approval, in one go.
    Open {
        m: usize,
        p: u8,
        cur: usize,
        minor: u32,
        processor: usize,
        expires_in: Option<u16>,
    },
    Outcome {
        m: usize,
        p: Target,
        outcome: AuthorizationOutcome,
        /// The processor's hold expiry, minutes from now (`None`: the default validity).
        expires_in: Option<u16>,
        wrong_processor: bool,
    },
    Capture {
        m: usize,
        p: Target,
        amt: Amt,
    },
    Void {
        m: usize,
        p: Target,
    },
    Refund {
        m: usize,
        p: Target,
        amt: Amt,
        /// Relative to the payable balance instead of the refundable amount.
        vs_balance: bool,
    },
    Settle {
        m: usize,
        p: Target,
        sid: u8,
        amt: Amt,
        /// 0: no fee; 1..=10: tenths of the amount; 11: one minor unit over the amount.
        fee: u8,
        fee_other_currency: bool,
        bank: usize,
    },
    OpenDispute {
        m: usize,
        p: Target,
        did: u8,
        amt: Amt,
    },
    CloseDispute {
        m: usize,
        p: Target,
        did: u8,
        /// Close one of the payment's open disputes (`did` picks which) rather than `d-<did>`.
        open_one: bool,
        won: bool,
    },
    Payout {
        m: usize,
        cur: usize,
        /// In a currency with money available, if there is one.
        funded: bool,
        id: u8,
        amt: Amt,
        bank: usize,
    },
    Expire {
        m: usize,
    },
    /// The clock moves on, sometimes by a fraction of a millisecond too.
    Advance {
        minutes: u32,
        nanos: u32,
    },
    /// Sends an earlier input again: same key and content (a command gets a new command id).
    Retry(usize),
    /// An earlier input's key (or result id) with different content.
    ReuseKey(usize),
}

fn merchant() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 1 => Just(1usize)]
}

fn pay() -> impl Strategy<Value = u8> {
    0..PAYMENT_IDS
}

fn bank() -> impl Strategy<Value = usize> {
    prop_oneof![8 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)]
}

fn expires_in() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![3 => Just(None), 1 => (0u16..600).prop_map(Some), 1 => (0u16..6000).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    let open = (
        merchant(),
        pay(),
        0..CURRENCIES.len(),
        1u32..2_000_000,
        0..3usize,
        expires_in(),
    )
        .prop_map(|(m, p, cur, minor, processor, expires_in)| Op::Open {
            m,
            p,
            cur,
            minor,
            processor,
            expires_in,
        });
    let authorize = (
        merchant(),
        pay(),
        0..CURRENCIES.len(),
        1u32..2_000_000,
        prop_oneof![12 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)],
        prop_oneof![5 => Just(0usize), 2 => Just(1usize), 2 => Just(2usize), 1 => Just(3usize)],
    )
        .prop_map(|(m, p, cur, minor, flaw, processor)| Op::Authorize {
            m,
            p,
            cur,
            minor,
            flaw,
            processor,
        });
    let outcome = (
        merchant(),
        target(Aim::Open),
        prop_oneof![
            5 => Just(AuthorizationOutcome::Approved),
            1 => Just(AuthorizationOutcome::Declined),
            1 => Just(AuthorizationOutcome::Failed),
            2 => Just(AuthorizationOutcome::Unknown),
        ],
        expires_in(),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(m, p, outcome, expires_in, wrong_processor)| Op::Outcome {
            m,
            p,
            outcome,
            expires_in,
            wrong_processor,
        });
    let settle = (
        merchant(),
        target(Aim::Captured),
        0u8..3,
        amt(),
        prop_oneof![3 => Just(0u8), 6 => 1u8..=10, 1 => Just(11u8)],
        prop::bool::weighted(0.05),
        bank(),
    )
        .prop_map(
            |(m, p, sid, amt, fee, fee_other_currency, bank)| Op::Settle {
                m,
                p,
                sid,
                amt,
                fee,
                fee_other_currency,
                bank,
            },
        );
    prop_oneof![
        4 => authorize,
        4 => open,
        5 => outcome,
        6 => (merchant(), target(Aim::Approved), amt()).prop_map(|(m, p, amt)| Op::Capture { m, p, amt }),
        2 => (merchant(), target(Aim::Approved)).prop_map(|(m, p)| Op::Void { m, p }),
        4 => (merchant(), target(Aim::Captured), amt(), any::<bool>())
            .prop_map(|(m, p, amt, vs_balance)| Op::Refund { m, p, amt, vs_balance }),
        3 => settle,
        3 => (merchant(), target(Aim::Captured), 0u8..3, amt())
            .prop_map(|(m, p, did, amt)| Op::OpenDispute { m, p, did, amt }),
        2 => (merchant(), target(Aim::Disputed), 0u8..3, prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(m, p, did, open_one, won)| Op::CloseDispute { m, p, did, open_one, won }),
        3 => (merchant(), 0..CURRENCIES.len(), prop::bool::weighted(0.8), 0u8..3, amt(), bank())
            .prop_map(|(m, cur, funded, id, amt, bank)| Op::Payout { m, cur, funded, id, amt, bank }),
        2 => merchant().prop_map(|m| Op::Expire { m }),
        2 => (
            prop_oneof![3 => 0u32..3000, 1 => 3000u32..12_000],
            prop_oneof![1 => Just(0u32), 1 => 0u32..3_000_000],
        )
            .prop_map(|(minutes, nanos)| Op::Advance { minutes, nanos }),
        3 => any::<usize>().prop_map(Op::Retry),
        2 => any::<usize>().prop_map(Op::ReuseKey),
    ]
}

// ---- money, by the spec ------------------------------------------------------------------------

fn exponent(code: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, e)| *e)
}

fn unit(exp: u32) -> Decimal {
    Decimal::new(1, exp)
}

/// `value` written with exactly `exp` decimals.
fn canonical(value: Decimal, exp: u32) -> String {
    let mut v = value;
    v.rescale(exp);
    assert_eq!(v, value, "{value} does not fit {exp} decimals");
    v.to_string()
}

/// An amount as the spec reads it: a positive decimal with at most the currency's decimals.
/// The decimals are counted on the text, independently of the ledger's parser.
fn parse(w: &WireMoney) -> Result<(Decimal, u32), &'static str> {
    let exp = exponent(&w.currency).ok_or("unsupported_currency")?;
    let value = Decimal::from_str(&w.amount).map_err(|_| "invalid_amount")?;
    let decimals = w
        .amount
        .split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('0').len());
    if decimals > exp as usize {
        return Err("amount_precision");
    }
    if value <= Decimal::ZERO {
        return Err("amount_not_positive");
    }
    Ok((value, exp))
}

/// The wire amount an `Amt` stands for, against `limit` in currency `cur`.
fn resolve(a: Amt, limit: Decimal, cur: usize) -> WireMoney {
    let (code, exp) = CURRENCIES[cur];
    let u = unit(exp);
    let limit = limit.max(Decimal::ZERO);
    let floor = |v: Decimal| v.round_dp_with_strategy(exp, RoundingStrategy::ToZero);
    let value = match a {
        Amt::Frac(k) => {
            // Written without trailing zeros ("12.3" for 12.30 GBP): the ledger scales it.
            let v = floor(limit * Decimal::from(k) / Decimal::from(8)).max(u);
            return wire(&v.normalize().to_string(), code);
        }
        Amt::Exact if limit > Decimal::ZERO => limit,
        Amt::Exact => u,
        Amt::AllBut(n) => (limit - u * Decimal::from(n)).max(u),
        Amt::Over => limit + u,
        Amt::TooPrecise => {
            let v = floor(limit).max(u) - u + Decimal::new(5, exp + 1);
            return wire(&v.to_string(), code);
        }
        Amt::Zero => return wire("0", code),
        Amt::Minor(n) => Decimal::new(i64::from(n), exp),
        Amt::OtherCurrency => {
            let other = CURRENCIES[(cur + 1) % CURRENCIES.len()].0;
            return wire("1", other);
        }
    };
    wire(&canonical(value, exp), code)
}

// ---- the model -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Requested,
    Unknown,
    Declined,
    Failed,
    Approved,
}

#[derive(Debug, Clone)]
struct ModelDispute {
    id: String,
    amount: Decimal,
    status: Option<DisputeOutcome>,
}

#[derive(Debug, Clone)]
struct ModelPayment {
    currency: String,
    exp: u32,
    processor: String,
    amount: Decimal,
    status: Status,
    held: Decimal,
    captured: Decimal,
    released: Decimal,
    refunded: Decimal,
    settled: Decimal,
    expires_at: Option<DateTime<Utc>>,
    settlements: Vec<String>,
    disputes: Vec<ModelDispute>,
}

impl ModelPayment {
    /// captured − refunded − open and lost disputes.
    fn refundable(&self) -> Decimal {
        let disputed: Decimal = self
            .disputes
            .iter()
            .filter(|d| d.status != Some(DisputeOutcome::Won))
            .map(|d| d.amount)
            .sum();
        self.captured - self.refunded - disputed
    }

    fn unsettled(&self) -> Decimal {
        self.captured - self.refunded - self.settled
    }

    fn clearing(&self) -> String {
        format!("processor:{}:clearing", self.processor)
    }
}

/// One merchant as the spec describes it, folded from the events the ledger emitted.
#[derive(Debug, Default)]
struct Model {
    sequence: i64,
    payments: BTreeMap<Uuid, ModelPayment>,
    payouts: BTreeSet<Uuid>,
    /// Idempotency key → content of the input that bound it.
    keys: HashMap<String, String>,
    books: Books,
    event_ids: HashSet<Uuid>,
}

fn amount_of(w: &WireMoney) -> Decimal {
    dec(&w.amount)
}

impl Model {
    fn payable(m: &str) -> String {
        format!("merchant:{m}:payable")
    }

    /// credits_posted − debits_posted − debits_pending of the merchant payable.
    fn payable_available(&self, m: &str, cur: &str) -> Decimal {
        let f = self.books.get(&Self::payable(m), cur);
        f.credits_posted - f.debits_posted - f.debits_pending
    }

    /// The payable available less the dispute exposure.
    fn payout_available(&self, m: &str, cur: &str) -> Decimal {
        let d = self.books.get(&format!("merchant:{m}:disputes"), cur);
        let exposure = d.debits_pending + d.debits_posted - d.credits_posted;
        self.payable_available(m, cur) - exposure.max(Decimal::ZERO)
    }

    fn apply(&mut self, e: &PaymentEvent, content: &str) {
        self.sequence += 1;
        assert_eq!(
            e.merchant_sequence, self.sequence,
            "merchant_sequence runs 1..n"
        );
        // Known bug (see lifecycle.rs, `a_reused_result_id_gets_its_own_event_id`): the
        // rejection of a reused result id repeats the event id of the result's first event.
        let known_bug = e.idempotency_key.starts_with("gateway-result:")
            && matches!(&e.body, EventBody::CommandRejected(r) if r.reason_code == "idempotency_key_reused");
        assert!(
            self.event_ids.insert(e.event_id) || known_bug,
            "event id {} twice",
            e.event_id
        );
        let bind = match &e.body {
            EventBody::CommandRejected(r) => binds_key(&r.reason_code),
            _ => true,
        };
        if bind {
            self.keys
                .entry(e.idempotency_key.clone())
                .or_insert_with(|| content.to_owned());
        }
        self.books.post_event(e);
        fn p<'a>(model: &'a mut Model, id: &Uuid) -> &'a mut ModelPayment {
            model
                .payments
                .get_mut(id)
                .expect("event about a known payment")
        }
        match &e.body {
            EventBody::PaymentAuthorizationRequested(a) => {
                let exp = exponent(&a.amount.currency).expect("a supported currency");
                let old = self.payments.insert(
                    a.payment_id,
                    ModelPayment {
                        currency: a.amount.currency.clone(),
                        exp,
                        processor: a.processor.clone(),
                        amount: amount_of(&a.amount),
                        status: Status::Requested,
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
                assert!(old.is_none(), "a payment id is requested once");
            }
            EventBody::CommandRejected(_) => {}
            EventBody::PaymentAuthorized(a) => {
                let p = p(self, &a.payment_id);
                p.status = Status::Approved;
                p.held = amount_of(&a.amount);
                p.expires_at = Some(a.expires_at);
            }
            EventBody::PaymentDeclined(d) => p(self, &d.payment_id).status = Status::Declined,
            EventBody::PaymentAuthorizationFailed(f) => {
                p(self, &f.payment_id).status = Status::Failed
            }
            EventBody::PaymentAuthorizationUnknown(u) => {
                p(self, &u.payment_id).status = Status::Unknown
            }
            EventBody::PaymentCaptured(c) => {
                let p = p(self, &c.payment_id);
                p.held -= amount_of(&c.amount);
                p.captured += amount_of(&c.amount);
            }
            EventBody::PaymentVoided(v) => {
                let p = p(self, &v.payment_id);
                p.held -= amount_of(&v.released);
                p.released += amount_of(&v.released);
            }
            EventBody::PaymentRefunded(r) => {
                p(self, &r.payment_id).refunded += amount_of(&r.amount)
            }
            EventBody::PaymentSettled(s) => {
                let p = p(self, &s.payment_id);
                p.settled += amount_of(&s.amount);
                p.settlements.push(s.settlement_id.clone());
            }
            EventBody::DisputeOpened(d) => p(self, &d.payment_id).disputes.push(ModelDispute {
                id: d.dispute_id.clone(),
                amount: amount_of(&d.amount),
                status: None,
            }),
            EventBody::DisputeClosed(d) => {
                let p = p(self, &d.payment_id);
                let open = p
                    .disputes
                    .iter_mut()
                    .find(|x| x.id == d.dispute_id && x.status.is_none())
                    .expect("closes an open dispute");
                open.status = Some(d.outcome);
            }
            EventBody::PayoutSent(s) => assert!(self.payouts.insert(s.payout_id)),
        }
    }

    /// The live state agrees with the model: sequence, keys, payouts, payments, balances.
    fn assert_matches(&self, m: &str, state: &MerchantState) {
        assert_eq!(state.sequence, self.sequence);
        let keys: BTreeSet<&String> = state.idempotency.keys().collect();
        let model_keys: BTreeSet<&String> = self.keys.keys().collect();
        assert_eq!(keys, model_keys, "bound idempotency keys");
        let payouts: BTreeSet<Uuid> = state.payouts.iter().copied().collect();
        assert_eq!(payouts, self.payouts);
        assert_eq!(state.payments.len(), self.payments.len());
        for (id, mp) in &self.payments {
            let p = &state.payments[id];
            let status = match p.authorization {
                AuthorizationStatus::Requested => Status::Requested,
                AuthorizationStatus::Unknown => Status::Unknown,
                AuthorizationStatus::Declined => Status::Declined,
                AuthorizationStatus::Failed => Status::Failed,
                AuthorizationStatus::Approved => Status::Approved,
            };
            assert_eq!(status, mp.status, "{id}");
            assert_eq!(p.currency.code(), mp.currency);
            assert_eq!(p.processor.as_str(), mp.processor);
            assert_eq!(
                [
                    p.amount, p.held, p.captured, p.released, p.refunded, p.settled
                ],
                [
                    mp.amount,
                    mp.held,
                    mp.captured,
                    mp.released,
                    mp.refunded,
                    mp.settled
                ],
                "{id}: amount, held, captured, released, refunded, settled"
            );
            assert_eq!(p.expires_at, mp.expires_at);
            assert_eq!(p.settlements, mp.settlements);
            let disputes: Vec<_> = p
                .disputes
                .iter()
                .map(|d| {
                    let status = match d.status {
                        DisputeStatus::Open => None,
                        DisputeStatus::Won => Some(DisputeOutcome::Won),
                        DisputeStatus::Lost => Some(DisputeOutcome::Lost),
                    };
                    (d.id.clone(), d.amount, status)
                })
                .collect();
            let model: Vec<_> = mp
                .disputes
                .iter()
                .map(|d| (d.id.clone(), d.amount, d.status))
                .collect();
            assert_eq!(disputes, model);
        }
        // (6) The balances are the fold of every posting emitted.
        assert_eq!(
            Books::of_state(state, m),
            self.books,
            "balances != fold of postings"
        );
    }

    /// (1), (2), (3) on the model (which equals the state).
    fn assert_invariants(&self, m: &str) {
        self.books.assert_sound(m);
        for (id, p) in &self.payments {
            let zero = Decimal::ZERO;
            for v in [p.held, p.captured, p.released, p.refunded, p.settled] {
                assert!(v >= zero, "{id}: {p:?}");
            }
            if p.status == Status::Approved {
                assert_eq!(p.captured + p.released + p.held, p.amount, "{id}: {p:?}");
                assert!(p.captured <= p.amount);
                assert!(p.refunded <= p.captured, "{id}: {p:?}");
                assert!(p.settled <= p.captured, "{id}: {p:?}");
                assert!(
                    p.refundable() >= zero,
                    "{id}: refunds + disputes > captured: {p:?}"
                );
            } else {
                assert_eq!(
                    [p.held, p.captured, p.released, p.refunded, p.settled],
                    [zero; 5],
                    "{id}: money moved before approval"
                );
                assert!(p.disputes.is_empty() && p.settlements.is_empty());
            }
        }
    }
}

// ---- what the spec says must happen -----------------------------------------------------------

#[derive(Debug)]
enum Expect {
    Accept(EventBody),
    /// Accepted, an event of this kind about the payment (declined / failed / unknown).
    AcceptKind(&'static str),
    NoChange,
    Duplicate,
    /// Rejected with one of these reasons (every rule the input breaks).
    Reject(Vec<&'static str>),
}

impl Expect {
    fn from(why: Vec<&'static str>, accept: impl FnOnce() -> Expect) -> Expect {
        if why.is_empty() {
            accept()
        } else {
            Expect::Reject(why)
        }
    }
}

fn expect_command(model: &Model, m: &str, body: &CommandBody, now: DateTime<Utc>) -> Expect {
    let mut why = Vec::new();
    let payable = Model::payable(m);
    // The payment a command is about, if it exists and is approved.
    let approved = |why: &mut Vec<&'static str>, id: &Uuid| match model.payments.get(id) {
        None => {
            why.push("payment_not_found");
            None
        }
        Some(p) if p.status != Status::Approved => {
            why.push("payment_not_authorized");
            None
        }
        Some(p) => Some(p),
    };
    // An amount in the payment's currency.
    let amount_in =
        |why: &mut Vec<&'static str>, w: &WireMoney, p: Option<&ModelPayment>| match parse(w) {
            Err(code) => {
                why.push(code);
                None
            }
            Ok((v, _)) => match p {
                Some(p) if w.currency != p.currency => {
                    why.push("currency_mismatch");
                    None
                }
                _ => Some(v),
            },
        };
    match body {
        CommandBody::AuthorizePayment(a) => {
            let amount = amount_in(&mut why, &a.amount, None);
            if !ledger::PROCESSORS.contains(&a.processor.as_str()) {
                why.push("unknown_processor");
            }
            if a.payment_token.chars().all(|c| c.is_ascii_digit()) {
                why.push("card_number_rejected");
            }
            if model.payments.contains_key(&a.payment_id) {
                why.push("duplicate_payment");
            }
            Expect::from(why, || {
                let exp = exponent(&a.amount.currency).unwrap();
                Expect::Accept(EventBody::PaymentAuthorizationRequested(
                    PaymentAuthorizationRequested {
                        payment_id: a.payment_id,
                        amount: wire(&canonical(amount.unwrap(), exp), &a.amount.currency),
                        processor: a.processor.clone(),
                        payment_token: a.payment_token.clone(),
                    },
                ))
            })
        }
        CommandBody::CapturePayment(c) => {
            let p = approved(&mut why, &c.payment_id);
            let amount = amount_in(&mut why, &c.amount, p);
            if let (Some(p), Some(amount)) = (p, amount) {
                if p.expires_at.is_some_and(|at| at <= now) {
                    why.push("authorization_expired");
                }
                if amount > p.held {
                    why.push("capture_exceeds_authorization");
                }
            }
            Expect::from(why, || {
                let p = p.unwrap();
                let a = canonical(amount.unwrap(), p.exp);
                Expect::Accept(EventBody::PaymentCaptured(PaymentCaptured {
                    payment_id: c.payment_id,
                    amount: wire(&a, &p.currency),
                    postings: vec![posting(
                        &p.clearing(),
                        &payable,
                        &a,
                        &p.currency,
                        PostingPhase::PostPending,
                    )],
                }))
            })
        }
        CommandBody::VoidPayment(v) => {
            let p = approved(&mut why, &v.payment_id);
            if p.is_some_and(|p| p.held.is_zero()) {
                why.push("nothing_to_void");
            }
            Expect::from(why, || {
                let p = p.unwrap();
                let held = canonical(p.held, p.exp);
                Expect::Accept(EventBody::PaymentVoided(PaymentVoided {
                    payment_id: v.payment_id,
                    released: wire(&held, &p.currency),
                    reason: VoidReason::Requested,
                    postings: vec![posting(
                        &p.clearing(),
                        &payable,
                        &held,
                        &p.currency,
                        PostingPhase::VoidPending,
                    )],
                }))
            })
        }
        CommandBody::RefundPayment(r) => {
            let p = approved(&mut why, &r.payment_id);
            let amount = amount_in(&mut why, &r.amount, p);
            if let (Some(p), Some(amount)) = (p, amount) {
                if amount > p.refundable() {
                    why.push("refund_exceeds_captured");
                }
                if amount > model.payable_available(m, &p.currency) {
                    why.push("insufficient_merchant_balance");
                }
            }
            Expect::from(why, || {
                let p = p.unwrap();
                let a = canonical(amount.unwrap(), p.exp);
                Expect::Accept(EventBody::PaymentRefunded(PaymentRefunded {
                    payment_id: r.payment_id,
                    amount: wire(&a, &p.currency),
                    postings: vec![posting(
                        &payable,
                        &p.clearing(),
                        &a,
                        &p.currency,
                        PostingPhase::Posted,
                    )],
                }))
            })
        }
        CommandBody::RequestPayout(o) => {
            let amount = amount_in(&mut why, &o.amount, None);
            if !BANKS[..2].contains(&o.bank_account.as_str()) {
                why.push("invalid_bank_account");
            }
            if model.payouts.contains(&o.payout_id) {
                why.push("duplicate_payout");
            }
            if amount.is_some_and(|a| a > model.payout_available(m, &o.amount.currency)) {
                why.push("insufficient_merchant_balance");
            }
            Expect::from(why, || {
                let cur = &o.amount.currency;
                let a = canonical(amount.unwrap(), exponent(cur).unwrap());
                Expect::Accept(EventBody::PayoutSent(PayoutSent {
                    payout_id: o.payout_id,
                    amount: wire(&a, cur),
                    bank_account: o.bank_account.clone(),
                    postings: vec![posting(
                        &payable,
                        &format!("cash:{}", o.bank_account),
                        &a,
                        cur,
                        PostingPhase::Posted,
                    )],
                }))
            })
        }
    }
}

fn expect_result(model: &Model, m: &str, r: &GatewayResult, now: DateTime<Utc>) -> Expect {
    use AuthorizationOutcome as O;
    let Some(p) = model.payments.get(&r.payment_id) else {
        return Expect::Reject(vec!["payment_not_found"]);
    };
    let mut why = Vec::new();
    if r.processor != p.processor {
        why.push("processor_mismatch");
    }
    let payable = Model::payable(m);
    let amount_in = |why: &mut Vec<&'static str>, w: &WireMoney| match parse(w) {
        Err(code) => {
            why.push(code);
            None
        }
        Ok(_) if w.currency != p.currency => {
            why.push("currency_mismatch");
            None
        }
        Ok((v, _)) => Some(v),
    };
    let approved = |why: &mut Vec<&'static str>| {
        if p.status != Status::Approved {
            why.push("payment_not_authorized");
        }
    };
    match &r.body {
        ResultBody::Authorization(a) => {
            let outcome = match (p.status, a.outcome) {
                (Status::Requested | Status::Unknown, O::Approved) => {
                    let amount = canonical(p.amount, p.exp);
                    Expect::Accept(EventBody::PaymentAuthorized(PaymentAuthorized {
                        payment_id: r.payment_id,
                        amount: wire(&amount, &p.currency),
                        processor_reference: a.processor_reference.clone(),
                        expires_at: millis(a.expires_at.unwrap_or(now + Duration::days(7))),
                        postings: vec![posting(
                            &p.clearing(),
                            &payable,
                            &amount,
                            &p.currency,
                            PostingPhase::Pending,
                        )],
                    }))
                }
                (Status::Requested | Status::Unknown, O::Declined) => {
                    Expect::AcceptKind("PaymentDeclined")
                }
                (Status::Requested | Status::Unknown, O::Failed) => {
                    Expect::AcceptKind("PaymentAuthorizationFailed")
                }
                (Status::Requested, O::Unknown) => {
                    Expect::AcceptKind("PaymentAuthorizationUnknown")
                }
                (Status::Unknown, O::Unknown)
                | (Status::Approved, O::Approved)
                | (Status::Declined, O::Declined)
                | (Status::Failed, O::Failed) => Expect::NoChange,
                // An "unknown" after a definitive outcome is not a contradiction the spec
                // names; the ledger refuses it as one.
                (_, O::Unknown) => Expect::Reject(vec!["conflicting_result"]),
                _ => Expect::Reject(vec!["conflicting_result"]),
            };
            match outcome {
                Expect::Reject(mut codes) => {
                    codes.extend(why);
                    Expect::Reject(codes)
                }
                accepted if why.is_empty() => accepted,
                _ => Expect::Reject(why),
            }
        }
        ResultBody::Settlement(s) => {
            approved(&mut why);
            let amount = amount_in(&mut why, &s.amount);
            let fee = if s.fee.currency != p.currency {
                why.push("currency_mismatch");
                None
            } else if dec(&s.fee.amount).is_zero() {
                Some(Decimal::ZERO)
            } else {
                amount_in(&mut why, &s.fee)
            };
            if let (Some(amount), Some(fee)) = (amount, fee)
                && fee > amount
            {
                why.push("fee_exceeds_amount");
            }
            if p.settlements.contains(&s.settlement_id) {
                why.push("duplicate_settlement");
            }
            if amount.is_some_and(|a| a > p.unsettled()) {
                why.push("settlement_exceeds_captured");
            }
            if !BANKS[..2].contains(&s.bank_account.as_str()) {
                why.push("invalid_bank_account");
            }
            Expect::from(why, || {
                let (amount, fee) = (amount.unwrap(), fee.unwrap());
                let cash = format!("cash:{}", s.bank_account);
                let clearing = p.clearing();
                let mut postings = Vec::new();
                if amount > fee {
                    let net = canonical(amount - fee, p.exp);
                    postings.push(posting(
                        &cash,
                        &clearing,
                        &net,
                        &p.currency,
                        PostingPhase::Posted,
                    ));
                }
                if fee > Decimal::ZERO {
                    let f = canonical(fee, p.exp);
                    postings.push(posting(
                        "platform:fees",
                        &clearing,
                        &f,
                        &p.currency,
                        PostingPhase::Posted,
                    ));
                }
                Expect::Accept(EventBody::PaymentSettled(PaymentSettled {
                    payment_id: r.payment_id,
                    settlement_id: s.settlement_id.clone(),
                    amount: wire(&canonical(amount, p.exp), &p.currency),
                    fee: wire(&canonical(fee, p.exp), &p.currency),
                    bank_account: s.bank_account.clone(),
                    postings,
                }))
            })
        }
        ResultBody::DisputeOpened(d) => {
            approved(&mut why);
            let amount = amount_in(&mut why, &d.amount);
            if p.disputes.iter().any(|x| x.id == d.dispute_id) {
                why.push("duplicate_dispute");
            }
            if amount.is_some_and(|a| a > p.refundable()) {
                why.push("dispute_exceeds_captured");
            }
            Expect::from(why, || {
                let a = canonical(amount.unwrap(), p.exp);
                Expect::Accept(EventBody::DisputeOpened(DisputeOpened {
                    payment_id: r.payment_id,
                    dispute_id: d.dispute_id.clone(),
                    amount: wire(&a, &p.currency),
                    reason: d.reason.clone(),
                    postings: vec![posting(
                        &format!("merchant:{m}:disputes"),
                        &p.clearing(),
                        &a,
                        &p.currency,
                        PostingPhase::Pending,
                    )],
                }))
            })
        }
        ResultBody::DisputeClosed(d) => {
            let open = p
                .disputes
                .iter()
                .find(|x| x.id == d.dispute_id && x.status.is_none());
            if open.is_none() {
                why.push("dispute_not_open");
            }
            Expect::from(why, || {
                let a = canonical(open.unwrap().amount, p.exp);
                let phase = match d.outcome {
                    DisputeOutcome::Won => PostingPhase::VoidPending,
                    DisputeOutcome::Lost => PostingPhase::PostPending,
                };
                Expect::Accept(EventBody::DisputeClosed(DisputeClosed {
                    payment_id: r.payment_id,
                    dispute_id: d.dispute_id.clone(),
                    outcome: d.outcome,
                    amount: wire(&a, &p.currency),
                    postings: vec![posting(
                        &format!("merchant:{m}:disputes"),
                        &p.clearing(),
                        &a,
                        &p.currency,
                        phase,
                    )],
                }))
            })
        }
    }
}

// ---- the run ---------------------------------------------------------------------------------

struct Merchant {
    id: &'static str,
    state: MerchantState,
    model: Model,
}

struct World {
    now: DateTime<Utc>,
    step: u128,
    merchants: Vec<Merchant>,
    /// Every input sent, with its merchant.
    sent: Vec<(usize, Input)>,
    /// Every event emitted, all merchants interleaved, in order.
    log: Vec<PaymentEvent>,
}

fn key_of(input: &Input) -> String {
    match input {
        Input::Command(c) => c.idempotency_key.clone(),
        Input::Result(r) => result_key(r.result_id),
    }
}

/// What makes two inputs "the same" for idempotency: everything but ids and times.
fn content_of(input: &Input) -> String {
    match input {
        Input::Command(c) => format!("{}|{}|{:?}", c.merchant_id, c.idempotency_key, c.body),
        Input::Result(r) => format!(
            "{}|{}|{}|{}|{:?}",
            r.result_id, r.merchant_id, r.payment_id, r.processor, r.body
        ),
    }
}

fn kind_of(body: &EventBody) -> &'static str {
    match body {
        EventBody::PaymentDeclined(_) => "PaymentDeclined",
        EventBody::PaymentAuthorizationFailed(_) => "PaymentAuthorizationFailed",
        EventBody::PaymentAuthorizationUnknown(_) => "PaymentAuthorizationUnknown",
        _ => "other",
    }
}

impl World {
    fn new() -> Self {
        World {
            now: start(),
            step: 0,
            merchants: MERCHANTS
                .iter()
                .map(|id| Merchant {
                    id,
                    state: MerchantState::default(),
                    model: Model::default(),
                })
                .collect(),
            sent: Vec::new(),
            log: Vec::new(),
        }
    }

    fn command(&self, m: usize, body: CommandBody) -> Input {
        Input::Command(PaymentCommand {
            command_id: Uuid::from_u128(0xC0_0000_0000 + self.step),
            idempotency_key: format!("key-{}", self.step),
            merchant_id: MERCHANTS[m].into(),
            issued_at: self.now,
            body,
        })
    }

    /// The payment a target names at merchant `m`, now.
    fn target(&self, m: usize, t: Target) -> Uuid {
        let payments = &self.merchants[m].model.payments;
        let captured = payments
            .values()
            .any(|p| p.status == Status::Approved && p.refundable() > Decimal::ZERO);
        let aim = match t.aim {
            Aim::Captured if !captured => Aim::Approved,
            aim => aim,
        };
        let pool: Vec<Uuid> = payments
            .iter()
            .filter(|(_, p)| match aim {
                Aim::Approved => p.status == Status::Approved,
                Aim::Captured => p.status == Status::Approved && p.refundable() > Decimal::ZERO,
                Aim::Open => matches!(p.status, Status::Requested | Status::Unknown),
                Aim::Disputed => p.disputes.iter().any(|d| d.status.is_none()),
                Aim::Any | Aim::Raw => true,
            })
            .map(|(id, _)| *id)
            .collect();
        let pool = if pool.is_empty() {
            payments.keys().copied().collect()
        } else {
            pool
        };
        match t.aim {
            _ if pool.is_empty() => payment_id(t.pick % PAYMENT_IDS),
            Aim::Raw => payment_id(t.pick % PAYMENT_IDS),
            _ => pool[usize::from(t.pick) % pool.len()],
        }
    }

    fn result(&self, m: usize, id: Uuid, wrong_processor: bool, body: ResultBody) -> Input {
        let processor = self.merchants[m]
            .model
            .payments
            .get(&id)
            .map_or("stripe", |p| p.processor.as_str());
        let processor = if wrong_processor {
            if processor == "shuttle" {
                "stripe"
            } else {
                "shuttle"
            }
        } else {
            processor
        };
        Input::Result(GatewayResult {
            result_id: Uuid::from_u128(0x5E_0000_0000 + self.step),
            merchant_id: MERCHANTS[m].into(),
            payment_id: id,
            processor: processor.into(),
            occurred_at: self.now,
            body,
        })
    }

    /// The payment's currency index (GBP for a payment that does not exist).
    fn currency_of(&self, m: usize, id: Uuid) -> usize {
        self.merchants[m]
            .model
            .payments
            .get(&id)
            .and_then(|p| CURRENCIES.iter().position(|(c, _)| *c == p.currency))
            .unwrap_or(0)
    }

    fn payment_figure(&self, m: usize, id: Uuid, f: impl Fn(&ModelPayment) -> Decimal) -> Decimal {
        self.merchants[m]
            .model
            .payments
            .get(&id)
            .map_or(Decimal::from(10), f)
    }

    /// The input an operation stands for, and its merchant.
    fn build(&self, op: Op) -> Option<(usize, Input)> {
        Some(match op {
            Op::Authorize {
                m,
                p,
                cur,
                minor,
                flaw,
                processor,
            } => {
                let (code, exp) = CURRENCIES[cur];
                let mut amount = wire(&canonical(Decimal::new(i64::from(minor), exp), exp), code);
                let mut token = "tok_visa".to_owned();
                match flaw {
                    1 => {
                        amount = resolve(Amt::TooPrecise, Decimal::new(i64::from(minor), exp), cur)
                    }
                    2 => amount.amount = "0".into(),
                    3 => amount.currency = "XXX".into(),
                    4 => token = "4242424242424242".into(),
                    _ => {}
                }
                let body = CommandBody::AuthorizePayment(AuthorizePayment {
                    payment_id: payment_id(p),
                    amount,
                    processor: PROCESSORS[processor].into(),
                    payment_token: token,
                });
                (m, self.command(m, body))
            }
            Op::Outcome {
                m,
                p,
                outcome,
                expires_in,
                wrong_processor,
            } => {
                let p = self.target(m, p);
                let body = ResultBody::Authorization(AuthorizationResult {
                    outcome,
                    source: ResultSource::Response,
                    processor_reference: Some(format!("ref-{}", self.step)),
                    code: None,
                    detail: "from the processor".into(),
                    expires_at: expires_in.map(|min| self.now + Duration::minutes(min.into())),
                });
                (m, self.result(m, p, wrong_processor, body))
            }
            Op::Capture { m, p, amt } => {
                let p = self.target(m, p);
                let held = self.payment_figure(m, p, |p| p.held);
                let amount = resolve(amt, held, self.currency_of(m, p));
                let body = CommandBody::CapturePayment(CapturePayment {
                    payment_id: p,
                    amount,
                });
                (m, self.command(m, body))
            }
            Op::Void { m, p } => {
                let p = self.target(m, p);
                (
                    m,
                    self.command(m, CommandBody::VoidPayment(VoidPayment { payment_id: p })),
                )
            }
            Op::Refund {
                m,
                p,
                amt,
                vs_balance,
            } => {
                let p = self.target(m, p);
                let cur = self.currency_of(m, p);
                let limit = if vs_balance {
                    self.merchants[m]
                        .model
                        .payable_available(MERCHANTS[m], CURRENCIES[cur].0)
                } else {
                    self.payment_figure(m, p, ModelPayment::refundable)
                };
                let body = CommandBody::RefundPayment(RefundPayment {
                    payment_id: p,
                    amount: resolve(amt, limit, cur),
                });
                (m, self.command(m, body))
            }
            Op::Settle {
                m,
                p,
                sid,
                amt,
                fee,
                fee_other_currency,
                bank,
            } => {
                let p = self.target(m, p);
                let cur = self.currency_of(m, p);
                let (code, exp) = CURRENCIES[cur];
                let amount = resolve(amt, self.payment_figure(m, p, ModelPayment::unsettled), cur);
                let gross = parse(&amount).map_or(unit(exp), |(v, _)| v);
                let fee_value = match fee {
                    0 => Decimal::ZERO,
                    11 => gross + unit(exp),
                    k => (gross * Decimal::from(k) / Decimal::from(10))
                        .round_dp_with_strategy(exp, RoundingStrategy::ToZero),
                };
                let fee = if fee_other_currency {
                    wire("1", CURRENCIES[(cur + 1) % CURRENCIES.len()].0)
                } else {
                    wire(&canonical(fee_value, exp), code)
                };
                let body = ResultBody::Settlement(SettlementReport {
                    settlement_id: format!("s-{sid}"),
                    amount,
                    fee,
                    bank_account: BANKS[bank].into(),
                });
                (m, self.result(m, p, false, body))
            }
            Op::OpenDispute { m, p, did, amt } => {
                let p = self.target(m, p);
                let limit = self.payment_figure(m, p, ModelPayment::refundable);
                let body = ResultBody::DisputeOpened(DisputeNotice {
                    dispute_id: format!("d-{did}"),
                    amount: resolve(amt, limit, self.currency_of(m, p)),
                    reason: "fraudulent".into(),
                });
                (m, self.result(m, p, false, body))
            }
            Op::CloseDispute {
                m,
                p,
                did,
                open_one,
                won,
            } => {
                let p = self.target(m, p);
                let open: Vec<&str> = self.merchants[m]
                    .model
                    .payments
                    .get(&p)
                    .map(|p| {
                        p.disputes
                            .iter()
                            .filter(|d| d.status.is_none())
                            .map(|d| d.id.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let dispute_id = if open_one && !open.is_empty() {
                    open[usize::from(did) % open.len()].to_owned()
                } else {
                    format!("d-{did}")
                };
                let body = ResultBody::DisputeClosed(DisputeDecision {
                    dispute_id,
                    outcome: if won {
                        DisputeOutcome::Won
                    } else {
                        DisputeOutcome::Lost
                    },
                });
                (m, self.result(m, p, false, body))
            }
            Op::Payout {
                m,
                cur,
                funded,
                id,
                amt,
                bank,
            } => {
                let model = &self.merchants[m].model;
                let cur = (0..CURRENCIES.len())
                    .map(|i| (cur + i) % CURRENCIES.len())
                    .find(|&c| {
                        !funded
                            || model.payout_available(MERCHANTS[m], CURRENCIES[c].0) > Decimal::ZERO
                    })
                    .unwrap_or(cur);
                let limit = self.merchants[m]
                    .model
                    .payout_available(MERCHANTS[m], CURRENCIES[cur].0);
                let body = CommandBody::RequestPayout(RequestPayout {
                    payout_id: payout_id(id),
                    amount: resolve(amt, limit, cur),
                    bank_account: BANKS[bank].into(),
                });
                (m, self.command(m, body))
            }
            Op::Retry(i) => {
                if self.sent.is_empty() {
                    return None;
                }
                let (m, input) = &self.sent[i % self.sent.len()];
                let input = match input {
                    Input::Command(c) => {
                        let mut c = c.clone();
                        c.command_id = Uuid::from_u128(0xC0_0000_0000 + self.step);
                        c.issued_at = self.now;
                        Input::Command(c)
                    }
                    Input::Result(r) => {
                        let mut r = r.clone();
                        r.occurred_at = self.now;
                        Input::Result(r)
                    }
                };
                (*m, input)
            }
            Op::ReuseKey(i) => {
                if self.sent.is_empty() {
                    return None;
                }
                let (m, input) = &self.sent[i % self.sent.len()];
                let input = match input {
                    Input::Command(c) => {
                        let mut c = c.clone();
                        c.command_id = Uuid::from_u128(0xC0_0000_0000 + self.step);
                        match &mut c.body {
                            CommandBody::AuthorizePayment(a) => {
                                a.payment_token = "tok_other".into()
                            }
                            CommandBody::CapturePayment(x) => x.amount.amount = "1".into(),
                            CommandBody::RefundPayment(x) => x.amount.amount = "1".into(),
                            CommandBody::VoidPayment(v) => {
                                v.payment_id = Uuid::from_u128(v.payment_id.as_u128() + 1)
                            }
                            CommandBody::RequestPayout(o) => o.bank_account = "bank-2".into(),
                        }
                        Input::Command(c)
                    }
                    Input::Result(r) => {
                        let mut r = r.clone();
                        match &mut r.body {
                            ResultBody::Authorization(a) => {
                                a.outcome = match a.outcome {
                                    AuthorizationOutcome::Approved => {
                                        AuthorizationOutcome::Declined
                                    }
                                    _ => AuthorizationOutcome::Approved,
                                }
                            }
                            ResultBody::Settlement(s) => s.bank_account = "bank-2".into(),
                            ResultBody::DisputeOpened(d) => d.reason = "duplicate".into(),
                            ResultBody::DisputeClosed(d) => {
                                d.outcome = match d.outcome {
                                    DisputeOutcome::Won => DisputeOutcome::Lost,
                                    DisputeOutcome::Lost => DisputeOutcome::Won,
                                }
                            }
                        }
                        Input::Result(r)
                    }
                };
                (*m, input)
            }
            Op::Open { .. } | Op::Expire { .. } | Op::Advance { .. } => return None,
        })
    }

    /// Decides one input, checks the decision against the model, applies it.
    fn send(&mut self, m: usize, input: Input) {
        let now = self.now;
        let merchant = &mut self.merchants[m];
        let (key, content) = (key_of(&input), content_of(&input));
        let expect = match merchant.model.keys.get(&key) {
            Some(c) if *c == content => Expect::Duplicate,
            Some(_) => Expect::Reject(vec!["idempotency_key_reused"]),
            None => match &input {
                Input::Command(c) => expect_command(&merchant.model, merchant.id, &c.body, now),
                Input::Result(r) => expect_result(&merchant.model, merchant.id, r, now),
            },
        };
        let before = merchant.state.clone();
        let (decision, cause, payment) = match &input {
            Input::Command(c) => (
                decide(Some(&merchant.state), c, now),
                c.command_id,
                match &c.body {
                    CommandBody::AuthorizePayment(a) => Some(a.payment_id),
                    CommandBody::CapturePayment(x) => Some(x.payment_id),
                    CommandBody::VoidPayment(x) => Some(x.payment_id),
                    CommandBody::RefundPayment(x) => Some(x.payment_id),
                    CommandBody::RequestPayout(_) => None,
                },
            ),
            Input::Result(r) => (
                decide_result(Some(&merchant.state), r, now),
                r.result_id,
                Some(r.payment_id),
            ),
        };
        let ok = match (&expect, &decision) {
            (Expect::Duplicate, Decision::Duplicate) | (Expect::NoChange, Decision::NoChange) => {
                true
            }
            (Expect::Reject(codes), Decision::Reject(e)) => match &e.body {
                EventBody::CommandRejected(r) => codes.contains(&r.reason_code.as_str()),
                _ => false,
            },
            (Expect::Accept(body), Decision::Accept(events)) => {
                events.len() == 1 && events[0].body == *body
            }
            (Expect::AcceptKind(kind), Decision::Accept(events)) => {
                events.len() == 1 && kind_of(&events[0].body) == *kind
            }
            _ => false,
        };
        assert!(
            ok,
            "expected {expect:?}\n     got {decision:?}\n   input {input:?}\n  before {before:?}"
        );

        let events = decision.clone().into_events();
        assert!(events.len() <= 1, "one input, at most one event");
        for e in &events {
            assert_eq!(e.merchant_id, merchant.id);
            assert_eq!(e.merchant_sequence, merchant.state.sequence + 1);
            assert_eq!(e.command_id, cause);
            assert_eq!(e.idempotency_key, key);
            assert_eq!(e.occurred_at, millis(now));
            assert_eq!(e.payment_id, payment);
            assert_event_balances(e);
            evolve(&mut merchant.state, e).unwrap_or_else(|err| panic!("{err}: {e:?}"));
            merchant.model.apply(e, &content);
            self.log.push(e.clone());
        }
        match decision {
            Decision::Duplicate | Decision::NoChange => {
                assert_eq!(merchant.state, before, "nothing written, nothing changed")
            }
            Decision::Reject(_) => {
                assert_eq!(merchant.state.payments, before.payments);
                assert_eq!(merchant.state.balances, before.balances);
                assert_eq!(merchant.state.payouts, before.payouts);
            }
            Decision::Accept(_) => {}
        }
        self.sent.push((m, input));
    }

    /// Runs the expiry for one merchant and checks it against the model.
    fn expire(&mut self, m: usize) {
        let now = self.now;
        let merchant = &mut self.merchants[m];
        let events = expire(&merchant.state, merchant.id, now);
        assert_eq!(
            expire(&merchant.state, merchant.id, now),
            events,
            "the expiry is deterministic"
        );
        let payable = Model::payable(merchant.id);
        let due: Vec<EventBody> = merchant
            .model
            .payments
            .iter()
            .filter(|(_, p)| {
                p.status == Status::Approved
                    && p.held > Decimal::ZERO
                    && p.expires_at.is_some_and(|at| at <= now)
            })
            .map(|(id, p)| {
                let held = canonical(p.held, p.exp);
                EventBody::PaymentVoided(PaymentVoided {
                    payment_id: *id,
                    released: wire(&held, &p.currency),
                    reason: VoidReason::Expired,
                    postings: vec![posting(
                        &p.clearing(),
                        &payable,
                        &held,
                        &p.currency,
                        PostingPhase::VoidPending,
                    )],
                })
            })
            .collect();
        let bodies: Vec<EventBody> = events.iter().map(|e| e.body.clone()).collect();
        assert_eq!(
            bodies, due,
            "one void per expired hold, in payment id order"
        );
        for e in &events {
            assert_eq!(e.merchant_id, merchant.id);
            assert_eq!(e.occurred_at, millis(now));
            assert_event_balances(e);
            evolve(&mut merchant.state, e).unwrap_or_else(|err| panic!("{err}: {e:?}"));
            merchant.model.apply(e, "expiry");
            self.log.push(e.clone());
        }
        assert!(
            expire(&merchant.state, merchant.id, now).is_empty(),
            "an applied expiry is not due again"
        );
    }

    /// (4): the merchant's events, picked out of the interleaved log, replay to its state.
    fn assert_replays(&self, m: usize) {
        let merchant = &self.merchants[m];
        let mut replayed = MerchantState::default();
        for e in self.log.iter().filter(|e| e.merchant_id == merchant.id) {
            evolve(&mut replayed, e).unwrap_or_else(|err| panic!("replay: {err}: {e:?}"));
        }
        assert_eq!(replayed, merchant.state, "replay != live state");
    }

    /// (4) once more, the way a restarted ledger does it: every event read back from its Avro
    /// form first.
    fn assert_replays_from_avro(&self, m: usize) {
        let merchant = &self.merchants[m];
        let mut replayed = MerchantState::default();
        for e in self.log.iter().filter(|e| e.merchant_id == merchant.id) {
            let read = PaymentEvent::from_value(&e.to_value())
                .unwrap_or_else(|err| panic!("decode: {err}: {e:?}"));
            assert_eq!(&read, e, "an event changes through its Avro form");
            evolve(&mut replayed, &read).unwrap_or_else(|err| panic!("replay: {err}: {e:?}"));
        }
        assert_eq!(replayed, merchant.state, "replay from Avro != live state");
    }

    fn check(&self, m: usize) {
        let merchant = &self.merchants[m];
        merchant.model.assert_matches(merchant.id, &merchant.state);
        merchant.model.assert_invariants(merchant.id);
        self.assert_replays(m);
    }
}

fn run(ops: Vec<Op>) {
    let mut world = World::new();
    for op in ops {
        world.step += 1;
        match op {
            Op::Advance { minutes, nanos } => {
                world.now += Duration::minutes(minutes.into()) + Duration::nanoseconds(nanos.into())
            }
            Op::Expire { m } => {
                world.expire(m);
                world.check(m);
            }
            Op::Open {
                m,
                p,
                cur,
                minor,
                processor,
                expires_in,
            } => {
                let authorize = Op::Authorize {
                    m,
                    p,
                    cur,
                    minor,
                    flaw: 0,
                    processor,
                };
                let (_, input) = world.build(authorize).expect("an authorization");
                world.send(m, input);
                world.check(m);
                world.step += 1;
                let approve = Op::Outcome {
                    m,
                    p: Target {
                        aim: Aim::Raw,
                        pick: p,
                    },
                    outcome: AuthorizationOutcome::Approved,
                    expires_in,
                    wrong_processor: false,
                };
                let (_, input) = world.build(approve).expect("an approval");
                world.send(m, input);
                world.check(m);
            }
            op => {
                if let Some((m, input)) = world.build(op) {
                    world.send(m, input);
                    world.check(m);
                }
            }
        }
    }
    for m in 0..MERCHANTS.len() {
        world.check(m);
        world.assert_replays_from_avro(m);
    }
}

proptest! {
    // No regression files in the tree: a failure prints its minimal input; pin it in
    // `a_scripted_run_passes_the_same_checks` or a unit test instead.
    #![proptest_config(ProptestConfig {
        // 256 by default; `PROPTEST_CASES=20000` for a deeper search.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_core_keeps_its_promises(ops in prop::collection::vec(op(), 1..120)) {
        run(ops);
    }
}

/// A fixed, readable sequence through the same checks: every kind of input once, on the
/// happy path and over the limits, for both merchants.
#[test]
fn a_scripted_run_passes_the_same_checks() {
    use AuthorizationOutcome::*;
    let mut ops = Vec::new();
    for (m, cur) in [(0, 0), (0, 1), (1, 2)] {
        let raw = cur as u8;
        let p = Target {
            aim: Aim::Raw,
            pick: raw,
        };
        ops.extend([
            Op::Authorize {
                m,
                p: raw,
                cur,
                minor: 123_456,
                flaw: 0,
                processor: cur,
            },
            Op::Authorize {
                m,
                p: raw,
                cur,
                minor: 1,
                flaw: 1,
                processor: 0,
            },
            Op::Outcome {
                m,
                p,
                outcome: Unknown,
                expires_in: None,
                wrong_processor: false,
            },
            Op::Outcome {
                m,
                p,
                outcome: Approved,
                expires_in: Some(600),
                wrong_processor: false,
            },
            Op::Capture {
                m,
                p,
                amt: Amt::Over,
            },
            Op::Capture {
                m,
                p,
                amt: Amt::Frac(5),
            },
            Op::Refund {
                m,
                p,
                amt: Amt::Frac(2),
                vs_balance: false,
            },
            Op::Settle {
                m,
                p,
                sid: 0,
                amt: Amt::Frac(4),
                fee: 3,
                fee_other_currency: false,
                bank: 0,
            },
            Op::OpenDispute {
                m,
                p,
                did: 0,
                amt: Amt::Frac(4),
            },
            Op::Payout {
                m,
                cur,
                funded: false,
                id: 0,
                amt: Amt::Over,
                bank: 0,
            },
            Op::Payout {
                m,
                cur,
                funded: false,
                id: 0,
                amt: Amt::Exact,
                bank: 0,
            },
            Op::CloseDispute {
                m,
                p,
                did: 0,
                open_one: false,
                won: false,
            },
            Op::Retry(7),
            Op::ReuseKey(5),
        ]);
    }
    ops.extend([
        Op::Expire { m: 0 },
        Op::Advance {
            minutes: 600,
            nanos: 0,
        },
        Op::Capture {
            m: 0,
            p: Target {
                aim: Aim::Raw,
                pick: 1,
            },
            amt: Amt::Minor(1),
        },
        Op::Expire { m: 0 },
        Op::Expire { m: 1 },
        Op::Void {
            m: 0,
            p: Target {
                aim: Aim::Approved,
                pick: 0,
            },
        },
    ]);
    run(ops);
}

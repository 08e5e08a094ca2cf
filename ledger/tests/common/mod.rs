//! Shared builders and bookkeeping checks for the pure-core tests (`lifecycle`,
//! `decide_properties`). Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger::account::Account;
use ledger::decide::{Decision, decide, decide_result, expire};
use ledger::evolve::evolve;
use ledger::money::Currency;
use ledger::state::MerchantState;
use rust_decimal::Decimal;
use schemas::{
    AuthorizationOutcome, AuthorizationResult, AuthorizePayment, CapturePayment, CommandBody,
    DisputeDecision, DisputeNotice, DisputeOutcome, EventBody, GatewayResult, PaymentCommand,
    PaymentEvent, Posting, PostingPhase, RefundPayment, RequestPayout, ResultBody, ResultSource,
    SettlementReport, VoidPayment, WireMoney,
};
use uuid::Uuid;

/// 2025-10-09T08:53:20Z: a fixed "now" for the tests.
pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_760_000_000_000).unwrap()
}

pub fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

pub fn currency(code: &str) -> Currency {
    Currency::from_code(code).unwrap_or_else(|| panic!("{code} is not supported"))
}

pub fn wire(amount: &str, currency: &str) -> WireMoney {
    WireMoney {
        amount: amount.into(),
        currency: currency.into(),
    }
}

pub fn posting(
    debit: &str,
    credit: &str,
    amount: &str,
    currency: &str,
    phase: PostingPhase,
) -> Posting {
    Posting {
        debit_account: debit.into(),
        credit_account: credit.into(),
        amount: wire(amount, currency),
        phase,
    }
}

// ---- command and result bodies -------------------------------------------------------------

pub fn authorize(payment_id: Uuid, amount: &str, currency: &str, processor: &str) -> CommandBody {
    CommandBody::AuthorizePayment(AuthorizePayment {
        payment_id,
        amount: wire(amount, currency),
        processor: processor.into(),
        payment_token: "tok_visa".into(),
    })
}

pub fn capture(payment_id: Uuid, amount: &str, currency: &str) -> CommandBody {
    CommandBody::CapturePayment(CapturePayment {
        payment_id,
        amount: wire(amount, currency),
    })
}

pub fn void(payment_id: Uuid) -> CommandBody {
    CommandBody::VoidPayment(VoidPayment { payment_id })
}

pub fn refund(payment_id: Uuid, amount: &str, currency: &str) -> CommandBody {
    CommandBody::RefundPayment(RefundPayment {
        payment_id,
        amount: wire(amount, currency),
    })
}

pub fn payout(payout_id: Uuid, amount: &str, currency: &str, bank: &str) -> CommandBody {
    CommandBody::RequestPayout(RequestPayout {
        payout_id,
        amount: wire(amount, currency),
        bank_account: bank.into(),
    })
}

pub fn authorization(
    outcome: AuthorizationOutcome,
    expires_at: Option<DateTime<Utc>>,
) -> ResultBody {
    ResultBody::Authorization(AuthorizationResult {
        outcome,
        source: ResultSource::Response,
        processor_reference: Some("ref-1".into()),
        code: None,
        detail: "from the processor".into(),
        expires_at,
    })
}

pub fn settlement(
    settlement_id: &str,
    amount: &str,
    fee: &str,
    currency: &str,
    bank: &str,
) -> ResultBody {
    ResultBody::Settlement(SettlementReport {
        settlement_id: settlement_id.into(),
        amount: wire(amount, currency),
        fee: wire(fee, currency),
        bank_account: bank.into(),
    })
}

pub fn dispute_opened(dispute_id: &str, amount: &str, currency: &str) -> ResultBody {
    ResultBody::DisputeOpened(DisputeNotice {
        dispute_id: dispute_id.into(),
        amount: wire(amount, currency),
        reason: "fraudulent".into(),
    })
}

pub fn dispute_closed(dispute_id: &str, outcome: DisputeOutcome) -> ResultBody {
    ResultBody::DisputeClosed(DisputeDecision {
        dispute_id: dispute_id.into(),
        outcome,
    })
}

// ---- events ---------------------------------------------------------------------------------

/// The postings an event carries (none for events that move no money).
pub fn postings_of(body: &EventBody) -> &[Posting] {
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

/// The reason code of a rejection decision; panics on anything else.
pub fn rejection_code(decision: &Decision) -> String {
    match decision {
        Decision::Reject(event) => match &event.body {
            EventBody::CommandRejected(r) => r.reason_code.clone(),
            other => panic!("a rejection must carry CommandRejected, got {other:?}"),
        },
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Rejection codes that do not bind the idempotency key (the spec's exceptions).
pub fn binds_key(code: &str) -> bool {
    !matches!(
        code,
        "idempotency_key_reused" | "invalid_idempotency_key" | "merchant_state_full"
    )
}

// ---- double entry, computed independently of the ledger ---------------------------------------

/// One account's four figures: debits pending/posted, credits pending/posted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub debits_pending: Decimal,
    pub debits_posted: Decimal,
    pub credits_pending: Decimal,
    pub credits_posted: Decimal,
}

/// Balances folded from postings by account name and currency code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Books(pub BTreeMap<(String, String), Figures>);

impl Books {
    pub fn post_event(&mut self, event: &PaymentEvent) {
        for p in postings_of(&event.body) {
            self.post(p);
        }
    }

    pub fn post(&mut self, p: &Posting) {
        let amount = dec(&p.amount.amount);
        let cur = p.amount.currency.clone();
        for (account, debit) in [(&p.debit_account, true), (&p.credit_account, false)] {
            let f = self.0.entry((account.clone(), cur.clone())).or_default();
            let (pending, posted) = if debit {
                (&mut f.debits_pending, &mut f.debits_posted)
            } else {
                (&mut f.credits_pending, &mut f.credits_posted)
            };
            match p.phase {
                PostingPhase::Pending => *pending += amount,
                PostingPhase::Posted => *posted += amount,
                PostingPhase::PostPending => {
                    *pending -= amount;
                    *posted += amount;
                }
                PostingPhase::VoidPending => *pending -= amount,
            }
        }
    }

    pub fn get(&self, account: &str, currency: &str) -> Figures {
        self.0
            .get(&(account.to_owned(), currency.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// The ledger's balances of `state`, named like the postings name them.
    pub fn of_state(state: &MerchantState, merchant_id: &str) -> Books {
        Books(
            state
                .balances
                .iter()
                .map(|((account, cur), b)| {
                    (
                        (account.name(merchant_id), cur.code().to_owned()),
                        Figures {
                            debits_pending: b.debits_pending,
                            debits_posted: b.debits_posted,
                            credits_pending: b.credits_pending,
                            credits_posted: b.credits_posted,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Double entry per currency, and no figure below zero, and the merchant's payable never
    /// debited beyond its posted credits. Panics with a description otherwise.
    pub fn assert_sound(&self, merchant_id: &str) {
        let mut totals: BTreeMap<&str, Figures> = BTreeMap::new();
        let payable = format!("merchant:{merchant_id}:payable");
        for ((account, cur), f) in &self.0 {
            for (name, v) in [
                ("debits_pending", f.debits_pending),
                ("debits_posted", f.debits_posted),
                ("credits_pending", f.credits_pending),
                ("credits_posted", f.credits_posted),
            ] {
                assert!(v >= Decimal::ZERO, "{account} {cur}: {name} = {v} < 0");
            }
            if *account == payable {
                assert!(
                    f.debits_posted + f.debits_pending <= f.credits_posted,
                    "{account} {cur} overdrawn: {f:?}"
                );
            }
            let t = totals.entry(cur).or_default();
            t.debits_pending += f.debits_pending;
            t.debits_posted += f.debits_posted;
            t.credits_pending += f.credits_pending;
            t.credits_posted += f.credits_posted;
        }
        for (cur, t) in totals {
            assert_eq!(
                t.debits_posted, t.credits_posted,
                "{cur}: posted debits != credits"
            );
            assert_eq!(
                t.debits_pending, t.credits_pending,
                "{cur}: pending debits != credits"
            );
        }
    }
}

/// Every posting of one event balances per currency and phase, and is positive and exact in its
/// currency.
pub fn assert_event_balances(event: &PaymentEvent) {
    let mut sides: BTreeMap<(String, String), (Decimal, Decimal)> = BTreeMap::new();
    for p in postings_of(&event.body) {
        let amount = dec(&p.amount.amount);
        let c = currency(&p.amount.currency);
        assert!(amount > Decimal::ZERO, "{event:?}: a posting of {amount}");
        assert_eq!(
            amount.scale(),
            c.exponent(),
            "posting amount {:?} is not canonical in {}",
            p.amount.amount,
            c
        );
        assert_ne!(p.debit_account, p.credit_account, "{event:?}");
        let s = sides
            .entry((p.amount.currency.clone(), format!("{:?}", p.phase)))
            .or_default();
        s.0 += amount;
        s.1 += amount;
    }
    for ((cur, phase), (debits, credits)) in sides {
        assert_eq!(debits, credits, "{cur} {phase}");
    }
}

// ---- a ledger for one merchant, driven like the service drives it ---------------------------

/// A command or a gateway result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Command(PaymentCommand),
    Result(GatewayResult),
}

impl From<PaymentCommand> for Input {
    fn from(c: PaymentCommand) -> Self {
        Input::Command(c)
    }
}

impl From<GatewayResult> for Input {
    fn from(r: GatewayResult) -> Self {
        Input::Result(r)
    }
}

impl From<&PaymentCommand> for Input {
    fn from(c: &PaymentCommand) -> Self {
        Input::Command(c.clone())
    }
}

impl From<&GatewayResult> for Input {
    fn from(r: &GatewayResult) -> Self {
        Input::Result(r.clone())
    }
}

/// One merchant's state and event log. Every input is decided at `now`, every event is
/// evolved into the state, and after every step the books are checked (double entry per
/// currency, the fold of all postings equals the balances in the state, nothing negative).
pub struct Ledger {
    pub merchant: String,
    pub state: MerchantState,
    pub log: Vec<PaymentEvent>,
    pub now: DateTime<Utc>,
    next: u128,
}

impl Ledger {
    pub fn new(merchant: &str) -> Self {
        Ledger {
            merchant: merchant.into(),
            state: MerchantState::default(),
            log: Vec::new(),
            now: t0(),
            next: 0,
        }
    }

    fn fresh(&mut self) -> Uuid {
        self.next += 1;
        Uuid::from_u128(0xC0DE_0000_0000 + self.next)
    }

    /// A command with a fresh command id and key.
    pub fn cmd(&mut self, body: CommandBody) -> PaymentCommand {
        let key = format!("key-{}", self.next + 1);
        self.cmd_keyed(&key, body)
    }

    pub fn cmd_keyed(&mut self, key: &str, body: CommandBody) -> PaymentCommand {
        PaymentCommand {
            command_id: self.fresh(),
            idempotency_key: key.into(),
            merchant_id: self.merchant.clone(),
            issued_at: self.now,
            body,
        }
    }

    /// A gateway result with a fresh result id.
    pub fn res(&mut self, payment_id: Uuid, processor: &str, body: ResultBody) -> GatewayResult {
        GatewayResult {
            result_id: self.fresh(),
            merchant_id: self.merchant.clone(),
            payment_id,
            processor: processor.into(),
            occurred_at: self.now,
            body,
        }
    }

    /// Decides `input` now, applies what it emits, checks the books.
    pub fn send(&mut self, input: impl Into<Input>) -> Decision {
        let decision = match input.into() {
            Input::Command(c) => decide(Some(&self.state), &c, self.now),
            Input::Result(r) => decide_result(Some(&self.state), &r, self.now),
        };
        self.apply(decision.clone().into_events());
        decision
    }

    /// Runs the expiry now and applies what it emits.
    pub fn expire(&mut self) -> Vec<PaymentEvent> {
        let events = expire(&self.state, &self.merchant, self.now);
        self.apply(events.clone());
        events
    }

    pub fn apply(&mut self, events: Vec<PaymentEvent>) {
        for e in events {
            assert_eq!(e.merchant_id, self.merchant);
            assert_eq!(e.merchant_sequence, self.state.sequence + 1);
            assert_event_balances(&e);
            evolve(&mut self.state, &e).unwrap_or_else(|err| panic!("{err}: {e:?}"));
            self.log.push(e);
        }
        self.check_books();
    }

    /// The books in the state equal the fold of every posting ever emitted, and are sound.
    pub fn check_books(&self) {
        let mut folded = Books::default();
        for e in &self.log {
            folded.post_event(e);
        }
        let in_state = Books::of_state(&self.state, &self.merchant);
        assert_eq!(
            in_state, folded,
            "balances in the state != fold of the postings"
        );
        in_state.assert_sound(&self.merchant);
    }

    /// Sends `input`, expects one accepted event and returns it.
    pub fn accept(&mut self, input: impl Into<Input>) -> PaymentEvent {
        match self.send(input) {
            Decision::Accept(mut events) => {
                assert_eq!(events.len(), 1, "{events:?}");
                events.pop().unwrap()
            }
            other => panic!("expected an accepted event, got {other:?}"),
        }
    }

    /// Sends `input`, expects a rejection with `code`, and checks that no money moved and no
    /// payment or payout changed (only the sequence and, when the rejection binds it, the key).
    pub fn reject(&mut self, input: impl Into<Input>, code: &str) -> PaymentEvent {
        let before = self.state.clone();
        let decision = self.send(input);
        assert_eq!(rejection_code(&decision), code, "{decision:?}");
        assert_eq!(
            self.state.balances, before.balances,
            "a rejection moved money"
        );
        assert_eq!(
            self.state.payments, before.payments,
            "a rejection changed a payment"
        );
        assert_eq!(
            self.state.payouts, before.payouts,
            "a rejection made a payout"
        );
        assert_eq!(self.state.sequence, before.sequence + 1);
        let Decision::Reject(event) = decision else {
            unreachable!()
        };
        assert!(postings_of(&event.body).is_empty());
        *event
    }

    /// Sends `input` and expects nothing to be written (`Duplicate` or `NoChange`).
    pub fn nothing(&mut self, input: impl Into<Input>, expected: Decision) {
        let before = self.state.clone();
        let decision = self.send(input);
        assert_eq!(decision, expected);
        assert_eq!(self.state, before);
    }

    /// One account's figures by its spec name, e.g. `merchant:m:payable`, as decimals
    /// `(debits_pending, debits_posted, credits_pending, credits_posted)`.
    pub fn balance(&self, account: &str, cur: &str) -> (Decimal, Decimal, Decimal, Decimal) {
        let account =
            Account::parse(account, &self.merchant).unwrap_or_else(|e| panic!("{account}: {e}"));
        let b = self.state.balances.get(&account, currency(cur));
        (
            b.debits_pending,
            b.debits_posted,
            b.credits_pending,
            b.credits_posted,
        )
    }

    /// Asserts one account's figures, given as strings.
    pub fn assert_balance(&self, account: &str, cur: &str, expected: [&str; 4]) {
        let got = self.balance(account, cur);
        let want = (
            dec(expected[0]),
            dec(expected[1]),
            dec(expected[2]),
            dec(expected[3]),
        );
        assert_eq!(
            got, want,
            "{account} {cur} (debits pending, debits posted, credits pending, credits posted)"
        );
    }
}

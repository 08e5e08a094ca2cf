//! Exact-amount unit tests of the payment lifecycle through the pure core: `decide` /
//! `decide_result` / `expire`, each emitted event evolved into the state. Every step checks
//! the exact event amounts (as strings), the exact postings, the resulting balances and the
//! payment's fields; the `Ledger` harness checks double entry (per currency, pending and
//! posted) and that the balances equal a fold of every posting emitted, after every step.
//!
//! Currencies: GBP (2 decimals), JPY (0), BHD (3).

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use ledger::decide::{Decision, expire, result_key};
use ledger::lifecycle::{DEFAULT_AUTHORIZATION_VALIDITY, payout_available};
use ledger::processor::Processor;
use ledger::state::{AuthorizationStatus, DisputeStatus, Payment};
use rust_decimal::Decimal;
use schemas::{
    AuthorizationOutcome as Outcome, AuthorizationResult, CommandBody, DisputeOutcome, EventBody,
    PostingPhase::{Pending, PostPending, Posted, VoidPending},
    ResultBody, ResultSource, VoidReason,
};
use uuid::Uuid;

const M: &str = "m-1";
const PAYABLE: &str = "merchant:m-1:payable";
const DISPUTES: &str = "merchant:m-1:disputes";
const STRIPE: &str = "processor:stripe:clearing";
const SQUARE: &str = "processor:square:clearing";
const ASIAPAY: &str = "processor:asiapay:clearing";
const FEES: &str = "platform:fees";
const ZERO: [&str; 4] = ["0", "0", "0", "0"];

/// The body of an event of the given kind, or a panic.
macro_rules! body {
    ($event:expr, $variant:ident) => {
        match &$event.body {
            EventBody::$variant(b) => b.clone(),
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

fn pid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn payment(l: &Ledger, id: Uuid) -> &Payment {
    l.state.payments.get(&id).expect("payment in state")
}

/// `held, captured, released, refunded, settled` of a payment, exactly; and, once approved,
/// `captured + released + held == amount`.
fn assert_amounts(l: &Ledger, id: Uuid, expected: [&str; 5]) {
    let p = payment(l, id);
    assert_eq!(
        [p.held, p.captured, p.released, p.refunded, p.settled],
        expected.map(dec),
        "held, captured, released, refunded, settled of {id}"
    );
    if p.authorization == AuthorizationStatus::Approved {
        assert_eq!(p.captured + p.released + p.held, p.amount);
    }
}

fn authorize_ok(l: &mut Ledger, id: Uuid, amount: &str, cur: &str, processor: &str) {
    let cmd = l.cmd(authorize(id, amount, cur, processor));
    l.accept(cmd);
}

fn result_ok(l: &mut Ledger, id: Uuid, processor: &str, body: ResultBody) -> schemas::PaymentEvent {
    let r = l.res(id, processor, body);
    l.accept(r)
}

/// An authorized and approved payment.
fn approved_payment(
    l: &mut Ledger,
    id: Uuid,
    amount: &str,
    cur: &str,
    processor: &str,
    expires_at: Option<DateTime<Utc>>,
) {
    authorize_ok(l, id, amount, cur, processor);
    result_ok(
        l,
        id,
        processor,
        authorization(Outcome::Approved, expires_at),
    );
}

/// An approved payment captured in full.
fn captured_payment(l: &mut Ledger, id: Uuid, amount: &str, cur: &str, processor: &str) {
    approved_payment(l, id, amount, cur, processor, None);
    let cmd = l.cmd(capture(id, amount, cur));
    l.accept(cmd);
}

fn reject_cmd(l: &mut Ledger, body: CommandBody, code: &str) {
    let cmd = l.cmd(body);
    l.reject(cmd, code);
}

fn reject_result(l: &mut Ledger, id: Uuid, processor: &str, body: ResultBody, code: &str) {
    let r = l.res(id, processor, body);
    l.reject(r, code);
}

fn authorization_with(outcome: Outcome, code: Option<&str>) -> ResultBody {
    ResultBody::Authorization(AuthorizationResult {
        outcome,
        source: ResultSource::StatusInquiry,
        processor_reference: None,
        code: code.map(str::to_owned),
        detail: "status inquiry".into(),
        expires_at: None,
    })
}

// ---- authorization requests ------------------------------------------------------------------

#[test]
fn authorize_scales_the_amount_to_the_currency_and_moves_no_money() {
    let mut l = Ledger::new(M);
    let cases = [
        ("10.5", "GBP", "10.50"),
        ("100.00", "GBP", "100.00"),
        ("7", "BHD", "7.000"),
        ("12.345", "BHD", "12.345"),
        ("1000", "JPY", "1000"),
        ("0.01", "GBP", "0.01"),
        ("0.001", "BHD", "0.001"),
    ];
    for (n, (amount, cur, canonical)) in cases.into_iter().enumerate() {
        let id = pid(n as u128 + 1);
        let cmd = l.cmd(authorize(id, amount, cur, "stripe"));
        let e = l.accept(&cmd);
        assert_eq!(e.merchant_sequence, n as i64 + 1);
        assert_eq!(e.payment_id, Some(id));
        assert_eq!(e.command_id, cmd.command_id);
        assert_eq!(e.idempotency_key, cmd.idempotency_key);
        assert_eq!(e.occurred_at, l.now);
        let b = body!(e, PaymentAuthorizationRequested);
        assert_eq!(b.payment_id, id);
        assert_eq!(b.amount, wire(canonical, cur), "{amount} {cur}");
        assert_eq!(b.processor, "stripe");
        assert_eq!(b.payment_token, "tok_visa");

        let p = payment(&l, id);
        assert_eq!(p.amount, dec(canonical));
        assert_eq!(p.amount.to_string(), canonical);
        assert_eq!(p.currency, currency(cur));
        assert_eq!(p.processor, Processor::Stripe);
        assert_eq!(p.authorization, AuthorizationStatus::Requested);
        assert_eq!(p.expires_at, None);
        assert!(p.settlements.is_empty() && p.disputes.is_empty());
        assert_amounts(&l, id, ["0", "0", "0", "0", "0"]);
    }
    assert_eq!(
        l.state.balances.iter().count(),
        0,
        "a request moves no money"
    );
}

#[test]
fn invalid_authorizations_are_rejected_with_their_reason_and_move_no_money() {
    let mut l = Ledger::new(M);
    let cases = [
        ("10.505", "GBP", "stripe", "tok_visa", "amount_precision"),
        ("10.001", "GBP", "stripe", "tok_visa", "amount_precision"),
        ("1.5", "JPY", "stripe", "tok_visa", "amount_precision"),
        ("1.2345", "BHD", "stripe", "tok_visa", "amount_precision"),
        ("0", "GBP", "stripe", "tok_visa", "amount_not_positive"),
        ("0.000", "BHD", "stripe", "tok_visa", "amount_not_positive"),
        ("0", "JPY", "stripe", "tok_visa", "amount_not_positive"),
        ("10.00", "XXX", "stripe", "tok_visa", "unsupported_currency"),
        ("10.00", "gbp", "stripe", "tok_visa", "unsupported_currency"),
        ("10.00", "GBP", "paypal", "tok_visa", "unknown_processor"),
        ("10.00", "GBP", "Stripe", "tok_visa", "unknown_processor"),
        (
            "10.00",
            "GBP",
            "stripe",
            "4242424242424242",
            "card_number_rejected",
        ),
        (
            "10.00",
            "GBP",
            "stripe",
            "4242 4242 4242 4242",
            "card_number_rejected",
        ),
    ];
    for (n, (amount, cur, processor, token, code)) in cases.into_iter().enumerate() {
        let mut body = authorize(pid(n as u128 + 1), amount, cur, processor);
        if let CommandBody::AuthorizePayment(a) = &mut body {
            a.payment_token = token.into();
        }
        let cmd = l.cmd(body);
        let rejected = l.reject(cmd, code);
        assert!(
            !format!("{rejected:?}").contains("4242"),
            "no card data in {rejected:?}"
        );
        assert_eq!(rejected.payment_id, Some(pid(n as u128 + 1)));
    }
    assert!(l.state.payments.is_empty());

    // Every processor of the closed set is accepted.
    for (n, processor) in ledger::PROCESSORS.iter().enumerate() {
        authorize_ok(&mut l, pid(100 + n as u128), "1.00", "GBP", processor);
    }

    // A payment id is authorized once, whatever the amount.
    authorize_ok(&mut l, pid(200), "5.00", "GBP", "stripe");
    reject_cmd(
        &mut l,
        authorize(pid(200), "5.00", "GBP", "stripe"),
        "duplicate_payment",
    );
    reject_cmd(
        &mut l,
        authorize(pid(200), "6", "JPY", "square"),
        "duplicate_payment",
    );
    assert_eq!(payment(&l, pid(200)).amount, dec("5.00"));
    assert_eq!(l.state.balances.iter().count(), 0);
}

// ---- GBP: approve, partial captures until the hold is used up ---------------------------------

#[test]
fn gbp_partial_captures_use_up_the_hold_to_the_penny() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "100.00", "GBP", "stripe");

    let approved = result_ok(&mut l, id, "stripe", authorization(Outcome::Approved, None));
    let b = body!(approved, PaymentAuthorized);
    assert_eq!(b.amount, wire("100.00", "GBP"));
    assert_eq!(b.expires_at, l.now + DEFAULT_AUTHORIZATION_VALIDITY);
    assert_eq!(b.expires_at, l.now + Duration::days(7));
    assert_eq!(b.processor_reference.as_deref(), Some("ref-1"));
    assert_eq!(
        b.postings,
        vec![posting(STRIPE, PAYABLE, "100.00", "GBP", Pending)]
    );
    assert_eq!(payment(&l, id).authorization, AuthorizationStatus::Approved);
    assert_eq!(payment(&l, id).expires_at, Some(l.now + Duration::days(7)));
    assert_amounts(&l, id, ["100.00", "0", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["100.00", "0", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "100.00", "0"]);

    let cmd = l.cmd(capture(id, "30.25", "GBP"));
    let e = l.accept(cmd);
    let b = body!(e, PaymentCaptured);
    assert_eq!(b.amount, wire("30.25", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(STRIPE, PAYABLE, "30.25", "GBP", PostPending)]
    );
    assert_amounts(&l, id, ["69.75", "30.25", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["69.75", "30.25", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "69.75", "30.25"]);

    // "69.7500" is the same amount: accepted and written canonically.
    let cmd = l.cmd(capture(id, "69.7500", "GBP"));
    let e = l.accept(cmd);
    let b = body!(e, PaymentCaptured);
    assert_eq!(b.amount, wire("69.75", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(STRIPE, PAYABLE, "69.75", "GBP", PostPending)]
    );
    assert_amounts(&l, id, ["0", "100.00", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["0", "100.00", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "0", "100.00"]);

    reject_cmd(
        &mut l,
        capture(id, "0.01", "GBP"),
        "capture_exceeds_authorization",
    );
    reject_cmd(&mut l, void(id), "nothing_to_void");
    assert_eq!(payment(&l, id).status_label(), "captured");
}

// ---- JPY: partial capture, then a void releases the rest ------------------------------------

#[test]
fn jpy_capture_then_void_releases_exactly_the_rest() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    let expires = l.now + hours(2);
    approved_payment(&mut l, id, "1500", "JPY", "square", Some(expires));
    assert_eq!(payment(&l, id).expires_at, Some(expires));
    l.assert_balance(SQUARE, "JPY", ["1500", "0", "0", "0"]);
    l.assert_balance(PAYABLE, "JPY", ["0", "0", "1500", "0"]);

    reject_cmd(&mut l, capture(id, "1000.5", "JPY"), "amount_precision");
    reject_cmd(
        &mut l,
        capture(id, "1501", "JPY"),
        "capture_exceeds_authorization",
    );

    let cmd = l.cmd(capture(id, "1000", "JPY"));
    let b = body!(l.accept(cmd), PaymentCaptured);
    assert_eq!(b.amount, wire("1000", "JPY"));
    assert_eq!(
        b.postings,
        vec![posting(SQUARE, PAYABLE, "1000", "JPY", PostPending)]
    );
    assert_amounts(&l, id, ["500", "1000", "0", "0", "0"]);

    let cmd = l.cmd(void(id));
    let e = l.accept(cmd);
    assert_eq!(e.payment_id, Some(id));
    let b = body!(e, PaymentVoided);
    assert_eq!(b.released, wire("500", "JPY"));
    assert_eq!(b.reason, VoidReason::Requested);
    assert_eq!(
        b.postings,
        vec![posting(SQUARE, PAYABLE, "500", "JPY", VoidPending)]
    );
    assert_amounts(&l, id, ["0", "1000", "500", "0", "0"]);
    l.assert_balance(SQUARE, "JPY", ["0", "1000", "0", "0"]);
    l.assert_balance(PAYABLE, "JPY", ["0", "0", "0", "1000"]);

    reject_cmd(&mut l, void(id), "nothing_to_void");
    reject_cmd(
        &mut l,
        capture(id, "1", "JPY"),
        "capture_exceeds_authorization",
    );
    // Nothing is held any more: the expiry has nothing to release.
    l.now = expires + hours(1);
    assert!(l.expire().is_empty());
}

// ---- BHD: capture, refund, settlement with a fee, a lost dispute, a payout ---------------------

#[test]
fn bhd_capture_refund_settle_dispute_and_payout_to_the_fils() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    let cash = "cash:nbb-bhd";
    approved_payment(&mut l, id, "12.345", "BHD", "asiapay", None);
    l.assert_balance(ASIAPAY, "BHD", ["12.345", "0", "0", "0"]);

    let cmd = l.cmd(capture(id, "12.345", "BHD"));
    let b = body!(l.accept(cmd), PaymentCaptured);
    assert_eq!(b.amount, wire("12.345", "BHD"));
    assert_eq!(
        b.postings,
        vec![posting(ASIAPAY, PAYABLE, "12.345", "BHD", PostPending)]
    );
    l.assert_balance(ASIAPAY, "BHD", ["0", "12.345", "0", "0"]);
    l.assert_balance(PAYABLE, "BHD", ["0", "0", "0", "12.345"]);

    // Refund five fils.
    let cmd = l.cmd(refund(id, "0.005", "BHD"));
    let e = l.accept(cmd);
    let b = body!(e, PaymentRefunded);
    assert_eq!(b.amount, wire("0.005", "BHD"));
    assert_eq!(
        b.postings,
        vec![posting(PAYABLE, ASIAPAY, "0.005", "BHD", Posted)]
    );
    assert_amounts(&l, id, ["0", "12.345", "0", "0.005", "0"]);
    l.assert_balance(PAYABLE, "BHD", ["0", "0.005", "0", "12.345"]);
    l.assert_balance(ASIAPAY, "BHD", ["0", "12.345", "0", "0.005"]);

    // 12.340 is left to refund: one fil more is refused.
    reject_cmd(
        &mut l,
        refund(id, "12.341", "BHD"),
        "refund_exceeds_captured",
    );
    reject_cmd(&mut l, refund(id, "0.0001", "BHD"), "amount_precision");

    // Settlement of the rest, with a fee written as "0.25".
    let e = result_ok(
        &mut l,
        id,
        "asiapay",
        settlement("s-1", "12.340", "0.25", "BHD", "nbb-bhd"),
    );
    let b = body!(e, PaymentSettled);
    assert_eq!(b.settlement_id, "s-1");
    assert_eq!(b.amount, wire("12.340", "BHD"));
    assert_eq!(b.fee, wire("0.250", "BHD"));
    assert_eq!(b.bank_account, "nbb-bhd");
    assert_eq!(
        b.postings,
        vec![
            posting(cash, ASIAPAY, "12.090", "BHD", Posted),
            posting(FEES, ASIAPAY, "0.250", "BHD", Posted),
        ]
    );
    assert_amounts(&l, id, ["0", "12.345", "0", "0.005", "12.340"]);
    assert_eq!(payment(&l, id).settlements, vec!["s-1".to_owned()]);
    l.assert_balance(ASIAPAY, "BHD", ["0", "12.345", "0", "12.345"]);
    l.assert_balance(cash, "BHD", ["0", "12.090", "0", "0"]);
    l.assert_balance(FEES, "BHD", ["0", "0.250", "0", "0"]);
    reject_result(
        &mut l,
        id,
        "asiapay",
        settlement("s-2", "0.001", "0", "BHD", "nbb-bhd"),
        "settlement_exceeds_captured",
    );

    // A dispute of 2.000 opens: the payout limit drops by it.
    assert_eq!(payout_available(&l.state, currency("BHD")), dec("12.340"));
    let e = result_ok(&mut l, id, "asiapay", dispute_opened("d-1", "2", "BHD"));
    let b = body!(e, DisputeOpened);
    assert_eq!(b.dispute_id, "d-1");
    assert_eq!(b.amount, wire("2.000", "BHD"));
    assert_eq!(
        b.postings,
        vec![posting(DISPUTES, ASIAPAY, "2.000", "BHD", Pending)]
    );
    l.assert_balance(DISPUTES, "BHD", ["2.000", "0", "0", "0"]);
    l.assert_balance(ASIAPAY, "BHD", ["0", "12.345", "2.000", "12.345"]);
    assert_eq!(payout_available(&l.state, currency("BHD")), dec("10.340"));
    assert_eq!(payment(&l, id).refundable(), dec("10.340"));

    reject_result(
        &mut l,
        id,
        "asiapay",
        dispute_opened("d-1", "1.000", "BHD"),
        "duplicate_dispute",
    );
    reject_result(
        &mut l,
        id,
        "asiapay",
        dispute_opened("d-2", "10.341", "BHD"),
        "dispute_exceeds_captured",
    );

    // Lost: the pending dispute posts.
    let e = result_ok(
        &mut l,
        id,
        "asiapay",
        dispute_closed("d-1", DisputeOutcome::Lost),
    );
    let b = body!(e, DisputeClosed);
    assert_eq!(b.outcome, DisputeOutcome::Lost);
    assert_eq!(b.amount, wire("2.000", "BHD"));
    assert_eq!(
        b.postings,
        vec![posting(DISPUTES, ASIAPAY, "2.000", "BHD", PostPending)]
    );
    l.assert_balance(DISPUTES, "BHD", ["0", "2.000", "0", "0"]);
    l.assert_balance(ASIAPAY, "BHD", ["0", "12.345", "0", "14.345"]);
    assert_eq!(payment(&l, id).disputes[0].status, DisputeStatus::Lost);
    assert_eq!(payout_available(&l.state, currency("BHD")), dec("10.340"));
    reject_result(
        &mut l,
        id,
        "asiapay",
        dispute_closed("d-1", DisputeOutcome::Won),
        "dispute_not_open",
    );

    // Payout against what is available: one fil more is refused, the exact amount is paid.
    let p1 = pid(9001);
    reject_cmd(
        &mut l,
        payout(p1, "10.341", "BHD", "nbb-bhd"),
        "insufficient_merchant_balance",
    );
    let cmd = l.cmd(payout(p1, "10.34", "BHD", "nbb-bhd"));
    let e = l.accept(cmd);
    assert_eq!(e.payment_id, None);
    let b = body!(e, PayoutSent);
    assert_eq!(b.payout_id, p1);
    assert_eq!(b.amount, wire("10.340", "BHD"));
    assert_eq!(b.bank_account, "nbb-bhd");
    assert_eq!(
        b.postings,
        vec![posting(PAYABLE, cash, "10.340", "BHD", Posted)]
    );
    l.assert_balance(PAYABLE, "BHD", ["0", "10.345", "0", "12.345"]);
    l.assert_balance(cash, "BHD", ["0", "12.090", "0", "10.340"]);
    assert!(l.state.payouts.contains(&p1));
    assert_eq!(payout_available(&l.state, currency("BHD")), dec("0"));
    reject_cmd(
        &mut l,
        payout(pid(9002), "0.001", "BHD", "nbb-bhd"),
        "insufficient_merchant_balance",
    );

    // 10.340 is still refundable, but the payable balance holds only 2.000.
    reject_cmd(
        &mut l,
        refund(id, "2.001", "BHD"),
        "insufficient_merchant_balance",
    );
    assert_amounts(&l, id, ["0", "12.345", "0", "0.005", "12.340"]);
}

// ---- authorization outcomes ------------------------------------------------------------------

#[test]
fn an_unknown_outcome_is_resolved_only_by_a_definitive_result() {
    let mut l = Ledger::new(M);
    let (approve_later, decline_later, fail_later) = (pid(1), pid(2), pid(3));
    for id in [approve_later, decline_later, fail_later] {
        authorize_ok(&mut l, id, "50.00", "GBP", "stripe");
        let e = result_ok(
            &mut l,
            id,
            "stripe",
            authorization_with(Outcome::Unknown, None),
        );
        assert_eq!(body!(e, PaymentAuthorizationUnknown).payment_id, id);
        assert_eq!(payment(&l, id).authorization, AuthorizationStatus::Unknown);
    }
    assert_eq!(l.state.balances.iter().count(), 0);

    // Nothing resolves it by itself: no expiry, no timeout, however long.
    for later in [hours(1), Duration::days(8), Duration::days(400)] {
        l.now = t0() + later;
        assert!(l.expire().is_empty());
        assert!(expire(&l.state, M, l.now).is_empty());
    }
    // A second "unknown" changes nothing; the payment cannot be captured or voided meanwhile.
    let r = l.res(
        approve_later,
        "stripe",
        authorization_with(Outcome::Unknown, None),
    );
    l.nothing(r, Decision::NoChange);
    reject_cmd(
        &mut l,
        capture(approve_later, "1.00", "GBP"),
        "payment_not_authorized",
    );
    reject_cmd(&mut l, void(approve_later), "payment_not_authorized");
    reject_cmd(
        &mut l,
        refund(approve_later, "1.00", "GBP"),
        "payment_not_authorized",
    );
    for id in [approve_later, decline_later, fail_later] {
        assert_eq!(payment(&l, id).authorization, AuthorizationStatus::Unknown);
    }

    // A status inquiry finds it approved: the hold is placed now, for 7 days from now.
    let e = result_ok(
        &mut l,
        approve_later,
        "stripe",
        authorization_with(Outcome::Approved, None),
    );
    let b = body!(e, PaymentAuthorized);
    assert_eq!(b.amount, wire("50.00", "GBP"));
    assert_eq!(b.expires_at, l.now + Duration::days(7));
    assert_eq!(b.processor_reference, None);
    assert_eq!(
        b.postings,
        vec![posting(STRIPE, PAYABLE, "50.00", "GBP", Pending)]
    );
    assert_amounts(&l, approve_later, ["50.00", "0", "0", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "50.00", "0"]);

    let e = result_ok(
        &mut l,
        decline_later,
        "stripe",
        authorization_with(Outcome::Declined, Some("do_not_honor")),
    );
    assert_eq!(body!(e, PaymentDeclined).decline_code, "do_not_honor");
    assert_eq!(
        payment(&l, decline_later).authorization,
        AuthorizationStatus::Declined
    );
    let e = result_ok(
        &mut l,
        fail_later,
        "stripe",
        authorization_with(Outcome::Failed, Some("gateway_error")),
    );
    assert_eq!(
        body!(e, PaymentAuthorizationFailed).error_code,
        "gateway_error"
    );
    assert_eq!(
        payment(&l, fail_later).authorization,
        AuthorizationStatus::Failed
    );
    assert_eq!(
        l.state.balances.iter().count(),
        2,
        "only the approval moved money"
    );
}

#[test]
fn repeated_outcomes_change_nothing_and_contradicting_ones_are_refused() {
    let mut l = Ledger::new(M);
    let (approved, declined, failed) = (pid(1), pid(2), pid(3));
    approved_payment(&mut l, approved, "20.00", "GBP", "stripe", None);
    authorize_ok(&mut l, declined, "20.00", "GBP", "stripe");
    let e = result_ok(
        &mut l,
        declined,
        "stripe",
        authorization_with(Outcome::Declined, None),
    );
    assert_eq!(body!(e, PaymentDeclined).payment_id, declined);
    authorize_ok(&mut l, failed, "20.00", "GBP", "stripe");
    let e = result_ok(
        &mut l,
        failed,
        "stripe",
        authorization_with(Outcome::Failed, None),
    );
    assert_eq!(body!(e, PaymentAuthorizationFailed).payment_id, failed);

    // The same outcome again (a new report): nothing changes.
    for (id, outcome) in [
        (approved, Outcome::Approved),
        (declined, Outcome::Declined),
        (failed, Outcome::Failed),
    ] {
        let r = l.res(id, "stripe", authorization(outcome, Some(t0() + hours(99))));
        l.nothing(r, Decision::NoChange);
    }
    // A contradicting definitive outcome is refused.
    for (id, outcome) in [
        (approved, Outcome::Declined),
        (approved, Outcome::Failed),
        (declined, Outcome::Approved),
        (declined, Outcome::Failed),
        (failed, Outcome::Approved),
        (failed, Outcome::Declined),
    ] {
        reject_result(
            &mut l,
            id,
            "stripe",
            authorization(outcome, None),
            "conflicting_result",
        );
    }
    assert_amounts(&l, approved, ["20.00", "0", "0", "0", "0"]);
    for id in [declined, failed] {
        reject_cmd(&mut l, capture(id, "1.00", "GBP"), "payment_not_authorized");
        reject_cmd(&mut l, void(id), "payment_not_authorized");
        reject_result(
            &mut l,
            id,
            "stripe",
            settlement("s-1", "1.00", "0", "GBP", "bank-1"),
            "payment_not_authorized",
        );
        reject_result(
            &mut l,
            id,
            "stripe",
            dispute_opened("d-1", "1.00", "GBP"),
            "payment_not_authorized",
        );
    }
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "20.00", "0"]);
}

#[test]
fn results_for_a_missing_payment_or_another_processor_are_refused() {
    let mut l = Ledger::new(M);
    let missing = pid(404);
    reject_result(
        &mut l,
        missing,
        "stripe",
        authorization(Outcome::Approved, None),
        "payment_not_found",
    );
    reject_result(
        &mut l,
        missing,
        "stripe",
        settlement("s-1", "1.00", "0", "GBP", "bank-1"),
        "payment_not_found",
    );
    reject_result(
        &mut l,
        missing,
        "stripe",
        dispute_opened("d-1", "1.00", "GBP"),
        "payment_not_found",
    );
    reject_result(
        &mut l,
        missing,
        "stripe",
        dispute_closed("d-1", DisputeOutcome::Won),
        "payment_not_found",
    );
    for body in [
        capture(missing, "1.00", "GBP"),
        void(missing),
        refund(missing, "1.00", "GBP"),
    ] {
        reject_cmd(&mut l, body, "payment_not_found");
    }

    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    for other in ["square", "paypal", "STRIPE"] {
        reject_result(
            &mut l,
            id,
            other,
            authorization(Outcome::Approved, None),
            "processor_mismatch",
        );
    }
    assert_eq!(
        payment(&l, id).authorization,
        AuthorizationStatus::Requested
    );
    result_ok(&mut l, id, "stripe", authorization(Outcome::Approved, None));
    let cmd = l.cmd(capture(id, "10.00", "GBP"));
    l.accept(cmd);
    reject_result(
        &mut l,
        id,
        "square",
        settlement("s-1", "10.00", "0", "GBP", "bank-1"),
        "processor_mismatch",
    );
    reject_result(
        &mut l,
        id,
        "square",
        dispute_opened("d-1", "1.00", "GBP"),
        "processor_mismatch",
    );
    assert_amounts(&l, id, ["0", "10.00", "0", "0", "0"]);
}

// ---- captures --------------------------------------------------------------------------------

#[test]
fn capture_rejections() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    reject_cmd(
        &mut l,
        capture(id, "10.00", "GBP"),
        "payment_not_authorized",
    );
    let expires = l.now + hours(1);
    result_ok(
        &mut l,
        id,
        "stripe",
        authorization(Outcome::Approved, Some(expires)),
    );

    reject_cmd(&mut l, capture(id, "10", "JPY"), "currency_mismatch");
    reject_cmd(&mut l, capture(id, "10.000", "BHD"), "currency_mismatch");
    reject_cmd(&mut l, capture(id, "1.001", "GBP"), "amount_precision");
    reject_cmd(&mut l, capture(id, "0.00", "GBP"), "amount_not_positive");
    reject_cmd(
        &mut l,
        capture(id, "10.01", "GBP"),
        "capture_exceeds_authorization",
    );
    reject_cmd(&mut l, capture(pid(2), "1.00", "GBP"), "payment_not_found");

    // One millisecond before the hold expires a capture still goes through ...
    l.now = expires - Duration::milliseconds(1);
    let cmd = l.cmd(capture(id, "4.00", "GBP"));
    l.accept(cmd);
    assert_amounts(&l, id, ["6.00", "4.00", "0", "0", "0"]);
    // ... at and after the expiry it does not, even before the expiry run released the hold.
    for at in [expires, expires + hours(24)] {
        l.now = at;
        reject_cmd(&mut l, capture(id, "1.00", "GBP"), "authorization_expired");
    }
    assert_amounts(&l, id, ["6.00", "4.00", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["6.00", "4.00", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "6.00", "4.00"]);
}

// ---- expiry ----------------------------------------------------------------------------------

#[test]
fn expiry_releases_each_expired_hold_once_and_deterministically() {
    let mut l = Ledger::new(M);
    let one_hour = t0() + hours(1);
    let (p1, p2, p3, p4, p5) = (pid(1), pid(2), pid(3), pid(4), pid(5));
    approved_payment(&mut l, p1, "10.00", "GBP", "stripe", Some(one_hour));
    approved_payment(&mut l, p2, "20.00", "GBP", "stripe", Some(t0() + hours(2)));
    approved_payment(&mut l, p3, "3000", "JPY", "square", None);
    // Fully captured: nothing held, nothing to expire.
    approved_payment(&mut l, p4, "5.00", "GBP", "stripe", Some(one_hour));
    let cmd = l.cmd(capture(p4, "5.00", "GBP"));
    l.accept(cmd);
    // Partly captured: the rest expires.
    approved_payment(&mut l, p5, "8.000", "BHD", "asiapay", Some(one_hour));
    let cmd = l.cmd(capture(p5, "3.125", "BHD"));
    l.accept(cmd);
    // Only requested, never approved: no hold.
    authorize_ok(&mut l, pid(6), "9.00", "GBP", "stripe");

    l.now = one_hour - Duration::milliseconds(1);
    assert!(l.expire().is_empty(), "nothing is due before expires_at");

    l.now = one_hour;
    let first = expire(&l.state, M, l.now);
    let again = expire(&l.state, M, l.now);
    assert_eq!(
        first, again,
        "deciding the expiry twice gives identical events"
    );
    let sequence = l.state.sequence;
    let events = l.expire();
    assert_eq!(events, first);
    assert_eq!(events.len(), 2);
    for (i, (e, (id, released, cur, account))) in events
        .iter()
        .zip([(p1, "10.00", "GBP", STRIPE), (p5, "4.875", "BHD", ASIAPAY)])
        .enumerate()
    {
        assert_eq!(e.merchant_sequence, sequence + 1 + i as i64);
        assert_eq!(e.payment_id, Some(id));
        assert_eq!(e.occurred_at, one_hour);
        let b = body!(e, PaymentVoided);
        assert_eq!(b.payment_id, id);
        assert_eq!(b.reason, VoidReason::Expired);
        assert_eq!(b.released, wire(released, cur));
        assert_eq!(
            b.postings,
            vec![posting(account, PAYABLE, released, cur, VoidPending)]
        );
    }
    assert_ne!(events[0].event_id, events[1].event_id);
    assert_amounts(&l, p1, ["0", "0", "10.00", "0", "0"]);
    assert_amounts(&l, p5, ["0", "3.125", "4.875", "0", "0"]);
    assert_amounts(&l, p4, ["0", "5.00", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["20.00", "5.00", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "20.00", "5.00"]);
    l.assert_balance(ASIAPAY, "BHD", ["0", "3.125", "0", "0"]);
    l.assert_balance(PAYABLE, "BHD", ["0", "0", "0", "3.125"]);

    // Applied once, it is not due again.
    assert!(l.expire().is_empty());
    l.now = one_hour + Duration::minutes(30);
    assert!(l.expire().is_empty());
    reject_cmd(&mut l, void(p1), "nothing_to_void");

    l.now = t0() + hours(2);
    let events = l.expire();
    assert_eq!(events.len(), 1);
    assert_eq!(
        body!(events[0], PaymentVoided).released,
        wire("20.00", "GBP")
    );
    l.assert_balance(STRIPE, "GBP", ["0", "5.00", "0", "0"]);

    // The default validity: 7 days after the approval.
    l.now = t0() + Duration::days(7) - Duration::milliseconds(1);
    assert!(l.expire().is_empty());
    l.now = t0() + Duration::days(7);
    let events = l.expire();
    assert_eq!(events.len(), 1);
    let b = body!(events[0], PaymentVoided);
    assert_eq!(b.released, wire("3000", "JPY"));
    assert_eq!(
        b.postings,
        vec![posting(SQUARE, PAYABLE, "3000", "JPY", VoidPending)]
    );
    l.assert_balance(SQUARE, "JPY", ZERO);
    l.assert_balance(PAYABLE, "JPY", ZERO);
    assert!(l.expire().is_empty());
    assert_eq!(
        payment(&l, pid(6)).authorization,
        AuthorizationStatus::Requested
    );
}

#[test]
fn a_capture_after_the_expiry_run_is_refused() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    approved_payment(&mut l, id, "10.00", "GBP", "stripe", Some(t0() + hours(1)));
    l.now = t0() + hours(1);
    assert_eq!(l.expire().len(), 1);
    let cmd = l.cmd(capture(id, "1.00", "GBP"));
    let before = l.state.clone();
    let code = rejection_code(&l.send(cmd));
    // Both rules are broken here (expired, and nothing is held).
    assert!(
        code == "authorization_expired" || code == "capture_exceeds_authorization",
        "{code}"
    );
    assert_eq!(l.state.balances, before.balances);
}

// ---- voids and refunds -----------------------------------------------------------------------

#[test]
fn void_rejections() {
    let mut l = Ledger::new(M);
    reject_cmd(&mut l, void(pid(1)), "payment_not_found");
    authorize_ok(&mut l, pid(1), "10.00", "GBP", "stripe");
    reject_cmd(&mut l, void(pid(1)), "payment_not_authorized");
    captured_payment(&mut l, pid(2), "10.00", "GBP", "stripe");
    reject_cmd(&mut l, void(pid(2)), "nothing_to_void");

    // A full void before any capture releases everything.
    approved_payment(&mut l, pid(3), "7.50", "GBP", "stripe", None);
    let cmd = l.cmd(void(pid(3)));
    let b = body!(l.accept(cmd), PaymentVoided);
    assert_eq!(b.released, wire("7.50", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(STRIPE, PAYABLE, "7.50", "GBP", VoidPending)]
    );
    assert_amounts(&l, pid(3), ["0", "0", "7.50", "0", "0"]);
    assert_eq!(payment(&l, pid(3)).status_label(), "voided");
    reject_cmd(
        &mut l,
        capture(pid(3), "0.01", "GBP"),
        "capture_exceeds_authorization",
    );

    // The smallest remainder is released, to the minor unit.
    for (n, amount, captured, rest, cur, exp_zero) in [
        (4u128, "7.50", "7.49", "0.01", "GBP", "0"),
        (5, "1500", "1499", "1", "JPY", "0"),
        (6, "2.000", "1.999", "0.001", "BHD", "0"),
    ] {
        let mut l = Ledger::new(M);
        approved_payment(&mut l, pid(n), amount, cur, "stripe", None);
        let cmd = l.cmd(capture(pid(n), captured, cur));
        l.accept(cmd);
        let cmd = l.cmd(void(pid(n)));
        let b = body!(l.accept(cmd), PaymentVoided);
        assert_eq!(b.released, wire(rest, cur));
        assert_eq!(
            b.postings,
            vec![posting(STRIPE, PAYABLE, rest, cur, VoidPending)]
        );
        assert_amounts(&l, pid(n), [exp_zero, captured, rest, "0", "0"]);
        l.assert_balance(STRIPE, cur, ["0", captured, "0", "0"]);
    }
    l.assert_balance(STRIPE, "GBP", ["0", "10.00", "0", "0"]);
}

#[test]
fn refunds_are_limited_by_what_was_captured_and_by_the_payable_balance() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    approved_payment(&mut l, id, "40.00", "GBP", "stripe", None);
    reject_cmd(&mut l, refund(id, "0.01", "GBP"), "refund_exceeds_captured");
    let cmd = l.cmd(capture(id, "40.00", "GBP"));
    l.accept(cmd);
    reject_cmd(&mut l, refund(id, "40", "JPY"), "currency_mismatch");
    reject_cmd(&mut l, refund(id, "40.001", "GBP"), "amount_precision");
    reject_cmd(
        &mut l,
        refund(id, "40.01", "GBP"),
        "refund_exceeds_captured",
    );

    // Two partial refunds.
    for (amount, refunded) in [("1.10", "1.10"), ("2.9", "4.00")] {
        let cmd = l.cmd(refund(id, amount, "GBP"));
        let b = body!(l.accept(cmd), PaymentRefunded);
        assert_eq!(b.amount.amount, format!("{:.2}", dec(amount)));
        assert_eq!(
            b.postings,
            vec![posting(PAYABLE, STRIPE, &b.amount.amount, "GBP", Posted)]
        );
        assert_eq!(payment(&l, id).refunded, dec(refunded));
    }
    l.assert_balance(PAYABLE, "GBP", ["0", "4.00", "0", "40.00"]);
    l.assert_balance(STRIPE, "GBP", ["0", "40.00", "0", "4.00"]);

    // A payout leaves 6.00 payable; 36.00 is still refundable but only 6.00 can go back.
    let cmd = l.cmd(payout(pid(900), "30.00", "GBP", "bank-1"));
    l.accept(cmd);
    reject_cmd(
        &mut l,
        refund(id, "6.01", "GBP"),
        "insufficient_merchant_balance",
    );
    let cmd = l.cmd(refund(id, "6.00", "GBP"));
    l.accept(cmd);
    reject_cmd(
        &mut l,
        refund(id, "0.01", "GBP"),
        "insufficient_merchant_balance",
    );
    l.assert_balance(PAYABLE, "GBP", ["0", "40.00", "0", "40.00"]);
    assert_amounts(&l, id, ["0", "40.00", "0", "10.00", "0"]);
    assert_eq!(payment(&l, id).refundable(), dec("30.00"));
}

// ---- settlements -----------------------------------------------------------------------------

#[test]
fn settlements_post_net_and_fee_and_enforce_their_rules() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    let bank64 = "b".repeat(64);
    let cash64 = format!("cash:{bank64}");
    approved_payment(&mut l, id, "100.00", "GBP", "stripe", None);
    let cmd = l.cmd(capture(id, "60.00", "GBP"));
    l.accept(cmd);

    let s =
        |id: &str, amount: &str, fee: &str, bank: &str| settlement(id, amount, fee, "GBP", bank);
    let b65 = "b".repeat(65);
    for bank in ["", "Bank-1", "bank 1", "bank.1", b65.as_str()] {
        reject_result(
            &mut l,
            id,
            "stripe",
            s("s-x", "1.00", "0", bank),
            "invalid_bank_account",
        );
    }
    reject_result(
        &mut l,
        id,
        "stripe",
        s("s-x", "10.00", "10.01", "bank-1"),
        "fee_exceeds_amount",
    );
    reject_result(
        &mut l,
        id,
        "stripe",
        s("s-x", "60.01", "0", "bank-1"),
        "settlement_exceeds_captured",
    );
    reject_result(
        &mut l,
        id,
        "stripe",
        settlement("s-x", "10", "0", "JPY", "bank-1"),
        "currency_mismatch",
    );
    let mut fee_in_jpy = s("s-x", "10.00", "1.00", "bank-1");
    if let ResultBody::Settlement(r) = &mut fee_in_jpy {
        r.fee = wire("1", "JPY");
    }
    reject_result(&mut l, id, "stripe", fee_in_jpy, "currency_mismatch");
    reject_result(
        &mut l,
        id,
        "stripe",
        s("s-x", "10.001", "0", "bank-1"),
        "amount_precision",
    );
    reject_result(
        &mut l,
        id,
        "stripe",
        s("s-x", "10.00", "0.001", "bank-1"),
        "amount_precision",
    );
    l.assert_balance(STRIPE, "GBP", ["40.00", "60.00", "0", "0"]);

    // No fee: only the cash posting; the fee is written as zero in the currency's scale.
    let b = body!(
        result_ok(&mut l, id, "stripe", s("s-1", "20.00", "0", &bank64)),
        PaymentSettled
    );
    assert_eq!(b.fee, wire("0.00", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(&cash64, STRIPE, "20.00", "GBP", Posted)]
    );
    // The fee is the whole amount: only the fee posting.
    let b = body!(
        result_ok(&mut l, id, "stripe", s("s-2", "5", "5.00", "bank-1")),
        PaymentSettled
    );
    assert_eq!(b.amount, wire("5.00", "GBP"));
    assert_eq!(b.fee, wire("5.00", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(FEES, STRIPE, "5.00", "GBP", Posted)]
    );
    // The same settlement id again, whatever it says.
    reject_result(
        &mut l,
        id,
        "stripe",
        s("s-1", "1.00", "0", &bank64),
        "duplicate_settlement",
    );
    // The rest, with a fee.
    let b = body!(
        result_ok(&mut l, id, "stripe", s("s-3", "35.00", "1.5", "bank-1")),
        PaymentSettled
    );
    assert_eq!(b.fee, wire("1.50", "GBP"));
    assert_eq!(
        b.postings,
        vec![
            posting("cash:bank-1", STRIPE, "33.50", "GBP", Posted),
            posting(FEES, STRIPE, "1.50", "GBP", Posted),
        ]
    );
    reject_result(
        &mut l,
        id,
        "stripe",
        s("s-4", "0.01", "0", "bank-1"),
        "settlement_exceeds_captured",
    );

    assert_amounts(&l, id, ["40.00", "60.00", "0", "0", "60.00"]);
    assert_eq!(payment(&l, id).settlements, ["s-1", "s-2", "s-3"]);
    l.assert_balance(STRIPE, "GBP", ["40.00", "60.00", "0", "60.00"]);
    l.assert_balance(&cash64, "GBP", ["0", "20.00", "0", "0"]);
    l.assert_balance("cash:bank-1", "GBP", ["0", "33.50", "0", "0"]);
    l.assert_balance(FEES, "GBP", ["0", "6.50", "0", "0"]);
    // Settlement does not touch what the platform owes the merchant.
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "40.00", "60.00"]);
}

// ---- disputes --------------------------------------------------------------------------------

#[test]
fn a_won_dispute_releases_and_a_lost_one_posts() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    captured_payment(&mut l, id, "80.00", "GBP", "stripe");

    let b = body!(
        result_ok(&mut l, id, "stripe", dispute_opened("d-1", "30", "GBP")),
        DisputeOpened
    );
    assert_eq!(b.amount, wire("30.00", "GBP"));
    assert_eq!(b.reason, "fraudulent");
    assert_eq!(
        b.postings,
        vec![posting(DISPUTES, STRIPE, "30.00", "GBP", Pending)]
    );
    assert_eq!(payment(&l, id).refundable(), dec("50.00"));
    assert_eq!(payment(&l, id).status_label(), "disputed");
    assert_eq!(payout_available(&l.state, currency("GBP")), dec("50.00"));

    reject_result(
        &mut l,
        id,
        "stripe",
        dispute_opened("d-2", "50.01", "GBP"),
        "dispute_exceeds_captured",
    );
    reject_result(
        &mut l,
        id,
        "stripe",
        dispute_opened("d-2", "5", "JPY"),
        "currency_mismatch",
    );
    reject_result(
        &mut l,
        id,
        "stripe",
        dispute_opened("d-2", "0.001", "GBP"),
        "amount_precision",
    );
    result_ok(&mut l, id, "stripe", dispute_opened("d-2", "50.00", "GBP"));
    l.assert_balance(DISPUTES, "GBP", ["80.00", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["0", "80.00", "80.00", "0"]);
    // Everything captured is disputed: no refund, no further dispute, no payout.
    reject_cmd(&mut l, refund(id, "0.01", "GBP"), "refund_exceeds_captured");
    reject_result(
        &mut l,
        id,
        "stripe",
        dispute_opened("d-3", "0.01", "GBP"),
        "dispute_exceeds_captured",
    );
    reject_cmd(
        &mut l,
        payout(pid(900), "0.01", "GBP", "bank-1"),
        "insufficient_merchant_balance",
    );

    let b = body!(
        result_ok(
            &mut l,
            id,
            "stripe",
            dispute_closed("d-1", DisputeOutcome::Won)
        ),
        DisputeClosed
    );
    assert_eq!(b.dispute_id, "d-1");
    assert_eq!(b.outcome, DisputeOutcome::Won);
    assert_eq!(b.amount, wire("30.00", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(DISPUTES, STRIPE, "30.00", "GBP", VoidPending)]
    );
    l.assert_balance(DISPUTES, "GBP", ["50.00", "0", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["0", "80.00", "50.00", "0"]);
    assert_eq!(payment(&l, id).refundable(), dec("30.00"));
    assert_eq!(payout_available(&l.state, currency("GBP")), dec("30.00"));

    let b = body!(
        result_ok(
            &mut l,
            id,
            "stripe",
            dispute_closed("d-2", DisputeOutcome::Lost)
        ),
        DisputeClosed
    );
    assert_eq!(b.amount, wire("50.00", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(DISPUTES, STRIPE, "50.00", "GBP", PostPending)]
    );
    l.assert_balance(DISPUTES, "GBP", ["0", "50.00", "0", "0"]);
    l.assert_balance(STRIPE, "GBP", ["0", "80.00", "0", "50.00"]);
    assert_eq!(payment(&l, id).refundable(), dec("30.00"));
    assert_eq!(payout_available(&l.state, currency("GBP")), dec("30.00"));
    let statuses: Vec<_> = payment(&l, id).disputes.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DisputeStatus::Won, DisputeStatus::Lost]);

    for dispute in ["d-1", "d-2", "d-9"] {
        reject_result(
            &mut l,
            id,
            "stripe",
            dispute_closed(dispute, DisputeOutcome::Lost),
            "dispute_not_open",
        );
    }
    reject_result(
        &mut l,
        id,
        "stripe",
        dispute_opened("d-1", "1.00", "GBP"),
        "duplicate_dispute",
    );
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "0", "80.00"]);
}

// ---- payouts ---------------------------------------------------------------------------------

#[test]
fn payouts_are_limited_by_the_payable_balance_less_dispute_exposure() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    captured_payment(&mut l, id, "25.00", "GBP", "stripe");
    result_ok(&mut l, id, "stripe", dispute_opened("d-1", "5.00", "GBP"));
    assert_eq!(payout_available(&l.state, currency("GBP")), dec("20.00"));

    let (p1, p2) = (pid(901), pid(902));
    reject_cmd(
        &mut l,
        payout(p1, "20.01", "GBP", "bank-1"),
        "insufficient_merchant_balance",
    );
    reject_cmd(
        &mut l,
        payout(p1, "1", "JPY", "bank-1"),
        "insufficient_merchant_balance",
    );
    reject_cmd(
        &mut l,
        payout(p1, "1.001", "GBP", "bank-1"),
        "amount_precision",
    );
    reject_cmd(
        &mut l,
        payout(p1, "0", "GBP", "bank-1"),
        "amount_not_positive",
    );
    reject_cmd(
        &mut l,
        payout(p1, "1.00", "XXX", "bank-1"),
        "unsupported_currency",
    );
    for bank in ["", "Bank-1", "bank 1"] {
        reject_cmd(
            &mut l,
            payout(p1, "1.00", "GBP", bank),
            "invalid_bank_account",
        );
    }
    assert!(l.state.payouts.is_empty());

    let cmd = l.cmd(payout(p1, "20", "GBP", "bank-1"));
    let b = body!(l.accept(cmd), PayoutSent);
    assert_eq!(b.amount, wire("20.00", "GBP"));
    assert_eq!(
        b.postings,
        vec![posting(PAYABLE, "cash:bank-1", "20.00", "GBP", Posted)]
    );
    l.assert_balance(PAYABLE, "GBP", ["0", "20.00", "0", "25.00"]);
    l.assert_balance("cash:bank-1", "GBP", ["0", "0", "0", "20.00"]);
    assert_eq!(payout_available(&l.state, currency("GBP")), dec("0"));
    // The same payout id under a new key.
    reject_cmd(
        &mut l,
        payout(p1, "0.01", "GBP", "bank-1"),
        "duplicate_payout",
    );

    // The dispute is won: its exposure is gone and 5.00 can be paid out.
    result_ok(
        &mut l,
        id,
        "stripe",
        dispute_closed("d-1", DisputeOutcome::Won),
    );
    assert_eq!(payout_available(&l.state, currency("GBP")), dec("5.00"));
    let cmd = l.cmd(payout(p2, "5.00", "GBP", "bank-2"));
    l.accept(cmd);
    l.assert_balance(PAYABLE, "GBP", ["0", "25.00", "0", "25.00"]);
    assert_eq!(l.state.payouts.len(), 2);
}

// ---- idempotency -----------------------------------------------------------------------------

#[test]
fn a_command_retried_with_its_key_is_a_duplicate_and_a_reused_key_is_refused() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    let first = l.cmd_keyed("order-1", authorize(id, "25.00", "GBP", "stripe"));
    l.accept(&first);
    // A retry: same key and content, new command id and time.
    let mut retry = first.clone();
    retry.command_id = Uuid::from_u128(0xFFFF);
    l.now += hours(1);
    retry.issued_at = l.now;
    l.nothing(&retry, Decision::Duplicate);
    // The same key with other content.
    let changed = l.cmd_keyed("order-1", authorize(id, "26.00", "GBP", "stripe"));
    l.reject(&changed, "idempotency_key_reused");
    let other_payment = l.cmd_keyed("order-1", authorize(pid(2), "25.00", "GBP", "stripe"));
    l.reject(&other_payment, "idempotency_key_reused");
    assert!(!l.state.payments.contains_key(&pid(2)));
    // The refusal did not rebind the key.
    l.nothing(&retry, Decision::Duplicate);
    l.reject(&changed, "idempotency_key_reused");

    // A retried capture captures once.
    result_ok(&mut l, id, "stripe", authorization(Outcome::Approved, None));
    let cap = l.cmd_keyed("cap-1", capture(id, "10.00", "GBP"));
    l.accept(&cap);
    l.nothing(&cap, Decision::Duplicate);
    assert_amounts(&l, id, ["15.00", "10.00", "0", "0", "0"]);
    let cap_more = l.cmd_keyed("cap-1", capture(id, "10.01", "GBP"));
    l.reject(&cap_more, "idempotency_key_reused");
    assert_amounts(&l, id, ["15.00", "10.00", "0", "0", "0"]);
    l.assert_balance(PAYABLE, "GBP", ["0", "0", "15.00", "10.00"]);
}

#[test]
fn a_rejection_binds_its_key_except_for_key_errors() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    // Rejected while not yet approved ...
    let early = l.cmd_keyed("cap-early", capture(id, "10.00", "GBP"));
    l.reject(&early, "payment_not_authorized");
    result_ok(&mut l, id, "stripe", authorization(Outcome::Approved, None));
    // ... its retry stays the rejection it was: nothing is captured.
    l.nothing(&early, Decision::Duplicate);
    assert_amounts(&l, id, ["10.00", "0", "0", "0", "0"]);
    let precise = l.cmd_keyed("bad-amount", capture(id, "1.001", "GBP"));
    l.reject(&precise, "amount_precision");
    l.nothing(&precise, Decision::Duplicate);

    // An invalid key is never bound: the retry is refused again.
    for key in ["", "with space", &"k".repeat(256)] {
        let bad = l.cmd_keyed(key, capture(id, "1.00", "GBP"));
        l.reject(&bad, "invalid_idempotency_key");
        l.reject(&bad, "invalid_idempotency_key");
        assert!(!l.state.idempotency.contains_key(key));
    }
    let longest = "k".repeat(255);
    let ok = l.cmd_keyed(&longest, capture(id, "1.00", "GBP"));
    l.accept(&ok);
    l.nothing(&ok, Decision::Duplicate);
    assert_amounts(&l, id, ["9.00", "1.00", "0", "0", "0"]);
}

#[test]
fn a_gateway_result_is_deduplicated_by_its_result_id() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    let approved = l.res(id, "stripe", authorization(Outcome::Approved, None));
    let e = l.accept(&approved);
    assert_eq!(e.idempotency_key, result_key(approved.result_id));
    assert_eq!(
        e.idempotency_key,
        format!("gateway-result:{}", approved.result_id)
    );
    assert_eq!(e.command_id, approved.result_id);
    // Redelivered, even later and with another timestamp: a duplicate.
    let mut again = approved.clone();
    l.now += hours(1);
    again.occurred_at = l.now;
    l.nothing(&again, Decision::Duplicate);
    // The same result id saying something else is refused, and moves nothing.
    let mut declined = approved.clone();
    declined.body = authorization(Outcome::Declined, None);
    l.reject(&declined, "idempotency_key_reused");
    let mut settled = approved.clone();
    settled.body = settlement("s-1", "1.00", "0", "GBP", "bank-1");
    l.reject(&settled, "idempotency_key_reused");
    l.nothing(&again, Decision::Duplicate);
    assert_amounts(&l, id, ["10.00", "0", "0", "0", "0"]);

    // A refused result is a duplicate when redelivered, even once it would apply.
    let early = l.res(pid(2), "stripe", authorization(Outcome::Approved, None));
    l.reject(&early, "payment_not_found");
    authorize_ok(&mut l, pid(2), "3.00", "GBP", "stripe");
    l.nothing(&early, Decision::Duplicate);
    assert_eq!(
        payment(&l, pid(2)).authorization,
        AuthorizationStatus::Requested
    );

    // Settlement results, too.
    let cmd = l.cmd(capture(id, "10.00", "GBP"));
    l.accept(cmd);
    let s = l.res(
        id,
        "stripe",
        settlement("s-1", "4.00", "0.10", "GBP", "bank-1"),
    );
    l.accept(&s);
    l.nothing(&s, Decision::Duplicate);
    assert_amounts(&l, id, ["0", "10.00", "0", "0", "4.00"]);
    l.assert_balance(FEES, "GBP", ["0", "0.10", "0", "0"]);
}

// ---- merchants -------------------------------------------------------------------------------

#[test]
fn merchants_are_independent_and_postings_name_their_own_accounts() {
    let mut a = Ledger::new("m-a");
    let mut b = Ledger::new("m-b");
    let id = pid(1);
    captured_payment(&mut a, id, "10.00", "GBP", "stripe");
    // The same payment id at another merchant is another payment.
    approved_payment(&mut b, id, "7", "JPY", "stripe", None);
    let e = b.log.last().unwrap().clone();
    assert_eq!(
        body!(e, PaymentAuthorized).postings,
        vec![posting(
            "processor:stripe:clearing",
            "merchant:m-b:payable",
            "7",
            "JPY",
            Pending
        )]
    );
    assert_eq!(b.state.sequence, 2);
    a.assert_balance("merchant:m-a:payable", "GBP", ["0", "0", "0", "10.00"]);
    b.assert_balance("merchant:m-b:payable", "GBP", ZERO);
    b.assert_balance("merchant:m-b:payable", "JPY", ["0", "0", "7", "0"]);
    assert_eq!(payout_available(&b.state, currency("GBP")), Decimal::ZERO);
}

// ---- bugs found by these tests, fixed ---------------------------------------------------------

/// Amounts are "never rounded": an amount with more decimals than the currency allows is
/// refused. With more than 28 decimals, `Decimal::from_str` rounds before `Money::parse`
/// checks the scale, so the command is accepted as a rounded amount.
#[test]
fn an_amount_with_more_than_28_decimals_is_refused_not_rounded() {
    let mut l = Ledger::new(M);
    for (n, amount) in [
        "1.000000000000000000000000000001",  // accepted as 1.00
        "0.0000000000000000000000000000001", // refused as amount_not_positive
    ]
    .into_iter()
    .enumerate()
    {
        let cmd = l.cmd(authorize(pid(n as u128 + 1), amount, "GBP", "stripe"));
        l.reject(cmd, "amount_precision");
    }
}

/// A gateway result's key is `gateway-result:<result_id>`; a command may use any printable
/// key, including one of that form. The command then owns the key, and the processor's result
/// (never seen before) is refused as `idempotency_key_reused`: the approval is lost.
#[test]
fn a_command_key_cannot_shadow_a_gateway_result() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    let approval = l.res(id, "stripe", authorization(Outcome::Approved, None));
    let squatter = l.cmd_keyed(
        &result_key(approval.result_id),
        authorize(pid(2), "1.00", "GBP", "stripe"),
    );
    // The ledger's own key prefixes are reserved: the squatter is refused, the key stays free.
    l.reject(squatter, "invalid_idempotency_key");
    let e = l.accept(&approval);
    assert_eq!(body!(e, PaymentAuthorized).amount, wire("10.00", "GBP"));
}

/// A result that changes nothing (`NoChange`) writes no event, so its result id is not bound
/// (a trade-off: no events for no-ops). Delivered again it is again `NoChange`; the same id with
/// other content is decided on that content — for an authorization outcome, the right answer.
#[test]
fn a_result_that_changed_nothing_leaves_no_trace_and_its_id_is_not_bound() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    result_ok(
        &mut l,
        id,
        "stripe",
        authorization_with(Outcome::Unknown, None),
    );
    let still_unknown = l.res(id, "stripe", authorization_with(Outcome::Unknown, None));
    l.nothing(&still_unknown, Decision::NoChange);
    l.nothing(&still_unknown, Decision::NoChange);
    let mut reused = still_unknown.clone();
    reused.body = authorization_with(Outcome::Approved, None);
    let e = l.accept(&reused);
    assert_eq!(body!(e, PaymentAuthorized).amount, wire("10.00", "GBP"));
}

/// Event ids are derived from the cause (command id, result id) and the index. For a gateway
/// result the cause is the result id, which is also its idempotency key: when the same result
/// id comes back with other content, its `idempotency_key_reused` rejection gets the event id
/// of the result's first event. Two different events share one id, and a projection that
/// keys on `event_id` (e.g. `command_rejections`, `ledger_entries`) drops one.
#[test]
fn a_reused_result_id_gets_its_own_event_id() {
    let mut l = Ledger::new(M);
    let id = pid(1);
    authorize_ok(&mut l, id, "10.00", "GBP", "stripe");
    let approval = l.res(id, "stripe", authorization(Outcome::Approved, None));
    let approved = l.accept(&approval);
    let mut contradiction = approval.clone();
    contradiction.body = authorization(Outcome::Declined, None);
    let rejected = l.reject(&contradiction, "idempotency_key_reused");
    assert_ne!(rejected.event_id, approved.event_id);
}

/// An expiry's ids derive from the payment id alone. Payment ids are per merchant (the same
/// id at two merchants is two payments), so two merchants' expiries of "the same" payment id
/// get the same event id (and command id).
#[test]
fn expiry_event_ids_differ_between_merchants() {
    let id = pid(1);
    let mut expired = Vec::new();
    for merchant in ["m-a", "m-b"] {
        let mut l = Ledger::new(merchant);
        approved_payment(&mut l, id, "10.00", "GBP", "stripe", Some(t0() + hours(1)));
        l.now = t0() + hours(1);
        expired.extend(l.expire());
    }
    assert_eq!(expired.len(), 2);
    assert_ne!(expired[0].event_id, expired[1].event_id);
}

// ---- what the topic keeps --------------------------------------------------------------------

/// The state is rebuilt from `payments.events` after a restart: events that went through
/// their Avro form must replay to exactly the live state, even when the ledger's clock and the
/// processor's expiry carry sub-millisecond precision (Avro timestamps are milliseconds).
#[test]
fn events_read_back_from_their_avro_form_replay_to_the_live_state() {
    let mut l = Ledger::new(M);
    let fine = Duration::nanoseconds(123_456_789);
    l.now = t0() + fine;
    approved_payment(&mut l, pid(1), "100.00", "GBP", "stripe", None);
    approved_payment(
        &mut l,
        pid(2),
        "1500",
        "JPY",
        "square",
        Some(t0() + hours(1) + fine),
    );
    approved_payment(&mut l, pid(3), "12.345", "BHD", "asiapay", None);
    for (id, amount, cur) in [(pid(1), "60.00", "GBP"), (pid(3), "12.345", "BHD")] {
        let cmd = l.cmd(capture(id, amount, cur));
        l.accept(cmd);
    }
    let cmd = l.cmd(refund(pid(1), "10.00", "GBP"));
    l.accept(cmd);
    result_ok(
        &mut l,
        pid(1),
        "stripe",
        settlement("s-1", "50.00", "1.00", "GBP", "bank-1"),
    );
    result_ok(
        &mut l,
        pid(3),
        "asiapay",
        dispute_opened("d-1", "1.000", "BHD"),
    );
    let cmd = l.cmd(payout(pid(900), "20.00", "GBP", "bank-1"));
    l.accept(cmd);
    l.now = t0() + hours(1) + fine;
    assert_eq!(l.expire().len(), 1);
    let cmd = l.cmd(capture(pid(1), "1.00", "GBP"));
    l.accept(cmd);

    let mut replayed = ledger::state::MerchantState::default();
    for e in &l.log {
        let read = schemas::PaymentEvent::from_value(&e.to_value()).expect("decodes");
        ledger::evolve::evolve(&mut replayed, &read).expect("applies");
    }
    assert_eq!(replayed, l.state);
}

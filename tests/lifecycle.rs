//! The payment lifecycle end to end on the real stack: commands on `payments.commands`,
//! processor results on `gateway.results` (published with the gateway's principal, as the
//! gateway workers will), events on `payments.events`, state and balances rebuilt from them.

mod support;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use ledger::account::Account;
use ledger::kafka::Role;
use ledger::kafka::restore::{Restored, StartFrom, restore_partitions};
use ledger::money::Currency;
use ledger::state::MerchantState;
use rust_decimal::Decimal;
use schemas::{
    AuthorizationOutcome, DisputeOutcome, EventBody, GatewayResult, PaymentCommand, PaymentEvent,
    PostingPhase, ResultSource, VoidReason,
};
use support::*;
use tokio::task::block_in_place;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// What one input must lead to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One event of this kind.
    Event(&'static str),
    /// One `CommandRejected` with this reason.
    Rejected(&'static str),
    /// Nothing (a duplicate, or a result that changes nothing).
    Nothing,
}

enum Input {
    Command(PaymentCommand),
    Result(GatewayResult),
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn cur(code: &str) -> Currency {
    Currency::from_code(code).unwrap()
}

fn reason(e: &PaymentEvent) -> Option<&str> {
    match &e.body {
        EventBody::CommandRejected(r) => Some(&r.reason_code),
        _ => None,
    }
}

/// Rebuilds every partition from the events topic with the ledger's own code.
fn rebuild(from: StartFrom) -> HashMap<i32, Restored> {
    let s = stack();
    let codec = s.codec();
    let rt = tokio::runtime::Handle::current();
    let partitions: Vec<i32> = (0..ledger::kafka::topics::MERCHANT_PARTITIONS).collect();
    restore_partitions(&s.kafka(Role::Ledger), &partitions, from, |bytes| {
        rt.block_on(codec.decode_event(bytes))
    })
    .expect("restore")
}

fn merchant_state(restored: &HashMap<i32, Restored>, merchant: &str) -> MerchantState {
    restored
        .values()
        .find_map(|r| r.state.merchant(merchant).cloned())
        .unwrap_or_else(|| panic!("{merchant} is in no partition"))
}

/// Per currency, debits equal credits over every account the merchant's events moved.
fn assert_double_entry(state: &MerchantState) {
    let mut sums: HashMap<Currency, [Decimal; 4]> = HashMap::new();
    for ((_, currency), b) in state.balances.iter() {
        let s = sums.entry(*currency).or_default();
        s[0] += b.debits_posted;
        s[1] += b.credits_posted;
        s[2] += b.debits_pending;
        s[3] += b.credits_pending;
    }
    for (currency, s) in sums {
        assert_eq!(s[0], s[1], "{currency}: posted debits must equal credits");
        assert_eq!(s[2], s[3], "{currency}: pending debits must equal credits");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_of_commands_and_results_gives_exactly_the_expected_events() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("lifecycle");
    let commands = s.publisher();
    let results = s.gateway_publisher();
    let m = merchant();
    let ms = std::slice::from_ref(&m);

    let auth_a = authorize(&m, "auth-a", "100.00", "GBP");
    let auth_b = authorize(&m, "auth-b", "1500", "JPY");
    let auth_c = authorize(&m, "auth-c", "12.345", "BHD");
    let auth_d = authorize(&m, "auth-d", "20.00", "GBP");
    let auth_e = authorize(&m, "auth-e", "5.00", "GBP");
    let auth_f = authorize(&m, "auth-f", "7.00", "GBP");
    let (a, b, c, d, e, f) = (
        payment_id(&auth_a),
        payment_id(&auth_b),
        payment_id(&auth_c),
        payment_id(&auth_d),
        payment_id(&auth_e),
        payment_id(&auth_f),
    );
    let approve_a = approved(&m, a);
    let capture_a = capture(&m, "cap-a-1", a, "30.25", "GBP");
    let mut retried_capture = capture_a.clone();
    retried_capture.command_id = Uuid::new_v4();
    let expires_soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    use AuthorizationOutcome::*;
    use Expect::*;
    use Input::{Command as C, Result as R};
    let script: Vec<(Input, Expect)> = vec![
        (C(auth_a), Event("PaymentAuthorizationRequested")),
        (C(auth_b), Event("PaymentAuthorizationRequested")),
        (C(auth_c), Event("PaymentAuthorizationRequested")),
        (C(auth_d), Event("PaymentAuthorizationRequested")),
        (C(auth_e), Event("PaymentAuthorizationRequested")),
        (C(auth_f), Event("PaymentAuthorizationRequested")),
        (R(approve_a.clone()), Event("PaymentAuthorized")),
        (R(approved(&m, b)), Event("PaymentAuthorized")),
        (R(approved(&m, c)), Event("PaymentAuthorized")),
        (
            R(authorization(&m, d, Unknown, ResultSource::Response, None)),
            Event("PaymentAuthorizationUnknown"),
        ),
        // Still unknown after an inquiry: nothing changes, nothing is guessed.
        (
            R(authorization(
                &m,
                d,
                Unknown,
                ResultSource::StatusInquiry,
                None,
            )),
            Nothing,
        ),
        (
            C(capture(&m, "cap-d", d, "1.00", "GBP")),
            Rejected("payment_not_authorized"),
        ),
        (
            R(authorization(
                &m,
                d,
                Approved,
                ResultSource::StatusInquiry,
                None,
            )),
            Event("PaymentAuthorized"),
        ),
        (
            R(authorization(&m, f, Declined, ResultSource::Response, None)),
            Event("PaymentDeclined"),
        ),
        (
            R(authorization(&m, f, Approved, ResultSource::Webhook, None)),
            Rejected("conflicting_result"),
        ),
        (C(capture_a), Event("PaymentCaptured")),
        (C(retried_capture), Nothing),
        (
            C(capture(&m, "cap-a-2", a, "69.75", "GBP")),
            Event("PaymentCaptured"),
        ),
        (
            C(capture(&m, "cap-a-3", a, "0.01", "GBP")),
            Rejected("capture_exceeds_authorization"),
        ),
        (
            C(capture(&m, "cap-b", b, "1000", "JPY")),
            Event("PaymentCaptured"),
        ),
        (
            C(capture(&m, "cap-b-gbp", b, "1.00", "GBP")),
            Rejected("currency_mismatch"),
        ),
        (C(void(&m, "void-b", b)), Event("PaymentVoided")),
        (
            C(capture(&m, "cap-c", c, "12.345", "BHD")),
            Event("PaymentCaptured"),
        ),
        (
            C(refund(&m, "ref-c-1", c, "0.005", "BHD")),
            Event("PaymentRefunded"),
        ),
        (
            C(refund(&m, "ref-c-2", c, "12.341", "BHD")),
            Rejected("refund_exceeds_captured"),
        ),
        (
            R(settlement(&m, a, "100.00", "2.90", "GBP")),
            Event("PaymentSettled"),
        ),
        (
            R(dispute_opened(&m, a, "dp-1", "10.00", "GBP")),
            Event("DisputeOpened"),
        ),
        (
            R(dispute_closed(&m, a, "dp-1", DisputeOutcome::Lost)),
            Event("DisputeClosed"),
        ),
        // Payable GBP 100.00 (A captured), less the lost dispute's 10.00: 90.00 may go out.
        (
            C(payout(&m, "payout-1", "90.01", "GBP", "barclays-main")),
            Rejected("insufficient_merchant_balance"),
        ),
        (
            C(payout(&m, "payout-2", "90.00", "GBP", "barclays-main")),
            Event("PayoutSent"),
        ),
        // 90.00 of A is refundable, but only 10.00 is left in the merchant's payable balance.
        (
            C(refund(&m, "ref-a", a, "10.01", "GBP")),
            Rejected("insufficient_merchant_balance"),
        ),
        (
            R(approved(&m, Uuid::new_v4())),
            Rejected("payment_not_found"),
        ),
        // The same result delivered again: a duplicate.
        (R(approve_a), Nothing),
        // Last, so that its expiry cannot land between the steps above.
        (
            R(authorization(
                &m,
                e,
                Approved,
                ResultSource::Webhook,
                Some(expires_soon),
            )),
            Event("PaymentAuthorized"),
        ),
    ];
    let expected: Vec<Expect> = script.iter().map(|(_, x)| *x).collect();
    let mut seen = 0;
    for (i, (input, expect)) in script.into_iter().enumerate() {
        match input {
            C(cmd) => commands
                .publish(&cmd, None)
                .await
                .map(|_| ())
                .expect("publish"),
            R(result) => results
                .publish_result(&result)
                .await
                .map(|_| ())
                .expect("publish result"),
        }
        if matches!(expect, Nothing) {
            continue;
        }
        seen += 1;
        let got = block_in_place(|| log.read_until(ms, WAIT, |ev| ev.len() >= seen));
        assert!(
            got,
            "step {i}: no event; ledger log:\n{}",
            ledger.log_text()
        );
        let event = &log.events[seen - 1];
        match expect {
            Event(kind) => assert_eq!(event.kind(), kind, "step {i}: {event:?}"),
            Rejected(code) => assert_eq!(reason(event), Some(code), "step {i}: {event:?}"),
            Nothing => unreachable!(),
        }
    }
    // E's hold expires by itself: the ledger voids it, with no command.
    let expired = block_in_place(|| log.read_until(ms, WAIT, |ev| ev.len() > seen));
    assert!(expired, "no expiry; ledger log:\n{}", ledger.log_text());
    match &log.events[seen].body {
        EventBody::PaymentVoided(v) => {
            assert_eq!((v.payment_id, v.reason), (e, VoidReason::Expired));
            assert_eq!(
                (v.released.amount.as_str(), v.released.currency.as_str()),
                ("5.00", "GBP")
            );
        }
        other => panic!("expected the expiry of E, got {other:?}"),
    }
    // And nothing else: no duplicate shows up late.
    block_in_place(|| log.read_until(ms, Duration::from_secs(3), |_| false));
    let events = &log.events;
    assert_eq!(
        events.len(),
        expected.iter().filter(|x| !matches!(x, Nothing)).count() + 1,
        "{events:#?}"
    );
    let sequences: Vec<i64> = events.iter().map(|e| e.merchant_sequence).collect();
    assert_eq!(sequences, (1..=events.len() as i64).collect::<Vec<_>>());
    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");

    // Exact amounts and postings of the money-moving events.
    let find = |kind: &str, payment: Uuid| {
        events
            .iter()
            .find(|e| e.kind() == kind && e.payment_id == Some(payment))
            .unwrap_or_else(|| panic!("no {kind} for {payment}"))
    };
    match &find("PaymentAuthorized", a).body {
        EventBody::PaymentAuthorized(x) => {
            assert_eq!(x.amount.amount, "100.00");
            assert_eq!(x.postings.len(), 1);
            let p = &x.postings[0];
            assert_eq!(p.debit_account, "processor:stripe:clearing");
            assert_eq!(p.credit_account, format!("merchant:{m}:payable"));
            assert_eq!(
                (p.amount.amount.as_str(), p.phase),
                ("100.00", PostingPhase::Pending)
            );
        }
        other => panic!("{other:?}"),
    }
    match &find("PaymentVoided", b).body {
        EventBody::PaymentVoided(x) => {
            assert_eq!(
                (x.released.amount.as_str(), x.reason),
                ("500", VoidReason::Requested)
            );
            assert_eq!(x.postings[0].phase, PostingPhase::VoidPending);
        }
        other => panic!("{other:?}"),
    }
    match &find("PaymentSettled", a).body {
        EventBody::PaymentSettled(x) => {
            let legs: Vec<(&str, &str, &str)> = x
                .postings
                .iter()
                .map(|p| {
                    (
                        p.debit_account.as_str(),
                        p.credit_account.as_str(),
                        p.amount.amount.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                legs,
                vec![
                    ("cash:barclays-main", "processor:stripe:clearing", "97.10"),
                    ("platform:fees", "processor:stripe:clearing", "2.90"),
                ]
            );
        }
        other => panic!("{other:?}"),
    }

    // The balances a rebuild from the topic gives, to the cent (and the fils, and the yen).
    let state = merchant_state(&block_in_place(|| rebuild(StartFrom::Beginning)), &m);
    assert_double_entry(&state);
    let payable = |code| state.balances.get(&Account::MerchantPayable, cur(code));
    assert_eq!(payable("GBP").credits_posted, dec("100.00"));
    assert_eq!(payable("GBP").debits_posted, dec("90.00"));
    // D's 20.00 hold is still pending; E's expired and was released.
    assert_eq!(payable("GBP").credits_pending, dec("20.00"));
    assert_eq!(payable("JPY").credits_posted, dec("1000"));
    assert_eq!(payable("JPY").credits_pending, dec("0"));
    assert_eq!(payable("BHD").credits_posted, dec("12.345"));
    assert_eq!(payable("BHD").debits_posted, dec("0.005"));
    let disputes = state.balances.get(&Account::MerchantDisputes, cur("GBP"));
    assert_eq!(
        (disputes.debits_posted, disputes.debits_pending),
        (dec("10.00"), dec("0.00"))
    );
    let fees = state.balances.get(&Account::PlatformFees, cur("GBP"));
    assert_eq!(fees.debits_posted, dec("2.90"));
    let cash = state
        .balances
        .get(&Account::Cash("barclays-main".into()), cur("GBP"));
    assert_eq!(
        (cash.debits_posted, cash.credits_posted),
        (dec("97.10"), dec("90.00"))
    );
    let pa = &state.payments[&a];
    assert_eq!(
        (pa.captured, pa.held, pa.settled, pa.refunded),
        (dec("100.00"), dec("0.00"), dec("100.00"), dec("0"))
    );
    assert_eq!(state.payments[&e].released, dec("5.00"));
    assert_eq!(state.payments[&d].status_label(), "authorized");
    assert_eq!(state.payments[&f].status_label(), "declined");
    ledger.assert_running();
    ledger.stop();
}

/// One payment's planned amounts: authorized, two captures, one refund.
struct Planned {
    merchant: String,
    auth: PaymentCommand,
    half: String,
    currency: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_stays_exactly_once_across_kill_9_and_a_rebalance() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let commands = s.publisher();
    let results = s.gateway_publisher();
    let merchants: Vec<String> = (0..6).map(|_| merchant()).collect();
    let currencies = [("GBP", 2u32), ("JPY", 0), ("BHD", 3)];
    let planned: Vec<Planned> = (0..90usize)
        .map(|i| {
            let (currency, exp) = currencies[i % 3];
            // An even number of minor units, so that two equal captures take it all.
            let half = Decimal::new(37 + i as i64 * 11, exp);
            let total = half * Decimal::TWO;
            let merchant = merchants[i % merchants.len()].clone();
            Planned {
                auth: authorize(
                    &merchant,
                    &format!("auth-{i}"),
                    &total.to_string(),
                    currency,
                ),
                merchant,
                half: half.to_string(),
                currency,
            }
        })
        .collect();
    let count = |log: &EventLog, kind: &str| log.events.iter().filter(|e| e.kind() == kind).count();
    let n = planned.len();

    // Phase 1: authorizations; the ledger is killed in the middle.
    let mut first = Service::ledger("lc-a");
    for (i, p) in planned.iter().enumerate() {
        commands.publish(&p.auth, None).await.expect("publish");
        if i == n / 3 {
            block_in_place(|| log.read_until(&merchants, WAIT, |e| !e.is_empty()));
            first.kill_9();
            first = Service::ledger("lc-a");
        }
    }
    let done = block_in_place(|| {
        log.read_until(&merchants, WAIT, |e| {
            e.iter()
                .filter(|e| e.kind() == "PaymentAuthorizationRequested")
                .count()
                >= n
        })
    });
    assert!(
        done,
        "authorizations: {}; log:\n{}",
        count(&log, "PaymentAuthorizationRequested"),
        first.log_text()
    );

    // Phase 2: processor approvals, some delivered twice; a second instance joins midway.
    let mut second = None;
    for (i, p) in planned.iter().enumerate() {
        let result = approved(&p.merchant, payment_id(&p.auth));
        results.publish_result(&result).await.expect("publish");
        if i % 9 == 0 {
            results.publish_result(&result).await.expect("redeliver");
        }
        if i == n / 2 {
            second = Some(Service::ledger("lc-b"));
        }
    }
    let mut second = second.expect("started");
    let done = block_in_place(|| {
        log.read_until(&merchants, WAIT, |e| {
            e.iter().filter(|e| e.kind() == "PaymentAuthorized").count() >= n
        })
    });
    assert!(
        done,
        "approvals: {}; logs:\n{}\n{}",
        count(&log, "PaymentAuthorized"),
        first.log_text(),
        second.log_text()
    );

    // Phase 3: two captures per payment, some retried; the first instance dies midway.
    for (i, p) in planned.iter().enumerate() {
        for k in 0..2 {
            let cmd = capture(
                &p.merchant,
                &format!("cap-{i}-{k}"),
                payment_id(&p.auth),
                &p.half,
                p.currency,
            );
            commands.publish(&cmd, None).await.expect("publish");
            if i % 7 == 0 {
                let mut retry = cmd.clone();
                retry.command_id = Uuid::new_v4();
                commands.publish(&retry, None).await.expect("retry");
            }
        }
        if i == n / 2 {
            first.kill_9();
            first = Service::ledger("lc-a");
        }
    }
    // Phase 4: a refund of one minor unit per payment.
    for (i, p) in planned.iter().enumerate() {
        let one = Decimal::new(1, Currency::from_code(p.currency).unwrap().exponent());
        let cmd = refund(
            &p.merchant,
            &format!("ref-{i}"),
            payment_id(&p.auth),
            &one.to_string(),
            p.currency,
        );
        commands.publish(&cmd, None).await.expect("publish");
    }
    let total = n * 5;
    let done = block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= total));
    assert!(
        done,
        "saw {} of {total} events; logs:\n{}\n{}",
        log.events.len(),
        first.log_text(),
        second.log_text()
    );
    block_in_place(|| log.read_until(&merchants, Duration::from_secs(3), |_| false));

    // Exactly the events expected: count and content.
    let events = &log.events;
    assert_eq!(events.len(), total, "no duplicate, no missing event");
    for kind in [
        "PaymentAuthorizationRequested",
        "PaymentAuthorized",
        "PaymentRefunded",
    ] {
        assert_eq!(count(&log, kind), n, "{kind}");
    }
    assert_eq!(count(&log, "PaymentCaptured"), 2 * n);
    let rejected: Vec<_> = events.iter().filter_map(reason).collect();
    assert!(rejected.is_empty(), "unexpected rejections: {rejected:?}");
    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), total);
    for m in &merchants {
        let seq: Vec<i64> = events
            .iter()
            .filter(|e| &e.merchant_id == m)
            .map(|e| e.merchant_sequence)
            .collect();
        assert_eq!(seq, (1..=seq.len() as i64).collect::<Vec<_>>(), "{m}");
    }
    // Balances, exact, from a rebuild of the topic.
    let restored = block_in_place(|| rebuild(StartFrom::Beginning));
    for m in &merchants {
        let state = merchant_state(&restored, m);
        assert_double_entry(&state);
        for (code, exp) in currencies {
            let mine: Vec<&Planned> = planned
                .iter()
                .filter(|p| &p.merchant == m && p.currency == code)
                .collect();
            let captured: Decimal = mine.iter().map(|p| dec(&p.half) * Decimal::TWO).sum();
            let refunded = Decimal::new(mine.len() as i64, exp);
            let payable = state.balances.get(&Account::MerchantPayable, cur(code));
            assert_eq!(payable.credits_posted, captured, "{m} {code}");
            assert_eq!(payable.debits_posted, refunded, "{m} {code}");
            assert!(
                payable.credits_pending.is_zero(),
                "{m} {code}: holds fully captured"
            );
        }
        for p in planned.iter().filter(|p| &p.merchant == m) {
            let pay = &state.payments[&payment_id(&p.auth)];
            assert_eq!(pay.captured, pay.amount);
            assert!(pay.held.is_zero());
        }
    }
    first.assert_running();
    second.assert_running();
    assert!(
        second.log_text().contains("partition state restored"),
        "{}",
        second.log_text()
    );
    first.stop();
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_a_snapshot_restores_the_same_balances_as_a_full_rebuild() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let commands = s.publisher();
    let results = s.gateway_publisher();
    let mut ledger = Service::ledger_snapshotting("snap", 10);
    let m = merchant();
    let ms = std::slice::from_ref(&m);
    let auths: Vec<PaymentCommand> = (0..12)
        .map(|i| authorize(&m, &format!("auth-{i}"), &format!("{}.50", 10 + i), "EUR"))
        .collect();
    for a in &auths {
        commands.publish(a, None).await.expect("publish");
    }
    assert!(block_in_place(
        || log.read_until(ms, WAIT, |e| e.len() >= 12)
    ));
    for a in &auths {
        results
            .publish_result(&approved(&m, payment_id(a)))
            .await
            .expect("publish");
    }
    assert!(block_in_place(
        || log.read_until(ms, WAIT, |e| e.len() >= 24)
    ));
    for (i, a) in auths.iter().enumerate() {
        let cmd = capture(&m, &format!("cap-{i}"), payment_id(a), "10.00", "EUR");
        commands.publish(&cmd, None).await.expect("publish");
    }
    assert!(
        block_in_place(|| log.read_until(ms, WAIT, |e| e.len() >= 36)),
        "log:\n{}",
        ledger.log_text()
    );
    ledger.stop();
    assert!(
        ledger.log_text().contains("snapshot written"),
        "{}",
        ledger.log_text()
    );

    // The snapshot path and the full replay agree, partition by partition.
    let from_snapshot = block_in_place(|| rebuild(StartFrom::Snapshot));
    let full = block_in_place(|| rebuild(StartFrom::Beginning));
    let home = full
        .iter()
        .find(|(_, r)| r.state.merchant(&m).is_some())
        .map(|(p, _)| *p)
        .expect("the merchant's partition");
    let snap = &from_snapshot[&home];
    let manifest = snap
        .snapshot
        .as_ref()
        .expect("the partition restored from a snapshot");
    assert_eq!(snap.snapshot_unused, None);
    assert!(
        snap.events < full[&home].events,
        "the snapshot saved replaying events"
    );
    assert!(manifest.events_offset > 0);
    for (p, r) in &full {
        let snap = &from_snapshot[p].state;
        assert_eq!(
            snap.merchants.len(),
            r.state.merchants.len(),
            "partition {p}"
        );
        for (id, want) in &r.state.merchants {
            let got = snap
                .merchant(id)
                .unwrap_or_else(|| panic!("partition {p}: {id} missing"));
            assert_eq!(got.sequence, want.sequence, "partition {p} {id}");
            assert_eq!(got.payments, want.payments, "partition {p} {id}");
            assert_eq!(got.payouts, want.payouts, "partition {p} {id}");
            assert_eq!(got.balances, want.balances, "partition {p} {id}");
            assert_eq!(
                got.idempotency.len(),
                want.idempotency.len(),
                "partition {p} {id}"
            );
            assert_eq!(got, want, "partition {p} {id}");
        }
        assert_eq!(from_snapshot[p].next_offset, r.next_offset, "partition {p}");
    }
    let state = merchant_state(&from_snapshot, &m);
    let payable = state.balances.get(&Account::MerchantPayable, cur("EUR"));
    assert_eq!(payable.credits_posted, dec("120.00"));
    // Each hold was 10.50 + i; 10.00 of each is captured, the rest still held.
    let held: Decimal = (0..12).map(|i| Decimal::new(50 + i * 100, 2)).sum();
    assert_eq!(payable.credits_pending, held);

    // A restarted ledger decides from the restored state: what was captured bounds refunds.
    let mut ledger = Service::ledger_snapshotting("snap", 10);
    let pid = payment_id(&auths[3]);
    commands
        .publish(&refund(&m, "ref-big", pid, "10.01", "EUR"), None)
        .await
        .expect("publish");
    commands
        .publish(&refund(&m, "ref-ok", pid, "10.00", "EUR"), None)
        .await
        .expect("publish");
    commands
        .publish(&capture(&m, "cap-rest", pid, "3.50", "EUR"), None)
        .await
        .expect("publish");
    assert!(
        block_in_place(|| log.read_until(ms, WAIT, |e| e.len() >= 39)),
        "log:\n{}",
        ledger.log_text()
    );
    let tail: Vec<(&str, Option<&str>)> = log.events[36..]
        .iter()
        .map(|e| (e.kind(), reason(e)))
        .collect();
    assert_eq!(
        tail,
        vec![
            ("CommandRejected", Some("refund_exceeds_captured")),
            ("PaymentRefunded", None),
            ("PaymentCaptured", None),
        ]
    );
    assert_eq!(log.events[38].merchant_sequence, 39);
    ledger.assert_running();
    ledger.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gateway_results_are_dead_lettered_and_the_results_after_them_still_apply() {
    let _serial = serial().await;
    let s = stack();
    let dlq = dlq_watcher();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("results-dlq");
    let results = s.gateway_publisher();
    let m = merchant();
    let ms = std::slice::from_ref(&m);
    let auth = authorize(&m, "auth", "42.00", "USD");
    s.publisher().publish(&auth, None).await.expect("publish");
    assert!(block_in_place(
        || log.read_until(ms, WAIT, |e| !e.is_empty())
    ));

    let topic = ledger::kafka::topics::GATEWAY_RESULTS;
    let garbage = results
        .send_to(
            topic,
            m.as_bytes(),
            b"\x00\x00\x00\x00",
            rdkafka::message::OwnedHeaders::new(),
        )
        .await
        .expect("send");
    // A valid result keyed by another merchant: it may sit on a partition that does not own it.
    let misrouted = approved(&m, payment_id(&auth));
    let bytes = s.codec().encode_result(&misrouted).await.expect("encode");
    let wrong_key = results
        .send_to(
            topic,
            b"someone-else",
            &bytes,
            rdkafka::message::OwnedHeaders::new(),
        )
        .await
        .expect("send");
    results
        .publish_result(&approved(&m, payment_id(&auth)))
        .await
        .expect("publish");

    let letters = block_in_place(|| {
        dead_letters_until(&dlq, WAIT, |l| {
            l.iter().filter(|(i, _)| i.source_topic == topic).count() >= 2
        })
    });
    let mine: Vec<_> = letters
        .iter()
        .filter(|(i, _)| i.source_topic == topic)
        .collect();
    assert_eq!(
        mine.len(),
        2,
        "{letters:?}\nledger log:\n{}",
        ledger.log_text()
    );
    let at = |p: &ledger::kafka::publisher::Published| {
        mine.iter()
            .find(|(i, _)| i.source_partition == p.partition && i.source_offset == p.offset)
            .unwrap_or_else(|| panic!("no dead letter for {p:?}: {mine:?}"))
    };
    let (info, payload) = at(&garbage);
    assert_eq!(info.service, "ledger");
    assert!(
        !info.reason_code.is_empty() && info.reason_code != "key_mismatch",
        "{info:?}"
    );
    assert_eq!(payload.as_deref(), Some(&b"\x00\x00\x00\x00"[..]));
    let (info, payload) = at(&wrong_key);
    assert_eq!(info.reason_code, "key_mismatch");
    assert_eq!(payload.as_deref(), Some(bytes.as_slice()), "kept verbatim");

    // The good result behind them was applied, once.
    assert!(block_in_place(|| log.read_until(ms, WAIT, |e| e.len() >= 2)));
    block_in_place(|| log.read_until(ms, Duration::from_secs(2), |_| false));
    let kinds: Vec<&str> = log.events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        vec!["PaymentAuthorizationRequested", "PaymentAuthorized"]
    );
    ledger.assert_running();
    ledger.stop();
}

/// A hold expiring while its merchant is busy: the expiry must be decided after the batch it
/// shares a transaction with, against the state that batch left (sequence numbers included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_expires_exactly_once_in_the_middle_of_a_busy_merchants_stream() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("busy-expiry");
    let commands = s.publisher();
    let m = merchant();
    let ms = std::slice::from_ref(&m);
    let held = authorize(&m, "held", "8.00", "CHF");
    commands.publish(&held, None).await.expect("publish");
    assert!(block_in_place(|| log.read_until(ms, WAIT, |e| e.len() == 1)));
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let approval = authorization(
        &m,
        payment_id(&held),
        AuthorizationOutcome::Approved,
        ResultSource::Response,
        Some(expires),
    );
    s.gateway_publisher()
        .publish_result(&approval)
        .await
        .expect("publish");
    assert!(block_in_place(|| log.read_until(ms, WAIT, |e| e.len() == 2)));
    // Commands for the same merchant every 20 ms, from before the expiry to well after it.
    let n = 200;
    for i in 0..n {
        commands
            .publish(&authorize(&m, &format!("busy-{i}"), "1.00", "CHF"), None)
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = 2 + n + 1;
    let done = block_in_place(|| log.read_until(ms, WAIT, |e| e.len() >= total));
    assert!(
        done,
        "saw {} of {total}; log:\n{}",
        log.events.len(),
        ledger.log_text()
    );
    block_in_place(|| log.read_until(ms, Duration::from_secs(3), |_| false));
    assert_eq!(log.events.len(), total);
    let sequences: Vec<i64> = log.events.iter().map(|e| e.merchant_sequence).collect();
    assert_eq!(sequences, (1..=total as i64).collect::<Vec<_>>());
    let expiries: Vec<&PaymentEvent> = log
        .events
        .iter()
        .filter(
            |e| matches!(&e.body, EventBody::PaymentVoided(v) if v.reason == VoidReason::Expired),
        )
        .collect();
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    assert_eq!(expiries[0].payment_id, Some(payment_id(&held)));
    ledger.assert_running();
    ledger.stop();
}

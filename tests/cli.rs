//! The operator's CLI on the real stack: `payledger publish <command>` and
//! `payledger gateway-result <result>` drive a merchant's payments through a running ledger,
//! and `payledger audit` rebuilds the ledger from the events and reports its balances.
//! Everything goes through the built binary, as an engineer would type it.

mod support;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::Duration;

use schemas::{EventBody, PaymentEvent, PostingPhase};
use serde_json::Value;
use support::*;
use tokio::task::block_in_place;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// Runs `payledger --env-file <stack> <args>` to completion.
fn payledger(args: &[&str]) -> Output {
    block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_payledger"))
            .arg("--env-file")
            .arg(&stack().env_file)
            .args(args)
            .env("PAYLEDGER_LOG", "warn,rdkafka=error,librdkafka=error")
            .output()
            .expect("run payledger")
    })
}

/// Runs `payledger <command>` (split at whitespace), which must succeed and print exactly
/// one JSON line; returns it.
fn json_line(command: &str) -> Value {
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = payledger(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "payledger {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON line from {args:?}, got:\n{stdout}"
    );
    let v: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    for field in ["partition", "offset"] {
        assert!(v[field].is_i64(), "{field} in {v}");
    }
    v
}

fn uuid(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("{field} is not a UUID in {v}"))
}

/// Reads events of `m` until there are `n`; panics with the ledger's log otherwise.
fn await_events(log: &mut EventLog, m: &str, n: usize, ledger: &Service) {
    let ms = [m.to_owned()];
    let got = block_in_place(|| log.read_until(&ms, WAIT, |ev| ev.len() >= n));
    assert!(
        got,
        "{} of {n} events for {m}: {:#?}\nledger log:\n{}",
        log.events.len(),
        log.events,
        ledger.log_text()
    );
}

/// No more events for `m` turn up (duplicates, late surprises).
fn assert_no_more_events(log: &mut EventLog, m: &str, n: usize) {
    let ms = [m.to_owned()];
    block_in_place(|| log.read_until(&ms, Duration::from_secs(3), |_| false));
    assert_eq!(log.events.len(), n, "{:#?}", log.events);
}

fn reason(e: &PaymentEvent) -> Option<&str> {
    match &e.body {
        EventBody::CommandRejected(r) => Some(&r.reason_code),
        _ => None,
    }
}

/// `payledger audit --merchant m --json`, which must pass; returns the report and m's entry.
fn audit(m: &str) -> (Value, Value) {
    let out = payledger(&["audit", "--merchant", m, "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "audit failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["failures"], serde_json::json!([]));
    let partitions = report["partitions"].as_array().expect("partitions");
    assert_eq!(
        partitions.len(),
        ledger::kafka::topics::MERCHANT_PARTITIONS as usize
    );
    for p in partitions {
        assert_eq!(p["identical"], true, "{p}");
        assert!(p["events"].is_u64() && p["restore_ms"].is_u64(), "{p}");
        assert!(p["snapshot_restore_ms"].is_u64(), "{p}");
    }
    for row in report["trial_balance"].as_array().expect("trial balance") {
        assert_eq!(row["balanced"], true, "{row}");
        assert_eq!(row["debits_posted"], row["credits_posted"], "{row}");
        assert_eq!(row["debits_pending"], row["credits_pending"], "{row}");
    }
    let merchants = report["merchants"].as_array().expect("merchants");
    assert_eq!(merchants.len(), 1, "only the merchant asked for");
    let merchant = merchants[0].clone();
    assert_eq!(merchant["merchant_id"], m);
    (report, merchant)
}

/// A merchant's accounts from the audit: (account, currency) → the four figures.
fn accounts(merchant: &Value) -> HashMap<(String, String), [String; 4]> {
    merchant["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            let s = |k: &str| {
                a[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {a}"))
                    .to_owned()
            };
            (
                (s("account"), s("currency")),
                [
                    s("debits_pending"),
                    s("debits_posted"),
                    s("credits_pending"),
                    s("credits_posted"),
                ],
            )
        })
        .collect()
}

fn figures(dp: &str, dpost: &str, cp: &str, cpost: &str) -> [String; 4] {
    [dp, dpost, cp, cpost].map(str::to_owned)
}

fn key(account: String, currency: &str) -> (String, String) {
    (account, currency.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_and_results_drive_a_payment_and_the_audit_shows_its_balances() {
    let _serial = serial().await;
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    // Snapshots every 2 events, so that the audit compares a fresh snapshot of this
    // merchant's partition with the full rebuild.
    let mut ledger = Service::ledger_snapshotting("cli", 2);
    let m = merchant();

    let auth = json_line(&format!(
        "publish authorize --merchant {m} --amount 10.00 --currency GBP --idempotency-key cli-auth"
    ));
    assert_eq!(auth["idempotency_key"], "cli-auth");
    let pay = uuid(&auth, "payment_id");
    let pay_s = pay.to_string();
    await_events(&mut log, &m, 1, &ledger);

    let approval = json_line(&format!(
        "gateway-result authorization --merchant {m} --payment-id {pay_s} --outcome approved --processor-reference ch_cli_1"
    ));
    uuid(&approval, "result_id");
    assert_eq!(approval["payment_id"], pay_s.as_str());
    await_events(&mut log, &m, 2, &ledger);

    // Commands and results travel on different topics: each step waits for the one before.
    let capture = json_line(&format!(
        "publish capture --merchant {m} --payment-id {pay_s} --amount 10.00 --currency GBP --idempotency-key cli-capture"
    ));
    await_events(&mut log, &m, 3, &ledger);
    // Nothing is held any more: one penny more is refused by the ledger.
    let too_much = json_line(&format!(
        "publish capture --merchant {m} --payment-id {pay_s} --amount 0.01 --currency GBP"
    ));
    await_events(&mut log, &m, 4, &ledger);
    let refund = json_line(&format!(
        "publish refund --merchant {m} --payment-id {pay_s} --amount 2.50 --currency GBP --idempotency-key cli-refund"
    ));
    await_events(&mut log, &m, 5, &ledger);
    assert_no_more_events(&mut log, &m, 5);

    let ev = &log.events;
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "PaymentAuthorizationRequested",
            "PaymentAuthorized",
            "PaymentCaptured",
            "CommandRejected",
            "PaymentRefunded",
        ]
    );
    // Each command's event carries the ids the CLI printed.
    for (event, printed) in [
        (&ev[0], &auth),
        (&ev[2], &capture),
        (&ev[3], &too_much),
        (&ev[4], &refund),
    ] {
        assert_eq!(uuid(printed, "command_id"), event.command_id);
        assert_eq!(printed["idempotency_key"], event.idempotency_key.as_str());
    }
    let payable = format!("merchant:{m}:payable");
    match &ev[0].body {
        EventBody::PaymentAuthorizationRequested(b) => {
            assert_eq!(b.payment_id, pay);
            assert_eq!(
                (b.amount.amount.as_str(), b.amount.currency.as_str()),
                ("10.00", "GBP")
            );
            assert_eq!(
                (b.processor.as_str(), b.payment_token.as_str()),
                ("stripe", "tok_visa")
            );
        }
        other => panic!("{other:?}"),
    }
    match &ev[1].body {
        EventBody::PaymentAuthorized(b) => {
            assert_eq!(b.amount.amount, "10.00");
            assert_eq!(b.processor_reference.as_deref(), Some("ch_cli_1"));
            let p = &b.postings[..];
            assert_eq!(p.len(), 1);
            assert_eq!(
                (p[0].debit_account.as_str(), p[0].credit_account.as_str()),
                ("processor:stripe:clearing", payable.as_str())
            );
            assert_eq!(
                (p[0].amount.amount.as_str(), p[0].phase),
                ("10.00", PostingPhase::Pending)
            );
        }
        other => panic!("{other:?}"),
    }
    match &ev[2].body {
        EventBody::PaymentCaptured(b) => {
            assert_eq!(b.amount.amount, "10.00");
            assert_eq!(b.postings.len(), 1);
            assert_eq!(
                (b.postings[0].amount.amount.as_str(), b.postings[0].phase),
                ("10.00", PostingPhase::PostPending)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reason(&ev[3]),
        Some("capture_exceeds_authorization"),
        "{:?}",
        ev[3]
    );
    match &ev[4].body {
        EventBody::PaymentRefunded(b) => {
            assert_eq!(
                (b.amount.amount.as_str(), b.amount.currency.as_str()),
                ("2.50", "GBP")
            );
            let p = &b.postings[0];
            assert_eq!(
                (p.debit_account.as_str(), p.credit_account.as_str()),
                (payable.as_str(), "processor:stripe:clearing")
            );
            assert_eq!(
                (p.amount.amount.as_str(), p.phase),
                ("2.50", PostingPhase::Posted)
            );
        }
        other => panic!("{other:?}"),
    }

    // The audit rebuilds the ledger from the topic and shows the merchant's books.
    let (report, merchant) = audit(&m);
    assert_eq!(merchant["sequence"], 5);
    let partition =
        &report["partitions"][merchant["partition"].as_u64().expect("partition") as usize];
    assert!(
        partition["snapshot"]["events_offset"].as_i64() > Some(0),
        "a snapshot of the merchant's partition: {partition:#}"
    );
    let got = accounts(&merchant);
    let want = HashMap::from([
        (
            key(payable.clone(), "GBP"),
            figures("0.00", "2.50", "0.00", "10.00"),
        ),
        (
            key("processor:stripe:clearing".into(), "GBP"),
            figures("0.00", "10.00", "0.00", "2.50"),
        ),
    ]);
    assert_eq!(got, want, "{merchant:#}");
    assert_eq!(
        merchant["payout_available"],
        serde_json::json!({"GBP": "7.50"})
    );
    assert_eq!(merchant["payments"], serde_json::json!({"captured": 1}));
    ledger.assert_running();
    ledger.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn void_payout_settlement_and_disputes_from_the_cli_balance_to_the_cent() {
    let _serial = serial().await;
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("cli");
    let m = merchant();
    let authorize = |amount: &str| {
        let v = json_line(&format!(
            "publish authorize --merchant {m} --amount {amount} --currency GBP"
        ));
        uuid(&v, "payment_id").to_string()
    };
    let a = authorize("20.00");
    let b = authorize("5.00");
    await_events(&mut log, &m, 2, &ledger);
    json_line(&format!(
        "gateway-result authorization --merchant {m} --payment-id {a} --outcome approved"
    ));
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    json_line(&format!(
        "gateway-result authorization --merchant {m} --payment-id {b} --outcome approved --source webhook --expires-at {tomorrow}"
    ));
    await_events(&mut log, &m, 4, &ledger);
    json_line(&format!(
        "publish capture --merchant {m} --payment-id {a} --amount 20.00 --currency GBP"
    ));
    json_line(&format!("publish void --merchant {m} --payment-id {b}"));
    await_events(&mut log, &m, 6, &ledger);
    let settled = json_line(&format!(
        "gateway-result settlement --merchant {m} --payment-id {a} --amount 20.00 --fee 0.60 --currency GBP --bank-account barclays-main"
    ));
    assert!(
        settled["settlement_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("st_"))
    );
    await_events(&mut log, &m, 7, &ledger);
    json_line(&format!(
        "gateway-result dispute-opened --merchant {m} --payment-id {a} --dispute-id dp-cli --amount 5.00 --currency GBP --reason fraudulent"
    ));
    await_events(&mut log, &m, 8, &ledger);
    json_line(&format!(
        "gateway-result dispute-closed --merchant {m} --payment-id {a} --dispute-id dp-cli --outcome won"
    ));
    await_events(&mut log, &m, 9, &ledger);
    let payout_id = Uuid::new_v4().to_string();
    let payout = json_line(&format!(
        "publish payout --merchant {m} --amount 12.00 --currency GBP --bank-account barclays-main --payout-id {payout_id}"
    ));
    assert_eq!(payout["payout_id"], payout_id.as_str());
    await_events(&mut log, &m, 10, &ledger);
    assert_no_more_events(&mut log, &m, 10);

    let kinds: Vec<&str> = log.events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "PaymentAuthorizationRequested",
            "PaymentAuthorizationRequested",
            "PaymentAuthorized",
            "PaymentAuthorized",
            "PaymentCaptured",
            "PaymentVoided",
            "PaymentSettled",
            "DisputeOpened",
            "DisputeClosed",
            "PayoutSent",
        ],
        "{:#?}",
        log.events
    );
    match &log.events[5].body {
        EventBody::PaymentVoided(v) => assert_eq!(v.released.amount, "5.00"),
        other => panic!("{other:?}"),
    }
    match &log.events[6].body {
        EventBody::PaymentSettled(s) => {
            assert_eq!(
                (s.amount.amount.as_str(), s.fee.amount.as_str()),
                ("20.00", "0.60")
            )
        }
        other => panic!("{other:?}"),
    }
    match &log.events[9].body {
        EventBody::PayoutSent(p) => {
            assert_eq!(p.payout_id.to_string(), payout_id);
            assert_eq!(
                (p.amount.amount.as_str(), p.bank_account.as_str()),
                ("12.00", "barclays-main")
            );
        }
        other => panic!("{other:?}"),
    }

    let (_, merchant) = audit(&m);
    assert_eq!(merchant["sequence"], 10);
    assert_eq!(merchant["payouts"], 1);
    let want = HashMap::from([
        (
            key(format!("merchant:{m}:payable"), "GBP"),
            figures("0.00", "12.00", "0.00", "20.00"),
        ),
        (
            key(format!("merchant:{m}:disputes"), "GBP"),
            figures("0.00", "0.00", "0.00", "0.00"),
        ),
        (
            key("processor:stripe:clearing".into(), "GBP"),
            figures("0.00", "20.00", "0.00", "20.00"),
        ),
        (
            key("platform:fees".into(), "GBP"),
            figures("0.00", "0.60", "0.00", "0.00"),
        ),
        (
            key("cash:barclays-main".into(), "GBP"),
            figures("0.00", "19.40", "0.00", "12.00"),
        ),
    ]);
    assert_eq!(accounts(&merchant), want, "{merchant:#}");
    assert_eq!(
        merchant["payout_available"],
        serde_json::json!({"GBP": "8.00"})
    );
    assert_eq!(
        merchant["payments"],
        serde_json::json!({"settled": 1, "voided": 1})
    );
    ledger.assert_running();
    ledger.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_amounts_pass_the_cli_and_the_ledger_rejects_them() {
    let _serial = serial().await;
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("cli");
    let m = merchant();
    let auth = json_line(&format!(
        "publish authorize --merchant {m} --amount 10.00 --currency GBP"
    ));
    let pay = uuid(&auth, "payment_id").to_string();
    await_events(&mut log, &m, 1, &ledger);
    json_line(&format!(
        "gateway-result authorization --merchant {m} --payment-id {pay} --outcome approved"
    ));
    await_events(&mut log, &m, 2, &ledger);

    // The CLI sends money as typed: the ledger is the authority on what is valid.
    let capture = json_line(&format!(
        "publish capture --merchant {m} --payment-id {pay} --amount 12,50 --currency GBP --idempotency-key cli-bad-capture"
    ));
    let payout = json_line(&format!(
        "publish payout --merchant {m} --amount 1e3 --currency GBP --bank-account barclays-main"
    ));
    await_events(&mut log, &m, 4, &ledger);
    assert_no_more_events(&mut log, &m, 4);
    for (event, printed) in [(&log.events[2], &capture), (&log.events[3], &payout)] {
        assert_eq!(reason(event), Some("invalid_amount"), "{event:?}");
        assert_eq!(uuid(printed, "command_id"), event.command_id);
        assert_eq!(printed["idempotency_key"], event.idempotency_key.as_str());
    }
    assert_eq!(log.events[2].idempotency_key, "cli-bad-capture");
    ledger.assert_running();
    ledger.stop();
}

//! End to end on the real stack: commands over SASL_SSL → ledger → events → PostgreSQL.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use rdkafka::message::OwnedHeaders;
use rust_decimal::Decimal;
use schemas::{CommandBody, EventBody, PaymentCommand, PaymentEvent, Subject};
use support::{
    EventLog, Service, authorize, dead_letters_until, dlq_watcher, merchant, serial, stack,
};
use tokio::task::block_in_place;

const WAIT: Duration = Duration::from_secs(90);
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What the ledger must make of a stream of commands.
#[derive(Default)]
struct Expected {
    /// idempotency key → (merchant, amount, currency) of accepted authorizations.
    accepted: HashMap<String, (String, String, String)>,
    /// idempotency key → reason code.
    rejected: HashMap<String, String>,
}

impl Expected {
    fn total(&self) -> usize {
        self.accepted.len() + self.rejected.len()
    }
}

fn body_amount(cmd: &PaymentCommand) -> (String, String) {
    let CommandBody::AuthorizePayment(a) = &cmd.body else {
        unreachable!("the plan holds authorizations")
    };
    (a.amount.amount.clone(), a.amount.currency.clone())
}

/// Checks the events against the plan: one event per key, exact amounts, right reasons,
/// per-merchant sequences 1..n with no gap and no repeat.
fn check_events(events: &[PaymentEvent], expected: &Expected) {
    let mut by_key: HashMap<&str, Vec<&PaymentEvent>> = HashMap::new();
    for e in events {
        by_key
            .entry(e.idempotency_key.as_str())
            .or_default()
            .push(e);
    }
    for (key, list) in &by_key {
        assert_eq!(
            list.len(),
            1,
            "key {key} has {} events: {list:?}",
            list.len()
        );
    }
    for (key, (merchant, amount, currency)) in &expected.accepted {
        let e = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("no event for accepted key {key}"))[0];
        assert_eq!(&e.merchant_id, merchant);
        match &e.body {
            EventBody::PaymentAuthorizationRequested(b) => {
                assert_eq!(
                    (&b.amount.amount, &b.amount.currency),
                    (amount, currency),
                    "key {key}"
                );
            }
            other => panic!("key {key} should be accepted, got {other:?}"),
        }
    }
    for (key, reason) in &expected.rejected {
        let e = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("no event for rejected key {key}"))[0];
        match &e.body {
            EventBody::CommandRejected(r) => assert_eq!(&r.reason_code, reason, "key {key}"),
            other => panic!("key {key} should be rejected ({reason}), got {other:?}"),
        }
    }
    assert_eq!(events.len(), expected.total(), "events beyond the plan");
    let mut sequences: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for e in events {
        sequences
            .entry(e.merchant_id.as_str())
            .or_default()
            .push(e.merchant_sequence);
    }
    for (merchant, seq) in sequences {
        let want: Vec<i64> = (1..=seq.len() as i64).collect();
        assert_eq!(
            seq, want,
            "merchant {merchant}: sequences must be 1..n in topic order"
        );
    }
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
}

/// `n` commands spread over `merchants`: every 10th is too precise for its currency
/// (rejected), every 10th a retry of the previous command (a duplicate: nothing new), the rest
/// accepted. Returns the commands and what the ledger must make of them.
fn plan(merchants: &[String], n: usize) -> (Vec<PaymentCommand>, Expected) {
    let currencies = [("GBP", 2), ("JPY", 0), ("BHD", 3), ("EUR", 2)];
    let mut expected = Expected::default();
    let mut plan = Vec::new();
    let mut last: Option<PaymentCommand> = None;
    for i in 0..n {
        let m = &merchants[i % merchants.len()];
        let (currency, exp) = currencies[i % currencies.len()];
        if i % 10 == 9 {
            let mut retry = last.clone().expect("a previous command");
            retry.command_id = uuid::Uuid::new_v4();
            plan.push(retry);
            continue;
        }
        let amount = if i % 10 == 7 {
            format!("1.{}", "5".repeat(exp + 1))
        } else if exp == 0 {
            format!("{}", 100 + i)
        } else {
            format!(
                "{}.{:0width$}",
                i + 1,
                i % 10usize.pow(exp as u32),
                width = exp
            )
        };
        let cmd = authorize(m, &format!("k-{i}"), &amount, currency);
        if i % 10 == 7 {
            expected
                .rejected
                .insert(cmd.idempotency_key.clone(), "amount_precision".into());
        } else {
            let (a, c) = body_amount(&cmd);
            expected
                .accepted
                .insert(cmd.idempotency_key.clone(), (m.clone(), a, c));
        }
        last = Some(cmd.clone());
        plan.push(cmd);
    }

    (plan, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_a_kill_9_of_the_ledger() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let pool = s.db().await;
    let mut ledger = Service::ledger("e2e");
    let mut projector = Service::projector();
    let publisher = s.publisher();
    let merchants: Vec<String> = (0..4).map(|_| merchant()).collect();

    let (plan, expected) = plan(&merchants, 300);

    let sender = tokio::spawn(async move {
        for cmd in plan {
            publisher
                .publish(&cmd, Some(TRACEPARENT))
                .await
                .expect("publish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        publisher
    });

    // Let the ledger get going, then kill it without warning in the middle of the stream.
    let started = block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= 40));
    ledger.assert_running();
    assert!(
        started,
        "ledger produced no events; log:\n{}",
        ledger.log_text()
    );
    ledger.kill_9();
    let seen_at_kill = log.events.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ledger = Service::ledger("e2e");
    let publisher = sender.await.expect("sender");

    let complete =
        block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= expected.total()));
    assert!(
        complete,
        "saw {} of {} events (at kill: {seen_at_kill}); ledger log:\n{}",
        log.events.len(),
        expected.total(),
        ledger.log_text()
    );
    // Anything written twice would arrive right behind: give it time to show up.
    block_in_place(|| log.read_until(&merchants, Duration::from_secs(3), |_| false));
    check_events(&log.events, &expected);
    assert!(
        seen_at_kill < expected.total(),
        "the kill must land mid-stream"
    );

    // State after the restart came from the events topic: a reused key and a reused payment
    // id are still recognised.
    let original = log
        .events
        .iter()
        .find(|e| matches!(e.body, EventBody::PaymentAuthorizationRequested(_)))
        .unwrap()
        .clone();
    let EventBody::PaymentAuthorizationRequested(first) = &original.body else {
        unreachable!()
    };
    let mut reuse_key = authorize(
        &original.merchant_id,
        &original.idempotency_key,
        "999.99",
        "GBP",
    );
    reuse_key.command_id = uuid::Uuid::new_v4();
    let mut reuse_payment = authorize(&original.merchant_id, "k-reuse-payment", "1.00", "GBP");
    let CommandBody::AuthorizePayment(a) = &mut reuse_payment.body else {
        unreachable!()
    };
    a.payment_id = first.payment_id;
    publisher.publish(&reuse_key, None).await.unwrap();
    publisher.publish(&reuse_payment, None).await.unwrap();
    let n = log.events.len();
    assert!(block_in_place(
        || log.read_until(&merchants, WAIT, |e| e.len() >= n + 2)
    ));
    let reasons: Vec<String> = log.events[n..]
        .iter()
        .map(|e| match &e.body {
            EventBody::CommandRejected(r) => r.reason_code.clone(),
            other => panic!("expected rejections, got {other:?}"),
        })
        .collect();
    assert_eq!(reasons, ["idempotency_key_reused", "duplicate_payment"]);

    // The read model: every accepted payment once, exact amounts, every rejection.
    let deadline = std::time::Instant::now() + WAIT;
    let merchant_list: Vec<String> = merchants.clone();
    loop {
        let (payments, rejections): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM payments WHERE merchant_id = ANY($1)),
                    (SELECT count(*) FROM command_rejections WHERE merchant_id = ANY($1))",
        )
        .bind(&merchant_list)
        .fetch_one(&pool)
        .await
        .unwrap();
        if payments as usize == expected.accepted.len()
            && rejections as usize == expected.rejected.len() + 2
        {
            break;
        }
        projector.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "read model has {payments} payments / {rejections} rejections; projector log:\n{}",
            projector.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows: Vec<(String, String, Decimal, String, String)> = sqlx::query_as(
        "SELECT idempotency_key, merchant_id, amount, currency::text, status FROM payments WHERE merchant_id = ANY($1)",
    )
    .bind(&merchant_list)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    for (key, merchant, amount, currency, status) in &rows {
        let (m, a, c) = &expected.accepted[key];
        assert_eq!(
            (merchant, currency, status.as_str()),
            (m, c, "authorization_requested")
        );
        assert_eq!(*amount, Decimal::from_str(a).unwrap(), "key {key}");
        assert_eq!(
            amount.to_string(),
            *a,
            "the read model keeps the currency's scale"
        );
        *totals.entry(currency.clone()).or_default() += amount;
    }
    let mut want: BTreeMap<String, Decimal> = BTreeMap::new();
    for (_, a, c) in expected.accepted.values() {
        *want.entry(c.clone()).or_default() += Decimal::from_str(a).unwrap();
    }
    assert_eq!(totals, want, "per-currency totals are exact");
    let reasons: Vec<(String, i64)> = sqlx::query_as(
        "SELECT reason_code, count(*) FROM command_rejections WHERE merchant_id = ANY($1) GROUP BY 1 ORDER BY 1",
    )
    .bind(&merchant_list)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        reasons,
        vec![
            (
                "amount_precision".to_owned(),
                expected.rejected.len() as i64
            ),
            ("duplicate_payment".to_owned(), 1),
            ("idempotency_key_reused".to_owned(), 1),
        ]
    );
    ledger.stop();
    projector.stop();
    // Whatever the services logged, their passwords are not in it.
    for (service, role) in [(&ledger, "LEDGER"), (&projector, "PROJECTOR")] {
        let password = s.var(&format!("PAYLEDGER_KAFKA_PASSWORD_{role}"));
        let log = service.log_text();
        assert!(!log.is_empty(), "{} logged nothing", service.name);
        assert!(
            !log.contains(password),
            "{} logged its Kafka password",
            service.name
        );
    }
    let db_url = s.var("PAYLEDGER_DATABASE_URL");
    let db_password = db_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(cred, _)| cred.split_once(':'))
        .map(|(_, p)| p)
        .expect("a password in the database URL");
    assert!(
        !projector.log_text().contains(db_password),
        "the projector logged its database password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_dead_lettered_with_reason_and_origin_and_the_stream_goes_on() {
    let _serial = serial().await;
    let s = stack();
    let dlq = dlq_watcher();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("dlq");
    let publisher = s.publisher();
    let m = merchant();

    let not_avro = publisher
        .send_raw(
            m.as_bytes(),
            br#"{"json":"is not the contract"}"#,
            OwnedHeaders::new(),
        )
        .await
        .unwrap();
    let mut unknown_id = vec![0u8, 0x7f, 0xff, 0xff, 0xf0];
    unknown_id.extend_from_slice(b"\x02\x04\x06");
    let unknown_schema = publisher
        .send_raw(m.as_bytes(), &unknown_id, OwnedHeaders::new())
        .await
        .unwrap();
    // A real schema id with a body cut short.
    let codec = s.codec();
    let good = codec
        .encode_command(&authorize(&m, "truncated", "1.00", "GBP"))
        .await
        .unwrap();
    let truncated = publisher
        .send_raw(m.as_bytes(), &good[..good.len() / 2], OwnedHeaders::new())
        .await
        .unwrap();
    // A valid command keyed by someone else: it may sit on another merchant's partition.
    let wrong_key_cmd = authorize(&m, "wrong-key", "1.00", "GBP");
    let wrong_key_bytes = codec.encode_command(&wrong_key_cmd).await.unwrap();
    let wrong_key = publisher
        .send_raw(b"another-merchant", &wrong_key_bytes, OwnedHeaders::new())
        .await
        .unwrap();
    // And the stream goes on: the next valid command is decided.
    let valid = authorize(&m, "after-the-bad-ones", "42.00", "USD");
    publisher.publish(&valid, None).await.unwrap();

    let letters = block_in_place(|| dead_letters_until(&dlq, WAIT, |l| l.len() >= 4));
    let merchants = vec![m.clone()];
    let got_valid = block_in_place(|| log.read_until(&merchants, WAIT, |e| !e.is_empty()));
    ledger.assert_running();
    assert!(
        got_valid,
        "the valid command after the bad ones was not decided; log:\n{}",
        ledger.log_text()
    );
    assert_eq!(log.events[0].idempotency_key, "after-the-bad-ones");
    assert_eq!(letters.len(), 4, "{letters:?}");
    let expect = [
        (
            not_avro,
            "invalid_wire_format",
            br#"{"json":"is not the contract"}"#.to_vec(),
        ),
        (unknown_schema, "unknown_schema_id", unknown_id.clone()),
        (
            truncated,
            "undecodable_payload",
            good[..good.len() / 2].to_vec(),
        ),
        (wrong_key, "key_mismatch", wrong_key_bytes.clone()),
    ];
    for (at, reason, payload) in expect {
        let (info, body) = letters
            .iter()
            .find(|(i, _)| i.source_partition == at.partition && i.source_offset == at.offset)
            .unwrap_or_else(|| panic!("no dead letter for {at:?} ({reason}); got {letters:?}"));
        assert_eq!(info.reason_code, reason);
        assert_eq!(info.source_topic, Subject::COMMANDS.topic);
        assert_eq!(info.service, "ledger");
        assert!(!info.detail.is_empty() && !info.failed_at.is_empty());
        assert_eq!(
            body.as_deref(),
            Some(payload.as_slice()),
            "the record is kept verbatim"
        );
    }

    // The engineer's way out: redrive the mis-keyed command, keyed by its merchant this time.
    // (It redrives older runs' key_mismatch letters too: their merchants are their own, and a
    // command decided before is a duplicate to the ledger.)
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("--env-file")
        .arg(&s.env_file)
        .args([
            "dlq",
            "redrive",
            "--reason",
            "key_mismatch",
            "--rekey-by-merchant",
        ])
        .env("PAYLEDGER_LOG", "warn")
        .output()
        .expect("payledger dlq redrive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redrive failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "from payments.commands/{}@{}",
            wrong_key.partition, wrong_key.offset
        )),
        "{stdout}"
    );
    let redriven = block_in_place(|| {
        log.read_until(&merchants, WAIT, |e| {
            e.iter().any(|e| e.idempotency_key == "wrong-key")
        })
    });
    assert!(
        redriven,
        "the redriven command was not decided; log:\n{}",
        ledger.log_text()
    );
    let e = log
        .events
        .iter()
        .find(|e| e.idempotency_key == "wrong-key")
        .unwrap();
    assert_eq!(e.command_id, wrong_key_cmd.command_id);
    assert_eq!(e.kind(), "PaymentAuthorizationRequested");
    ledger.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_commands_each_get_a_rejection_with_the_right_reason() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut ledger = Service::ledger("rejections");
    let publisher = s.publisher();
    let m = merchant();
    let mut cases: Vec<(PaymentCommand, &str)> = vec![
        (authorize(&m, "r1", "10.555", "GBP"), "amount_precision"),
        (authorize(&m, "r2", "1.5", "JPY"), "amount_precision"),
        (authorize(&m, "r3", "-3.00", "EUR"), "amount_not_positive"),
        (authorize(&m, "r4", "3.00", "XYZ"), "unsupported_currency"),
        (authorize(&m, "r5", "three", "EUR"), "invalid_amount"),
    ];
    let mut pan = authorize(&m, "r6", "5.00", "EUR");
    let CommandBody::AuthorizePayment(a) = &mut pan.body else {
        unreachable!()
    };
    a.payment_token = "4111111111111111".into();
    cases.push((pan, "card_number_rejected"));
    let mut processor = authorize(&m, "r7", "5.00", "EUR");
    let CommandBody::AuthorizePayment(a) = &mut processor.body else {
        unreachable!()
    };
    a.processor = "acme-pay".into();
    cases.push((processor, "unknown_processor"));
    for (cmd, _) in &cases {
        publisher.publish(cmd, None).await.unwrap();
    }
    let merchants = vec![m.clone()];
    let done = block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= cases.len()));
    assert!(done, "log:\n{}", ledger.log_text());
    for (cmd, reason) in &cases {
        let e = log
            .events
            .iter()
            .find(|e| e.command_id == cmd.command_id)
            .expect("one event per command");
        match &e.body {
            EventBody::CommandRejected(r) => {
                assert_eq!(&r.reason_code, reason, "{}", cmd.idempotency_key);
                assert!(
                    !r.detail.contains("4111"),
                    "a rejection never echoes a card number"
                );
            }
            other => panic!("{} should be rejected, got {other:?}", cmd.idempotency_key),
        }
    }
    ledger.assert_running();
    ledger.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ledger_joining_mid_stream_changes_nothing() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let mut first = Service::ledger("rebalance-a");
    let publisher = s.publisher();
    // Enough merchants that both instances get partitions with work on them.
    let merchants: Vec<String> = (0..12).map(|_| merchant()).collect();
    let (plan, expected) = plan(&merchants, 300);
    // The first half goes to the first instance alone; the second half is sent only once the
    // second instance has its partitions, so the stream really does continue across the join.
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let half = plan.len() / 2;
        let mut gate = Some(gate);
        for (i, cmd) in plan.into_iter().enumerate() {
            if i == half {
                gate.take().expect("once").await.expect("go");
            }
            publisher.publish(&cmd, None).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let started = block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= 40));
    assert!(started, "no events; log:\n{}", first.log_text());
    let mut second = Service::ledger("rebalance-b");
    let deadline = std::time::Instant::now() + WAIT;
    while !second.log_text().contains("partitions assigned") {
        second.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "the second instance got no partitions:\n{}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_join = log.events.len();
    go.send(()).expect("sender waiting");
    sender.await.expect("sender");
    let complete =
        block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= expected.total()));
    assert!(
        complete,
        "saw {} of {} events; first log:\n{}\nsecond log:\n{}",
        log.events.len(),
        expected.total(),
        first.log_text(),
        second.log_text()
    );
    block_in_place(|| log.read_until(&merchants, Duration::from_secs(3), |_| false));
    check_events(&log.events, &expected);
    assert!(
        at_join < expected.total(),
        "the second instance must join mid-stream"
    );
    first.assert_running();
    second.assert_running();
    assert!(
        second.log_text().contains("partition state restored"),
        "the second instance took over partitions and decided commands; its log:\n{}",
        second.log_text()
    );
    first.stop();
    second.stop();
}

/// A second process started with the same instance id (a pod restarted while the old one is
/// still alive) fences the first: the first must stop writing and exit, and not one event may
/// be lost or written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_twice_fences_the_older_process() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let merchants: Vec<String> = (0..4).map(|_| merchant()).collect();
    let (plan, expected) = plan(&merchants, 200);
    let publisher = s.publisher();
    let mut old = Service::ledger("twin");
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let half = plan.len() / 2;
        let mut gate = Some(gate);
        for (i, cmd) in plan.into_iter().enumerate() {
            if i == half {
                gate.take().expect("once").await.expect("go");
            }
            publisher.publish(&cmd, None).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert!(
        block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= 20)),
        "no events; log:\n{}",
        old.log_text()
    );
    let mut new = Service::ledger("twin");
    go.send(()).expect("sender waiting");
    sender.await.expect("sender");
    let fenced = block_in_place(|| old.wait_exit(WAIT));
    assert!(
        fenced.is_some_and(|s| !s.success()),
        "the older process must stop once fenced ({fenced:?}); its log:\n{}",
        old.log_text()
    );
    assert!(old.log_text().contains("fenced"), "{}", old.log_text());
    let complete =
        block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= expected.total()));
    assert!(
        complete,
        "saw {} of {}; new log:\n{}",
        log.events.len(),
        expected.total(),
        new.log_text()
    );
    block_in_place(|| log.read_until(&merchants, Duration::from_secs(3), |_| false));
    check_events(&log.events, &expected);
    new.assert_running();
    new.stop();
}

/// A zombie: an instance frozen (think of a long GC pause or a stalled VM) long enough for the
/// group to give its partitions to another instance, then thawed in the middle of its work.
/// Its transactional id is its own, so only the group generation (KIP-447: the offsets
/// committed in every transaction carry it) can stop it. Nothing may be written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_that_wakes_up_after_a_rebalance_writes_nothing_twice() {
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let merchants: Vec<String> = (0..8).map(|_| merchant()).collect();
    let (plan, expected) = plan(&merchants, 300);
    let publisher = s.publisher();
    let mut zombie = Service::ledger("zombie-a");
    let sender = tokio::spawn(async move {
        for cmd in plan {
            publisher.publish(&cmd, None).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    assert!(
        block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= 30)),
        "no events; log:\n{}",
        zombie.log_text()
    );
    zombie.signal("STOP");
    let mut heir = Service::ledger("zombie-b");
    // The heir gets every partition once the frozen member's session (10 s) has expired.
    let before = log.events.len();
    let moved_on = block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= before + 30));
    assert!(
        moved_on,
        "the heir took over nothing; its log:\n{}",
        heir.log_text()
    );
    zombie.signal("CONT");
    sender.await.expect("sender");
    let complete =
        block_in_place(|| log.read_until(&merchants, WAIT, |e| e.len() >= expected.total()));
    assert!(
        complete,
        "saw {} of {}; zombie log:\n{}\nheir log:\n{}",
        log.events.len(),
        expected.total(),
        zombie.log_text(),
        heir.log_text()
    );
    block_in_place(|| log.read_until(&merchants, Duration::from_secs(5), |_| false));
    check_events(&log.events, &expected);
    heir.assert_running();
    heir.stop();
    zombie.stop();
}

/// A ledger that died with a transaction open, under an id that never comes back (a pod
/// scaled away), leaves the end of its events partition held back for `read_committed`
/// readers until the broker aborts that transaction (after its 60 s timeout). Events
/// committed after the open one exist but cannot be read yet: a restore that stopped there
/// would decide on a state without them and write the merchant's sequence numbers twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_waits_for_a_transaction_left_open_before_the_end_of_its_partition() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let _serial = serial().await;
    let s = stack();
    let mut log = EventLog::from_now(tokio::runtime::Handle::current());
    let publisher = s.publisher();
    let m = merchant();
    let ms = std::slice::from_ref(&m);
    let mut first = Service::ledger("open-txn-1");
    publisher
        .publish(&authorize(&m, "k-1", "1.00", "EUR"), None)
        .await
        .expect("publish");
    assert!(
        block_in_place(|| log.read_until(ms, WAIT, |e| e.len() == 1)),
        "{}",
        first.log_text()
    );

    // A dead ledger's transaction, left open on the merchant's partition (murmur2 on the key,
    // like every payledger producer).
    let zombie: BaseProducer = s
        .kafka(ledger::kafka::Role::Ledger)
        .transactional_producer("payledger-ledger-open-txn-zombie")
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(30);
    zombie.init_transactions(timeout).expect("init");
    zombie.begin_transaction().expect("begin");
    zombie
        .send(
            BaseRecord::to(ledger::kafka::topics::EVENTS)
                .key(m.as_bytes())
                .payload(&b"never committed"[..]),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    zombie.flush(timeout).expect("flush");

    // Committed behind the open transaction: invisible to read_committed readers for now.
    publisher
        .publish(&authorize(&m, "k-2", "2.00", "EUR"), None)
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop();
    let mut second = Service::ledger("open-txn-2");
    publisher
        .publish(&authorize(&m, "k-3", "3.00", "EUR"), None)
        .await
        .expect("publish");
    // Give the restore time to meet the open transaction, then end it as the broker would.
    tokio::time::sleep(Duration::from_secs(4)).await;
    zombie.abort_transaction(timeout).expect("abort");

    let complete = block_in_place(|| log.read_until(ms, WAIT, |e| e.len() >= 3));
    assert!(
        complete,
        "saw {:?}; log:\n{}",
        log.events,
        second.log_text()
    );
    block_in_place(|| log.read_until(ms, Duration::from_secs(3), |_| false));
    let seen: Vec<(i64, &str)> = log
        .events
        .iter()
        .map(|e| (e.merchant_sequence, e.idempotency_key.as_str()))
        .collect();
    assert_eq!(seen, vec![(1, "k-1"), (2, "k-2"), (3, "k-3")]);
    assert!(
        second.log_text().contains("an open transaction holds back"),
        "the restore must have waited; log:\n{}",
        second.log_text()
    );
    second.assert_running();
    second.stop();
}

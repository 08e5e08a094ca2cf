//! End-to-end load benchmark of the ledger stage on the local SASL_SSL broker, printed next
//! to Kafka's own producer throughput on the same broker, measured in the same run.
//!
//! ```sh
//! scripts/stack up && cargo bench --bench ledger_e2e
//! ```
//!
//! 1. Baseline: `org.apache.kafka.tools.ProducerPerformance` (from the stack's jars) sends
//!    records of the same size as an encoded command, `acks=all`, idempotent, SASL_SSL.
//! 2. Throughput: N commands are published while no ledger runs, then a ledger (release build)
//!    starts and drains them: commands per second from its first event to its last.
//! 3. Latency: with the ledger running, commands are published at a steady rate; command →
//!    event latency is the event record's timestamp minus the command record's (one clock).
//!
//! Knobs: `PAYLEDGER_BENCH_COMMANDS` (default 20000), `PAYLEDGER_BENCH_RATE` (default 500/s),
//! `PAYLEDGER_BENCH_SECONDS` (default 5). Under `cargo test` (no `--bench`) it does nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::message::Timestamp;
use schemas::RegistryCodec;
use support::{Service, Watcher, authorize, stack};
use tokio::task::JoinSet;
use uuid::Uuid;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn millis(ts: Timestamp) -> i64 {
    ts.to_millis().expect("records carry timestamps")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Runs ProducerPerformance and returns its summary line.
fn kafka_baseline(records: u64, record_size: usize) -> String {
    let s = stack();
    let topic = "payledger.bench.baseline";
    let props = s.var("PAYLEDGER_KAFKA_CLIENT_PROPERTIES");
    let cp = s.var("PAYLEDGER_KAFKA_CLASSPATH");
    let java = |class: &str, args: &[&str]| {
        Command::new("java")
            .args(["-cp", cp, "-Xmx512m", class])
            .args(args)
            .output()
            .expect("java")
    };
    // The admin principal owns this scratch topic; it is not one of payledger's topics.
    let _ = java(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            s.var("PAYLEDGER_KAFKA_BOOTSTRAP"),
            "--command-config",
            props,
            "--create",
            "--if-not-exists",
            "--topic",
            topic,
            "--partitions",
            "6",
        ],
    );
    let out = java(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            topic,
            "--num-records",
            &records.to_string(),
            "--record-size",
            &record_size.to_string(),
            "--throughput",
            "-1",
            "--command-config",
            props,
            "--producer-props",
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
            "compression.type=lz4",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find(|l| l.contains("records sent"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "ProducerPerformance said: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Publishes `commands` concurrently (at `rate` per second, or as fast as possible); returns
/// their ids once all are acknowledged.
async fn publish_all(commands: Vec<schemas::PaymentCommand>, rate: Option<u64>) -> HashSet<Uuid> {
    let publisher = Arc::new(stack().publisher());
    let codec = stack().codec();
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for (i, cmd) in commands.into_iter().enumerate() {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let publisher = publisher.clone();
        let codec = codec.clone();
        tasks.spawn(async move {
            let bytes = codec.encode_command(&cmd).await.expect("encode");
            publisher
                .send_raw(
                    cmd.merchant_id.as_bytes(),
                    &bytes,
                    rdkafka::message::OwnedHeaders::new(),
                )
                .await
                .expect("publish");
            cmd.command_id
        });
    }
    let mut sent = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        sent.insert(done.expect("task"));
    }
    sent
}

fn commands(n: u64, merchants: &[String]) -> Vec<schemas::PaymentCommand> {
    (0..n)
        .map(|i| {
            let m = &merchants[i as usize % merchants.len()];
            authorize(
                m,
                &format!("bench-{i}"),
                &format!("{}.{:02}", 1 + i % 500, i % 100),
                "EUR",
            )
        })
        .collect()
}

/// Reads `watcher` until a record has been seen for every id in `ids`; returns id → record
/// timestamp. `id_of` decodes a record's payload into the id it answers for, if any.
fn record_timestamps(
    watcher: &Watcher,
    ids: &HashSet<Uuid>,
    wait: Duration,
    id_of: impl Fn(&RegistryCodec, Option<&[u8]>) -> Option<Uuid>,
) -> HashMap<Uuid, i64> {
    let codec = stack().codec();
    let mut seen = HashMap::new();
    let complete = watcher.until(wait, |m| {
        if let Some(id) = id_of(&codec, m.payload()).filter(|id| ids.contains(id)) {
            seen.insert(id, millis(m.timestamp()));
        }
        seen.len() == ids.len()
    });
    assert!(complete, "saw {} of {} records", seen.len(), ids.len());
    seen
}

/// Event timestamps, keyed by the command each event answers.
fn await_events(watcher: &Watcher, ids: &HashSet<Uuid>, wait: Duration) -> HashMap<Uuid, i64> {
    let rt = tokio::runtime::Handle::current();
    record_timestamps(watcher, ids, wait, |codec, payload| {
        Some(
            rt.block_on(codec.decode_event(payload))
                .expect("decode")
                .command_id,
        )
    })
}

/// Command record timestamps, read back from `payments.commands` (the broker's copy).
fn command_timestamps(watcher: &Watcher, ids: &HashSet<Uuid>) -> HashMap<Uuid, i64> {
    let rt = tokio::runtime::Handle::current();
    record_timestamps(watcher, ids, Duration::from_secs(60), |codec, payload| {
        rt.block_on(codec.decode_command(payload))
            .ok()
            .map(|c| c.command_id)
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("ledger_e2e: a load benchmark; run it with `cargo bench --bench ledger_e2e`");
        return;
    }
    let n = knob("PAYLEDGER_BENCH_COMMANDS", 20_000);
    let rate = knob("PAYLEDGER_BENCH_RATE", 500);
    let seconds = knob("PAYLEDGER_BENCH_SECONDS", 5);
    let merchants: Vec<String> = (0..60)
        .map(|i| format!("bench-{}-{i}", &Uuid::new_v4().simple().to_string()[..8]))
        .collect();
    let sample = stack()
        .codec()
        .encode_command(&commands(1, &merchants)[0])
        .await
        .expect("encode");

    println!(
        "== baseline: Kafka ProducerPerformance, {n} records of {} bytes, acks=all, idempotent, SASL_SSL",
        sample.len()
    );
    let baseline = tokio::task::block_in_place(|| kafka_baseline(n, sample.len()));
    println!("   {baseline}");

    println!(
        "== ledger throughput: drain {n} queued commands (consume, decode, decide, encode, transactional produce + offset commit)"
    );
    let ev_watch = Watcher::from_now(ledger::kafka::topics::EVENTS);
    let sent = publish_all(commands(n, &merchants), None).await;
    let mut ledger = Service::start("bench-ledger", &["ledger", "--instance-id", "bench"]);
    let events =
        tokio::task::block_in_place(|| await_events(&ev_watch, &sent, Duration::from_secs(600)));
    let first = *events.values().min().unwrap();
    let last = *events.values().max().unwrap();
    let span = ((last - first).max(1)) as f64 / 1000.0;
    println!(
        "   {} events in {:.2} s: {:.0} commands/s sustained",
        events.len(),
        span,
        events.len() as f64 / span
    );

    let paced = rate * seconds;
    println!("== ledger latency: {paced} commands at {rate}/s, command record → event record");
    let cmd_watch = Watcher::from_now(ledger::kafka::topics::COMMANDS);
    let ev_watch = Watcher::from_now(ledger::kafka::topics::EVENTS);
    let offset = n;
    let batch: Vec<_> = commands(offset + paced, &merchants)
        .into_iter()
        .skip(offset as usize)
        .collect();
    let sent = publish_all(batch, Some(rate)).await;
    let events =
        tokio::task::block_in_place(|| await_events(&ev_watch, &sent, Duration::from_secs(300)));
    let sent_at = tokio::task::block_in_place(|| command_timestamps(&cmd_watch, &sent));
    let mut latencies: Vec<i64> = events.iter().map(|(id, at)| at - sent_at[id]).collect();
    latencies.sort_unstable();
    println!(
        "   p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} samples)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        latencies.len()
    );
    ledger.assert_running();
    ledger.stop();
}

//! The ledger service: the I/O shell around `decide` and `evolve`.
//!
//! One loop, one thread: poll a batch of commands and gateway results, decide each against the
//! in-memory state of its partition, and in ONE Kafka transaction write the resulting events
//! (or dead letters), any expiries that fell due, any snapshot that is due, and commit the
//! consumed offsets. A crash anywhere before the commit leaves no trace; the batch is consumed
//! again and decided again from state rebuilt out of committed events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use schemas::{PaymentEvent, RegistryCodec};
use thiserror::Error;
use tokio::runtime::Handle;
use tracing::{debug, error, info, info_span, warn};

use crate::decide::{decide, decide_result, expire};
use crate::evolve::{EvolveError, evolve};
use crate::kafka::dlq::DeadLetter;
use crate::kafka::restore::{RESTORE_TIMEOUT, RestoreError, StartFrom, restore_partitions};
use crate::kafka::snapshots;
use crate::kafka::topics::{self, COMMANDS, DLQ, EVENTS, GATEWAY_RESULTS, SNAPSHOTS};
use crate::kafka::{KafkaSettings, headers};
use crate::snapshot;
use crate::state::PartitionState;

/// The consumer group every ledger instance joins.
pub const GROUP_ID: &str = "payledger-ledger";

/// The most commands decided in one transaction. Bounds memory and the work redone after an
/// abort.
pub const MAX_BATCH: usize = 2000;

const TXN_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a batch may wait for more commands after its first one: the latency the ledger
/// trades for fewer, larger transactions.
const BATCH_LINGER: Duration = Duration::from_millis(10);

/// Events per partition between snapshots, by default.
pub const SNAPSHOT_EVERY: u64 = 10_000;

/// How often the ledger looks for authorizations whose hold expired.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub settings: KafkaSettings,
    /// Stable per instance (e.g. the pod name): the transactional id derives from it, and a
    /// restarted instance with the same id fences its predecessor.
    pub instance_id: String,
    pub max_batch: usize,
    /// Write a partition's snapshot once this many events followed the last one (0: never).
    pub snapshot_every: u64,
}

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] topics::TopicError),
    #[error("restore: {0}")]
    Restore(#[from] RestoreError),
    #[error("state and events disagree (a bug; stopping rather than deciding on it): {0}")]
    Evolve(#[from] EvolveError),
    #[error(
        "this instance was fenced by a newer one with the same transactional id or group generation: {0}"
    )]
    Fenced(KafkaError),
}

/// Counts rebalances, so the loop knows when its in-memory state may be stale.
#[derive(Default)]
pub struct RebalanceTracker {
    generation: AtomicU64,
}

impl ClientContext for RebalanceTracker {}

impl ConsumerContext for RebalanceTracker {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(tpl) => info!(partitions = ?partitions(tpl), "partitions assigned"),
            Rebalance::Revoke(tpl) => info!(partitions = ?partitions(tpl), "partitions revoked"),
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Counters a caller (or a test) can read while the ledger runs.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub batches_committed: AtomicU64,
    pub commands: AtomicU64,
    pub events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub aborts: AtomicU64,
    pub expiries: AtomicU64,
    pub snapshots: AtomicU64,
}

/// Remembers the offset of the last event acknowledged per partition of `payments.events`,
/// so that a snapshot can say which events it covers.
#[derive(Default)]
pub struct DeliveryTracker {
    last_event_offset: Mutex<HashMap<i32, i64>>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        // Failed deliveries need no handling here: the transaction then fails to commit.
        if let Ok(m) = result
            && m.topic() == EVENTS
        {
            let mut offsets = self.last_event_offset.lock().expect("not poisoned");
            let last = offsets.entry(m.partition()).or_insert(m.offset());
            *last = (*last).max(m.offset());
        }
    }
}

impl DeliveryTracker {
    fn take(&self) -> HashMap<i32, i64> {
        std::mem::take(&mut *self.last_event_offset.lock().expect("not poisoned"))
    }
}

/// Runs the ledger until `stop` is set. Blocking: call it from a dedicated thread (or
/// `spawn_blocking`); `rt` runs the registry codec's async calls.
pub fn run(
    config: &LedgerConfig,
    codec: Arc<RegistryCodec>,
    rt: Handle,
    stop: Arc<AtomicBool>,
    stats: Arc<LedgerStats>,
) -> Result<(), LedgerError> {
    let transactional_id = format!("{GROUP_ID}-{}", config.instance_id);
    let producer: BaseProducer<DeliveryTracker> = config
        .settings
        .transactional_producer(&transactional_id)
        .create_with_context(DeliveryTracker::default())?;
    // Fences any earlier incarnation of this instance and aborts its open transaction.
    producer.init_transactions(TXN_TIMEOUT)?;

    let mut consumer_config = config.settings.consumer(GROUP_ID);
    consumer_config
        .set("partition.assignment.strategy", "range,roundrobin")
        // The loop does not poll while it restores partitions (up to RESTORE_TIMEOUT): stay in
        // the group meanwhile instead of triggering a rebalance.
        .set(
            "max.poll.interval.ms",
            (RESTORE_TIMEOUT + Duration::from_secs(60))
                .as_millis()
                .to_string(),
        );
    let consumer: BaseConsumer<RebalanceTracker> =
        consumer_config.create_with_context(RebalanceTracker::default())?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(30))?;
    topics::check_copartitioned(&metadata, &[COMMANDS, GATEWAY_RESULTS, EVENTS, SNAPSHOTS])?;
    // Partition N of both inputs holds the same merchants; the range assignor gives both
    // partitions N to the same instance, so one in-memory state per partition serves both.
    consumer.subscribe(&[COMMANDS, GATEWAY_RESULTS])?;
    info!(instance = %config.instance_id, %transactional_id, "ledger started");

    let mut shell = Shell {
        config,
        codec,
        rt,
        producer,
        states: HashMap::new(),
        stats,
        next_sweep: Instant::now(),
    };
    let mut seen_generation = 0;
    while !stop.load(Ordering::SeqCst) {
        let batch = poll_batch(
            &consumer,
            config.max_batch,
            &mut seen_generation,
            &mut shell.states,
        );
        let sweep = Instant::now() >= shell.next_sweep;
        if batch.is_empty() && !sweep {
            // Serve the producer's events while idle too.
            shell.producer.poll(Duration::ZERO);
            continue;
        }
        shell.process(&consumer, &batch, sweep)?;
    }
    info!("ledger stopping");
    Ok(())
}

/// Polls up to `max` messages. If a rebalance happens while polling, everything gathered
/// before it is dropped (it will be fetched again from the committed offsets) and so is all
/// in-memory state (the partitions may have had another owner meanwhile).
fn poll_batch<'c>(
    consumer: &'c BaseConsumer<RebalanceTracker>,
    max: usize,
    seen_generation: &mut u64,
    states: &mut HashMap<i32, Partition>,
) -> Vec<BorrowedMessage<'c>> {
    let mut batch = Vec::new();
    let mut timeout = POLL_TIMEOUT;
    let mut deadline = None;
    while batch.len() < max {
        let polled = consumer.poll(timeout);
        let generation = consumer.context().generation.load(Ordering::SeqCst);
        if generation != *seen_generation {
            *seen_generation = generation;
            batch.clear();
            states.clear();
        }
        match polled {
            None => break,
            Some(Ok(message)) => batch.push(message),
            Some(Err(e)) => {
                warn!(error = %e, "consumer error");
                break;
            }
        }
        // After the first command, gather more for at most BATCH_LINGER: one transaction per
        // handful of records would spend the time in commits, not in work.
        let until = *deadline.get_or_insert_with(|| Instant::now() + BATCH_LINGER);
        timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            break;
        }
    }
    batch
}

/// One owned partition: its state and what the next snapshot needs to know.
struct Partition {
    state: PartitionState,
    /// Where the next event of this partition will be: a snapshot of `state` covers the
    /// events before it.
    next_offset: i64,
    /// Events applied since the last snapshot (or since the restore began).
    since_snapshot: u64,
}

struct Shell<'a> {
    config: &'a LedgerConfig,
    codec: Arc<RegistryCodec>,
    rt: Handle,
    producer: BaseProducer<DeliveryTracker>,
    states: HashMap<i32, Partition>,
    stats: Arc<LedgerStats>,
    next_sweep: Instant,
}

/// Why a batch did not commit, and what to do about it.
enum Abort {
    /// Try the batch again after a pause (registry down, transient Kafka error).
    Retry(String),
    /// Stop the service.
    Fatal(LedgerError),
}

impl Shell<'_> {
    fn process(
        &mut self,
        consumer: &BaseConsumer<RebalanceTracker>,
        batch: &[BorrowedMessage<'_>],
        sweep: bool,
    ) -> Result<(), LedgerError> {
        let span = info_span!("ledger_batch", size = batch.len(), sweep);
        let _enter = span.enter();
        if sweep {
            self.next_sweep = Instant::now() + EXPIRY_INTERVAL;
        }
        // Restore before the transaction begins: a long restore must not run into the
        // transaction timeout. A sweep needs every assigned partition, a batch its own.
        let mut needed: Vec<i32> = batch.iter().map(|m| m.partition()).collect();
        if sweep {
            needed.extend(assigned_partitions(consumer));
        }
        if let Err(abort) = self.ensure_restored(needed) {
            return self.recover(consumer, batch, abort, false);
        }
        // Without a batch, expiries can be decided now (nothing will change the state first),
        // and a sweep with nothing due needs no transaction.
        let decided = if batch.is_empty() {
            let due = if sweep {
                self.due_expiries()
            } else {
                Vec::new()
            };
            if due.is_empty() {
                return Ok(());
            }
            Some(due)
        } else {
            None
        };
        match self.transact(consumer, batch, sweep, decided) {
            Ok(()) => {
                self.stats.batches_committed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(abort) => self.recover(consumer, batch, abort, true),
        }
    }

    /// After a failed batch: stop on a fatal error; otherwise abort the transaction (if one
    /// is open), forget the touched partitions' state (events of the batch were applied in
    /// memory), rewind to the batch's first offsets and pause.
    fn recover(
        &mut self,
        consumer: &BaseConsumer<RebalanceTracker>,
        batch: &[BorrowedMessage<'_>],
        abort: Abort,
        in_transaction: bool,
    ) -> Result<(), LedgerError> {
        let reason = match abort {
            Abort::Fatal(e) => {
                error!(error = %e, "stopping");
                return Err(e);
            }
            Abort::Retry(reason) => reason,
        };
        self.stats.aborts.fetch_add(1, Ordering::Relaxed);
        warn!(%reason, "batch aborted; it will be decided again");
        if in_transaction {
            self.producer
                .abort_transaction(TXN_TIMEOUT)
                .map_err(fatal_or)?;
            // Expiries may have touched any partition: forget them all.
            self.states.clear();
        }
        self.producer.context().take();
        for ((topic, partition), first) in first_offsets(batch) {
            self.states.remove(&partition);
            if let Err(e) = consumer.seek(
                &topic,
                partition,
                Offset::Offset(first),
                Duration::from_secs(10),
            ) {
                warn!(%topic, partition, error = %e, "seek after abort failed; the next rebalance will rewind");
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    }

    fn transact(
        &mut self,
        consumer: &BaseConsumer<RebalanceTracker>,
        batch: &[BorrowedMessage<'_>],
        sweep: bool,
        decided: Option<Vec<(i32, PaymentEvent)>>,
    ) -> Result<(), Abort> {
        let started = Instant::now();
        self.producer
            .begin_transaction()
            .map_err(|e| Abort::Fatal(fatal_or(e)))?;
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for message in batch {
            self.handle(message)?;
            next_offsets.insert(
                (message.topic().to_owned(), message.partition()),
                message.offset() + 1,
            );
        }
        // Expiries are decided after the batch, against the state it left: a command of the
        // batch may have captured or voided a hold, and every event moves the sequence on.
        let expiries = match decided {
            Some(expiries) => expiries,
            None if sweep => self.due_expiries(),
            None => Vec::new(),
        };
        for (partition, event) in &expiries {
            self.apply_and_send(*partition, event, None)?;
            self.stats.expiries.fetch_add(1, Ordering::Relaxed);
        }
        let decided = started.elapsed();
        // Always send the group's offsets, even for a transaction of expiries alone: that is
        // what lets the broker fence a zombie whose partitions moved to another instance.
        let mut tpl = TopicPartitionList::new();
        if next_offsets.is_empty() {
            tpl = consumer
                .position()
                .map_err(|e| Abort::Retry(e.to_string()))?;
            tpl = valid_offsets(&tpl);
        }
        for ((topic, partition), offset) in &next_offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| Abort::Fatal(e.into()))?;
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| Abort::Retry("no consumer group metadata yet".to_owned()))?;
        if tpl.count() > 0 {
            self.producer
                .send_offsets_to_transaction(&tpl, &group, TXN_TIMEOUT)
                .map_err(classify)?;
        }
        let offsets_sent = started.elapsed();
        self.drain_in_flight()?;
        self.snapshot_due()?;
        let flushed = started.elapsed();
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(classify)?;
        debug!(
            inputs = ?next_offsets,
            expiries = expiries.len(),
            decide_ms = decided.as_millis() as u64,
            offsets_ms = (offsets_sent - decided).as_millis() as u64,
            flush_ms = (flushed - offsets_sent).as_millis() as u64,
            commit_ms = (started.elapsed() - flushed).as_millis() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// Expiry voids due now, across every partition in memory.
    fn due_expiries(&self) -> Vec<(i32, PaymentEvent)> {
        let now = Utc::now();
        let mut out = Vec::new();
        let mut partitions: Vec<&i32> = self.states.keys().collect();
        partitions.sort_unstable();
        for &partition in partitions {
            let state = &self.states[&partition].state;
            let mut merchants: Vec<&String> = state.merchants.keys().collect();
            merchants.sort_unstable();
            for merchant_id in merchants {
                let events = expire(&state.merchants[merchant_id], merchant_id, now);
                out.extend(events.into_iter().map(|e| (partition, e)));
            }
        }
        out
    }

    /// Records where each partition's events now end, and adds the snapshots that are due
    /// to the open transaction (after the events they cover are acknowledged).
    fn snapshot_due(&mut self) -> Result<(), Abort> {
        for (partition, last) in self.producer.context().take() {
            if let Some(p) = self.states.get_mut(&partition) {
                p.next_offset = last + 1;
            }
        }
        let every = self.config.snapshot_every;
        if every == 0 {
            return Ok(());
        }
        let mut due: Vec<i32> = self
            .states
            .iter()
            .filter(|(_, p)| p.since_snapshot >= every)
            .map(|(partition, _)| *partition)
            .collect();
        due.sort_unstable();
        for partition in due {
            let p = self.states.get_mut(&partition).expect("listed above");
            let encoded = snapshot::encode(&p.state);
            let (manifest, records) =
                snapshots::records(partition, p.next_offset, &encoded, Utc::now());
            for r in &records {
                let record = BaseRecord::to(SNAPSHOTS)
                    .partition(partition)
                    .key(r.key.as_bytes())
                    .payload(r.payload.as_slice())
                    .headers(r.headers.clone());
                send(&self.producer, record)?;
            }
            p.since_snapshot = 0;
            self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
            info!(
                partition,
                events_offset = manifest.events_offset,
                bytes = manifest.bytes,
                chunks = manifest.chunks,
                merchants = p.state.merchants.len(),
                "snapshot written"
            );
        }
        self.drain_in_flight()
    }

    /// Waits until every record of the transaction is acknowledged, polling in 1 ms steps.
    /// `commit_transaction` flushes too, but rdkafka's flush loop sleeps in 100 ms polls that
    /// nothing wakes, which put a 100 ms floor under every transaction.
    fn drain_in_flight(&self) -> Result<(), Abort> {
        let deadline = Instant::now() + TXN_TIMEOUT;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(Abort::Retry(format!(
                    "{} records unacknowledged after {TXN_TIMEOUT:?}",
                    self.producer.in_flight_count()
                )));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Decides one command or gateway result, or dead-letters it.
    fn handle(&mut self, message: &BorrowedMessage<'_>) -> Result<(), Abort> {
        let partition = message.partition();
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now();
        let decoded = if message.topic() == GATEWAY_RESULTS {
            self.rt
                .block_on(self.codec.decode_result(message.payload()))
                .map(Input::Result)
        } else {
            self.rt
                .block_on(self.codec.decode_command(message.payload()))
                .map(Input::Command)
        };
        let input = match decoded {
            Ok(input) => input,
            Err(e) if e.is_retriable() => return Err(Abort::Retry(e.to_string())),
            Err(e) => return self.dead_letter(message, e.reason_code(), &e.to_string()),
        };
        let merchant_id = match &input {
            Input::Command(c) => &c.merchant_id,
            Input::Result(r) => &r.merchant_id,
        };
        if message.key() != Some(merchant_id.as_bytes()) {
            // The record was not keyed by its merchant, so it may sit on a partition that does
            // not own that merchant's state. Deciding it could break the merchant's rules.
            return self.dead_letter(
                message,
                "key_mismatch",
                "record key must equal the merchant_id",
            );
        }
        let state = &self.states.get(&partition).expect("restored above").state;
        let merchant = state.merchant(merchant_id);
        let decision = match &input {
            Input::Command(c) => decide(merchant, c, now),
            Input::Result(r) => decide_result(merchant, r, now),
        };
        let events = decision.into_events();
        if events.is_empty() {
            debug!(input = %input.id(), "nothing to write: a duplicate, or a result that changes nothing");
        }
        let traceparent = headers::get(message, headers::TRACEPARENT);
        for event in &events {
            self.apply_and_send(partition, event, traceparent)?;
        }
        Ok(())
    }

    /// Applies an event to the partition's state and adds it to the transaction.
    fn apply_and_send(
        &mut self,
        partition: i32,
        event: &PaymentEvent,
        traceparent: Option<&str>,
    ) -> Result<(), Abort> {
        let p = self.states.get_mut(&partition).expect("restored above");
        evolve(p.state.merchant_mut(&event.merchant_id), event)
            .map_err(|e| Abort::Fatal(e.into()))?;
        p.since_snapshot += 1;
        self.send_event(partition, event, traceparent)
    }

    /// Restores, in one pass, every listed partition whose state is not in memory.
    fn ensure_restored(&mut self, mut partitions: Vec<i32>) -> Result<(), Abort> {
        partitions.retain(|p| !self.states.contains_key(p));
        partitions.sort_unstable();
        partitions.dedup();
        if partitions.is_empty() {
            return Ok(());
        }
        let codec = &self.codec;
        let rt = &self.rt;
        let started = Instant::now();
        let restored = restore_partitions(
            &self.config.settings,
            &partitions,
            StartFrom::Snapshot,
            |bytes| rt.block_on(codec.decode_event(bytes)),
        )
        .map_err(|e| match e {
            RestoreError::Decode { ref source, .. } if source.is_retriable() => {
                Abort::Retry(e.to_string())
            }
            RestoreError::Kafka(_)
            | RestoreError::Timeout { .. }
            | RestoreError::OpenTransaction { .. } => Abort::Retry(e.to_string()),
            other => Abort::Fatal(other.into()),
        })?;
        for (partition, r) in restored {
            info!(
                partition,
                events = r.events,
                from_snapshot = r.snapshot.as_ref().map(|m| m.events_offset),
                merchants = r.state.merchants.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "partition state restored"
            );
            self.states.insert(
                partition,
                Partition {
                    state: r.state,
                    next_offset: r.next_offset,
                    since_snapshot: r.events,
                },
            );
        }
        Ok(())
    }

    fn send_event(
        &self,
        partition: i32,
        event: &PaymentEvent,
        traceparent: Option<&str>,
    ) -> Result<(), Abort> {
        let bytes = self
            .rt
            .block_on(self.codec.encode_event(event))
            .map_err(|e| Abort::Retry(e.to_string()))?;
        let mut hdrs = headers::with(OwnedHeaders::new(), headers::EVENT_TYPE, event.kind());
        if let Some(tp) = traceparent {
            hdrs = headers::with(hdrs, headers::TRACEPARENT, tp);
        }
        let record = BaseRecord::to(EVENTS)
            .partition(partition)
            .key(event.merchant_id.as_bytes())
            .payload(bytes.as_slice())
            .headers(hdrs);
        send(&self.producer, record)?;
        // A BaseProducer serves its delivery reports when polled (and in commit's flush).
        self.producer.poll(Duration::ZERO);
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        detail: &str,
    ) -> Result<(), Abort> {
        let letter = DeadLetter::from_message(message, reason, detail);
        warn!(
            reason,
            source_topic = message.topic(),
            source_partition = letter.source_partition,
            source_offset = letter.source_offset,
            "input dead-lettered"
        );
        let hdrs = letter.headers("ledger", Utc::now());
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(DLQ).headers(hdrs);
        if let Some(key) = letter.key.as_deref() {
            record = record.key(key);
        }
        if let Some(payload) = letter.payload.as_deref() {
            record = record.payload(payload);
        }
        send(&self.producer, record)?;
        self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A decoded input.
enum Input {
    Command(schemas::PaymentCommand),
    Result(schemas::GatewayResult),
}

impl Input {
    fn id(&self) -> uuid::Uuid {
        match self {
            Input::Command(c) => c.command_id,
            Input::Result(r) => r.result_id,
        }
    }
}

/// Enqueues a record, waiting while the producer's bounded queue is full.
fn send<'r, K: ?Sized + rdkafka::message::ToBytes, P: ?Sized + rdkafka::message::ToBytes>(
    producer: &BaseProducer<DeliveryTracker>,
    mut record: BaseRecord<'r, K, P>,
) -> Result<(), Abort> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                // Serve delivery reports to make room.
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(classify(e)),
        }
    }
}

fn assigned_partitions(consumer: &BaseConsumer<RebalanceTracker>) -> Vec<i32> {
    consumer
        .assignment()
        .map(|tpl| partitions(&tpl))
        .unwrap_or_default()
}

/// The entries of `tpl` that hold a real offset.
fn valid_offsets(tpl: &TopicPartitionList) -> TopicPartitionList {
    let mut out = TopicPartitionList::new();
    for e in tpl.elements() {
        if let Offset::Offset(o) = e.offset() {
            // Ignoring the error is safe: the entry was just read from a valid list.
            let _ = out.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
        }
    }
    out
}

fn first_offsets(batch: &[BorrowedMessage<'_>]) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    for m in batch {
        out.entry((m.topic().to_owned(), m.partition()))
            .or_insert(m.offset());
    }
    out
}

/// Fencing and other fatal transaction errors: this instance must stop writing.
fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => {
            t.is_fatal()
                || matches!(
                    t.code(),
                    RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
                )
        }
        _ => false,
    }
}

/// Fatal errors stop the service; the rest abort and retry the batch.
fn classify(e: KafkaError) -> Abort {
    if is_fatal(&e) {
        Abort::Fatal(LedgerError::Fenced(e))
    } else {
        Abort::Retry(e.to_string())
    }
}

fn fatal_or(e: KafkaError) -> LedgerError {
    if is_fatal(&e) {
        LedgerError::Fenced(e)
    } else {
        LedgerError::Kafka(e)
    }
}

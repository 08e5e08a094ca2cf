//! The PostgreSQL projector: `payments.events` → `payments`, `command_rejections`,
//! `ledger_entries` (and the views over them, see `migrations/`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use ledger::kafka::KafkaSettings;
use ledger::kafka::dlq::DeadLetter;
use ledger::kafka::topics::{DLQ, EVENTS};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use schemas::{PaymentEvent, RegistryCodec};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use thiserror::Error;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::rows::{self, EntryRows, PaymentColumns, RejectionRows, RowError, to_rows};

/// The name under which offsets are stored; a rebuild into new tables uses a new name.
pub const PROJECTION: &str = "payments_v1";

/// The read model's schema; [`PostgresProjector::connect`] runs it.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The most events applied in one database transaction.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Error)]
pub enum ProjectorError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {EVENTS} not found: run `payledger topics apply`")]
    NoEventsTopic,
    #[error("{0}")]
    Row(#[from] RowError),
}

/// Projects `payments.events` into PostgreSQL.
pub struct PostgresProjector {
    pool: PgPool,
    settings: KafkaSettings,
    codec: Arc<RegistryCodec>,
}

impl PostgresProjector {
    /// Connects (the URL carries `sslmode=verify-full`) and runs the migrations.
    pub async fn connect(
        database_url: &str,
        settings: KafkaSettings,
        codec: Arc<RegistryCodec>,
    ) -> Result<Self, ProjectorError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(database_url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PostgresProjector {
            pool,
            settings,
            codec,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until `stop` is set.
    pub async fn run(&self, stop: Arc<AtomicBool>) -> Result<(), ProjectorError> {
        let consumer: StreamConsumer = self.settings.reader().create()?;
        let dlq: FutureProducer = self.settings.producer().create()?;
        let metadata = consumer.fetch_metadata(Some(EVENTS), Duration::from_secs(30))?;
        let partitions = ledger::kafka::topics::partition_count(&metadata, EVENTS)
            .ok_or(ProjectorError::NoEventsTopic)?;
        let stored = self.stored_offsets().await?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let offset = stored
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            tpl.add_partition_offset(EVENTS, p, offset)?;
        }
        consumer.assign(&tpl)?;
        info!(projection = PROJECTION, partitions, resumed = ?stored, "projector started");

        while !stop.load(Ordering::SeqCst) {
            let batch = next_batch(&consumer).await;
            if batch.is_empty() {
                continue;
            }
            let mut events = Vec::with_capacity(batch.len());
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            let mut retry = None;
            for message in &batch {
                match self.codec.decode_event(message.payload()).await {
                    Ok(event) => events.push((message.partition(), message.offset(), event)),
                    Err(e) if e.is_retriable() => {
                        retry = Some(e.to_string());
                        break;
                    }
                    Err(e) => {
                        // At least once: if the database commit below fails, the batch is read
                        // again and this letter is written again.
                        send_dead_letter(&dlq, message, e.reason_code(), &e.to_string()).await?;
                    }
                }
                next.insert(message.partition(), message.offset() + 1);
            }
            if let Some(reason) = retry {
                warn!(%reason, "registry unavailable; re-reading the batch shortly");
                rewind(&consumer, &batch)?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if let Err(e) = self.apply(&events, &next).await {
                warn!(error = %e, "batch not applied; re-reading it");
                rewind(&consumer, &batch)?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok(())
    }

    async fn stored_offsets(&self) -> Result<HashMap<i32, i64>, ProjectorError> {
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM projector_offsets WHERE projection = $1 AND topic = $2",
        )
        .bind(PROJECTION)
        .bind(EVENTS)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Applies one batch and its offsets in one transaction (see [`apply_batch`]).
    async fn apply(
        &self,
        events: &[(i32, i64, PaymentEvent)],
        next: &BTreeMap<i32, i64>,
    ) -> Result<BatchStats, ProjectorError> {
        apply_batch(&self.pool, events, next).await
    }
}

/// What [`apply_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Events past their partition's stored offset: the ones applied.
    pub applied: usize,
    /// Events below their partition's stored offset: applied by an earlier batch, skipped.
    pub skipped: usize,
}

/// Applies one batch of decoded events and the offsets it consumed, in one transaction.
///
/// `events` are `(partition, offset, event)` of `payments.events`; `next` is, per partition,
/// the offset to resume from once the batch is applied. Records below the stored offset of
/// their partition were applied before (by this or another instance) and are skipped, under a
/// row lock, so a batch is never applied twice. Independently, a payment row only takes events
/// newer than its `last_merchant_sequence`, and ledger entries and rejections are keyed by
/// event, so a record the topic holds twice (or a replay from an earlier offset) changes
/// nothing either.
pub async fn apply_batch(
    pool: &PgPool,
    events: &[(i32, i64, PaymentEvent)],
    next: &BTreeMap<i32, i64>,
) -> Result<BatchStats, ProjectorError> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let parts: Vec<i32> = next.keys().copied().collect();
    let locked: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projector_offsets
         WHERE projection = $1 AND topic = $2 AND partition = ANY($3) FOR UPDATE",
    )
    .bind(PROJECTION)
    .bind(EVENTS)
    .bind(&parts)
    .fetch_all(&mut *tx)
    .await?;
    let done: HashMap<i32, i64> = locked.into_iter().collect();
    let fresh: Vec<PaymentEvent> = events
        .iter()
        .filter(|(p, o, _)| done.get(p).is_none_or(|stored| o >= stored))
        .map(|(_, _, e)| e.clone())
        .collect();

    // The payments this batch touches that have a row: lock them and learn what they have seen.
    let mut ids: Vec<Uuid> = fresh
        .iter()
        .filter_map(|e| rows::body_payment_id(&e.body))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let seen: HashMap<Uuid, i64> = if ids.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (Uuid, i64)>(
            "SELECT payment_id, last_merchant_sequence FROM payments
             WHERE payment_id = ANY($1) ORDER BY payment_id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect()
    };

    let rows = to_rows(&fresh, &seen)?;
    for orphan in rows
        .payments
        .iter()
        .filter(|c| c.created.is_none() && !seen.contains_key(&c.payment_id))
    {
        warn!(
            payment_id = %orphan.payment_id,
            merchant_id = %orphan.merchant_id,
            "events for a payment never requested: not in payments (its ledger entries are kept)"
        );
    }
    write_payments(&mut tx, &PaymentColumns::of(&rows.payments)).await?;
    insert_rejections(&mut tx, &rows.rejections).await?;
    insert_entries(&mut tx, &rows.entries).await?;
    let offsets: Vec<i64> = parts.iter().map(|p| next[p]).collect();
    sqlx::query(
        "INSERT INTO projector_offsets (projection, topic, partition, next_offset)
         SELECT $1, $2, p, o FROM UNNEST($3::int[], $4::bigint[]) AS t(p, o)
         ON CONFLICT (projection, topic, partition) DO UPDATE
           SET next_offset = GREATEST(projector_offsets.next_offset, EXCLUDED.next_offset),
               updated_at = now()",
    )
    .bind(PROJECTION)
    .bind(EVENTS)
    .bind(&parts)
    .bind(&offsets)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let stats = BatchStats {
        applied: fresh.len(),
        skipped: events.len() - fresh.len(),
    };
    debug!(
        events = stats.applied,
        skipped = stats.skipped,
        payments = rows.payments.len(),
        entries = rows.entries.event_id.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch projected"
    );
    Ok(stats)
}

/// One `UPDATE` for the rows earlier batches wrote, one `INSERT` for the payments this batch
/// requested. A change applies to a row only if the row has seen none of its events.
async fn write_payments(
    tx: &mut Transaction<'_, Postgres>,
    c: &PaymentColumns,
) -> Result<(), sqlx::Error> {
    if c.payment_id.is_empty() {
        return Ok(());
    }
    // Deltas add to what the row holds; the latest outcome, reference, expiry and codes
    // replace it when the batch has one. `status` and `held_amount` follow (generated).
    sqlx::query(
        "UPDATE payments AS p SET
             authorization_status = coalesce(u.auth, p.authorization_status),
             authorized_amount    = coalesce(u.authorized, p.authorized_amount),
             processor_reference  = coalesce(u.reference, p.processor_reference),
             expires_at           = coalesce(u.expires, p.expires_at),
             decline_code         = coalesce(u.decline, p.decline_code),
             error_code           = coalesce(u.error, p.error_code),
             captured_amount      = p.captured_amount + u.captured,
             released_amount      = p.released_amount + u.released,
             refunded_amount      = p.refunded_amount + u.refunded,
             settled_amount       = p.settled_amount + u.settled,
             fee_amount           = p.fee_amount + u.fee,
             disputed_amount      = p.disputed_amount + u.disputed,
             open_disputes        = p.open_disputes + u.open_disputes,
             updated_at           = u.at,
             last_event_id        = u.e,
             last_merchant_sequence = u.last_seq
         FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[], $5::timestamptz[],
                     $6::text[], $7::numeric[], $8::text[], $9::timestamptz[], $10::text[],
                     $11::text[], $12::numeric[], $13::numeric[], $14::numeric[],
                     $15::numeric[], $16::numeric[], $17::numeric[], $18::int[])
              AS u(id, first_seq, last_seq, e, at, auth, authorized, reference, expires,
                   decline, error, captured, released, refunded, settled, fee, disputed,
                   open_disputes)
         WHERE p.payment_id = u.id AND p.last_merchant_sequence < u.first_seq",
    )
    .bind(&c.payment_id)
    .bind(&c.first_sequence)
    .bind(&c.last_sequence)
    .bind(&c.last_event_id)
    .bind(&c.updated_at)
    .bind(&c.authorization)
    .bind(&c.authorized_amount)
    .bind(&c.processor_reference)
    .bind(&c.expires_at)
    .bind(&c.decline_code)
    .bind(&c.error_code)
    .bind(&c.captured)
    .bind(&c.released)
    .bind(&c.refunded)
    .bind(&c.settled)
    .bind(&c.fee)
    .bind(&c.disputed)
    .bind(&c.open_disputes)
    .execute(&mut **tx)
    .await?;

    if !c.created.contains(&true) {
        return Ok(());
    }
    // A payment requested in this batch: its row is the whole fold, whatever followed the
    // request in the batch. A row that exists already was handled above.
    sqlx::query(
        "INSERT INTO payments (payment_id, merchant_id, amount, currency, processor,
                               idempotency_key, created_at, updated_at, last_event_id,
                               last_merchant_sequence, authorization_status, authorized_amount,
                               processor_reference, expires_at, decline_code, error_code,
                               captured_amount, released_amount, refunded_amount,
                               settled_amount, fee_amount, disputed_amount, open_disputes)
         SELECT id, m, a, c, pr, k, t, at, e, last_seq, coalesce(auth, 'requested'), authorized,
                reference, expires, decline, error, captured, released, refunded, settled,
                fee, disputed, open_disputes
         FROM UNNEST($1::uuid[], $2::text[], $3::bool[], $4::numeric[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::uuid[],
                     $11::bigint[], $12::text[], $13::numeric[], $14::text[],
                     $15::timestamptz[], $16::text[], $17::text[], $18::numeric[],
                     $19::numeric[], $20::numeric[], $21::numeric[], $22::numeric[],
                     $23::numeric[], $24::int[])
              AS u(id, m, created, a, c, pr, k, t, at, e, last_seq, auth, authorized, reference,
                   expires, decline, error, captured, released, refunded, settled, fee,
                   disputed, open_disputes)
         WHERE created
         ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(&c.payment_id)
    .bind(&c.merchant_id)
    .bind(&c.created)
    .bind(&c.amount)
    .bind(&c.currency)
    .bind(&c.processor)
    .bind(&c.idempotency_key)
    .bind(&c.created_at)
    .bind(&c.updated_at)
    .bind(&c.last_event_id)
    .bind(&c.last_sequence)
    .bind(&c.authorization)
    .bind(&c.authorized_amount)
    .bind(&c.processor_reference)
    .bind(&c.expires_at)
    .bind(&c.decline_code)
    .bind(&c.error_code)
    .bind(&c.captured)
    .bind(&c.released)
    .bind(&c.refunded)
    .bind(&c.settled)
    .bind(&c.fee)
    .bind(&c.disputed)
    .bind(&c.open_disputes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_rejections(
    tx: &mut Transaction<'_, Postgres>,
    r: &RejectionRows,
) -> Result<(), sqlx::Error> {
    if r.event_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO command_rejections (event_id, command_id, merchant_id, idempotency_key,
                                         payment_id, reason_code, detail, occurred_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[],
                              $6::text[], $7::text[], $8::timestamptz[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&r.event_id)
    .bind(&r.command_id)
    .bind(&r.merchant_id)
    .bind(&r.idempotency_key)
    .bind(&r.payment_id)
    .bind(&r.reason_code)
    .bind(&r.detail)
    .bind(&r.occurred_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_entries(
    tx: &mut Transaction<'_, Postgres>,
    r: &EntryRows,
) -> Result<(), sqlx::Error> {
    if r.event_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO ledger_entries (event_id, posting_index, merchant_id, payment_id,
                                     event_type, debit_account, credit_account, amount,
                                     currency, phase, occurred_at, merchant_sequence)
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::text[],
                              $6::text[], $7::text[], $8::numeric[], $9::text[], $10::text[],
                              $11::timestamptz[], $12::bigint[])
         ON CONFLICT (event_id, posting_index) DO NOTHING",
    )
    .bind(&r.event_id)
    .bind(&r.posting_index)
    .bind(&r.merchant_id)
    .bind(&r.payment_id)
    .bind(&r.event_type)
    .bind(&r.debit_account)
    .bind(&r.credit_account)
    .bind(&r.amount)
    .bind(&r.currency)
    .bind(&r.phase)
    .bind(&r.occurred_at)
    .bind(&r.merchant_sequence)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Waits up to 500 ms for a first event, then takes what else is ready, up to [`MAX_BATCH`].
async fn next_batch(consumer: &StreamConsumer) -> Vec<BorrowedMessage<'_>> {
    let mut batch = Vec::new();
    let mut wait = Duration::from_millis(500);
    while batch.len() < MAX_BATCH {
        match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) => break,
            Ok(Ok(message)) => batch.push(message),
            Ok(Err(KafkaError::PartitionEOF(_))) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "consumer error");
                break;
            }
        }
        wait = Duration::from_millis(5);
    }
    batch
}

fn rewind(consumer: &StreamConsumer, batch: &[BorrowedMessage<'_>]) -> Result<(), KafkaError> {
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for m in batch {
        first.entry(m.partition()).or_insert(m.offset());
    }
    for (p, o) in first {
        consumer.seek(EVENTS, p, Offset::Offset(o), Duration::from_secs(10))?;
    }
    Ok(())
}

async fn send_dead_letter(
    producer: &FutureProducer,
    message: &BorrowedMessage<'_>,
    reason: &str,
    detail: &str,
) -> Result<(), KafkaError> {
    let letter = DeadLetter::from_message(message, reason, detail);
    warn!(
        reason,
        partition = letter.source_partition,
        offset = letter.source_offset,
        "event dead-lettered"
    );
    let mut record: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(DLQ).headers(letter.headers("projector-postgres", Utc::now()));
    if let Some(k) = letter.key.as_deref() {
        record = record.key(k);
    }
    if let Some(p) = letter.payload.as_deref() {
        record = record.payload(p);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

//! The PostgreSQL projector: `payments.events` → `payments`, `command_rejections`.

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

use crate::rows::{RowError, to_rows};

/// The name under which offsets are stored; a rebuild into new tables uses a new name.
pub const PROJECTION: &str = "payments_v1";

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
        sqlx::migrate!("./migrations").run(&pool).await?;
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

    /// Applies one batch and its offsets in one transaction. Records below the stored offset
    /// of their partition were applied before (by this or another instance) and are skipped,
    /// under a row lock, so a batch is never applied twice.
    async fn apply(
        &self,
        events: &[(i32, i64, PaymentEvent)],
        next: &BTreeMap<i32, i64>,
    ) -> Result<(), ProjectorError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
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
        let (payments, rejections) = to_rows(&fresh)?;
        upsert_payments(&mut tx, &payments).await?;
        insert_rejections(&mut tx, &rejections).await?;
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
        debug!(
            events = fresh.len(),
            skipped = events.len() - fresh.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch projected"
        );
        Ok(())
    }
}

async fn upsert_payments(
    tx: &mut Transaction<'_, Postgres>,
    r: &crate::rows::PaymentRows,
) -> Result<(), sqlx::Error> {
    if r.payment_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO payments (payment_id, merchant_id, status, amount, currency, processor,
                               idempotency_key, created_at, updated_at, last_event_id,
                               last_merchant_sequence)
         SELECT id, m, s, a, c, p, k, t, t, e, q
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::uuid[], $10::bigint[])
              AS u(id, m, s, a, c, p, k, t, e, q)
         ON CONFLICT (payment_id) DO UPDATE
           SET status = EXCLUDED.status,
               updated_at = EXCLUDED.updated_at,
               last_event_id = EXCLUDED.last_event_id,
               last_merchant_sequence = EXCLUDED.last_merchant_sequence
         WHERE payments.last_merchant_sequence < EXCLUDED.last_merchant_sequence",
    )
    .bind(&r.payment_id)
    .bind(&r.merchant_id)
    .bind(&r.status)
    .bind(&r.amount)
    .bind(&r.currency)
    .bind(&r.processor)
    .bind(&r.idempotency_key)
    .bind(&r.at)
    .bind(&r.event_id)
    .bind(&r.sequence)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_rejections(
    tx: &mut Transaction<'_, Postgres>,
    r: &crate::rows::RejectionRows,
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

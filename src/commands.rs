//! The CLI's commands: thin edges around the library crates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::Subcommand;
use ledger::kafka::publisher::CommandPublisher;
use ledger::kafka::topics::{self, TOPICS, TopicOutcome};
use ledger::kafka::{KafkaSettings, Role};
use ledger::service::{LedgerConfig, LedgerStats};
use projectors::PostgresProjector;
use schemas::registry::RegistryAdmin;
use schemas::{AuthorizePayment, CommandBody, PaymentCommand, RegistryCodec, WireMoney};
use uuid::Uuid;

pub fn var(name: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (did you pass --env-file .stack/env?)"))
}

fn codec() -> Result<Arc<RegistryCodec>> {
    Ok(Arc::new(RegistryCodec::new(&var(
        "PAYLEDGER_SCHEMA_REGISTRY_URL",
    )?)?))
}

pub fn kafka(role: Role) -> Result<KafkaSettings> {
    KafkaSettings::from_env(role).context("Kafka settings")
}

/// Sets the flag on SIGINT or SIGTERM, so services finish their batch and leave cleanly.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

pub async fn topics_apply() -> Result<()> {
    let outcomes = topics::apply(&kafka(Role::Admin)?).await?;
    for o in outcomes {
        match o {
            TopicOutcome::Created { name } => println!("created {name}"),
            TopicOutcome::Updated { name } => println!("up to date {name}"),
        }
    }
    Ok(())
}

pub fn topics_list() {
    for t in TOPICS {
        println!(
            "{:<20} {:>3} partitions  {}",
            t.name, t.partitions, t.purpose
        );
    }
}

pub async fn schemas_register() -> Result<()> {
    let admin = RegistryAdmin::new(&var("PAYLEDGER_SCHEMA_REGISTRY_URL")?)?;
    for r in admin.register_all().await? {
        println!("{} v{} -> schema id {}", r.subject, r.version, r.id);
    }
    println!("compatibility: {}", schemas::registry::COMPATIBILITY);
    Ok(())
}

pub async fn schemas_check() -> Result<()> {
    let admin = RegistryAdmin::new(&var("PAYLEDGER_SCHEMA_REGISTRY_URL")?)?;
    let statuses = admin.check_all().await?;
    let mut ok = true;
    for s in &statuses {
        println!(
            "{:<26} registered={} compatibility={} accepts-this-build={}",
            s.subject,
            s.registered,
            s.compatibility.as_deref().unwrap_or("-"),
            s.latest_accepted
        );
        ok &= s.is_ok();
    }
    if !ok {
        bail!("schema check failed: run `payledger schemas register`, or fix the schema change");
    }
    println!("history: every schema reads all its earlier versions");
    Ok(())
}

pub async fn run_ledger(instance_id: String, max_batch: usize, snapshot_every: u64) -> Result<()> {
    let config = LedgerConfig {
        settings: kafka(Role::Ledger)?,
        instance_id,
        max_batch,
        snapshot_every,
    };
    let codec = codec()?;
    let stop = stop_on_signal();
    let stats = Arc::new(LedgerStats::default());
    let rt = tokio::runtime::Handle::current();
    let run_stats = stats.clone();
    tokio::task::spawn_blocking(move || ledger::service::run(&config, codec, rt, stop, run_stats))
        .await
        .context("ledger thread")??;
    tracing::info!(
        commands = stats.commands.load(Ordering::Relaxed),
        events = stats.events.load(Ordering::Relaxed),
        dead_letters = stats.dead_letters.load(Ordering::Relaxed),
        batches = stats.batches_committed.load(Ordering::Relaxed),
        aborted_batches = stats.aborts.load(Ordering::Relaxed),
        expiries = stats.expiries.load(Ordering::Relaxed),
        snapshots = stats.snapshots.load(Ordering::Relaxed),
        "ledger stopped"
    );
    Ok(())
}

pub async fn run_projector() -> Result<()> {
    let projector = PostgresProjector::connect(
        &var("PAYLEDGER_DATABASE_URL")?,
        kafka(Role::Projector)?,
        codec()?,
    )
    .await?;
    projector.run(stop_on_signal()).await?;
    Ok(())
}

#[derive(Subcommand)]
pub enum PublishCommand {
    /// Ask for an authorization.
    Authorize {
        #[arg(long)]
        merchant: String,
        /// Decimal amount in major units, e.g. 10.50.
        #[arg(long)]
        amount: String,
        /// ISO 4217 code, e.g. GBP.
        #[arg(long)]
        currency: String,
        #[arg(long, default_value = "stripe")]
        processor: String,
        /// A processor or PCI Proxy token (never a card number).
        #[arg(long, default_value = "tok_visa")]
        token: String,
        /// Defaults to a new random key.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Defaults to a new random id.
        #[arg(long)]
        payment_id: Option<Uuid>,
    },
}

pub fn authorize(
    merchant: &str,
    key: &str,
    payment_id: Uuid,
    amount: &str,
    currency: &str,
    processor: &str,
    token: &str,
) -> PaymentCommand {
    PaymentCommand {
        command_id: Uuid::new_v4(),
        idempotency_key: key.to_owned(),
        merchant_id: merchant.to_owned(),
        issued_at: Utc::now(),
        body: CommandBody::AuthorizePayment(AuthorizePayment {
            payment_id,
            amount: WireMoney {
                amount: amount.to_owned(),
                currency: currency.to_owned(),
            },
            processor: processor.to_owned(),
            payment_token: token.to_owned(),
        }),
    }
}

/// A fresh W3C trace context for a command that starts a trace.
pub fn new_traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

pub async fn publish(command: PublishCommand) -> Result<()> {
    let publisher = CommandPublisher::new(&kafka(Role::Cli)?, codec()?)?;
    let PublishCommand::Authorize {
        merchant,
        amount,
        currency,
        processor,
        token,
        idempotency_key,
        payment_id,
    } = command;
    let key = idempotency_key.unwrap_or_else(|| Uuid::new_v4().to_string());
    let payment_id = payment_id.unwrap_or_else(Uuid::new_v4);
    let cmd = authorize(
        &merchant, &key, payment_id, &amount, &currency, &processor, &token,
    );
    let at = publisher.publish(&cmd, Some(&new_traceparent())).await?;
    println!(
        "{}",
        serde_json::json!({
            "command_id": cmd.command_id,
            "payment_id": payment_id,
            "idempotency_key": key,
            "partition": at.partition,
            "offset": at.offset,
        })
    );
    Ok(())
}

/// Publishes a small, realistic mix for one new merchant and prints what the read model shows.
pub async fn demo(payments: usize) -> Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&var("PAYLEDGER_DATABASE_URL")?)
        .await
        .context("connecting to PostgreSQL")?;
    let publisher = CommandPublisher::new(&kafka(Role::Cli)?, codec()?)?;
    let merchant = format!("demo-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let samples = [
        ("10.50", "GBP", "stripe"),
        ("1500", "JPY", "square"),
        ("12.345", "BHD", "asiapay"),
        ("99.99", "EUR", "bridgerpay"),
        ("0.50", "USD", "shuttle"),
    ];
    let mut first = None;
    for i in 0..payments {
        let (amount, currency, processor) = samples[i % samples.len()];
        let cmd = authorize(
            &merchant,
            &format!("order-{i}"),
            Uuid::new_v4(),
            amount,
            currency,
            processor,
            "tok_demo",
        );
        publisher.publish(&cmd, Some(&new_traceparent())).await?;
        first.get_or_insert(cmd);
    }
    // The sender retries its first command (same key, same content): nothing new happens.
    if let Some(mut retry) = first {
        retry.command_id = Uuid::new_v4();
        publisher.publish(&retry, None).await?;
    }
    // GBP has two decimals: rejected, never rounded.
    let bad = authorize(
        &merchant,
        "order-bad",
        Uuid::new_v4(),
        "10.555",
        "GBP",
        "stripe",
        "tok_demo",
    );
    publisher.publish(&bad, None).await?;
    println!(
        "published {} commands for merchant {merchant}; waiting for the read model…",
        payments + 2
    );

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (n_pay,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM payments WHERE merchant_id = $1")
                .bind(&merchant)
                .fetch_one(&pool)
                .await?;
        let (n_rej,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM command_rejections WHERE merchant_id = $1")
                .bind(&merchant)
                .fetch_one(&pool)
                .await?;
        if n_pay as usize >= payments && n_rej >= 1 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "read model shows {n_pay}/{payments} payments and {n_rej}/1 rejections after 90 s: are `payledger ledger` and `payledger project` running?"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT idempotency_key, status, amount::text, currency::text, processor FROM payments
         WHERE merchant_id = $1 ORDER BY last_merchant_sequence",
    )
    .bind(&merchant)
    .fetch_all(&pool)
    .await?;
    println!("\npayments (merchant {merchant}):");
    println!(
        "{:<12} {:<24} {:>12} {:<8} processor",
        "key", "status", "amount", "currency"
    );
    for (key, status, amount, currency, processor) in rows {
        println!("{key:<12} {status:<24} {amount:>12} {currency:<8} {processor}");
    }
    let rejections: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT idempotency_key, reason_code, detail FROM command_rejections WHERE merchant_id = $1",
    )
    .bind(&merchant)
    .fetch_all(&pool)
    .await?;
    println!("\ncommand_rejections:");
    for (key, code, detail) in rejections {
        println!("{key:<12} {code:<20} {detail}");
    }
    Ok(())
}

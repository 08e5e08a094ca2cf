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
use schemas::{
    AuthorizePayment, CapturePayment, CommandBody, PaymentCommand, RefundPayment, RegistryCodec,
    RequestPayout, VoidPayment, WireMoney,
};
use uuid::Uuid;

pub fn var(name: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (did you pass --env-file .stack/env?)"))
}

pub fn codec() -> Result<Arc<RegistryCodec>> {
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
    /// Capture part or all of what an approved authorization still holds.
    Capture {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        payment_id: Uuid,
        /// Decimal amount in major units, sent as typed: the ledger validates it.
        #[arg(long)]
        amount: String,
        /// ISO 4217 code; must be the payment's currency.
        #[arg(long)]
        currency: String,
        /// Defaults to a new random key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Release what is left of an authorization's hold.
    Void {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        payment_id: Uuid,
        /// Defaults to a new random key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Return part or all of what was captured.
    Refund {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        payment_id: Uuid,
        /// Decimal amount in major units, sent as typed: the ledger validates it.
        #[arg(long)]
        amount: String,
        /// ISO 4217 code; must be the payment's currency.
        #[arg(long)]
        currency: String,
        /// Defaults to a new random key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Pay the merchant out of its payable balance.
    Payout {
        #[arg(long)]
        merchant: String,
        /// Decimal amount in major units, sent as typed: the ledger validates it.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        currency: String,
        /// The platform bank account the money leaves from (`cash:<bank-account>`).
        #[arg(long)]
        bank_account: String,
        /// Defaults to a new random id.
        #[arg(long)]
        payout_id: Option<Uuid>,
        /// Defaults to a new random key.
        #[arg(long)]
        idempotency_key: Option<String>,
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
    command(
        merchant,
        key,
        CommandBody::AuthorizePayment(AuthorizePayment {
            payment_id,
            amount: wire_money(amount, currency),
            processor: processor.to_owned(),
            payment_token: token.to_owned(),
        }),
    )
}

/// A new command (fresh `command_id`, issued now).
pub fn command(merchant: &str, key: &str, body: CommandBody) -> PaymentCommand {
    PaymentCommand {
        command_id: Uuid::new_v4(),
        idempotency_key: key.to_owned(),
        merchant_id: merchant.to_owned(),
        issued_at: Utc::now(),
        body,
    }
}

/// Money as typed: the ledger, not the CLI, decides whether it is valid.
pub fn wire_money(amount: &str, currency: &str) -> WireMoney {
    WireMoney {
        amount: amount.to_owned(),
        currency: currency.to_owned(),
    }
}

/// A fresh W3C trace context for a command that starts a trace.
pub fn new_traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

/// Builds the command (with the ids it names, for the output line) from the CLI arguments.
fn publish_command(args: PublishCommand) -> (PaymentCommand, serde_json::Value) {
    use serde_json::json;
    let key = |k: Option<String>| k.unwrap_or_else(|| Uuid::new_v4().to_string());
    match args {
        PublishCommand::Authorize {
            merchant,
            amount,
            currency,
            processor,
            token,
            idempotency_key,
            payment_id,
        } => {
            let payment_id = payment_id.unwrap_or_else(Uuid::new_v4);
            let cmd = authorize(
                &merchant,
                &key(idempotency_key),
                payment_id,
                &amount,
                &currency,
                &processor,
                &token,
            );
            (cmd, json!({ "payment_id": payment_id }))
        }
        PublishCommand::Capture {
            merchant,
            payment_id,
            amount,
            currency,
            idempotency_key,
        } => (
            command(
                &merchant,
                &key(idempotency_key),
                CommandBody::CapturePayment(CapturePayment {
                    payment_id,
                    amount: wire_money(&amount, &currency),
                }),
            ),
            json!({ "payment_id": payment_id }),
        ),
        PublishCommand::Void {
            merchant,
            payment_id,
            idempotency_key,
        } => (
            command(
                &merchant,
                &key(idempotency_key),
                CommandBody::VoidPayment(VoidPayment { payment_id }),
            ),
            json!({ "payment_id": payment_id }),
        ),
        PublishCommand::Refund {
            merchant,
            payment_id,
            amount,
            currency,
            idempotency_key,
        } => (
            command(
                &merchant,
                &key(idempotency_key),
                CommandBody::RefundPayment(RefundPayment {
                    payment_id,
                    amount: wire_money(&amount, &currency),
                }),
            ),
            json!({ "payment_id": payment_id }),
        ),
        PublishCommand::Payout {
            merchant,
            amount,
            currency,
            bank_account,
            payout_id,
            idempotency_key,
        } => {
            let payout_id = payout_id.unwrap_or_else(Uuid::new_v4);
            (
                command(
                    &merchant,
                    &key(idempotency_key),
                    CommandBody::RequestPayout(RequestPayout {
                        payout_id,
                        amount: wire_money(&amount, &currency),
                        bank_account,
                    }),
                ),
                json!({ "payout_id": payout_id }),
            )
        }
    }
}

/// Publishes one command with the `cli` principal and prints where it landed, as one JSON
/// line. Nothing is validated here: the ledger is the authority and answers with an event.
pub async fn publish(args: PublishCommand) -> Result<()> {
    let publisher = CommandPublisher::new(&kafka(Role::Cli)?, codec()?)?;
    let (cmd, ids) = publish_command(args);
    let at = publisher.publish(&cmd, Some(&new_traceparent())).await?;
    let mut line = serde_json::json!({
        "command_id": cmd.command_id,
        "idempotency_key": cmd.idempotency_key,
        "partition": at.partition,
        "offset": at.offset,
    });
    if let (Some(line), Some(ids)) = (line.as_object_mut(), ids.as_object()) {
        line.extend(ids.clone());
    }
    println!("{line}");
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
    let mut first: Option<PaymentCommand> = None;
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
    if let Some(mut retry) = first.clone() {
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
    if let Some(CommandBody::AuthorizePayment(a)) = first.map(|c| c.body) {
        demo_lifecycle(&pool, &publisher, &merchant, &a).await?;
    }
    println!("\nchecks and balances: payledger audit --merchant {merchant}");
    Ok(())
}

/// The rest of one payment's life: approved (by a result published as the gateway would),
/// captured in full, then partly refunded; prints the payment's row and the merchant's
/// payable balance. Skipped where there is no gateway principal (e.g. the compose demo).
async fn demo_lifecycle(
    pool: &sqlx::PgPool,
    publisher: &CommandPublisher,
    merchant: &str,
    auth: &AuthorizePayment,
) -> Result<()> {
    use schemas::{AuthorizationOutcome, AuthorizationResult, GatewayResult, ResultBody};
    let Ok(gateway) = kafka(Role::Gateway) else {
        println!("\n(lifecycle skipped: no gateway principal, PAYLEDGER_KAFKA_USER_GATEWAY, here)");
        return Ok(());
    };
    let gateway = CommandPublisher::new(&gateway, codec()?)?;
    let payment_id = auth.payment_id;
    let (amount, currency) = (&auth.amount.amount, &auth.amount.currency);
    let refund = "2.50";

    // Commands and results are different topics: the capture must wait for the approval.
    gateway
        .publish_result(&GatewayResult {
            result_id: Uuid::new_v4(),
            merchant_id: merchant.to_owned(),
            payment_id,
            processor: auth.processor.clone(),
            occurred_at: Utc::now(),
            body: ResultBody::Authorization(AuthorizationResult {
                outcome: AuthorizationOutcome::Approved,
                source: schemas::ResultSource::Response,
                processor_reference: Some(format!("demo_{}", payment_id.simple())),
                code: None,
                detail: String::new(),
                expires_at: None,
            }),
        })
        .await?;
    wait_for_row(
        pool,
        payment_id,
        "SELECT count(*) FROM payments WHERE payment_id = $1 AND authorization_status = 'approved'",
        "the approval",
    )
    .await?;
    let capture = CommandBody::CapturePayment(CapturePayment {
        payment_id,
        amount: wire_money(amount, currency),
    });
    publisher
        .publish(&command(merchant, "order-0-capture", capture), None)
        .await?;
    let refund_body = CommandBody::RefundPayment(RefundPayment {
        payment_id,
        amount: wire_money(refund, currency),
    });
    publisher
        .publish(&command(merchant, "order-0-refund", refund_body), None)
        .await?;
    wait_for_row(
        pool,
        payment_id,
        "SELECT count(*) FROM payments WHERE payment_id = $1 AND refunded_amount > 0",
        "the refund",
    )
    .await?;

    let (status, authorized, captured, refunded, held): (String, String, String, String, String) =
        sqlx::query_as(
            "SELECT status, coalesce(authorized_amount::text, '-'), captured_amount::text,
                    refunded_amount::text, held_amount::text
             FROM payments WHERE payment_id = $1",
        )
        .bind(payment_id)
        .fetch_one(pool)
        .await?;
    println!(
        "\nlifecycle of order-0 (approved by a gateway result, captured {amount}, refunded {refund}):"
    );
    println!(
        "{:<12} {:<12} {:>10} {:>10} {:>10} {:>10} currency",
        "key", "status", "authorized", "captured", "refunded", "held"
    );
    println!(
        "{:<12} {status:<12} {authorized:>10} {captured:>10} {refunded:>10} {held:>10} {currency}",
        "order-0"
    );
    let balances: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT currency::text, debits_pending::text, debits_posted::text,
                credits_pending::text, credits_posted::text
         FROM account_balances WHERE account = $1 ORDER BY currency",
    )
    .bind(format!("merchant:{merchant}:payable"))
    .fetch_all(pool)
    .await?;
    println!("\naccount merchant:{merchant}:payable (what the platform owes the merchant):");
    println!(
        "{:<8} {:>14} {:>14} {:>15} {:>14}",
        "currency", "debits_pending", "debits_posted", "credits_pending", "credits_posted"
    );
    for (currency, dpend, dpost, cpend, cpost) in balances {
        println!("{currency:<8} {dpend:>14} {dpost:>14} {cpend:>15} {cpost:>14}");
    }
    Ok(())
}

/// Waits until `count` (a `SELECT count(*)` taking the payment id) finds the payment's row.
async fn wait_for_row(
    pool: &sqlx::PgPool,
    payment_id: Uuid,
    count: &'static str,
    what: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n,): (i64,) = sqlx::query_as(count)
            .bind(payment_id)
            .fetch_one(pool)
            .await?;
        if n > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the read model does not show {what} of payment {payment_id} after 60 s: see the ledger's and projector's logs"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Publish {
        #[command(subcommand)]
        command: PublishCommand,
    }

    fn build(args: &str) -> (PaymentCommand, serde_json::Value) {
        let args = std::iter::once("publish").chain(args.split_whitespace());
        publish_command(Publish::try_parse_from(args).expect("parses").command)
    }

    #[test]
    fn money_goes_out_as_typed_for_the_ledger_to_judge() {
        let id = Uuid::new_v4();
        let (cmd, ids) = build(&format!(
            "capture --merchant m-1 --payment-id {id} --amount 12,50 --currency gbp --idempotency-key k-1"
        ));
        assert_eq!(
            (cmd.merchant_id.as_str(), cmd.idempotency_key.as_str()),
            ("m-1", "k-1")
        );
        assert_eq!(
            cmd.body,
            CommandBody::CapturePayment(CapturePayment {
                payment_id: id,
                amount: wire_money("12,50", "gbp"),
            })
        );
        assert_eq!(ids, serde_json::json!({ "payment_id": id }));
    }

    #[test]
    fn void_refund_and_payout_build_their_commands() {
        let id = Uuid::new_v4();
        let (void, _) = build(&format!("void --merchant m-1 --payment-id {id}"));
        assert_eq!(
            void.body,
            CommandBody::VoidPayment(VoidPayment { payment_id: id })
        );
        assert!(
            Uuid::parse_str(&void.idempotency_key).is_ok(),
            "a random key"
        );
        let (refund, _) = build(&format!(
            "refund --merchant m-1 --payment-id {id} --amount 2.50 --currency GBP"
        ));
        assert_eq!(
            refund.body,
            CommandBody::RefundPayment(RefundPayment {
                payment_id: id,
                amount: wire_money("2.50", "GBP"),
            })
        );
        let (payout, ids) = build(
            "payout --merchant m-1 --amount 7.50 --currency GBP --bank-account barclays-main",
        );
        let CommandBody::RequestPayout(p) = &payout.body else {
            panic!("{payout:?}")
        };
        assert_eq!(
            (p.amount.amount.as_str(), p.bank_account.as_str()),
            ("7.50", "barclays-main")
        );
        assert_eq!(ids, serde_json::json!({ "payout_id": p.payout_id }));
    }
}

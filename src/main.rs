//! `payledger`: the services and the operator's tool.

mod audit;
mod commands;
mod dlq;
mod env_file;
mod inspect;
mod results;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "payledger",
    version,
    about = "Event-sourced payment ledger on Apache Kafka"
)]
struct Cli {
    /// A `KEY=value` file with endpoints and credentials (scripts/stack writes `.stack/env`).
    /// Variables already in the environment win.
    #[arg(long, global = true, env = "PAYLEDGER_ENV_FILE")]
    env_file: Option<PathBuf>,

    /// Log as JSON lines (for log shippers) instead of human-readable text.
    #[arg(long, global = true, env = "PAYLEDGER_LOG_JSON")]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Kafka topics, from the one declarative list (needs the admin principal).
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// The Avro contracts in the schema registry.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Run the ledger: commands and gateway results in, events out, exactly once.
    Ledger {
        /// Stable per instance; the transactional id derives from it.
        #[arg(long, env = "PAYLEDGER_INSTANCE_ID", default_value = "0")]
        instance_id: String,
        #[arg(long, default_value_t = ledger::service::MAX_BATCH)]
        max_batch: usize,
        /// Snapshot a partition's state after this many events (0: never).
        #[arg(long, env = "PAYLEDGER_SNAPSHOT_EVERY", default_value_t = ledger::service::SNAPSHOT_EVERY)]
        snapshot_every: u64,
    },
    /// Run the PostgreSQL projector: events in, read-model rows out.
    Project,
    /// Publish commands (as an upstream service would).
    Publish {
        #[command(subcommand)]
        command: commands::PublishCommand,
    },
    /// Publish a processor's result, standing in for the gateway workers (engineers, tests).
    ///
    /// Writes one result to gateway.results with the gateway principal
    /// (PAYLEDGER_KAFKA_USER_GATEWAY), as the gateway workers and the webhook receiver do, and
    /// prints one JSON line (result_id, partition, offset). The ledger decides what it means.
    GatewayResult {
        #[command(subcommand)]
        result: results::ResultCommand,
    },
    /// Rebuild the ledger from its events and check the books (exits non-zero on a failure).
    ///
    /// Rebuilds every partition of payments.events from the beginning and from the newest
    /// snapshots (ledger principal), then checks that both agree, that debits equal credits per
    /// currency (posted and pending), and that no merchant's payable account is overdrawn.
    /// Prints events and restore time per partition, the trial balance per currency, and each
    /// merchant's accounts, payout-available amounts and payments by status.
    Audit {
        /// Show only this merchant's accounts (the checks still cover every merchant).
        #[arg(long)]
        merchant: Option<String>,
        /// One JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Publish sample commands, wait for the read model and print the rows.
    Demo {
        #[arg(long, default_value_t = 5)]
        payments: usize,
    },
    /// Print events as JSON lines.
    Events {
        /// Only this merchant's events.
        #[arg(long)]
        merchant: Option<String>,
        /// Keep waiting for new events instead of stopping at the end.
        #[arg(long)]
        follow: bool,
    },
    /// Dead letters.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create missing topics and set the declared configs on existing ones.
    Apply,
    /// Print the declared topics.
    List,
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Check history locally, then register every version and set BACKWARD_TRANSITIVE.
    Register,
    /// Check history locally and the registry's subjects, rules and acceptance of this build.
    Check,
}

#[derive(Subcommand)]
enum DlqAction {
    /// Print every dead letter with its reason and origin.
    List,
    /// Put dead-lettered commands back on payments.commands (safe to repeat).
    Redrive {
        /// Only letters with this reason code (e.g. unknown_schema_id, key_mismatch).
        #[arg(long)]
        reason: Option<String>,
        /// Key each record by its command's merchant_id (for key_mismatch letters).
        #[arg(long)]
        rekey_by_merchant: bool,
        /// Print what would be redriven, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(path) = &cli.env_file {
        env_file::load(path)?;
    }
    init_tracing(cli.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Topics {
                action: TopicsAction::Apply,
            } => commands::topics_apply().await,
            Command::Topics {
                action: TopicsAction::List,
            } => {
                commands::topics_list();
                Ok(())
            }
            Command::Schemas {
                action: SchemasAction::Register,
            } => commands::schemas_register().await,
            Command::Schemas {
                action: SchemasAction::Check,
            } => commands::schemas_check().await,
            Command::Ledger {
                instance_id,
                max_batch,
                snapshot_every,
            } => commands::run_ledger(instance_id, max_batch, snapshot_every).await,
            Command::Project => commands::run_projector().await,
            Command::Publish { command } => commands::publish(command).await,
            Command::GatewayResult { result } => results::publish(result).await,
            Command::Audit { merchant, json } => audit::audit(merchant, json).await,
            Command::Demo { payments } => commands::demo(payments).await,
            Command::Events { merchant, follow } => inspect::events(merchant, follow).await,
            Command::Dlq {
                action: DlqAction::List,
            } => dlq::list().await,
            Command::Dlq {
                action:
                    DlqAction::Redrive {
                        reason,
                        rekey_by_merchant,
                        dry_run,
                    },
            } => dlq::redrive(reason, rekey_by_merchant, dry_run).await,
        }
    })
}

/// `info`, without apache-avro's advice about single-branch unions: the command body is a
/// union on purpose, so that new commands are added as branches.
const DEFAULT_LOG: &str = "info,apache_avro::schema::parser=error";

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PAYLEDGER_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

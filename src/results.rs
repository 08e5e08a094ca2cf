//! `payledger gateway-result`: publishes what a processor said, as the gateway workers and the
//! webhook receiver do. For engineers and tests that stand in for the gateways; it needs the
//! gateway principal (`PAYLEDGER_KAFKA_USER_GATEWAY`), the only one allowed to write
//! `gateway.results`.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use ledger::kafka::Role;
use ledger::kafka::publisher::CommandPublisher;
use schemas::{
    AuthorizationOutcome, AuthorizationResult, DisputeDecision, DisputeNotice, DisputeOutcome,
    GatewayResult, ResultBody, ResultSource, SettlementReport,
};
use uuid::Uuid;

use crate::commands::{codec, kafka, wire_money};

/// Which payment a result is about, and who reports it.
#[derive(Args)]
pub struct Target {
    #[arg(long)]
    merchant: String,
    #[arg(long)]
    payment_id: Uuid,
    /// The processor reporting; must be the one the payment was authorized with.
    #[arg(long, default_value = "stripe")]
    processor: String,
    /// Defaults to a new random id. The ledger treats a second result with the same id as a
    /// retry (it changes nothing).
    #[arg(long)]
    result_id: Option<Uuid>,
}

#[derive(Subcommand)]
pub enum ResultCommand {
    /// The processor's answer to an authorization.
    Authorization {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        outcome: Outcome,
        /// How the outcome was learned.
        #[arg(long, value_enum, default_value = "response")]
        source: Source,
        /// The processor's id for the authorization.
        #[arg(long)]
        processor_reference: Option<String>,
        /// Decline or error code.
        #[arg(long)]
        code: Option<String>,
        #[arg(long, default_value = "")]
        detail: String,
        /// When the processor drops the hold (RFC 3339); defaults to the ledger's validity.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// The processor paid out a captured payment (gross amount, its fee withheld).
    Settlement {
        #[command(flatten)]
        target: Target,
        /// Gross amount settled, decimal in major units (validated by the ledger).
        #[arg(long)]
        amount: String,
        /// The processor's fee, withheld from the amount (0 for none).
        #[arg(long)]
        fee: String,
        #[arg(long)]
        currency: String,
        /// The platform bank account that received the money.
        #[arg(long)]
        bank_account: String,
        /// Defaults to `st_<random>`.
        #[arg(long)]
        settlement_id: Option<String>,
    },
    /// A chargeback was opened.
    DisputeOpened {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        dispute_id: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        currency: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// A chargeback was decided.
    DisputeClosed {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        dispute_id: String,
        #[arg(long, value_enum)]
        outcome: Decision,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Outcome {
    Approved,
    Declined,
    Failed,
    Unknown,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Source {
    Response,
    StatusInquiry,
    Webhook,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Decision {
    Won,
    Lost,
}

/// The result the arguments describe, and extra ids to print.
fn build(command: ResultCommand) -> (GatewayResult, serde_json::Value) {
    let envelope = |t: Target, body| GatewayResult {
        result_id: t.result_id.unwrap_or_else(Uuid::new_v4),
        merchant_id: t.merchant,
        payment_id: t.payment_id,
        processor: t.processor,
        occurred_at: Utc::now(),
        body,
    };
    let none = serde_json::json!({});
    match command {
        ResultCommand::Authorization {
            target,
            outcome,
            source,
            processor_reference,
            code,
            detail,
            expires_at,
        } => {
            let body = ResultBody::Authorization(AuthorizationResult {
                outcome: match outcome {
                    Outcome::Approved => AuthorizationOutcome::Approved,
                    Outcome::Declined => AuthorizationOutcome::Declined,
                    Outcome::Failed => AuthorizationOutcome::Failed,
                    Outcome::Unknown => AuthorizationOutcome::Unknown,
                },
                source: match source {
                    Source::Response => ResultSource::Response,
                    Source::StatusInquiry => ResultSource::StatusInquiry,
                    Source::Webhook => ResultSource::Webhook,
                },
                processor_reference,
                code,
                detail,
                expires_at,
            });
            (envelope(target, body), none)
        }
        ResultCommand::Settlement {
            target,
            amount,
            fee,
            currency,
            bank_account,
            settlement_id,
        } => {
            let settlement_id =
                settlement_id.unwrap_or_else(|| format!("st_{}", Uuid::new_v4().simple()));
            let body = ResultBody::Settlement(SettlementReport {
                settlement_id: settlement_id.clone(),
                amount: wire_money(&amount, &currency),
                fee: wire_money(&fee, &currency),
                bank_account,
            });
            (
                envelope(target, body),
                serde_json::json!({ "settlement_id": settlement_id }),
            )
        }
        ResultCommand::DisputeOpened {
            target,
            dispute_id,
            amount,
            currency,
            reason,
        } => {
            let body = ResultBody::DisputeOpened(DisputeNotice {
                dispute_id,
                amount: wire_money(&amount, &currency),
                reason,
            });
            (envelope(target, body), none)
        }
        ResultCommand::DisputeClosed {
            target,
            dispute_id,
            outcome,
        } => {
            let body = ResultBody::DisputeClosed(DisputeDecision {
                dispute_id,
                outcome: match outcome {
                    Decision::Won => DisputeOutcome::Won,
                    Decision::Lost => DisputeOutcome::Lost,
                },
            });
            (envelope(target, body), none)
        }
    }
}

/// Publishes one result with the gateway principal and prints where it landed (one JSON line).
pub async fn publish(command: ResultCommand) -> Result<()> {
    let publisher = CommandPublisher::new(&kafka(Role::Gateway)?, codec()?)?;
    let (result, ids) = build(command);
    let at = publisher.publish_result(&result).await?;
    let mut line = serde_json::json!({
        "result_id": result.result_id,
        "payment_id": result.payment_id,
        "partition": at.partition,
        "offset": at.offset,
    });
    if let (Some(line), Some(ids)) = (line.as_object_mut(), ids.as_object()) {
        line.extend(ids.clone());
    }
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        result: ResultCommand,
    }

    fn result(args: &str) -> (GatewayResult, serde_json::Value) {
        let args = std::iter::once("gateway-result").chain(args.split_whitespace());
        build(Cli::try_parse_from(args).expect("parses").result)
    }

    #[test]
    fn an_authorization_result_carries_every_option() {
        let id = Uuid::new_v4();
        let (r, _) = result(&format!(
            "authorization --merchant m-1 --payment-id {id} --outcome declined \
             --source status-inquiry --processor square --code do_not_honor \
             --expires-at 2030-01-02T03:04:05Z"
        ));
        assert_eq!((r.merchant_id.as_str(), r.payment_id), ("m-1", id));
        assert_eq!(r.processor, "square");
        let ResultBody::Authorization(a) = r.body else {
            panic!("{r:?}")
        };
        assert_eq!(a.outcome, AuthorizationOutcome::Declined);
        assert_eq!(a.source, ResultSource::StatusInquiry);
        assert_eq!(a.code.as_deref(), Some("do_not_honor"));
        assert_eq!(
            a.expires_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2030-01-02T03:04:05+00:00")
        );
    }

    #[test]
    fn settlement_and_disputes_build_their_results() {
        let id = Uuid::new_v4();
        let (r, ids) = result(&format!(
            "settlement --merchant m-1 --payment-id {id} --amount 10.00 --fee 0.30 \
             --currency GBP --bank-account barclays-main"
        ));
        let ResultBody::Settlement(s) = &r.body else {
            panic!("{r:?}")
        };
        assert!(s.settlement_id.starts_with("st_"));
        assert_eq!(ids, serde_json::json!({ "settlement_id": s.settlement_id }));
        assert_eq!(
            (s.fee.amount.as_str(), s.fee.currency.as_str()),
            ("0.30", "GBP")
        );
        let (r, _) = result(&format!(
            "dispute-closed --merchant m-1 --payment-id {id} --dispute-id dp-1 --outcome lost"
        ));
        assert_eq!(
            r.body,
            ResultBody::DisputeClosed(DisputeDecision {
                dispute_id: "dp-1".into(),
                outcome: DisputeOutcome::Lost,
            })
        );
        let bad = Cli::try_parse_from([
            "gateway-result",
            "authorization",
            "--merchant",
            "m",
            "--payment-id",
            &id.to_string(),
            "--outcome",
            "maybe",
        ]);
        assert!(bad.is_err(), "outcomes are a closed set");
    }
}

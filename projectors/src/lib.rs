//! Read models built from `payments.events`.
//!
//! [`postgres`] keeps the analysts' tables in PostgreSQL: `payments` (each payment's lifecycle
//! and amounts), `command_rejections`, `ledger_entries` (every posting, append-only) and the
//! views over them (`account_balances`, `trial_balance`, `daily_authorization_volume`,
//! `payment_lifecycle_daily`). Each batch of events is applied in one database transaction
//! together with the offsets it consumed, so the projection is exactly once by construction
//! and can be rebuilt from offset 0 at any time. [`apply_batch`] is that transaction, callable
//! without Kafka.

pub mod postgres;
mod rows;

pub use postgres::{BatchStats, MIGRATOR, PostgresProjector, ProjectorError, apply_batch};
pub use rows::RowError;

//! Read models built from `payments.events`.
//!
//! [`postgres`] keeps the analysts' tables (`payments`, `command_rejections`, the
//! `daily_authorization_volume` view) in PostgreSQL. Each batch of events is applied in one
//! database transaction together with the offsets it consumed, so the projection is exactly
//! once by construction and can be rebuilt from offset 0 at any time.

pub mod postgres;
mod rows;

pub use postgres::{PostgresProjector, ProjectorError};
pub use rows::RowError;

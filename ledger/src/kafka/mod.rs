//! The Kafka runtime every payledger service shares: one secure client configuration, the
//! declarative topic list, dead letters, and rebuilding state from the events topic.

mod config;
pub mod context;
pub mod dlq;
pub mod headers;
pub mod publisher;
pub mod restore;
mod secret;
pub mod snapshots;
pub mod topics;

pub use config::{ConfigError, KafkaSettings, Role, Security};
pub use secret::Secret;

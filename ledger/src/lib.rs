//! The payledger ledger: exact money, the payment rules, and the single writer of
//! `payments.events`.
//!
//! The core is pure: [`decide`](decide::decide) turns a merchant's state and a command into
//! events (or a rejection), and [`evolve`](evolve::evolve) applies an event to the state.
//! Neither touches Kafka, a clock or a random number generator. Around them, the
//! [`service`] runs the exactly-once loop, and [`kafka`] holds the secure client
//! configuration, topics, dead letters and state restore every payledger service shares.
//!
//! ```
//! use chrono::Utc;
//! use ledger::decide::{Decision, decide};
//! use schemas::{AuthorizePayment, CommandBody, PaymentCommand, WireMoney};
//! use uuid::Uuid;
//!
//! let command = PaymentCommand {
//!     command_id: Uuid::new_v4(),
//!     idempotency_key: "order-42".into(),
//!     merchant_id: "merchant-7".into(),
//!     issued_at: Utc::now(),
//!     body: CommandBody::AuthorizePayment(AuthorizePayment {
//!         payment_id: Uuid::new_v4(),
//!         amount: WireMoney { amount: "12.345".into(), currency: "GBP".into() },
//!         processor: "stripe".into(),
//!         payment_token: "tok_visa".into(),
//!     }),
//! };
//! // GBP has two decimals: the command is rejected, never rounded.
//! match decide(None, &command, Utc::now()) {
//!     Decision::Reject(event) => assert_eq!(event.kind(), "CommandRejected"),
//!     other => panic!("{other:?}"),
//! }
//! ```

pub mod account;
pub mod balance;
pub mod decide;
pub mod evolve;
pub mod fingerprint;
pub mod kafka;
pub mod lifecycle;
pub mod money;
pub mod processor;
pub mod rejection;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod token;

pub use processor::PROCESSORS;

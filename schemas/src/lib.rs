//! The contracts of payledger: Avro schemas, their Rust mirrors, and the codec that puts them
//! on Kafka in Confluent wire format.
//!
//! The `.avsc` files under `schemas/avro/<subject>/vN.avsc` are the source of truth. Every
//! version ever released stays in the repository, so the compatibility test can prove that the
//! newest schema of each subject reads all earlier ones (`BACKWARD_TRANSITIVE`, the same rule
//! the registry enforces once `payledger schemas register` has run).
//!
//! ```
//! use schemas::{Subject, compat};
//! // Every subject's newest schema can read all of its earlier versions.
//! for subject in Subject::ALL {
//!     compat::check_history(&subject).unwrap();
//! }
//! ```

mod avro_value;
pub mod codec;
pub mod command;
pub mod compat;
mod error;
pub mod event;
pub mod registry;
pub mod result;
mod subject;

pub use codec::{DecodeError, RegistryCodec};
pub use command::{
    AuthorizePayment, CapturePayment, CommandBody, PaymentCommand, RefundPayment, RequestPayout,
    VoidPayment,
};
pub use error::SchemaError;
pub use event::{
    CommandRejected, DisputeClosed, DisputeOpened, DisputeOutcome, EventBody,
    PaymentAuthorizationFailed, PaymentAuthorizationRequested, PaymentAuthorizationUnknown,
    PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentEvent, PaymentRefunded,
    PaymentSettled, PaymentVoided, PayoutSent, Posting, PostingPhase, VoidReason,
};
pub use result::{
    AuthorizationOutcome, AuthorizationResult, DisputeDecision, DisputeNotice, GatewayResult,
    ResultBody, ResultSource, SettlementReport,
};
pub use subject::Subject;

/// An exact amount as it travels on the wire: a decimal string in major units and an
/// ISO 4217 code. The ledger's `Money` type parses and validates it; this type does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireMoney {
    pub amount: String,
    pub currency: String,
}

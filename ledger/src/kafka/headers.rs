//! Record headers payledger reads and writes.

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};

/// W3C trace context, carried from command to events to read models.
pub const TRACEPARENT: &str = "traceparent";
/// The event's type name (`PaymentAuthorizationRequested`, …), for tools that do not decode.
pub const EVENT_TYPE: &str = "payledger.event-type";

/// The value of header `name` as UTF-8, if present.
pub fn get<'a>(message: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Adds a string header.
pub fn with(headers: OwnedHeaders, key: &str, value: &str) -> OwnedHeaders {
    headers.insert(Header {
        key,
        value: Some(value.as_bytes()),
    })
}

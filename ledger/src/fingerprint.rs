//! A command's content fingerprint: what "the same command" means for idempotency.

use schemas::{CommandBody, PaymentCommand};
use sha2::{Digest, Sha256};

/// Hex SHA-256 over the command's business content: merchant, idempotency key and body.
/// `command_id` and `issued_at` are left out on purpose: a sender's retry may carry new ones
/// and is still the same request.
pub fn fingerprint(command: &PaymentCommand) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(command.merchant_id.as_bytes());
    field(command.idempotency_key.as_bytes());
    match &command.body {
        CommandBody::AuthorizePayment(a) => {
            field(b"AuthorizePayment");
            field(a.payment_id.as_bytes());
            field(a.amount.amount.as_bytes());
            field(a.amount.currency.as_bytes());
            field(a.processor.as_bytes());
            field(a.payment_token.as_bytes());
        }
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).expect("nibble"));
        out.push(char::from_digit(u32::from(b & 0xf), 16).expect("nibble"));
    }
    out
}

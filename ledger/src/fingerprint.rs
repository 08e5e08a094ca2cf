//! Content fingerprints: what "the same command" (or the same gateway result) means for
//! idempotency.

use schemas::{AuthorizationOutcome, CommandBody, GatewayResult, PaymentCommand, ResultBody};
use sha2::{Digest, Sha256};

/// Hex SHA-256 over the command's business content: merchant, idempotency key and body.
/// `command_id` and `issued_at` are left out on purpose: a sender's retry may carry new ones
/// and is still the same request.
pub fn fingerprint(command: &PaymentCommand) -> String {
    let mut h = Fields::default();
    h.field(command.merchant_id.as_bytes());
    h.field(command.idempotency_key.as_bytes());
    match &command.body {
        CommandBody::AuthorizePayment(a) => {
            h.field(b"AuthorizePayment");
            h.field(a.payment_id.as_bytes());
            h.money(&a.amount);
            h.field(a.processor.as_bytes());
            h.field(a.payment_token.as_bytes());
        }
        CommandBody::CapturePayment(c) => {
            h.field(b"CapturePayment");
            h.field(c.payment_id.as_bytes());
            h.money(&c.amount);
        }
        CommandBody::VoidPayment(v) => {
            h.field(b"VoidPayment");
            h.field(v.payment_id.as_bytes());
        }
        CommandBody::RefundPayment(r) => {
            h.field(b"RefundPayment");
            h.field(r.payment_id.as_bytes());
            h.money(&r.amount);
        }
        CommandBody::RequestPayout(p) => {
            h.field(b"RequestPayout");
            h.field(p.payout_id.as_bytes());
            h.money(&p.amount);
            h.field(p.bank_account.as_bytes());
        }
    }
    h.hex()
}

/// Hex SHA-256 over everything a gateway result says except when it was said.
pub fn result_fingerprint(result: &GatewayResult) -> String {
    let mut h = Fields::default();
    h.field(b"GatewayResult");
    h.field(result.result_id.as_bytes());
    h.field(result.merchant_id.as_bytes());
    h.field(result.payment_id.as_bytes());
    h.field(result.processor.as_bytes());
    match &result.body {
        ResultBody::Authorization(a) => {
            h.field(b"AuthorizationResult");
            let outcome: &[u8] = match a.outcome {
                AuthorizationOutcome::Approved => b"APPROVED",
                AuthorizationOutcome::Declined => b"DECLINED",
                AuthorizationOutcome::Failed => b"FAILED",
                AuthorizationOutcome::Unknown => b"UNKNOWN",
            };
            h.field(outcome);
            h.opt(a.processor_reference.as_deref());
            h.opt(a.code.as_deref());
            h.field(a.detail.as_bytes());
            h.field(
                &a.expires_at
                    .map_or(i64::MIN, |t| t.timestamp_millis())
                    .to_be_bytes(),
            );
        }
        ResultBody::Settlement(s) => {
            h.field(b"SettlementReport");
            h.field(s.settlement_id.as_bytes());
            h.money(&s.amount);
            h.money(&s.fee);
            h.field(s.bank_account.as_bytes());
        }
        ResultBody::DisputeOpened(d) => {
            h.field(b"DisputeNotice");
            h.field(d.dispute_id.as_bytes());
            h.money(&d.amount);
            h.field(d.reason.as_bytes());
        }
        ResultBody::DisputeClosed(d) => {
            h.field(b"DisputeDecision");
            h.field(d.dispute_id.as_bytes());
            h.field(format!("{:?}", d.outcome).as_bytes());
        }
    }
    h.hex()
}

#[derive(Default)]
struct Fields(Sha256);

impl Fields {
    /// Length-prefixed, so ("ab","c") and ("a","bc") differ.
    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn money(&mut self, m: &schemas::WireMoney) {
        self.field(m.amount.as_bytes());
        self.field(m.currency.as_bytes());
    }

    fn opt(&mut self, value: Option<&str>) {
        match value {
            None => self.field(b"\xffnone"),
            Some(v) => self.field(v.as_bytes()),
        }
    }

    fn hex(self) -> String {
        hex(&self.0.finalize())
    }
}

/// Lower-case hex, the form digests take in events and snapshot manifests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

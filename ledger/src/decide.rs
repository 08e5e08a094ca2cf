//! `decide`: given a merchant's state and a command (or a gateway result), which events follow. Pure: no I/O, no
//! clock (the time comes in), no randomness (event ids derive from the command).

use chrono::{DateTime, Utc};
use schemas::{
    CommandBody, CommandRejected, EventBody, GatewayResult, PaymentCommand, PaymentEvent,
};
use uuid::Uuid;

use crate::fingerprint::{fingerprint, hex, result_fingerprint};
use crate::lifecycle;
use crate::rejection::Rejection;
use crate::state::{MAX_IDEMPOTENCY_KEYS_PER_MERCHANT, MerchantState};

pub use crate::processor::PROCESSORS;

/// What the ledger does with one command or gateway result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// New events to write, in order.
    Accept(Vec<PaymentEvent>),
    /// The input is refused; write this one `CommandRejected` event.
    Reject(Box<PaymentEvent>),
    /// The same idempotency key with the same content was already decided: the original
    /// outcome stands and nothing new is written.
    Duplicate,
    /// A gateway result that changes nothing (the outcome it reports is already recorded,
    /// or is still unknown). Nothing is written.
    NoChange,
}

impl Decision {
    /// The events to write (none for a duplicate).
    pub fn into_events(self) -> Vec<PaymentEvent> {
        match self {
            Decision::Accept(events) => events,
            Decision::Reject(event) => vec![*event],
            Decision::Duplicate | Decision::NoChange => Vec::new(),
        }
    }
}

/// Decides a command against the merchant's state (`None`: the merchant has no events yet).
pub fn decide(
    state: Option<&MerchantState>,
    command: &PaymentCommand,
    now: DateTime<Utc>,
) -> Decision {
    let now = wire_time(now);
    let empty = MerchantState::default();
    let state = state.unwrap_or(&empty);
    let envelope = Envelope {
        cause: command.command_id,
        merchant_id: &command.merchant_id,
        key: command.idempotency_key.clone(),
        payment_id: command_payment_id(&command.body),
        fingerprint: fingerprint(command),
        next_sequence: state.sequence + 1,
        now,
    };
    let key = &command.idempotency_key;
    let key_ok = !key.is_empty()
        && key.len() <= 255
        && key.bytes().all(|b| b.is_ascii_graphic())
        && !key.starts_with(RESULT_KEY_PREFIX)
        && !key.starts_with(EXPIRY_KEY_PREFIX);
    if !key_ok {
        // Before the key lookup: a reserved key must not reach a result's or expiry's outcome.
        return Decision::Reject(Box::new(
            envelope.rejection(&Rejection::InvalidIdempotencyKey),
        ));
    }
    if let Some(settled) = envelope.replay(state) {
        return settled;
    }
    let checked = envelope
        .admissible(state)
        .and_then(|()| lifecycle::on_command(state, &command.merchant_id, &command.body, now));
    match checked {
        Ok(body) => Decision::Accept(vec![envelope.event(0, body)]),
        Err(rejection) => Decision::Reject(Box::new(envelope.rejection(&rejection))),
    }
}

/// Decides a gateway result. Its idempotency key is `gateway-result:<result_id>`: a
/// redelivered result is a duplicate, a different result under a reused id is refused.
pub fn decide_result(
    state: Option<&MerchantState>,
    result: &GatewayResult,
    now: DateTime<Utc>,
) -> Decision {
    let now = wire_time(now);
    let empty = MerchantState::default();
    let state = state.unwrap_or(&empty);
    let envelope = Envelope {
        cause: result.result_id,
        merchant_id: &result.merchant_id,
        key: result_key(result.result_id),
        payment_id: Some(result.payment_id),
        fingerprint: result_fingerprint(result),
        next_sequence: state.sequence + 1,
        now,
    };
    if let Some(settled) = envelope.replay(state) {
        return settled;
    }
    let checked = envelope
        .admissible(state)
        .and_then(|()| lifecycle::on_result(state, &result.merchant_id, result, now));
    match checked {
        Ok(Some(body)) => Decision::Accept(vec![envelope.event(0, body)]),
        Ok(None) => Decision::NoChange,
        Err(rejection) => Decision::Reject(Box::new(envelope.rejection(&rejection))),
    }
}

/// Idempotency keys the ledger records for gateway results (`gateway-result:<result_id>`) and
/// expiries (`expiry:<payment_id>`). Reserved: a command's key may not start with either, so
/// a command can never take the key of a result or an expiry.
pub const RESULT_KEY_PREFIX: &str = "gateway-result:";
pub const EXPIRY_KEY_PREFIX: &str = "expiry:";

/// The idempotency key a gateway result is recorded under.
pub fn result_key(result_id: Uuid) -> String {
    format!("{RESULT_KEY_PREFIX}{result_id}")
}

/// Voids every approved authorization of the merchant whose hold expired at `now`, as one
/// `PaymentVoided` (reason `EXPIRED`) per payment. Deterministic: each expiry's ids derive
/// from its payment, so deciding it twice writes identical events.
pub fn expire(state: &MerchantState, merchant_id: &str, now: DateTime<Utc>) -> Vec<PaymentEvent> {
    let now = wire_time(now);
    lifecycle::expired(state, merchant_id, now)
        .into_iter()
        .enumerate()
        .map(|(i, (payment_id, body))| {
            // Payment ids are per merchant: the merchant is part of the expiry's identity.
            let identity = [merchant_id.as_bytes(), b"\0", payment_id.as_bytes()].concat();
            let envelope = Envelope {
                cause: derived_id(b"payledger.expiry.v2", &identity),
                merchant_id,
                key: format!("{EXPIRY_KEY_PREFIX}{payment_id}"),
                payment_id: Some(payment_id),
                fingerprint: hex(&sha(b"payledger.expiry.v2", &identity)),
                next_sequence: state.sequence + 1 + i as i64,
                now,
            };
            envelope.event(0, body)
        })
        .collect()
}

/// `now` at the precision events carry (Avro `timestamp-millis`): a time derived from it and
/// kept in the state (an expiry) must be the same whether the state was built live or
/// replayed from the topic.
pub(crate) fn wire_time(now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

fn valid_merchant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn command_payment_id(body: &CommandBody) -> Option<Uuid> {
    match body {
        CommandBody::AuthorizePayment(a) => Some(a.payment_id),
        CommandBody::CapturePayment(c) => Some(c.payment_id),
        CommandBody::VoidPayment(v) => Some(v.payment_id),
        CommandBody::RefundPayment(r) => Some(r.payment_id),
        CommandBody::RequestPayout(_) => None,
    }
}

/// The fields every event of one input shares.
struct Envelope<'a> {
    /// The command id or gateway result id.
    cause: Uuid,
    merchant_id: &'a str,
    key: String,
    payment_id: Option<Uuid>,
    fingerprint: String,
    next_sequence: i64,
    now: DateTime<Utc>,
}

impl Envelope<'_> {
    /// The outcome of an input whose key was seen before, if it was.
    fn replay(&self, state: &MerchantState) -> Option<Decision> {
        match state.idempotency.get(&self.key) {
            Some(seen) if *seen == self.fingerprint => Some(Decision::Duplicate),
            Some(_) => Some(Decision::Reject(Box::new(
                self.rejection(&Rejection::IdempotencyKeyReused),
            ))),
            None => None,
        }
    }

    /// Checks that apply to every input before its own rules.
    fn admissible(&self, state: &MerchantState) -> Result<(), Rejection> {
        if !valid_merchant_id(self.merchant_id) {
            return Err(Rejection::InvalidMerchantId);
        }
        if state.idempotency.len() >= MAX_IDEMPOTENCY_KEYS_PER_MERCHANT {
            return Err(Rejection::MerchantStateFull);
        }
        Ok(())
    }

    fn event(&self, index: u8, body: EventBody) -> PaymentEvent {
        let payment_id = body_payment_id(&body).or(self.payment_id);
        PaymentEvent {
            event_id: event_id(self.cause, &self.fingerprint, index),
            merchant_id: self.merchant_id.to_owned(),
            merchant_sequence: self.next_sequence + i64::from(index),
            payment_id,
            command_id: self.cause,
            idempotency_key: self.key.clone(),
            command_fingerprint: self.fingerprint.clone(),
            occurred_at: self.now,
            body,
        }
    }

    fn rejection(&self, rejection: &Rejection) -> PaymentEvent {
        self.event(
            0,
            EventBody::CommandRejected(CommandRejected {
                reason_code: rejection.code().to_owned(),
                detail: rejection.to_string(),
            }),
        )
    }
}

/// The payment an event is about, if any.
pub fn body_payment_id(body: &EventBody) -> Option<Uuid> {
    match body {
        EventBody::PaymentAuthorizationRequested(e) => Some(e.payment_id),
        EventBody::CommandRejected(_) | EventBody::PayoutSent(_) => None,
        EventBody::PaymentAuthorized(e) => Some(e.payment_id),
        EventBody::PaymentDeclined(e) => Some(e.payment_id),
        EventBody::PaymentAuthorizationFailed(e) => Some(e.payment_id),
        EventBody::PaymentAuthorizationUnknown(e) => Some(e.payment_id),
        EventBody::PaymentCaptured(e) => Some(e.payment_id),
        EventBody::PaymentVoided(e) => Some(e.payment_id),
        EventBody::PaymentRefunded(e) => Some(e.payment_id),
        EventBody::PaymentSettled(e) => Some(e.payment_id),
        EventBody::DisputeOpened(e) => Some(e.payment_id),
        EventBody::DisputeClosed(e) => Some(e.payment_id),
    }
}

/// A deterministic event id: the same input (its id and its content) always yields the same
/// ids, so an input decided again after an aborted transaction writes events
/// indistinguishable from the first try; a different input that reuses an id (e.g. a result id
/// sent again with other content) gets ids of its own.
pub fn event_id(cause: Uuid, fingerprint: &str, index: u8) -> Uuid {
    let mut input = Vec::with_capacity(16 + fingerprint.len() + 1);
    input.extend_from_slice(cause.as_bytes());
    input.extend_from_slice(fingerprint.as_bytes());
    input.push(index);
    derived_id(b"payledger.event-id.v2", &input)
}

fn sha(domain: &[u8], input: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(domain)
        .chain_update(input)
        .finalize()
        .into()
}

fn derived_id(domain: &[u8], input: &[u8]) -> Uuid {
    let digest = sha(domain, input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use schemas::{AuthorizePayment, CommandBody, WireMoney};

    use super::*;
    use crate::evolve::evolve;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_760_000_000_000).unwrap()
    }

    fn authorize_cmd(n: u128, amount: &str, currency: &str) -> PaymentCommand {
        PaymentCommand {
            command_id: Uuid::from_u128(1000 + n),
            idempotency_key: format!("key-{n}"),
            merchant_id: "merchant-1".into(),
            issued_at: now(),
            body: CommandBody::AuthorizePayment(AuthorizePayment {
                payment_id: Uuid::from_u128(n),
                amount: WireMoney {
                    amount: amount.into(),
                    currency: currency.into(),
                },
                processor: "stripe".into(),
                payment_token: "tok_visa".into(),
            }),
        }
    }

    /// Decides `cmd` against `state` and applies what it emits.
    fn step(state: &mut MerchantState, cmd: &PaymentCommand) -> Vec<PaymentEvent> {
        let decision = decide(Some(state), cmd, now());
        apply(state, decision)
    }

    fn apply(state: &mut MerchantState, decision: Decision) -> Vec<PaymentEvent> {
        let events = decision.into_events();
        for e in &events {
            evolve(state, e).unwrap();
        }
        events
    }

    fn rejection_code(decision: &Decision) -> &str {
        match decision {
            Decision::Reject(event) => match &event.body {
                EventBody::CommandRejected(r) => &r.reason_code,
                other => panic!("a rejection carries CommandRejected, got {other:?}"),
            },
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn authorize_emits_the_exact_amount_scaled_to_the_currency() {
        for (amount, currency, expected) in [
            ("10.5", "GBP", "10.50"),
            ("1000", "JPY", "1000"),
            ("1.234", "BHD", "1.234"),
            ("7", "KWD", "7.000"),
        ] {
            let cmd = authorize_cmd(1, amount, currency);
            let Decision::Accept(events) = decide(None, &cmd, now()) else {
                panic!("{amount} {currency} should be accepted");
            };
            assert_eq!(events.len(), 1);
            let e = &events[0];
            assert_eq!(e.merchant_sequence, 1);
            assert_eq!(e.command_id, cmd.command_id);
            assert_eq!(e.idempotency_key, "key-1");
            assert_eq!(
                e.event_id,
                event_id(cmd.command_id, &e.command_fingerprint, 0)
            );
            match &e.body {
                EventBody::PaymentAuthorizationRequested(body) => {
                    assert_eq!(body.amount.amount, expected);
                    assert_eq!(body.amount.currency, currency);
                    assert_eq!(body.payment_id, Uuid::from_u128(1));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_commands_are_rejected_with_their_reason() {
        let mut bad_token = authorize_cmd(2, "1.00", "USD");
        {
            let CommandBody::AuthorizePayment(a) = &mut bad_token.body else {
                unreachable!()
            };
            a.payment_token = "4111 1111 1111 1111".into();
        }
        let mut bad_processor = authorize_cmd(3, "1.00", "USD");
        {
            let CommandBody::AuthorizePayment(a) = &mut bad_processor.body else {
                unreachable!()
            };
            a.processor = "paypal".into();
        }
        let mut bad_merchant = authorize_cmd(4, "1.00", "USD");
        bad_merchant.merchant_id = "bad merchant".into();
        let mut bad_key = authorize_cmd(5, "1.00", "USD");
        bad_key.idempotency_key = String::new();
        let cases = [
            (authorize_cmd(1, "1.001", "USD"), "amount_precision"),
            (authorize_cmd(1, "1.5", "JPY"), "amount_precision"),
            (authorize_cmd(1, "0.00", "EUR"), "amount_not_positive"),
            (authorize_cmd(1, "ten", "EUR"), "invalid_amount"),
            (authorize_cmd(1, "1.00", "ABC"), "unsupported_currency"),
            (bad_token, "card_number_rejected"),
            (bad_processor, "unknown_processor"),
            (bad_merchant, "invalid_merchant_id"),
            (bad_key, "invalid_idempotency_key"),
        ];
        for (cmd, code) in cases {
            let decision = decide(None, &cmd, now());
            assert_eq!(rejection_code(&decision), code, "{cmd:?}");
            let Decision::Reject(event) = decision else {
                unreachable!()
            };
            assert!(
                !format!("{event:?}").contains("4111"),
                "detail must not echo a card number"
            );
        }
    }

    #[test]
    fn same_key_same_content_is_a_duplicate_and_different_content_is_refused() {
        let mut state = MerchantState::default();
        let first = authorize_cmd(1, "25.00", "EUR");
        assert_eq!(step(&mut state, &first).len(), 1);

        // A retry with a new command id and timestamp is still the same request.
        let mut retry = first.clone();
        retry.command_id = Uuid::from_u128(9999);
        assert_eq!(decide(Some(&state), &retry, now()), Decision::Duplicate);

        let mut changed = first.clone();
        {
            let CommandBody::AuthorizePayment(a) = &mut changed.body else {
                unreachable!()
            };
            a.amount.amount = "26.00".into();
        }
        let decision = decide(Some(&state), &changed, now());
        assert_eq!(rejection_code(&decision), "idempotency_key_reused");
        apply(&mut state, decision);
        // The reused-key rejection did not rebind the key: the original still dedupes.
        assert_eq!(decide(Some(&state), &retry, now()), Decision::Duplicate);
        assert_eq!(state.sequence, 2);
    }

    #[test]
    fn a_retried_invalid_command_is_a_duplicate_of_its_rejection() {
        let mut state = MerchantState::default();
        let bad = authorize_cmd(1, "1.001", "USD");
        step(&mut state, &bad);
        assert_eq!(decide(Some(&state), &bad, now()), Decision::Duplicate);
    }

    #[test]
    fn a_payment_id_cannot_be_authorized_twice() {
        let mut state = MerchantState::default();
        step(&mut state, &authorize_cmd(1, "5.00", "USD"));
        let mut again = authorize_cmd(1, "5.00", "USD");
        again.idempotency_key = "another-key".into();
        assert_eq!(
            rejection_code(&decide(Some(&state), &again, now())),
            "duplicate_payment"
        );
    }

    #[test]
    fn replaying_written_events_rebuilds_the_state_decide_saw() {
        let mut live = MerchantState::default();
        let mut log = Vec::new();
        for n in 0..50u128 {
            let cmd = if n % 7 == 3 {
                authorize_cmd(n, "0.001", "GBP")
            } else {
                authorize_cmd(n, &format!("{}.{:02}", n, n % 100), "GBP")
            };
            log.extend(step(&mut live, &cmd));
            // And a duplicate of every command: writes nothing.
            assert!(decide(Some(&live), &cmd, now()).into_events().is_empty());
        }
        let mut rebuilt = MerchantState::default();
        for e in &log {
            evolve(&mut rebuilt, e).unwrap();
        }
        assert_eq!(rebuilt, live);
        assert_eq!(live.sequence, 50);
    }

    #[test]
    fn evolve_refuses_a_sequence_gap() {
        let mut state = MerchantState::default();
        let Decision::Accept(mut events) = decide(None, &authorize_cmd(1, "1.00", "USD"), now())
        else {
            panic!()
        };
        events[0].merchant_sequence = 2;
        assert!(matches!(
            evolve(&mut state, &events[0]),
            Err(crate::evolve::EvolveError::SequenceGap {
                expected_after: 0,
                found: 2,
                ..
            })
        ));
    }
}

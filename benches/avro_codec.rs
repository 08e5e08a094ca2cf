//! Avro encode/decode of the event envelope, and decide+evolve of the ledger core.
//!
//! `cargo bench --bench avro_codec`. Registry-free: the schema is this build's, framed in
//! Confluent wire format exactly as the registry codec does after its first lookup (the
//! registry is consulted once per schema id, then cached). Encode = Rust struct → Avro value
//! → framed bytes; decode = framed bytes → Avro value → Rust struct.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger::decide::{decide, decide_result};
use ledger::evolve::evolve;
use ledger::state::MerchantState;
use schemas::codec::Framer;
use schemas::{
    AuthorizationOutcome, AuthorizationResult, AuthorizePayment, CapturePayment, CommandBody,
    EventBody, GatewayResult, PaymentAuthorizationRequested, PaymentCommand, PaymentEvent,
    RefundPayment, ResultBody, ResultSource, Subject, WireMoney,
};
use uuid::Uuid;

fn event() -> PaymentEvent {
    PaymentEvent {
        event_id: Uuid::from_u128(0xfeed),
        merchant_id: "merchant-000042".into(),
        merchant_sequence: 123_456,
        payment_id: Some(Uuid::from_u128(0xbeef)),
        command_id: Uuid::from_u128(0xc0de),
        idempotency_key: "order-2026-12-03-000123".into(),
        command_fingerprint: "9f".repeat(32),
        occurred_at: Utc.timestamp_millis_opt(1_764_770_000_000).unwrap(),
        body: EventBody::PaymentAuthorizationRequested(PaymentAuthorizationRequested {
            payment_id: Uuid::from_u128(0xbeef),
            amount: WireMoney {
                amount: "1234.56".into(),
                currency: "GBP".into(),
            },
            processor: "stripe".into(),
            payment_token: "pm_1N3bUe2eZvKYlo2C0x9nJk3a".into(),
        }),
    }
}

fn codec(c: &mut Criterion) {
    let schema = Subject::EVENTS.latest().unwrap();
    let framer = Framer::new(&schema, 7).unwrap();
    let e = event();
    let bytes = framer.frame(&e.to_value()).unwrap();
    let mut g = c.benchmark_group("event_envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| framer.frame(&black_box(&e).to_value()).unwrap())
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let v = framer.unframe(black_box(&bytes)).unwrap();
            PaymentEvent::from_value(&v).unwrap()
        })
    });
    g.finish();
}

/// One input of the realistic mix.
enum Input {
    Command(PaymentCommand),
    Result(GatewayResult),
}

/// Per payment: authorize, the processor's approval, two partial captures and a refund; one
/// payment in eight also sees a refused over-capture, one in eight a retried capture.
fn mix(payments: u128, now: chrono::DateTime<Utc>) -> Vec<Input> {
    let merchant = "merchant-000042";
    let command = |n: u128, key: String, body: CommandBody| {
        Input::Command(PaymentCommand {
            command_id: Uuid::from_u128(n),
            idempotency_key: key,
            merchant_id: merchant.into(),
            issued_at: now,
            body,
        })
    };
    let gbp = |amount: String| WireMoney {
        amount,
        currency: "GBP".into(),
    };
    let mut out = Vec::new();
    for n in 0..payments {
        let payment_id = Uuid::from_u128(n + 1_000_000);
        let base = 10 * n;
        out.push(command(
            base + 1,
            format!("auth-{n}"),
            CommandBody::AuthorizePayment(AuthorizePayment {
                payment_id,
                amount: gbp(format!("{}.{:02}", n + 2, n % 100)),
                processor: "stripe".into(),
                payment_token: "pm_1N3bUe2eZvKYlo2C0x9nJk3a".into(),
            }),
        ));
        out.push(Input::Result(GatewayResult {
            result_id: Uuid::from_u128(base + 2),
            merchant_id: merchant.into(),
            payment_id,
            processor: "stripe".into(),
            occurred_at: now,
            body: ResultBody::Authorization(AuthorizationResult {
                outcome: AuthorizationOutcome::Approved,
                source: ResultSource::Response,
                processor_reference: Some("ch_3N3bUe2eZvKYlo2C".into()),
                code: None,
                detail: "approved".into(),
                expires_at: None,
            }),
        }));
        let capture = |k: u128, amount: &str| {
            command(
                base + 3 + k,
                format!("cap-{n}-{k}"),
                CommandBody::CapturePayment(CapturePayment {
                    payment_id,
                    amount: gbp(amount.into()),
                }),
            )
        };
        out.push(capture(0, "1.00"));
        if n % 8 == 0 {
            out.push(capture(0, "1.00")); // a retry: a duplicate
        }
        out.push(capture(1, "1.00"));
        if n % 8 == 4 {
            out.push(capture(2, "999.00")); // refused: above the hold
        }
        out.push(command(
            base + 6,
            format!("ref-{n}"),
            CommandBody::RefundPayment(RefundPayment {
                payment_id,
                amount: gbp("0.50".into()),
            }),
        ));
    }
    out
}

fn core(c: &mut Criterion) {
    let now = Utc.timestamp_millis_opt(1_764_770_000_000).unwrap();
    let inputs = mix(1024, now);
    let mut g = c.benchmark_group("ledger_core");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("decide_evolve_lifecycle_mix", |b| {
        b.iter(|| {
            let mut state = MerchantState::default();
            for input in &inputs {
                let decision = match input {
                    Input::Command(cmd) => decide(Some(&state), cmd, now),
                    Input::Result(r) => decide_result(Some(&state), r, now),
                };
                for event in decision.into_events() {
                    evolve(&mut state, &event).unwrap();
                }
            }
            assert_eq!(state.payments.len(), 1024);
            black_box(state.sequence)
        })
    });
    g.finish();
}

criterion_group!(benches, codec, core);
criterion_main!(benches);

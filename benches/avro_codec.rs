//! Avro encode/decode of the event envelope, and decide+evolve of the ledger core.
//!
//! `cargo bench --bench avro_codec`. Registry-free: the schema is this build's, framed in
//! Confluent wire format exactly as the registry codec does after its first lookup (the
//! registry is consulted once per schema id, then cached). Encode = Rust struct → Avro value
//! → framed bytes; decode = framed bytes → Avro value → Rust struct.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger::decide::decide;
use ledger::evolve::evolve;
use ledger::state::MerchantState;
use schemas::codec::Framer;
use schemas::{
    AuthorizePayment, CommandBody, EventBody, PaymentAuthorizationRequested, PaymentCommand,
    PaymentEvent, Subject, WireMoney,
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

fn core(c: &mut Criterion) {
    let now = Utc.timestamp_millis_opt(1_764_770_000_000).unwrap();
    let commands: Vec<PaymentCommand> = (0..1024u128)
        .map(|n| PaymentCommand {
            command_id: Uuid::from_u128(n + 1),
            idempotency_key: format!("order-{n}"),
            merchant_id: "merchant-000042".into(),
            issued_at: now,
            body: CommandBody::AuthorizePayment(AuthorizePayment {
                payment_id: Uuid::from_u128(n + 1_000_000),
                amount: WireMoney {
                    // One in eight has too many decimals and is rejected.
                    amount: if n % 8 == 0 {
                        "10.005".into()
                    } else {
                        format!("{}.{:02}", n, n % 100)
                    },
                    currency: "GBP".into(),
                },
                processor: "stripe".into(),
                payment_token: "pm_1N3bUe2eZvKYlo2C0x9nJk3a".into(),
            }),
        })
        .collect();
    let mut g = c.benchmark_group("ledger_core");
    g.throughput(Throughput::Elements(commands.len() as u64));
    g.bench_function("decide_evolve_1024_commands", |b| {
        b.iter(|| {
            let mut state = MerchantState::default();
            for cmd in &commands {
                for event in decide(Some(&state), cmd, now).into_events() {
                    evolve(&mut state, &event).unwrap();
                }
            }
            black_box(state.sequence)
        })
    });
    g.finish();
}

criterion_group!(benches, codec, core);
criterion_main!(benches);

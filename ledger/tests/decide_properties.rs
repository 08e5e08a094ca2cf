//! Property tests of the pure core over random command sequences for one merchant: new
//! authorizations (valid or not), retries, reused keys and reused payment ids.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{TimeZone, Utc};
use ledger::decide::{Decision, decide};
use ledger::evolve::evolve;
use ledger::state::MerchantState;
use proptest::prelude::*;
use rust_decimal::Decimal;
use schemas::{AuthorizePayment, CommandBody, EventBody, PaymentCommand, WireMoney};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    /// A new command: `minor` units in `currency`, with `extra_digit` one decimal too many.
    New {
        minor: u32,
        currency: usize,
        extra_digit: bool,
    },
    /// The sender retries an earlier command (same key and content, new command id).
    Retry(usize),
    /// An earlier key with a different amount.
    ReuseKey(usize),
    /// An earlier payment id under a new key.
    ReusePaymentId(usize),
}

const CURRENCIES: [(&str, u32); 4] = [("GBP", 2), ("JPY", 0), ("BHD", 3), ("EUR", 2)];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..5_000_000, 0..CURRENCIES.len(), prop::bool::weighted(0.15))
            .prop_map(|(minor, currency, extra_digit)| Op::New { minor, currency, extra_digit }),
        1 => any::<prop::sample::Index>().prop_map(|i| Op::Retry(i.index(usize::MAX))),
        1 => any::<prop::sample::Index>().prop_map(|i| Op::ReuseKey(i.index(usize::MAX))),
        1 => any::<prop::sample::Index>().prop_map(|i| Op::ReusePaymentId(i.index(usize::MAX))),
    ]
}

/// `minor` minor units written as a decimal string with the currency's exponent (plus one
/// more digit when asked: an amount the currency cannot hold).
fn amount(minor: u32, exponent: u32, extra_digit: bool) -> String {
    let minor = u64::from(minor) + 1;
    let (digits, exponent) = if extra_digit {
        (minor * 10 + 5, exponent + 1)
    } else {
        (minor, exponent)
    };
    Decimal::new(digits as i64, exponent).to_string()
}

fn command(
    n: usize,
    key: String,
    payment_id: Uuid,
    amount: String,
    currency: &str,
) -> PaymentCommand {
    PaymentCommand {
        command_id: Uuid::from_u128(n as u128 + 1),
        idempotency_key: key,
        merchant_id: "merchant-p".into(),
        issued_at: Utc
            .timestamp_millis_opt(1_764_770_000_000 + n as i64)
            .unwrap(),
        body: CommandBody::AuthorizePayment(AuthorizePayment {
            payment_id,
            amount: WireMoney {
                amount,
                currency: currency.into(),
            },
            processor: "stripe".into(),
            payment_token: "tok_visa".into(),
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_core_keeps_its_promises(ops in prop::collection::vec(op(), 1..120)) {
        let now = Utc.timestamp_millis_opt(1_764_770_000_000).unwrap();
        let mut state = MerchantState::default();
        let mut sent: Vec<PaymentCommand> = Vec::new();
        let mut log = Vec::new();
        let mut accepted_total: BTreeMap<String, Decimal> = BTreeMap::new();

        for (n, op) in ops.into_iter().enumerate() {
            let cmd = match op {
                Op::New { minor, currency, extra_digit } => {
                    let (code, exp) = CURRENCIES[currency];
                    command(n, format!("key-{n}"), Uuid::from_u128(1_000_000 + n as u128), amount(minor, exp, extra_digit), code)
                }
                Op::Retry(_) | Op::ReuseKey(_) | Op::ReusePaymentId(_) if sent.is_empty() => continue,
                Op::Retry(i) => {
                    let mut c = sent[i % sent.len()].clone();
                    c.command_id = Uuid::from_u128(n as u128 + 1);
                    c
                }
                Op::ReuseKey(i) => {
                    let earlier = &sent[i % sent.len()];
                    let CommandBody::AuthorizePayment(a) = &earlier.body;
                    command(n, earlier.idempotency_key.clone(), Uuid::from_u128(2_000_000 + n as u128), "999.00".into(), &a.amount.currency)
                }
                Op::ReusePaymentId(i) => {
                    let CommandBody::AuthorizePayment(a) = &sent[i % sent.len()].body;
                    command(n, format!("key-{n}"), a.payment_id, "1.00".into(), "EUR")
                }
            };
            let before = state.clone();
            let decision = decide(Some(&state), &cmd, now);
            let original = sent.iter().find(|c| c.idempotency_key == cmd.idempotency_key);

            // Idempotency: a key seen before with the same content changes nothing; with other
            // content it is refused.
            if let Some(first) = original {
                let same = first.body == cmd.body;
                if same {
                    prop_assert_eq!(&decision, &Decision::Duplicate);
                } else {
                    let Decision::Reject(e) = &decision else { panic!("reused key: {decision:?}") };
                    let EventBody::CommandRejected(r) = &e.body else { panic!() };
                    prop_assert_eq!(r.reason_code.as_str(), "idempotency_key_reused");
                }
            }

            let events = decision.clone().into_events();
            prop_assert!(events.len() <= 1, "one command, at most one event");
            for e in &events {
                prop_assert_eq!(e.merchant_sequence, state.sequence + 1, "sequences are contiguous");
                prop_assert_eq!(e.command_id, cmd.command_id);
                if let EventBody::PaymentAuthorizationRequested(a) = &e.body {
                    // Money is never rounded: the event's amount equals the command's exactly.
                    let CommandBody::AuthorizePayment(c) = &cmd.body;
                    let asked = Decimal::from_str(&c.amount.amount).unwrap();
                    let got = Decimal::from_str(&a.amount.amount).unwrap();
                    prop_assert_eq!(asked, got);
                    prop_assert!(!before.payments.contains_key(&a.payment_id), "a payment id is authorized once");
                    *accepted_total.entry(a.amount.currency.clone()).or_default() += got;
                }
                evolve(&mut state, e).unwrap();
            }
            if original.is_none() {
                sent.push(cmd);
            }
            log.extend(events);
        }

        // Replaying the written events reproduces the state decide saw.
        let mut rebuilt = MerchantState::default();
        for e in &log {
            evolve(&mut rebuilt, e).unwrap();
        }
        prop_assert_eq!(&rebuilt, &state);
        // Per currency, the payments in the state add up to exactly what was accepted.
        let mut in_state: BTreeMap<String, Decimal> = BTreeMap::new();
        for p in state.payments.values() {
            *in_state.entry(p.amount.currency().code().to_owned()).or_default() += p.amount.amount();
        }
        prop_assert_eq!(in_state, accepted_total);
    }
}

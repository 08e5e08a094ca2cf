//! `payledger audit`: rebuilds every partition of `payments.events` twice (from the beginning,
//! and from the newest snapshots) with the ledger's own code, and checks what must always
//! hold: both give the same state, debits equal credits per currency, and no merchant's
//! payable account is overdrawn. Reads only; changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ledger::balance::{Balance, Balances};
use ledger::kafka::context::ReaderContext;
use ledger::kafka::restore::{Restored, StartFrom, restore_partitions};
use ledger::kafka::topics::{EVENTS, partition_count};
use ledger::kafka::{KafkaSettings, Role};
use ledger::lifecycle::payout_available;
use ledger::money::Currency;
use ledger::state::MerchantState;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::commands::{codec, kafka};

/// How often a partition is restored again when events arrived between its two restores
/// (a running ledger), before the audit gives up on it.
const ATTEMPTS: u32 = 5;

/// One partition, rebuilt both ways.
struct PartitionAudit {
    partition: i32,
    full: Restored,
    full_time: Duration,
    from_snapshot: Restored,
    snapshot_time: Duration,
    /// Why the two rebuilds disagree (empty: identical).
    differences: Vec<String>,
}

pub async fn audit(merchant: Option<String>, as_json: bool) -> Result<()> {
    let settings = kafka(Role::Ledger)?;
    let codec = codec()?;
    let rt = tokio::runtime::Handle::current();
    let partitions = tokio::task::spawn_blocking(move || -> Result<Vec<PartitionAudit>> {
        let n = events_partitions(&settings)?;
        (0..n)
            .map(|p| {
                audit_partition(&settings, p, &|bytes| {
                    rt.block_on(codec.decode_event(bytes))
                })
            })
            .collect()
    })
    .await
    .context("audit thread")??;

    let mut failures = Vec::new();
    for p in &partitions {
        for d in &p.differences {
            failures.push(format!(
                "partition {}: snapshot and full rebuild differ: {d}",
                p.partition
            ));
        }
    }

    // The full rebuild is the truth: every check and figure below comes from it.
    let merchants: BTreeMap<&str, (i32, &MerchantState)> = partitions
        .iter()
        .flat_map(|p| {
            p.full
                .state
                .merchants
                .iter()
                .map(move |(id, m)| (id.as_str(), (p.partition, m)))
        })
        .collect();

    let (trial, problems) = books(&merchants);
    failures.extend(problems);

    let shown: Vec<(&str, i32, &MerchantState)> = match merchant.as_deref() {
        Some(id) => match merchants.get(id) {
            Some((p, m)) => vec![(id, *p, *m)],
            None => bail!("merchant {id:?} has no events on {EVENTS}"),
        },
        None => merchants.iter().map(|(id, (p, m))| (*id, *p, *m)).collect(),
    };

    let report = report_json(&partitions, &trial, &shown, &failures);
    if as_json {
        println!("{report}");
    } else {
        print_human(&partitions, &trial, &shown, &failures);
    }
    if !failures.is_empty() {
        bail!(
            "audit failed ({} problem{}): {}",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" },
            failures.join("; ")
        );
    }
    Ok(())
}

/// The trial balance per currency over every account of `merchants`, and what is wrong with
/// the books: a currency whose debits and credits differ, or an overdrawn payable account.
fn books(
    merchants: &BTreeMap<&str, (i32, &MerchantState)>,
) -> (BTreeMap<Currency, Balance>, Vec<String>) {
    let mut failures = Vec::new();
    let mut trial: BTreeMap<Currency, Balance> = BTreeMap::new();
    for (id, (_, m)) in merchants {
        for ((account, currency), b) in m.balances.iter() {
            trial.entry(*currency).or_default().add(b);
            if Balances::is_constrained(account) && b.available_to_debit() < Decimal::ZERO {
                failures.push(format!(
                    "{} {currency}: debits posted {} + pending {} exceed credits posted {}",
                    account.name(id),
                    amount(b.debits_posted, *currency),
                    amount(b.debits_pending, *currency),
                    amount(b.credits_posted, *currency),
                ));
            }
        }
    }
    for (currency, s) in &trial {
        if !s.is_balanced() {
            failures.push(format!(
                "{currency}: debits do not equal credits (posted {} vs {}, pending {} vs {})",
                amount(s.debits_posted, *currency),
                amount(s.credits_posted, *currency),
                amount(s.debits_pending, *currency),
                amount(s.credits_pending, *currency),
            ));
        }
    }
    (trial, failures)
}

fn events_partitions(settings: &KafkaSettings) -> Result<i32> {
    let consumer: BaseConsumer<ReaderContext> =
        settings.reader().create_with_context(ReaderContext)?;
    let metadata = consumer
        .fetch_metadata(Some(EVENTS), Duration::from_secs(30))
        .with_context(|| {
            format!("reading the metadata of {EVENTS} as the ledger principal (PAYLEDGER_KAFKA_USER_LEDGER)")
        })?;
    partition_count(&metadata, EVENTS)
        .with_context(|| format!("topic {EVENTS} not found (run `payledger topics apply`)"))
}

/// Turns an event record's bytes into the event (the codec, behind a runtime handle).
type Decode<'a> = dyn Fn(Option<&[u8]>) -> Result<schemas::PaymentEvent, schemas::DecodeError> + 'a;

/// Restores `partition` from its snapshot and from the beginning, until both cover the same
/// events (a running ledger may append between the two), then compares them.
fn audit_partition(
    settings: &KafkaSettings,
    partition: i32,
    decode: &Decode<'_>,
) -> Result<PartitionAudit> {
    let restore = |from: StartFrom| -> Result<(Restored, Duration)> {
        let started = Instant::now();
        let mut out = restore_partitions(settings, &[partition], from, decode)
            .with_context(|| format!("rebuilding {EVENTS}/{partition} ({from:?})"))?;
        let restored = out
            .remove(&partition)
            .context("restore returned no state")?;
        Ok((restored, started.elapsed()))
    };
    for attempt in 1..=ATTEMPTS {
        let (from_snapshot, snapshot_time) = restore(StartFrom::Snapshot)?;
        let (full, full_time) = restore(StartFrom::Beginning)?;
        if full.next_offset != from_snapshot.next_offset {
            tracing::info!(
                partition,
                attempt,
                "events arrived between the two rebuilds; restoring again"
            );
            continue;
        }
        let mut differences = differences(&full, &from_snapshot);
        // A restore quietly falls back to all events when the newest snapshot cannot be
        // used; for an audit that is a finding.
        differences.extend(from_snapshot.snapshot_unused.clone());
        return Ok(PartitionAudit {
            partition,
            full,
            full_time,
            from_snapshot,
            snapshot_time,
            differences,
        });
    }
    bail!(
        "{EVENTS}/{partition} kept growing during the audit ({ATTEMPTS} attempts): \
         retry when the ledger is quieter"
    )
}

/// Which merchants (and which parts of their state) differ between two rebuilds.
fn differences(full: &Restored, snap: &Restored) -> Vec<String> {
    if full.state == snap.state {
        return Vec::new();
    }
    let ids: BTreeSet<&String> = full
        .state
        .merchants
        .keys()
        .chain(snap.state.merchants.keys())
        .collect();
    let mut out = Vec::new();
    for id in ids {
        match (full.state.merchant(id), snap.state.merchant(id)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                let mut parts = Vec::new();
                if a.sequence != b.sequence {
                    parts.push(format!("sequence {} vs {}", a.sequence, b.sequence));
                }
                if a.payments != b.payments {
                    parts.push("payments".to_owned());
                }
                if a.payouts != b.payouts {
                    parts.push("payouts".to_owned());
                }
                if a.idempotency != b.idempotency {
                    parts.push("idempotency keys".to_owned());
                }
                if a.balances != b.balances {
                    parts.push("balances".to_owned());
                }
                out.push(format!("merchant {id}: {}", parts.join(", ")));
            }
            (Some(_), None) => {
                out.push(format!("merchant {id}: missing from the snapshot rebuild"))
            }
            (None, Some(_)) => out.push(format!("merchant {id}: only in the snapshot rebuild")),
            (None, None) => {}
        }
    }
    out
}

/// An amount with its currency's decimals (`0.00`, not `0`).
fn amount(value: Decimal, currency: Currency) -> String {
    currency.format(value)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sorted accounts of one merchant: (name, currency, balance).
fn accounts(id: &str, m: &MerchantState) -> Vec<(String, Currency, ledger::balance::Balance)> {
    let mut rows: Vec<_> = m.balances.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    rows.into_iter()
        .map(|((account, currency), b)| (account.name(id), *currency, *b))
        .collect()
}

fn currencies(m: &MerchantState) -> BTreeSet<Currency> {
    m.balances.iter().map(|((_, c), _)| *c).collect()
}

fn status_counts(m: &MerchantState) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for p in m.payments.values() {
        *counts.entry(p.status_label()).or_default() += 1;
    }
    counts
}

fn report_json(
    partitions: &[PartitionAudit],
    trial: &BTreeMap<Currency, Balance>,
    merchants: &[(&str, i32, &MerchantState)],
    failures: &[String],
) -> Value {
    let partitions: Vec<Value> = partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "next_offset": p.full.next_offset,
                "merchants": p.full.state.merchants.len(),
                "events": p.full.events,
                "restore_ms": ms(p.full_time),
                "snapshot": p.from_snapshot.snapshot.as_ref().map(|s| json!({
                    "snapshot_id": s.snapshot_id,
                    "events_offset": s.events_offset,
                    "created_at": s.created_at.to_rfc3339(),
                })),
                "events_after_snapshot": p.from_snapshot.events,
                "snapshot_restore_ms": ms(p.snapshot_time),
                "identical": p.differences.is_empty(),
                "differences": p.differences,
            })
        })
        .collect();
    let trial: Vec<Value> = trial
        .iter()
        .map(|(c, s)| {
            json!({
                "currency": c.code(),
                "debits_pending": amount(s.debits_pending, *c),
                "debits_posted": amount(s.debits_posted, *c),
                "credits_pending": amount(s.credits_pending, *c),
                "credits_posted": amount(s.credits_posted, *c),
                "balanced": s.is_balanced(),
            })
        })
        .collect();
    let merchants: Vec<Value> = merchants
        .iter()
        .map(|(id, partition, m)| {
            let accounts: Vec<Value> = accounts(id, m)
                .into_iter()
                .map(|(name, c, b)| {
                    json!({
                        "account": name,
                        "currency": c.code(),
                        "debits_pending": amount(b.debits_pending, c),
                        "debits_posted": amount(b.debits_posted, c),
                        "credits_pending": amount(b.credits_pending, c),
                        "credits_posted": amount(b.credits_posted, c),
                    })
                })
                .collect();
            let available: serde_json::Map<String, Value> = currencies(m)
                .into_iter()
                .map(|c| {
                    (
                        c.code().to_owned(),
                        amount(payout_available(m, c), c).into(),
                    )
                })
                .collect();
            json!({
                "merchant_id": id,
                "partition": partition,
                "sequence": m.sequence,
                "accounts": accounts,
                "payout_available": available,
                "payments": status_counts(m),
                "payouts": m.payouts.len(),
            })
        })
        .collect();
    json!({
        "ok": failures.is_empty(),
        "failures": failures,
        "partitions": partitions,
        "trial_balance": trial,
        "merchants": merchants,
    })
}

fn print_human(
    partitions: &[PartitionAudit],
    trial: &BTreeMap<Currency, Balance>,
    merchants: &[(&str, i32, &MerchantState)],
    failures: &[String],
) {
    println!("partitions of {EVENTS} (rebuilt from the beginning, and from the newest snapshot):");
    println!(
        "{:>9} {:>8} {:>10} {:>9} {:>15} {:>12} {:>10} {:>9}",
        "partition",
        "events",
        "restore_ms",
        "merchants",
        "snapshot@offset",
        "events_after",
        "restore_ms",
        "identical"
    );
    for p in partitions {
        let snapshot = p
            .from_snapshot
            .snapshot
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.events_offset.to_string());
        println!(
            "{:>9} {:>8} {:>10} {:>9} {:>15} {:>12} {:>10} {:>9}",
            p.partition,
            p.full.events,
            ms(p.full_time),
            p.full.state.merchants.len(),
            snapshot,
            p.from_snapshot.events,
            ms(p.snapshot_time),
            if p.differences.is_empty() {
                "yes"
            } else {
                "NO"
            },
        );
    }

    println!("\ntrial balance (every account of every merchant):");
    println!(
        "{:<8} {:>18} {:>18} {:>18} {:>18} {:>8}",
        "currency",
        "debits_posted",
        "credits_posted",
        "debits_pending",
        "credits_pending",
        "balanced"
    );
    for (c, s) in trial {
        println!(
            "{:<8} {:>18} {:>18} {:>18} {:>18} {:>8}",
            c.code(),
            amount(s.debits_posted, *c),
            amount(s.credits_posted, *c),
            amount(s.debits_pending, *c),
            amount(s.credits_pending, *c),
            if s.is_balanced() { "yes" } else { "NO" },
        );
    }

    for (id, partition, m) in merchants {
        println!(
            "\nmerchant {id} (partition {partition}, {} events):",
            m.sequence
        );
        println!(
            "  {:<44} {:<8} {:>16} {:>16} {:>16} {:>16}",
            "account",
            "currency",
            "debits_pending",
            "debits_posted",
            "credits_pending",
            "credits_posted"
        );
        for (name, c, b) in accounts(id, m) {
            println!(
                "  {:<44} {:<8} {:>16} {:>16} {:>16} {:>16}",
                name,
                c.code(),
                amount(b.debits_pending, c),
                amount(b.debits_posted, c),
                amount(b.credits_pending, c),
                amount(b.credits_posted, c),
            );
        }
        let available: Vec<String> = currencies(m)
            .into_iter()
            .map(|c| format!("{} {}", amount(payout_available(m, c), c), c.code()))
            .collect();
        if !available.is_empty() {
            println!("  payout available: {}", available.join(", "));
        }
        let counts: Vec<String> = status_counts(m)
            .into_iter()
            .map(|(label, n)| format!("{label} {n}"))
            .collect();
        println!(
            "  payments: {}",
            if counts.is_empty() {
                "none".to_owned()
            } else {
                counts.join(", ")
            }
        );
    }

    println!();
    if failures.is_empty() {
        println!(
            "checks passed: snapshots match full rebuilds; debits equal credits per currency; \
             no payable account overdrawn"
        );
    } else {
        println!("CHECKS FAILED:");
        for f in failures {
            println!("  {f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ledger::account::Account;
    use ledger::processor::Processor;

    use super::*;

    fn gbp() -> Currency {
        Currency::from_code("GBP").unwrap()
    }

    fn posted(debits: i64, credits: i64) -> Balance {
        Balance {
            debits_posted: Decimal::new(debits, 2),
            credits_posted: Decimal::new(credits, 2),
            ..Balance::default()
        }
    }

    fn merchant(accounts: Vec<(Account, Balance)>) -> MerchantState {
        MerchantState {
            balances: Balances::from_map(
                accounts
                    .into_iter()
                    .map(|(a, b)| ((a, gbp()), b))
                    .collect::<HashMap<_, _>>(),
            ),
            ..MerchantState::default()
        }
    }

    #[test]
    fn balanced_books_pass_and_their_trial_balance_adds_up() {
        let clearing = Account::ProcessorClearing(Processor::Stripe);
        let m1 = merchant(vec![
            (Account::MerchantPayable, posted(250, 1000)),
            (clearing.clone(), posted(1000, 250)),
        ]);
        let m2 = merchant(vec![
            (Account::MerchantPayable, posted(0, 500)),
            (clearing, posted(500, 0)),
        ]);
        let merchants = BTreeMap::from([("m-1", (0, &m1)), ("m-2", (3, &m2))]);
        let (trial, failures) = books(&merchants);
        assert!(failures.is_empty(), "{failures:?}");
        let t = trial[&gbp()];
        assert!(t.is_balanced());
        assert_eq!(amount(t.debits_posted, gbp()), "17.50");
        assert_eq!(amount(t.debits_pending, gbp()), "0.00");
    }

    #[test]
    fn an_overdrawn_payable_account_and_unbalanced_currency_are_reported() {
        // Balanced, but the merchant was paid 5.00 out of 3.00.
        let overdrawn = merchant(vec![
            (Account::MerchantPayable, posted(500, 300)),
            (Account::Cash("bank-1".into()), posted(300, 500)),
        ]);
        // One leg of a posting missing.
        let one_legged = merchant(vec![(Account::MerchantPayable, posted(0, 100))]);
        let merchants = BTreeMap::from([("m-1", (0, &overdrawn)), ("m-2", (1, &one_legged))]);
        let (_, failures) = books(&merchants);
        assert_eq!(
            failures,
            vec![
                "merchant:m-1:payable GBP: debits posted 5.00 + pending 0.00 exceed credits posted 3.00"
                    .to_owned(),
                "GBP: debits do not equal credits (posted 8.00 vs 9.00, pending 0.00 vs 0.00)"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn differing_rebuilds_name_the_merchant_and_what_differs() {
        let mut full = Restored::default();
        full.state.merchant_mut("m-1").sequence = 3;
        full.state.merchant_mut("m-2").sequence = 1;
        let mut snap = Restored::default();
        snap.state.merchant_mut("m-1").sequence = 2;
        snap.state.merchant_mut("m-3");
        assert_eq!(
            differences(&full, &snap),
            vec![
                "merchant m-1: sequence 3 vs 2",
                "merchant m-2: missing from the snapshot rebuild",
                "merchant m-3: only in the snapshot rebuild",
            ]
        );
        assert!(differences(&full, &full_clone(&full)).is_empty());
    }

    fn full_clone(r: &Restored) -> Restored {
        Restored {
            state: r.state.clone(),
            ..Restored::default()
        }
    }
}

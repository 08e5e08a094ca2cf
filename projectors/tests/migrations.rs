//! The read model on a real PostgreSQL: every migration, then hand-built batches of every
//! event kind through [`projectors::apply_batch`] (no Kafka), checked to the last decimal.
//!
//! Each test creates a throwaway database on the local stack's server (`.stack/env`, or the
//! file named by `PAYLEDGER_ENV_FILE`) and drops it afterwards. Without an env file they fail
//! and say how to start the stack: like every test on the real parts, they never skip.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use schemas::{
    CommandRejected, DisputeClosed, DisputeOpened, DisputeOutcome, EventBody,
    PaymentAuthorizationFailed, PaymentAuthorizationRequested, PaymentAuthorizationUnknown,
    PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentEvent, PaymentRefunded,
    PaymentSettled, PaymentVoided, PayoutSent, Posting, PostingPhase, VoidReason, WireMoney,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// A scratch database.
// ---------------------------------------------------------------------------------------

fn env_file() -> PathBuf {
    std::env::var("PAYLEDGER_ENV_FILE").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.stack/env"),
        PathBuf::from,
    )
}

/// A URL of a role that may create databases: the app's (it has CREATEDB, and migrating as
/// it proves the projector can), else the admin's.
fn server_url() -> Option<String> {
    let path = env_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no env file at {} ({e}): start the stack with `scripts/stack up`",
            path.display()
        )
    });
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('\'')))
        .collect();
    let url = ["PAYLEDGER_DATABASE_URL", "PAYLEDGER_DATABASE_ADMIN_URL"]
        .iter()
        .find_map(|k| vars.get(k))
        .unwrap_or_else(|| panic!("no PAYLEDGER_DATABASE_URL in {}", path.display()));
    Some((*url).to_owned())
}

/// Runs `body` on a fresh database, then drops it (also when `body` panics).
async fn with_scratch_db<F, Fut>(body: F)
where
    F: FnOnce(PgPool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = server_url() else { return };
    let server = PgConnectOptions::from_str(&url).expect("database URL");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(server.clone())
        .await
        .expect("connect to the stack's PostgreSQL (is `scripts/stack up` done?)");
    let name = format!("projectors_test_{}", Uuid::new_v4().simple());
    // The name is ours (a UUID): nothing to escape.
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create the scratch database");

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(server.database(&name))
        .await
        .expect("connect to the scratch database");
    let outcome = tokio::spawn(body(pool.clone())).await;
    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&admin)
        .await
        .expect("drop the scratch database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn migrate(pool: &PgPool) {
    projectors::MIGRATOR.run(pool).await.expect("migrations");
}

// ---------------------------------------------------------------------------------------
// Events, as the ledger writes them.
// ---------------------------------------------------------------------------------------

fn money(amount: &str, currency: &str) -> WireMoney {
    WireMoney {
        amount: amount.into(),
        currency: currency.into(),
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

fn pid(n: u128) -> Uuid {
    Uuid::from_u128(0xa000 + n)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

/// One merchant's events, numbered as the ledger numbers them.
struct Merchant {
    id: &'static str,
    processor: &'static str,
    seq: i64,
    events: Vec<PaymentEvent>,
}

impl Merchant {
    fn new(id: &'static str, processor: &'static str) -> Self {
        Merchant {
            id,
            processor,
            seq: 0,
            events: Vec::new(),
        }
    }

    fn payable(&self) -> String {
        format!("merchant:{}:payable", self.id)
    }

    fn disputes(&self) -> String {
        format!("merchant:{}:disputes", self.id)
    }

    fn clearing(&self) -> String {
        format!("processor:{}:clearing", self.processor)
    }

    fn push(&mut self, payment_id: Option<Uuid>, body: EventBody) {
        self.seq += 1;
        let n = self.seq as u128 + if self.id == "m-1" { 0 } else { 1000 };
        self.events.push(PaymentEvent {
            event_id: Uuid::from_u128(0xe000 + n),
            merchant_id: self.id.into(),
            merchant_sequence: self.seq,
            payment_id,
            command_id: Uuid::from_u128(0xc000 + n),
            idempotency_key: format!("{}-key-{}", self.id, self.seq),
            command_fingerprint: "ab".repeat(32),
            occurred_at: t0() + Duration::minutes(self.seq),
            body,
        });
    }

    fn hold(&self, m: &WireMoney, phase: PostingPhase) -> Vec<Posting> {
        vec![posting(&self.clearing(), &self.payable(), m, phase)]
    }

    fn requested(&mut self, p: Uuid, m: WireMoney) {
        let processor = self.processor.into();
        self.push(
            Some(p),
            EventBody::PaymentAuthorizationRequested(PaymentAuthorizationRequested {
                payment_id: p,
                amount: m,
                processor,
                payment_token: "cnon:card-nonce-ok".into(),
            }),
        );
    }

    fn authorized(&mut self, p: Uuid, m: WireMoney, reference: Option<&str>) {
        let postings = self.hold(&m, PostingPhase::Pending);
        self.push(
            Some(p),
            EventBody::PaymentAuthorized(PaymentAuthorized {
                payment_id: p,
                amount: m,
                processor_reference: reference.map(str::to_owned),
                expires_at: t0() + Duration::days(7),
                postings,
            }),
        );
    }

    fn captured(&mut self, p: Uuid, m: WireMoney) {
        let postings = self.hold(&m, PostingPhase::PostPending);
        self.push(
            Some(p),
            EventBody::PaymentCaptured(PaymentCaptured {
                payment_id: p,
                amount: m,
                postings,
            }),
        );
    }

    fn voided(&mut self, p: Uuid, m: WireMoney, reason: VoidReason) {
        let postings = self.hold(&m, PostingPhase::VoidPending);
        self.push(
            Some(p),
            EventBody::PaymentVoided(PaymentVoided {
                payment_id: p,
                released: m,
                reason,
                postings,
            }),
        );
    }

    fn refunded(&mut self, p: Uuid, m: WireMoney) {
        let postings = vec![posting(
            &self.payable(),
            &self.clearing(),
            &m,
            PostingPhase::Posted,
        )];
        self.push(
            Some(p),
            EventBody::PaymentRefunded(PaymentRefunded {
                payment_id: p,
                amount: m,
                postings,
            }),
        );
    }

    fn settled(&mut self, p: Uuid, net: WireMoney, fee: WireMoney, gross: WireMoney) {
        let postings = vec![
            posting(
                "cash:barclays-gbp",
                &self.clearing(),
                &net,
                PostingPhase::Posted,
            ),
            posting(
                "platform:fees",
                &self.clearing(),
                &fee,
                PostingPhase::Posted,
            ),
        ];
        self.push(
            Some(p),
            EventBody::PaymentSettled(PaymentSettled {
                payment_id: p,
                settlement_id: "st-1".into(),
                amount: gross,
                fee,
                bank_account: "barclays-gbp".into(),
                postings,
            }),
        );
    }

    fn dispute_opened(&mut self, p: Uuid, id: &str, m: WireMoney) {
        let postings = vec![posting(
            &self.disputes(),
            &self.clearing(),
            &m,
            PostingPhase::Pending,
        )];
        self.push(
            Some(p),
            EventBody::DisputeOpened(DisputeOpened {
                payment_id: p,
                dispute_id: id.into(),
                amount: m,
                reason: "fraudulent".into(),
                postings,
            }),
        );
    }

    fn dispute_closed(&mut self, p: Uuid, id: &str, m: WireMoney, outcome: DisputeOutcome) {
        let phase = match outcome {
            DisputeOutcome::Won => PostingPhase::VoidPending,
            DisputeOutcome::Lost => PostingPhase::PostPending,
        };
        let postings = vec![posting(&self.disputes(), &self.clearing(), &m, phase)];
        self.push(
            Some(p),
            EventBody::DisputeClosed(DisputeClosed {
                payment_id: p,
                dispute_id: id.into(),
                outcome,
                amount: m,
                postings,
            }),
        );
    }
}

fn posting(debit: &str, credit: &str, m: &WireMoney, phase: PostingPhase) -> Posting {
    Posting {
        debit_account: debit.into(),
        credit_account: credit.into(),
        amount: m.clone(),
        phase,
    }
}

/// m-1 (partition 0, GBP, stripe) and m-2 (partition 1, JPY and BHD, square): every event
/// kind, every posting phase, both dispute outcomes and both void reasons.
fn histories() -> (Vec<PaymentEvent>, Vec<PaymentEvent>) {
    let gbp = |a: &str| money(a, "GBP");
    let mut m1 = Merchant::new("m-1", "stripe");
    m1.requested(pid(1), gbp("100.00")); // 1
    m1.authorized(pid(1), gbp("100.00"), Some("ch-p1")); // 2
    m1.requested(pid(4), gbp("25.00")); // 3
    m1.push(
        Some(pid(4)),
        EventBody::PaymentDeclined(PaymentDeclined {
            payment_id: pid(4),
            decline_code: "insufficient_funds".into(),
            detail: "card declined".into(),
        }),
    ); // 4
    m1.requested(pid(5), gbp("5.00")); // 5
    m1.push(
        Some(pid(5)),
        EventBody::PaymentAuthorizationFailed(PaymentAuthorizationFailed {
            payment_id: pid(5),
            error_code: "invalid_token".into(),
            detail: "token expired".into(),
        }),
    ); // 6
    m1.requested(pid(6), gbp("7.00")); // 7
    m1.push(
        Some(pid(6)),
        EventBody::PaymentAuthorizationUnknown(PaymentAuthorizationUnknown {
            payment_id: pid(6),
            detail: "timeout after 30s".into(),
        }),
    ); // 8
    m1.requested(pid(7), gbp("8.00")); // 9
    m1.push(
        None,
        EventBody::CommandRejected(CommandRejected {
            reason_code: "invalid_amount".into(),
            detail: "GBP allows 2 decimals".into(),
        }),
    ); // 10
    m1.captured(pid(1), gbp("30.25")); // 11
    m1.captured(pid(1), gbp("69.75")); // 12
    m1.refunded(pid(1), gbp("10.00")); // 13
    m1.settled(pid(1), gbp("87.50"), gbp("2.50"), gbp("90.00")); // 14
    m1.dispute_opened(pid(1), "dp-1", gbp("20.00")); // 15
    m1.dispute_closed(pid(1), "dp-1", gbp("20.00"), DisputeOutcome::Lost); // 16
    m1.requested(pid(9), gbp("50.00")); // 17
    m1.authorized(pid(9), gbp("50.00"), Some("ch-p9")); // 18
    m1.captured(pid(9), gbp("20.00")); // 19
    m1.voided(pid(9), gbp("30.00"), VoidReason::Expired); // 20
    m1.requested(pid(10), gbp("10.00")); // 21
    m1.authorized(pid(10), gbp("10.00"), None); // 22
    let payable = m1.payable();
    m1.push(
        None,
        EventBody::PayoutSent(PayoutSent {
            payout_id: Uuid::from_u128(0xb001),
            amount: gbp("50.00"),
            bank_account: "barclays-gbp".into(),
            postings: vec![posting(
                &payable,
                "cash:barclays-gbp",
                &gbp("50.00"),
                PostingPhase::Posted,
            )],
        }),
    ); // 23

    let jpy = |a: &str| money(a, "JPY");
    let bhd = |a: &str| money(a, "BHD");
    let mut m2 = Merchant::new("m-2", "square");
    m2.requested(pid(2), jpy("1500")); // 1
    m2.authorized(pid(2), jpy("1500"), Some("sq-p2")); // 2
    m2.requested(pid(3), bhd("12.345")); // 3
    m2.authorized(pid(3), bhd("12.345"), Some("sq-p3")); // 4
    m2.captured(pid(2), jpy("1500")); // 5
    m2.dispute_opened(pid(2), "dp-2", jpy("500")); // 6
    m2.dispute_opened(pid(2), "dp-3", jpy("200")); // 7
    m2.dispute_closed(pid(2), "dp-3", jpy("200"), DisputeOutcome::Won); // 8
    m2.voided(pid(3), bhd("12.345"), VoidReason::Requested); // 9
    m2.requested(pid(8), bhd("12.345")); // 10
    m2.authorized(pid(8), bhd("12.345"), Some("sq-p8")); // 11
    m2.captured(pid(8), bhd("12.345")); // 12
    m2.refunded(pid(8), bhd("12.345")); // 13
    (m1.events, m2.events)
}

type Batch = (Vec<(i32, i64, PaymentEvent)>, BTreeMap<i32, i64>);

/// `events` of `partition`, from `offset` on.
fn at(partition: i32, offset: i64, events: &[PaymentEvent], batch: &mut Batch) {
    for (i, e) in events.iter().enumerate() {
        batch.0.push((partition, offset + i as i64, e.clone()));
    }
    batch.1.insert(partition, offset + events.len() as i64);
}

// ---------------------------------------------------------------------------------------
// Reading the tables back.
// ---------------------------------------------------------------------------------------

/// Every projected row (offsets aside), as text: equal snapshots, equal read models.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    let mut all = Vec::new();
    for (table, key) in [
        ("payments", "payment_id"),
        ("ledger_entries", "event_id, posting_index"),
        ("command_rejections", "event_id"),
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT to_jsonb(t)::text FROM {table} t ORDER BY {key}"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        all.extend(rows.into_iter().map(|(r,)| format!("{table}: {r}")));
    }
    all
}

async fn offsets(pool: &PgPool) -> Vec<(i32, i64)> {
    sqlx::query_as(
        "SELECT partition, next_offset FROM projector_offsets
         WHERE projection = $1 ORDER BY partition",
    )
    .bind(projectors::postgres::PROJECTION)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct PaymentRow {
    payment_id: Uuid,
    status: String,
    amount: String,
    authorized_amount: Option<String>,
    captured_amount: String,
    released_amount: String,
    refunded_amount: String,
    settled_amount: String,
    fee_amount: String,
    disputed_amount: String,
    held_amount: String,
    open_disputes: i32,
    processor_reference: Option<String>,
    decline_code: Option<String>,
    error_code: Option<String>,
    last_merchant_sequence: i64,
}

/// The expected row; amounts as PostgreSQL prints them (scale included).
#[allow(clippy::too_many_arguments)]
fn payment(
    n: u128,
    status: &str,
    amount: &str,
    authorized: Option<&str>,
    [captured, released, refunded, settled, fee, disputed, held]: [&str; 7],
    open_disputes: i32,
    [reference, decline, error]: [Option<&str>; 3],
    last_merchant_sequence: i64,
) -> PaymentRow {
    PaymentRow {
        payment_id: pid(n),
        status: status.into(),
        amount: amount.into(),
        authorized_amount: authorized.map(str::to_owned),
        captured_amount: captured.into(),
        released_amount: released.into(),
        refunded_amount: refunded.into(),
        settled_amount: settled.into(),
        fee_amount: fee.into(),
        disputed_amount: disputed.into(),
        held_amount: held.into(),
        open_disputes,
        processor_reference: reference.map(str::to_owned),
        decline_code: decline.map(str::to_owned),
        error_code: error.map(str::to_owned),
        last_merchant_sequence,
    }
}

async fn payments(pool: &PgPool) -> Vec<PaymentRow> {
    sqlx::query_as(
        "SELECT payment_id, status, amount::text, authorized_amount::text,
                captured_amount::text, released_amount::text, refunded_amount::text,
                settled_amount::text, fee_amount::text, disputed_amount::text,
                held_amount::text, open_disputes, processor_reference, decline_code,
                error_code, last_merchant_sequence
         FROM payments ORDER BY payment_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

type Balance = (String, String, Decimal, Decimal, Decimal, Decimal);

/// merchant, posting index, event type, debit, credit, "amount currency", phase, sequence.
type Entry = (String, i32, String, String, String, String, String, i64);

fn balance(account: &str, currency: &str, amounts: [&str; 4]) -> Balance {
    let [dp, dpo, cp, cpo] = amounts.map(dec);
    (account.into(), currency.into(), dp, dpo, cp, cpo)
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_event_kind_projects_exactly_and_replays_change_nothing() {
    with_scratch_db(|pool| async move {
        migrate(&pool).await;
        let (m1, m2) = histories();

        // Batch A: the start of both histories.
        let mut a: Batch = Default::default();
        at(0, 0, &m1[..11], &mut a);
        at(1, 0, &m2[..3], &mut a);
        let stats = projectors::apply_batch(&pool, &a.0, &a.1).await.unwrap();
        assert_eq!((stats.applied, stats.skipped), (14, 0));

        // Batch B: the rest. The topic holds m-1's events 9-11 a second time (at new
        // offsets): payments created in A are updated, new ones created with all that
        // followed them in B, and the duplicates change nothing.
        let mut b: Batch = Default::default();
        at(0, 11, &m1[8..], &mut b);
        at(1, 3, &m2[3..], &mut b);
        let stats = projectors::apply_batch(&pool, &b.0, &b.1).await.unwrap();
        assert_eq!((stats.applied, stats.skipped), (25, 0));
        assert_eq!(offsets(&pool).await, [(0, 26), (1, 13)]);

        let none = [None, None, None];
        let z = "0";
        assert_eq!(
            payments(&pool).await,
            [
                payment(
                    1,
                    "settled",
                    "100.00",
                    Some("100.00"),
                    ["100.00", z, "10.00", "90.00", "2.50", "20.00", "0.00"],
                    0,
                    [Some("ch-p1"), None, None],
                    16,
                ),
                payment(
                    2,
                    "disputed",
                    "1500",
                    Some("1500"),
                    ["1500", z, z, z, z, "500", "0"],
                    1,
                    [Some("sq-p2"), None, None],
                    8,
                ),
                payment(
                    3,
                    "voided",
                    "12.345",
                    Some("12.345"),
                    [z, "12.345", z, z, z, z, "0.000"],
                    0,
                    [Some("sq-p3"), None, None],
                    9,
                ),
                payment(
                    4,
                    "declined",
                    "25.00",
                    None,
                    [z; 7],
                    0,
                    [None, Some("insufficient_funds"), None],
                    4,
                ),
                payment(
                    5,
                    "failed",
                    "5.00",
                    None,
                    [z; 7],
                    0,
                    [None, None, Some("invalid_token")],
                    6,
                ),
                payment(6, "authorization_unknown", "7.00", None, [z; 7], 0, none, 8),
                payment(
                    7,
                    "authorization_requested",
                    "8.00",
                    None,
                    [z; 7],
                    0,
                    none,
                    9
                ),
                payment(
                    8,
                    "refunded",
                    "12.345",
                    Some("12.345"),
                    ["12.345", z, "12.345", z, z, z, "0.000"],
                    0,
                    [Some("sq-p8"), None, None],
                    13,
                ),
                payment(
                    9,
                    "captured",
                    "50.00",
                    Some("50.00"),
                    ["20.00", "30.00", z, z, z, z, "0.00"],
                    0,
                    [Some("ch-p9"), None, None],
                    20,
                ),
                payment(
                    10,
                    "authorized",
                    "10.00",
                    Some("10.00"),
                    [z, z, z, z, z, z, "10.00"],
                    0,
                    none,
                    22,
                ),
            ]
        );

        // One entry per posting, with its event's index.
        let entries: Vec<Entry> = sqlx::query_as(
            "SELECT merchant_id, posting_index, event_type, debit_account, credit_account,
                        amount::text || ' ' || currency, phase, merchant_sequence
                 FROM ledger_entries ORDER BY merchant_id, merchant_sequence, posting_index",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(entries.len(), 23);
        let (clr, pay) = ("processor:stripe:clearing", "merchant:m-1:payable");
        let e = |i: i32, t: &str, d: &str, c: &str, a: &str, ph: &str, s: i64| {
            let m = if d.contains("m-2") || c.contains("m-2") {
                "m-2"
            } else {
                "m-1"
            };
            (
                m.to_owned(),
                i,
                t.to_owned(),
                d.to_owned(),
                c.to_owned(),
                a.to_owned(),
                ph.to_owned(),
                s,
            )
        };
        assert_eq!(
            entries[..13],
            [
                e(0, "PaymentAuthorized", clr, pay, "100.00 GBP", "pending", 2),
                e(
                    0,
                    "PaymentCaptured",
                    clr,
                    pay,
                    "30.25 GBP",
                    "post_pending",
                    11
                ),
                e(
                    0,
                    "PaymentCaptured",
                    clr,
                    pay,
                    "69.75 GBP",
                    "post_pending",
                    12
                ),
                e(0, "PaymentRefunded", pay, clr, "10.00 GBP", "posted", 13),
                e(
                    0,
                    "PaymentSettled",
                    "cash:barclays-gbp",
                    clr,
                    "87.50 GBP",
                    "posted",
                    14
                ),
                e(
                    1,
                    "PaymentSettled",
                    "platform:fees",
                    clr,
                    "2.50 GBP",
                    "posted",
                    14
                ),
                e(
                    0,
                    "DisputeOpened",
                    "merchant:m-1:disputes",
                    clr,
                    "20.00 GBP",
                    "pending",
                    15
                ),
                e(
                    0,
                    "DisputeClosed",
                    "merchant:m-1:disputes",
                    clr,
                    "20.00 GBP",
                    "post_pending",
                    16
                ),
                e(0, "PaymentAuthorized", clr, pay, "50.00 GBP", "pending", 18),
                e(
                    0,
                    "PaymentCaptured",
                    clr,
                    pay,
                    "20.00 GBP",
                    "post_pending",
                    19
                ),
                e(
                    0,
                    "PaymentVoided",
                    clr,
                    pay,
                    "30.00 GBP",
                    "void_pending",
                    20
                ),
                e(0, "PaymentAuthorized", clr, pay, "10.00 GBP", "pending", 22),
                e(
                    0,
                    "PayoutSent",
                    pay,
                    "cash:barclays-gbp",
                    "50.00 GBP",
                    "posted",
                    23
                ),
            ]
        );
        let (sq, pay2) = ("processor:square:clearing", "merchant:m-2:payable");
        assert_eq!(
            entries[13..],
            [
                e(0, "PaymentAuthorized", sq, pay2, "1500 JPY", "pending", 2),
                e(0, "PaymentAuthorized", sq, pay2, "12.345 BHD", "pending", 4),
                e(
                    0,
                    "PaymentCaptured",
                    sq,
                    pay2,
                    "1500 JPY",
                    "post_pending",
                    5
                ),
                e(
                    0,
                    "DisputeOpened",
                    "merchant:m-2:disputes",
                    sq,
                    "500 JPY",
                    "pending",
                    6
                ),
                e(
                    0,
                    "DisputeOpened",
                    "merchant:m-2:disputes",
                    sq,
                    "200 JPY",
                    "pending",
                    7
                ),
                e(
                    0,
                    "DisputeClosed",
                    "merchant:m-2:disputes",
                    sq,
                    "200 JPY",
                    "void_pending",
                    8
                ),
                e(
                    0,
                    "PaymentVoided",
                    sq,
                    pay2,
                    "12.345 BHD",
                    "void_pending",
                    9
                ),
                e(
                    0,
                    "PaymentAuthorized",
                    sq,
                    pay2,
                    "12.345 BHD",
                    "pending",
                    11
                ),
                e(
                    0,
                    "PaymentCaptured",
                    sq,
                    pay2,
                    "12.345 BHD",
                    "post_pending",
                    12
                ),
                e(0, "PaymentRefunded", pay2, sq, "12.345 BHD", "posted", 13),
            ]
        );
        let payout: (Option<Uuid>,) =
            sqlx::query_as("SELECT payment_id FROM ledger_entries WHERE event_type = 'PayoutSent'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(payout, (None,));

        // Balances: debits_pending, debits_posted, credits_pending, credits_posted.
        let balances: Vec<Balance> = sqlx::query_as(
            "SELECT account, currency::text, debits_pending, debits_posted, credits_pending,
                    credits_posted
             FROM account_balances ORDER BY currency, account",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            balances,
            [
                balance(
                    "merchant:m-2:payable",
                    "BHD",
                    ["0", "12.345", "0", "12.345"]
                ),
                balance(sq, "BHD", ["0", "12.345", "0", "12.345"]),
                balance("cash:barclays-gbp", "GBP", ["0", "87.50", "0", "50.00"]),
                balance("merchant:m-1:disputes", "GBP", ["0", "20.00", "0", "0"]),
                balance(pay, "GBP", ["0", "60.00", "10.00", "120.00"]),
                balance("platform:fees", "GBP", ["0", "2.50", "0", "0"]),
                balance(clr, "GBP", ["10.00", "120.00", "0", "120.00"]),
                balance("merchant:m-2:disputes", "JPY", ["500", "0", "0", "0"]),
                balance(pay2, "JPY", ["0", "0", "0", "1500"]),
                balance(sq, "JPY", ["0", "1500", "500", "0"]),
            ]
        );

        // Double entry holds in every currency.
        let trial: Vec<(String, Decimal, Decimal, Decimal, Decimal, bool)> = sqlx::query_as(
            "SELECT currency::text, debits_posted, credits_posted, debits_pending,
                    credits_pending, balanced
             FROM trial_balance ORDER BY currency",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let row = |c: &str, posted: &str, pending: &str| {
            let (p, q) = (dec(posted), dec(pending));
            (c.to_owned(), p, p, q, q, true)
        };
        assert_eq!(
            trial,
            [
                row("BHD", "24.690", "0"),
                row("GBP", "290.00", "10.00"),
                row("JPY", "1500", "500"),
            ]
        );

        // The analysts' views.
        let daily: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
            "SELECT merchant_id, currency::text, captured::text, refunded::text, settled::text,
                    fees::text
             FROM payment_lifecycle_daily WHERE day = '2026-03-01' ORDER BY 1, 2",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let d = |m: &str, c: &str, [a, b, s, f]: [&str; 4]| {
            let o = str::to_owned;
            (o(m), o(c), o(a), o(b), o(s), o(f))
        };
        assert_eq!(
            daily,
            [
                d("m-1", "GBP", ["120.00", "10.00", "90.00", "2.50"]),
                d("m-2", "BHD", ["12.345", "12.345", "0", "0"]),
                d("m-2", "JPY", ["1500", "0", "0", "0"]),
            ]
        );
        let volume: Vec<(String, String, String, i64, String)> = sqlx::query_as(
            "SELECT merchant_id, currency::text, processor, payments, amount::text
             FROM daily_authorization_volume ORDER BY 1, 2",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let v = |m: &str, c: &str, p: &str, n: i64, a: &str| {
            (m.to_owned(), c.to_owned(), p.to_owned(), n, a.to_owned())
        };
        assert_eq!(
            volume,
            [
                v("m-1", "GBP", "stripe", 7, "205.00"),
                v("m-2", "BHD", "square", 2, "24.690"),
                v("m-2", "JPY", "square", 1, "1500"),
            ]
        );
        let rejections: (i64,) = sqlx::query_as("SELECT count(*) FROM command_rejections")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rejections, (1,));

        // The same batch again: below the stored offsets, so skipped whole.
        let before = snapshot(&pool).await;
        let stats = projectors::apply_batch(&pool, &b.0, &b.1).await.unwrap();
        assert_eq!((stats.applied, stats.skipped), (0, 25));
        assert_eq!(snapshot(&pool).await, before);

        // Every event once more, at new offsets (a topic holding it all twice, or a rebuild
        // over the existing tables): applied, and still nothing changes.
        let mut again: Batch = Default::default();
        at(0, 100, &m1, &mut again);
        at(1, 100, &m2, &mut again);
        let stats = projectors::apply_batch(&pool, &again.0, &again.1)
            .await
            .unwrap();
        assert_eq!((stats.applied, stats.skipped), (36, 0));
        assert_eq!(snapshot(&pool).await, before);
        assert_eq!(offsets(&pool).await, [(0, 123), (1, 113)]);
    })
    .await;
}

#[tokio::test]
async fn one_event_per_batch_gives_the_same_read_model_as_one_batch() {
    with_scratch_db(|pool| async move {
        migrate(&pool).await;
        let (m1, m2) = histories();
        let mut whole: Batch = Default::default();
        at(0, 0, &m1, &mut whole);
        at(1, 0, &m2, &mut whole);
        projectors::apply_batch(&pool, &whole.0, &whole.1)
            .await
            .unwrap();
        let one_batch = snapshot(&pool).await;

        sqlx::query("TRUNCATE payments, ledger_entries, command_rejections, projector_offsets")
            .execute(&pool)
            .await
            .unwrap();
        // Interleaved, one event per transaction.
        let mut singles: Vec<(i32, i64, PaymentEvent)> = Vec::new();
        for i in 0..m1.len().max(m2.len()) {
            if let Some(e) = m1.get(i) {
                singles.push((0, i as i64, e.clone()));
            }
            if let Some(e) = m2.get(i) {
                singles.push((1, i as i64, e.clone()));
            }
        }
        for (p, o, e) in singles {
            let next = BTreeMap::from([(p, o + 1)]);
            projectors::apply_batch(&pool, &[(p, o, e)], &next)
                .await
                .unwrap();
        }
        assert_eq!(snapshot(&pool).await, one_batch);
    })
    .await;
}

#[tokio::test]
async fn ledger_entries_are_append_only_and_every_column_is_documented() {
    with_scratch_db(|pool| async move {
        migrate(&pool).await;
        let (m1, _) = histories();
        let mut batch: Batch = Default::default();
        at(0, 0, &m1[..2], &mut batch);
        projectors::apply_batch(&pool, &batch.0, &batch.1)
            .await
            .unwrap();
        for statement in [
            "UPDATE ledger_entries SET amount = amount * 2",
            "DELETE FROM ledger_entries",
        ] {
            let err = sqlx::query(statement).execute(&pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
        }

        let undocumented: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, a.attname::text
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE c.relname IN ('payments', 'ledger_entries', 'account_balances',
                                 'trial_balance', 'payment_lifecycle_daily',
                                 'daily_authorization_volume')
               AND a.attnum > 0 AND NOT a.attisdropped
               AND col_description(c.oid, a.attnum) IS NULL
             ORDER BY 1, 2",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(undocumented, []);
    })
    .await;
}

#[tokio::test]
async fn rows_written_before_the_ledger_migration_stay_valid_and_keep_projecting() {
    with_scratch_db(|pool| async move {
        projectors::MIGRATOR.run_to(1, &pool).await.unwrap();
        // What the v1 projector wrote for m-1's first event.
        let (m1, _) = histories();
        sqlx::query(
            "INSERT INTO payments (payment_id, merchant_id, status, amount, currency, processor,
                                   idempotency_key, created_at, updated_at, last_event_id,
                                   last_merchant_sequence)
             VALUES ($1, 'm-1', 'authorization_requested', 100.00, 'GBP', 'stripe', 'm-1-key-1',
                     $2, $2, $3, 1)",
        )
        .bind(pid(1))
        .bind(m1[0].occurred_at)
        .bind(m1[0].event_id)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO projector_offsets (projection, topic, partition, next_offset)
             VALUES ($1, 'payments.events', 0, 1)",
        )
        .bind(projectors::postgres::PROJECTION)
        .execute(&pool)
        .await
        .unwrap();

        migrate(&pool).await;
        let row: (String, String, String, String) = sqlx::query_as(
            "SELECT status, authorization_status, captured_amount::text, held_amount::text
             FROM payments",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            row,
            (
                "authorization_requested".into(),
                "requested".into(),
                "0".into(),
                "0".into()
            )
        );

        // The projector resumes at offset 1 (it also gets offset 0 again: skipped).
        let p1: Vec<PaymentEvent> = m1
            .iter()
            .filter(|e| e.payment_id == Some(pid(1)))
            .cloned()
            .collect();
        let mut batch: Batch = Default::default();
        at(0, 0, &p1, &mut batch);
        let stats = projectors::apply_batch(&pool, &batch.0, &batch.1)
            .await
            .unwrap();
        assert_eq!((stats.applied, stats.skipped), (p1.len() - 1, 1));
        let row: (String, String, String, String, String) = sqlx::query_as(
            "SELECT status, captured_amount::text, refunded_amount::text, settled_amount::text,
                    disputed_amount::text
             FROM payments",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            row,
            (
                "settled".into(),
                "100.00".into(),
                "10.00".into(),
                "90.00".into(),
                "20.00".into()
            )
        );
    })
    .await;
}

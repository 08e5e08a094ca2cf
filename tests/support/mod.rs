//! Shared test support: the running stack, service processes, and topic watchers.
//!
//! The stack is the native one from `scripts/stack up` (its env file: `PAYLEDGER_ENV_FILE`,
//! default `.stack/env`). A test that cannot reach it fails and says how to start it: these
//! tests are the proof that payledger works against real parts, so they never skip.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ledger::kafka::dlq::DeadLetterInfo;
use ledger::kafka::publisher::CommandPublisher;
use ledger::kafka::topics::{DLQ, EVENTS, partition_count};
use ledger::kafka::{KafkaSettings, Role, Secret};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::{
    AuthorizationOutcome, AuthorizationResult, AuthorizePayment, CapturePayment, CommandBody,
    DisputeDecision, DisputeNotice, DisputeOutcome, GatewayResult, PaymentCommand, PaymentEvent,
    RefundPayment, RegistryCodec, RequestPayout, ResultBody, ResultSource, SettlementReport,
    VoidPayment, WireMoney,
};
use uuid::Uuid;

/// The stack's endpoints and credentials.
pub struct Stack {
    pub env_file: PathBuf,
    vars: HashMap<String, String>,
}

static STACK: OnceLock<Stack> = OnceLock::new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Tests that start ledger processes take this lock: two sets of services in one consumer
/// group would be a different test.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The stack under test: `PAYLEDGER_TEST_STACK=native` (the default: `scripts/stack up`'s
/// env file) or `docker` (docker-compose.yml through testcontainers; needs a Docker engine and
/// `--features docker-tests`).
pub fn stack() -> &'static Stack {
    STACK.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let env_file = match std::env::var("PAYLEDGER_TEST_STACK").as_deref() {
            Ok("docker") => docker_stack_env_file(),
            Ok("native") | Err(_) => std::env::var("PAYLEDGER_ENV_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root.join(".stack/env")),
            Ok(other) => panic!("PAYLEDGER_TEST_STACK={other}: use native or docker"),
        };
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}). These tests run against the real stack: start it with `scripts/stack up`, or run `scripts/test`.",
                env_file.display()
            )
        });
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('\'').to_owned()))
            .collect();
        Stack { env_file, vars }
    })
}

#[cfg(not(feature = "docker-tests"))]
fn docker_stack_env_file() -> PathBuf {
    panic!("PAYLEDGER_TEST_STACK=docker needs `cargo test --features docker-tests`")
}

/// Starts docker-compose.yml's stack (not its `services` profile: the tests run their own
/// ledgers) and writes an env file like `scripts/stack`'s pointing at it.
#[cfg(feature = "docker-tests")]
fn docker_stack_env_file() -> PathBuf {
    use testcontainers::compose::DockerCompose;
    use testcontainers::core::WaitFor;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ok = Command::new(root.join("scripts/stack"))
        .arg("tls")
        .status()
        .expect("scripts/stack tls");
    assert!(ok.success(), "scripts/stack tls failed");
    let secrets: HashMap<String, String> = std::fs::read_to_string(root.join(".stack/docker.env"))
        .expect(".stack/docker.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let vars = secrets.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // The compose handle lives on its own runtime thread for the whole test binary.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let mut compose = DockerCompose::with_local_client(&[root.join("docker-compose.yml")])
                .with_env_vars(vars)
                .with_wait_for_service("kafka", WaitFor::message_on_stdout("Kafka Server started"));
            compose.up().await.expect("docker compose up");
            tx.send(()).expect("signal");
            std::future::pending::<()>().await;
            drop(compose);
        });
    });
    rx.recv().expect("compose started");
    let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".stack/tls");
    let mut env = vec![
        (
            "PAYLEDGER_KAFKA_BOOTSTRAP".to_owned(),
            "localhost:19093".to_owned(),
        ),
        ("PAYLEDGER_KAFKA_SECURITY".to_owned(), "sasl_ssl".to_owned()),
        (
            "PAYLEDGER_KAFKA_CA".to_owned(),
            tls.join("ca.crt").display().to_string(),
        ),
        (
            "PAYLEDGER_SCHEMA_REGISTRY_URL".to_owned(),
            "http://127.0.0.1:18081/apis/ccompat/v7".to_owned(),
        ),
        (
            "PAYLEDGER_DATABASE_URL".to_owned(),
            format!(
                "postgres://payledger:{}@localhost:15432/payledger?sslmode=verify-full&sslrootcert={}",
                secrets["PAYLEDGER_DATABASE_PASSWORD"],
                tls.join("ca.crt").display()
            ),
        ),
        (
            "PAYLEDGER_DYNAMODB_ENDPOINT".to_owned(),
            "http://127.0.0.1:18000".to_owned(),
        ),
    ];
    for user in ["admin", "ledger", "projector", "gateway", "cli"] {
        let up = user.to_ascii_uppercase();
        env.push((format!("PAYLEDGER_KAFKA_USER_{up}"), user.to_owned()));
        env.push((
            format!("PAYLEDGER_KAFKA_PASSWORD_{up}"),
            secrets[&format!("PAYLEDGER_KAFKA_PASSWORD_{up}")].clone(),
        ));
    }
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docker-stack.env");
    let text: String = env.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(&file, text).expect("write env file");
    for args in [["topics", "apply"], ["schemas", "register"]] {
        let ok = Command::new(env!("CARGO_BIN_EXE_payledger"))
            .arg("--env-file")
            .arg(&file)
            .args(args)
            .status()
            .expect("payledger");
        assert!(
            ok.success(),
            "payledger {args:?} against the compose stack failed"
        );
    }
    file
}

impl Stack {
    pub fn var(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from {}", self.env_file.display()))
    }

    pub fn kafka(&self, role: Role) -> KafkaSettings {
        KafkaSettings::from_lookup(role, |k| self.vars.get(k).cloned())
            .expect("Kafka settings from env file")
    }

    /// The `role` principal's settings with someone else's password.
    pub fn kafka_with_password(&self, role: Role, password: &str) -> KafkaSettings {
        let s = self.kafka(role);
        let user = self
            .var(&format!("PAYLEDGER_KAFKA_USER_{}", role.env_suffix()))
            .to_owned();
        s.with_credentials(&user, Secret::new(password))
    }

    pub fn codec(&self) -> Arc<RegistryCodec> {
        Arc::new(RegistryCodec::new(self.var("PAYLEDGER_SCHEMA_REGISTRY_URL")).expect("codec"))
    }

    pub fn publisher(&self) -> CommandPublisher {
        CommandPublisher::new(&self.kafka(Role::Cli), self.codec()).expect("publisher")
    }

    /// Publishes gateway results with the gateway's principal, as gateway workers will.
    pub fn gateway_publisher(&self) -> CommandPublisher {
        CommandPublisher::new(&self.kafka(Role::Gateway), self.codec()).expect("publisher")
    }

    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(self.var("PAYLEDGER_DATABASE_URL"))
            .await
            .expect("connect to PostgreSQL with verify-full")
    }
}

/// A `payledger` service process, killed when dropped. Its output goes to a log file in the
/// test target directory, named in any failure message.
pub struct Service {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn start(name: &str, args: &[&str]) -> Service {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let log = dir.join(format!("{name}-{}.log", Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_payledger"))
            .arg("--env-file")
            .arg(&stack().env_file)
            .args(args)
            .env(
                "PAYLEDGER_LOG",
                // PAYLEDGER_TEST_SERVICE_LOG=ledger=debug shows per-batch timings, for instance.
                std::env::var("PAYLEDGER_TEST_SERVICE_LOG")
                    .unwrap_or_else(|_| "info,rdkafka=warn,apache_avro=error".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawn payledger");
        Service {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn ledger(instance: &str) -> Service {
        Service::start(
            &format!("ledger-{instance}"),
            &["ledger", "--instance-id", instance],
        )
    }

    /// A ledger that snapshots a partition after every `every` events.
    pub fn ledger_snapshotting(instance: &str, every: u64) -> Service {
        Service::start(
            &format!("ledger-{instance}"),
            &[
                "ledger",
                "--instance-id",
                instance,
                "--snapshot-every",
                &every.to_string(),
            ],
        )
    }

    pub fn projector() -> Service {
        Service::start("projector", &["project"])
    }

    /// `kill -9`: no chance to finish a batch or leave the group.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: the service finishes its batch and leaves.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill_9();
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {pid}");
    }

    /// Waits up to `wait` for the process to exit on its own.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}); log:\n{}", self.name, self.log_text());
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Reads a topic from the offsets it had when the watcher was made: what happens after.
pub struct Watcher {
    consumer: BaseConsumer,
    topic: &'static str,
}

impl Watcher {
    pub fn from_now(topic: &'static str) -> Watcher {
        let settings = stack().kafka(Role::Cli);
        let consumer: BaseConsumer = settings.reader().create().expect("reader");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .expect("metadata");
        let n = partition_count(&metadata, topic)
            .unwrap_or_else(|| panic!("{topic} missing: run payledger topics apply"));
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .expect("watermarks");
            tpl.add_partition_offset(topic, p, Offset::Offset(high))
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        Watcher { consumer, topic }
    }

    /// Polls for up to `wait`, handing each record to `f` until it returns true.
    pub fn until(
        &self,
        wait: Duration,
        mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(200)) {
                None | Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => panic!("reading {}: {e}", self.topic),
                Some(Ok(m)) => {
                    if f(&m) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// Collects decoded events of the given merchants from `payments.events`.
pub struct EventLog {
    watcher: Watcher,
    codec: Arc<RegistryCodec>,
    rt: tokio::runtime::Handle,
    pub events: Vec<PaymentEvent>,
    /// The `traceparent` header of each event in `events`, same index.
    pub traceparents: Vec<Option<String>>,
}

impl EventLog {
    pub fn from_now(rt: tokio::runtime::Handle) -> EventLog {
        EventLog {
            watcher: Watcher::from_now(EVENTS),
            codec: stack().codec(),
            rt,
            events: Vec::new(),
            traceparents: Vec::new(),
        }
    }

    /// Reads until `done(events so far)` or the wait runs out. Must be called off the runtime
    /// (e.g. in `spawn_blocking`) since it blocks.
    pub fn read_until(
        &mut self,
        merchants: &[String],
        wait: Duration,
        done: impl Fn(&[PaymentEvent]) -> bool,
    ) -> bool {
        if done(&self.events) {
            return true;
        }
        let codec = self.codec.clone();
        let rt = self.rt.clone();
        let events = &mut self.events;
        let traceparents = &mut self.traceparents;
        self.watcher.until(wait, |m| {
            let event = rt
                .block_on(codec.decode_event(m.payload()))
                .unwrap_or_else(|e| {
                    panic!(
                        "an event at {}@{} does not decode: {e}",
                        m.partition(),
                        m.offset()
                    )
                });
            if merchants.contains(&event.merchant_id) {
                events.push(event);
                traceparents.push(
                    ledger::kafka::headers::get(m, ledger::kafka::headers::TRACEPARENT)
                        .map(str::to_owned),
                );
            }
            done(events)
        })
    }
}

/// Dead letters that arrived after the watcher was made.
pub fn dead_letters_until(
    watcher: &Watcher,
    wait: Duration,
    done: impl Fn(&[(DeadLetterInfo, Option<Vec<u8>>)]) -> bool,
) -> Vec<(DeadLetterInfo, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    watcher.until(wait, |m| {
        let info = DeadLetterInfo::from_message(m).expect("payledger headers on every dead letter");
        out.push((info, m.payload().map(<[u8]>::to_vec)));
        done(&out)
    });
    out
}

pub fn dlq_watcher() -> Watcher {
    Watcher::from_now(DLQ)
}

pub fn merchant() -> String {
    format!("test-{}", &Uuid::new_v4().simple().to_string()[..12])
}

pub fn authorize(merchant: &str, key: &str, amount: &str, currency: &str) -> PaymentCommand {
    PaymentCommand {
        command_id: Uuid::new_v4(),
        idempotency_key: key.to_owned(),
        merchant_id: merchant.to_owned(),
        issued_at: chrono::Utc::now(),
        body: CommandBody::AuthorizePayment(AuthorizePayment {
            payment_id: Uuid::new_v4(),
            amount: WireMoney {
                amount: amount.to_owned(),
                currency: currency.to_owned(),
            },
            processor: "stripe".to_owned(),
            payment_token: "tok_visa".to_owned(),
        }),
    }
}

pub fn money(amount: &str, currency: &str) -> WireMoney {
    WireMoney {
        amount: amount.to_owned(),
        currency: currency.to_owned(),
    }
}

fn command(merchant: &str, key: &str, body: CommandBody) -> PaymentCommand {
    PaymentCommand {
        command_id: Uuid::new_v4(),
        idempotency_key: key.to_owned(),
        merchant_id: merchant.to_owned(),
        issued_at: chrono::Utc::now(),
        body,
    }
}

pub fn capture(
    merchant: &str,
    key: &str,
    payment_id: Uuid,
    amount: &str,
    currency: &str,
) -> PaymentCommand {
    command(
        merchant,
        key,
        CommandBody::CapturePayment(CapturePayment {
            payment_id,
            amount: money(amount, currency),
        }),
    )
}

pub fn void(merchant: &str, key: &str, payment_id: Uuid) -> PaymentCommand {
    command(
        merchant,
        key,
        CommandBody::VoidPayment(VoidPayment { payment_id }),
    )
}

pub fn refund(
    merchant: &str,
    key: &str,
    payment_id: Uuid,
    amount: &str,
    currency: &str,
) -> PaymentCommand {
    command(
        merchant,
        key,
        CommandBody::RefundPayment(RefundPayment {
            payment_id,
            amount: money(amount, currency),
        }),
    )
}

pub fn payout(
    merchant: &str,
    key: &str,
    amount: &str,
    currency: &str,
    bank: &str,
) -> PaymentCommand {
    command(
        merchant,
        key,
        CommandBody::RequestPayout(RequestPayout {
            payout_id: Uuid::new_v4(),
            amount: money(amount, currency),
            bank_account: bank.to_owned(),
        }),
    )
}

/// The payment id of an `AuthorizePayment`.
pub fn payment_id(cmd: &PaymentCommand) -> Uuid {
    match &cmd.body {
        CommandBody::AuthorizePayment(a) => a.payment_id,
        other => panic!("not an authorization: {other:?}"),
    }
}

fn result(merchant: &str, payment_id: Uuid, body: ResultBody) -> GatewayResult {
    GatewayResult {
        result_id: Uuid::new_v4(),
        merchant_id: merchant.to_owned(),
        payment_id,
        processor: "stripe".to_owned(),
        occurred_at: chrono::Utc::now(),
        body,
    }
}

pub fn authorization(
    merchant: &str,
    payment_id: Uuid,
    outcome: AuthorizationOutcome,
    source: ResultSource,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> GatewayResult {
    result(
        merchant,
        payment_id,
        ResultBody::Authorization(AuthorizationResult {
            outcome,
            source,
            processor_reference: Some(format!("ch_{}", payment_id.simple())),
            code: match outcome {
                AuthorizationOutcome::Declined => Some("insufficient_funds".to_owned()),
                _ => None,
            },
            detail: format!("{outcome:?}"),
            expires_at,
        }),
    )
}

pub fn approved(merchant: &str, payment_id: Uuid) -> GatewayResult {
    authorization(
        merchant,
        payment_id,
        AuthorizationOutcome::Approved,
        ResultSource::Response,
        None,
    )
}

pub fn settlement(
    merchant: &str,
    payment_id: Uuid,
    amount: &str,
    fee: &str,
    currency: &str,
) -> GatewayResult {
    result(
        merchant,
        payment_id,
        ResultBody::Settlement(SettlementReport {
            settlement_id: format!("st_{}", Uuid::new_v4().simple()),
            amount: money(amount, currency),
            fee: money(fee, currency),
            bank_account: "barclays-main".to_owned(),
        }),
    )
}

pub fn dispute_opened(
    merchant: &str,
    payment_id: Uuid,
    id: &str,
    amount: &str,
    currency: &str,
) -> GatewayResult {
    result(
        merchant,
        payment_id,
        ResultBody::DisputeOpened(DisputeNotice {
            dispute_id: id.to_owned(),
            amount: money(amount, currency),
            reason: "fraudulent".to_owned(),
        }),
    )
}

pub fn dispute_closed(
    merchant: &str,
    payment_id: Uuid,
    id: &str,
    outcome: DisputeOutcome,
) -> GatewayResult {
    result(
        merchant,
        payment_id,
        ResultBody::DisputeClosed(DisputeDecision {
            dispute_id: id.to_owned(),
            outcome,
        }),
    )
}

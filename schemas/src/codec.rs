//! Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary) through
//! `schema_registry_converter`, with schema resolution to the reader schema this build knows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use thiserror::Error;

use crate::{GatewayResult, PaymentCommand, PaymentEvent, SchemaError, Subject};

/// Why a record could not be turned into a contract value. Every variant but
/// [`DecodeError::RegistryUnavailable`] is a property of the record itself: retrying will not
/// help, so the record belongs in the dead-letter topic with [`DecodeError::reason_code`].
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("not Confluent wire format: {detail}")]
    WireFormat { detail: String },
    #[error("schema id {id} is not known to the registry: {detail}")]
    UnknownSchema { id: u32, detail: String },
    #[error("schema registry unavailable: {detail}")]
    RegistryUnavailable { detail: String },
    #[error("bytes do not decode with writer schema {id}: {detail}")]
    Avro { id: u32, detail: String },
    #[error("writer schema {id} cannot be read as {subject}: {detail}")]
    Incompatible {
        id: u32,
        subject: &'static str,
        detail: String,
    },
    #[error("{record}.{field}: {detail}")]
    Shape {
        record: &'static str,
        field: &'static str,
        detail: String,
    },
    #[error("{record}.body has union branch {branch}, which this build does not know")]
    UnknownBranch { record: &'static str, branch: u32 },
}

impl DecodeError {
    /// A stable code for dead-letter headers and metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_payload",
            DecodeError::WireFormat { .. } => "invalid_wire_format",
            DecodeError::UnknownSchema { .. } => "unknown_schema_id",
            DecodeError::RegistryUnavailable { .. } => "registry_unavailable",
            DecodeError::Avro { .. } => "undecodable_payload",
            DecodeError::Incompatible { .. } => "incompatible_schema",
            DecodeError::Shape { .. } => "invalid_field",
            DecodeError::UnknownBranch { .. } => "unknown_variant",
        }
    }

    /// True when the record may decode later (the registry was down): do not dead-letter it.
    pub fn is_retriable(&self) -> bool {
        matches!(self, DecodeError::RegistryUnavailable { .. })
    }

    pub(crate) fn shape(record: &'static str, field: &'static str, found: &Value) -> Self {
        DecodeError::Shape {
            record,
            field,
            detail: format!("unexpected Avro value {}", value_kind(found)),
        }
    }

    pub(crate) fn unknown_branch(record: &'static str, branch: u32) -> Self {
        DecodeError::UnknownBranch { record, branch }
    }
}

/// Why a value could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("schema registry refused or could not serve {subject}: {detail}")]
    Registry {
        subject: &'static str,
        detail: String,
        retriable: bool,
    },
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Record(_) => "record",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Enum(..) => "enum",
        Value::TimestampMillis(_) => "timestamp-millis",
        _ => "other",
    }
}

/// Encodes and decodes payledger's contracts against a Confluent-compatible registry.
///
/// Writers encode with the schema compiled into this build (the registry returns its id, and
/// refuses it if it breaks `BACKWARD_TRANSITIVE`); readers decode with whatever writer schema
/// the record names and resolve it to this build's schema.
pub struct RegistryCodec {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    commands: Reader,
    events: Reader,
    results: Reader,
}

struct Reader {
    subject: Subject,
    schema: Schema,
    /// This build's schema as JSON, to recognise writer schemas identical to it.
    json: serde_json::Value,
    /// Its Parsing Canonical Form, to recognise the same schema written differently.
    canonical: String,
    /// Its named types, for resolving values to it (built once: apache_avro's `resolve`
    /// rebuilds this table on every call).
    names: Names,
    /// Writer schema id → is it exactly this build's schema (then decoded values need no
    /// resolution, which would otherwise rebuild the schema's name table per record).
    identical: Mutex<HashMap<u32, bool>>,
    strategy: SubjectNameStrategy,
}

impl Reader {
    /// Is the writer schema `raw` (registered as `id`) exactly this build's schema? Compared
    /// as JSON values, docs and logical types included; remembered per id.
    fn is_identical(&self, id: u32, raw: &str) -> bool {
        let mut known = self.identical.lock().unwrap_or_else(|e| e.into_inner());
        *known.entry(id).or_insert_with(|| {
            serde_json::from_str::<serde_json::Value>(raw).is_ok_and(|w| w == self.json)
                // A registry may hand the schema back rewritten (Apicurio shortens names
                // within their namespace): the same Parsing Canonical Form means the same
                // binary layout, and this build's readers accept either form of a logical type.
                || Schema::parse_str(raw).is_ok_and(|w| w.canonical_form() == self.canonical)
        })
    }

    fn new(subject: Subject) -> Result<Self, SchemaError> {
        let supplied =
            SuppliedSchema::new(None, SchemaType::Avro, subject.latest_text().to_owned());
        let schema = subject.latest()?;
        Ok(Reader {
            canonical: schema.canonical_form(),
            names: names_of(&schema).map_err(|detail| SchemaError::Encode {
                record: subject.name.to_owned(),
                detail,
            })?,
            schema,
            json: serde_json::from_str(subject.latest_text()).map_err(|e| SchemaError::Encode {
                record: subject.name.to_owned(),
                detail: e.to_string(),
            })?,
            identical: Mutex::new(HashMap::new()),
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(
                subject.topic.to_owned(),
                false,
                supplied,
            ),
            subject,
        })
    }
}

impl RegistryCodec {
    /// `url` is the registry's Confluent-compatible base URL, without a trailing slash
    /// (Apicurio: `http://host:port/apis/ccompat/v7`).
    pub fn new(url: &str) -> Result<Self, SchemaError> {
        let settings = || {
            SrSettings::new_builder(url.trim_end_matches('/').to_owned())
                .set_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| SchemaError::Registry {
                    what: "client setup".to_owned(),
                    detail: e.to_string(),
                })
        };
        Ok(RegistryCodec {
            encoder: AvroEncoder::new(settings()?),
            decoder: AvroDecoder::new(settings()?),
            commands: Reader::new(Subject::COMMANDS)?,
            events: Reader::new(Subject::EVENTS)?,
            results: Reader::new(Subject::GATEWAY_RESULTS)?,
        })
    }

    pub async fn encode_command(&self, command: &PaymentCommand) -> Result<Vec<u8>, EncodeError> {
        self.encode(&self.commands, command.to_value()).await
    }

    pub async fn encode_event(&self, event: &PaymentEvent) -> Result<Vec<u8>, EncodeError> {
        self.encode(&self.events, event.to_value()).await
    }

    pub async fn encode_result(&self, result: &GatewayResult) -> Result<Vec<u8>, EncodeError> {
        self.encode(&self.results, result.to_value()).await
    }

    pub async fn decode_command(
        &self,
        bytes: Option<&[u8]>,
    ) -> Result<PaymentCommand, DecodeError> {
        let value = self.decode(&self.commands, bytes).await?;
        PaymentCommand::from_value(&value)
    }

    pub async fn decode_event(&self, bytes: Option<&[u8]>) -> Result<PaymentEvent, DecodeError> {
        let value = self.decode(&self.events, bytes).await?;
        PaymentEvent::from_value(&value)
    }

    pub async fn decode_result(&self, bytes: Option<&[u8]>) -> Result<GatewayResult, DecodeError> {
        let value = self.decode(&self.results, bytes).await?;
        GatewayResult::from_value(&value)
    }

    async fn encode(&self, reader: &Reader, value: Value) -> Result<Vec<u8>, EncodeError> {
        self.encoder
            .encode_value(value, &reader.strategy)
            .await
            .map_err(|e| {
                if !e.retriable {
                    // A refused schema or a bad value is not cached forever: the operator may fix
                    // the registry and the next call must see that.
                    self.encoder.remove_errors_from_cache();
                }
                EncodeError::Registry {
                    subject: reader.subject.name,
                    detail: e.to_string(),
                    retriable: e.retriable,
                }
            })
    }

    async fn decode(&self, reader: &Reader, bytes: Option<&[u8]>) -> Result<Value, DecodeError> {
        let id = wire_schema_id(bytes)?;
        // Fetch the writer schema first, so that "no such id" and "registry down" are told
        // apart from "these bytes are not valid Avro".
        let writer = match self.decoder.get_schema(id).await {
            Ok(writer) => writer,
            Err(e) => return Err(classify_fetch_error(&self.decoder, id, e)),
        };
        let decoded = self
            .decoder
            .decode(bytes)
            .await
            .map_err(|e| DecodeError::Avro {
                id,
                detail: e.error,
            })?;
        if reader.is_identical(id, &writer.raw) {
            return Ok(decoded.value);
        }
        resolve_by_name(decoded.value, &writer.parsed, &reader.schema, &reader.names).map_err(
            |detail| DecodeError::Incompatible {
                id,
                subject: reader.subject.name,
                detail,
            },
        )
    }
}

/// Resolves a value written with `writer` to `reader`, choosing the `body` union's branch by
/// record name.
///
/// apache_avro's own resolution picks the first union branch whose fields the value has, not
/// the branch with the writer's name: with same-shaped bodies (`PaymentCaptured` and
/// `PaymentRefunded` both hold a payment id, an amount and postings) a refund would be read
/// as a capture. So the envelope is resolved as usual and the body again, by name.
fn resolve_by_name(
    value: Value,
    writer: &Schema,
    reader: &Schema,
    names: &Names,
) -> Result<Value, String> {
    let body = match &value {
        Value::Record(fields) => fields.iter().find_map(|(n, v)| match v {
            Value::Union(i, inner) if n == "body" => Some((*i, inner.as_ref().clone())),
            _ => None,
        }),
        _ => None,
    };
    let mut resolved = value
        .resolve_with_names(reader, names)
        .map_err(|e| e.to_string())?;
    let Some((writer_branch, inner)) = body else {
        return Ok(resolved);
    };
    let name = union_branch(writer, "body", |variants| {
        variants
            .get(writer_branch as usize)
            .and_then(|v| v.name())
            .map(|n| n.fullname(None))
    })
    .ok_or_else(|| format!("writer body branch {writer_branch} has no name"))?;
    let (reader_branch, variant) = union_branch(reader, "body", |variants| {
        variants
            .iter()
            .enumerate()
            .find(|(_, v)| v.name().is_some_and(|n| n.fullname(None) == name))
    })
    .ok_or_else(|| format!("this build has no body branch {name}"))?;
    let inner = inner
        .resolve_with_names(variant, names)
        .map_err(|e| format!("{name}: {e}"))?;
    if let Value::Record(fields) = &mut resolved
        && let Some((_, slot)) = fields.iter_mut().find(|(n, _)| n == "body")
    {
        *slot = Value::Union(
            u32::try_from(reader_branch).map_err(|e| e.to_string())?,
            Box::new(inner),
        );
    }
    Ok(resolved)
}

/// A schema's named types, owned.
type Names = HashMap<apache_avro::schema::Name, Schema>;

fn names_of(schema: &Schema) -> Result<Names, String> {
    let resolved =
        apache_avro::schema::ResolvedSchema::try_from(schema).map_err(|e| e.to_string())?;
    Ok(resolved
        .get_names()
        .iter()
        .map(|(name, schema)| (name.clone(), (*schema).clone()))
        .collect())
}

/// Applies `f` to the variants of the union field `field` of the record `schema`.
fn union_branch<'s, T>(
    schema: &'s Schema,
    field: &str,
    f: impl FnOnce(&'s [Schema]) -> Option<T>,
) -> Option<T> {
    let Schema::Record(record) = schema else {
        return None;
    };
    let field = record.fields.iter().find(|x| x.name == field)?;
    match &field.schema {
        Schema::Union(u) => f(u.variants()),
        _ => None,
    }
}

fn classify_fetch_error(decoder: &AvroDecoder, id: u32, e: SRCError) -> DecodeError {
    let text = e.to_string();
    // The converter marks 4xx answers non-retriable; anything else (connection refused,
    // timeouts, 5xx) means the registry could not answer, not that the id is wrong.
    let refused_by_registry = !e.retriable && text.contains("failed with status 4");
    if refused_by_registry {
        DecodeError::UnknownSchema { id, detail: text }
    } else {
        decoder.remove_errors_from_cache();
        DecodeError::RegistryUnavailable { detail: text }
    }
}

/// The schema id of a Confluent-framed record, or why the bytes are not one.
pub fn wire_schema_id(bytes: Option<&[u8]>) -> Result<u32, DecodeError> {
    let bytes = bytes.ok_or(DecodeError::Empty)?;
    match bytes {
        [0, a, b, c, d, _rest @ ..] if bytes.len() > 5 => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [] => Err(DecodeError::Empty),
        [first, ..] if *first != 0 => Err(DecodeError::WireFormat {
            detail: format!("first byte is {first:#04x}, expected magic byte 0x00"),
        }),
        _ => Err(DecodeError::WireFormat {
            detail: format!("{} bytes is too short for a framed record", bytes.len()),
        }),
    }
}

/// Registry-free Avro for one schema, framed in Confluent wire format with a given schema id:
/// the work the registry codec does per record once the schema is cached. The schema is
/// resolved once, here, not per record. Used by benchmarks and tests.
pub struct Framer<'s> {
    schema_id: u32,
    writer: GenericDatumWriter<'s>,
    reader: GenericDatumReader<'s>,
}

impl<'s> Framer<'s> {
    pub fn new(schema: &'s Schema, schema_id: u32) -> Result<Self, SchemaError> {
        let err = |e: apache_avro::Error| SchemaError::Encode {
            record: "schema".to_owned(),
            detail: e.to_string(),
        };
        Ok(Framer {
            schema_id,
            writer: GenericDatumWriter::builder(schema).build().map_err(err)?,
            reader: GenericDatumReader::builder(schema).build().map_err(err)?,
        })
    }

    pub fn frame(&self, value: &Value) -> Result<Vec<u8>, SchemaError> {
        let mut out = Vec::with_capacity(128);
        out.push(0);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        self.writer
            .write_value_ref(&mut out, value)
            .map_err(|e| SchemaError::Encode {
                record: "datum".to_owned(),
                detail: e.to_string(),
            })?;
        Ok(out)
    }

    pub fn unframe(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let id = wire_schema_id(Some(bytes))?;
        let mut body = &bytes[5..];
        self.reader
            .read_value(&mut body)
            .map_err(|e| DecodeError::Avro {
                id,
                detail: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::{
        AuthorizationOutcome, AuthorizationResult, AuthorizePayment, CommandBody, CommandRejected,
        EventBody, PaymentAuthorizationRequested, ResultBody, ResultSource, WireMoney,
    };

    fn command() -> PaymentCommand {
        PaymentCommand {
            command_id: Uuid::from_u128(1),
            idempotency_key: "idem-1".into(),
            merchant_id: "m-1".into(),
            issued_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            body: CommandBody::AuthorizePayment(AuthorizePayment {
                payment_id: Uuid::from_u128(2),
                amount: WireMoney {
                    amount: "10.50".into(),
                    currency: "GBP".into(),
                },
                processor: "stripe".into(),
                payment_token: "tok_visa".into(),
            }),
        }
    }

    fn events() -> Vec<PaymentEvent> {
        let base = PaymentEvent {
            event_id: Uuid::from_u128(3),
            merchant_id: "m-1".into(),
            merchant_sequence: 7,
            payment_id: Some(Uuid::from_u128(2)),
            command_id: Uuid::from_u128(1),
            idempotency_key: "idem-1".into(),
            command_fingerprint: "ab".repeat(32),
            occurred_at: Utc.timestamp_millis_opt(1_700_000_000_456).unwrap(),
            body: EventBody::PaymentAuthorizationRequested(PaymentAuthorizationRequested {
                payment_id: Uuid::from_u128(2),
                amount: WireMoney {
                    amount: "1000".into(),
                    currency: "JPY".into(),
                },
                processor: "square".into(),
                payment_token: "cnon:card-nonce-ok".into(),
            }),
        };
        let rejected = PaymentEvent {
            payment_id: None,
            body: EventBody::CommandRejected(CommandRejected {
                reason_code: "invalid_amount".into(),
                detail: "GBP allows 2 decimals".into(),
            }),
            ..base.clone()
        };
        vec![base, rejected]
    }

    #[test]
    fn command_round_trips_through_avro_bytes() {
        let schema = Subject::COMMANDS.latest().unwrap();
        let framer = Framer::new(&schema, 42).unwrap();
        let bytes = framer.frame(&command().to_value()).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
        let value = framer.unframe(&bytes).unwrap();
        assert_eq!(PaymentCommand::from_value(&value).unwrap(), command());
    }

    #[test]
    fn every_event_variant_round_trips_through_avro_bytes() {
        let schema = Subject::EVENTS.latest().unwrap();
        let framer = Framer::new(&schema, 7).unwrap();
        for event in events() {
            let bytes = framer.frame(&event.to_value()).unwrap();
            let value = framer.unframe(&bytes).unwrap();
            assert_eq!(PaymentEvent::from_value(&value).unwrap(), event);
        }
    }

    /// The newest commands schema with `issued_at` as a plain `long` (edited as JSON, so the
    /// `.avsc` formatting does not matter).
    fn commands_with_plain_long_issued_at() -> String {
        let mut json: serde_json::Value =
            serde_json::from_str(Subject::COMMANDS.latest_text()).unwrap();
        let field = json["fields"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|f| f["name"] == "issued_at")
            .expect("the commands schema has issued_at");
        assert_eq!(field["type"]["logicalType"], "timestamp-millis");
        field["type"] = serde_json::Value::from("long");
        serde_json::to_string(&json).unwrap()
    }

    #[test]
    fn a_gateway_result_round_trips_through_avro_bytes() {
        let schema = Subject::GATEWAY_RESULTS.latest().unwrap();
        let framer = Framer::new(&schema, 11).unwrap();
        let result = GatewayResult {
            result_id: Uuid::from_u128(11),
            merchant_id: "m-1".into(),
            payment_id: Uuid::from_u128(2),
            processor: "stripe".into(),
            occurred_at: Utc.timestamp_millis_opt(1_700_000_000_789).unwrap(),
            body: ResultBody::Authorization(AuthorizationResult {
                outcome: AuthorizationOutcome::Declined,
                source: ResultSource::Webhook,
                processor_reference: Some("ch_1".into()),
                code: Some("do_not_honor".into()),
                detail: "declined".into(),
                expires_at: None,
            }),
        };
        let bytes = framer.frame(&result.to_value()).unwrap();
        let value = framer.unframe(&bytes).unwrap();
        assert_eq!(GatewayResult::from_value(&value).unwrap(), result);
    }

    /// `decode` resolves data from any other writer schema with `Value::resolve`, and
    /// apache_avro (0.22, also 0.23.0-rc0) picks a union branch by shape, not by record name:
    /// the first branch whose fields the record has wins. Same-shaped bodies then read as an
    /// earlier branch. Harmless for v1 writers (their bodies are unambiguous), wrong as soon as
    /// a reader resolves data written with a v2 or later schema that is not identical to its own.
    #[test]
    fn same_shaped_bodies_keep_their_branch_through_resolution() {
        let schema = Subject::COMMANDS.latest().unwrap();
        let framer = Framer::new(&schema, 1).unwrap();
        let refund = PaymentCommand {
            body: CommandBody::RefundPayment(crate::RefundPayment {
                payment_id: Uuid::from_u128(2),
                amount: WireMoney {
                    amount: "1.00".into(),
                    currency: "GBP".into(),
                },
            }),
            ..command()
        };
        let written = framer
            .unframe(&framer.frame(&refund.to_value()).unwrap())
            .unwrap();
        // apache_avro alone picks the first branch that fits: the bug this guards against.
        let naive = PaymentCommand::from_value(&written.clone().resolve(&schema).unwrap()).unwrap();
        assert_ne!(
            naive, refund,
            "if apache_avro got fixed, resolve_by_name can go"
        );
        let resolved =
            resolve_by_name(written, &schema, &schema, &names_of(&schema).unwrap()).unwrap();
        assert_eq!(PaymentCommand::from_value(&resolved).unwrap(), refund);
    }

    #[test]
    fn every_event_body_keeps_its_branch_through_resolution() {
        let schema = Subject::EVENTS.latest().unwrap();
        let names = names_of(&schema).unwrap();
        for event in crate::event::tests::events() {
            let value = event.to_value();
            let resolved = resolve_by_name(value, &schema, &schema, &names).unwrap();
            assert_eq!(PaymentEvent::from_value(&resolved).unwrap(), event);
        }
    }

    #[test]
    fn only_a_writer_schema_identical_to_ours_skips_resolution() {
        let reader = Reader::new(Subject::COMMANDS).unwrap();
        // The same schema, reformatted (as a registry may return it): identical.
        let reformatted = serde_json::to_string(&reader.json).unwrap();
        assert!(reader.is_identical(1, &reformatted));
        // With a field more: must be resolved, not taken as is.
        let mut json = reader.json.clone();
        json["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "extra", "type": "string", "default": ""}));
        assert!(!reader.is_identical(2, &json.to_string()));
        assert!(reader.is_identical(1, "not even JSON"), "remembered per id");
        // Names shortened within their namespace, as Apicurio returns them: the same schema.
        let events = Reader::new(Subject::EVENTS).unwrap();
        let short = Subject::EVENTS
            .latest_text()
            .replace("\"io.payledger.events.Posting\"", "\"Posting\"");
        assert_ne!(short, Subject::EVENTS.latest_text());
        assert!(events.is_identical(3, &short));
    }

    #[test]
    fn data_from_a_different_writer_schema_resolves_to_ours() {
        // A writer whose issued_at is a plain long: resolution makes it a timestamp again.
        let writer = Schema::parse_str(&commands_with_plain_long_issued_at()).unwrap();
        let reader = Subject::COMMANDS.latest().unwrap();
        let value = command().to_value();
        let apache_avro::types::Value::Record(mut fields) = value else {
            unreachable!()
        };
        for (name, v) in &mut fields {
            if name == "issued_at" {
                let apache_avro::types::Value::TimestampMillis(ms) = v else {
                    unreachable!()
                };
                *v = apache_avro::types::Value::Long(*ms);
            }
        }
        let bytes = Framer::new(&writer, 9)
            .unwrap()
            .frame(&apache_avro::types::Value::Record(fields))
            .unwrap();
        let written = Framer::new(&writer, 9).unwrap().unframe(&bytes).unwrap();
        let resolved =
            resolve_by_name(written, &writer, &reader, &names_of(&reader).unwrap()).unwrap();
        assert_eq!(PaymentCommand::from_value(&resolved).unwrap(), command());
    }

    #[test]
    fn wire_format_errors_name_the_problem() {
        assert!(matches!(wire_schema_id(None), Err(DecodeError::Empty)));
        assert!(matches!(
            wire_schema_id(Some(b"{\"json\":true}")),
            Err(DecodeError::WireFormat { .. })
        ));
        assert!(matches!(
            wire_schema_id(Some(&[0, 0, 0])),
            Err(DecodeError::WireFormat { .. })
        ));
        assert_eq!(wire_schema_id(Some(&[0, 0, 0, 1, 2, 9])).unwrap(), 258);
    }

    #[test]
    fn truncated_avro_is_an_error_not_a_panic() {
        let schema = Subject::EVENTS.latest().unwrap();
        let framer = Framer::new(&schema, 7).unwrap();
        let bytes = framer.frame(&events()[0].to_value()).unwrap();
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            framer.unframe(cut),
            Err(DecodeError::Avro { id: 7, .. })
        ));
    }
}

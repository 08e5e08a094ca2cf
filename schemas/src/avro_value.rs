//! Small, explicit conversions between Rust types and `apache_avro::types::Value`.
//!
//! payledger maps its contracts by hand rather than through serde: unions of records (the
//! command and event bodies) then map one-to-one onto Rust enums, and a decode error names
//! the record and field that was wrong.

use apache_avro::types::Value;
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::WireMoney;
use crate::codec::DecodeError;

/// Read access to the fields of one decoded record.
pub(crate) struct Fields<'a> {
    record: &'static str,
    fields: &'a [(String, Value)],
}

impl<'a> Fields<'a> {
    pub(crate) fn of(record: &'static str, value: &'a Value) -> Result<Self, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Fields { record, fields }),
            other => Err(DecodeError::shape(record, "<record>", other)),
        }
    }

    fn get(&self, name: &'static str) -> Result<&'a Value, DecodeError> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| DecodeError::Shape {
                record: self.record,
                field: name,
                detail: "missing".to_owned(),
            })
    }

    pub(crate) fn string(&self, name: &'static str) -> Result<String, DecodeError> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            Value::Uuid(u) => Ok(u.to_string()),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    pub(crate) fn opt_string(&self, name: &'static str) -> Result<Option<String>, DecodeError> {
        match self.get(name)? {
            Value::Union(_, inner) => match inner.as_ref() {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                other => Err(DecodeError::shape(self.record, name, other)),
            },
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    pub(crate) fn uuid(&self, name: &'static str) -> Result<Uuid, DecodeError> {
        let text = self.string(name)?;
        Uuid::parse_str(&text).map_err(|e| DecodeError::Shape {
            record: self.record,
            field: name,
            detail: format!("not a UUID: {e}"),
        })
    }

    pub(crate) fn opt_uuid(&self, name: &'static str) -> Result<Option<Uuid>, DecodeError> {
        self.opt_string(name)?
            .map(|text| {
                Uuid::parse_str(&text).map_err(|e| DecodeError::Shape {
                    record: self.record,
                    field: name,
                    detail: format!("not a UUID: {e}"),
                })
            })
            .transpose()
    }

    pub(crate) fn long(&self, name: &'static str) -> Result<i64, DecodeError> {
        match self.get(name)? {
            Value::Long(n) => Ok(*n),
            Value::Int(n) => Ok(i64::from(*n)),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    pub(crate) fn timestamp(&self, name: &'static str) -> Result<DateTime<Utc>, DecodeError> {
        match self.get(name)? {
            Value::TimestampMillis(n) | Value::Long(n) => self.millis(name, *n),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    /// A nullable timestamp: `["null", {"type": "long", "logicalType": "timestamp-millis"}]`.
    pub(crate) fn opt_timestamp(
        &self,
        name: &'static str,
    ) -> Result<Option<DateTime<Utc>>, DecodeError> {
        let value = match self.get(name)? {
            Value::Union(_, inner) => inner.as_ref(),
            other => other,
        };
        match value {
            Value::Null => Ok(None),
            Value::TimestampMillis(n) | Value::Long(n) => self.millis(name, *n).map(Some),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    fn millis(&self, name: &'static str, millis: i64) -> Result<DateTime<Utc>, DecodeError> {
        Utc.timestamp_millis_opt(millis)
            .single()
            .ok_or(DecodeError::Shape {
                record: self.record,
                field: name,
                detail: format!("timestamp out of range: {millis}"),
            })
    }

    /// An Avro enum field, read by its symbol (never by index, which belongs to the writer).
    /// `parse` maps a symbol to the Rust value; an unknown symbol is a shape error.
    pub(crate) fn enum_symbol<T>(
        &self,
        name: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let symbol = match self.get(name)? {
            Value::Enum(_, s) | Value::String(s) => s,
            other => return Err(DecodeError::shape(self.record, name, other)),
        };
        parse(symbol).ok_or_else(|| DecodeError::Shape {
            record: self.record,
            field: name,
            detail: format!("unknown enum symbol {symbol:?}"),
        })
    }

    /// The items of an array field.
    pub(crate) fn array(&self, name: &'static str) -> Result<&'a [Value], DecodeError> {
        match self.get(name)? {
            Value::Array(items) => Ok(items),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    pub(crate) fn money(&self, name: &'static str) -> Result<WireMoney, DecodeError> {
        let inner = Fields::of("Money", self.get(name)?)?;
        Ok(WireMoney {
            amount: inner.string("amount")?,
            currency: inner.string("currency")?,
        })
    }

    /// The branch index and value of a union field (indexes refer to the reader schema).
    pub(crate) fn union(&self, name: &'static str) -> Result<(u32, &'a Value), DecodeError> {
        match self.get(name)? {
            Value::Union(idx, inner) => Ok((*idx, inner.as_ref())),
            other => Err(DecodeError::shape(self.record, name, other)),
        }
    }

    pub(crate) fn record_name(&self) -> &'static str {
        self.record
    }
}

pub(crate) fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

pub(crate) fn timestamp(t: &DateTime<Utc>) -> Value {
    Value::TimestampMillis(t.timestamp_millis())
}

pub(crate) fn opt_timestamp(t: Option<&DateTime<Utc>>) -> Value {
    match t {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(t) => Value::Union(1, Box::new(timestamp(t))),
    }
}

/// An Avro enum value: `index` is the symbol's position in the schema's `symbols`.
pub(crate) fn enum_symbol(index: u32, symbol: &str) -> Value {
    Value::Enum(index, symbol.to_owned())
}

pub(crate) fn array(items: Vec<Value>) -> Value {
    Value::Array(items)
}

pub(crate) fn opt_string(s: Option<&str>) -> Value {
    match s {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(s) => Value::Union(1, Box::new(string(s))),
    }
}

pub(crate) fn money(m: &WireMoney) -> Value {
    Value::Record(vec![
        ("amount".to_owned(), string(&m.amount)),
        ("currency".to_owned(), string(&m.currency)),
    ])
}

pub(crate) fn record(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod testing {
    use apache_avro::Schema;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;

    /// Writes `value` as Avro binary with `writer` (validating it against the schema) and reads
    /// it back, resolved to `reader` when given. All bytes must be consumed.
    pub(crate) fn through_bytes(writer: &Schema, value: &Value, reader: Option<&Schema>) -> Value {
        let bytes = GenericDatumWriter::builder(writer)
            .build()
            .unwrap()
            .write_value_to_vec(value.clone())
            .unwrap_or_else(|e| panic!("does not fit the writer schema: {e}\n{value:?}"));
        let mut rest = bytes.as_slice();
        let read = GenericDatumReader::builder(writer)
            .maybe_reader_schema(reader)
            .build()
            .unwrap()
            .read_value(&mut rest)
            .unwrap();
        assert!(rest.is_empty(), "{} bytes left unread", rest.len());
        read
    }
}

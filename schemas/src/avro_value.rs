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
        let millis = match self.get(name)? {
            Value::TimestampMillis(n) | Value::Long(n) => *n,
            other => return Err(DecodeError::shape(self.record, name, other)),
        };
        Utc.timestamp_millis_opt(millis)
            .single()
            .ok_or(DecodeError::Shape {
                record: self.record,
                field: name,
                detail: format!("timestamp out of range: {millis}"),
            })
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

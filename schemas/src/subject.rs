//! The registry subjects payledger owns and the history of their schemas.

use apache_avro::Schema;

use crate::SchemaError;

/// A schema registry subject (Confluent `TopicNameStrategy`: `<topic>-value`) with every
/// version of its schema, oldest first. The last one is what this build writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub name: &'static str,
    pub topic: &'static str,
    versions: &'static [&'static str],
}

impl Subject {
    pub const COMMANDS: Subject = Subject {
        name: "payments.commands-value",
        topic: "payments.commands",
        versions: &[
            include_str!("../avro/payments.commands-value/v1.avsc"),
            include_str!("../avro/payments.commands-value/v2.avsc"),
        ],
    };

    pub const EVENTS: Subject = Subject {
        name: "payments.events-value",
        topic: "payments.events",
        versions: &[
            include_str!("../avro/payments.events-value/v1.avsc"),
            include_str!("../avro/payments.events-value/v2.avsc"),
        ],
    };

    pub const GATEWAY_RESULTS: Subject = Subject {
        name: "gateway.results-value",
        topic: "gateway.results",
        versions: &[include_str!("../avro/gateway.results-value/v1.avsc")],
    };

    /// Every subject payledger registers.
    pub const ALL: [Subject; 3] = [Subject::COMMANDS, Subject::EVENTS, Subject::GATEWAY_RESULTS];

    /// All versions' schema text, oldest first.
    pub fn versions(&self) -> &'static [&'static str] {
        self.versions
    }

    /// The schema text this build uses.
    pub fn latest_text(&self) -> &'static str {
        self.versions
            .last()
            .expect("every subject has at least one schema version")
    }

    /// The parsed schema this build uses.
    pub fn latest(&self) -> Result<Schema, SchemaError> {
        parse(self.name, self.versions.len(), self.latest_text())
    }

    /// Every version parsed, oldest first.
    pub fn parsed_versions(&self) -> Result<Vec<Schema>, SchemaError> {
        self.versions
            .iter()
            .enumerate()
            .map(|(i, text)| parse(self.name, i + 1, text))
            .collect()
    }
}

fn parse(subject: &str, version: usize, text: &str) -> Result<Schema, SchemaError> {
    Schema::parse_str(text).map_err(|source| SchemaError::Parse {
        subject: subject.to_owned(),
        version,
        source: Box::new(source),
    })
}

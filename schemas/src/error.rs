use thiserror::Error;

/// Errors about the contracts themselves and the registry that holds them.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("schema {subject} v{version} does not parse: {source}")]
    Parse {
        subject: String,
        version: usize,
        #[source]
        source: Box<apache_avro::Error>,
    },
    #[error("schema {subject} v{newer} cannot read data written with v{older}: {reason}")]
    Incompatible {
        subject: String,
        newer: usize,
        older: usize,
        reason: String,
    },
    #[error("schema registry call {what} failed: {detail}")]
    Registry { what: String, detail: String },
    #[error("value does not fit schema of {record}: {detail}")]
    Encode { record: String, detail: String },
}

//! Local compatibility checks, run before anything is registered.

use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::{SchemaError, Subject};

/// Checks `BACKWARD_TRANSITIVE` over the subject's history in the repository: every version
/// can read data written with every earlier version.
pub fn check_history(subject: &Subject) -> Result<(), SchemaError> {
    let versions = subject.parsed_versions()?;
    for (newer_idx, reader) in versions.iter().enumerate() {
        for (older_idx, writer) in versions[..newer_idx].iter().enumerate() {
            SchemaCompatibility::can_read(writer, reader).map_err(|e| {
                SchemaError::Incompatible {
                    subject: subject.name.to_owned(),
                    newer: newer_idx + 1,
                    older: older_idx + 1,
                    reason: e.to_string(),
                }
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_reads_all_its_earlier_versions() {
        for subject in Subject::ALL {
            check_history(&subject).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn the_checker_rejects_a_breaking_change() {
        // A new required field without a default cannot read old data: the checker must say so,
        // otherwise the history test above proves nothing.
        let old = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
        )
        .unwrap();
        let new = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}"#,
        )
        .unwrap();
        assert!(SchemaCompatibility::can_read(&old, &new).is_err());
        let with_default = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}"#,
        )
        .unwrap();
        assert!(SchemaCompatibility::can_read(&old, &with_default).is_ok());
    }
}

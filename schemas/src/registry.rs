//! Registry administration: `payledger schemas register` and `payledger schemas check`.

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_all_subjects, is_compatible_schema, post_schema,
};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use serde::{Deserialize, Serialize};

use crate::{SchemaError, Subject, compat};

/// The compatibility rule payledger sets on every subject it owns.
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";

/// One registered version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: &'static str,
    pub version: usize,
    pub id: u32,
}

/// What `check` found for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectStatus {
    pub subject: &'static str,
    /// Is the subject in the registry at all?
    pub registered: bool,
    /// The registry's compatibility level for the subject, if set.
    pub compatibility: Option<String>,
    /// Would the registry accept this build's schema?
    pub latest_accepted: bool,
}

impl SubjectStatus {
    pub fn is_ok(&self) -> bool {
        self.registered
            && self.compatibility.as_deref() == Some(COMPATIBILITY)
            && self.latest_accepted
    }
}

/// Talks to a Confluent-compatible registry (`.../apis/ccompat/v7` on Apicurio).
pub struct RegistryAdmin {
    url: String,
    settings: SrSettings,
    http: reqwest::Client,
}

#[derive(Serialize, Deserialize)]
struct CompatibilityConfig {
    #[serde(alias = "compatibilityLevel")]
    compatibility: String,
}

impl RegistryAdmin {
    pub fn new(url: &str) -> Result<Self, SchemaError> {
        let url = url.trim_end_matches('/').to_owned();
        let settings = SrSettings::new_builder(url.clone())
            .set_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| registry_err("client setup", e))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| registry_err("client setup", e))?;
        Ok(RegistryAdmin {
            url,
            settings,
            http,
        })
    }

    /// Checks the history locally, then registers every version of every subject, oldest
    /// first, and sets `BACKWARD_TRANSITIVE` on each subject. Idempotent.
    pub async fn register_all(&self) -> Result<Vec<Registered>, SchemaError> {
        for subject in Subject::ALL {
            compat::check_history(&subject)?;
        }
        let mut out = Vec::new();
        for subject in Subject::ALL {
            for (idx, text) in subject.versions().iter().enumerate() {
                let id = self.register(subject.name, text).await?;
                if idx == 0 {
                    // The registry holds config per existing subject: set it right after the
                    // subject exists, before any later version is checked against it.
                    self.set_compatibility(subject.name).await?;
                }
                out.push(Registered {
                    subject: subject.name,
                    version: idx + 1,
                    id,
                });
            }
        }
        Ok(out)
    }

    /// Reports, per subject, whether it is registered with the right rule and whether the
    /// registry would accept this build's schema. Also runs the local history check.
    pub async fn check_all(&self) -> Result<Vec<SubjectStatus>, SchemaError> {
        for subject in Subject::ALL {
            compat::check_history(&subject)?;
        }
        let existing = get_all_subjects(&self.settings)
            .await
            .map_err(|e| registry_err("list subjects", e))?;
        let mut out = Vec::new();
        for subject in Subject::ALL {
            let registered = existing.iter().any(|s| s == subject.name);
            let (compatibility, latest_accepted) = if registered {
                let supplied = supplied(subject.latest_text());
                let accepted =
                    is_compatible_schema(&self.settings, subject.name.to_owned(), supplied)
                        .await
                        .map_err(|e| registry_err("compatibility check", e))?;
                (self.compatibility(subject.name).await?, accepted)
            } else {
                (None, false)
            };
            out.push(SubjectStatus {
                subject: subject.name,
                registered,
                compatibility,
                latest_accepted,
            });
        }
        Ok(out)
    }

    async fn register(&self, subject: &str, text: &str) -> Result<u32, SchemaError> {
        let registered = post_schema(&self.settings, subject.to_owned(), supplied(text))
            .await
            .map_err(|e| registry_err(&format!("register {subject}"), e))?;
        Ok(registered.id)
    }

    async fn set_compatibility(&self, subject: &str) -> Result<(), SchemaError> {
        let url = format!("{}/config/{subject}", self.url);
        let response = self
            .http
            .put(&url)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&CompatibilityConfig {
                compatibility: COMPATIBILITY.to_owned(),
            })
            .send()
            .await
            .map_err(|e| registry_err(&format!("PUT config/{subject}"), e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(SchemaError::Registry {
                what: format!("PUT config/{subject}"),
                detail: format!("HTTP {status}: {body}"),
            });
        }
        Ok(())
    }

    async fn compatibility(&self, subject: &str) -> Result<Option<String>, SchemaError> {
        let url = format!("{}/config/{subject}", self.url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| registry_err(&format!("GET config/{subject}"), e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let config: CompatibilityConfig = response
            .error_for_status()
            .map_err(|e| registry_err(&format!("GET config/{subject}"), e))?
            .json()
            .await
            .map_err(|e| registry_err(&format!("GET config/{subject}"), e))?;
        Ok(Some(config.compatibility))
    }
}

fn supplied(text: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, text.to_owned())
}

fn registry_err(what: &str, e: impl std::fmt::Display) -> SchemaError {
    SchemaError::Registry {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}

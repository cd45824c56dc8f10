use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DocumentId, is_metadata_key};

/// A value a metadata condition matches exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetadataValue {
    Bool(bool),
    Integer(i64),
    String(String),
}

/// Conditions on the chunks a search may return; all must hold. Applied inside the
/// vector index, not after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only chunks of these documents.
    #[serde(default)]
    pub document_ids: Option<Vec<DocumentId>>,
    /// Only chunks whose document metadata has exactly these values.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"team": "legal"}))]
    pub metadata: Option<BTreeMap<String, MetadataValue>>,
}

pub const MAX_FILTER_DOCUMENT_IDS: usize = 1024;

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.document_ids.is_none() && self.metadata.as_ref().is_none_or(|m| m.is_empty())
    }

    /// Checks what serde cannot: key syntax and sizes.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(ids) = &self.document_ids
            && ids.len() > MAX_FILTER_DOCUMENT_IDS
        {
            return Err(format!(
                "filter.document_ids holds at most {MAX_FILTER_DOCUMENT_IDS} ids"
            ));
        }
        if let Some(metadata) = &self.metadata
            && let Some(bad) = metadata.keys().find(|k| !is_metadata_key(k))
        {
            return Err(format!(
                "filter.metadata key {bad:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
            ));
        }
        Ok(())
    }
}

//! Tags and metadata on the backup blob itself, merged with what it already has and written
//! only where something differs.
//!
//! The metadata write is conditional on the ETag read (`If-Match`), so it never overwrites
//! what another writer put there in between. A lost race (412: a second delivery of the same
//! export, on another instance, tagged the blob first) is not a failure: the blob is read
//! again and the merge decided again, a bounded number of times, as the alias and the index
//! do. Usually the other writer wrote exactly our entries, and nothing is left to write.

use std::collections::{BTreeMap, HashMap};

use azure_core::http::StatusCode;
use azure_storage_blob::models::BlobClientSetMetadataOptions;
use azure_storage_blob::BlobContainerClient;

use super::ExportError;
use crate::storage::copy::set_tags;
use crate::storage::decide::{merged, quoted_etag};
use crate::storage::{list_one, Listed, StorageActionError};

/// Metadata writes lost in a row before the invocation gives up (the host retries it).
const ATTEMPTS: usize = 8;

/// A blob as last read: all [`ensure`] decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Quoted or not.
    pub etag: String,
    pub tags: HashMap<String, String>,
    pub metadata: HashMap<String, String>,
}

impl From<Listed> for Seen {
    fn from(listed: Listed) -> Self {
        Self {
            etag: listed.etag,
            tags: listed.tags,
            metadata: listed.metadata,
        }
    }
}

/// Ensures `tags` and `metadata` on the blob `name` in `container`, which was last read as
/// `seen`. Returns the blob's ETag afterwards, in quoted form: a metadata write changes it, a
/// tags write does not.
pub async fn ensure(
    container: &BlobContainerClient,
    name: &str,
    seen: Seen,
    tags: &BTreeMap<String, String>,
    metadata: &BTreeMap<String, String>,
) -> Result<String, ExportError> {
    let blob = container.blob_client(name);
    let mut current = seen;
    for _ in 0..ATTEMPTS {
        if let Some(all) = merged(&current.tags, tags) {
            set_tags(&blob, all).await?;
        }
        let etag = quoted_etag(&current.etag);
        let Some(all) = merged(&current.metadata, metadata) else {
            return Ok(etag);
        };
        // Only over the version read: a concurrent writer makes this fail, and we look again.
        let options = BlobClientSetMetadataOptions {
            if_match: Some(etag.into()),
            ..Default::default()
        };
        match blob.set_metadata(&all, Some(options)).await {
            Ok(response) => {
                return response
                    .headers()
                    .get_optional_str(&azure_core::http::headers::HeaderName::from_static("etag"))
                    .map(quoted_etag)
                    .ok_or(ExportError::NoEtag);
            }
            Err(e) if e.http_status() == Some(StatusCode::PreconditionFailed) => {
                current = list_one(container, name)
                    .await
                    .map_err(StorageActionError::of("read backup"))?
                    .ok_or_else(|| ExportError::DeletedWhileTagged {
                        name: name.to_string(),
                    })?
                    .into();
            }
            Err(e) => return Err(StorageActionError::of("set metadata")(e).into()),
        }
    }
    Err(ExportError::Contended {
        name: name.to_string(),
        attempts: ATTEMPTS,
    })
}

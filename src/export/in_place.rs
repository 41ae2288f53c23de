//! Tags and metadata on the backup blob itself, merged with what it already has and written
//! only where something differs.

use std::collections::BTreeMap;

use azure_storage_blob::models::BlobClientSetMetadataOptions;
use azure_storage_blob::BlobClient;

use super::{storage_error, ExportError};
use crate::storage::copy::set_tags;
use crate::storage::decide::{merged, quoted_etag};
use crate::storage::Listed;

/// Ensures `tags` and `metadata` on `blob` (as `listed` shows it). Returns the blob's ETag
/// afterwards, in quoted form: a metadata write changes it, a tags write does not.
pub async fn ensure(
    blob: &BlobClient,
    listed: &Listed,
    tags: &BTreeMap<String, String>,
    metadata: &BTreeMap<String, String>,
) -> Result<String, ExportError> {
    if let Some(all) = merged(&listed.tags, tags) {
        set_tags(blob, all).await?;
    }
    let mut etag = quoted_etag(&listed.etag);
    if let Some(all) = merged(&listed.metadata, metadata) {
        // Only over the version listed: a concurrent writer makes this fail and retry.
        let options = BlobClientSetMetadataOptions {
            if_match: Some(etag.clone().into()),
            ..Default::default()
        };
        let response = blob
            .set_metadata(&all, Some(options))
            .await
            .map_err(storage_error("set metadata"))?;
        let written = response
            .headers()
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static("etag"))
            .map(quoted_etag);
        etag = written.ok_or_else(|| ExportError::Storage {
            action: "set metadata".into(),
            reason: "the answer has no ETag".into(),
        })?;
    }
    Ok(etag)
}

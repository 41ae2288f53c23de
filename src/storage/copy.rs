//! Server-side copies between blobs, shared by the export (a source into the model store) and
//! the model store's `latest` alias, in four steps: [`begin`] one conditional Copy Blob with
//! tags and metadata in the call, [`settle`] what the service answered, [`poll`] a pending
//! copy with a deadline, and [`copy`] the whole "copy unless it is already there" with an
//! existing destination judged by the source ETag it records
//! ([`super::decide::judge_existing`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientStartCopyFromUrlOptions,
    BlobClientStartCopyFromUrlResultHeaders, BlobTags, CopyStatus,
};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use url::Url;

use super::decide::{judge_existing, merged, quoted_etag, Existing};
use super::{error_code, list_one, StorageActionError};
use crate::redact::redact;

/// How long one invocation waits for a server-side copy before handing back to the host.
pub const COPY_DEADLINE: Duration = Duration::from_secs(120);

/// Failures of a copy or of a blob write beside it. Every one is worth a retry: a copy still
/// running, a storage hiccup; a copy the service ended `failed` is redone over.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A request failed. Shown redacted: a copy source URL may carry a SAS.
    #[error(transparent)]
    Request(#[from] StorageActionError),
    #[error("copy of '{source_name}' to '{destination}' ended {status}: {description}")]
    Failed {
        source_name: String,
        destination: String,
        status: String,
        description: String,
    },
    #[error("copy of '{source_name}' to '{destination}' still pending after {seconds} s; the retry picks it up")]
    Pending {
        source_name: String,
        destination: String,
        seconds: u64,
    },
}

impl CopyError {
    /// The storage error beneath, if a request failed.
    pub fn request_error(&self) -> Option<&azure_core::Error> {
        match self {
            Self::Request(e) => Some(&e.source),
            _ => None,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    Copied,
    AlreadyPresent,
    /// A blob of another source is at the destination and the request may not replace it
    /// ([`CopyRequest::replaces_other`]): it stays, untouched.
    Kept,
}

pub struct CopyRequest<'a> {
    /// Readable by the service: with a SAS where the account is key-authorised.
    pub source_url: Url,
    /// For messages: `container/blob`, never a URL with a credential.
    pub source_name: &'a str,
    /// Quoted; what the copy is conditional on and what its metadata records.
    pub source_etag: &'a str,
    pub destination: &'a str,
    pub tags: &'a BTreeMap<String, String>,
    pub metadata: &'a BTreeMap<String, String>,
    /// Whether this source may replace a blob of another source at the destination (a
    /// re-export). A source nobody vouches for may not: it is only ever a first copy.
    pub replaces_other: bool,
}

/// The destination condition of a copy.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Only if there is no blob there (`If-None-Match: *`).
    Absent,
    /// Only over exactly this version (`If-Match`).
    Replaces(String),
}

/// Copies `request` into `store` unless a finished copy of the same source is there: a failed
/// copy of it is redone, a pending one waited for, and a blob of another source replaced
/// (exactly the version listed) only where [`CopyRequest::replaces_other`] allows, else kept.
pub async fn copy(
    store: &BlobContainerClient,
    request: &CopyRequest<'_>,
) -> Result<CopyState, CopyError> {
    let target = store.blob_client(request.destination);
    match begin(
        &target,
        &request.source_url,
        request.metadata,
        request.tags,
        Some(request.source_etag),
        Destination::Absent,
    )
    .await
    {
        Ok(status) => settle(&target, request.source_name, request.destination, status)
            .await
            .map(|()| CopyState::Copied),
        Err(e) if destination_exists(&e) => {
            let Some(existing) = list_one(store, request.destination)
                .await
                .map_err(StorageActionError::of("read model store blob"))?
            else {
                // Deleted between the two calls: the retry copies it.
                return Err(StorageActionError::of("start copy")(e).into());
            };
            match judge_existing(
                &existing.metadata,
                existing.copy_status.as_ref(),
                request.source_etag,
            ) {
                Existing::Done => {
                    // Someone may have removed our tags since; put them back.
                    if let Some(all) = merged(&existing.tags, request.tags) {
                        set_tags(&target, all).await?;
                    }
                    Ok(CopyState::AlreadyPresent)
                }
                Existing::Pending => {
                    poll(&target, request.source_name, request.destination).await?;
                    Ok(CopyState::Copied)
                }
                Existing::Other if !request.replaces_other => Ok(CopyState::Kept),
                Existing::Broken | Existing::Other => {
                    // A re-exported backup or a failed copy: replace exactly what was listed.
                    let etag = quoted_etag(&existing.etag);
                    let status = begin(
                        &target,
                        &request.source_url,
                        request.metadata,
                        request.tags,
                        Some(request.source_etag),
                        Destination::Replaces(etag),
                    )
                    .await
                    .map_err(StorageActionError::of("start copy"))?;
                    settle(&target, request.source_name, request.destination, status).await?;
                    Ok(CopyState::Copied)
                }
            }
        }
        Err(e) => Err(StorageActionError::of("start copy")(e).into()),
    }
}

/// The destination condition failed: there is a blob already (409 `BlobAlreadyExists`), or not
/// the version named (412), not a source that changed (`SourceConditionNotMet`).
pub fn destination_exists(e: &azure_core::Error) -> bool {
    match e.http_status() {
        Some(StatusCode::Conflict) => true,
        Some(StatusCode::PreconditionFailed) => error_code(e) != Some("SourceConditionNotMet"),
        _ => false,
    }
}

/// One Copy Blob call: tags and metadata in it, conditional on `destination` and, when given,
/// on the source's ETag. The service's answer says `success` or `pending`.
pub async fn begin(
    target: &BlobClient,
    source_url: &Url,
    metadata: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
    source_etag: Option<&str>,
    destination: Destination,
) -> azure_core::Result<Option<CopyStatus>> {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (if_match, if_none_match) = match destination {
        Destination::Replaces(etag) => (Some(etag.into()), None),
        Destination::Absent => (None, Some("*".to_string().into())),
    };
    let options = BlobClientStartCopyFromUrlOptions {
        metadata: Some(metadata),
        blob_tags_string: Some(tags_header(tags)),
        source_if_match: source_etag.map(|e| e.to_string().into()),
        if_match,
        if_none_match,
        ..Default::default()
    };
    let response = target
        .start_copy_from_url(source_url.to_string(), Some(options))
        .await?;
    response.copy_status()
}

/// After [`begin`]: done at `success`, polled while `pending`, an error otherwise.
pub async fn settle(
    target: &BlobClient,
    source_name: &str,
    destination: &str,
    status: Option<CopyStatus>,
) -> Result<(), CopyError> {
    match status {
        None | Some(CopyStatus::Success) => Ok(()),
        Some(CopyStatus::Pending) => poll(target, source_name, destination).await,
        Some(other) => Err(CopyError::Failed {
            source_name: source_name.to_string(),
            destination: destination.to_string(),
            status: format!("{other:?}"),
            description: String::new(),
        }),
    }
}

/// Polls the copy status with a deadline. A copy that outlives the invocation stays pending in
/// storage; the retry finds it by the source ETag it records and waits again.
pub async fn poll(
    target: &BlobClient,
    source_name: &str,
    destination: &str,
) -> Result<(), CopyError> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let props = target
            .get_properties(None)
            .await
            .map_err(StorageActionError::of("read copy status"))?;
        match props
            .copy_status()
            .map_err(StorageActionError::of("read copy status"))?
        {
            None | Some(CopyStatus::Success) => return Ok(()),
            Some(CopyStatus::Pending) => {}
            Some(status) => {
                return Err(CopyError::Failed {
                    source_name: source_name.to_string(),
                    destination: destination.to_string(),
                    status: format!("{status:?}"),
                    description: redact(
                        &props
                            .copy_status_description()
                            .ok()
                            .flatten()
                            .unwrap_or_default(),
                    ),
                })
            }
        }
        if started.elapsed() >= COPY_DEADLINE {
            return Err(CopyError::Pending {
                source_name: source_name.to_string(),
                destination: destination.to_string(),
                seconds: COPY_DEADLINE.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Replaces the blob's tags with `tags` (callers merge first: [`merged`]).
pub async fn set_tags(blob: &BlobClient, tags: HashMap<String, String>) -> Result<(), CopyError> {
    let body: RequestContent<BlobTags, _> = BlobTags::from(tags)
        .try_into()
        .map_err(StorageActionError::of("encode tags"))?;
    blob.set_tags(body, None)
        .await
        .map_err(StorageActionError::of("set tags"))?;
    Ok(())
}

/// Encodes tags as the `x-ms-tags` header (`k=v&k2=v2`, percent-encoded).
fn tags_header(tags: &BTreeMap<String, String>) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push('&');
        }
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_percent_encoded_as_the_header_wants() {
        assert_eq!(
            tags_header(&BTreeMap::from([
                ("a b".into(), "x/y".into()),
                ("k".into(), "v".into())
            ])),
            "a%20b=x%2Fy&k=v"
        );
    }
}

//! The server-side copy into the model store: conditional on the destination not existing and
//! on the source ETag, with tags and metadata in the same call. An existing destination is
//! judged by the source it records; a pending copy is polled with a deadline.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use azure_core::http::StatusCode;
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientStartCopyFromUrlOptions,
    BlobClientStartCopyFromUrlResultHeaders, CopyStatus,
};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use url::Url;

use super::plan::{judge_existing, merged, Existing};
use super::{in_place, storage_error, CopyState, ExportError, COPY_DEADLINE};
use crate::naming::tags_header;
use crate::redact::redact;
use crate::storage::{error_code, list_one};

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
}

pub async fn copy(
    store: &BlobContainerClient,
    request: &CopyRequest<'_>,
) -> Result<CopyState, ExportError> {
    let target = store.blob_client(request.destination);
    match start(&target, request, None).await {
        Ok(status) => finish(&target, request, status)
            .await
            .map(|()| CopyState::Copied),
        Err(e) if destination_exists(&e) => {
            let Some(existing) = list_one(store, request.destination)
                .await
                .map_err(storage_error("read model store blob"))?
            else {
                // Deleted between the two calls: the retry copies it.
                return Err(storage_error("start copy")(e));
            };
            match judge_existing(
                &existing.metadata,
                existing.copy_status.as_ref(),
                request.source_etag,
            ) {
                Existing::Done => {
                    // Someone may have removed our tags since; put them back.
                    if let Some(all) = merged(&existing.tags, request.tags) {
                        in_place::set_tags(&target, all).await?;
                    }
                    Ok(CopyState::AlreadyPresent)
                }
                Existing::Pending => {
                    wait(&target, request).await?;
                    Ok(CopyState::Copied)
                }
                Existing::Stale => {
                    // A re-exported backup or a failed copy: replace exactly what was listed.
                    let etag = crate::export::plan::quoted_etag(&existing.etag);
                    let status = start(&target, request, Some(etag))
                        .await
                        .map_err(storage_error("start copy"))?;
                    finish(&target, request, status).await?;
                    Ok(CopyState::Copied)
                }
            }
        }
        Err(e) => Err(storage_error("start copy")(e)),
    }
}

/// The destination condition failed: there is a blob already (409 `BlobAlreadyExists`, or 412
/// from the destination precondition), not a source that changed (`SourceConditionNotMet`).
fn destination_exists(e: &azure_core::Error) -> bool {
    match e.http_status() {
        Some(StatusCode::Conflict) => true,
        Some(StatusCode::PreconditionFailed) => error_code(e) != Some("SourceConditionNotMet"),
        _ => false,
    }
}

/// Starts the copy; `replace` is the ETag of a destination to overwrite, `None` for "only if
/// there is none".
async fn start(
    target: &BlobClient,
    request: &CopyRequest<'_>,
    replace: Option<String>,
) -> azure_core::Result<Option<CopyStatus>> {
    let metadata: HashMap<String, String> = request
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (if_match, if_none_match) = match replace {
        Some(etag) => (Some(etag.into()), None),
        None => (None, Some("*".to_string().into())),
    };
    let options = BlobClientStartCopyFromUrlOptions {
        metadata: Some(metadata),
        blob_tags_string: Some(tags_header(request.tags)),
        source_if_match: Some(request.source_etag.to_string().into()),
        if_match,
        if_none_match,
        ..Default::default()
    };
    let response = target
        .start_copy_from_url(request.source_url.to_string(), Some(options))
        .await?;
    response.copy_status()
}

/// Done when the service says `success` (no poll); polled while `pending`.
async fn finish(
    target: &BlobClient,
    request: &CopyRequest<'_>,
    status: Option<CopyStatus>,
) -> Result<(), ExportError> {
    match status {
        None | Some(CopyStatus::Success) => Ok(()),
        Some(CopyStatus::Pending) => wait(target, request).await,
        Some(other) => Err(ExportError::CopyFailed {
            source_name: request.source_name.to_string(),
            destination: request.destination.to_string(),
            status: format!("{other:?}"),
            description: String::new(),
        }),
    }
}

/// Polls the copy status with a deadline. A copy that outlives the invocation stays pending in
/// storage; the retry finds it by the source ETag it records and waits again.
async fn wait(target: &BlobClient, request: &CopyRequest<'_>) -> Result<(), ExportError> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let props = target
            .get_properties(None)
            .await
            .map_err(storage_error("read copy status"))?;
        match props
            .copy_status()
            .map_err(storage_error("read copy status"))?
        {
            None | Some(CopyStatus::Success) => return Ok(()),
            Some(CopyStatus::Pending) => {}
            Some(status) => {
                return Err(ExportError::CopyFailed {
                    source_name: request.source_name.to_string(),
                    destination: request.destination.to_string(),
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
            return Err(ExportError::CopyPending {
                source_name: request.source_name.to_string(),
                destination: request.destination.to_string(),
                seconds: COPY_DEADLINE.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

//! A finished export: find its backup blob(s), copy each into the model store and/or tag it in
//! place. Every step checks before it writes, so a redelivered message changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientSetMetadataOptions,
    BlobClientStartCopyFromUrlOptions, BlobContainerClientListBlobsOptions, BlobTags, CopyStatus,
};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use futures::TryStreamExt;
use url::Url;

use crate::naming::{tags_header, BackupBlob, SOURCE_ETAG_KEY};
use crate::notification::{IterationId, ProjectId};
use crate::redact::redact;
use crate::settings::Settings;
use crate::storage::{StorageAccount, StorageError};

/// Every failure here is worth a retry (a blob that is not there yet, a storage hiccup, a copy
/// still running); the host's `maxDequeueCount` bounds the retries and then keeps the message
/// in `-poison`.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no backup blob '{prefix}<platform>' in container '{container}' yet")]
    BackupNotFound { container: String, prefix: String },
    #[error("{action} failed: {reason}")]
    Storage { action: String, reason: String },
    #[error(transparent)]
    Client(#[from] StorageError),
    #[error("copy of '{source_name}' to '{destination}' ended {status}: {description}")]
    CopyFailed {
        source_name: String,
        destination: String,
        status: String,
        description: String,
    },
    #[error("copy of '{source_name}' to '{destination}' still pending after {seconds} s")]
    CopyPending {
        source_name: String,
        destination: String,
        seconds: u64,
    },
}

/// What happened to one backup blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOutcome {
    pub source: String,
    pub copy: Option<(String, CopyState)>,
    pub tagged_in_place: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    Copied,
    AlreadyPresent,
}

impl std::fmt::Display for BackupOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backup '{}'", self.source)?;
        match &self.copy {
            Some((dest, CopyState::Copied)) => write!(f, " copied to '{dest}'")?,
            Some((dest, CopyState::AlreadyPresent)) => write!(f, " already in '{dest}'")?,
            None => {}
        }
        if self.tagged_in_place {
            write!(f, ", tagged in place")?;
        }
        Ok(())
    }
}

/// How long one invocation waits for a server-side copy before handing back to the host.
const COPY_DEADLINE: Duration = Duration::from_secs(120);

pub struct ExportProcessor<'a> {
    pub settings: &'a Settings,
    pub account: &'a StorageAccount,
}

impl ExportProcessor<'_> {
    pub async fn process(
        &self,
        project_id: ProjectId,
        iteration_id: IterationId,
        model_uri: Option<&Url>,
    ) -> Result<Vec<BackupOutcome>, ExportError> {
        let backups_container = self.account.container(&self.settings.backup_container)?;
        let backups = self
            .locate(&backups_container, project_id, iteration_id, model_uri)
            .await?;
        let mut outcomes = Vec::with_capacity(backups.len());
        for backup in backups {
            outcomes.push(self.process_one(&backups_container, &backup).await?);
        }
        Ok(outcomes)
    }

    /// `modelUri` when it names a backup of this iteration in the configured container;
    /// otherwise every blob named `{projectId} - {iterationId}.<platform or zip>`: the message
    /// does not say which platform was exported, so all of this iteration's backups are handled
    /// (those already done are skipped).
    async fn locate(
        &self,
        container: &BlobContainerClient,
        project_id: ProjectId,
        iteration_id: IterationId,
        model_uri: Option<&Url>,
    ) -> Result<Vec<BackupBlob>, ExportError> {
        let container_name = &self.settings.backup_container;
        let from_uri = model_uri
            .zip(self.account.blob_endpoint())
            .and_then(|(uri, endpoint)| {
                crate::naming::blob_name_in_container(uri, endpoint, container_name)
            })
            .and_then(|name| BackupBlob::classify(&name, project_id, iteration_id));
        if let Some(backup) = from_uri {
            return Ok(vec![backup]);
        }
        let prefix = BackupBlob::prefix(project_id, iteration_id);
        let mut found = Vec::new();
        // Names are case-sensitive in storage; ids are written lower-case, but try upper too.
        for candidate in [prefix.clone(), prefix.to_uppercase()] {
            let options = BlobContainerClientListBlobsOptions {
                prefix: Some(candidate),
                ..Default::default()
            };
            let mut pager = container
                .list_blobs(Some(options))
                .map_err(storage_error("list backups"))?;
            while let Some(item) = pager
                .try_next()
                .await
                .map_err(storage_error("list backups"))?
            {
                if let Some(backup) = item
                    .name
                    .as_deref()
                    .and_then(|n| BackupBlob::classify(n, project_id, iteration_id))
                {
                    found.push(backup);
                }
            }
            if !found.is_empty() {
                break;
            }
        }
        if found.is_empty() {
            return Err(ExportError::BackupNotFound {
                container: container_name.clone(),
                prefix,
            });
        }
        Ok(found)
    }

    async fn process_one(
        &self,
        backups_container: &BlobContainerClient,
        backup: &BackupBlob,
    ) -> Result<BackupOutcome, ExportError> {
        let source = backups_container.blob_client(&backup.name);
        let container_name = &self.settings.backup_container;
        let tags = backup.tags(container_name);
        let mut outcome = BackupOutcome {
            source: format!("{container_name}/{}", backup.name),
            copy: None,
            tagged_in_place: false,
        };
        let mut source_etag = self.backup_etag(&source, backup).await?;
        // In place first: a metadata write changes the backup's ETag, and the copy below
        // records the ETag it copied.
        if self.settings.export_action.tags_in_place() {
            let metadata = backup.metadata(container_name, None);
            ensure_tags(&source, &tags).await?;
            if ensure_metadata(&source, &metadata, &source_etag).await? {
                source_etag = self.backup_etag(&source, backup).await?;
            }
            outcome.tagged_in_place = true;
        }
        if self.settings.export_action.copies() {
            let destination = self.settings.model_path_template.render(backup);
            let state = self.copy(backup, &source_etag, &destination, &tags).await?;
            outcome.copy = Some((
                format!("{}/{destination}", self.settings.model_store_container),
                state,
            ));
        }
        Ok(outcome)
    }

    /// The backup's current ETag; a backup gone since it was listed is "not there yet".
    async fn backup_etag(
        &self,
        source: &BlobClient,
        backup: &BackupBlob,
    ) -> Result<String, ExportError> {
        let props = source.get_properties(None).await.map_err(|e| {
            if e.http_status() == Some(StatusCode::NotFound) {
                ExportError::BackupNotFound {
                    container: self.settings.backup_container.clone(),
                    prefix: backup.name.clone(),
                }
            } else {
                storage_error("read backup properties")(e)
            }
        })?;
        Ok(props
            .etag()
            .map_err(storage_error("read backup ETag"))?
            .map(|e| e.to_string())
            .unwrap_or_default())
    }

    async fn copy(
        &self,
        backup: &BackupBlob,
        source_etag: &str,
        destination: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<CopyState, ExportError> {
        let store = self
            .account
            .container(&self.settings.model_store_container)?;
        let target = store.blob_client(destination);

        match target.get_properties(None).await {
            Ok(props) => {
                let metadata = props
                    .metadata()
                    .map_err(storage_error("read copy metadata"))?;
                let status = props
                    .copy_status()
                    .map_err(storage_error("read copy status"))?;
                let same_source =
                    metadata.get(SOURCE_ETAG_KEY).map(String::as_str) == Some(source_etag);
                match status {
                    Some(CopyStatus::Pending) if same_source => {
                        self.wait_for_copy(&target, backup, destination).await?;
                        ensure_tags(&target, tags).await?;
                        return Ok(CopyState::Copied);
                    }
                    None | Some(CopyStatus::Success) if same_source => {
                        ensure_tags(&target, tags).await?;
                        return Ok(CopyState::AlreadyPresent);
                    }
                    // A different (re-exported) backup, or a failed copy: copy again.
                    _ => {}
                }
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {}
            Err(e) => return Err(storage_error("read model store blob")(e)),
        }

        let metadata: HashMap<String, String> = backup
            .metadata(&self.settings.backup_container, Some(source_etag))
            .into_iter()
            .collect();
        let options = BlobClientStartCopyFromUrlOptions {
            metadata: Some(metadata),
            blob_tags_string: Some(tags_header(tags)),
            // Copy exactly the version whose ETag the metadata records.
            source_if_match: Some(source_etag.into()),
            ..Default::default()
        };
        let copy_source = self
            .account
            .blob_url(&self.settings.backup_container, &backup.name)?;
        target
            .start_copy_from_url(copy_source.to_string(), Some(options))
            .await
            .map_err(storage_error("start copy"))?;
        self.wait_for_copy(&target, backup, destination).await?;
        Ok(CopyState::Copied)
    }

    /// Polls the copy status with a deadline; Azure copies within an account are usually done
    /// by the first poll.
    async fn wait_for_copy(
        &self,
        target: &BlobClient,
        backup: &BackupBlob,
        destination: &str,
    ) -> Result<(), ExportError> {
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
                        source_name: backup.name.clone(),
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
                return Err(ExportError::CopyPending {
                    source_name: backup.name.clone(),
                    destination: destination.to_string(),
                    seconds: COPY_DEADLINE.as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// Adds our tags to the blob's existing ones; writes only when something differs (blob index
/// tags replace the whole set, and other tools may have tags of their own there).
async fn ensure_tags(
    blob: &BlobClient,
    ours: &BTreeMap<String, String>,
) -> Result<(), ExportError> {
    let current = crate::storage::blob_tags(blob)
        .await
        .map_err(storage_error("read tags"))?;
    if ours.iter().all(|(k, v)| current.get(k) == Some(v)) {
        return Ok(());
    }
    let mut merged = current;
    merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
    let body: RequestContent<BlobTags, _> = BlobTags::from(merged)
        .try_into()
        .map_err(storage_error("encode tags"))?;
    blob.set_tags(body, None)
        .await
        .map_err(storage_error("set tags"))?;
    Ok(())
}

/// Adds our metadata, keeping the blob's own; writes only when something differs, and only if
/// the blob still has `etag`. Returns whether it wrote (the ETag then changed).
async fn ensure_metadata(
    blob: &BlobClient,
    ours: &BTreeMap<String, String>,
    etag: &str,
) -> Result<bool, ExportError> {
    let props = blob
        .get_properties(None)
        .await
        .map_err(storage_error("read metadata"))?;
    let mut current = props.metadata().map_err(storage_error("read metadata"))?;
    if ours.iter().all(|(k, v)| current.get(k) == Some(v)) {
        return Ok(false);
    }
    current.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
    let options = BlobClientSetMetadataOptions {
        if_match: Some(etag.into()),
        ..Default::default()
    };
    blob.set_metadata(&current, Some(options))
        .await
        .map_err(storage_error("set metadata"))?;
    Ok(true)
}

fn storage_error(action: &'static str) -> impl Fn(azure_core::Error) -> ExportError {
    move |e| ExportError::Storage {
        action: action.to_string(),
        reason: redact(&e.to_string()),
    }
}

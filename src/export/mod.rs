//! A finished export: find its backup blob(s), tag each in place and/or copy it into the model
//! store. Every step writes only where something differs, so a redelivered message changes
//! nothing; and each step uses the fewest requests correctness allows:
//!
//! | step | requests |
//! |---|---|
//! | [locate]: one listing with `include=tags,metadata,copy` | 1 |
//! | [in_place]: tags, then metadata (`If-Match` the listed ETag), each only if it differs | 0–2 |
//! | [copy]: `If-None-Match: *` on the destination, `x-ms-source-if-match` on the source ETag, tags and metadata in the same call; no poll when the answer says `success` | 1 |
//! | a redelivery: the copy answers "exists", one listing of the destination confirms it | +1 |
//!
//! First delivery: 4 requests for `both`, 2 for `copy`; a redelivery with everything done: 3.

pub mod copy;
pub mod in_place;
pub mod locate;
pub mod plan;

use std::time::Duration;

use url::Url;

use crate::naming::BackupBlob;
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
    #[error("copy of '{source_name}' to '{destination}' still pending after {seconds} s; the retry picks it up")]
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
pub const COPY_DEADLINE: Duration = Duration::from_secs(120);

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
        let container_name = &self.settings.backup_container;
        let container = self.account.container(container_name)?;
        let hinted = model_uri
            .zip(self.account.blob_endpoint())
            .and_then(|(uri, endpoint)| {
                crate::naming::blob_name_in_container(uri, endpoint, container_name)
            })
            .and_then(|name| BackupBlob::classify(&name, project_id, iteration_id));
        let backups =
            locate::backups(&container, container_name, project_id, iteration_id, hinted).await?;
        let mut outcomes = Vec::with_capacity(backups.len());
        for (backup, listed) in backups {
            outcomes.push(self.process_one(&container, &backup, &listed).await?);
        }
        Ok(outcomes)
    }

    async fn process_one(
        &self,
        container: &azure_storage_blob::BlobContainerClient,
        backup: &BackupBlob,
        listed: &crate::storage::Listed,
    ) -> Result<BackupOutcome, ExportError> {
        let container_name = &self.settings.backup_container;
        let tags = backup.tags(container_name);
        let mut outcome = BackupOutcome {
            source: format!("{container_name}/{}", backup.name),
            copy: None,
            tagged_in_place: false,
        };
        let mut source_etag = plan::quoted_etag(&listed.etag);
        // In place first: a metadata write changes the backup's ETag, and the copy below
        // records the ETag it copied.
        if self.settings.export_action.tags_in_place() {
            let source = container.blob_client(&backup.name);
            let metadata = backup.metadata(container_name, None);
            source_etag = in_place::ensure(&source, listed, &tags, &metadata).await?;
            outcome.tagged_in_place = true;
        }
        if self.settings.export_action.copies() {
            let destination = self.settings.model_path_template.render(backup);
            let store = self
                .account
                .container(&self.settings.model_store_container)?;
            let request = copy::CopyRequest {
                source_url: self.account.blob_url(container_name, &backup.name)?,
                source_name: &outcome.source,
                source_etag: &source_etag,
                destination: &destination,
                tags: &tags,
                metadata: &backup.metadata(container_name, Some(&source_etag)),
            };
            let state = copy::copy(&store, &request).await?;
            outcome.copy = Some((
                format!("{}/{destination}", self.settings.model_store_container),
                state,
            ));
        }
        Ok(outcome)
    }
}

fn storage_error(action: &'static str) -> impl Fn(azure_core::Error) -> ExportError {
    move |e| ExportError::Storage {
        action: action.to_string(),
        reason: redact(&e.to_string()),
    }
}

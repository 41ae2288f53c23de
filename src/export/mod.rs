//! A finished export: find its backup blob(s), tag each in place and/or copy it into the model
//! store. Every step writes only where something differs, so a redelivered message changes
//! nothing; and each step uses the fewest requests correctness allows:
//!
//! | step | requests |
//! |---|---|
//! | [locate]: one listing with `include=tags,metadata,copy` | 1 |
//! | [in_place]: tags, then metadata (`If-Match` the listed ETag), each only if it differs | 0–2 |
//! | [`storage::copy`](crate::storage::copy): `If-None-Match: *` on the destination, `x-ms-source-if-match` on the source ETag, tags and metadata in the same call; no poll when the answer says `success` | 1 |
//! | a redelivery: the copy answers "exists", one listing of the destination confirms it | +1 |
//!
//! First delivery: 4 requests for `both`, 2 for `copy`; a redelivery with everything done: 3.
//!
//! The backup container is the trusted source. A SAS `modelUri` is read only when the
//! iteration has no backup there, and copied as far as someone vouches for it ([`sas`]).

pub mod hint;
pub mod in_place;
pub(crate) mod locate;
pub(crate) mod sas;

use std::collections::HashMap;

use time::OffsetDateTime;
use url::Url;

use crate::domain::{IterationId, ProjectId};
use crate::model_store::{index, latest, ModelStoreError, OrderBy, OrderKey, StoredModel};
use crate::naming::stored::{KIND_BACKUP, KIND_MODEL};
use crate::naming::{ExportedModel, Origin, Platform};
use crate::settings::Settings;
use crate::storage::copy::{self, CopyError, CopyState};
use crate::storage::decide::quoted_etag;
use crate::storage::{StorageAccount, StorageActionError, StorageError};
use crate::training::{TrainingClient, TrainingError};
use hint::Hint;

/// Failures of an export. All but [`ExportError::Rejected`] are worth a retry (a blob that is
/// not there yet, a storage hiccup, a copy still running); the host's `maxDequeueCount` bounds
/// the retries and then keeps the message in `-poison`. [`ExportError::retry_later`] says which.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Permanent: the same message can never succeed. Answered 200 with a rejected record.
    #[error("{reason}")]
    Rejected { reason: String },
    #[error("no backup blob '{prefix}<platform>' in container '{container}' yet")]
    BackupNotFound { container: String, prefix: String },
    #[error(transparent)]
    Storage(#[from] StorageActionError),
    /// Tagging in place answered without the new ETag the copy must record.
    #[error("set metadata failed: the answer has no ETag")]
    NoEtag,
    #[error("set metadata failed: '{name}' was deleted while being tagged")]
    DeletedWhileTagged { name: String },
    #[error("set metadata failed: lost {attempts} conditional writes in a row on '{name}'")]
    Contended { name: String, attempts: usize },
    #[error(transparent)]
    Client(#[from] StorageError),
    /// The Training API failed in a way a retry may fix (it orders `latest` and vouches for a
    /// SAS source, so the export waits for it).
    #[error(transparent)]
    Training(#[from] TrainingError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    ModelStore(#[from] ModelStoreError),
}

impl ExportError {
    /// Whether the host should retry the message (a non-2xx answer), rather than keep it as
    /// a rejected record.
    pub fn retry_later(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }
}

/// What happened to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOutcome {
    pub source: String,
    pub copy: Option<(String, CopyState)>,
    pub tagged_in_place: bool,
    pub latest: Option<latest::Latest>,
    pub indexed: Option<index::Recorded>,
}

impl std::fmt::Display for ModelOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model '{}'", self.source)?;
        match &self.copy {
            Some((dest, CopyState::Copied)) => write!(f, " copied to '{dest}'")?,
            Some((dest, CopyState::AlreadyPresent)) => write!(f, " already in '{dest}'")?,
            Some((dest, CopyState::Kept)) => {
                write!(f, " not copied: '{dest}' holds another source's copy")?
            }
            None => {}
        }
        if self.tagged_in_place {
            write!(f, ", tagged in place")?;
        }
        if let Some(latest) = &self.latest {
            write!(f, "; latest: {latest}")?;
        }
        match self.indexed {
            Some(index::Recorded::Written) => write!(f, "; index updated")?,
            Some(index::Recorded::AlreadyThere) => write!(f, "; index already lists it")?,
            None => {}
        }
        Ok(())
    }
}

/// The log lines of one export, in order: warnings first, then one line per model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub lines: Vec<String>,
}

/// A model's source as storage describes it.
struct SourceState {
    /// Readable by the service: a SAS URL as given, or our own blob's URL.
    url: Url,
    /// Quoted.
    etag: String,
    tags: HashMap<String, String>,
    metadata: HashMap<String, String>,
    created: Option<OffsetDateTime>,
    size: Option<u64>,
    content_md5: Option<Vec<u8>>,
}

pub struct ExportProcessor<'a> {
    pub settings: &'a Settings,
    pub account: &'a StorageAccount,
    /// The Training API, when configured: the iteration's `trainedAt` orders `latest`, and
    /// GetExports vouches for a SAS source and names its platform ([`sas::vouch`]).
    pub training: Option<&'a TrainingClient>,
}

impl ExportProcessor<'_> {
    pub async fn process(
        &self,
        project_id: ProjectId,
        iteration_id: IterationId,
        model_uri: Option<&str>,
    ) -> Result<ExportReport, ExportError> {
        let settings = self.settings;
        let container_name = &settings.backup_container;
        let container = self.account.container(container_name)?;
        let endpoint = self
            .account
            .blob_endpoint()
            .ok_or(StorageError::NoEndpoint("blob"))?;
        let mut report = ExportReport::default();
        let trained_at = match self.training {
            Some(client) => match client.get_iteration(project_id, iteration_id).await {
                Ok(iteration) => iteration.trained_at,
                // A creation time never outranks a trainedAt (model_store::OrderKey), so falling
                // back on a passing failure would order this model wrongly for good: wait.
                Err(e) if e.retry_later() => return Err(e.into()),
                // The service will never say (the iteration is gone): the copy is still the job.
                Err(e) => {
                    report.lines.push(format!(
                        "warning: GetIteration refused ({e}); latest is ordered by creation time"
                    ));
                    None
                }
            },
            None => None,
        };
        let hint = hint::classify(
            model_uri,
            endpoint,
            container_name,
            &settings.model_uri_hosts,
        );
        // A backup-container URL that names no backup of this iteration is a refused hint too.
        let hint = match hint {
            Hint::Backup(name) => {
                match ExportedModel::from_backup_name(&name, container_name, project_id, iteration_id) {
                    Some(_) => Hint::Backup(name),
                    None => Hint::Refused(format!(
                        "the modelUri names '{name}' in '{container_name}', which is not a backup of this iteration"
                    )),
                }
            }
            other => other,
        };
        let models = match hint {
            Hint::Sas(url) => {
                // The backup container is the trusted source: with a backup there, the SAS
                // hint is not even requested.
                match self
                    .backups(&container, project_id, iteration_id, None)
                    .await
                {
                    Ok(found) => {
                        report.lines.push(format!(
                            "warning: the SAS modelUri {} is ignored: '{container_name}' holds this iteration's backup, the trusted source",
                            sas::plain(&url)
                        ));
                        trusted(found)
                    }
                    Err(ExportError::BackupNotFound { .. }) => {
                        vec![
                            self.sas_model(&url, project_id, iteration_id, &mut report)
                                .await?,
                        ]
                    }
                    Err(e) => return Err(e),
                }
            }
            Hint::Backup(name) => {
                let hinted = ExportedModel::from_backup_name(
                    &name,
                    container_name,
                    project_id,
                    iteration_id,
                );
                trusted(
                    self.backups(&container, project_id, iteration_id, hinted)
                        .await?,
                )
            }
            Hint::None => trusted(
                self.backups(&container, project_id, iteration_id, None)
                    .await?,
            ),
            Hint::Refused(reason) => {
                match self.backups(&container, project_id, iteration_id, None).await {
                    Ok(found) => {
                        report.lines.push(format!(
                            "warning: {reason}; the hint is ignored and the backup in '{container_name}' processed"
                        ));
                        trusted(found)
                    }
                    Err(ExportError::BackupNotFound { .. }) => {
                        return Err(ExportError::Rejected {
                            reason: format!(
                                "{reason}, and no backup of this iteration is in '{container_name}'; the modelUri was never requested"
                            ),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        for (model, state, replaces_other) in models {
            let outcome = self
                .process_one(&model, state, trained_at, replaces_other)
                .await?;
            if let Some((destination, CopyState::Kept)) = &outcome.copy {
                // Only an unvouched SAS source gets here: it replaces nothing.
                return Err(ExportError::Rejected {
                    reason: format!(
                        "'{destination}' already holds a copy from another source, and the SAS modelUri {} is only ever a first copy \
                         (no backup of this iteration, and no Training API to vouch for it): the copy stays. \
                         Configure CUSTOM_VISION_ENDPOINT so GetExports can vouch for a re-export, or delete the copy to take this one",
                        outcome.source
                    ),
                });
            }
            report.lines.push(outcome.to_string());
        }
        Ok(report)
    }

    /// A SAS source, when the iteration has no backup: vouched for by GetExports (which also
    /// names its platform) or by nobody, then read once.
    async fn sas_model(
        &self,
        url: &Url,
        project_id: ProjectId,
        iteration_id: IterationId,
        report: &mut ExportReport,
    ) -> Result<(ExportedModel, SourceState, bool), ExportError> {
        if !self.settings.export_action.copies() {
            report.lines.push(
                "a SAS source cannot be tagged in place (a read SAS, not our blob): copied instead"
                    .into(),
            );
        }
        let mut model = ExportedModel::from_sas(url, project_id, iteration_id);
        let provenance = sas::vouch(self.training, url, &model, project_id, iteration_id).await?;
        match provenance {
            // The service's word beats a file name.
            sas::Provenance::Listed(platform) => model.platform = Platform::Known(platform),
            sas::Provenance::Unvouched => report.lines.push(format!(
                "warning: the SAS modelUri {} has no backup and no Training API to vouch for it: copied only where nothing is yet (docs/model-store-trust.md)",
                model.source()
            )),
        }
        if model.platform.is_unknown() {
            report.lines.push(format!(
                "warning: neither the SAS source's file name nor the Training API names its platform; recorded as '{}' ({}), with no latest alias",
                model.platform.label(),
                model.source()
            ));
        }
        let state = sas::read(self.account, url, &model).await?;
        Ok((model, state, provenance.replaces_other()))
    }

    async fn backups(
        &self,
        container: &azure_storage_blob::BlobContainerClient,
        project_id: ProjectId,
        iteration_id: IterationId,
        hinted: Option<ExportedModel>,
    ) -> Result<Vec<(ExportedModel, SourceState)>, ExportError> {
        let container_name = &self.settings.backup_container;
        let found =
            locate::backups(container, container_name, project_id, iteration_id, hinted).await?;
        found
            .into_iter()
            .map(|(model, listed)| {
                let url = self.account.blob_url(container_name, &model.name)?;
                Ok((
                    model,
                    SourceState {
                        url,
                        etag: quoted_etag(&listed.etag),
                        tags: listed.tags,
                        metadata: listed.metadata,
                        created: listed.created,
                        size: listed.content_length,
                        content_md5: listed.content_md5,
                    },
                ))
            })
            .collect()
    }

    async fn process_one(
        &self,
        model: &ExportedModel,
        source: SourceState,
        trained_at: Option<OffsetDateTime>,
        replaces_other: bool,
    ) -> Result<ModelOutcome, ExportError> {
        let settings = self.settings;
        let mut outcome = ModelOutcome {
            source: model.source(),
            copy: None,
            tagged_in_place: false,
            latest: None,
            indexed: None,
        };
        let mut source_etag = source.etag.clone();
        let is_backup = matches!(model.origin, Origin::Backup { .. });
        // In place first: a metadata write changes the backup's ETag, and the copy below
        // records the ETag it copied.
        if is_backup && settings.export_action.tags_in_place() {
            let container = self.account.container(&settings.backup_container)?;
            let seen = in_place::Seen {
                etag: source.etag.clone(),
                tags: source.tags.clone(),
                metadata: source.metadata.clone(),
            };
            source_etag = in_place::ensure(
                &container,
                &model.name,
                seen,
                &model.tags(KIND_BACKUP),
                &model.metadata(None),
            )
            .await?;
            outcome.tagged_in_place = true;
        }
        // A SAS source is copied whatever EXPORT_ACTION says: it cannot be tagged in place.
        if !settings.export_action.copies() && is_backup {
            return Ok(outcome);
        }
        let order = OrderKey {
            at: trained_at
                .or(source.created)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            by: if trained_at.is_some() {
                OrderBy::TrainedAt
            } else {
                OrderBy::Created
            },
            iteration_id: model.iteration_id,
        };
        let destination = settings.model_path_template.render(model);
        let store_name = &settings.model_store_container;
        let store = self.account.container(store_name)?;
        let mut metadata = model.metadata(Some(&source_etag));
        metadata.extend(order.metadata());
        let request = copy::CopyRequest {
            source_url: source.url.clone(),
            source_name: &outcome.source,
            source_etag: &source_etag,
            destination: &destination,
            tags: &model.tags(KIND_MODEL),
            metadata: &metadata,
            replaces_other,
        };
        let state = copy::copy(&store, &request).await?;
        outcome.copy = Some((format!("{store_name}/{destination}"), state));
        if state == CopyState::Kept {
            return Ok(outcome);
        }
        let stored = StoredModel {
            project_id: model.project_id,
            iteration_id: model.iteration_id,
            platform: model.platform.label(),
            extension: model.extension.clone(),
            path: destination.clone(),
            size: source.size,
            content_md5: source.content_md5,
            order,
            source: model.source(),
            source_etag: source_etag.clone(),
        };
        // A platform nobody could name has no "latest" to speak of: each such export is its
        // own label.
        if settings.latest_alias && !model.platform.is_unknown() {
            outcome.latest = Some(
                latest::advance(self.account, store_name, &store, &stored, replaces_other).await?,
            );
        }
        if settings.model_index {
            outcome.indexed = Some(index::record(&store, &stored, settings.latest_alias).await?);
        }
        Ok(outcome)
    }
}

/// Backups are the trusted source: they may replace a copy of another source (a re-export).
fn trusted(found: Vec<(ExportedModel, SourceState)>) -> Vec<(ExportedModel, SourceState, bool)> {
    found.into_iter().map(|(m, s)| (m, s, true)).collect()
}

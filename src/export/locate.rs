//! Finding an export's backup blob(s) with one listing that also brings their ETags, tags and
//! metadata.

use azure_storage_blob::BlobContainerClient;

use super::ExportError;
use crate::domain::{IterationId, ProjectId};
use crate::naming::ExportedModel;
use crate::storage::{list_blobs, Listed, StorageActionError};

/// The `hinted` backup (from `modelUri`) when it is there; otherwise every blob named
/// `{projectId} - {iterationId}.<platform or zip>`: the message does not say which platform
/// was exported, so all of this iteration's backups are handled (those already done change
/// nothing).
pub async fn backups(
    container: &BlobContainerClient,
    container_name: &str,
    project_id: ProjectId,
    iteration_id: IterationId,
    hinted: Option<ExportedModel>,
) -> Result<Vec<(ExportedModel, Listed)>, ExportError> {
    if let Some(backup) = hinted {
        let listed = list_blobs(container, &backup.name)
            .await
            .map_err(StorageActionError::of("list backups"))?;
        if let Some(found) = listed.into_iter().find(|b| b.name == backup.name) {
            return Ok(vec![(backup, found)]);
        }
        return Err(ExportError::BackupNotFound {
            container: container_name.to_string(),
            prefix: backup.name,
        });
    }
    let prefix = ExportedModel::prefix(project_id, iteration_id);
    // Names are case-sensitive in storage; ids are written lower-case, but try upper too.
    for candidate in [prefix.clone(), prefix.to_uppercase()] {
        let found: Vec<_> = list_blobs(container, &candidate)
            .await
            .map_err(StorageActionError::of("list backups"))?
            .into_iter()
            .filter_map(|listed| {
                ExportedModel::from_backup_name(
                    &listed.name,
                    container_name,
                    project_id,
                    iteration_id,
                )
                .map(|b| (b, listed))
            })
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Err(ExportError::BackupNotFound {
        container: container_name.to_string(),
        prefix,
    })
}

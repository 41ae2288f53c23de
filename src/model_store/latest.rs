//! The `latest` alias: `{projectId}/latest/{platform}/model.{ext}`, a server-side copy of the
//! newest iteration's model, with tags and metadata naming that iteration.
//!
//! Moved only forwards, and only by conditional writes on the alias's ETag (`If-Match`, or
//! `If-None-Match: *` while there is none): a writer that loses a race reads the alias again
//! and decides again, so two handlers racing, or a late message, can never put an older
//! iteration back.

use azure_storage_blob::BlobContainerClient;

use super::{ModelStoreError, OrderKey, StoredModel};
use crate::naming::stored::{latest_path, model_metadata, model_tags, KIND_LATEST};
use crate::storage::copy::{begin, destination_exists, poll, settle, Destination};
use crate::storage::decide::{judge_existing, quoted_etag, Existing};
use crate::storage::{list_one, StorageAccount, StorageActionError};

/// Conditional writes lost in a row before giving up (the host retries the message).
const ATTEMPTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Latest {
    /// The alias now points at this model.
    Moved { path: String },
    /// It already did.
    Current { path: String },
    /// It points at a newer iteration.
    Newer { path: String, iteration: String },
    /// It points at this iteration, with bytes of another source, which this model may not
    /// replace ([`StoredModel`] of a source nobody vouches for).
    Held { path: String },
}

impl std::fmt::Display for Latest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Moved { path } => write!(f, "'{path}' now points at this iteration"),
            Self::Current { path } => write!(f, "'{path}' already points at this iteration"),
            Self::Newer { path, iteration } => {
                write!(f, "'{path}' stays on the newer iteration {iteration}")
            }
            Self::Held { path } => write!(
                f,
                "'{path}' keeps this iteration's earlier bytes: an unvouched SAS source replaces nothing"
            ),
        }
    }
}

/// Whether `candidate` should replace what the alias points at now.
pub fn moves(current: Option<&OrderKey>, candidate: &OrderKey) -> bool {
    current.is_none_or(|c| candidate > c)
}

/// Points the alias of `model`'s project and platform at it, if it is the newest. When the
/// alias already names this iteration with other bytes, `replaces_other` says whether this
/// model may replace them (a re-export) or they stay ([`Latest::Held`]).
pub async fn advance(
    account: &StorageAccount,
    store_name: &str,
    store: &BlobContainerClient,
    model: &StoredModel,
    replaces_other: bool,
) -> Result<Latest, ModelStoreError> {
    let path = latest_path(model.project_id, &model.platform, &model.extension);
    let target = store.blob_client(&path);
    let source_url = account.blob_url(store_name, &model.path)?;
    // The alias names the iteration and the source bytes it points at, and where it stands.
    let mut metadata = model_metadata(
        model.project_id,
        model.iteration_id,
        &model.platform,
        &format!("{store_name}/{}", model.path),
        Some(&model.source_etag),
    );
    metadata.extend(model.order.metadata());
    let tags = model_tags(
        model.project_id,
        model.iteration_id,
        &model.platform,
        KIND_LATEST,
    );
    for _ in 0..ATTEMPTS {
        let current = list_one(store, &path)
            .await
            .map_err(StorageActionError::of("read latest"))?;
        let current_key = current
            .as_ref()
            .and_then(|c| OrderKey::from_metadata(&c.metadata));
        let same_iteration = current_key.is_some_and(|k| k.iteration_id == model.iteration_id);
        if let (true, Some(c)) = (same_iteration, &current) {
            // This iteration, but is it these bytes (a re-export replaces the copy), and did
            // the alias's own copy finish?
            match judge_existing(&c.metadata, c.copy_status.as_ref(), &model.source_etag) {
                Existing::Done => return Ok(Latest::Current { path }),
                Existing::Pending => {
                    poll(&target, &model.path, &path).await?;
                    return Ok(Latest::Current { path });
                }
                Existing::Other if !replaces_other => return Ok(Latest::Held { path }),
                Existing::Broken | Existing::Other => {}
            }
        } else if !moves(current_key.as_ref(), &model.order) {
            return Ok(Latest::Newer {
                path,
                iteration: current_key
                    .map(|k| k.iteration_id.to_string())
                    .unwrap_or_default(),
            });
        }
        let destination = match &current {
            Some(c) => Destination::Replaces(quoted_etag(&c.etag)),
            None => Destination::Absent,
        };
        match begin(&target, &source_url, &metadata, &tags, None, destination).await {
            Ok(status) => {
                settle(&target, &model.path, &path, status).await?;
                return Ok(Latest::Moved { path });
            }
            // Someone moved it in between: look again.
            Err(e) if destination_exists(&e) => continue,
            Err(e) => return Err(StorageActionError::of("move latest")(e).into()),
        }
    }
    Err(ModelStoreError::Contended {
        action: "move latest",
        path,
        attempts: ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IterationId;
    use crate::model_store::OrderBy;
    use time::macros::datetime;

    #[test]
    fn only_a_newer_model_moves_the_alias() {
        let at = datetime!(2026-01-01 10:00 UTC);
        let older = OrderKey {
            at,
            by: OrderBy::Created,
            iteration_id: IterationId::parse("00000000-0000-4000-8000-00000000000a").unwrap(),
        };
        let newer = OrderKey {
            at: at + time::Duration::MINUTE,
            ..older
        };
        assert!(moves(None, &older));
        assert!(moves(Some(&older), &newer));
        assert!(!moves(Some(&newer), &older));
        assert!(!moves(Some(&older), &older));
    }
}

//! `{projectId}/index.json`: a model-registry manifest a device polls with one GET and an
//! ETag. It lists every iteration and platform in the store, with path, size, content MD5 and
//! time, and the `latest` per platform.
//!
//! Updated with optimistic concurrency (read with its ETag, write with `If-Match`, or
//! `If-None-Match: *` while there is none; on a lost race, read again), so exports finishing
//! together never lose an entry. The tagged copies are the truth: [`rebuild`] derives the
//! index from them again (Find Blobs by Tags).

use std::collections::BTreeMap;
use std::time::Duration;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::BlobClientUploadOptions;
use azure_storage_blob::BlobContainerClient;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{
    find_models, platform_label, ModelFilter, ModelStoreError, OrderBy, OrderKey, StoredModel,
};
use crate::domain::{IterationId, ProjectId};
use crate::naming::stored::{index_path, latest_path};
use crate::naming::UNKNOWN_LABEL_PREFIX;
use crate::storage::decide::quoted_etag;
use crate::storage::StorageActionError;

/// Lost races before giving up; the host's retry tries again later.
const ATTEMPTS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelIndex {
    pub project_id: String,
    pub updated_at: String,
    /// Newest first.
    pub models: Vec<IndexEntry>,
    /// Per platform.
    pub latest: BTreeMap<String, LatestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub iteration_id: String,
    pub platform: String,
    /// In the model store container.
    pub path: String,
    /// The model's file extension (`onnx`, `zip`), which the `latest` alias keeps; absent in
    /// indexes written before it was recorded.
    #[serde(default)]
    pub extension: String,
    pub size: Option<u64>,
    /// Base64, as storage reports it.
    pub content_md5: Option<String>,
    /// The order time: when the model came to be.
    pub time: String,
    /// `created` (the source blob's creation) or `trainedAt`.
    pub ordered_by: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestEntry {
    pub iteration_id: String,
    /// The iteration's own copy.
    pub path: String,
    /// The stable alias (`{projectId}/latest/{platform}/model.{ext}`), when `LATEST_ALIAS` is on.
    pub alias: Option<String>,
}

impl IndexEntry {
    pub fn of(model: &StoredModel) -> Self {
        Self {
            iteration_id: model.iteration_id.to_string(),
            platform: model.platform.clone(),
            path: model.path.clone(),
            extension: model.extension.clone(),
            size: model.size,
            content_md5: model
                .content_md5
                .as_ref()
                .map(|m| base64::engine::general_purpose::STANDARD.encode(m)),
            time: model.order.at_text(),
            ordered_by: model.order.by.as_str().to_string(),
            source: model.source.clone(),
        }
    }

    fn order(&self) -> Option<OrderKey> {
        Some(OrderKey {
            at: OffsetDateTime::parse(&self.time, &Rfc3339).ok()?,
            by: OrderBy::parse(&self.ordered_by)?,
            iteration_id: IterationId::parse(&self.iteration_id).ok()?,
        })
    }
}

impl ModelIndex {
    pub fn empty(project_id: ProjectId) -> Self {
        Self {
            project_id: project_id.to_string(),
            updated_at: String::new(),
            models: Vec::new(),
            latest: BTreeMap::new(),
        }
    }

    /// Adds or replaces the entry of `entry`'s iteration and platform; re-derives the order
    /// and `latest`. Returns whether anything changed.
    pub fn upsert(&mut self, entry: IndexEntry, aliases: bool) -> bool {
        let before = (self.models.clone(), self.latest.clone());
        self.models
            .retain(|e| !(e.iteration_id == entry.iteration_id && e.platform == entry.platform));
        self.models.push(entry);
        self.derive(aliases);
        (self.models.clone(), self.latest.clone()) != before
    }

    /// Newest first; `latest` is the newest per platform, in the alias's own order. A platform
    /// nobody could name (`unknown-…`) has none, as it has no alias.
    fn derive(&mut self, aliases: bool) {
        self.models.sort_by(|a, b| {
            b.order()
                .cmp(&a.order())
                .then_with(|| a.platform.cmp(&b.platform))
        });
        self.latest.clear();
        let project_id = ProjectId::parse(&self.project_id).ok();
        for e in &self.models {
            if self.latest.contains_key(&e.platform) || e.platform.starts_with(UNKNOWN_LABEL_PREFIX)
            {
                continue;
            }
            let extension = if e.extension.is_empty() {
                e.path.rsplit_once('.').map(|(_, x)| x).unwrap_or("zip")
            } else {
                &e.extension
            };
            self.latest.insert(
                e.platform.clone(),
                LatestEntry {
                    iteration_id: e.iteration_id.clone(),
                    path: e.path.clone(),
                    alias: aliases
                        .then_some(project_id)
                        .flatten()
                        .map(|p| latest_path(p, &e.platform, extension)),
                },
            );
        }
    }
}

/// Which model of a platform a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The newest, as `latest` names it.
    Latest,
    Iteration(IterationId),
}

impl ModelIndex {
    /// The entry `pick` names for `platform` (a platform in any case, or a label such as
    /// `zip`), read from the index alone.
    pub fn pick(&self, platform: &str, pick: Pick) -> Option<&IndexEntry> {
        let label = platform_label(platform);
        let iteration = match pick {
            Pick::Latest => self.latest.get(&label)?.iteration_id.clone(),
            Pick::Iteration(i) => i.to_string(),
        };
        self.models
            .iter()
            .find(|e| e.platform == label && e.iteration_id == iteration)
    }
}

/// The project's index as stored, and its ETag: one GET. `None` while there is none.
pub async fn load_index(
    store: &BlobContainerClient,
    project_id: ProjectId,
) -> Result<Option<(ModelIndex, Option<String>)>, ModelStoreError> {
    let path = index_path(project_id);
    match read(store, &path, project_id).await? {
        (_, None) => Ok(None),
        (Some(index), etag) => Ok(Some((index, etag))),
        (None, _) => Err(ModelStoreError::Unreadable {
            path,
            reason: "it does not parse as one".into(),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Written,
    AlreadyThere,
}

/// Records `model` in its project's index. An index that no longer parses (someone edited
/// it) is rebuilt from the tagged copies in the same write, never emptied.
pub async fn record(
    store: &BlobContainerClient,
    model: &StoredModel,
    aliases: bool,
) -> Result<Recorded, ModelStoreError> {
    let entry = &IndexEntry::of(model);
    write_retrying(store, model.project_id, |current| async move {
        let (mut index, rebuilt) = match current {
            Some(index) => (index, false),
            None => (from_tags(store, model.project_id, aliases).await?, true),
        };
        // The copy's tags may not be searchable yet: add it in any case.
        let changed = index.upsert(entry.clone(), aliases);
        Ok((changed || rebuilt).then_some(index))
    })
    .await
    .map(|written| match written {
        Some(_) => Recorded::Written,
        None => Recorded::AlreadyThere,
    })
}

/// Derives the index of `project_id` from the tagged copies (Find Blobs by Tags) and writes
/// it. The index holds nothing the copies do not; a write that loses a race queries again.
pub async fn rebuild(
    store: &BlobContainerClient,
    project_id: ProjectId,
    aliases: bool,
) -> Result<ModelIndex, ModelStoreError> {
    let written = write_retrying(store, project_id, |_| async move {
        from_tags(store, project_id, aliases).await.map(Some)
    })
    .await?;
    written.ok_or(ModelStoreError::NothingWritten {
        path: index_path(project_id),
    })
}

/// Reads the project's index (`None` when it does not parse), lets `update` decide what to
/// write (`None`: nothing), and writes it conditionally on what was read; on a lost race,
/// reads and decides again.
async fn write_retrying<F, Fut>(
    store: &BlobContainerClient,
    project_id: ProjectId,
    mut update: F,
) -> Result<Option<ModelIndex>, ModelStoreError>
where
    F: FnMut(Option<ModelIndex>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<ModelIndex>, ModelStoreError>>,
{
    let path = index_path(project_id);
    let blob = store.blob_client(&path);
    let mut delay = Duration::from_millis(10);
    for _ in 0..ATTEMPTS {
        let (current, etag) = read(store, &path, project_id).await?;
        let Some(mut index) = update(current).await? else {
            return Ok(None);
        };
        match write(&blob, &mut index, etag).await {
            Ok(()) => return Ok(Some(index)),
            Err(e) if lost_race(&e) => {
                // Jittered back-off: writers racing on one blob take turns.
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
                tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(StorageActionError::of("write index")(e).into()),
        }
    }
    Err(ModelStoreError::Contended {
        action: "write index",
        path,
        attempts: ATTEMPTS,
    })
}

/// The index the tagged copies of `project_id` describe.
async fn from_tags(
    store: &BlobContainerClient,
    project_id: ProjectId,
    aliases: bool,
) -> Result<ModelIndex, ModelStoreError> {
    let mut index = ModelIndex::empty(project_id);
    for found in find_models(store, &ModelFilter::copies(project_id)).await? {
        if let Some(model) = found.stored_model(project_id) {
            index.upsert(IndexEntry::of(&model), aliases);
        }
    }
    Ok(index)
}

/// The index and its ETag: an empty one (and no ETag) when there is none yet, `None` (with
/// its ETag) when what is there does not parse.
async fn read(
    store: &BlobContainerClient,
    path: &str,
    project_id: ProjectId,
) -> Result<(Option<ModelIndex>, Option<String>), ModelStoreError> {
    let response = match store.blob_client(path).download(None).await {
        Ok(r) => r,
        Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
            return Ok((Some(ModelIndex::empty(project_id)), None))
        }
        Err(e) => return Err(StorageActionError::of("read index")(e).into()),
    };
    let etag = response.properties.etag.as_ref().map(|e| e.to_string());
    let bytes = response
        .body
        .collect()
        .await
        .map_err(StorageActionError::of("read index"))?;
    Ok((serde_json::from_slice(&bytes).ok(), etag))
}

async fn write(
    blob: &azure_storage_blob::BlobClient,
    index: &mut ModelIndex,
    etag: Option<String>,
) -> azure_core::Result<()> {
    index.updated_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let body = serde_json::to_vec_pretty(index).unwrap_or_default();
    let (if_match, if_none_match) = match etag {
        Some(etag) => (Some(quoted_etag(&etag).into()), None),
        None => (None, Some("*".to_string().into())),
    };
    let options = BlobClientUploadOptions {
        blob_content_type: Some("application/json".into()),
        blob_cache_control: Some("no-cache".into()),
        if_match,
        if_none_match,
        ..Default::default()
    };
    blob.upload(RequestContent::from(body), Some(options))
        .await?;
    Ok(())
}

fn lost_race(e: &azure_core::Error) -> bool {
    matches!(
        e.http_status(),
        Some(StatusCode::PreconditionFailed | StatusCode::Conflict)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::examples::PROJECT as P;

    fn entry(iteration: &str, platform: &str, time: &str) -> IndexEntry {
        IndexEntry {
            iteration_id: iteration.into(),
            platform: platform.into(),
            path: format!("{P}/{iteration}/{platform}/m.{platform}"),
            extension: platform.to_lowercase(),
            size: Some(1),
            content_md5: None,
            time: time.into(),
            ordered_by: "created".into(),
            source: "c/b".into(),
        }
    }

    #[test]
    fn entries_are_upserted_newest_first_with_latest_per_platform() {
        let (a, b) = (
            "00000000-0000-4000-8000-00000000000a",
            "00000000-0000-4000-8000-00000000000b",
        );
        let mut index = ModelIndex::empty(ProjectId::parse(P).unwrap());
        assert!(index.upsert(entry(b, "ONNX", "2026-01-02T00:00:00Z"), true));
        assert!(index.upsert(entry(a, "ONNX", "2026-01-01T00:00:00Z"), true));
        assert!(index.upsert(entry(a, "CoreML", "2026-01-01T00:00:00Z"), true));
        assert!(
            !index.upsert(entry(a, "ONNX", "2026-01-01T00:00:00Z"), true),
            "a redelivery changes nothing"
        );
        assert_eq!(index.models.len(), 3);
        assert_eq!(index.models[0].iteration_id, b);
        assert_eq!(index.latest["ONNX"].iteration_id, b);
        assert_eq!(index.latest["CoreML"].iteration_id, a);
        assert_eq!(
            index.latest["ONNX"].alias.as_deref(),
            // The recorded extension names the alias, not the copy path (a template may drop it).
            Some(format!("{P}/latest/ONNX/model.onnx").as_str())
        );
        let without = {
            let mut i = index.clone();
            i.upsert(entry(a, "ONNX", "2026-01-01T00:00:00Z"), false);
            i.derive(false);
            i
        };
        assert_eq!(without.latest["ONNX"].alias, None);
        // Exports nobody could name the platform of are listed, but have no latest.
        // A reader picks by platform, in any case: the newest, or an iteration.
        assert_eq!(index.pick("onnx", Pick::Latest).unwrap().iteration_id, b);
        let a_id = IterationId::parse(a).unwrap();
        assert_eq!(
            index
                .pick("CoreML", Pick::Iteration(a_id))
                .unwrap()
                .platform,
            "CoreML"
        );
        assert_eq!(
            index
                .pick("ONNX", Pick::Iteration(a_id))
                .unwrap()
                .iteration_id,
            a
        );
        assert!(index.pick("TensorFlow", Pick::Latest).is_none());
        assert!(index
            .pick("CoreML", Pick::Iteration(IterationId::parse(b).unwrap()))
            .is_none());
        assert!(index.upsert(entry(b, "unknown-1a2b3c4d", "2026-01-03T00:00:00Z"), true));
        assert_eq!(index.models[0].platform, "unknown-1a2b3c4d");
        assert_eq!(index.latest.len(), 2);
    }
}

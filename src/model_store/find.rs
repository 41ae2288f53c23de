//! The one store query: the copies (and, when asked, the `latest` aliases) of a project, found
//! by blob index tags (Find Blobs by Tags), each with its properties and metadata read back.
//! The index rebuild and `cvctl models` both ask it.

use std::collections::{BTreeMap, HashMap};

use azure_core::http::StatusCode;
use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
use azure_storage_blob::BlobContainerClient;
use futures::TryStreamExt;

use super::{ModelStoreError, OrderKey, StoredModel};
use crate::domain::{ExportPlatform, IterationId, ProjectId};
use crate::naming::stored::{
    EXTENSION_KEY, ITERATION_ID_KEY, KIND_LATEST, KIND_MODEL, PLATFORM_KEY, SOURCE_BLOB_KEY,
    SOURCE_ETAG_KEY, TAG_ITERATION_ID, TAG_KIND, TAG_PLATFORM, TAG_PROJECT_ID,
};
use crate::storage::StorageActionError;

/// Which blobs of a project to find. A tag in the filter is a tag the answer carries.
#[derive(Debug, Clone)]
pub struct ModelFilter {
    pub project_id: ProjectId,
    pub iteration_id: Option<IterationId>,
    /// A platform (`ONNX`, any case) or a label such as `zip`.
    pub platform: Option<String>,
    /// The `latest` aliases too, not only the copies (never backups tagged in place).
    pub aliases: bool,
}

impl ModelFilter {
    /// Every copy of `project_id`.
    pub fn copies(project_id: ProjectId) -> Self {
        Self {
            project_id,
            iteration_id: None,
            platform: None,
            aliases: false,
        }
    }

    /// The Find Blobs by Tags expression.
    fn expression(&self) -> String {
        let project = self.project_id;
        let mut filter = if self.aliases {
            // `kind` between 'latest' and 'model': the copies and the aliases.
            format!(
                "\"{TAG_PROJECT_ID}\" = '{project}' AND \"{TAG_KIND}\" >= '{KIND_LATEST}' AND \"{TAG_KIND}\" <= '{KIND_MODEL}'"
            )
        } else {
            format!("\"{TAG_PROJECT_ID}\" = '{project}' AND \"{TAG_KIND}\" = '{KIND_MODEL}'")
        };
        if let Some(i) = self.iteration_id {
            filter.push_str(&format!(" AND \"{TAG_ITERATION_ID}\" = '{i}'"));
        }
        if let Some(p) = &self.platform {
            let label = platform_label(p);
            filter.push_str(&format!(" AND \"{TAG_PLATFORM}\" = '{label}'"));
        }
        filter
    }
}

/// The label a platform is stored under: a platform's own spelling (`onnx` → `ONNX`), any
/// other label (`Zip`) in lower case.
pub fn platform_label(text: &str) -> String {
    ExportPlatform::parse(text)
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| text.to_ascii_lowercase())
}

/// What a found blob is, by its `kind` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundKind {
    /// An iteration's copy.
    Model,
    /// A `latest` alias: its own tags name it, its metadata the iteration it points at.
    Latest,
}

/// One blob the query found, as its tags, properties and metadata describe it.
#[derive(Debug, Clone)]
pub struct FoundModel {
    pub path: String,
    pub kind: FoundKind,
    pub size: Option<u64>,
    pub content_md5: Option<Vec<u8>>,
    pub metadata: HashMap<String, String>,
}

impl FoundModel {
    /// Its place in the store's order, when its metadata records one.
    pub fn order(&self) -> Option<OrderKey> {
        OrderKey::from_metadata(&self.metadata)
    }

    /// The platform label its metadata records (empty when none).
    pub fn platform(&self) -> String {
        self.metadata.get(PLATFORM_KEY).cloned().unwrap_or_default()
    }

    /// The iteration id its metadata records, as written (empty when none).
    pub fn iteration(&self) -> String {
        self.metadata
            .get(ITERATION_ID_KEY)
            .cloned()
            .unwrap_or_default()
    }

    /// The typed copy, when the metadata describes one (an order key, hence an iteration).
    pub fn stored_model(&self, project_id: ProjectId) -> Option<StoredModel> {
        let order = self.order()?;
        let metadata = &self.metadata;
        Some(StoredModel {
            project_id,
            iteration_id: order.iteration_id,
            platform: self.platform(),
            extension: metadata
                .get(EXTENSION_KEY)
                .cloned()
                .or_else(|| self.path.rsplit_once('.').map(|(_, x)| x.to_string()))
                .unwrap_or_default(),
            path: self.path.clone(),
            size: self.size,
            content_md5: self.content_md5.clone(),
            order,
            source: metadata.get(SOURCE_BLOB_KEY).cloned().unwrap_or_default(),
            source_etag: metadata.get(SOURCE_ETAG_KEY).cloned().unwrap_or_default(),
        })
    }
}

/// The blobs of `store` that `filter` names, in the service's order; one deleted between the
/// find and the read is left out.
pub async fn find_models(
    store: &BlobContainerClient,
    filter: &ModelFilter,
) -> Result<Vec<FoundModel>, ModelStoreError> {
    let mut pager = store
        .find_blobs_by_tags(&filter.expression(), None)
        .map_err(StorageActionError::of("find models by tags"))?;
    let mut found = Vec::new();
    while let Some(page) = pager
        .try_next()
        .await
        .map_err(StorageActionError::of("find models by tags"))?
    {
        let Some(name) = page.name else { continue };
        let kind = page
            .tags
            .and_then(|t| t.blob_tag_set)
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.key.as_deref() == Some(TAG_KIND))
            .and_then(|t| t.value);
        let props = match store.blob_client(&name).get_properties(None).await {
            Ok(p) => p,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => continue,
            Err(e) => return Err(StorageActionError::of("read model")(e).into()),
        };
        let metadata = props
            .metadata()
            .map_err(StorageActionError::of("read model"))?;
        found.push(FoundModel {
            kind: if kind.as_deref() == Some(KIND_LATEST) {
                FoundKind::Latest
            } else {
                FoundKind::Model
            },
            size: props.content_length().ok().flatten(),
            content_md5: props.content_md5().ok().flatten(),
            metadata,
            path: name,
        });
    }
    Ok(found)
}

/// A copy in a listing, and whether its platform's `latest` alias names its iteration.
#[derive(Debug, Clone)]
pub struct ListedCopy {
    pub model: FoundModel,
    pub latest: bool,
}

/// The `latest` alias of one platform, as found: the iteration its metadata names, and its
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAlias {
    pub iteration_id: String,
    pub path: String,
}

/// A query's blobs as a listing shows them ([`newest_first`]).
#[derive(Debug, Clone, Default)]
pub struct ModelListing {
    /// The copies, newest first in the order the alias and the index use, then by platform.
    pub copies: Vec<ListedCopy>,
    /// Platform → its `latest` alias.
    pub latest: BTreeMap<String, FoundAlias>,
}

/// Sorts what [`find_models`] found (with `aliases`) into a listing: the copies newest first,
/// each marked `latest` when its platform's alias names its iteration, and the aliases by
/// platform. `cvctl models` shows it.
pub fn newest_first(found: Vec<FoundModel>) -> ModelListing {
    let mut latest = BTreeMap::new();
    let mut copies = Vec::new();
    for f in found {
        match f.kind {
            FoundKind::Latest => {
                let alias = FoundAlias {
                    iteration_id: f.iteration(),
                    path: f.path.clone(),
                };
                latest.insert(f.platform(), alias);
            }
            FoundKind::Model => copies.push(f),
        }
    }
    // Stable: copies that tie keep the service's order.
    copies.sort_by_cached_key(|f| (std::cmp::Reverse(f.order()), f.platform()));
    let copies = copies
        .into_iter()
        .map(|model| ListedCopy {
            latest: latest
                .get(&model.platform())
                .is_some_and(|a: &FoundAlias| a.iteration_id == model.iteration()),
            model,
        })
        .collect();
    ModelListing { copies, latest }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "0f6c0a4e-3b2c-4c8e-9f1a-2d5e6b7c8d9e";
    const I: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

    #[test]
    fn the_expression_names_what_the_filter_asks() {
        let p = ProjectId::parse(P).unwrap();
        assert_eq!(
            ModelFilter::copies(p).expression(),
            format!("\"projectId\" = '{P}' AND \"kind\" = 'model'")
        );
        let all = ModelFilter {
            project_id: p,
            iteration_id: Some(IterationId::parse(I).unwrap()),
            platform: Some("onnx".into()),
            aliases: true,
        };
        assert_eq!(
            all.expression(),
            format!("\"projectId\" = '{P}' AND \"kind\" >= 'latest' AND \"kind\" <= 'model' AND \"iterationId\" = '{I}' AND \"platform\" = 'ONNX'")
        );
        // A label that is no platform is matched as the lower-case label it is stored under.
        let zip = ModelFilter {
            platform: Some("Zip".into()),
            ..ModelFilter::copies(p)
        };
        assert!(zip.expression().ends_with("AND \"platform\" = 'zip'"));
    }

    fn found(kind: FoundKind, path: &str, platform: &str, iteration: &str, at: &str) -> FoundModel {
        let mut metadata = HashMap::from([
            (PLATFORM_KEY.to_string(), platform.to_string()),
            (ITERATION_ID_KEY.to_string(), iteration.to_string()),
        ]);
        if kind == FoundKind::Model {
            let order = OrderKey {
                by: super::super::OrderBy::TrainedAt,
                at: time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .unwrap(),
                iteration_id: IterationId::parse(iteration).unwrap(),
            };
            metadata.extend(order.metadata());
        }
        FoundModel {
            path: path.into(),
            kind,
            size: None,
            content_md5: None,
            metadata,
        }
    }

    #[test]
    fn a_listing_is_newest_first_with_latest_marked() {
        let older = "a1b2c3d4-e5f6-4a7b-8c9d-000000000001";
        let newer = "a1b2c3d4-e5f6-4a7b-8c9d-000000000002";
        let listing = newest_first(vec![
            found(
                FoundKind::Model,
                "o/onnx",
                "ONNX",
                older,
                "2026-01-01T00:00:00Z",
            ),
            found(FoundKind::Latest, "l/onnx", "ONNX", older, ""),
            found(
                FoundKind::Model,
                "n/tf",
                "TensorFlow",
                newer,
                "2026-02-01T00:00:00Z",
            ),
            found(
                FoundKind::Model,
                "n/onnx",
                "ONNX",
                newer,
                "2026-02-01T00:00:00Z",
            ),
        ]);
        let rows: Vec<(&str, bool)> = listing
            .copies
            .iter()
            .map(|c| (c.model.path.as_str(), c.latest))
            .collect();
        assert_eq!(
            rows,
            [("n/onnx", false), ("n/tf", false), ("o/onnx", true)],
            "newest first, then by platform; the alias names the older"
        );
        assert_eq!(
            listing.latest["ONNX"],
            FoundAlias {
                iteration_id: older.into(),
                path: "l/onnx".into()
            }
        );
    }
}

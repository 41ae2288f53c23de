//! Every name the model store holds, defined once: the index tags (keys and `kind` values),
//! the metadata keys, and the fixed paths of the `latest` alias and the index. Writers and
//! readers (the export, the alias, the index rebuild, `cvctl models`) use these, never a
//! literal, so a rename cannot leave a reader behind.

use std::collections::BTreeMap;

use crate::domain::{IterationId, ProjectId};

/// Index tags (queried with Find Blobs by Tags).
pub const TAG_PROJECT_ID: &str = "projectId";
pub const TAG_ITERATION_ID: &str = "iterationId";
pub const TAG_PLATFORM: &str = "platform";
/// The source, reduced to the characters a tag value may hold.
pub const TAG_SOURCE: &str = "source";
pub const TAG_KIND: &str = "kind";

/// Tag `kind` of a model-store copy, of the `latest` alias, of a backup tagged in place.
pub const KIND_MODEL: &str = "model";
pub const KIND_LATEST: &str = "latest";
pub const KIND_BACKUP: &str = "backup";

/// Metadata keys (names must be C# identifiers).
pub const PROJECT_ID_KEY: &str = "cvprojectid";
pub const ITERATION_ID_KEY: &str = "cviterationid";
pub const PLATFORM_KEY: &str = "cvplatform";
/// The source as recorded: `container/blob`, or the SAS URL without its query.
pub const SOURCE_BLOB_KEY: &str = "cvsourceblob";
/// The quoted ETag of the source a copy was made from: how a redelivered message recognises
/// a copy that is already done.
pub const SOURCE_ETAG_KEY: &str = "cvsourceetag";
/// The model's file extension, which the index and the `latest` alias name it by.
pub const EXTENSION_KEY: &str = "cvextension";
/// Where an iteration stands in "newest" (`model_store::OrderKey`).
pub const ORDER_AT_KEY: &str = "cvorderat";
pub const ORDER_BY_KEY: &str = "cvorderby";

/// The tags that name a stored model: whose, which iteration, which platform, what kind.
pub fn model_tags(
    project_id: ProjectId,
    iteration_id: IterationId,
    platform: &str,
    kind: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_PROJECT_ID.into(), project_id.to_string()),
        (TAG_ITERATION_ID.into(), iteration_id.to_string()),
        (TAG_PLATFORM.into(), platform.to_string()),
        (TAG_KIND.into(), kind.to_string()),
    ])
}

/// The metadata that names a stored model and its source; `source_etag` is set on copies.
pub fn model_metadata(
    project_id: ProjectId,
    iteration_id: IterationId,
    platform: &str,
    source_blob: &str,
    source_etag: Option<&str>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([
        (PROJECT_ID_KEY.into(), project_id.to_string()),
        (ITERATION_ID_KEY.into(), iteration_id.to_string()),
        (PLATFORM_KEY.into(), platform.to_string()),
        (SOURCE_BLOB_KEY.into(), source_blob.to_string()),
    ]);
    if let Some(etag) = source_etag {
        m.insert(SOURCE_ETAG_KEY.into(), etag.to_string());
    }
    m
}

/// `{projectId}/latest/{platform}/model.{extension}`: one stable name per project and
/// platform.
pub fn latest_path(project_id: ProjectId, platform: &str, extension: &str) -> String {
    format!("{project_id}/latest/{platform}/model.{extension}")
}

/// `{projectId}/index.json`.
pub fn index_path(project_id: ProjectId) -> String {
    format!("{project_id}/index.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These names are in every store already written: changing one orphans what is there.
    #[test]
    fn stored_names_are_the_ones_already_in_stores() {
        assert_eq!(
            [
                TAG_PROJECT_ID,
                TAG_ITERATION_ID,
                TAG_PLATFORM,
                TAG_SOURCE,
                TAG_KIND
            ],
            ["projectId", "iterationId", "platform", "source", "kind"]
        );
        assert_eq!(
            [KIND_MODEL, KIND_LATEST, KIND_BACKUP],
            ["model", "latest", "backup"]
        );
        assert_eq!(
            [
                PROJECT_ID_KEY,
                ITERATION_ID_KEY,
                PLATFORM_KEY,
                SOURCE_BLOB_KEY,
                SOURCE_ETAG_KEY,
                EXTENSION_KEY,
                ORDER_AT_KEY,
                ORDER_BY_KEY
            ],
            [
                "cvprojectid",
                "cviterationid",
                "cvplatform",
                "cvsourceblob",
                "cvsourceetag",
                "cvextension",
                "cvorderat",
                "cvorderby"
            ]
        );
        let p = ProjectId::parse(crate::domain::examples::PROJECT).unwrap();
        assert_eq!(
            latest_path(p, "ONNX", "onnx"),
            format!("{p}/latest/ONNX/model.onnx")
        );
        assert_eq!(index_path(p), format!("{p}/index.json"));
    }
}

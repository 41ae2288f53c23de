//! Every name the model store holds, defined once: the index tags (keys and `kind` values),
//! the metadata keys, the fixed paths of the `latest` alias, the index, the training reports
//! and the dashboard, and the delivered markers of events; and, in the status container, the
//! records of handled ConnectionTests. Writers and readers (the export,
//! the alias, the index rebuild, the reports, the backfill, `cvctl models|demo|verify`) use
//! these, never a literal, so a rename cannot leave a reader behind.

use std::collections::BTreeMap;
use std::fmt::Display;

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
/// On a report blob: the iteration's `trainedAt`, so the previous report is found with one
/// listing.
pub const TRAINED_AT_KEY: &str = "cvtrainedat";
/// On the dashboard page: the SHA-256 of its bytes, hex.
pub const DIGEST_KEY: &str = "cvdigest";

/// The folder of the records of handled ConnectionTests, in the status container
/// (`connection-tests/{message id}.json`).
pub const CONNECTION_TESTS_PREFIX: &str = "connection-tests";
/// The folder of the training reports and dashboards, beside the projects' models.
pub const REPORTS_PREFIX: &str = "reports";
/// The dashboard's name beside a project's reports.
pub const DASHBOARD_FILE: &str = "index.html";

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

/// `reports/{projectId}/`: every report and the dashboard of one project.
pub fn reports_prefix(project_id: impl Display) -> String {
    format!("{REPORTS_PREFIX}/{project_id}/")
}

/// `reports/{projectId}/{iterationId}.json`.
pub fn report_json_path(project_id: impl Display, iteration_id: impl Display) -> String {
    format!("{}{iteration_id}.json", reports_prefix(project_id))
}

/// `reports/{projectId}/{iterationId}.html`.
pub fn report_html_path(project_id: impl Display, iteration_id: impl Display) -> String {
    format!("{}{iteration_id}.html", reports_prefix(project_id))
}

/// `reports/{projectId}/index.html`.
pub fn dashboard_path(project_id: impl Display) -> String {
    format!("{}{DASHBOARD_FILE}", reports_prefix(project_id))
}

/// `{sink}/{eventId}` in the delivered-markers container: the event went to that sink
/// (`eventgrid`, `webhook`).
pub fn delivered_marker_path(sink: &str, event_id: &str) -> String {
    format!("{sink}/{event_id}")
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
                ORDER_BY_KEY,
                TRAINED_AT_KEY,
                DIGEST_KEY
            ],
            [
                "cvprojectid",
                "cviterationid",
                "cvplatform",
                "cvsourceblob",
                "cvsourceetag",
                "cvextension",
                "cvorderat",
                "cvorderby",
                "cvtrainedat",
                "cvdigest"
            ]
        );
        let p = ProjectId::parse(crate::domain::examples::PROJECT).unwrap();
        assert_eq!(
            latest_path(p, "ONNX", "onnx"),
            format!("{p}/latest/ONNX/model.onnx")
        );
        assert_eq!(index_path(p), format!("{p}/index.json"));
        let i = crate::domain::examples::ITERATION;
        assert_eq!(reports_prefix(p), format!("reports/{p}/"));
        assert_eq!(report_json_path(p, i), format!("reports/{p}/{i}.json"));
        assert_eq!(report_html_path(p, i), format!("reports/{p}/{i}.html"));
        assert_eq!(dashboard_path(p), format!("reports/{p}/index.html"));
        assert_eq!(delivered_marker_path("webhook", "e1"), "webhook/e1");
        assert_eq!(CONNECTION_TESTS_PREFIX, "connection-tests");
    }
}

//! The Training API v3.3 data this crate uses, named as the spec names it
//! (`shared/specs/customvision-training-v3.3.json`, `definitions`).
//!
//! Answers keep only the fields we read and ignore the rest, except [`Project`] and
//! [`ProjectSettings`]: UpdateProject replaces the project with the body it is sent, so those
//! two keep every field they do not know (`extra`) and send it back, and a GET → change →
//! PATCH loses no setting. They serialize as the UpdateProject body: the spec's read-only
//! fields (`id`, `created`, `useNegativeSet`, ...) are read but not sent, as in the seed
//! document's UpdateProject example.
//!
//! Enumerations the client also sends ([`Classifier`], [`ExportFlavor`], [`ExportPlatform`]) are
//! strict; [`ExportState`] (the spec's `ExportStatus`) only comes back and tolerates values
//! added later.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{ExportFlavor, ExportPlatform, IterationId, ProjectId};

/// `Project`. Serializes as the UpdateProject body (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    #[serde(skip_serializing, deserialize_with = "de::project_id")]
    pub id: ProjectId,
    pub name: String,
    /// Required in the body and nullable: always sent, `null` when absent.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub settings: ProjectSettings,
    #[serde(skip_serializing, default, deserialize_with = "de::date")]
    pub created: Option<OffsetDateTime>,
    #[serde(skip_serializing, default, deserialize_with = "de::date")]
    pub last_modified: Option<OffsetDateTime>,
    #[serde(skip_serializing, default)]
    pub thumbnail_uri: Option<String>,
    #[serde(skip_serializing, default)]
    pub dr_mode_enabled: Option<bool>,
    /// `Succeeded`, `Importing` or `Failed`; writable in the spec, so sent back as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Fields this crate does not know, sent back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ProjectSettings`, plus the two storage-integration fields the seed document shows here but
/// the v3.3 spec does not describe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSettings {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_uuid",
        serialize_with = "ser::opt_uuid"
    )]
    pub domain_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_type: Option<Classifier>,
    /// The backup container's URL (extension field; Custom Vision writes exported models there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_model_container_uri: Option<String>,
    /// The notification queue's URL (extension field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_queue_uri: Option<String>,
    #[serde(skip_serializing, default)]
    pub use_negative_set: Option<bool>,
    #[serde(skip_serializing, default)]
    pub detection_parameters: Option<String>,
    /// `targetExportPlatforms`, `imageProcessingSettings` and anything newer, sent back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The query parameters of CreateProject. `export_model_container_uri` and
/// `notification_queue_uri` are the extension parameters of the seed document (not in the
/// spec).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewProject {
    pub name: String,
    pub description: Option<String>,
    pub domain_id: Option<Uuid>,
    pub classification_type: Option<Classifier>,
    pub target_export_platforms: Vec<ExportPlatform>,
    pub export_model_container_uri: Option<url::Url>,
    pub notification_queue_uri: Option<url::Url>,
}

impl NewProject {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// `Classifier` (`classificationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Classifier {
    Multiclass,
    Multilabel,
}

impl Classifier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Multiclass => "Multiclass",
            Self::Multilabel => "Multilabel",
        }
    }
}

/// `Iteration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Iteration {
    #[serde(deserialize_with = "de::iteration_id")]
    pub id: IterationId,
    pub name: String,
    /// A plain string in the spec; the service writes `New`, `Training`, `Completed`, `Failed`.
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "de::date")]
    pub created: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "de::date")]
    pub last_modified: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "de::date")]
    pub trained_at: Option<OffsetDateTime>,
    #[serde(deserialize_with = "de::project_id")]
    pub project_id: ProjectId,
    #[serde(default)]
    pub exportable: bool,
    /// Platforms this crate cannot name are left out; `null` (an iteration still training) is
    /// empty.
    #[serde(default, deserialize_with = "de::platforms")]
    pub exportable_to: Vec<ExportPlatform>,
    #[serde(default, deserialize_with = "de::opt_uuid")]
    pub domain_id: Option<Uuid>,
    #[serde(default)]
    pub classification_type: Option<Classifier>,
    /// `Regular` or `Advanced`.
    #[serde(default)]
    pub training_type: Option<String>,
    #[serde(default)]
    pub publish_name: Option<String>,
    /// The prediction resource's ARM id the iteration was published to.
    #[serde(default)]
    pub original_publish_resource_id: Option<String>,
}

impl Iteration {
    pub fn is_completed(&self) -> bool {
        self.status.eq_ignore_ascii_case("Completed")
    }
}

/// `IterationPerformance`: figures are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationPerformance {
    #[serde(default, deserialize_with = "de::nullable_vec")]
    pub per_tag_performance: Vec<TagPerformance>,
    pub precision: f64,
    #[serde(default)]
    pub precision_std_deviation: f64,
    pub recall: f64,
    #[serde(default)]
    pub recall_std_deviation: f64,
    /// Only where applicable (`x-nullable`).
    #[serde(default)]
    pub average_precision: Option<f64>,
}

/// `TagPerformance`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagPerformance {
    #[serde(deserialize_with = "de::uuid")]
    pub id: Uuid,
    pub name: String,
    pub precision: f64,
    #[serde(default)]
    pub precision_std_deviation: f64,
    pub recall: f64,
    #[serde(default)]
    pub recall_std_deviation: f64,
    #[serde(default)]
    pub average_precision: Option<f64>,
}

/// `Export`: the answer of ExportIteration and each entry of GetExports.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    #[serde(deserialize_with = "de::platform")]
    pub platform: ExportPlatform,
    pub status: ExportState,
    /// A SAS URL while the package is downloadable (`null` while exporting); a relative path
    /// for GetArtifact when the resource is VNET-bound. Its signature is a secret: never log it
    /// outside the redacting log writer.
    #[serde(default)]
    pub download_uri: Option<String>,
    #[serde(default)]
    pub flavor: Option<ExportFlavor>,
    #[serde(default)]
    pub newer_version_available: bool,
}

/// The spec's `ExportStatus`: where an export of the Training API stands. Named apart from
/// the notification's [`ExportStatus`](crate::notification::ExportStatus), which is how a
/// finished export ended, so that each name has one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ExportState {
    Exporting,
    Failed,
    Done,
    /// A value newer than v3.3 (the enum is `modelAsString`).
    #[serde(other)]
    Unknown,
}

/// Deserializers for the crate's validated types (which have no serde impls of their own).
mod de {
    use super::*;
    use serde::de::Error as _;
    use time::format_description::well_known::Rfc3339;

    pub fn project_id<'de, D: Deserializer<'de>>(d: D) -> Result<ProjectId, D::Error> {
        let s = String::deserialize(d)?;
        ProjectId::parse(&s).map_err(D::Error::custom)
    }

    pub fn iteration_id<'de, D: Deserializer<'de>>(d: D) -> Result<IterationId, D::Error> {
        let s = String::deserialize(d)?;
        IterationId::parse(&s).map_err(D::Error::custom)
    }

    pub fn uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let s = String::deserialize(d)?;
        Uuid::try_parse(&s).map_err(|_| D::Error::custom(format!("'{s}' is not a GUID")))
    }

    pub fn opt_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => Uuid::try_parse(&s)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("'{s}' is not a GUID"))),
            None => Ok(None),
        }
    }

    pub fn platform<'de, D: Deserializer<'de>>(d: D) -> Result<ExportPlatform, D::Error> {
        let s = String::deserialize(d)?;
        ExportPlatform::parse(&s)
            .ok_or_else(|| D::Error::custom(format!("unknown export platform '{s}'")))
    }

    pub fn platforms<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ExportPlatform>, D::Error> {
        let names = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
        Ok(names
            .iter()
            .filter_map(|n| ExportPlatform::parse(n))
            .collect())
    }

    pub fn nullable_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }

    /// ISO 8601 as the service writes it (`2019-09-16T15:05:12.403Z`); a time without an
    /// offset, as the v1/v2 API wrote them (.NET's unspecified kind), is taken as UTC.
    pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        OffsetDateTime::parse(&s, &Rfc3339)
            .or_else(|_| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
            .map(Some)
            .map_err(|_| D::Error::custom(format!("'{s}' is not an ISO 8601 date-time")))
    }
}

mod ser {
    use super::*;

    pub fn opt_uuid<S: Serializer>(v: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(id) => s.serialize_str(&id.hyphenated().to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Shapes from the service's own recorded sessions (the .NET SDK's tests), v3.x.
    const ITERATION: &str = r#"{
        "id": "f8b5c43d-205c-4596-ba19-8ee3bf1ffd20", "name": "Iteration 1", "status": "Completed",
        "created": "2019-09-16T15:05:04.586Z", "lastModified": "2019-09-16T15:05:13.139Z",
        "trainedAt": "2019-09-16T15:05:12.403Z", "projectId": "b6dd673c-be9e-4911-b2f6-02237b2d4872",
        "exportable": true, "exportableTo": ["CoreML", "DockerFile", "ONNX", "TensorFlow", "SomethingNew"],
        "domainId": "0732100f-1a38-4e49-a514-c9b44c697ab5", "classificationType": "Multilabel",
        "trainingType": "Regular", "reservedBudgetInHours": 0, "trainingTimeInMinutes": 1,
        "publishName": "Training UnitTest Iteration",
        "originalPublishResourceId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.CognitiveServices/accounts/z"
    }"#;

    #[test]
    fn iteration_decodes_and_ignores_what_it_does_not_use() {
        let it: Iteration = serde_json::from_str(ITERATION).unwrap();
        assert_eq!(it.id.to_string(), "f8b5c43d-205c-4596-ba19-8ee3bf1ffd20");
        assert!(it.is_completed());
        assert_eq!(
            it.exportable_to,
            vec![
                ExportPlatform::CoreMl,
                ExportPlatform::DockerFile,
                ExportPlatform::Onnx,
                ExportPlatform::TensorFlow
            ],
            "an unknown platform is left out, not an error"
        );
        assert_eq!(it.trained_at.unwrap().year(), 2019);
        assert_eq!(it.classification_type, Some(Classifier::Multilabel));
    }

    #[test]
    fn iteration_still_training_has_nulls() {
        let it: Iteration = serde_json::from_value(json!({
            "id": "a1608486-2795-499a-bf16-e9a3075e5388", "name": "Iteration 2", "status": "Training",
            "created": "2019-09-16T15:05:06.676Z", "projectId": "b6dd673c-be9e-4911-b2f6-02237b2d4872",
            "exportable": false, "exportableTo": null, "domainId": null, "classificationType": null,
            "trainingType": "Regular", "publishName": null, "originalPublishResourceId": null
        }))
        .unwrap();
        assert!(!it.is_completed());
        assert!(it.exportable_to.is_empty());
        assert_eq!(it.trained_at, None);
    }

    #[test]
    fn dates_without_an_offset_are_utc() {
        let it: Iteration = serde_json::from_value(json!({
            "id": "a1608486-2795-499a-bf16-e9a3075e5388", "name": "i",
            "projectId": "b6dd673c-be9e-4911-b2f6-02237b2d4872", "created": "2018-02-08T08:22:42.0666667"
        }))
        .unwrap();
        assert_eq!(it.created.unwrap().offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn export_done_and_unknown_status() {
        let e: Export = serde_json::from_value(json!({
            "platform": "TensorFlow", "status": "Done",
            "downloadUri": "https://store.blob.core.windows.net/m/x.TensorFlow.zip?sv=2017-04-17&sr=b&sig=abc",
            "flavor": null, "newerVersionAvailable": false
        }))
        .unwrap();
        assert_eq!(e.platform, ExportPlatform::TensorFlow);
        assert_eq!(e.status, ExportState::Done);
        let e: Export = serde_json::from_value(
            json!({"platform": "ONNX", "status": "Queued", "flavor": "ONNX12"}),
        )
        .unwrap();
        assert_eq!(e.status, ExportState::Unknown);
        assert_eq!(e.flavor, Some(ExportFlavor::Onnx12));
    }

    #[test]
    fn performance_with_per_tag_figures() {
        let p: IterationPerformance = serde_json::from_value(json!({
            "perTagPerformance": [{"id": "db3d0205-8822-433b-8736-2233cf27fd8f", "name": "Tag1",
                "precision": 0.9, "precisionStdDeviation": 0.01, "recall": 0.8,
                "recallStdDeviation": 0.02, "averagePrecision": 0.85}],
            "precision": 0.9, "precisionStdDeviation": 0.0, "recall": 0.8,
            "recallStdDeviation": 0.0, "averagePrecision": null
        }))
        .unwrap();
        assert_eq!(p.per_tag_performance[0].name, "Tag1");
        assert_eq!(p.average_precision, None);
    }

    #[test]
    fn project_round_trips_unknown_fields_and_drops_read_only_ones() {
        let got = json!({
            "id": "8a32ea60-1c53-43c3-8113-d0b1f470fbdb", "name": "Test Project",
            "description": "This is a test project",
            "settings": {
                "domainId": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "classificationType": "Multilabel",
                "targetExportPlatforms": ["ONNX"], "useNegativeSet": true, "detectionParameters": null,
                "imageProcessingSettings": {"augmentationMethods": {"rotation": true, "scaling": false}},
                "exportModelContainerUri": "https://acct.blob.core.windows.net/customvision-backups",
                "futureSetting": {"nested": [1, 2]}
            },
            "created": "2020-11-06T16:37:26.266Z", "lastModified": "2020-11-06T16:37:26.266Z",
            "thumbnailUri": null, "drModeEnabled": false, "status": "Succeeded",
            "futureTopLevel": "kept"
        });
        let mut project: Project = serde_json::from_value(got).unwrap();
        project.settings.notification_queue_uri =
            Some("https://acct.queue.core.windows.net/customvision-notifications".into());
        let sent = serde_json::to_value(&project).unwrap();
        assert_eq!(
            sent,
            json!({
                "name": "Test Project", "description": "This is a test project",
                "settings": {
                    "domainId": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "classificationType": "Multilabel",
                    "targetExportPlatforms": ["ONNX"],
                    "imageProcessingSettings": {"augmentationMethods": {"rotation": true, "scaling": false}},
                    "exportModelContainerUri": "https://acct.blob.core.windows.net/customvision-backups",
                    "notificationQueueUri": "https://acct.queue.core.windows.net/customvision-notifications",
                    "futureSetting": {"nested": [1, 2]}
                },
                "status": "Succeeded", "futureTopLevel": "kept"
            })
        );
    }

    #[test]
    fn project_without_description_sends_null() {
        let project: Project = serde_json::from_value(json!({
            "id": "8a32ea60-1c53-43c3-8113-d0b1f470fbdb", "name": "p", "settings": {}
        }))
        .unwrap();
        let sent = serde_json::to_value(&project).unwrap();
        assert_eq!(
            sent,
            json!({"name": "p", "description": null, "settings": {}})
        );
    }

    #[test]
    fn bad_ids_are_decode_errors() {
        let err = serde_json::from_value::<Iteration>(json!({
            "id": "not-a-guid", "name": "i", "projectId": "b6dd673c-be9e-4911-b2f6-02237b2d4872"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("GUID"), "{err}");
    }
}

//! The notification examples of `shared/seeds/storage-integration.md`, verbatim (including the
//! stray space in `"1.0" ,`). The tests and the bench parse them; `cvctl simulate` fills in
//! ids and sends them.

pub const CONNECTION_TEST: &str = r#"{
"version": "1.0" ,
"type": "ConnectionTest",
"Content":
    {
    "projectId": "00000000-0000-0000-0000-000000000000"
    }
}"#;

pub const TRAINING: &str = r#"{
"version": "1.0" ,
"type": "Training",
"Content":
    {
    "projectId": "00000000-0000-0000-0000-000000000000",
    "iterationId": "00000000-0000-0000-0000-000000000000",
    "trainingStatus": "TrainingCompleted"
    }
}"#;

/// `{url}` is the seed's placeholder, not JSON: fill it with [`export`].
pub const EXPORT_TEMPLATE: &str = r#"{
"version": "1.0" ,
"type": "Export",
"Content":
    {
    "projectId": "00000000-0000-0000-0000-000000000000",
    "iterationId": "00000000-0000-0000-0000-000000000000",
    "exportStatus": "ExportCompleted",
    "modelUri": {url}
    }
}"#;

/// The seed's project and iteration id.
pub const SEED_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The Export example with `{url}` replaced by a JSON string.
pub fn export(model_uri: &str) -> String {
    EXPORT_TEMPLATE.replace(
        "{url}",
        &serde_json::Value::String(model_uri.into()).to_string(),
    )
}

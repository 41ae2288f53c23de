//! The Custom Vision notification: the contract in `shared/seeds/storage-integration.md`.
//!
//! Everything that comes off a queue passes through [`Notification::parse`]; past it, ids are
//! valid GUIDs and statuses are known values, so no blob name is ever built from raw text.

use serde_json::{json, Map, Value};

use crate::domain::{truncate, DomainError, IterationId, ProjectId};

/// Why a message is not a notification we can act on. These are permanent: retrying the same
/// text gives the same answer, so the message is dead-lettered with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is neither JSON nor base64-encoded JSON")]
    NotJson,
    #[error("the message is JSON but not an object (it is {0})")]
    NotAnObject(&'static str),
    #[error("missing field '{0}'")]
    Missing(&'static str),
    #[error("field '{field}' must be a string")]
    NotAString { field: &'static str },
    /// An id that is not one (`projectId`, `iterationId`).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("unsupported notification version '{0}' (this handler reads version 1.x)")]
    UnsupportedVersion(String),
    #[error("unknown notification type '{0}'")]
    UnknownType(String),
    #[error("unknown {field} '{value}'")]
    UnknownStatus { field: &'static str, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingStatus {
    Completed,
    Failed,
}

impl TrainingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "TrainingCompleted",
            Self::Failed => "TrainingFailed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    Completed,
    Failed,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "ExportCompleted",
            Self::Failed => "ExportFailed",
        }
    }
}

/// A validated notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    ConnectionTest {
        project_id: ProjectId,
    },
    Training {
        project_id: ProjectId,
        iteration_id: IterationId,
        status: TrainingStatus,
    },
    Export {
        project_id: ProjectId,
        iteration_id: IterationId,
        status: ExportStatus,
        /// Only a hint, kept as written (`crate::export::hint` judges it): a value that is
        /// not a string is dropped with a warning, not fatal.
        model_uri: Option<String>,
    },
}

/// A notification, and what parsing dropped on the way (never fatal; worth a log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub notification: Notification,
    pub warnings: Vec<String>,
}

impl Notification {
    /// Parses queue message text: JSON, or base64 of JSON (the service's encoding is not
    /// documented). Fields may sit under `Content` (any key case) or at the top level.
    pub fn parse(text: &str) -> Result<Self, NotificationError> {
        Self::parse_with_warnings(text).map(|p| p.notification)
    }

    pub fn parse_with_warnings(text: &str) -> Result<Parsed, NotificationError> {
        let value = decode_message_text(text)?;
        let mut warnings = Vec::new();
        let notification = Self::from_value(&value, &mut warnings)?;
        Ok(Parsed {
            notification,
            warnings,
        })
    }

    pub fn from_value(
        value: &Value,
        warnings: &mut Vec<String>,
    ) -> Result<Self, NotificationError> {
        let root = value
            .as_object()
            .ok_or(NotificationError::NotAnObject(json_kind(value)))?;
        if let Some(version) = optional_str(root, "version")? {
            let major = version.trim().split('.').next().unwrap_or_default();
            if major != "1" {
                return Err(NotificationError::UnsupportedVersion(truncate(version, 32)));
            }
        }
        let kind = required_str(root, "type")?;
        // `Content` is where the documented shape keeps the fields; the flat shape has them at
        // the top. Look in Content first, then fall back to the root.
        let content = get_ci(root, "content").and_then(Value::as_object);
        let field = |name: &'static str| -> Result<Option<&str>, NotificationError> {
            match content
                .map(|c| optional_str(c, name))
                .transpose()?
                .flatten()
            {
                Some(v) => Ok(Some(v)),
                None => optional_str(root, name),
            }
        };
        let required = |name: &'static str| field(name)?.ok_or(NotificationError::Missing(name));

        let project_id = ProjectId::parse(required("projectId")?)?;
        if kind.eq_ignore_ascii_case("ConnectionTest") {
            return Ok(Self::ConnectionTest { project_id });
        }
        if kind.eq_ignore_ascii_case("Training") {
            let iteration_id = IterationId::parse(required("iterationId")?)?;
            let status = match required("trainingStatus")? {
                s if s.eq_ignore_ascii_case("TrainingCompleted") => TrainingStatus::Completed,
                s if s.eq_ignore_ascii_case("TrainingFailed") => TrainingStatus::Failed,
                other => return Err(unknown_status("trainingStatus", other)),
            };
            return Ok(Self::Training {
                project_id,
                iteration_id,
                status,
            });
        }
        if kind.eq_ignore_ascii_case("Export") {
            let iteration_id = IterationId::parse(required("iterationId")?)?;
            let status = match required("exportStatus")? {
                s if s.eq_ignore_ascii_case("ExportCompleted") => ExportStatus::Completed,
                s if s.eq_ignore_ascii_case("ExportFailed") => ExportStatus::Failed,
                other => return Err(unknown_status("exportStatus", other)),
            };
            let hint = content
                .and_then(|c| get_ci(c, "modelUri"))
                .filter(|v| !v.is_null())
                .or_else(|| get_ci(root, "modelUri"));
            let model_uri = model_uri_hint(hint, warnings);
            return Ok(Self::Export {
                project_id,
                iteration_id,
                status,
                model_uri,
            });
        }
        Err(NotificationError::UnknownType(truncate(kind, 64)))
    }

    /// The same notification without its `modelUri` hint.
    pub fn without_model_uri(self) -> Self {
        match self {
            Self::Export {
                project_id,
                iteration_id,
                status,
                ..
            } => Self::Export {
                project_id,
                iteration_id,
                status,
                model_uri: None,
            },
            other => other,
        }
    }

    pub fn project_id(&self) -> ProjectId {
        match self {
            Self::ConnectionTest { project_id }
            | Self::Training { project_id, .. }
            | Self::Export { project_id, .. } => *project_id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConnectionTest { .. } => "ConnectionTest",
            Self::Training { .. } => "Training",
            Self::Export { .. } => "Export",
        }
    }

    /// The documented nested shape, with canonical spellings: what is forwarded to the
    /// training and export queues.
    pub fn to_canonical_json(&self) -> Map<String, Value> {
        let content = match self {
            Self::ConnectionTest { project_id } => json!({ "projectId": project_id.to_string() }),
            Self::Training {
                project_id,
                iteration_id,
                status,
            } => json!({
                "projectId": project_id.to_string(),
                "iterationId": iteration_id.to_string(),
                "trainingStatus": status.as_str(),
            }),
            Self::Export {
                project_id,
                iteration_id,
                status,
                model_uri,
            } => {
                let mut c = json!({
                    "projectId": project_id.to_string(),
                    "iterationId": iteration_id.to_string(),
                    "exportStatus": status.as_str(),
                });
                if let Some(uri) = model_uri {
                    c["modelUri"] = Value::String(uri.clone());
                }
                c
            }
        };
        Map::from_iter([
            ("version".to_string(), json!("1.0")),
            ("type".to_string(), json!(self.kind())),
            ("Content".to_string(), content),
        ])
    }
}

/// `modelUri` is a hint: a value that is not a string is dropped with a warning. A string is
/// kept as written, for the export to judge.
fn model_uri_hint(value: Option<&Value>, warnings: &mut Vec<String>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        other => {
            warnings.push(format!(
                "modelUri is {}, not a string; the hint is dropped",
                json_kind(other)
            ));
            None
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON text, or base64 of JSON text (standard or URL-safe alphabet, whitespace and line
/// breaks ignored as .NET does). JSON that is not an object (a string literal, a number) is
/// named as such: it is a message, just not a notification.
fn decode_message_text(text: &str) -> Result<Value, NotificationError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(NotificationError::Empty);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|_| NotificationError::NotJson);
    }
    let from_base64 = crate::base64text::decode_lenient(trimmed)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|decoded| {
            let decoded = decoded.trim_start_matches('\u{feff}').trim();
            decoded
                .starts_with('{')
                .then(|| serde_json::from_str(decoded).ok())
                .flatten()
        });
    if let Some(value) = from_base64 {
        return Ok(value);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => Err(NotificationError::NotAnObject(json_kind(&value))),
        Err(_) => Err(NotificationError::NotJson),
    }
}

fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn optional_str<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, NotificationError> {
    match get_ci(map, field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(NotificationError::NotAString { field }),
    }
}

fn required_str<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, NotificationError> {
    optional_str(map, field)?.ok_or(NotificationError::Missing(field))
}

fn unknown_status(field: &'static str, value: &str) -> NotificationError {
    NotificationError::UnknownStatus {
        field,
        value: truncate(value, 64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: &str = "00000000-0000-0000-0000-000000000000";
    use crate::domain::examples::{ITERATION as I, PROJECT as P};

    use crate::seed::{
        CONNECTION_TEST as MD_CONNECTION_TEST, EXPORT_TEMPLATE as MD_EXPORT_TEMPLATE,
        TRAINING as MD_TRAINING,
    };

    // The .txt rendering of the same page lost the braces: the flat shape, verbatim.
    const TXT_CONNECTION_TEST: &str = r#""version": "1.0" ,
"type": "ConnectionTest",
    "projectId": "00000000-0000-0000-0000-000000000000""#;
    const TXT_TRAINING: &str = r#""version": "1.0" ,
"type": "Training",
    "projectId": "00000000-0000-0000-0000-000000000000",
    "iterationId": "00000000-0000-0000-0000-000000000000",
    "trainingStatus": "TrainingCompleted""#;
    const TXT_EXPORT: &str = r#""version": "1.0" ,
"type": "Export",
    "projectId": "00000000-0000-0000-0000-000000000000",
    "iterationId": "00000000-0000-0000-0000-000000000000",
    "exportStatus": "ExportCompleted",
    "modelUri": {url}"#;

    fn zero_project() -> ProjectId {
        ProjectId::parse(ZERO).unwrap()
    }

    #[test]
    fn seed_md_connection_test() {
        assert_eq!(
            Notification::parse(MD_CONNECTION_TEST).unwrap(),
            Notification::ConnectionTest {
                project_id: zero_project()
            }
        );
    }

    #[test]
    fn seed_md_training() {
        let n = Notification::parse(MD_TRAINING).unwrap();
        assert_eq!(
            n,
            Notification::Training {
                project_id: zero_project(),
                iteration_id: IterationId::parse(ZERO).unwrap(),
                status: TrainingStatus::Completed
            }
        );
        let failed = MD_TRAINING.replace("TrainingCompleted", "TrainingFailed");
        assert!(matches!(
            Notification::parse(&failed).unwrap(),
            Notification::Training {
                status: TrainingStatus::Failed,
                ..
            }
        ));
    }

    #[test]
    fn seed_md_export_placeholder_is_rejected_and_filled_is_accepted() {
        assert_eq!(
            Notification::parse(MD_EXPORT_TEMPLATE),
            Err(NotificationError::NotJson)
        );
        let url = "https://acct.blob.core.windows.net/backups/x.ONNX?sv=1&sig=abc";
        let filled = crate::seed::export(url);
        match Notification::parse(&filled).unwrap() {
            Notification::Export {
                status, model_uri, ..
            } => {
                assert_eq!(status, ExportStatus::Completed);
                assert_eq!(model_uri.as_deref(), Some(url));
            }
            other => panic!("parsed as {other:?}"),
        }
        let failed = filled.replace("ExportCompleted", "ExportFailed");
        assert!(matches!(
            Notification::parse(&failed).unwrap(),
            Notification::Export {
                status: ExportStatus::Failed,
                ..
            }
        ));
    }

    #[test]
    fn seed_txt_fragments_verbatim_are_rejected_but_parse_as_flat_objects() {
        for (fragment, kind) in [
            (TXT_CONNECTION_TEST, "ConnectionTest"),
            (TXT_TRAINING, "Training"),
        ] {
            assert_eq!(
                Notification::parse(fragment),
                Err(NotificationError::NotJson)
            );
            let n = Notification::parse(&format!("{{{fragment}}}")).unwrap();
            assert_eq!(n.kind(), kind);
        }
        let export = TXT_EXPORT.replace("{url}", "\"https://a.example/c/b\"");
        let n = Notification::parse(&format!("{{{export}}}")).unwrap();
        assert_eq!(n.kind(), "Export");
    }

    #[test]
    fn flat_and_nested_agree_and_canonical_round_trips() {
        let nested = format!(
            r#"{{"version":"1.0","type":"Export","Content":{{"projectId":"{P}","iterationId":"{I}","exportStatus":"ExportCompleted"}}}}"#
        );
        let flat = format!(
            r#"{{"version":"1.0","type":"Export","projectId":"{P}","iterationId":"{I}","exportStatus":"ExportCompleted"}}"#
        );
        let a = Notification::parse(&nested).unwrap();
        assert_eq!(a, Notification::parse(&flat).unwrap());
        let canonical = Value::Object(a.to_canonical_json()).to_string();
        assert_eq!(Notification::parse(&canonical).unwrap(), a);
    }

    #[test]
    fn keys_and_values_are_case_insensitive() {
        let text = format!(
            r#"{{"Version":"1.2","TYPE":"training","content":{{"PROJECTID":"{}","iterationid":"{I}","TrainingStatus":"trainingcompleted"}}}}"#,
            P.to_uppercase()
        );
        let n = Notification::parse(&text).unwrap();
        assert_eq!(
            n.project_id().to_string(),
            P,
            "ids are normalised to lower case"
        );
    }

    #[test]
    fn base64_message_text_is_accepted() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        use base64::Engine as _;
        for engine in [STANDARD, URL_SAFE] {
            let encoded = engine.encode(MD_TRAINING.as_bytes());
            assert_eq!(
                Notification::parse(&encoded).unwrap(),
                Notification::parse(MD_TRAINING).unwrap()
            );
        }
        assert_eq!(
            Notification::parse(&STANDARD.encode("plain words")),
            Err(NotificationError::NotJson)
        );
    }

    #[test]
    fn rejections_carry_a_reason() {
        let cases: Vec<(String, NotificationError)> = vec![
            ("".into(), NotificationError::Empty),
            ("   \n".into(), NotificationError::Empty),
            ("not json at all".into(), NotificationError::NotJson),
            ("{\"type\":".into(), NotificationError::NotJson),
            ("[1,2]".into(), NotificationError::NotAnObject("an array")),
            (
                "\"hello\"".into(),
                NotificationError::NotAnObject("a string"),
            ),
            ("42".into(), NotificationError::NotAnObject("a number")),
            (
                r#"{"version":"1.0"}"#.into(),
                NotificationError::Missing("type"),
            ),
            (
                r#"{"version":"2.0","type":"Training"}"#.into(),
                NotificationError::UnsupportedVersion("2.0".into()),
            ),
            (
                format!(r#"{{"type":"Deployment","Content":{{"projectId":"{P}"}}}}"#),
                NotificationError::UnknownType("Deployment".into()),
            ),
            (
                r#"{"type":"ConnectionTest","Content":{}}"#.into(),
                NotificationError::Missing("projectId"),
            ),
            (
                r#"{"type":"ConnectionTest","Content":{"projectId":"../../etc"}}"#.into(),
                NotificationError::Invalid(DomainError::BadGuid {
                    field: "projectId",
                    value: "../../etc".into(),
                }),
            ),
            (
                format!(
                    r#"{{"type":"Training","Content":{{"projectId":"{P}","iterationId":"{I}"}}}}"#
                ),
                NotificationError::Missing("trainingStatus"),
            ),
            (
                format!(
                    r#"{{"type":"Export","Content":{{"projectId":"{P}","iterationId":"{I}","exportStatus":"Exporting"}}}}"#
                ),
                NotificationError::UnknownStatus {
                    field: "exportStatus",
                    value: "Exporting".into(),
                },
            ),
            (
                format!(
                    r#"{{"type":"Training","Content":{{"projectId":"{P}","iterationId":42,"trainingStatus":"TrainingFailed"}}}}"#
                ),
                NotificationError::NotAString {
                    field: "iterationId",
                },
            ),
        ];
        for (text, expected) in cases {
            let got = Notification::parse(&text);
            assert_eq!(got, Err(expected.clone()), "for {text:?}");
            assert!(!expected.to_string().is_empty());
        }
    }

    #[test]
    fn long_input_is_truncated_in_reasons() {
        let long = "x".repeat(10_000);
        let err = Notification::parse(&format!(r#"{{"type":"{long}","projectId":"{P}"}}"#))
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
    }
}

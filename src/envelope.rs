//! The Functions host's invocation envelope (`shared/HOST-CONTRACT.md`): what the host POSTs
//! to `/<FunctionName>` and the JSON it expects back. Decoding quirks live here and nowhere else.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Name of the queue-trigger binding in every `function.json` of this app.
pub const TRIGGER_BINDING: &str = "notification";

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the invocation body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the invocation has no Data.{0}")]
    MissingBinding(String),
    #[error("Data.{0} is neither a string nor an object")]
    UnexpectedBindingType(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvocationRequest {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

impl InvocationRequest {
    pub fn from_slice(body: &[u8]) -> Result<Self, EnvelopeError> {
        serde_json::from_slice(body).map_err(EnvelopeError::NotJson)
    }

    /// The queue message text of a binding. The host encodes it twice (a JSON string whose
    /// content is a JSON string literal); Microsoft's docs show it once. Exactly the host's
    /// layer is removed: one decode when the value is a JSON string literal, never more, so a
    /// message whose own text is a JSON string literal (`"hello"`) arrives as it was sent.
    /// An object is accepted too (its JSON text).
    pub fn message_text(&self, binding: &str) -> Result<String, EnvelopeError> {
        let value = self
            .data
            .get(binding)
            .ok_or_else(|| EnvelopeError::MissingBinding(binding.to_string()))?;
        match value {
            Value::String(s) => Ok(unwrap_host_layer(s)),
            Value::Object(_) => Ok(value.to_string()),
            _ => Err(EnvelopeError::UnexpectedBindingType(binding.to_string())),
        }
    }

    /// `DequeueCount` arrives as a string (`"1"`) from the host; accept a number too.
    pub fn dequeue_count(&self) -> Option<u32> {
        match self.metadata.get("DequeueCount")? {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => unwrap_host_layer(s).trim().parse().ok(),
            _ => None,
        }
    }

    /// `Id` arrives JSON-quoted (`"\"800a…\""`).
    pub fn message_id(&self) -> Option<String> {
        match self.metadata.get("Id")? {
            Value::String(s) => Some(unwrap_host_layer(s)),
            _ => None,
        }
    }
}

/// One JSON-string decode if `raw` is a JSON string literal, else `raw` as it is.
fn unwrap_host_layer(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(inner)) => inner,
        _ => raw.to_string(),
    }
}

/// What the handler answers. `ReturnValue` is always present (null): the host wants JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<Value>,
}

impl InvocationResponse {
    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }

    /// Objects only: the host writes a top-level string that happens to be valid base64 as the
    /// decoded bytes, so a message is never sent as a bare string.
    pub fn output(mut self, binding: &str, message: Map<String, Value>) -> Self {
        self.outputs
            .insert(binding.to_string(), Value::Object(message));
        self
    }

    /// Exact bytes for a blob output: the same host rule, used on purpose. A base64 string is
    /// written as its decoded bytes (`Convert.FromBase64String` in the host's
    /// `HttpScriptInvocationResultExtensions`), so every byte lands as given.
    pub fn output_bytes(mut self, binding: &str, bytes: &[u8]) -> Self {
        self.outputs.insert(
            binding.to_string(),
            Value::String(crate::base64text::encode(bytes)),
        );
        self
    }
}

/// Invocation bodies in the three shapes seen in captures (HOST-CONTRACT.md), for the tests
/// and the benchmarks.
pub mod captured {
    /// As the host's source builds it: `Data` encoded twice, metadata quoted, the message's
    /// keys copied into `Metadata`.
    pub const TWICE: &str = r#"{"Data":{"notification":"\"{\\\"version\\\":\\\"1.0\\\",\\\"type\\\":\\\"Training\\\",\\\"Content\\\":{\\\"projectId\\\":\\\"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b\\\",\\\"iterationId\\\":\\\"1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0\\\",\\\"trainingStatus\\\":\\\"TrainingCompleted\\\"}}\""},
 "Metadata":{"DequeueCount":"1","ExpirationTime":"2026-01-08T10:00:00+00:00","Id":"\"800ae4b3-bdd2-4c08-badd-f08e5a34b865\"",
  "InsertionTime":"2026-01-01T10:00:00+00:00","NextVisibleTime":"2026-01-01T10:10:00+00:00","PopReceipt":"\"AgAAAAMAAAAAAAAAAgtnj8x+1QE=\"",
  "version":"\"1.0\"","type":"\"Training\"","Content":{"projectId":"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b","iterationId":"1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0","trainingStatus":"TrainingCompleted"},
  "sys":{"MethodName":"Notifications","UtcNow":"2026-01-01T10:00:01.1234567Z","RandGuid":"24ad4c06-0000-0000-0000-000000000000"}}}"#;

    /// As Microsoft's custom-handler page shows it: `Data` encoded once, `DequeueCount` a
    /// number, `Id` unquoted.
    pub const ONCE: &str = r#"{"Data":{"notification":"{\"version\":\"1.0\",\"type\":\"ConnectionTest\",\"Content\":{\"projectId\":\"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b\"}}"},
 "Metadata":{"DequeueCount":1,"ExpirationTime":"2026-01-08T10:00:00+00:00","Id":"800ae4b3-bdd2-4c08-badd-f08e5a34b866",
  "InsertionTime":"2026-01-01T10:00:00+00:00","NextVisibleTime":"2026-01-01T10:10:00+00:00","PopReceipt":"AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
  "sys":{"MethodName":"Notifications","UtcNow":"2026-01-01T10:00:01.1234567Z","RandGuid":"24ad4c06-0000-0000-0000-000000000001"}}}"#;

    /// As a real queue gave it: `Data` encoded twice, and only the message's string-valued keys
    /// in `Metadata`, quoted (a flat Export here).
    pub const METADATA_KEYS: &str = r#"{"Data":{"notification":"\"{\\\"version\\\":\\\"1.0\\\",\\\"type\\\":\\\"Export\\\",\\\"projectId\\\":\\\"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b\\\",\\\"iterationId\\\":\\\"1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0\\\",\\\"exportStatus\\\":\\\"ExportCompleted\\\"}\""},
 "Metadata":{"DequeueCount":"2","ExpirationTime":"2026-01-08T10:00:00+00:00","Id":"\"800ae4b3-bdd2-4c08-badd-f08e5a34b867\"",
  "InsertionTime":"2026-01-01T10:00:00+00:00","NextVisibleTime":"2026-01-01T10:10:00+00:00","PopReceipt":"\"AgAAAAMAAAAAAAAAAgtnj8x+1QE=\"",
  "version":"\"1.0\"","type":"\"Export\"","projectId":"\"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b\"","iterationId":"\"1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0\"","exportStatus":"\"ExportCompleted\"",
  "sys":{"MethodName":"Notifications","UtcNow":"2026-01-01T10:00:01.1234567Z","RandGuid":"24ad4c06-0000-0000-0000-000000000002"}}}"#;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::captured::TWICE as CAPTURED;

    #[test]
    fn captured_payload_decodes() {
        let req = InvocationRequest::from_slice(CAPTURED.as_bytes()).unwrap();
        let text = req.message_text(TRIGGER_BINDING).unwrap();
        assert!(
            text.starts_with(r#"{"version":"1.0","type":"Training""#),
            "{text}"
        );
        assert_eq!(req.dequeue_count(), Some(1));
        assert_eq!(
            req.message_id().as_deref(),
            Some("800ae4b3-bdd2-4c08-badd-f08e5a34b865")
        );
    }

    #[test]
    fn single_encoding_object_and_plain_text_are_accepted() {
        let msg = r#"{"type":"ConnectionTest"}"#;
        for data in [
            json!(msg),                                  // encoded once (the docs' version)
            json!(serde_json::to_string(msg).unwrap()),  // twice (the host's)
            serde_json::from_str::<Value>(msg).unwrap(), // an object
        ] {
            let req: InvocationRequest =
                serde_json::from_value(json!({"Data": {"notification": data}})).unwrap();
            let text = req.message_text("notification").unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                serde_json::from_str::<Value>(msg).unwrap()
            );
        }
        let req: InvocationRequest =
            serde_json::from_value(json!({"Data": {"notification": "\"eyJhIjoxfQ==\""}})).unwrap();
        assert_eq!(req.message_text("notification").unwrap(), "eyJhIjoxfQ==");
    }

    #[test]
    fn exactly_the_host_layer_is_removed() {
        // The host encodes the message text once more than it is; one decode undoes that.
        for message in [
            "\"hello\"",
            r#""{\"type\":\"ConnectionTest\"}""#,
            "plain",
            "{\"a\":1}",
        ] {
            let data = serde_json::to_string(message).unwrap();
            let req: InvocationRequest =
                serde_json::from_value(json!({"Data": {"notification": data}})).unwrap();
            assert_eq!(req.message_text("notification").unwrap(), message);
        }
    }

    #[test]
    fn all_three_captured_shapes_decode() {
        use super::captured::{METADATA_KEYS, ONCE, TWICE};
        for (body, starts, count) in [
            (TWICE, r#"{"version":"1.0","type":"Training""#, 1),
            (ONCE, r#"{"version":"1.0","type":"ConnectionTest""#, 1),
            (METADATA_KEYS, r#"{"version":"1.0","type":"Export""#, 2),
        ] {
            let req = InvocationRequest::from_slice(body.as_bytes()).unwrap();
            let text = req.message_text(TRIGGER_BINDING).unwrap();
            assert!(text.starts_with(starts), "{text}");
            assert_eq!(req.dequeue_count(), Some(count));
            assert!(req.message_id().unwrap().starts_with("800ae4b3-"));
        }
    }

    #[test]
    fn envelope_errors() {
        assert!(matches!(
            InvocationRequest::from_slice(b"nope"),
            Err(EnvelopeError::NotJson(_))
        ));
        let req = InvocationRequest::from_slice(br#"{"Data":{"other":"x"}}"#).unwrap();
        assert!(matches!(
            req.message_text("notification"),
            Err(EnvelopeError::MissingBinding(b)) if b == "notification"
        ));
        let req = InvocationRequest::from_slice(br#"{"Data":{"notification":[1]}}"#).unwrap();
        assert!(matches!(
            req.message_text("notification"),
            Err(EnvelopeError::UnexpectedBindingType(_))
        ));
    }

    #[test]
    fn dequeue_count_as_number_or_string() {
        for (raw, expected) in [
            (json!(3), Some(3)),
            (json!("4"), Some(4)),
            (json!("\"5\""), Some(5)),
            (json!("x"), None),
        ] {
            let req: InvocationRequest =
                serde_json::from_value(json!({"Metadata": {"DequeueCount": raw}})).unwrap();
            assert_eq!(req.dequeue_count(), expected);
        }
    }

    #[test]
    fn response_shape_matches_the_contract() {
        let mut msg = Map::new();
        msg.insert("a".into(), json!(1));
        let body = serde_json::to_value(InvocationResponse::default().log("hi").output("out", msg))
            .unwrap();
        assert_eq!(
            body,
            json!({"Outputs": {"out": {"a": 1}}, "Logs": ["hi"], "ReturnValue": null})
        );
    }
}

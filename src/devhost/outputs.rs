//! How the host turns an `Outputs.<binding>` value into what it writes, read from its source
//! (azure-functions-host `HttpScriptInvocationResultExtensions.GetBindingValue`,
//! `FunctionBinding.ReadAsEnumerable` / `BindAsyncCollectorAsync` / `ConvertValueToStream`;
//! the WebJobs SDK picks `IAsyncCollector<byte[]>` as a queue output's default type).
//!
//! First, for every binding, a string that `Convert.FromBase64String` accepts becomes its
//! decoded bytes. Then:
//! - a queue output is a list of messages: an array (or a string holding JSON) is one message
//!   per element, anything else one message; an object is written as `JToken.ToString()`
//!   writes it, indented.
//! - a blob output is one blob: bytes as they are, a string as UTF-8, an object or array as
//!   compact JSON, an integer as four little-endian bytes (`BitConverter.GetBytes((int)v)`).

use serde_json::Value;

use crate::base64text::decode_dotnet;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The host's `JToken.Parse` throws on such a string, and the invocation fails.
    #[error("a string output looks like JSON but does not parse: {0}")]
    BadJson(#[source] serde_json::Error),
    /// A blob output's path the host cannot bind ([`resolve_path`]).
    #[error("unbalanced braces in '{template}'")]
    UnbalancedBraces { template: String },
    #[error("'{template}': no binding data named {name}")]
    NoBindingData { template: String, name: String },
}

/// The messages a queue output binding writes for `value`.
pub fn queue_messages(value: &Value) -> Result<Vec<String>, OutputError> {
    Ok(match value {
        Value::Null => Vec::new(),
        Value::String(s) => match decode_dotnet(s) {
            Some(bytes) => vec![String::from_utf8_lossy(&bytes).into_owned()],
            None if is_json(s) => {
                let parsed: Value = serde_json::from_str(s).map_err(OutputError::BadJson)?;
                match parsed {
                    Value::Array(items) => items.iter().map(token_to_string).collect(),
                    other => vec![token_to_string(&other)],
                }
            }
            None => vec![s.clone()],
        },
        Value::Array(items) => items.iter().map(token_to_string).collect(),
        other => vec![token_to_string(other)],
    })
}

/// The bytes a blob output binding writes for `value`; `None` writes nothing.
pub fn blob_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(decode_dotnet(s).unwrap_or_else(|| s.as_bytes().to_vec())),
        Value::Bool(b) => Some(vec![u8::from(*b)]),
        Value::Number(n) => Some(match n.as_i64() {
            // `BitConverter.GetBytes(unchecked((int)(long)value))`.
            Some(i) => (i as i32).to_le_bytes().to_vec(),
            None => n.as_f64().unwrap_or_default().to_le_bytes().to_vec(),
        }),
        Value::Object(_) | Value::Array(_) => Some(value.to_string().into_bytes()),
    }
}

/// `Utility.IsJson`: trimmed, starts with `{` and ends with `}`, or `[` and `]`.
fn is_json(s: &str) -> bool {
    let t = s.trim();
    (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']'))
}

/// `JToken.ToString()`: a string's own text, C#'s spelling of booleans, objects indented.
fn token_to_string(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::Object(_) | Value::Array(_) => {
            serde_json::to_string_pretty(value).unwrap_or_default()
        }
    }
}

/// Resolves the `{name}` expressions of a blob path from the trigger's binding data
/// (`Id`, `DequeueCount`, `PopReceipt`, `rand-guid`, `sys.*`), case-insensitively as the host
/// does. An expression the data does not have fails the binding, and the invocation.
pub fn resolve_path(template: &str, data: &[(&str, String)]) -> Result<String, OutputError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| OutputError::UnbalancedBraces {
                template: template.to_string(),
            })?;
        let name = &after[..end];
        let value = if name.eq_ignore_ascii_case("rand-guid") {
            uuid::Uuid::new_v4().to_string()
        } else {
            data.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| OutputError::NoBindingData {
                    template: template.to_string(),
                    name: name.to_string(),
                })?
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queue_outputs_become_messages_like_the_host() {
        let indented = "{\n  \"a\": 1\n}";
        assert_eq!(queue_messages(&json!({"a": 1})).unwrap(), vec![indented]);
        assert_eq!(
            queue_messages(&json!([{"a": 1}, "x"])).unwrap(),
            vec![indented, "x"]
        );
        assert_eq!(queue_messages(&json!("aGVsbG8=")).unwrap(), vec!["hello"]);
        assert_eq!(
            queue_messages(&json!("aGVs\r\nbG8=")).unwrap(),
            vec!["hello"],
            "line breaks are skipped as .NET does"
        );
        assert_eq!(
            queue_messages(&json!("not base64!")).unwrap(),
            vec!["not base64!"]
        );
        assert_eq!(
            queue_messages(&json!("[1, true]")).unwrap(),
            vec!["1", "True"]
        );
        assert!(queue_messages(&json!("{nope}")).is_err());
        assert!(queue_messages(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn blob_outputs_become_bytes_like_the_host() {
        assert_eq!(blob_bytes(&json!("AAEC")).unwrap(), vec![0, 1, 2]);
        assert_eq!(blob_bytes(&json!("plain text")).unwrap(), b"plain text");
        assert_eq!(blob_bytes(&json!({"a": [1]})).unwrap(), br#"{"a":[1]}"#);
        assert_eq!(blob_bytes(&json!(258)).unwrap(), vec![2, 1, 0, 0]);
        assert_eq!(blob_bytes(&Value::Null), None);
    }

    #[test]
    fn blob_paths_resolve_from_binding_data() {
        let data = [("Id", "abc".to_string())];
        assert_eq!(
            resolve_path("rejected/Notifications/{Id}.txt", &data).unwrap(),
            "rejected/Notifications/abc.txt"
        );
        assert_eq!(resolve_path("c/{id}", &data).unwrap(), "c/abc");
        assert!(resolve_path("c/{Nope}", &data).is_err());
        assert!(resolve_path("c/{Id", &data).is_err());
    }
}

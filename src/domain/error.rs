//! Why a value is not one of the domain's.

/// A value that does not parse. Permanent: the same text gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// `field` names the value as the notification contract does (`projectId`, ...).
    #[error("field '{field}' is not a GUID: '{value}'")]
    BadGuid { field: &'static str, value: String },
}

/// Bounds what an error quotes back from untrusted input.
pub(crate) fn truncate(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

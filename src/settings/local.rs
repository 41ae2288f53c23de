//! `local.settings.json`, as Core Tools reads it: its `Values` are the app settings of a local
//! run, real environment variables win. Read by the dev host (which resolves `%NAME%` in
//! `function.json` from them) and by `cvctl`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A JSON file that cannot be read or parsed: `local.settings.json` here, `host.json` and
/// `function.json` in the dev host.
#[derive(Debug, thiserror::Error)]
pub enum JsonFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A `%NAME%` reference the settings cannot resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unbalanced % in '{text}'")]
    Unbalanced { text: String },
    #[error("'{text}' names setting {name}, which is not set")]
    NotSet { text: String, name: String },
}

/// App settings: `local.settings.json` Values overlaid by the process environment.
#[derive(Debug, Clone, Default)]
pub struct AppSettings {
    values: BTreeMap<String, String>,
}

impl AppSettings {
    pub fn load(root: &Path, env: &HashMap<String, String>) -> Result<Self, JsonFileError> {
        let path = root.join("local.settings.json");
        let mut values = BTreeMap::new();
        if path.exists() {
            let json = read_json(&path)?;
            if let Some(map) = json.get("Values").and_then(Value::as_object) {
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    values.insert(k.clone(), v);
                }
            }
        }
        for (k, v) in env {
            if values.contains_key(k) {
                values.insert(k.clone(), v.clone());
            }
        }
        Ok(Self { values })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.values
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    /// What the handler process gets on top of the inherited environment.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Resolves `%NAME%` as the host does; an unknown setting is an error, not an empty name.
    pub fn resolve(&self, text: &str) -> Result<String, ResolveError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let end = after.find('%').ok_or_else(|| ResolveError::Unbalanced {
                text: text.to_string(),
            })?;
            let name = &after[..end];
            let value = self.get(name).ok_or_else(|| ResolveError::NotSet {
                text: text.to_string(),
                name: name.to_string(),
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The JSON in the file at `path`.
pub fn read_json(path: &Path) -> Result<Value, JsonFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| JsonFileError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve_percent_names() {
        let mut s = AppSettings::default();
        s.set("Q", "customvision-notifications");
        assert_eq!(s.resolve("%Q%").unwrap(), "customvision-notifications");
        assert_eq!(s.resolve("plain").unwrap(), "plain");
        assert_eq!(
            s.resolve("%NOT_SET_ANYWHERE_42%"),
            Err(ResolveError::NotSet {
                text: "%NOT_SET_ANYWHERE_42%".into(),
                name: "NOT_SET_ANYWHERE_42".into()
            })
        );
        assert_eq!(
            s.resolve("%Q"),
            Err(ResolveError::Unbalanced { text: "%Q".into() })
        );
    }
}

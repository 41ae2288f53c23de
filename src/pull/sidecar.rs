//! What a pull remembers beside the file it wrote (`PATH.pull.json`): which blob it came from
//! and that blob's ETag, so the next pull of the same model asks with `If-None-Match` and an
//! unchanged model is not downloaded again.
//!
//! Written after the model's rename, so a pull killed in between leaves an older record that
//! the next pull ignores (its ETag no longer matches): never a record newer than the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FileError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remembered {
    pub project_id: String,
    pub iteration_id: String,
    pub platform: String,
    /// The blob's path in the model store.
    pub path: String,
    /// As the service sent it (quoted).
    pub etag: String,
    pub size: u64,
    /// Base64, as storage reports it.
    pub content_md5: Option<String>,
}

/// `PATH.pull.json`.
pub fn path_of(out: &Path) -> PathBuf {
    with_suffix(out, ".pull.json")
}

/// `PATH` with `suffix` appended to its file name, in the same folder (a rename stays on one
/// file system).
pub(super) fn with_suffix(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    out.with_file_name(name)
}

impl Remembered {
    /// The record beside `out`, if there is one that parses and `out` still has the size it
    /// records (a file changed by hand is downloaded again).
    pub fn read(out: &Path) -> Option<Self> {
        let text = std::fs::read(path_of(out)).ok()?;
        let remembered: Self = serde_json::from_slice(&text).ok()?;
        let size = std::fs::metadata(out).ok()?.len();
        (size == remembered.size).then_some(remembered)
    }

    /// Written to a temporary file and renamed over the old record.
    pub fn write(&self, out: &Path) -> Result<(), FileError> {
        let path = path_of(out);
        let partial = with_suffix(&path, ".partial");
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        std::fs::write(&partial, body).map_err(FileError::of("write", &partial))?;
        std::fs::rename(&partial, &path).map_err(FileError::of("rename", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembered(size: u64) -> Remembered {
        Remembered {
            project_id: "p".into(),
            iteration_id: "i".into(),
            platform: "ONNX".into(),
            path: "p/i/ONNX/m.onnx".into(),
            etag: "\"0x1\"".into(),
            size,
            content_md5: None,
        }
    }

    #[test]
    fn a_record_holds_only_while_the_file_has_its_size() {
        let dir = std::env::temp_dir().join(format!("pull-sidecar-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("model.onnx");
        assert_eq!(path_of(&out), dir.join("model.onnx.pull.json"));
        std::fs::write(&out, b"12345").unwrap();
        assert_eq!(Remembered::read(&out), None, "no record yet");
        remembered(5).write(&out).unwrap();
        assert_eq!(Remembered::read(&out), Some(remembered(5)));
        std::fs::write(&out, b"123").unwrap();
        assert_eq!(Remembered::read(&out), None, "the file changed under it");
        std::fs::remove_file(&out).unwrap();
        assert_eq!(Remembered::read(&out), None, "the file is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The file a pull writes: `PATH.partial` beside `PATH`, hashed as it is written, renamed onto
//! `PATH` only once whole and verified. A pull that fails removes it; one that is killed
//! leaves it (the next pull truncates it), never a half file at `PATH`.
//!
//! Plain `std::fs`: the pull is the CLI's one task, so a chunk's write blocking the runtime
//! for a moment holds up nothing else.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::sidecar::with_suffix;
use super::FileError;

pub(super) struct PartialFile {
    path: PathBuf,
    file: Option<File>,
    md5: Md5,
    written: u64,
}

impl PartialFile {
    pub(super) fn create(out: &Path) -> Result<Self, FileError> {
        let path = with_suffix(out, ".partial");
        let file = File::create(&path).map_err(FileError::of("create", &path))?;
        Ok(Self {
            path,
            file: Some(file),
            md5: Md5::new(),
            written: 0,
        })
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        if let Some(file) = &mut self.file {
            file.write_all(bytes)
                .map_err(FileError::of("write", &self.path))?;
        }
        self.md5.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// The MD5 of everything written so far.
    pub(super) fn md5(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }

    /// On disk, then renamed onto `out`: `out` is the old file or the whole new one, never a
    /// mix.
    pub(super) fn commit(mut self, out: &Path) -> Result<(), FileError> {
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(FileError::of("sync", &self.path))?;
        }
        std::fs::rename(&self.path, out).map_err(FileError::of("rename", out))?;
        // Renamed: nothing left for Drop to remove.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        // Failed or refused: the partial file goes (a kill skips this; the next pull
        // truncates what it left).
        if !self.path.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_committed_file_reaches_its_path() {
        let dir = std::env::temp_dir().join(format!("pull-file-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("model.onnx");
        let mut partial = PartialFile::create(&out).unwrap();
        partial.write(b"abc").unwrap();
        assert_eq!(partial.written(), 3);
        // RFC 1321's test vector for "abc".
        assert_eq!(
            partial.md5(),
            [
                0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1,
                0x7f, 0x72
            ]
        );
        assert!(dir.join("model.onnx.partial").exists());
        drop(partial);
        assert!(
            !dir.join("model.onnx.partial").exists(),
            "a dropped pull leaves nothing"
        );
        assert!(!out.exists());

        let mut partial = PartialFile::create(&out).unwrap();
        partial.write(b"abc").unwrap();
        partial.commit(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"abc");
        assert!(!dir.join("model.onnx.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The store's reading side, for devices and pipelines: one model of a project, fetched only
//! when it changed (`cvctl pull`).
//!
//! One GET of `{projectId}/index.json` ([`load_index`]) picks the model
//! ([`ModelIndex::pick`](crate::model_store::ModelIndex::pick)); a second GET fetches it,
//! conditional on the ETag remembered beside the file ([`sidecar`]), so an unchanged model
//! costs a `304` and no body. The bytes go to `PATH.partial`, are checked against the blob's
//! Content-MD5 and only then renamed onto `PATH` ([`file`]).

mod file;
mod sidecar;

use std::path::{Path, PathBuf};

use azure_core::http::{Etag, StatusCode};
use azure_storage_blob::models::BlobClientDownloadOptions;
use azure_storage_blob::BlobContainerClient;
use base64::Engine as _;
use futures::StreamExt;
use serde::Serialize;

use crate::domain::ProjectId;
use crate::model_store::{load_index, platform_label, ModelStoreError, Pick};
use crate::naming::stored::index_path;
use crate::storage::StorageActionError;
use file::PartialFile;
use sidecar::Remembered;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Store(#[from] ModelStoreError),
    #[error("project {project_id} has no index in the model store yet ('{path}')")]
    NoIndex { project_id: ProjectId, path: String },
    #[error("the index of project {project_id} lists no {platform} model{which}")]
    NotInIndex {
        project_id: ProjectId,
        platform: String,
        /// `" of iteration …"`, or nothing for the newest.
        which: String,
    },
    /// A request for the model failed (shown redacted, as every storage error).
    #[error("'{path}': {source}")]
    Download {
        path: String,
        #[source]
        source: StorageActionError,
    },
    #[error("'{path}' came with MD5 {actual}, but its Content-MD5 is {expected}: refused, nothing written")]
    Md5Mismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// A local file could not be written, synced or renamed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} '{}': {source}", .path.display())]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// `map_err(FileError::of("write", &path))`.
    pub(crate) fn of<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl Fn(std::io::Error) -> Self + 'a {
        move |source| Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl PullError {
    /// The storage request under the failure, if one failed: it tells an unreachable
    /// service from a refusal.
    pub fn request_error(&self) -> Option<&StorageActionError> {
        match self {
            Self::Download { source, .. } | Self::Store(ModelStoreError::Request(source)) => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// Told how far a download is; the CLI draws a bar, a library caller may ignore it.
pub trait Progress: Sync {
    /// The body starts; `total` bytes when known.
    fn start(&self, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {}

/// What to pull, and where to.
#[derive(Debug, Clone)]
pub struct PullRequest<'a> {
    pub project_id: ProjectId,
    /// A platform in any case (`onnx`) or a label such as `zip`.
    pub platform: &'a str,
    pub pick: Pick,
    pub out: &'a Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The model was fetched and is at the path now.
    Downloaded,
    /// The file at the path is the model already: `304`, no body.
    Unchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Md5Check {
    /// The bytes' MD5 equals the blob's Content-MD5 (or, when the blob has none, the index's).
    Verified,
    /// Neither the blob nor the index has one: nothing to check against.
    Absent,
    /// Checked when it was downloaded (an unchanged model is not read again).
    Earlier,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pulled {
    pub outcome: Outcome,
    pub project_id: String,
    pub iteration_id: String,
    pub platform: String,
    /// The model's path in the model store.
    pub path: String,
    pub out: PathBuf,
    pub etag: String,
    pub size: u64,
    /// Base64.
    pub content_md5: Option<String>,
    pub md5: Md5Check,
    /// Body bytes received (0 when unchanged).
    pub transferred: u64,
}

/// Pulls the model `request` names from `store` (the model store container, however
/// authorised) to `request.out`.
pub async fn pull(
    store: &BlobContainerClient,
    request: &PullRequest<'_>,
    progress: &dyn Progress,
) -> Result<Pulled, PullError> {
    let project_id = request.project_id;
    let (index, _) = load_index(store, project_id)
        .await?
        .ok_or_else(|| PullError::NoIndex {
            project_id,
            path: index_path(project_id),
        })?;
    let entry =
        index
            .pick(request.platform, request.pick)
            .ok_or_else(|| PullError::NotInIndex {
                project_id,
                platform: platform_label(request.platform),
                which: match request.pick {
                    Pick::Latest => String::new(),
                    Pick::Iteration(i) => format!(" of iteration {i}"),
                },
            })?;
    let out = request.out;
    // An ETag only says something about the blob it came from.
    let remembered = Remembered::read(out).filter(|r| r.path == entry.path);
    let options = BlobClientDownloadOptions {
        if_none_match: remembered.as_ref().map(|r| Etag::from(r.etag.clone())),
        ..Default::default()
    };
    let failed = |source| PullError::Download {
        path: entry.path.clone(),
        source: StorageActionError::of("read the model")(source),
    };
    let mut pulled = Pulled {
        outcome: Outcome::Unchanged,
        project_id: project_id.to_string(),
        iteration_id: entry.iteration_id.clone(),
        platform: entry.platform.clone(),
        path: entry.path.clone(),
        out: out.to_path_buf(),
        etag: String::new(),
        size: 0,
        content_md5: None,
        md5: Md5Check::Earlier,
        transferred: 0,
    };
    let response = match store.blob_client(&entry.path).download(Some(options)).await {
        Ok(r) => r,
        Err(e) if e.http_status() == Some(StatusCode::NotModified) => {
            let Some(r) = remembered else {
                return Err(failed(e));
            };
            pulled.etag = r.etag;
            pulled.size = r.size;
            pulled.content_md5 = r.content_md5;
            return Ok(pulled);
        }
        Err(e) => return Err(failed(e)),
    };
    let properties = &response.properties;
    let etag = properties
        .etag
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    // A ranged read (the SDK's first request is one) carries the whole blob's MD5 in
    // `x-ms-blob-content-md5`; a whole read in `Content-MD5`.
    let expected = properties
        .blob_content_md5
        .clone()
        .or_else(|| properties.content_md5.clone())
        .or_else(|| {
            entry
                .content_md5
                .as_ref()
                .and_then(|m| base64::engine::general_purpose::STANDARD.decode(m).ok())
        });
    let mut partial = PartialFile::create(out)?;
    progress.start(entry.size);
    let mut body = response.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(failed)?;
        partial.write(&chunk)?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let b64 = |m: &[u8]| base64::engine::general_purpose::STANDARD.encode(m);
    let actual = partial.md5();
    pulled.md5 = match &expected {
        Some(expected) if expected.as_slice() != actual => {
            return Err(PullError::Md5Mismatch {
                path: entry.path.clone(),
                expected: b64(expected),
                actual: b64(&actual),
            })
        }
        Some(_) => Md5Check::Verified,
        None => Md5Check::Absent,
    };
    pulled.outcome = Outcome::Downloaded;
    pulled.etag = etag;
    pulled.size = partial.written();
    pulled.transferred = partial.written();
    pulled.content_md5 = expected.as_deref().map(b64);
    partial.commit(out)?;
    Remembered {
        project_id: pulled.project_id.clone(),
        iteration_id: pulled.iteration_id.clone(),
        platform: pulled.platform.clone(),
        path: pulled.path.clone(),
        etag: pulled.etag.clone(),
        size: pulled.size,
        content_md5: pulled.content_md5.clone(),
    }
    .write(out)?;
    Ok(pulled)
}

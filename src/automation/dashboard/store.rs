//! The dashboard's edge: one listing of the project's reports (which also gives the current
//! page's ETag and digest), a read of each report and of the index, and a conditional write.
//!
//! The figures come from the report JSONs themselves (`reports/{projectId}/{iterationId}.json`
//! already holds the iteration, its figures and the gate's decision), so reports written
//! before the dashboard existed count too, and there is no second record to keep in step.
//!
//! Races: the write is conditional on the ETag the listing saw (or on there being no page),
//! and a lost race lists and reads again. So the last page written was gathered after every
//! change whose refresh started before it: two exports finishing together never leave a page
//! that misses one of them. An unchanged page (same SHA-256, kept in its metadata) is not
//! written, so a redelivered notification writes nothing.

use std::time::Duration;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::BlobClientUploadOptions;
use azure_storage_blob::BlobContainerClient;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::{page, path, summarise, Dashboard, DASHBOARD_FILE};
use crate::automation::report::Report;
use crate::domain::{IterationId, ProjectId};
use crate::model_store::ModelIndex;
use crate::naming::stored::{index_path, reports_prefix};
use crate::storage::{list_blobs, quoted_etag, StorageActionError};

use crate::naming::stored::DIGEST_KEY;
/// Lost races before giving up; the message's retry tries again later.
const ATTEMPTS: usize = 20;
/// Reports read at once.
const READS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("dashboard: {0}")]
    Storage(#[from] StorageActionError),
    #[error("dashboard: {path} kept changing: {attempts} writes lost the race")]
    Contended { path: String, attempts: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    Written,
    Unchanged,
}

/// Writes the project's dashboard from what the store holds now.
pub async fn refresh(
    store: &BlobContainerClient,
    project_id: ProjectId,
) -> Result<Refreshed, DashboardError> {
    let target = path(project_id);
    let mut delay = Duration::from_millis(10);
    for _ in 0..ATTEMPTS {
        let (dashboard, current) = gather(store, project_id).await?;
        let (html, digest) = rendered(&dashboard);
        if current
            .as_ref()
            .is_some_and(|c| c.digest.as_deref() == Some(digest.as_str()))
        {
            return Ok(Refreshed::Unchanged);
        }
        match write(store, &target, html, digest, current.map(|c| c.etag)).await {
            Ok(()) => return Ok(Refreshed::Written),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::PreconditionFailed | StatusCode::Conflict)
                ) =>
            {
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
                tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(StorageActionError::of("write the dashboard")(e).into()),
        }
    }
    Err(DashboardError::Contended {
        path: target,
        attempts: ATTEMPTS,
    })
}

/// Whether the page the store holds is the one [`refresh`] would write now, from the reports
/// and the index as they stand: no refresh is pending. (`cvctl demo` waits on it.)
pub async fn is_current(
    store: &BlobContainerClient,
    project_id: ProjectId,
) -> Result<bool, DashboardError> {
    let (dashboard, current) = gather(store, project_id).await?;
    let (_, digest) = rendered(&dashboard);
    Ok(current.is_some_and(|c| c.digest.as_deref() == Some(digest.as_str())))
}

/// The page of `dashboard`, and its SHA-256 (hex), which its metadata keeps.
fn rendered(dashboard: &Dashboard) -> (String, String) {
    let html = page::render(dashboard);
    let digest = hex(&Sha256::digest(html.as_bytes()));
    (html, digest)
}

/// The page as it stands: its ETag and the digest it was written with.
struct Current {
    etag: String,
    digest: Option<String>,
}

/// The dashboard of what the store holds, and the page already there.
async fn gather(
    store: &BlobContainerClient,
    project_id: ProjectId,
) -> Result<(Dashboard, Option<Current>), DashboardError> {
    let prefix = reports_prefix(project_id);
    let listed = list_blobs(store, &prefix)
        .await
        .map_err(StorageActionError::of("list the reports"))?;
    let mut current = None;
    let mut names = Vec::new();
    for blob in listed {
        let Some(file) = blob.name.strip_prefix(&prefix) else {
            continue;
        };
        if file == DASHBOARD_FILE {
            current = Some(Current {
                etag: blob.etag.clone(),
                digest: blob.metadata.get(DIGEST_KEY).cloned(),
            });
        } else if file
            .strip_suffix(".json")
            .is_some_and(|id| IterationId::parse(id).is_ok())
        {
            names.push(blob.name);
        }
    }
    let read: Vec<(String, Option<Vec<u8>>)> = futures::stream::iter(names)
        .map(|name| async move {
            let bytes = download(store, &name).await?;
            Ok::<_, DashboardError>((name, bytes))
        })
        .buffered(READS)
        .try_collect()
        .await?;
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for (name, bytes) in read {
        // Gone since the listing (deleted by hand): nothing to show.
        let Some(bytes) = bytes else { continue };
        match serde_json::from_slice::<Report>(&bytes) {
            Ok(r) => reports.push(r),
            Err(_) => unreadable.push(name),
        }
    }
    let index = download(store, &index_path(project_id))
        .await?
        .and_then(|bytes| serde_json::from_slice::<ModelIndex>(&bytes).ok());
    let dashboard = summarise(
        &project_id.to_string(),
        &reports,
        index.as_ref(),
        unreadable,
    );
    Ok((dashboard, current))
}

async fn download(
    store: &BlobContainerClient,
    name: &str,
) -> Result<Option<Vec<u8>>, DashboardError> {
    match store.blob_client(name).download(None).await {
        Ok(r) => {
            let bytes = r
                .body
                .collect()
                .await
                .map_err(StorageActionError::of("read a report or the index"))?;
            Ok(Some(bytes.to_vec()))
        }
        Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
        Err(e) => Err(StorageActionError::of("read a report or the index")(e).into()),
    }
}

async fn write(
    store: &BlobContainerClient,
    target: &str,
    html: String,
    digest: String,
    etag: Option<String>,
) -> azure_core::Result<()> {
    let (if_match, if_none_match) = match etag {
        Some(etag) => (Some(quoted_etag(&etag).into()), None),
        None => (None, Some("*".to_string().into())),
    };
    let options = BlobClientUploadOptions {
        blob_content_type: Some("text/html; charset=utf-8".into()),
        blob_cache_control: Some("no-cache".into()),
        metadata: Some([(DIGEST_KEY.to_string(), digest)].into_iter().collect()),
        if_match,
        if_none_match,
        ..Default::default()
    };
    store
        .blob_client(target)
        .upload(RequestContent::from(html.into_bytes()), Some(options))
        .await?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

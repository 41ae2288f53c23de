//! A small view of a storage account for the demo and the integration tests: put blobs and
//! messages in, read copies, tags and queues back, wait for a condition with a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
use azure_storage_queue::models::{QueueClientPeekMessagesOptions, QueueMessage};

use crate::settings::{SettingsError, StorageConnection};
use crate::storage::{StorageAccount, StorageActionError, StorageError};

/// Why a probe could not look, or a wait ended without what it waited for.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe: {0}")]
    Settings(#[source] SettingsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Request(#[from] StorageActionError),
    /// What a caller's own check failed on while polling (a child process's `try_wait`, a
    /// socket).
    #[error("probe: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {deadline:?} waiting for {what}")]
    TimedOut { what: String, deadline: Duration },
}

#[derive(Clone)]
pub struct Probe {
    pub account: StorageAccount,
}

/// A blob as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobState {
    pub bytes: Vec<u8>,
    pub tags: HashMap<String, String>,
    pub metadata: HashMap<String, String>,
    pub etag: String,
    /// RFC 3339, as the service's Last-Modified says.
    pub last_modified: Option<String>,
}

impl Probe {
    pub fn from_connection_string(cs: &str) -> Result<Self, ProbeError> {
        let conn =
            StorageConnection::from_settings("PROBE", &|k| (k == "PROBE").then(|| cs.to_string()))
                .map_err(ProbeError::Settings)?;
        let http = crate::http::http_client();
        let account = StorageAccount::new(&conn, &http)?;
        Ok(Self { account })
    }

    pub async fn create_container(&self, name: &str) -> Result<(), ProbeError> {
        Ok(self.account.ensure_container(name).await?)
    }

    /// Deletes the container (a test of the handler creating it on demand).
    pub async fn delete_container(&self, name: &str) -> Result<(), ProbeError> {
        self.account
            .container(name)?
            .delete(None)
            .await
            .map_err(StorageActionError::of("Delete Container"))?;
        Ok(())
    }

    pub async fn create_queue(&self, name: &str) -> Result<(), ProbeError> {
        Ok(self.account.ensure_queue(name).await?)
    }

    pub async fn put_blob(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), ProbeError> {
        let c = self.account.container(container)?;
        c.blob_client(name)
            .upload(RequestContent::from(bytes.to_vec()), None)
            .await
            .map_err(StorageActionError::of("upload"))?;
        Ok(())
    }

    /// `None` when the blob does not exist.
    pub async fn blob(&self, container: &str, name: &str) -> Result<Option<BlobState>, ProbeError> {
        let blob = self.account.container(container)?.blob_client(name);
        let props = match blob.get_properties(None).await {
            Ok(p) => p,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
            Err(e) => return Err(StorageActionError::of("properties")(e).into()),
        };
        let metadata = props
            .metadata()
            .map_err(StorageActionError::of("metadata"))?;
        let etag = props
            .etag()
            .map_err(StorageActionError::of("etag"))?
            .map(|e| e.to_string())
            .unwrap_or_default();
        let last_modified = props
            .last_modified()
            .map_err(StorageActionError::of("last modified"))?
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let tags = crate::storage::blob_tags(&blob)
            .await
            .map_err(StorageActionError::of("tags"))?;
        let bytes = blob
            .download(None)
            .await
            .map_err(StorageActionError::of("download"))?
            .body
            .collect()
            .await
            .map_err(StorageActionError::of("download"))?
            .to_vec();
        Ok(Some(BlobState {
            bytes,
            tags,
            metadata,
            etag,
            last_modified,
        }))
    }

    /// Names of the blobs in a container.
    pub async fn list(&self, container: &str) -> Result<Vec<String>, ProbeError> {
        use futures::TryStreamExt;
        let c = self.account.container(container)?;
        let mut pager = c.list_blobs(None).map_err(StorageActionError::of("list"))?;
        let mut names = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(StorageActionError::of("list"))?
        {
            names.extend(item.name);
        }
        Ok(names)
    }

    pub async fn send(&self, queue: &str, text: &str) -> Result<(), ProbeError> {
        let q = self.account.queue(queue)?;
        let message = QueueMessage {
            message_text: Some(text.to_string()),
        };
        q.send_message(
            message
                .try_into()
                .map_err(StorageActionError::of("encode"))?,
            None,
        )
        .await
        .map_err(StorageActionError::of("send"))?;
        Ok(())
    }

    /// Messages in the queue, visible or not (one being processed is invisible but counted).
    pub async fn queue_len(&self, queue: &str) -> Result<usize, ProbeError> {
        use azure_storage_queue::models::QueueClientGetPropertiesResultHeaders;
        let q = self.account.queue(queue)?;
        if !q
            .exists()
            .await
            .map_err(StorageActionError::of("queue exists"))?
        {
            return Ok(0);
        }
        let props = q
            .get_properties(None)
            .await
            .map_err(StorageActionError::of("queue properties"))?;
        let count = props
            .approximate_messages_count()
            .map_err(StorageActionError::of("queue length"))?;
        Ok(count.and_then(|c| usize::try_from(c).ok()).unwrap_or(0))
    }

    /// Up to 32 visible messages' text, left in the queue.
    pub async fn peek(&self, queue: &str) -> Result<Vec<String>, ProbeError> {
        let q = self.account.queue(queue)?;
        if !q
            .exists()
            .await
            .map_err(StorageActionError::of("queue exists"))?
        {
            return Ok(Vec::new());
        }
        let options = QueueClientPeekMessagesOptions {
            number_of_messages: Some(32),
            ..Default::default()
        };
        let peeked = q
            .peek_messages(Some(options))
            .await
            .map_err(StorageActionError::of("peek"))?;
        Ok(peeked
            .into_model()
            .map_err(StorageActionError::of("peek"))?
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.message_text)
            .collect())
    }
}

/// Polls `check` until it yields `Some`, or fails after `deadline` with `what`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> Result<T, ProbeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ProbeError>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() > deadline {
            return Err(ProbeError::TimedOut {
                what: what.to_string(),
                deadline,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

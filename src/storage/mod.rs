//! Storage clients for a [`StorageConnection`]: the official `azure_storage_blob` /
//! `azure_storage_queue` SDKs, authorised by Entra ID in Azure, by Shared Key for Azurite and
//! account-key connection strings ([`shared_key`]: the SDK has no such policy), or by the SAS
//! of a SAS connection string.
//!
//! Built once per process and kept: the process's HTTP client ([`SharedHttp`]: one certificate
//! load, one connection pool) is the transport of every SDK client and of the token credential, and
//! each container or queue client is made once and reused. Credentials are applied per
//! request by policies, so a kept client never carries one that expires.

pub(crate) mod copy;
pub(crate) mod decide;
mod error;
pub mod sas;
pub(crate) mod shared_key;

pub use decide::quoted_etag;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::Policy;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport, Url};
use azure_identity::{
    DeveloperToolsCredential, DeveloperToolsCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use base64::Engine as _;
use time::{Duration, OffsetDateTime};

use self::sas::SasPolicy;
use crate::http::SharedHttp;
use crate::settings::{StorageAuth, StorageConnection};

pub use error::{StorageActionError, StorageError};

/// One storage account, blob and/or queue side. Cheap to clone: clones share the clients.
#[derive(Clone)]
pub struct StorageAccount(Arc<Inner>);

struct Inner {
    blob_endpoint: Option<Url>,
    queue_endpoint: Option<Url>,
    credential: Option<Arc<dyn TokenCredential>>,
    /// Which identity `credential` is, so another client of the same identity can share it.
    auth: StorageAuth,
    /// The SAS of a SAS connection string: copy sources need it in their URL.
    sas: Option<Arc<SasPolicy>>,
    client_options: ClientOptions,
    containers: Mutex<HashMap<String, Arc<BlobContainerClient>>>,
    queues: Mutex<HashMap<String, Arc<QueueClient>>>,
}

impl StorageAccount {
    /// `http` is the process's client ([`crate::http_client`]); every SDK client made here, and the
    /// token credential, send through it.
    pub fn new(connection: &StorageConnection, http: &SharedHttp) -> Result<Self, StorageError> {
        let transport = Transport::new(Arc::new(http.clone()));
        let base_options = ClientOptions {
            transport: Some(transport),
            ..Default::default()
        };
        let mut signing: Option<Arc<dyn Policy>> = None;
        let mut sas = None;
        let credential: Option<Arc<dyn TokenCredential>> = match &connection.auth {
            StorageAuth::SharedKey { account, key } => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(key.expose())
                    .map_err(StorageError::KeyNotBase64)?;
                signing = Some(Arc::new(shared_key::SharedKeyPolicy::new(account, key)));
                None
            }
            StorageAuth::Sas(token) => {
                let policy = Arc::new(SasPolicy::new(token.expose()));
                signing = Some(policy.clone());
                sas = Some(policy);
                None
            }
            StorageAuth::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: base_options.clone(),
                };
                let credential = ManagedIdentityCredential::new(Some(options))
                    .map_err(StorageError::Credential)?;
                Some(credential)
            }
            StorageAuth::DeveloperTools => {
                let credential =
                    DeveloperToolsCredential::new(Some(DeveloperToolsCredentialOptions::default()))
                        .map_err(StorageError::Credential)?;
                Some(credential)
            }
        };
        let mut client_options = base_options;
        client_options.retry = retry_options();
        // Last before the transport: what it signs is what goes out.
        client_options.per_try_policies.extend(signing);
        Ok(Self(Arc::new(Inner {
            blob_endpoint: connection.blob_endpoint.clone(),
            queue_endpoint: connection.queue_endpoint.clone(),
            credential,
            auth: connection.auth.clone(),
            sas,
            client_options,
            containers: Mutex::default(),
            queues: Mutex::default(),
        })))
    }

    /// The Entra ID credential and the identity it stands for, when the account uses one: one
    /// credential per identity per process, so its token cache is shared.
    pub fn entra_credential(&self) -> Option<(&StorageAuth, Arc<dyn TokenCredential>)> {
        self.0.credential.clone().map(|c| (&self.0.auth, c))
    }

    pub fn blob_endpoint(&self) -> Option<&Url> {
        self.0.blob_endpoint.as_ref()
    }

    /// The container's client, made on first use and kept.
    pub fn container(&self, name: &str) -> Result<Arc<BlobContainerClient>, StorageError> {
        if let Some(c) = lock(&self.0.containers).get(name) {
            return Ok(c.clone());
        }
        let url = resource_url(self.0.blob_endpoint.as_ref(), "blob", name)?;
        let options = BlobContainerClientOptions {
            client_options: self.0.client_options.clone(),
            ..Default::default()
        };
        let client = Arc::new(
            BlobContainerClient::new(url, self.0.credential.clone(), Some(options))
                .map_err(StorageError::Client)?,
        );
        Ok(lock(&self.0.containers)
            .entry(name.to_string())
            .or_insert(client)
            .clone())
    }

    /// The queue's client, made on first use and kept.
    pub fn queue(&self, name: &str) -> Result<Arc<QueueClient>, StorageError> {
        if let Some(q) = lock(&self.0.queues).get(name) {
            return Ok(q.clone());
        }
        let url = resource_url(self.0.queue_endpoint.as_ref(), "queue", name)?;
        let options = QueueClientOptions {
            client_options: self.0.client_options.clone(),
            ..Default::default()
        };
        let client = Arc::new(
            QueueClient::new(url, self.0.credential.clone(), Some(options))
                .map_err(StorageError::Client)?,
        );
        Ok(lock(&self.0.queues)
            .entry(name.to_string())
            .or_insert(client)
            .clone())
    }

    /// Creates the queue if missing. For development and tests: in Azure, infra creates the
    /// queues and the handler's roles do not reach the account level.
    pub async fn ensure_queue(&self, name: &str) -> Result<(), StorageError> {
        let q = self.queue(name)?;
        if !q
            .exists()
            .await
            .map_err(StorageActionError::of("queue exists"))?
        {
            q.create(None)
                .await
                .map_err(StorageActionError::of("create queue"))?;
        }
        Ok(())
    }

    /// Creates the container if missing (development and tests, as [`Self::ensure_queue`]).
    pub async fn ensure_container(&self, name: &str) -> Result<(), StorageError> {
        let c = self.container(name)?;
        if !c
            .exists()
            .await
            .map_err(StorageActionError::of("container exists"))?
        {
            c.create(None)
                .await
                .map_err(StorageActionError::of("create container"))?;
        }
        Ok(())
    }

    /// A URL another request can read the blob from (a copy source): plain for Shared Key and
    /// Entra ID, where a same-account source is authorised by the copy request itself; with
    /// the connection string's SAS otherwise.
    pub fn blob_url(&self, container: &str, blob: &str) -> Result<Url, StorageError> {
        let mut url = resource_url(self.0.blob_endpoint.as_ref(), "blob", container)?;
        // A `/` in a blob name is a virtual directory: kept a slash, not sent as `%2F`.
        url.path_segments_mut()
            .map_err(|_| StorageError::NoEndpoint("blob"))?
            .extend(blob.split('/'));
        if let Some(sas) = &self.0.sas {
            sas.apply(&mut url);
        }
        Ok(url)
    }

    /// A client for a blob this account's credentials do not reach (a SAS URL from Custom
    /// Vision): the shared transport, none of our credentials, the URL's own SAS.
    pub fn foreign_blob(&self, url: &Url) -> Result<azure_storage_blob::BlobClient, StorageError> {
        let mut client_options = self.0.client_options.clone();
        client_options.per_try_policies.clear();
        let options = azure_storage_blob::BlobClientOptions {
            client_options,
            ..Default::default()
        };
        azure_storage_blob::BlobClient::new(url.clone(), None, Some(options))
            .map_err(StorageError::Client)
    }

    /// The same URL without any credential in it: what is safe to record or show.
    pub fn plain_blob_url(&self, container: &str, blob: &str) -> Result<Url, StorageError> {
        let mut url = self.blob_url(container, blob)?;
        url.set_query(None);
        Ok(url)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves a map of clients, still valid.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn resource_url(
    endpoint: Option<&Url>,
    service: &'static str,
    name: &str,
) -> Result<Url, StorageError> {
    let mut url = endpoint.ok_or(StorageError::NoEndpoint(service))?.clone();
    url.path_segments_mut()
        .map_err(|_| StorageError::NoEndpoint(service))?
        .pop_if_empty()
        .push(name);
    Ok(url)
}

/// A blob as a listing shows it: with `include=tags,metadata` (and `copy`), one request gives
/// what would otherwise take a properties read and a tags read per blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// As the listing gives it, unquoted (`0x8D…`).
    pub etag: String,
    pub tags: HashMap<String, String>,
    pub metadata: HashMap<String, String>,
    pub created: Option<OffsetDateTime>,
    pub content_length: Option<u64>,
    pub content_md5: Option<Vec<u8>>,
    pub copy_status: Option<azure_storage_blob::models::CopyStatus>,
}

/// Every blob whose name starts with `prefix`, with tags, metadata and copy state.
pub async fn list_blobs(
    container: &BlobContainerClient,
    prefix: &str,
) -> azure_core::Result<Vec<Listed>> {
    use azure_storage_blob::models::{BlobContainerClientListBlobsOptions, ListBlobsIncludeItem};
    use futures::TryStreamExt;
    let options = BlobContainerClientListBlobsOptions {
        prefix: Some(prefix.to_string()),
        include: Some(vec![
            ListBlobsIncludeItem::Tags,
            ListBlobsIncludeItem::Metadata,
            ListBlobsIncludeItem::Copy,
        ]),
        ..Default::default()
    };
    let mut pager = container.list_blobs(Some(options))?;
    let mut out = Vec::new();
    while let Some(item) = pager.try_next().await? {
        let Some(name) = item.name else { continue };
        let properties = item.properties.unwrap_or_default();
        out.push(Listed {
            name,
            etag: properties.etag.map(|e| e.to_string()).unwrap_or_default(),
            tags: item.blob_tags.map(HashMap::from).unwrap_or_default(),
            metadata: item.metadata.and_then(|m| m.values).unwrap_or_default(),
            created: properties.creation_time,
            content_length: properties.content_length,
            content_md5: properties.content_md5,
            copy_status: properties.copy_status,
        });
    }
    Ok(out)
}

/// The one blob named `name`, if it exists (a prefix listing, filtered to the exact name).
pub async fn list_one(
    container: &BlobContainerClient,
    name: &str,
) -> azure_core::Result<Option<Listed>> {
    Ok(list_blobs(container, name)
        .await?
        .into_iter()
        .find(|b| b.name == name))
}

/// The error code the service answered with (`BlobAlreadyExists`, `ConditionNotMet`…).
pub fn error_code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

/// A blob's index tags as a map (read by the export action and the test probe alike).
pub async fn blob_tags(
    blob: &azure_storage_blob::BlobClient,
) -> azure_core::Result<std::collections::HashMap<String, String>> {
    Ok(blob.get_tags(None).await?.into_model()?.into())
}

/// Bounded SDK retries: the Functions host retries the whole invocation anyway, and an
/// invocation that hangs for minutes on a 500 from an emulator helps nobody.
fn retry_options() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: Duration::seconds(20),
        max_delay: Duration::seconds(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::http_client;
    use crate::settings::{Secret, AZURITE_ACCOUNT, AZURITE_KEY};

    #[test]
    fn resource_urls_keep_the_account_path() {
        let conn = StorageConnection {
            blob_endpoint: Some(Url::parse("http://127.0.0.1:1/devstoreaccount1").unwrap()),
            queue_endpoint: None,
            auth: StorageAuth::SharedKey {
                account: AZURITE_ACCOUNT.into(),
                key: Secret::new(AZURITE_KEY),
            },
        };
        let account = StorageAccount::new(&conn, &http_client()).unwrap();
        let url = account.blob_url("models", "a - b.ONNX").unwrap();
        assert_eq!(url.path(), "/devstoreaccount1/models/a%20-%20b.ONNX");
        assert_eq!(
            url.query(),
            None,
            "Shared Key: no credential in a copy source"
        );
        assert!(matches!(
            account.queue("q"),
            Err(StorageError::NoEndpoint("queue"))
        ));
        // Clients are made once per container and kept.
        let a = account.container("models").unwrap();
        let b = account.container("models").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}

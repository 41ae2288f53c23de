//! Storage clients for a [`StorageConnection`]: the official `azure_storage_blob` /
//! `azure_storage_queue` SDKs, authorised by Entra ID in Azure or by an account SAS signed
//! here for Azurite and connection strings (the SDK has no shared-key policy).
//!
//! Built once per process and kept: one HTTP client ([`http_client`]: one certificate load,
//! one connection pool) is the transport of every SDK client and of the token credential, and
//! each container or queue client is made once and reused. A key-signed SAS is not baked into
//! the clients' URLs: [`SasPolicy`] puts a current one on every request, re-signed before it
//! expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncRawResponse, ClientOptions, Context, ExponentialRetryOptions, HttpClient, Request,
    RetryOptions, Transport, Url,
};
use azure_identity::{
    DeveloperToolsCredential, DeveloperToolsCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::{format_description::well_known::Rfc3339, Duration, OffsetDateTime};

use crate::redact::redact;
use crate::settings::{StorageAuth, StorageConnection};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage connection has no {0} endpoint")]
    NoEndpoint(&'static str),
    #[error("cannot create a storage credential: {0}")]
    Credential(String),
    #[error("cannot create a storage client: {0}")]
    Client(String),
    #[error("{0}")]
    Request(String),
}

/// The process's one HTTP client, shared by every SDK client, the token credential and the
/// Training API: one certificate load, one connection pool. Building it reads the platform's
/// root certificates (some 150 files), so it is built on first use, not before the server
/// answers the host's start-up probe; [`SharedHttp::warm`] builds it in the background right
/// after.
#[derive(Clone, Debug, Default)]
pub struct SharedHttp(Arc<OnceLock<Result<reqwest::Client, String>>>);

impl SharedHttp {
    pub fn client(&self) -> Result<&reqwest::Client, StorageError> {
        self.0
            .get_or_init(|| {
                // The SDK's own defaults: connect and read timeouts, no redirects.
                reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .read_timeout(std::time::Duration::from_secs(60))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| StorageError::Client(e.clone()))
    }

    /// Builds the client on a blocking thread now, so the first invocation finds it ready.
    pub fn warm(&self) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = this.client() {
                tracing::error!("cannot build the HTTP client: {e}");
            }
        });
    }
}

#[async_trait::async_trait]
impl HttpClient for SharedHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let client = self.client().map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Other, e.to_string())
        })?;
        client.execute_request(request).await
    }
}

/// A [`SharedHttp`] for a process (tools and tests that make their own).
pub fn http_client() -> SharedHttp {
    SharedHttp::default()
}

/// One storage account, blob and/or queue side. Cheap to clone: clones share the clients.
#[derive(Clone)]
pub struct StorageAccount(Arc<Inner>);

struct Inner {
    blob_endpoint: Option<Url>,
    queue_endpoint: Option<Url>,
    credential: Option<Arc<dyn TokenCredential>>,
    sas: Option<Arc<SasPolicy>>,
    client_options: ClientOptions,
    containers: Mutex<HashMap<String, Arc<BlobContainerClient>>>,
    queues: Mutex<HashMap<String, Arc<QueueClient>>>,
}

impl StorageAccount {
    /// `http` is the process's client ([`http_client`]); every SDK client made here, and the
    /// token credential, send through it.
    pub fn new(connection: &StorageConnection, http: &SharedHttp) -> Result<Self, StorageError> {
        let transport = Transport::new(Arc::new(http.clone()));
        let base_options = ClientOptions {
            transport: Some(transport),
            ..Default::default()
        };
        let (credential, sas): (Option<Arc<dyn TokenCredential>>, _) = match &connection.auth {
            StorageAuth::SharedKey { account, key } => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(key.expose())
                    .map_err(|_| StorageError::Credential("AccountKey is not base64".into()))?;
                (None, Some(Arc::new(SasPolicy::signed(account, key))))
            }
            StorageAuth::Sas(sas) => (None, Some(Arc::new(SasPolicy::fixed(sas.expose())))),
            StorageAuth::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: base_options.clone(),
                };
                let credential = ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| StorageError::Credential(redact(&e.to_string())))?;
                (Some(credential as Arc<dyn TokenCredential>), None)
            }
            StorageAuth::DeveloperTools => {
                let credential =
                    DeveloperToolsCredential::new(Some(DeveloperToolsCredentialOptions::default()))
                        .map_err(|e| StorageError::Credential(redact(&e.to_string())))?;
                (Some(credential as Arc<dyn TokenCredential>), None)
            }
        };
        let mut client_options = base_options;
        client_options.retry = retry_options();
        if let Some(sas) = &sas {
            client_options
                .per_try_policies
                .push(sas.clone() as Arc<dyn Policy>);
        }
        Ok(Self(Arc::new(Inner {
            blob_endpoint: connection.blob_endpoint.clone(),
            queue_endpoint: connection.queue_endpoint.clone(),
            credential,
            sas,
            client_options,
            containers: Mutex::default(),
            queues: Mutex::default(),
        })))
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
                .map_err(|e| StorageError::Client(redact(&e.to_string())))?,
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
                .map_err(|e| StorageError::Client(redact(&e.to_string())))?,
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
        if !q.exists().await.map_err(request_error("queue exists"))? {
            q.create(None)
                .await
                .map_err(request_error("create queue"))?;
        }
        Ok(())
    }

    /// Creates the container if missing (development and tests, as [`Self::ensure_queue`]).
    pub async fn ensure_container(&self, name: &str) -> Result<(), StorageError> {
        let c = self.container(name)?;
        if !c
            .exists()
            .await
            .map_err(request_error("container exists"))?
        {
            c.create(None)
                .await
                .map_err(request_error("create container"))?;
        }
        Ok(())
    }

    /// A URL another request can read the blob from (a copy source): with a current SAS when
    /// the account is key-authorised; plain with Entra ID, where same-account copies are
    /// authorised by the caller's own token.
    pub fn blob_url(&self, container: &str, blob: &str) -> Result<Url, StorageError> {
        let mut url = resource_url(self.0.blob_endpoint.as_ref(), "blob", container)?;
        url.path_segments_mut()
            .map_err(|_| StorageError::NoEndpoint("blob"))?
            .push(blob);
        if let Some(sas) = &self.0.sas {
            sas.apply(&mut url);
        }
        Ok(url)
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

/// Puts a SAS on every request. A signed one is valid for an hour and re-signed once less
/// than a quarter of that remains, so a client kept for days never sends an expired one and
/// does not sign per call.
#[derive(Debug)]
pub struct SasPolicy {
    source: SasSource,
    current: Mutex<(String, OffsetDateTime)>,
}

enum SasSource {
    Signed { account: String, key: Vec<u8> },
    Fixed(String),
}

impl std::fmt::Debug for SasSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasSource(REDACTED)")
    }
}

/// The query parameters of an account or service SAS: replaced, not duplicated, on a retry.
const SAS_PARAMS: [&str; 12] = [
    "sv", "ss", "srt", "sp", "st", "se", "spr", "sig", "sr", "si", "sip", "skoid",
];

impl SasPolicy {
    fn signed(account: &str, key: Vec<u8>) -> Self {
        Self {
            source: SasSource::Signed {
                account: account.to_string(),
                key,
            },
            current: Mutex::new((String::new(), OffsetDateTime::UNIX_EPOCH)),
        }
    }

    fn fixed(sas: &str) -> Self {
        Self {
            source: SasSource::Fixed(sas.trim_start_matches('?').to_string()),
            current: Mutex::new((String::new(), OffsetDateTime::UNIX_EPOCH)),
        }
    }

    /// The SAS to send now.
    pub fn token(&self, now: OffsetDateTime) -> String {
        match &self.source {
            SasSource::Fixed(sas) => sas.clone(),
            SasSource::Signed { account, key } => {
                let mut current = lock(&self.current);
                if current.1 - now < SAS_REFRESH_BEFORE {
                    *current = (account_sas(account, key, now), now + SAS_LIFETIME);
                }
                current.0.clone()
            }
        }
    }

    fn apply(&self, url: &mut Url) {
        let token = self.token(OffsetDateTime::now_utc());
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !SAS_PARAMS.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&token);
        url.set_query(Some(&query));
    }
}

#[async_trait::async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.apply(request.url_mut());
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// A blob as a listing shows it: with `include=tags,metadata` (and `copy`), one request gives
/// what would otherwise take a properties read and a tags read per blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

fn request_error(action: &'static str) -> impl Fn(azure_core::Error) -> StorageError {
    move |e| StorageError::Request(redact(&format!("{action}: {e}")))
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

const SAS_LIFETIME: Duration = Duration::hours(1);
const SAS_BACKDATE: Duration = Duration::minutes(5);
const SAS_REFRESH_BEFORE: Duration = Duration::minutes(15);

/// Service version the SAS is signed for; its string-to-sign has the encryption-scope line.
const SAS_VERSION: &str = "2022-11-02";

/// An account SAS (blob + queue, all resource types) valid from five minutes ago for an hour,
/// per "Create an account SAS" in the Storage REST reference.
pub fn account_sas(account: &str, key: &[u8], now: OffsetDateTime) -> String {
    let fmt = |t: OffsetDateTime| {
        let t = t.replace_nanosecond(0).unwrap_or(t);
        t.format(&Rfc3339).unwrap_or_default()
    };
    let (services, resource_types, permissions) = ("bq", "sco", "rwdlacuptf");
    let (start, expiry) = (fmt(now - SAS_BACKDATE), fmt(now + SAS_LIFETIME));
    let protocol = "https,http";
    let string_to_sign = format!(
        "{account}\n{permissions}\n{services}\n{resource_types}\n{start}\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", services)
        .append_pair("srt", resource_types)
        .append_pair("sp", permissions)
        .append_pair("st", &start)
        .append_pair("se", &expiry)
        .append_pair("spr", protocol)
        .append_pair("sig", &signature)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Secret, AZURITE_ACCOUNT, AZURITE_KEY};
    use time::macros::datetime;

    #[test]
    fn account_sas_is_deterministic_and_signed() {
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .unwrap();
        let now = datetime!(2026-01-01 10:00:00.123 UTC);
        let sas = account_sas(AZURITE_ACCOUNT, &key, now);
        assert_eq!(sas, account_sas(AZURITE_ACCOUNT, &key, now));
        assert!(sas.contains("st=2026-01-01T09%3A55%3A00Z"), "{sas}");
        assert!(sas.contains("se=2026-01-01T11%3A00%3A00Z"), "{sas}");
        let other = account_sas(AZURITE_ACCOUNT, b"another key", now);
        let sig = |s: &str| s.split("sig=").nth(1).unwrap().to_string();
        assert_ne!(sig(&sas), sig(&other));
    }

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
        assert!(url.query().unwrap().contains("sig="));
        assert!(matches!(
            account.queue("q"),
            Err(StorageError::NoEndpoint("queue"))
        ));
        // Clients are made once per container and kept.
        let a = account.container("models").unwrap();
        let b = account.container("models").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn the_sas_is_reused_then_resigned_before_it_expires() {
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .unwrap();
        let policy = SasPolicy::signed(AZURITE_ACCOUNT, key);
        let t0 = datetime!(2026-01-01 10:00:00 UTC);
        let first = policy.token(t0);
        assert_eq!(
            policy.token(t0 + Duration::minutes(40)),
            first,
            "not signed per call"
        );
        let later = policy.token(t0 + Duration::minutes(50));
        assert_ne!(later, first, "re-signed with 10 minutes left");
        assert!(later.contains("se=2026-01-01T11%3A50%3A00Z"), "{later}");
    }

    #[test]
    fn applying_the_sas_replaces_an_earlier_one() {
        let policy = SasPolicy::fixed("?sv=1&sig=abc");
        let mut url = Url::parse("http://h/a/c?comp=tags").unwrap();
        policy.apply(&mut url);
        policy.apply(&mut url);
        assert_eq!(url.query(), Some("comp=tags&sv=1&sig=abc"));
    }
}

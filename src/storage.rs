//! Storage clients for a [`StorageConnection`]: the official `azure_storage_blob` /
//! `azure_storage_queue` SDKs, authorised by Entra ID in Azure or by an account SAS signed
//! here for Azurite and connection strings (the SDK has no shared-key policy).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Url};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
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

#[derive(Clone)]
enum Auth {
    SharedKey { account: String, key: Arc<Vec<u8>> },
    Sas(String),
    Token(Arc<dyn TokenCredential>),
}

/// One storage account, blob and/or queue side. Cheap to clone; clients are made per use so
/// that a signed SAS is always fresh.
#[derive(Clone)]
pub struct StorageAccount {
    blob_endpoint: Option<Url>,
    queue_endpoint: Option<Url>,
    auth: Auth,
}

impl StorageAccount {
    pub fn new(connection: &StorageConnection) -> Result<Self, StorageError> {
        let auth = match &connection.auth {
            StorageAuth::SharedKey { account, key } => Auth::SharedKey {
                account: account.clone(),
                key: Arc::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(key.expose())
                        .map_err(|_| StorageError::Credential("AccountKey is not base64".into()))?,
                ),
            },
            StorageAuth::Sas(sas) => Auth::Sas(sas.expose().to_string()),
            StorageAuth::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                let credential = ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| StorageError::Credential(redact(&e.to_string())))?;
                Auth::Token(credential)
            }
            StorageAuth::DeveloperTools => Auth::Token(
                DeveloperToolsCredential::new(None)
                    .map_err(|e| StorageError::Credential(redact(&e.to_string())))?,
            ),
        };
        Ok(Self {
            blob_endpoint: connection.blob_endpoint.clone(),
            queue_endpoint: connection.queue_endpoint.clone(),
            auth,
        })
    }

    pub fn blob_endpoint(&self) -> Option<&Url> {
        self.blob_endpoint.as_ref()
    }

    pub fn container(&self, name: &str) -> Result<BlobContainerClient, StorageError> {
        let url = self.resource_url(self.blob_endpoint.as_ref(), "blob", name)?;
        let options = BlobContainerClientOptions {
            client_options: client_options(),
            ..Default::default()
        };
        BlobContainerClient::new(url, self.token(), Some(options))
            .map_err(|e| StorageError::Client(redact(&e.to_string())))
    }

    pub fn queue(&self, name: &str) -> Result<QueueClient, StorageError> {
        let url = self.resource_url(self.queue_endpoint.as_ref(), "queue", name)?;
        let options = QueueClientOptions {
            client_options: client_options(),
            ..Default::default()
        };
        QueueClient::new(url, self.token(), Some(options))
            .map_err(|e| StorageError::Client(redact(&e.to_string())))
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

    /// A URL another request can read the blob from (a copy source): with a SAS when the
    /// account is key-authorised; plain with Entra ID, where same-account copies are authorised
    /// by the caller's own token.
    pub fn blob_url(&self, container: &str, blob: &str) -> Result<Url, StorageError> {
        let mut url = self.resource_url(self.blob_endpoint.as_ref(), "blob", container)?;
        url.path_segments_mut()
            .map_err(|_| StorageError::NoEndpoint("blob"))?
            .push(blob);
        Ok(url)
    }

    fn token(&self) -> Option<Arc<dyn TokenCredential>> {
        match &self.auth {
            Auth::Token(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn resource_url(
        &self,
        endpoint: Option<&Url>,
        service: &'static str,
        name: &str,
    ) -> Result<Url, StorageError> {
        let mut url = endpoint.ok_or(StorageError::NoEndpoint(service))?.clone();
        url.path_segments_mut()
            .map_err(|_| StorageError::NoEndpoint(service))?
            .pop_if_empty()
            .push(name);
        match &self.auth {
            Auth::SharedKey { account, key } => {
                url.set_query(Some(&account_sas(account, key, OffsetDateTime::now_utc())))
            }
            Auth::Sas(sas) => url.set_query(Some(sas)),
            Auth::Token(_) => {}
        }
        Ok(url)
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
fn client_options() -> ClientOptions {
    ClientOptions {
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: Duration::milliseconds(200),
            max_retries: 3,
            max_total_elapsed: Duration::seconds(20),
            max_delay: Duration::seconds(5),
        }),
        ..Default::default()
    }
}

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
    let (start, expiry) = (
        fmt(now - Duration::minutes(5)),
        fmt(now + Duration::hours(1)),
    );
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
        let account = StorageAccount::new(&conn).unwrap();
        let url = account.blob_url("models", "a - b.ONNX").unwrap();
        assert_eq!(url.path(), "/devstoreaccount1/models/a%20-%20b.ONNX");
        assert!(url.query().unwrap().contains("sig="));
        assert!(matches!(
            account.queue("q"),
            Err(StorageError::NoEndpoint("queue"))
        ));
    }
}

//! [`TrainingClient`]: the Training API operations, one request each, with the retry loop.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::error::{parse_error_body, scrub, ConfigError, TrainingError, TransientReason};
use super::models::{Export, Iteration, IterationPerformance, NewProject, Project};
use super::retry::{is_retryable_status, retry_after, RetryPolicy};
use crate::domain::{ExportFlavor, ExportPlatform, IterationId, ProjectId};
use crate::http::SharedHttp;
use crate::settings::training::{TrainingAuthSettings, TrainingSettings};
use crate::settings::Secret;

/// The Entra ID scope of every Cognitive Services resource.
pub const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
const API_PATH: [&str; 3] = ["customvision", "v3.3", "training"];
const KEY_HEADER: &str = "Training-Key";

/// How requests are authorised.
#[derive(Clone)]
pub enum TrainingAuth {
    /// The `Training-Key` header (the spec's only scheme).
    Key(Secret),
    /// An Entra ID bearer token for [`COGNITIVE_SERVICES_SCOPE`]; the resource needs a custom
    /// subdomain. One credential per identity per process: it caches its tokens
    /// ([`TrainingClient::from_settings`] shares the storage account's).
    EntraId(Arc<dyn TokenCredential>),
}

impl fmt::Debug for TrainingAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(_) => f.write_str("Key(REDACTED)"),
            Self::EntraId(_) => f.write_str("EntraId"),
        }
    }
}

/// Whether the storage account's credential is the identity the training settings name.
fn same_identity(storage: &crate::settings::StorageAuth, training: &TrainingAuthSettings) -> bool {
    use crate::settings::StorageAuth;
    match (storage, training) {
        (
            StorageAuth::ManagedIdentity { client_id: a },
            TrainingAuthSettings::ManagedIdentity { client_id: b },
        ) => a == b,
        (StorageAuth::DeveloperTools, TrainingAuthSettings::DeveloperTools) => true,
        _ => false,
    }
}

/// Prepared once: a key that is no valid header value is a configuration error at start-up,
/// not on every call.
#[derive(Clone)]
enum Auth {
    Key { header: HeaderValue, secret: Secret },
    EntraId(Arc<dyn TokenCredential>),
}

/// The Custom Vision Training API v3.3. Clone it freely: clones share the HTTP client (and its
/// connection pool), the credential and the policy.
#[derive(Clone)]
pub struct TrainingClient {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// The process's one HTTP client, built on first use.
    http: SharedHttp,
    /// `{endpoint}/customvision/v3.3/training`, as path segments are pushed onto it.
    base: Url,
    auth: Auth,
    retry: RetryPolicy,
}

impl fmt::Debug for TrainingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.inner.auth {
            Auth::Key { .. } => "Key(REDACTED)",
            Auth::EntraId(_) => "EntraId",
        };
        f.debug_struct("TrainingClient")
            .field("base", &self.inner.base.as_str())
            .field("auth", &auth)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// One request, ready to be sent as many times as the policy allows.
struct Call {
    operation: &'static str,
    method: Method,
    url: Url,
    body: Option<Bytes>,
}

enum Attempt {
    Answer(Bytes),
    Retry {
        status: Option<u16>,
        retry_after: Option<std::time::Duration>,
        reason: TransientReason,
    },
    Fail(TrainingError),
}

impl TrainingClient {
    /// `endpoint` is the resource's endpoint, with or without a trailing `/`, http or https.
    /// `http` is the process's one client (its pool and TLS roots are reused).
    pub fn new(
        http: SharedHttp,
        endpoint: &Url,
        auth: TrainingAuth,
    ) -> Result<Self, TrainingError> {
        if !matches!(endpoint.scheme(), "http" | "https")
            || endpoint.cannot_be_a_base()
            || endpoint.query().is_some()
            || endpoint.fragment().is_some()
        {
            return Err(ConfigError::Invalid(format!(
                "'{endpoint}' is not an http(s) endpoint without a query or fragment"
            ))
            .into());
        }
        let mut base = endpoint.clone();
        base.path_segments_mut()
            .map_err(|_| ConfigError::Invalid(format!("'{endpoint}' cannot take a path")))?
            .pop_if_empty()
            .extend(API_PATH);
        let auth = match auth {
            TrainingAuth::Key(secret) => {
                let mut header = HeaderValue::from_str(secret.expose()).map_err(|_| {
                    ConfigError::Invalid("the training key is not a valid header value".into())
                })?;
                // Kept out of reqwest's and hyper's debug output.
                header.set_sensitive(true);
                Auth::Key { header, secret }
            }
            TrainingAuth::EntraId(credential) => Auth::EntraId(credential),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                retry: RetryPolicy::default(),
            }),
        })
    }

    /// Builds the client from app settings. Without a key it uses Entra ID: the storage
    /// account's credential when that is the same identity (`storage`), else one made here.
    pub fn from_settings(
        http: SharedHttp,
        settings: &TrainingSettings,
        storage: Option<&crate::storage::StorageAccount>,
    ) -> Result<Self, TrainingError> {
        let credential_error =
            |e: azure_core::Error| TrainingError::from(ConfigError::Credential(Arc::new(e)));
        let shared = storage
            .and_then(|s| s.entra_credential())
            .filter(|(identity, _)| same_identity(identity, &settings.auth))
            .map(|(_, credential)| credential);
        let auth = match (&settings.auth, shared) {
            (TrainingAuthSettings::Key(key), _) => TrainingAuth::Key(key.clone()),
            (_, Some(credential)) => TrainingAuth::EntraId(credential),
            (TrainingAuthSettings::ManagedIdentity { client_id }, None) => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    // Token requests go through the same HTTP client.
                    client_options: azure_core::http::ClientOptions {
                        transport: Some(azure_core::http::Transport::new(Arc::new(http.clone()))),
                        ..Default::default()
                    },
                };
                TrainingAuth::EntraId(
                    ManagedIdentityCredential::new(Some(options)).map_err(credential_error)?,
                )
            }
            (TrainingAuthSettings::DeveloperTools, None) => TrainingAuth::EntraId(
                DeveloperToolsCredential::new(None).map_err(credential_error)?,
            ),
        };
        Self::new(http, &settings.endpoint, auth)
    }

    /// Replaces the default policy (6 attempts, 60 s in all).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        Arc::make_mut(&mut self.inner).retry = retry;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// `{endpoint}/customvision/v3.3/training`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// GetProject: `GET /projects/{projectId}`.
    pub async fn get_project(&self, project: ProjectId) -> Result<Project, TrainingError> {
        let url = self.url(&["projects", &project.to_string()], &[]);
        self.json(Call::new("GetProject", Method::GET, url)).await
    }

    /// UpdateProject: `PATCH /projects/{projectId}` with the whole project. Get it first and
    /// change what you need: fields this crate does not know are sent back as they came.
    pub async fn update_project(
        &self,
        project: ProjectId,
        updated: &Project,
    ) -> Result<Project, TrainingError> {
        let url = self.url(&["projects", &project.to_string()], &[]);
        let body = serde_json::to_vec(updated).map_err(|e| TrainingError::Decode {
            operation: "UpdateProject",
            reason: format!("cannot encode the project: {e}"),
        })?;
        let mut call = Call::new("UpdateProject", Method::PATCH, url);
        call.body = Some(body.into());
        self.json(call).await
    }

    /// CreateProject: `POST /projects?name=...`, with the seed document's
    /// `exportModelContainerUri` and `notificationQueueUri` when given.
    pub async fn create_project(&self, new: &NewProject) -> Result<Project, TrainingError> {
        let mut query: Vec<(&str, String)> = vec![("name", new.name.clone())];
        if let Some(d) = &new.description {
            query.push(("description", d.clone()));
        }
        if let Some(d) = new.domain_id {
            query.push(("domainId", d.hyphenated().to_string()));
        }
        if let Some(c) = new.classification_type {
            query.push(("classificationType", c.as_str().to_string()));
        }
        if !new.target_export_platforms.is_empty() {
            // `collectionFormat: csv`.
            let csv: Vec<&str> = new
                .target_export_platforms
                .iter()
                .map(|p| p.as_str())
                .collect();
            query.push(("targetExportPlatforms", csv.join(",")));
        }
        if let Some(u) = &new.export_model_container_uri {
            query.push(("exportModelContainerUri", u.to_string()));
        }
        if let Some(u) = &new.notification_queue_uri {
            query.push(("notificationQueueUri", u.to_string()));
        }
        let url = self.url(&["projects"], &query);
        self.json(Call::new("CreateProject", Method::POST, url))
            .await
    }

    /// GetIterations: `GET /projects/{projectId}/iterations`, every iteration of the project
    /// (trained or not), in the service's order.
    pub async fn get_iterations(
        &self,
        project: ProjectId,
    ) -> Result<Vec<Iteration>, TrainingError> {
        let url = self.url(&["projects", &project.to_string(), "iterations"], &[]);
        self.json(Call::new("GetIterations", Method::GET, url))
            .await
    }

    /// GetIteration: `GET /projects/{projectId}/iterations/{iterationId}`.
    pub async fn get_iteration(
        &self,
        project: ProjectId,
        iteration: IterationId,
    ) -> Result<Iteration, TrainingError> {
        let url = self.iteration_url(project, iteration, None, &[]);
        self.json(Call::new("GetIteration", Method::GET, url)).await
    }

    /// GetIterationPerformance: `GET .../performance`, with the probability `threshold` and, for
    /// object detection, the bounding-box `overlapThreshold` (the service's defaults if `None`).
    pub async fn get_iteration_performance(
        &self,
        project: ProjectId,
        iteration: IterationId,
        threshold: Option<f32>,
        overlap_threshold: Option<f32>,
    ) -> Result<IterationPerformance, TrainingError> {
        let mut query = Vec::new();
        if let Some(t) = threshold {
            query.push(("threshold", t.to_string()));
        }
        if let Some(t) = overlap_threshold {
            query.push(("overlapThreshold", t.to_string()));
        }
        let url = self.iteration_url(project, iteration, Some("performance"), &query);
        self.json(Call::new("GetIterationPerformance", Method::GET, url))
            .await
    }

    /// ExportIteration: `POST .../export?platform=...&flavor=...`. A second export of the same
    /// iteration and platform fails with `BadRequestExportAlreadyInProgress` (see
    /// [`TrainingError::is_export_already_in_progress`]): read [`Self::get_exports`] then.
    /// `OpenVino` is not in the v3.3 enum; the service may refuse it on this version.
    pub async fn export_iteration(
        &self,
        project: ProjectId,
        iteration: IterationId,
        platform: ExportPlatform,
        flavor: Option<ExportFlavor>,
    ) -> Result<Export, TrainingError> {
        let mut query = vec![("platform", platform.as_str().to_string())];
        if let Some(f) = flavor {
            query.push(("flavor", f.as_str().to_string()));
        }
        let url = self.iteration_url(project, iteration, Some("export"), &query);
        self.json(Call::new("ExportIteration", Method::POST, url))
            .await
    }

    /// GetExports: `GET .../export`, every export of the iteration. Entries for a platform this
    /// crate cannot name are left out (with a warning) rather than failing the whole list.
    pub async fn get_exports(
        &self,
        project: ProjectId,
        iteration: IterationId,
    ) -> Result<Vec<Export>, TrainingError> {
        const OPERATION: &str = "GetExports";
        let url = self.iteration_url(project, iteration, Some("export"), &[]);
        let entries: Vec<serde_json::Value> =
            self.json(Call::new(OPERATION, Method::GET, url)).await?;
        let mut exports = Vec::with_capacity(entries.len());
        for entry in entries {
            let platform = entry.get("platform").and_then(|p| p.as_str());
            if let Some(name) = platform.filter(|p| ExportPlatform::parse(p).is_none()) {
                // Debug, not warn: invocation events go in the answer's Logs, not on stdout.
                tracing::debug!("{OPERATION}: skipping an export for unknown platform '{name}'");
                continue;
            }
            exports.push(
                serde_json::from_value(entry).map_err(|e| TrainingError::Decode {
                    operation: OPERATION,
                    reason: self.scrub(&e.to_string()),
                })?,
            );
        }
        Ok(exports)
    }

    /// PublishIteration: `POST .../publish?publishName=...&predictionId=...`. `prediction_id`
    /// is the prediction resource's ARM id (`/subscriptions/.../accounts/<name>`). The service
    /// answers a bare JSON boolean.
    pub async fn publish_iteration(
        &self,
        project: ProjectId,
        iteration: IterationId,
        publish_name: &str,
        prediction_id: &str,
    ) -> Result<bool, TrainingError> {
        let query = [
            ("publishName", publish_name.to_string()),
            ("predictionId", prediction_id.to_string()),
        ];
        let url = self.iteration_url(project, iteration, Some("publish"), &query);
        self.json(Call::new("PublishIteration", Method::POST, url))
            .await
    }

    fn iteration_url(
        &self,
        project: ProjectId,
        iteration: IterationId,
        tail: Option<&str>,
        query: &[(&str, String)],
    ) -> Url {
        let (p, i) = (project.to_string(), iteration.to_string());
        let mut path = vec!["projects", &p, "iterations", &i];
        path.extend(tail);
        self.url(&path, query)
    }

    /// The base URL plus segments (each percent-encoded as a segment) and query pairs. The base
    /// was checked to take a path in [`Self::new`].
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, TrainingError> {
        let operation = call.operation;
        let body = self.execute(call).await?;
        serde_json::from_slice(&body).map_err(|e| TrainingError::Decode {
            operation,
            reason: self.scrub(&e.to_string()),
        })
    }

    /// Sends `call` until it is answered, fails for good, or the policy runs out.
    async fn execute(&self, call: Call) -> Result<Bytes, TrainingError> {
        let policy = self.inner.retry;
        let deadline = Instant::now() + policy.total_deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome =
                match tokio::time::timeout(left.min(policy.attempt_timeout), self.attempt(&call))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => Attempt::Retry {
                        status: None,
                        retry_after: None,
                        reason: TransientReason::AttemptTimeout,
                    },
                };
            let (status, retry_after, reason) = match outcome {
                Attempt::Answer(body) => return Ok(body),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry {
                    status,
                    retry_after,
                    reason,
                } => (status, retry_after, reason),
            };
            let delay = retry_after.unwrap_or_else(|| policy.backoff(attempts));
            if attempts >= policy.max_attempts || Instant::now() + delay >= deadline {
                return Err(TrainingError::Transient {
                    operation: call.operation,
                    attempts,
                    status,
                    retry_after,
                    reason,
                });
            }
            // Debug: a retry that then succeeds is not an event, and one that fails for good
            // reaches the invocation's Logs with its last reason.
            tracing::debug!(
                operation = call.operation,
                attempt = attempts,
                status,
                delay_ms = delay.as_millis() as u64,
                "Training API call failed, retrying: {reason}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, call: &Call) -> Attempt {
        let retry = |status: Option<u16>, reason: TransientReason| Attempt::Retry {
            status,
            retry_after: None,
            reason,
        };
        let http = match self.inner.http.client() {
            Ok(http) => http,
            Err(e) => return Attempt::Fail(ConfigError::HttpClient(e.clone()).into()),
        };
        let mut request = http
            .request(call.method.clone(), call.url.clone())
            .header(ACCEPT, "application/json");
        request = match &self.inner.auth {
            Auth::Key { header, .. } => request.header(KEY_HEADER, header.clone()),
            Auth::EntraId(credential) => {
                // The credential caches the token; asking per attempt renews it when it expires
                // during a long retry.
                match credential
                    .get_token(&[COGNITIVE_SERVICES_SCOPE], None)
                    .await
                {
                    Ok(token) => {
                        match HeaderValue::from_str(&format!("Bearer {}", token.token.secret())) {
                            Ok(mut value) => {
                                value.set_sensitive(true);
                                request.header(AUTHORIZATION, value)
                            }
                            Err(_) => return retry(None, TransientReason::UnusableToken),
                        }
                    }
                    Err(e) => return retry(None, TransientReason::Token(Arc::new(e))),
                }
            }
        };
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Attempt::Fail(ConfigError::Request(Arc::new(e)).into())
            }
            // Connection refused or reset, TLS, a timeout of the caller's client: all may pass.
            Err(e) => return retry(None, TransientReason::Request(Arc::new(e))),
        };
        let status = response.status().as_u16();
        let wait = retry_after(response.headers(), SystemTime::now());
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return retry(
                    Some(status),
                    TransientReason::CutShort {
                        status,
                        source: Arc::new(e),
                    },
                )
            }
        };
        if (200..300).contains(&status) {
            return Attempt::Answer(body);
        }
        let (code, message) = parse_error_body(status, &body);
        let message = self.scrub(&message);
        if is_retryable_status(status) {
            return Attempt::Retry {
                status: Some(status),
                retry_after: wait,
                reason: TransientReason::Answered {
                    status,
                    code: self.scrub(&code),
                    message,
                },
            };
        }
        Attempt::Fail(TrainingError::Service {
            operation: call.operation,
            status,
            code: self.scrub(&code),
            message,
        })
    }

    fn scrub(&self, text: &str) -> String {
        let secret = match &self.inner.auth {
            Auth::Key { secret, .. } => Some(secret.expose()),
            Auth::EntraId(_) => None,
        };
        scrub(text, secret)
    }
}

impl Call {
    fn new(operation: &'static str, method: Method, url: Url) -> Self {
        Self {
            operation,
            method,
            url,
            body: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_credential_is_shared_only_with_the_same_identity() {
        use crate::settings::{StorageAuth, StorageConnection};
        let http = crate::http::http_client();
        let account = crate::storage::StorageAccount::new(
            &StorageConnection {
                blob_endpoint: Some(Url::parse("https://a.blob.core.windows.net/").unwrap()),
                queue_endpoint: None,
                auth: StorageAuth::ManagedIdentity {
                    client_id: Some("11111111-0000-4000-8000-000000000000".into()),
                },
            },
            &http,
        )
        .unwrap();
        let (_, storage) = account.entra_credential().unwrap();
        let build = |client_id: &str| {
            let settings = TrainingSettings {
                endpoint: Url::parse("https://cv.cognitiveservices.azure.com/").unwrap(),
                auth: TrainingAuthSettings::ManagedIdentity {
                    client_id: Some(client_id.into()),
                },
            };
            let client =
                TrainingClient::from_settings(http.clone(), &settings, Some(&account)).unwrap();
            match &client.inner.auth {
                Auth::EntraId(c) => Arc::ptr_eq(c, &storage),
                Auth::Key { .. } => panic!("a key"),
            }
        };
        assert!(build("11111111-0000-4000-8000-000000000000"));
        assert!(!build("22222222-0000-4000-8000-000000000000"));
    }

    fn client(endpoint: &str) -> TrainingClient {
        TrainingClient::new(
            crate::http::http_client(),
            &Url::parse(endpoint).unwrap(),
            TrainingAuth::Key(Secret::new("not-printed-0123")),
        )
        .unwrap()
    }

    #[test]
    fn base_url_with_or_without_a_trailing_slash() {
        for e in [
            "https://cv.cognitiveservices.azure.com",
            "https://cv.cognitiveservices.azure.com/",
        ] {
            assert_eq!(
                client(e).base_url().as_str(),
                "https://cv.cognitiveservices.azure.com/customvision/v3.3/training"
            );
        }
        assert_eq!(
            client("http://127.0.0.1:4010/prefix/").base_url().as_str(),
            "http://127.0.0.1:4010/prefix/customvision/v3.3/training"
        );
    }

    #[test]
    fn urls_per_operation() {
        let c = client("https://cv.cognitiveservices.azure.com/");
        let p = ProjectId::parse("b6dd673c-be9e-4911-b2f6-02237b2d4872").unwrap();
        let i = IterationId::parse("f8b5c43d-205c-4596-ba19-8ee3bf1ffd20").unwrap();
        let url = c.iteration_url(
            p,
            i,
            Some("publish"),
            &[
                ("publishName", "prod model".into()),
                ("predictionId", "/subscriptions/s/resourceGroups/r".into()),
            ],
        );
        assert_eq!(
            url.as_str(),
            "https://cv.cognitiveservices.azure.com/customvision/v3.3/training/projects/\
             b6dd673c-be9e-4911-b2f6-02237b2d4872/iterations/f8b5c43d-205c-4596-ba19-8ee3bf1ffd20/\
             publish?publishName=prod+model&predictionId=%2Fsubscriptions%2Fs%2FresourceGroups%2Fr"
        );
    }

    #[test]
    fn the_key_never_prints() {
        let c = client("https://cv.cognitiveservices.azure.com/");
        let text = format!(
            "{c:?} {:?}",
            TrainingAuth::Key(Secret::new("not-printed-0123"))
        );
        assert!(!text.contains("not-printed"), "{text}");
    }

    #[test]
    fn bad_endpoints_and_keys_are_config_errors() {
        let bad_endpoint = TrainingClient::new(
            crate::http::http_client(),
            &Url::parse("mailto:a@b").unwrap(),
            TrainingAuth::Key(Secret::new("k")),
        );
        assert!(matches!(bad_endpoint, Err(TrainingError::Config(_))));
        let bad_key = TrainingClient::new(
            crate::http::http_client(),
            &Url::parse("https://h").unwrap(),
            TrainingAuth::Key(Secret::new("line\nbreak")),
        );
        let err = bad_key.unwrap_err();
        assert!(matches!(err, TrainingError::Config(_)));
        assert!(!err.to_string().contains("line"));
    }

    #[test]
    fn a_credential_failure_is_kept_as_the_source() {
        let cause = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "no identity endpoint",
        );
        let err = TrainingError::from(ConfigError::Credential(Arc::new(cause)));
        assert_eq!(
            err.to_string(),
            "training client configuration: cannot create a credential: no identity endpoint"
        );
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("no identity endpoint"));
    }
}

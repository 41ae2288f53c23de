//! [`ArmClient`]: the GET requests the preflight makes, on the process's one HTTP client
//! ([`SharedHttp`]). Each request is retried on 429, 408 and 5xx and on connection failures,
//! waiting what `Retry-After` asks, and ends within [`ArmPolicy::total_deadline`] either way.
//!
//! Each operation names its source (the OpenAPI document in Azure/azure-rest-api-specs, or
//! the azure-cli code that makes the same call); `tests/suite/preflight_contract.rs` holds the
//! table the requests are checked against.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use crate::error_chain::one_line;
use crate::http::{HttpClientError, SharedHttp};
use crate::settings::Secret;
use crate::training::retry::{is_retryable_status, retry_after};

/// The Entra ID scope of Azure Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// `Provider_GetFunctionAppStacksForLocation`. azure-cli asks this version, with the
/// undeclared `stack`, `removeHiddenStacks` and `removeDeprecatedStacks` filters, and reads the
/// Flex SKUs (`Sku[].skuCode == "FC1"`) from the answer (Azure/azure-cli
/// `src/azure-cli/azure/cli/command_modules/appservice/custom.py`,
/// `_FlexFunctionAppStackRuntimeHelper`, commit 00429bd37d87f5951917c692a2e3a8ea497c01e1).
pub const STACKS_API_VERSION: &str = "2020-10-01";
/// `ListGeoRegions` (Microsoft.Web `ResourceProvider.json` 2024-11-01: `sku` has
/// `FlexConsumption` in its enum); azure-cli's `list_flexconsumption_*_locations` use it.
pub const GEO_REGIONS_API_VERSION: &str = "2024-11-01";
/// `Providers_Get` (Microsoft.Resources `resources.json` 2021-04-01).
pub const PROVIDERS_API_VERSION: &str = "2021-04-01";
/// `Permissions_ListForResourceGroup` (Microsoft.Authorization
/// `authorization-RoleDefinitionsCalls.json` 2022-04-01).
pub const PERMISSIONS_API_VERSION: &str = "2022-04-01";
/// `ResourceSkus_List` (Microsoft.CognitiveServices `cognitiveservices.json` 2023-05-01, the
/// version `infra/app/customvision.bicep` deploys its account with).
pub const COGNITIVE_SKUS_API_VERSION: &str = "2023-05-01";

/// Pages followed at most for one list: ARM lists here are a few pages at most.
const MAX_PAGES: usize = 20;

/// How requests are authorised.
#[derive(Clone)]
pub enum ArmAuth {
    /// The developer's login (`AzureCliCredential`): one credential per process, it caches.
    Credential(Arc<dyn TokenCredential>),
    /// A bearer token given as it is: for tests and for a token someone already holds
    /// (`CV_ARM_TOKEN`). Never the default.
    StaticToken(Secret),
}

impl fmt::Debug for ArmAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credential(_) => f.write_str("Credential"),
            Self::StaticToken(_) => f.write_str("StaticToken(REDACTED)"),
        }
    }
}

/// Retries and time limits of one request (all its pages included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Every attempt and every wait of one request ends within this time. A `Retry-After`
    /// that would end past it ends the request at once.
    pub total_deadline: Duration,
    pub attempt_timeout: Duration,
}

impl Default for ArmPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            total_deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(15),
        }
    }
}

impl ArmPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        self.initial_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ArmError {
    /// The client cannot be built or the request cannot be formed.
    #[error(transparent)]
    Config(#[from] ArmConfigError),
    /// The credential gave no token: `az` missing, or nobody signed in.
    #[error(transparent)]
    SignIn(#[from] SignInError),
    /// 401: the token is expired, for another tenant, or not a token.
    #[error("{operation}: ARM answered 401 {code}: {message}")]
    Unauthorized {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// Any other 4xx (403 no access to the subscription, 404 no such group, ...).
    #[error("{operation}: ARM answered {status} {code}: {message}")]
    Service {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// Still 429 when the attempts or the deadline ran out.
    #[error("{operation}: ARM is throttling this subscription (429) after {attempts} attempt(s){}", wait_text(.retry_after))]
    Throttled {
        operation: &'static str,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// No answer, or 5xx, when the attempts or the deadline ran out.
    #[error("{operation}: ARM could not be reached after {attempts} attempt(s): {reason}")]
    Unreachable {
        operation: &'static str,
        attempts: u32,
        /// Why the last attempt failed. Not a `#[source]` (nor `Decode`'s reason): its
        /// `Display` already shows its cause, which a log line's chain would repeat.
        reason: UnreachableReason,
    },
    /// A 2xx answer that is not the JSON the operation describes.
    #[error("{operation}: cannot read ARM's answer: {reason}")]
    Decode {
        operation: &'static str,
        reason: DecodeReason,
    },
}

/// Why the last attempt of an [`ArmError::Unreachable`] failed. A transport's error is kept
/// as the source, and shown as its chain on one line, redacted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UnreachableReason {
    #[error("no complete answer within the attempt timeout")]
    AttemptTimeout,
    #[error("{}", one_line(.0.as_ref()))]
    Request(#[source] Arc<reqwest::Error>),
    #[error("answer {status} cut short: {}", one_line(.source.as_ref()))]
    CutShort {
        status: u16,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A 5xx (or 408) answer; `code` and `message` from its body, redacted ([`error_body`]).
    #[error("{status} {code}: {message}")]
    Answered {
        status: u16,
        code: String,
        message: String,
    },
}

/// What is wrong with a 2xx answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeReason {
    #[error("{}", crate::redact::redact(&.0.to_string()))]
    NotJson(#[source] Arc<serde_json::Error>),
    #[error("`value` in the answer is not a list")]
    ValueNotAList,
}

/// Why no request to ARM can be made: a reason of our own, or the failed part's error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArmConfigError {
    /// An endpoint we refuse (not a base URL, http off loopback, another scheme).
    #[error("{0}")]
    Endpoint(String),
    /// An endpoint that is not a URL at all.
    #[error("ARM endpoint '{text}': {source}")]
    NotAUrl {
        text: String,
        #[source]
        source: url::ParseError,
    },
    /// The process's one HTTP client could not be built.
    #[error(transparent)]
    HttpClient(#[from] HttpClientError),
}

/// The credential gave no usable token. Its error is kept as the source; the text shows its
/// first line only (`az`'s own advice follows on further lines), redacted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    #[error("no ARM token: {}", first_line(.0))]
    Credential(#[source] Arc<azure_core::Error>),
    #[error("no ARM token: the token is not a valid header value")]
    BadToken,
}

fn first_line(e: &azure_core::Error) -> String {
    let text = crate::redact::redact(&e.to_string());
    text.lines().next().unwrap_or_default().to_string()
}

fn wait_text(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!("; it asks to wait {} s", d.as_secs().max(1)))
        .unwrap_or_default()
}

/// A few GET requests to ARM. Cheap to clone: clones share the HTTP client and credential.
#[derive(Clone, Debug)]
pub struct ArmClient {
    http: SharedHttp,
    base: Url,
    auth: ArmAuth,
    policy: ArmPolicy,
}

enum Attempt {
    Answer(Value),
    Retry {
        throttled: bool,
        retry_after: Option<Duration>,
        reason: UnreachableReason,
    },
    Fail(ArmError),
}

impl ArmClient {
    /// `endpoint` from [`super::parse_endpoint`]; `http` is the process's one client.
    pub fn new(http: SharedHttp, endpoint: Url, auth: ArmAuth) -> Self {
        Self {
            http,
            base: endpoint,
            auth,
            policy: ArmPolicy::default(),
        }
    }

    pub fn with_policy(mut self, policy: ArmPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn endpoint(&self) -> &Url {
        &self.base
    }

    /// `GET /providers/Microsoft.Web/locations/{location}/functionAppStacks` with azure-cli's
    /// filters; the stacks as a list (`value` of every page).
    pub async fn function_app_stacks(
        &self,
        location: &str,
        stack: &str,
    ) -> Result<Vec<Value>, ArmError> {
        let url = self.url(
            &[
                "providers",
                "Microsoft.Web",
                "locations",
                location,
                "functionAppStacks",
            ],
            &[
                ("api-version", STACKS_API_VERSION),
                ("removeHiddenStacks", "true"),
                ("removeDeprecatedStacks", "true"),
                ("stack", stack),
            ],
        );
        self.list("Provider_GetFunctionAppStacksForLocation", url)
            .await
    }

    /// `GET /subscriptions/{subscriptionId}/providers/Microsoft.Web/geoRegions?sku=FlexConsumption`:
    /// the regions that offer Flex Consumption to this subscription.
    pub async fn flex_regions(&self, subscription: &str) -> Result<Vec<Value>, ArmError> {
        let url = self.url(
            &[
                "subscriptions",
                subscription,
                "providers",
                "Microsoft.Web",
                "geoRegions",
            ],
            &[
                ("sku", "FlexConsumption"),
                ("api-version", GEO_REGIONS_API_VERSION),
            ],
        );
        self.list("ListGeoRegions", url).await
    }

    /// `GET /subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}`.
    pub async fn provider(&self, subscription: &str, namespace: &str) -> Result<Value, ArmError> {
        let url = self.url(
            &["subscriptions", subscription, "providers", namespace],
            &[("api-version", PROVIDERS_API_VERSION)],
        );
        self.get("Providers_Get", url).await
    }

    /// `GET /subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/Microsoft.Authorization/permissions`:
    /// what the caller may do in the group (every page).
    pub async fn permissions_for_resource_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<Value>, ArmError> {
        let url = self.url(
            &[
                "subscriptions",
                subscription,
                "resourcegroups",
                resource_group,
                "providers",
                "Microsoft.Authorization",
                "permissions",
            ],
            &[("api-version", PERMISSIONS_API_VERSION)],
        );
        self.list("Permissions_ListForResourceGroup", url).await
    }

    /// `GET /subscriptions/{subscriptionId}/providers/Microsoft.CognitiveServices/skus`.
    pub async fn cognitive_skus(&self, subscription: &str) -> Result<Vec<Value>, ArmError> {
        let url = self.url(
            &[
                "subscriptions",
                subscription,
                "providers",
                "Microsoft.CognitiveServices",
                "skus",
            ],
            &[("api-version", COGNITIVE_SKUS_API_VERSION)],
        );
        self.list("ResourceSkus_List", url).await
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.query_pairs_mut().extend_pairs(query);
        url
    }

    /// Every page's `value`. A `nextLink` to another origin is not followed: the token is
    /// only for this endpoint.
    async fn list(&self, operation: &'static str, first: Url) -> Result<Vec<Value>, ArmError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let page = self.get(operation, url).await?;
            // `value` is optional in some list schemas (PermissionGetResult): absent, the page
            // holds nothing; present, it must be a list.
            match page.get("value") {
                Some(Value::Array(values)) => items.extend(values.iter().cloned()),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(ArmError::Decode {
                        operation,
                        reason: DecodeReason::ValueNotAList,
                    })
                }
            }
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .and_then(|s| Url::parse(s).ok())
                .filter(|u| u.origin() == self.base.origin());
            if pages >= MAX_PAGES {
                break;
            }
        }
        Ok(items)
    }

    /// One GET until it is answered, fails for good, or the policy runs out.
    async fn get(&self, operation: &'static str, url: Url) -> Result<Value, ArmError> {
        let policy = self.policy;
        let deadline = Instant::now() + policy.total_deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(
                left.min(policy.attempt_timeout),
                self.attempt(operation, &url),
            )
            .await
            {
                Ok(o) => o,
                Err(_) => Attempt::Retry {
                    throttled: false,
                    retry_after: None,
                    reason: UnreachableReason::AttemptTimeout,
                },
            };
            let (throttled, wait, reason) = match outcome {
                Attempt::Answer(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry {
                    throttled,
                    retry_after,
                    reason,
                } => (throttled, retry_after, reason),
            };
            let delay = wait.unwrap_or_else(|| policy.backoff(attempts));
            if attempts >= policy.max_attempts || Instant::now() + delay >= deadline {
                return Err(if throttled {
                    ArmError::Throttled {
                        operation,
                        attempts,
                        retry_after: wait,
                    }
                } else {
                    ArmError::Unreachable {
                        operation,
                        attempts,
                        reason,
                    }
                });
            }
            tracing::debug!(
                operation,
                attempts,
                "ARM request failed, retrying: {reason}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, operation: &'static str, url: &Url) -> Attempt {
        let http = match self.http.client() {
            Ok(h) => h,
            Err(e) => return Attempt::Fail(ArmConfigError::HttpClient(e.clone()).into()),
        };
        let token = match &self.auth {
            ArmAuth::StaticToken(t) => t.expose().to_string(),
            // Asked per attempt: the credential caches, and renews one that expired meanwhile.
            ArmAuth::Credential(c) => match c.get_token(&[ARM_SCOPE], None).await {
                Ok(t) => t.token.secret().to_string(),
                Err(e) => return Attempt::Fail(SignInError::Credential(Arc::new(e)).into()),
            },
        };
        let mut bearer = match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(v) => v,
            Err(_) => return Attempt::Fail(SignInError::BadToken.into()),
        };
        bearer.set_sensitive(true);
        let request = http
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, bearer);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    throttled: false,
                    retry_after: None,
                    reason: UnreachableReason::Request(Arc::new(e)),
                }
            }
        };
        let status = response.status().as_u16();
        let wait = retry_after(response.headers(), SystemTime::now());
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    throttled: false,
                    retry_after: None,
                    reason: UnreachableReason::CutShort {
                        status,
                        source: Arc::new(e),
                    },
                }
            }
        };
        if (200..300).contains(&status) {
            return match serde_json::from_slice(&body) {
                Ok(v) => Attempt::Answer(v),
                Err(e) => Attempt::Fail(ArmError::Decode {
                    operation,
                    reason: DecodeReason::NotJson(Arc::new(e)),
                }),
            };
        }
        let (code, message) = error_body(status, &body);
        if is_retryable_status(status) {
            return Attempt::Retry {
                throttled: status == 429,
                retry_after: wait,
                reason: UnreachableReason::Answered {
                    status,
                    code,
                    message,
                },
            };
        }
        Attempt::Fail(if status == 401 {
            ArmError::Unauthorized {
                operation,
                code,
                message,
            }
        } else {
            ArmError::Service {
                operation,
                status,
                code,
                message,
            }
        })
    }
}

/// ARM's error shape, `{"error": {"code", "message"}}` (also App Service's
/// `DefaultErrorResponse`); the status alone when the body is something else. The message is
/// cut to one line of bounded length and redacted.
pub fn error_body(status: u16, body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let code = field("code").unwrap_or_else(|| status.to_string());
    let message = field("message").unwrap_or_else(|| "(no error message)".into());
    let mut message = crate::redact::redact(message.lines().next().unwrap_or_default());
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    (crate::redact::redact(&code), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_failure_keeps_the_credential_error_and_shows_its_first_line() {
        let cause = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "az: not logged in https://a/b?sv=1&sig=FAKESIG\nrun az login",
        );
        let err = ArmError::from(SignInError::Credential(Arc::new(cause)));
        let text = err.to_string();
        assert!(
            text.starts_with("no ARM token: az: not logged in"),
            "{text}"
        );
        assert!(!text.contains('\n') && !text.contains("FAKESIG"), "{text}");
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert!(source.is_some_and(|s| s.contains("run az login")));
    }

    fn client() -> ArmClient {
        ArmClient::new(
            crate::http::http_client(),
            Url::parse("https://management.azure.com").unwrap(),
            ArmAuth::StaticToken(Secret::new("not-printed-token")),
        )
    }

    #[test]
    fn urls_carry_the_cited_paths_and_versions() {
        let c = client();
        let url = c.url(
            &["subscriptions", "s", "providers", "Microsoft.Web"],
            &[("api-version", PROVIDERS_API_VERSION)],
        );
        assert_eq!(
            url.as_str(),
            "https://management.azure.com/subscriptions/s/providers/Microsoft.Web?api-version=2021-04-01"
        );
        let prefixed = ArmClient::new(
            crate::http::http_client(),
            Url::parse("http://127.0.0.1:9/arm/").unwrap(),
            ArmAuth::StaticToken(Secret::new("t")),
        );
        assert_eq!(
            prefixed.url(&["a b"], &[]).as_str(),
            "http://127.0.0.1:9/arm/a%20b?"
        );
    }

    #[test]
    fn the_token_never_prints() {
        let text = format!("{:?}", client());
        assert!(!text.contains("not-printed"), "{text}");
    }

    #[test]
    fn arm_error_bodies_and_others() {
        let (code, message) = error_body(
            401,
            br#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time is earlier than current UTC time.\nmore"}}"#,
        );
        assert_eq!(code, "ExpiredAuthenticationToken");
        assert_eq!(
            message,
            "The access token expiry UTC time is earlier than current UTC time."
        );
        assert_eq!(
            error_body(502, b"<html>bad gateway</html>"),
            ("502".to_string(), "(no error message)".to_string())
        );
        let long = format!(
            r#"{{"error":{{"code":"X","message":"{}"}}}}"#,
            "é".repeat(400)
        );
        assert!(error_body(400, long.as_bytes()).1.chars().count() <= 301);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = ArmPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(2), Duration::from_secs(1));
        assert_eq!(p.backoff(30), Duration::from_secs(5));
    }
}

//! App settings, read once at start-up. A missing or bad setting stops the process with a
//! message naming it: better a failed deployment than a function that fails every message.

use std::fmt;

use url::Url;

pub(crate) mod automation;
pub mod events;
pub mod hosts;
mod local;
pub(crate) mod training;

pub use automation::ExportTarget;
pub use local::{read_json, AppSettings, JsonFileError, ResolveError};

use automation::AutomationSettings;
use events::EventSettings;
use hosts::HostAllowList;
use training::TrainingSettings;

use crate::naming::PathTemplate;

pub const DEFAULT_BACKUP_CONTAINER: &str = "customvision-backups";
pub const DEFAULT_MODEL_STORE_CONTAINER: &str = "models";
pub const DEFAULT_REJECTED_CONTAINER: &str = "customvision-rejected";
pub const DEFAULT_STATUS_CONTAINER: &str = "customvision-status";
/// Well-known Azurite account and key (public, documented by Microsoft; not a secret).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The connection string of the well-known Azurite account on loopback ports: the dev host's
/// Azurite, and the tests' unreachable or misbehaving "storage".
pub fn azurite_connection_string(blob_port: u16, queue_port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
         BlobEndpoint=http://127.0.0.1:{blob_port}/{AZURITE_ACCOUNT};\
         QueueEndpoint=http://127.0.0.1:{queue_port}/{AZURITE_ACCOUNT};"
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("setting {name} is required{hint}")]
    Missing { name: String, hint: String },
    #[error("setting {name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
    /// A value that does not parse as a URL. `shown` is the value as the message may repeat
    /// it: `None` where it may carry a SAS or a token in its query.
    #[error("setting {name} is invalid: {}not a URL: {source}", subject(.shown))]
    Url {
        name: String,
        shown: Option<String>,
        #[source]
        source: url::ParseError,
    },
    #[error("setting {name} is invalid: {source}")]
    Template {
        name: String,
        #[source]
        source: crate::naming::TemplateError,
    },
}

/// `'value' is ` before "not a URL", or nothing where the value is not shown.
fn subject(shown: &Option<String>) -> String {
    shown
        .as_deref()
        .map(|v| format!("'{v}' is "))
        .unwrap_or_default()
}

impl SettingsError {
    fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// `map_err(SettingsError::url(name, None))`; `shown`: see [`SettingsError::Url`].
    pub(crate) fn url(name: &str, shown: Option<&str>) -> impl Fn(url::ParseError) -> Self {
        let name = name.to_string();
        let shown = shown.map(str::to_string);
        move |source| Self::Url {
            name: name.clone(),
            shown: shown.clone(),
            source,
        }
    }
}

/// A value that must never be printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// How to reach the storage account named by a Functions connection prefix (`CV_STORAGE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConnection {
    pub blob_endpoint: Option<Url>,
    pub queue_endpoint: Option<Url>,
    pub auth: StorageAuth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageAuth {
    /// Account name and key (Azurite, or a connection string): requests carry an account SAS
    /// the process signs itself, because the official SDK has no shared-key policy.
    SharedKey {
        account: String,
        key: Secret,
    },
    /// A SAS from a connection string, used as is.
    Sas(Secret),
    /// Entra ID. `ManagedIdentity` in Azure (`__credential=managedidentity`), otherwise the
    /// developer's `az`/`azd` login.
    ManagedIdentity {
        client_id: Option<String>,
    },
    DeveloperTools,
}

impl StorageConnection {
    /// Reads `{prefix}` (a connection string) or the identity-based `{prefix}__blobServiceUri`,
    /// `__queueServiceUri`, `__accountName`, `__credential`, `__clientId`, as the Functions host
    /// does.
    pub fn from_settings(
        prefix: &str,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        if let Some(cs) = get(prefix).filter(|v| !v.trim().is_empty()) {
            return Self::from_connection_string(prefix, &cs);
        }
        let sub = |name: &str| get(&format!("{prefix}__{name}")).filter(|v| !v.trim().is_empty());
        let endpoint = |name: &str, service: &str| -> Result<Option<Url>, SettingsError> {
            let key = format!("{prefix}__{name}");
            match sub(name) {
                Some(v) => parse_endpoint(&key, &v).map(Some),
                None => match sub("accountName") {
                    Some(account) => {
                        let url = format!("https://{account}.{service}.core.windows.net");
                        parse_endpoint(&format!("{prefix}__accountName"), &url).map(Some)
                    }
                    None => Ok(None),
                },
            }
        };
        let blob_endpoint = endpoint("blobServiceUri", "blob")?;
        let queue_endpoint = endpoint("queueServiceUri", "queue")?;
        if blob_endpoint.is_none() && queue_endpoint.is_none() {
            return Err(SettingsError::Missing {
                name: prefix.to_string(),
                hint: format!(
                    " (a connection string such as UseDevelopmentStorage=true, or \
                     {prefix}__blobServiceUri/__queueServiceUri with __credential=managedidentity)"
                ),
            });
        }
        for url in blob_endpoint.iter().chain(queue_endpoint.iter()) {
            if url.scheme() != "https" {
                return Err(SettingsError::invalid(
                    &format!("{prefix}__blobServiceUri"),
                    "identity-based connections need https endpoints",
                ));
            }
        }
        let auth = match sub("credential").as_deref() {
            Some(c) if c.eq_ignore_ascii_case("managedidentity") => StorageAuth::ManagedIdentity {
                client_id: sub("clientId"),
            },
            Some(other) => {
                return Err(SettingsError::invalid(
                    &format!("{prefix}__credential"),
                    format!("'{other}' is not supported (use managedidentity, or leave it unset for a developer login)"),
                ))
            }
            None => StorageAuth::DeveloperTools,
        };
        Ok(Self {
            blob_endpoint,
            queue_endpoint,
            auth,
        })
    }

    /// A container's SAS URL (`https://acct.blob.core.windows.net/models?sv=…&sig=…`, or
    /// Azurite's `http://127.0.0.1:10000/devstoreaccount1/models?…`): the blob endpoint, SAS
    /// auth, and the container's name. `name` is what an error calls it (`--container-url`);
    /// no error repeats the URL's query, which holds the signature.
    pub fn from_container_url(name: &str, text: &str) -> Result<(Self, String), SettingsError> {
        // The text is not shown: its query is the SAS.
        let mut url = Url::parse(text.trim()).map_err(SettingsError::url(name, None))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(SettingsError::invalid(name, "not an http(s) URL"));
        }
        let token = url
            .query()
            .filter(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "sig"))
            .map(str::to_string)
            .ok_or_else(|| {
                SettingsError::invalid(name, "has no SAS (a query with sig=…): a container SAS URL")
            })?;
        plain_http_only_to_loopback(name, &url, "a SAS")?;
        url.set_query(None);
        url.set_fragment(None);
        let mut segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let container = segments
            .pop()
            .ok_or_else(|| SettingsError::invalid(name, "names no container"))?;
        validate_container_name(&container)
            .map_err(|reason| SettingsError::invalid(name, reason))?;
        url.set_path(&segments.join("/"));
        let endpoint = parse_endpoint(name, url.as_str())?;
        Ok((
            Self {
                blob_endpoint: Some(endpoint),
                queue_endpoint: None,
                auth: StorageAuth::Sas(Secret::new(token)),
            },
            container,
        ))
    }

    fn from_connection_string(name: &str, cs: &str) -> Result<Self, SettingsError> {
        let mut fields = std::collections::HashMap::new();
        for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                SettingsError::invalid(name, "not a key=value; connection string")
            })?;
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let field = |k: &str| fields.get(k).cloned();
        if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let host = field("developmentstorageproxyuri")
                .unwrap_or_else(|| "http://127.0.0.1".to_string());
            let host = host.trim_end_matches('/');
            let blob = parse_endpoint(name, &format!("{host}:10000/{AZURITE_ACCOUNT}"))?;
            let queue = parse_endpoint(name, &format!("{host}:10001/{AZURITE_ACCOUNT}"))?;
            plain_http_only_to_loopback(name, &blob, "the development account key")?;
            return Ok(Self {
                blob_endpoint: Some(blob),
                queue_endpoint: Some(queue),
                auth: StorageAuth::SharedKey {
                    account: AZURITE_ACCOUNT.to_string(),
                    key: Secret::new(AZURITE_KEY),
                },
            });
        }
        let account = field("accountname");
        let protocol = field("defaultendpointsprotocol").unwrap_or_else(|| "https".into());
        let suffix = field("endpointsuffix").unwrap_or_else(|| "core.windows.net".into());
        let endpoint = |explicit: &str, service: &str| -> Result<Option<Url>, SettingsError> {
            match (field(explicit), &account) {
                (Some(url), _) => parse_endpoint(name, &url).map(Some),
                (None, Some(account)) => {
                    parse_endpoint(name, &format!("{protocol}://{account}.{service}.{suffix}"))
                        .map(Some)
                }
                (None, None) => Ok(None),
            }
        };
        let blob_endpoint = endpoint("blobendpoint", "blob")?;
        let queue_endpoint = endpoint("queueendpoint", "queue")?;
        let auth = match (field("accountkey"), field("sharedaccesssignature"), account) {
            (Some(key), _, Some(account)) => {
                use base64::Engine as _;
                if base64::engine::general_purpose::STANDARD.decode(&key).is_err() {
                    return Err(SettingsError::invalid(name, "AccountKey is not base64"));
                }
                StorageAuth::SharedKey {
                    account,
                    key: Secret::new(key),
                }
            }
            (_, Some(sas), _) => StorageAuth::Sas(Secret::new(sas.trim_start_matches('?'))),
            _ => {
                return Err(SettingsError::invalid(
                    name,
                    "needs AccountName and AccountKey, SharedAccessSignature, or UseDevelopmentStorage=true",
                ))
            }
        };
        if blob_endpoint.is_none() && queue_endpoint.is_none() {
            return Err(SettingsError::invalid(
                name,
                "names no blob or queue endpoint",
            ));
        }
        for url in blob_endpoint.iter().chain(queue_endpoint.iter()) {
            plain_http_only_to_loopback(name, url, "an account key or SAS")?;
        }
        Ok(Self {
            blob_endpoint,
            queue_endpoint,
            auth,
        })
    }
}

/// Endpoints are kept without a trailing slash: the SDK appends `/container`, and `//container`
/// is a 400.
fn parse_endpoint(name: &str, value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value.trim().trim_end_matches('/'))
        .map_err(SettingsError::url(name, Some(value)))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(SettingsError::invalid(
            name,
            format!("'{value}' is not an http(s) URL"),
        ));
    }
    Ok(url)
}

/// A host on this machine: `127.0.0.0/8`, `::1` or `localhost`. Only there may a long-lived
/// credential (an account key, a SAS, a training key) travel over plain `http`: anywhere else
/// anyone on the path reads it.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `https`, or `http` to a loopback host ([`is_loopback`]); `what` names the credential.
pub fn plain_http_only_to_loopback(name: &str, url: &Url, what: &str) -> Result<(), SettingsError> {
    if url.scheme() == "https" || is_loopback(url) {
        return Ok(());
    }
    Err(SettingsError::invalid(
        name,
        format!(
            "{what} would go over plain http to '{}'; http is allowed only to a loopback host (127.0.0.0/8, ::1, localhost): use https",
            url.host_str().unwrap_or_default()
        ),
    ))
}

/// What to do with a finished export's backup blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportAction {
    /// Server-side copy into the model store; the copy carries tags and metadata.
    Copy,
    /// Tags and metadata on the backup blob in place.
    Tag,
    Both,
}

impl ExportAction {
    pub fn copies(self) -> bool {
        matches!(self, Self::Copy | Self::Both)
    }
    pub fn tags_in_place(self) -> bool {
        matches!(self, Self::Tag | Self::Both)
    }
}

/// Everything the handler reads from app settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: StorageConnection,
    pub backup_container: String,
    pub model_store_container: String,
    /// Where a rejected message too large for its queue record is kept (the functions' blob
    /// output binding writes it; the handler names it in the record).
    pub rejected_container: String,
    /// Where `Notifications` leaves a record of each ConnectionTest it handled (its blob output
    /// binding writes it; `cvctl verify` reads it).
    pub status_container: String,
    pub export_action: ExportAction,
    pub model_path_template: PathTemplate,
    /// Hosts a SAS `modelUri` may name (`CV_MODEL_URI_HOSTS`).
    pub model_uri_hosts: HostAllowList,
    /// Keep `{projectId}/latest/{platform}/…` on the newest iteration (`LATEST_ALIAS`).
    pub latest_alias: bool,
    /// Keep `{projectId}/index.json` (`MODEL_INDEX`).
    pub model_index: bool,
    /// The Custom Vision Training API, when `CUSTOM_VISION_ENDPOINT` is set.
    pub training: Option<TrainingSettings>,
    /// What a finished training does with it.
    pub automation: AutomationSettings,
    /// Events out: the outbox, its sinks and their schedule (docs/events.md).
    pub events: EventSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let or_default = |name: &str, default: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let container = |name: &str, default: &str| {
            let value = or_default(name, default);
            validate_container_name(&value)
                .map_err(|reason| SettingsError::invalid(name, reason))?;
            Ok::<_, SettingsError>(value)
        };
        let export_action = match or_default("EXPORT_ACTION", "both")
            .to_ascii_lowercase()
            .as_str()
        {
            "copy" => ExportAction::Copy,
            "tag" => ExportAction::Tag,
            "both" => ExportAction::Both,
            other => {
                return Err(SettingsError::invalid(
                    "EXPORT_ACTION",
                    format!("'{other}' is not one of copy, tag, both"),
                ))
            }
        };
        let model_path_template =
            PathTemplate::parse(&or_default("MODEL_PATH_TEMPLATE", PathTemplate::DEFAULT))
                .map_err(|source| SettingsError::Template {
                    name: "MODEL_PATH_TEMPLATE".to_string(),
                    source,
                })?;
        let flag = |name: &str| match or_default(name, "true").to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(SettingsError::invalid(
                name,
                format!("'{other}' is not true or false"),
            )),
        };
        let model_uri_hosts =
            HostAllowList::parse(&or_default("CV_MODEL_URI_HOSTS", HostAllowList::DEFAULT))
                .map_err(|e| SettingsError::invalid("CV_MODEL_URI_HOSTS", e))?;
        let training = TrainingSettings::from_lookup(get)?;
        let automation = AutomationSettings::from_lookup(get, training.is_some())?;
        let storage = StorageConnection::from_settings("CV_STORAGE", get)?;
        if storage.blob_endpoint.is_none() {
            return Err(SettingsError::Missing {
                name: "CV_STORAGE__blobServiceUri".into(),
                hint: " (the handler reads and writes blobs)".into(),
            });
        }
        Ok(Self {
            storage,
            backup_container: container("CV_BACKUP_CONTAINER", DEFAULT_BACKUP_CONTAINER)?,
            model_store_container: container(
                "MODEL_STORE_CONTAINER",
                DEFAULT_MODEL_STORE_CONTAINER,
            )?,
            rejected_container: container("CV_REJECTED_CONTAINER", DEFAULT_REJECTED_CONTAINER)?,
            status_container: container("CV_STATUS_CONTAINER", DEFAULT_STATUS_CONTAINER)?,
            export_action,
            model_path_template,
            model_uri_hosts,
            latest_alias: flag("LATEST_ALIAS")?,
            model_index: flag("MODEL_INDEX")?,
            training,
            automation,
            events: EventSettings::from_lookup(get)?,
        })
    }
}

/// Azure's rule: 3-63 characters, lower-case letters, digits and single hyphens.
fn validate_container_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(3..=63).contains(&name.len())
        || !ok_chars
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(format!("'{name}' is not a valid container name"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Settings as `from_lookup` reads them, from pairs.
    pub(crate) fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_container_sas_url_is_an_endpoint_a_sas_and_a_container() {
        let (c, name) = StorageConnection::from_container_url(
            "--container-url",
            "http://127.0.0.1:10000/devstoreaccount1/models?sv=2022-11-02&sr=c&sp=rl&sig=S3CRET",
        )
        .unwrap();
        assert_eq!(name, "models");
        assert_eq!(
            c.blob_endpoint.unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert!(matches!(&c.auth, StorageAuth::Sas(s) if s.expose().ends_with("sig=S3CRET")));
        let (c, name) = StorageConnection::from_container_url(
            "--container-url",
            "https://acct.blob.core.windows.net/models/?sp=rl&sig=x",
        )
        .unwrap();
        assert_eq!(name, "models");
        assert_eq!(
            c.blob_endpoint.unwrap().as_str(),
            "https://acct.blob.core.windows.net/"
        );
        for bad in [
            "https://acct.blob.core.windows.net/models",
            "http://acct.blob.core.windows.net/models?sig=S3CRET",
            "https://acct.blob.core.windows.net/?sig=S3CRET",
            "https://acct.blob.core.windows.net/Models?sig=S3CRET",
            "not a url S3CRET",
        ] {
            let err = StorageConnection::from_container_url("--container-url", bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("--container-url"), "{bad}: {err}");
            assert!(!err.contains("S3CRET"), "{bad}: {err}");
        }
    }

    /// URL and template errors keep their parse error as the source, and the text it had as a
    /// reason: the value quoted where it may be shown, left out where it may hold a SAS.
    #[test]
    fn url_and_template_errors_keep_their_text_and_source() {
        use std::error::Error as _;
        let err = StorageConnection::from_container_url("--container-url", "not a url S3CRET")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting --container-url is invalid: not a URL: relative URL without a base"
        );
        assert!(err.source().is_some());
        let err = parse_endpoint("BlobEndpoint", "nonsense").unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting BlobEndpoint is invalid: 'nonsense' is not a URL: relative URL without a base"
        );
        let err = Settings::from_lookup(&lookup(&[
            ("CV_STORAGE", "UseDevelopmentStorage=true"),
            ("MODEL_PATH_TEMPLATE", "{projectId}/{nope}"),
        ]))
        .unwrap_err();
        assert!(matches!(err, SettingsError::Template { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("setting MODEL_PATH_TEMPLATE is invalid: unknown placeholder {nope}"),
            "{err}"
        );
        assert!(err.source().is_some());
    }

    #[test]
    fn development_storage_defaults() {
        let s = Settings::from_lookup(&lookup(&[("CV_STORAGE", "UseDevelopmentStorage=true")]))
            .unwrap();
        assert_eq!(
            s.storage.blob_endpoint.unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(s.backup_container, "customvision-backups");
        assert_eq!(s.model_store_container, "models");
        assert_eq!(s.export_action, ExportAction::Both);
    }

    #[test]
    fn explicit_endpoints_lose_their_trailing_slash() {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:4000/devstoreaccount1/;QueueEndpoint=http://127.0.0.1:4001/devstoreaccount1;"
        );
        let c = StorageConnection::from_settings("X", &lookup(&[("X", &cs)])).unwrap();
        assert_eq!(
            c.blob_endpoint.unwrap().as_str(),
            "http://127.0.0.1:4000/devstoreaccount1"
        );
        assert!(matches!(c.auth, StorageAuth::SharedKey { .. }));
        assert!(
            !format!("{:?}", c.auth).contains("Eby8"),
            "keys never print"
        );
    }

    #[test]
    fn keys_go_over_plain_http_only_to_loopback() {
        let key = AZURITE_KEY;
        for local in [
            format!("DefaultEndpointsProtocol=http;AccountName=a;AccountKey={key};BlobEndpoint=http://localhost:4000/a;QueueEndpoint=http://LOCALHOST:4001/a"),
            format!("AccountName=a;AccountKey={key};BlobEndpoint=http://127.0.0.1:4000/a;QueueEndpoint=http://[::1]:4001/a"),
            "BlobEndpoint=http://127.0.0.1:4000/a;SharedAccessSignature=sv=1&sig=abc".to_string(),
            "UseDevelopmentStorage=true".to_string(),
            format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key}"),
        ] {
            assert!(
                StorageConnection::from_settings("CV_STORAGE", &lookup(&[("CV_STORAGE", &local)])).is_ok(),
                "{local}"
            );
        }
        for remote in [
            format!("DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={key}"),
            format!("AccountName=a;AccountKey={key};BlobEndpoint=https://a.example/a;QueueEndpoint=http://10.1.2.3:4001/a"),
            "BlobEndpoint=http://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig=SECRETSIG".to_string(),
            "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://devbox.example".to_string(),
        ] {
            let err = StorageConnection::from_settings("CV_STORAGE", &lookup(&[("CV_STORAGE", &remote)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("CV_STORAGE") && err.contains("loopback"), "{remote} -> {err}");
            assert!(!err.contains("Eby8") && !err.contains("SECRETSIG"), "{err}");
        }
    }

    #[test]
    fn identity_based_connection() {
        let c = StorageConnection::from_settings(
            "CV_STORAGE",
            &lookup(&[
                (
                    "CV_STORAGE__blobServiceUri",
                    "https://acct.blob.core.windows.net/",
                ),
                (
                    "CV_STORAGE__queueServiceUri",
                    "https://acct.queue.core.windows.net",
                ),
                ("CV_STORAGE__credential", "managedidentity"),
                ("CV_STORAGE__clientId", "abc"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.auth,
            StorageAuth::ManagedIdentity {
                client_id: Some("abc".into())
            }
        );
        let by_name = StorageConnection::from_settings(
            "CV_STORAGE",
            &lookup(&[("CV_STORAGE__accountName", "acct")]),
        )
        .unwrap();
        assert_eq!(
            by_name.queue_endpoint.unwrap().as_str(),
            "https://acct.queue.core.windows.net/"
        );
        assert_eq!(by_name.auth, StorageAuth::DeveloperTools);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "CV_STORAGE"),
            (vec![("CV_STORAGE", "nonsense")], "CV_STORAGE"),
            (vec![("CV_STORAGE", "AccountName=a")], "CV_STORAGE"),
            (
                vec![("CV_STORAGE__blobServiceUri", "http://insecure")],
                "CV_STORAGE__blobServiceUri",
            ),
            (
                vec![
                    (
                        "CV_STORAGE__blobServiceUri",
                        "https://a.blob.core.windows.net",
                    ),
                    ("CV_STORAGE__credential", "password"),
                ],
                "CV_STORAGE__credential",
            ),
            (
                vec![
                    ("CV_STORAGE", "UseDevelopmentStorage=true"),
                    ("EXPORT_ACTION", "move"),
                ],
                "EXPORT_ACTION",
            ),
            (
                vec![
                    ("CV_STORAGE", "UseDevelopmentStorage=true"),
                    ("MODEL_STORE_CONTAINER", "Models"),
                ],
                "MODEL_STORE_CONTAINER",
            ),
            (
                vec![
                    ("CV_STORAGE", "UseDevelopmentStorage=true"),
                    ("MODEL_PATH_TEMPLATE", "{nope}"),
                ],
                "MODEL_PATH_TEMPLATE",
            ),
            (
                vec![(
                    "CV_STORAGE__queueServiceUri",
                    "https://a.queue.core.windows.net",
                )],
                "CV_STORAGE__blobServiceUri",
            ),
            (
                vec![
                    ("CV_STORAGE", "UseDevelopmentStorage=true"),
                    ("CV_MODEL_URI_HOSTS", "*"),
                ],
                "CV_MODEL_URI_HOSTS",
            ),
            (
                vec![
                    ("CV_STORAGE", "UseDevelopmentStorage=true"),
                    ("LATEST_ALIAS", "sometimes"),
                ],
                "LATEST_ALIAS",
            ),
        ];
        for (pairs, name) in cases {
            let err = Settings::from_lookup(&lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{pairs:?} -> {err}");
        }
    }

    #[test]
    fn container_names() {
        for ok in ["models", "customvision-backups", "a1b"] {
            assert!(validate_container_name(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Models", "-a-b", "a--b", "a_b", &"a".repeat(64)] {
            assert!(validate_container_name(bad).is_err(), "{bad}");
        }
    }
}

//! The events' settings (docs/events.md): the outbox and failed queues, the delivered-marker
//! container, the retry schedule, and the sinks. No sink configured means events off: the
//! store functions build, read and write nothing for events (`events::emit`).

use std::time::Duration;

use url::Url;

use super::{is_loopback, validate_container_name, Secret, SettingsError};

pub const DEFAULT_EVENTS_QUEUE: &str = "customvision-events";
/// Where a `RecordRejected` event's record is queued (`CV_REJECTED_QUEUE`).
pub const DEFAULT_REJECTED_QUEUE: &str = "customvision-rejected";
pub const DEFAULT_EVENTS_FAILED_QUEUE: &str = "customvision-events-failed";
pub const DEFAULT_EVENTS_DELIVERED_CONTAINER: &str = "customvision-events-delivered";
/// Standard Webhooks' schedule after the immediate first attempt: 5 s, 5 min, 30 min, 2 h,
/// 5 h, 10 h, 10 h (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>,
/// "Retry schedule"); 27 h 35 min 5 s in all.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
/// A queue message lives 7 days at most, and so does a visibility delay
/// (<https://learn.microsoft.com/rest/api/storageservices/put-message>): the whole schedule
/// stays under it, so an event is never dropped by the queue before its last attempt.
pub const MAX_SCHEDULE: Duration = Duration::from_secs(7 * 24 * 3600 - 3600);

/// The event types' short names, as `CV_WEBHOOK_TYPES` lists them (or with this prefix). The
/// same list as `events::model::EventType`, whose test keeps the two equal: settings sit
/// under events and cannot name the type itself.
pub const EVENT_TYPE_NAMES: [&str; 9] = [
    "ModelCopied",
    "LatestMoved",
    "ReportWritten",
    "IterationPublished",
    "PublishRefused",
    "ExportFailed",
    "TrainingFailed",
    "MessageRejected",
    "Ping",
];
/// What a full type name starts with (`CustomVisionEvents.LatestMoved`).
pub const EVENT_TYPE_PREFIX: &str = "CustomVisionEvents.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventGridAuth {
    /// `CV_EVENTGRID__key`, for local runs: sent as `aeg-sas-key`; unusable: the sink is not
    /// ready.
    Key(Result<Secret, UnusableSecret>),
    /// `CV_EVENTGRID__credential=managedidentity` (and `__clientId` for a user-assigned one).
    ManagedIdentity { client_id: Option<String> },
    /// Neither: the developer's `az`/`azd` login.
    DeveloperTools,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGridSettings {
    pub topic_endpoint: Url,
    pub auth: EventGridAuth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: Url,
    /// The key bytes: the base64 after `whsec_`. Unusable (an unresolved Key Vault
    /// reference, say): the sink is not ready, and its events wait on the retry schedule.
    pub secret: Result<Secret, UnusableSecret>,
    /// During a rotation, the old one too: every request is signed with both. Unusable: not
    /// ready either, rather than signing with one secret while receivers may hold the other.
    pub previous_secret: Result<Option<Secret>, UnusableSecret>,
    /// Only these types, when set: short names ([`EVENT_TYPE_NAMES`]), each once, whether
    /// the setting listed the full name or the short one.
    pub types: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    pub queue: String,
    /// `CV_REJECTED_QUEUE`, which a `MessageRejected` names as where the record is.
    pub rejected_queue: String,
    pub failed_queue: String,
    pub delivered_container: String,
    /// Delays before the 2nd, 3rd, … attempts.
    pub retry_schedule: Vec<Duration>,
    /// `source` override; else the model store's container URL.
    pub source: Option<String>,
    pub event_grid: Option<EventGridSettings>,
    pub webhook: Option<WebhookSettings>,
}

impl EventSettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let queue = |name: &str, default: &str| {
            let q = value(name).unwrap_or_else(|| default.to_string());
            validate_container_name(&q).map_err(|_| {
                SettingsError::invalid(name, format!("'{q}' is not a valid queue name"))
            })?;
            Ok::<_, SettingsError>(q)
        };
        let delivered_container = value("CV_EVENTS_DELIVERED_CONTAINER")
            .unwrap_or_else(|| DEFAULT_EVENTS_DELIVERED_CONTAINER.to_string());
        validate_container_name(&delivered_container)
            .map_err(|e| SettingsError::invalid("CV_EVENTS_DELIVERED_CONTAINER", e))?;
        let retry_schedule = parse_schedule(
            &value("CV_EVENTS_RETRY_SCHEDULE").unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.into()),
        )
        .map_err(|e| SettingsError::invalid("CV_EVENTS_RETRY_SCHEDULE", e))?;
        let event_grid = match value("CV_EVENTGRID__topicEndpointUri") {
            None => None,
            Some(endpoint) => {
                let name = "CV_EVENTGRID__topicEndpointUri";
                let topic_endpoint = secure_url(name, &endpoint)?;
                let auth = match (value("CV_EVENTGRID__key"), value("CV_EVENTGRID__credential")) {
                    (Some(key), _) => EventGridAuth::Key(topic_key(&key)),
                    (None, Some(c)) if c.eq_ignore_ascii_case("managedidentity") => {
                        EventGridAuth::ManagedIdentity {
                            client_id: value("CV_EVENTGRID__clientId"),
                        }
                    }
                    (None, Some(other)) => {
                        return Err(SettingsError::invalid(
                            "CV_EVENTGRID__credential",
                            format!("'{other}' is not supported (use managedidentity, or CV_EVENTGRID__key locally)"),
                        ))
                    }
                    (None, None) => EventGridAuth::DeveloperTools,
                };
                Some(EventGridSettings {
                    topic_endpoint,
                    auth,
                })
            }
        };
        let webhook = match value("CV_WEBHOOK_URL") {
            None => None,
            Some(url) => {
                let url = secure_url("CV_WEBHOOK_URL", &url)?;
                let secret = match value("CV_WEBHOOK_SECRET") {
                    Some(s) => webhook_key("CV_WEBHOOK_SECRET", &s),
                    None => Err(UnusableSecret::new(
                        "CV_WEBHOOK_SECRET",
                        SecretIssue::Missing,
                    )),
                };
                let previous_secret = value("CV_WEBHOOK_SECRET_PREVIOUS")
                    .map(|s| webhook_key("CV_WEBHOOK_SECRET_PREVIOUS", &s))
                    .transpose();
                let types = value("CV_WEBHOOK_TYPES")
                    .map(|t| webhook_types(&t))
                    .transpose()?;
                Some(WebhookSettings {
                    url,
                    secret,
                    previous_secret,
                    types,
                })
            }
        };
        Ok(Self {
            queue: queue("CV_EVENTS_QUEUE", DEFAULT_EVENTS_QUEUE)?,
            rejected_queue: queue("CV_REJECTED_QUEUE", DEFAULT_REJECTED_QUEUE)?,
            failed_queue: queue("CV_EVENTS_FAILED_QUEUE", DEFAULT_EVENTS_FAILED_QUEUE)?,
            delivered_container,
            retry_schedule,
            source: value("CV_EVENTS_SOURCE"),
            event_grid,
            webhook,
        })
    }

    /// Any sink configured.
    pub fn enabled(&self) -> bool {
        self.event_grid.is_some() || self.webhook.is_some()
    }
}

/// `CV_WEBHOOK_TYPES`: comma-separated, full or short names. An entry that names no type is
/// refused at start-up, named (a type name is not a secret; redacted all the same), rather
/// than filtering out every event of the type meant.
fn webhook_types(text: &str) -> Result<Vec<String>, SettingsError> {
    const NAME: &str = "CV_WEBHOOK_TYPES";
    let mut types: Vec<String> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let short = entry.strip_prefix(EVENT_TYPE_PREFIX).unwrap_or(entry);
        if !EVENT_TYPE_NAMES.contains(&short) {
            return Err(SettingsError::invalid(
                NAME,
                format!(
                    "'{}' is not an event type (one of {}, with or without '{EVENT_TYPE_PREFIX}')",
                    crate::redact::redact(entry),
                    EVENT_TYPE_NAMES.join(", ")
                ),
            ));
        }
        if !types.iter().any(|t| t == short) {
            types.push(short.to_string());
        }
    }
    if types.is_empty() {
        return Err(SettingsError::invalid(
            NAME,
            "lists no type (leave it unset for every type)",
        ));
    }
    Ok(types)
}

/// Why a secret setting cannot be used. Settings that hold secrets (the webhook's, the topic
/// key) never stop the handler: right after a deploy an App Service Key Vault reference that
/// has not resolved yet arrives as its own text (docs/events-infra.md), and a start-up error
/// would stop the store functions too, pushing their messages into `-poison`. The sink is
/// built not ready instead, and `PublishEvents` retries its events on the schedule
/// (docs/events.md, "Not ready"). Non-secret settings (URLs, the credential kind, queue
/// names, the schedule) are still start-up errors: no platform delay explains them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretIssue {
    Missing,
    KeyVaultReference,
    NotWhsec,
    NotBase64,
    KeyLength,
    NotHeaderValue,
}

impl std::fmt::Display for SecretIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "is not set",
            Self::KeyVaultReference => "is an unresolved Key Vault reference (App Service passes the reference text until it can read the secret: check the identity's Key Vault Secrets User role, the secret and the vault's network access)",
            Self::NotWhsec => "does not start with whsec_",
            Self::NotBase64 => "is not base64 after whsec_",
            Self::KeyLength => "must hold 24 to 64 bytes after whsec_ (Standard Webhooks)",
            Self::NotHeaderValue => "holds characters an HTTP header cannot carry",
        })
    }
}

/// A secret setting that cannot be used: names the setting, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting} {issue}")]
pub struct UnusableSecret {
    pub setting: &'static str,
    pub issue: SecretIssue,
}

impl UnusableSecret {
    fn new(setting: &'static str, issue: SecretIssue) -> Self {
        Self { setting, issue }
    }
}

/// App Service's reference syntax, `@Microsoft.KeyVault(SecretUri=...)` or
/// `@Microsoft.KeyVault(VaultName=...;SecretName=...)`
/// (<https://learn.microsoft.com/azure/app-service/app-service-key-vault-references>): the
/// value of a setting whose reference the platform could not resolve.
pub fn is_key_vault_reference(value: &str) -> bool {
    const PREFIX: &str = "@microsoft.keyvault(";
    value
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// `whsec_` and base64 (Standard Webhooks' secret format); the bytes after decoding are the
/// HMAC key. The value is never echoed.
pub fn webhook_key(name: &'static str, value: &str) -> Result<Secret, UnusableSecret> {
    use base64::Engine;
    let unusable = |issue| UnusableSecret::new(name, issue);
    if is_key_vault_reference(value) {
        return Err(unusable(SecretIssue::KeyVaultReference));
    }
    let Some(b64) = value.strip_prefix("whsec_") else {
        return Err(unusable(SecretIssue::NotWhsec));
    };
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) if (24..=64).contains(&bytes.len()) => Ok(Secret::new(b64)),
        Ok(_) => Err(unusable(SecretIssue::KeyLength)),
        Err(_) => Err(unusable(SecretIssue::NotBase64)),
    }
}

/// The topic key, sent as a header as it is: an unresolved reference or a value no header
/// can carry is unusable.
pub fn topic_key(value: &str) -> Result<Secret, UnusableSecret> {
    let unusable = |issue| UnusableSecret::new("CV_EVENTGRID__key", issue);
    if is_key_vault_reference(value) {
        return Err(unusable(SecretIssue::KeyVaultReference));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(unusable(SecretIssue::NotHeaderValue));
    }
    Ok(Secret::new(value))
}

/// https, or http to loopback (the tests' fakes).
fn secure_url(name: &str, value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value).map_err(SettingsError::url(name, None))?;
    let ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !ok || url.cannot_be_a_base() {
        return Err(SettingsError::invalid(
            name,
            "must be https (http only to a loopback host)",
        ));
    }
    Ok(url)
}

/// `5s,5m,30m,2h`: delays before each retry. A number without a unit is seconds; `0` is
/// allowed (tests). Empty (`none`) means no retry: the first failure is final.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut delays = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (digits, unit) = part.split_at(
            part.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len()),
        );
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("'{part}' is not a delay such as 5s, 5m, 2h"))?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => return Err(format!("'{part}': the unit must be s, m, h or d")),
        };
        delays.push(Duration::from_secs(secs));
    }
    let total: Duration = delays.iter().sum();
    if total > MAX_SCHEDULE {
        return Err(format!(
            "the delays add up to {} h, over the queue's 7-day message lifetime less an hour",
            total.as_secs() / 3600
        ));
    }
    Ok(delays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::lookup;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn nothing_set_is_events_off_with_the_default_names() {
        let s = EventSettings::from_lookup(&lookup(&[])).unwrap();
        assert!(!s.enabled());
        assert_eq!(s.queue, "customvision-events");
        assert_eq!(s.failed_queue, "customvision-events-failed");
        assert_eq!(s.delivered_container, "customvision-events-delivered");
        let secs: Vec<_> = s.retry_schedule.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
    }

    #[test]
    fn a_schedule_over_the_queue_lifetime_or_unreadable_is_refused() {
        assert!(parse_schedule("7d").is_err());
        assert!(parse_schedule("6d,1d").is_err());
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("").is_err());
        assert_eq!(parse_schedule("0,1,2s").unwrap().len(), 3);
        assert!(parse_schedule("none").unwrap().is_empty());
    }

    #[test]
    fn sinks_read_their_auth_and_refuse_plain_http_elsewhere() {
        let s = EventSettings::from_lookup(&lookup(&[
            (
                "CV_EVENTGRID__topicEndpointUri",
                "https://t.westeurope-1.eventgrid.azure.net/api/events",
            ),
            ("CV_EVENTGRID__credential", "managedidentity"),
            ("CV_EVENTGRID__clientId", "c1"),
            ("CV_WEBHOOK_URL", "http://127.0.0.1:8080/hook"),
            ("CV_WEBHOOK_SECRET", KEY),
            ("CV_WEBHOOK_TYPES", "LatestMoved, CustomVisionEvents.Ping"),
        ]))
        .unwrap();
        assert!(s.enabled());
        assert_eq!(
            s.event_grid.unwrap().auth,
            EventGridAuth::ManagedIdentity {
                client_id: Some("c1".into())
            }
        );
        assert_eq!(s.webhook.unwrap().types.unwrap().len(), 2);
        for (k, v) in [
            ("CV_WEBHOOK_URL", "http://example.com/hook"),
            (
                "CV_EVENTGRID__topicEndpointUri",
                "http://t.eventgrid.azure.net/api/events",
            ),
        ] {
            let err = EventSettings::from_lookup(&lookup(&[(k, v), ("CV_WEBHOOK_SECRET", KEY)]))
                .unwrap_err();
            assert!(err.to_string().contains("https"), "{err}");
        }
    }

    fn webhook_with_types(types: &str) -> Result<EventSettings, SettingsError> {
        EventSettings::from_lookup(&lookup(&[
            ("CV_WEBHOOK_URL", "https://example.com/hook"),
            ("CV_WEBHOOK_SECRET", KEY),
            ("CV_WEBHOOK_TYPES", types),
        ]))
    }

    #[test]
    fn webhook_types_take_full_or_short_names_kept_short_and_once() {
        let s = webhook_with_types(
            " LatestMoved ,CustomVisionEvents.Ping,, CustomVisionEvents.LatestMoved",
        )
        .unwrap();
        assert_eq!(
            s.webhook.unwrap().types.unwrap(),
            ["LatestMoved", "Ping"],
            "short names, each once"
        );
        let every = EVENT_TYPE_NAMES.join(",");
        let s = webhook_with_types(&every).unwrap();
        assert_eq!(s.webhook.unwrap().types.unwrap(), EVENT_TYPE_NAMES);
    }

    #[test]
    fn an_unknown_webhook_type_stops_start_up_naming_the_setting_and_the_entry() {
        for (types, entry) in [
            ("LatestMoved,ModelCopy", "'ModelCopy'"),
            ("CustomVisionEvents.Latest", "'CustomVisionEvents.Latest'"),
            (
                "Microsoft.Storage.BlobCreated",
                "'Microsoft.Storage.BlobCreated'",
            ),
            ("latestmoved", "'latestmoved'"),
            ("CustomVisionEvents.", "'CustomVisionEvents.'"),
        ] {
            let err = webhook_with_types(types).unwrap_err();
            assert!(
                matches!(&err, SettingsError::Invalid { name, .. } if name == "CV_WEBHOOK_TYPES"),
                "{types}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(entry), "{types}: {text}");
            assert!(
                text.contains("IterationPublished"),
                "the valid names: {text}"
            );
        }
        let err = webhook_with_types(" , ,").unwrap_err();
        assert!(err.to_string().contains("CV_WEBHOOK_TYPES"), "{err}");
        assert!(err.to_string().contains("lists no type"), "{err}");
        // Unset (or blank) is every type.
        let s = webhook_with_types(" ").unwrap();
        assert_eq!(s.webhook.unwrap().types, None);
    }

    /// A secret setting never stops the handler: each unusable value is classified, named,
    /// and never echoed; the sink is built not ready.
    #[test]
    fn an_unusable_secret_is_classified_named_and_never_echoed_not_a_startup_error() {
        let reference =
            "@Microsoft.KeyVault(SecretUri=https://kv-cv-x.vault.azure.net/secrets/webhook-secret)";
        for (bad, issue) in [
            (reference, SecretIssue::KeyVaultReference),
            (
                "@microsoft.keyvault(VaultName=kv;SecretName=s)",
                SecretIssue::KeyVaultReference,
            ),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SecretIssue::NotWhsec),
            ("whsec_!!!notbase64!!!", SecretIssue::NotBase64),
            ("whsec_c2hvcnQ=", SecretIssue::KeyLength),
        ] {
            let s = EventSettings::from_lookup(&lookup(&[
                ("CV_WEBHOOK_URL", "https://example.com/hook"),
                ("CV_WEBHOOK_SECRET", bad),
                ("CV_WEBHOOK_SECRET_PREVIOUS", bad),
            ]))
            .unwrap_or_else(|e| panic!("{bad}: a start-up error: {e}"));
            let hook = s.webhook.unwrap();
            for (err, name) in [
                (hook.secret.unwrap_err(), "CV_WEBHOOK_SECRET"),
                (
                    hook.previous_secret.unwrap_err(),
                    "CV_WEBHOOK_SECRET_PREVIOUS",
                ),
            ] {
                assert_eq!(err, UnusableSecret::new(name, issue), "{bad}");
                let text = err.to_string();
                assert!(text.starts_with(&format!("setting {name} ")), "{text}");
                assert!(!text.contains(bad.trim_start_matches("whsec_")), "{text}");
                assert!(!text.contains("kv-cv-x"), "{text}");
            }
        }
        let missing =
            EventSettings::from_lookup(&lookup(&[("CV_WEBHOOK_URL", "https://e.com/h")])).unwrap();
        assert_eq!(
            missing.webhook.unwrap().secret,
            Err(UnusableSecret::new(
                "CV_WEBHOOK_SECRET",
                SecretIssue::Missing
            ))
        );
        let good = EventSettings::from_lookup(&lookup(&[
            ("CV_WEBHOOK_URL", "https://e.com/h"),
            ("CV_WEBHOOK_SECRET", KEY),
        ]))
        .unwrap()
        .webhook
        .unwrap();
        assert_eq!(
            good.secret,
            Ok(Secret::new(KEY.trim_start_matches("whsec_")))
        );
        assert_eq!(good.previous_secret, Ok(None));

        for (key, issue) in [
            (reference, Some(SecretIssue::KeyVaultReference)),
            ("a\u{7f}b", Some(SecretIssue::NotHeaderValue)),
            ("fake-topic-key+/=", None),
        ] {
            let s = EventSettings::from_lookup(&lookup(&[
                (
                    "CV_EVENTGRID__topicEndpointUri",
                    "https://t.eventgrid.azure.net/api/events",
                ),
                ("CV_EVENTGRID__key", key),
            ]))
            .unwrap();
            let EventGridAuth::Key(got) = s.event_grid.unwrap().auth else {
                panic!("a key");
            };
            assert_eq!(
                got.err(),
                issue.map(|i| UnusableSecret::new("CV_EVENTGRID__key", i)),
                "{key:?}"
            );
        }
    }

    /// What is not a secret stays a start-up error: no platform delay explains it.
    #[test]
    fn a_malformed_non_secret_sink_setting_still_stops_the_handler() {
        for (k, v) in [
            ("CV_EVENTGRID__credential", "workloadidentity"),
            ("CV_EVENTGRID__topicEndpointUri", "not a url"),
        ] {
            let err = EventSettings::from_lookup(&lookup(&[
                (
                    "CV_EVENTGRID__topicEndpointUri",
                    "https://t.eventgrid.azure.net/api/events",
                ),
                (k, v),
            ]))
            .unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
        }
    }
}

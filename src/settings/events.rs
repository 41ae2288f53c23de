//! The events' settings (docs/events.md): the outbox and failed queues, the delivered-marker
//! container, the retry schedule, and the sinks. No sink configured means events off: the
//! store functions still write their outbox messages, and `PublishEvents` consumes them and
//! sends nowhere.

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
    /// `CV_EVENTGRID__key`, for local runs: sent as `aeg-sas-key`.
    Key(Secret),
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
    /// The key bytes: the base64 after `whsec_`.
    pub secret: Secret,
    /// During a rotation, the old one too: every request is signed with both.
    pub previous_secret: Option<Secret>,
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
                    (Some(key), _) => EventGridAuth::Key(Secret::new(key)),
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
                let secret = |name: &str| -> Result<Option<Secret>, SettingsError> {
                    value(name).map(|s| webhook_key(name, &s)).transpose()
                };
                let secret =
                    secret("CV_WEBHOOK_SECRET")?.ok_or_else(|| SettingsError::Missing {
                        name: "CV_WEBHOOK_SECRET".into(),
                        hint: " (whsec_ and the base64 key, when CV_WEBHOOK_URL is set)".into(),
                    })?;
                let types = value("CV_WEBHOOK_TYPES")
                    .map(|t| webhook_types(&t))
                    .transpose()?;
                Some(WebhookSettings {
                    url,
                    secret,
                    previous_secret: secret_or_none(value("CV_WEBHOOK_SECRET_PREVIOUS"))?,
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

fn secret_or_none(value: Option<String>) -> Result<Option<Secret>, SettingsError> {
    value
        .map(|s| webhook_key("CV_WEBHOOK_SECRET_PREVIOUS", &s))
        .transpose()
}

/// `whsec_` and base64 (Standard Webhooks' secret format); the bytes after decoding are the
/// HMAC key. The value is never echoed.
fn webhook_key(name: &str, value: &str) -> Result<Secret, SettingsError> {
    use base64::Engine;
    let Some(b64) = value.strip_prefix("whsec_") else {
        return Err(SettingsError::invalid(name, "does not start with whsec_"));
    };
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) if (24..=64).contains(&bytes.len()) => Ok(Secret::new(b64)),
        Ok(_) => Err(SettingsError::invalid(
            name,
            "the key after whsec_ must be 24 to 64 bytes (Standard Webhooks)",
        )),
        Err(_) => Err(SettingsError::invalid(
            name,
            "what follows whsec_ is not base64",
        )),
    }
}

/// https, or http to loopback (the tests' fakes).
fn secure_url(name: &str, value: &str) -> Result<Url, SettingsError> {
    let url =
        Url::parse(value).map_err(|e| SettingsError::invalid(name, format!("not a URL: {e}")))?;
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

    #[test]
    fn a_bad_webhook_secret_is_named_and_never_echoed() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!notbase64!!!",
            "whsec_c2hvcnQ=",
        ] {
            let err = EventSettings::from_lookup(&lookup(&[
                ("CV_WEBHOOK_URL", "https://example.com/hook"),
                ("CV_WEBHOOK_SECRET", bad),
            ]))
            .unwrap_err()
            .to_string();
            assert!(err.contains("CV_WEBHOOK_SECRET"), "{err}");
            assert!(!err.contains(bad.trim_start_matches("whsec_")), "{err}");
        }
        let missing = EventSettings::from_lookup(&lookup(&[("CV_WEBHOOK_URL", "https://e.com/h")]));
        assert!(matches!(missing, Err(SettingsError::Missing { .. })));
    }
}

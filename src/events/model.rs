//! The events: CloudEvents 1.0 in structured JSON mode (one JSON object per event;
//! <https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md>).
//!
//! An event is built from a [`Fact`]: what changed, described by values that are the same on
//! every delivery of the message that caused it. The `id` is a hash of the type, the subject
//! and the fact's identity, so a redelivered message yields the same id and consumers dedupe on
//! `source` + `id`. The `time` is the change's own time (a stored blob's Last-Modified, or the
//! queue message's insertion time for a failure Custom Vision reported), never the time of
//! sending. `data` is thin: ids, URLs without a query, sizes, hashes, the order key, the
//! gate's figures; never a SAS, a key or a message's text (reasons go through [`redact`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::redact::redact;

pub const SPEC_VERSION: &str = "1.0";
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// What one event may weigh as JSON. Event Grid takes up to 1 MB per event
/// (<https://learn.microsoft.com/azure/event-grid/quotas-limits>, "Event size");
/// ours stay at 48 KiB or less, so that one event with its outbox envelope fits one queue
/// message (64 KiB, counted XML-escaped).
pub const MAX_EVENT_BYTES: usize = 48 * 1024;
/// A reason in `data` is cut here: it says why, it is not a log.
pub const MAX_REASON_CHARS: usize = 1024;

/// Every event type, named `CustomVisionEvents.<Name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ModelCopied,
    LatestMoved,
    ReportWritten,
    IterationPublished,
    PublishRefused,
    ExportFailed,
    TrainingFailed,
    MessageRejected,
    Ping,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::ModelCopied,
        EventType::LatestMoved,
        EventType::ReportWritten,
        EventType::IterationPublished,
        EventType::PublishRefused,
        EventType::ExportFailed,
        EventType::TrainingFailed,
        EventType::MessageRejected,
        EventType::Ping,
    ];

    /// The CloudEvents `type`, which is also the schema's file name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ModelCopied => "CustomVisionEvents.ModelCopied",
            Self::LatestMoved => "CustomVisionEvents.LatestMoved",
            Self::ReportWritten => "CustomVisionEvents.ReportWritten",
            Self::IterationPublished => "CustomVisionEvents.IterationPublished",
            Self::PublishRefused => "CustomVisionEvents.PublishRefused",
            Self::ExportFailed => "CustomVisionEvents.ExportFailed",
            Self::TrainingFailed => "CustomVisionEvents.TrainingFailed",
            Self::MessageRejected => "CustomVisionEvents.MessageRejected",
            Self::Ping => "CustomVisionEvents.Ping",
        }
    }

    /// The name after `CustomVisionEvents.` (what `CV_WEBHOOK_TYPES` may list too).
    pub fn short(self) -> &'static str {
        self.name()
            .strip_prefix("CustomVisionEvents.")
            .unwrap_or(self.name())
    }

    /// The full name or the short one.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.name() == text || t.short() == text)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an iteration's model stands in "newest" (`model_store::OrderKey`, as text): consumers
/// order by this, not by arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderKeyData {
    /// `trainedAt` or `created`.
    pub by: String,
    /// RFC 3339.
    pub at: String,
    #[serde(rename = "iterationId")]
    pub iteration_id: String,
}

/// A model as stored: the copy, or the `latest` alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub project_id: String,
    pub iteration_id: String,
    pub platform: String,
    /// The blob's URL; any query or fragment is dropped when the event is built.
    pub url: String,
    pub size: Option<u64>,
    /// The Content-MD5, raw bytes.
    pub content_md5: Option<Vec<u8>>,
    /// Quoted, as the copy records it: with the destination it identifies the fact.
    pub source_etag: String,
    pub order: Option<OrderKeyData>,
}

/// The quality gate's figures and its bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub precision: f64,
    pub recall: f64,
    #[serde(rename = "averagePrecision", skip_serializing_if = "Option::is_none")]
    pub average_precision: Option<f64>,
    #[serde(rename = "minPrecision")]
    pub min_precision: f64,
    #[serde(rename = "minRecall")]
    pub min_recall: f64,
}

/// What changed. Each variant knows its type, subject, identity and data.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// A copy was made or replaced in the store.
    ModelCopied(StoredBlob),
    /// The `latest` alias names another iteration, or new bytes.
    LatestMoved(StoredBlob),
    ReportWritten {
        project_id: String,
        iteration_id: String,
        /// The JSON report's URL (the HTML one beside it, when written).
        url: String,
        html_url: Option<String>,
        /// Quoted ETag of the JSON report blob as written (data only: not part of the id).
        etag: String,
    },
    IterationPublished {
        project_id: String,
        iteration_id: String,
        publish_name: String,
        gate: Option<Gate>,
    },
    PublishRefused {
        project_id: String,
        iteration_id: String,
        reasons: Vec<String>,
        gate: Option<Gate>,
    },
    ExportFailed {
        project_id: String,
        iteration_id: String,
    },
    TrainingFailed {
        project_id: String,
        iteration_id: String,
    },
    MessageRejected {
        function: String,
        message_id: String,
        reason: String,
        /// Where the record is kept: the rejected queue, and the blob for a large message.
        queue: String,
        blob: Option<String>,
    },
    /// `cvctl events test-fire`: `nonce` makes each fire its own event (and a redelivery not).
    Ping { nonce: String },
}

impl Fact {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::ModelCopied(_) => EventType::ModelCopied,
            Self::LatestMoved(_) => EventType::LatestMoved,
            Self::ReportWritten { .. } => EventType::ReportWritten,
            Self::IterationPublished { .. } => EventType::IterationPublished,
            Self::PublishRefused { .. } => EventType::PublishRefused,
            Self::ExportFailed { .. } => EventType::ExportFailed,
            Self::TrainingFailed { .. } => EventType::TrainingFailed,
            Self::MessageRejected { .. } => EventType::MessageRejected,
            Self::Ping { .. } => EventType::Ping,
        }
    }

    /// The subject consumers filter on (Event Grid's `subjectBeginsWith`/`subjectEndsWith`).
    pub fn subject(&self) -> String {
        match self {
            Self::ModelCopied(m) => format!(
                "projects/{}/iterations/{}/models/{}",
                m.project_id, m.iteration_id, m.platform
            ),
            Self::LatestMoved(m) => {
                format!("projects/{}/models/{}/latest", m.project_id, m.platform)
            }
            Self::ReportWritten {
                project_id,
                iteration_id,
                ..
            } => format!("projects/{project_id}/iterations/{iteration_id}/report"),
            Self::IterationPublished {
                project_id,
                iteration_id,
                ..
            }
            | Self::PublishRefused {
                project_id,
                iteration_id,
                ..
            } => format!("projects/{project_id}/iterations/{iteration_id}/publish"),
            Self::ExportFailed {
                project_id,
                iteration_id,
            }
            | Self::TrainingFailed {
                project_id,
                iteration_id,
            } => format!("projects/{project_id}/iterations/{iteration_id}"),
            Self::MessageRejected {
                function,
                message_id,
                ..
            } => format!("functions/{function}/messages/{message_id}"),
            Self::Ping { .. } => "test".to_string(),
        }
    }

    /// What makes this fact this fact, beyond its type and subject: the same on every
    /// delivery, different when the store changed again.
    fn identity(&self) -> String {
        match self {
            Self::ModelCopied(m) | Self::LatestMoved(m) => {
                format!("{}\n{}", without_query(&m.url), m.source_etag)
            }
            // Rewritten on every delivery (its `generatedAt` moves): the report's place is the
            // fact, so a redelivery keeps the id.
            Self::ReportWritten { url, .. } => without_query(url),
            Self::IterationPublished { publish_name, .. } => publish_name.clone(),
            Self::PublishRefused { reasons, .. } => reasons.join("\n"),
            // Custom Vision names no export or training run: one failure per iteration and
            // status, which is also what a duplicate notification says.
            Self::ExportFailed { .. } | Self::TrainingFailed { .. } => String::new(),
            Self::MessageRejected { reason, .. } => redact(reason),
            Self::Ping { nonce } => nonce.clone(),
        }
    }

    /// The deterministic id: SHA-256 over type, subject and identity (NUL-separated, so no
    /// two different triples hash the same text), its first 128 bits as 32 hex digits.
    pub fn id(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.event_type().name().as_bytes());
        hash.update([0]);
        hash.update(self.subject().as_bytes());
        hash.update([0]);
        hash.update(self.identity().as_bytes());
        hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn data(&self) -> Value {
        match self {
            Self::ModelCopied(m) | Self::LatestMoved(m) => stored_blob_data(m),
            Self::ReportWritten {
                project_id,
                iteration_id,
                url,
                html_url,
                etag,
            } => {
                let mut data = json!({
                    "projectId": project_id,
                    "iterationId": iteration_id,
                    "url": without_query(url),
                    "etag": etag,
                });
                if let Some(html) = html_url {
                    data["htmlUrl"] = without_query(html).into();
                }
                data
            }
            Self::IterationPublished {
                project_id,
                iteration_id,
                publish_name,
                gate,
            } => with_gate(
                json!({"projectId": project_id, "iterationId": iteration_id, "publishName": publish_name}),
                gate,
            ),
            Self::PublishRefused {
                project_id,
                iteration_id,
                reasons,
                gate,
            } => with_gate(
                json!({
                    "projectId": project_id,
                    "iterationId": iteration_id,
                    "reasons": reasons.iter().map(|r| bounded_reason(r)).collect::<Vec<_>>(),
                }),
                gate,
            ),
            Self::ExportFailed {
                project_id,
                iteration_id,
            }
            | Self::TrainingFailed {
                project_id,
                iteration_id,
            } => json!({"projectId": project_id, "iterationId": iteration_id}),
            Self::MessageRejected {
                function,
                message_id,
                reason,
                queue,
                blob,
            } => {
                let mut data = json!({
                    "function": function,
                    "messageId": message_id,
                    "reason": bounded_reason(reason),
                    "record": {"queue": queue},
                });
                if let Some(blob) = blob {
                    data["record"]["blob"] = without_query(blob).into();
                }
                data
            }
            Self::Ping { nonce } => json!({"nonce": nonce}),
        }
    }
}

fn stored_blob_data(m: &StoredBlob) -> Value {
    use base64::Engine;
    let mut data = Map::new();
    data.insert("projectId".into(), m.project_id.clone().into());
    data.insert("iterationId".into(), m.iteration_id.clone().into());
    data.insert("platform".into(), m.platform.clone().into());
    data.insert("url".into(), without_query(&m.url).into());
    if let Some(size) = m.size {
        data.insert("size".into(), size.into());
    }
    if let Some(md5) = &m.content_md5 {
        let b64 = base64::engine::general_purpose::STANDARD.encode(md5);
        data.insert("contentMd5".into(), b64.into());
    }
    data.insert("sourceEtag".into(), m.source_etag.clone().into());
    if let Some(order) = &m.order {
        data.insert(
            "orderKey".into(),
            serde_json::to_value(order).unwrap_or(Value::Null),
        );
    }
    Value::Object(data)
}

fn with_gate(mut data: Value, gate: &Option<Gate>) -> Value {
    if let Some(gate) = gate {
        data["gate"] = serde_json::to_value(gate).unwrap_or(Value::Null);
    }
    data
}

/// Redacted, then cut on a character boundary.
fn bounded_reason(reason: &str) -> String {
    let clean = redact(reason);
    match clean.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// A URL as an event may show it: no query (a SAS), no fragment, no `user:pass@`. Text that
/// is not a URL (a blob path) is kept up to any `?` or `#`.
pub fn without_query(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => text
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// One CloudEvent, structured JSON mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    pub time: String,
    pub datacontenttype: String,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is {size} bytes as JSON, over the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("the event's time cannot be written as RFC 3339")]
    Time,
}

impl CloudEvent {
    /// `time` is the change's time ([`Fact`]'s doc), given by the caller.
    pub fn new(source: &str, fact: &Fact, time: OffsetDateTime) -> Result<Self, EventError> {
        let time = time
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|_| EventError::Time)?;
        let event = Self {
            specversion: SPEC_VERSION.to_string(),
            id: fact.id(),
            source: without_query(source),
            event_type: fact.event_type().name().to_string(),
            subject: fact.subject(),
            time,
            datacontenttype: DATA_CONTENT_TYPE.to_string(),
            data: fact.data(),
        };
        let size = event.to_json().len();
        if size > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge { size });
        }
        Ok(event)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn kind(&self) -> Option<EventType> {
        EventType::parse(&self.event_type)
    }
}

/// Examples of every type, for the tests, the schemas' checks and the docs.
pub fn examples() -> Vec<(Fact, OffsetDateTime)> {
    const P: &str = crate::domain::examples::PROJECT;
    const I: &str = crate::domain::examples::EVENTS_ITERATION;
    let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
    let order = OrderKeyData {
        by: "trainedAt".into(),
        at: "2026-01-02T02:00:00Z".into(),
        iteration_id: I.into(),
    };
    let model = StoredBlob {
        project_id: P.into(),
        iteration_id: I.into(),
        platform: "ONNX".into(),
        url: format!(
            "https://account.blob.core.windows.net/models/{P}/{I}/ONNX/{P}%20-%20{I}.onnx"
        ),
        size: Some(1_234_567),
        content_md5: Some(vec![0x1b; 16]),
        source_etag: "\"0x8DC0000000000A1\"".into(),
        order: Some(order),
    };
    let latest = StoredBlob {
        url: format!("https://account.blob.core.windows.net/models/{P}/latest/ONNX/model.onnx"),
        ..model.clone()
    };
    let gate = Gate {
        precision: 0.93,
        recall: 0.88,
        average_precision: Some(0.91),
        min_precision: 0.9,
        min_recall: 0.85,
    };
    vec![
        (Fact::ModelCopied(model), at),
        (Fact::LatestMoved(latest), at),
        (
            Fact::ReportWritten {
                project_id: P.into(),
                iteration_id: I.into(),
                url: format!("https://account.blob.core.windows.net/models/reports/{P}/{I}.json"),
                html_url: Some(format!(
                    "https://account.blob.core.windows.net/models/reports/{P}/{I}.html"
                )),
                etag: "\"0x8DC0000000000B2\"".into(),
            },
            at,
        ),
        (
            Fact::IterationPublished {
                project_id: P.into(),
                iteration_id: I.into(),
                publish_name: "production".into(),
                gate: Some(gate.clone()),
            },
            at,
        ),
        (
            Fact::PublishRefused {
                project_id: P.into(),
                iteration_id: I.into(),
                reasons: vec!["recall 0.8000 is 0.0500 under the bar of 0.8500".into()],
                gate: Some(Gate {
                    recall: 0.8,
                    ..gate
                }),
            },
            at,
        ),
        (
            Fact::ExportFailed {
                project_id: P.into(),
                iteration_id: I.into(),
            },
            at,
        ),
        (
            Fact::TrainingFailed {
                project_id: P.into(),
                iteration_id: I.into(),
            },
            at,
        ),
        (
            Fact::MessageRejected {
                function: "Notifications".into(),
                message_id: "6f1c0a52-0000-4000-8000-000000000001".into(),
                reason: "the message is neither JSON nor base64".into(),
                queue: "customvision-rejected".into(),
                blob: None,
            },
            at,
        ),
        (
            Fact::Ping {
                nonce: "5b1f6d2e-7c3a-4e8b-9f10-2a3b4c5d6e7f".into(),
            },
            at,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "https://account.blob.core.windows.net/models";

    fn events() -> Vec<CloudEvent> {
        examples()
            .iter()
            .map(|(fact, at)| CloudEvent::new(SOURCE, fact, *at).unwrap())
            .collect()
    }

    #[test]
    fn every_type_has_an_example_and_parses_from_both_names() {
        let kinds: Vec<_> = examples().iter().map(|(f, _)| f.event_type()).collect();
        assert_eq!(kinds, EventType::ALL.to_vec());
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
            assert_eq!(EventType::parse(t.short()), Some(t));
        }
        assert_eq!(EventType::parse("CustomVisionEvents."), None);
    }

    /// `CV_WEBHOOK_TYPES` is checked at start-up against the settings' own list of names (the
    /// settings cannot name this type): the two must not drift apart.
    #[test]
    fn the_settings_know_every_type_by_its_names() {
        use crate::settings::events::{EVENT_TYPE_NAMES, EVENT_TYPE_PREFIX};
        let shorts: Vec<&str> = EventType::ALL.iter().map(|t| t.short()).collect();
        assert_eq!(shorts, EVENT_TYPE_NAMES);
        for t in EventType::ALL {
            assert_eq!(t.name(), format!("{EVENT_TYPE_PREFIX}{}", t.short()));
        }
    }

    #[test]
    fn the_same_fact_gives_the_same_id_and_another_fact_another() {
        let first = events();
        let again = events();
        assert_eq!(first, again, "built twice, byte for byte the same");
        let mut ids: Vec<_> = first.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), first.len(), "one id per example");
        assert!(first
            .iter()
            .all(|e| e.id.len() == 32 && e.id.bytes().all(|b| b.is_ascii_hexdigit())));

        // New bytes at the same path: another copy, another id.
        let (Fact::ModelCopied(model), at) = &examples()[0] else {
            unreachable!()
        };
        let replaced = Fact::ModelCopied(StoredBlob {
            source_etag: "\"0x8DC0000000000FF\"".into(),
            ..model.clone()
        });
        assert_ne!(replaced.id(), examples()[0].0.id());
        // Same fact, another time (a redelivery reads the same blob): the id does not move.
        let later = CloudEvent::new(SOURCE, &examples()[0].0, *at + time::Duration::HOUR).unwrap();
        assert_eq!(later.id, first[0].id);
    }

    #[test]
    fn the_docs_show_every_type_with_its_real_id() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.md"),
        )
        .unwrap();
        for event in events() {
            assert!(
                doc.contains(&format!("\"id\": \"{}\"", event.id)),
                "docs/events.md lacks the example of {} (id {})",
                event.event_type,
                event.id
            );
        }
    }

    #[test]
    fn the_time_is_the_changes_time_as_given() {
        for (event, (_, at)) in events().iter().zip(examples()) {
            assert_eq!(event.time, at.format(&Rfc3339).unwrap());
        }
    }

    #[test]
    fn no_sas_or_key_reaches_an_event() {
        let sig = ["s", "ig=", "c2VjcmV0c2VjcmV0"].concat();
        let (Fact::ModelCopied(model), at) = &examples()[0] else {
            unreachable!()
        };
        let with_sas = Fact::ModelCopied(StoredBlob {
            url: format!("{}?sv=2024-01-01&{sig}#frag", model.url),
            ..model.clone()
        });
        let rejected = Fact::MessageRejected {
            function: "ExportCompleted".into(),
            message_id: "m1".into(),
            reason: format!("could not read https://a.blob.core.windows.net/c/m.zip?{sig}; AccountKey=abc; whsec_c2VjcmV0"),
            queue: "customvision-rejected".into(),
            blob: Some(format!("https://a.blob.core.windows.net/r/m.txt?{sig}")),
        };
        for fact in [with_sas, rejected] {
            let json = CloudEvent::new(&format!("{SOURCE}?{sig}"), &fact, *at)
                .unwrap()
                .to_json();
            for secret in ["c2VjcmV0c2VjcmV0", "abc", "c2VjcmV0", "sv=2024"] {
                assert!(!json.contains(secret), "{secret} in {json}");
            }
        }
    }

    #[test]
    fn the_id_depends_on_the_url_not_its_query() {
        let (Fact::ModelCopied(model), _) = &examples()[0] else {
            unreachable!()
        };
        let with_query = Fact::ModelCopied(StoredBlob {
            url: format!("{}?se=2030-01-01", model.url),
            ..model.clone()
        });
        assert_eq!(with_query.id(), examples()[0].0.id());
    }

    #[test]
    fn a_long_reason_is_cut_and_the_event_stays_small() {
        let fact = Fact::MessageRejected {
            function: "Notifications".into(),
            message_id: "m".into(),
            reason: "é".repeat(100_000),
            queue: "q".into(),
            blob: None,
        };
        let event = CloudEvent::new(SOURCE, &fact, OffsetDateTime::UNIX_EPOCH).unwrap();
        let reason = event.data["reason"].as_str().unwrap();
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS + 1);
        let huge = Fact::PublishRefused {
            project_id: "p".into(),
            iteration_id: "i".into(),
            reasons: vec!["x".repeat(1000); 100],
            gate: None,
        };
        assert!(matches!(
            CloudEvent::new(SOURCE, &huge, OffsetDateTime::UNIX_EPOCH),
            Err(EventError::TooLarge { .. })
        ));
    }

    #[test]
    fn events_round_trip_as_json_with_the_required_attributes() {
        for event in events() {
            let value: Value = serde_json::from_str(&event.to_json()).unwrap();
            for attr in ["specversion", "id", "source", "type"] {
                assert!(
                    value[attr].as_str().is_some_and(|s| !s.is_empty()),
                    "{attr}"
                );
            }
            assert_eq!(value["specversion"], "1.0");
            let back: CloudEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }
}

/// The examples against `schemas/events/<type>.schema.json`, with the JSON Schema keywords the
/// schemas use, minus `pattern` and `format` (no regex engine here): the Python check
/// (`make events-check`, `jsonschema`) validates fully.
#[cfg(test)]
mod schema_tests {
    use super::*;

    fn check(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(c) = schema.get("const") {
            if c != value {
                errors.push(format!("{at}: {value} is not {c}"));
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.contains(value) {
                errors.push(format!("{at}: {value} not in {options:?}"));
            }
        }
        let ok = match schema.get("type").and_then(Value::as_str) {
            Some("string") => value.is_string(),
            Some("integer") => value.is_u64() || value.is_i64(),
            Some("number") => value.is_number(),
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {value} is not a {}", schema["type"]));
        }
        if let Value::Object(map) = value {
            for req in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(req.as_str().unwrap_or_default()) {
                    errors.push(format!("{at}: {req} missing"));
                }
            }
            for (key, v) in map {
                match schema["properties"].get(key) {
                    Some(sub) => check(sub, v, &format!("{at}.{key}"), errors),
                    None if schema["additionalProperties"] == Value::Bool(false) => {
                        errors.push(format!("{at}: {key} not allowed"))
                    }
                    None => {}
                }
            }
        }
        if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
            for (i, v) in items.iter().enumerate() {
                check(sub, v, &format!("{at}[{i}]"), errors);
            }
        }
    }

    #[test]
    fn every_example_matches_its_schema_and_every_type_has_one() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/events");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let mut expected: Vec<_> = EventType::ALL
            .iter()
            .map(|t| format!("{}.schema.json", t.name()))
            .collect();
        expected.sort();
        assert_eq!(files, expected, "one schema per type, nothing else");
        for (fact, at) in examples() {
            let event =
                CloudEvent::new("https://a.blob.core.windows.net/models", &fact, at).unwrap();
            let path = dir.join(format!("{}.schema.json", event.event_type));
            let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let value: Value = serde_json::from_str(&event.to_json()).unwrap();
            let mut errors = Vec::new();
            check(&schema, &value, "$", &mut errors);
            assert!(errors.is_empty(), "{}: {errors:?}", event.event_type);
            // And the schema can fail: another type's event does not pass.
            let mut wrong = value.clone();
            wrong["data"]["unexpected"] = 1.into();
            let mut errors = Vec::new();
            check(&schema, &wrong, "$", &mut errors);
            assert!(!errors.is_empty(), "{}", event.event_type);
        }
    }
}

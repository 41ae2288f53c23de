//! The sinks an event is sent to: an Event Grid custom topic ([`eventgrid`]) and a signed
//! webhook ([`webhook`]). None configured: events off.

pub mod eventgrid;
pub mod webhook;

use std::time::{Duration, Instant};

use super::delivery::Answer;
use super::model::{CloudEvent, EventType};
use crate::redact::redact;
use crate::settings::events::{EventSettings, UnusableSecret};
use crate::storage::StorageAccount;
use crate::SharedHttp;

/// How long one request to a sink may take (Standard Webhooks suggests a short timeout,
/// "15 seconds or less"); a slower sink is a timeout, retried on the schedule.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// The Event Grid sink's name in delivered markers, failed records and an outbox message's
/// pending sinks.
pub const EVENT_GRID: &str = "eventgrid";
/// The webhook's name, likewise.
pub const WEBHOOK: &str = "webhook";
/// How much of an answer's body is kept (failed records, `test-fire --direct`).
const BODY_CHARS: usize = 512;

/// Why a configured sink is not ready: its secret or credential cannot be used. Not a
/// start-up error (docs/events.md, "Not ready"): the handler starts, the store functions keep
/// writing their outbox events, and `PublishEvents` answers for this sink with
/// [`Answer::NotReady`], retried on the schedule. Names the setting, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Secret(#[from] UnusableSecret),
    /// The cause kept (`source()`), redacted where shown.
    #[error("cannot create a credential for Event Grid (CV_EVENTGRID__credential, CV_EVENTGRID__clientId): {}", redact(&.0.to_string()))]
    Credential(#[source] azure_core::Error),
}

pub enum Sink {
    EventGrid(eventgrid::EventGridSink),
    Webhook(webhook::WebhookSink),
}

impl Sink {
    /// The name in delivered markers and failed records.
    pub fn name(&self) -> &'static str {
        match self {
            Self::EventGrid(_) => EVENT_GRID,
            Self::Webhook(_) => WEBHOOK,
        }
    }

    /// Whether this sink takes events of this type (`CV_WEBHOOK_TYPES`).
    pub fn wants(&self, event: &CloudEvent) -> bool {
        match self {
            Self::EventGrid(_) => true,
            Self::Webhook(w) => w.wants(event.kind()),
        }
    }

    /// A 401/403 may be an identity's role not yet in effect.
    pub fn propagating_auth(&self) -> bool {
        match self {
            Self::EventGrid(s) => s.uses_identity(),
            Self::Webhook(_) => false,
        }
    }

    /// Why this sink cannot send, if it cannot.
    pub fn not_ready(&self) -> Option<&SinkError> {
        match self {
            Self::EventGrid(s) => s.not_ready(),
            Self::Webhook(s) => s.not_ready(),
        }
    }

    pub fn is_webhook(&self) -> bool {
        matches!(self, Self::Webhook(_))
    }

    pub async fn send(&self, event: &CloudEvent) -> Sent {
        let started = Instant::now();
        let answer = match self {
            Self::EventGrid(s) => s.send(event).await,
            Self::Webhook(s) => s.send(event).await,
        };
        Sent {
            answer,
            elapsed: started.elapsed(),
        }
    }
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sent {
    pub answer: Answer,
    pub elapsed: Duration,
}

/// The configured sinks, built once at start-up. A sink whose secret or credential is
/// unusable is built [not ready](Sink::not_ready), never an error: a start-up error would
/// stop the store functions as well.
pub fn from_settings(
    settings: &EventSettings,
    http: &SharedHttp,
    storage: Option<&StorageAccount>,
) -> Vec<Sink> {
    let mut sinks = Vec::new();
    if let Some(eg) = &settings.event_grid {
        sinks.push(Sink::EventGrid(eventgrid::EventGridSink::new(
            eg, http, storage,
        )));
    }
    if let Some(wh) = &settings.webhook {
        sinks.push(Sink::Webhook(webhook::WebhookSink::new(wh, http)));
    }
    sinks
}

/// The answer of a sink that is not ready.
pub(crate) fn not_ready(error: &SinkError) -> Answer {
    Answer::NotReady {
        reason: redact(&error.to_string()),
    }
}

/// The names of the configured sinks that take events of type `kind` ([`Sink::name`], the
/// webhook's filter as [`Sink::wants`] reads it), from the settings alone, with no sink built:
/// the delivered markers such an event leaves (`cvctl verify` waits for a ping's).
pub fn names_taking(settings: &EventSettings, kind: EventType) -> Vec<&'static str> {
    let mut names = Vec::new();
    if settings.event_grid.is_some() {
        names.push(EVENT_GRID);
    }
    if let Some(wh) = &settings.webhook {
        if wh
            .types
            .as_deref()
            .is_none_or(|types| type_listed(types, Some(kind)))
        {
            names.push(WEBHOOK);
        }
    }
    names
}

/// Sends `request` and reads the answer into an [`Answer`], bounded and redacted.
pub(crate) async fn answer_of(request: reqwest::RequestBuilder) -> Answer {
    let response = match request.timeout(SEND_TIMEOUT).send().await {
        Ok(r) => r,
        Err(e) => {
            return Answer::NoAnswer {
                reason: redact(&error_chain(&e)),
            }
        }
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(BODY_CHARS).collect();
    Answer::Status {
        status,
        body: redact(body.trim()),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The short names a filter lists, matched against an event's type.
pub(crate) fn type_listed(types: &[String], kind: Option<EventType>) -> bool {
    kind.is_some_and(|k| types.iter().any(|t| EventType::parse(t) == Some(k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::events::model::examples;
    use crate::settings::events::WebhookSettings;
    use crate::settings::Secret;

    fn webhook(types: Option<&[&str]>) -> Sink {
        let settings = WebhookSettings {
            url: url::Url::parse("https://example.com/hook").unwrap(),
            secret: Ok(Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
            previous_secret: Ok(None),
            types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        };
        Sink::Webhook(webhook::WebhookSink::new(&settings, &crate::http_client()))
    }

    /// One event of each type, from the documented examples.
    fn one_of_each() -> Vec<CloudEvent> {
        examples()
            .iter()
            .map(|(fact, at)| CloudEvent::new("https://a/models", fact, *at).unwrap())
            .collect()
    }

    fn wanted(sink: &Sink) -> Vec<&'static str> {
        one_of_each()
            .iter()
            .filter(|e| sink.wants(e))
            .filter_map(|e| e.kind().map(EventType::short))
            .collect()
    }

    #[test]
    fn a_webhook_with_types_wants_only_those_and_without_every_type() {
        let every: Vec<&str> = EventType::ALL.iter().map(|t| t.short()).collect();
        assert_eq!(wanted(&webhook(None)), every);
        assert_eq!(
            wanted(&webhook(Some(&["LatestMoved", "IterationPublished"]))),
            ["LatestMoved", "IterationPublished"]
        );
        // The settings keep short names; a full one (a value built elsewhere) matches too.
        assert_eq!(
            wanted(&webhook(Some(&["CustomVisionEvents.Ping"]))),
            ["Ping"]
        );
    }

    #[test]
    fn a_type_that_is_none_of_ours_is_never_listed() {
        let listed = ["LatestMoved".to_string()];
        assert!(type_listed(&listed, Some(EventType::LatestMoved)));
        assert!(!type_listed(&listed, Some(EventType::ModelCopied)));
        assert!(!type_listed(&listed, None), "an unknown type");
        assert!(!type_listed(&[], Some(EventType::LatestMoved)));
        let mut foreign = one_of_each()[1].clone();
        foreign.event_type = "Other.LatestMoved".into();
        assert!(!webhook(Some(&["LatestMoved"])).wants(&foreign));
        assert!(webhook(None).wants(&foreign), "no filter: everything");
    }

    #[test]
    fn the_sinks_taking_a_type_are_named_as_their_markers_are() {
        let names = |pairs: &[(&str, &str)], kind| {
            let settings = EventSettings::from_lookup(&|k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
            names_taking(&settings, kind)
        };
        let topic = (
            "CV_EVENTGRID__topicEndpointUri",
            "https://t.example.com/api/events",
        );
        let hook = ("CV_WEBHOOK_URL", "https://h.example.com/hook");
        let secret = (
            "CV_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        assert!(names(&[], EventType::Ping).is_empty(), "events off");
        assert_eq!(
            names(&[topic, hook, secret], EventType::Ping),
            [EVENT_GRID, WEBHOOK]
        );
        let only = ("CV_WEBHOOK_TYPES", "ModelCopied");
        assert_eq!(
            names(&[topic, hook, secret, only], EventType::Ping),
            [EVENT_GRID]
        );
        assert_eq!(
            names(&[hook, secret, only], EventType::ModelCopied),
            [WEBHOOK]
        );
    }

    #[test]
    fn a_credential_failure_keeps_its_cause_and_shows_no_secret() {
        let cause = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "no identity endpoint at https://x/?sig=c2VjcmV0",
        );
        let err = SinkError::Credential(cause);
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        assert!(err.to_string().contains("no identity endpoint"), "{err}");
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert!(source.is_some_and(|s| s.contains("no identity endpoint")));
    }

    /// Both sinks with an unresolved Key Vault reference for their secret: built (no start-up
    /// error), not ready, and answering `NotReady` that names the setting without sending
    /// anything (the URLs are unroutable: a request would answer `NoAnswer`).
    #[tokio::test]
    async fn a_sink_with_an_unusable_secret_is_built_not_ready_and_sends_nothing() {
        let reference = "@Microsoft.KeyVault(SecretUri=https://kv-cv-x.vault.azure.net/secrets/s)";
        let settings = EventSettings::from_lookup(&|k| match k {
            "CV_EVENTGRID__topicEndpointUri" => Some("http://127.0.0.1:9/api/events".into()),
            "CV_EVENTGRID__key" | "CV_WEBHOOK_SECRET" => Some(reference.into()),
            "CV_WEBHOOK_URL" => Some("http://127.0.0.1:9/hook".into()),
            _ => None,
        })
        .unwrap();
        let sinks = from_settings(&settings, &crate::http::http_client(), None);
        assert_eq!(sinks.len(), 2);
        let event = CloudEvent::new(
            "https://a.blob.core.windows.net/models",
            &crate::events::model::examples()[0].0,
            crate::events::model::examples()[0].1,
        )
        .unwrap();
        for (sink, setting) in sinks.iter().zip(["CV_EVENTGRID__key", "CV_WEBHOOK_SECRET"]) {
            assert!(sink.not_ready().is_some(), "{}", sink.name());
            let Answer::NotReady { reason } = sink.send(&event).await.answer else {
                panic!("{} sent", sink.name());
            };
            assert!(
                reason.contains(setting) && reason.contains("Key Vault"),
                "{reason}"
            );
            assert!(!reason.contains("kv-cv-x"), "{reason}");
        }
    }
}

//! The outbox: what a store function puts on its `%CV_EVENTS_QUEUE%` output binding, and what
//! `PublishEvents` reads back. One queue message per event, so that each is retried, failed
//! and redelivered on its own.
//!
//! The host writes a function's outputs only when its invocation succeeds
//! (`shared/HOST-CONTRACT.md`): an event is committed with the store change it reports, and
//! a failed invocation leaves no event behind. The other half is the redelivery rule
//! ([`emits`]): an earlier attempt may have changed the store and died before its outputs were
//! written, so a redelivered message emits for outcomes found "already done" too; the ids make
//! the repeat harmless.
//!
//! And what becomes of an event given up on: its [`FailedRecord`] on the failed queue, read
//! ([`failed_records`]) and put back on the outbox with its own id ([`redeliver`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use azure_core::http::RequestContent;
use azure_storage_queue::models::{
    QueueClientPeekMessagesOptions, QueueClientReceiveMessagesOptions, QueueMessage,
};
use azure_storage_queue::QueueClient;

use super::model::CloudEvent;
use crate::redact::redact;
use crate::storage::StorageActionError;

/// Why a queue message is not an outbox message; the `Display` is the rejected record's reason.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("not an outbox message (an object with an `event` CloudEvent): {}", redact(&.0.to_string()))]
    NotAnEvent(#[source] serde_json::Error),
    #[error("the event's id is not 32 lower-case hex digits, as every event of ours has")]
    BadId,
    #[error("the event's type '{0}' is none of ours")]
    UnknownType(String),
}

/// One outbox message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub event: CloudEvent,
    /// Attempts made so far: 0 as a store function writes it, then one more per re-enqueue.
    #[serde(default)]
    pub attempts: u32,
    /// The sinks still to be sent the event, by name (`eventgrid`, `webhook`): set on a
    /// re-enqueue to those whose answer was transient, so a sink that accepted, refused for
    /// good or answered 410 is not sent it again. Absent (a store function's message, a
    /// redelivery): every configured sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<String>>,
}

impl OutboxMessage {
    pub fn new(event: CloudEvent) -> Self {
        Self {
            event,
            attempts: 0,
            sinks: None,
        }
    }

    /// Whether the sink named `name` is still to be sent this event.
    pub fn pending(&self, name: &str) -> bool {
        self.sinks
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }

    /// Anything that is not an outbox message of ours (garbage on the queue) is an error with
    /// the reason, for the caller's rejected record. The id names a marker blob, so it must be
    /// ours: 32 hex digits.
    pub fn parse(text: &str) -> Result<Self, OutboxError> {
        let message: Self = serde_json::from_str(text.trim()).map_err(OutboxError::NotAnEvent)?;
        let id = &message.event.id;
        if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(OutboxError::BadId);
        }
        if message.event.kind().is_none() {
            return Err(OutboxError::UnknownType(redact(&message.event.event_type)));
        }
        Ok(message)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether an outcome is emitted: always when this attempt made the change; when it found
/// the change already made, only on a redelivery (`DequeueCount` > 1), since a first delivery
/// finding it done is a duplicate notification whose own delivery emitted already.
pub fn emits(changed_now: bool, dequeue_count: Option<u32>) -> bool {
    changed_now || dequeue_count.unwrap_or(1) > 1
}

/// The output binding's value for `events`: a JSON array, one queue message per element
/// (`Outputs.<binding>` as the host reads it); `None` when there is nothing to write.
pub fn output_value(events: &[CloudEvent]) -> Option<Value> {
    if events.is_empty() {
        return None;
    }
    Some(Value::Array(
        events
            .iter()
            .map(|e| serde_json::to_value(OutboxMessage::new(e.clone())).unwrap_or(Value::Null))
            .collect(),
    ))
}

/// Puts `events` on the outbox queue itself, one message each as a store function's output
/// does: for the changes made outside a function (`cvctl backfill`) and `cvctl events
/// test-fire`. `PublishEvents` sends them like any other.
pub async fn enqueue(queue: &QueueClient, events: &[CloudEvent]) -> Result<(), StorageActionError> {
    let action = "put an event on the outbox queue";
    for event in events {
        let content: RequestContent<QueueMessage, _> = QueueMessage {
            message_text: Some(OutboxMessage::new(event.clone()).to_json()),
        }
        .try_into()
        .map_err(StorageActionError::of(action))?;
        queue
            .send_message(content, None)
            .await
            .map_err(StorageActionError::of(action))?;
    }
    Ok(())
}

/// A failed event, as the failed queue keeps it: the event (its id unchanged, so a
/// redelivery is deduplicated downstream), the sink that refused it and its last answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRecord {
    pub event: CloudEvent,
    pub sink: String,
    /// The last answer, redacted.
    pub answer: String,
    pub attempts: u32,
    /// RFC 3339: when it was given up.
    pub failed_at: String,
}

/// How many failed records one read of the failed queue takes (the queue's most).
const FAILED_BATCH: i32 = 32;

/// Up to 32 failed records, peeked: left in the failed queue. A message that is not a record
/// is skipped.
pub async fn failed_records(failed: &QueueClient) -> Result<Vec<FailedRecord>, StorageActionError> {
    let action = "read the failed queue";
    let options = QueueClientPeekMessagesOptions {
        number_of_messages: Some(FAILED_BATCH),
        ..Default::default()
    };
    let peeked = failed
        .peek_messages(Some(options))
        .await
        .map_err(StorageActionError::of(action))?
        .into_model()
        .map_err(StorageActionError::of(action))?;
    Ok(peeked
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| serde_json::from_str(&m.message_text?).ok())
        .collect())
}

/// Which request of a redelivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliverStep {
    /// Receiving from the failed queue.
    Read,
    /// Putting the event back on the outbox.
    Enqueue,
    /// Deleting the record from the failed queue once its event is on the outbox.
    Delete,
    /// Making a record that was looked at and left visible again.
    Release,
}

impl std::fmt::Display for RedeliverStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read the failed queue",
            Self::Enqueue => "put an event back on the outbox",
            Self::Delete => "delete a record from the failed queue",
            Self::Release => "release a record in the failed queue",
        })
    }
}

/// A redelivery's request that failed; the events moved before it stay moved.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed: {}", redact(&.source.to_string()))]
pub struct RedeliverError {
    pub step: RedeliverStep,
    #[source]
    pub source: azure_core::Error,
}

impl RedeliverError {
    fn of(step: RedeliverStep) -> impl Fn(azure_core::Error) -> Self {
        move |source| Self { step, source }
    }
}

/// Takes the failed records `wanted` picks off the failed queue and puts their events back on
/// the outbox, with their own ids (a sink that took one before has its delivered marker and is
/// not sent it again); `moved` hears of each as it lands. A record is received, then deleted
/// once its event is on the outbox: a crash in between leaves it in both, and the id dedupes
/// it. Records looked at and left are released at once, and the scan ends when a batch holds
/// nothing new. Returns how many were moved.
pub async fn redeliver(
    failed: &QueueClient,
    outbox: &QueueClient,
    wanted: impl Fn(&FailedRecord) -> bool,
    mut moved: impl FnMut(&FailedRecord),
) -> Result<usize, RedeliverError> {
    let mut count = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(FAILED_BATCH),
            visibility_timeout: Some(60),
            ..Default::default()
        };
        let received = failed
            .receive_messages(Some(options))
            .await
            .map_err(RedeliverError::of(RedeliverStep::Read))?
            .into_model()
            .map_err(RedeliverError::of(RedeliverStep::Read))?
            .items
            .unwrap_or_default();
        let mut new = false;
        for message in received {
            let (Some(message_id), Some(receipt), Some(text)) = (
                message.message_id,
                message.pop_receipt,
                message.message_text,
            ) else {
                continue;
            };
            new |= seen.insert(message_id.clone());
            match serde_json::from_str::<FailedRecord>(&text).ok() {
                Some(record) if wanted(&record) => {
                    enqueue(outbox, std::slice::from_ref(&record.event))
                        .await
                        .map_err(|e| RedeliverError {
                            step: RedeliverStep::Enqueue,
                            source: e.source,
                        })?;
                    failed
                        .delete_message(&message_id, &receipt, None)
                        .await
                        .map_err(RedeliverError::of(RedeliverStep::Delete))?;
                    moved(&record);
                    count += 1;
                }
                // Not this one: visible again for the app and the next command.
                _ => {
                    failed
                        .update_message(&message_id, &receipt, 0, None)
                        .await
                        .map_err(RedeliverError::of(RedeliverStep::Release))?;
                }
            }
        }
        if !new {
            return Ok(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::examples;
    use crate::events::sinks::{EVENT_GRID, WEBHOOK};

    #[test]
    fn the_redelivery_rule() {
        assert!(emits(true, Some(1)));
        assert!(emits(true, None));
        assert!(
            !emits(false, Some(1)),
            "a duplicate's first delivery emits nothing new"
        );
        assert!(!emits(false, None));
        assert!(
            emits(false, Some(2)),
            "an earlier attempt may have died before its outputs"
        );
    }

    #[test]
    fn a_message_without_sinks_is_for_every_sink_and_a_retry_names_its_own() {
        let (fact, at) = &examples()[0];
        let mut message = OutboxMessage::new(CloudEvent::new("https://a/m", fact, *at).unwrap());
        assert!(
            !message.to_json().contains("\"sinks\""),
            "a store function's message"
        );
        assert!(message.pending(EVENT_GRID) && message.pending(WEBHOOK));
        message.sinks = Some(vec![EVENT_GRID.into()]);
        let back = OutboxMessage::parse(&message.to_json()).unwrap();
        assert!(back.pending(EVENT_GRID));
        assert!(!back.pending(WEBHOOK));
    }

    #[test]
    fn one_message_per_event_that_reads_back() {
        let events: Vec<_> = examples()
            .iter()
            .map(|(f, at)| CloudEvent::new("https://a/models", f, *at).unwrap())
            .collect();
        let Some(Value::Array(messages)) = output_value(&events) else {
            panic!("an array")
        };
        assert_eq!(messages.len(), events.len());
        for (m, e) in messages.iter().zip(&events) {
            let back = OutboxMessage::parse(&serde_json::to_string_pretty(m).unwrap()).unwrap();
            assert_eq!(&back.event, e);
            assert_eq!(back.attempts, 0);
        }
        assert_eq!(output_value(&[]), None);
        let garbage = OutboxMessage::parse("garbage").unwrap_err();
        assert!(matches!(garbage, OutboxError::NotAnEvent(_)));
        assert!(
            std::error::Error::source(&garbage).is_some(),
            "serde's error kept as the cause"
        );
        assert!(garbage.to_string().contains("expected value"), "{garbage}");
        assert!(OutboxMessage::parse(r#"{"event":{"id":"x"}}"#).is_err());
        let mut bad = OutboxMessage::new(events[0].clone());
        bad.event.id = "../../x".into();
        assert!(matches!(
            OutboxMessage::parse(&bad.to_json()),
            Err(OutboxError::BadId)
        ));
        let mut bad = OutboxMessage::new(events[0].clone());
        bad.event.event_type = "Other.Type".into();
        assert!(matches!(
            OutboxMessage::parse(&bad.to_json()),
            Err(OutboxError::UnknownType(_))
        ));
    }
}

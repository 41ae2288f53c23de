//! One outbox message through the sinks: skip a sink that has already accepted the event (its
//! delivered marker), send, judge the answer, and then mark, retry later or give up.
//!
//! - **Markers:** a sink that accepts gets a blob `{sink}/{eventId}` in
//!   `%CV_EVENTS_DELIVERED_CONTAINER%`, checked before sending. The same event id reaches
//!   `PublishEvents` more than once: a host redelivery after a crash between the sink's
//!   answer and the message's delete, a store function's redelivery emitting again, a
//!   `cvctl events redeliver`, a retry of the *other* sink. A marker written but lost (a
//!   crash in between) means one duplicate, which consumers dedupe on `source` + `id`.
//!   The container is created on the first marker that finds it missing (Core Tools with no
//!   infra); the queues never are (the failed queue's role is Message Sender only).
//! - **Retries** re-enqueue the message on `%CV_EVENTS_QUEUE%` through the queue client with
//!   a visibility delay from the schedule: the host's output binding cannot delay a message,
//!   and answering 500 would retry on the host's clock (30 s, five times) and then poison it.
//!   The copy is written before the invocation answers, so a crash after it and before the
//!   answer leaves two copies of the message: both carry the same event, and the markers
//!   keep a sink from being sent it twice. The copy names the sinks still pending
//!   ([`OutboxMessage::sinks`]): a sink that refused for good (one failed record) or answered
//!   410 is not sent the event again.
//! - **Failures** (a permanent answer, or the schedule run out) are returned as
//!   [`FailedRecord`]s for the function's `%CV_EVENTS_FAILED_QUEUE%` output.

use std::time::Duration;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::BlobClientUploadOptions;
use azure_storage_queue::models::{QueueClientSendMessageOptions, QueueMessage};

use super::delivery::{judge, next_delay, waited, Answer, Verdict};
use super::outbox::{FailedRecord, OutboxMessage};
use super::sinks::Sink;
use crate::redact::redact;
use crate::settings::events::EventSettings;
use crate::storage::{error_code, StorageAccount, StorageActionError, StorageError};

/// Storage failed (a marker read, the re-enqueue): the host retries the message, and the
/// markers keep the sinks that accepted from a second send.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Request(#[from] StorageActionError),
}

/// What happened to one message, for the log and the outputs.
#[derive(Debug, Default)]
pub struct Published {
    /// One line per sink.
    pub lines: Vec<String>,
    pub failed: Vec<FailedRecord>,
    /// Re-enqueued with this delay.
    pub retry_in: Option<Duration>,
}

pub struct Publisher<'a> {
    pub settings: &'a EventSettings,
    pub account: &'a StorageAccount,
    pub sinks: &'a [Sink],
}

impl Publisher<'_> {
    pub async fn publish(&self, mut message: OutboxMessage) -> Result<Published, PublishError> {
        let event = &message.event;
        let attempts = message.attempts + 1;
        let mut out = Published::default();
        let mut transient: Vec<(&Sink, Answer)> = Vec::new();
        for sink in self.sinks {
            if !sink.wants(event) || !message.pending(sink.name()) {
                continue;
            }
            if self.delivered(sink, &event.id).await? {
                out.lines.push(format!(
                    "{}: event {} already delivered",
                    sink.name(),
                    event.id
                ));
                continue;
            }
            let sent = sink.send(event).await;
            let so_far = waited(&self.settings.retry_schedule, attempts);
            let verdict = judge(
                &sent.answer,
                sink.propagating_auth(),
                so_far,
                sink.is_webhook(),
            );
            let line = format!(
                "{}: {} {} attempt {attempts}: {} in {} ms",
                sink.name(),
                event.event_type,
                event.id,
                sent.answer,
                sent.elapsed.as_millis()
            );
            match verdict {
                Verdict::Accepted => {
                    out.lines.push(line);
                    self.mark(sink, &event.id).await?;
                }
                Verdict::Disabled => out.lines.push(format!(
                    "warning: {line}; the webhook answered 410 Gone: it is disabled, nothing more is sent it for this event"
                )),
                Verdict::Permanent => {
                    out.lines.push(format!("warning: {line}; refused for good, kept in the failed queue"));
                    out.failed.push(self.failed(&message, sink, &sent.answer, attempts));
                }
                Verdict::Transient => {
                    out.lines.push(format!("warning: {line}"));
                    transient.push((sink, sent.answer));
                }
            }
        }
        if transient.is_empty() {
            return Ok(out);
        }
        match next_delay(&self.settings.retry_schedule, attempts) {
            Some(delay) => {
                message.attempts = attempts;
                // Only the sinks that may yet accept: one refused for good has its failed
                // record already, and a 410 is never sent again.
                message.sinks = Some(transient.iter().map(|(s, _)| s.name().into()).collect());
                self.requeue(&message, delay).await?;
                out.retry_in = Some(delay);
                out.lines.push(format!(
                    "event {} re-enqueued: attempt {} in {} s",
                    message.event.id,
                    attempts + 1,
                    delay.as_secs()
                ));
            }
            None => {
                for (sink, answer) in &transient {
                    out.lines.push(format!(
                        "warning: {}: event {}: the retry schedule ran out after {attempts} attempts; kept in the failed queue",
                        sink.name(),
                        message.event.id
                    ));
                    out.failed
                        .push(self.failed(&message, sink, answer, attempts));
                }
            }
        }
        Ok(out)
    }

    fn failed(
        &self,
        message: &OutboxMessage,
        sink: &Sink,
        answer: &Answer,
        attempts: u32,
    ) -> FailedRecord {
        FailedRecord {
            event: message.event.clone(),
            sink: sink.name().to_string(),
            answer: redact(&answer.to_string()),
            attempts,
            failed_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }

    async fn delivered(&self, sink: &Sink, id: &str) -> Result<bool, PublishError> {
        let container = self.marker_container()?;
        match container
            .blob_client(&marker_name(sink, id))
            .get_properties(None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(false),
            Err(e) => Err(StorageActionError::of("read a delivered marker")(e).into()),
        }
    }

    async fn mark(&self, sink: &Sink, id: &str) -> Result<(), PublishError> {
        let container = self.marker_container()?;
        let options = BlobClientUploadOptions {
            blob_content_type: Some("text/plain".into()),
            ..Default::default()
        };
        let blob = container.blob_client(&marker_name(sink, id));
        let upload = || blob.upload(RequestContent::from(Vec::new()), Some(options.clone()));
        match upload().await {
            Ok(_) => return Ok(()),
            // Infra creates the container in Azure, the dev host locally; Core Tools with no
            // infra has neither, and every marker would fail into resends and poison.
            Err(e) if error_code(&e) == Some("ContainerNotFound") => {}
            Err(e) => return Err(StorageActionError::of("write a delivered marker")(e).into()),
        }
        match container.create(None).await {
            Ok(_) => {}
            // Another instance made it in between.
            Err(e) if error_code(&e) == Some("ContainerAlreadyExists") => {}
            Err(e) => {
                return Err(StorageActionError::of("create the delivered container")(e).into())
            }
        }
        upload()
            .await
            .map_err(StorageActionError::of("write a delivered marker"))?;
        Ok(())
    }

    async fn requeue(&self, message: &OutboxMessage, delay: Duration) -> Result<(), PublishError> {
        let queue = self.account.queue(&self.settings.queue)?;
        // host.json's messageEncoding is `none`: the text as it is.
        let content = QueueMessage {
            message_text: Some(message.to_json()),
        }
        .try_into()
        .map_err(StorageActionError::of("encode the re-enqueued event"))?;
        // Put Message: a visibility timeout of at least 1 s when given; none is "now".
        let secs = i32::try_from(delay.as_secs()).unwrap_or(i32::MAX);
        let options = QueueClientSendMessageOptions {
            visibility_timeout: (secs >= 1).then_some(secs),
            ..Default::default()
        };
        queue
            .send_message(content, Some(options))
            .await
            .map_err(StorageActionError::of("re-enqueue the event"))?;
        Ok(())
    }

    fn marker_container(
        &self,
    ) -> Result<std::sync::Arc<azure_storage_blob::BlobContainerClient>, PublishError> {
        Ok(self.account.container(&self.settings.delivered_container)?)
    }
}

/// `{sink}/{eventId}`.
pub fn marker_name(sink: &Sink, id: &str) -> String {
    marker_path(sink.name(), id)
}

/// The delivered marker of event `id` at the sink named `sink` (`eventgrid`, `webhook`).
pub fn marker_path(sink: &str, id: &str) -> String {
    crate::naming::stored::delivered_marker_path(sink, id)
}

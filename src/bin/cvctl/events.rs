//! `cvctl events`: a test event, and the failed ones (docs/events.md).
//!
//! - `test-fire`: a `Ping` on the outbox (`CV_EVENTS_QUEUE`), so the deployed app, its
//!   identity and its role are exercised; `--direct` sends it from here, with the caller's
//!   credentials, and prints each sink's status, latency and answer.
//! - `failed`: what `%CV_EVENTS_FAILED_QUEUE%` holds.
//! - `redeliver --id ID | --all`: those events back on the outbox with their own ids (the
//!   sinks that took them before have a delivered marker and are not sent them again).

use serde::Serialize;

use customvision_events::events::model::{CloudEvent, Fact};
use customvision_events::events::outbox::{self, FailedRecord, RedeliverStep};
use customvision_events::events::{self, sinks};
use customvision_events::storage::StorageAccount;

use crate::context::{storage_failure, CliError, Context};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Send a `CustomVisionEvents.Ping`: through the outbox (the app sends it), or `--direct`.
    TestFire {
        /// Send from here with the caller's credentials; print each sink's answer.
        #[arg(long)]
        direct: bool,
    },
    /// List the failed events: id, type, subject, sink, last answer.
    Failed {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Put failed events back on the outbox, with the same ids.
    Redeliver {
        /// Only this event id.
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "all",
            required_unless_present = "all"
        )]
        id: Option<String>,
        /// Every failed event.
        #[arg(long)]
        all: bool,
    },
}

/// A new `Ping`: a fresh nonce, now (the ping is its own change).
pub fn ping(ctx: &Context, account: &StorageAccount) -> Result<CloudEvent, CliError> {
    let fact = Fact::Ping {
        nonce: uuid::Uuid::new_v4().to_string(),
    };
    let source =
        events::source(&ctx.settings, account).map_err(|e| CliError::check(e.to_string()))?;
    CloudEvent::new(&source, &fact, time::OffsetDateTime::now_utc())
        .map_err(|e| CliError::check(e.to_string()))
}

pub async fn put_outbox(
    ctx: &Context,
    account: &StorageAccount,
    event: &CloudEvent,
) -> Result<(), CliError> {
    let queue_name = &ctx.settings.events.queue;
    let queue = account
        .queue(queue_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    outbox::enqueue(&queue, std::slice::from_ref(event))
        .await
        .map_err(|e| storage_failure(&format!("put the event on {queue_name}"), &e.source))?;
    Ok(())
}

pub async fn run(ctx: &Context, command: &Command) -> Result<bool, CliError> {
    let account = ctx.account()?;
    match command {
        Command::TestFire { direct: false } => {
            let event = ping(ctx, &account)?;
            put_outbox(ctx, &account, &event).await?;
            println!(
                "Ping {} queued on {}; PublishEvents sends it to the configured sinks",
                event.id, ctx.settings.events.queue
            );
            Ok(true)
        }
        Command::TestFire { direct: true } => {
            let sinks = sinks::from_settings(&ctx.settings.events, &ctx.http, Some(&account));
            if sinks.is_empty() {
                return Err(CliError::usage(
                    "no sink configured",
                    "set CV_EVENTGRID__topicEndpointUri and/or CV_WEBHOOK_URL (docs/events.md)",
                ));
            }
            let event = ping(ctx, &account)?;
            let mut all = true;
            for sink in &sinks {
                let sent = sink.send(&event).await;
                let ok = matches!(
                    sent.answer,
                    customvision_events::events::delivery::Answer::Status {
                        status: 200..=299,
                        ..
                    }
                );
                all &= ok;
                println!(
                    "{}  {}: {} ms: {}",
                    if ok { "PASS" } else { "FAIL" },
                    sink.name(),
                    sent.elapsed.as_millis(),
                    sent.answer
                );
            }
            println!("Ping {}", event.id);
            Ok(all)
        }
        Command::Failed { json } => {
            let records = failed(ctx, &account).await?;
            print_failed(&records, *json);
            Ok(true)
        }
        Command::Redeliver { id, all } => {
            let n = redeliver(ctx, &account, id.as_deref(), *all).await?;
            println!("{n} event(s) put back on {}", ctx.settings.events.queue);
            Ok(n > 0 || *all)
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    subject: &'a str,
    sink: &'a str,
    answer: &'a str,
    attempts: u32,
    failed_at: &'a str,
}

fn print_failed(records: &[FailedRecord], json: bool) {
    let rows: Vec<Row> = records
        .iter()
        .map(|r| Row {
            id: &r.event.id,
            event_type: &r.event.event_type,
            subject: &r.event.subject,
            sink: &r.sink,
            answer: &r.answer,
            attempts: r.attempts,
            failed_at: &r.failed_at,
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return;
    }
    if rows.is_empty() {
        println!("no failed events");
    }
    for r in rows {
        println!(
            "{}  {}  {}  {}  after {} attempt(s), {}: {}",
            r.id, r.event_type, r.subject, r.sink, r.attempts, r.failed_at, r.answer
        );
    }
}

/// Up to 32 failed records, left in the queue.
async fn failed(ctx: &Context, account: &StorageAccount) -> Result<Vec<FailedRecord>, CliError> {
    let name = &ctx.settings.events.failed_queue;
    let queue = account
        .queue(name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    outbox::failed_records(&queue)
        .await
        .map_err(|e| storage_failure(&format!("read {name}"), &e.source))
}

/// Takes matching records off the failed queue and puts their events back on the outbox
/// ([`outbox::redeliver`]).
async fn redeliver(
    ctx: &Context,
    account: &StorageAccount,
    id: Option<&str>,
    all: bool,
) -> Result<usize, CliError> {
    let name = &ctx.settings.events.failed_queue;
    let queue = account
        .queue(name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let outbox_name = &ctx.settings.events.queue;
    let outbox_queue = account
        .queue(outbox_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    outbox::redeliver(
        &queue,
        &outbox_queue,
        |record| all || id == Some(record.event.id.as_str()),
        |record| {
            println!(
                "{} {} back on the outbox",
                record.event.id, record.event.event_type
            )
        },
    )
    .await
    .map_err(|e| {
        let action = match e.step {
            RedeliverStep::Read => format!("read {name}"),
            RedeliverStep::Enqueue => format!("put the event on {outbox_name}"),
            RedeliverStep::Delete => format!("delete from {name}"),
            RedeliverStep::Release => format!("release in {name}"),
        };
        storage_failure(&action, &e.source)
    })
}

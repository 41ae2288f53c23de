//! `cvctl verify`: the seed's "Verify the connection", done by the machine. One line per check,
//! each failure with its fix; exit 0 only when every check passes.
//!
//! 1. access: whoever runs this can read the backup container, the status container and the
//!    notification queue (the roles it can see from here);
//! 2. project: the project's `exportModelContainerUri` and `notificationQueueUri` are the
//!    container and queue the Function App's settings name (needs the Training API);
//! 3. test blob: Custom Vision wrote its `CustomVision-TestPermission/` blob into the container
//!    (it can write there: its identity is on and has its role);
//! 4. ConnectionTest: the Function App consumed the project's ConnectionTest and left its
//!    record (`<CV_STATUS_CONTAINER>/connection-tests/<message id>.json`); one still in the
//!    queue means the app is not running.
//! 5. events (when a sink is configured): a `Ping` put on the outbox left it, delivered: each
//!    sink that takes pings has its delivered marker (`PublishEvents` ran, with its identity
//!    and role), or a failed record names the sink's answer.

use std::time::Duration;

use url::Url;

use customvision_events::domain::ProjectId;
use customvision_events::functions::{connection_test_waiting, find_connection_test};
use customvision_events::storage::{list_blobs, StorageAccount};

use crate::context::{storage_failure, training_failure, CliError, Context, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Custom Vision project (a hyphenated GUID).
    #[arg(long, value_name = "ID")]
    pub project: String,
    /// Keep checking the test blob and the ConnectionTest for this long (Custom Vision writes
    /// them within seconds of `integrate`).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail { what: String, fix: String },
    Skip(String),
}

pub const TEST_BLOB_PREFIX: &str = "CustomVision-TestPermission/";

pub async fn run(ctx: &Context, args: &Args) -> Result<Vec<(&'static str, Outcome)>, CliError> {
    let project = ProjectId::parse(&args.project).map_err(|e| {
        CliError::usage(
            format!("--project: {e}"),
            "the project's id, a hyphenated GUID",
        )
    })?;
    let account = ctx.account()?;
    let settings = &ctx.settings;
    let queue_name = ctx
        .value("CV_NOTIFICATION_QUEUE")
        .unwrap_or_else(|| "customvision-notifications".into());
    let mut results = vec![("access", access(&account, ctx, &queue_name).await?)];
    results.push((
        "project",
        project_settings(ctx, project, &queue_name).await?,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    let mut delay = Duration::from_millis(250);
    // Status records already read and found to be another project's: each is read once.
    let mut others = std::collections::HashSet::new();
    loop {
        let blob = test_blob(&account, &settings.backup_container).await?;
        let connection = connection_test(&account, ctx, project, &queue_name, &mut others).await?;
        let done =
            !matches!(blob, Outcome::Fail { .. }) && !matches!(connection, Outcome::Fail { .. });
        if done || tokio::time::Instant::now() >= deadline {
            results.push(("test blob", blob));
            results.push(("ConnectionTest", connection));
            results.push(("events", events_ping(ctx, &account, args.wait).await?));
            return Ok(results);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

pub fn print(results: &[(&'static str, Outcome)]) -> bool {
    let mut all = true;
    for (name, outcome) in results {
        match outcome {
            Outcome::Pass(detail) => println!("PASS  {name}: {detail}"),
            Outcome::Skip(detail) => println!("SKIP  {name}: {detail}"),
            Outcome::Fail { what, fix } => {
                all = false;
                println!("FAIL  {name}: {what}\n      fix: {fix}");
            }
        }
    }
    all
}

/// A storage error as a check outcome; unreachable storage ends the command (exit 3).
fn denied(action: &str, e: &azure_core::Error, fix: String) -> Result<Outcome, CliError> {
    let failure = storage_failure(action, e);
    if failure.failure == Failure::Unreachable {
        return Err(failure);
    }
    Ok(Outcome::Fail {
        what: customvision_events::redact::redact(&failure.message),
        fix,
    })
}

async fn access(
    account: &StorageAccount,
    ctx: &Context,
    queue_name: &str,
) -> Result<Outcome, CliError> {
    let settings = &ctx.settings;
    for container in [&settings.backup_container, &settings.status_container] {
        let client = account
            .container(container)
            .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
        if let Err(e) = list_blobs(&client, "none-such/").await {
            if e.http_status() == Some(azure_core::http::StatusCode::NotFound) {
                return Ok(Outcome::Fail {
                    what: format!("container {container} does not exist"),
                    fix: "deploy the infra (it creates the containers), or start the app locally (`cvctl dev-host` creates them)".into(),
                });
            }
            return denied(
                &format!("cannot list container {container}"),
                &e,
                format!("grant yourself Storage Blob Data Reader on container {container} (infra does for principalId), or fix CV_STORAGE"),
            );
        }
    }
    let queue = account
        .queue(queue_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    if let Err(e) = queue.peek_messages(None).await {
        return denied(
            &format!("cannot peek queue {queue_name}"),
            &e,
            format!("grant yourself Storage Queue Data Contributor on queue {queue_name}, or fix CV_STORAGE"),
        );
    }
    Ok(Outcome::Pass(format!(
        "can read containers {} and {}, and queue {queue_name}",
        settings.backup_container, settings.status_container
    )))
}

/// URLs equal as storage reads them: scheme, host (any case), port and path, no trailing `/`.
fn same_resource(a: &str, b: &Url) -> bool {
    let Ok(a) = Url::parse(a.trim()) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

async fn project_settings(
    ctx: &Context,
    project: ProjectId,
    queue_name: &str,
) -> Result<Outcome, CliError> {
    if ctx.settings.training.is_none() {
        return Ok(Outcome::Skip(
            "not checked: set CUSTOM_VISION_ENDPOINT to compare the project's URLs with the app's"
                .into(),
        ));
    }
    let client = ctx.training()?;
    let found = match client.get_project(project).await {
        Ok(p) => p,
        Err(e) => {
            let failure = training_failure("GetProject", &e);
            if failure.failure == Failure::Unreachable {
                return Err(failure);
            }
            return Ok(Outcome::Fail {
                what: failure.message,
                fix: failure
                    .hint
                    .unwrap_or_else(|| "check the project id".into()),
            });
        }
    };
    let storage = &ctx.settings.storage;
    let expected = |endpoint: Option<&Url>, name: &str| {
        endpoint.map(|e| {
            let mut url = e.clone();
            if let Ok(mut s) = url.path_segments_mut() {
                s.pop_if_empty().push(name);
            }
            url
        })
    };
    let (Some(container), Some(queue)) = (
        expected(
            storage.blob_endpoint.as_ref(),
            &ctx.settings.backup_container,
        ),
        expected(storage.queue_endpoint.as_ref(), queue_name),
    ) else {
        return Ok(Outcome::Skip(
            "not checked: CV_STORAGE names no blob or queue endpoint".into(),
        ));
    };
    let mut wrong = Vec::new();
    for (field, value, want) in [
        (
            "exportModelContainerUri",
            &found.settings.export_model_container_uri,
            &container,
        ),
        (
            "notificationQueueUri",
            &found.settings.notification_queue_uri,
            &queue,
        ),
    ] {
        match value {
            Some(v) if same_resource(v, want) => {}
            Some(v) => wrong.push(format!("{field} is {v}, the app uses {want}")),
            None => wrong.push(format!("{field} is not set (the app uses {want})")),
        }
    }
    Ok(if wrong.is_empty() {
        Outcome::Pass(format!(
            "project '{}' writes to container {} and queue {queue_name}, which the app reads",
            found.name, ctx.settings.backup_container
        ))
    } else {
        Outcome::Fail {
            what: wrong.join("; "),
            fix: format!("cvctl integrate --project {project}"),
        }
    })
}

async fn test_blob(account: &StorageAccount, container: &str) -> Result<Outcome, CliError> {
    let client = account
        .container(container)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let found = match list_blobs(&client, TEST_BLOB_PREFIX).await {
        Ok(f) => f,
        Err(e) => {
            return denied(
                &format!("cannot list container {container}"),
                &e,
                "see the access check".into(),
            )
        }
    };
    Ok(match found.first() {
        Some(b) => Outcome::Pass(format!("Custom Vision wrote {container}/{}", b.name)),
        None => Outcome::Fail {
            what: format!("no {TEST_BLOB_PREFIX} blob in container {container}"),
            fix: format!(
                "Custom Vision cannot write there: enable the training resource's system-assigned identity and grant it Storage Blob Data Contributor on container {container}; then run integrate again and verify at once (the test blob is temporary)"
            ),
        },
    })
}

async fn connection_test(
    account: &StorageAccount,
    ctx: &Context,
    project: ProjectId,
    queue_name: &str,
    others: &mut std::collections::HashSet<String>,
) -> Result<Outcome, CliError> {
    let status = &ctx.settings.status_container;
    let client = account
        .container(status)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    match find_connection_test(&client, project, others).await {
        Ok(Some(found)) => {
            return Ok(Outcome::Pass(format!(
                "the Function App handled it at {} ({status}/{})",
                found.record.received_at, found.blob
            )))
        }
        Ok(None) => {}
        Err(e) => {
            return denied(
                &format!("cannot list container {status}"),
                &e.source,
                "see the access check".into(),
            )
        }
    }
    let queue = account
        .queue(queue_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let waiting = match connection_test_waiting(&queue, project).await {
        Ok(waiting) => waiting,
        Err(e) => {
            return denied(
                &format!("cannot peek queue {queue_name}"),
                &e.source,
                "see the access check".into(),
            )
        }
    };
    Ok(if waiting {
        Outcome::Fail {
            what: format!("the project's ConnectionTest is waiting in queue {queue_name}: the Function App is not reading it"),
            fix: "deploy and start the app (`func azure functionapp publish <app>`, or `cvctl dev-host` locally) and check its log stream".into(),
        }
    } else {
        Outcome::Fail {
            what: format!("no ConnectionTest from project {project}, handled or waiting"),
            fix: format!(
                "Custom Vision cannot write to queue {queue_name}: grant its identity Storage Queue Data Contributor on the queue, then run integrate again"
            ),
        }
    })
}

/// A ping through the outbox: passed when every sink that takes pings has its marker.
async fn events_ping(
    ctx: &Context,
    account: &StorageAccount,
    wait: u64,
) -> Result<Outcome, CliError> {
    use customvision_events::events::outbox::{self, FailedRecord};
    use customvision_events::events::publisher::marker_path;
    let sinks = customvision_events::events::sinks::names_taking(
        &ctx.settings.events,
        customvision_events::events::EventType::Ping,
    );
    if sinks.is_empty() {
        return Ok(Outcome::Skip(
            "no event sink configured (events off)".into(),
        ));
    }
    let event = crate::events::ping(ctx, account)?;
    crate::events::put_outbox(ctx, account, &event).await?;
    let settings = &ctx.settings.events;
    let markers = account
        .container(&settings.delivered_container)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let failed = account
        .queue(&settings.failed_queue)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    // A ping waits for the app's next poll of the outbox: at least a minute.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.max(60));
    let mut delay = Duration::from_millis(250);
    loop {
        let mut missing = Vec::new();
        for sink in &sinks {
            let found = match list_blobs(&markers, &marker_path(sink, &event.id)).await {
                Ok(found) => found,
                // No marker container yet: nothing delivered yet.
                Err(e) if e.http_status() == Some(azure_core::http::StatusCode::NotFound) => {
                    Vec::new()
                }
                Err(e) => return Err(storage_failure("read the delivered markers", &e)),
            };
            if found.is_empty() {
                missing.push(*sink);
            }
        }
        if missing.is_empty() {
            return Ok(Outcome::Pass(format!(
                "Ping {} left the outbox and reached {}",
                event.id,
                sinks.join(" and ")
            )));
        }
        // Unreadable now: nothing refused yet as far as this check can tell.
        let refused: Vec<FailedRecord> = outbox::failed_records(&failed)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.event.id == event.id)
            .collect();
        if let Some(r) = refused.first() {
            return Ok(Outcome::Fail {
                what: format!("the Ping {} was refused by {}: {}", event.id, r.sink, r.answer),
                fix: "check the sink's settings and the app identity's role (EventGrid Data Sender on the topic); `cvctl events failed` lists it".into(),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Outcome::Fail {
                what: format!("the Ping {} reached no {} in time", event.id, missing.join(" or ")),
                fix: format!("is the app running PublishEvents on {}? `cvctl events test-fire --direct` tries the sinks from here", settings.queue),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_urls_compare_as_storage_reads_them() {
        let want = Url::parse("https://acct.blob.core.windows.net/customvision-backups").unwrap();
        assert!(same_resource(
            "https://ACCT.blob.core.windows.net/customvision-backups/",
            &want
        ));
        assert!(same_resource(
            "https://acct.blob.core.windows.net:443/customvision-backups",
            &want
        ));
        assert!(!same_resource(
            "https://acct.blob.core.windows.net/other",
            &want
        ));
        assert!(!same_resource(
            "http://acct.blob.core.windows.net/customvision-backups",
            &want
        ));
        assert!(!same_resource("not a url", &want));
    }
}

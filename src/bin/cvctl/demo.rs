//! `cvctl demo` (`make demo`): the whole product on a private Azurite and a local stand-in for
//! Custom Vision (`devhost::custom_vision`, the Training API behaviour fixture of the tests),
//! start to finish, with the tool's own commands. Two iterations are trained, the second below
//! the publish bar; the training automation writes the reports and the dashboard, asks for the
//! exports and publishes the first; the stand-in finishes the exports as the service does (a
//! backup blob and an Export notification, written by `simulate`); `ExportCompleted` copies
//! them into the model store and moves `latest`. Events are on: the webhook sink points at a
//! receiver on loopback the demo starts (`devhost::webhook`, a generated `whsec_` secret, each
//! delivery's Standard Webhooks signature verified with the library's verifier), and
//! `PublishEvents` runs under the dev host as the other functions do. The demo prints the
//! copies, `latest`, the gate's decisions, the events the receiver got, and the paths of the
//! reports and the dashboard, downloaded to a local folder a browser opens; then it stops
//! everything it started.

use std::path::{Path, PathBuf};
use std::time::Duration;

use azure_storage_blob::BlobContainerClient;

use customvision_events::automation::report::{self, Report};
use customvision_events::automation::{dashboard, load_report};
use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::custom_vision::{
    bodies, CustomVisionFixture, Route, Trained, FIXTURE_KEY,
};
use customvision_events::devhost::probe::{wait_for, Probe, ProbeError};
use customvision_events::devhost::webhook::{generate_secret, WebhookReceiver};
use customvision_events::devhost::{self, DevHostOptions};
use customvision_events::domain::{IterationId, ProjectId};
use customvision_events::events::{CloudEvent, EventType};
use customvision_events::model_store::{load_index, ModelIndex, ModelStoreError};
use customvision_events::naming::stored::index_path;

use crate::context::{CliError, Context};
use crate::{models, simulate};

/// The gate the demo configures: the first iteration passes it, the second does not.
const PUBLISH_NAME: &str = "demo";
const MIN_PRECISION: &str = "0.9";
const MIN_RECALL: &str = "0.85";
/// Two trainings: name, `trainedAt`, precision, recall, average precision.
const ITERATIONS: [(&str, &str, f64, f64, f64); 2] = [
    (
        "Iteration 1",
        "2026-11-27T09:12:40.517Z",
        0.9302326,
        0.8888889,
        0.9437,
    ),
    (
        "Iteration 2",
        "2026-11-28T16:40:50.102Z",
        0.8648649,
        0.9142857,
        0.9221,
    ),
];
const WAIT: Duration = Duration::from_secs(60);
/// The events two trainings and their exports give: per iteration its copy, `latest` moving to
/// it and its report; the first published, the second refused.
const EXPECTED_EVENTS: [(EventType, usize); 5] = [
    (EventType::ModelCopied, 2),
    (EventType::LatestMoved, 2),
    (EventType::ReportWritten, 2),
    (EventType::IterationPublished, 1),
    (EventType::PublishRefused, 1),
];

pub async fn run(root: &Path, handler: Option<PathBuf>, out: &Path) -> Result<(), CliError> {
    // Absolute, so the printed paths open from anywhere.
    let out = &std::path::absolute(out)
        .map_err(|e| CliError::check(format!("{}: {e}", out.display())))?;
    println!("== starting Azurite (in memory, on ports the OS picks)");
    let azurite = Azurite::start(root)
        .map_err(|e| CliError::unreachable(e.to_string(), "run `npm ci` (make demo does)"))?;
    println!(
        "   blob at http://127.0.0.1:{}/, queue at http://127.0.0.1:{}/",
        azurite.blob_port, azurite.queue_port
    );
    let connection = azurite.connection_string();
    let ctx = Context::load(
        root,
        &[format!("CV_STORAGE={connection}")],
        crate::context::DEFAULT_TIMEOUT,
    )?;
    let service = CustomVisionFixture::start()
        .await
        .map_err(|e| CliError::check(format!("the Custom Vision stand-in: {e}")))?;
    println!(
        "== starting the Custom Vision stand-in (the Training API v3.3 behaviour fixture) at {}",
        service.endpoint()
    );
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(&secret)
        .await
        .map_err(|e| CliError::check(format!("the webhook receiver: {e}")))?;
    let hook = receiver.url();
    println!(
        "== starting a webhook receiver at {hook} (a generated whsec_ secret; it verifies each delivery's Standard Webhooks signature)"
    );
    println!(
        "== starting the dev host and the handler (functions from {}), the training automation on:\n   \
         AUTO_EXPORT_PLATFORMS=ONNX PUBLISH_NAME={PUBLISH_NAME} PUBLISH_MIN_PRECISION={MIN_PRECISION} PUBLISH_MIN_RECALL={MIN_RECALL}\n   \
         and the events: CV_WEBHOOK_URL={hook} CV_WEBHOOK_SECRET=whsec_…",
        root.display()
    );
    let options = DevHostOptions {
        root: root.to_path_buf(),
        handler,
        // Each notification crosses two queues (Notifications, then its function): poll often.
        max_polling_interval: Some(Duration::from_millis(100)),
        overrides: [
            ("CV_STORAGE", connection.as_str()),
            ("CUSTOM_VISION_ENDPOINT", service.endpoint().as_str()),
            ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
            ("AUTO_EXPORT_PLATFORMS", "ONNX"),
            ("PUBLISH_NAME", PUBLISH_NAME),
            ("PREDICTION_RESOURCE_ID", bodies::PREDICTION_ID),
            ("PUBLISH_MIN_PRECISION", MIN_PRECISION),
            ("PUBLISH_MIN_RECALL", MIN_RECALL),
            ("CV_WEBHOOK_URL", hook.as_str()),
            ("CV_WEBHOOK_SECRET", secret.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut host = tokio::spawn(devhost::run(options, stopped));
    let result = tokio::select! {
        r = drive(&ctx, &connection, &service, &receiver, out) => r,
        r = &mut host => Err(CliError::check(format!("the dev host stopped early: {:?}", r.map_err(|e| e.to_string())))),
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), host).await;
    drop(receiver);
    drop(service);
    drop(azurite);
    println!("== stopped the dev host, the handler, the webhook receiver, the Custom Vision stand-in and Azurite");
    result
}

/// The project's index: `None` while there is none or it does not parse yet.
async fn readable_index(
    store: &BlobContainerClient,
    project_id: ProjectId,
) -> Result<Option<ModelIndex>, ProbeError> {
    match load_index(store, project_id).await {
        Ok(index) => Ok(index.map(|(index, _)| index)),
        Err(ModelStoreError::Unreadable { .. }) => Ok(None),
        Err(ModelStoreError::Request(e)) => Err(e.into()),
        Err(e) => Err(waiting_failed(e)),
    }
}

/// A library error met while waiting, as the wait's error.
fn waiting_failed(e: impl std::error::Error + Send + Sync + 'static) -> ProbeError {
    ProbeError::Io(std::io::Error::other(e))
}

async fn drive(
    ctx: &Context,
    connection: &str,
    service: &CustomVisionFixture,
    receiver: &WebhookReceiver,
    out: &Path,
) -> Result<(), CliError> {
    let probe = Probe::from_connection_string(connection).map_err(CliError::check)?;
    let store = ctx.settings.model_store_container.clone();
    let project = uuid::Uuid::new_v4().to_string();
    let project_id = ProjectId::parse(&project).map_err(|e| CliError::check(e.to_string()))?;
    let store_client = ctx
        .account()?
        .container(&store)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    println!("== cvctl simulate: the seed's ConnectionTest for project {project}");
    simulate::run(
        ctx,
        &simulate::Args {
            kind: simulate::Kind::ConnectionTest {
                project: Some(project.clone()),
            },
        },
    )
    .await?;
    let mut iterations = Vec::new();
    for (name, trained_at, precision, recall, average_precision) in ITERATIONS {
        let iteration = uuid::Uuid::new_v4().to_string();
        service.train(
            &project,
            &iteration,
            Trained {
                name: name.into(),
                trained_at: trained_at.into(),
                performance: bodies::performance_of(precision, recall, average_precision),
            },
        );
        println!(
            "\n== Custom Vision trains {name} ({iteration}): precision {precision:.4}, recall {recall:.4}"
        );
        let ids = || simulate::Ids {
            project: Some(project.clone()),
            iteration: Some(iteration.clone()),
        };
        println!("== cvctl simulate: its Training notification (TrainingCompleted)");
        simulate::run(
            ctx,
            &simulate::Args {
                kind: simulate::Kind::Training {
                    ids: ids(),
                    failed: false,
                },
            },
        )
        .await?;
        // The automation has run when the report is there and the export was asked for.
        let report_path = report::json_path(&project, &iteration);
        wait_for("the training report", WAIT, || async {
            let asked = service
                .requests_to(Route::ExportIteration)
                .iter()
                .any(|r| r.path.contains(&iteration));
            let report = probe.blob(&store, &report_path).await?;
            Ok((asked && report.is_some()).then_some(()))
        })
        .await
        .map_err(CliError::check)?;
        for (platform, _) in service.finish_exports(&project, &iteration) {
            println!("== Custom Vision finishes the {platform} export: cvctl simulate writes the 1 MiB backup blob and the Export notification");
            simulate::run(
                ctx,
                &simulate::Args {
                    kind: simulate::Kind::Export {
                        ids: ids(),
                        failed: false,
                        platform,
                        backup_size: Some(1 << 20),
                        sas: false,
                    },
                },
            )
            .await?;
        }
        wait_for("the export in the model store's index", WAIT, || async {
            let index = readable_index(&store_client, project_id).await?;
            Ok(index
                .filter(|i| i.models.iter().any(|m| m.iteration_id == iteration))
                .map(|_| ()))
        })
        .await
        .map_err(CliError::check)?;
        iterations.push((name, iteration));
    }
    // The dashboard is rewritten after each report and each export: wait for the last one's.
    let (_, newest) = &iterations[iterations.len() - 1];
    let dashboard_path = dashboard::path(&project);
    // The newest is the index's latest ONNX, and the page is the one the store's reports and
    // index make now.
    wait_for("the dashboard with the newest export", WAIT, || async {
        let newest_latest = readable_index(&store_client, project_id)
            .await?
            .is_some_and(|i| {
                i.latest
                    .get("ONNX")
                    .is_some_and(|l| l.iteration_id == *newest)
            });
        let current = newest_latest
            && dashboard::is_current(&store_client, project_id)
                .await
                .map_err(waiting_failed)?;
        Ok(current.then_some(()))
    })
    .await
    .map_err(CliError::check)?;

    println!("\n== cvctl models --project {project}");
    let listing = models::list(
        ctx,
        &models::Args {
            project: project.clone(),
            iteration: None,
            platform: None,
            json: false,
        },
    )
    .await?;
    models::print(&listing, false);

    println!("\n== latest ({store}/{})", index_path(project_id));
    let index: ModelIndex = readable_index(&store_client, project_id)
        .await
        .map_err(CliError::check)?
        .ok_or_else(|| CliError::check("no index"))?;
    for (platform, latest) in &index.latest {
        let name = iterations
            .iter()
            .find(|(_, id)| *id == latest.iteration_id)
            .map(|(n, _)| *n)
            .unwrap_or("?");
        println!(
            "   {platform}: {name} ({}), alias {}",
            latest.iteration_id,
            latest.alias.as_deref().unwrap_or("off")
        );
    }

    println!("\n== the gate (PUBLISH_NAME={PUBLISH_NAME}, precision >= {MIN_PRECISION}, recall >= {MIN_RECALL})");
    for (name, iteration) in &iterations {
        let iteration_id =
            IterationId::parse(iteration).map_err(|e| CliError::check(e.to_string()))?;
        let report: Report = load_report(&store_client, project_id, iteration_id)
            .await
            .map_err(CliError::check)?
            .ok_or_else(|| CliError::check(format!("no report of {name}")))?;
        let decision = match &report.publish {
            Some(p) if p.missed.is_empty() => format!("{} as '{}'", p.outcome, p.name),
            Some(p) => format!(
                "{}: {}",
                p.outcome,
                p.missed
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            None => "no publish step".into(),
        };
        println!("   {name}: {decision}");
    }
    let publishes = service.requests_to(Route::PublishIteration);
    println!(
        "   PublishIteration calls the service received: {}",
        publishes.len()
    );

    // The events: PublishEvents sends each from the outbox as the functions commit them.
    let events = wait_for("the events at the webhook receiver", WAIT, || async {
        let got = distinct(receiver.events(), &iterations);
        let all = EXPECTED_EVENTS
            .iter()
            .all(|(kind, n)| got.iter().filter(|e| e.kind() == Some(*kind)).count() >= *n);
        Ok(all.then_some(got))
    })
    .await
    .map_err(CliError::check)?;
    println!(
        "\n== the events the webhook receiver got, per iteration ({} distinct; signatures verified: {} delivered, {} refused)",
        events.len(),
        receiver.events().len(),
        receiver.refused()
    );
    for event in &events {
        println!("{}", event_line(event, &iterations));
    }

    let written = download(&probe, &store, &project, out).await?;
    println!(
        "\n== the reports and the dashboard, with the copies they link to, in {}",
        out.display()
    );
    for (name, iteration) in &iterations {
        println!(
            "   report {name}:  {}",
            out.join(report::html_path(&project, iteration)).display()
        );
    }
    println!(
        "   dashboard:        {}",
        out.join(&dashboard_path).display()
    );
    let dashboard_file = out.join(&dashboard_path);
    println!(
        "   ({written} files; open the dashboard in a browser: {})",
        url::Url::from_file_path(&dashboard_file)
            .map(String::from)
            .unwrap_or_else(|_| dashboard_file.display().to_string())
    );

    let rejected = probe
        .peek(customvision_events::settings::events::DEFAULT_REJECTED_QUEUE)
        .await
        .map_err(CliError::check)?;
    println!("\n   rejected messages: {}", rejected.len());
    Ok(())
}

/// Each id once (delivery is at least once, and arrival order is not the changes' order),
/// grouped per iteration in the demo's order, each group in the catalog's order of types.
fn distinct(received: Vec<CloudEvent>, iterations: &[(&str, String)]) -> Vec<CloudEvent> {
    let mut events: Vec<CloudEvent> = Vec::new();
    for e in received {
        if !events.iter().any(|x| x.id == e.id) {
            events.push(e);
        }
    }
    let key = |e: &CloudEvent| {
        let iteration = e.data["iterationId"].as_str().unwrap_or_default();
        (
            iterations.iter().position(|(_, i)| i == iteration),
            EventType::ALL.iter().position(|t| Some(*t) == e.kind()),
        )
    };
    events.sort_by_key(key);
    events
}

/// `   Type  subject  id …`, and for `latest`, the publish and the gate what they say.
fn event_line(event: &CloudEvent, iterations: &[(&str, String)]) -> String {
    let short = event.kind().map(EventType::short).unwrap_or("?");
    let data = &event.data;
    let text = |key: &str| data[key].as_str().unwrap_or_default().to_string();
    let name = |id: &str| {
        iterations
            .iter()
            .find(|(_, i)| i == id)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    };
    let said = match event.kind() {
        Some(EventType::LatestMoved) => {
            let i = text("iterationId");
            format!(": now {} ({i})", name(&i))
        }
        Some(EventType::IterationPublished) => {
            let gate = &data["gate"];
            let figure = |k: &str| {
                gate[k]
                    .as_f64()
                    .map(|f| format!("{f:.4}"))
                    .unwrap_or("?".into())
            };
            format!(
                ": as '{}' (precision {} >= {}, recall {} >= {})",
                text("publishName"),
                figure("precision"),
                figure("minPrecision"),
                figure("recall"),
                figure("minRecall")
            )
        }
        Some(EventType::PublishRefused) => {
            let reasons: Vec<&str> = data["reasons"]
                .as_array()
                .map(|r| r.iter().filter_map(|r| r.as_str()).collect())
                .unwrap_or_default();
            format!(": {}", reasons.join("; "))
        }
        _ => String::new(),
    };
    format!("   {short:<18} {}  id {}{said}", event.subject, event.id)
}

/// The project's part of the model store (its copies, aliases, index, reports and dashboard),
/// into `out` under the same names, so the dashboard's relative links work from the folder.
/// Nothing in `out` is removed: each demo's project is a new GUID, so runs sit side by side.
async fn download(
    probe: &Probe,
    store: &str,
    project: &str,
    out: &Path,
) -> Result<usize, CliError> {
    let mut written = 0;
    for name in probe.list(store).await.map_err(CliError::check)? {
        let ours = name.starts_with(&format!("{project}/"))
            || name.starts_with(&customvision_events::naming::stored::reports_prefix(
                project,
            ));
        // Blob names are ours (GUIDs and fixed words): still, never a path out of `out`.
        if !ours || name.split('/').any(|s| s == ".." || s.is_empty()) {
            continue;
        }
        let Some(blob) = probe.blob(store, &name).await.map_err(CliError::check)? else {
            continue;
        };
        let path = out.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::check(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, &blob.bytes)
            .map_err(|e| CliError::check(format!("{}: {e}", path.display())))?;
        written += 1;
    }
    Ok(written)
}

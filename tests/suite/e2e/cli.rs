//! `cvctl`, the binary, on Azurite: `simulate`, `models`, `integrate` (against the Training API
//! fixture; its contract tests run against Prism in `tests/training_contract.rs`), `verify`
//! passing and failing for each failure it diagnoses, and the exit codes.

use serde_json::{json, Value};

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::Probe;
use customvision_events::notification::Notification;

use crate::support::custom_vision::{bodies, Canned, CustomVisionFixture, Route, FIXTURE_KEY};
use crate::support::helpers::*;

/// Azurite alone: no dev host reads the queues.
async fn storage_only() -> (Azurite, Probe, String) {
    let azurite = Azurite::start(&root()).expect("Azurite starts");
    let connection = azurite.connection_string();
    let probe = Probe::from_connection_string(&connection).unwrap();
    for c in [BACKUPS, MODELS, "customvision-status"] {
        probe.create_container(c).await.unwrap();
    }
    probe.create_queue(NOTIFICATIONS).await.unwrap();
    (azurite, probe, connection)
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_writes_the_seeds_formats_and_backup_blobs() {
    let (_azurite, probe, connection) = storage_only().await;
    let storage = [("CV_STORAGE", connection.as_str())];
    let (p, i) = ids();
    for args in [
        vec!["simulate", "connection-test", "--project", &p],
        vec![
            "simulate",
            "training",
            "--project",
            &p,
            "--iteration",
            &i,
            "--failed",
        ],
        vec![
            "simulate",
            "export",
            "--project",
            &p,
            "--iteration",
            &i,
            "--backup-size",
            "5MiB",
        ],
        vec![
            "simulate",
            "export",
            "--project",
            &p,
            "--iteration",
            &i,
            "--backup-size",
            "100KiB",
            "--sas",
        ],
    ] {
        let run = cvctl(&storage, &args).await;
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
    }
    let queued = probe.peek(NOTIFICATIONS).await.unwrap();
    assert_eq!(queued.len(), 4, "{queued:?}");
    for text in &queued {
        assert!(
            text.contains("\"version\": \"1.0\" ,"),
            "the seed's text: {text}"
        );
        Notification::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    }
    assert!(matches!(
        Notification::parse(&queued[1]).unwrap(),
        Notification::Training {
            status: customvision_events::notification::TrainingStatus::Failed,
            ..
        }
    ));
    let backup = probe
        .blob(BACKUPS, &format!("{p} - {i}.ONNX"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(backup.bytes.len(), 5 << 20);
    // The SAS export's modelUri reads its blob in the stand-in for Custom Vision's storage.
    let Notification::Export {
        model_uri: Some(uri),
        ..
    } = Notification::parse(&queued[3]).unwrap()
    else {
        panic!("{}", queued[3]);
    };
    assert!(
        uri.contains("/cv-exports/") && uri.contains("sig="),
        "{uri}"
    );
    let blobs = probe.list("cv-exports").await.unwrap();
    assert_eq!(blobs.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn models_lists_by_tags_newest_first_with_latest_marked() {
    let app = spawn_app(&[]).await;
    let (p, a) = ids();
    let (_, b) = ids();
    for i in [&a, &b] {
        app.probe
            .put_blob(BACKUPS, &crate::e2e::backup_name(&p, i, "ONNX"), b"model")
            .await
            .unwrap();
        app.send(&export_message(&p, i, "ExportCompleted", None))
            .await;
        app.drained().await;
    }
    // Whichever the store's order makes newest (creation time, ties by iteration id).
    let newer = expected_newest(&app, &p, &[a.clone(), b.clone()]).await;
    let older = if newer == a { b.clone() } else { a.clone() };
    let storage = [("CV_STORAGE", app.connection())];
    let run = cvctl(&storage, &["models", "--project", &p, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listing: Value = serde_json::from_str(&run.stdout).unwrap();
    let models = listing["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{listing}");
    assert_eq!(models[0]["iterationId"], newer.as_str(), "newest first");
    assert_eq!(models[0]["latest"], true);
    assert_eq!(models[1]["latest"], false);
    assert_eq!(listing["latest"]["ONNX"], latest_blob(&p, "ONNX", "ONNX"));
    assert_eq!(listing["index"]["models"], 2);
    let text = cvctl(
        &storage,
        &["models", "--project", &p, "--iteration", &older],
    )
    .await;
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains(&older) && !text.stdout.contains(&format!("{newer}   ONNX")),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_and_unreachable_services_exit_3() {
    let run = cvctl(&[], &["models", "--project", "not-a-guid"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(run.stderr.contains("(hint: "), "{}", run.stderr);
    assert_eq!(cvctl(&[], &["models", "--no-such-flag"]).await.code, 2);
    // Port 9 (discard): nothing listens.
    let closed = customvision_events::settings::azurite_connection_string(9, 9);
    let (p, _) = ids();
    let run = cvctl(&[("CV_STORAGE", &closed)], &["models", "--project", &p]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: is the storage account"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn integrate_keeps_the_other_settings_and_dry_run_sends_nothing() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let endpoint = fixture.endpoint().to_string();
    let api = [
        ("CUSTOM_VISION_ENDPOINT", endpoint.as_str()),
        ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
    ];
    let queue = "https://stnew.queue.core.windows.net/customvision-notifications";
    let container = "https://stnew.blob.core.windows.net/customvision-backups";
    let wire = ["--queue-uri", queue, "--container-uri", container];
    let mut args = vec!["integrate", "--project", bodies::PROJECT_ID, "--dry-run"];
    args.extend(wire);
    let dry = cvctl(&api, &args).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("dry run: would send\nPATCH "),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains(queue));
    assert!(
        fixture.requests_to(Route::UpdateProject).is_empty(),
        "nothing sent"
    );
    assert!(!dry.stdout.contains(FIXTURE_KEY));

    let mut args = vec!["integrate", "--project", bodies::PROJECT_ID];
    args.extend(wire);
    let run = cvctl(&api, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("notificationQueueUri   : https://stcvevents.queue.core.windows.net/customvision-notifications → {queue}")), "{}", run.stdout);
    let patch = fixture.requests_to(Route::UpdateProject);
    assert_eq!(patch.len(), 1);
    let body = patch[0].json();
    assert_eq!(body["settings"]["notificationQueueUri"], queue);
    assert_eq!(body["settings"]["exportModelContainerUri"], container);
    // What the project had and this tool does not know of, sent back as it came.
    assert_eq!(
        body["settings"]["targetExportPlatforms"],
        json!(["ONNX", "DockerFile"])
    );
    assert_eq!(
        body["settings"]["imageProcessingSettings"]["augmentationMethods"]["rotation"],
        true
    );
    assert_eq!(body["description"], "Defect classifier for line 3");

    // A new project, its URLs from the deployment's outputs (`azd env get-values`).
    let outputs = std::env::temp_dir().join(format!("cvctl-outputs-{}.env", uuid::Uuid::new_v4()));
    std::fs::write(
        &outputs,
        format!("NOTIFICATION_QUEUE_URI=\"{queue}\"\nEXPORT_MODEL_CONTAINER_URI=\"{container}\"\n"),
    )
    .unwrap();
    let run = cvctl(
        &api,
        &[
            "integrate",
            "--create",
            "line-4",
            "--outputs",
            outputs.to_str().unwrap(),
        ],
    )
    .await;
    let _ = std::fs::remove_file(&outputs);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let created = fixture.requests_to(Route::CreateProject);
    assert_eq!(created[0].query_value("name").as_deref(), Some("line-4"));
    assert_eq!(
        created[0].query_value("notificationQueueUri").as_deref(),
        Some(queue)
    );
    assert_eq!(
        created[0].query_value("exportModelContainerUri").as_deref(),
        Some(container)
    );
    assert!(run.stdout.contains("created project"), "{}", run.stdout);
}

/// The project as the fixture gives it, pointing at the container and queue of `connection`.
fn project_pointing_at(connection: &str, id: &str) -> Canned {
    let endpoint = |name: &str| {
        connection
            .split(';')
            .find_map(|p| p.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let mut project = bodies::project(id);
    project["settings"]["exportModelContainerUri"] =
        format!("{}/{BACKUPS}", endpoint("BlobEndpoint=")).into();
    project["settings"]["notificationQueueUri"] =
        format!("{}/{NOTIFICATIONS}", endpoint("QueueEndpoint=")).into();
    Canned::ok(project)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_when_everything_is_wired() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let app = spawn_app(&[]).await;
    let (p, _) = ids();
    fixture.set_default(Route::GetProject, project_pointing_at(app.connection(), &p));
    // What Custom Vision does when the project is wired: the test blob and the ConnectionTest.
    app.probe
        .put_blob(BACKUPS, "CustomVision-TestPermission/2f1a0c.txt", b"test")
        .await
        .unwrap();
    let endpoint = fixture.endpoint().to_string();
    let settings = [
        ("CV_STORAGE", app.connection()),
        ("CUSTOM_VISION_ENDPOINT", endpoint.as_str()),
        ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
    ];
    assert_eq!(
        cvctl(&settings, &["simulate", "connection-test", "--project", &p])
            .await
            .code,
        0
    );
    app.drained().await;
    let run = cvctl(&settings, &["verify", "--project", &p, "--wait", "30"]).await;
    assert_eq!(
        run.code,
        0,
        "{}{}\n{}",
        run.stdout,
        run.stderr,
        app.output()
    );
    let passes: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("PASS"))
        .collect();
    assert_eq!(passes.len(), 4, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("PASS  ConnectionTest: the Function App handled it"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_each_failure_with_its_fix() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (_azurite, probe, connection) = storage_only().await;
    let (p, _) = ids();
    let endpoint = fixture.endpoint().to_string();
    let settings = [
        ("CV_STORAGE", connection.as_str()),
        ("CUSTOM_VISION_ENDPOINT", endpoint.as_str()),
        ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
    ];
    let fail = |out: &str, check: &str, fix: &str| {
        let at = out
            .find(&format!("FAIL  {check}: "))
            .unwrap_or_else(|| panic!("no FAIL for {check}:\n{out}"));
        assert!(
            out[at..]
                .lines()
                .nth(1)
                .is_some_and(|l| l.contains("fix: ") && l.contains(fix)),
            "{check}: {out}"
        );
    };

    // The project points elsewhere (the fixture's default URLs), no test blob, no notification.
    let run = cvctl(&settings, &["verify", "--project", &p]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("PASS  access"), "{}", run.stdout);
    fail(
        &run.stdout,
        "project",
        &format!("cvctl integrate --project {p}"),
    );
    fail(&run.stdout, "test blob", "Storage Blob Data Contributor");
    fail(
        &run.stdout,
        "ConnectionTest",
        "Storage Queue Data Contributor",
    );

    // The ConnectionTest arrived, but no app reads the queue.
    assert_eq!(
        cvctl(&settings, &["simulate", "connection-test", "--project", &p])
            .await
            .code,
        0
    );
    let run = cvctl(&settings, &["verify", "--project", &p]).await;
    fail(
        &run.stdout,
        "ConnectionTest",
        "func azure functionapp publish",
    );
    assert!(run.stdout.contains("waiting in queue"), "{}", run.stdout);
    let _ = probe;

    // A key the service refuses.
    let wrong_key = [
        ("CV_STORAGE", connection.as_str()),
        ("CUSTOM_VISION_ENDPOINT", endpoint.as_str()),
        ("CUSTOM_VISION_TRAINING_KEY", "expired-key"),
    ];
    let run = cvctl(&wrong_key, &["verify", "--project", &p]).await;
    assert_eq!(run.code, 1);
    fail(
        &run.stdout,
        "project",
        "CUSTOM_VISION_TRAINING_KEY is wrong or expired",
    );

    // Storage that refuses whoever runs it: another account's key.
    let refused = connection.replace(
        customvision_events::settings::AZURITE_KEY,
        "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmE=",
    );
    let run = cvctl(&[("CV_STORAGE", &refused)], &["verify", "--project", &p]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    fail(
        &run.stdout,
        "access",
        "grant yourself Storage Blob Data Reader",
    );

    // No storage at all: exit 3.
    let closed = connection.replace(
        &format!("127.0.0.1:{}/", _azurite.blob_port),
        "127.0.0.1:9/",
    );
    let run = cvctl(&[("CV_STORAGE", &closed)], &["verify", "--project", &p]).await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
}

/// `cvctl demo` (`make demo`): two trainings against the Custom Vision stand-in, the first
/// published and the second refused by the gate, both exported and copied, their events
/// received by a webhook with verified signatures; the output says so, the folder it names
/// holds the reports and the dashboard, every link of the dashboard opens a file in it, and
/// everything it started is gone afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn demo_shows_copies_latest_the_gate_the_events_the_reports_and_the_dashboard() {
    let out = std::env::temp_dir().join(format!("cv-demo-{}", uuid::Uuid::new_v4()));
    let run = cvctl(&[], &["demo", "--out", out.to_str().unwrap()]).await;
    let o = &run.stdout;
    assert_eq!(run.code, 0, "{o}{}", run.stderr);
    let id_after = |prefix: &str| {
        let start = o
            .find(prefix)
            .unwrap_or_else(|| panic!("no '{prefix}' in\n{o}"))
            + prefix.len();
        o[start..start + 36].to_string()
    };
    let first = id_after("== Custom Vision trains Iteration 1 (");
    let second = id_after("== Custom Vision trains Iteration 2 (");
    let project = id_after("ConnectionTest for project ");
    for line in [
        "   Iteration 1: published as 'demo'",
        "   Iteration 2: belowBar: precision 0.8649 is 0.0351 under the bar of 0.9000",
        "   PublishIteration calls the service received: 1",
        &format!("   ONNX: Iteration 2 ({second}), alias {project}/latest/ONNX/model.ONNX"),
        "   rejected messages: 0",
        "== stopped the dev host, the handler, the webhook receiver, the Custom Vision stand-in and Azurite",
    ] {
        assert!(o.lines().any(|l| l == line), "no line '{line}' in\n{o}");
    }
    // The events, as the demo's webhook receiver got and verified them: per iteration its
    // copy, `latest` moving to it and its report; the first published, the second refused.
    assert!(
        o.contains("(8 distinct; signatures verified: ") && o.contains(" delivered, 0 refused)"),
        "{o}"
    );
    let event_lines = |kind: &str| -> Vec<&str> {
        o.lines()
            .filter(|l| l.starts_with(&format!("   {kind} ")))
            .collect()
    };
    assert_eq!(event_lines("ModelCopied").len(), 2, "{o}");
    assert_eq!(event_lines("ReportWritten").len(), 2, "{o}");
    let moved = event_lines("LatestMoved");
    assert_eq!(moved.len(), 2, "{o}");
    assert!(
        moved[0].ends_with(&format!(": now Iteration 1 ({first})"))
            && moved[1].ends_with(&format!(": now Iteration 2 ({second})")),
        "{o}"
    );
    let published = event_lines("IterationPublished");
    assert_eq!(published.len(), 1, "{o}");
    assert!(
        published[0].contains(&format!("/iterations/{first}/publish  id "))
            && published[0]
                .ends_with(": as 'demo' (precision 0.9302 >= 0.9000, recall 0.8889 >= 0.8500)"),
        "{o}"
    );
    let refused = event_lines("PublishRefused");
    assert_eq!(refused.len(), 1, "{o}");
    assert!(
        refused[0].contains(&format!("/iterations/{second}/publish  id "))
            && refused[0].ends_with(": precision 0.8649 is 0.0351 under the bar of 0.9000"),
        "{o}"
    );
    assert!(
        o.split("whsec_")
            .skip(1)
            .all(|rest| !rest
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/')),
        "the webhook secret was printed:\n{o}"
    );
    // `cvctl models`: both copies, the second marked latest.
    let listed: Vec<&str> = o
        .lines()
        .filter(|l| l.starts_with(&first) || l.starts_with(&second))
        .collect();
    assert_eq!(listed.len(), 2, "{o}");
    assert!(
        listed[0].starts_with(&second) && listed[0].ends_with("← latest"),
        "{o}"
    );
    // The files it names, and the dashboard's links inside the folder.
    let reports = out.join("reports").join(&project);
    for (iteration, name) in [(&first, "Iteration 1"), (&second, "Iteration 2")] {
        let report = reports.join(format!("{iteration}.html"));
        assert!(
            o.contains(&format!("report {name}:  {}", report.display())),
            "{o}"
        );
        assert!(report.is_file());
    }
    let dashboard = reports.join("index.html");
    assert!(
        o.contains(&format!("dashboard:        {}", dashboard.display())),
        "{o}"
    );
    let page = std::fs::read_to_string(&dashboard).unwrap();
    assert_eq!(page.matches("<g class=\"point\"").count(), 2);
    assert!(page.contains(&format!(
        "<th>published</th><td><a href=\"{first}.html\">Iteration 1</a>"
    )));
    assert!(page.contains(&format!(
        "<th>latest ONNX</th><td><a href=\"{second}.html\">Iteration 2</a>"
    )));
    let links: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(links.len() >= 7, "{links:?}");
    for link in links {
        let decoded = percent_encoding::percent_decode_str(link)
            .decode_utf8()
            .unwrap();
        let target = reports.join(decoded.as_ref());
        assert!(
            target.is_file(),
            "the link {link} opens nothing: {}",
            target.display()
        );
    }
    // Everything it started has stopped: the ports of the stand-in, the receiver and Azurite's
    // blob and queue services refuse (the dev host runs in the demo's own process).
    let ports = [
        ("the Custom Vision stand-in", stand_in_address(o)),
        (
            "the webhook receiver",
            address_after(o, "webhook receiver at http://"),
        ),
        (
            "Azurite's blob service",
            address_after(o, "   blob at http://"),
        ),
        (
            "Azurite's queue service",
            address_after(o, ", queue at http://"),
        ),
    ];
    // The handler, a child of the demo, would outlive it as an orphan: no process may still
    // carry this demo's webhook URL in its environment.
    let hook = format!("CV_WEBHOOK_URL=http://{}/hook", ports[1].1);
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == hook.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "processes of the demo still run: {left:?}");
    for (what, address) in ports {
        assert!(
            std::net::TcpStream::connect(address.as_str()).is_err(),
            "{what} at {address} still answers"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `127.0.0.1:PORT` of the stand-in, as the demo prints it.
fn stand_in_address(o: &str) -> String {
    address_after(o, "behaviour fixture) at http://")
}

/// The `host:port` printed right after `prefix` (up to the next `/` or space).
fn address_after(o: &str, prefix: &str) -> String {
    let start = o
        .find(prefix)
        .unwrap_or_else(|| panic!("no '{prefix}' in:\n{o}"))
        + prefix.len();
    o[start..]
        .split(['/', ' ', ','])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `cvctl … | head -1`: the reader goes away, and cvctl ends as Unix tools do (by SIGPIPE, or
/// done), never with Rust's "failed printing to stdout" panic.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_cvctl_quietly_not_with_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let (_azurite, _probe, connection) = storage_only().await;
    let (p, _) = ids();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cvctl"));
    command
        .arg("--root")
        .arg(root())
        .args(["--set", &format!("CV_STORAGE={connection}")])
        .args(["simulate", "connection-test", "--project", &p])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        // The reader is gone before cvctl writes its first line.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

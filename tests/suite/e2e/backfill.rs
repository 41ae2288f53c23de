//! `cvctl backfill`, the binary, against the Training API behaviour fixture and Azurite: a
//! project with three trained iterations from before the app (one exported already, one with
//! an export queued, one never exported) and one still training; GetIterations throttled once
//! (429 with `Retry-After`); the dry run's plan; the run; a second run that changes nothing.
//! Its requests against the official contract are checked with Prism in
//! `tests/suite/training_contract.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::Probe;
use customvision_events::events::model::StoredBlob;
use customvision_events::events::Fact;
use customvision_events::naming::stored::SOURCE_ETAG_KEY;

use crate::support::custom_vision::{bodies, Canned, CustomVisionFixture, Route, FIXTURE_KEY};
use crate::support::helpers::*;

/// Custom Vision's own storage for export packages, as far as a download URI goes.
const CV_EXPORTS: &str = "cv-exports";

/// A read SAS URL for a blob of `container`, as GetExports hands one out.
fn download_uri(probe: &Probe, container: &str, blob: &str) -> String {
    let mut url = probe.account.plain_blob_url(container, blob).unwrap();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        customvision_events::settings::AZURITE_KEY,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    url.set_query(Some(&customvision_events::storage::sas::blob_read_sas(
        customvision_events::settings::AZURITE_ACCOUNT,
        &key,
        &url,
        now - time::Duration::minutes(5),
        now + time::Duration::hours(1),
    )));
    url.to_string()
}

/// The outbox queue (`CV_EVENTS_QUEUE`'s default) and a webhook secret for the settings.
const OUTBOX: &str = "customvision-events";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The events on the outbox, in order, as `PublishEvents` would read them.
async fn outbox(probe: &Probe) -> Vec<Value> {
    probe
        .peek(OUTBOX)
        .await
        .unwrap()
        .iter()
        .map(|m| {
            let message: Value = serde_json::from_str(m).expect("an outbox message");
            message["event"].clone()
        })
        .collect()
}

fn iteration(project: &str, id: &str, name: &str, status: &str, trained_at: &str) -> Value {
    let mut body = bodies::iteration(project, id, status);
    body["name"] = json!(name);
    if status == "Completed" {
        body["trainedAt"] = json!(trained_at);
    }
    body
}

/// Every blob of the model store with its ETag: what "changes nothing" is checked against.
async fn store_state(probe: &Probe) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for name in probe.list(MODELS).await.unwrap() {
        let blob = probe.blob(MODELS, &name).await.unwrap().unwrap();
        state.insert(name, blob.etag);
    }
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_brings_three_iterations_in_and_a_second_run_changes_nothing() {
    let azurite = Azurite::start(&root()).expect("Azurite starts");
    let connection = azurite.connection_string();
    let probe = Probe::from_connection_string(&connection).unwrap();
    for c in [BACKUPS, MODELS, CV_EXPORTS] {
        probe.create_container(c).await.unwrap();
    }
    let cv = CustomVisionFixture::start().await.unwrap();
    let (p, _) = ids();
    let [a, b, c, d] = [0; 4].map(|_| uuid::Uuid::new_v4().to_string());
    // Oldest first: A, B, C; D is still training.
    cv.add_iteration(
        &p,
        iteration(
            &p,
            &c,
            "Iteration 3",
            "Completed",
            "2026-11-20T09:00:00.000Z",
        ),
    );
    cv.add_iteration(
        &p,
        iteration(
            &p,
            &a,
            "Iteration 1",
            "Completed",
            "2026-10-01T09:00:00.000Z",
        ),
    );
    cv.add_iteration(
        &p,
        iteration(
            &p,
            &b,
            "Iteration 2",
            "Completed",
            "2026-10-15T09:00:00.000Z",
        ),
    );
    cv.add_iteration(&p, iteration(&p, &d, "Iteration 4", "Training", ""));
    let packages: Vec<(String, Vec<u8>)> = [&a, &b, &c]
        .iter()
        .enumerate()
        .map(|(n, i)| {
            (
                format!("m-{}/{i}.ONNX.zip", &p[..8]),
                vec![n as u8 + 1; 10_000 + n],
            )
        })
        .collect();
    for (name, bytes) in &packages {
        probe.put_blob(CV_EXPORTS, name, bytes).await.unwrap();
    }
    // A was exported before the app; B's export is queued; C was never exported.
    let mut done = bodies::export("ONNX", "Done");
    done["downloadUri"] = json!(download_uri(&probe, CV_EXPORTS, &packages[0].0));
    cv.add_export(&p, &a, done);
    cv.add_export(&p, &b, bodies::export("ONNX", "Exporting"));
    let uris: BTreeMap<String, String> = [(&b, 1), (&c, 2)]
        .into_iter()
        .map(|(i, n)| (i.clone(), download_uri(&probe, CV_EXPORTS, &packages[n].0)))
        .collect();
    cv.finish_exports_with(move |_, iteration, _| uris[iteration].clone());
    cv.push(Route::GetIterations, Canned::throttled("1"));

    let endpoint = cv.endpoint().to_string();
    // Events on (a webhook sink; no PublishEvents runs here, so the outbox keeps them).
    probe.create_queue(OUTBOX).await.unwrap();
    let settings = [
        ("CV_STORAGE", connection.as_str()),
        ("CUSTOM_VISION_ENDPOINT", endpoint.as_str()),
        ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
        ("CV_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ("CV_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let backfill = |extra: &'static [&'static str]| {
        let p = p.clone();
        async move {
            let mut args = vec![
                "backfill",
                "--project",
                &p,
                "--platforms",
                "ONNX",
                "--poll",
                "0.05",
            ];
            args.extend(extra);
            cvctl(&settings, &args).await
        }
    };

    // The plan: reads only, after waiting out the 429.
    let plan = backfill(&["--dry-run"]).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    println!("$ cvctl backfill --dry-run\n{}", plan.stdout);
    assert_eq!(
        cv.requests_to(Route::GetIterations).len(),
        2,
        "the 429, then the answer"
    );
    let out = &plan.stdout;
    for expected in [
        "plan for project",
        "(3 trained iterations; ONNX)",
        "export done: copy into the store",
        "exporting: wait, then copy",
        "no export: request it, wait, copy",
        "missing: write it",
        &format!("{d} Iteration 4 skipped: Training"),
    ] {
        assert!(out.contains(expected), "{expected:?} in\n{out}");
    }
    let order: Vec<usize> = [&a, &b, &c]
        .iter()
        .map(|i| out.find(i.as_str()).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "oldest first:\n{out}"
    );
    assert!(cv.requests_to(Route::ExportIteration).is_empty());
    assert!(
        store_state(&probe).await.is_empty(),
        "a dry run writes nothing"
    );
    assert!(outbox(&probe).await.is_empty(), "a dry run queues nothing");
    assert!(
        cv.requests_to(Route::GetExports)
            .iter()
            .all(|r| !r.path.contains(&d)),
        "an untrained iteration's exports are not asked for"
    );

    // The run.
    let run = backfill(&[]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    println!("$ cvctl backfill\n{}", run.stdout);
    assert!(
        run.stdout
            .contains("backfill: 1 export requested, 3 exports copied, 3 reports written"),
        "{}",
        run.stdout
    );
    let requested = cv.requests_to(Route::ExportIteration);
    assert_eq!(requested.len(), 1, "only C's export is requested");
    assert!(requested[0].path.contains(&c));
    assert_eq!(
        requested[0].query_value("platform").as_deref(),
        Some("ONNX")
    );
    assert!(
        cv.requests_to(Route::PublishIteration).is_empty(),
        "a backfill never publishes"
    );

    // The store as ExportCompleted leaves it: copies, latest by trainedAt, the index.
    let index: Value = serde_json::from_slice(
        &probe
            .blob(MODELS, &index_blob(&p))
            .await
            .unwrap()
            .expect("an index")
            .bytes,
    )
    .unwrap();
    let listed: Vec<&str> = index["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["iterationId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [c.as_str(), b.as_str(), a.as_str()], "{index:#}");
    assert!(index["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["orderedBy"] == "trainedAt" && m["platform"] == "ONNX"));
    assert_eq!(index["latest"]["ONNX"]["iterationId"], c.as_str());
    let alias = probe
        .blob(MODELS, index["latest"]["ONNX"]["alias"].as_str().unwrap())
        .await
        .unwrap()
        .expect("the latest alias");
    assert_eq!(alias.bytes, packages[2].1);
    for (n, i) in [&a, &b, &c].iter().enumerate() {
        let entry = &index["models"][2 - n];
        let copy = probe
            .blob(MODELS, entry["path"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copy.bytes, packages[n].1);
        assert_eq!(copy.tags[TAG_ITERATION_ID], i.as_str());
        assert_eq!(copy.tags[TAG_PROJECT_ID], p);
        assert_eq!(copy.tags[TAG_PLATFORM], "ONNX");
        // And its report, with the automation's writer.
        let report: Value = serde_json::from_slice(
            &probe
                .blob(MODELS, &report_json_path(&p, i))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no report of {i}"))
                .bytes,
        )
        .unwrap();
        assert_eq!(report["status"], "TrainingCompleted");
        assert_eq!(report["publish"], Value::Null);
        assert!(probe
            .blob(MODELS, &report_html_path(&p, i))
            .await
            .unwrap()
            .is_some());
    }
    let report_c: Value = serde_json::from_slice(
        &probe
            .blob(MODELS, &report_json_path(&p, &c))
            .await
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap();
    assert_eq!(
        report_c["previous"]["iterationId"],
        b.as_str(),
        "reports compare in order"
    );
    for text in [&plan.stdout, &plan.stderr, &run.stdout, &run.stderr] {
        assert!(!text.contains("sig="), "a download URI leaked:\n{text}");
    }

    // The events the store functions would have emitted, on the outbox: per iteration, its
    // copy and `latest` moving to it (oldest first, so three moves) and its report; each with
    // the id the function would give, recomputed here from what the store holds.
    assert!(
        run.stdout
            .contains("events: 9 queued on customvision-events"),
        "{}",
        run.stdout
    );
    let queued = outbox(&probe).await;
    let kinds = |t: &str| queued.iter().filter(|e| e["type"] == t).count();
    assert_eq!(kinds("CustomVisionEvents.ModelCopied"), 3, "{queued:#?}");
    assert_eq!(kinds("CustomVisionEvents.LatestMoved"), 3, "{queued:#?}");
    assert_eq!(kinds("CustomVisionEvents.ReportWritten"), 3, "{queued:#?}");
    assert_eq!(queued.len(), 9, "{queued:#?}");
    let ids: BTreeSet<&str> = queued.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 9, "each event once");
    for (n, i) in [&a, &b, &c].iter().enumerate() {
        let entry = &index["models"][2 - n];
        let path = entry["path"].as_str().unwrap();
        let copy = probe.blob(MODELS, path).await.unwrap().unwrap();
        let copied = Fact::ModelCopied(StoredBlob {
            project_id: p.clone(),
            iteration_id: i.to_string(),
            platform: "ONNX".into(),
            url: probe
                .account
                .plain_blob_url(MODELS, path)
                .unwrap()
                .to_string(),
            size: None,
            content_md5: None,
            source_etag: copy.metadata[SOURCE_ETAG_KEY].clone(),
            order: None,
        });
        assert!(
            ids.contains(copied.id().as_str()),
            "{i}'s copy: {queued:#?}"
        );
        let report = Fact::ReportWritten {
            project_id: p.clone(),
            iteration_id: i.to_string(),
            url: probe
                .account
                .plain_blob_url(MODELS, &report_json_path(&p, i))
                .unwrap()
                .to_string(),
            html_url: None,
            etag: String::new(),
        };
        assert!(
            ids.contains(report.id().as_str()),
            "{i}'s report: {queued:#?}"
        );
        let event = queued
            .iter()
            .find(|e| e["id"] == copied.id().as_str())
            .unwrap();
        assert_eq!(
            event["subject"],
            format!("projects/{p}/iterations/{i}/models/ONNX")
        );
    }
    let last_move = queued
        .iter()
        .rfind(|e| e["type"] == "CustomVisionEvents.LatestMoved")
        .unwrap();
    assert_eq!(
        last_move["data"]["iterationId"],
        c.as_str(),
        "latest ends at C"
    );
    for e in &queued {
        assert!(!e.to_string().contains("sig="), "a SAS in an event: {e}");
    }

    // A second run: nothing requested, copied or written.
    let before = store_state(&probe).await;
    let exports_before = cv.requests_to(Route::ExportIteration).len();
    let again = backfill(&[]).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    println!("$ cvctl backfill\n{}", again.stdout);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
    assert_eq!(cv.requests_to(Route::ExportIteration).len(), exports_before);
    assert_eq!(
        store_state(&probe).await,
        before,
        "the second run changed the store"
    );
    assert_eq!(
        outbox(&probe).await,
        queued,
        "the second run queued events for changes it did not make"
    );
}

/// An export the service says is already queued counts as asked for; one still running when
/// the wait ends is named, nothing is copied for it, and the run ends 1 so a script tries
/// again later.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_waits_only_as_long_as_asked_and_names_what_is_still_exporting() {
    let azurite = Azurite::start(&root()).expect("Azurite starts");
    let connection = azurite.connection_string();
    let probe = Probe::from_connection_string(&connection).unwrap();
    for c in [BACKUPS, MODELS] {
        probe.create_container(c).await.unwrap();
    }
    let cv = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    cv.add_iteration(
        &p,
        iteration(
            &p,
            &i,
            "Iteration 1",
            "Completed",
            "2026-10-01T09:00:00.000Z",
        ),
    );
    // Someone else asked for it between the plan's GetExports and the request.
    cv.push(Route::ExportIteration, Canned::export_already_queued(&i));
    let endpoint = cv.endpoint().to_string();
    let run = cvctl(
        &[
            ("CV_STORAGE", connection.as_str()),
            ("CUSTOM_VISION_ENDPOINT", endpoint.as_str()),
            ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
        ],
        &[
            "backfill",
            "--project",
            &p,
            "--platforms",
            "ONNX",
            "--poll",
            "0.05",
            "--wait",
            "0.3",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("ONNX                         still exporting"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "backfill: 0 exports requested, 0 exports copied, 1 report written, 1 export still exporting (run backfill again later)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        cv.requests_to(Route::GetExports).len() >= 2,
        "it waited by asking GetExports"
    );
    assert!(probe.blob(MODELS, &index_blob(&p)).await.unwrap().is_none());
}

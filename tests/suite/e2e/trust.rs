//! What the security review of issue 15 found, each closed and held here: a lost tagging race
//! decided again instead of answered 500; a SAS source only with provenance; a source that
//! answers what no retry can change rejected on its first delivery, its SAS redacted.

use std::collections::{BTreeMap, HashMap};

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::Probe;
use customvision_events::export::in_place;
use customvision_events::storage::list_one;
use customvision_events::storage::quoted_etag;

use crate::e2e::backup_name;
use crate::support::helpers::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The loser of a tagging race, provoked deterministically: the backup is listed, another
/// writer changes its metadata (and so its ETag), then we write over the stale listing. The
/// write's `If-Match` fails with 412; the blob is read again and the merge decided again.
#[tokio::test(flavor = "multi_thread")]
async fn tagging_in_place_over_a_stale_listing_reads_again_and_keeps_both_writers() {
    let azurite = Azurite::start(&root()).expect("Azurite starts (run `npm ci` first)");
    let probe = Probe::from_connection_string(&azurite.connection_string()).unwrap();
    probe.create_container(BACKUPS).await.unwrap();
    let (p, i) = ids();
    let name = backup_name(&p, &i, "ONNX");
    probe.put_blob(BACKUPS, &name, b"model").await.unwrap();
    let container = probe.account.container(BACKUPS).unwrap();
    let stale = list_one(&container, &name).await.unwrap().unwrap();

    // The other delivery wins: its own entries, and one of ours with the same value.
    let theirs: HashMap<String, String> = [(PROJECT_ID_KEY, p.as_str()), ("theirs", "kept")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    container
        .blob_client(&name)
        .set_metadata(&theirs, None)
        .await
        .unwrap();

    let tags = map(&[(TAG_PROJECT_ID, &p), (TAG_KIND, KIND_BACKUP)]);
    let ours = map(&[(PROJECT_ID_KEY, &p), (ITERATION_ID_KEY, &i)]);
    let etag = in_place::ensure(&container, &name, stale.into(), &tags, &ours)
        .await
        .expect("a lost race is decided again, not a failure");

    let now = probe.blob(BACKUPS, &name).await.unwrap().unwrap();
    assert_eq!(etag, quoted_etag(&now.etag), "the ETag after our write");
    assert_eq!(now.metadata[ITERATION_ID_KEY], i);
    assert_eq!(now.metadata[PROJECT_ID_KEY], p);
    assert_eq!(
        now.metadata["theirs"], "kept",
        "the other writer's entry stays"
    );
    assert_eq!(now.tags[TAG_KIND], KIND_BACKUP);

    // Nothing left to write: the current ETag comes back, and nothing is written.
    let fresh = list_one(&container, &name).await.unwrap().unwrap();
    let again = in_place::ensure(&container, &name, fresh.into(), &tags, &ours)
        .await
        .unwrap();
    assert_eq!(again, etag);
}

/// Two hosts on the same queues, every export delivered twice at once: both tag the same
/// backup in place. No invocation answers 500 for a lost race, nothing is poisoned, and each
/// export is copied once.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_tagging_one_backup_at_once_never_answer_500() {
    let mut app = spawn_app(&[("LATEST_ALIAS", "false"), ("MODEL_INDEX", "false")]).await;
    app.add_host();
    let p = uuid::Uuid::new_v4().to_string();
    let iterations: Vec<String> = (0..12).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for i in &iterations {
        app.probe
            .put_blob(BACKUPS, &backup_name(&p, i, "ONNX"), i.as_bytes())
            .await
            .unwrap();
    }
    // Each message twice in a row: the two deliveries land in one batch or on the two hosts.
    for i in &iterations {
        let message = export_message(&p, i, "ExportCompleted", None);
        app.send(&message).await;
        app.send(&message).await;
    }
    app.drained().await;
    for i in &iterations {
        let name = backup_name(&p, i, "ONNX");
        let copy = app
            .probe
            .blob(MODELS, &format!("{p}/{i}/ONNX/{name}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no copy of {i}\n{}", app.output()));
        assert_eq!(copy.bytes, i.as_bytes());
        let backup = app.probe.blob(BACKUPS, &name).await.unwrap().unwrap();
        assert_eq!(backup.metadata[ITERATION_ID_KEY], *i);
        assert_eq!(
            copy.metadata[SOURCE_ETAG_KEY],
            quoted_etag(&backup.etag),
            "the copy records the tagged backup's ETag"
        );
    }
    let out = app.output();
    assert!(
        !out.contains("status=500"),
        "an invocation answered 500:\n{out}"
    );
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

/// Custom Vision's own storage, as far as a SAS `modelUri` goes (a container of the test's
/// Azurite, read through a SAS the test signs).
const CV_EXPORTS: &str = "cv-exports";

fn signature_of(uri: &str) -> String {
    url::Url::parse(uri)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

fn plain(uri: &str) -> String {
    let mut url = url::Url::parse(uri).unwrap();
    url.set_query(None);
    url.to_string()
}

async fn rejected_records(app: &TestApp, at_least: usize) -> Vec<serde_json::Value> {
    app.messages(REJECTED, at_least)
        .await
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sas_hint_is_ignored_when_the_iteration_has_a_backup() {
    let app = spawn_app(&[]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let (p, i) = ids();
    let name = backup_name(&p, &i, "ONNX");
    app.probe
        .put_blob(BACKUPS, &name, b"the backup")
        .await
        .unwrap();
    app.probe
        .put_blob(CV_EXPORTS, "m/Model.ONNX", b"someone else's bytes")
        .await
        .unwrap();
    let uri = sas_url(&app, CV_EXPORTS, "m/Model.ONNX", false);
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
        .await;
    app.drained().await;

    let copy = app
        .probe
        .blob(MODELS, &format!("{p}/{i}/ONNX/{name}"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no copy\n{}", app.output()));
    assert_eq!(
        copy.bytes, b"the backup",
        "the backup is the trusted source"
    );
    assert_eq!(copy.metadata[SOURCE_BLOB_KEY], format!("{BACKUPS}/{name}"));
    let out = app.output();
    let warning = format!("warning: the SAS modelUri {} is ignored", plain(&uri));
    assert!(out.contains(&warning), "{out}");
    assert!(!out.contains(&signature_of(&uri)), "the SAS leaked");
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

/// Without the Training API nobody vouches for a SAS source: its first copy is made, but a
/// later message naming the same iteration with other bytes replaces neither the copy nor
/// `latest`; it is rejected with the reason on its first delivery.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_api_a_sas_source_is_only_ever_a_first_copy() {
    let app = spawn_app(&[]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let (p, i) = ids();
    let source = "m/Model.ONNX";
    app.probe
        .put_blob(CV_EXPORTS, source, b"first")
        .await
        .unwrap();
    let first = sas_url(&app, CV_EXPORTS, source, false);
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&first)))
        .await;
    app.drained().await;
    let copy_name = format!("{p}/{i}/ONNX/{p} - {i}.ONNX");
    let alias = latest_blob(&p, "ONNX", "ONNX");
    for name in [&copy_name, &alias] {
        let blob = app.probe.blob(MODELS, name).await.unwrap();
        let blob = blob.unwrap_or_else(|| panic!("no {name}\n{}", app.output()));
        assert_eq!(blob.bytes, b"first");
    }
    assert!(app.output().contains("has no backup and no Training API"));

    // Other bytes at the same URL (a new ETag), as a forged or replayed message would bring.
    app.probe
        .put_blob(CV_EXPORTS, source, b"second")
        .await
        .unwrap();
    let second = sas_url(&app, CV_EXPORTS, source, false);
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&second)))
        .await;
    app.drained().await;
    let records = rejected_records(&app, 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(reason.contains("only ever a first copy"), "{reason}");
    assert!(reason.contains(&plain(&second)), "{reason}");
    assert_eq!(
        records[0]["dequeueCount"], 1,
        "rejected on its first delivery"
    );
    for name in [&copy_name, &alias] {
        let blob = app.probe.blob(MODELS, name).await.unwrap().unwrap();
        assert_eq!(
            blob.bytes, b"first",
            "{name} replaced by an unvouched source"
        );
    }
    let everywhere = format!("{}{records:?}", app.output());
    for uri in [&first, &second] {
        assert!(!everywhere.contains(&signature_of(uri)), "the SAS leaked");
    }
    app.assert_empty(&[&format!("{EXPORTS}-poison")]).await;
}

/// With the Training API, GetExports vouches for a SAS source: one it does not list is
/// rejected; one it lists is copied, and may replace an earlier copy (a re-export).
#[tokio::test(flavor = "multi_thread")]
async fn with_the_api_a_sas_source_is_copied_only_when_get_exports_lists_it() {
    use crate::support::custom_vision::{Canned, CustomVisionFixture, Route, FIXTURE_KEY};
    let fixture = CustomVisionFixture::start().await.unwrap();
    let endpoint = fixture.endpoint().to_string();
    let app = spawn_app(&[
        ("CUSTOM_VISION_ENDPOINT", &endpoint),
        ("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY),
    ])
    .await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let (p, i) = ids();
    let source = "m-1/f8b5c43d.zip";
    app.probe
        .put_blob(CV_EXPORTS, source, b"PK-one")
        .await
        .unwrap();
    let uri = sas_url(&app, CV_EXPORTS, source, false);
    let exports = |listed: &str| {
        Canned::ok(serde_json::json!([
            {"platform": "ONNX", "status": "Done", "downloadUri": listed, "flavor": null, "newerVersionAvailable": false}
        ]))
    };

    // Listed: another blob of the same account.
    let other = sas_url(&app, CV_EXPORTS, "m-1/other.zip", false);
    fixture.set_default(Route::GetExports, exports(&other));
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
        .await;
    app.drained().await;
    let records = rejected_records(&app, 1).await;
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not among the exports GetExports lists"),
        "{reason}"
    );
    assert!(!reason.contains(&signature_of(&uri)));
    let copy_name = format!("{p}/{i}/ONNX/{p} - {i}.zip");
    assert!(app.probe.blob(MODELS, &copy_name).await.unwrap().is_none());

    // Listed: copied, with the platform GetExports gives.
    fixture.set_default(Route::GetExports, exports(&uri));
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
        .await;
    app.drained().await;
    let copy = app.probe.blob(MODELS, &copy_name).await.unwrap();
    assert_eq!(
        copy.unwrap_or_else(|| panic!("{}", app.output())).bytes,
        b"PK-one"
    );

    // A re-export of the iteration, vouched for again: it replaces the copy and the alias.
    app.probe
        .put_blob(CV_EXPORTS, source, b"PK-two")
        .await
        .unwrap();
    let again = sas_url(&app, CV_EXPORTS, source, false);
    fixture.set_default(Route::GetExports, exports(&again));
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&again)))
        .await;
    app.drained().await;
    for name in [copy_name, latest_blob(&p, "ONNX", "zip")] {
        let blob = app.probe.blob(MODELS, &name).await.unwrap();
        assert_eq!(
            blob.unwrap_or_else(|| panic!("no {name}\n{}", app.output()))
                .bytes,
            b"PK-two"
        );
    }
    assert_eq!(app.probe.peek(REJECTED).await.unwrap().len(), 1);
    app.assert_empty(&[&format!("{EXPORTS}-poison")]).await;
}

/// A SAS source that redirects, or answers what no retry can change, is rejected on the first
/// delivery: never followed, never retried into `-poison` with the live SAS in it. The proxy
/// in front of Azurite stands in for a foreign blob endpoint (the account's own endpoint is
/// always an allowed host).
#[tokio::test(flavor = "multi_thread")]
async fn a_sas_source_that_redirects_or_refuses_for_good_is_rejected_at_once() {
    let (app, proxy) = spawn_counted(&[]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let elsewhere = format!("http://127.0.0.1:{}/elsewhere/Model.ONNX", proxy.port);
    let cases: [(u16, &str); 4] = [
        (301, "redirect"),
        (302, "redirect"),
        (307, "redirect"),
        (410, "gone"),
    ];
    let mut uris = Vec::new();
    for (status, _) in cases {
        let blob = format!("m/{status}.ONNX");
        app.probe
            .put_blob(CV_EXPORTS, &blob, b"model")
            .await
            .unwrap();
        let mut url = url::Url::parse(&sas_url(&app, CV_EXPORTS, &blob, false)).unwrap();
        url.set_port(Some(proxy.port)).unwrap();
        proxy.answer(url.path(), status, &[("location", &elsewhere)]);
        let (p, i) = ids();
        app.send(&export_message(
            &p,
            &i,
            "ExportCompleted",
            Some(url.as_str()),
        ))
        .await;
        uris.push((status, url));
    }
    app.drained().await;
    let records = rejected_records(&app, cases.len()).await;
    assert_eq!(records.len(), cases.len(), "{records:?}\n{}", app.output());
    let seen = proxy.all_requests();
    for (status, url) in &uris {
        let record = records
            .iter()
            .find(|r| r["reason"].as_str().unwrap().contains(&plain(url.as_str())))
            .unwrap_or_else(|| panic!("no record for {status}: {records:?}"));
        let reason = record["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("answered {status}")), "{reason}");
        assert_eq!(
            record["dequeueCount"], 1,
            "{status}: rejected on its first delivery"
        );
        let asked = seen
            .iter()
            .filter(|s| s.path_and_query.starts_with(url.path()))
            .count();
        assert_eq!(asked, 1, "{status}: asked once, never retried");
    }
    assert!(
        !seen
            .iter()
            .any(|s| s.path_and_query.starts_with("/elsewhere")),
        "a redirect was followed"
    );
    let everywhere = format!("{}{records:?}", app.output());
    for (_, url) in &uris {
        assert!(
            !everywhere.contains(&signature_of(url.as_str())),
            "the SAS leaked"
        );
    }
    app.assert_empty(&[&format!("{EXPORTS}-poison")]).await;
    assert!(
        app.probe.list(MODELS).await.unwrap().is_empty(),
        "nothing is copied"
    );
}

/// A server that answers every request with a head promising a large body, then sends one
/// byte of it every 300 ms, forever: each byte restarts a read timeout, so only a deadline on
/// the whole request ends it. Counts the requests it got.
async fn dripping_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                              x-ms-version: 2025-11-05\r\nContent-Length: 1000000\r\n\r\n[";
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    if socket.write_all(b" ").await.is_err() {
                        return; // the client gave up
                    }
                }
            });
        }
    });
    (port, requests)
}

/// Runs `cvctl` and waits for it to end, for at most `guard`: a `cvctl` still running then is
/// the failure this test looks for (it is killed, and `None` comes back).
async fn cvctl_within(args: &[&str], guard: std::time::Duration) -> Option<Run> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cvctl"));
    command
        .arg("--root")
        .arg(root())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let ended = customvision_events::devhost::probe::wait_for("cvctl to end", guard, || {
        let status = child.try_wait();
        async move { Ok(status?) }
    })
    .await;
    if ended.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let out = child.wait_with_output().unwrap();
    Some(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `cvctl` against a storage endpoint and a Training API that drip their answers: with
/// `--timeout 1` each gives up as unreachable (exit 3), where the read timeout alone would
/// wait forever.
#[tokio::test(flavor = "multi_thread")]
async fn cvctl_gives_up_on_a_server_that_drips_bytes() {
    let (port, requests) = dripping_server().await;
    let storage = format!(
        "CV_STORAGE={}",
        customvision_events::settings::azurite_connection_string(port, port)
    );
    let training = format!("CUSTOM_VISION_ENDPOINT=http://127.0.0.1:{port}/");
    let project = uuid::Uuid::new_v4().to_string();
    // Far above what `--timeout 1` takes (a few attempts of one second), far below the
    // Training client's own default deadline (60 s) and forever.
    let guard = std::time::Duration::from_secs(30);
    for (what, args) in [
        (
            "models (storage)",
            vec![
                "--timeout",
                "1",
                "--set",
                &storage,
                "models",
                "--project",
                &project,
            ],
        ),
        (
            "integrate (Training API)",
            vec![
                "--timeout",
                "1",
                "--set",
                &storage,
                "--set",
                &training,
                "--set",
                "CUSTOM_VISION_TRAINING_KEY=0123456789abcdef",
                "integrate",
                "--project",
                &project,
                "--dry-run",
            ],
        ),
    ] {
        let before = requests.load(std::sync::atomic::Ordering::SeqCst);
        let run = cvctl_within(&args, guard)
            .await
            .unwrap_or_else(|| panic!("{what}: cvctl still waiting on a dripping server"));
        assert_eq!(run.code, 3, "{what}: {}{}", run.stdout, run.stderr);
        assert!(
            requests.load(std::sync::atomic::Ordering::SeqCst) > before,
            "{what}: the dripping server was asked"
        );
        assert!(!run.stderr.contains("0123456789abcdef"), "the key leaked");
    }
}

/// The alias is held too: an iteration's backup was copied and made `latest`, then the backup
/// and its copy went (retention). An unvouched SAS source of the same iteration gets its first
/// copy, but the alias keeps the bytes it had: it replaces nothing of another source.
#[tokio::test(flavor = "multi_thread")]
async fn an_unvouched_sas_source_does_not_replace_the_alias_of_its_iteration() {
    let app = spawn_app(&[]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let (p, i) = ids();
    let name = backup_name(&p, &i, "ONNX");
    app.probe
        .put_blob(BACKUPS, &name, b"the backup")
        .await
        .unwrap();
    app.send(&export_message(&p, &i, "ExportCompleted", None))
        .await;
    app.drained().await;
    let copy_name = format!("{p}/{i}/ONNX/{name}");
    let alias = latest_blob(&p, "ONNX", "ONNX");
    for (container, blob) in [(BACKUPS, &name), (MODELS, &copy_name)] {
        app.probe
            .account
            .container(container)
            .unwrap()
            .blob_client(blob)
            .delete(None)
            .await
            .unwrap_or_else(|e| panic!("delete {blob}: {e}\n{}", app.output()));
    }

    app.probe
        .put_blob(CV_EXPORTS, "m/Model.ONNX", b"unvouched")
        .await
        .unwrap();
    let uri = sas_url(&app, CV_EXPORTS, "m/Model.ONNX", false);
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
        .await;
    app.drained().await;
    let copy = app.probe.blob(MODELS, &copy_name).await.unwrap();
    assert_eq!(
        copy.unwrap_or_else(|| panic!("no first copy\n{}", app.output()))
            .bytes,
        b"unvouched",
        "a first copy is made"
    );
    let held = app.probe.blob(MODELS, &alias).await.unwrap().unwrap();
    assert_eq!(
        held.bytes, b"the backup",
        "the alias replaced by an unvouched source"
    );
    assert!(app
        .output()
        .contains("keeps this iteration's earlier bytes"));
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

/// What provenance costs on the queue-only path, counted at the wire: the backup listing
/// (twice: the ids as written, then upper-case) before the SAS source's one read and the copy.
/// The backup path keeps its budget (`an_export_takes_the_fewest_blob_requests`).
#[tokio::test(flavor = "multi_thread")]
async fn the_queue_only_path_costs_the_backup_listing_and_no_more() {
    let (app, proxy) = spawn_counted(&[("LATEST_ALIAS", "false"), ("MODEL_INDEX", "false")]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    app.send(customvision_events::seed::CONNECTION_TEST).await;
    app.drained().await;
    let before = proxy.sdk_requests().len();
    let (p, i) = ids();
    app.probe
        .put_blob(CV_EXPORTS, "m/Model.ONNX", b"model")
        .await
        .unwrap();
    let mut url = url::Url::parse(&sas_url(&app, CV_EXPORTS, "m/Model.ONNX", false)).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let message = export_message(&p, &i, "ExportCompleted", Some(url.as_str()));
    app.send(&message).await;
    app.drained().await;
    let first = proxy.sdk_requests()[before..].to_vec();
    assert!(
        app.has_blob(MODELS, &format!("{p}/{i}/ONNX/{p} - {i}.ONNX"))
            .await,
        "{}",
        app.output()
    );
    let listings = first
        .iter()
        .filter(|r| r.path_and_query.contains(&format!("/{BACKUPS}?")))
        .count();
    assert_eq!(listings, 2, "{first:#?}");
    assert!(first.len() <= 4, "{} requests: {first:#?}", first.len());
    app.send(&message).await;
    app.drained().await;
    let again = proxy.sdk_requests()[before + first.len()..].to_vec();
    assert!(again.len() <= 5, "{} requests: {again:#?}", again.len());
    println!(
        "queue-only SAS export (alias and index off): first delivery {} requests, redelivery {}",
        first.len(),
        again.len()
    );
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

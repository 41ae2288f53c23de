//! The model store on Azurite: exports from a SAS `modelUri` (a second container stands in for
//! Custom Vision's storage, with a SAS the test signs), hostile `modelUri`s never requested,
//! the `latest` alias under late messages and racing hosts, the index under concurrency, and
//! its rebuild from the tags.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use url::Url;

use customvision_events::domain::ProjectId;
use customvision_events::model_store::{rebuild, ModelIndex};
use customvision_events::settings::AZURITE_ACCOUNT;

use crate::e2e::backup_name;
use crate::support::helpers::*;

/// Custom Vision's own storage, as far as a SAS `modelUri` goes.
const CV_EXPORTS: &str = "cv-exports";

async fn index_of(app: &TestApp, project: &str) -> ModelIndex {
    let blob = app
        .probe
        .blob(MODELS, &index_blob(project))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no index\n{}", app.output()));
    serde_json::from_slice(&blob.bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sas_model_uri_is_copied_with_tags_and_no_sas_anywhere() {
    for action in ["both", "tag"] {
        let app = spawn_app(&[("EXPORT_ACTION", action)]).await;
        app.probe.create_container(CV_EXPORTS).await.unwrap();
        let (p, i) = ids();
        let source = "m-4f2a/Model.ONNX";
        let bytes: Vec<u8> = (0..100_000u32).map(|n| (n % 253) as u8).collect();
        app.probe
            .put_blob(CV_EXPORTS, source, &bytes)
            .await
            .unwrap();
        let uri = sas_url(&app, CV_EXPORTS, source, false);
        let signature = Url::parse(&uri)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "sig")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
            .await;
        app.drained().await;

        let copy_name = format!("{p}/{i}/ONNX/{p} - {i}.ONNX");
        let copy = app
            .probe
            .blob(MODELS, &copy_name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{action}: no copy at {copy_name}\n{}", app.output()));
        assert_eq!(copy.bytes, bytes);
        assert_eq!(copy.tags[TAG_PROJECT_ID], p);
        assert_eq!(copy.tags[TAG_PLATFORM], "ONNX");
        assert_eq!(copy.tags[TAG_KIND], KIND_MODEL);
        let plain = app
            .probe
            .account
            .plain_blob_url(CV_EXPORTS, source)
            .unwrap();
        assert_eq!(copy.metadata[SOURCE_BLOB_KEY], plain.as_str());
        let index = index_of(&app, &p).await;
        let latest = app
            .probe
            .blob(MODELS, &latest_blob(&p, "ONNX", "ONNX"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest.bytes, bytes);
        let out = app.output();
        if action == "tag" {
            assert!(out.contains("cannot be tagged in place"), "{out}");
        }
        let everywhere = format!(
            "{out}{:?}{:?}{:?}{:?}{}",
            copy.tags,
            copy.metadata,
            latest.tags,
            latest.metadata,
            serde_json::to_string(&index).unwrap()
        );
        for secret in [
            signature.as_str(),
            &url::form_urlencoded::byte_serialize(signature.as_bytes()).collect::<String>(),
        ] {
            assert!(!everywhere.contains(secret), "{action}: the SAS leaked");
        }
        app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sas_sources_without_a_platform_are_kept_apart() {
    // Custom Vision names its downloads by hash: two exports of one iteration (say ONNX and
    // TensorFlow) both arrive as `<hash>.zip`, and neither may replace the other.
    let app = spawn_app(&[]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let (p, i) = ids();
    for (name, bytes) in [("9f8e7d6c.zip", b"PK-one"), ("0a1b2c3d.zip", b"PK-two")] {
        app.probe.put_blob(CV_EXPORTS, name, bytes).await.unwrap();
    }
    let first = sas_url(&app, CV_EXPORTS, "9f8e7d6c.zip", false);
    let second = sas_url(&app, CV_EXPORTS, "0a1b2c3d.zip", false);
    for uri in [&first, &second, &first] {
        app.send(&export_message(&p, &i, "ExportCompleted", Some(uri)))
            .await;
        app.drained().await;
    }
    let copies: Vec<String> = app
        .probe
        .list(MODELS)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".zip"))
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}\n{}", app.output());
    assert!(
        copies.iter().all(|n| !n.contains("/latest/")),
        "an unknown platform has no latest alias: {copies:?}"
    );
    let mut contents = Vec::new();
    for name in &copies {
        let copy = app.probe.blob(MODELS, name).await.unwrap().unwrap();
        let label = &copy.tags[TAG_PLATFORM];
        assert!(label.starts_with("unknown-"), "{label}");
        assert!(name.contains(&format!("/{label}/")), "{name}");
        contents.push(copy.bytes);
    }
    contents.sort();
    assert_eq!(contents, vec![b"PK-one".to_vec(), b"PK-two".to_vec()]);
    let index = index_of(&app, &p).await;
    assert_eq!(index.models.len(), 2, "{index:?}");
    assert!(app
        .output()
        .contains("nor the Training API names its platform; recorded as 'unknown-"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_blob_of_the_own_account_is_not_copied_without_a_sas() {
    // The handler's own key reaches every container; a modelUri without a SAS must not.
    let app = spawn_app(&[]).await;
    app.probe.create_container("secrets").await.unwrap();
    app.probe
        .put_blob("secrets", "keys.ONNX", b"not yours")
        .await
        .unwrap();
    let (p, i) = ids();
    let uri = app
        .probe
        .account
        .plain_blob_url("secrets", "keys.ONNX")
        .unwrap()
        .to_string();
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
        .await;
    let rejected = app.messages(REJECTED, 1).await;
    app.drained().await;
    let record: Value = serde_json::from_str(&rejected[0]).unwrap();
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.contains("answered 40"), "{reason}");
    assert!(app.probe.list(MODELS).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_sas_is_rejected_on_the_first_attempt() {
    let app = spawn_app(&[]).await;
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let (p, i) = ids();
    app.probe
        .put_blob(CV_EXPORTS, "m/old.ONNX", b"model")
        .await
        .unwrap();
    let uri = sas_url(&app, CV_EXPORTS, "m/old.ONNX", true);
    app.send(&export_message(&p, &i, "ExportCompleted", Some(&uri)))
        .await;
    let rejected = app.messages(REJECTED, 1).await;
    app.drained().await;
    let record: Value = serde_json::from_str(&rejected[0]).unwrap();
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.contains("answered 403"), "{reason}");
    assert!(reason.contains("Re-export the iteration"), "{reason}");
    assert_eq!(record["dequeueCount"], 1, "no retries burnt");
    // The record keeps the message, but not its signature.
    let signature = url::Url::parse(&uri)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(signature.len() > 20);
    for form in [signature.clone(), urlencoding(&signature)] {
        assert!(!rejected[0].contains(&form), "{}", rejected[0]);
        assert!(!app.output().contains(&form));
    }
    assert_eq!(app.output().matches("will retry").count(), 0);
    app.assert_empty(&[&format!("{EXPORTS}-poison")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_model_uris_are_rejected_without_a_request() {
    // The account's own endpoint is the counting proxy: a request for any of the URIs that
    // name it shows there, and one for the others reaches the trap (or no listener at all:
    // names that do not resolve here).
    let (app, proxy) = spawn_counted(&[]).await;
    // Anything that reaches this listener is a request the handler should not have made.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap = listener.local_addr().unwrap().port();
    let caught = Arc::new(AtomicUsize::new(0));
    let count = caught.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let blob_port = proxy.port;
    let account = AZURITE_ACCOUNT;
    let hostile = [
        format!("http://127.0.0.1:{trap}/{account}/cv-exports/m.ONNX?sig=x"),
        format!("https://127.0.0.1:{trap}/{account}/cv-exports/m.ONNX?sig=x"),
        format!("http://localhost:{trap}/{account}/cv-exports/m.ONNX"),
        format!("http://user:pw@127.0.0.1:{blob_port}/{account}/cv-exports/m.ONNX"),
        format!("http://127.0.0.1:{blob_port}/{account}/cv-exports/../customvision-backups/x.ONNX"),
        format!("http://127.0.0.1:{blob_port}/{account}/cv-exports/%2e%2e/m.ONNX"),
        format!("http://127.0.0.1:{blob_port}\\{account}\\cv-exports\\m.ONNX"),
        "https://evil.example.com/cv/m.ONNX?sig=x".to_string(),
        format!("https://acct.blob.core.windows.net:{trap}/cv/m.ONNX"),
        "https://[::1]/cv/m.ONNX".to_string(),
    ];
    for uri in &hostile {
        let (p, i) = ids();
        app.send(&export_message(&p, &i, "ExportCompleted", Some(uri)))
            .await;
    }
    let rejected = app.messages(REJECTED, hostile.len()).await;
    app.drained().await;
    assert_eq!(
        caught.load(Ordering::SeqCst),
        0,
        "a hostile modelUri was requested"
    );
    let requested: Vec<_> = proxy
        .sdk_requests()
        .into_iter()
        .filter(|r| r.path_and_query.contains(".ONNX"))
        .collect();
    assert!(
        requested.is_empty(),
        "a hostile modelUri was requested: {requested:?}"
    );
    for record in &rejected {
        let record: Value = serde_json::from_str(record).unwrap();
        let reason = record["reason"].as_str().unwrap();
        assert!(reason.contains("never requested"), "{reason}");
        assert_eq!(record["dequeueCount"], 1);
    }
    assert!(app.probe.list(MODELS).await.unwrap().is_empty());
    app.assert_empty(&[&format!("{EXPORTS}-poison")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_never_moves_backwards() {
    let mut app = spawn_app(&[]).await;
    let p = uuid::Uuid::new_v4().to_string();
    let iterations: Vec<String> = (0..6).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (n, i) in iterations.iter().enumerate() {
        app.probe
            .put_blob(
                BACKUPS,
                &backup_name(&p, i, "ONNX"),
                format!("model {n}").as_bytes(),
            )
            .await
            .unwrap();
    }
    // The store's order (creation time, ties by iteration id), whatever the clock gave.
    let newest = expected_newest(&app, &p, &iterations).await;
    let n = iterations.iter().position(|i| *i == newest).unwrap();
    let alias = latest_blob(&p, "ONNX", "ONNX");

    // The newest first, then every older one late.
    app.send(&export_message(&p, &newest, "ExportCompleted", None))
        .await;
    app.drained().await;
    for i in iterations.iter().filter(|i| **i != newest) {
        app.send(&export_message(&p, i, "ExportCompleted", None))
            .await;
    }
    app.drained().await;
    let latest = app.probe.blob(MODELS, &alias).await.unwrap().unwrap();
    assert_eq!(
        latest.bytes,
        format!("model {n}").as_bytes(),
        "{}",
        app.output()
    );
    assert_eq!(latest.tags[TAG_ITERATION_ID], newest);
    assert_eq!(latest.tags[TAG_KIND], KIND_LATEST);
    assert_eq!(latest.metadata[ITERATION_ID_KEY], newest);

    // Two hosts racing over every message, each delivered twice, in a shuffled order.
    app.add_host();
    let p2 = uuid::Uuid::new_v4().to_string();
    for (n, i) in iterations.iter().enumerate() {
        app.probe
            .put_blob(
                BACKUPS,
                &backup_name(&p2, i, "ONNX"),
                format!("model {n}").as_bytes(),
            )
            .await
            .unwrap();
    }
    let newest2 = expected_newest(&app, &p2, &iterations).await;
    let n2 = iterations.iter().position(|i| *i == newest2).unwrap();
    let mut order: Vec<&String> = iterations.iter().chain(iterations.iter()).collect();
    order.sort_by_key(|i| i.as_bytes()[0] ^ 0x5a);
    for i in order {
        app.send(&export_message(&p2, i, "ExportCompleted", None))
            .await;
    }
    app.drained().await;
    let latest = app
        .probe
        .blob(MODELS, &latest_blob(&p2, "ONNX", "ONNX"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        latest.bytes,
        format!("model {n2}").as_bytes(),
        "{}",
        app.output()
    );
    assert_eq!(latest.metadata[ITERATION_ID_KEY], newest2);
    let index = index_of(&app, &p2).await;
    assert_eq!(index.latest["ONNX"].iteration_id, newest2);
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_holds_every_one_of_50_concurrent_exports_and_rebuilds_the_same() {
    let mut app = spawn_app(&[]).await;
    app.add_host();
    let p = uuid::Uuid::new_v4().to_string();
    let iterations: Vec<String> = (0..50).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (n, i) in iterations.iter().enumerate() {
        let platform = if n % 5 == 0 { "CoreML" } else { "ONNX" };
        app.probe
            .put_blob(
                BACKUPS,
                &backup_name(&p, i, platform),
                format!("model {n}").as_bytes(),
            )
            .await
            .unwrap();
    }
    for i in &iterations {
        app.send(&export_message(&p, i, "ExportCompleted", None))
            .await;
    }
    app.drained().await;
    let index = index_of(&app, &p).await;
    let listed: BTreeMap<&str, &str> = index
        .models
        .iter()
        .map(|m| (m.iteration_id.as_str(), m.platform.as_str()))
        .collect();
    assert_eq!(index.models.len(), 50, "{}", app.output());
    for (n, i) in iterations.iter().enumerate() {
        let platform = if n % 5 == 0 { "CoreML" } else { "ONNX" };
        assert_eq!(listed.get(i.as_str()), Some(&platform), "{i} missing");
    }
    for entry in &index.models {
        assert_eq!(
            entry.size,
            Some(
                format!(
                    "model {}",
                    iterations
                        .iter()
                        .position(|i| *i == entry.iteration_id)
                        .unwrap()
                )
                .len() as u64
            )
        );
        assert!(entry.content_md5.is_some());
    }
    assert_eq!(index.latest.len(), 2);
    for (platform, latest) in &index.latest {
        let alias = app
            .probe
            .blob(MODELS, latest.alias.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &alias.metadata[ITERATION_ID_KEY], &latest.iteration_id,
            "{platform}"
        );
    }

    // The copies are the truth: a rebuild from their tags gives the same index.
    let store = app.probe.account.container(MODELS).unwrap();
    let rebuilt = rebuild(&store, ProjectId::parse(&p).unwrap(), true)
        .await
        .unwrap();
    assert_eq!(rebuilt.models, index.models);
    assert_eq!(rebuilt.latest, index.latest);

    // Someone breaks the index: the next export rebuilds it whole from the tags, not from
    // nothing.
    app.probe
        .put_blob(MODELS, &index_blob(&p), b"{not json")
        .await
        .unwrap();
    let late = uuid::Uuid::new_v4().to_string();
    app.probe
        .put_blob(BACKUPS, &backup_name(&p, &late, "ONNX"), b"model 50")
        .await
        .unwrap();
    app.send(&export_message(&p, &late, "ExportCompleted", None))
        .await;
    app.drained().await;
    let repaired = index_of(&app, &p).await;
    assert_eq!(repaired.models.len(), 51, "{}", app.output());
    assert!(repaired.models.iter().any(|m| m.iteration_id == late));
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

/// `value` percent-encoded as a query string carries it.
fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

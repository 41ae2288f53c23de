//! Azurite with its data on disk, stopped and started again on the same ports twice in the
//! middle of 200 notifications: storage going away and coming back under the handler and the
//! dev host. Every export is processed and copied once in effect.

use std::time::{Duration, Instant};

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::wait_for;

use crate::reliability::secrets::Secrets;
use crate::reliability::store::*;
use crate::support::helpers::*;

/// Copies in the model store now (the `latest` aliases aside); `None` while storage is away.
async fn copies(app: &TestApp) -> Option<usize> {
    let names = app.probe.list(MODELS).await.ok()?;
    Some(
        names
            .iter()
            .filter(|n| n.contains("/ONNX/") && !n.contains("/latest/"))
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_notifications_survive_two_azurite_restarts() {
    let dir = std::env::temp_dir().join(format!("azurite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let azurite = Azurite::start_persistent(&root(), &dir).expect("Azurite starts");
    let mut app = spawn_with(
        AppOptions {
            azurite: Some(azurite),
            ..Default::default()
        }
        // A message whose release or delete failed while storage was away comes back in
        // seconds (the host's 10-minute lease is renewed; this one is not, and is short).
        .devhost_arg("--lease-ms", "15000"),
    )
    .await;
    let exports = put_backups(&app, 20, 10, |n| 512 + (n * 131) % 4096).await;
    let started = Instant::now();
    for e in &exports {
        app.send(&e.message()).await;
    }
    let mut outages = Vec::new();
    for at in [exports.len() / 3, 2 * exports.len() / 3] {
        wait_for(
            &format!("{at} copies"),
            Duration::from_secs(120),
            || async { Ok(copies(&app).await.filter(|n| *n >= at)) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&app)));
        let down = Instant::now();
        let failed_before = app.output().matches("will retry").count();
        tokio::task::block_in_place(|| app.azurite.stop());
        // Down until the outage has failed whole invocations (beyond the SDK's retries), so
        // that the dev host cannot release their messages either: they come back when their
        // lease ends.
        wait_for("an invocation to fail", Duration::from_secs(30), || async {
            Ok((app.output().matches("will retry").count() > failed_before).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&app)));
        tokio::task::block_in_place(|| app.azurite.start_again()).expect("Azurite starts");
        outages.push(down.elapsed());
    }
    app.drained_within(Duration::from_secs(240)).await;
    let elapsed = started.elapsed();

    let checked = check_exports(&app, &exports).await;
    assert_nothing_rejected(&app).await;
    let out = app.output();
    let failed = out.matches("will retry").count();
    // The outages reached the app: storage requests that found no Azurite (retried by the
    // SDK), and queue polls of the dev host that failed.
    let refused = out.matches("Failed response").count();
    let polls = out.matches("receive failed").count();
    // Failed invocations whose message could not be released either: back after the lease.
    let unreleased = out.matches("releasing the message failed").count();
    assert!(
        refused + polls > 0,
        "the restarts went unnoticed\n{}",
        tail(&app)
    );
    let scanned = Secrets::standard().scan_app(&app).await;
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    crate::reliability::figures(
        "azurite_restarts",
        &format!(
            "{} notifications, 2 Azurite restarts (outages {:?}): {refused} storage requests and \
             {polls} queue polls failed, {failed} invocations failed and retried ({unreleased} of them not releasable \
             while storage was away, back after their lease); {} copies and {} index entries correct, {} projects' latest the \
             newest, 0 lost, 0 poisoned; {:.1} s; secrets scan: {} items, 0 found",
            exports.len(),
            outages,
            checked.copies,
            checked.index_entries,
            checked.projects,
            elapsed.as_secs_f64(),
            scanned.items
        ),
    );
}

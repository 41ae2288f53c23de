//! The handler killed (SIGKILL) mid-work, and started again by the dev host as the Functions
//! host restarts its worker: in the middle of a 256 MiB copy, and in the middle of a batch.
//! The proxy in front of the blob service holds a copy's answer, so the kill lands after
//! storage has acted and before the handler has heard: the worst moment. A reader polls the
//! model paths, `latest` and the index throughout ([`crate::reliability::observe`]).

use std::time::{Duration, Instant};

use customvision_events::devhost::probe::wait_for;

use crate::reliability::faults::{FaultPlan, FaultProxy, Head};
use crate::reliability::observe::Observer;
use crate::reliability::secrets::Secrets;
use crate::reliability::store::*;
use crate::support::helpers::*;

/// A copy into the model store (not the alias): a PUT with a copy source.
fn model_copy(head: &Head) -> bool {
    head.method == "PUT"
        && head.header("x-ms-copy-source").is_some()
        && head.target.contains(&format!("/{MODELS}/"))
        && !head.target.contains("/latest/")
}

async fn app_behind_proxy() -> (TestApp, FaultProxy) {
    let azurite = start_azurite();
    let proxy = FaultProxy::start(azurite.blob_port, FaultPlan::none()).await;
    let app = spawn_with(
        AppOptions {
            azurite: Some(azurite),
            blob_port: Some(proxy.port),
            ..Default::default()
        }
        // A failed invocation's message comes back after a second, as host.json's 30 s would.
        .devhost_arg("--visibility-timeout-ms", "1000"),
    )
    .await;
    (app, proxy)
}

/// Waits for the proxy to hold a copy's answer, kills the handler, lets the answer go (to a
/// dead socket), and waits for the dev host to start a new handler. Returns the new pid.
async fn kill_while_held(app: &TestApp, proxy: &FaultProxy, before: &[u32]) -> u32 {
    wait_for("a copy to be held", DEADLINE, || async {
        Ok((proxy.held() == 1).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(app)));
    for pid in before {
        // SAFETY: kill(2) on a handler this test's dev host started.
        unsafe {
            libc::kill(*pid as i32, libc::SIGKILL);
        }
    }
    proxy.release();
    app.wait_handlers(1, before).await[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_killed_mid_256_mib_copy_is_restarted_and_the_retry_finishes() {
    let (app, proxy) = app_behind_proxy().await;
    let exports = put_backups(&app, 1, 1, |_| 256 << 20).await;
    let observer = Observer::start(app.probe.clone(), &exports);
    let first = app.wait_handlers(1, &[]).await;
    proxy.hold_next(model_copy);
    let started = Instant::now();
    app.send(&exports[0].message()).await;
    let second = kill_while_held(&app, &proxy, &first).await;
    app.drained_within(Duration::from_secs(180)).await;
    let elapsed = started.elapsed();
    let seen = observer.finish().await;

    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    let checked = check_exports(&app, &exports).await;
    assert_nothing_rejected(&app).await;
    let out = app.output();
    assert!(out.contains("the handler exited"), "{}", tail(&app));
    assert!(app.handler_pids() == vec![second], "one handler runs now");
    let scanned = Secrets::standard().scan_app(&app).await;
    crate::reliability::figures(
        "kill_mid_copy",
        &format!(
            "256 MiB export, handler SIGKILLed with the copy's answer in flight, 1 restart; \
             {} copy correct (MD5), index and latest consistent; reader: {} rounds, {:?}, \
             {} index reads, 0 partial; {:.1} s; secrets scan: {} items, 0 found",
            checked.copies,
            seen.rounds,
            seen.states,
            seen.index_reads,
            elapsed.as_secs_f64(),
            scanned.items
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_killed_mid_batch_is_restarted_and_every_message_finishes() {
    let (app, proxy) = app_behind_proxy().await;
    let exports = put_backups(&app, 1, 24, |n| (256 << 10) + n * 40_000).await;
    let observer = Observer::start(app.probe.clone(), &exports);
    let first = app.wait_handlers(1, &[]).await;
    proxy.hold_next(model_copy);
    let started = Instant::now();
    for e in &exports {
        app.send(&e.message()).await;
    }
    // The kill lands with one copy's answer held and the rest of its batch under way.
    wait_for("a copy to be held", DEADLINE, || async {
        Ok((proxy.held() == 1).then_some(()))
    })
    .await
    .unwrap();
    let second = kill_while_held(&app, &proxy, &first).await;
    app.drained_within(Duration::from_secs(180)).await;
    let elapsed = started.elapsed();
    let seen = observer.finish().await;

    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    let checked = check_exports(&app, &exports).await;
    assert_nothing_rejected(&app).await;
    let out = app.output();
    let retried = out.matches("will retry").count();
    assert!(retried > 0, "the kill failed invocations\n{}", tail(&app));
    assert!(app.handler_pids() == vec![second], "one handler runs now");
    let scanned = Secrets::standard().scan_app(&app).await;
    crate::reliability::figures(
        "kill_mid_batch",
        &format!(
            "{} exports in one project, handler SIGKILLed mid-batch, 1 restart, {retried} \
             invocations failed and retried; {} copies and {} index entries correct, latest \
             the newest; reader: {} rounds, {:?}, {} index reads, 0 partial; {:.1} s; \
             secrets scan: {} items, 0 found",
            exports.len(),
            checked.copies,
            checked.index_entries,
            seen.rounds,
            seen.states,
            seen.index_reads,
            elapsed.as_secs_f64(),
            scanned.items
        ),
    );
}

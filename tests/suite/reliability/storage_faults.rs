//! Storage faults between the handler (and its dev host) and Azurite's blob service: 503
//! `ServerBusy` with `Retry-After`, 500, resets before and after the service acted, and
//! stalls past the HTTP client's read timeout. 100 exports (90 from backups in 10 projects,
//! 10 from SAS `modelUri`s) must each end as exactly one correct copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::reliability::faults::{FaultPlan, FaultProxy, Style};
use crate::reliability::secrets::{sig_of, Secrets};
use crate::reliability::store::*;
use crate::support::helpers::*;

/// The storage SDK's requests (the handler's and the dev host's), not Azurite's own reads of
/// a copy source through the same port: those stand for storage reading itself.
pub fn sdk_requests() -> FaultPlan {
    FaultPlan {
        filter: Arc::new(|head| {
            head.header("user-agent")
                .is_some_and(|ua| ua.starts_with("azsdk-rust"))
        }),
        ..FaultPlan::none()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_exports_survive_storage_faults_with_one_correct_copy_each() {
    let azurite = start_azurite();
    let plan = FaultPlan {
        seed: 0x5EED_0001,
        busy: 0.05,
        internal: 0.02,
        reset_before: 0.02,
        reset_after: 0.03,
        stall: 0.01,
        burst: 0.004,
        burst_for: Duration::from_secs(5),
        // Each stall costs the HTTP client's 60 s read timeout: one shows it without making
        // the run long.
        max_stalls: 1,
        stall_cap: Duration::from_secs(150),
        style: Style::Storage,
        ..sdk_requests()
    };
    let proxy = FaultProxy::start(azurite.blob_port, plan).await;
    let app = spawn_with(AppOptions {
        azurite: Some(azurite),
        blob_port: Some(proxy.port),
        ..Default::default()
    })
    .await;
    let mut exports = put_backups(&app, 9, 10, |n| 1024 + (n * 7919) % 65536).await;
    exports.extend(put_sas_sources(&app, 10, 1000, Some(proxy.port)).await);
    let mut secrets = Secrets::standard();
    for e in &exports {
        if let Some(sig) = e.sas.as_deref().and_then(sig_of) {
            secrets.add("a SAS signature", &sig);
        }
    }
    // Seeded shuffle: the order the notifications arrive in is not the order of the backups.
    let mut order: Vec<usize> = (0..exports.len()).collect();
    let mut state = 0x5EED_0002u64;
    for i in (1..order.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    let started = Instant::now();
    for &n in &order {
        app.send(&exports[n].message()).await;
    }
    app.drained_within(Duration::from_secs(300)).await;
    let elapsed = started.elapsed();

    let checked = check_exports(&app, &exports).await;
    assert_nothing_rejected(&app).await;
    // Some faults outlasted the SDK's retries: whole invocations failed and were redelivered.
    let out = app.output();
    let retried = out.matches("will retry").count();
    assert!(
        proxy.bursts() > 0 && retried > 0,
        "no invocation failed: {}",
        proxy.summary()
    );
    proxy.assert_every_kind_injected();
    let scanned = secrets.scan_app(&app).await;
    crate::reliability::figures(
        "storage_faults",
        &format!(
            "{} exports, {} copies and {} index entries correct, 0 lost, 0 rejected or poisoned; \
             {}; {retried} invocations failed and were redelivered; {:.1} s; secrets scan: {} items, {} bytes, {} needles, 0 found",
            exports.len(),
            checked.copies,
            checked.index_entries,
            proxy.summary(),
            elapsed.as_secs_f64(),
            scanned.items,
            scanned.bytes,
            secrets.len()
        ),
    );
}

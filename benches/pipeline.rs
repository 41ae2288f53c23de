//! `cargo bench --bench pipeline`: figures, not assertions.
//!
//! 1. parsing: `Notification::parse` on the seed's Export message, ns per message;
//! 2. end to end: N export notifications through Azurite → dev host → handler → copy + tags,
//!    wall time from the first enqueue to the N-th tagged copy.
//!
//! `BENCH_EXPORTS` sets N (default 200).

use std::time::{Duration, Instant};

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::{wait_for, Probe};
use customvision_events::devhost::{self, DevHostOptions};
use customvision_events::notification::Notification;
use customvision_events::seed;

fn main() {
    parse_benchmark();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = runtime.block_on(pipeline_benchmark()) {
        eprintln!("pipeline benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn parse_benchmark() {
    let text = seed::export("https://acct.blob.core.windows.net/customvision-backups/x.ONNX");
    let n = 200_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Notification::parse(std::hint::black_box(&text)).unwrap());
    }
    let per = started.elapsed() / n;
    println!("parse: {n} seed Export messages, {per:?} per message");
}

async fn pipeline_benchmark() -> Result<(), String> {
    let n: usize = std::env::var("BENCH_EXPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let azurite = Azurite::start(&root).map_err(|e| e.to_string())?;
    let probe = Probe::from_connection_string(&azurite.connection_string())?;
    for c in ["customvision-backups", "models"] {
        probe.create_container(c).await?;
    }
    probe.create_queue("customvision-notifications").await?;
    let mut messages = Vec::with_capacity(n);
    for _ in 0..n {
        let (p, i) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        probe
            .put_blob(
                "customvision-backups",
                &format!("{p} - {i}.ONNX"),
                &[7u8; 64 * 1024],
            )
            .await?;
        messages.push(format!(
            r#"{{"version":"1.0","type":"Export","Content":{{"projectId":"{p}","iterationId":"{i}","exportStatus":"ExportCompleted"}}}}"#
        ));
    }
    let options = DevHostOptions {
        root,
        handler: Some(env!("CARGO_BIN_EXE_handler").into()),
        max_polling_interval: Some(Duration::from_millis(100)),
        overrides: vec![
            ("CV_STORAGE".into(), azurite.connection_string()),
            ("RUST_LOG".into(), "warn".into()),
        ],
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let host = tokio::spawn(devhost::run(options, stopped));
    // Warm up: one ConnectionTest through the whole path, so the clock measures processing,
    // not start-up.
    probe
        .send("customvision-notifications", seed::CONNECTION_TEST)
        .await?;
    wait_for("the warm-up message", Duration::from_secs(60), || async {
        Ok((probe.queue_len("customvision-notifications").await? == 0).then_some(()))
    })
    .await?;

    let started = Instant::now();
    for m in &messages {
        probe.send("customvision-notifications", m).await?;
    }
    let enqueued = started.elapsed();
    wait_for("all copies", Duration::from_secs(600), || async {
        Ok((probe.list("models").await?.len() >= n).then_some(()))
    })
    .await?;
    let total = started.elapsed();
    println!(
        "pipeline: {n} exports (64 KiB backups), enqueue {enqueued:.2?}, first enqueue → last copy {total:.2?}, {:.1} exports/s",
        n as f64 / total.as_secs_f64()
    );
    let _ = stop.send(true);
    let _ = host.await;
    Ok(())
}

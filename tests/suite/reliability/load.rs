//! Load: a mix of notifications as a busy project sends them: exports, finished trainings
//! (with the Training API fixture: report, exports, publish), connection tests, 10 %
//! duplicates and 5 % malformed. Nothing is lost: every well-formed message is done, every
//! malformed one is in the rejected queue with its text. The handler's resident memory is
//! sampled throughout; throughput is recorded.
//!
//! 200 notifications by default; `RELIABILITY_LONG=1` (`make reliability-long`) sends 1,000.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::reliability::secrets::{fake_sig, Secrets};
use crate::reliability::store::*;
use crate::reliability::training_faults::{automation, training_message};
use crate::support::custom_vision::CustomVisionFixture;
use crate::support::helpers::*;

fn total() -> usize {
    match std::env::var("RELIABILITY_LONG").as_deref() {
        Ok("1") => 1000,
        _ => 200,
    }
}

/// Resident memory of a process, in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Malformed notifications of several kinds; the last carries a (fake) SAS to a host that is
/// not allowed, which must be rejected without its signature.
fn malformed(n: usize, sig: &str) -> String {
    let (p, _) = ids();
    match n % 5 {
        0 => format!("{{\"version\":\"1.0\",\"type\":\"Export\",\"Content\":{{\"projectId\":\"{p}\""),
        1 => "not a notification at all".to_string(),
        2 => r#"{"version":"1.0","type":"Training","Content":{"projectId":"not-a-guid","iterationId":"x","trainingStatus":"TrainingCompleted"}}"#.to_string(),
        3 => r#"{"version":"1.0","type":"Export"}"#.to_string(),
        _ => export_message(
            &p,
            &uuid::Uuid::new_v4().to_string(),
            "ExportCompleted",
            Some(&format!(
                "https://evil.example.com/exports/m.ONNX?sv=2022-11-02&sr=b&sp=r&sig={sig}"
            )),
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_of_mixed_notifications_loses_nothing_and_memory_stays_flat() {
    let n = total();
    let fixture = CustomVisionFixture::start().await.unwrap();
    let app = spawn_with(automation(fixture.endpoint().as_str())).await;
    let handler = app.wait_handlers(1, &[]).await[0];

    let bad = n * 5 / 100;
    let duplicates = n * 10 / 100;
    let unique = n - bad - duplicates;
    let tests = unique * 15 / 100;
    let trainings = unique * 15 / 100;
    let export_count = unique - tests - trainings;
    let per_project = 10;
    let exports = put_backups(&app, export_count.div_ceil(per_project), per_project, |n| {
        1024 + (n * 613) % 8192
    })
    .await;
    let exports = &exports[..export_count];
    let training_ids: Vec<(String, String)> = (0..trainings).map(|_| ids()).collect();

    let mut secrets = Secrets::standard();
    let mut messages: Vec<String> = Vec::new();
    messages.extend(exports.iter().map(Export::message));
    messages.extend(training_ids.iter().map(|(p, i)| training_message(p, i)));
    messages.extend((0..tests).map(|_| customvision_events::seed::CONNECTION_TEST.to_string()));
    // Duplicates of earlier messages, spread over the kinds.
    let mut state = 0x5EED_0004u64;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % bound
    };
    let originals = messages.len();
    for _ in 0..duplicates {
        let again = messages[next(originals)].clone();
        messages.push(again);
    }
    for k in 0..bad {
        let sig = fake_sig(&format!("load{k}"));
        secrets.add("a planted SAS signature", &sig);
        messages.push(malformed(k, &sig));
    }
    for i in (1..messages.len()).rev() {
        messages.swap(i, next(i + 1));
    }
    let connection_tests = messages
        .iter()
        .filter(|m| m.contains("ConnectionTest"))
        .count();

    // Memory, sampled every 100 ms until the run is over.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        while !*stopped.borrow() {
            if let Some(kib) = rss_kib(handler) {
                samples.push(kib);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples
    });
    let started = Instant::now();
    futures::stream::iter(messages.iter())
        .for_each_concurrent(16, |m| app.send(m))
        .await;
    app.drained_within(Duration::from_secs(if n > 200 { 900 } else { 300 }))
        .await;
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let samples = sampler.await.unwrap();

    // Nothing lost: every export copied, every training reported, every connection test
    // recorded, every malformed message rejected, nothing poisoned.
    let checked = check_exports_by(&app, exports, Newest::SameTrainedAt).await;
    for (p, i) in &training_ids {
        assert!(
            app.has_blob(MODELS, &report_json_path(p, i)).await,
            "no report for {i}\n{}",
            tail(&app)
        );
    }
    let recorded = app
        .probe
        .list(STATUS)
        .await
        .unwrap()
        .iter()
        .filter(|b| b.starts_with(&format!("{CONNECTION_TESTS_PREFIX}/")))
        .count();
    assert_eq!(recorded, connection_tests, "every connection test recorded");
    let rejected = app.probe.queue_len(REJECTED).await.unwrap();
    assert_eq!(
        rejected,
        bad,
        "every malformed message rejected, once\n{}",
        tail(&app)
    );
    // Each record says why, and keeps the message (its signature redacted).
    for record in app.probe.peek(REJECTED).await.unwrap() {
        let record: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert!(
            record["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{record}"
        );
        assert!(
            record.get("message").is_some() || record.get("messageBlob").is_some(),
            "{record}"
        );
    }
    for q in [NOTIFICATIONS, TRAINING, EXPORTS] {
        let poisoned = app.probe.queue_len(&format!("{q}-poison")).await.unwrap();
        assert_eq!(poisoned, 0, "{q}-poison\n{}", tail(&app));
    }

    // Flat after warm-up: the first quarter of the run is the warm-up.
    assert!(samples.len() >= 4, "too few memory samples: {samples:?}");
    let warm = *samples[..samples.len() / 4].iter().max().unwrap();
    let peak = *samples[samples.len() / 4..].iter().max().unwrap();
    let last = *samples.last().unwrap();
    assert!(
        peak <= 2 * warm + 32 * 1024,
        "memory grew after warm-up: {warm} KiB warm, {peak} KiB peak"
    );
    let scanned = secrets.scan_app(&app).await;
    crate::reliability::figures(
        "load",
        &format!(
            "{} notifications ({} exports, {} trainings, {} connection tests, {duplicates} \
             duplicates, {bad} malformed): 0 lost, {} copies and {} index entries correct, \
             {} reports, {recorded} connection tests recorded, {rejected} rejected \
             with their reasons, 0 poisoned; {:.1} s, {:.1} notifications/s; handler \
             RSS {:.1} MiB after warm-up, {:.1} MiB peak, {:.1} MiB at the end ({} samples); \
             secrets scan: {} items, {} bytes, {} needles, 0 found",
            messages.len(),
            exports.len(),
            trainings,
            tests,
            checked.copies,
            checked.index_entries,
            training_ids.len(),
            elapsed.as_secs_f64(),
            messages.len() as f64 / elapsed.as_secs_f64(),
            warm as f64 / 1024.0,
            peak as f64 / 1024.0,
            last as f64 / 1024.0,
            samples.len(),
            scanned.items,
            scanned.bytes,
            secrets.len()
        ),
    );
}

//! Training API faults between the handler and the Training API fixture: 503 and 500 as the
//! Cognitive Services gateway words them (with `Retry-After`), resets before and after the
//! service acted, and stalls past the client's per-attempt timeout. Every finished training
//! must end with its report, each export asked for accepted once, and one publish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::reliability::faults::{Exchange, FaultPlan, FaultProxy, Style};
use crate::reliability::secrets::Secrets;
use crate::reliability::store::{assert_nothing_rejected, tail};
use crate::support::custom_vision::{bodies, CustomVisionFixture, FIXTURE_KEY};
use crate::support::helpers::*;

pub fn training_message(p: &str, i: &str) -> String {
    format!(
        r#"{{"version":"1.0","type":"Training","Content":{{"projectId":"{p}","iterationId":"{i}","trainingStatus":"TrainingCompleted"}}}}"#
    )
}

/// The automation settings: two exports and a publish that passes its bar.
pub fn automation(endpoint: &str) -> AppOptions {
    AppOptions::default()
        .set("CUSTOM_VISION_ENDPOINT", endpoint)
        .set("CUSTOM_VISION_TRAINING_KEY", FIXTURE_KEY)
        .set("AUTO_EXPORT_PLATFORMS", "ONNX,TensorFlow:TensorFlowLite")
        .set("PUBLISH_NAME", "production")
        .set("PREDICTION_RESOURCE_ID", bodies::PREDICTION_ID)
        .set("PUBLISH_MIN_PRECISION", "0.9")
        .set("PUBLISH_MIN_RECALL", "0.85")
}

/// Per iteration: how many export requests per platform, and publish requests, the service
/// accepted (answered 200), read from what the proxy saw come back.
#[derive(Debug, Default)]
pub struct Accepted {
    pub exports: BTreeMap<String, usize>,
    pub publishes: usize,
    /// Requests that reached the service, accepted or not.
    pub export_requests: usize,
    pub publish_requests: usize,
}

pub fn accepted(exchanges: &[Exchange], iteration: &str) -> Accepted {
    let mut a = Accepted::default();
    for x in exchanges {
        if x.method != "POST" || !x.target.contains(&format!("/iterations/{iteration}/")) {
            continue;
        }
        let url = url::Url::parse(&format!("http://x{}", x.target)).unwrap();
        let reached = x.upstream_status.is_some();
        let ok = x.upstream_status == Some(200);
        if url.path().ends_with("/export") {
            a.export_requests += usize::from(reached);
            if ok {
                let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                let platform = format!(
                    "{}{}",
                    q.get("platform").cloned().unwrap_or_default(),
                    q.get("flavor").map(|f| format!(":{f}")).unwrap_or_default()
                );
                *a.exports.entry(platform).or_default() += 1;
            }
        } else if url.path().ends_with("/publish") {
            a.publish_requests += usize::from(reached);
            a.publishes += usize::from(ok);
        }
    }
    a
}

pub fn one_of_each() -> BTreeMap<String, usize> {
    BTreeMap::from([
        ("ONNX".to_string(), 1),
        ("TensorFlow:TensorFlowLite".to_string(), 1),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn trainings_survive_training_api_faults_with_one_export_each_and_one_publish() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let plan = FaultPlan {
        seed: 0x5EED_0003,
        busy: 0.08,
        internal: 0.04,
        reset_before: 0.03,
        reset_after: 0.05,
        stall: 0.02,
        // Longer than the client's retries (each waits the 1 s `Retry-After`): whole
        // invocations fail and are redelivered.
        burst: 0.015,
        burst_for: Duration::from_secs(8),
        // Each stall costs the client's 20 s attempt timeout.
        max_stalls: 2,
        stall_cap: Duration::from_secs(90),
        style: Style::Json,
        filter: Arc::new(|_| true),
    };
    let proxy = FaultProxy::start(fixture.addr().port(), plan).await;
    let app = spawn_with(automation(&format!("http://127.0.0.1:{}/", proxy.port))).await;
    let trainings: Vec<(String, String)> = (0..20).map(|_| ids()).collect();
    let started = Instant::now();
    for (p, i) in &trainings {
        app.send(&training_message(p, i)).await;
    }
    app.drained_within(Duration::from_secs(300)).await;
    let elapsed = started.elapsed();

    let exchanges = proxy.exchanges();
    let (mut export_requests, mut publish_requests) = (0, 0);
    for (p, i) in &trainings {
        let report = app
            .probe
            .blob(MODELS, &report_json_path(p, i))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no report for {i}\n{}", tail(&app)));
        let report: Value = serde_json::from_slice(&report.bytes).unwrap();
        assert_eq!(report["status"], "TrainingCompleted");
        let outcome = report["publish"]["outcome"].as_str().unwrap_or_default();
        assert!(
            ["published", "alreadyPublished"].contains(&outcome),
            "{i}: publish outcome {outcome}"
        );
        let a = accepted(&exchanges, i);
        assert_eq!(
            a.exports,
            one_of_each(),
            "{i}: exports accepted\n{}",
            tail(&app)
        );
        assert_eq!(a.publishes, 1, "{i}: one publish\n{}", tail(&app));
        export_requests += a.export_requests;
        publish_requests += a.publish_requests;
    }
    assert_nothing_rejected(&app).await;
    let retried = app.output().matches("will retry").count();
    proxy.assert_every_kind_injected();
    let secrets = Secrets::standard();
    let scanned = secrets.scan_app(&app).await;
    crate::reliability::figures(
        "training_faults",
        &format!(
            "{} trainings: {} reports, {} exports and {} publishes accepted once each \
             ({} export and {} publish requests reached the service); {}; {retried} \
             invocations failed and were redelivered; {:.1} s; \
             secrets scan: {} items, 0 found",
            trainings.len(),
            trainings.len(),
            trainings.len() * 2,
            trainings.len(),
            export_requests,
            publish_requests,
            proxy.summary(),
            elapsed.as_secs_f64(),
            scanned.items
        ),
    );
}

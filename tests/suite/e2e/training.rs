//! A finished training on Azurite against the Training API fixture: the report (JSON and
//! HTML), the exports asked for and the quality-gated publish, each exactly once however often
//! the message comes; and the Training API's answers feeding the model store (`trainedAt`
//! orders `latest`, GetExports names a SAS source's platform).

use serde_json::Value;

use crate::support::custom_vision::{bodies, CustomVisionFixture, Route, FIXTURE_KEY};
use crate::support::helpers::*;

fn training_message(p: &str, i: &str, status: &str) -> String {
    format!(
        r#"{{"version":"1.0","type":"Training","Content":{{"projectId":"{p}","iterationId":"{i}","trainingStatus":"{status}"}}}}"#
    )
}

fn api_settings(fixture: &CustomVisionFixture) -> Vec<(String, String)> {
    vec![
        (
            "CUSTOM_VISION_ENDPOINT".into(),
            fixture.endpoint().to_string(),
        ),
        ("CUSTOM_VISION_TRAINING_KEY".into(), FIXTURE_KEY.into()),
    ]
}

async fn spawn_with(fixture: &CustomVisionFixture, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = api_settings(fixture);
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let borrowed: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    spawn_app(&borrowed).await
}

async fn report_of(app: &TestApp, p: &str, i: &str) -> (Value, String) {
    let json = app
        .probe
        .blob(MODELS, &report_json_path(p, i))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no report\n{}", app.output()));
    let html = app
        .probe
        .blob(MODELS, &report_html_path(p, i))
        .await
        .unwrap()
        .unwrap();
    (
        serde_json::from_slice(&json.bytes).unwrap(),
        String::from_utf8(html.bytes).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_training_reports_exports_and_publishes_once_under_redelivery() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let app = spawn_with(
        &fixture,
        &[
            ("AUTO_EXPORT_PLATFORMS", "ONNX,TensorFlow:TensorFlowLite"),
            ("PUBLISH_NAME", "production"),
            ("PREDICTION_RESOURCE_ID", bodies::PREDICTION_ID),
            ("PUBLISH_MIN_PRECISION", "0.9"),
            ("PUBLISH_MIN_RECALL", "0.85"),
        ],
    )
    .await;
    let (p, i) = ids();
    let message = training_message(&p, &i, "TrainingCompleted");
    for _ in 0..3 {
        app.send(&message).await;
        app.drained().await;
    }
    let exports = fixture.requests_to(Route::ExportIteration);
    let asked: Vec<(Option<String>, Option<String>)> = exports
        .iter()
        .map(|r| (r.query_value("platform"), r.query_value("flavor")))
        .collect();
    assert_eq!(
        asked,
        vec![
            (Some("ONNX".into()), None),
            (Some("TensorFlow".into()), Some("TensorFlowLite".into()))
        ],
        "each export asked for once\n{}",
        app.output()
    );
    let publishes = fixture.requests_to(Route::PublishIteration);
    assert_eq!(publishes.len(), 1, "one publish for three deliveries");
    assert_eq!(
        publishes[0].query_value("publishName").as_deref(),
        Some("production")
    );
    assert_eq!(
        publishes[0].query_value("predictionId").as_deref(),
        Some(bodies::PREDICTION_ID)
    );
    // Every call carried a key (the fixture records it redacted, and answers a wrong one
    // 401, which would have left no report below) and none went elsewhere.
    let requests = fixture.requests();
    assert!(requests.iter().all(|r| r.route.is_some()));
    assert!(
        requests.iter().all(|r| r.header("Training-Key").is_some()),
        "{requests:?}"
    );

    let (report, html) = report_of(&app, &p, &i).await;
    assert_eq!(report["status"], "TrainingCompleted");
    assert_eq!(report["iteration"]["name"], "Iteration 4");
    assert_eq!(report["iteration"]["trainedAt"], "2026-11-28T16:40:50.102Z");
    assert_eq!(report["performance"]["threshold"], 0.5);
    assert_eq!(report["performance"]["perTag"].as_array().unwrap().len(), 3);
    assert_eq!(
        report["publish"]["outcome"], "alreadyPublished",
        "the last delivery's view"
    );
    assert_eq!(report["exports"][0]["outcome"], "alreadyExporting");
    assert!(html.contains("<svg") && html.contains("scratch") && !html.contains("<script"));
    let out = app.output();
    assert_eq!(
        out.matches("published as 'production'").count()
            - out.matches("already published as 'production'").count(),
        1,
        "{out}"
    );
    assert!(
        !out.contains(FIXTURE_KEY),
        "the key never reaches a log line"
    );
    // The dashboard: written by the first delivery, the same page for the other two.
    let dashboard = dashboard_path(&p);
    assert_eq!(
        out.matches(&format!("dashboard written: {dashboard}"))
            .count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.matches(&format!("dashboard unchanged: {dashboard}"))
            .count(),
        2,
        "{out}"
    );
    let page = app.probe.blob(MODELS, &dashboard).await.unwrap().unwrap();
    let page = String::from_utf8(page.bytes).unwrap();
    assert_eq!(page.matches("<g class=\"point\"").count(), 1);
    assert!(page.contains("published as <code>production</code>"));
    app.assert_empty(&[REJECTED, &format!("{TRAINING}-poison")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn below_the_bar_nothing_is_published_and_the_report_says_why() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let app = spawn_with(
        &fixture,
        &[
            ("PUBLISH_NAME", "production"),
            ("PREDICTION_RESOURCE_ID", bodies::PREDICTION_ID),
            ("PUBLISH_MIN_PRECISION", "0.95"),
            ("PUBLISH_MIN_RECALL", "0.85"),
        ],
    )
    .await;
    let (p, i) = ids();
    // An earlier iteration's report first, to be compared with: trained a week before.
    let (_, earlier) = ids();
    let mut older = bodies::iteration(&p, &earlier, "Completed");
    older["name"] = "Iteration 3".into();
    older["trainedAt"] = "2026-11-21T10:02:11.510Z".into();
    fixture.push(
        Route::GetIteration,
        crate::support::custom_vision::Canned::ok(older),
    );
    app.send(&training_message(&p, &earlier, "TrainingCompleted"))
        .await;
    app.drained().await;
    app.send(&training_message(&p, &i, "TrainingCompleted"))
        .await;
    app.drained().await;
    assert!(fixture.requests_to(Route::PublishIteration).is_empty());
    let (report, html) = report_of(&app, &p, &i).await;
    assert_eq!(report["publish"]["outcome"], "belowBar");
    let missed = &report["publish"]["missed"];
    assert_eq!(missed.as_array().unwrap().len(), 1, "{missed}");
    assert_eq!(missed[0]["figure"], "precision");
    let by = missed[0]["by"].as_f64().unwrap();
    assert!((by - (0.95 - 0.9302326)).abs() < 1e-6, "{by}");
    assert!(app.output().contains(
        "not published as 'production': precision 0.9302 is 0.0198 under the bar of 0.9500"
    ));
    assert!(html.contains("is 2.0 pt under the bar of 95.0%"), "{html}");
    assert_eq!(report["previous"]["name"], "Iteration 3");
    assert_eq!(report["previous"]["iterationId"], earlier.as_str());
    assert_eq!(report["previous"]["figures"]["precision"], 0.9302326);
    assert!(html.contains("previous: Iteration 3"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_training_writes_a_report_of_the_failure() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    fixture.set_default(
        Route::GetIteration,
        crate::support::custom_vision::Canned::ok(bodies::iteration(
            bodies::PROJECT_ID,
            bodies::ITERATION_ID,
            "Failed",
        )),
    );
    let app = spawn_with(&fixture, &[("AUTO_EXPORT_PLATFORMS", "ONNX")]).await;
    let (p, i) = ids();
    app.send(&training_message(&p, &i, "TrainingFailed")).await;
    app.drained().await;
    let (report, html) = report_of(&app, &p, &i).await;
    assert_eq!(report["status"], "TrainingFailed");
    assert_eq!(report["iteration"]["status"], "Failed");
    assert!(report["performance"].is_null());
    assert!(html.contains("The training failed"));
    assert!(fixture.requests_to(Route::ExportIteration).is_empty());
    assert!(fixture
        .requests_to(Route::GetIterationPerformance)
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_training_api_orders_latest_and_names_a_sas_sources_platform() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let app = spawn_with(&fixture, &[]).await;
    // A backup: ordered by the iteration's trainedAt, not the blob's creation time.
    let (p, i) = ids();
    let name = crate::e2e::backup_name(&p, &i, "ONNX");
    app.probe.put_blob(BACKUPS, &name, b"model").await.unwrap();
    app.send(&export_message(&p, &i, "ExportCompleted", None))
        .await;
    app.drained().await;
    let copy = app
        .probe
        .blob(MODELS, &format!("{p}/{i}/ONNX/{name}"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{}", app.output()));
    assert_eq!(copy.metadata[ORDER_BY_KEY], "trainedAt");
    assert_eq!(copy.metadata[ORDER_AT_KEY], "2026-11-28T16:40:50.102Z");

    // A SAS source whose file name is a hash: GetExports says which platform it is.
    app.probe.create_container("cv-exports").await.unwrap();
    app.probe
        .put_blob("cv-exports", "m-1/f8b5c43d.zip", b"PK")
        .await
        .unwrap();
    let sas = sas_url(&app, "cv-exports", "m-1/f8b5c43d.zip", false);
    let (p2, i2) = ids();
    fixture.set_default(
        Route::GetExports,
        crate::support::custom_vision::Canned::ok(serde_json::json!([
            {"platform": "CoreML", "status": "Done", "downloadUri": "https://irisprod.blob.core.windows.net/m-1/other.zip?sig=x", "flavor": null, "newerVersionAvailable": false},
            {"platform": "ONNX", "status": "Done", "downloadUri": sas, "flavor": null, "newerVersionAvailable": false}
        ])),
    );
    app.send(&export_message(&p2, &i2, "ExportCompleted", Some(&sas)))
        .await;
    app.drained().await;
    let copy = app
        .probe
        .blob(MODELS, &format!("{p2}/{i2}/ONNX/{p2} - {i2}.zip"))
        .await
        .unwrap();
    assert!(copy.is_some(), "{}", app.output());
    app.assert_empty(&[REJECTED, &format!("{EXPORTS}-poison")])
        .await;
}

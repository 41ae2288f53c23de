//! The Training API client against the behaviour fixture: realistic answers, the service's
//! error codes, retries and their bounds, and the key kept out of errors and logs.
//! Timing is asserted by counting requests; elapsed time only loosely, from below.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::custom_vision::{bodies, Canned, CustomVisionFixture, Route, FIXTURE_KEY};
use customvision_events::domain::{ExportFlavor, ExportPlatform, IterationId, ProjectId};
use customvision_events::settings::Secret;
use customvision_events::training::{
    ExportState, NewProject, RetryPolicy, TrainingAuth, TrainingClient, TrainingError,
    COGNITIVE_SERVICES_SCOPE,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ids() -> (ProjectId, IterationId) {
    init_logs();
    (
        ProjectId::parse(bodies::PROJECT_ID).unwrap(),
        IterationId::parse(bodies::ITERATION_ID).unwrap(),
    )
}

/// Short waits so retry tests take milliseconds; the deadline stays generous.
fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        total_deadline: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(5),
    }
}

fn client_with_key(fixture: &CustomVisionFixture, key: &str) -> TrainingClient {
    init_logs();
    TrainingClient::new(
        customvision_events::http_client(),
        &fixture.endpoint(),
        TrainingAuth::Key(Secret::new(key)),
    )
    .unwrap()
    .with_retry_policy(quick_policy())
}

fn client(fixture: &CustomVisionFixture) -> TrainingClient {
    client_with_key(fixture, FIXTURE_KEY)
}

#[tokio::test]
async fn get_iteration_reads_a_realistic_answer() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    let it = client(&fixture).get_iteration(p, i).await.unwrap();
    assert_eq!((it.id, it.project_id), (i, p));
    assert!(it.is_completed() && it.exportable);
    assert!(it.exportable_to.contains(&ExportPlatform::Onnx));
    assert!(it.trained_at.is_some());

    let req = &fixture.requests_to(Route::GetIteration)[0];
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.path,
        format!("/customvision/v3.3/training/projects/{p}/iterations/{i}")
    );
    assert_eq!(req.header("training-key"), Some("REDACTED"), "key sent");
    assert_eq!(req.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn iteration_still_training() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(
        Route::GetIteration,
        Canned::ok(bodies::iteration(
            bodies::PROJECT_ID,
            bodies::ITERATION_ID,
            "Training",
        )),
    );
    let it = client(&fixture).get_iteration(p, i).await.unwrap();
    assert!(!it.is_completed());
    assert!(it.exportable_to.is_empty() && it.trained_at.is_none());
}

#[tokio::test]
async fn performance_with_thresholds_and_per_tag_figures() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    let perf = client(&fixture)
        .get_iteration_performance(p, i, Some(0.5), Some(0.3))
        .await
        .unwrap();
    assert_eq!(perf.per_tag_performance.len(), 3);
    for t in &perf.per_tag_performance {
        for f in [t.precision, t.recall, t.average_precision.unwrap()] {
            assert!((0.0..=1.0).contains(&f), "{t:?}");
        }
    }
    assert!((perf.precision - 0.9302326).abs() < 1e-9);
    let req = &fixture.requests_to(Route::GetIterationPerformance)[0];
    assert_eq!(
        req.query.as_deref(),
        Some("threshold=0.5&overlapThreshold=0.3")
    );
}

#[tokio::test]
async fn get_exports_lists_exporting_and_done() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(
        Route::GetExports,
        Canned::ok(json!([
            bodies::export("ONNX", "Exporting"),
            bodies::export("DockerFile", "Done"),
            bodies::export("SomeFuturePlatform", "Done"),
        ])),
    );
    let exports = client(&fixture).get_exports(p, i).await.unwrap();
    assert_eq!(exports.len(), 2, "the unknown platform is skipped");
    assert_eq!(
        (exports[0].platform, exports[0].status),
        (ExportPlatform::Onnx, ExportState::Exporting)
    );
    assert_eq!(exports[0].download_uri, None);
    assert_eq!(exports[1].status, ExportState::Done);
    assert!(exports[1]
        .download_uri
        .as_deref()
        .unwrap()
        .contains(".DockerFile.zip?"));
}

#[tokio::test]
async fn export_sends_platform_and_flavor() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    let export = client(&fixture)
        .export_iteration(p, i, ExportPlatform::DockerFile, Some(ExportFlavor::Arm))
        .await
        .unwrap();
    assert_eq!(export.status, ExportState::Exporting);
    assert_eq!(export.flavor, Some(ExportFlavor::Arm));
    let req = &fixture.requests_to(Route::ExportIteration)[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.query.as_deref(), Some("platform=DockerFile&flavor=ARM"));
}

#[tokio::test]
async fn export_already_queued_is_a_service_error_with_its_code() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(
        Route::ExportIteration,
        Canned::export_already_queued(bodies::ITERATION_ID),
    );
    let err = client(&fixture)
        .export_iteration(p, i, ExportPlatform::Onnx, None)
        .await
        .unwrap_err();
    assert!(err.is_export_already_in_progress(), "{err}");
    assert!(!err.is_transient());
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("already queued for export"),
        "{err}"
    );
    assert_eq!(fixture.requests().len(), 1, "no retry of a 400");
}

#[tokio::test]
async fn export_while_training_is_surfaced() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(Route::ExportIteration, Canned::export_while_training());
    let err = client(&fixture)
        .export_iteration(p, i, ExportPlatform::Onnx, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("BadRequestExportWhileTraining"));
    assert!(!err.is_transient() && !err.is_export_already_in_progress());
}

#[tokio::test]
async fn publish_answers_a_boolean_and_already_published_is_a_code() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    let c = client(&fixture);
    assert!(c
        .publish_iteration(p, i, "production", bodies::PREDICTION_ID)
        .await
        .unwrap());
    let req = &fixture.requests_to(Route::PublishIteration)[0];
    assert_eq!(
        req.query_value("publishName").as_deref(),
        Some("production")
    );
    assert_eq!(
        req.query_value("predictionId").as_deref(),
        Some(bodies::PREDICTION_ID)
    );

    fixture.push(Route::PublishIteration, Canned::already_published());
    let err = c
        .publish_iteration(p, i, "production", bodies::PREDICTION_ID)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("BadRequestIterationIsPublished"));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(Route::GetIteration, Canned::throttled("1"));
    client(&fixture).get_iteration(p, i).await.unwrap();
    let requests = fixture.requests_to(Route::GetIteration);
    assert_eq!(requests.len(), 2);
    // The order at the fixture, not a speed: the retry arrived no sooner than the header
    // allowed. The policy's own back-off is at most 40 ms, so only the header explains it.
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[tokio::test]
async fn retry_after_past_the_deadline_gives_up_at_once() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(Route::GetIteration, Canned::throttled("120"));
    let err = client(&fixture).get_iteration(p, i).await.unwrap_err();
    match &err {
        TrainingError::Transient {
            attempts,
            status,
            retry_after,
            ..
        } => {
            assert_eq!(*attempts, 1);
            assert_eq!(*status, Some(429));
            assert_eq!(*retry_after, Some(Duration::from_secs(120)));
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn server_error_then_success() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(Route::GetExports, Canned::server_error());
    fixture.push(
        Route::GetExports,
        Canned::json(
            503,
            json!({"statusCode": 503, "message": "Service Unavailable"}),
        ),
    );
    fixture.push(
        Route::GetExports,
        Canned::ok(json!([bodies::export("ONNX", "Done")])),
    );
    let exports = client(&fixture).get_exports(p, i).await.unwrap();
    assert_eq!(exports[0].status, ExportState::Done);
    assert_eq!(fixture.requests().len(), 3);
}

#[tokio::test]
async fn retries_are_bounded_by_attempts() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, _) = ids();
    fixture.set_default(Route::GetProject, Canned::server_error());
    let err = client(&fixture).get_project(p).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(fixture.requests().len(), 4, "max_attempts");
}

#[tokio::test]
async fn deadline_exhaustion_is_transient() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.set_default(Route::GetIteration, Canned::server_error());
    let policy = RetryPolicy {
        max_attempts: 1000,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
        total_deadline: Duration::from_millis(1500),
        attempt_timeout: Duration::from_secs(5),
    };
    // The first call also loads the root certificates: make it before the clock starts, so a
    // loaded machine cannot spend the whole deadline on it.
    let client = client(&fixture).with_retry_policy(policy);
    let _ = client.get_project(p).await;
    let before = fixture.requests().len();
    let err = client.get_iteration(p, i).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    // Counted at the fixture, not timed: every attempt after the first waits at least half the
    // 50 ms delay (the jitter's floor), so the 1.5 s deadline leaves room for 61 at most;
    // without it, 1000.
    let n = fixture.requests().len() - before;
    let shortest_wait = policy.initial_delay.as_millis() / 2;
    let most = (policy.total_deadline.as_millis() / shortest_wait) as usize + 1;
    assert!((2..=most).contains(&n), "{n} attempts, {most} at most");
}

#[tokio::test]
async fn a_hung_service_is_cut_by_the_deadline() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hold = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(s);
            }
        }
    });
    let policy = RetryPolicy {
        total_deadline: Duration::from_millis(600),
        attempt_timeout: Duration::from_millis(250),
        max_attempts: 100,
        ..quick_policy()
    };
    let c = TrainingClient::new(
        customvision_events::http_client(),
        &format!("http://{addr}").parse().unwrap(),
        TrainingAuth::Key(Secret::new(FIXTURE_KEY)),
    )
    .unwrap()
    .with_retry_policy(policy);
    let (p, _) = ids();
    // A hang guard, not a speed check: without the attempt timeout the call never returns.
    let err = tokio::time::timeout(Duration::from_secs(60), c.get_project(p))
        .await
        .expect("the attempt timeout cuts a hung call")
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("attempt timeout"), "{err}");
    // Counted at the listener: each attempt takes its 250 ms, so the 600 s deadline ends the
    // call after 3 connections at most, far short of the 100 attempts allowed.
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&n), "{n} connections");
    hold.abort();
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = TrainingClient::new(
        customvision_events::http_client(),
        &format!("http://{addr}/").parse().unwrap(),
        TrainingAuth::Key(Secret::new(FIXTURE_KEY)),
    )
    .unwrap()
    .with_retry_policy(quick_policy());
    let (p, _) = ids();
    let err = c.get_project(p).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        matches!(
            err,
            TrainingError::Transient {
                attempts: 4,
                status: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_key_is_a_service_error_without_retries_or_the_key() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    let wrong_key = "expired-key-3f9a1c2e4b6d";
    let err = client_with_key(&fixture, wrong_key)
        .get_iteration(p, i)
        .await
        .unwrap_err();
    match &err {
        TrainingError::Service {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(*status, 401);
            assert_eq!(code, "401");
            assert!(message.starts_with("Access denied due to invalid subscription key"));
        }
        other => panic!("expected Service, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(fixture.requests().len(), 1, "a 401 is not retried");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(wrong_key), "{text}");
    }
}

/// A buggy gateway echoing the key back in its bodies: the key stays out of the error and out
/// of every log line the retries write (those of all tests in this binary, see [`logs`]).
#[tokio::test]
async fn the_key_never_reaches_errors_or_logs() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, _) = ids();
    let echo = format!("upstream rejected Training-Key {FIXTURE_KEY}");
    fixture.push(Route::GetProject, Canned::error(500, "ErrorUnknown", &echo));
    fixture.push(Route::GetProject, Canned::error(403, "Forbidden", &echo));

    let c = client(&fixture);
    let err = c.get_project(p).await.unwrap_err();
    assert_eq!(err.code(), Some("Forbidden"));
    let logs = logs();
    assert!(
        logs.contains("upstream rejected Training-Key REDACTED"),
        "the retry was logged, scrubbed: {logs}"
    );
    for text in [err.to_string(), format!("{err:?}"), format!("{c:?}"), logs] {
        assert!(!text.contains(FIXTURE_KEY), "{text}");
    }
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Everything logged in this test binary so far. A process-wide subscriber, installed before
/// any client exists (from [`ids`]): a thread-scoped one races with other tests over tracing's
/// per-callsite cache and can miss events.
fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

fn init_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| LogBuffer)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    });
}

struct LogBuffer;

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_answer_that_is_not_the_spec_is_a_decode_error() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    fixture.push(Route::GetIteration, Canned::ok(json!({"unexpected": true})));
    let err = client(&fixture).get_iteration(p, i).await.unwrap_err();
    assert!(matches!(err, TrainingError::Decode { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn update_project_keeps_every_setting_it_does_not_know() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, _) = ids();
    let mut served = bodies::project(bodies::PROJECT_ID);
    served["settings"]["futureSetting"] = json!({"mode": "strict", "levels": [1, 2]});
    served["futureTopLevel"] = json!(42);
    fixture.push(Route::GetProject, Canned::ok(served.clone()));

    let c = client(&fixture);
    let mut project = c.get_project(p).await.unwrap();
    let queue = "https://stcvevents.queue.core.windows.net/other-queue";
    project.settings.notification_queue_uri = Some(queue.into());
    let updated = c.update_project(p, &project).await.unwrap();
    assert_eq!(
        updated.settings.notification_queue_uri.as_deref(),
        Some(queue)
    );

    let patch = &fixture.requests_to(Route::UpdateProject)[0];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.header("content-type"), Some("application/json"));
    let sent = patch.json();
    let mut expected_settings = served["settings"].clone();
    expected_settings["notificationQueueUri"] = json!(queue);
    // Read-only fields are not sent back.
    let settings = expected_settings.as_object_mut().unwrap();
    settings.remove("useNegativeSet");
    settings.remove("detectionParameters");
    assert_eq!(sent["settings"], expected_settings);
    assert_eq!(sent["futureTopLevel"], json!(42));
    assert_eq!(sent["name"], served["name"]);
    assert_eq!(sent["description"], served["description"]);
    for read_only in [
        "id",
        "created",
        "lastModified",
        "thumbnailUri",
        "drModeEnabled",
    ] {
        assert!(sent.get(read_only).is_none(), "{read_only} sent");
    }
}

#[tokio::test]
async fn create_project_with_the_storage_extension_parameters() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let c = client(&fixture);
    let new = NewProject {
        description: Some("Defect classifier & more".into()),
        domain_id: Some(bodies::DOMAIN_ID.parse().unwrap()),
        classification_type: Some(customvision_events::training::Classifier::Multilabel),
        target_export_platforms: vec![ExportPlatform::Onnx, ExportPlatform::CoreMl],
        export_model_container_uri: Some(
            "https://stcvevents.blob.core.windows.net/customvision-backups"
                .parse()
                .unwrap(),
        ),
        notification_queue_uri: Some(
            "https://stcvevents.queue.core.windows.net/customvision-notifications"
                .parse()
                .unwrap(),
        ),
        ..NewProject::named("parts inspection")
    };
    let project = c.create_project(&new).await.unwrap();
    assert_eq!(project.name, "parts inspection");
    assert_eq!(
        project.settings.notification_queue_uri.as_deref(),
        Some("https://stcvevents.queue.core.windows.net/customvision-notifications")
    );
    let req = &fixture.requests_to(Route::CreateProject)[0];
    assert_eq!(
        req.query_pairs(),
        vec![
            ("name".to_string(), "parts inspection".to_string()),
            ("description".into(), "Defect classifier & more".into()),
            ("domainId".into(), bodies::DOMAIN_ID.into()),
            ("classificationType".into(), "Multilabel".into()),
            ("targetExportPlatforms".into(), "ONNX,CoreML".into()),
            (
                "exportModelContainerUri".into(),
                "https://stcvevents.blob.core.windows.net/customvision-backups".into()
            ),
            (
                "notificationQueueUri".into(),
                "https://stcvevents.queue.core.windows.net/customvision-notifications".into()
            ),
        ]
    );
    assert!(req.body.is_empty());
}

#[tokio::test]
async fn one_client_one_kept_alive_connection() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let (p, i) = ids();
    let c = client(&fixture);
    let clone = c.clone();
    c.get_project(p).await.unwrap();
    clone.get_iteration(p, i).await.unwrap();
    c.get_exports(p, i).await.unwrap();
    assert_eq!(fixture.requests().len(), 3);
    assert_eq!(fixture.connections(), 1, "clones share the pool");
}

#[derive(Debug)]
struct FakeCredential {
    scopes: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| s.to_string()));
        Ok(azure_core::credentials::AccessToken::new(
            "fake-entra-token",
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn entra_id_bearer_token_instead_of_a_key() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    fixture.accept_bearer();
    let credential = Arc::new(FakeCredential {
        scopes: Mutex::new(Vec::new()),
    });
    let c = TrainingClient::new(
        customvision_events::http_client(),
        &fixture.endpoint(),
        TrainingAuth::EntraId(credential.clone()),
    )
    .unwrap();
    let (p, _) = ids();
    c.get_project(p).await.unwrap();
    let req = &fixture.requests()[0];
    assert_eq!(req.header("authorization"), Some("REDACTED"));
    assert_eq!(req.header("training-key"), None);
    assert_eq!(
        *credential.scopes.lock().unwrap(),
        vec![COGNITIVE_SERVICES_SCOPE.to_string()]
    );
}

/// The fixture itself behaves like the service's front end: one kept-alive connection, a
/// chunked body decoded, no key → the gateway's 401.
#[tokio::test]
async fn fixture_keeps_connections_alive_and_reads_chunked_bodies() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(fixture.addr())
        .await
        .unwrap();
    let path = format!(
        "/customvision/v3.3/training/projects/{}",
        bodies::PROJECT_ID
    );
    let host = fixture.addr();
    let body = r#"{"name":"n","description":null,"settings":{}}"#;
    let (a, b) = body.split_at(10);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n\
         PATCH {path} HTTP/1.1\r\nHost: {host}\r\nTraining-Key: {FIXTURE_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answers = String::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while answers.matches("HTTP/1.1 ").count() < 2 || !answers.contains("\"settings\"") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("two answers in time")
            .unwrap();
        assert!(n > 0, "connection closed: {answers}");
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answers.starts_with("HTTP/1.1 401"), "{answers}");
    assert!(answers.contains("Access denied due to invalid subscription key"));
    assert!(answers.contains("HTTP/1.1 200"), "{answers}");
    let recorded = fixture.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].route, Some(Route::UpdateProject));
    assert_eq!(recorded[1].body, body.as_bytes());
    assert_eq!(recorded[1].header("transfer-encoding"), Some("chunked"));
    assert_eq!(recorded[0].connection, recorded[1].connection);
}

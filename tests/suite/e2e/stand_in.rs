//! The Custom Vision stand-in (`devhost::custom_vision`, the demo's service and the tests'
//! behaviour fixture) answers as the v3.3 contract says: the Training client talks to it
//! through Stoplight Prism in proxy mode with `--errors`, which checks each request *and each
//! answer* against `tests/contract/customvision-training-v3.3.mock.json` and turns a violation
//! into a 500 with `sl-violations`. So every call below succeeding (or failing with the
//! service's own error code) means the stand-in's body, status and content type conform.
//! Proxy mode: https://docs.stoplight.io/docs/prism/ (`prism proxy <spec> <upstream>`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use customvision_events::devhost::custom_vision::{
    bodies, CustomVisionFixture, Trained, FIXTURE_KEY,
};
use customvision_events::domain::{ExportPlatform, IterationId, ProjectId};
use customvision_events::settings::Secret;
use customvision_events::training::{
    ExportState, NewProject, RetryPolicy, TrainingAuth, TrainingClient,
};
use url::Url;

use crate::support::helpers::root;

const READY: Duration = Duration::from_secs(90);

struct PrismProxy {
    child: Child,
    url: Url,
}

impl Drop for PrismProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prism_proxy(upstream: &Url) -> PrismProxy {
    let bin = root().join("node_modules/.bin/prism");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci` (make test does)",
        bin.display()
    );
    let mut command = Command::new(&bin);
    command
        .args(["proxy", "--errors", "-h", "127.0.0.1", "-p", "0"])
        .arg(root().join("tests/contract/customvision-training-v3.3.mock.json"))
        .arg(upstream.as_str().trim_end_matches('/'))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: prctl only, between fork and exec: Prism dies with the test process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("start prism");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("Prism is listening on ") {
                let _ = tx.send(
                    line[at + "Prism is listening on ".len()..]
                        .trim()
                        .to_string(),
                );
            }
        }
    });
    let url = rx
        .recv_timeout(READY)
        .unwrap_or_else(|_| panic!("Prism proxy not listening after {READY:?}"));
    PrismProxy {
        child,
        url: Url::parse(&url).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stand_in_answers_as_the_contract_says() {
    let service = CustomVisionFixture::start().await.unwrap();
    let prism = prism_proxy(&service.endpoint());
    let client = TrainingClient::new(
        customvision_events::http_client(),
        &prism.url,
        TrainingAuth::Key(Secret::new(FIXTURE_KEY)),
    )
    .unwrap()
    .with_retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    let p = ProjectId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let trained = IterationId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let other = IterationId::parse(bodies::ITERATION_ID).unwrap();
    service.train(
        &p.to_string(),
        &trained.to_string(),
        Trained {
            name: "Iteration 2".into(),
            trained_at: "2026-11-28T16:40:50.102Z".into(),
            performance: bodies::performance_of(0.8648649, 0.9142857, 0.9221),
        },
    );

    let project = client.get_project(p).await.expect("GetProject");
    client
        .update_project(p, &project)
        .await
        .expect("UpdateProject");
    client
        .create_project(&NewProject::named("parts inspection"))
        .await
        .expect("CreateProject");
    for i in [trained, other] {
        let iteration = client.get_iteration(p, i).await.expect("GetIteration");
        assert!(iteration.trained_at.is_some());
        client
            .get_iteration_performance(p, i, Some(0.5), None)
            .await
            .expect("GetIterationPerformance");
    }
    assert_eq!(
        client.get_iteration(p, trained).await.unwrap().name,
        "Iteration 2"
    );
    client
        .export_iteration(p, trained, ExportPlatform::Onnx, None)
        .await
        .expect("ExportIteration");
    let again = client
        .export_iteration(p, trained, ExportPlatform::Onnx, None)
        .await
        .expect_err("a second export is refused");
    assert!(again.is_export_already_in_progress(), "{again}");
    let exporting = client.get_exports(p, trained).await.expect("GetExports");
    assert_eq!(exporting[0].status, ExportState::Exporting);
    assert_eq!(
        service
            .finish_exports(&p.to_string(), &trained.to_string())
            .len(),
        1
    );
    let done = client
        .get_exports(p, trained)
        .await
        .expect("GetExports, done");
    assert_eq!(done[0].status, ExportState::Done);
    client
        .publish_iteration(p, trained, "demo", bodies::PREDICTION_ID)
        .await
        .expect("PublishIteration");
    let twice = client
        .publish_iteration(p, trained, "demo", bodies::PREDICTION_ID)
        .await
        .expect_err("published already");
    assert_eq!(
        twice.code(),
        Some("BadRequestIterationIsPublished"),
        "{twice}"
    );
    assert_eq!(
        client
            .get_iteration(p, trained)
            .await
            .unwrap()
            .publish_name
            .as_deref(),
        Some("demo")
    );
}

/// The check can fail: an answer the contract forbids comes back as Prism's 500.
#[tokio::test(flavor = "multi_thread")]
async fn a_stand_in_answer_off_the_contract_is_caught() {
    use customvision_events::devhost::custom_vision::{Canned, Route};
    let service = CustomVisionFixture::start().await.unwrap();
    service.set_default(
        Route::GetIteration,
        Canned::ok(serde_json::json!({"id": "not-a-guid", "name": 4})),
    );
    let prism = prism_proxy(&service.endpoint());
    let client = TrainingClient::new(
        customvision_events::http_client(),
        &prism.url,
        TrainingAuth::Key(Secret::new(FIXTURE_KEY)),
    )
    .unwrap()
    .with_retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    let p = ProjectId::parse(bodies::PROJECT_ID).unwrap();
    let e = client
        .get_iteration(p, IterationId::parse(bodies::ITERATION_ID).unwrap())
        .await
        .expect_err("Prism refuses the answer");
    assert!(e.to_string().contains("500"), "{e}");
}

//! Every request the Training client makes, checked against the v3.3 contract by Stoplight
//! Prism (`@stoplight/prism-cli`, pinned in package.json; `npm ci` installs it), one test per
//! operation.
//!
//! Prism validates each request against `tests/contract/customvision-training-v3.3.mock.json`
//! (the spec with its paths prefixed, see `shared/specs/README.md`). In mock mode a violation of
//! severity error is always answered with an error status (401 no key, 404/405 no such
//! operation, 415 content type, 422 a parameter or body) and an `sl-violations` header naming
//! it; `--errors` adds nothing to request validation in mock mode but makes a response
//! violation an error too, so it is on. A conforming request gets a 2xx with a body generated
//! from the schema, which the client must also decode.
//!
//! The client talks to Prism through a small recording proxy: each test sees exactly the
//! exchanges its own calls made, with Prism's verdict (status and `sl-violations`).
//!
//! One Prism serves the whole test binary. It is started on first use on port 0 (it prints the
//! port it got); readiness is its "listening" line, awaited with a deadline. It is killed when
//! the test process exits (`PR_SET_PDEATHSIG`, tied to the thread that keeps reading its
//! output).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use crate::support::custom_vision::bodies::{
    ITERATION_ID as ITERATION, PREDICTION_ID, PROJECT_ID as PROJECT,
};
use crate::support::http1::{serve, Server};
use crate::support::prism::{forward as forward_to_prism, Prism};
use bytes::Bytes;
use customvision_events::domain::{ExportFlavor, ExportPlatform, IterationId, ProjectId};
use customvision_events::settings::Secret;
use customvision_events::training::{
    Classifier, NewProject, RetryPolicy, TrainingAuth, TrainingClient, TrainingError,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use url::Url;

// ---------------------------------------------------------------------------------------------
// Prism, once per test binary

static PRISM: OnceLock<Result<Prism, String>> = OnceLock::new();

fn prism() -> &'static Prism {
    match PRISM.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Prism::start(root.join("tests/contract/customvision-training-v3.3.mock.json"))
    }) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The recording proxy

#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    path_and_query: String,
    status: u16,
    violations: Option<String>,
}

struct Recorder {
    server: Server,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl Recorder {
    async fn start(upstream: Url) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let http = customvision_events::http_client().client().unwrap().clone();
        let recorded = exchanges.clone();
        let server = Server::spawn(
            addr,
            serve(listener, move |_| {
                let (http, upstream, recorded) = (http.clone(), upstream.clone(), recorded.clone());
                service_fn(move |req| {
                    forward(req, http.clone(), upstream.clone(), recorded.clone())
                })
            }),
        );
        Self { server, exchanges }
    }

    fn endpoint(&self) -> Url {
        Url::parse(&format!("http://{}", self.server.addr)).unwrap()
    }

    fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }
}

async fn forward(
    req: Request<Incoming>,
    http: reqwest::Client,
    upstream: Url,
    recorded: Arc<Mutex<Vec<Exchange>>>,
) -> Result<Response<Full<Bytes>>, String> {
    let answer = forward_to_prism(&http, req, Some(&upstream)).await?;
    recorded.lock().unwrap().push(Exchange {
        method: answer.method,
        path_and_query: answer.path_and_query,
        status: answer.status,
        violations: answer.violations,
    });
    Ok(answer.response)
}

// ---------------------------------------------------------------------------------------------
// What Prism does not check: it matches query names case-insensitively and lets undeclared
// ones through, so a misspelt optional parameter (`flavour`, `predictionID`) would pass. Each
// query name sent must be declared, spelt exactly, by the operation the path and method name.

/// The seed document's CreateProject parameters, not in the spec.
const EXTENSION_QUERY: [(&str, &str); 2] = [
    ("CreateProject", "exportModelContainerUri"),
    ("CreateProject", "notificationQueueUri"),
];

static SPEC: OnceLock<serde_json::Value> = OnceLock::new();

fn spec() -> &'static serde_json::Value {
    SPEC.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/contract/customvision-training-v3.3.mock.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    })
}

/// The operation id and declared query names of `method path`, matching `{param}` segments.
fn declared_query(method: &str, path: &str) -> Option<(String, Vec<String>)> {
    let sent: Vec<&str> = path.split('/').collect();
    let paths = spec()["paths"].as_object()?;
    for (template, item) in paths {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == sent.len()
            && parts
                .iter()
                .zip(&sent)
                .all(|(t, s)| t.starts_with('{') || t == s);
        let Some(op) = item.get(method.to_ascii_lowercase()).filter(|_| matches) else {
            continue;
        };
        let params = item["parameters"]
            .as_array()
            .into_iter()
            .chain(op["parameters"].as_array())
            .flatten();
        let names = params
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        return Some((op["operationId"].as_str()?.to_string(), names));
    }
    None
}

fn assert_declared_query(e: &Exchange) {
    let url = Url::parse(&format!("http://h{}", e.path_and_query)).unwrap();
    let (operation, declared) = declared_query(&e.method, url.path())
        .unwrap_or_else(|| panic!("{} {} is no operation of the spec", e.method, url.path()));
    for (name, _) in url.query_pairs() {
        let extension = EXTENSION_QUERY.contains(&(operation.as_str(), name.as_ref()));
        assert!(
            extension || declared.iter().any(|d| *d == name),
            "{operation}: query parameter '{name}' is not declared (declared: {declared:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

struct Contract {
    recorder: Recorder,
    client: TrainingClient,
}

/// No retries: a contract failure must show as the answer it is.
fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

async fn contract() -> Contract {
    let recorder = Recorder::start(prism().url.clone()).await;
    let client = TrainingClient::new(
        customvision_events::http_client(),
        &recorder.endpoint(),
        TrainingAuth::Key(Secret::new("contract-test-key")),
    )
    .unwrap()
    .with_retry_policy(one_attempt());
    Contract { recorder, client }
}

impl Contract {
    /// Every exchange so far was accepted by Prism without a violation; `expected` requests in
    /// all.
    fn assert_conforms(&self, operation: &str, expected: usize) {
        let exchanges = self.recorder.exchanges();
        assert_eq!(
            exchanges.len(),
            expected,
            "{operation}: requests made: {exchanges:#?}"
        );
        for e in &exchanges {
            assert!(
                e.violations.is_none() && (200..300).contains(&e.status),
                "{operation}: Prism rejects {} {} with {}: {}\n{}",
                e.method,
                e.path_and_query,
                e.status,
                e.violations.as_deref().unwrap_or("(no sl-violations)"),
                prism().tail()
            );
            assert_declared_query(e);
        }
    }
}

fn ok<T>(operation: &str, result: Result<T, TrainingError>) -> T {
    result.unwrap_or_else(|e| panic!("{operation}: {e}\n{}", prism().tail()))
}

fn ids() -> (ProjectId, IterationId) {
    (
        ProjectId::parse(PROJECT).unwrap(),
        IterationId::parse(ITERATION).unwrap(),
    )
}

// ---------------------------------------------------------------------------------------------
// One test per operation

#[tokio::test]
async fn get_project_conforms() {
    let c = contract().await;
    let (p, _) = ids();
    ok("GetProject", c.client.get_project(p).await);
    c.assert_conforms("GetProject", 1);
}

#[tokio::test]
async fn update_project_conforms_after_a_get() {
    let c = contract().await;
    let (p, _) = ids();
    let mut project = ok("GetProject", c.client.get_project(p).await);
    project.description = None;
    project.settings.export_model_container_uri =
        Some("https://stcvevents.blob.core.windows.net/customvision-backups".into());
    project.settings.notification_queue_uri =
        Some("https://stcvevents.queue.core.windows.net/customvision-notifications".into());
    ok("UpdateProject", c.client.update_project(p, &project).await);
    c.assert_conforms("UpdateProject", 2);
}

#[tokio::test]
async fn create_project_conforms() {
    let c = contract().await;
    ok(
        "CreateProject",
        c.client.create_project(&NewProject::named("minimal")).await,
    );
    let full = NewProject {
        description: Some("Defect classifier for line 3".into()),
        domain_id: Some("0732100f-1a38-4e49-a514-c9b44c697ab5".parse().unwrap()),
        classification_type: Some(Classifier::Multilabel),
        target_export_platforms: vec![
            ExportPlatform::CoreMl,
            ExportPlatform::TensorFlow,
            ExportPlatform::DockerFile,
            ExportPlatform::Onnx,
            ExportPlatform::Vaidk,
        ],
        // Extension parameters: not in the spec, so Prism lets them through unchecked.
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
        ..NewProject::named("parts inspection & more")
    };
    ok("CreateProject", c.client.create_project(&full).await);
    c.assert_conforms("CreateProject", 2);
}

#[tokio::test]
async fn get_iteration_conforms() {
    let c = contract().await;
    let (p, i) = ids();
    ok("GetIteration", c.client.get_iteration(p, i).await);
    c.assert_conforms("GetIteration", 1);
}

#[tokio::test]
async fn get_iteration_performance_conforms() {
    let c = contract().await;
    let (p, i) = ids();
    let op = "GetIterationPerformance";
    ok(
        op,
        c.client.get_iteration_performance(p, i, None, None).await,
    );
    ok(
        op,
        c.client
            .get_iteration_performance(p, i, Some(0.5), Some(0.3))
            .await,
    );
    ok(
        op,
        c.client
            .get_iteration_performance(p, i, Some(0.125), None)
            .await,
    );
    c.assert_conforms(op, 3);
}

#[tokio::test]
async fn export_iteration_conforms() {
    let c = contract().await;
    let (p, i) = ids();
    let cases = [
        (ExportPlatform::CoreMl, None),
        (ExportPlatform::TensorFlow, None),
        (
            ExportPlatform::TensorFlow,
            Some(ExportFlavor::TensorFlowNormal),
        ),
        (
            ExportPlatform::TensorFlow,
            Some(ExportFlavor::TensorFlowLite),
        ),
        (ExportPlatform::DockerFile, Some(ExportFlavor::Linux)),
        (ExportPlatform::DockerFile, Some(ExportFlavor::Windows)),
        (ExportPlatform::DockerFile, Some(ExportFlavor::Arm)),
        (ExportPlatform::Onnx, Some(ExportFlavor::Onnx10)),
        (ExportPlatform::Onnx, Some(ExportFlavor::Onnx12)),
        (ExportPlatform::Vaidk, None),
    ];
    for (platform, flavor) in cases {
        ok(
            "ExportIteration",
            c.client.export_iteration(p, i, platform, flavor).await,
        );
    }
    c.assert_conforms("ExportIteration", cases.len());
}

#[tokio::test]
async fn get_exports_conforms() {
    let c = contract().await;
    let (p, i) = ids();
    ok("GetExports", c.client.get_exports(p, i).await);
    c.assert_conforms("GetExports", 1);
}

#[tokio::test]
async fn publish_iteration_conforms() {
    let c = contract().await;
    let (p, i) = ids();
    let published = ok(
        "PublishIteration",
        c.client
            .publish_iteration(p, i, "production model", PREDICTION_ID)
            .await,
    );
    assert!(published, "Prism generates `true` for the boolean answer");
    c.assert_conforms("PublishIteration", 1);
}

/// The checks above can fail: Prism does reject what the contract forbids, and the client
/// surfaces it as a service error.
#[tokio::test]
async fn prism_rejects_what_the_contract_forbids() {
    let c = contract().await;
    let (p, i) = ids();
    // OpenVino is a later platform, not in the v3.3 enum.
    let err = c
        .client
        .export_iteration(p, i, ExportPlatform::OpenVino, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert!(!err.is_transient());

    // The spec's only scheme is the key: Prism answers a bearer token 401.
    #[derive(Debug)]
    struct Token;
    #[async_trait::async_trait]
    impl azure_core::credentials::TokenCredential for Token {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Ok(azure_core::credentials::AccessToken::new(
                "t",
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }
    let bearer = TrainingClient::new(
        customvision_events::http_client(),
        &c.recorder.endpoint(),
        TrainingAuth::EntraId(Arc::new(Token)),
    )
    .unwrap()
    .with_retry_policy(one_attempt());
    let err = bearer.get_project(p).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");

    // A raw request with a non-GUID id and no required query parameter.
    let raw = customvision_events::http_client()
        .client()
        .unwrap()
        .post(format!(
            "{}customvision/v3.3/training/projects/not-a-guid/iterations/{ITERATION}/publish",
            c.recorder.endpoint()
        ))
        .header("Training-Key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 422);

    let exchanges = c.recorder.exchanges();
    assert_eq!(exchanges.len(), 3);
    assert!(
        exchanges.iter().all(|e| e.violations.is_some()),
        "{exchanges:#?}"
    );
    assert!(exchanges[0]
        .violations
        .as_deref()
        .unwrap()
        .contains("platform"));
}

// ---------------------------------------------------------------------------------------------
// `cvctl integrate`, the binary, through the same recorder

/// Runs `cvctl integrate` against Prism (through the recorder), with the repository's settings.
async fn cvctl_integrate(c: &Contract, args: &[&str]) -> std::process::Output {
    let endpoint = c.recorder.endpoint().to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cvctl"))
            .arg("--root")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(["--set", &format!("CUSTOM_VISION_ENDPOINT={endpoint}")])
            .args(["--set", "CUSTOM_VISION_TRAINING_KEY=contract-test-key"])
            .arg("integrate")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

const QUEUE_URI: &str = "https://stcvevents.queue.core.windows.net/customvision-notifications";
const CONTAINER_URI: &str = "https://stcvevents.blob.core.windows.net/customvision-backups";

#[tokio::test]
async fn cvctl_integrate_an_existing_project_conforms() {
    let c = contract().await;
    let out = cvctl_integrate(
        &c,
        &[
            "--project",
            PROJECT,
            "--queue-uri",
            QUEUE_URI,
            "--container-uri",
            CONTAINER_URI,
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("notificationQueueUri   : (none) → {QUEUE_URI}")),
        "{stdout}"
    );
    // GetProject, then UpdateProject: both as the contract has them.
    c.assert_conforms("cvctl integrate --project", 2);
}

#[tokio::test]
async fn cvctl_integrate_a_new_project_conforms() {
    let c = contract().await;
    let out = cvctl_integrate(
        &c,
        &[
            "--create",
            "parts-inspection",
            "--queue-uri",
            QUEUE_URI,
            "--container-uri",
            CONTAINER_URI,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.assert_conforms("cvctl integrate --create", 1);
    let sent = &c.recorder.exchanges()[0].path_and_query;
    assert!(
        sent.contains("notificationQueueUri=") && sent.contains("exportModelContainerUri="),
        "{sent}"
    );
}

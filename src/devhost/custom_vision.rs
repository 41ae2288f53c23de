//! A local stand-in for the Custom Vision Training API v3.3, as Azurite stands in for storage:
//! a real HTTP/1.1 server on `127.0.0.1:0` that answers like the service (bodies written from
//! the spec's schemas, `../shared/specs/customvision-training-v3.3.json`, in the shapes of the
//! service's recorded sessions) and records every request. The tests use it as the behaviour
//! fixture of the Training API (its answers, canned or realistic); `cvctl demo` uses it as the
//! service a training and its exports come from.
//!
//! Like the real service (and unlike `warp::test`): connections are kept alive, bodies may be
//! chunked or have a length, and a request without the right `Training-Key` (or, when allowed,
//! a bearer token) is answered 401 by the "gateway" before any route runs. Per route, canned
//! answers are served from a queue first, then from the route's default, then from a
//! realistic answer built from the request and from what the service remembers: the
//! iterations trained ([`CustomVisionFixture::train`]), the exports asked for (and, once
//! [`CustomVisionFixture::finish_exports`] says so, done), the name an iteration is published
//! under. Every request the client makes is checked against the contract itself by Prism
//! (`tests/training_contract.rs`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

/// The key the fixture accepts.
pub const FIXTURE_KEY: &str = "fixture-training-key-7c1d5b0e";

/// The gateway's answer to a missing, wrong or expired key, as Custom Vision endpoints give it
/// (the Cognitive Services APIM shape: `statusCode` and `message`, no `code`).
pub const INVALID_KEY_MESSAGE: &str = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    GetProject,
    UpdateProject,
    CreateProject,
    GetIterations,
    GetIteration,
    GetIterationPerformance,
    ExportIteration,
    GetExports,
    PublishIteration,
}

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    /// A `CustomVisionError`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, json!({"code": code, "message": message}))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The gateway's 401 for a bad key.
    pub fn invalid_key() -> Self {
        Self::json(
            401,
            json!({"statusCode": 401, "message": INVALID_KEY_MESSAGE}),
        )
    }

    /// The gateway's throttling answer (APIM shape) with `Retry-After`.
    pub fn throttled(retry_after: &str) -> Self {
        Self::json(
            429,
            json!({"statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {retry_after} seconds.")}),
        )
        .with_header("Retry-After", retry_after)
    }

    pub fn server_error() -> Self {
        Self::error(500, "ErrorUnknown", "An unknown error occurred.")
    }

    /// A second ExportIteration of the same iteration and platform.
    pub fn export_already_queued(iteration: &str) -> Self {
        Self::error(
            400,
            "BadRequestExportAlreadyInProgress",
            &format!("{iteration} is already queued for export"),
        )
    }

    pub fn export_while_training() -> Self {
        Self::error(
            400,
            "BadRequestExportWhileTraining",
            "Cannot export while the iteration is training.",
        )
    }

    /// PublishIteration for an iteration already published (under that name).
    pub fn already_published() -> Self {
        Self::error(
            400,
            "BadRequestIterationIsPublished",
            "The iteration is already published.",
        )
    }
}

/// What the fixture saw. The key's and the token's values are replaced by `REDACTED`.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub route: Option<Route>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The connection it came on, numbered from 0: equal numbers mean a kept-alive connection.
    pub connection: usize,
    /// When the fixture read it: the order of arrivals and the gap between them (a retry that
    /// honours `Retry-After`), seen from the service's side.
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query pairs, percent- and `+`-decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    }

    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    queued: HashMap<Route, VecDeque<Canned>>,
    defaults: HashMap<Route, Canned>,
    requests: Vec<Recorded>,
    connections: usize,
    accept_bearer: bool,
    /// What the service remembers between calls, per (project, iteration): the exports asked
    /// for, and the name an iteration is published under.
    exports: HashMap<(String, String), Vec<Value>>,
    published: HashMap<(String, String), String>,
    /// A project's iterations, as GetIterations lists them and GetIteration answers them.
    iterations: HashMap<String, Vec<Value>>,
    /// When set, an export finishes between two GetExports: listed `Exporting` once, then
    /// `Done` with the download URI this names for (project, iteration, platform).
    finisher: Option<Finisher>,
    trained: HashMap<(String, String), Trained>,
}

/// An iteration the stand-in has trained: what GetIteration and GetIterationPerformance
/// answer for it (without one, the answers of [`bodies`]).
#[derive(Debug, Clone)]
pub struct Trained {
    pub name: String,
    /// ISO 8601 UTC, as the service writes it (`2026-11-28T16:40:50.102Z`).
    pub trained_at: String,
    /// An `IterationPerformance` body ([`bodies::performance_of`]).
    pub performance: Value,
}

type Finisher = Arc<dyn Fn(&str, &str, &str) -> String + Send + Sync>;

pub struct CustomVisionFixture {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for CustomVisionFixture {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks (a JoinSet), so this ends them too.
        self.task.abort();
    }
}

impl CustomVisionFixture {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port>/`, what `CUSTOM_VISION_ENDPOINT` would hold.
    pub fn endpoint(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("a socket address makes a URL")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `canned` once, after those already queued for the route.
    pub fn push(&self, route: Route, canned: Canned) {
        self.lock()
            .queued
            .entry(route)
            .or_default()
            .push_back(canned);
    }

    /// Serves `canned` whenever the route's queue is empty.
    pub fn set_default(&self, route: Route, canned: Canned) {
        self.lock().defaults.insert(route, canned);
    }

    /// An iteration of `project` (an [`bodies::iteration`] body, changed as the test needs):
    /// listed by GetIterations, answered by GetIteration.
    pub fn add_iteration(&self, project: &str, iteration: Value) {
        self.lock()
            .iterations
            .entry(project.to_string())
            .or_default()
            .push(iteration);
    }

    /// An export the service already has for the iteration (a [`bodies::export`] body).
    pub fn add_export(&self, project: &str, iteration: &str, export: Value) {
        self.lock()
            .exports
            .entry((project.to_string(), iteration.to_string()))
            .or_default()
            .push(export);
    }

    /// From now on an export finishes once GetExports has listed it as `Exporting`: the next
    /// listing has it `Done`, with `download_uri(project, iteration, platform)`.
    pub fn finish_exports_with(
        &self,
        download_uri: impl Fn(&str, &str, &str) -> String + Send + Sync + 'static,
    ) {
        self.lock().finisher = Some(Arc::new(download_uri));
    }

    /// Accept `Authorization: Bearer ...` as well as the key (any token: the fixture does not
    /// validate Entra ID tokens).
    pub fn accept_bearer(&self) {
        self.lock().accept_bearer = true;
    }

    /// The service has trained `iteration` of `project`: GetIteration and
    /// GetIterationPerformance answer with its name, time and figures from now on.
    pub fn train(&self, project: &str, iteration: &str, trained: Trained) {
        self.lock()
            .trained
            .insert((project.to_string(), iteration.to_string()), trained);
    }

    /// The service has finished the exports asked for `iteration`: GetExports lists them
    /// `Done`, with a download URI. Returns the (platform, flavor) of each one finished now,
    /// whose model and Export notification the caller then writes, as the service does.
    pub fn finish_exports(&self, project: &str, iteration: &str) -> Vec<(String, Option<String>)> {
        let mut s = self.lock();
        let Some(exports) = s
            .exports
            .get_mut(&(project.to_string(), iteration.to_string()))
        else {
            return Vec::new();
        };
        let mut finished = Vec::new();
        for e in exports
            .iter_mut()
            .filter(|e| e["status"] == json!("Exporting"))
        {
            let platform = e["platform"].as_str().unwrap_or_default().to_string();
            let done = bodies::export(&platform, "Done");
            e["status"] = json!("Done");
            e["downloadUri"] = done["downloadUri"].clone();
            finished.push((platform, e["flavor"].as_str().map(str::to_string)));
        }
        finished
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn requests_to(&self, route: Route) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.route == Some(route))
            .cloned()
            .collect()
    }

    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let connection = {
            let mut s = lock(&state);
            s.connections += 1;
            s.connections - 1
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone(), connection));
            // hyper's HTTP/1.1 server: keep-alive on, chunked and sized bodies both decoded.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow for the fixture's life.
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    connection: usize,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let route = route_of(&method, &path);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let key_ok = header("training-key") == Some(FIXTURE_KEY);
    let bearer = header("authorization").is_some_and(|v| {
        v.strip_prefix("Bearer ")
            .is_some_and(|t| !t.trim().is_empty())
    });
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let value = if k == "training-key" || k == "authorization" {
                "REDACTED".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (k.as_str().to_string(), value)
        })
        .collect();
    let recorded = Recorded {
        route,
        method,
        path: path.clone(),
        query: query.clone(),
        headers,
        body: body.to_vec(),
        connection,
        at: std::time::Instant::now(),
    };
    let canned = {
        let mut s = lock(&state);
        s.requests.push(recorded.clone());
        let authorised = key_ok || (s.accept_bearer && bearer);
        match route {
            _ if !authorised => Canned::invalid_key(),
            None => Canned::error(404, "NotFound", "Resource not found."),
            Some(r) => match s.queued.get_mut(&r).and_then(VecDeque::pop_front) {
                Some(c) => c,
                None => match s.defaults.get(&r) {
                    Some(c) => c.clone(),
                    None => without_nulls(realistic(r, &recorded, &mut s)),
                },
            },
        }
    };
    let mut response = Response::builder()
        .status(canned.status)
        .header("content-type", "application/json; charset=utf-8")
        .header("apim-request-id", uuid::Uuid::new_v4().to_string());
    for (k, v) in &canned.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    // A canned status or header that HTTP cannot carry is the test's mistake: a 500 says so.
    Ok(response
        .body(Full::new(Bytes::from(canned.body)))
        .unwrap_or_else(|e| {
            let mut r = Response::new(Full::new(Bytes::from(format!("fixture: {e}"))));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }))
}

/// The state, even after a panic elsewhere held the lock (it is plain data).
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The route of `{method} /customvision/v3.3/training/...`, matched segment by segment.
fn route_of(method: &str, path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/customvision/v3.3/training/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["projects"]) => Some(Route::CreateProject),
        ("GET", ["projects", _]) => Some(Route::GetProject),
        ("GET", ["projects", _, "iterations"]) => Some(Route::GetIterations),
        ("PATCH", ["projects", _]) => Some(Route::UpdateProject),
        ("GET", ["projects", _, "iterations", _]) => Some(Route::GetIteration),
        ("GET", ["projects", _, "iterations", _, "performance"]) => {
            Some(Route::GetIterationPerformance)
        }
        ("POST", ["projects", _, "iterations", _, "export"]) => Some(Route::ExportIteration),
        ("GET", ["projects", _, "iterations", _, "export"]) => Some(Route::GetExports),
        ("POST", ["projects", _, "iterations", _, "publish"]) => Some(Route::PublishIteration),
        _ => None,
    }
}

/// The service writes `null` for a string it has no value for (`thumbnailUri`, `publishName`,
/// `downloadUri`: the SDK's recorded sessions); the contract (swagger 2.0, no `x-nullable`)
/// types those members as strings and leaves them optional. The stand-in's own answers leave
/// them out, which both allow (Prism in proxy mode checks it: `tests/suite/e2e/stand_in.rs`); a
/// canned answer goes out as written, nulls and all, for the tests that decode them.
fn without_nulls(mut canned: Canned) -> Canned {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(members) => {
                members.retain(|_, m| !m.is_null());
                members.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if let Ok(mut body) = serde_json::from_str::<Value>(&canned.body) {
        strip(&mut body);
        canned.body = body.to_string();
    }
    canned
}

/// The answer the service would give, built from the request's ids and parameters and from
/// what earlier calls did: an export asked for is listed by GetExports, and asked for again
/// answers "already queued"; a published iteration has its `publishName`, and publishing it
/// again is refused.
fn realistic(route: Route, req: &Recorded, state: &mut State) -> Canned {
    let segments: Vec<&str> = req.path.split('/').collect();
    // ["", "customvision", "v3.3", "training", "projects", P, "iterations", I, ...]
    let project = segments.get(5).copied().unwrap_or(bodies::PROJECT_ID);
    let iteration = segments.get(7).copied().unwrap_or(bodies::ITERATION_ID);
    match route {
        Route::GetProject => Canned::ok(bodies::project(project)),
        Route::UpdateProject => {
            let mut answer = bodies::project(project);
            if let (Some(answer), Value::Object(sent)) = (answer.as_object_mut(), req.json()) {
                for (k, v) in sent {
                    answer.insert(k, v);
                }
            }
            Canned::ok(answer)
        }
        Route::CreateProject => {
            let mut answer = bodies::project(&uuid::Uuid::new_v4().to_string());
            answer["name"] = json!(req.query_value("name"));
            // The contract requires a description (a string): none given is an empty one.
            answer["description"] = json!(req.query_value("description").unwrap_or_default());
            for key in ["exportModelContainerUri", "notificationQueueUri"] {
                if let Some(v) = req.query_value(key) {
                    answer["settings"][key] = json!(v);
                }
            }
            Canned::ok(answer)
        }
        Route::GetIterations => Canned::ok(json!(state
            .iterations
            .get(project)
            .cloned()
            .unwrap_or_default())),
        Route::GetIteration => {
            let known = state
                .iterations
                .get(project)
                .and_then(|list| list.iter().find(|i| i["id"] == json!(iteration)));
            let mut body = match known {
                Some(i) => i.clone(),
                None => bodies::iteration(project, iteration, "Completed"),
            };
            if let Some(t) = state
                .trained
                .get(&(project.to_string(), iteration.to_string()))
            {
                body["name"] = json!(t.name);
                body["trainedAt"] = json!(t.trained_at);
                body["lastModified"] = json!(t.trained_at);
            }
            if let Some(name) = state
                .published
                .get(&(project.to_string(), iteration.to_string()))
            {
                body["publishName"] = json!(name);
                body["originalPublishResourceId"] = json!(bodies::PREDICTION_ID);
            }
            Canned::ok(body)
        }
        Route::GetIterationPerformance => Canned::ok(
            state
                .trained
                .get(&(project.to_string(), iteration.to_string()))
                .map(|t| t.performance.clone())
                .unwrap_or_else(bodies::performance),
        ),
        Route::ExportIteration => {
            let platform = req.query_value("platform").unwrap_or_default();
            let flavor = req.query_value("flavor");
            let key = (project.to_string(), iteration.to_string());
            let exports = state.exports.entry(key).or_default();
            let queued = exports.iter().any(|e| {
                e["platform"] == json!(platform)
                    && e["flavor"] == json!(flavor)
                    && e["status"] != json!("Failed")
            });
            if queued {
                return Canned::export_already_queued(iteration);
            }
            let export = json!({
                "platform": platform, "status": "Exporting", "downloadUri": null,
                "flavor": flavor, "newerVersionAvailable": false
            });
            exports.push(export.clone());
            Canned::ok(export)
        }
        Route::GetExports => {
            let key = (project.to_string(), iteration.to_string());
            let listed = state.exports.get(&key).cloned().unwrap_or_default();
            // Listed as they are now; finished, if a finisher is set, for the next listing.
            if let (Some(finish), Some(exports)) =
                (state.finisher.clone(), state.exports.get_mut(&key))
            {
                for e in exports
                    .iter_mut()
                    .filter(|e| e["status"] == json!("Exporting"))
                {
                    let platform = e["platform"].as_str().unwrap_or_default().to_string();
                    e["status"] = json!("Done");
                    e["downloadUri"] = json!(finish(project, iteration, &platform));
                }
            }
            Canned::ok(json!(listed))
        }
        Route::PublishIteration => {
            let key = (project.to_string(), iteration.to_string());
            if state.published.contains_key(&key) {
                return Canned::already_published();
            }
            state
                .published
                .insert(key, req.query_value("publishName").unwrap_or_default());
            Canned::ok(json!(true))
        }
    }
}

/// Bodies in the shapes the service answers (from the spec's schemas and the service's
/// recorded sessions): hyphenated lower-case GUIDs, ISO 8601 UTC times with milliseconds,
/// fractions in [0, 1].
pub mod bodies {
    use serde_json::{json, Value};

    pub const PROJECT_ID: &str = "b6dd673c-be9e-4911-b2f6-02237b2d4872";
    pub const ITERATION_ID: &str = "f8b5c43d-205c-4596-ba19-8ee3bf1ffd20";
    pub const DOMAIN_ID: &str = "0732100f-1a38-4e49-a514-c9b44c697ab5";
    pub const PREDICTION_ID: &str = "/subscriptions/6c3c7a0e-5b8f-4f55-9a43-0e4a1c2f7d11/resourceGroups/rg-vision/providers/Microsoft.CognitiveServices/accounts/cv-vision-prediction";

    /// A project wired to storage, with settings this client does not model (kept on update).
    pub fn project(id: &str) -> Value {
        json!({
            "id": id,
            "name": "parts-inspection",
            "description": "Defect classifier for line 3",
            "settings": {
                "domainId": DOMAIN_ID,
                "classificationType": "Multiclass",
                "targetExportPlatforms": ["ONNX", "DockerFile"],
                "useNegativeSet": true,
                "detectionParameters": null,
                "imageProcessingSettings": {"augmentationMethods": {
                    "rotation": true, "scaling": true, "translation": true, "horizontal flip": true,
                    "equalize": true, "solarize": true, "padtosquare": true
                }},
                "exportModelContainerUri": "https://stcvevents.blob.core.windows.net/customvision-backups",
                "notificationQueueUri": "https://stcvevents.queue.core.windows.net/customvision-notifications"
            },
            "created": "2026-10-02T09:14:03.517Z",
            "lastModified": "2026-11-28T16:40:51.093Z",
            "thumbnailUri": null,
            "drModeEnabled": false,
            "status": "Succeeded"
        })
    }

    /// An iteration; `status` is `Completed`, `Training`, `New` or `Failed`.
    pub fn iteration(project: &str, iteration: &str, status: &str) -> Value {
        let done = status == "Completed";
        json!({
            "id": iteration,
            "name": "Iteration 4",
            "status": status,
            "created": "2026-11-28T16:31:12.240Z",
            "lastModified": "2026-11-28T16:40:50.870Z",
            "trainedAt": if done { json!("2026-11-28T16:40:50.102Z") } else { Value::Null },
            "projectId": project,
            "exportable": done,
            "exportableTo": if done { json!(["CoreML", "DockerFile", "ONNX", "TensorFlow", "VAIDK"]) } else { Value::Null },
            "domainId": if done { json!(DOMAIN_ID) } else { Value::Null },
            "classificationType": "Multiclass",
            "trainingType": "Regular",
            "reservedBudgetInHours": 0,
            "trainingTimeInMinutes": 9,
            "publishName": null,
            "originalPublishResourceId": null
        })
    }

    pub fn performance() -> Value {
        json!({
            "perTagPerformance": [
                {"id": "db3d0205-8822-433b-8736-2233cf27fd8f", "name": "scratch",
                 "precision": 0.9375, "precisionStdDeviation": 0.0213, "recall": 0.8823529,
                 "recallStdDeviation": 0.0311, "averagePrecision": 0.9512},
                {"id": "dd3ba379-3cc0-4f97-a04c-60f8e5e4873c", "name": "dent",
                 "precision": 0.8571429, "precisionStdDeviation": 0.0402, "recall": 0.75,
                 "recallStdDeviation": 0.0518, "averagePrecision": 0.8833},
                {"id": "4b1e6d2a-7c0f-4f43-9d85-3f0c2e6a9b17", "name": "ok",
                 "precision": 0.98, "precisionStdDeviation": 0.0094, "recall": 0.99,
                 "recallStdDeviation": 0.0071, "averagePrecision": 0.9967}
            ],
            "precision": 0.9302326,
            "precisionStdDeviation": 0.0189,
            "recall": 0.8888889,
            "recallStdDeviation": 0.0247,
            "averagePrecision": 0.9437
        })
    }

    /// An `IterationPerformance` with these overall figures, its three tags around them.
    pub fn performance_of(precision: f64, recall: f64, average_precision: f64) -> Value {
        let tag = |id: &str, name: &str, dp: f64, dr: f64| {
            json!({"id": id, "name": name,
                   "precision": (precision + dp).clamp(0.0, 1.0), "precisionStdDeviation": 0.02,
                   "recall": (recall + dr).clamp(0.0, 1.0), "recallStdDeviation": 0.03,
                   "averagePrecision": (average_precision + (dp + dr) / 2.0).clamp(0.0, 1.0)})
        };
        json!({
            "perTagPerformance": [
                tag("db3d0205-8822-433b-8736-2233cf27fd8f", "scratch", 0.01, -0.01),
                tag("dd3ba379-3cc0-4f97-a04c-60f8e5e4873c", "dent", -0.07, -0.12),
                tag("4b1e6d2a-7c0f-4f43-9d85-3f0c2e6a9b17", "ok", 0.05, 0.1)
            ],
            "precision": precision,
            "precisionStdDeviation": 0.0189,
            "recall": recall,
            "recallStdDeviation": 0.0247,
            "averagePrecision": average_precision
        })
    }

    /// One GetExports entry; `Done` carries a download SAS (the signature is a fake).
    pub fn export(platform: &str, status: &str) -> Value {
        let download = (status == "Done").then(|| format!(
            "https://irisprodeuwtrain.blob.core.windows.net/m-b6dd673cbe9e4911b2f602237b2d4872/f8b5c43d205c4596ba198ee3bf1ffd20.{platform}.zip?sv=2020-04-08&sr=b&sig=FAKE-FIXTURE-SIGNATURE&se=2026-12-02T16%3A41%3A02Z&sp=r"
        ));
        json!({
            "platform": platform,
            "status": status,
            "downloadUri": download,
            "flavor": null,
            "newerVersionAvailable": false
        })
    }
}

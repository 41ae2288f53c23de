//! Fakes of the two sinks, real HTTP servers on loopback, enforcing their counterparts'
//! documented contracts.
//!
//! [`FakeTopic`]: an Event Grid custom topic with the CloudEvents 1.0 input schema.
//! - `POST /api/events?api-version=2018-01-01`
//!   (<https://learn.microsoft.com/azure/event-grid/post-to-custom-topic>);
//! - auth: `aeg-sas-key: <key>`, or `Authorization: Bearer <token>` (Entra ID; here a token
//!   the test names), else 401
//!   (<https://learn.microsoft.com/azure/event-grid/authenticate-with-access-keys-shared-access-signatures>,
//!   <https://learn.microsoft.com/azure/event-grid/authenticate-with-microsoft-entra-id>);
//! - `Content-Type: application/cloudevents-batch+json` (a parameter may follow), else 400
//!   (<https://learn.microsoft.com/azure/event-grid/cloud-event-schema>);
//! - the body a JSON array of events, each with the required CloudEvents attributes
//!   `specversion` = `1.0`, `id`, `source`, `type`, non-empty strings
//!   (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md#required-attributes>),
//!   else 400;
//! - an event over 1 MB, or a request over 1 MB, is 413
//!   (<https://learn.microsoft.com/azure/event-grid/quotas-limits>);
//! - scriptable: the next answers (429, 503, 401, 400…) before the contract is judged.
//!
//! [`WebhookReceiver`]: a Standard Webhooks receiver
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! `webhook-id`, `webhook-timestamp` (within 5 minutes of now) and `webhook-signature`
//! headers; at least one `v1,` signature verifies with one of the receiver's secrets, else 401.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;
use sha2::Sha256;

use super::http1;

/// Event Grid's limit on one event and on one request.
pub const MAX_EVENT_GRID_BYTES: usize = 1024 * 1024;

/// A request the fake saw, whatever it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub status: u16,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived (figures only, never asserted on).
    pub at: std::time::SystemTime,
}

impl Received {
    /// Whether the body holds the event `id` (figures: which request carried it).
    pub fn id_in_body(&self, id: &str) -> bool {
        self.body.windows(id.len()).any(|w| w == id.as_bytes())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<u16>,
    /// Answered to everything while set (a sink down).
    down: Option<u16>,
    seen: Vec<Received>,
    accepted: Vec<Value>,
}

type Judge = Arc<dyn Fn(&Request<()>, &[u8]) -> Result<Vec<Value>, (u16, String)> + Send + Sync>;

/// A server on 127.0.0.1 answering with `judge`, after any scripted answer; stopped when
/// dropped.
struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
    _server: http1::Server,
}

impl Server {
    async fn start(judge: Judge) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let serving = http1::serve(listener, move |_| {
            let (state, judge) = (shared.clone(), judge.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let (state, judge) = (state.clone(), judge.clone());
                async move { Ok::<_, Infallible>(serve(req, &state, &judge).await) }
            })
        });
        Self {
            port: addr.port(),
            state,
            _server: http1::Server::spawn(addr, serving),
        }
    }
}

async fn serve(
    req: Request<Incoming>,
    state: &Mutex<State>,
    judge: &Judge,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let head = Request::from_parts(parts, ());
    let scripted = {
        let mut s = state.lock().unwrap();
        s.script.pop_front().or(s.down)
    };
    let (status, text) = match scripted {
        Some(status) => (
            status,
            format!("{{\"error\":{{\"code\":\"Scripted{status}\"}}}}"),
        ),
        None => match judge(&head, &body) {
            Ok(events) => {
                state.lock().unwrap().accepted.extend(events);
                (200, String::new())
            }
            Err((status, reason)) => (
                status,
                serde_json::json!({"error": {"code": "BadRequest", "message": reason}}).to_string(),
            ),
        },
    };
    state.lock().unwrap().seen.push(Received {
        status,
        path_and_query: head
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: head
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body,
        at: std::time::SystemTime::now(),
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}

macro_rules! scripting {
    () => {
        /// The next answers, in order, before the contract is judged again.
        pub fn script(&self, statuses: &[u16]) {
            self.server.state.lock().unwrap().script.extend(statuses);
        }

        /// Every request seen, whatever it was answered.
        pub fn requests(&self) -> Vec<Received> {
            self.server.state.lock().unwrap().seen.clone()
        }

        /// The events accepted (answered 2xx), in arrival order.
        pub fn accepted(&self) -> Vec<Value> {
            self.server.state.lock().unwrap().accepted.clone()
        }
    };
}

pub struct FakeTopic {
    server: Server,
}

impl FakeTopic {
    pub async fn start(key: &str, token: &str) -> Self {
        Self::start_with(key, token, true).await
    }

    /// `captured`: false for a topic that receives what is not ours (the SDK's own event).
    pub async fn start_with(key: &str, token: &str, captured: bool) -> Self {
        let (k, t) = (key.to_string(), token.to_string());
        let judge: Judge = Arc::new(move |req, body| {
            let events = judge_topic(req, body, &k, &t)?;
            if captured {
                capture("eventgrid", req, body, &[]);
            }
            Ok(events)
        });
        Self {
            server: Server::start(judge).await,
        }
    }

    /// `CV_EVENTGRID__topicEndpointUri`: the topic's endpoint as the portal shows it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/api/events", self.server.port)
    }

    /// Answers `status` to everything until [`Self::up`]: the topic down.
    pub fn down(&self, status: u16) {
        self.server.state.lock().unwrap().down = Some(status);
    }

    pub fn up(&self) {
        self.server.state.lock().unwrap().down = None;
    }

    scripting!();
}

fn judge_topic(
    req: &Request<()>,
    body: &[u8],
    key: &str,
    token: &str,
) -> Result<Vec<Value>, (u16, String)> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if req.method() != hyper::Method::POST || req.uri().path() != "/api/events" {
        return Err((404, "POST /api/events only".into()));
    }
    let query = req.uri().query().unwrap_or_default();
    if !query.split('&').any(|p| p == "api-version=2018-01-01") {
        return Err((400, "api-version=2018-01-01 is required".into()));
    }
    let bearer = format!("Bearer {token}");
    let authorised =
        header("aeg-sas-key") == Some(key) || header("authorization") == Some(bearer.as_str());
    if !authorised {
        return Err((401, "no valid aeg-sas-key or bearer token".into()));
    }
    let content_type = header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/cloudevents-batch+json") {
        return Err((
            400,
            format!("content type '{content_type}' is not application/cloudevents-batch+json"),
        ));
    }
    if body.len() > MAX_EVENT_GRID_BYTES {
        return Err((413, "the request is over 1 MB".into()));
    }
    let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(body) else {
        return Err((400, "the body is not a JSON array".into()));
    };
    if events.is_empty() {
        return Err((400, "the array is empty".into()));
    }
    for event in &events {
        if event.to_string().len() > MAX_EVENT_GRID_BYTES {
            return Err((413, "an event is over 1 MB".into()));
        }
        required_attributes(event).map_err(|r| (400, r))?;
    }
    Ok(events)
}

/// With `CV_EVENTS_CAPTURE_DIR` set (`make events-check`), each accepted request is written
/// there for the independent parsers (tests/events/verify.py), with the secrets the receiver
/// verified with.
fn capture(sink: &str, req: &Request<()>, body: &[u8], secrets: &[String]) {
    let Some(dir) = std::env::var_os("CV_EVENTS_CAPTURE_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let record = serde_json::json!({
        "sink": sink,
        "headers": headers,
        "body": String::from_utf8_lossy(body),
        "secrets": secrets,
    });
    let name = format!("{sink}-{}.json", uuid::Uuid::new_v4());
    std::fs::write(dir.join(name), record.to_string()).unwrap();
}

/// CloudEvents 1.0's required attributes.
pub fn required_attributes(event: &Value) -> Result<(), String> {
    if event["specversion"] != "1.0" {
        return Err("specversion must be \"1.0\"".into());
    }
    for attr in ["id", "source", "type"] {
        if event[attr].as_str().is_none_or(|s| s.is_empty()) {
            return Err(format!(
                "the required attribute '{attr}' is missing or empty"
            ));
        }
    }
    Ok(())
}

pub struct WebhookReceiver {
    server: Server,
    secrets: Arc<Mutex<Vec<String>>>,
}

impl WebhookReceiver {
    /// A receiver that accepts what verifies with any of `secrets` (`whsec_…`).
    pub async fn start(secrets: &[&str]) -> Self {
        let secrets: Arc<Mutex<Vec<String>>> =
            Arc::new(Mutex::new(secrets.iter().map(|s| s.to_string()).collect()));
        let held = secrets.clone();
        let judge: Judge = Arc::new(move |req, body| {
            let secrets = held.lock().unwrap().clone();
            let events = judge_webhook(req, body, &secrets)?;
            capture("webhook", req, body, &secrets);
            Ok(events)
        });
        Self {
            server: Server::start(judge).await,
            secrets,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.server.port)
    }

    /// The receiver's own rotation: from now on only these secrets verify.
    pub fn accept_only(&self, secrets: &[&str]) {
        *self.secrets.lock().unwrap() = secrets.iter().map(|s| s.to_string()).collect();
    }

    scripting!();
}

fn judge_webhook(
    req: &Request<()>,
    body: &[u8],
    secrets: &[String],
) -> Result<Vec<Value>, (u16, String)> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err((
            400,
            "webhook-id, webhook-timestamp and webhook-signature are required".into(),
        ));
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return Err((400, "webhook-timestamp is not an integer".into()));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts).abs() > 300 {
        return Err((
            401,
            "webhook-timestamp is more than 5 minutes from now".into(),
        ));
    }
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    let verifies = secrets.iter().any(|secret| {
        let Some(key) = secret
            .strip_prefix("whsec_")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(&signed);
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        signature
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .any(|s| s == expected)
    });
    if !verifies {
        return Err((401, "no signature verifies".into()));
    }
    let event: Value =
        serde_json::from_slice(body).map_err(|_| (400, "the body is not JSON".to_string()))?;
    required_attributes(&event).map_err(|r| (400, r))?;
    if event["id"] != id {
        return Err((400, "webhook-id is not the event's id".into()));
    }
    Ok(vec![event])
}

//! A counting reverse proxy between the handler (or `cvctl`) and Azurite's blob service: what
//! it asks of storage, request by request, with each answer's status and body length; and,
//! when asked, an answer cut short mid-body. Requests are forwarded unchanged (the `Host` header
//! too, so Azurite's same-instance check on copy sources still holds).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Clone)]
pub struct Seen {
    /// Which accepted connection carried it.
    pub connection: usize,
    pub method: String,
    pub path_and_query: String,
    pub user_agent: String,
    /// The answer's status and body length as sent on (0 and 0 until it is answered).
    pub status: u16,
    pub response_bytes: usize,
}

/// An answer the proxy gives itself for a path, instead of forwarding: a stand-in for a
/// foreign blob endpoint that redirects or refuses.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

type CannedAnswers = Arc<Mutex<HashMap<String, Canned>>>;

/// A body to cut short: the next answer for a path is sent with its headers and only its
/// first `after` bytes, then nothing more (the connection held open), as a network that dies
/// mid-download looks to the client.
#[derive(Debug, Default)]
struct Stall {
    path: Option<(String, usize)>,
    /// Answers cut short so far.
    reached: usize,
}

pub struct CountingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    canned: CannedAnswers,
    stall: Arc<Mutex<Stall>>,
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let canned: CannedAnswers = Arc::default();
        let answers = canned.clone();
        let stall: Arc<Mutex<Stall>> = Arc::default();
        let stalls = stall.clone();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let log = seen.clone();
        tokio::spawn(super::http1::serve(listener, move |connection| {
            let (client, log, answers, stalls) =
                (client.clone(), log.clone(), answers.clone(), stalls.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let canned = answers.lock().unwrap().get(req.uri().path()).cloned();
                let (client, log, stalls) = (client.clone(), log.clone(), stalls.clone());
                async move {
                    match canned {
                        Some(canned) => {
                            let at = record(&req, &log, connection);
                            let response = answer(canned);
                            log.lock().unwrap()[at].status = response.status().as_u16();
                            Ok(boxed(response))
                        }
                        None => forward(req, client, log, stalls, upstream_port, connection).await,
                    }
                }
            })
        }));
        Self {
            port,
            seen,
            canned,
            stall,
        }
    }

    /// The next answer for `path` (decoded: `/` and spaces as themselves) goes on with its
    /// first `after` body bytes only, then hangs ([`Stall`]).
    pub fn cut_short(&self, path: &str, after: usize) {
        self.stall.lock().unwrap().path = Some((path.to_string(), after));
    }

    /// How many answers were cut short so far.
    pub fn cut(&self) -> usize {
        self.stall.lock().unwrap().reached
    }

    /// From now on, requests for `path` (any query) get this answer, as a server would send
    /// it: a body, its length, the headers given.
    pub fn answer(&self, path: &str, status: u16, headers: &[(&str, &str)]) {
        self.canned.lock().unwrap().insert(
            path.to_string(),
            Canned {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    }

    /// Requests for `path` are forwarded again.
    pub fn clear(&self, path: &str) {
        self.canned.lock().unwrap().remove(path);
    }

    /// Every request the proxy saw, from anyone.
    pub fn all_requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The distinct connections that carried `requests`.
    pub fn connections_of(requests: &[Seen]) -> usize {
        let mut ids: Vec<usize> = requests.iter().map(|r| r.connection).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Requests the handler's SDK made so far (Azurite's own copy-source checks excluded).
    pub fn sdk_requests(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.user_agent.starts_with("azsdk-rust"))
            .cloned()
            .collect()
    }
}

/// Logs the request; returns its place in the log, where its answer is filled in.
fn record<B>(req: &Request<B>, log: &Mutex<Vec<Seen>>, connection: usize) -> usize {
    let mut log = log.lock().unwrap();
    log.push(Seen {
        connection,
        method: req.method().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        user_agent: req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        status: 0,
        response_bytes: 0,
    });
    log.len() - 1
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn boxed(response: Response<Full<Bytes>>) -> Response<Body> {
    response.map(|b| b.boxed())
}

/// A canned answer with an XML error body, as the blob service words its refusals.
fn answer(canned: Canned) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>Canned{}</Code><Message>canned</Message></Error>",
        canned.status
    );
    let mut response = Response::builder()
        .status(canned.status)
        .header("content-type", "application/xml")
        .header("content-length", body.len());
    for (k, v) in &canned.headers {
        response = response.header(k, v);
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

async fn forward(
    req: Request<Incoming>,
    client: Client<HttpConnector, Full<Bytes>>,
    log: Arc<Mutex<Vec<Seen>>>,
    stalls: Arc<Mutex<Stall>>,
    upstream_port: u16,
    connection: usize,
) -> Result<Response<Body>, Infallible> {
    let at = record(&req, &log, connection);
    let (mut parts, body) = req.into_parts();
    // Decoded: the SDK sends a blob name's `/` as `%2F`, a listing's URL as `/`.
    let path = percent_encoding::percent_decode_str(parts.uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    parts.uri = format!("http://127.0.0.1:{upstream_port}{path_and_query}")
        .parse()
        .unwrap();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer = match client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            log.lock().unwrap()[at].status = 502;
            return Ok(boxed(
                Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::from(e.to_string())))
                    .unwrap(),
            ));
        }
    };
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let cut = {
        let mut stall = stalls.lock().unwrap();
        match stall.path.take() {
            Some((p, after)) if p == path && after < body.len() => {
                stall.reached += 1;
                Some(after)
            }
            other => {
                stall.path = other;
                None
            }
        }
    };
    {
        let mut log = log.lock().unwrap();
        log[at].status = parts.status.as_u16();
        log[at].response_bytes = cut.unwrap_or(body.len());
    }
    match cut {
        // The declared length stays: the client waits for bytes that never come.
        Some(after) => {
            let head = futures::stream::once(async move {
                Ok::<_, Infallible>(hyper::body::Frame::data(body.slice(..after)))
            });
            let stream = head.chain(futures::stream::pending());
            Ok(Response::from_parts(
                parts,
                BodyExt::boxed(http_body_util::StreamBody::new(stream)),
            ))
        }
        None => Ok(boxed(Response::from_parts(parts, Full::new(body)))),
    }
}

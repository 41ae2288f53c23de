//! A counting reverse proxy between the handler and Azurite's blob service: what the handler
//! asks of storage, request by request. Requests are forwarded unchanged (the `Host` header
//! too, so Azurite's same-instance check on copy sources still holds).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
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
}

/// An answer the proxy gives itself for a path, instead of forwarding: a stand-in for a
/// foreign blob endpoint that redirects or refuses.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

type CannedAnswers = Arc<Mutex<HashMap<String, Canned>>>;

pub struct CountingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    canned: CannedAnswers,
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let canned: CannedAnswers = Arc::default();
        let answers = canned.clone();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let log = seen.clone();
        tokio::spawn(super::http1::serve(listener, move |connection| {
            let (client, log, answers) = (client.clone(), log.clone(), answers.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let canned = answers.lock().unwrap().get(req.uri().path()).cloned();
                let (client, log) = (client.clone(), log.clone());
                async move {
                    match canned {
                        Some(canned) => {
                            record(&req, &log, connection);
                            Ok(answer(canned))
                        }
                        None => forward(req, client, log, upstream_port, connection).await,
                    }
                }
            })
        }));
        Self { port, seen, canned }
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

fn record<B>(req: &Request<B>, log: &Mutex<Vec<Seen>>, connection: usize) {
    log.lock().unwrap().push(Seen {
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
    });
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
    upstream_port: u16,
    connection: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    record(&req, &log, connection);
    let (mut parts, body) = req.into_parts();
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
            return Ok(Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(e.to_string())))
                .unwrap())
        }
    };
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(Response::from_parts(parts, Full::new(body)))
}

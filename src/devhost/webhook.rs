//! A webhook receiver on loopback, as a team's endpoint would be, for `cvctl demo`: a real
//! HTTP/1.1 server on `127.0.0.1:0` that takes what the app's webhook sink posts and checks
//! it as Standard Webhooks says a receiver should
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>,
//! "Verifying webhook authenticity"): `webhook-id`, `webhook-timestamp` within 5 minutes of now,
//! and a `webhook-signature` that verifies with the secret, by the library's own verifier
//! ([`crate::events::sinks::webhook::verify`]). A delivery that verifies, and whose body is a
//! CloudEvent with the `webhook-id` as its id, is kept and answered 204; any other is counted
//! and answered 400 or 401. (The tests' receiver, `tests/suite/support/events.rs`, verifies
//! with its own HMAC code and the Python `standardwebhooks` library, independently of this one.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::events::sinks::webhook::verify;
use crate::events::CloudEvent;
use crate::settings::Secret;

/// How far a delivery's `webhook-timestamp` may be from now (the spec's suggested tolerance).
const TOLERANCE_SECONDS: i64 = 300;

/// A new `whsec_` secret: 32 random bytes (two v4 UUIDs' worth), base64.
pub fn generate_secret() -> String {
    let bytes = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[derive(Default)]
struct State {
    events: Vec<CloudEvent>,
    refused: usize,
}

pub struct WebhookReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks (a JoinSet), so this ends them too.
        self.task.abort();
    }
}

impl WebhookReceiver {
    /// Listens on `127.0.0.1:0`; accepts what verifies with `secret` (`whsec_…`).
    pub async fn start(secret: &str) -> std::io::Result<Self> {
        let key = Secret::new(secret.strip_prefix("whsec_").unwrap_or(secret));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(accept_loop(listener, key, state.clone()));
        Ok(Self { addr, state, task })
    }

    /// What `CV_WEBHOOK_URL` holds.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The deliveries that verified, in arrival order (a redelivery appears again).
    pub fn events(&self) -> Vec<CloudEvent> {
        lock(&self.state).events.clone()
    }

    /// Deliveries answered 400 or 401.
    pub fn refused(&self) -> usize {
        lock(&self.state).refused
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: TcpListener, key: Secret, state: Arc<Mutex<State>>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (key, state) = (key.clone(), state.clone());
        connections.spawn(async move {
            let service = service_fn(move |req| handle(req, key.clone(), state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    req: Request<Incoming>,
    key: Secret,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let status = match judge(&parts.headers, &body, &key) {
        Ok(event) => {
            lock(&state).events.push(event);
            StatusCode::NO_CONTENT
        }
        Err(status) => {
            lock(&state).refused += 1;
            status
        }
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    Ok(response)
}

fn judge(headers: &hyper::HeaderMap, body: &[u8], key: &Secret) -> Result<CloudEvent, StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err(StatusCode::BAD_REQUEST);
    };
    let at: i64 = timestamp.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - at).abs() > TOLERANCE_SECONDS {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if !verify(std::slice::from_ref(key), id, timestamp, body, signature) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let event: CloudEvent = serde_json::from_slice(body).map_err(|_| StatusCode::BAD_REQUEST)?;
    if event.id != id {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sinks::webhook::signatures;

    #[tokio::test]
    async fn keeps_what_verifies_and_refuses_the_rest() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        let receiver = WebhookReceiver::start(&secret).await.unwrap();
        let key = Secret::new(secret.strip_prefix("whsec_").unwrap());
        let event = CloudEvent::new(
            "https://a/models",
            &crate::events::Fact::Ping { nonce: "n".into() },
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let body = event.to_json();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let shared = crate::http_client();
        let http = shared.client().unwrap();
        let post = |sig: String, ts: i64| {
            http.post(receiver.url())
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body.clone())
                .send()
        };
        let good = signatures(std::slice::from_ref(&key), &event.id, now, &body);
        assert_eq!(post(good.clone(), now).await.unwrap().status(), 204);
        let other = Secret::new(generate_secret().strip_prefix("whsec_").unwrap());
        let bad = signatures(&[other], &event.id, now, &body);
        assert_eq!(post(bad, now).await.unwrap().status(), 401);
        let stale = signatures(&[key], &event.id, now - 600, &body);
        assert_eq!(post(stale, now - 600).await.unwrap().status(), 401);
        assert_eq!(receiver.events(), vec![event]);
        assert_eq!(receiver.refused(), 2);
    }
}

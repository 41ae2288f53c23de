//! The HTTP face the Functions host talks to: `GET /` for its start-up probe, `POST /<Function>`
//! per invocation. Thin: read the body as the host streams it, decode the envelope, call
//! [`App::invoke`], map the result to a status. Every answer, errors included, is JSON with
//! `Content-Type: application/json`.
//!
//! - [`body`]: the chunked body, capped while streaming, with a stall timeout.
//! - [`transport`]: connections (kept alive, header-read timeout) and JSON for hyper's own
//!   parse-error answers.

pub(crate) mod body;
pub(crate) mod transport;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use futures::Stream;
use tokio::net::TcpListener;
use tracing::Instrument;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::envelope::{InvocationRequest, InvocationResponse};
use crate::error_chain::Chain;
use crate::functions::{App, Function, FunctionError};
use crate::redact::redact;
use body::{read_capped, BodyError};

/// Limits and timeouts of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// The largest invocation body. A queue message is at most 64 KiB; the host encodes it
    /// twice in `Data` (up to 7 bytes per character for control characters) and copies its
    /// string properties, quoted, into `Metadata`: about 1 MiB in the worst case.
    pub max_body_bytes: usize,
    /// The request line and headers; the host sends five short headers.
    pub max_header_bytes: usize,
    /// From "ready for the next request" to its complete head: closes half-sent heads and
    /// connections left idle between requests.
    pub header_read_timeout: Duration,
    /// The longest pause inside a request body before the request is given up (408).
    pub body_idle_timeout: Duration,
}

/// Comfortably longer than the longest invocation: host.json's `functionTimeout` (5 min) plus
/// the minute the host adds to its own HTTP timeout, plus a minute. A test checks it against
/// host.json.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(7 * 60);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            header_read_timeout: CONNECTION_TIMEOUT,
            body_idle_timeout: CONNECTION_TIMEOUT,
        }
    }
}

pub fn routes(
    app: Arc<App>,
    config: ServerConfig,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    // Path before method: a path no route has is a 404, a known path with the wrong method
    // a 405.
    let probe = warp::path::end()
        .and(warp::get())
        .map(|| json_reply(StatusCode::OK, &serde_json::json!({"status": "ready"})));
    let invoke = warp::path::param::<String>()
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::header::optional::<String>(
            "x-azure-functions-invocationid",
        ))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(warp::any().map(move || (app.clone(), config)))
        .then(
            |function, invocation_id, declared, body, (app, config): (Arc<App>, ServerConfig)| {
                invoke(function, invocation_id, declared, body, app, config)
            },
        );
    probe.or(invoke).unify().recover(recover).unify()
}

async fn invoke<S, B>(
    function: String,
    invocation_id: Option<String>,
    declared: Option<u64>,
    body: S,
    app: Arc<App>,
    config: ServerConfig,
) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let invocation_id = invocation_id.unwrap_or_default();
    let body = match read_capped(
        body,
        declared,
        config.max_body_bytes,
        config.body_idle_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(e) => {
            let status = match e {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
                BodyError::Broken(_) => StatusCode::BAD_REQUEST,
            };
            return failure(status, &function, &invocation_id, &e);
        }
    };
    let span =
        tracing::info_span!("invocation", function = %function, invocation_id = %invocation_id);
    let result = match InvocationRequest::from_slice(&body) {
        Ok(request) => match function.parse::<Function>() {
            Ok(function) => app.invoke(function, &request).instrument(span).await,
            Err(e) => Err(FunctionError::from(e)),
        },
        Err(e) => Err(FunctionError::from(e)),
    };
    match result {
        Ok(response) => invocation_reply(StatusCode::OK, response),
        Err(error) => {
            let status = match error {
                FunctionError::Envelope(_) => StatusCode::BAD_REQUEST,
                FunctionError::UnknownFunction(_) => StatusCode::NOT_FOUND,
                // Worth a retry (`FunctionError::retry_later`): a non-2xx answer is what makes
                // the host retry.
                FunctionError::Export(_)
                | FunctionError::Automation(_)
                | FunctionError::Storage(_)
                | FunctionError::OutOfBudget { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            failure(status, &function, &invocation_id, &error)
        }
    }
}

/// A non-2xx answer. The host drops `Logs` then, so stdout is where the reason survives, with
/// its chain of causes ([`Chain`]); the reason alone is in the body too, for whoever reads the
/// answer.
fn failure(
    status: StatusCode,
    function: &str,
    invocation_id: &str,
    error: &dyn std::error::Error,
) -> warp::reply::Response {
    let reason = format!("{function}: {error}");
    let chain = Chain(error).to_string();
    tracing::error!(
        function,
        invocation_id,
        status = status.as_u16(),
        "{function}: {chain}"
    );
    invocation_reply(status, InvocationResponse::default().log(reason))
}

fn invocation_reply(status: StatusCode, body: InvocationResponse) -> warp::reply::Response {
    // Logs reach the host's log stream, past our redacting writer: scrub them here.
    let body = InvocationResponse {
        logs: body.logs.iter().map(|l| redact(l)).collect(),
        ..body
    };
    json_reply(status, &body)
}

fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// warp's own rejections (no route, wrong method, a header it could not parse) as JSON.
async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, reason) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such route".to_string())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "GET / or POST /<Function> only".to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else {
        (StatusCode::BAD_REQUEST, format!("{rejection:?}"))
    };
    Ok(invocation_reply(
        status,
        InvocationResponse::default().log(reason),
    ))
}

/// Serves until `shutdown` resolves. The listener is passed in so tests can bind port 0.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let service = hyper_util::service::TowerToHyperService::new(warp::service(routes(app, config)));
    transport::accept_loop(
        listener,
        service,
        config.header_read_timeout,
        config.max_header_bytes,
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests;

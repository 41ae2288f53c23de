//! The HTTP face the Functions host talks to: `GET /` for its start-up probe, `POST /<Function>`
//! per invocation. Thin: decode the envelope, call [`App::invoke`], map the result to a status.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpListener;
use tracing::Instrument;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::envelope::{InvocationRequest, InvocationResponse};
use crate::functions::{App, FunctionError};
use crate::redact::redact;

/// Queue messages are at most 64 KiB; the envelope adds metadata around them.
const MAX_BODY: u64 = 1024 * 1024;

pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let probe = warp::get()
        .and(warp::path::end())
        .map(|| "customvision-events handler");
    let invoke = warp::post()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::header::optional::<String>(
            "x-azure-functions-invocationid",
        ))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(warp::any().map(move || app.clone()))
        .then(invoke);
    probe.or(invoke)
}

async fn invoke(
    function: String,
    invocation_id: Option<String>,
    body: Bytes,
    app: Arc<App>,
) -> Result<warp::reply::Response, Infallible> {
    let invocation_id = invocation_id.unwrap_or_default();
    let span =
        tracing::info_span!("invocation", function = %function, invocation_id = %invocation_id);
    let result = match InvocationRequest::from_slice(&body) {
        Ok(request) => app.invoke(&function, &request).instrument(span).await,
        Err(e) => Err(FunctionError::from(e)),
    };
    let (status, body) = match result {
        Ok(response) => (StatusCode::OK, response),
        Err(error) => {
            let status = match error {
                FunctionError::Envelope(_) => StatusCode::BAD_REQUEST,
                FunctionError::UnknownFunction(_) => StatusCode::NOT_FOUND,
                FunctionError::Transient(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            // The host drops Logs on a non-2xx answer: stdout is where this reason survives.
            let reason = redact(&format!("{function}: {error}"));
            tracing::error!(function = %function, invocation_id = %invocation_id, "{reason}");
            (status, InvocationResponse::default().log(reason))
        }
    };
    let body = InvocationResponse {
        logs: body.logs.iter().map(|l| redact(l)).collect(),
        ..body
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

/// Serves until `shutdown` resolves. The listener is passed in so tests can bind port 0.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(app))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

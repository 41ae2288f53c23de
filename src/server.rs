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
            let reason = format!("{function}: {error}");
            tracing::error!(function = %function, invocation_id = %invocation_id, "{reason}");
            (status, InvocationResponse::default().log(reason))
        }
    };
    // Logs reach the host's log stream, past our redacting writer: scrub them here.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::storage::StorageAccount;
    use serde_json::{json, Value};

    /// Storage on a port nothing listens on: any storage call fails, as in an outage.
    fn app() -> Arc<App> {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            crate::settings::AZURITE_KEY
        );
        let settings = Settings::from_lookup(&|k| (k == "CV_STORAGE").then(|| cs.clone())).unwrap();
        let account = StorageAccount::new(&settings.storage).unwrap();
        Arc::new(App { settings, account })
    }

    async fn post(function: &str, body: &str) -> (StatusCode, Option<String>, Value) {
        let res = warp::test::request()
            .method("POST")
            .path(&format!("/{function}"))
            .header("X-Azure-Functions-InvocationId", "abc")
            .body(body)
            .reply(&routes(app()))
            .await;
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        (
            res.status(),
            content_type,
            serde_json::from_slice(res.body()).unwrap(),
        )
    }

    fn envelope(message: &str) -> String {
        json!({"Data": {"notification": serde_json::to_string(message).unwrap()}, "Metadata": {}})
            .to_string()
    }

    #[tokio::test]
    async fn start_up_probe_answers() {
        let res = warp::test::request()
            .method("GET")
            .path("/")
            .reply(&routes(app()))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_answer_is_json_with_the_contract_keys() {
        let connection_test = crate::seed::CONNECTION_TEST;
        for (function, body, status) in [
            ("Notifications", envelope(connection_test), StatusCode::OK),
            ("Notifications", envelope("garbage"), StatusCode::OK),
            (
                "Notifications",
                "not an envelope".to_string(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "NoSuchFunction",
                envelope(connection_test),
                StatusCode::NOT_FOUND,
            ),
        ] {
            let (got, content_type, json) = post(function, &body).await;
            assert_eq!(got, status, "{function} {body}");
            assert_eq!(content_type.as_deref(), Some("application/json"));
            for key in ["Outputs", "Logs", "ReturnValue"] {
                assert!(json.get(key).is_some(), "{key} missing in {json}");
            }
        }
    }

    #[tokio::test]
    async fn storage_outage_is_a_transient_500() {
        let message = crate::seed::export("https://a.blob.core.windows.net/c/b?sig=SECRET");
        let (status, _, json) = post("ExportCompleted", &envelope(&message)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let reason = json["Logs"][0].as_str().unwrap();
        assert!(reason.contains("list backups failed"), "{reason}");
        assert!(
            !reason.contains("sig=") || reason.contains("sig=REDACTED"),
            "{reason}"
        );
    }
}

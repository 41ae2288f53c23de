//! A fake of the App Service / Azure Functions managed-identity endpoint, a real HTTP server on
//! loopback, for the Event Grid sink's `CV_EVENTGRID__credential=managedidentity` path.
//!
//! What it enforces is what `azure_identity` 1.0.0's `ManagedIdentityCredential` sends when
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (read in the crate source:
//! `azure_identity-1.0.0/src/managed_identity_credential.rs` `get_source` picks App Service
//! when both are set and `IDENTITY_SERVER_THUMBPRINT` is not;
//! `app_service_managed_identity_credential.rs` fixes `api-version=2019-08-01` and the
//! `x-identity-header` header; `imds_managed_identity_credential.rs` `get_token` builds the
//! request and reads the answer), which is App Service's documented REST protocol
//! (<https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference>):
//! - `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<scope without /.default>`, plus
//!   `client_id=<id>` for a user-assigned identity;
//! - header `X-IDENTITY-HEADER: <IDENTITY_HEADER>`, else 401;
//! - a `client_id` that is not one of the app's identities: 400 ("the requested identity has
//!   not been assigned", as the crate reads a 400);
//! - 200 with JSON `access_token`, `expires_on` (Unix seconds as a *string*), `resource`,
//!   `token_type` (`Bearer`) and `client_id`.
//!
//! The token it issues is derived from the resource and the identity, so a topic that
//! accepts only [`FakeIdentity::token_for`]`(eventgrid, id)` proves the audience and the
//! identity the sink asked for.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::http1;

pub const API_VERSION: &str = "2019-08-01";

pub struct FakeIdentity {
    port: u16,
    header: String,
    /// Each request's query, whatever it was answered.
    seen: Arc<Mutex<Vec<String>>>,
    _server: http1::Server,
}

impl FakeIdentity {
    /// An endpoint for an app whose only identity is the user-assigned `client_id`, expecting
    /// `header` as `X-IDENTITY-HEADER`.
    pub async fn start(client_id: &str, header: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (id, secret, log) = (client_id.to_string(), header.to_string(), seen.clone());
        let serving = http1::serve(listener, move |_| {
            let (id, secret, log) = (id.clone(), secret.clone(), log.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let answer = answer(&req, &id, &secret);
                log.lock()
                    .unwrap()
                    .push(req.uri().query().unwrap_or_default().to_string());
                let (status, body) = answer;
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            })
        });
        Self {
            port: addr.port(),
            header: header.to_string(),
            seen,
            _server: http1::Server::spawn(addr, serving),
        }
    }

    /// The settings App Service sets for the app: `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "IDENTITY_ENDPOINT".into(),
                format!("http://127.0.0.1:{}/msi/token", self.port),
            ),
            ("IDENTITY_HEADER".into(), self.header.clone()),
        ]
    }

    /// The token issued for `resource` to identity `client_id`.
    pub fn token_for(resource: &str, client_id: &str) -> String {
        use base64::Engine as _;
        let raw = format!("{resource}|{client_id}");
        format!(
            "fake.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        )
    }

    /// The queries of the token requests seen.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn answer(req: &Request<Incoming>, client_id: &str, secret: &str) -> (u16, String) {
    let error = |status: u16, message: &str| {
        (
            status,
            serde_json::json!({"statusCode": status, "message": message}).to_string(),
        )
    };
    if req.method() != hyper::Method::GET || req.uri().path() != "/msi/token" {
        return error(404, "GET /msi/token only");
    }
    let header = req
        .headers()
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if header != Some(secret) {
        return error(401, "X-IDENTITY-HEADER is missing or wrong");
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("api-version") != Some(API_VERSION) {
        return error(400, "api-version=2019-08-01 is required");
    }
    let Some(resource) = param("resource").filter(|r| !r.is_empty()) else {
        return error(400, "resource is required");
    };
    // The app has one identity, user-assigned: without a client_id there is no
    // system-assigned one to fall back on.
    if param("client_id") != Some(client_id) {
        return error(
            400,
            "the requested identity has not been assigned to this resource",
        );
    }
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    (
        200,
        serde_json::json!({
            "access_token": FakeIdentity::token_for(resource, client_id),
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        })
        .to_string(),
    )
}

//! A behaviour fixture for the ARM requests of `cvctl preflight`: a real HTTP/1.1 server on
//! `127.0.0.1:0` (keep-alive, hyper's server) that answers like Azure Resource Manager, with
//! bodies written from the OpenAPI schemas (Microsoft.Web `FunctionAppStackCollection` and
//! `GeoRegionCollection`, Microsoft.Resources `Provider`, Microsoft.Authorization
//! `PermissionGetResult`, Microsoft.CognitiveServices `ResourceSkuListResult`) and ARM's error
//! shape `{"error": {"code", "message"}}`, and records every request.
//!
//! The "gateway" answers 401 before any route when the bearer token is not [`FIXTURE_TOKEN`]
//! (or when the scenario says the token expired), 400 without `api-version`, 404
//! `SubscriptionNotFound` for another subscription. Canned answers queued with
//! [`ArmFixture::queue`] are served first, whatever the route.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::http1::{serve, Server};

pub const FIXTURE_TOKEN: &str = "fixture-arm-token-3f9a";
pub const SUBSCRIPTION: &str = "6c3c7a0e-5b8f-4f55-9a43-0e4a1c2f7d11";
pub const RESOURCE_GROUP: &str = "rg-vision";

/// What the fixture's subscription looks like. The default passes every check in `eastus`.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Regions (display names, as geoRegions answers) that offer Flex Consumption.
    pub flex_regions: Vec<String>,
    /// Regions (normalised names) whose stacks have `custom` on FC1.
    pub custom_regions: HashSet<String>,
    /// Namespaces and their registrationState; a namespace not named is `Registered`.
    pub providers: HashMap<String, String>,
    /// The permission entries for [`RESOURCE_GROUP`]; other groups do not exist.
    pub permissions: Vec<Value>,
    /// The Cognitive Services SKUs.
    pub skus: Vec<Value>,
    /// The token is expired: every request gets 401 ExpiredAuthenticationToken.
    pub expired: bool,
    /// Split list answers into pages of one item, with `nextLink`.
    pub paged: bool,
}

pub fn owner() -> Value {
    json!({"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []})
}

pub fn contributor() -> Value {
    json!({"actions": ["*"], "notActions": [
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
        "Microsoft.Blueprint/blueprintAssignments/write",
        "Microsoft.Blueprint/blueprintAssignments/delete",
        "Microsoft.Compute/galleries/share/action"
    ], "dataActions": [], "notDataActions": []})
}

pub fn reader() -> Value {
    json!({"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []})
}

/// A `ResourceSku` of `ResourceSkus_List`.
pub fn cv_sku(kind: &str, name: &str, locations: &[&str], restrictions: Value) -> Value {
    json!({
        "resourceType": "accounts",
        "name": name,
        "tier": if name == "F0" { "Free" } else { "Standard" },
        "kind": kind,
        "locations": locations,
        "restrictions": restrictions,
    })
}

pub fn location_restriction(location: &str, reason: &str) -> Value {
    json!([{
        "type": "Location",
        "values": [location],
        "restrictionInfo": {"locations": [location], "zones": []},
        "reasonCode": reason
    }])
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            flex_regions: vec!["East US".into(), "North Europe".into(), "West US 2".into()],
            custom_regions: ["eastus", "northeurope"].map(String::from).into(),
            providers: HashMap::new(),
            permissions: vec![reader(), owner()],
            skus: vec![
                cv_sku("CustomVision.Prediction", "S0", &["EASTUS"], json!([])),
                cv_sku(
                    "CustomVision.Training",
                    "F0",
                    &["EASTUS", "WESTEUROPE"],
                    json!([]),
                ),
                cv_sku(
                    "CustomVision.Training",
                    "S0",
                    &["EASTUS", "WESTEUROPE"],
                    json!([]),
                ),
            ],
            expired: false,
            paged: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: json!({"error": {"code": code, "message": message}}).to_string(),
        }
    }

    /// ARM's throttling answer, with `Retry-After` in seconds.
    pub fn throttled(seconds: u64) -> Self {
        let mut c = Self::error(
            429,
            "TooManyRequests",
            &format!("The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. Please try again after {seconds} seconds."),
        );
        c.headers.push(("Retry-After".into(), seconds.to_string()));
        c
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub bearer: Option<String>,
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

struct State {
    scenario: Scenario,
    queued: VecDeque<Canned>,
    requests: Vec<Recorded>,
    base: String,
}

pub struct ArmFixture {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: Server,
}

impl ArmFixture {
    pub async fn start(scenario: Scenario) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            scenario,
            queued: VecDeque::new(),
            requests: Vec::new(),
            base: format!("http://{addr}"),
        }));
        let served = state.clone();
        let server = Server::spawn(
            addr,
            serve(listener, move |_| {
                let state = served.clone();
                service_fn(move |req| handle(req, state.clone()))
            }),
        );
        Self {
            addr,
            state,
            _server: server,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Served before any route's answer, in order.
    pub fn queue(&self, canned: Canned) {
        self.state.lock().unwrap().queued.push_back(canned);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let _ = body.collect().await?;
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let canned = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            bearer: bearer.clone(),
            at: std::time::Instant::now(),
        });
        if bearer.as_deref() != Some(FIXTURE_TOKEN) {
            Canned::error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
        } else if s.scenario.expired {
            Canned::error(401, "ExpiredAuthenticationToken", "The access token expiry UTC time '12/4/2026 5:00:00 PM' is earlier than current UTC time '12/4/2026 6:00:00 PM'.")
        } else if let Some(c) = s.queued.pop_front() {
            c
        } else {
            route(&parts.method, &path, query.as_deref().unwrap_or(""), &s)
        }
    };
    let mut response = Response::builder()
        .status(canned.status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ms-request-id", uuid::Uuid::new_v4().to_string());
    for (k, v) in &canned.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    Ok(response
        .body(Full::new(Bytes::from(canned.body)))
        .expect("response"))
}

fn ok(body: Value) -> Canned {
    Canned {
        status: 200,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// `{"value": items}`, or one item per page with `nextLink` (`$skiptoken` = the index).
fn list(state: &State, path: &str, query: &str, items: Vec<Value>) -> Canned {
    if !state.scenario.paged {
        return ok(json!({ "value": items }));
    }
    let index: usize = query
        .split('&')
        .find_map(|p| p.strip_prefix("$skiptoken="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(index).take(1).cloned().collect();
    let mut body = json!({ "value": page });
    if index + 1 < items.len() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("$skiptoken="))
            .collect();
        body["nextLink"] = json!(format!(
            "{}{path}?{}&$skiptoken={}",
            state.base,
            kept.join("&"),
            index + 1
        ));
    }
    ok(body)
}

fn route(method: &hyper::Method, path: &str, query: &str, s: &State) -> Canned {
    if method != hyper::Method::GET {
        return Canned::error(405, "MethodNotAllowed", "The fixture answers GET only.");
    }
    if !query.split('&').any(|p| p.starts_with("api-version=")) {
        return Canned::error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["providers", "Microsoft.Web", "locations", location, "functionAppStacks"] => {
            let stack = query
                .split('&')
                .find_map(|p| p.strip_prefix("stack="))
                .unwrap_or("");
            // Where Flex has no `custom`, the stack is still listed, without Flex SKUs
            // (azure-cli skips a minor version whose `Sku` is null).
            let stacks = if stack == "custom" {
                let on_flex = s.scenario.custom_regions.contains(&norm(location));
                vec![custom_stack(location, on_flex)]
            } else {
                Vec::new()
            };
            list(s, path, query, stacks)
        }
        ["subscriptions", sub, ..] if *sub != SUBSCRIPTION => Canned::error(
            404,
            "SubscriptionNotFound",
            &format!("The subscription '{sub}' could not be found."),
        ),
        ["subscriptions", sub, "providers", "Microsoft.Web", "geoRegions"] => {
            let regions = s
                .scenario
                .flex_regions
                .iter()
                .map(|name| {
                    json!({
                        "id": format!("/subscriptions/{sub}/providers/Microsoft.Web/geoRegions/{name}"),
                        "name": name,
                        "type": "Microsoft.Web/geoRegions",
                        "properties": {
                            "description": name,
                            "displayName": name,
                            "orgDomain": "PUBLIC;FLEXCONSUMPTION;FCZONEREDUNDANCY"
                        }
                    })
                })
                .collect();
            list(s, path, query, regions)
        }
        ["subscriptions", _, "providers", "Microsoft.CognitiveServices", "skus"] => {
            list(s, path, query, s.scenario.skus.clone())
        }
        ["subscriptions", sub, "resourcegroups", rg, "providers", "Microsoft.Authorization", "permissions"] =>
        {
            if !rg.eq_ignore_ascii_case(RESOURCE_GROUP) {
                return Canned::error(
                    404,
                    "ResourceGroupNotFound",
                    &format!("Resource group '{rg}' could not be found."),
                );
            }
            let _ = sub;
            list(s, path, query, s.scenario.permissions.clone())
        }
        ["subscriptions", sub, "providers", namespace] => {
            let state = s
                .scenario
                .providers
                .get(*namespace)
                .cloned()
                .unwrap_or_else(|| "Registered".into());
            ok(json!({
                "id": format!("/subscriptions/{sub}/providers/{namespace}"),
                "namespace": namespace,
                "registrationState": state,
                "registrationPolicy": "RegistrationRequired",
                "resourceTypes": [],
                "providerAuthorizationConsentState": "NotSpecified"
            }))
        }
        _ => Canned::error(
            404,
            "InvalidResourceType",
            &format!("The resource type could not be found for '{path}'."),
        ),
    }
}

/// The `custom` stack as `functionAppStacks?stack=custom` answers it for a region, with the
/// Flex SKU (FC1) or without.
fn custom_stack(location: &str, on_flex: bool) -> Value {
    let mut stack = json!({
        "id": format!("/providers/Microsoft.Web/locations/{location}/functionAppStacks/custom"),
        "name": "custom",
        "type": "Microsoft.Web/locations/functionAppStacks",
        "location": location,
        "properties": {
            "displayText": "Custom Handler",
            "value": "custom",
            "preferredOs": "Windows",
            "majorVersions": [{
                "displayText": "Custom Handler",
                "value": "custom",
                "minorVersions": [{
                    "displayText": "Custom Handler",
                    "value": "1.0",
                    "stackSettings": {
                        "linuxRuntimeSettings": {
                            "runtimeVersion": "",
                            "isPreview": false,
                            "appInsightsSettings": {"isSupported": true},
                            "gitHubActionSettings": {"isSupported": false},
                            "appSettingsDictionary": {"FUNCTIONS_WORKER_RUNTIME": "custom"},
                            "siteConfigPropertiesDictionary": {"use32BitWorkerProcess": false, "linuxFxVersion": ""},
                            "supportedFunctionsExtensionVersions": ["~4"],
                            "Sku": [{
                                "skuCode": "FC1",
                                "instanceMemoryMB": [
                                    {"size": 512, "isDefault": false},
                                    {"size": 2048, "isDefault": true},
                                    {"size": 4096, "isDefault": false}
                                ],
                                "maximumInstanceCount": {"lowestMaximumInstanceCount": 40, "highestMaximumInstanceCount": 1000, "defaultValue": 100},
                                "functionAppConfigProperties": {"runtime": {"name": "custom", "version": "1.0"}}
                            }]
                        }
                    }
                }]
            }]
        }
    });
    if !on_flex {
        stack["properties"]["majorVersions"][0]["minorVersions"][0]["stackSettings"]
            ["linuxRuntimeSettings"]["Sku"] = Value::Null;
    }
    stack
}

//! Every ARM request of `cvctl preflight`, checked against the operations of the official
//! OpenAPI documents (Azure/azure-rest-api-specs), in two layers:
//!
//! 1. **Always**: the requests the client makes (recorded by the ARM fixture) are checked
//!    against [`OPERATIONS`], a table transcribed from the documents (operation id, path,
//!    api-version, query parameters; each with its file and commit). Prism does not catch a
//!    misspelt optional query parameter (it lets undeclared ones through); this does.
//! 2. **When the documents are here** (`ARM_SPECS_DIR`, else `../shared/specs/arm/`, laid out
//!    as in azure-rest-api-specs; they are never committed here): the table is checked against
//!    the documents, and each document is served by Stoplight Prism (`npm ci` installs it) and
//!    every request must pass its validation (path, required query, enums such as
//!    `sku=FlexConsumption`, the bearer token), and its generated answers must decode.
//!    Without them, these tests print why they were skipped and pass.
//!
//! The documents are served as they are, but for two changes made in a temporary directory:
//! `x-ms-examples` are dropped (their files are not needed and may be absent) and relative
//! `$ref`s to other files are made absolute (the copy no longer sits beside them).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::support::arm::{ArmFixture, Scenario, FIXTURE_TOKEN, RESOURCE_GROUP, SUBSCRIPTION};
use crate::support::http1::serve;
use crate::support::prism::{forward as forward_to_prism, Prism};
use bytes::Bytes;
use customvision_events::arm::{ArmAuth, ArmClient, ArmPolicy};
use customvision_events::settings::Secret;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use serde_json::Value;
use url::Url;

// ---------------------------------------------------------------------------------------------
// The contract, transcribed

/// One operation the preflight calls.
struct Operation {
    id: &'static str,
    /// The document, relative to the specs directory (as in azure-rest-api-specs).
    spec: &'static str,
    /// The commit the document was read at.
    commit: &'static str,
    path: &'static str,
    /// The api-version the client must send.
    api_version: &'static str,
    /// The query parameters the document declares for the operation.
    declared: &'static [&'static str],
    /// Query parameters sent that the document does not declare, and whose word we take.
    extensions: &'static [&'static str],
    /// Query parameters (besides api-version) the client must always send.
    sent: &'static [&'static str],
}

const OPERATIONS: [Operation; 5] = [
    Operation {
        id: "Provider_GetFunctionAppStacksForLocation",
        spec: "specification/web/resource-manager/Microsoft.Web/AppService/stable/2024-11-01/Provider.json",
        commit: "de9bbe5d0ef37251f8cdb392d27aedf754fc04d1",
        path: "/providers/Microsoft.Web/locations/{location}/functionAppStacks",
        // azure-cli's version for this call (custom.py, _FlexFunctionAppStackRuntimeHelper,
        // commit 00429bd37d87f5951917c692a2e3a8ea497c01e1); the operation and its parameters
        // are the same in the 2024-11-01 document.
        api_version: "2020-10-01",
        declared: &["stackOsType", "api-version"],
        // azure-cli sends these three; the service reads them, the document does not list
        // them (Azure/azure-cli custom.py, same commit).
        extensions: &["removeHiddenStacks", "removeDeprecatedStacks", "stack"],
        sent: &["removeHiddenStacks", "removeDeprecatedStacks", "stack"],
    },
    Operation {
        id: "ListGeoRegions",
        spec: "specification/web/resource-manager/Microsoft.Web/AppService/stable/2024-11-01/ResourceProvider.json",
        commit: "b2f7419737799f321a271e9327d0b18417eed538",
        path: "/subscriptions/{subscriptionId}/providers/Microsoft.Web/geoRegions",
        api_version: "2024-11-01",
        declared: &[
            "sku",
            "linuxWorkersEnabled",
            "xenonWorkersEnabled",
            "linuxDynamicWorkersEnabled",
            "api-version",
        ],
        extensions: &[],
        sent: &["sku"],
    },
    Operation {
        id: "Providers_Get",
        spec: "specification/resources/resource-manager/Microsoft.Resources/resources/stable/2021-04-01/resources.json",
        commit: "54923347f07c69f929305d5c2fd3fa7fda1dab96",
        path: "/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}",
        api_version: "2021-04-01",
        declared: &["$expand", "api-version"],
        extensions: &[],
        sent: &[],
    },
    Operation {
        id: "Permissions_ListForResourceGroup",
        spec: "specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json",
        commit: "007a51db374076edb902fd44eb8299eea6336335",
        path: "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/Microsoft.Authorization/permissions",
        api_version: "2022-04-01",
        declared: &["api-version"],
        extensions: &[],
        sent: &[],
    },
    Operation {
        id: "ResourceSkus_List",
        spec: "specification/cognitiveservices/resource-manager/Microsoft.CognitiveServices/stable/2023-05-01/cognitiveservices.json",
        commit: "3b06a589c412d9757dd130991fbd9f7c8ca29cb7",
        path: "/subscriptions/{subscriptionId}/providers/Microsoft.CognitiveServices/skus",
        api_version: "2023-05-01",
        declared: &["api-version"],
        extensions: &[],
        sent: &[],
    },
];

/// The operation whose path template `path` matches (`{x}` matches one non-empty segment).
/// The most literal template wins: `/subscriptions/{s}/providers/{ns}` must not take
/// `/subscriptions/{s}/providers/Microsoft.CognitiveServices/skus`... which has more segments
/// anyway, but literal segments are preferred all the same.
fn operation_of(path: &str) -> Option<&'static Operation> {
    let sent: Vec<&str> = path.split('/').collect();
    OPERATIONS
        .iter()
        .filter(|op| {
            let parts: Vec<&str> = op.path.split('/').collect();
            parts.len() == sent.len()
                && parts.iter().zip(&sent).all(|(t, s)| {
                    if t.starts_with('{') {
                        !s.is_empty()
                    } else {
                        t == s
                    }
                })
        })
        .max_by_key(|op| op.path.split('/').filter(|p| !p.starts_with('{')).count())
}

/// What is wrong with one request, against the table; empty when nothing is.
fn violations(method: &str, path_and_query: &str) -> Vec<String> {
    let url = match Url::parse(&format!("http://h{path_and_query}")) {
        Ok(u) => u,
        Err(e) => return vec![format!("{path_and_query}: {e}")],
    };
    let Some(op) = operation_of(url.path()) else {
        return vec![format!(
            "{method} {} is no operation of the table",
            url.path()
        )];
    };
    let mut wrong = Vec::new();
    if method != "GET" {
        wrong.push(format!("{}: method {method}, not GET", op.id));
    }
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let versions: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "api-version")
        .map(|(_, v)| v.as_str())
        .collect();
    if versions != [op.api_version] {
        wrong.push(format!(
            "{}: api-version {versions:?}, the table says {}",
            op.id, op.api_version
        ));
    }
    for name in op.sent {
        if !query.iter().any(|(k, _)| k == name) {
            wrong.push(format!("{}: query parameter '{name}' is missing", op.id));
        }
    }
    for (name, _) in &query {
        let known = op.declared.contains(&name.as_str()) || op.extensions.contains(&name.as_str());
        if !known {
            wrong.push(format!(
                "{}: query parameter '{name}' is neither declared ({:?}) nor a known extension ({:?})",
                op.id, op.declared, op.extensions
            ));
        }
    }
    if op.id == "Permissions_ListForResourceGroup" {
        // The document's ResourceGroupNameParameter: ^[-\w\._\(\)]+$, 1 to 90.
        let rg = url.path().split('/').nth(4).unwrap_or_default();
        let rg = percent_encoding::percent_decode_str(rg).decode_utf8_lossy();
        let ok = (1..=90).contains(&rg.chars().count())
            && rg
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.()".contains(c));
        if !ok {
            wrong.push(format!(
                "{}: resourceGroupName '{rg}' breaks its pattern",
                op.id
            ));
        }
    }
    wrong
}

// ---------------------------------------------------------------------------------------------
// The client's requests

fn client(endpoint: &str) -> ArmClient {
    ArmClient::new(
        customvision_events::http_client(),
        Url::parse(endpoint).unwrap(),
        ArmAuth::StaticToken(Secret::new(FIXTURE_TOKEN)),
    )
    .with_policy(ArmPolicy {
        // No retries: a contract failure must show as the answer it is.
        max_attempts: 1,
        ..Default::default()
    })
}

/// Every request the preflight makes, once each; the errors of those that failed.
async fn every_call(client: &ArmClient) -> Vec<String> {
    let mut errors = Vec::new();
    let mut note = |what: &str, r: Result<(), customvision_events::arm::ArmError>| {
        if let Err(e) = r {
            errors.push(format!("{what}: {e}"));
        }
    };
    note(
        "stacks",
        client
            .function_app_stacks("eastus", "custom")
            .await
            .map(drop),
    );
    note(
        "geoRegions",
        client.flex_regions(SUBSCRIPTION).await.map(drop),
    );
    for ns in customvision_events::arm::providers::REQUIRED
        .iter()
        .chain(customvision_events::arm::providers::OPTIONAL.iter())
    {
        note(ns, client.provider(SUBSCRIPTION, ns).await.map(drop));
    }
    note(
        "permissions",
        client
            .permissions_for_resource_group(SUBSCRIPTION, RESOURCE_GROUP)
            .await
            .map(drop),
    );
    note("skus", client.cognitive_skus(SUBSCRIPTION).await.map(drop));
    errors
}

#[tokio::test]
async fn every_request_is_an_operation_of_the_table() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    let errors = every_call(&client(&fixture.endpoint())).await;
    assert!(errors.is_empty(), "{errors:#?}");
    let requests = fixture.requests();
    assert_eq!(requests.len(), 11);
    let mut seen = BTreeSet::new();
    for r in &requests {
        let wrong = violations(&r.method, &r.path_and_query());
        assert!(wrong.is_empty(), "{}: {wrong:#?}", r.path_and_query());
        seen.insert(operation_of(&r.path).unwrap().id);
        assert_eq!(r.bearer.as_deref(), Some(FIXTURE_TOKEN));
    }
    let all: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.id).collect();
    assert_eq!(seen, all, "every operation of the table is exercised");
}

#[test]
fn the_table_check_catches_what_it_should() {
    let good = "/subscriptions/s/providers/Microsoft.Web/geoRegions?sku=FlexConsumption&api-version=2024-11-01";
    assert!(violations("GET", good).is_empty());
    for (bad, expect) in [
        ("/subscriptions/s/providers/Microsoft.Web/geoRegions?sku=FlexConsumption&api-version=2023-01-01", "api-version"),
        ("/subscriptions/s/providers/Microsoft.Web/geoRegions?api-version=2024-11-01", "'sku' is missing"),
        ("/subscriptions/s/providers/Microsoft.Web/geoRegions?Sku=FlexConsumption&sku=FlexConsumption&api-version=2024-11-01", "'Sku' is neither"),
        ("/providers/Microsoft.Web/locations/eastus/functionAppStacks?api-version=2020-10-01&stack=custom&removeHiddenStacks=true", "'removeDeprecatedStacks' is missing"),
        ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/permissions?api-version=2022-04-01", "no operation"),
        ("/subscriptions/s/resourcegroups/bad%2Fname/providers/Microsoft.Authorization/permissions?api-version=2022-04-01", "pattern"),
        ("/subscriptions/s/providers/Microsoft.CognitiveServices/skus?api-version=2023-05-01&api-version=2023-05-01", "api-version"),
    ] {
        let wrong = violations("GET", bad).join("\n");
        assert!(wrong.contains(expect), "{bad}: {wrong}");
    }
    assert!(!violations("POST", good).is_empty());
    // The literal template wins over `{resourceProviderNamespace}`.
    assert_eq!(
        operation_of("/subscriptions/s/providers/Microsoft.CognitiveServices/skus").map(|o| o.id),
        Some("ResourceSkus_List")
    );
    assert_eq!(
        operation_of("/subscriptions/s/providers/Microsoft.Web").map(|o| o.id),
        Some("Providers_Get")
    );
}

// ---------------------------------------------------------------------------------------------
// The documents, when they are here

fn specs_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ARM_SPECS_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(format!(
                "ARM_SPECS_DIR={} is not a directory",
                dir.display()
            ))
        };
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/arm");
    if shared.is_dir() {
        return Ok(shared);
    }
    Err(format!(
        "no ARM OpenAPI documents: set ARM_SPECS_DIR to a directory laid out as Azure/azure-rest-api-specs (or put them in {}); see docs/preflight.md",
        shared.display()
    ))
}

/// The specs directory, or `None` after saying why the test is skipped.
fn specs_or_skip(test: &str) -> Option<PathBuf> {
    match specs_dir() {
        Ok(dir) => Some(dir),
        Err(why) => {
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

fn load(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Follows a `$ref` (local or to another file, relative to `base`).
fn resolve(reference: &str, doc: &Value, base: &Path) -> Value {
    let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    let target = if file.is_empty() {
        doc.clone()
    } else {
        load(&base.join(file))
    };
    target
        .pointer(pointer)
        .cloned()
        .unwrap_or_else(|| panic!("$ref {reference} does not resolve"))
}

#[test]
fn the_table_is_the_documents() {
    let Some(dir) = specs_or_skip("the_table_is_the_documents") else {
        return;
    };
    for op in &OPERATIONS {
        let file = dir.join(op.spec);
        let doc = load(&file);
        let base = file.parent().unwrap();
        let get = doc
            .pointer(&format!(
                "/paths/{}/get",
                op.path.replace('~', "~0").replace('/', "~1")
            ))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no GET {} in {} (read at {})",
                    op.id, op.path, op.spec, op.commit
                )
            });
        assert_eq!(
            get["operationId"], op.id,
            "{} (read at {})",
            op.spec, op.commit
        );
        let mut declared = BTreeSet::new();
        for p in get["parameters"].as_array().into_iter().flatten() {
            let p = match p.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(r, &doc, base),
                None => p.clone(),
            };
            if p["in"] == "query" {
                declared.insert(p["name"].as_str().unwrap().to_string());
            }
        }
        let table: BTreeSet<String> = op.declared.iter().map(|s| s.to_string()).collect();
        assert_eq!(declared, table, "{}: declared query parameters", op.id);
        for ext in op.extensions {
            assert!(
                !declared.contains(*ext),
                "{}: '{ext}' is declared after all",
                op.id
            );
        }
        if op.id == "ListGeoRegions" {
            let sku = get["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "sku")
                .unwrap();
            assert!(sku["enum"]
                .as_array()
                .unwrap()
                .contains(&Value::from("FlexConsumption")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Prism, one per document

/// The document as Prism can load it from `out`: no `x-ms-examples`, absolute `$ref`s.
fn prepared(spec: &Path, out: &Path) -> PathBuf {
    fn walk(v: &mut Value, base: &Path) {
        match v {
            Value::Object(map) => {
                map.remove("x-ms-examples");
                for (k, child) in map.iter_mut() {
                    match child {
                        Value::String(r) if k == "$ref" && !r.starts_with('#') => {
                            let (file, pointer) = r.split_once('#').unwrap_or((r.as_str(), ""));
                            let absolute = base.join(file);
                            *r = format!("{}#{pointer}", absolute.display());
                        }
                        _ => walk(child, base),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, base)),
            _ => {}
        }
    }
    let mut doc = load(spec);
    walk(&mut doc, spec.parent().unwrap());
    let name = spec.file_name().unwrap();
    let target = out.join(name);
    std::fs::write(&target, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    target
}

#[derive(Debug, Clone)]
struct Exchange {
    path_and_query: String,
    operation: Option<&'static str>,
    status: u16,
    violations: Option<String>,
}

/// Forwards each request to the Prism serving its operation's document, and records Prism's
/// verdict.
async fn start_router(
    upstreams: Vec<(&'static str, Url)>,
) -> (
    SocketAddr,
    Arc<Mutex<Vec<Exchange>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let http = customvision_events::http_client().client().unwrap().clone();
    let recorded = exchanges.clone();
    let upstreams = Arc::new(upstreams);
    let task = tokio::spawn(serve(listener, move |_| {
        let (http, upstreams, recorded) = (http.clone(), upstreams.clone(), recorded.clone());
        service_fn(move |req| forward(req, http.clone(), upstreams.clone(), recorded.clone()))
    }));
    (addr, exchanges, task)
}

async fn forward(
    req: Request<Incoming>,
    http: reqwest::Client,
    upstreams: Arc<Vec<(&'static str, Url)>>,
    recorded: Arc<Mutex<Vec<Exchange>>>,
) -> Result<Response<Full<Bytes>>, String> {
    let operation = operation_of(req.uri().path()).map(|o| o.id);
    let upstream = upstreams.iter().find(|(id, _)| Some(*id) == operation);
    let answer = forward_to_prism(&http, req, upstream.map(|(_, url)| url)).await?;
    recorded.lock().unwrap().push(Exchange {
        path_and_query: answer.path_and_query,
        operation,
        status: answer.status,
        violations: answer.violations,
    });
    Ok(answer.response)
}

#[tokio::test]
async fn every_request_passes_prism() {
    let Some(dir) = specs_or_skip("every_request_passes_prism") else {
        return;
    };
    let temp = TempDir(std::env::temp_dir().join(format!("arm-contract-{}", uuid::Uuid::new_v4())));
    let temp = &temp.0;
    // One Prism per document, started together (each takes seconds).
    let starts: Vec<_> = OPERATIONS
        .iter()
        .map(|op| {
            let out = temp.join(op.id);
            std::fs::create_dir_all(&out).unwrap();
            let spec = prepared(&dir.join(op.spec), &out);
            (op.id, std::thread::spawn(move || Prism::start(spec)))
        })
        .collect();
    let mut prisms = Vec::new();
    for (id, start) in starts {
        match start.join().unwrap() {
            Ok(p) => prisms.push((id, p)),
            Err(e) => panic!("{id}: {e}"),
        }
    }
    let upstreams = prisms.iter().map(|(id, p)| (*id, p.url.clone())).collect();
    let (addr, exchanges, task) = start_router(upstreams).await;
    let endpoint = format!("http://{addr}");

    let errors = every_call(&client(&endpoint)).await;
    let seen = exchanges.lock().unwrap().clone();
    let logs = || {
        prisms
            .iter()
            .map(|(id, p)| format!("--- {id}\n{}", p.log.lock().unwrap().join("\n")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(seen.len(), 11, "{seen:#?}");
    for e in &seen {
        assert!(
            (200..300).contains(&e.status) && e.violations.is_none(),
            "{:?} {} → {} {:?}\n{}",
            e.operation,
            e.path_and_query,
            e.status,
            e.violations,
            logs()
        );
    }
    // Prism's generated answers decode (the verdicts on them are another matter).
    assert!(errors.is_empty(), "{errors:#?}");

    // Prism does judge: the same requests without api-version, or without a token, fail.
    exchanges.lock().unwrap().clear();
    let http = customvision_events::http_client();
    let http = http.client().unwrap();
    let bare = format!("{endpoint}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Web/geoRegions?sku=FlexConsumption");
    let no_version = http
        .get(&bare)
        .bearer_auth(FIXTURE_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(no_version.status().is_client_error());
    let bad_enum = http
        .get(format!("{bare}y&api-version=2024-11-01"))
        .bearer_auth(FIXTURE_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(bad_enum.status().is_client_error(), "sku=FlexConsumptiony");
    let no_token = http
        .get(format!("{bare}&api-version=2024-11-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    let judged = exchanges.lock().unwrap().clone();
    assert!(judged.iter().all(|e| e.violations.is_some()), "{judged:#?}");

    task.abort();
}

/// Removed when dropped, a failed test's included.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! Stoplight Prism (`@stoplight/prism-cli`, pinned in package.json; `npm ci` installs it) in
//! mock mode, serving one OpenAPI document on a port of its choosing: the contract tests of the
//! Training API and of ARM both start it this way.
//!
//! `--errors` is on: in mock mode a request violation of severity error is always answered with
//! an error status and an `sl-violations` header; `--errors` makes a response violation an
//! error too. Readiness is its "listening" line, awaited with a deadline. It is killed when the
//! test process exits (`PR_SET_PDEATHSIG`, tied to the thread that keeps reading its output).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use url::Url;

/// Generous: Prism loads the document before it listens, on a busy machine.
const READY_DEADLINE: Duration = Duration::from_secs(90);

pub struct Prism {
    pub url: Url,
    /// Every line Prism printed, stdout and stderr.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Prism {
    /// Starts Prism on `spec` and waits until it listens; the error holds what it printed.
    pub fn start(spec: PathBuf) -> Result<Prism, String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let bin = root.join("node_modules/.bin/prism");
        if !bin.exists() {
            return Err(format!(
                "{} is missing: run `npm ci` in {} (make test does)",
                bin.display(),
                root.display()
            ));
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Url, String>>();
        let thread_log = log.clone();
        // This thread spawns Prism and reads its output for as long as it runs: the
        // parent-death signal is tied to it, so it must outlive every test, and so it does (it
        // ends only when Prism's output does, or with the process).
        std::thread::spawn(move || {
            let parent = std::process::id() as libc::pid_t;
            let mut command = Command::new(&bin);
            command
                .args(["mock", "--errors", "-h", "127.0.0.1", "-p", "0"])
                .arg(&spec)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork
            // and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                        || libc::getppid() != parent
                    {
                        return Err(std::io::Error::other("parent gone"));
                    }
                    Ok(())
                });
            }
            let mut child = match command.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start {}: {e}", bin.display())));
                    return;
                }
            };
            if let Some(stderr) = child.stderr.take() {
                let log = thread_log.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        log.lock().unwrap().push(line);
                    }
                });
            }
            if let Some(stdout) = child.stdout.take() {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("Prism is listening on ") {
                        let url = line[at + "Prism is listening on ".len()..].trim();
                        let _ = ready_tx.send(Url::parse(url).map_err(|e| format!("{url}: {e}")));
                    }
                    thread_log.lock().unwrap().push(line);
                }
            }
            let status = child.wait();
            let _ = ready_tx.send(Err(format!("Prism exited before it was ready: {status:?}")));
        });
        let prism = Prism {
            url: Url::parse("http://127.0.0.1/").unwrap(),
            log,
        };
        match ready_rx.recv_timeout(READY_DEADLINE) {
            Ok(Ok(url)) => Ok(Prism { url, ..prism }),
            Ok(Err(e)) => Err(format!("{e}\n{}", prism.tail())),
            Err(_) => Err(format!(
                "Prism not listening after {READY_DEADLINE:?}\n{}",
                prism.tail()
            )),
        }
    }

    /// The last 40 lines Prism printed.
    pub fn tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(40)..].join("\n")
    }
}

/// A request forwarded to Prism: the answer for the client, and Prism's verdict.
pub struct Forwarded {
    pub response: Response<Full<Bytes>>,
    pub method: String,
    pub path_and_query: String,
    pub status: u16,
    /// `sl-violations`: what the request (or, with `--errors`, the answer) broke.
    pub violations: Option<String>,
}

/// Reads a request and sends it on to the Prism at `upstream` (its path and query joined to
/// that URL), as the contract tests' recording proxies do; no Prism is answered 599.
pub async fn forward(
    http: &reqwest::Client,
    req: Request<Incoming>,
    upstream: Option<&Url>,
) -> Result<Forwarded, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = parts.method.to_string();
    let Some(upstream) = upstream else {
        return Ok(Forwarded {
            response: Response::builder()
                .status(599)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?,
            method,
            path_and_query,
            status: 599,
            violations: Some("no Prism serves this path".into()),
        });
    };
    let url = upstream.join(&path_and_query).map_err(|e| e.to_string())?;
    let mut request = http.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        // The body goes whole: its framing is reqwest's, not the client's.
        if !matches!(
            name.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let violations = answer
        .headers()
        .get("sl-violations")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    Ok(Forwarded {
        response: response.body(Full::new(bytes)).map_err(|e| e.to_string())?,
        method,
        path_and_query,
        status: status.as_u16(),
        violations,
    })
}

//! The server over real sockets, sending what the host sends: chunked bodies without a
//! length on kept-alive connections. `warp::test` sets a length itself, so it could not show
//! the 411 this once answered to every real invocation.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::*;
use crate::domain::examples;
use crate::envelope::captured::{METADATA_KEYS, ONCE, TWICE};
use crate::functions::test_support::app;

struct Running {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(config: ServerConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, Arc::new(app()), config, async {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn assert_json(&self) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        for key in ["Outputs", "Logs", "ReturnValue"] {
            assert!(self.body.get(key).is_some(), "{key} missing: {self:?}");
        }
    }
}

/// A client connection that writes raw bytes and reads length-delimited answers.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self {
            reader: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.unwrap();
    }

    async fn answer(&mut self) -> Answer {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).await.unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("every answer has a length");
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&body).unwrap(),
        }
    }

    /// Waits, with a deadline, for the server to close the connection.
    async fn closed_within(&mut self, deadline: Duration) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(deadline, self.reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// An invocation as the host's HttpClient sends an `ObjectContent`: chunked, no length, the
/// body cut into pieces regardless of character boundaries.
fn chunked_request(function: &str, body: &str, piece: usize) -> Vec<u8> {
    let mut out = format!(
        "POST /{function} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Azure-Functions-HostVersion: 4.1040.300.0\r\n\
         X-Azure-Functions-InvocationId: 7e2c1b1e-0000-4000-8000-000000000001\r\n\
         User-Agent: Azure-Functions-Host/4.1040.300.0\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/json; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn sized_request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        body_idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn a_chunked_invocation_is_answered_200_with_json() {
    let server = start(ServerConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(&chunked_request("Notifications", ONCE, 7))
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.assert_json();
    assert_eq!(
        answer.body["Logs"][0],
        format!("ConnectionTest from project {}", examples::PROJECT)
    );
}

#[tokio::test]
async fn the_three_captured_shapes_on_one_kept_alive_connection() {
    let server = start(ServerConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    for (body, expect) in [
        (TWICE, "routed to trainingEvents"),
        (ONCE, "ConnectionTest from project"),
        (METADATA_KEYS, "routed to exportEvents"),
    ] {
        // 5-byte pieces split the escaped text anywhere, multi-byte sequences included.
        client
            .send(&chunked_request("Notifications", body, 5))
            .await;
        let answer = client.answer().await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.assert_json();
        let logs = answer.body["Logs"].to_string();
        assert!(logs.contains(expect), "{logs}");
        assert_ne!(answer.header("connection"), Some("close"));
    }
    let exported = {
        client
            .send(&chunked_request("Notifications", METADATA_KEYS, 4096))
            .await;
        client.answer().await
    };
    assert_eq!(
        exported.body["Outputs"]["exportEvents"]["Content"]["iterationId"],
        examples::ITERATION
    );
}

#[tokio::test]
async fn a_body_with_a_length_is_accepted_too() {
    let server = start(ServerConfig::default()).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(&sized_request("POST", "/Notifications", ONCE))
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 200);
    answer.assert_json();
}

#[tokio::test]
async fn an_oversized_chunked_body_gets_a_json_413() {
    let server = start(ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    let body = format!(r#"{{"Data":{{"notification":"{}"}}}}"#, "x".repeat(4096));
    client
        .send(&chunked_request("Notifications", &body, 512))
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 413);
    answer.assert_json();
    assert!(answer.body["Logs"][0]
        .as_str()
        .unwrap()
        .contains("1024-byte limit"));
    // A declared length over the cap is refused before the body is read.
    let mut client = Client::connect(server.addr).await;
    client
        .send(b"POST /Notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 413);
    answer.assert_json();
}

#[tokio::test]
async fn every_other_answer_is_json_too() {
    let server = start(ServerConfig {
        max_header_bytes: 2048,
        ..ServerConfig::default()
    })
    .await;
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(8192)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 200),
        (sized_request("PUT", "/Notifications", "{}"), 405),
        (sized_request("GET", "/Notifications", ""), 405),
        (sized_request("GET", "/a/b", ""), 404),
        (chunked_request("NoSuchFunction", ONCE, 64), 404),
        (chunked_request("Notifications", "not an envelope", 64), 400),
        (big_header.into_bytes(), 431),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
    ];
    for (request, status) in cases {
        let mut client = Client::connect(server.addr).await;
        client.send(&request).await;
        let answer = client.answer().await;
        assert_eq!(
            answer.status,
            status,
            "{}: {answer:?}",
            String::from_utf8_lossy(&request[..40.min(request.len())])
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let server = start(short_timeouts()).await;
    // Idle after a request, kept alive until then.
    let mut client = Client::connect(server.addr).await;
    client
        .send(&chunked_request("Notifications", ONCE, 64))
        .await;
    assert_eq!(client.answer().await.status, 200);
    assert!(client.closed_within(Duration::from_secs(10)).await);
    // Never a byte sent.
    let mut silent = Client::connect(server.addr).await;
    assert!(silent.closed_within(Duration::from_secs(10)).await);
    // Half a head.
    let mut half = Client::connect(server.addr).await;
    half.send(b"POST /Notifications HTTP/1.1\r\nHost: x\r\n")
        .await;
    assert!(half.closed_within(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn a_connection_in_use_is_not_closed_by_the_timeouts() {
    // Pauses shorter than the timeouts, adding up to much longer than them: each timeout runs
    // from the last progress (the previous answer, the previous chunk), not from the
    // connection's start, so the connection and every request on it survive.
    let timeout = Duration::from_millis(600);
    let server = start(ServerConfig {
        header_read_timeout: timeout,
        body_idle_timeout: timeout,
        ..ServerConfig::default()
    })
    .await;
    let pause = Duration::from_millis(250);
    // The premise, by arithmetic rather than a clock: each pause is shorter than the
    // timeouts, the nine of them (at least their length: `sleep` never wakes early) longer
    // than three.
    assert!(pause < timeout && 9 * pause > 3 * timeout);
    let mut client = Client::connect(server.addr).await;
    for _ in 0..3 {
        let full = chunked_request("Notifications", ONCE, 16);
        let head_end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let middle = head_end + (full.len() - head_end) / 2;
        client.send(&full[..head_end]).await;
        tokio::time::sleep(pause).await;
        client.send(&full[head_end..middle]).await;
        tokio::time::sleep(pause).await;
        client.send(&full[middle..]).await;
        assert_eq!(client.answer().await.status, 200);
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn a_half_sent_body_gets_a_json_408() {
    let server = start(short_timeouts()).await;
    let mut client = Client::connect(server.addr).await;
    let full = chunked_request("Notifications", ONCE, 16);
    // The head and the first chunk, then silence.
    let head_end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    client.send(&full[..head_end + 20]).await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 408);
    answer.assert_json();
}

#[tokio::test]
async fn storage_outage_is_a_transient_500() {
    let server = start(ServerConfig::default()).await;
    let message = crate::seed::export("https://a.blob.core.windows.net/c/b?sig=SECRET");
    let body =
        serde_json::json!({"Data": {"notification": serde_json::to_string(&message).unwrap()}})
            .to_string();
    let mut client = Client::connect(server.addr).await;
    client
        .send(&chunked_request("ExportCompleted", &body, 100))
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.status, 500);
    answer.assert_json();
    let reason = answer.body["Logs"][0].as_str().unwrap();
    assert!(reason.contains("list backups failed"), "{reason}");
    assert!(!reason.contains("SECRET"), "{reason}");
}

#[test]
fn the_timeouts_outlast_the_longest_invocation() {
    let host: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/host.json")).unwrap(),
    )
    .unwrap();
    let function_timeout =
        crate::devhost::config::parse_timespan(host["functionTimeout"].as_str().unwrap()).unwrap();
    // The host's own HTTP timeout is functionTimeout + 1 minute; ours must be longer still.
    let host_http_timeout = function_timeout + Duration::from_secs(60);
    let config = ServerConfig::default();
    for timeout in [config.header_read_timeout, config.body_idle_timeout] {
        assert!(
            timeout >= host_http_timeout + Duration::from_secs(60),
            "{timeout:?}"
        );
    }
}

//! A fault-injecting reverse proxy, HTTP/1.1 on raw TCP: it reads each request off the socket
//! (head, then a sized or chunked body), and per request either forwards it unchanged (the
//! `Host` header too, so Azurite's same-instance check on copy sources holds) or injects one
//! fault, chosen by a seeded generator:
//! - `503 ServerBusy` or `500 InternalError`, as the storage service words them (XML body,
//!   `x-ms-error-code`, `Retry-After`), or as the Cognitive Services gateway does (JSON);
//! - a reset before the request reaches the service (RST, no answer);
//! - a reset after it did: the service acted, the caller never hears (the idempotency case);
//! - a stall: no answer at all until the caller's own timeout closes the connection.
//!
//! Only requests the plan's filter admits are faulted (say, the storage SDK's, not Azurite's
//! own reads of a copy source through the same port). Every fault is counted by kind, and
//! every exchange is logged with the service's status when it answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Busy503,
    Internal500,
    ResetBefore,
    ResetAfter,
    Stall,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Busy503,
        Fault::Internal500,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Stall,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Busy503 => "503 ServerBusy + Retry-After",
            Fault::Internal500 => "500 InternalError",
            Fault::ResetBefore => "reset before the service",
            Fault::ResetAfter => "reset after the service acted",
            Fault::Stall => "stall past the client's timeout",
        }
    }
}

/// How error answers are worded.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// Azure Storage: XML `<Error><Code>` and `x-ms-error-code`.
    Storage,
    /// The Cognitive Services gateway: JSON `{"error":{"code","message"}}`.
    Json,
}

/// The request as the filter sees it.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Filter = Arc<dyn Fn(&Head) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct FaultPlan {
    pub seed: u64,
    /// Shares of admitted requests, each in [0, 1], summing to under 1.
    pub busy: f64,
    pub internal: f64,
    pub reset_before: f64,
    pub reset_after: f64,
    pub stall: f64,
    /// A share of admitted requests that start a burst: every admitted request for the next
    /// `burst_for` answered 503, as throttling comes. Longer than the SDK's retries, a burst
    /// fails whole invocations, and the host's redelivery must finish the work.
    pub burst: f64,
    pub burst_for: Duration,
    /// Stalls cost the caller a whole timeout each: bounded so a run stays short.
    pub max_stalls: usize,
    /// A stalled connection is closed by the proxy after this, if the caller has not.
    pub stall_cap: Duration,
    pub style: Style,
    pub filter: Filter,
}

impl FaultPlan {
    /// No faults: a plain forwarding proxy (with [`FaultProxy::hold_next`]).
    pub fn none() -> Self {
        Self {
            seed: 0,
            busy: 0.0,
            internal: 0.0,
            reset_before: 0.0,
            reset_after: 0.0,
            stall: 0.0,
            burst: 0.0,
            burst_for: Duration::ZERO,
            max_stalls: 0,
            stall_cap: Duration::from_secs(120),
            style: Style::Storage,
            filter: Arc::new(|_| false),
        }
    }
}

/// One request seen, and what became of it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub target: String,
    /// The service's status, when the request reached it and it answered.
    pub upstream_status: Option<u16>,
}

#[derive(Default)]
struct Shared {
    rng: u64,
    stalls: usize,
    bursts: usize,
    burst_until: Option<std::time::Instant>,
    counts: BTreeMap<Fault, usize>,
    log: Vec<Exchange>,
    /// A request to hold once forwarded and answered, until released.
    hold: Option<Filter>,
    held: usize,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    release: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream_port: u16, plan: FaultPlan) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared {
            rng: plan.seed,
            ..Default::default()
        }));
        let release = Arc::new(Notify::new());
        let plan = Arc::new(plan);
        let (s, r) = (shared.clone(), release.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, r, plan) = (s.clone(), r.clone(), plan.clone());
                connections.spawn(async move {
                    let _ = serve(stream, upstream_port, &plan, &s, &r).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            port,
            shared,
            release,
            task,
        }
    }

    /// Faults injected so far, by kind.
    pub fn counts(&self) -> BTreeMap<Fault, usize> {
        self.shared.lock().unwrap().counts.clone()
    }

    /// Fails unless every kind of fault was injected at least once: a kind never injected
    /// was never survived.
    pub fn assert_every_kind_injected(&self) {
        let counts = self.counts();
        for kind in Fault::ALL {
            assert!(
                counts.get(&kind).copied().unwrap_or(0) > 0,
                "no '{}' was injected: {}",
                kind.name(),
                self.summary()
            );
        }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.lock().unwrap().log.clone()
    }

    /// Holds the next request `which` admits once the service has answered it: the answer
    /// waits until [`Self::release`] (the caller is then mid-operation, its request done).
    pub fn hold_next(&self, which: impl Fn(&Head) -> bool + Send + Sync + 'static) {
        self.shared.lock().unwrap().hold = Some(Arc::new(which));
    }

    /// How many requests have been held so far.
    pub fn held(&self) -> usize {
        self.shared.lock().unwrap().held
    }

    pub fn release(&self) {
        self.release.notify_waiters();
    }

    pub fn bursts(&self) -> usize {
        self.shared.lock().unwrap().bursts
    }

    /// A one-line summary by kind, for the test's output and the figures.
    pub fn summary(&self) -> String {
        let counts = self.counts();
        let requests = self.exchanges().len();
        let by_kind: Vec<String> = Fault::ALL
            .iter()
            .map(|f| format!("{}: {}", f.name(), counts.get(f).copied().unwrap_or(0)))
            .collect();
        format!(
            "{requests} requests, {} faults ({}; {} bursts of 503s among them)",
            counts.values().sum::<usize>(),
            by_kind.join(", "),
            self.bursts()
        )
    }
}

/// SplitMix64: a seeded, reproducible sequence without a dependency.
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn choose(plan: &FaultPlan, shared: &Mutex<Shared>, head: &Head) -> Option<Fault> {
    if !(plan.filter)(head) {
        return None;
    }
    let mut s = shared.lock().unwrap();
    if s.burst_until.is_some_and(|t| std::time::Instant::now() < t) {
        *s.counts.entry(Fault::Busy503).or_default() += 1;
        return Some(Fault::Busy503);
    }
    let x = next_unit(&mut s.rng);
    if x < plan.burst {
        s.bursts += 1;
        s.burst_until = Some(std::time::Instant::now() + plan.burst_for);
        *s.counts.entry(Fault::Busy503).or_default() += 1;
        return Some(Fault::Busy503);
    }
    let x = (x - plan.burst) / (1.0 - plan.burst);
    let mut edge = 0.0;
    let mut fault = None;
    for (share, kind) in [
        (plan.busy, Fault::Busy503),
        (plan.internal, Fault::Internal500),
        (plan.reset_before, Fault::ResetBefore),
        (plan.reset_after, Fault::ResetAfter),
        (plan.stall, Fault::Stall),
    ] {
        edge += share;
        if x < edge {
            fault = Some(kind);
            break;
        }
    }
    if fault == Some(Fault::Stall) {
        if s.stalls >= plan.max_stalls {
            return None;
        }
        s.stalls += 1;
    }
    if let Some(f) = fault {
        *s.counts.entry(f).or_default() += 1;
    }
    fault
}

type Conn = BufReader<TcpStream>;

async fn serve(
    client: TcpStream,
    upstream_port: u16,
    plan: &FaultPlan,
    shared: &Mutex<Shared>,
    release: &Notify,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut client = BufReader::new(client);
    let mut upstream: Option<Conn> = None;
    loop {
        let Some((head, raw_head)) = read_head(&mut client).await? else {
            return Ok(());
        };
        let body = read_body(&mut client, &head, None).await?;
        let fault = choose(plan, shared, &head);
        let mut exchange = Exchange {
            method: head.method.clone(),
            target: head.target.clone(),
            upstream_status: None,
        };
        match fault {
            Some(Fault::Busy503) | Some(Fault::Internal500) => {
                shared.lock().unwrap().log.push(exchange);
                let answer = error_answer(fault == Some(Fault::Busy503), plan.style, &head);
                client.get_mut().write_all(&answer).await?;
                continue;
            }
            Some(Fault::ResetBefore) => {
                shared.lock().unwrap().log.push(exchange);
                return reset(client);
            }
            Some(Fault::Stall) => {
                shared.lock().unwrap().log.push(exchange);
                // Never answered: wait for the caller to give up (EOF) or the cap.
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(plan.stall_cap, client.read(&mut buf)).await;
                return Ok(());
            }
            Some(Fault::ResetAfter) | None => {}
        }
        // Forward; one retry on a kept-alive upstream connection the service had closed.
        let mut answer = None;
        for _ in 0..2 {
            if upstream.is_none() {
                let s = TcpStream::connect(("127.0.0.1", upstream_port)).await?;
                let _ = s.set_nodelay(true);
                upstream = Some(BufReader::new(s));
            }
            let Some(up) = upstream.as_mut() else {
                continue;
            };
            let sent = async {
                up.get_mut().write_all(&raw_head).await?;
                up.get_mut().write_all(&body).await?;
                read_response(up, &head.method).await
            }
            .await;
            match sent {
                Ok(Some(a)) => {
                    answer = Some(a);
                    break;
                }
                _ => upstream = None,
            }
        }
        let Some((status, close, bytes)) = answer else {
            shared.lock().unwrap().log.push(exchange);
            return reset(client);
        };
        if close {
            upstream = None;
        }
        exchange.upstream_status = Some(status);
        let hold = {
            let mut s = shared.lock().unwrap();
            s.log.push(exchange);
            let hit = s.hold.as_ref().is_some_and(|f| f(&head));
            if hit {
                s.hold = None;
                s.held += 1;
            }
            hit
        };
        if hold {
            let _ = tokio::time::timeout(Duration::from_secs(120), release.notified()).await;
        }
        if fault == Some(Fault::ResetAfter) {
            return reset(client);
        }
        client.get_mut().write_all(&bytes).await?;
    }
}

/// Closes with RST (linger 0): the caller sees "connection reset", not a clean end.
fn reset(conn: Conn) -> std::io::Result<()> {
    let stream = conn.into_inner();
    // Deprecated for blocking on drop while unsent data drains; a zero linger never waits.
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

async fn read_line(conn: &mut Conn, raw: &mut Vec<u8>) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if conn.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    raw.extend_from_slice(&line);
    Ok(Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    ))
}

/// A request head, or `None` at a clean end of the connection.
async fn read_head(conn: &mut Conn) -> std::io::Result<Option<(Head, Vec<u8>)>> {
    let mut raw = Vec::new();
    let Some(start) = read_line(conn, &mut raw).await? else {
        return Ok(None);
    };
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers = read_headers(conn, &mut raw).await?;
    Ok(Some((
        Head {
            method,
            target,
            headers,
        },
        raw,
    )))
}

async fn read_headers(
    conn: &mut Conn,
    raw: &mut Vec<u8>,
) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(conn, raw).await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// The body as it came on the wire (chunked framing kept), to be sent on unchanged.
/// `to_eof`: a response with neither length nor chunking ends with the connection.
async fn read_body(conn: &mut Conn, head: &Head, to_eof: Option<bool>) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let Some(size_line) = read_line(conn, &mut raw).await? else {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            };
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                read_headers(conn, &mut raw).await?;
                return Ok(raw);
            }
            let start = raw.len();
            raw.resize(start + size + 2, 0);
            conn.read_exact(&mut raw[start..]).await?;
        }
    }
    if let Some(n) = head
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        raw.resize(n, 0);
        conn.read_exact(&mut raw).await?;
        return Ok(raw);
    }
    if to_eof == Some(true) {
        conn.read_to_end(&mut raw).await?;
    }
    Ok(raw)
}

/// The whole answer as raw bytes, its status, and whether the service closes the connection.
async fn read_response(
    conn: &mut Conn,
    method: &str,
) -> std::io::Result<Option<(u16, bool, Vec<u8>)>> {
    let mut raw = Vec::new();
    let Some(status_line) = read_line(conn, &mut raw).await? else {
        return Ok(None);
    };
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = read_headers(conn, &mut raw).await?;
    let head = Head {
        method: method.to_string(),
        target: String::new(),
        headers,
    };
    let close = head
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let bodiless = method == "HEAD" || status == 204 || status == 304 || status < 200;
    if !bodiless {
        let delimited =
            head.header("content-length").is_some() || head.header("transfer-encoding").is_some();
        let body = read_body(conn, &head, Some(!delimited)).await?;
        raw.extend_from_slice(&body);
        return Ok(Some((status, close || !delimited, raw)));
    }
    Ok(Some((status, close, raw)))
}

fn error_answer(busy: bool, style: Style, head: &Head) -> Vec<u8> {
    let request_id = uuid::Uuid::new_v4();
    let (status, code, message) = match (busy, style) {
        (true, Style::Storage) => (
            "503 Service Unavailable",
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
        ),
        (false, Style::Storage) => (
            "500 Internal Server Error",
            "InternalError",
            "Server encountered an internal error. Please try again after some time.",
        ),
        (true, Style::Json) => (
            "503 Service Unavailable",
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry.",
        ),
        (false, Style::Json) => (
            "500 Internal Server Error",
            "InternalServerError",
            "An unexpected error occurred. Please retry.",
        ),
    };
    let (content_type, body) = match style {
        Style::Storage => (
            "application/xml",
            format!(
                "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{request_id}\nTime:{}</Message></Error>",
                httpdate::fmt_http_date(std::time::SystemTime::now())
            ),
        ),
        Style::Json => (
            "application/json; charset=utf-8",
            serde_json::json!({"error": {"code": code, "message": message}}).to_string(),
        ),
    };
    let body = if head.method == "HEAD" {
        String::new()
    } else {
        body
    };
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-ms-request-id: {request_id}\r\ndate: {}\r\n",
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    if matches!(style, Style::Storage) {
        answer.push_str(&format!(
            "x-ms-error-code: {code}\r\nx-ms-version: 2025-11-05\r\n"
        ));
    }
    if busy {
        answer.push_str("retry-after: 1\r\n");
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    answer.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded() {
        let (mut a, mut b, mut c) = (7u64, 7u64, 8u64);
        let xs: Vec<f64> = (0..5).map(|_| next_unit(&mut a)).collect();
        let ys: Vec<f64> = (0..5).map(|_| next_unit(&mut b)).collect();
        let zs: Vec<f64> = (0..5).map(|_| next_unit(&mut c)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
    }
}

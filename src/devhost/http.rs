//! The dev host's side of the wire, sent as the Functions host sends it (`DefaultHttpWorkerService`
//! with .NET's `HttpClient`): one pool of kept-alive connections for the life of the host; each
//! invocation a `POST` whose body, an `ObjectContent` of unknown length, goes out
//! `Transfer-Encoding: chunked` with no `Content-Length`; the headers `Host`,
//! `X-Azure-Functions-HostVersion`, `X-Azure-Functions-InvocationId`,
//! `User-Agent: Azure-Functions-Host/<version>` and
//! `Content-Type: application/json; charset=utf-8`, and nothing else (hyper's client adds no
//! `Accept` as reqwest would). The request times out after `functionTimeout` + 1 minute, as the
//! host's does.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The host version the dev host announces (a marker, not a real host version).
pub const HOST_VERSION: &str = "4.0.0-devhost";
/// How the body is cut into chunks: at fixed byte offsets, regardless of UTF-8 boundaries, as a
/// buffered stream writer does.
const CHUNK_BYTES: usize = 4096;
/// .NET's `SocketsHttpHandler.PooledConnectionIdleTimeout` default.
const POOL_IDLE: Duration = Duration::from_secs(60);

type ChunkedBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Why an invocation got no answer: the transport's side of an invocation failure
/// ([`super::InvocationFailure`]). Each `Display` is the reason the dev host logs and poisons
/// with; the dependency's error stays the source.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("building the invocation: {0}")]
    Build(#[source] hyper::http::Error),
    #[error("invocation failed: {0}")]
    Send(#[source] hyper_util::client::legacy::Error),
    #[error("reading the answer: {0}")]
    Read(#[source] hyper::Error),
    #[error("no answer within {0:?} (functionTimeout + 1 min)")]
    Timeout(Duration),
}

/// The answer to an invocation.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HostClient {
    invocations: Client<HttpConnector, ChunkedBody>,
    probes: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl HostClient {
    pub fn new(timeout: Duration) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new());
        Self {
            invocations: builder.build_http(),
            probes: builder.build_http(),
            timeout,
        }
    }

    /// `GET /`: any HTTP answer means the handler is up (the host's readiness check).
    pub async fn probe(&self, base_url: &str) -> bool {
        let Ok(request) = Request::get(format!("{base_url}/")).body(Empty::new()) else {
            return false;
        };
        match tokio::time::timeout(Duration::from_secs(5), self.probes.request(request)).await {
            Ok(Ok(response)) => {
                let _ = response.into_body().collect().await;
                true
            }
            _ => false,
        }
    }

    /// POSTs one invocation body, chunked.
    pub async fn invoke(
        &self,
        url: &str,
        invocation_id: &str,
        body: Vec<u8>,
    ) -> Result<Answer, TransportError> {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body
            .chunks(CHUNK_BYTES)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .header("Content-Type", "application/json; charset=utf-8")
            .body(StreamBody::new(futures::stream::iter(chunks)))
            .map_err(TransportError::Build)?;
        let exchange = async {
            let response = self
                .invocations
                .request(request)
                .await
                .map_err(TransportError::Send)?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(TransportError::Read)?
                .to_bytes();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What reaches the socket: a raw listener records the request bytes.
    #[tokio::test]
    async fn invocations_go_out_chunked_with_the_host_headers_on_one_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut request = Vec::new();
                let mut buf = [0u8; 65536];
                while !request.ends_with(b"0\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the connection stays open between requests");
                    request.extend_from_slice(&buf[..n]);
                }
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                    .await
                    .unwrap();
                seen.push(request);
            }
            seen
        });
        let client = HostClient::new(Duration::from_secs(10));
        let body = "é".repeat(5000).into_bytes();
        for _ in 0..2 {
            let answer = client
                .invoke(
                    &format!("http://{addr}/Notifications"),
                    "id-1",
                    body.clone(),
                )
                .await
                .unwrap();
            assert_eq!(answer.status, StatusCode::OK);
        }
        let seen = server.await.unwrap();
        let raw = &seen[0];
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        assert!(
            head.starts_with("post /notifications http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(!head.contains("accept"), "{head}");
        assert!(
            head.contains("content-type: application/json; charset=utf-8"),
            "{head}"
        );
        assert!(head.contains("user-agent: azure-functions-host/"), "{head}");
        assert!(
            head.contains("x-azure-functions-invocationid: id-1"),
            "{head}"
        );
        assert!(head.contains("x-azure-functions-hostversion:"), "{head}");
        // 10 000 bytes in 4096-byte chunks, cut inside two-byte characters.
        let mut rest = &raw[head_end + 4..];
        let mut sizes = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
            if size == 0 {
                break;
            }
            sizes.push(size);
            rest = &rest[line_end + 2 + size + 2..];
        }
        assert_eq!(sizes, vec![4096, 4096, 1808]);
    }
}

//! The connection layer under the warp routes: HTTP/1.1 with kept-alive connections (the host
//! reuses one pool), a header-read timeout that also closes connections left idle between
//! requests, and JSON for the answers hyper writes itself.
//!
//! hyper answers a request it cannot parse (headers over the limit → 431, a bad request line
//! → 400, a URI too long → 414) before any route sees it, with an empty body and no
//! `Content-Type`. [`JsonParseErrors`] rewrites exactly those answers into the JSON every other
//! answer has. It recognises them by what hyper always writes for them and the routes never do:
//! an error status line with no `Content-Type` header.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a closing server waits for invocations in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` and serves each with `service` until `shutdown` resolves,
/// then lets connections finish their current request.
pub async fn accept_loop<S, B>(
    listener: TcpListener,
    service: S,
    header_read_timeout: Duration,
    max_header_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(JsonParseErrors::new(stream));
        let service = service.clone();
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_header_size(max_header_bytes)
            .keep_alive(true)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A client gone, a header timeout: the connection's business, not the app's.
                tracing::debug!("connection closed: {e}");
            }
        });
    }
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

/// A socket whose writes of hyper's own error answers become JSON (see the module docs).
pub struct JsonParseErrors<T> {
    inner: T,
    rewrite: Option<Rewrite>,
}

struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    /// How much of the caller's buffer the rewritten answer stands for.
    replaces: usize,
}

impl<T> JsonParseErrors<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            rewrite: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewrite.is_none() {
            if let Some((bytes, replaces)) = json_error_answer(buf) {
                this.rewrite = Some(Rewrite {
                    bytes,
                    written: 0,
                    replaces,
                });
            }
        }
        let Some(rewrite) = &mut this.rewrite else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while rewrite.written < rewrite.bytes.len() {
            let n = ready!(
                Pin::new(&mut this.inner).poll_write(cx, &rewrite.bytes[rewrite.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rewrite.written += n;
        }
        let replaces = rewrite.replaces;
        this.rewrite = None;
        Poll::Ready(Ok(replaces))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        let this = self.get_mut();
        match first {
            Some(first) if this.rewrite.is_some() || json_error_answer(first).is_some() => {
                Pin::new(this).poll_write(cx, first)
            }
            _ => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// If `buf` opens with one of hyper's own error answers (an error status, no `Content-Type`),
/// the JSON answer to write instead, and how many bytes of `buf` it replaces.
fn json_error_answer(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    if rest.len() < 3 || !matches!(rest[0], b'4' | b'5') {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let has = |name: &str| {
        headers.iter().any(|h| {
            h.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        })
    };
    if has("content-type") {
        return None;
    }
    let reason = status_line.split_once(' ').map_or("error", |(_, r)| r);
    let body = serde_json::json!({
        "Outputs": {},
        "Logs": [format!("{reason}: the request could not be read as HTTP")],
        "ReturnValue": null,
    })
    .to_string();
    let mut answer = format!("{status_line}\r\n");
    for h in headers.iter().filter(|h| {
        !h.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
    }) {
        answer.push_str(h);
        answer.push_str("\r\n");
    }
    answer.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some((answer.into_bytes(), head_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_become_json() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (answer, replaces) = json_error_answer(head).unwrap();
        assert_eq!(replaces, head.len());
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains("date: x"));
        assert!(!head.contains("content-length: 0"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["Logs"][0].as_str().unwrap().contains("Too Large"));
    }

    #[test]
    fn answers_of_the_routes_are_left_alone() {
        for buf in [
            &b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"{\"Outputs\":{}}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-len",
        ] {
            assert!(json_error_answer(buf).is_none(), "{}", String::from_utf8_lossy(buf));
        }
    }
}

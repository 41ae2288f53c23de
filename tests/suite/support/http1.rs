//! The accept loop of the tests' HTTP/1.1 servers (the fixtures and the recording proxies):
//! hyper's server, keep-alive on, chunked and sized bodies both decoded.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves every connection `listener` accepts with `service(n)`, n counting connections from
/// 0, for as long as the calling task runs (abort it to stop).
pub async fn serve<S, B>(listener: TcpListener, mut service: impl FnMut(usize) -> S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let mut connections = tokio::task::JoinSet::new();
    let mut accepted = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service(accepted);
        accepted += 1;
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow for the server's life.
        while connections.try_join_next().is_some() {}
    }
}

/// A test server: [`serve`] on its own task, stopped when dropped (the task owns the
/// connection tasks, so they end too).
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// `serving` (a [`serve`] future) on its own task; `addr` is where it listens.
    pub fn spawn(addr: SocketAddr, serving: impl Future<Output = ()> + Send + 'static) -> Server {
        Server {
            addr,
            task: tokio::spawn(serving),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

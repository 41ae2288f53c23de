//! The process's one HTTP client, below every layer that talks HTTP: the storage clients,
//! the Training API and the Resource Manager reads.

use std::sync::{Arc, OnceLock};

use azure_core::http::{AsyncRawResponse, HttpClient, Request};

/// The client could not be built (the platform's root certificates, the TLS provider).
/// Kept once for the process (an `Arc`: every caller gets the same failure, with its source).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct HttpClientError(#[source] Arc<reqwest::Error>);

/// The process's one HTTP client, shared by every SDK client, the token credential and the
/// Training API: one certificate load, one connection pool. Building it reads the platform's
/// root certificates (some 150 files), so it is built on first use, not before the server
/// answers the host's start-up probe; [`SharedHttp::warm`] builds it in the background right
/// after.
#[derive(Clone, Debug, Default)]
pub struct SharedHttp {
    client: Arc<OnceLock<Result<reqwest::Client, HttpClientError>>>,
    /// Whole-request deadline, when set.
    total: Option<std::time::Duration>,
}

impl SharedHttp {
    /// A client whose every request ends within `total`: connect, send, and the whole answer.
    /// The read timeout alone restarts with every byte, so a server that drips bytes would
    /// hold a request forever. For tools a person waits on (`cvctl`); the handler has its
    /// invocation budget instead.
    pub fn with_total_timeout(total: std::time::Duration) -> Self {
        Self {
            total: Some(total),
            ..Self::default()
        }
    }

    pub fn client(&self) -> Result<&reqwest::Client, HttpClientError> {
        self.client
            .get_or_init(|| {
                // rustls on ring; a provider someone installed first is as good.
                let _ = rustls::crypto::ring::default_provider().install_default();
                // The SDK's own defaults: connect and read timeouts, no redirects.
                let mut builder = reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .read_timeout(std::time::Duration::from_secs(60))
                    .redirect(reqwest::redirect::Policy::none());
                if let Some(total) = self.total {
                    builder = builder.timeout(total);
                }
                builder.build().map_err(|e| HttpClientError(Arc::new(e)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Builds the client on a blocking thread now, so the first invocation finds it ready.
    pub fn warm(&self) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = this.client() {
                tracing::error!("{}", crate::error_chain::Chain(&e));
            }
        });
    }
}

#[async_trait::async_trait]
impl HttpClient for SharedHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let client = self.client().map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Other, e.to_string())
        })?;
        client.execute_request(request).await
    }
}

/// A [`SharedHttp`] for a process (tools and tests that make their own).
pub fn http_client() -> SharedHttp {
    SharedHttp::default()
}

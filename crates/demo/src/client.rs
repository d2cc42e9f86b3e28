//! A minimal HTTP/1.1 client over one keep-alive connection (hyper over a
//! Tokio `TcpStream`), used by the load generator and the tests.
//!
//! It only talks to loopback addresses: [`HttpClient::connect`] refuses any
//! other.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Largest response body the client reads.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The target is not a loopback address.
    #[error("{0}: only loopback addresses are allowed")]
    NotLoopback(SocketAddr),
    /// Connecting failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The server address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request could not be built (a bad path).
    #[error("building the request: {0}")]
    Request(String),
    /// The connection failed while sending or receiving.
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    /// No complete answer within the time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One HTTP/1.1 connection to the demo server.
#[derive(Debug)]
pub struct HttpClient {
    addr: SocketAddr,
    sender: SendRequest<Body>,
    connection: tokio::task::JoinHandle<()>,
}

impl HttpClient {
    /// Opens a connection to `addr` (a loopback address) on the current
    /// Tokio runtime.
    pub async fn connect(addr: SocketAddr) -> Result<HttpClient, ClientError> {
        if !addr.ip().is_loopback() {
            return Err(ClientError::NotLoopback(addr));
        }
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let connection = tokio::spawn(async move {
            // Ends when the server or the client closes the connection; an
            // error here also shows up on the pending request.
            let _ = connection.await;
        });
        Ok(HttpClient {
            addr,
            sender,
            connection,
        })
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection can still carry requests.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads the whole answer, within `timeout`.
    /// `body` is sent as `application/json` when present.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string());
        let body = match body {
            Some(bytes) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = builder
            .body(body)
            .map_err(|e| ClientError::Request(e.to_string()))?;
        self.sender
            .ready()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok((status, bytes))
    }

    /// `GET path`.
    pub async fn get(
        &mut self,
        path: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.request(Method::GET, path, None, timeout).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(
        &mut self,
        path: &str,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.request(Method::POST, path, Some(body.into()), timeout)
            .await
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

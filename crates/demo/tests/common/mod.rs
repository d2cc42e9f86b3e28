//! Helpers shared by the integration tests: one model load per test binary,
//! servers on port 0, a client with timeouts, and a watchdog so a hang fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use compute_demo::client::HttpClient;
use compute_demo::dispatch::Mode;
use compute_demo::server::{DemoServer, ErrorBody, Limits, ServerOptions};
use compute_demo::workloads::Models;
use compute_runtime::RuntimeConfig;

/// Per-request time limit in tests (generous: debug builds are slow).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The models, loaded once per test binary.
pub fn models() -> Arc<Models> {
    static MODELS: OnceLock<Arc<Models>> = OnceLock::new();
    MODELS
        .get_or_init(|| Models::load().expect("cl100k_base ships inside tiktoken-rs"))
        .clone()
}

/// A small runtime: two Tokio workers, two compute threads.
pub fn runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        num_worker_threads: Some(2),
        compute_threads: Some(2),
        ..RuntimeConfig::default()
    }
}

/// A server in `mode` on 127.0.0.1, port chosen by the OS.
pub fn start(mode: Mode) -> DemoServer {
    DemoServer::start(
        ServerOptions {
            mode,
            runtime: runtime_config(),
            ..ServerOptions::default()
        },
        models(),
    )
    .expect("the server starts")
}

/// Runs `body` on another thread and fails the test if it takes longer than
/// `limit` (the stuck thread is left behind; the test fails fast).
pub fn with_watchdog<R: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sends before it returns"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

/// A current-thread Tokio runtime for the client side.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a client runtime")
}

/// One request on a fresh connection; the answer's status and body text.
pub fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, String) {
    client_runtime().block_on(async {
        let mut client = HttpClient::connect(addr).await.expect("connect");
        let (status, bytes) = client
            .request(method, path, body.map(Into::into), REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// `POST path` with a JSON body.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> (StatusCode, String) {
    call(addr, Method::POST, path, Some(body.as_bytes().to_vec()))
}

/// Asserts that the server still answers `/ping`.
pub fn assert_alive(addr: SocketAddr, after: &str) {
    let (status, body) = call(addr, Method::GET, "/ping", None);
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "pong"),
        "/ping after {after}"
    );
}

/// A server in `mode` with its own limits and `max_in_flight` (the
/// default `max_queued`).
pub fn start_with(mode: Mode, limits: Limits, max_in_flight: Option<usize>) -> DemoServer {
    start_bounded(mode, limits, max_in_flight, None)
}

/// A server in `mode` with its own limits, `max_in_flight` and
/// `max_queued`.
pub fn start_bounded(
    mode: Mode,
    limits: Limits,
    max_in_flight: Option<usize>,
    max_queued: Option<usize>,
) -> DemoServer {
    DemoServer::start(
        ServerOptions {
            mode,
            runtime: RuntimeConfig {
                max_in_flight,
                max_queued,
                ..runtime_config()
            },
            limits,
            ..ServerOptions::default()
        },
        models(),
    )
    .expect("the server starts")
}

/// An answer read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    /// The status code.
    pub status: u16,
    /// The head, lower-cased, for header checks.
    pub head: String,
    /// The body.
    pub body: String,
}

impl RawAnswer {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    }

    /// The `{"error": ..}` reason; panics if the body is not that JSON.
    pub fn error(&self) -> String {
        serde_json::from_str::<ErrorBody>(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {self:?}"))
            .error
    }
}

/// Connects to `addr` with a read timeout on the socket.
pub fn raw_connect(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads one answer (head and a `Content-Length` body) off `stream`.
pub fn read_answer(stream: &mut TcpStream) -> std::io::Result<RawAnswer> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes", data.len()),
            ));
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut answer = RawAnswer {
        status,
        head,
        body: String::new(),
    };
    let length: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    let end = data.len().min(head_end + length);
    answer.body = String::from_utf8_lossy(&data[head_end..end]).into_owned();
    Ok(answer)
}

/// Sends `request` as is on a fresh connection and reads the answer
/// (within 30 s).
pub fn raw(addr: SocketAddr, request: &[u8]) -> RawAnswer {
    let mut stream = raw_connect(addr, Duration::from_secs(30));
    stream.write_all(request).expect("send");
    read_answer(&mut stream).expect("an answer")
}

/// Whether the server closes `stream` (EOF or reset) within `limit`.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 1024];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

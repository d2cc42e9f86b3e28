//! Helpers shared by the integration tests: one model load per test binary,
//! servers on port 0, a client with timeouts, and a watchdog so a hang fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use compute_demo::client::HttpClient;
use compute_demo::dispatch::Mode;
use compute_demo::server::{DemoServer, ServerOptions};
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

//! The client tasks: closed-loop compute clients and the `/ping` canary,
//! each on its own keep-alive connection, bounded in time and in count.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::Method;

use super::stats::Recorder;
use super::{Corpus, Endpoint, LoadConfig};
use crate::client::{ClientError, HttpClient};

/// Time marks shared by the tasks of one run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) measure_from: Instant,
    pub(super) end: Instant,
}

impl Window {
    /// The window of a run against `addr` starting now: `config`'s
    /// warm-up, then its duration. Loads go to loopback addresses only.
    pub(super) fn starting_now(
        addr: SocketAddr,
        config: &LoadConfig,
    ) -> Result<Window, ClientError> {
        if !addr.ip().is_loopback() {
            return Err(ClientError::NotLoopback(addr));
        }
        let start = Instant::now();
        Ok(Window {
            measure_from: start + config.warmup,
            end: start + config.warmup + config.duration,
        })
    }
}

/// Sends one request and records it if it started inside the window;
/// returns whether it did.
async fn send_one(
    client: &mut Option<HttpClient>,
    addr: SocketAddr,
    endpoint: Endpoint,
    body: Option<Bytes>,
    config: &LoadConfig,
    window: Window,
    recorder: &mut Recorder,
) -> bool {
    let started = Instant::now();
    let measured = started >= window.measure_from;
    if client.as_ref().is_none_or(|c| !c.is_open()) {
        match HttpClient::connect(addr).await {
            Ok(c) => *client = Some(c),
            Err(e) => {
                if measured {
                    recorder.failure(endpoint, || e.to_string());
                }
                // Do not spin on a refusing server.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return measured;
            }
        }
    }
    let Some(connection) = client.as_mut() else {
        return false;
    };
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let outcome = connection
        .request(method, endpoint.path(), body, config.request_timeout)
        .await;
    let latency = started.elapsed();
    match outcome {
        Ok((status, _)) if status.is_success() => {
            if measured {
                recorder.success(endpoint, latency);
            }
        }
        Ok((status, body)) => {
            if measured {
                recorder.failure(endpoint, || {
                    format!("{status}: {}", String::from_utf8_lossy(&body))
                });
            }
        }
        Err(e) => {
            if measured {
                recorder.failure(endpoint, || e.to_string());
            }
            if matches!(e, ClientError::Timeout(_) | ClientError::Http(_)) {
                // The connection may hold a half-read answer: start afresh.
                *client = None;
            }
        }
    }
    measured
}

/// A hard cap on the requests one client sends in a run, on top of the
/// time limit (at 100 000 requests/s it would take 100 s to reach).
pub const MAX_REQUESTS_PER_CLIENT: usize = 10_000_000;

/// A closed-loop client that cycles through `endpoints` (compute endpoints,
/// at least one), starting at the `index`-th.
pub(super) async fn compute_client(
    index: usize,
    endpoints: Arc<[Endpoint]>,
    addr: SocketAddr,
    corpus: Arc<Corpus>,
    config: LoadConfig,
    window: Window,
    completed: Arc<AtomicU64>,
) -> Recorder {
    let mut recorder = Recorder::default();
    let mut client = None;
    let kinds = endpoints.len().max(1);
    // However short the window, each client measures at least one request
    // of each of its endpoints (it may run past the end for them).
    let mut measured = vec![false; endpoints.len()];
    for n in (index..).take(MAX_REQUESTS_PER_CLIENT) {
        if Instant::now() >= window.end && measured.iter().all(|m| *m) {
            break;
        }
        let slot = n % kinds;
        let Some(&endpoint) = endpoints.get(slot) else {
            break;
        };
        let body = corpus.body(endpoint, n / kinds);
        measured[slot] |= send_one(
            &mut client,
            addr,
            endpoint,
            body,
            &config,
            window,
            &mut recorder,
        )
        .await;
        // ORDERING: Relaxed: a progress tally, read only for display.
        completed.fetch_add(1, Ordering::Relaxed);
    }
    recorder
}

pub(super) async fn canary(
    addr: SocketAddr,
    config: LoadConfig,
    window: Window,
    completed: Arc<AtomicU64>,
) -> Recorder {
    let mut recorder = Recorder::default();
    let mut client = None;
    let mut ticks = tokio::time::interval(config.ping_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Like a compute client, at least one measured ping however short the
    // window.
    let mut measured = false;
    for _ in 0..MAX_REQUESTS_PER_CLIENT {
        if Instant::now() >= window.end && measured {
            break;
        }
        ticks.tick().await;
        measured |= send_one(
            &mut client,
            addr,
            Endpoint::Ping,
            None,
            &config,
            window,
            &mut recorder,
        )
        .await;
        // ORDERING: Relaxed: a progress tally, read only for display.
        completed.fetch_add(1, Ordering::Relaxed);
    }
    recorder
}

//! The two probes that run while the flood is in progress, on a thread and
//! a Tokio runtime of their own (so they do not queue behind the flood's
//! clients), each on connections opened before the flood:
//!
//! - the `/ping` canary: one keep-alive connection sending `GET /ping`
//!   every [`FloodOptions::canary_every`] until the flood ends;
//! - the late arrivals: [`FloodOptions::late_requests`] `POST /tokenize`
//!   requests of [`FloodOptions::late_body_bytes`], one after another, each
//!   on its own connection and each sent once the pool is full.
//!
//! Every probe connection first gets a `/ping` answered before the flood
//! starts, so the server has accepted it and counts it among the
//! connections it serves: the connection limit does not refuse the probes.
//! The probes start once the pool is full (it holds `max_in_flight +
//! max_queued` jobs), or once the flood's clients are all done if it never
//! fills.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use super::wire::{ask, exchange, Outcome};
use super::{median, tokenize_body, FloodOptions};
use crate::dispatch::Dispatcher;

/// What the `/ping` canary saw.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CanaryReport {
    /// `GET /ping` requests sent.
    pub sent: u64,
    /// Of them, answered `200`.
    pub ok: u64,
    /// Median time from sending a `/ping` to its whole answer, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the same (nearest rank), ms.
    pub p99_ms: Option<f64>,
    /// Slowest, ms.
    pub max_ms: Option<f64>,
    /// Why the canary stopped before the flood ended, if it did (its
    /// connection failed or a `/ping` went unanswered).
    pub failure: Option<String>,
}

/// What the late arrivals saw: small `/tokenize` requests sent while the
/// pool was full.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LateReport {
    /// Requests sent.
    pub sent: u64,
    /// Of them, sent once the flood's clients were all done rather than
    /// on a full pool (the pool no longer filled).
    pub after_flood: u64,
    /// Bytes of each request body.
    pub body_bytes: usize,
    /// `200` answers (the pool had room again by the time it arrived).
    pub ok: u64,
    /// `503` answers because the pool was full, with `Retry-After`.
    pub saturated: u64,
    /// Any other answer.
    pub other: u64,
    /// Requests with no complete answer.
    pub unanswered: u64,
    /// The first reason a request got no answer, if one did not.
    pub first_unanswered: Option<String>,
    /// Median time from sending a request to its whole saturated `503`, ms.
    pub saturated_p50_ms: Option<f64>,
    /// Slowest saturated `503`, ms.
    pub saturated_max_ms: Option<f64>,
}

impl LateReport {
    /// The answers and failures counted: always [`sent`](Self::sent).
    pub fn total(&self) -> u64 {
        self.ok + self.saturated + self.other + self.unanswered
    }
}

/// Both probes, and when they started.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProbesReport {
    /// From the flood's start to the probes' start, ms.
    pub started_ms: f64,
    /// Whether the pool was full when the probes started (otherwise the
    /// flood's clients were all done and the pool never filled).
    pub pool_was_full: bool,
    /// The `/ping` canary.
    pub canary: CanaryReport,
    /// The late arrivals.
    pub late: LateReport,
}

/// The probes' thread, with its connections open and answered.
pub(super) struct Probes {
    go: mpsc::Sender<Instant>,
    flood_done: Arc<AtomicBool>,
    thread: JoinHandle<ProbesReport>,
}

/// The probes' connections: the canary's, then one per late arrival.
struct Connections {
    canary: TcpStream,
    late: Vec<TcpStream>,
}

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nhost: flood\r\n\r\n";

impl Probes {
    /// Starts the probes' thread and opens their connections to `addr`,
    /// each answered a `/ping`; returns once they are, or why they could
    /// not be.
    pub(super) fn connect(
        addr: SocketAddr,
        dispatcher: Dispatcher,
        options: &FloodOptions,
    ) -> Result<Probes, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (go, go_rx) = mpsc::channel::<Instant>();
        let flood_done = Arc::new(AtomicBool::new(false));
        let done = flood_done.clone();
        let late_requests = options.late_requests;
        let every = options.canary_every.max(Duration::from_millis(1));
        let timeout = options.request_timeout;
        let body = tokenize_body(options.late_body_bytes);
        let head = Bytes::from(format!(
            "POST /tokenize HTTP/1.1\r\nhost: flood\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let thread = std::thread::Builder::new()
            .name("flood-probes".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("probe runtime: {e}")));
                        return ProbesReport::default();
                    }
                };
                // The timer is made inside the runtime, which it needs.
                let connections = runtime.block_on(async {
                    tokio::time::timeout(timeout, open(addr, late_requests)).await
                });
                let connections = match connections {
                    Ok(Ok(connections)) => connections,
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(format!("probe connection: {e}")));
                        return ProbesReport::default();
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err(format!(
                            "probe connections not answered within {timeout:?}"
                        )));
                        return ProbesReport::default();
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let Ok(flood_started) = go_rx.recv() else {
                    return ProbesReport::default();
                };
                runtime.block_on(run(
                    connections,
                    Run {
                        dispatcher,
                        flood_done: done,
                        flood_started,
                        every,
                        timeout,
                        head,
                        body,
                    },
                ))
            })
            .map_err(|e| format!("probe thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Probes {
                go,
                flood_done,
                thread,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the probe thread ended before it was ready".to_string()),
        }
    }

    /// Tells the probes the flood started at `at`: they wait for the pool
    /// to fill, then run.
    pub(super) fn start(&self, at: Instant) {
        let _ = self.go.send(at);
    }

    /// Tells the probes the flood's clients are all done, and waits for
    /// them to finish (the late arrivals all sent, the canary stopped).
    pub(super) fn finish(self) -> ProbesReport {
        self.flood_done.store(true, Ordering::SeqCst);
        drop(self.go);
        self.thread.join().unwrap_or_default()
    }
}

/// Opens the canary's connection and `late` more, each answered a `/ping`.
async fn open(addr: SocketAddr, late: usize) -> std::io::Result<Connections> {
    let mut streams = Vec::with_capacity(late + 1);
    for _ in 0..=late {
        let mut stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let answer = ask(&mut stream, PING).await?;
        if answer.status != 200 {
            return Err(std::io::Error::other(format!(
                "/ping before the flood answered {}",
                answer.status
            )));
        }
        streams.push(stream);
    }
    let canary = streams.remove(0);
    Ok(Connections {
        canary,
        late: streams,
    })
}

/// What the probes run with.
struct Run {
    dispatcher: Dispatcher,
    flood_done: Arc<AtomicBool>,
    flood_started: Instant,
    every: Duration,
    timeout: Duration,
    head: Bytes,
    body: Bytes,
}

/// Waits until the pool is full or the flood's clients are all done;
/// returns whether the pool was full.
async fn pool_full(run: &Run) -> bool {
    loop {
        if run.dispatcher.is_saturated() {
            return true;
        }
        if run.flood_done.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs both probes once the pool is full.
async fn run(connections: Connections, run: Run) -> ProbesReport {
    let pool_was_full = pool_full(&run).await;
    let started_ms = run.flood_started.elapsed().as_secs_f64() * 1000.0;
    let late_done = Cell::new(false);
    let late = async {
        let report = late_arrivals(connections.late, &run).await;
        late_done.set(true);
        report
    };
    let (canary, late) = tokio::join!(canary(connections.canary, &run, &late_done), late);
    ProbesReport {
        started_ms,
        pool_was_full,
        canary,
        late,
    }
}

/// `GET /ping` every `run.every` on one connection, until the flood's
/// clients and the late arrivals are all done (at least once).
async fn canary(mut stream: TcpStream, run: &Run, late_done: &Cell<bool>) -> CanaryReport {
    let mut report = CanaryReport::default();
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(run.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        report.sent += 1;
        let started = Instant::now();
        match tokio::time::timeout(run.timeout, ask(&mut stream, PING)).await {
            Ok(Ok(answer)) => {
                if answer.status == 200 {
                    report.ok += 1;
                }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(Err(e)) => {
                report.failure = Some(format!("/ping: {e}"));
                break;
            }
            Err(_) => {
                report.failure = Some(format!("/ping not answered within {:?}", run.timeout));
                break;
            }
        }
        if late_done.get() && run.flood_done.load(Ordering::SeqCst) {
            break;
        }
    }
    report.p50_ms = median(&mut latencies);
    report.p99_ms = nearest_rank(&latencies, 0.99);
    report.max_ms = latencies.last().copied();
    report
}

/// The late arrivals: one request per connection, one after another, each
/// sent once the pool is full (or the flood's clients are all done).
async fn late_arrivals(streams: Vec<TcpStream>, run: &Run) -> LateReport {
    let mut report = LateReport {
        body_bytes: run.body.len(),
        ..LateReport::default()
    };
    let mut saturated_ms = Vec::new();
    for stream in streams {
        if !pool_full(run).await {
            report.after_flood += 1;
        }
        report.sent += 1;
        let started = Instant::now();
        let result = tokio::time::timeout(
            run.timeout,
            exchange(stream, run.head.clone(), run.body.clone()),
        )
        .await
        .ok();
        match Outcome::of(result, started, run.timeout) {
            Outcome::Answered { status: 200, .. } => report.ok += 1,
            Outcome::Answered {
                status: 503,
                saturated: true,
                retry_after: true,
                after,
                ..
            } => {
                report.saturated += 1;
                saturated_ms.push(after.as_secs_f64() * 1000.0);
            }
            Outcome::Answered { .. } => report.other += 1,
            Outcome::Unanswered(reason) => {
                report.unanswered += 1;
                report.first_unanswered.get_or_insert(reason);
            }
        }
    }
    report.saturated_p50_ms = median(&mut saturated_ms);
    report.saturated_max_ms = saturated_ms.last().copied();
    report
}

/// The `q` quantile of sorted `values` by nearest rank, if any.
fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_ranks() {
        assert_eq!(nearest_rank(&[], 0.99), None);
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(nearest_rank(&values, 0.99), Some(198.0));
        assert_eq!(nearest_rank(&[5.0], 0.99), Some(5.0));
    }
}

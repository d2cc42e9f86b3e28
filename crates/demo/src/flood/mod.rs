//! The overload flood (`compute-demo --flood`): many clients at once, each
//! on a connection of its own, each sending one large `POST /tokenize`,
//! against a `pool` server in this process. It counts the answers by kind,
//! times the `503`s, and reads the process's resident memory before,
//! during and after.
//!
//! Every client writes its body while it reads, so a client the server
//! answers before it has read the body (the early `503`) sees the answer
//! rather than a broken pipe. A client without a complete answer within
//! [`FloodOptions::request_timeout`] counts as unanswered; each answer or
//! failure counts once, so the counts add up to the clients.
//!
//! While the flood is in progress, two probes measure what a client that
//! is not part of it sees (see [`probes`]): a `/ping` canary, and late
//! arrivals that find the pool full.
//!
//! Memory comes from `/proc/self/status` (Linux): `VmRSS` when the server
//! is idle, `VmHWM` (the peak, reset just before the flood through
//! `/proc/self/clear_refs`) and `VmRSS` once every client is done. The
//! clients run in the same process, but they share one body buffer and
//! keep only a small read buffer each, so the figures are the server's to
//! within a few MiB.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use compute_runtime::RuntimeConfig;
use serde::{Deserialize, Serialize};

use crate::dispatch::Mode;
use crate::server::{DemoServer, Limits, ServerError, ServerOptions};
use crate::workloads::Models;
use probes::Probes;
pub use probes::{CanaryReport, LateReport, ProbesReport};
use wire::{one_client, Outcome};

pub mod probes;
mod wire;

/// What to flood with.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// Clients, each opening one connection and sending one request, all at
    /// once (1 to 1024).
    pub clients: usize,
    /// Size of each `/tokenize` body in bytes (at most the server's body
    /// limit; the body is built by [`tokenize_body`]).
    pub body_bytes: usize,
    /// A client without a complete answer by then counts as unanswered.
    pub request_timeout: Duration,
    /// The server's runtime (its admission settings as
    /// [`admission`](crate::server::admission) completes them).
    pub runtime: RuntimeConfig,
    /// The server's limits.
    pub limits: Limits,
    /// The address the server binds (loopback).
    pub listen: SocketAddr,
    /// The `/ping` canary sends one `/ping` this often (at least 1 ms).
    pub canary_every: Duration,
    /// Late arrivals: small `/tokenize` requests sent one after another
    /// once the pool is full (0 to 64).
    pub late_requests: usize,
    /// Size of each late arrival's body in bytes.
    pub late_body_bytes: usize,
}

impl Default for FloodOptions {
    /// 500 clients of 1 MiB each, 60 s to answer, the default runtime and
    /// limits, on 127.0.0.1; a `/ping` every 10 ms and 20 late arrivals of
    /// 1 KiB.
    fn default() -> FloodOptions {
        FloodOptions {
            clients: 500,
            body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            runtime: RuntimeConfig::default(),
            limits: Limits::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            canary_every: Duration::from_millis(10),
            late_requests: 20,
            late_body_bytes: 1024,
        }
    }
}

/// Resident memory of this process, in KiB, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most resident since the start, or since the last reset
    /// ([`reset_peak_memory`]).
    pub peak_kib: u64,
}

/// This process's resident memory, where `/proc/self/status` has it.
pub fn memory() -> Option<Memory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// Resets this process's `VmHWM` to its current resident memory (Linux:
/// writes `5` to `/proc/self/clear_refs`). Returns whether it did.
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `/tokenize` body of at most `bytes` bytes (and close to it): as many
/// texts as needed, each under the server's 64 KiB text limit, with
/// `return_ids` false so the answers stay small.
pub fn tokenize_body(bytes: usize) -> Bytes {
    const TEXT_MAX: usize = 65_000;
    const OVERHEAD: usize = r#"{"texts":[],"return_ids":false}"#.len();
    let room = bytes.saturating_sub(OVERHEAD);
    let texts = room.div_ceil(TEXT_MAX).max(1);
    // Each text costs its length plus two quotes and a comma.
    let each = (room / texts).saturating_sub(3).max(1);
    let text: String = "the quick brown fox jumps over the lazy dog "
        .chars()
        .cycle()
        .take(each)
        .collect();
    let body = serde_json::json!({ "texts": vec![text; texts], "return_ids": false });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// The flood's counts and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloodReport {
    /// Clients (each sent one request).
    pub clients: usize,
    /// Bytes of each request body.
    pub body_bytes: usize,
    /// The server's compute threads.
    pub compute_threads: usize,
    /// Jobs that may run at once.
    pub max_in_flight: Option<usize>,
    /// Jobs that may wait beyond them.
    pub max_queued: Option<usize>,
    /// `200` answers.
    pub ok: u64,
    /// `503` answers because the pool was full (admission control).
    pub saturated: u64,
    /// `503` answers because the connection limit was reached.
    pub connection_limit: u64,
    /// Any other answer (another status, or a `503` for compute timeout).
    pub other: u64,
    /// Requests with no complete answer.
    pub unanswered: u64,
    /// The first reason a request got no answer, if one did not.
    pub first_unanswered: Option<String>,
    /// Median time from a client's start to its admission `503`, ms.
    pub saturated_p50_ms: Option<f64>,
    /// Slowest admission `503`, ms.
    pub saturated_max_ms: Option<f64>,
    /// Median time to a `200`, ms.
    pub ok_p50_ms: Option<f64>,
    /// From the first client's start to the last client's end, seconds.
    pub elapsed_s: f64,
    /// Resident memory with the server idle, before the flood.
    pub idle: Option<Memory>,
    /// Whether the peak was reset just before the flood (otherwise
    /// `peak_kib` includes the start-up).
    pub peak_reset: bool,
    /// Resident memory once every client was done: `peak_kib` is the
    /// highest since the reset.
    pub after: Option<Memory>,
    /// What the `/ping` canary and the late arrivals saw during the flood.
    pub probes: ProbesReport,
}

impl FloodReport {
    /// The answers and failures counted: always [`clients`](Self::clients).
    pub fn total(&self) -> u64 {
        self.ok + self.saturated + self.connection_limit + self.other + self.unanswered
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), crate::report::format_ms);
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        let mut out = format!(
            "flood: {} clients at once, each POST /tokenize with a {}-byte body; \
             pool mode, {} compute thread(s), max_in_flight {}, max_queued {}\n",
            self.clients,
            self.body_bytes,
            self.compute_threads,
            self.max_in_flight
                .map_or_else(|| "unset".to_string(), |n| n.to_string()),
            self.max_queued
                .map_or_else(|| "unset".to_string(), |n| n.to_string()),
        );
        out.push_str(&format!(
            "answers: {} x 200, {} x 503 saturated, {} x 503 connection limit, {} other, \
             {} without an answer ({} in all) in {:.1} s\n",
            self.ok,
            self.saturated,
            self.connection_limit,
            self.other,
            self.unanswered,
            self.total(),
            self.elapsed_s
        ));
        out.push_str(&format!(
            "time to the 503 (saturated): median {} ms, max {} ms; to the 200: median {} ms\n",
            ms(self.saturated_p50_ms),
            ms(self.saturated_max_ms),
            ms(self.ok_p50_ms)
        ));
        match (self.idle, self.after) {
            (Some(idle), Some(after)) => out.push_str(&format!(
                "resident memory (VmRSS): {} idle, {} at the peak (VmHWM{}), {} after",
                mib(idle.rss_kib),
                mib(after.peak_kib),
                if self.peak_reset {
                    ", reset before the flood"
                } else {
                    " since start-up: the reset was refused"
                },
                mib(after.rss_kib)
            )),
            _ => out.push_str("resident memory: not available on this platform"),
        }
        if let Some(reason) = &self.first_unanswered {
            out.push_str(&format!("\nfirst request without an answer: {reason}"));
        }
        let probes = &self.probes;
        out.push_str(&format!(
            "\nprobes from {} ms into the flood ({}):",
            ms(Some(probes.started_ms)),
            if probes.pool_was_full {
                "the pool full"
            } else {
                "the pool never filled: after the flood's clients"
            }
        ));
        let canary = &probes.canary;
        out.push_str(&format!(
            "\n/ping canary (one keep-alive connection): {} sent, {} x 200; \
             latency median {} ms, p99 {} ms, max {} ms",
            canary.sent,
            canary.ok,
            ms(canary.p50_ms),
            ms(canary.p99_ms),
            ms(canary.max_ms)
        ));
        if let Some(reason) = &canary.failure {
            out.push_str(&format!(" (stopped: {reason})"));
        }
        let late = &probes.late;
        out.push_str(&format!(
            "\nlate arrivals ({} x POST /tokenize of {} bytes, one after another, \
             each on its own connection): {} x 503 saturated with Retry-After, {} x 200, \
             {} other, {} without an answer; time to the 503: median {} ms, max {} ms",
            late.sent,
            late.body_bytes,
            late.saturated,
            late.ok,
            late.other,
            late.unanswered,
            ms(late.saturated_p50_ms),
            ms(late.saturated_max_ms)
        ));
        if late.after_flood > 0 {
            out.push_str(&format!(
                "; {} of them sent after the flood's clients were done, the pool not full",
                late.after_flood
            ));
        }
        if let Some(reason) = &late.first_unanswered {
            out.push_str(&format!(" (first without an answer: {reason})"));
        }
        out
    }
}

/// Why the flood could not run.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The server failed to start or stop.
    #[error("flood server: {0}")]
    Server(#[from] ServerError),
    /// The client runtime could not be built.
    #[error("building the client runtime: {0}")]
    ClientRuntime(std::io::Error),
    /// The probes could not open their connections before the flood.
    #[error("flood probes: {0}")]
    Probes(String),
}

/// Starts a `pool` server in this process, floods it (see the module docs)
/// and shuts it down. Must be called from synchronous code.
pub fn run_flood(options: &FloodOptions, models: Arc<Models>) -> Result<FloodReport, FloodError> {
    check(options, options.listen)?;
    let server = DemoServer::start(
        ServerOptions {
            mode: Mode::Pool,
            runtime: options.runtime.clone(),
            listen: options.listen,
            limits: options.limits.clone(),
            lanes: true,
        },
        models,
    )?;
    let report = run_flood_on(&server, options);
    server.shutdown()?;
    report
}

/// Floods `server`, a `pool` server already running in this process, as
/// [`run_flood`] does, without starting or stopping it: `options.runtime`,
/// `options.limits` and `options.listen` are not used (the server's own
/// apply). The tests use it to hold the pool full with jobs of their own.
/// Must be called from synchronous code.
pub fn run_flood_on(
    server: &DemoServer,
    options: &FloodOptions,
) -> Result<FloodReport, FloodError> {
    check(options, server.addr())?;
    let pool = server.state().pool.clone();
    let config = pool.as_ref().map(|p| p.config().clone());
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("flood-client")
        .enable_all()
        .build()
        .map_err(FloodError::ClientRuntime)?;
    let addr = server.addr();
    let body = tokenize_body(options.body_bytes);
    let head = Bytes::from(format!(
        "POST /tokenize HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let probes = Probes::connect(addr, server.state().dispatcher.clone(), options)
        .map_err(FloodError::Probes)?;
    let idle = memory();
    let peak_reset = reset_peak_memory();
    let started = Instant::now();
    probes.start(started);
    let timeout = options.request_timeout;
    let outcomes = client_runtime.block_on(async {
        let tasks: Vec<_> = (0..options.clients)
            .map(|_| tokio::spawn(one_client(addr, head.clone(), body.clone(), timeout)))
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(
                task.await
                    .unwrap_or_else(|e| Outcome::Unanswered(format!("client task: {e}"))),
            );
        }
        outcomes
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    let after = memory();
    let probes = probes.finish();
    client_runtime.shutdown_timeout(Duration::from_secs(2));

    let mut report = FloodReport {
        clients: options.clients,
        body_bytes: body.len(),
        compute_threads: pool.as_ref().map_or(0, |p| p.num_threads()),
        max_in_flight: config.as_ref().and_then(|c| c.max_in_flight),
        max_queued: config.as_ref().and_then(|c| c.max_queued),
        ok: 0,
        saturated: 0,
        connection_limit: 0,
        other: 0,
        unanswered: 0,
        first_unanswered: None,
        saturated_p50_ms: None,
        saturated_max_ms: None,
        ok_p50_ms: None,
        elapsed_s,
        idle,
        peak_reset,
        after,
        probes,
    };
    let mut saturated_ms = Vec::new();
    let mut ok_ms = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Answered {
                status,
                saturated,
                connections,
                after,
                ..
            } => {
                let ms = after.as_secs_f64() * 1000.0;
                match status {
                    200 => {
                        report.ok += 1;
                        ok_ms.push(ms);
                    }
                    503 if saturated => {
                        report.saturated += 1;
                        saturated_ms.push(ms);
                    }
                    503 if connections => report.connection_limit += 1,
                    _ => report.other += 1,
                }
            }
            Outcome::Unanswered(reason) => {
                report.unanswered += 1;
                report.first_unanswered.get_or_insert(reason);
            }
        }
    }
    report.saturated_p50_ms = median(&mut saturated_ms);
    report.saturated_max_ms = saturated_ms.last().copied();
    report.ok_p50_ms = median(&mut ok_ms);
    Ok(report)
}

/// Refuses settings out of range, and a server not on loopback.
fn check(options: &FloodOptions, addr: SocketAddr) -> Result<(), FloodError> {
    if !(1..=1024).contains(&options.clients) {
        return Err(FloodError::Invalid(format!(
            "clients = {}: must be between 1 and 1024",
            options.clients
        )));
    }
    if options.late_requests > 64 {
        return Err(FloodError::Invalid(format!(
            "late_requests = {}: must be at most 64",
            options.late_requests
        )));
    }
    if !addr.ip().is_loopback() {
        return Err(FloodError::Invalid(format!(
            "{addr}: the flood only targets loopback addresses"
        )));
    }
    Ok(())
}

/// Sorts `values` and returns their median (the lower one of an even
/// count), if any.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (n > 0).then(|| values[(n - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_stay_under_the_size_and_the_text_limit() {
        for bytes in [100, 64 * 1024, 1024 * 1024] {
            let body = tokenize_body(bytes);
            assert!(body.len() <= bytes, "{} > {bytes}", body.len());
            assert!(body.len() + 200 >= bytes, "{} for {bytes}", body.len());
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            for text in value["texts"].as_array().unwrap() {
                assert!(text.as_str().unwrap().len() <= 65_000);
            }
        }
    }

    #[test]
    fn memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let m = memory().expect("/proc/self/status");
            assert!(m.rss_kib > 0 && m.peak_kib >= m.rss_kib, "{m:?}");
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.0));
    }
}

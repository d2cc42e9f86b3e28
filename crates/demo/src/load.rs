//! The built-in load generator: concurrent keep-alive HTTP clients sending a
//! mix of the compute endpoints for a set time, plus one canary that pings
//! at a fixed rate, all bounded in time and aimed only at loopback.
//!
//! Each client loops over `/tokenize`, `/embed`, `/infer` (closed loop: the
//! next request leaves when the answer to the previous one is in). The
//! canary sends `GET /ping` every [`LoadConfig::ping_interval`]; its latency
//! is the time an I/O-only request waits for a Tokio worker, which is the
//! figure that shows whether compute is stalling the runtime.
//!
//! Requests that start during the warm-up are sent but not recorded. Every
//! loop is bounded in time (the run's end) and in count
//! ([`MAX_REQUESTS_PER_CLIENT`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::Method;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::client::{ClientError, HttpClient};
use crate::workloads::{SplitMix64, INFER_INPUT};

/// The endpoints the load generator exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /tokenize`.
    Tokenize,
    /// `POST /embed`.
    Embed,
    /// `POST /infer`.
    Infer,
    /// `GET /ping`.
    Ping,
}

impl Endpoint {
    /// The compute endpoints, in the order clients cycle through them.
    pub const COMPUTE: [Endpoint; 3] = [Endpoint::Tokenize, Endpoint::Embed, Endpoint::Infer];
    /// Every endpoint, in report order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Tokenize,
        Endpoint::Embed,
        Endpoint::Infer,
        Endpoint::Ping,
    ];

    /// The route.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Tokenize => "/tokenize",
            Endpoint::Embed => "/embed",
            Endpoint::Infer => "/infer",
            Endpoint::Ping => "/ping",
        }
    }

    fn index(self) -> usize {
        match self {
            Endpoint::Tokenize => 0,
            Endpoint::Embed => 1,
            Endpoint::Infer => 2,
            Endpoint::Ping => 3,
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "runtime",
    "schedules",
    "tasks",
    "across",
    "worker",
    "threads",
    "while",
    "compute",
    "pool",
    "handles",
    "batches",
    "of",
    "tokens",
    "embedding",
    "vectors",
    "and",
    "matrix",
    "products",
    "a",
    "request",
    "arrives",
    "over",
    "network",
    "is",
    "parsed",
    "queued",
    "answered",
    "latency",
    "throughput",
    "stays",
    "low",
    "when",
    "blocking",
    "work",
    "moves",
    "off",
    "async",
    "executor",
    "rayon",
    "steals",
    "jobs",
    "from",
    "busy",
    "neighbours",
    "tokio",
    "polls",
    "futures",
    "wakes",
    "sleeping",
    "threads",
    "only",
    "needed",
    "model",
    "inference",
    "layer",
    "weights",
    "bias",
    "activation",
    "softmax",
    "gradient",
    "numbers",
    "like",
    "42",
    "3.14159",
    "2026",
    "and",
    "unicode",
    "café",
    "naïve",
    "Zürich",
    "東京",
    "données",
    "ñandú",
    "emoji",
    "🚀",
    "—",
    "HTTP/1.1",
    "JSON",
    "{\"key\":",
    "[1,2,3]",
    "user@example.com",
    "https://example.invalid/path?q=1",
    "snake_case_identifier",
    "CamelCaseName",
    "fn",
    "main()",
    "let",
    "mut",
    "x",
    "=",
    "vec![0;",
    "64];",
    "println!",
    "error:",
    "warning:",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "lorem",
    "ipsum",
    "dolor",
    "sit",
];

fn sentence(rng: &mut SplitMix64, words: usize) -> String {
    let mut text = String::new();
    for i in 0..words {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.below(WORDS.len())]);
        if rng.below(11) == 0 {
            text.push_str([",", ".", ";", "!", "?"][rng.below(5)]);
        }
    }
    text
}

/// How big the generated requests are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestSize {
    /// The default run: 64 texts per `/tokenize`, a 200-500 word context
    /// per `/embed`, 32 rows per `/infer` (a few milliseconds of compute
    /// each in a release build).
    #[default]
    Full,
    /// `--quick`: 8 texts, a 50-100 word context, 4 rows (so that even an
    /// unoptimised build answers every endpoint within seconds).
    Light,
}

impl RequestSize {
    /// Texts per `/tokenize` request.
    pub fn tokenize_batch(self) -> usize {
        match self {
            RequestSize::Full => 64,
            RequestSize::Light => 8,
        }
    }

    /// Rows per `/infer` request.
    pub fn infer_batch(self) -> usize {
        match self {
            RequestSize::Full => 32,
            RequestSize::Light => 4,
        }
    }

    /// Range of words in an `/embed` context.
    fn context_words(self) -> (usize, usize) {
        match self {
            RequestSize::Full => (200, 300),
            RequestSize::Light => (50, 50),
        }
    }
}

/// Pre-built request bodies, so the load generator spends its time sending,
/// not formatting JSON.
#[derive(Debug, Clone)]
pub struct Corpus {
    bodies: [Vec<Bytes>; 3],
}

impl Corpus {
    /// Distinct bodies per endpoint.
    const VARIANTS: usize = 32;

    /// A corpus from a seed (the same seed and size give the same bodies).
    pub fn generate(seed: u64, size: RequestSize) -> Corpus {
        let mut rng = SplitMix64::new(seed);
        let mut tokenize = Vec::with_capacity(Self::VARIANTS);
        let mut embed = Vec::with_capacity(Self::VARIANTS);
        let mut infer = Vec::with_capacity(Self::VARIANTS);
        let (context_min, context_spread) = size.context_words();
        for _ in 0..Self::VARIANTS {
            let texts: Vec<String> = (0..size.tokenize_batch())
                .map(|_| {
                    let words = 40 + rng.below(80);
                    sentence(&mut rng, words)
                })
                .collect();
            tokenize.push(json_bytes(
                &serde_json::json!({ "texts": texts, "return_ids": true }),
            ));
            let text_words = 30 + rng.below(50);
            let context_words = context_min + rng.below(context_spread);
            let text = sentence(&mut rng, text_words);
            let context = sentence(&mut rng, context_words);
            embed.push(json_bytes(
                &serde_json::json!({ "text": text, "context": context }),
            ));
            let inputs: Vec<Vec<f32>> = (0..size.infer_batch())
                .map(|_| (0..INFER_INPUT).map(|_| rng.next_signed_unit()).collect())
                .collect();
            infer.push(json_bytes(&serde_json::json!({ "inputs": inputs })));
        }
        Corpus {
            bodies: [tokenize, embed, infer],
        }
    }

    /// The `n`-th body for a compute endpoint (cycles), `None` for `/ping`.
    pub fn body(&self, endpoint: Endpoint, n: usize) -> Option<Bytes> {
        let bodies = self.bodies.get(endpoint.index())?;
        Some(bodies[n % bodies.len()].clone())
    }
}

fn json_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// How much load to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// Concurrent clients sending compute requests (each its own connection).
    pub clients: usize,
    /// Time before measuring starts (sent, not recorded).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// A request without a complete answer by then counts as an error.
    pub request_timeout: Duration,
    /// Time between two canary pings.
    pub ping_interval: Duration,
    /// How big the compute requests are.
    pub size: RequestSize,
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            clients: 16,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(12),
            request_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_millis(10),
            size: RequestSize::Full,
        }
    }
}

/// Latency figures of one endpoint over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// Successful (2xx) answers recorded.
    pub requests: u64,
    /// Failed requests recorded (non-2xx answers, transport errors, timeouts).
    pub errors: u64,
    /// Successful answers per second of measured time.
    pub req_per_s: f64,
    /// Median latency of successful answers, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile latency, in milliseconds.
    pub p90_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Slowest successful answer, in milliseconds.
    pub max_ms: f64,
}

/// The outcome of one load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Per endpoint, in [`Endpoint::ALL`] order.
    pub endpoints: Vec<EndpointSummary>,
    /// Measured seconds.
    pub measured_s: f64,
    /// CPU time the whole process (server and load generator) used during
    /// the measured window, in seconds; `None` where the platform does not
    /// report it.
    #[serde(default)]
    pub cpu_s: Option<f64>,
    /// The first error seen, if any, to explain a non-zero error count.
    pub first_error: Option<String>,
}

impl LoadStats {
    /// The summary of one endpoint.
    pub fn endpoint(&self, endpoint: Endpoint) -> Option<&EndpointSummary> {
        self.endpoints.iter().find(|e| e.endpoint == endpoint)
    }

    /// Errors over all endpoints.
    pub fn total_errors(&self) -> u64 {
        self.endpoints.iter().map(|e| e.errors).sum()
    }

    /// Successful requests over all endpoints.
    pub fn total_requests(&self) -> u64 {
        self.endpoints.iter().map(|e| e.requests).sum()
    }

    /// Average number of CPUs the process kept busy while measuring.
    pub fn cpu_cores(&self) -> Option<f64> {
        self.cpu_s.map(|cpu| cpu / self.measured_s.max(1e-9))
    }

    /// Process CPU time per successful compute request (`/ping` excluded),
    /// in milliseconds.
    pub fn cpu_ms_per_compute_request(&self) -> Option<f64> {
        let compute: u64 = Endpoint::COMPUTE
            .iter()
            .filter_map(|&e| self.endpoint(e).map(|s| s.requests))
            .sum();
        self.cpu_s
            .filter(|_| compute > 0)
            .map(|cpu| cpu * 1000.0 / compute as f64)
    }
}

/// What one client task recorded.
#[derive(Debug, Default)]
struct Recorder {
    latencies_us: [Vec<u32>; 4],
    errors: [u64; 4],
    first_error: Option<String>,
}

impl Recorder {
    fn success(&mut self, endpoint: Endpoint, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us[endpoint.index()].push(us);
    }

    fn failure(&mut self, endpoint: Endpoint, reason: impl FnOnce() -> String) {
        self.errors[endpoint.index()] += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: {}", endpoint.path(), reason()));
        }
    }

    fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.latencies_us.iter_mut().zip(other.latencies_us) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted samples, in milliseconds.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

/// Time marks shared by the tasks of one run.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
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

async fn compute_client(
    index: usize,
    addr: SocketAddr,
    corpus: Arc<Corpus>,
    config: LoadConfig,
    window: Window,
    completed: Arc<AtomicU64>,
) -> Recorder {
    let mut recorder = Recorder::default();
    let mut client = None;
    // However short the window, each client measures at least one request
    // of each compute endpoint (it may run past the end for them).
    let mut measured = [false; Endpoint::COMPUTE.len()];
    for n in (index..).take(MAX_REQUESTS_PER_CLIENT) {
        if Instant::now() >= window.end && measured.iter().all(|m| *m) {
            break;
        }
        let slot = n % Endpoint::COMPUTE.len();
        let endpoint = Endpoint::COMPUTE[slot];
        let body = corpus.body(endpoint, n / Endpoint::COMPUTE.len());
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

async fn canary(
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

/// CPU time (user + system) this process has used so far, where the
/// platform reports it.
pub fn process_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: `getrusage` writes a whole `rusage` through the valid,
        // writable pointer it is given and reads nothing from it.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: `getrusage` returned 0, so it initialised `usage`.
        let usage = unsafe { usage.assume_init() };
        let time = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Errors that stop a load run as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting is out of range.
    #[error("{field} = {value}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// The valid range.
        reason: &'static str,
    },
    /// The server address is not loopback.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A client task failed to finish in time or crashed.
    #[error("load client: {0}")]
    Task(String),
}

impl LoadConfig {
    /// The `--quick` run: 8 clients, light requests, 0.25 s warm-up and
    /// 1.5 s measured per mode, 5 s request timeout.
    pub fn quick() -> LoadConfig {
        LoadConfig {
            clients: 8,
            warmup: Duration::from_millis(250),
            duration: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(10),
            size: RequestSize::Light,
        }
    }

    /// Checks the ranges: 1..=1024 clients, measured time 10 ms..=1 hour,
    /// warm-up at most 1 minute, non-zero timeout and ping interval.
    pub fn validate(&self) -> Result<(), LoadError> {
        let invalid = |field, value: String, reason| {
            Err(LoadError::Invalid {
                field,
                value,
                reason,
            })
        };
        if !(1..=1024).contains(&self.clients) {
            return invalid(
                "clients",
                self.clients.to_string(),
                "must be between 1 and 1024",
            );
        }
        if self.duration < Duration::from_millis(10) || self.duration > Duration::from_secs(3600) {
            return invalid(
                "duration",
                format!("{:?}", self.duration),
                "must be between 10ms and 1h",
            );
        }
        if self.warmup > Duration::from_secs(60) {
            return invalid(
                "warmup",
                format!("{:?}", self.warmup),
                "must be at most 60s",
            );
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "0s".into(), "must be positive");
        }
        if self.ping_interval.is_zero() {
            return invalid("ping_interval", "0s".into(), "must be positive");
        }
        Ok(())
    }
}

/// Sends the configured load to `addr` (loopback only) and summarises it.
///
/// Runs on the caller's Tokio runtime, which should not be the server's (so
/// the clients measure the server, not their own scheduling). `progress`
/// shows elapsed time and live requests per second; pass
/// `ProgressBar::hidden()` for none. However short the duration, each client
/// measures at least one request per endpoint. Every task ends by `warmup +
/// duration + 3 × request_timeout` plus a second of grace; stragglers are
/// aborted.
pub async fn run_load(
    addr: SocketAddr,
    config: &LoadConfig,
    corpus: Arc<Corpus>,
    progress: &ProgressBar,
) -> Result<LoadStats, LoadError> {
    config.validate()?;
    if !addr.ip().is_loopback() {
        return Err(ClientError::NotLoopback(addr).into());
    }
    let start = Instant::now();
    let window = Window {
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let completed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..config.clients {
        tasks.spawn(compute_client(
            index,
            addr,
            corpus.clone(),
            config.clone(),
            window,
            completed.clone(),
        ));
    }
    tasks.spawn(canary(addr, config.clone(), window, completed.clone()));
    let cpu_probe = tokio::spawn(async move {
        tokio::time::sleep_until(window.measure_from.into()).await;
        let before = process_cpu_time();
        tokio::time::sleep_until(window.end.into()).await;
        let after = process_cpu_time();
        before
            .zip(after)
            .map(|(before, after)| after.saturating_sub(before).as_secs_f64())
    });

    let total = config.warmup + config.duration;
    progress.set_length(u64::try_from(total.as_millis()).unwrap_or(u64::MAX));
    let ticker = {
        let progress = progress.clone();
        let completed = completed.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            let mut ticks = tokio::time::interval(Duration::from_millis(250));
            loop {
                ticks.tick().await;
                let now = Instant::now();
                // ORDERING: Relaxed: a display-only read of a tally.
                let done = completed.load(Ordering::Relaxed);
                let rate =
                    (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, done);
                let elapsed = now.duration_since(start).min(total);
                progress.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                let phase = if now < window.measure_from {
                    "warm-up"
                } else {
                    "measuring"
                };
                progress.set_message(format!(
                    "{:>5.1}/{:.1} s {rate:>7.0} req/s  {phase}",
                    elapsed.as_secs_f64(),
                    total.as_secs_f64()
                ));
            }
        })
    };

    // A client may send one request of each compute endpoint after the end
    // (see `compute_client`), each bounded by the request timeout.
    let overtime = config.request_timeout * Endpoint::COMPUTE.len() as u32 + Duration::from_secs(1);
    let deadline = window.end + overtime;
    let mut merged = Recorder::default();
    let mut failure = None;
    loop {
        match tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok(recorder))) => merged.merge(recorder),
            Ok(Some(Err(e))) => failure = Some(LoadError::Task(e.to_string())),
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                failure = Some(LoadError::Task(format!(
                    "clients still running {overtime:?} after the end of the run"
                )));
                break;
            }
        }
    }
    ticker.abort();
    let cpu_s = match tokio::time::timeout(Duration::from_secs(1), cpu_probe).await {
        Ok(Ok(cpu)) => cpu,
        _ => None,
    };
    progress.set_position(progress.length().unwrap_or(0));
    if let Some(e) = failure {
        return Err(e);
    }

    let measured_s = config.duration.as_secs_f64();
    let endpoints = Endpoint::ALL
        .iter()
        .map(|&endpoint| {
            let samples = &mut merged.latencies_us[endpoint.index()];
            samples.sort_unstable();
            EndpointSummary {
                endpoint,
                requests: samples.len() as u64,
                errors: merged.errors[endpoint.index()],
                req_per_s: samples.len() as f64 / measured_s,
                p50_ms: quantile_ms(samples, 0.50),
                p90_ms: quantile_ms(samples, 0.90),
                p99_ms: quantile_ms(samples, 0.99),
                max_ms: quantile_ms(samples, 1.0),
            }
        })
        .collect();
    Ok(LoadStats {
        endpoints,
        measured_s,
        cpu_s,
        first_error: merged.first_error,
    })
}

/// Sends only the `/ping` canary to `addr` (loopback only) for the
/// configured warm-up and duration, with no compute load: the idle `/ping`
/// latency that the loaded runs are judged against.
pub async fn run_canary(
    addr: SocketAddr,
    config: &LoadConfig,
) -> Result<EndpointSummary, LoadError> {
    config.validate()?;
    if !addr.ip().is_loopback() {
        return Err(ClientError::NotLoopback(addr).into());
    }
    let start = Instant::now();
    let window = Window {
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let task = canary(addr, config.clone(), window, Arc::new(AtomicU64::new(0)));
    let deadline = window.end + config.request_timeout + Duration::from_secs(1);
    let recorder = tokio::time::timeout_at(deadline.into(), task)
        .await
        .map_err(|_| LoadError::Task("the canary still running after the end of the run".into()))?;
    let index = Endpoint::Ping.index();
    let mut samples = recorder.latencies_us[index].clone();
    samples.sort_unstable();
    let measured_s = config.duration.as_secs_f64();
    Ok(EndpointSummary {
        endpoint: Endpoint::Ping,
        requests: samples.len() as u64,
        errors: recorder.errors[index],
        req_per_s: samples.len() as f64 / measured_s,
        p50_ms: quantile_ms(&samples, 0.50),
        p90_ms: quantile_ms(&samples, 0.90),
        p99_ms: quantile_ms(&samples, 0.99),
        max_ms: quantile_ms(&samples, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_right_rank() {
        let samples: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&samples, 0.5), 50.0);
        assert_eq!(quantile_ms(&samples, 0.99), 99.0);
        assert_eq!(quantile_ms(&samples, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
        assert_eq!(quantile_ms(&[7000], 0.99), 7.0);
    }

    #[test]
    fn process_cpu_time_moves_forward() {
        let before = process_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        if cfg!(unix) {
            assert!(process_cpu_time().unwrap() > before.unwrap());
        }
    }

    #[test]
    fn corpus_is_deterministic_and_valid_json() {
        let a = Corpus::generate(1, RequestSize::Light);
        let b = Corpus::generate(1, RequestSize::Light);
        for endpoint in Endpoint::COMPUTE {
            let body = a.body(endpoint, 5).unwrap();
            assert_eq!(body, b.body(endpoint, 5).unwrap());
            let _: serde_json::Value = serde_json::from_slice(&body).unwrap();
        }
        assert!(a.body(Endpoint::Ping, 0).is_none());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let config = LoadConfig {
            clients: 0,
            ..LoadConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("clients = 0"), "{err}");
    }
}

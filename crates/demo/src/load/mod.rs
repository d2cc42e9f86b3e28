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
//!
//! - [`endpoint`](Endpoint): the endpoints;
//! - `corpus`: the request bodies ([`Corpus`], [`RequestSize`]);
//! - `clients`: the client tasks;
//! - `stats`: what they recorded ([`LoadStats`], [`EndpointSummary`]);
//! - `cpu`: the process's CPU time ([`process_cpu_time`]).

mod clients;
mod corpus;
mod cpu;
mod endpoint;
mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::client::ClientError;
pub use clients::MAX_REQUESTS_PER_CLIENT;
use clients::{canary, compute_client, Window};
pub use corpus::{Corpus, RequestSize};
pub use cpu::process_cpu_time;
pub use endpoint::Endpoint;
use stats::{quantile_ms, Recorder};
pub use stats::{EndpointSummary, LoadStats};

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

/// Clients that send the same endpoints: part of a load's shape (see
/// [`run_mix`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientGroup {
    /// How many closed-loop clients (each its own connection).
    pub clients: usize,
    /// The compute endpoints each client cycles through (client `i` starts
    /// at the `i`-th, so the mix is even).
    pub endpoints: Vec<Endpoint>,
}

impl ClientGroup {
    /// The default shape: `clients` clients cycling through every compute
    /// endpoint.
    pub fn mixed(clients: usize) -> ClientGroup {
        ClientGroup {
            clients,
            endpoints: Endpoint::COMPUTE.to_vec(),
        }
    }
}

/// Sends the configured load to `addr` (loopback only) and summarises it:
/// [`LoadConfig::clients`] clients cycling through every compute endpoint
/// ([`ClientGroup::mixed`]) and the `/ping` canary. See [`run_mix`].
pub async fn run_load(
    addr: SocketAddr,
    config: &LoadConfig,
    corpus: Arc<Corpus>,
    progress: &ProgressBar,
) -> Result<LoadStats, LoadError> {
    run_mix(
        addr,
        config,
        &[ClientGroup::mixed(config.clients)],
        corpus,
        progress,
    )
    .await
}

/// Sends a load of the given shape to `addr` (loopback only) and summarises
/// it: each group's clients, plus the `/ping` canary, for the configured
/// warm-up and duration ([`LoadConfig::clients`] is not used here; the
/// groups say how many clients there are, 1 to 1024 in all, and each group
/// names at least one compute endpoint).
///
/// Runs on the caller's Tokio runtime, which should not be the server's (so
/// the clients measure the server, not their own scheduling). `progress`
/// shows elapsed time and live requests per second; pass
/// `ProgressBar::hidden()` for none. However short the duration, each client
/// measures at least one request per endpoint of its group. Every task ends
/// by `warmup + duration + n × request_timeout` plus a second of grace,
/// where `n` is the most endpoints a group has (3 for the mixed load);
/// stragglers are aborted.
pub async fn run_mix(
    addr: SocketAddr,
    config: &LoadConfig,
    groups: &[ClientGroup],
    corpus: Arc<Corpus>,
    progress: &ProgressBar,
) -> Result<LoadStats, LoadError> {
    let clients: usize = groups.iter().map(|g| g.clients).sum();
    LoadConfig {
        clients,
        ..config.clone()
    }
    .validate()?;
    if let Some(group) = groups
        .iter()
        .find(|g| g.endpoints.is_empty() || g.endpoints.contains(&Endpoint::Ping))
    {
        return Err(LoadError::Invalid {
            field: "endpoints",
            value: format!("{:?}", group.endpoints),
            reason: "each group names at least one compute endpoint, not /ping",
        });
    }
    let window = Window::starting_now(addr, config)?;
    let start = window.measure_from - config.warmup;
    let completed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for group in groups {
        let endpoints: Arc<[Endpoint]> = group.endpoints.clone().into();
        for index in 0..group.clients {
            tasks.spawn(compute_client(
                index,
                endpoints.clone(),
                addr,
                corpus.clone(),
                config.clone(),
                window,
                completed.clone(),
            ));
        }
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

    // A client may send one request of each of its endpoints after the end
    // (see `compute_client`), each bounded by the request timeout.
    let kinds = groups.iter().map(|g| g.endpoints.len()).max().unwrap_or(1);
    let overtime =
        config.request_timeout * u32::try_from(kinds).unwrap_or(u32::MAX) + Duration::from_secs(1);
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
    let window = Window::starting_now(addr, config)?;
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
    fn bad_settings_name_the_field() {
        let config = LoadConfig {
            clients: 0,
            ..LoadConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("clients = 0"), "{err}");
    }
}

//! What a load run measured: the per-client recorders, merged into
//! per-endpoint latency summaries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Endpoint;

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
pub(super) struct Recorder {
    pub(super) latencies_us: [Vec<u32>; 4],
    pub(super) errors: [u64; 4],
    pub(super) first_error: Option<String>,
}

impl Recorder {
    pub(super) fn success(&mut self, endpoint: Endpoint, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us[endpoint.index()].push(us);
    }

    pub(super) fn failure(&mut self, endpoint: Endpoint, reason: impl FnOnce() -> String) {
        self.errors[endpoint.index()] += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: {}", endpoint.path(), reason()));
        }
    }

    pub(super) fn merge(&mut self, other: Recorder) {
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
pub(super) fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
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
}

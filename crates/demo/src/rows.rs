//! The rows of the comparison: each dispatch mode with the runtime's thread
//! plan, plus `pool-throughput`, the pool given one compute thread per CPU.
//!
//! The default plan keeps a core for I/O (2 Tokio workers and 1 compute
//! thread on 2 cores), so the `pool` row trades compute throughput for
//! `/ping` latency. `pool-throughput` is the set-up a user who wants
//! throughput would pick: the same Tokio workers, and as many compute
//! threads as CPUs, so compute may take every core as `inline` does.

use std::fmt;

use compute_runtime::RuntimeConfig;
use serde::{Deserialize, Serialize};

use crate::dispatch::Mode;

/// One row of the comparison table.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Row {
    /// Our `ComputePool`, sized by the runtime's plan.
    Pool,
    /// Our `ComputePool` with one compute thread per CPU, the Tokio
    /// workers unchanged.
    PoolThroughput,
    /// Compute on the Tokio worker.
    Inline,
    /// `tokio::task::spawn_blocking`.
    SpawnBlocking,
    /// `rayon::ThreadPool::spawn` + `tokio::sync::oneshot` + `catch_unwind`,
    /// sized like the `pool` row.
    Naive,
}

impl Row {
    /// Every row, in the order the default run measures them.
    pub const ALL: [Row; 5] = [
        Row::Pool,
        Row::PoolThroughput,
        Row::Inline,
        Row::SpawnBlocking,
        Row::Naive,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Row::PoolThroughput => "pool-throughput",
            other => other.mode().name(),
        }
    }

    /// Where this row's handlers run their compute.
    pub fn mode(self) -> Mode {
        match self {
            Row::Pool | Row::PoolThroughput => Mode::Pool,
            Row::Inline => Mode::Inline,
            Row::SpawnBlocking => Mode::SpawnBlocking,
            Row::Naive => Mode::Naive,
        }
    }

    /// The server runtime for this row, from the configured one: unchanged,
    /// except for `pool-throughput`, which keeps the planned Tokio workers
    /// and gets `cpus` compute threads.
    pub fn runtime(self, base: &RuntimeConfig, cpus: usize) -> RuntimeConfig {
        let mut config = base.clone();
        if self == Row::PoolThroughput {
            config.num_worker_threads = Some(base.thread_plan().worker_threads);
            config.compute_threads = Some(cpus.max(1));
        }
        config
    }
}

impl From<Mode> for Row {
    fn from(mode: Mode) -> Row {
        match mode {
            Mode::Pool => Row::Pool,
            Mode::Inline => Row::Inline,
            Mode::SpawnBlocking => Row::SpawnBlocking,
            Mode::Naive => Row::Naive,
        }
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_throughput_gets_a_compute_thread_per_cpu_and_the_same_workers() {
        let base = RuntimeConfig::default();
        let planned = base.thread_plan();
        let config = Row::PoolThroughput.runtime(&base, 4);
        assert_eq!(config.compute_threads, Some(4));
        assert_eq!(config.num_worker_threads, Some(planned.worker_threads));
        assert_eq!(Row::Pool.runtime(&base, 4), base);
        assert_eq!(Row::PoolThroughput.mode(), Mode::Pool);
    }

    #[test]
    fn names_match_the_command_line() {
        use clap::ValueEnum;
        for row in Row::ALL {
            let value = row.to_possible_value().unwrap();
            assert_eq!(value.get_name(), row.name());
            assert_eq!(Row::from(row.mode()).mode(), row.mode());
        }
    }
}

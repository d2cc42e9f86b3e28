//! Hand CPU-heavy work from async code to a shared Rayon pool and await the
//! result.
//!
//! Tokio runs I/O, waiting and coordination; a [`ComputePool`] runs
//! CPU-bound and data-parallel work on its own rayon threads. Any number of
//! async tasks submit jobs and `.await` a [`TaskHandle`]; the handoff is a
//! single hop onto the pool's threads through the one-allocation
//! `compute-bridge` channel, and needs no particular executor.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use compute_pool::{ComputeConfig, ComputePool};
//! use rayon::prelude::*;
//!
//! let pool = ComputePool::new(ComputeConfig { num_threads: Some(2), ..Default::default() })?;
//!
//! // One job; a panic would come back as `Err(ComputeError::Panicked)`.
//! let checksum = pool.execute(|| (0..1_000_000u64).fold(0, |a, x| a ^ x.wrapping_mul(31))).await?;
//!
//! // Data parallelism inside a job uses the same pool.
//! let words: Vec<String> = "the quick brown fox".split(' ').map(String::from).collect();
//! let upper = pool.install(move || words.par_iter().map(|w| w.to_uppercase()).collect::<Vec<_>>()).await?;
//! assert_eq!(upper, ["THE", "QUICK", "BROWN", "FOX"]);
//!
//! println!("checksum {checksum}, {}", pool.metrics());
//! # Ok(())
//! # }
//! ```
//!
//! What a caller can rely on:
//! - **Panics are contained**: a panicking job resolves its handle to
//!   [`ComputeError::Panicked`], payload kept; the pool lives on.
//! - **Dropping a handle cancels** a job that has not started; a running job
//!   can watch a [`CancelToken`] to stop early.
//! - **Nested calls cannot deadlock**: calling the pool from its own threads
//!   runs the work inline.
//! - **Back-pressure** with `max_in_flight`: at most that many jobs are on
//!   the rayon pool; the rest wait their turn in the pool's queue, first come
//!   first served; [`ComputePool::try_execute`] answers
//!   [`ComputeError::Saturated`] instead of queueing.
//! - **Shutdown** refuses new work, lets accepted work finish within a
//!   timeout, and leaves no handle hanging.
//! - **Metrics never leak**: [`ComputeMetrics::tasks_active`] returns to 0
//!   once every handle has resolved or been dropped.
//!
//! Feature `tracing` (on by default): the span active where a job was
//! submitted is entered while it runs on the compute thread.
//!
//! Feature `prometheus`: `ComputePool::register_metrics` exports the
//! pool's metrics (counters, gauges, and histograms of compute time and
//! queue wait in seconds) to a `prometheus-client` registry, read at each
//! scrape.
//!
//! How it is built (one concern per file; `docs/pool.md` has the map and
//! the argument): every job enters through one admission path (`submit.rs`)
//! that asks the ledger (`ledger.rs`, exactly-once accounting with tickets;
//! shutdown waits on it), waits in one run queue (`queue.rs`, drained by
//! the runners of `worker.rs`), and runs in one wrapper (`job.rs`); the
//! result travels back through the `compute-bridge` channel to the
//! [`TaskHandle`] (`handle.rs`).

mod cancel;
mod config;
mod context;
mod detector;
mod engine;
mod erased;
mod error;
mod executor;
mod handle;
mod histogram;
mod home;
mod job;
#[cfg(not(loom))]
mod ledger;
/// The ledger, public only for the loom models of the `loom-tests` package.
#[cfg(loom)]
#[doc(hidden)]
pub mod ledger;
mod metrics;
mod permit;
mod placement;
mod places;
mod pool;
mod priority;
#[cfg(feature = "prometheus")]
mod prometheus;
mod queue;
mod spin;
mod stream;
mod submit;
mod sync;
mod topology;
mod watchdog;
mod watchers;
mod worker;

// Runtime, settings, size classes and adaptive dispatch (one line each):
// -- begin runtime modules --
pub mod adaptive;
// -- end runtime modules --

pub use cancel::CancelToken;
pub use config::{
    default_num_threads, default_num_threads_for, ComputeConfig, ConfigError, ThreadHook,
    MAX_AWAIT_SPIN, MAX_LOW_PRIORITY_WAIT, MAX_RUNNER_KEEP_ALIVE, MAX_STACK_SIZE, MAX_THREADS,
    MIN_STACK_SIZE,
};
pub use context::{current, enter_context, leave_context};
pub use detector::CallSiteStats;
pub use error::{ArgumentError, ComputeError, PanicPayload};
pub use handle::TaskHandle;
pub use metrics::{ComputeMetrics, LaneMetrics};
pub use permit::{Permit, Reserve};
pub use pool::ComputePool;
pub use priority::Priority;
#[cfg(feature = "prometheus")]
pub use prometheus::PoolCollector;
pub use spin::{wake_cost, SpinPolicy};
pub use stream::{ComputeMap, ComputeMapUnordered, ComputeStreamExt};
pub use topology::physical_cores;

// Re-exports of the runtime modules (one line each):
// -- begin runtime exports --
pub use adaptive::adaptive_estimate;
// -- end runtime exports --

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples (`docs/guide.md`), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
pub struct GuideDoctests;

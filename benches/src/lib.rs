//! Shared helpers for the benches of the bridge and the pool.
//!
//! The benches compare our pool with the ways people hand work from async
//! code to a compute pool today, all measured in the same run:
//!
//! - [`peers::naive_spawn`]: `rayon::ThreadPool::spawn` + `tokio::sync::oneshot`,
//!   the job wrapped in `catch_unwind` (what the `tokio-rayon` crate does);
//! - [`peers::double_hop`]: rayon's global pool, then `install` into the
//!   custom pool;
//! - `tokio::task::spawn_blocking` and the job called inline (the floor).
//!
//! Besides them: jobs of a calibrated duration ([`job`]) and process CPU
//! time ([`cpu`]) for the cost report (which counts allocations with
//! `compute_test_support::alloc`), and the machine's floor ([`floor`]): the
//! same hand-off between two plain threads, which no bridge can beat.

pub mod cpu;
pub mod floor;
pub mod job;
pub mod oneshots;
pub mod peers;
pub mod placement;
pub mod service;
pub mod setup;

use std::path::PathBuf;

/// The `q` quantile of `samples` (nearest rank: the smallest sample with at
/// least `q` of them at or below it); NaN when there are none.
///
/// ```
/// let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
/// assert_eq!(compute_benches::percentile(&mut v, 0.5), 50.0);
/// assert_eq!(compute_benches::percentile(&mut v, 0.99), 99.0);
/// assert!(compute_benches::percentile(&mut [], 0.5).is_nan());
/// ```
pub fn percentile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// The workspace's `target` directory: `CARGO_TARGET_DIR` if set, otherwise
/// `target/` beside the workspace manifest.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

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
pub mod service;
pub mod setup;

use std::path::PathBuf;

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

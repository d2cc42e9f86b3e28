//! A Tokio runtime and a compute pool built together from one config, and
//! the whole [`compute_pool`] API beside them: a service needs only this
//! crate.
//!
//! - [`Runtime`]: a Tokio multi-thread runtime plus the [`ComputePool`] its
//!   tasks hand CPU work to, with the pool visible from every thread of both
//!   through [`current`].
//! - [`RuntimeConfig`]: the `[runtime]` table of a TOML file, with
//!   environment overrides ([`mod@settings`]), and the [`ThreadPlan`] it gives
//!   on this machine.
//! - [`SizeClass`] and the [`SizeClassExt`] methods of [`ComputePool`]
//!   (`run_small`, `run_medium`, `run_large`, `run_sized`): run a job the way
//!   its expected duration calls for. Import the trait to call them.
//!
//! ```
//! use compute_runtime::{Runtime, RuntimeConfig, SizeClassExt};
//!
//! let config = RuntimeConfig::from_toml_str(
//!     "[runtime]\nnum_worker_threads = 2\ncompute_threads = 1\n",
//! )?
//! .from_env()?;
//! let runtime = Runtime::new(config)?;
//! let pool = runtime.compute_pool().expect("compute_threads is not 0");
//! let n = runtime.block_on(async move {
//!     let small = pool.run_small(|| 20).await?;
//!     let large = pool.run_large(|| (1..=20u64).sum::<u64>()).await?;
//!     Ok::<_, compute_runtime::ComputeError>(small + large)
//! })?;
//! assert_eq!(n, 230);
//! assert!(runtime.shutdown(std::time::Duration::from_secs(5)));
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

pub use compute_pool::*;

mod runtime;
pub mod settings;
pub mod size_class;

pub use compute_pool::physical_cores;
pub use runtime::Runtime;
pub use settings::{RuntimeConfig, ThreadPlan};
pub use size_class::{SizeClass, SizeClassExt};

/// The configuration guide's examples (`docs/configuration.md`), compiled
/// and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/configuration.md")]
pub struct ConfigurationDoctests;

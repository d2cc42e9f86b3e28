//! [`RuntimeConfig`]: the `[runtime]` table of a TOML file, environment
//! overrides, byte sizes such as `"4MB"`, and the thread-count defaults.
//!
//! Sources are applied in this order, later ones winning:
//!
//! 1. built-in defaults (see [`RuntimeConfig::thread_plan`]);
//! 2. the `[runtime]` table ([`RuntimeConfig::from_toml_str`]);
//! 3. environment variables ([`RuntimeConfig::from_env`]), one per key, named
//!    `COMPUTE_RUNTIME_` followed by the key in upper case (see [`mod@env`]).
//!
//! Every bad value is a [`ConfigError`] naming the key (or the environment
//! variable) and the value as written. Nothing here panics on input.
//!
//! # Size units
//!
//! Sizes are a plain number of bytes (`2097152`) or a string with a unit
//! (`"4MB"`, `"512KiB"`, `"2 MiB"`, `"1.5M"`). **Every unit is a power of
//! 1024**: `KB`, `KiB` and `K` all mean 1024 bytes; `MB`, `MiB` and `M` mean
//! 1024² bytes; `GB`, `GiB` and `G` mean 1024³ bytes. Units are
//! case-insensitive, a space between number and unit is allowed, and `B` (or
//! no unit) means bytes. Stack sizes are conventionally quoted this way, so
//! `compute_stack_size = "4MB"` is 4 MiB (4 194 304 bytes).

// This file: the names (`env`), the `RuntimeConfig` struct, and reading it
// from TOML and the environment. Beside it: `table.rs`, one row per setting;
// `parse.rs`, raw values, their sources and validation; `size.rs`, byte
// sizes; `plan.rs`, `ThreadPlan`.
mod parse;
mod plan;
mod size;
mod table;
#[cfg(test)]
mod tests;

use serde::Deserialize;

use compute_pool::{ComputeConfig, ConfigError};

use parse::{key_at, Raw, Sources};
use table::{Setting, SETTINGS};

pub use compute_pool::physical_cores;
pub use plan::ThreadPlan;

/// Names of the environment variables read by [`RuntimeConfig::from_env`].
///
/// Each is `COMPUTE_RUNTIME_` plus the TOML key in upper case. A variable
/// that is unset, empty or only whitespace leaves the value from the file (or
/// the default) alone.
pub mod env {
    /// Overrides `num_worker_threads` (Tokio worker threads).
    pub const NUM_WORKER_THREADS: &str = "COMPUTE_RUNTIME_NUM_WORKER_THREADS";
    /// Overrides `compute_threads` (`0` switches the compute pool off).
    pub const COMPUTE_THREADS: &str = "COMPUTE_RUNTIME_COMPUTE_THREADS";
    /// Overrides `compute_stack_size` (bytes, or a size such as `4MB`).
    pub const COMPUTE_STACK_SIZE: &str = "COMPUTE_RUNTIME_COMPUTE_STACK_SIZE";
    /// Overrides `compute_thread_prefix`.
    pub const COMPUTE_THREAD_PREFIX: &str = "COMPUTE_RUNTIME_COMPUTE_THREAD_PREFIX";
    /// Overrides `slow_task_threshold_ms`.
    pub const SLOW_TASK_THRESHOLD_MS: &str = "COMPUTE_RUNTIME_SLOW_TASK_THRESHOLD_MS";
    /// Overrides `max_in_flight`.
    pub const MAX_IN_FLIGHT: &str = "COMPUTE_RUNTIME_MAX_IN_FLIGHT";
    /// Overrides `await_spin_us` (`0` switches the await spin off).
    pub const AWAIT_SPIN_US: &str = "COMPUTE_RUNTIME_AWAIT_SPIN_US";
    /// Overrides `runner_keep_alive_us` (`0` switches the keep-alive off).
    pub const RUNNER_KEEP_ALIVE_US: &str = "COMPUTE_RUNTIME_RUNNER_KEEP_ALIVE_US";
    /// Overrides `low_priority_every`.
    pub const LOW_PRIORITY_EVERY: &str = "COMPUTE_RUNTIME_LOW_PRIORITY_EVERY";
    /// Overrides `low_priority_max_wait_ms`.
    pub const LOW_PRIORITY_MAX_WAIT_MS: &str = "COMPUTE_RUNTIME_LOW_PRIORITY_MAX_WAIT_MS";
    /// Overrides `max_queued`.
    pub const MAX_QUEUED: &str = "COMPUTE_RUNTIME_MAX_QUEUED";
    /// Overrides `latency_mode` (`true` or `false`).
    pub const LATENCY_MODE: &str = "COMPUTE_RUNTIME_LATENCY_MODE";
    /// Overrides `blocked_check_interval_ms` (`0` switches the detector off).
    pub const BLOCKED_CHECK_INTERVAL_MS: &str = "COMPUTE_RUNTIME_BLOCKED_CHECK_INTERVAL_MS";
    /// Overrides `blocked_threshold_ms`.
    pub const BLOCKED_THRESHOLD_MS: &str = "COMPUTE_RUNTIME_BLOCKED_THRESHOLD_MS";
    /// All of the above, in the order they are applied.
    pub const ALL: [&str; 14] = [
        NUM_WORKER_THREADS,
        COMPUTE_THREADS,
        COMPUTE_STACK_SIZE,
        COMPUTE_THREAD_PREFIX,
        SLOW_TASK_THRESHOLD_MS,
        MAX_IN_FLIGHT,
        AWAIT_SPIN_US,
        RUNNER_KEEP_ALIVE_US,
        LOW_PRIORITY_EVERY,
        LOW_PRIORITY_MAX_WAIT_MS,
        MAX_QUEUED,
        LATENCY_MODE,
        BLOCKED_CHECK_INTERVAL_MS,
        BLOCKED_THRESHOLD_MS,
    ];
}

/// Settings for a [`Runtime`](crate::Runtime): the `[runtime]` table of a
/// service's TOML configuration.
///
/// Every field is optional; `None` means "pick a default for this machine"
/// (see [`thread_plan`](RuntimeConfig::thread_plan)). Build one by hand with
/// `..Default::default()`, from TOML with
/// [`from_toml_str`](RuntimeConfig::from_toml_str), and let the environment
/// override it with [`from_env`](RuntimeConfig::from_env):
///
/// ```
/// use compute_runtime::RuntimeConfig;
///
/// let config = RuntimeConfig::from_toml_str(
///     r#"
///     [runtime]
///     num_worker_threads = 8
///     compute_threads = 6
///     compute_stack_size = "2MB"
///     "#,
/// )?;
/// assert_eq!(config.num_worker_threads, Some(8));
/// assert_eq!(config.compute_threads, Some(6));
/// assert_eq!(config.compute_stack_size, Some(2 * 1024 * 1024));
/// # Ok::<(), compute_runtime::ConfigError>(())
/// ```
///
/// The type also implements `serde::Deserialize` (unknown keys rejected,
/// sizes accepted as numbers or strings), so it can sit inside an
/// application's own configuration struct. [`from_toml_str`] gives more
/// precise errors and checks the ranges; call
/// [`validate`](RuntimeConfig::validate) after deserializing it yourself.
///
/// [`from_toml_str`]: RuntimeConfig::from_toml_str
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Tokio worker threads. `None`: the number of physical cores, or fewer
    /// if the compute threads would otherwise oversubscribe the machine.
    /// At least 1, at most [`crate::MAX_THREADS`].
    pub num_worker_threads: Option<usize>,
    /// Compute (Rayon) threads. `None`: half the physical cores, at least 1
    /// ([`crate::default_num_threads`]). At most [`crate::MAX_THREADS`].
    /// `Some(0)`: no compute pool at all
    /// ([`Runtime::compute_pool`](crate::Runtime::compute_pool) is `None`).
    pub compute_threads: Option<usize>,
    /// Stack size of each compute thread in bytes (TOML also takes
    /// `"4MB"`, `"512KiB"`, `"2 MiB"`; every unit is a power of 1024).
    /// `None`: the pool's default. At least 64 KiB
    /// ([`crate::MIN_STACK_SIZE`]), at most 1 GiB ([`crate::MAX_STACK_SIZE`]).
    #[serde(deserialize_with = "size::deserialize_size")]
    pub compute_stack_size: Option<usize>,
    /// Compute threads are named `"{prefix}-{index}"`. `None`: the pool's
    /// default prefix. Must not be empty or only whitespace, nor contain a
    /// NUL character.
    pub compute_thread_prefix: Option<String>,
    /// Jobs whose compute time exceeds this many milliseconds count as slow
    /// in the metrics. `None`: the pool's default (100 ms).
    pub slow_task_threshold_ms: Option<u64>,
    /// At most this many jobs queued or running at once. `None`: unbounded.
    pub max_in_flight: Option<usize>,
    /// The most a first `.await` of a short job may spin, in microseconds
    /// (see [`ComputeConfig::await_spin_limit`]). `Some(0)`: never spin.
    /// `None`: the pool's default (200 µs). At most 10 000.
    pub await_spin_us: Option<u64>,
    /// How long a compute thread waits, asleep, for the next job before it
    /// goes back to rayon, in microseconds (see
    /// [`ComputeConfig::runner_keep_alive`]). `Some(0)`: not at all.
    /// `None`: the pool's default (1 ms). At most 100 000.
    pub runner_keep_alive_us: Option<u64>,
    /// While jobs of both priority lanes wait, at least one start in this
    /// many goes to the Low lane (see
    /// [`ComputeConfig::low_priority_every`]). `None`: the pool's default (8).
    pub low_priority_every: Option<u32>,
    /// A Low-priority job that has waited this many milliseconds starts
    /// next (see [`ComputeConfig::low_priority_max_wait`]). `None`: the
    /// pool's default (100 ms).
    pub low_priority_max_wait_ms: Option<u64>,
    /// At most this many jobs wait beyond `max_in_flight` (see
    /// [`ComputeConfig::max_queued`]); past that `execute` is `Saturated`
    /// and `reserve` waits. `None`: unbounded.
    pub max_queued: Option<usize>,
    /// `true` trades CPU for latency: the pool's
    /// [`SpinPolicy::Latency`](compute_pool::SpinPolicy::Latency). `None`
    /// or `false`: the balanced default.
    pub latency_mode: Option<bool>,
    /// How often, in milliseconds, the pool looks for jobs that hold a
    /// compute thread without using CPU (see
    /// [`ComputeConfig::blocked_check_interval`]); `Some(0)` switches the
    /// detector off. `None`: the pool's default (100 ms).
    pub blocked_check_interval_ms: Option<u64>,
    /// A job running this many milliseconds with under a tenth of a CPU is
    /// blocked (see [`ComputeConfig::blocked_threshold`]). `None`: the
    /// pool's default (50 ms).
    pub blocked_threshold_ms: Option<u64>,
}

impl RuntimeConfig {
    /// Reads the `[runtime]` table of a TOML document.
    ///
    /// Other top-level tables and keys are left alone (they belong to the
    /// rest of the application); a document without `[runtime]` gives the
    /// defaults. Inside `[runtime]`, an unknown key is
    /// [`ConfigError::UnknownKey`] and a bad value is
    /// [`ConfigError::Invalid`] naming `runtime.<key>` and the value as
    /// written; TOML that does not parse is [`ConfigError::Parse`] with the
    /// line.
    ///
    /// ```
    /// use compute_runtime::{ConfigError, RuntimeConfig};
    ///
    /// let err = RuntimeConfig::from_toml_str("[runtime]\ncompute_thread = 4\n").unwrap_err();
    /// assert!(matches!(err, ConfigError::UnknownKey { ref key } if key == "runtime.compute_thread"));
    ///
    /// let err = RuntimeConfig::from_toml_str("[runtime]\ncompute_stack_size = \"4KB\"\n").unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid { ref field, ref value, .. }
    ///     if field == "runtime.compute_stack_size" && value == "\"4KB\""));
    /// ```
    pub fn from_toml_str(text: &str) -> Result<RuntimeConfig, ConfigError> {
        let document: toml::Table = text.parse().map_err(|error: toml::de::Error| {
            let field = error.span().and_then(|span| key_at(text, span.start));
            ConfigError::Parse {
                field,
                message: error.to_string(),
            }
        })?;
        match document.get("runtime") {
            None => Ok(RuntimeConfig::default()),
            Some(toml::Value::Table(table)) => RuntimeConfig::from_toml_table(table),
            Some(other) => Err(ConfigError::invalid(
                "runtime",
                other.to_string(),
                format!("expected a table ([runtime]), found {}", other.type_str()),
            )),
        }
    }

    /// Reads an already parsed `[runtime]` table (the table's contents, not
    /// the whole document). Same rules as
    /// [`from_toml_str`](RuntimeConfig::from_toml_str).
    ///
    /// ```
    /// use compute_runtime::RuntimeConfig;
    ///
    /// let table: toml::Table = "compute_threads = 3".parse()?;
    /// assert_eq!(RuntimeConfig::from_toml_table(&table)?.compute_threads, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_toml_table(table: &toml::Table) -> Result<RuntimeConfig, ConfigError> {
        let mut config = RuntimeConfig::default();
        let mut sources = Sources::default();
        for (name, value) in table {
            let index = Setting::index_of(name).ok_or_else(|| ConfigError::UnknownKey {
                key: format!("runtime.{name}"),
            })?;
            let field = SETTINGS[index].field();
            sources.parse(&mut config, index, field, &Raw::Toml(value))?;
        }
        sources.validate(&config)?;
        Ok(config)
    }

    /// Overrides fields with the process environment; see [`mod@env`] for the
    /// variable names. An invalid value is a [`ConfigError`] naming the
    /// variable and its value. The whole result is checked, as by
    /// [`validate`](RuntimeConfig::validate).
    ///
    /// ```
    /// use compute_runtime::RuntimeConfig;
    ///
    /// // With none of the COMPUTE_RUNTIME_* variables set this changes nothing.
    /// let config = RuntimeConfig::default().from_env()?;
    /// # let _ = config;
    /// # Ok::<(), compute_runtime::ConfigError>(())
    /// ```
    pub fn from_env(self) -> Result<RuntimeConfig, ConfigError> {
        self.from_env_with(|name| match std::env::var(name) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            // Shown lossily; no setting accepts U+FFFD in a useful place, and
            // the error below names the variable.
            Err(std::env::VarError::NotUnicode(raw)) => Some(raw.to_string_lossy().into_owned()),
        })
    }

    /// [`from_env`](RuntimeConfig::from_env) with the variables looked up
    /// through `lookup` instead of the process environment: for tests, and
    /// for applications that keep their settings elsewhere.
    ///
    /// ```
    /// use compute_runtime::{settings::env, ConfigError, RuntimeConfig};
    ///
    /// let config = RuntimeConfig::default().from_env_with(|name| {
    ///     (name == env::COMPUTE_STACK_SIZE).then(|| "8MB".to_string())
    /// })?;
    /// assert_eq!(config.compute_stack_size, Some(8 << 20));
    ///
    /// // A bad value names the variable and the value as it was set.
    /// let err = RuntimeConfig::default()
    ///     .from_env_with(|name| (name == env::MAX_IN_FLIGHT).then(|| "0".to_string()))
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid { ref field, ref value, .. }
    ///     if field == env::MAX_IN_FLIGHT && value == "0"));
    /// # Ok::<(), compute_runtime::ConfigError>(())
    /// ```
    pub fn from_env_with(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RuntimeConfig, ConfigError> {
        let mut sources = Sources::default();
        for (index, setting) in SETTINGS.iter().enumerate() {
            let Some(value) = lookup(setting.env) else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            sources.parse(&mut self, index, setting.env.to_owned(), &Raw::Env(&value))?;
        }
        sources.validate(&self)?;
        Ok(self)
    }

    /// Checks the ranges of a hand-built (or separately deserialized)
    /// config: the same rules as [`from_toml_str`](RuntimeConfig::from_toml_str).
    /// The pool settings are checked by [`ComputeConfig::validate`] on the
    /// config they map to, so the rules are the pool's; errors name the
    /// setting as `runtime.<key>`. [`Runtime::new`](crate::Runtime::new)
    /// calls this.
    ///
    /// ```
    /// use compute_runtime::{ConfigError, RuntimeConfig};
    ///
    /// let config = RuntimeConfig { compute_thread_prefix: Some("  ".into()), ..Default::default() };
    /// let err = config.validate().unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid { ref field, ref value, .. }
    ///     if field == "runtime.compute_thread_prefix" && value == "\"  \""));
    /// assert!(RuntimeConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        Sources::default().validate(self)
    }

    /// The [`ComputeConfig`] for a pool of `num_threads` threads built from
    /// this config: each pool setting that is set maps onto its
    /// [`ComputeConfig`] field (milliseconds and microseconds become
    /// [`Duration`](std::time::Duration)s); the rest keep
    /// [`ComputeConfig::default`]'s, so `on_thread_start` is `None`
    /// ([`Runtime::new`](crate::Runtime::new) sets its own, which enters the
    /// Tokio runtime's context).
    ///
    /// ```
    /// use std::time::Duration;
    /// use compute_runtime::RuntimeConfig;
    ///
    /// let config = RuntimeConfig { await_spin_us: Some(50), ..Default::default() };
    /// let pool = config.compute_config(3);
    /// assert_eq!(pool.num_threads, Some(3));
    /// assert_eq!(pool.await_spin_limit, Duration::from_micros(50));
    /// assert_eq!(pool.thread_name_prefix, "compute");
    /// ```
    pub fn compute_config(&self, num_threads: usize) -> ComputeConfig {
        ComputeConfig {
            num_threads: Some(num_threads),
            ..self.pool_settings()
        }
    }

    /// The pool settings of this config as a [`ComputeConfig`], the thread
    /// count as written (`None` when unset or 0).
    fn pool_settings(&self) -> ComputeConfig {
        let mut pool = ComputeConfig::default();
        for setting in &SETTINGS {
            (setting.to_pool)(self, &mut pool);
        }
        pool
    }
}

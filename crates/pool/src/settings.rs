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
//! the guide's `compute_stack_size = "4MB"` is 4 MiB (4 194 304 bytes).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::{MAX_THREADS, MIN_STACK_SIZE};
use crate::{ComputeConfig, ConfigError};

/// The largest compute stack accepted (1 GiB).
pub const MAX_STACK_SIZE: usize = 1 << 30;

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
    /// All of the above, in the order they are applied.
    pub const ALL: [&str; 8] = [
        NUM_WORKER_THREADS,
        COMPUTE_THREADS,
        COMPUTE_STACK_SIZE,
        COMPUTE_THREAD_PREFIX,
        SLOW_TASK_THRESHOLD_MS,
        MAX_IN_FLIGHT,
        AWAIT_SPIN_US,
        RUNNER_KEEP_ALIVE_US,
    ];
}

/// Settings for a [`Runtime`](crate::Runtime): the `[runtime]` table of the
/// strategy guide.
///
/// Every field is optional; `None` means "pick a default for this machine"
/// (see [`thread_plan`](RuntimeConfig::thread_plan)). Build one by hand with
/// `..Default::default()`, from TOML with
/// [`from_toml_str`](RuntimeConfig::from_toml_str), and let the environment
/// override it with [`from_env`](RuntimeConfig::from_env):
///
/// ```
/// use compute_pool::RuntimeConfig;
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
/// # Ok::<(), compute_pool::ConfigError>(())
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
    /// Must be at least 1.
    pub num_worker_threads: Option<usize>,
    /// Compute (Rayon) threads. `None`: half the physical cores, at least 1.
    /// `Some(0)`: no compute pool at all
    /// ([`Runtime::compute_pool`](crate::Runtime::compute_pool) is `None`).
    pub compute_threads: Option<usize>,
    /// Stack size of each compute thread in bytes (TOML also takes
    /// `"4MB"`, `"512KiB"`, `"2 MiB"`; every unit is a power of 1024).
    /// `None`: the pool's default. At least 64 KiB
    /// ([`crate::MIN_STACK_SIZE`]), at most 1 GiB ([`MAX_STACK_SIZE`]).
    #[serde(deserialize_with = "deserialize_size")]
    pub compute_stack_size: Option<usize>,
    /// Compute threads are named `"{prefix}-{index}"`. `None`: the pool's
    /// default prefix.
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
}

/// One `[runtime]` key: its TOML name, its environment variable, and how a
/// raw value becomes a field.
#[derive(Debug, Clone, Copy)]
enum Key {
    NumWorkerThreads,
    ComputeThreads,
    ComputeStackSize,
    ComputeThreadPrefix,
    SlowTaskThresholdMs,
    MaxInFlight,
    AwaitSpinUs,
    RunnerKeepAliveUs,
}

/// A value as it came from its source, before it is checked.
enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    /// The value as the user wrote it, for error messages.
    fn shown(&self) -> String {
        match self {
            Raw::Toml(value) => value.to_string(),
            Raw::Env(text) => text.escape_debug().to_string(),
        }
    }

    /// A whole number, or an error saying what was found instead.
    fn integer(&self, field: &str, what: &str) -> Result<i128, ConfigError> {
        match self {
            Raw::Toml(toml::Value::Integer(n)) => Ok(i128::from(*n)),
            Raw::Toml(other) => Err(ConfigError::invalid(
                field,
                other.to_string(),
                format!(
                    "expected {what} (a whole number), found {}",
                    other.type_str()
                ),
            )),
            Raw::Env(text) => text.trim().parse::<i128>().map_err(|_| {
                ConfigError::invalid(
                    field,
                    text.escape_debug(),
                    format!("expected {what} (a whole number)"),
                )
            }),
        }
    }
}

impl Key {
    const ALL: [Key; 8] = [
        Key::NumWorkerThreads,
        Key::ComputeThreads,
        Key::ComputeStackSize,
        Key::ComputeThreadPrefix,
        Key::SlowTaskThresholdMs,
        Key::MaxInFlight,
        Key::AwaitSpinUs,
        Key::RunnerKeepAliveUs,
    ];

    fn toml_name(self) -> &'static str {
        match self {
            Key::NumWorkerThreads => "num_worker_threads",
            Key::ComputeThreads => "compute_threads",
            Key::ComputeStackSize => "compute_stack_size",
            Key::ComputeThreadPrefix => "compute_thread_prefix",
            Key::SlowTaskThresholdMs => "slow_task_threshold_ms",
            Key::MaxInFlight => "max_in_flight",
            Key::AwaitSpinUs => "await_spin_us",
            Key::RunnerKeepAliveUs => "runner_keep_alive_us",
        }
    }

    fn env_name(self) -> &'static str {
        match self {
            Key::NumWorkerThreads => env::NUM_WORKER_THREADS,
            Key::ComputeThreads => env::COMPUTE_THREADS,
            Key::ComputeStackSize => env::COMPUTE_STACK_SIZE,
            Key::ComputeThreadPrefix => env::COMPUTE_THREAD_PREFIX,
            Key::SlowTaskThresholdMs => env::SLOW_TASK_THRESHOLD_MS,
            Key::MaxInFlight => env::MAX_IN_FLIGHT,
            Key::AwaitSpinUs => env::AWAIT_SPIN_US,
            Key::RunnerKeepAliveUs => env::RUNNER_KEEP_ALIVE_US,
        }
    }

    fn from_toml_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.toml_name() == name)
    }

    /// The name used in errors about a value from TOML or a hand-built struct.
    fn field(self) -> String {
        format!("runtime.{}", self.toml_name())
    }

    /// Checks `raw` and stores it in `config`. `field` names the source
    /// (`runtime.<key>` or the environment variable) in any error.
    fn apply(
        self,
        config: &mut RuntimeConfig,
        field: &str,
        raw: &Raw<'_>,
    ) -> Result<(), ConfigError> {
        let shown = raw.shown();
        match self {
            Key::NumWorkerThreads => {
                let n = raw.integer(field, "a thread count")?;
                config.num_worker_threads = Some(check_threads(field, &shown, n, 1)?);
            }
            Key::ComputeThreads => {
                let n = raw.integer(field, "a thread count")?;
                config.compute_threads = Some(check_threads(field, &shown, n, 0)?);
            }
            Key::ComputeStackSize => {
                let bytes = match raw {
                    Raw::Toml(toml::Value::Integer(n)) => {
                        if *n < 0 {
                            return Err(ConfigError::invalid(
                                field,
                                shown,
                                "a size must not be negative",
                            ));
                        }
                        usize::try_from(*n).map_err(|_| {
                            ConfigError::invalid(field, &shown, "too large for this machine")
                        })?
                    }
                    Raw::Toml(toml::Value::String(text)) => parse_size(text)
                        .map_err(|reason| ConfigError::invalid(field, &shown, reason))?,
                    Raw::Env(text) => parse_size(text)
                        .map_err(|reason| ConfigError::invalid(field, &shown, reason))?,
                    Raw::Toml(other) => {
                        return Err(ConfigError::invalid(
                            field,
                            shown,
                            format!(
                                "expected a size in bytes or a string such as \"4MB\", found {}",
                                other.type_str()
                            ),
                        ))
                    }
                };
                config.compute_stack_size = Some(check_stack_size(field, &shown, bytes)?);
            }
            Key::ComputeThreadPrefix => {
                let prefix = match raw {
                    Raw::Toml(toml::Value::String(text)) => text.clone(),
                    Raw::Env(text) => (*text).to_owned(),
                    Raw::Toml(other) => {
                        return Err(ConfigError::invalid(
                            field,
                            shown,
                            format!("expected a string, found {}", other.type_str()),
                        ))
                    }
                };
                config.compute_thread_prefix = Some(check_prefix(field, &shown, prefix)?);
            }
            Key::SlowTaskThresholdMs => {
                let n = raw.integer(field, "a number of milliseconds")?;
                let ms = u64::try_from(n).map_err(|_| {
                    let reason = if n < 0 {
                        "must not be negative"
                    } else {
                        "too large"
                    };
                    ConfigError::invalid(field, &shown, reason)
                })?;
                config.slow_task_threshold_ms = Some(ms);
            }
            Key::MaxInFlight => {
                let n = raw.integer(field, "a number of jobs")?;
                let limit = match usize::try_from(n) {
                    Ok(0) => {
                        return Err(ConfigError::invalid(
                            field,
                            shown,
                            "must be at least 1 (leave it out for no limit)",
                        ))
                    }
                    Ok(limit) => limit,
                    Err(_) if n < 0 => {
                        return Err(ConfigError::invalid(field, shown, "must not be negative"))
                    }
                    Err(_) => return Err(ConfigError::invalid(field, shown, "too large")),
                };
                config.max_in_flight = Some(limit);
            }
            Key::AwaitSpinUs => {
                let n = raw.integer(field, "a number of microseconds")?;
                config.await_spin_us = Some(check_micros(field, &shown, n, crate::MAX_AWAIT_SPIN)?);
            }
            Key::RunnerKeepAliveUs => {
                let n = raw.integer(field, "a number of microseconds")?;
                let max = crate::MAX_RUNNER_KEEP_ALIVE;
                config.runner_keep_alive_us = Some(check_micros(field, &shown, n, max)?);
            }
        }
        Ok(())
    }
}

/// A number of microseconds from 0 to `max`.
fn check_micros(field: &str, shown: &str, n: i128, max: Duration) -> Result<u64, ConfigError> {
    let max = max.as_micros();
    match u64::try_from(n) {
        Ok(micros) if u128::from(micros) <= max => Ok(micros),
        _ => Err(ConfigError::invalid(
            field,
            shown,
            format!("must be between 0 and {max} microseconds"),
        )),
    }
}

fn check_threads(field: &str, shown: &str, n: i128, min: usize) -> Result<usize, ConfigError> {
    if n < 0 {
        return Err(ConfigError::invalid(
            field,
            shown,
            "a thread count must not be negative",
        ));
    }
    match usize::try_from(n) {
        Ok(n) if n < min => Err(ConfigError::invalid(
            field,
            shown,
            format!("must be at least {min}"),
        )),
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ => Err(ConfigError::invalid(
            field,
            shown,
            format!("more than the {MAX_THREADS} threads allowed"),
        )),
    }
}

fn check_stack_size(field: &str, shown: &str, bytes: usize) -> Result<usize, ConfigError> {
    if bytes < MIN_STACK_SIZE {
        Err(ConfigError::invalid(
            field,
            shown,
            format!("{bytes} bytes is too small for a thread stack (at least {MIN_STACK_SIZE} bytes = 64 KiB)"),
        ))
    } else if bytes > MAX_STACK_SIZE {
        Err(ConfigError::invalid(
            field,
            shown,
            format!("{bytes} bytes is more than the {MAX_STACK_SIZE} bytes (1 GiB) allowed"),
        ))
    } else {
        Ok(bytes)
    }
}

fn check_prefix(field: &str, shown: &str, prefix: String) -> Result<String, ConfigError> {
    if prefix.trim().is_empty() {
        Err(ConfigError::invalid(
            field,
            shown,
            "a thread name prefix must not be empty",
        ))
    } else if prefix.contains('\0') {
        Err(ConfigError::invalid(
            field,
            shown,
            "a thread name must not contain a NUL character",
        ))
    } else {
        Ok(prefix)
    }
}

impl RuntimeConfig {
    /// Reads the `[runtime]` table of a TOML document.
    ///
    /// Other top-level tables and keys are left alone (they belong to the
    /// rest of the application); a document without `[runtime]` gives the
    /// defaults. Inside `[runtime]`, an unknown key is
    /// [`ConfigError::UnknownKey`] and a bad value is
    /// [`ConfigError::Invalid`] naming `runtime.<key>` and the value; TOML
    /// that does not parse is [`ConfigError::Parse`] with the line.
    ///
    /// ```
    /// use compute_pool::{ConfigError, RuntimeConfig};
    ///
    /// let err = RuntimeConfig::from_toml_str("[runtime]\ncompute_thread = 4\n").unwrap_err();
    /// assert!(matches!(err, ConfigError::UnknownKey { ref key } if key == "runtime.compute_thread"));
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
    pub fn from_toml_table(table: &toml::Table) -> Result<RuntimeConfig, ConfigError> {
        let mut config = RuntimeConfig::default();
        for (name, value) in table {
            let key = Key::from_toml_name(name).ok_or_else(|| ConfigError::UnknownKey {
                key: format!("runtime.{name}"),
            })?;
            key.apply(&mut config, &key.field(), &Raw::Toml(value))?;
        }
        Ok(config)
    }

    /// Overrides fields with the process environment; see [`mod@env`] for the
    /// variable names. An invalid value is a [`ConfigError`] naming the
    /// variable and its value.
    ///
    /// ```
    /// use compute_pool::RuntimeConfig;
    ///
    /// // With none of the COMPUTE_RUNTIME_* variables set this changes nothing.
    /// let config = RuntimeConfig::default().from_env()?;
    /// # let _ = config;
    /// # Ok::<(), compute_pool::ConfigError>(())
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
    /// use compute_pool::{settings::env, RuntimeConfig};
    ///
    /// let config = RuntimeConfig::default().from_env_with(|name| {
    ///     (name == env::COMPUTE_STACK_SIZE).then(|| "8MB".to_string())
    /// })?;
    /// assert_eq!(config.compute_stack_size, Some(8 << 20));
    /// # Ok::<(), compute_pool::ConfigError>(())
    /// ```
    pub fn from_env_with(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RuntimeConfig, ConfigError> {
        for key in Key::ALL {
            let name = key.env_name();
            let Some(value) = lookup(name) else { continue };
            if value.trim().is_empty() {
                continue;
            }
            key.apply(&mut self, name, &Raw::Env(&value))?;
        }
        Ok(self)
    }

    /// Checks the ranges of a hand-built (or separately deserialized)
    /// config: the same rules as [`from_toml_str`](RuntimeConfig::from_toml_str).
    /// [`Runtime::new`](crate::Runtime::new) calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut scratch = RuntimeConfig::default();
        let integers = [
            (
                Key::NumWorkerThreads,
                self.num_worker_threads.map(|n| n as i128),
            ),
            (Key::ComputeThreads, self.compute_threads.map(|n| n as i128)),
            (
                Key::SlowTaskThresholdMs,
                self.slow_task_threshold_ms.map(i128::from),
            ),
            (Key::MaxInFlight, self.max_in_flight.map(|n| n as i128)),
            (Key::AwaitSpinUs, self.await_spin_us.map(i128::from)),
            (
                Key::RunnerKeepAliveUs,
                self.runner_keep_alive_us.map(i128::from),
            ),
        ];
        for (key, value) in integers {
            if let Some(n) = value {
                let text = n.to_string();
                key.apply(&mut scratch, &key.field(), &Raw::Env(&text))?;
            }
        }
        if let Some(bytes) = self.compute_stack_size {
            check_stack_size(&Key::ComputeStackSize.field(), &bytes.to_string(), bytes)?;
        }
        if let Some(prefix) = &self.compute_thread_prefix {
            check_prefix(
                &Key::ComputeThreadPrefix.field(),
                &format!("{prefix:?}"),
                prefix.clone(),
            )?;
        }
        Ok(())
    }

    /// The thread counts this config gives on this machine, defaults filled
    /// in. See [`thread_plan_for`](RuntimeConfig::thread_plan_for).
    pub fn thread_plan(&self) -> ThreadPlan {
        self.thread_plan_for(physical_cores())
    }

    /// The thread counts this config gives on a machine with
    /// `physical_cores` cores.
    ///
    /// Defaults follow the strategy guide: Tokio workers = the physical
    /// cores, compute threads = half of them (at least 1), which keeps the
    /// total at 1.5 × the physical cores ([`ThreadPlan::budget`]). When only
    /// one of the two is set, the other is sized to fit what is left of that
    /// budget (at least 1). Counts that are set are used as they are, even
    /// when they oversubscribe; [`Runtime::new`](crate::Runtime::new) then
    /// logs a warning.
    ///
    /// ```
    /// use compute_pool::RuntimeConfig;
    ///
    /// let plan = RuntimeConfig::default().thread_plan_for(8);
    /// assert_eq!((plan.worker_threads, plan.compute_threads), (8, 4));
    /// assert_eq!(plan.oversubscription(), None);
    ///
    /// let batch = RuntimeConfig { num_worker_threads: Some(4), compute_threads: Some(12), ..Default::default() };
    /// assert_eq!(batch.thread_plan_for(8).oversubscription(), Some(4)); // 16 threads, budget 12
    /// ```
    pub fn thread_plan_for(&self, physical_cores: usize) -> ThreadPlan {
        let cores = physical_cores.max(1);
        let budget = ThreadPlan::budget_for(cores);
        let default_compute = (cores / 2).max(1);
        let (worker_threads, compute_threads) =
            match (self.num_worker_threads, self.compute_threads) {
                (Some(workers), Some(compute)) => (workers, compute),
                (None, Some(0)) => (cores, 0),
                (None, Some(compute)) => {
                    (cores.min(budget.saturating_sub(compute)).max(1), compute)
                }
                (Some(workers), None) => (
                    workers,
                    default_compute.min(budget.saturating_sub(workers)).max(1),
                ),
                (None, None) => (cores, default_compute),
            };
        ThreadPlan {
            worker_threads,
            compute_threads,
            physical_cores: cores,
        }
    }

    /// The [`ComputeConfig`] for a pool of `num_threads` threads built from
    /// this config (fields left `None` take [`ComputeConfig::default`]'s).
    pub fn compute_config(&self, num_threads: usize) -> ComputeConfig {
        let defaults = ComputeConfig::default();
        ComputeConfig {
            num_threads: Some(num_threads),
            stack_size: self.compute_stack_size.or(defaults.stack_size),
            thread_name_prefix: self
                .compute_thread_prefix
                .clone()
                .unwrap_or(defaults.thread_name_prefix),
            slow_task_threshold: self
                .slow_task_threshold_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.slow_task_threshold),
            max_in_flight: self.max_in_flight.or(defaults.max_in_flight),
            await_spin_limit: self
                .await_spin_us
                .map(Duration::from_micros)
                .unwrap_or(defaults.await_spin_limit),
            runner_keep_alive: self
                .runner_keep_alive_us
                .map(Duration::from_micros)
                .unwrap_or(defaults.runner_keep_alive),
        }
    }
}

/// Thread counts with the defaults filled in, and the machine they are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPlan {
    /// Tokio worker threads (blocking threads come and go on top of these).
    pub worker_threads: usize,
    /// Compute threads; 0 means no compute pool.
    pub compute_threads: usize,
    /// Physical cores of the machine the plan is for.
    pub physical_cores: usize,
}

impl ThreadPlan {
    fn budget_for(physical_cores: usize) -> usize {
        (physical_cores.saturating_mul(3) / 2).max(2)
    }

    /// Worker plus compute threads.
    pub fn total(&self) -> usize {
        self.worker_threads + self.compute_threads
    }

    /// The most threads the guide recommends for this machine: 1.5 × the
    /// physical cores (rounded down), and never less than 2 (one worker plus
    /// one compute thread).
    pub fn budget(&self) -> usize {
        ThreadPlan::budget_for(self.physical_cores)
    }

    /// By how many threads the plan exceeds [`budget`](ThreadPlan::budget),
    /// or `None` if it fits.
    pub fn oversubscription(&self) -> Option<usize> {
        self.total()
            .checked_sub(self.budget())
            .filter(|&excess| excess > 0)
    }

    /// Logs a `tracing` warning if the plan oversubscribes the machine,
    /// saying by how much. Returns whether it did.
    pub fn warn_if_oversubscribed(&self) -> bool {
        let Some(excess) = self.oversubscription() else {
            return false;
        };
        tracing::warn!(
            worker_threads = self.worker_threads,
            compute_threads = self.compute_threads,
            physical_cores = self.physical_cores,
            budget = self.budget(),
            excess,
            "runtime oversubscribes the machine by {excess} thread{}: {} tokio workers + {} compute threads = {} threads, \
             more than the {} recommended (1.5 x {} physical cores); lower num_worker_threads or compute_threads",
            if excess == 1 { "" } else { "s" },
            self.worker_threads,
            self.compute_threads,
            self.total(),
            self.budget(),
            self.physical_cores,
        );
        true
    }
}

/// The number of physical cores this process may use: the CPUs it may run
/// on ([`std::thread::available_parallelism`], which honours affinity and
/// cgroup quotas) divided by the hardware threads per core (SMT width, read
/// from Linux sysfs; 1 where that is unavailable). At least 1.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    (logical / smt_width()).max(1)
}

/// Hardware threads per core, from `thread_siblings_list` of cpu0
/// (for example `0,4` or `0-1` means 2). 1 if unknown.
fn smt_width() -> usize {
    let Ok(list) =
        std::fs::read_to_string("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    else {
        return 1;
    };
    let count: usize = list
        .trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => match (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
                (Ok(lo), Ok(hi)) if hi >= lo => hi - lo + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum();
    count.max(1)
}

/// Parses a byte size: a number with an optional unit (see the
/// [module docs](self)). Returns the reason on failure.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    const HINT: &str = "expected a size such as 4194304, \"4MB\", \"512KiB\" or \"2 MiB\"";
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err("a size must not be negative".to_owned());
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: String = number.chars().filter(|&c| c != '_').collect();
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(HINT.to_owned());
    }
    if fraction.contains('.') || fraction.len() > 9 {
        return Err(format!("`{number}` is not a number; {HINT}"));
    }
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit `{}`; use B, KB/KiB, MB/MiB or GB/GiB (all powers of 1024)",
                if other.is_empty() { unit } else { unit.trim() }
            ))
        }
    };
    let too_large = || "too large for this machine".to_owned();
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| HINT.to_owned())?;
        let scale = 10u128.pow(fraction.len() as u32);
        bytes = bytes
            .checked_add(digits * multiplier / scale)
            .ok_or_else(too_large)?;
    }
    usize::try_from(bytes).map_err(|_| too_large())
}

/// Serde helper for [`RuntimeConfig::compute_stack_size`]: a number of
/// bytes or a size string.
fn deserialize_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    let size = Option::<Size>::deserialize(deserializer)?;
    match size {
        None => Ok(None),
        Some(Size::Bytes(n)) => usize::try_from(n)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("compute_stack_size {n}: too large"))),
        Some(Size::Text(text)) => parse_size(&text).map(Some).map_err(|reason| {
            serde::de::Error::custom(format!("compute_stack_size {text:?}: {reason}"))
        }),
    }
}

/// The `table.key` on the line holding byte `offset` of `text`, if that line
/// is a `key = value` line: names the field in a TOML syntax error.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        });
    Some(match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(parse_size("4MB"), Ok(4 << 20));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("512 kb"), Ok(512 << 10));
        assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
        assert_eq!(parse_size("8 MB"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("65_536 B"), Ok(65536));
        assert_eq!(parse_size(" 12 "), Ok(12));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(parse_size("4XB").unwrap_err().contains("unknown unit `XB`"));
        assert!(parse_size("-4MB").unwrap_err().contains("negative"));
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("1.2.3MB").is_err());
        assert!(parse_size("99999999999999999999999999999999999999999GB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn smt_width_is_at_least_one() {
        assert!(smt_width() >= 1);
        assert!(physical_cores() >= 1);
    }

    #[test]
    fn defaults_fit_the_budget_for_every_core_count() {
        for cores in 1..=256 {
            let plan = RuntimeConfig::default().thread_plan_for(cores);
            assert_eq!(plan.worker_threads, cores);
            assert!(plan.compute_threads >= 1);
            assert_eq!(plan.oversubscription(), None, "{cores} cores: {plan:?}");
        }
    }

    #[test]
    fn one_count_set_sizes_the_other_to_fit() {
        let plan = RuntimeConfig {
            compute_threads: Some(4),
            ..Default::default()
        }
        .thread_plan_for(4);
        assert_eq!((plan.worker_threads, plan.compute_threads), (2, 4));
        let plan = RuntimeConfig {
            num_worker_threads: Some(6),
            ..Default::default()
        }
        .thread_plan_for(4);
        assert_eq!((plan.worker_threads, plan.compute_threads), (6, 1));
        assert_eq!(plan.oversubscription(), Some(1));
        let plan = RuntimeConfig {
            compute_threads: Some(0),
            ..Default::default()
        }
        .thread_plan_for(4);
        assert_eq!((plan.worker_threads, plan.compute_threads), (4, 0));
    }

    #[test]
    fn syntax_errors_name_the_key_on_their_line() {
        let text = "[other]\nx = 1\n[runtime]\ncompute_threads = = 4\n";
        let err = RuntimeConfig::from_toml_str(text).unwrap_err();
        match err {
            ConfigError::Parse { field, message } => {
                assert_eq!(
                    field.as_deref(),
                    Some("runtime.compute_threads"),
                    "{message}"
                );
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}

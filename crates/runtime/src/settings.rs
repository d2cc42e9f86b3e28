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

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use compute_pool::{ComputeConfig, ConfigError, MAX_THREADS};

pub use compute_pool::physical_cores;

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
    #[serde(deserialize_with = "deserialize_size")]
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

/// One `[runtime]` setting, declared once: its TOML key, its environment
/// variable, how a raw value is parsed into its [`RuntimeConfig`] field, and
/// the [`ComputeConfig`] field it maps to. [`SETTINGS`] lists them all;
/// parsing, error naming and [`RuntimeConfig::compute_config`] are driven by
/// that table.
struct Setting {
    /// The key in the `[runtime]` table.
    key: &'static str,
    /// The environment variable that overrides it.
    env: &'static str,
    /// The [`ComputeConfig`] field it maps to; `None` for a Tokio setting.
    pool_field: Option<&'static str>,
    /// Parses `raw` and stores it in the field; the error is the reason.
    parse: fn(&mut RuntimeConfig, &Raw<'_>) -> Result<(), String>,
    /// The field's value as text, `None` if unset: names a hand-built value.
    shown: fn(&RuntimeConfig) -> Option<String>,
    /// Copies the field, if set, onto the pool's config.
    to_pool: fn(&RuntimeConfig, &mut ComputeConfig),
}

/// One [`Setting`] row: the [`RuntimeConfig`] field (whose name is the TOML
/// key), its environment variable, the parser of its raw value (a [`Raw`]
/// method: `thread_count`, `job_count`, `size`, `string`, or `millis` /
/// `micros` for a duration in those units), then either `tokio` (a Tokio
/// setting, no pool field) or `pool_field = conversion` (the
/// [`ComputeConfig`] field it sets, and how the value becomes that field's).
macro_rules! setting {
    ($field:ident, $env:expr, $parse:expr, tokio) => {
        Setting {
            key: stringify!($field),
            env: $env,
            pool_field: None,
            parse: |config, raw| {
                config.$field = Some($parse(raw)?);
                Ok(())
            },
            shown: |config| config.$field.as_ref().map(|value| format!("{value:?}")),
            to_pool: |_, _| {},
        }
    };
    ($field:ident, $env:expr, $parse:expr, $pool:ident = $convert:expr) => {
        Setting {
            key: stringify!($field),
            env: $env,
            pool_field: Some(stringify!($pool)),
            parse: |config, raw| {
                config.$field = Some($parse(raw)?);
                Ok(())
            },
            shown: |config| config.$field.as_ref().map(|value| format!("{value:?}")),
            to_pool: |config, pool| {
                if let Some(value) = config.$field.clone() {
                    pool.$pool = $convert(value);
                }
            },
        }
    };
}

/// Every `[runtime]` setting, in the order of [`env::ALL`].
const SETTINGS: [Setting; 14] = [
    setting!(
        num_worker_threads,
        env::NUM_WORKER_THREADS,
        Raw::thread_count,
        tokio
    ),
    // 0 means no pool, so it leaves the pool's thread count unset.
    setting!(
        compute_threads,
        env::COMPUTE_THREADS,
        Raw::thread_count,
        num_threads = |n: usize| Some(n).filter(|&n| n > 0)
    ),
    setting!(
        compute_stack_size,
        env::COMPUTE_STACK_SIZE,
        Raw::size,
        stack_size = Some
    ),
    setting!(
        compute_thread_prefix,
        env::COMPUTE_THREAD_PREFIX,
        Raw::string,
        thread_name_prefix = |prefix| prefix
    ),
    setting!(
        slow_task_threshold_ms,
        env::SLOW_TASK_THRESHOLD_MS,
        Raw::millis,
        slow_task_threshold = Duration::from_millis
    ),
    setting!(
        max_in_flight,
        env::MAX_IN_FLIGHT,
        Raw::job_count,
        max_in_flight = Some
    ),
    setting!(
        await_spin_us,
        env::AWAIT_SPIN_US,
        Raw::micros,
        await_spin_limit = Duration::from_micros
    ),
    setting!(
        runner_keep_alive_us,
        env::RUNNER_KEEP_ALIVE_US,
        Raw::micros,
        runner_keep_alive = Duration::from_micros
    ),
    setting!(
        low_priority_every,
        env::LOW_PRIORITY_EVERY,
        Raw::turns,
        low_priority_every = |n| n
    ),
    setting!(
        low_priority_max_wait_ms,
        env::LOW_PRIORITY_MAX_WAIT_MS,
        Raw::millis,
        low_priority_max_wait = Duration::from_millis
    ),
    setting!(
        max_queued,
        env::MAX_QUEUED,
        Raw::job_count,
        max_queued = Some
    ),
    setting!(
        latency_mode,
        env::LATENCY_MODE,
        Raw::boolean,
        spin_policy = |on: bool| if on {
            compute_pool::SpinPolicy::Latency
        } else {
            compute_pool::SpinPolicy::Balanced
        }
    ),
    setting!(
        blocked_check_interval_ms,
        env::BLOCKED_CHECK_INTERVAL_MS,
        Raw::millis,
        blocked_check_interval = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms))
    ),
    setting!(
        blocked_threshold_ms,
        env::BLOCKED_THRESHOLD_MS,
        Raw::millis,
        blocked_threshold = Duration::from_millis
    ),
];

impl Setting {
    /// The row of the setting with TOML key `key`.
    fn index_of(key: &str) -> Option<usize> {
        SETTINGS.iter().position(|setting| setting.key == key)
    }

    /// The name used in errors about a value from TOML or a hand-built struct.
    fn field(&self) -> String {
        format!("runtime.{}", self.key)
    }
}

/// A value as it came from its source, before it is parsed.
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

    /// A whole number that fits `T` (a count, or a duration in the field's
    /// unit), or the reason it is not one.
    fn integer<T: TryFrom<i128>>(&self, what: &str) -> Result<T, String> {
        let n = match self {
            Raw::Toml(toml::Value::Integer(n)) => i128::from(*n),
            Raw::Toml(other) => {
                return Err(format!(
                    "expected {what} (a whole number), found {}",
                    other.type_str()
                ))
            }
            Raw::Env(text) => text
                .trim()
                .parse::<i128>()
                .map_err(|_| format!("expected {what} (a whole number)"))?,
        };
        T::try_from(n).map_err(|_| {
            if n < 0 {
                format!("{what} must not be negative")
            } else {
                "too large".to_owned()
            }
        })
    }

    /// A number of threads.
    fn thread_count(&self) -> Result<usize, String> {
        self.integer("a thread count")
    }

    /// A number of jobs.
    fn job_count(&self) -> Result<usize, String> {
        self.integer("a number of jobs")
    }

    /// `true` or `false` (the environment also takes `1` and `0`).
    fn boolean(&self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml::Value::Boolean(on)) => Ok(*on),
            Raw::Toml(other) => Err(format!(
                "expected true or false, found {}",
                other.type_str()
            )),
            Raw::Env(text) => match text.trim() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err("expected true or false".to_owned()),
            },
        }
    }

    /// A number of turns (one in how many).
    fn turns(&self) -> Result<u32, String> {
        self.integer("a number of starts")
    }

    /// A duration, as a whole number of milliseconds.
    fn millis(&self) -> Result<u64, String> {
        self.integer("a number of milliseconds")
    }

    /// A duration, as a whole number of microseconds.
    fn micros(&self) -> Result<u64, String> {
        self.integer("a number of microseconds")
    }

    /// A byte size: a whole number of bytes or a size string (see the
    /// [module docs](self)).
    fn size(&self) -> Result<usize, String> {
        match self {
            Raw::Toml(toml::Value::Integer(n)) if *n < 0 => {
                Err("a size must not be negative".to_owned())
            }
            Raw::Toml(toml::Value::Integer(n)) => {
                usize::try_from(*n).map_err(|_| "too large for this machine".to_owned())
            }
            Raw::Toml(toml::Value::String(text)) => parse_size(text),
            Raw::Env(text) => parse_size(text),
            Raw::Toml(other) => Err(format!(
                "expected a size in bytes or a string such as \"4MB\", found {}",
                other.type_str()
            )),
        }
    }

    /// A string, as written.
    fn string(&self) -> Result<String, String> {
        match self {
            Raw::Toml(toml::Value::String(text)) => Ok(text.clone()),
            Raw::Env(text) => Ok((*text).to_owned()),
            Raw::Toml(other) => Err(format!("expected a string, found {}", other.type_str())),
        }
    }
}

/// Where the settings parsed so far came from: the name (`runtime.<key>` or
/// the environment variable) and the value as written, per row of
/// [`SETTINGS`]. Errors about those settings name them so.
#[derive(Default)]
struct Sources {
    written: [Option<(String, String)>; SETTINGS.len()],
}

impl Sources {
    /// Parses `raw` into the field of row `index` of `config`; `name` is the source
    /// (`runtime.<key>` or the variable), remembered for later errors.
    fn parse(
        &mut self,
        config: &mut RuntimeConfig,
        index: usize,
        name: String,
        raw: &Raw<'_>,
    ) -> Result<(), ConfigError> {
        let shown = raw.shown();
        (SETTINGS[index].parse)(config, raw)
            .map_err(|reason| ConfigError::invalid(&name, &shown, reason))?;
        self.written[index] = Some((name, shown));
        Ok(())
    }

    /// The name and written value of the setting at `index` in `config`:
    /// as parsed, or as the struct holds it.
    fn describe(&self, config: &RuntimeConfig, index: usize) -> (String, String) {
        let setting = &SETTINGS[index];
        self.written[index].clone().unwrap_or_else(|| {
            let shown = (setting.shown)(config).unwrap_or_default();
            (setting.field(), shown)
        })
    }

    /// Checks the ranges of `config`: the Tokio worker count here, every pool
    /// setting by [`ComputeConfig::validate`]. Errors name the setting by
    /// its source and show the value as written.
    fn validate(&self, config: &RuntimeConfig) -> Result<(), ConfigError> {
        if let Some(workers) = config.num_worker_threads {
            let reason = if workers == 0 {
                Some("must be at least 1".to_owned())
            } else if workers > MAX_THREADS {
                Some(format!("more than the {MAX_THREADS} threads allowed"))
            } else {
                None
            };
            if let (Some(reason), Some(index)) = (reason, Setting::index_of("num_worker_threads")) {
                let (name, shown) = self.describe(config, index);
                return Err(ConfigError::invalid(name, shown, reason));
            }
        }
        config
            .pool_settings()
            .validate()
            .map_err(|error| match error {
                ConfigError::Invalid {
                    field,
                    value,
                    reason,
                } => {
                    match SETTINGS
                        .iter()
                        .position(|setting| setting.pool_field == Some(field.as_str()))
                    {
                        Some(index) => {
                            let (name, shown) = self.describe(config, index);
                            ConfigError::invalid(name, shown, reason)
                        }
                        None => ConfigError::Invalid {
                            field,
                            value,
                            reason,
                        },
                    }
                }
                other => other,
            })
    }
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

    /// The thread counts this config gives on this machine, defaults filled
    /// in. See [`thread_plan_for`](RuntimeConfig::thread_plan_for).
    pub fn thread_plan(&self) -> ThreadPlan {
        self.thread_plan_for(physical_cores())
    }

    /// The thread counts this config gives on a machine with
    /// `physical_cores` cores.
    ///
    /// Defaults: Tokio workers = the physical cores, compute threads = half
    /// of them (at least 1, [`crate::default_num_threads_for`]), which keeps the
    /// total at 1.5 × the physical cores ([`ThreadPlan::budget`]). When only
    /// one of the two is set, the other is sized to fit what is left of that
    /// budget (at least 1). Counts that are set are used as they are, even
    /// when they oversubscribe; [`Runtime::new`](crate::Runtime::new) then
    /// logs a warning.
    ///
    /// ```
    /// use compute_runtime::RuntimeConfig;
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
        let default_compute = compute_pool::default_num_threads_for(cores);
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
    /// this config: each pool setting that is set maps onto its
    /// [`ComputeConfig`] field (milliseconds and microseconds become
    /// [`Duration`]s); the rest keep [`ComputeConfig::default`]'s, so
    /// `on_thread_start` is `None` ([`Runtime::new`](crate::Runtime::new)
    /// sets its own, which enters the Tokio runtime's context).
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

    /// Worker plus compute threads, saturating at `usize::MAX` (counts
    /// that were never validated can be that large; such a plan is then
    /// reported as oversubscribed rather than overflowing).
    ///
    /// ```
    /// use compute_runtime::ThreadPlan;
    ///
    /// let plan = ThreadPlan { worker_threads: 8, compute_threads: 4, physical_cores: 8 };
    /// assert_eq!(plan.total(), 12);
    /// let absurd = ThreadPlan { worker_threads: usize::MAX, ..plan };
    /// assert_eq!(absurd.total(), usize::MAX);
    /// assert!(absurd.oversubscription().is_some());
    /// ```
    pub fn total(&self) -> usize {
        self.worker_threads.saturating_add(self.compute_threads)
    }

    /// The most threads recommended for this machine: 1.5 × the
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
    fn the_table_follows_the_names() {
        let envs: Vec<&str> = SETTINGS.iter().map(|setting| setting.env).collect();
        assert_eq!(envs, env::ALL);
        for setting in &SETTINGS {
            let expected = format!("COMPUTE_RUNTIME_{}", setting.key.to_ascii_uppercase());
            assert_eq!(setting.env, expected);
        }
    }

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
    fn defaults_fit_the_budget_for_every_core_count() {
        for cores in 1..=256 {
            let plan = RuntimeConfig::default().thread_plan_for(cores);
            assert_eq!(plan.worker_threads, cores);
            assert!(plan.compute_threads >= 1);
            assert_eq!(plan.oversubscription(), None, "{cores} cores: {plan:?}");
        }
    }

    #[test]
    fn unvalidated_huge_counts_do_not_overflow() {
        let plan = RuntimeConfig {
            num_worker_threads: Some(usize::MAX),
            ..Default::default()
        }
        .thread_plan_for(4);
        assert_eq!(plan.compute_threads, 1);
        assert_eq!(plan.total(), usize::MAX, "saturates");
        assert_eq!(plan.oversubscription(), Some(usize::MAX - plan.budget()));
        let plan = ThreadPlan {
            worker_threads: usize::MAX,
            compute_threads: usize::MAX,
            physical_cores: usize::MAX,
        };
        assert_eq!(plan.total(), usize::MAX);
        assert!(plan.oversubscription().is_some(), "{plan:?}");
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

//! The table of `[runtime]` settings: one row per setting, declared once
//! with the `setting!` macro. Parsing, error naming and the mapping onto the
//! pool's config are driven by it.

use std::time::Duration;

use compute_pool::ComputeConfig;

use super::parse::Raw;
use super::{env, RuntimeConfig};

/// One `[runtime]` setting, declared once: its TOML key, its environment
/// variable, how a raw value is parsed into its [`RuntimeConfig`] field, and
/// the [`ComputeConfig`] field it maps to. [`SETTINGS`] lists them all;
/// parsing, error naming and [`RuntimeConfig::compute_config`] are driven by
/// that table.
pub(super) struct Setting {
    /// The key in the `[runtime]` table.
    pub(super) key: &'static str,
    /// The environment variable that overrides it.
    pub(super) env: &'static str,
    /// The [`ComputeConfig`] field it maps to; `None` for a Tokio setting.
    pub(super) pool_field: Option<&'static str>,
    /// Parses `raw` and stores it in the field; the error is the reason.
    pub(super) parse: fn(&mut RuntimeConfig, &Raw<'_>) -> Result<(), String>,
    /// The field's value as text, `None` if unset: names a hand-built value.
    pub(super) shown: fn(&RuntimeConfig) -> Option<String>,
    /// Copies the field, if set, onto the pool's config.
    pub(super) to_pool: fn(&RuntimeConfig, &mut ComputeConfig),
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
pub(super) const SETTINGS: [Setting; 14] = [
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
    pub(super) fn index_of(key: &str) -> Option<usize> {
        SETTINGS.iter().position(|setting| setting.key == key)
    }

    /// The name used in errors about a value from TOML or a hand-built struct.
    pub(super) fn field(&self) -> String {
        format!("runtime.{}", self.key)
    }
}

//! Pool configuration and its validation errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::spin::SpinPolicy;

/// The smallest stack a compute thread may be given (64 KiB).
///
/// ```
/// use compute_pool::{ComputeConfig, MIN_STACK_SIZE};
/// let config = ComputeConfig { stack_size: Some(MIN_STACK_SIZE - 1), ..Default::default() };
/// assert!(config.validate().is_err());
/// ```
pub const MIN_STACK_SIZE: usize = 64 * 1024;

/// The largest thread count accepted; anything above is taken for a mistake.
///
/// ```
/// use compute_pool::{ComputeConfig, MAX_THREADS};
/// let config = ComputeConfig { num_threads: Some(MAX_THREADS + 1), ..Default::default() };
/// assert!(config.validate().unwrap_err().to_string().contains("num_threads"));
/// ```
pub const MAX_THREADS: usize = 4096;

/// The largest stack a compute thread may be given (1 GiB); anything above
/// is taken for a mistake.
///
/// ```
/// use compute_pool::{ComputeConfig, MAX_STACK_SIZE};
/// let config = ComputeConfig { stack_size: Some(MAX_STACK_SIZE + 1), ..Default::default() };
/// assert!(config.validate().unwrap_err().to_string().contains("1 GiB"));
/// ```
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// How to build a [`ComputePool`](crate::ComputePool).
///
/// Plain public fields, so a struct literal with `..Default::default()`
/// sets only what it needs; [`ComputePool::new`](crate::ComputePool::new)
/// validates them.
///
/// ```
/// use std::time::Duration;
/// use compute_pool::{ComputeConfig, ComputePool};
///
/// let pool = ComputePool::new(ComputeConfig {
///     num_threads: Some(2),
///     thread_name_prefix: "embed".into(),
///     slow_task_threshold: Duration::from_millis(20),
///     ..Default::default()
/// })
/// .unwrap();
/// assert_eq!(pool.num_threads(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeConfig {
    /// Number of compute threads; `None` picks [`default_num_threads`].
    pub num_threads: Option<usize>,
    /// Stack size of each compute thread in bytes; `None` keeps Rust's
    /// default. At least [`MIN_STACK_SIZE`], at most [`MAX_STACK_SIZE`].
    pub stack_size: Option<usize>,
    /// Threads are named `"{prefix}-{index}"`. Must not be empty or only
    /// whitespace, and must not contain a NUL character (thread names are
    /// C strings on most platforms).
    pub thread_name_prefix: String,
    /// Jobs whose compute time reaches this count as slow in the metrics.
    pub slow_task_threshold: Duration,
    /// At most this many jobs queued on, or running in, the rayon pool; the
    /// rest wait in the pool's own queue, first come first served, and start
    /// as running jobs end. `None`: no limit (rayon's queue is unbounded).
    pub max_in_flight: Option<usize>,
    /// The most a first `.await` of a job may wait awake for its result,
    /// when the pool's jobs have lately been finishing within that time and
    /// the job is running or next in line for a thread. Waking a sleeping
    /// thread costs tens of microseconds; a short, bounded wait avoids it
    /// for short jobs. The actual wait is learned from observed compute
    /// times (about twice the typical job), never spent when the typical
    /// job is longer than the wait may last or on a job queued behind
    /// others, and with [`SpinPolicy::Balanced`] never longer than a wake
    /// costs ([`wake_cost`](crate::wake_cost)), not while another handle
    /// of the pool is parked, not past 2 µs for a job no thread has taken
    /// up, and not at all for one whose only takers, every thread of the
    /// pool, share the awaiter's CPU (every job on a one-CPU machine).
    /// The same budget bounds the
    /// spin of an `execute_sync` caller before it parks, and lets a compute
    /// thread out of jobs linger briefly for the next one. `Duration::ZERO`
    /// switches all three off. At most [`MAX_AWAIT_SPIN`].
    pub await_spin_limit: Duration,
    /// How long the thread that ran the last `execute` job waits, asleep,
    /// for the next one before it goes back to rayon, when the pool's jobs
    /// are long (too long for the await spin, or with the spin off), after
    /// lingering for it as after any job (see `await_spin_limit`); after
    /// short jobs it goes back to rayon at once. A job submitted in that
    /// time is handed to it directly: no new rayon task, and none of the
    /// wake-ups rayon makes when an idle thread finds work (it also wakes a
    /// sleeping sibling to help). One thread at most waits so, and only in
    /// pools of two threads or more, so it never holds all of rayon's
    /// threads; a `par_iter` may run on one thread fewer for this long.
    /// `Duration::ZERO` switches it off. At most [`MAX_RUNNER_KEEP_ALIVE`].
    pub runner_keep_alive: Duration,
    /// While jobs of both [`Priority`](crate::Priority) lanes wait, at least
    /// one start in this many goes to the Low lane, so Low is never
    /// starved. At least 1 (1: Low waits behind no High job). Default 8.
    pub low_priority_every: u32,
    /// A Low job that has waited this long starts next, ahead of waiting
    /// High jobs. More than zero, at most [`MAX_LOW_PRIORITY_WAIT`].
    /// Default 100 ms.
    pub low_priority_max_wait: Duration,
    /// At most this many jobs wait beyond `max_in_flight` (or beyond the
    /// thread count without it): the pool then holds at most
    /// `max_in_flight + max_queued` jobs. Past that, `execute` and the
    /// other async methods resolve to `Err(ComputeError::Saturated)`
    /// without running the job, and [`ComputePool::reserve`](crate::ComputePool::reserve)
    /// waits for a place. Calls whose caller waits for the job in place
    /// (nested calls from the pool's own threads, `execute_here`,
    /// `execute_sync`) count but are never refused for room. `None`:
    /// unbounded.
    pub max_queued: Option<usize>,
    /// How the pool's waits trade CPU for latency (see [`SpinPolicy`]):
    /// `Balanced` (the default) spins in a poll only where no task needs
    /// its thread, and never longer than a wake costs; `Latency` lets the
    /// first poll of a short job wait awake up to `await_spin_limit`.
    pub spin_policy: SpinPolicy,
    /// Runs once on each compute thread when it starts, before it runs any
    /// job: to give the threads something of the caller's, such as an async
    /// runtime's context. `None`: nothing. See [`ThreadHook`], including
    /// what happens when it panics.
    pub on_thread_start: Option<ThreadHook>,
    /// How often the blocked-job detector looks at the running jobs (see
    /// the guide's "Jobs that block"); `None` switches it off. Linux only:
    /// elsewhere it is off whatever this says. Default 100 ms; more than
    /// zero.
    pub blocked_check_interval: Option<Duration>,
    /// A job running this long using less than a tenth of a CPU (over a
    /// window at least this long) is blocked. Default 50 ms; more than
    /// zero.
    pub blocked_threshold: Duration,
}

/// The largest [`ComputeConfig::low_priority_max_wait`] accepted: 1 hour.
pub const MAX_LOW_PRIORITY_WAIT: Duration = Duration::from_secs(3600);

/// The largest [`ComputeConfig::await_spin_limit`] accepted: 10 ms.
pub const MAX_AWAIT_SPIN: Duration = Duration::from_millis(10);

/// The largest [`ComputeConfig::runner_keep_alive`] accepted: 100 ms.
pub const MAX_RUNNER_KEEP_ALIVE: Duration = Duration::from_millis(100);

impl Default for ComputeConfig {
    /// No thread count or stack size (machine defaults), prefix `"compute"`,
    /// slow threshold 100 ms, unbounded in-flight jobs, await spin up to
    /// 200 µs, runner keep-alive 1 ms.
    fn default() -> Self {
        ComputeConfig {
            num_threads: None,
            stack_size: None,
            thread_name_prefix: "compute".to_owned(),
            slow_task_threshold: Duration::from_millis(100),
            max_in_flight: None,
            await_spin_limit: Duration::from_micros(200),
            runner_keep_alive: Duration::from_millis(1),
            low_priority_every: 8,
            low_priority_max_wait: Duration::from_millis(100),
            max_queued: None,
            spin_policy: SpinPolicy::Balanced,
            on_thread_start: None,
            blocked_check_interval: Some(Duration::from_millis(100)),
            blocked_threshold: Duration::from_millis(50),
        }
    }
}

/// A function run on each compute thread as it starts
/// ([`ComputeConfig::on_thread_start`]).
///
/// The pool knows nothing of async runtimes; this is how a caller gives its
/// threads what they need, for example entering a Tokio runtime's context so
/// that jobs can spawn I/O (`compute-runtime` does that for the pools it
/// builds). A clone shares the function; two hooks are equal when they are
/// clones of one another, so a config with a hook still compares and prints.
///
/// A hook that panics does not take the pool down: the panic is contained
/// and counted in [`escaped_panics`](crate::ComputeMetrics::escaped_panics),
/// and the thread goes on to serve the pool without whatever the hook would
/// have set up.
///
/// The hook runs as the threads start, which may be before
/// [`ComputePool::new`](crate::ComputePool::new) has returned: it must not
/// wait for the pool being built (in it, [`current`](crate::current) may
/// still be `None`).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use compute_pool::{ComputeConfig, ComputePool, ThreadHook};
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let hook = ThreadHook::new({
///     let started = Arc::clone(&started);
///     move || {
///         started.fetch_add(1, Ordering::SeqCst);
///     }
/// });
/// let config = ComputeConfig { num_threads: Some(2), on_thread_start: Some(hook.clone()), ..Default::default() };
/// assert_eq!(config.on_thread_start, Some(hook));
/// assert_ne!(config, ComputeConfig { num_threads: Some(2), ..Default::default() });
///
/// let pool = ComputePool::new(config)?;
/// // Each thread runs the hook before its first job.
/// pool.execute_sync(|| ())?;
/// assert!(started.load(Ordering::SeqCst) >= 1);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone)]
pub struct ThreadHook(Arc<dyn Fn() + Send + Sync>);

impl ThreadHook {
    /// Wraps `hook`; it runs once on each compute thread of a pool built with
    /// it, on that thread.
    ///
    /// ```
    /// let hook = compute_pool::ThreadHook::new(|| ());
    /// assert_eq!(hook, hook.clone());
    /// assert_ne!(hook, compute_pool::ThreadHook::new(|| ()));
    /// ```
    pub fn new(hook: impl Fn() + Send + Sync + 'static) -> ThreadHook {
        ThreadHook(Arc::new(hook))
    }

    /// Runs the hook on the calling thread (the pool calls it, catching a
    /// panic; called directly, a panic propagates to the caller).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let hook = compute_pool::ThreadHook::new({ let ran = ran.clone(); move || ran.store(true, Ordering::SeqCst) });
    /// hook.call();
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn call(&self) {
        (self.0)()
    }

    /// The address of the shared function: what equality compares.
    fn address(&self) -> *const () {
        Arc::as_ptr(&self.0).cast::<()>()
    }
}

impl PartialEq for ThreadHook {
    /// Equal when both share one function (one is a clone of the other);
    /// functions cannot be compared otherwise.
    fn eq(&self, other: &ThreadHook) -> bool {
        self.address() == other.address()
    }
}

impl Eq for ThreadHook {}

impl fmt::Debug for ThreadHook {
    /// `ThreadHook(0x…)`: the shared function's address, which tells clones
    /// apart from other hooks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ThreadHook").field(&self.address()).finish()
    }
}

impl ComputeConfig {
    /// Checks every field; the error names the first bad field and its value.
    ///
    /// ```
    /// use compute_pool::{ComputeConfig, ConfigError};
    ///
    /// let bad = ComputeConfig { num_threads: Some(0), ..Default::default() };
    /// let err = bad.validate().unwrap_err();
    /// assert!(matches!(&err, ConfigError::Invalid { field, value, .. }
    ///     if field == "num_threads" && value == "0"));
    /// assert!(ComputeConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(n) = self.num_threads {
            if n == 0 {
                return Err(ConfigError::invalid("num_threads", n, "must be at least 1"));
            }
            if n > MAX_THREADS {
                return Err(ConfigError::invalid(
                    "num_threads",
                    n,
                    format!("more than the {MAX_THREADS} threads allowed (must be at most {MAX_THREADS})"),
                ));
            }
        }
        if let Some(size) = self.stack_size {
            if size < MIN_STACK_SIZE {
                return Err(ConfigError::invalid(
                    "stack_size",
                    size,
                    format!("{size} bytes is too small for a thread stack: must be at least {MIN_STACK_SIZE} bytes (64 KiB)"),
                ));
            }
            if size > MAX_STACK_SIZE {
                return Err(ConfigError::invalid(
                    "stack_size",
                    size,
                    format!("{size} bytes is too large for a thread stack: must be at most {MAX_STACK_SIZE} bytes (1 GiB)"),
                ));
            }
        }
        if self.thread_name_prefix.trim().is_empty() {
            return Err(ConfigError::invalid(
                "thread_name_prefix",
                format!("{:?}", self.thread_name_prefix),
                "must not be empty or only whitespace",
            ));
        }
        if self.thread_name_prefix.contains('\0') {
            return Err(ConfigError::invalid(
                "thread_name_prefix",
                format!("{:?}", self.thread_name_prefix),
                "must not contain a NUL character",
            ));
        }
        if self.blocked_check_interval == Some(Duration::ZERO) {
            return Err(ConfigError::invalid(
                "blocked_check_interval",
                "Some(0ns)",
                "must be more than zero (None switches the detector off)",
            ));
        }
        if self.blocked_threshold.is_zero() {
            return Err(ConfigError::invalid(
                "blocked_threshold",
                "0ns",
                "must be more than zero",
            ));
        }
        if self.await_spin_limit > MAX_AWAIT_SPIN {
            return Err(ConfigError::invalid(
                "await_spin_limit",
                format!("{:?}", self.await_spin_limit),
                format!(
                    "must be at most {MAX_AWAIT_SPIN:?} ({} microseconds)",
                    MAX_AWAIT_SPIN.as_micros()
                ),
            ));
        }
        if self.runner_keep_alive > MAX_RUNNER_KEEP_ALIVE {
            return Err(ConfigError::invalid(
                "runner_keep_alive",
                format!("{:?}", self.runner_keep_alive),
                format!(
                    "must be at most {MAX_RUNNER_KEEP_ALIVE:?} ({} microseconds)",
                    MAX_RUNNER_KEEP_ALIVE.as_micros()
                ),
            ));
        }
        if self.low_priority_every == 0 {
            return Err(ConfigError::invalid(
                "low_priority_every",
                0,
                "must be at least 1 (one start in that many goes to the Low lane)",
            ));
        }
        if self.low_priority_max_wait.is_zero()
            || self.low_priority_max_wait > MAX_LOW_PRIORITY_WAIT
        {
            return Err(ConfigError::invalid(
                "low_priority_max_wait",
                format!("{:?}", self.low_priority_max_wait),
                format!("must be more than zero and at most {MAX_LOW_PRIORITY_WAIT:?}"),
            ));
        }
        if self.max_in_flight == Some(0) {
            return Err(ConfigError::invalid(
                "max_in_flight",
                0,
                "must be at least 1 (or unset for no limit)",
            ));
        }
        Ok(())
    }

    /// The thread count this config gives: `num_threads`, or
    /// [`default_num_threads`].
    ///
    /// ```
    /// use compute_pool::ComputeConfig;
    /// let config = ComputeConfig { num_threads: Some(3), ..Default::default() };
    /// assert_eq!(config.effective_num_threads(), 3);
    /// assert!(ComputeConfig::default().effective_num_threads() >= 1);
    /// ```
    pub fn effective_num_threads(&self) -> usize {
        self.num_threads.unwrap_or_else(default_num_threads)
    }
}

/// The default compute thread count on this machine: half its physical
/// cores ([`physical_cores`](crate::physical_cores)), at least 1, leaving the
/// rest to the async runtime. [`ComputePool::with_defaults`] uses it, and so
/// does a runtime built with default settings; see
/// [`default_num_threads_for`].
///
/// [`ComputePool::with_defaults`]: crate::ComputePool::with_defaults
///
/// ```
/// let n = compute_pool::default_num_threads();
/// assert_eq!(n, compute_pool::default_num_threads_for(compute_pool::physical_cores()));
/// assert!(n >= 1);
/// ```
pub fn default_num_threads() -> usize {
    default_num_threads_for(crate::physical_cores())
}

/// The default compute thread count for a machine with `physical_cores`
/// cores: half of them, at least 1.
///
/// ```
/// use compute_pool::default_num_threads_for;
/// assert_eq!(default_num_threads_for(8), 4);
/// assert_eq!(default_num_threads_for(3), 1);
/// assert_eq!(default_num_threads_for(1), 1);
/// assert_eq!(default_num_threads_for(0), 1);
/// ```
pub fn default_num_threads_for(physical_cores: usize) -> usize {
    (physical_cores / 2).max(1)
}

/// A configuration that cannot be used, naming the field and the value.
///
/// ```
/// use compute_pool::ConfigError;
/// let err = ConfigError::invalid("compute_threads", 0, "must be at least 1");
/// assert_eq!(err.to_string(), "compute_threads = 0: must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field has a value out of range.
    Invalid {
        /// The field, as written in the config (for example `compute_threads`).
        field: String,
        /// The offending value, as text.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// The text could not be parsed (malformed TOML, a value of the wrong type).
    Parse {
        /// The field, when the parser knows it.
        field: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// A key that the configuration does not know.
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// Building a thread pool or runtime failed.
    Build {
        /// What was being built, for example `"compute pool"`.
        what: String,
        /// The underlying error's message.
        message: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `field = value`, with `reason`.
    ///
    /// ```
    /// use compute_pool::ConfigError;
    /// let err = ConfigError::invalid("stack_size", 1024, "must be at least 65536 bytes");
    /// assert!(err.to_string().contains("stack_size = 1024"));
    /// ```
    pub fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                field,
                value,
                reason,
            } => write!(f, "{field} = {value}: {reason}"),
            ConfigError::Parse {
                field: Some(field),
                message,
            } => write!(f, "cannot parse {field}: {message}"),
            ConfigError::Parse {
                field: None,
                message,
            } => write!(f, "cannot parse the configuration: {message}"),
            ConfigError::UnknownKey { key } => write!(f, "unknown configuration key `{key}`"),
            ConfigError::Build { what, message } => write!(f, "cannot build {what}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

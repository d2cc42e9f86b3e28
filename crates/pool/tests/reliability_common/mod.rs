//! Helpers shared by the reliability tests (stress, overload, faults): a
//! seeded xorshift generator, a watchdog that turns a hang into a failure
//! with a progress report, environment knobs and OS thread counts. The
//! counting global allocator and the `COMPUTE_TEST_SCALE` knob are in
//! `compute-test-support`.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A tiny seeded xorshift64* generator: reproducible runs, no dependency.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is mapped to a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// An unsigned integer from environment variable `name`, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {text:?}: expected a whole number")),
        Err(_) => default,
    }
}

/// Whether environment variable `name` is set to something other than
/// empty or `0`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Fails the whole test process if it is not dropped within `limit`: a hang
/// anywhere (a lost wakeup, a deadlocked runtime) becomes a failure with a
/// message instead of a stalled CI job.
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Arms a watchdog named `what`; `progress` is printed if it fires.
    pub fn arm(
        what: &'static str,
        limit: Duration,
        progress: impl Fn() -> String + Send + 'static,
    ) -> Watchdog {
        let (disarm, fired) = mpsc::channel::<()>();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = fired.recv_timeout(limit) {
                    eprintln!(
                        "watchdog: {what} still running after {:?} (limit {limit:?}): \
                         treating it as a hang. Progress: {}",
                        started.elapsed(),
                        progress()
                    );
                    std::process::exit(101);
                }
            })
            .expect("spawn the watchdog thread");
        Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Number of threads of this process, from `/proc/self/task` (Linux);
/// `None` where that is not available.
pub fn os_threads() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// Waits until the process has at most `target` threads (threads of
/// dropped pools exit asynchronously), for at most `limit`. Returns the
/// last count seen; `None` where threads cannot be counted.
pub fn wait_for_threads(target: usize, limit: Duration) -> Option<usize> {
    let deadline = Instant::now() + limit;
    loop {
        let now = os_threads()?;
        if now <= target || Instant::now() >= deadline {
            return Some(now);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Number of this process's threads whose name starts with `prefix`
/// (Linux truncates names to 15 bytes); `None` where that is not available.
pub fn threads_named(prefix: &str) -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .filter(|name| name.trim_end().starts_with(prefix))
            .count(),
    )
}

/// Silences the panic messages of panics a test causes on purpose (their
/// message contains "on purpose"); every other panic is reported as usual.
pub fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.contains("on purpose")) {
                default_hook(info);
            }
        }));
    });
}

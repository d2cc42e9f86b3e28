//! Helpers shared by the reliability tests (stress, overload): a counting
//! global allocator, a seeded xorshift generator, a watchdog that turns a
//! hang into a failure, the `COMPUTE_TEST_SCALE` knob and an OS thread count.

#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Wraps the system allocator and keeps live and peak byte counts.
///
/// Install with `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc::new();`
/// in the test binary. The counts cover every thread of the process.
pub struct CountingAlloc {
    live: AtomicIsize,
    peak: AtomicIsize,
    allocations: AtomicU64,
}

impl CountingAlloc {
    /// A counter at zero.
    pub const fn new() -> Self {
        CountingAlloc {
            live: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
            allocations: AtomicU64::new(0),
        }
    }

    /// Bytes allocated and not yet freed.
    pub fn live(&self) -> isize {
        // ORDERING: Relaxed: a tally read after the threads that wrote it
        // were joined (or as an approximate figure while they run).
        self.live.load(Ordering::Relaxed)
    }

    /// The highest `live` seen since the last [`reset_peak`](Self::reset_peak).
    pub fn peak(&self) -> isize {
        // ORDERING: Relaxed: as `live`.
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak window at the current live figure.
    pub fn reset_peak(&self) {
        // ORDERING: Relaxed: as `live`; a concurrent allocation may raise
        // the peak right after, which is what a window should show.
        self.peak.store(self.live(), Ordering::Relaxed);
    }

    /// Number of allocations so far.
    pub fn allocations(&self) -> u64 {
        // ORDERING: Relaxed: a tally.
        self.allocations.load(Ordering::Relaxed)
    }

    fn added(&self, bytes: usize) {
        // ORDERING: Relaxed: independent tallies; nothing is published
        // through them.
        let now = self.live.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
        // ORDERING: Relaxed: fetch_max is atomic on its own.
        self.peak.fetch_max(now, Ordering::Relaxed);
        // ORDERING: Relaxed: a tally.
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }

    fn removed(&self, bytes: usize) {
        // ORDERING: Relaxed: an independent tally.
        self.live.fetch_sub(bytes as isize, Ordering::Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        CountingAlloc::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments,
// which upholds the `GlobalAlloc` contract; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.added(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.added(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        self.removed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            self.removed(layout.size());
            self.added(new_size);
        }
        new
    }
}

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

/// `COMPUTE_TEST_SCALE` (a float, default 1): the memcheck step sets it
/// below 1 to shrink round counts under valgrind.
pub fn test_scale() -> f64 {
    match std::env::var("COMPUTE_TEST_SCALE") {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(scale) if scale.is_finite() && scale > 0.0 => scale,
            _ => panic!("COMPUTE_TEST_SCALE = {text:?}: expected a positive number"),
        },
        Err(_) => 1.0,
    }
}

/// `n` scaled by [`test_scale`], at least `min`.
pub fn scaled(n: u64, min: u64) -> u64 {
    ((n as f64 * test_scale()) as u64).max(min)
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

//! Jobs of a known duration, for measuring the time a bridge adds.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Busy-waits for `duration` on the calling thread and returns a value the
/// optimiser cannot predict, so the job cannot be removed.
///
/// The job is calibrated by the clock itself: it ends at the first check of
/// `Instant::now()` past `duration`, so it lasts `duration` plus at most one
/// clock read (tens of nanoseconds). It holds the CPU the whole time, as a
/// real compute job would.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// compute_benches::job::spin_for(Duration::from_micros(50));
/// assert!(start.elapsed() >= Duration::from_micros(50));
/// ```
pub fn spin_for(duration: Duration) -> u64 {
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < duration {
        rounds = rounds.wrapping_add(1);
        std::hint::spin_loop();
    }
    black_box(rounds)
}

/// A [`spin_for`] job that returns how long it ran, measured on the thread
/// that ran it: the part of a round trip that is the job's own.
///
/// ```
/// let ran = compute_benches::job::timed_spin(std::time::Duration::from_micros(20));
/// assert!(ran >= std::time::Duration::from_micros(20));
/// ```
pub fn timed_spin(duration: Duration) -> Duration {
    let start = Instant::now();
    black_box(spin_for(duration));
    start.elapsed()
}

/// The trivial job: no work, one value out.
pub fn trivial() -> u64 {
    black_box(1)
}

/// The per-item function of the `par_map` benches: a few dozen
/// nanoseconds of integer mixing.
///
/// ```
/// assert_ne!(compute_benches::job::mix(1), compute_benches::job::mix(2));
/// ```
pub fn mix(x: u64) -> u64 {
    let mut h = x ^ 0x9E37_79B9_7F4A_7C15;
    for _ in 0..8 {
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    h
}

/// The job sizes of the added-latency benches, with their labels.
pub const LATENCY_JOBS: [(&str, Duration); 3] = [
    ("10us", Duration::from_micros(10)),
    ("100us", Duration::from_micros(100)),
    ("1ms", Duration::from_millis(1)),
];

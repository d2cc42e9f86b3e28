//! Adaptive dispatch: run a call site inline while its jobs are reliably
//! short, offload it to the pool otherwise.
//!
//! [`ComputePool::execute_adaptive`] keys what it learns by the closure's
//! type (`TypeId::of::<F>()`): every closure expression in the source is its
//! own type, so in practice one key is one call site. Per site it keeps an
//! exponentially weighted moving average (EWMA, weight 1/8) of the job's
//! compute time and of its absolute deviation, both in nanoseconds.
//!
//! Rules:
//!
//! - The first [`WARMUP_CALLS`] calls of a site go to the pool: an unknown
//!   job may be long, and a long job must not hold an async thread.
//! - A site runs inline when `mean + 2 × deviation` is at most
//!   [`INLINE_THRESHOLD`] (30 µs): short, and reliably so.
//! - Every run is timed, inline or offloaded (on the compute thread, so
//!   queue wait is not counted), so a site is re-checked continuously: a
//!   site whose jobs grow moves to the pool, one whose jobs shrink comes
//!   back inline.
//! - An inline run that takes longer than [`MISPREDICT_THRESHOLD`] (250 µs)
//!   is a misprediction: it counts in
//!   [`ComputeMetrics::adaptive_mispredicted`](crate::ComputeMetrics::adaptive_mispredicted),
//!   and its sample alone lifts the mean past the threshold, so the site's
//!   next call is offloaded.
//!
//! Decisions show in the pool's metrics (`adaptive_inline`,
//! `adaptive_offloaded`, `adaptive_mispredicted`).
//!
//! The table is process-wide (a closure's cost is a property of the code,
//! not of the pool) and lock-light: each thread keeps its own cache from
//! type to statistics, so the shared `RwLock` is taken only the first time a
//! thread meets a site; statistics are plain atomics updated with relaxed
//! loads and stores. Two threads recording at the same instant may lose one
//! sample, which an average shrugs off. Each site's statistics are
//! allocated once and never freed: there are only as many sites as closure
//! types in the program.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::{ComputeError, ComputePool};

/// A site runs inline when its jobs take at most this long, reliably
/// (`mean + 2 × deviation`). Below this the pool's handoff (tens of
/// microseconds of thread wake-ups) costs more than the job.
pub const INLINE_THRESHOLD: Duration = Duration::from_micros(30);

/// An inline run longer than this counts as a misprediction.
pub const MISPREDICT_THRESHOLD: Duration = Duration::from_micros(250);

/// Calls of a new site that go to the pool, and are timed there, before the
/// site may run inline.
pub const WARMUP_CALLS: u64 = 4;

/// EWMA weight of a new sample: 1 / 2^`EWMA_SHIFT` (1/8).
const EWMA_SHIFT: u32 = 3;

/// What adaptive dispatch has learned about one call site.
#[derive(Debug, Default)]
struct SiteStats {
    /// EWMA of the compute time, in nanoseconds.
    mean_ns: AtomicU64,
    /// EWMA of `|sample - mean|`, in nanoseconds.
    deviation_ns: AtomicU64,
    /// Samples recorded so far (saturating in practice: 2^64 calls).
    samples: AtomicU64,
}

impl SiteStats {
    fn record(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // ORDERING: Relaxed. A statistic; nothing else is published with it,
        // and a concurrent update may be lost (see the module docs).
        let seen = self.samples.fetch_add(1, Ordering::Relaxed);
        if seen == 0 {
            // ORDERING: Relaxed, as above.
            self.mean_ns.store(sample, Ordering::Relaxed);
            // The first sample says nothing about spread; assume a lot.
            // ORDERING: Relaxed, as above.
            self.deviation_ns.store(sample, Ordering::Relaxed);
            return;
        }
        // ORDERING: Relaxed, as above.
        let mean = self.mean_ns.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        let deviation = self.deviation_ns.load(Ordering::Relaxed);
        let new_mean = mean - (mean >> EWMA_SHIFT) + (sample >> EWMA_SHIFT);
        let distance = sample.abs_diff(mean);
        let new_deviation = deviation - (deviation >> EWMA_SHIFT) + (distance >> EWMA_SHIFT);
        // ORDERING: Relaxed, as above.
        self.mean_ns.store(new_mean, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        self.deviation_ns.store(new_deviation, Ordering::Relaxed);
    }

    fn should_inline(&self) -> bool {
        // ORDERING: Relaxed. Reads of a statistic; a stale value only delays
        // a decision by a call.
        if self.samples.load(Ordering::Relaxed) < WARMUP_CALLS {
            return false;
        }
        // ORDERING: Relaxed, as above.
        let mean = self.mean_ns.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        let deviation = self.deviation_ns.load(Ordering::Relaxed);
        let limit = INLINE_THRESHOLD.as_nanos() as u64;
        mean.saturating_add(deviation.saturating_mul(2)) <= limit
    }

    fn estimate(&self) -> Option<Duration> {
        // ORDERING: Relaxed, as above.
        if self.samples.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // ORDERING: Relaxed, as above.
        Some(Duration::from_nanos(self.mean_ns.load(Ordering::Relaxed)))
    }
}

/// Hashes a `TypeId` by the bits it writes: they are already a hash.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64);
    }
}

type SiteMap = HashMap<TypeId, &'static SiteStats, BuildHasherDefault<TypeIdHasher>>;

/// Every site seen by any thread.
static SITES: LazyLock<RwLock<SiteMap>> = LazyLock::new(|| RwLock::new(SiteMap::default()));

thread_local! {
    /// This thread's view of [`SITES`], so the shared lock is rarely taken.
    static LOCAL_SITES: RefCell<SiteMap> = RefCell::new(SiteMap::default());
}

/// The statistics of the site whose closure type is `id`.
fn site(id: TypeId) -> &'static SiteStats {
    let cached = LOCAL_SITES.try_with(|local| local.borrow().get(&id).copied());
    if let Ok(Some(stats)) = cached {
        return stats;
    }
    let found = SITES.read().get(&id).copied();
    let stats = found.unwrap_or_else(|| {
        *SITES
            .write()
            .entry(id)
            .or_insert_with(|| Box::leak(Box::default()))
    });
    // A thread being torn down has no cache; it just asks the shared table.
    let _ = LOCAL_SITES.try_with(|local| local.borrow_mut().insert(id, stats));
    stats
}

/// What adaptive dispatch currently expects a call of closure type `F` to
/// take (the moving average of its compute time), or `None` before its
/// first timed run. Pass any value of the closure's type, for example the
/// closure itself by reference.
///
/// ```
/// let job = || 1 + 1;
/// assert_eq!(compute_pool::adaptive_estimate(&job), None);
/// ```
pub fn adaptive_estimate<F: 'static>(_closure: &F) -> Option<Duration> {
    site(TypeId::of::<F>()).estimate()
}

impl ComputePool {
    /// Runs `f` inline or on the pool, whichever has been faster for this
    /// call site: see the [module docs](crate::adaptive) for the rules.
    ///
    /// Use it where the job's size is not known in advance or varies between
    /// deployments; when it is known, the size classes of the
    /// `compute-runtime` crate (`SizeClassExt::run_small`, `run_medium`,
    /// `run_large`) say so directly. Either way a
    /// panic in the job is [`ComputeError::Panicked`]. Once the pool is shut
    /// down, every call resolves to [`ComputeError::Shutdown`], inline sites
    /// included.
    ///
    /// Nothing runs until the future is polled. Its jobs, inline or not,
    /// count in [`call_sites`](ComputePool::call_sites) under the line that
    /// called `execute_adaptive`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let pool = compute_pool::ComputePool::with_defaults()?;
    /// let mut total = 0;
    /// for i in 0..100u64 {
    ///     total += pool.execute_adaptive(move || i * 2).await?;
    /// }
    /// assert_eq!(total, 9900);
    /// let metrics = pool.metrics();
    /// assert_eq!(metrics.adaptive_inline() + metrics.adaptive_offloaded(), 100);
    /// # Ok(())
    /// # }
    /// ```
    #[track_caller]
    pub fn execute_adaptive<F, R>(&self, f: F) -> impl Future<Output = Result<R, ComputeError>> + '_
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // An `async fn` would record its own line as the job's call site:
        // the caller's is taken here, before the future exists, and the
        // future (as lazy as an `async fn`'s) submits from it.
        let caller = Location::caller();
        async move {
            let stats = site(TypeId::of::<F>());
            if self.is_shutdown() {
                // Refused like any other job: `execute` resolves to `Shutdown`.
                return self.execute_from(caller, f).await;
            }
            if stats.should_inline() {
                self.inner.engine.metrics.record_adaptive_inline();
                let start = Instant::now();
                let result = self.execute_here_from(caller, f);
                let elapsed = start.elapsed();
                stats.record(elapsed);
                if elapsed > MISPREDICT_THRESHOLD {
                    self.inner.engine.metrics.record_adaptive_mispredicted();
                }
                result
            } else {
                self.inner.engine.metrics.record_adaptive_offloaded();
                self.execute_from(caller, move || {
                    let start = Instant::now();
                    let value = f();
                    stats.record(start.elapsed());
                    value
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_inline_for_steady_short_jobs() {
        let stats = SiteStats::default();
        for _ in 0..WARMUP_CALLS - 1 {
            stats.record(Duration::from_micros(1));
            assert!(!stats.should_inline());
        }
        stats.record(Duration::from_micros(1));
        assert!(stats.should_inline());
    }

    #[test]
    fn one_slow_sample_moves_the_site_to_the_pool() {
        let stats = SiteStats::default();
        for _ in 0..50 {
            stats.record(Duration::from_micros(1));
        }
        assert!(stats.should_inline());
        stats.record(MISPREDICT_THRESHOLD);
        assert!(!stats.should_inline());
        // Short again: it comes back inline.
        for _ in 0..100 {
            stats.record(Duration::from_micros(1));
        }
        assert!(stats.should_inline());
    }

    #[test]
    fn noisy_sites_stay_on_the_pool() {
        let stats = SiteStats::default();
        for i in 0..100 {
            let micros = if i % 2 == 0 { 1 } else { 45 };
            stats.record(Duration::from_micros(micros));
        }
        // Mean about 23 µs, under the threshold, but not reliably.
        assert!(stats.estimate().unwrap() < INLINE_THRESHOLD);
        assert!(!stats.should_inline());
    }

    #[test]
    fn long_jobs_never_go_inline() {
        let stats = SiteStats::default();
        for _ in 0..100 {
            stats.record(Duration::from_millis(2));
            assert!(!stats.should_inline());
        }
    }

    #[test]
    fn sites_are_shared_between_threads() {
        struct Marker;
        let here = site(TypeId::of::<Marker>()) as *const SiteStats as usize;
        let there =
            std::thread::spawn(|| site(TypeId::of::<Marker>()) as *const SiteStats as usize)
                .join()
                .unwrap();
        assert_eq!(here, there);
    }
}

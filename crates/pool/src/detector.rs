//! The blocked-job detector: which call site holds compute threads without
//! computing.
//!
//! - **Call sites.** Each submitting method is `#[track_caller]`; the
//!   submission resolves its `&'static Location` to the pool's
//!   [`SiteStats`] (a per-thread cache in `home.rs`, the pool's map on a
//!   miss) and the job carries that one pointer. The engine owns every
//!   `SiteStats` until it is dropped, after every job.
//! - **Slots.** Each compute thread has a [`Slot`], indexed by its rayon
//!   index and registered by the start handler with the thread's CPU clock.
//!   `run_counted` stores "job started at wall ns, from this site" when the
//!   outermost job starts and clears it when it ends: two stores each way.
//! - **The watchdog** (`watchdog.rs`: one thread per pool, holding only a
//!   `Weak`) wakes
//!   every `blocked_check_interval`, reads each busy slot's thread CPU clock
//!   and compares its advance with the wall time over its observation window.
//!   A job older than `blocked_threshold` that used less than a tenth of a
//!   CPU over a window of at least that long, counting as used the time its
//!   thread waited runnable for a CPU (its `schedstat`), and not runnable
//!   at that look (its `stat`; a wait for a CPU shows in `schedstat` only
//!   once it ends), is blocked: so a computing job on a loaded machine is
//!   not taken for a blocked one. It is counted once, its
//!   site warned about (at most once per site per [`WARN_EVERY`]). When
//!   every compute thread is in a blocked job while jobs wait, the pool is
//!   starved: an error event, counted, until a thread frees up.
//!
//! Linux only (thread CPU clocks); elsewhere [`AVAILABLE`] is false and
//! nothing is guessed.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Whether this platform can tell a blocked job from a computing one.
pub(crate) const AVAILABLE: bool = cfg!(target_os = "linux");

/// A site is warned about at most once in this long.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// A job using less than `1 / CPU_DIVISOR` of a CPU is blocked.
pub(crate) const CPU_DIVISOR: u64 = 10;

/// What the pool knows of one call site's jobs.
pub(crate) struct SiteStats {
    pub(crate) location: &'static Location<'static>,
    jobs: AtomicU64,
    compute_ns: AtomicU64,
    queue_wait_ns: AtomicU64,
    pub(crate) blocked: AtomicU64,
    /// When the site was last warned about, ns since the pool's epoch + 1;
    /// 0: never. Written by the watchdog only.
    pub(crate) warned_ns: AtomicU64,
}

impl SiteStats {
    fn new(location: &'static Location<'static>) -> SiteStats {
        SiteStats {
            location,
            jobs: AtomicU64::new(0),
            compute_ns: AtomicU64::new(0),
            queue_wait_ns: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            warned_ns: AtomicU64::new(0),
        }
    }

    /// A job of this site finished after waiting `queue_wait_ns` and
    /// running `compute_ns`.
    pub(crate) fn record(&self, queue_wait_ns: u64, compute_ns: u64) {
        // ORDERING: Relaxed: independent tallies, read as a snapshot.
        self.jobs.fetch_add(1, Ordering::Relaxed);
        // ORDERING: Relaxed: as above.
        self.compute_ns.fetch_add(compute_ns, Ordering::Relaxed);
        // ORDERING: Relaxed: as above.
        self.queue_wait_ns
            .fetch_add(queue_wait_ns, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CallSiteStats {
        // ORDERING: Relaxed for every load: a snapshot of tallies.
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        CallSiteStats {
            file: self.location.file(),
            line: self.location.line(),
            column: self.location.column(),
            jobs: load(&self.jobs),
            compute: Duration::from_nanos(load(&self.compute_ns)),
            queue_wait: Duration::from_nanos(load(&self.queue_wait_ns)),
            blocked: load(&self.blocked),
        }
    }
}

/// Statistics of the jobs submitted from one place in the source, from
/// [`ComputePool::call_sites`](crate::ComputePool::call_sites).
///
/// ```
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// for _ in 0..3 {
///     pool.execute_sync(|| ()).unwrap();
/// }
/// let sites = pool.call_sites();
/// assert_eq!(sites.len(), 1);
/// assert_eq!((sites[0].file, sites[0].jobs), (file!(), 3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSiteStats {
    /// The submitting call's source file.
    pub file: &'static str,
    /// Its line.
    pub line: u32,
    /// Its column.
    pub column: u32,
    /// Jobs from here that finished (returned or panicked).
    pub jobs: u64,
    /// Their compute time, summed.
    pub compute: Duration,
    /// Their queue wait, summed.
    pub queue_wait: Duration,
    /// Jobs from here found blocked (see the guide's "Jobs that block").
    pub blocked: u64,
}

/// The sites of one pool: found by their `Location`'s address.
#[derive(Default)]
pub(crate) struct Sites {
    map: Mutex<HashMap<usize, Arc<SiteStats>>>,
}

impl Sites {
    /// The stats of `location` (created on first use). The returned pointer
    /// lives as long as this `Sites`: entries are never removed.
    pub(crate) fn resolve(&self, location: &'static Location<'static>) -> *const SiteStats {
        let key = location as *const Location<'static> as usize;
        let mut map = self.map.lock();
        let stats = map
            .entry(key)
            .or_insert_with(|| Arc::new(SiteStats::new(location)));
        Arc::as_ptr(stats)
    }

    /// A snapshot of every site, in order of file and line.
    pub(crate) fn snapshot(&self) -> Vec<CallSiteStats> {
        let mut all: Vec<_> = self.map.lock().values().map(|s| s.snapshot()).collect();
        all.sort_by(|a, b| (a.file, a.line, a.column).cmp(&(b.file, b.line, b.column)));
        all
    }
}

/// One compute thread's published state. See the module docs.
pub(crate) struct Slot {
    /// When its outermost job started, ns since the pool's epoch + 1; 0:
    /// no job.
    pub(crate) started_ns: AtomicU64,
    /// That job's site.
    pub(crate) site: AtomicPtr<SiteStats>,
    /// The thread's CPU clock (`clockid_t`), once registered.
    pub(crate) clock: AtomicI64,
    /// The thread's kernel id, for its scheduler statistics.
    pub(crate) tid: AtomicI64,
    pub(crate) registered: AtomicBool,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            started_ns: AtomicU64::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            clock: AtomicI64::new(0),
            tid: AtomicI64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// Publishes the start of an outermost job; `false` if a job already
    /// holds the slot (this one is nested in it).
    #[inline]
    pub(crate) fn enter(&self, started_ns: u64, site: *const SiteStats) -> bool {
        // ORDERING: Relaxed: only this thread writes the slot's job fields.
        if self.started_ns.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // ORDERING: Relaxed: published by the Release store below.
        self.site.store(site.cast_mut(), Ordering::Relaxed);
        // ORDERING: Release: the watchdog's Acquire load of `started_ns`
        // then sees this job's `site`.
        self.started_ns
            .store(started_ns.saturating_add(1).max(1), Ordering::Release);
        true
    }

    /// Clears the slot when the job that [`enter`](Self::enter)ed ends.
    #[inline]
    pub(crate) fn leave(&self) {
        // ORDERING: Relaxed: the watchdog needs no data from a cleared slot.
        self.started_ns.store(0, Ordering::Relaxed);
    }
}

/// The detector's part of an engine.
pub(crate) struct Detector {
    pub(crate) slots: Box<[Slot]>,
    pub(crate) sites: Sites,
    /// Whether the watchdog runs (configured on, and available).
    pub(crate) on: bool,
    pub(crate) threshold_ns: u64,
}

impl Detector {
    pub(crate) fn new(
        num_threads: usize,
        interval: Option<Duration>,
        threshold: Duration,
    ) -> Detector {
        Detector {
            slots: (0..num_threads).map(|_| Slot::new()).collect(),
            sites: Sites::default(),
            on: AVAILABLE && interval.is_some(),
            threshold_ns: u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Registers the calling thread, compute thread `index`, with its CPU
    /// clock (start handler).
    pub(crate) fn register(&self, index: usize) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        if let Some(clock) = clock::this_thread() {
            // ORDERING: Relaxed: published by the Release store below.
            slot.clock.store(i64::from(clock), Ordering::Relaxed);
            // ORDERING: Relaxed: published by the Release store below.
            slot.tid.store(clock::this_tid(), Ordering::Relaxed);
            // ORDERING: Release: pairs with the watchdog's Acquire load, so
            // it reads this thread's clock.
            slot.registered.store(true, Ordering::Release);
        }
    }
}

/// Thread CPU clocks.
#[cfg(target_os = "linux")]
pub(crate) mod clock {
    /// The calling thread's CPU clock.
    pub(crate) fn this_thread() -> Option<libc::clockid_t> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pthread_self` is always valid for the calling thread, and
        // `clock` is a valid place for the result.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        (rc == 0).then_some(clock)
    }

    /// The calling thread's kernel id.
    pub(crate) fn this_tid() -> i64 {
        // SAFETY: `gettid` has no preconditions and cannot fail.
        i64::from(unsafe { libc::gettid() })
    }

    /// How long thread `tid` of this process has waited, runnable, for a
    /// CPU, in ns (the second field of its `schedstat`); `None` where the
    /// kernel keeps no such statistics.
    pub(crate) fn run_delay(tid: i64) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        stat.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether thread `tid` of this process is running or waiting for a
    /// CPU (state `R` in its `stat`); false if that cannot be read.
    pub(crate) fn is_runnable(tid: i64) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
            return false;
        };
        // The state follows the command name, which is in parentheses and
        // may itself contain them.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            == Some("R")
    }

    /// The CPU time of the thread whose clock is `clock`, in ns; `None` if it
    /// cannot be read (the thread has exited).
    pub(crate) fn read(clock: i64) -> Option<u64> {
        let clock = libc::clockid_t::try_from(clock).ok()?;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; a clock id of a thread
        // that has exited makes the call fail, not misbehave.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        if rc != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }
}

/// No thread CPU clocks here: the detector is unavailable.
#[cfg(not(target_os = "linux"))]
pub(crate) mod clock {
    pub(crate) fn this_thread() -> Option<i32> {
        None
    }

    pub(crate) fn this_tid() -> i64 {
        0
    }

    pub(crate) fn run_delay(_tid: i64) -> Option<u64> {
        None
    }

    pub(crate) fn is_runnable(_tid: i64) -> bool {
        false
    }

    pub(crate) fn read(_clock: i64) -> Option<u64> {
        None
    }
}

/// A job's call site, as it carries it: a pointer into its engine's
/// [`Sites`], valid while the engine lives (a job never outlives it).
#[derive(Clone, Copy)]
pub(crate) struct SitePtr(pub(crate) *const SiteStats);

// SAFETY: `SiteStats` is atomics and a `&'static Location`, shared by
// design; the pointer is only read.
unsafe impl Send for SitePtr {}
// SAFETY: as above.
unsafe impl Sync for SitePtr {}

impl SitePtr {
    /// The stats; the caller holds the engine the site belongs to.
    #[inline]
    pub(crate) fn get(&self) -> &SiteStats {
        // SAFETY: see the type's docs: the engine owns the stats until it
        // is dropped, and whoever holds this pointer runs with the engine.
        unsafe { &*self.0 }
    }
}

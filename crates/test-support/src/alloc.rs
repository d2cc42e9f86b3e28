//! A counting global allocator: allocations, bytes asked for, live bytes
//! and their peak, for the tests and benches that measure what code
//! allocates or keeps.
//!
//! A global allocator applies to a whole binary, so a test or bench that
//! counts installs it in its own binary:
//!
//! ```
//! use compute_test_support::alloc::{Counting, Snapshot};
//!
//! #[global_allocator]
//! static ALLOCATOR: Counting = Counting;
//!
//! let before = Snapshot::now();
//! let v = vec![0u8; 100];
//! let spent = Snapshot::now().since(before);
//! assert!(spent.allocations >= 1 && spent.bytes >= 100 && spent.live >= 100);
//! drop(v);
//! ```
//!
//! The counters are process-wide and cover every thread: tests that read
//! them take turns, and read them after joining (or otherwise
//! synchronising with) the threads whose allocations they count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting as it goes. Install with
/// `#[global_allocator] static ALLOCATOR: Counting = Counting;`; read the
/// counts with [`Snapshot::now`].
///
/// Every allocation (zeroed or not) and every reallocation counts as one
/// allocation and adds the bytes it asks for (a reallocation its new size)
/// to [`Snapshot::bytes`]; frees are not subtracted there: that figure is
/// what a piece of code allocates, not what it keeps. What it keeps is
/// [`Snapshot::live`]: bytes allocated and not yet freed, whose highest
/// value since [`Counting::reset_peak`] is [`Snapshot::peak`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

impl Counting {
    /// Starts a new peak window at the current live figure: from now on
    /// [`Snapshot::peak`] is the highest live figure since this call.
    pub fn reset_peak() {
        // ORDERING: Relaxed, both: tallies; a concurrent allocation may
        // raise the peak right after the store, which is what a window
        // should show.
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            added(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            added(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        removed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            removed(layout.size());
            added(new_size);
        }
        new
    }
}

/// Counts an allocation of `bytes`.
fn added(bytes: usize) {
    // ORDERING: Relaxed: independent tallies, nothing is published through
    // them; readers take a snapshot after joining or synchronising with the
    // threads that allocated.
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    // ORDERING: Relaxed, as above.
    BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    // ORDERING: Relaxed, as above.
    let live = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    // ORDERING: Relaxed, both: fetch_max is atomic on its own; the load only
    // spares the read-modify-write when the peak is already higher (it can
    // only have grown since).
    if live > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

/// Counts a free of `bytes`.
fn removed(bytes: usize) {
    // ORDERING: Relaxed: an independent tally; see `added`.
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

/// A reading of the counters (all zero unless [`Counting`] is the global
/// allocator), or with [`since`](Snapshot::since) what changed between two.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Allocations (and reallocations) so far.
    pub allocations: u64,
    /// Bytes asked for so far (frees not subtracted).
    pub bytes: u64,
    /// Bytes allocated and not yet freed.
    pub live: isize,
    /// The highest [`live`](Snapshot::live) figure since the last
    /// [`Counting::reset_peak`] (or since the start).
    pub peak: isize,
}

impl Snapshot {
    /// The counters now.
    pub fn now() -> Snapshot {
        Snapshot {
            // ORDERING: Relaxed: a snapshot; see `added`.
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
            // ORDERING: Relaxed: a snapshot; see `added`.
            bytes: BYTES.load(Ordering::Relaxed),
            // ORDERING: Relaxed: a snapshot; see `added`.
            live: LIVE.load(Ordering::Relaxed),
            // ORDERING: Relaxed: a snapshot; see `added`.
            peak: PEAK.load(Ordering::Relaxed),
        }
    }

    /// What changed between `earlier` and `self`: the allocations and bytes
    /// asked for in between, the change of live bytes (negative if more was
    /// freed than allocated), and how far the peak rose above the live
    /// figure of `earlier` (take `earlier` right before
    /// [`Counting::reset_peak`] to get the peak of the window).
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            allocations: self.allocations - earlier.allocations,
            bytes: self.bytes - earlier.bytes,
            live: self.live - earlier.live,
            peak: self.peak - earlier.live,
        }
    }
}

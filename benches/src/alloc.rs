//! A global allocator that counts allocations and bytes, for the
//! bytes-per-channel and bytes-per-`execute` figures.
//!
//! A global allocator applies to a whole binary, so only the cost report
//! installs it (`#[global_allocator] static A: Counting = Counting;`); the
//! criterion benches run on the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting every allocation (and reallocation) and the
/// bytes it asks for. Frees are not subtracted: the figures are what a
/// piece of code allocates, not what it keeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    // ORDERING: Relaxed. Independent counters; readers take a snapshot after
    // joining or synchronising with the threads that allocated.
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    // ORDERING: Relaxed, as above.
    BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// A reading of the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Allocations (and reallocations) so far.
    pub allocations: u64,
    /// Bytes asked for so far.
    pub bytes: u64,
}

impl Snapshot {
    /// The counters now. All zero unless [`Counting`] is the global allocator.
    pub fn now() -> Snapshot {
        Snapshot {
            // ORDERING: Relaxed: a snapshot; see `count`.
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
            // ORDERING: Relaxed: a snapshot; see `count`.
            bytes: BYTES.load(Ordering::Relaxed),
        }
    }

    /// What was allocated between `earlier` and `self`.
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            allocations: self.allocations - earlier.allocations,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

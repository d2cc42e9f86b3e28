//! What the channel allocates: one block per channel, and nothing more for
//! a blocking wait whose result is already there. Counted with a counting
//! global allocator (its own test binary, one test).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use compute_bridge::{channel, Spin};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // ORDERING: Relaxed: a tally, read on the thread that did the work.
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    // ORDERING: Relaxed: see above.
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn one_allocation_per_channel_and_none_for_a_wait_that_finds_the_result() {
    const N: usize = 1000;
    let before = allocations();
    for i in 0..N {
        let (tx, rx) = channel::<usize>();
        tx.send(i).unwrap();
        assert_eq!(rx.recv_blocking_with(Spin::OFF).unwrap(), i);
    }
    assert_eq!(allocations() - before, N, "one allocation per channel");
}

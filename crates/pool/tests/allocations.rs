//! An `execute` costs two allocations: the bridge channel and rayon's job
//! box. Counted with a counting global allocator (its own test binary).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use support::watchdog;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // ORDERING: Relaxed: a tally read after the measured work is joined.
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

#[test]
fn two_allocations_per_execute() {
    watchdog(|| {
        let pool = support::pool(1);
        // Warm up: thread-locals, the executor, lazily built state.
        for _ in 0..100 {
            futures::executor::block_on(pool.execute(|| 1u64)).unwrap();
        }
        const N: usize = 2000;
        // ORDERING: Relaxed: see above.
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for i in 0..N as u64 {
            let v = futures::executor::block_on(pool.execute(move || i * 2)).unwrap();
            assert_eq!(v, i * 2);
        }
        // ORDERING: Relaxed: see above.
        let per_job = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64;
        eprintln!("{per_job:.3} allocations per execute");
        // Slack for rare allocations elsewhere (rayon's deque growth, parking).
        assert!(per_job <= 2.05, "{per_job} allocations per execute");
    });
}

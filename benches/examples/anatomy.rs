//! Where a round trip's time goes, and what this machine allows at best.
//!
//! ```text
//! cargo run --release -p compute-benches --example anatomy
//! ```
//!
//! Prints, for trivial jobs one at a time from a tokio task (1 worker +
//! 1 compute thread), the medians of three legs: the submit call itself,
//! submit to job start, and job start to the awaiter holding the result;
//! for our pool and the naive bridge. Then three floors measured with two
//! plain spinning threads: handing over an integer; handing over a box
//! allocated on one thread and freed on the other (what every job costs
//! with the system allocator, since rayon frees a job's box on the thread
//! that ran it); and a job's bare bones in our pool, a channel's sender
//! through crossbeam's injector one way and the value through the channel
//! the other.

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::Instant;

use compute_benches::setup::{Bridge, Setup, Threads};
use compute_test_support::median;

const JOBS: usize = 20_000;

/// The three legs of `JOBS` round trips through `bridge`, medians in ns.
fn legs(setup: &Setup, bridge: Bridge) -> [f64; 3] {
    let [a, b, c] = setup.on_worker(move |pools| async move {
        let mut legs = [const { Vec::new() }; 3];
        for _ in 0..JOBS {
            let start = Instant::now();
            let handle = pools.submit(bridge, Instant::now);
            let submitted = Instant::now();
            let job_started = handle.await;
            let done = Instant::now();
            legs[0].push((submitted - start).as_nanos() as f64);
            legs[1].push((job_started - start).as_nanos() as f64);
            legs[2].push((done - job_started).as_nanos() as f64);
        }
        legs
    });
    [a, b, c].map(|mut leg| median(&mut leg).expect("JOBS samples a leg"))
}

// ORDERING: the floors below pass one value at a time between two threads;
// Release on the store that hands it over and Acquire on the load that takes
// it make the handed-over data visible. STOP is a plain flag (Relaxed).
static STOP: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);

/// Times round trips through a spinning peer thread, in ns each: `hand_over`
/// gives it value `i`, `take` (run on the peer until `STOP`) returns a value
/// handed over, if any; the peer echoes it in `DONE`.
fn round_trips(hand_over: impl Fn(u64), take: fn() -> Option<u64>) -> f64 {
    const ROUNDS: u64 = JOBS as u64 * 10;
    STOP.store(false, Ordering::Relaxed);
    DONE.store(0, Ordering::Relaxed);
    let peer = std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            if let Some(v) = take() {
                DONE.store(v, Ordering::Release);
            }
            std::hint::spin_loop();
        }
    });
    let start = Instant::now();
    for i in 1..=ROUNDS {
        hand_over(i);
        while DONE.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
    }
    let each = start.elapsed().as_nanos() as f64 / ROUNDS as f64;
    STOP.store(true, Ordering::Relaxed);
    peer.join().expect("the peer thread does not panic");
    each
}

/// Round trips of an integer through a spinning thread.
fn floor_integer() -> f64 {
    static SLOT: AtomicU64 = AtomicU64::new(0);
    round_trips(
        |i| SLOT.store(i, Ordering::Release),
        || Some(SLOT.swap(0, Ordering::Acquire)).filter(|&v| v != 0),
    )
}

/// Round trips of a box allocated here and freed by a spinning thread.
fn floor_box() -> f64 {
    static SLOT: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());
    round_trips(
        |i| SLOT.store(Box::into_raw(Box::new(i)), Ordering::Release),
        || {
            let p = SLOT.swap(std::ptr::null_mut(), Ordering::Acquire);
            // SAFETY: a non-null `p` came from `Box::into_raw` above and is
            // taken out of the slot exactly once, by this swap.
            (!p.is_null()).then(|| *unsafe { Box::from_raw(p) })
        },
    )
}

/// Round trips of a `compute_bridge` channel: its sender handed over through
/// a crossbeam injector (the pool's queue), the value back through the
/// channel (polled in a loop), in ns each. Our pool's round trip on two
/// vCPUs is this plus its bookkeeping.
fn floor_queue_and_channel() -> f64 {
    use crossbeam_deque::{Injector, Steal};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};
    const ROUNDS: u64 = JOBS as u64 * 10;
    let queue = Arc::new(Injector::<compute_bridge::Sender<u64>>::new());
    let stop = Arc::new(AtomicBool::new(false));
    let peer = {
        let (queue, stop) = (Arc::clone(&queue), Arc::clone(&stop));
        std::thread::spawn(move || {
            // ORDERING: Relaxed: a plain flag, as `STOP`.
            while !stop.load(Ordering::Relaxed) {
                if let Steal::Success(tx) = queue.steal() {
                    let _ = tx.send(1);
                }
                std::hint::spin_loop();
            }
        })
    };
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let (tx, mut rx) = compute_bridge::channel::<u64>();
        queue.push(tx);
        while !matches!(Pin::new(&mut rx).poll(&mut cx), Poll::Ready(_)) {
            std::hint::spin_loop();
        }
    }
    let each = start.elapsed().as_nanos() as f64 / ROUNDS as f64;
    // ORDERING: Relaxed, as above.
    stop.store(true, Ordering::Relaxed);
    peer.join().expect("the peer thread does not panic");
    each
}

fn main() {
    let setup = Setup::new(Threads::BOTH[0]);
    println!("trivial jobs one at a time, tokio 1 worker + 1 compute thread, medians of {JOBS}:");
    println!(
        "{:<14} {:>12} {:>18} {:>22}",
        "bridge", "submit call", "submit->job start", "job start->result held"
    );
    for round in 0..3 {
        for bridge in [Bridge::Ours, Bridge::Naive] {
            let [a, b, c] = legs(&setup, bridge);
            println!(
                "{:<14} {a:>9.0} ns {b:>15.0} ns {c:>19.0} ns   (round {round})",
                bridge.name()
            );
        }
    }
    println!("\nfloors, two spinning threads:");
    println!(
        "  hand over an integer and back:          {:>6.0} ns",
        black_box(floor_integer())
    );
    println!(
        "  hand over a box (freed by the other):   {:>6.0} ns",
        black_box(floor_box())
    );
    println!(
        "  a sender through the queue, the value back through the channel: {:>6.0} ns",
        black_box(floor_queue_and_channel())
    );
}

//! Back-pressure under overload: 100 000 submissions from 256 async
//! submitters against `max_in_flight = 64`. Memory stays flat (a counting
//! global allocator: the peak of live bytes over the last 90 000
//! submissions is no higher than over the first 10 000, so it does not grow
//! with the number of submissions), every job runs and the counters
//! balance.
//!
//! Order: each submitter submits a window of 4 jobs, then awaits them, so
//! several of its jobs wait for room at once; with one compute thread, its
//! jobs must start exactly in the order it submitted them (no inversion in
//! 100 000). (Before the pool owned its queue of waiting jobs, a waiting
//! job was submitted when its handle was next polled, and 0 to 12 per
//! 100 000 started out of order.)
//!
//! `COMPUTE_TEST_SCALE` shrinks the submission count (memcheck).

mod reliability_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool};
use compute_test_support::alloc::{Counting, Snapshot};
use compute_test_support::scaled;
use reliability_common::Watchdog;

#[global_allocator]
static ALLOC: Counting = Counting;

const SUBMITTERS: usize = 256;
/// Jobs a submitter submits together before awaiting them.
const WINDOW: usize = 4;
const MAX_IN_FLIGHT: usize = 64;
const SUBMISSIONS: u64 = 100_000;

/// Allowance over the first window's peak: allocator noise (tokio's timer
/// and task slabs, rayon's deques settle in the first phase), never
/// proportional to the submissions (a leak of 16 bytes per job would add
/// 1.4 MB over the second phase).
const PEAK_SLACK: isize = 128 * 1024;

/// What the jobs record.
struct Book {
    /// The last sequence number that started, per submitter.
    last_started: Vec<AtomicU64>,
    started: AtomicU64,
    inversions: AtomicU64,
    out_of_order: Mutex<Vec<String>>,
}

/// Runs `per_submitter` submissions from each submitter; each submitter
/// submits `WINDOW` jobs, awaits them, and repeats. Sequence numbers
/// continue from `first_seq`.
async fn phase(pool: &ComputePool, book: &Arc<Book>, per_submitter: u64, first_seq: u64) {
    let mut tasks = Vec::with_capacity(SUBMITTERS);
    for submitter in 0..SUBMITTERS {
        let (pool, book) = (pool.clone(), book.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = first_seq;
            let end = first_seq + per_submitter;
            while seq < end {
                let window: Vec<_> = (seq..end.min(seq + WINDOW as u64))
                    .map(|s| {
                        let book = book.clone();
                        pool.execute(move || {
                            // ORDERING: Relaxed: one compute thread runs the
                            // jobs one after another, so program order on that
                            // thread orders these; the figures are read after
                            // the runtime is done.
                            let prev = book.last_started[submitter].swap(s, Ordering::Relaxed);
                            if prev >= s && s != 0 {
                                // ORDERING: Relaxed: a tally.
                                book.inversions.fetch_add(1, Ordering::Relaxed);
                                let mut log = book.out_of_order.lock().unwrap();
                                if log.len() < 10 {
                                    log.push(format!(
                                        "submitter {submitter}: job {s} started after job {prev}"
                                    ));
                                }
                            }
                            // ORDERING: Relaxed: a tally.
                            book.started.fetch_add(1, Ordering::Relaxed);
                            // Some memory traffic per job.
                            let scratch = vec![s as u8; 512];
                            scratch.iter().map(|&b| u64::from(b)).sum::<u64>()
                        })
                    })
                    .collect();
                let first = seq;
                seq += window.len() as u64;
                for (i, result) in futures::future::join_all(window)
                    .await
                    .into_iter()
                    .enumerate()
                {
                    let s = first + i as u64;
                    assert_eq!(result.expect("job ran"), 512 * u64::from(s as u8));
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a submitter panicked");
    }
}

#[test]
fn a_hundred_thousand_submissions_against_max_in_flight_64_keep_memory_flat_and_order() {
    let total = scaled(SUBMISSIONS, (SUBMITTERS * WINDOW * 10) as u64);
    let per_submitter = total / SUBMITTERS as u64;
    let early = (per_submitter / 10).max(WINDOW as u64);
    let late = per_submitter - early;
    let _watchdog = Watchdog::arm("overload", Duration::from_secs(300), String::new);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // One compute thread, so "started in order" is exact: two threads could
    // take two queued jobs in order and record them the other way round.
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        max_in_flight: Some(MAX_IN_FLIGHT),
        ..Default::default()
    })
    .expect("pool");
    let book = Arc::new(Book {
        last_started: (0..SUBMITTERS).map(|_| AtomicU64::new(0)).collect(),
        started: AtomicU64::new(0),
        inversions: AtomicU64::new(0),
        out_of_order: Mutex::new(Vec::new()),
    });

    // Each phase's figures over the live bytes at the start: the peak of
    // the phase and the live bytes after it.
    let base = Snapshot::now();
    Counting::reset_peak();
    runtime.block_on(phase(&pool, &book, early, 0));
    let Snapshot {
        peak: early_peak,
        live: after_early,
        ..
    } = Snapshot::now().since(base);

    Counting::reset_peak();
    runtime.block_on(phase(&pool, &book, late, early));
    let Snapshot {
        peak: late_peak,
        live: after_late,
        ..
    } = Snapshot::now().since(base);

    let m = pool.metrics();
    eprintln!(
        "overload: {} submissions from {SUBMITTERS} submitters (window {WINDOW}), \
         max_in_flight {MAX_IN_FLIGHT}: live-bytes peak +{early_peak} over the first {}, \
         +{late_peak} over the other {}; live after +{after_early} / +{after_late}; {m}",
        per_submitter * SUBMITTERS as u64,
        early * SUBMITTERS as u64,
        late * SUBMITTERS as u64,
    );

    let out_of_order = book.out_of_order.lock().unwrap().clone();
    assert!(
        out_of_order.is_empty(),
        "submitters served out of order ({} inversions): {out_of_order:#?}",
        // ORDERING: Relaxed: the runtime is done.
        book.inversions.load(Ordering::Relaxed)
    );
    assert_eq!(
        // ORDERING: Relaxed: the runtime is done; the pool is idle.
        book.started.load(Ordering::Relaxed),
        per_submitter * SUBMITTERS as u64
    );
    assert_eq!(m.tasks_total(), per_submitter * SUBMITTERS as u64, "{m}");
    assert_eq!((m.tasks_active(), m.tasks_rejected()), (0, 0), "{m}");
    assert!(
        late_peak <= early_peak + PEAK_SLACK,
        "memory grows with submissions: peak +{early_peak} bytes over the first {} \
         submissions, +{late_peak} over the next {}",
        early * SUBMITTERS as u64,
        late * SUBMITTERS as u64
    );
    assert!(
        after_late <= after_early + PEAK_SLACK,
        "live bytes creep: +{after_early} after the first phase, +{after_late} after the second"
    );
}

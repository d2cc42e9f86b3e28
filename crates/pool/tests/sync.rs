//! `execute_sync`: blocks only the caller, may borrow, contains panics.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use support::{count_primes, pool, wait_until, watchdog, within, Blocker};

#[test]
fn borrows_local_data() {
    watchdog(|| {
        let pool = pool(2);
        let mut words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let total = pool
            .execute_sync(|| words.par_iter().map(|w| w.len()).sum::<usize>())
            .unwrap();
        assert_eq!(total, words.iter().map(|w| w.len()).sum::<usize>());
        // Mutable borrows work too.
        pool.execute_sync(|| words.par_iter_mut().for_each(|w| w.push('!')))
            .unwrap();
        assert!(words.iter().all(|w| w.ends_with('!')));
    });
}

#[test]
fn runs_on_a_pool_thread() {
    watchdog(|| {
        let pool = pool(1);
        let p = pool.clone();
        assert!(pool.execute_sync(move || p.is_worker_thread()).unwrap());
    });
}

#[test]
fn panics_become_errors() {
    watchdog(|| {
        let pool = pool(1);
        let err = pool
            .execute_sync(|| -> u32 { panic!("sync boom") })
            .unwrap_err();
        assert!(err.is_panic());
        assert!(err.to_string().contains("sync boom"));
        assert_eq!(pool.execute_sync(|| 3).unwrap(), 3);
        let m = pool.metrics();
        assert_eq!(
            (m.tasks_panicked(), m.tasks_completed(), m.tasks_active()),
            (1, 1, 0)
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_spawn_blocking_it_blocks_only_that_thread() {
    let pool = pool(1);
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let p = pool.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let n = p
            .execute_sync(|| {
                std::thread::sleep(Duration::from_millis(30));
                count_primes(3000)
            })
            .unwrap();
        f.store(true, Ordering::SeqCst);
        n
    });
    // The async side keeps running while the blocking thread waits.
    let mut ticks = 0;
    while ticks < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        ticks += 1;
    }
    assert_eq!(within(blocking).await.unwrap(), count_primes(3000));
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn many_threads_at_once() {
    watchdog(|| {
        let pool = pool(2);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let pool = &pool;
                s.spawn(move || {
                    for i in 0..50u64 {
                        assert_eq!(pool.execute_sync(|| t * i).unwrap(), t * i);
                    }
                });
            }
        });
        assert_eq!(pool.metrics().tasks_completed(), 400);
        assert_eq!(pool.metrics().tasks_active(), 0);
    });
}

/// Sets its flag when dropped; the flag is borrowed from the caller.
struct Captured<'a>(&'a AtomicBool);

impl Drop for Captured<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_job_dropped_at_the_shutdown_deadline_lets_go_of_its_borrows_first() {
    watchdog(|| {
        let pool = pool(1);
        let blocker = Blocker::occupy(&pool);
        let dropped = AtomicBool::new(false);
        let ran = AtomicBool::new(false);
        std::thread::scope(|s| {
            let caller = s.spawn(|| {
                // The job owns `captured`, which borrows the caller's flag.
                let captured = Captured(&dropped);
                let ran = &ran;
                let result = pool.execute_sync(move || {
                    let _keep = captured;
                    ran.store(true, Ordering::SeqCst);
                });
                // By the time the call returns, the job has dropped what
                // it borrowed: the caller's stack is about to go.
                (result, dropped.load(Ordering::SeqCst))
            });
            // The sync job waits behind the blocker; let the deadline pass.
            wait_until("the sync job is queued", || {
                pool.metrics().tasks_active() == 2
            });
            assert!(!pool.shutdown_blocking(Duration::from_millis(20)));
            futures::executor::block_on(blocker.release()).unwrap();
            let (result, dropped_before_return) = caller.join().unwrap();
            assert!(result.unwrap_err().is_shutdown());
            assert!(dropped_before_return);
        });
        assert!(
            !ran.load(Ordering::SeqCst),
            "a job past the deadline never runs"
        );
    });
}

#[test]
fn two_pools_calling_each_other_back_through_execute_sync_do_not_deadlock() {
    // One thread each: a job of A waits on B, whose job waits on A again.
    // A thread of one pool waiting on another pool must keep serving its
    // own pool meanwhile, as rayon's `install` does, or A's only thread
    // sits parked while the job it waits for needs it.
    let value = support::watchdog_for(Duration::from_secs(20), || {
        let a = pool(1);
        let b = pool(1);
        let (a2, b2) = (a.clone(), b.clone());
        let outer = a.execute_sync(move || {
            b2.execute_sync(move || a2.execute_sync(|| 42).unwrap())
                .unwrap()
        });
        outer.unwrap()
    });
    assert_eq!(value, 42);
}

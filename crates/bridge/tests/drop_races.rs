//! Sends racing receiver drops, on real threads: every value is dropped
//! exactly once, whichever side wins.

mod common;

use std::future::Future;
use std::sync::Barrier;
use std::time::Duration;

use common::DropCounter;
use compute_bridge::{channel, Closed};
use compute_test_support::watchdog_for;

#[test]
fn sends_racing_drops_drop_each_value_once() {
    watchdog_for(Duration::from_secs(60), || {
        let rounds = compute_test_support::scaled(5_000, 1) as usize;
        let counter = DropCounter::default();
        let mut refused = 0;
        let barrier = std::sync::Arc::new(Barrier::new(2));
        for i in 0..rounds {
            let (tx, mut rx) = channel();
            let value = counter.make(i as u64);
            let b = barrier.clone();
            let sender = std::thread::spawn(move || {
                b.wait();
                tx.send(value).is_err()
            });
            if i % 3 == 0 {
                // Register a waker first, as a polled future would.
                let waker = futures::task::noop_waker();
                let _ =
                    std::pin::Pin::new(&mut rx).poll(&mut std::task::Context::from_waker(&waker));
            }
            barrier.wait();
            drop(rx);
            if sender.join().unwrap() {
                refused += 1;
            }
        }
        assert_eq!(
            counter.drops(),
            rounds,
            "{refused} values came back to senders"
        );
    });
}

#[test]
fn cancellation_is_accounted_exactly_once() {
    watchdog_for(Duration::from_secs(60), || {
        let rounds = compute_test_support::scaled(5_000, 1) as usize;
        let counter = DropCounter::default();
        let (mut ran, mut skipped_by_rx) = (0, 0);
        for i in 0..rounds {
            let (tx, rx) = channel();
            let job_counter = counter.clone();
            let job = std::thread::spawn(move || {
                if tx.try_start() {
                    let _ = tx.send(job_counter.make(i as u64));
                    true
                } else {
                    false
                }
            });
            if i % 2 == 0 {
                std::thread::yield_now();
            }
            let closed = rx.close();
            let job_ran = job.join().unwrap();
            match closed {
                Closed::BeforeStart => {
                    assert!(!job_ran, "a job cancelled before start must not run");
                    skipped_by_rx += 1;
                }
                Closed::WhileRunning | Closed::AfterCompletion => assert!(job_ran),
            }
            ran += usize::from(job_ran);
        }
        assert_eq!(ran + skipped_by_rx, rounds);
        assert_eq!(counter.drops(), ran);
    });
}

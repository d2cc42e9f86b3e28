//! The receiver awaited on a Tokio runtime, the sender on plain threads.

use std::time::Duration;

use compute_bridge::{channel, RecvError};
use compute_test_support::watchdog_for;

#[test]
fn value_crosses_from_a_thread_to_a_tokio_task() {
    watchdog_for(Duration::from_secs(20), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..compute_test_support::scaled(2_000, 1) as u64 {
                let (tx, rx) = channel();
                std::thread::spawn(move || tx.send(i * 3).unwrap());
                tasks.push(tokio::spawn(rx));
            }
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), Ok(i as u64 * 3));
            }
        });
    });
}

#[test]
fn works_on_a_current_thread_runtime_with_timeouts() {
    watchdog_for(Duration::from_secs(20), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            // A value that never comes: the timeout fires and drops the receiver.
            let (tx, rx) = channel::<u8>();
            let waited = tokio::time::timeout(Duration::from_millis(20), rx).await;
            assert!(waited.is_err());
            assert!(tx.is_closed(), "a timed-out receiver closes the channel");
            assert_eq!(tx.send(1), Err(1), "the value comes back to the sender");

            // A sender dropped on another thread resolves the receiver.
            let (tx, rx) = channel::<u8>();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                drop(tx);
            });
            assert_eq!(rx.await, Err(RecvError));
        });
    });
}

#[test]
fn a_slow_sender_wakes_the_task() {
    watchdog_for(Duration::from_secs(20), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            for delay_us in [0u64, 10, 100, 1_000] {
                let (tx, rx) = channel();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_micros(delay_us));
                    tx.send(delay_us).unwrap();
                });
                assert_eq!(rx.await, Ok(delay_us));
            }
        });
    });
}

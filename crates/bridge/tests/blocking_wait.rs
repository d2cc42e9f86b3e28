//! A thread blocked on the receiver: spin, then park.

use std::time::Duration;

use compute_bridge::{channel, RecvError, Spin};
use compute_test_support::watchdog_for;

#[test]
fn blocking_receive_with_each_spin_setting() {
    watchdog_for(Duration::from_secs(20), || {
        for spin in [Spin::OFF, Spin::iterations(100), Spin::default()] {
            for delay_us in [0u64, 50, 2_000] {
                let (tx, rx) = channel();
                std::thread::spawn(move || {
                    if delay_us > 0 {
                        std::thread::sleep(Duration::from_micros(delay_us));
                    }
                    tx.send(delay_us).unwrap();
                });
                assert_eq!(rx.recv_blocking_with(spin), Ok(delay_us), "{spin:?}");
            }
        }
    });
}

#[test]
fn blocking_receive_of_a_dropped_sender_is_an_error() {
    watchdog_for(Duration::from_secs(10), || {
        let (tx, rx) = channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            drop(tx);
        });
        assert_eq!(rx.recv_blocking(), Err(RecvError));
    });
}

#[test]
fn spin_budget_is_clamped() {
    assert_eq!(Spin::iterations(u32::MAX).get(), Spin::MAX_ITERATIONS);
    assert_eq!(Spin::OFF.get(), 0);
}

#[test]
fn thousands_of_blocking_round_trips() {
    watchdog_for(Duration::from_secs(30), || {
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<(u32, compute_bridge::Sender<u32>)>();
        let worker = std::thread::spawn(move || {
            for (n, tx) in jobs_rx {
                tx.send(n + 1).unwrap();
            }
        });
        for n in 0..compute_test_support::scaled(5_000, 1) as u32 {
            let (tx, rx) = channel();
            jobs_tx.send((n, tx)).unwrap();
            let spin = if n % 2 == 0 {
                Spin::OFF
            } else {
                Spin::default()
            };
            assert_eq!(rx.recv_blocking_with(spin), Ok(n + 1));
        }
        drop(jobs_tx);
        worker.join().unwrap();
    });
}

//! The receiver under `futures::executor`: the bridge assumes no runtime.

use std::time::Duration;

use compute_bridge::{channel, RecvError, TryRecvError};
use compute_test_support::watchdog_for;
use futures::executor::{block_on, LocalPool};
use futures::task::LocalSpawnExt;

#[test]
fn block_on_receives_a_value() {
    watchdog_for(Duration::from_secs(10), || {
        let (tx, rx) = channel();
        std::thread::spawn(move || tx.send(String::from("done")).unwrap());
        assert_eq!(block_on(rx).as_deref(), Ok("done"));
    });
}

#[test]
fn many_receivers_on_one_local_pool() {
    watchdog_for(Duration::from_secs(20), || {
        let mut pool = LocalPool::new();
        let spawner = pool.spawner();
        let total = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let mut senders = Vec::new();
        for i in 0..1_000u64 {
            let (tx, rx) = channel();
            senders.push((i, tx));
            let total = total.clone();
            spawner
                .spawn_local(async move {
                    let value = rx.await.unwrap();
                    total.set(total.get() + value);
                })
                .unwrap();
        }
        // Every receiver has registered a waker before anything is sent.
        pool.run_until_stalled();
        std::thread::spawn(move || {
            for (i, tx) in senders {
                tx.send(i).unwrap();
            }
        });
        pool.run();
        assert_eq!(total.get(), (0..1_000).sum::<u64>());
    });
}

#[test]
fn try_recv_reports_each_state() {
    let (tx, mut rx) = channel::<u32>();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert!(!rx.is_finished());
    tx.send(5).unwrap();
    assert!(rx.is_finished());
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

    let (tx, mut rx) = channel::<u32>();
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(block_on(channel_dropped()), Err(RecvError));
}

#[test]
fn is_started_follows_the_sender() {
    let (tx, mut rx) = channel::<u32>();
    assert!(!rx.is_started(), "nothing announced yet");
    assert!(tx.try_start());
    assert!(rx.is_started());
    tx.send(1).unwrap();
    assert!(rx.is_started());
    assert_eq!(rx.try_recv(), Ok(1));
    assert!(rx.is_started(), "taken: as is_finished, true from then on");

    let (tx, rx) = channel::<u32>();
    tx.send(2).unwrap();
    assert!(
        rx.is_started(),
        "a sender that sent without announcing is done"
    );
}

async fn channel_dropped() -> Result<u32, RecvError> {
    let (tx, rx) = channel();
    drop(tx);
    rx.await
}

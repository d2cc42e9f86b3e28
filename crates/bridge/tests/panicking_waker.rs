//! Wakers that panic in `wake` or `clone` must not corrupt the channel.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use common::DropCounter;
use compute_bridge::channel;
use compute_test_support::watchdog_for;

const PANIC_CLONE: usize = 1;
const PANIC_WAKE: usize = 2;

struct Behaviour {
    flags: usize,
    live: AtomicUsize,
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

fn behaviour<'a>(data: *const ()) -> &'a Behaviour {
    // SAFETY: every waker built here points at a live leaked `Arc<Behaviour>`.
    unsafe { &*(data as *const Behaviour) }
}
unsafe fn clone(data: *const ()) -> RawWaker {
    let b = behaviour(data);
    if b.flags & PANIC_CLONE != 0 {
        panic!("waker clone panics on purpose");
    }
    b.live.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `data` came from `Arc::into_raw` and is still live.
    unsafe { Arc::increment_strong_count(data as *const Behaviour) };
    RawWaker::new(data, &VTABLE)
}
unsafe fn wake(data: *const ()) {
    // SAFETY: waking by value consumes this waker.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}
unsafe fn wake_by_ref(data: *const ()) {
    if behaviour(data).flags & PANIC_WAKE != 0 {
        panic!("waker wake panics on purpose");
    }
}
unsafe fn drop_waker(data: *const ()) {
    behaviour(data).live.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: this waker owned one strong count.
    unsafe { Arc::decrement_strong_count(data as *const Behaviour) };
}

fn waker(flags: usize) -> (Waker, Arc<Behaviour>) {
    let b = Arc::new(Behaviour {
        flags,
        live: AtomicUsize::new(1),
    });
    let data = Arc::into_raw(b.clone()) as *const ();
    // SAFETY: the vtable above manages exactly this leaked Arc.
    (unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }, b)
}

fn quiet() {
    std::panic::set_hook(Box::new(|info| {
        let text = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if !text.contains("on purpose") {
            eprintln!("{info}");
        }
    }));
}

#[test]
fn a_waker_whose_clone_panics_leaves_the_channel_usable() {
    quiet();
    watchdog_for(Duration::from_secs(10), || {
        let counter = DropCounter::default();
        let (tx, mut rx) = channel();
        let (bad, bad_state) = waker(PANIC_CLONE);
        let polled = catch_unwind(AssertUnwindSafe(|| {
            Pin::new(&mut rx).poll(&mut Context::from_waker(&bad))
        }));
        assert!(polled.is_err(), "the clone's panic reaches the poller");
        tx.send(counter.make(8)).unwrap();
        let (good, _) = waker(0);
        match Pin::new(&mut rx).poll(&mut Context::from_waker(&good)) {
            Poll::Ready(Ok(v)) => assert_eq!(v.value, 8),
            other => panic!("expected the value, got {other:?}"),
        }
        drop((rx, bad, good));
        assert_eq!(counter.drops(), 1);
        assert_eq!(bad_state.live.load(Ordering::SeqCst), 0, "no waker leaked");
    });
}

#[test]
fn a_waker_whose_wake_panics_leaves_the_value_for_the_next_poll() {
    quiet();
    watchdog_for(Duration::from_secs(10), || {
        let counter = DropCounter::default();
        let rounds = compute_test_support::scaled(1_000, 1) as usize;
        for _ in 0..rounds {
            let (tx, mut rx) = channel();
            let (bad, state) = waker(PANIC_WAKE);
            assert!(Pin::new(&mut rx)
                .poll(&mut Context::from_waker(&bad))
                .is_pending());
            let value = counter.make(3);
            let sent = std::thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(move || tx.send(value))).is_err()
            })
            .join()
            .unwrap();
            assert!(sent, "the wake's panic reaches the sender");
            match Pin::new(&mut rx).poll(&mut Context::from_waker(&bad)) {
                Poll::Ready(Ok(v)) => assert_eq!(v.value, 3),
                other => panic!("expected the value, got {other:?}"),
            }
            drop((rx, bad));
            assert_eq!(state.live.load(Ordering::SeqCst), 0, "no waker leaked");
        }
        assert_eq!(counter.drops(), rounds);
    });
}

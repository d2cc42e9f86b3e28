//! The spin policy: with `Balanced` (the default) a poll never spins: the
//! first poll of a short, running job's handle wakes its own task and
//! returns `Pending` at once, so the executor runs every other ready task
//! first; once the budget is spent the handle parks like any other. With
//! `Latency` the first poll waits awake itself and then parks, without
//! waking its task.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool, SpinPolicy, TaskHandle};
use support::watchdog;

/// A waker that counts its wakes.
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // ORDERING: SeqCst: test bookkeeping, read on the polling thread
        // after the poll (or after the job sent, which happens-before it).
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn wakes(counter: &Arc<Counting>) -> usize {
    // ORDERING: SeqCst, see `Counting`.
    counter.0.load(Ordering::SeqCst)
}

/// A one-thread pool of `policy` that has learned its jobs are short, and a
/// job running on it until `release` is sent.
fn running_job(policy: SpinPolicy) -> (ComputePool, TaskHandle<()>, mpsc::Sender<()>) {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        spin_policy: policy,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..16 {
        futures::executor::block_on(pool.execute(|| ())).unwrap();
    }
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    let handle = pool.execute(move || {
        started.send(()).unwrap();
        let _ = wait.recv_timeout(support::LIMIT);
    });
    running.recv_timeout(support::LIMIT).unwrap();
    (pool, handle, release)
}

#[test]
fn a_balanced_poll_yields_to_other_tasks_then_parks() {
    watchdog(|| {
        let (_pool, mut handle, release) = running_job(SpinPolicy::Balanced);
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        assert_eq!(
            wakes(&counter),
            1,
            "the first poll woke its own task: a yield, not a spin"
        );
        // Past any budget (a wake costs at most 200 µs): the next poll parks.
        std::thread::sleep(Duration::from_millis(5));
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        assert_eq!(
            wakes(&counter),
            1,
            "parked: only the job's result wakes it now"
        );
        release.send(()).unwrap();
        support::wait_until("the job's result wakes the task", || wakes(&counter) == 2);
        assert!(matches!(
            Pin::new(&mut handle).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    });
}

#[test]
fn a_latency_poll_waits_awake_itself_then_parks() {
    watchdog(|| {
        let (_pool, mut handle, release) = running_job(SpinPolicy::Latency);
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        assert_eq!(wakes(&counter), 0, "it spun in the poll, then parked");
        release.send(()).unwrap();
        support::wait_until("the job's result wakes the task", || wakes(&counter) == 1);
        assert!(matches!(
            Pin::new(&mut handle).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    });
}

#[test]
fn a_job_behind_others_gets_no_spin_at_all() {
    watchdog(|| {
        let (pool, running, release) = running_job(SpinPolicy::Balanced);
        // Queued behind the running job on a one-thread pool: its awaiter
        // could not be served sooner, so it parks at once.
        let mut queued = pool.execute(|| ());
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut queued).poll(&mut cx).is_pending());
        assert_eq!(wakes(&counter), 0, "no self-wake for a job that must wait");
        release.send(()).unwrap();
        futures::executor::block_on(running).unwrap();
        futures::executor::block_on(queued).unwrap();
    });
}

/// A waker whose `wake_by_ref` panics.
struct Panicking;

impl Wake for Panicking {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        panic!("a waker that panics when woken");
    }
}

#[test]
fn a_waker_that_panics_when_the_poll_wakes_it_leaves_the_handle_whole() {
    watchdog(|| {
        let (_pool, mut handle, release) = running_job(SpinPolicy::Balanced);
        let panicking = Waker::from(Arc::new(Panicking));
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut handle).poll(&mut Context::from_waker(&panicking))
        }));
        assert!(
            polled.is_err(),
            "the poller's own waker panicked in its poll"
        );
        release.send(()).unwrap();
        futures::executor::block_on(handle).expect("the result still arrives");
    });
}
